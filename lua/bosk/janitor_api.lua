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
-- is no longer ours), "error" (anything else, retriable).
local loop = require "bosk.loop"
local wire = require "bosk.wire"
local duration = require "bosk.duration"

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
  return setmetatable({
    url = opts.url, owner = opts.owner,
    username = opts.username, password = opts.password,
    password_file = opts.password_file,
    timeout = opts.timeout or 30,
  }, Api)
end

-- The password file is read again when it changes (as upstream's client
-- does), so a rotated secret needs no restart. A file that cannot be read
-- leaves the previous password in use.
function Api:refresh_password()
  if not self.password_file then return end
  local mtime, size = require("bosk.http").stat(self.password_file)
  if not mtime or (mtime == self.pw_mtime and size == self.pw_size) then return end
  local f = io.open(self.password_file, "rb")
  if not f then return end
  local text = f:read("a")
  f:close()
  self.password = text:gsub("^%s+", ""):gsub("%s+$", "")
  self.pw_mtime, self.pw_size = mtime, size
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
  if status == 200 then
    local res, perr = wire.decode_resource(body)
    if not res then return nil, "error", "acquire " .. rtype .. ": " .. perr end
    return res
  end
  if status == 404 then return nil, "not_found", (body or ""):gsub("%s+$", "") end
  return nil, failure("acquire " .. rtype, status, body, err, line)
end

function Api:acquire_by_state(state, dest, names)
  local status, body, err, line = self:request("POST", "/acquirebystate",
    { state = state, dest = dest, owner = self.owner, names = table.concat(names, ",") })
  if status == 200 then
    local list, perr = wire.decode_resources(body)
    if not list then return nil, "error", "acquirebystate: " .. perr end
    return list
  end
  if status == 404 then return nil, "not_found", (body or ""):gsub("%s+$", "") end
  return nil, failure("acquirebystate " .. state, status, body, err, line)
end

function Api:release(name, dest, owner)
  local status, body, err, line = self:request("POST", "/release",
    { name = name, dest = dest, owner = owner or self.owner })
  if status == 200 then return true end
  if status == 401 or status == 404 then return nil, "lost", (body or ""):gsub("%s+$", "") end
  return nil, failure("release " .. name, status, body, err, line)
end

function Api:update(name, state, userdata_map, owner)
  local body = userdata_map and (wire.encode_userdata(userdata_map) .. "\n") or nil
  local status, rbody, err, line = self:request("POST", "/update",
    { name = name, owner = owner or self.owner, state = state }, body)
  if status == 200 then return true end
  if status == 401 or status == 404 or status == 409 then
    return nil, "lost", (rbody or ""):gsub("%s+$", "")
  end
  return nil, failure("update " .. name, status, rbody, err, line)
end

function Api:reset(rtype, state, expire, dest)
  local status, body, err, line = self:request("POST", "/reset",
    { type = rtype, state = state, expire = duration.format(expire), dest = dest })
  if status == 200 then
    local map, perr = wire.decode_json(body)
    if type(map) ~= "table" then return nil, "error", "reset: " .. tostring(perr or "not an object") end
    return map
  end
  return nil, failure("reset " .. rtype, status, body, err, line)
end

function Api:metric(rtype)
  local status, body, err, line = self:request("GET", "/metric", { type = rtype })
  if status == 200 then
    local m, perr = wire.decode_json(body)
    if type(m) ~= "table" then return nil, "error", "metric: " .. tostring(perr) end
    return m
  end
  if status == 404 then return nil, "not_found", (body or ""):gsub("%s+$", "") end
  return nil, failure("metric " .. rtype, status, body, err, line)
end

return M
