-- bosk.client_core: what the two Lua Boskos clients share -- the `boskos`
-- module's client (bosk.client: blocking, upstream's API, nil + error
-- values) and the janitor's (bosk.janitor_api: on the libuv loop, nil +
-- kind + message). One password-file reader, one password kept fresh when
-- the file changes, one table of what each HTTP status means per call, and
-- the test for the server's "resource type ... does not exist".
local wire = require "bosk.wire"
local M = {}

-- read_password(path) -> the file's text without surrounding white space,
-- or nil and a message that names the file ("PATH: No such file ...").
function M.read_password(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end -- io.open's message starts with the path
  local text, rerr = f:read("a")
  f:close()
  if not text then return nil, path .. ": " .. tostring(rerr or "read failed") end
  return (text:gsub("^%s+", ""):gsub("%s+$", ""))
end

local PasswordFile = { __name = "bosk.password_file" }
PasswordFile.__index = PasswordFile

-- password_file(path[, password]) -> source, or nil, err. Without a known
-- password the file is read now and must be readable.
function M.password_file(path, password)
  local src = setmetatable({ path = path, password = password }, PasswordFile)
  if password == nil then
    local mtime, size = require("bosk.http").stat(path)
    local pw, err = M.read_password(path)
    if not pw then return nil, err end
    src.password, src.mtime, src.size = pw, mtime, size
  end
  return src
end

-- source:current() -> the password, read again whenever the file's mtime
-- or size changed (a rotated secret needs no restart, as with upstream's
-- client). A file that cannot be read keeps the last good password.
function PasswordFile:current()
  local mtime, size = require("bosk.http").stat(self.path)
  if mtime and (mtime ~= self.mtime or size ~= self.size) then
    local pw = M.read_password(self.path)
    if pw then self.password, self.mtime, self.size = pw, mtime, size end
  end
  return self.password
end

-- What a status answer means, per call; any status not listed is "error".
--   ok           the call did what it was asked
--   in_use       401 on acquire: a request id or owner conflict (upstream ErrAlreadyInUse)
--   not_found    nothing matched (none free, or no such type; see type_not_found)
--   lost         401/404/409 on release or update: the lease is not ours any more
--   unsupported  404 on GET /resources: a server without bosk's extension
local meanings = {
  ["/acquire"] = { [200] = "ok", [401] = "in_use", [404] = "not_found" },
  ["/acquirebystate"] = { [200] = "ok", [401] = "in_use", [404] = "not_found" },
  ["/release"] = { [200] = "ok", [401] = "lost", [404] = "lost" },
  ["/update"] = { [200] = "ok", [401] = "lost", [404] = "lost", [409] = "lost" },
  ["/reset"] = { [200] = "ok" },
  ["/metric"] = { [200] = "ok", [404] = "not_found" },
  ["/resources"] = { [200] = "ok", [404] = "unsupported" },
}

-- meaning(action, status) -> one of the words above
function M.meaning(action, status)
  local t = meanings[action]
  return t and t[status] or "error"
end

-- type_not_found(body, rtype) -> true when a 404 body is the server's
-- "resource type %q does not exist" for rtype (the server quotes with the
-- same C code, src/core/gojson.c, so the bytes match).
function M.type_not_found(body, rtype)
  return body ~= nil and body:find(wire.type_not_found_message(rtype), 1, true) ~= nil
end

return M
