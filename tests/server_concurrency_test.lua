-- bosk server under concurrent clients: several processes acquire, prove
-- ownership with an update, and release, over few resources. If two
-- clients ever held one resource, one of them would see its update or
-- release refused (401/409). At the end nothing is lost or left held.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local WORKERS, ROUNDS = 6, 150

local worker = [[
local http = require "bosk.http"
local url, owner, rounds, out = arg[1], arg[2], tonumber(arg[3]), arg[4]
local conn = http.new()
local got, misses, bad = 0, 0, {}
for _ = 1, rounds * 20 do
  if got >= rounds then break end
  local status, _, body = conn:request{ method = "POST",
    url = url .. "/acquire?dest=busy&owner=" .. owner .. "&state=free&type=c" }
  if status == 200 then
    got = got + 1
    local name = body:match('"name":"([^"]+)"')
    if not body:find('"owner":"' .. owner .. '"', 1, true) then bad[#bad + 1] = "acquire body " .. body end
    local s2 = conn:request{ method = "POST", url = url .. "/update?name=" .. name .. "&owner=" .. owner .. "&state=busy",
      body = '{"holder":"' .. owner .. '"}' }
    if s2 ~= 200 then bad[#bad + 1] = "update " .. name .. " " .. tostring(s2) end
    local s3 = conn:request{ method = "POST", url = url .. "/release?dest=free&name=" .. name .. "&owner=" .. owner }
    if s3 ~= 200 then bad[#bad + 1] = "release " .. name .. " " .. tostring(s3) end
  elseif status == 404 then
    misses = misses + 1
  else
    bad[#bad + 1] = "acquire status " .. tostring(status)
  end
end
local f = assert(io.open(out, "w"))
f:write(got, " ", misses, "\n", table.concat(bad, "\n"))
f:close()
]]

T.test("concurrent acquire/update/release: never two owners, none lost", function()
  local srv = S.start(T, { config = "resources:\n- type: c\n  state: free\n  names: [c1, c2, c3, c4]\n" })
  local c = S.new(T, srv)
  local dir = T.tmpdir()
  local script = T.write_file(dir .. "/worker.lua", worker)
  local procs = {}
  for i = 1, WORKERS do
    procs[i] = T.spawn{ T.bosk, "run", script, srv.url, "w" .. i, tostring(ROUNDS), dir .. "/out" .. i }
  end
  local total, misses = 0, 0
  for i, p in ipairs(procs) do
    T.eq(p:wait(120), 0, "worker " .. i .. " exit status")
    local out = T.read_file(dir .. "/out" .. i)
    local got, miss, rest = out:match("^(%d+) (%d+)\n(.*)$")
    T.eq(rest, "", "worker " .. i .. " saw no conflict")
    T.eq(tonumber(got), ROUNDS, "worker " .. i .. " rounds")
    total, misses = total + tonumber(got), misses + tonumber(miss)
  end
  T.eq(total, WORKERS * ROUNDS, "leases")
  local all = c.list{ type = "c" }
  T.eq(#all, 4, "none lost")
  for _, r in ipairs(all) do T.eq({ r.owner, r.state }, { "", "free" }, r.name .. " free again") end
  local _, metric = c.get("/metric", { type = "c" })
  T.eq(metric, '{"type":"c","current":{"free":4},"owner":{"":4}}', "metric counts")
  local _, m = c.get("/metrics")
  T.match(m, 'boskos_http_request_duration_seconds_count{method="POST",path="/release",status="200",user_agent="[^"]*"} ' .. total, "release count")
  S.stop(T, srv)
end)

T.cleanup()
