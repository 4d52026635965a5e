-- Helpers for the bosk server tests: query building, POST/GET shortcuts
-- over the curl CLI (T.http), and JSON decoding with cjson.
local cjson = require "cjson"
local S = {}

local function escape(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end
S.escape = escape

-- S.query{k = v, ...} -> "?k=v&..." with sorted keys (as the Go client sends).
function S.query(params)
  local keys = {}
  for k in pairs(params or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = escape(k) .. "=" .. escape(params[k]) end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

function S.new(T, srv)
  local c = {}
  function c.post(path, params, body, extra)
    return T.http("POST", srv.url .. path .. S.query(params), body, extra)
  end
  function c.get(path, params, extra)
    return T.http("GET", srv.url .. path .. S.query(params), nil, extra)
  end
  -- list(filters) -> array of resources (decoded)
  function c.list(filters)
    local status, body = c.get("/resources", filters)
    assert(status == 200, "GET /resources: " .. tostring(status) .. " " .. body)
    return cjson.decode(body)
  end
  function c.by_name(filters)
    local out = {}
    for _, r in ipairs(c.list(filters)) do out[r.name] = r end
    return out
  end
  function c.acquire(type, state, dest, owner, rid)
    return c.post("/acquire", { type = type, state = state, dest = dest, owner = owner, request_id = rid })
  end
  function c.release(name, dest, owner)
    return c.post("/release", { name = name, dest = dest, owner = owner })
  end
  return c
end

-- S.free_port(T) -> a port the kernel just handed out (bind to port 0).
function S.free_port(T)
  local out = T.sh([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
  return assert(tonumber(out), "no free port: " .. out)
end

-- S.start(T, opts) -> T.start_server(opts) on a kernel-chosen port, retried
-- (3 times) if another process took the port in between.
function S.start(T, opts)
  opts = opts or {}
  local last
  for _ = 1, 3 do
    opts.port = S.free_port(T)
    local ok, srv = pcall(T.start_server, opts)
    if ok then return srv end
    last = srv
    if not tostring(srv):find("Address already in use", 1, true) then break end
  end
  error(last, 2)
end

-- S.stop(T, srv): SIGTERM; the server must exit 0 and its log must hold no
-- sanitizer report (so ASan/UBSan findings in the server fail the test).
function S.stop(T, srv)
  local code = srv:stop()
  local log = srv.proc:output()
  T.ok(not log:find("Sanitizer", 1, true) and not log:find("runtime error", 1, true), "sanitizer report", log)
  T.eq(code, 0, "server exit status")
  return code
end

function S.decode(s) return cjson.decode(s) end

-- A resource JSON's lastupdate replaced by T, for exact comparisons.
function S.mask_times(s)
  return (s:gsub('"(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ)"', '"T"'))
end

function S.header(headers, name)
  for line in headers:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k and k:lower() == name:lower() then return v end
  end
  return nil
end

return S
