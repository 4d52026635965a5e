-- bosk.client: the body of the `boskos` module, call for call the upstream
-- Go client (sigs.k8s.io/boskos/client) with the wire behaviour of
-- docs/protocol.md §4. lua/boskos.lua holds the constants and sentinels and
-- loads this file on first use (it is most of the parse time of `bosk run`).
--
-- Every call returns its result, or nil and an error value; wrong argument
-- types raise. The wire details (URLs, JSON, UserData) live in bosk.wire,
-- the HTTP exchange in bosk.http (C, libcurl); this file holds the policy:
-- retries, status mapping, the local store of held resources, waiting.
local http = require "bosk.http"
local core = require "bosk.core"
local wire = require "bosk.wire"
local duration = require "bosk.duration"
local ccore = require "bosk.client_core" -- status meanings, password file
local M = require "boskos" -- sentinels, states, sleep and poll_interval live there

local format, concat = string.format, table.concat
local UserData = wire.UserData

M.error = wire.error
M.resource_type_not_found_message = wire.type_not_found_message
M.userdata_from_json = wire.userdata_from_json
function M.userdata(map) return wire.userdata(map) end

---------------------------------------------------------------------------
-- Argument checks: raise as the standard library does.

local function arg_error(n, fname, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function check_type(v, want, n, fname, optional)
  if type(v) == want or (optional and v == nil) then return v end
  arg_error(n, fname, format("%s expected, got %s", want, v == nil and "no value" or type(v)))
end

local function check_string_list(v, n, fname)
  check_type(v, "table", n, fname)
  for i, s in ipairs(v) do
    if type(s) ~= "string" then arg_error(n, fname, format("element %d is a %s, not a string", i, type(s))) end
  end
  return v
end

---------------------------------------------------------------------------
-- Errors.

-- `status 404 Not Found, status code 404` (+ word and tail for release/update).
local function status_error(line, code, word, tail)
  return wire.error(format("status %s, %s %d%s", line, word or "status code", code, tail or ""),
                    { status = code })
end

-- k8s utilerrors.NewAggregate: duplicates dropped; one -> bare, more -> [a, b].
local function aggregate(errs)
  local seen, msgs = {}, {}
  for _, e in ipairs(errs) do
    local m = tostring(e)
    if not seen[m] then seen[m] = true msgs[#msgs + 1] = m end
  end
  if #msgs == 1 then return errs[1] end
  local kind = errs[1].kind
  for _, e in ipairs(errs) do if e.kind ~= kind then kind = nil end end
  return wire.error("[" .. concat(msgs, ", ") .. "]", { errors = errs, kind = kind })
end

-- hashicorp/go-multierror's text; nil when errs is empty.
local function multierror(errs)
  if #errs == 0 then return nil end
  local lines = {}
  for i, e in ipairs(errs) do lines[i] = "\t* " .. tostring(e) end
  local head = #errs == 1 and "1 error occurred:" or (#errs .. " errors occurred:")
  return wire.error(head .. "\n" .. concat(lines, "\n") .. "\n\n", { errors = errs })
end

-- Seconds left before the client's deadline (c._deadline, a monotime set
-- by the one-liners' --timeout), or nil without one.
local function time_left(self)
  local deadline = self._deadline
  if deadline == nil then return nil end
  return math.max(0, deadline - core.monotime())
end

-- Up to 4 attempts. work(...) returns true, value (done), false, err
-- (fatal) or nil, err (retriable). Sleeps i*i seconds through boskos.sleep
-- between attempts, unless the client's deadline would pass first. The
-- list of errors is made only when one fails. retry_after is the same
-- when the first attempt's outcome (done, value) is already known.
local function retry_after(self, done, value, work, ...)
  local errs
  for i = 1, 4 do
    if i > 1 then done, value = work(...) end
    if done == true then return value end
    if done == false then return nil, value end
    errs = errs or {}
    errs[#errs + 1] = value
    local left = time_left(self)
    if i == 4 or (left and left <= 0.1) then break end
    -- Near the deadline, a shorter pause still leaves time for one try.
    M.sleep(left and math.min(i * i, left - 0.1) or i * i)
  end
  return nil, aggregate(errs)
end

local function retry(self, work, ...)
  local done, value = work(...)
  return retry_after(self, done, value, work, ...)
end

---------------------------------------------------------------------------
-- Memory storage (storage.NewMemoryStorage): name -> resource.

local MemoryStorage = { __name = "boskos.memory_storage" }
MemoryStorage.__index = MemoryStorage

function M.memory_storage()
  return setmetatable({ items = {} }, MemoryStorage)
end

-- storage:add(r) -> true, or nil, err when the name is already there
function MemoryStorage:add(r)
  if self.items[r.name] then return nil, wire.error("resource " .. r.name .. " already exists") end
  self.items[r.name] = r
  return true
end

-- storage:delete(name) -> true, or nil, err
function MemoryStorage:delete(name)
  if not self.items[name] then return nil, wire.error("cannot find item " .. name) end
  self.items[name] = nil
  return true
end

-- storage:update(r) -> r, or nil, err
function MemoryStorage:update(r)
  if not self.items[r.name] then return nil, wire.error("cannot find item " .. r.name) end
  self.items[r.name] = r
  return r
end

-- storage:get(name) -> r, or nil, err
function MemoryStorage:get(name)
  local r = self.items[name]
  if not r then return nil, wire.error("cannot find item " .. name) end
  return r
end

-- storage:list() -> array of resources (sorted by name)
function MemoryStorage:list()
  local out = {}
  for _, r in pairs(self.items) do out[#out + 1] = r end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- The store keeps its own record, as Go stores a Resource by value; the
-- user data stays shared, as Go's *UserData pointer is.
local function copy_resource(r)
  return { type = r.type, name = r.name, state = r.state, owner = r.owner, lastupdate = r.lastupdate,
           userdata = r.userdata, expiration_date = r.expiration_date }
end

---------------------------------------------------------------------------
-- Contexts (a deadline and a cancel flag; Lua has no goroutines).

local Context = { __name = "boskos.context" }
Context.__index = Context

function M.background()
  return setmetatable({}, Context)
end

-- boskos.context{timeout = seconds or "1m"} -> ctx
function M.context(opts)
  opts = check_type(opts, "table", 1, "context", true) or {}
  for k in pairs(opts) do
    if k ~= "timeout" then arg_error(1, "context", "unknown field '" .. tostring(k) .. "'") end
  end
  local ctx = setmetatable({}, Context)
  if opts.timeout ~= nil then ctx.deadline = core.monotime() + duration.seconds(opts.timeout, "timeout", 2) end
  return ctx
end

function Context:cancel() self.cancelled = true end
-- ctx:remaining() -> seconds left (0 when ended), or nil without deadline
function Context:remaining()
  if self.cancelled then return 0 end
  if not self.deadline then return nil end
  return math.max(0, self.deadline - core.monotime())
end
function Context:done() return self:remaining() == 0 end
-- ctx:err() -> nil, "context canceled" or "context deadline exceeded"
function Context:err()
  if self.cancelled then return "context canceled" end
  if self:done() then return "context deadline exceeded" end
  return nil
end

---------------------------------------------------------------------------
-- The client.

local Client = { __name = "boskos.client" }
Client.__index = Client

local client_fields = {
  owner = "string", url = "string", username = "string", password_file = "string",
  distinguish_not_found = "boolean", dialer = "table", storage = "table",
  timeout = "number", max_body = "number",
}
local dialer_fields = { retry_count = "number", retry_sleep = true, timeout = true }

local function check_options(opts)
  for k, v in pairs(opts) do
    local want = client_fields[k]
    if not want then arg_error(1, "client", "unknown field '" .. tostring(k) .. "'") end
    if type(v) ~= want then arg_error(1, "client", format("field '%s' must be a %s, got %s", k, want, type(v))) end
  end
  for k in pairs(opts.dialer or {}) do
    if not dialer_fields[k] then arg_error(1, "client", "unknown field 'dialer." .. tostring(k) .. "'") end
  end
end

-- The password, read again whenever the file changes (bosk.client_core).
function Client:_password()
  return self._pw:current()
end

-- boskos.client{owner=, url=, username=, password_file=,
--   distinguish_not_found=, dialer={retry_count=, retry_sleep=, timeout=},
--   storage=, timeout=, max_body=} -> client, or nil, err
function M.client(opts)
  opts = check_type(opts, "table", 1, "client", true) or {}
  check_options(opts)
  local d = opts.dialer or {}
  local c = setmetatable({
    owner = opts.owner or "",
    url = opts.url or "http://127.0.0.1:8080",
    username = opts.username ~= "" and opts.username or nil,
    password_file = opts.password_file ~= "" and opts.password_file or nil,
    distinguish_not_found = opts.distinguish_not_found or false,
    dialer = {
      retry_count = d.retry_count or 3,
      retry_sleep = duration.seconds(d.retry_sleep or 10, "dialer.retry_sleep", 2),
      timeout = duration.seconds(d.timeout or 30, "dialer.timeout", 2),
    },
    storage = opts.storage or M.memory_storage(),
    timeout = opts.timeout or 60,
    max_body = opts.max_body or 16 * 1024 * 1024,
  }, Client)
  if (c.username == nil) ~= (c.password_file == nil) then
    return nil, wire.error("username and passwordFile must be specified together")
  end
  local ok, err = wire.url(c.url, "/", nil)
  if not ok then return nil, wire.error(err) end
  if c.password_file then
    -- A warning, never a result: stdout is for what a script captures.
    if not c.url:match("^https://") then
      io.stderr:write("[WARNING] should NOT use password without enabling TLS: '", c.url, "'\n")
    end
    local pw, perr = ccore.password_file(c.password_file)
    if not pw then return nil, wire.error("cannot read the password file: " .. tostring(perr)) end
    c._pw = pw
  end
  c.conn = http.new()
  c._urls, c._url_count = {}, 0
  return c
end

local function check_client(self, fname)
  if getmetatable(self) ~= Client then
    error(format("bad self to '%s' (boskos.client expected, got %s; call it with ':')", fname, type(self)), 3)
  end
  return self
end

-- One request as it goes out now: the client's timeouts, cut to what is
-- left before c._deadline. -> as conn:send.
local function send_once(self, method, url, body, ctype, user, password)
  local connect_timeout, timeout, left = self.dialer.timeout, self.timeout, time_left(self)
  if left then
    -- libcurl reads 0 as "no limit": below a millisecond, do not send.
    if left < 0.001 then return nil, "timeout", "the --timeout ended before the request was sent" end
    connect_timeout, timeout = math.min(connect_timeout, left), math.min(timeout, left)
  end
  return self.conn:send(method, url, body, ctype, user, password, connect_timeout, timeout, self.max_body)
end

-- The rest of an exchange whose first answer (status, line, resp_body, as
-- conn:send gives them) has come: the dialer's retries of refused, reset or
-- timed-out connects. -> status, status_line, body   or   nil, err
-- c._on_retry(err), when set (the one-liners), is told once, at the first
-- connection failure, that retries follow; c._deadline bounds the whole.
local function redial(self, method, url, body, ctype, user, password, status, line, resp_body)
  if status then return status, line, resp_body end
  local d = self.dialer
  local tries = math.max(0, d.retry_count or 0) + 1
  for _ = 2, tries do
    if line ~= "connect" then break end
    if self._on_retry then
      self._on_retry(resp_body)
      self._on_retry = nil
    end
    local left = time_left(self)
    if left and left <= 0.1 then break end
    core.sleep(left and math.min(d.retry_sleep, left - 0.1) or d.retry_sleep)
    status, line, resp_body = send_once(self, method, url, body, ctype, user, password)
    if status then return status, line, resp_body end
  end
  if line == "connect" and self._on_retry then
    self._on_retry(resp_body)
    self._on_retry = nil
  end
  return nil, wire.error(resp_body, { kind = line })
end

-- One exchange, with the dialer's retries (redial).
-- -> status, status_line, body   or   nil, err
local function exchange(self, method, url, body, ctype)
  local user, password = self.username, nil
  if user then password = self:_password() end
  local status, line, resp_body = send_once(self, method, url, body, ctype, user, password)
  return redial(self, method, url, body, ctype, user, password, status, line, resp_body)
end

-- The URL of a call, then one exchange. key, when given, names the URL in
-- a small per-client cache: building and escaping the query is a large
-- share of a call's CPU time.
function Client:_send(method, action, params, body, key)
  local url = key and self._urls[key]
  if not url then
    local uerr
    url, uerr = wire.url(self.url, action, params)
    if not url then return nil, wire.error(uerr) end
    if key then
      if self._url_count >= 256 then self._urls, self._url_count = {}, 0 end
      self._urls[key], self._url_count = url, self._url_count + 1
    end
  end
  return exchange(self, method, url, body, action == "/update" and "application/json" or nil)
end

-- The hot path of acquire and release (a script leasing in a loop): their
-- URLs by argument, in nested tables, so a repeated call neither builds a
-- key nor checks its arguments again: only strings that passed the checks
-- are ever stored, so finding the URL proves the arguments are good.
-- hot[client] = { url = c.url, owner = c.owner, n = count,
--   acquire = {[rtype] = {[state] = {[dest] = URL}}}, release = {[name] = {[dest] = URL}} }
-- It is keyed by the client in a weak table, so looking up any other
-- value (a wrong self) simply misses and goes to the checks.
local hot = setmetatable({}, { __mode = "k" })

-- Stores url at hot[self][call][a][b][c] (c may be nil: two levels).
-- Starts afresh when the client's url or owner changed, or after 256 URLs.
local function remember(self, call, url, a, b, c)
  local h = hot[self]
  if not h or h.url ~= self.url or h.owner ~= self.owner or h.n >= 256 then
    h = { url = self.url, owner = self.owner, n = 0, acquire = {}, release = {} }
    hot[self] = h
  end
  h.n = h.n + 1
  local urls = h[call]
  local t = urls[a] or {}
  urls[a] = t
  if c == nil then t[b] = url return end
  local u = t[b] or {}
  t[b] = u
  u[c] = url
end

-- An /acquire answer (as exchange gives it) read as one attempt (see retry).
local function acquire_answer(self, rtype, status, line, body)
  if not status then return nil, line end
  local meaning = ccore.meaning("/acquire", status)
  if meaning == "ok" then
    local r, err = wire.decode_resource(body)
    if not r then return false, wire.error(err) end
    return true, r
  elseif meaning == "in_use" then
    return false, M.ErrAlreadyInUse
  elseif meaning == "not_found" then
    if self.distinguish_not_found and ccore.type_not_found(body, rtype) then
      return false, M.ErrTypeNotFound
    end
    return false, M.ErrNotFound
  end
  return nil, status_error(line, status)
end

-- One /acquire attempt (see retry). url is nil when it could not be built (uerr).
local function acquire_once(self, rtype, url, uerr)
  if not url then return nil, wire.error(uerr) end
  return acquire_answer(self, rtype, exchange(self, "POST", url, nil))
end

local function acquire_url(self, rtype, state, dest, request_id)
  local params = { type = rtype, state = state, owner = self.owner, dest = dest }
  if request_id and request_id ~= "" then params.request_id = request_id end
  return wire.url(self.url, "/acquire", params)
end

-- Keeps the store's record and returns r (or nil, err).
local function store_acquired(self, r, err)
  if not r then return nil, err end
  self.storage:add(copy_resource(r)) -- a name already stored keeps its old record
  return r
end

-- c:acquire_with_priority(rtype, state, dest, request_id) -> resource, or nil, err
function Client:acquire_with_priority(rtype, state, dest, request_id)
  check_client(self, "acquire_with_priority")
  check_type(rtype, "string", 1, "acquire_with_priority")
  check_type(state, "string", 2, "acquire_with_priority")
  check_type(dest, "string", 3, "acquire_with_priority")
  check_type(request_id, "string", 4, "acquire_with_priority", true)
  local url, uerr = acquire_url(self, rtype, state, dest, request_id)
  return store_acquired(self, retry(self, acquire_once, self, rtype, url, uerr))
end

-- c:acquire(rtype, state, dest) -> resource, or nil, err
function Client:acquire(rtype, state, dest)
  -- Valid while the client's url and owner are those of its hot table.
  -- (Written out in place: a call costs as much as the lookups.)
  local h = hot[self]
  local urls = h and h.url == self.url and h.owner == self.owner and h.acquire
  local t = urls and urls[rtype]
  t = t and t[state]
  local url, uerr = t and t[dest], nil
  if not url then
    check_client(self, "acquire")
    check_type(rtype, "string", 1, "acquire")
    check_type(state, "string", 2, "acquire")
    check_type(dest, "string", 3, "acquire")
    url, uerr = acquire_url(self, rtype, state, dest, nil)
    if url then remember(self, "acquire", url, rtype, state, dest) end
  end
  -- The fast path: no credentials and no deadline, so conn:post makes the
  -- very request send_once would, and a success needs neither exchange
  -- nor retry.
  if url and self.username == nil and self._deadline == nil then
    local status, line, r, decoded = self.conn:post(url, self.dialer.timeout, self.timeout, self.max_body, UserData)
    if decoded then -- a 200 in Go's compact form, decoded in C
      self.storage:add(copy_resource(r)) -- a name already stored keeps its old record
      return r
    end
    -- Any other answer is read as acquire_once reads it, then retried.
    local done, value = acquire_answer(self, rtype, redial(self, "POST", url, nil, nil, nil, nil, status, line, r))
    return store_acquired(self, retry_after(self, done, value, acquire_once, self, rtype, url))
  end
  return store_acquired(self, retry(self, acquire_once, self, rtype, url, uerr))
end

local function check_context(ctx, n, fname)
  if ctx ~= nil and getmetatable(ctx) ~= Context then
    arg_error(n, fname, "boskos.context expected, got " .. type(ctx))
  end
end

-- Polls `try` while the answer is not-found or in-use, every
-- boskos.poll_interval seconds, until ctx ends (then that error).
local function wait_loop(ctx, try)
  if ctx == nil then return nil, M.ErrContextRequired end
  while true do
    local r, err = try()
    if r ~= nil then return r end
    if err ~= M.ErrNotFound and err ~= M.ErrAlreadyInUse then return nil, err end
    local left, pause = ctx:remaining(), M.poll_interval
    if left == 0 then return nil, err end
    if left and left <= pause then
      core.sleep(left)
      return nil, err
    end
    core.sleep(pause)
  end
end

-- c:acquire_wait_with_priority(ctx, rtype, state, dest, request_id) -> resource, or nil, err
function Client:acquire_wait_with_priority(ctx, rtype, state, dest, request_id)
  check_client(self, "acquire_wait_with_priority")
  check_context(ctx, 1, "acquire_wait_with_priority")
  check_type(rtype, "string", 2, "acquire_wait_with_priority")
  check_type(state, "string", 3, "acquire_wait_with_priority")
  check_type(dest, "string", 4, "acquire_wait_with_priority")
  check_type(request_id, "string", 5, "acquire_wait_with_priority", true)
  return wait_loop(ctx, function()
    return self:acquire_with_priority(rtype, state, dest, request_id)
  end)
end

-- c:acquire_wait(ctx, rtype, state, dest) -> resource, or nil, err
-- One random request id for the whole wait keeps this caller's place in line.
function Client:acquire_wait(ctx, rtype, state, dest)
  check_client(self, "acquire_wait")
  check_context(ctx, 1, "acquire_wait")
  check_type(rtype, "string", 2, "acquire_wait")
  check_type(state, "string", 3, "acquire_wait")
  check_type(dest, "string", 4, "acquire_wait")
  return self:acquire_wait_with_priority(ctx, rtype, state, dest, core.uuid4())
end

local function acquire_by_state(self, state, dest, names)
  local params = { state = state, dest = dest, names = concat(names, ","), owner = self.owner }
  return retry(self, function()
    local status, line, body = self:_send("POST", "/acquirebystate", params)
    if not status then return nil, line end
    local meaning = ccore.meaning("/acquirebystate", status)
    if meaning == "ok" then
      local list, err = wire.decode_resources(body)
      if not list then return false, wire.error(err) end
      return true, list
    elseif meaning == "in_use" then
      return false, M.ErrAlreadyInUse
    elseif meaning == "not_found" then
      return false, M.ErrNotFound
    end
    return nil, status_error(line, status)
  end)
end

-- c:acquire_by_state(state, dest, names) -> array of resources, or nil, err
function Client:acquire_by_state(state, dest, names)
  check_client(self, "acquire_by_state")
  check_type(state, "string", 1, "acquire_by_state")
  check_type(dest, "string", 2, "acquire_by_state")
  check_string_list(names, 3, "acquire_by_state")
  local list, err = acquire_by_state(self, state, dest, names)
  if not list then return nil, err end
  for _, r in ipairs(list) do self.storage:add(copy_resource(r)) end
  return list
end

-- c:acquire_by_state_wait(ctx, state, dest, names) -> array, or nil, err
function Client:acquire_by_state_wait(ctx, state, dest, names)
  check_client(self, "acquire_by_state_wait")
  check_context(ctx, 1, "acquire_by_state_wait")
  check_type(state, "string", 2, "acquire_by_state_wait")
  check_type(dest, "string", 3, "acquire_by_state_wait")
  check_string_list(names, 4, "acquire_by_state_wait")
  return wait_loop(ctx, function() return self:acquire_by_state(state, dest, names) end)
end

-- A /release answer (as exchange gives it) read as one attempt (see retry).
local function release_answer(name, status, line)
  if not status then return nil, line end
  if status == 200 then return true, true end
  return nil, status_error(line, status, "statusCode", " releasing " .. name)
end

-- One /release attempt (see retry). url is nil when it could not be built (uerr).
local function release_once(self, name, url, uerr)
  if not url then return nil, wire.error(uerr) end
  return release_answer(name, exchange(self, "POST", url, nil))
end

-- c:release(name, dest) -> true, or nil, err (every non-200 is retried)
function Client:release(name, dest)
  local h = hot[self]
  local urls = h and h.url == self.url and h.owner == self.owner and h.release
  local t = urls and urls[name]
  local url, uerr = t and t[dest], nil
  if not url then
    check_client(self, "release")
    check_type(name, "string", 1, "release")
    check_type(dest, "string", 2, "release")
    url, uerr = wire.url(self.url, "/release", { name = name, dest = dest, owner = self.owner })
    if url then remember(self, "release", url, name, dest) end
  end
  if url and self.username == nil and self._deadline == nil then -- as in acquire
    local status, line, body = self.conn:post(url, self.dialer.timeout, self.timeout, self.max_body)
    if status == 200 then return true end
    local done, value = release_answer(name, redial(self, "POST", url, nil, nil, nil, nil, status, line, body))
    return retry_after(self, done, value, release_once, self, name, url)
  end
  return retry(self, release_once, self, name, url, uerr)
end

local function userdata_body(ud)
  if ud == nil then return nil end
  return wire.encode_userdata(ud) .. "\n"
end

local function check_userdata(ud, n, fname)
  if ud == nil or getmetatable(ud) == wire.UserData then return end
  if type(ud) ~= "table" then
    arg_error(n, fname, "boskos.userdata or table expected, got " .. type(ud))
  end
  for k, v in pairs(ud) do
    if type(k) ~= "string" or type(v) ~= "string" then
      arg_error(n, fname, "user data keys and values must be strings")
    end
  end
end

-- c:update(name, state, userdata) -> true, or nil, err (every non-200 is retried)
function Client:update(name, state, ud)
  check_client(self, "update")
  check_type(name, "string", 1, "update")
  check_type(state, "string", 2, "update")
  check_userdata(ud, 3, "update")
  local params = { name = name, owner = self.owner, state = state }
  local body = userdata_body(ud)
  local key = self.url .. "\0/update\0" .. name .. "\0" .. state .. "\0" .. self.owner
  return retry(self, function()
    local status, line = self:_send("POST", "/update", params, body, key)
    if not status then return nil, line end
    if status == 200 then return true, true end
    return nil, status_error(line, status, nil, " updating " .. name)
  end)
end

-- A decoded JSON object as a map of values of Lua type `want`.
local function map_of(v, want, what)
  if v == nil or v == wire.null then return {} end
  if type(v) ~= "table" or v[1] ~= nil then return nil, "json: cannot unmarshal into " .. what end
  local out = {}
  for k, val in pairs(v) do
    local got = val
    if want == "integer" then got = type(val) == "number" and math.tointeger(val) or nil end
    if got == nil or (want == "string" and type(got) ~= "string") then
      return nil, format("json: cannot unmarshal %s value of key %q into %s", type(val), k, what)
    end
    out[k] = got
  end
  return out
end

-- c:reset(rtype, state, expire, dest) -> {[name] = previous owner}, or nil, err
-- expire: seconds or a Go duration string ("30m").
function Client:reset(rtype, state, expire, dest)
  check_client(self, "reset")
  check_type(rtype, "string", 1, "reset")
  check_type(state, "string", 2, "reset")
  if type(expire) ~= "number" and type(expire) ~= "string" then
    arg_error(3, "reset", "number or duration string expected, got " .. type(expire))
  end
  check_type(dest, "string", 4, "reset")
  local secs = duration.seconds(expire, "bad argument #3 to 'reset'", 2)
  local params = { type = rtype, state = state, expire = duration.format(secs), dest = dest }
  return retry(self, function()
    local status, line, body = self:_send("POST", "/reset", params)
    if not status then return nil, line end
    if status ~= 200 then return nil, status_error(line, status) end
    local v, err = wire.decode_json(body)
    local map
    if v ~= nil then map, err = map_of(v, "string", "map[string]string") end
    if not map then return false, wire.error(err) end
    return true, map
  end)
end

local function decode_metric(body)
  local v, err = wire.decode_json(body)
  if v == nil then return nil, err end
  if type(v) ~= "table" or v[1] ~= nil then return nil, "json: cannot unmarshal into common.Metric" end
  local m = { type = v.type, current = {}, owners = {} }
  if m.type == wire.null or m.type == nil then m.type = "" end
  if type(m.type) ~= "string" then return nil, "json: Metric.type is not a string" end
  for key, field in pairs({ current = "current", owner = "owners" }) do
    local sub = v[key]
    if sub ~= nil and sub ~= wire.null then
      local map, e = map_of(sub, "integer", "map[string]int")
      if not map then return nil, e end
      m[field] = map
    end
  end
  return m
end

-- c:metric(rtype) -> {type=, current={[state]=n}, owners={[owner]=n}}, or nil, err
function Client:metric(rtype)
  check_client(self, "metric")
  check_type(rtype, "string", 1, "metric")
  return retry(self, function()
    local status, line, body = self:_send("GET", "/metric", { type = rtype })
    if not status then return nil, line end
    if status == 404 and self._final_not_found then
      -- The one-liners (c._final_not_found): the server's own words, at once.
      return false, wire.error((body:gsub("%s+$", "")), { status = 404 })
    end
    if status ~= 200 then return nil, status_error(line, status) end
    local m, err = decode_metric(body)
    if not m then return false, wire.error(err) end
    return true, m
  end)
end

-- Keeps the resources called `name` (the server filters by the others).
local function named(list, name)
  if name == nil then return list end
  local out = {}
  for _, r in ipairs(list) do if r.name == name then out[#out + 1] = r end end
  return out
end

-- c:list{type=, state=, owner=, name=} -> array of resources (bosk
-- server's GET /resources extension), or nil, err. name is filtered here;
-- an unknown field is an error value, not a raise (a REPL typo).
function Client:list(filter)
  check_client(self, "list")
  filter = check_type(filter, "table", 1, "list", true) or {}
  local params, name = {}, nil
  for k, v in pairs(filter) do
    if k ~= "type" and k ~= "state" and k ~= "owner" and k ~= "name" then
      return nil, wire.error(format("list: unknown filter %s (known: type, state, owner, name)",
                                    wire.go_quote(tostring(k))))
    end
    check_type(v, "string", 1, "list")
    if k == "name" then name = v else params[k] = v end
  end
  local unsupported = wire.error(format(
    "the server at %s does not support listing resources (GET /resources)", self.url))
  return retry(self, function()
    local status, line, body = self:_send("GET", "/resources", params)
    if not status then return nil, line end
    local meaning = ccore.meaning("/resources", status)
    if meaning == "unsupported" or (meaning == "ok" and not body:find("^%s*[%[n]")) then
      return false, unsupported
    end
    if status ~= 200 then return nil, status_error(line, status) end
    local list, err = wire.decode_resources(body)
    if not list then return false, wire.error(err) end
    return true, named(list, name)
  end)
end

---------------------------------------------------------------------------
-- bosk server extensions: history and holds (docs/history.md).

local HISTORY_FIELDS = { "time", "endpoint", "from", "to", "owner_from", "owner_to" }

-- One decoded event as a plain table, or nil, err.
local function history_event(v)
  if type(v) ~= "table" then return nil, "json: a history event is not an object" end
  local e = { userdata_changed = {} }
  for _, k in ipairs(HISTORY_FIELDS) do
    local f = v[k]
    if f == nil or f == wire.null then f = "" end
    if type(f) ~= "string" then return nil, format("json: history field %q is not a string", k) end
    e[k] = f
  end
  local keys = v.userdata_changed
  if keys ~= nil and keys ~= wire.null then
    if type(keys) ~= "table" then return nil, "json: history field \"userdata_changed\" is not a list" end
    for i, key in ipairs(keys) do
      if type(key) ~= "string" then return nil, "json: a changed user data key is not a string" end
      e.userdata_changed[i] = key
    end
  end
  -- the server lists at most 100 keys and counts them all
  local count = v.userdata_changed_count
  e.userdata_changed_count = type(count) == "number" and math.tointeger(count) or #e.userdata_changed
  return e
end

local function decode_history(body)
  local v, err = wire.decode_json(body)
  if v == nil then return nil, err end
  if v == wire.null then return {} end
  if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then
    return nil, "json: the history is not a list"
  end
  local out = {}
  for i, item in ipairs(v) do
    local e, eerr = history_event(item)
    if not e then return nil, eerr end
    out[i] = e
  end
  return out
end

-- c:history(name[, limit]) -> array of events, newest first ({time=,
-- endpoint=, from=, to=, owner_from=, owner_to=, userdata_changed={keys},
-- userdata_changed_count=n}),
-- or nil, err. bosk server's GET /history; a server without it (upstream
-- Boskos answers unknown paths 200 with no body) is an error that says so.
function Client:history(name, limit)
  check_client(self, "history")
  check_type(name, "string", 1, "history")
  check_type(limit, "number", 2, "history", true)
  if limit ~= nil and (math.type(limit) ~= "integer" and limit ~= math.floor(limit) or limit < 1) then
    arg_error(2, "history", "limit must be a whole number from 1")
  end
  local params = { name = name, limit = limit and format("%d", limit) or nil }
  return retry(self, function()
    local status, line, body = self:_send("GET", "/history", params)
    if not status then return nil, line end
    if status == 200 and not body:find("^%s*[%[n]") then
      return false, wire.error(format(
        "the server at %s does not keep history (GET /history is a bosk server extension)", self.url))
    end
    if status == 404 then
      return false, wire.error((body:gsub("%s+$", "")), { status = 404 })
    end
    if status ~= 200 then return nil, status_error(line, status) end
    local list, err = decode_history(body)
    if not list then return false, wire.error(err) end
    return true, list
  end)
end

M.HOLD_UNTIL, M.HOLD_REASON = "bosk.hold/until", "bosk.hold/reason"

-- The current state of name, for an update that keeps it: the client's
-- own record, else the server's listing. nil, err when neither can tell.
local function current_state(self, name)
  local r = self.storage:get(name)
  if r then return r.state end
  local list, err = self:list { name = name }
  if list == nil then
    return nil, wire.error(format("cannot tell the state of %s (%s); pass it as the state argument",
                                  name, tostring(err)))
  end
  if #list == 0 then return nil, wire.error("no resource " .. name, { status = 404 }) end
  return list[1].state
end

-- An /update that keeps the state; 401/404/409 (not the caller's, gone,
-- moved on) are answered at once, not retried as a heartbeat would be.
local function update_keeping_state(self, name, state, ud)
  local params = { name = name, owner = self.owner, state = state }
  local body = userdata_body(ud)
  return retry(self, function()
    local status, line, resp = self:_send("POST", "/update", params, body)
    if not status then return nil, line end
    if status == 200 then return true, true end
    local err = status_error(line, status, nil, " updating " .. name)
    if ccore.meaning("/update", status) == "lost" then
      local says = resp and resp:gsub("%s+$", "") or ""
      return false, wire.error(tostring(err) .. (says ~= "" and (": " .. says) or ""), { status = status })
    end
    return nil, err
  end)
end

-- c:hold(name, duration[, reason[, state]]) -> the hold's end (RFC 3339,
-- UTC), or nil, err. On a resource the caller owns: sets bosk.hold/until
-- and bosk.hold/reason in its user data, keeping its state (given, or
-- found as current_state does). bosk server's /reset leaves it alone until
-- then; upstream Boskos records it but its reaper does not honour it.
-- duration: seconds or a Go duration; 0 (or less) clears the hold.
function Client:hold(name, dur, reason, state)
  check_client(self, "hold")
  check_type(name, "string", 1, "hold")
  if type(dur) ~= "number" and type(dur) ~= "string" then
    arg_error(2, "hold", "number or duration string expected, got " .. type(dur))
  end
  check_type(reason, "string", 3, "hold", true)
  check_type(state, "string", 4, "hold", true)
  local secs = duration.seconds(dur, "bad argument #2 to 'hold'", 2)
  if secs <= 0 then return self:unhold(name, state) end
  local err
  if state == nil then
    state, err = current_state(self, name)
    if state == nil then return nil, err end
  end
  local until_text = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + math.ceil(secs))
  local ok
  ok, err = update_keeping_state(self, name, state, { [M.HOLD_UNTIL] = until_text, [M.HOLD_REASON] = reason or "" })
  if not ok then return nil, err end
  return until_text
end

-- c:unhold(name[, state]) -> true, or nil, err: removes both hold keys
-- (a value "" deletes a key, as Boskos merges user data).
function Client:unhold(name, state)
  check_client(self, "unhold")
  check_type(name, "string", 1, "unhold")
  check_type(state, "string", 2, "unhold", true)
  local err
  if state == nil then
    state, err = current_state(self, name)
    if state == nil then return nil, err end
  end
  return update_keeping_state(self, name, state, { [M.HOLD_UNTIL] = "", [M.HOLD_REASON] = "" })
end

-- c:release_one(name, dest) -> true, or nil, err. The local record goes
-- first, even when the server call then fails (as upstream).
function Client:release_one(name, dest)
  check_client(self, "release_one")
  check_type(name, "string", 1, "release_one")
  check_type(dest, "string", 2, "release_one")
  if not self.storage:get(name) then return nil, wire.error("no resource name " .. name) end
  self.storage:delete(name)
  return self:release(name, dest)
end

local function held(self)
  local list, err = self.storage:list()
  if not list then return nil, err end
  return list
end

-- held(), but nothing held is upstream's `no holding resource` error
-- (ReleaseAll, UpdateAll; SyncAll treats it as success).
local function held_some(self)
  local list, err = held(self)
  if list and #list == 0 then return nil, wire.error("no holding resource") end
  return list, err
end

-- true, or nil and the go-multierror of every failure collected.
local function collected(errs)
  local err = multierror(errs)
  if err then return nil, err end
  return true
end

-- c:release_all(dest) -> true, or nil, err (every failure, collected)
function Client:release_all(dest)
  check_client(self, "release_all")
  check_type(dest, "string", 1, "release_all")
  local list, lerr = held_some(self)
  if not list then return nil, lerr end
  local errs = {}
  for _, r in ipairs(list) do
    self.storage:delete(r.name)
    local ok, err = self:release(r.name, dest)
    if not ok then errs[#errs + 1] = err end
  end
  return collected(errs)
end

-- The local record after a successful update: new state, merged user data.
local function update_local(self, r, state, ud)
  r.state = state
  if ud ~= nil then
    -- Go: a record without user data takes ud as it is; otherwise merge.
    local none = r.userdata == nil or (r.userdata._null and #r.userdata == 0)
    if none then r.userdata = wire.userdata(ud) else r.userdata:update(ud) end
  end
  return self.storage:update(r)
end

-- c:update_one(name, state, userdata) -> true, or nil, err
function Client:update_one(name, state, ud)
  check_client(self, "update_one")
  check_type(name, "string", 1, "update_one")
  check_type(state, "string", 2, "update_one")
  check_userdata(ud, 3, "update_one")
  local r = self.storage:get(name)
  if not r then return nil, wire.error("no resource name " .. name) end
  local ok, err = self:update(name, state, ud)
  if not ok then return nil, err end
  local _, serr = update_local(self, r, state, ud)
  if serr then return nil, serr end
  return true
end

-- Updates every held resource to state(r); collects the failures.
local function update_each(self, state_of)
  local list, lerr = held(self)
  if not list then return nil, lerr end
  local errs = {}
  for _, r in ipairs(list) do
    local ok, err = self:update(r.name, state_of(r), nil)
    if ok then _, err = update_local(self, r, state_of(r), nil) end
    if err then errs[#errs + 1] = err end
  end
  return collected(errs)
end

-- c:update_all(state) -> true, or nil, err
function Client:update_all(state)
  check_client(self, "update_all")
  check_type(state, "string", 1, "update_all")
  local list, lerr = held_some(self)
  if not list then return nil, lerr end
  return update_each(self, function() return state end)
end

-- c:sync_all() -> true, or nil, err: the heartbeat, each held resource
-- updated to its local state; nothing held is success without a request.
function Client:sync_all()
  check_client(self, "sync_all")
  return update_each(self, function(r) return r.state end)
end

-- c:has_resource() -> boolean
function Client:has_resource()
  check_client(self, "has_resource")
  local list = self.storage:list()
  return list ~= nil and #list > 0
end

-- c:close(): drops the connection; later calls raise.
function Client:close()
  check_client(self, "close")
  self.conn:close()
end
Client.__close = Client.close

function Client:__tostring()
  return format("boskos.client (%s as %q)", self.url, self.owner)
end

return M
