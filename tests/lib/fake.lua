-- fake.lua: drives tests/fake_server.py, the scriptable HTTP server of the
-- client tests. fake.start(T) -> f with f.url, f.port and:
--   f:script{resp, ...}  queue responses ({status=, body=, delay=, drop=, ...})
--   f:default(resp)      the answer when the queue is empty (resp.path: only for that path)
--   f:requests()         recorded requests (method, path, query, headers, body, conn)
--   f:reset()            clear everything
--   f:client(opts)       reset, then a boskos client of it (owner "me", fast dialer)
--   f:stop()
--   F.res(name)          a resource's JSON as the server sends it (type t, busy, me)
-- Control calls go over their own connection, so they never share one with
-- the client under test.
local http = require "bosk.http"
local cjson = require("cjson").new()
cjson.encode_empty_table_as_object = nil

local F = {}
F.__index = F

function F.start(T)
  local proc = T.spawn({ "python3", T.root .. "/tests/fake_server.py", "0" })
  local port = T.wait_until(function()
    if not proc:alive() and proc:wait(0.1) then error("fake server died:\n" .. proc:output()) end
    return tonumber(proc:output():match("^(%d+)\n"))
  end, 10, "fake server port")
  return setmetatable({ T = T, proc = proc, port = port, url = "http://127.0.0.1:" .. port,
                        conn = http.new() }, F)
end

-- F.free_port(T) -> a port nothing listens on now (the kernel's choice;
-- T.free_port cannot tell a busy port under dash).
function F.free_port(T)
  local out = T.sh([[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])']])
  return assert(tonumber(out), "no free port: " .. out)
end

function F:call(method, path, body)
  local status, line, resp = self.conn:request{ method = method, url = self.url .. path, body = body,
                                                timeout = 10, connect_timeout = 5 }
  assert(status == 200, "fake server control " .. path .. ": " .. tostring(line) .. " " .. tostring(resp))
  return resp
end

local function encode_list(list)
  local parts = {}
  for i, r in ipairs(list) do parts[i] = cjson.encode(r) end
  return "[" .. table.concat(parts, ",") .. "]"
end

function F:script(list) self:call("POST", "/_script", encode_list(list)) end
function F:default(resp) self:call("POST", "/_default", next(resp) and cjson.encode(resp) or "{}") end
function F:requests() return cjson.decode(self:call("GET", "/_requests")) end
function F:reset() self:call("POST", "/_reset") end
function F:last() local r = self:requests() return r[#r] end
function F:stop() self.conn:close() self.proc:stop() end

local RES = '{"type":"t","name":"%s","state":"busy","owner":"me","lastupdate":"2020-01-01T00:00:00Z","userdata":{}}'
function F.res(name) return string.format(RES, name) end

-- f:client(opts) -> client; opts' owner, url and dialer default to "me",
-- this server and one quick connect retry. Resets the server first.
function F:client(opts)
  self:reset()
  opts = opts or {}
  opts.owner = opts.owner or "me"
  opts.url = opts.url or self.url
  opts.dialer = opts.dialer or { retry_count = 1, retry_sleep = 0.01, timeout = 2 }
  return assert(require("boskos").client(opts))
end

return F
