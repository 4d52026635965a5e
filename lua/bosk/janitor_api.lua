-- The supervisor's side of the Boskos protocol: each call sends one request
-- off the loop thread (bosk.loop.http) and suspends the calling coroutine
-- until the answer arrives. Nothing here retries or sleeps: what to do
-- after a failure is the supervisor's decision.
--
--   local api = janitor_api.new{url =, owner =, username =, password =}
--   api:acquire(rtype, state, dest)      -> res | nil, kind, message
--   api:acquire_by_state(state, dest, names) -> {res...} | nil, kind, message
--   api:release(name, dest[, owner])     -> true | nil, kind, message
--   api:update(name, state[, userdata_map]) -> true | nil, kind, message
--   api:reset(rtype, state, expire_seconds, dest) -> {name = owner} | nil, kind, message
--   api:metric(rtype)                    -> metric | nil, kind, message
-- kind: "not_found" (404), "lost" (401/404 on release and update: the lease
-- is no longer ours), "error" (anything else, retriable). What each status
-- means and the password file are bosk.client_core's, shared with the
-- `boskos` module's client.
local loop = require "bosk.loop"
local wire = require "bosk.wire"
local duration = require "bosk.duration"
local ccore = require "bosk.client_core"

local M = {}
local Api = {}
Api.__index = Api

-- await(start) -> what start's callback receives. start(cb) begins an
-- asynchronous operation; the running coroutine sleeps until cb runs.
function M.await(start)
  local co = assert(coroutine.running(), "await outside a coroutine")
  start(function(...)
    local ok, err = coroutine.resume(co, ...)
    if not ok then error(debug.traceback(co, err), 0) end
  end)
  return coroutine.yield()
end

function M.sleep(seconds)
  return M.await(function(cb) loop.timer(seconds, 0, cb) end)
end

function M.new(opts)
  local api = setmetatable({
    url = opts.url, owner = opts.owner,
    username = opts.username, password = opts.password,
    password_file = opts.password_file,
    timeout = opts.timeout or 30,
  }, Api)
  if opts.password_file then
    -- The caller read it already (and reported a failure); start from that.
    api.password_source = ccore.password_file(opts.password_file, opts.password or "")
  end
  return api
end

-- The password file is read again when it changes, so a rotated secret
-- needs no restart; an unreadable file leaves the previous password in use.
function Api:refresh_password()
  if self.password_source then self.password = self.password_source:current() end
end

-- request(method, action, params, body) -> status, body, err, status_line
function Api:request(method, action, params, body)
  local url, err = wire.url(self.url, action, params)
  if not url then return nil, nil, err end
  self:refresh_password()
  local req = {
    method = method, url = url, body = body,
    content_type = body and "application/json" or nil,
    username = self.username, password = self.password, timeout = self.timeout,
  }
  return M.await(function(cb) loop.http(req, cb) end)
end

local function failure(action, status, body, err, status_line)
  if status == nil then return "error", action .. ": " .. tostring(err) end
  local text = (body or ""):gsub("%s+$", "")
  return "error", string.format("%s: status %s: %s", action, status_line or status, text)
end

function Api:acquire(rtype, state, dest)
  local status, body, err, line = self:request("POST", "/acquire",
    { type = rtype, state = state, dest = dest, owner = self.owner })
  local meaning = ccore.meaning("/acquire", status)
  if meaning == "ok" then
    local res, perr = wire.decode_resource(body)
    if not res then return nil, "error", "acquire " .. rtype .. ": " .. perr end
    return res
  end
  if meaning == "not_found" then return nil, "not_found", (body or ""):gsub("%s+$", "") end
  return nil, failure("acquire " .. rtype, status, body, err, line)
end

function Api:acquire_by_state(state, dest, names)
  local status, body, err, line = self:request("POST", "/acquirebystate",
    { state = state, dest = dest, owner = self.owner, names = table.concat(names, ",") })
  local meaning = ccore.meaning("/acquirebystate", status)
  if meaning == "ok" then
    local list, perr = wire.decode_resources(body)
    if not list then return nil, "error", "acquirebystate: " .. perr end
    return list
  end
  if meaning == "not_found" then return nil, "not_found", (body or ""):gsub("%s+$", "") end
  return nil, failure("acquirebystate " .. state, status, body, err, line)
end

function Api:release(name, dest, owner)
  local status, body, err, line = self:request("POST", "/release",
    { name = name, dest = dest, owner = owner or self.owner })
  local meaning = ccore.meaning("/release", status)
  if meaning == "ok" then return true end
  if meaning == "lost" then return nil, "lost", (body or ""):gsub("%s+$", "") end
  return nil, failure("release " .. name, status, body, err, line)
end

function Api:update(name, state, userdata_map, owner)
  local body = userdata_map and (wire.encode_userdata(userdata_map) .. "\n") or nil
  local status, rbody, err, line = self:request("POST", "/update",
    { name = name, owner = owner or self.owner, state = state }, body)
  local meaning = ccore.meaning("/update", status)
  if meaning == "ok" then return true end
  if meaning == "lost" then return nil, "lost", (rbody or ""):gsub("%s+$", "") end
  return nil, failure("update " .. name, status, rbody, err, line)
end

function Api:reset(rtype, state, expire, dest)
  local status, body, err, line = self:request("POST", "/reset",
    { type = rtype, state = state, expire = duration.format(expire), dest = dest })
  if ccore.meaning("/reset", status) == "ok" then
    local map, perr = wire.decode_json(body)
    if type(map) ~= "table" then return nil, "error", "reset: " .. tostring(perr or "not an object") end
    return map
  end
  return nil, failure("reset " .. rtype, status, body, err, line)
end

function Api:metric(rtype)
  local status, body, err, line = self:request("GET", "/metric", { type = rtype })
  local meaning = ccore.meaning("/metric", status)
  if meaning == "ok" then
    local m, perr = wire.decode_json(body)
    if type(m) ~= "table" then return nil, "error", "metric: " .. tostring(perr) end
    return m
  end
  if meaning == "not_found" then return nil, "not_found", (body or ""):gsub("%s+$", "") end
  return nil, failure("metric " .. rtype, status, body, err, line)
end

return M
