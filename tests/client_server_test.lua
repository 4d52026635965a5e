-- client_server_test: the boskos client against the real `bosk server`
-- (memory storage): a lease's whole life, the status mapping as a real
-- server produces it, and byte-exact JSON round trips. Skipped when the
-- server cannot start.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local boskos = require "boskos"
local wire = require "bosk.wire"

local sleeps = {}
boskos.sleep = function(s) sleeps[#sleeps + 1] = s end
boskos.poll_interval = 0.05

local CONFIG = [[
resources:
- type: project
  state: free
  names: [p1, p2]
- type: cluster
  state: dirty
  names: [c1]
]]

local ok, server = pcall(T.start_server, { config = CONFIG })
if not ok then
  T.skip("client against bosk server", "bosk server did not start: " .. tostring(server):sub(1, 200))
  T.cleanup()
  return
end

local function client(owner, extra)
  local opts = { owner = owner, url = server.url, dialer = { retry_count = 0, retry_sleep = 0.01, timeout = 2 } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(boskos.client(opts))
end

T.test("a lease's life: acquire, heartbeat with user data, release", function()
  sleeps = {}
  local c = client("alice")
  local r = assert(c:acquire("project", boskos.FREE, boskos.BUSY))
  T.eq({ r.type, r.state, r.owner }, { "project", "busy", "alice" })
  T.match(r.lastupdate, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", "RFC 3339 UTC")
  T.ok(c:has_resource(), "held")
  T.eq(c:update_one(r.name, boskos.BUSY, { info = "zone: us-east1\n" }), true)
  T.eq(c:sync_all(), true, "heartbeat")
  local list = assert(c:list{ owner = "alice" })
  T.eq(#list, 1, "one resource owned")
  T.eq(list[1].userdata:extract("info"), { zone = "us-east1" }, "user data stored on the server")
  local one = assert(c:list{ name = r.name })
  T.eq({ #one, one[1].name }, { 1, r.name }, "list{name=} filters by name")
  T.eq(#assert(c:list{ name = "nosuch" }), 0, "no such name: empty list")
  T.eq(c:release_one(r.name, boskos.FREE), true)
  T.eq(c:has_resource(), false)
  T.eq(#sleeps, 0, "no retries on the happy path")
end)

T.test("a real server's answers map to the sentinels", function()
  sleeps = {}
  local a, b = client("alice"), client("bob", { distinguish_not_found = true })
  local p = assert(a:acquire("project", "free", "busy"))
  local q = assert(a:acquire("project", "free", "busy"))
  T.ok(select(2, b:acquire("project", "free", "busy")) == boskos.ErrNotFound, "none free")
  T.ok(select(2, b:acquire("nosuchtype", "free", "busy")) == boskos.ErrTypeNotFound, "unknown type")
  local r, err = b:acquire_wait(boskos.context{ timeout = 0.2 }, "project", "free", "busy")
  T.ok(r == nil and err == boskos.ErrNotFound, "wait ends with the context", err)
  local okr, rerr = b:release(p.name, "free")
  T.eq(okr, nil)
  T.eq(tostring(rerr), "status 401 Unauthorized, statusCode 401 releasing " .. p.name, "owner mismatch retried")
  T.eq(sleeps, { 1, 4, 9 })
  local _, uerr = b:update("nosuch", "busy")
  T.eq(tostring(uerr), "status 404 Not Found, status code 404 updating nosuch")
  assert(a:release_all("free"))
  r = assert(b:acquire_wait(boskos.background(), "project", "free", "busy"))
  T.ok(r.name == p.name or r.name == q.name, "acquired once free")
  assert(b:release_all("free"))
end)

T.test("acquire_by_state, reset and metric against the server", function()
  sleeps = {}
  local c = client("carol")
  local list = assert(c:acquire_by_state("dirty", "cleaning", { "c1" }))
  T.eq({ #list, list[1].name, list[1].state }, { 1, "c1", "cleaning" })
  T.ok(select(2, c:acquire_by_state("dirty", "cleaning", { "c1" })) == boskos.ErrNotFound, "already taken")
  local m = assert(c:metric("cluster"))
  T.eq(m.type, "cluster")
  T.eq(m.current.cleaning, 1)
  T.eq(m.owners.carol, 1)
  T.eq(assert(c:reset("cluster", "cleaning", 0, "dirty")), { c1 = "carol" }, "reset reports the previous owner")
  T.eq(assert(c:reset("cluster", "cleaning", "1h", "dirty")), {}, "nothing left to reset")
  T.eq(assert(c:metric("cluster")).owners[""], 1, "free again")
end)

T.test("the server's resource JSON round-trips byte for byte", function()
  local status, body = T.http("POST", server.url .. "/acquire?type=project&state=free&dest=busy&owner=dave")
  T.eq(status, 200)
  local r = assert(wire.decode_resource(body))
  T.eq(wire.encode_resource(r), body, "re-encoded")
  local c = client("dave")
  T.eq(c:update(r.name, "busy", boskos.userdata{ ["a<b"] = "x&y", n = "1" }), true)
  local _, listed = T.http("GET", server.url .. "/resources?owner=dave")
  local list = assert(wire.decode_resources(listed))
  T.eq(list[1].userdata:to_map(), { ["a<b"] = "x&y", n = "1" })
  assert(c:release(r.name, "free"))
end)

T.cleanup()
