-- The kill -9 tests of bosk server's SQLite storage (server_crash_test,
-- server_group_commit_test) share this: a pool of N resources on a fresh
-- database, a writer script that logs each acknowledged change before its
-- next request, and the reader of that log.
--
--   local B = require("burst")(T, S)
--   local srv, db, script = B.start(dir, n)
--   T.spawn{ T.bosk, "run", script, srv.url, owner, log }
--   local acked, updates = B.read_log(log)
return function(T, S)
  local B = {}

  -- The writer (args: url, owner, log): acquire, then update the user
  -- data, logging "A name" and "U name i" (one flushed line each) once
  -- answered 200.
  B.WRITER = [[
local http = require "bosk.http"
local url, owner, log = arg[1], arg[2], assert(io.open(arg[3], "w"))
local conn = http.new()
for i = 1, 100000 do
  local status, _, body = conn:request{ method = "POST",
    url = url .. "/acquire?dest=busy&owner=" .. owner .. "&state=free&type=t" }
  if status ~= 200 then break end
  local name = body:match('"name":"([^"]+)"')
  log:write("A ", name, "\n") log:flush()
  status = conn:request{ method = "POST",
    url = url .. "/update?name=" .. name .. "&owner=" .. owner .. "&state=busy",
    body = '{"i":"' .. i .. '"}' }
  if status ~= 200 then break end
  log:write("U ", name, " ", i, "\n") log:flush()
end
]]

  -- start(dir, n) -> server, storage flag value, path of the writer script:
  -- bosk server on dir/bosk.db with free resources r1..rn of type t.
  function B.start(dir, n)
    local names = {}
    for i = 1, n do names[#names + 1] = "r" .. i end
    local cfg = "resources:\n- type: t\n  state: free\n  names: [" .. table.concat(names, ", ") .. "]\n"
    local db = "sqlite:" .. dir .. "/bosk.db"
    return S.start(T, { config = cfg, storage = db }), db, T.write_file(dir .. "/writer.lua", B.WRITER)
  end

  -- read_log(path) -> names whose acquire was acknowledged (in order),
  -- {name = the last acknowledged update's i}
  function B.read_log(path)
    local acked, updates = {}, {}
    for line in (T.read_file(path) or ""):gmatch("[^\n]+") do
      local kind, name, i = line:match("^(%u) (%S+) ?(%d*)$")
      if kind == "A" then acked[#acked + 1] = name end
      if kind == "U" then updates[name] = i end
    end
    return acked, updates
  end

  return B
end
