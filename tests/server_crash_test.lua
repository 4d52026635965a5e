-- bosk server with SQLite: kill -9 during a burst of writes, restart on
-- the same database, and find every acknowledged change, nothing lost,
-- nothing duplicated.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local N = 400

-- The writer: acquire, then set user data, logging each acknowledged
-- change (one line, flushed) before the next request.
local writer = [[
local http = require "bosk.http"
local url, log = arg[1], assert(io.open(arg[2], "w"))
local conn = http.new()
for i = 1, 100000 do
  local status, _, body = conn:request{ method = "POST",
    url = url .. "/acquire?dest=busy&owner=w&state=free&type=t" }
  if status ~= 200 then break end
  local name = body:match('"name":"([^"]+)"')
  log:write("A ", name, "\n") log:flush()
  status = conn:request{ method = "POST", url = url .. "/update?name=" .. name .. "&owner=w&state=busy",
    body = '{"i":"' .. i .. '"}' }
  if status ~= 200 then break end
  log:write("U ", name, " ", i, "\n") log:flush()
end
]]

T.test("kill -9 mid-burst: every acknowledged change survives", function()
  local dir = T.tmpdir()
  local names = {}
  for i = 1, N do names[#names + 1] = "r" .. i end
  local cfg = "resources:\n- type: t\n  state: free\n  names: [" .. table.concat(names, ", ") .. "]\n"
  local db = "sqlite:" .. dir .. "/bosk.db"
  local srv = S.start(T, { config = cfg, storage = db })
  local script = T.write_file(dir .. "/writer.lua", writer)
  local log = dir .. "/acks"
  local w = T.spawn{ T.bosk, "run", script, srv.url, log }
  T.wait_until(function()
    local s = T.read_file(log) or ""
    local _, n = s:gsub("\nU ", "")
    return n >= 50
  end, 20, "50 acknowledged updates")
  srv.proc:kill("KILL")
  T.ok(w:wait(10) ~= nil, "writer stopped")
  local acked, updates = {}, {}
  for line in (T.read_file(log) or ""):gmatch("[^\n]+") do
    local kind, name, i = line:match("^(%u) (%S+) ?(%d*)$")
    if kind == "A" then acked[#acked + 1] = name end
    if kind == "U" then updates[name] = i end
  end
  T.ok(#acked >= 50 and #acked < N, "the kill landed mid-burst", #acked)

  local again = S.start(T, { config_path = srv.config, storage = db })
  local c = S.new(T, again)
  local all = c.list{ type = "t" }
  T.eq(#all, N, "no resource lost or duplicated")
  local seen, held = {}, 0
  for _, r in ipairs(all) do
    T.ok(not seen[r.name], "unique name", r.name)
    seen[r.name] = r
    if r.owner == "w" then held = held + 1 end
  end
  for _, name in ipairs(acked) do
    T.eq({ seen[name].owner, seen[name].state }, { "w", "busy" }, "acknowledged acquire of " .. name)
  end
  for name, i in pairs(updates) do T.eq(seen[name].userdata.i, i, "acknowledged update of " .. name) end
  T.ok(held == #acked or held == #acked + 1, "at most the one in-flight acquire beyond the log", held)
  -- a second server on the same database refuses to start
  local _, err, code = T.run({ "server", "--config", srv.config, "--storage", db,
                               "--listen", "127.0.0.1:" .. S.free_port(T) }, { timeout = 10 })
  T.eq(code, 1, "second server exit status")
  T.contains(err, "database is locked", "second server message")
  -- the restarted server keeps working on the same database
  T.eq(c.acquire("t", "free", "busy", "after"), 200, "acquire after restart")
  S.stop(T, again)
end)

T.cleanup()
