-- bosk server: request-id priority (docs/protocol.md §3.3) and dynamic
-- resources (§3.6) over real HTTP.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

T.test("request ids: FIFO ranks, id-less requests wait behind the live queue", function()
  local srv = S.start(T, { config = "resources:\n- type: p\n  state: free\n  names: [p1]\n" })
  local c = S.new(T, srv)
  T.eq(c.acquire("p", "free", "busy", "holder"), 200, "hold p1")
  T.eq(c.acquire("p", "free", "busy", "a", "ra"), 404, "a queued")
  T.eq(c.acquire("p", "free", "busy", "b", "rb"), 404, "b queued")
  T.eq(c.release("p1", "free", "holder"), 200, "release")
  T.eq(c.acquire("p", "free", "busy", "c"), 404, "id-less waits behind a and b")
  T.eq(c.acquire("p", "free", "busy", "b", "rb"), 404, "b is second")
  local status, body = c.acquire("p", "free", "busy", "a", "ra")
  T.eq({ status, S.decode(body).owner }, { 200, "a" }, "a is first")
  T.eq(c.release("p1", "free", "a"), 200, "release")
  T.eq(c.acquire("p", "free", "busy", "b", "rb"), 200, "b next")
  T.eq(c.release("p1", "free", "b"), 200, "release")
  T.eq(c.acquire("p", "free", "busy", "c"), 200, "queue empty: id-less served")
  T.eq(c.release("p1", "free", "c"), 200, "release")
  local _, m = c.get("/metrics")
  T.match(m, 'boskos_acquire_duration_seconds_count{dest="busy",has_request_id="true",state="free",type="p"} 2', "histogram")
  S.stop(T, srv)
end)

T.test("request ids expire after --request-ttl", function()
  local srv = S.start(T, { config = "resources:\n- type: p\n  state: free\n  names: [p1]\n",
                              args = { "--request-ttl", "1s" } })
  local c = S.new(T, srv)
  T.eq(c.acquire("p", "free", "busy", "holder"), 200, "hold p1")
  T.eq(c.acquire("p", "free", "busy", "a", "ra"), 404, "a queued")
  T.eq(c.acquire("p", "free", "busy", "b", "rb"), 404, "b queued")
  T.eq(c.release("p1", "free", "holder"), 200, "release")
  T.sleep(1.3)
  T.eq(c.acquire("p", "free", "busy", "b", "rb"), 200, "a expired: b (refreshed) is first")
  S.stop(T, srv)
end)

T.test("dynamic: min-count top-up, creation on a new request id, max-count", function()
  local srv = S.start(T, { config = [[
resources:
- type: dyn
  state: free
  min-count: 1
  max-count: 2
- type: lazy
  state: dirty
  max-count: 1
]] })
  local c = S.new(T, srv)
  local list = c.list{ type = "dyn" }
  T.eq(#list, 1, "topped up to min-count")
  T.match(list[1].name, UUID, "UUIDv4 name")
  T.eq({ list[1].state, list[1].owner, list[1].userdata }, { "free", "", {} }, "fresh resource")
  T.eq(list[1]["expiration-date"], nil, "no expiration date")
  T.eq(c.acquire("dyn", "free", "busy", "o"), 200, "take it")
  T.eq(c.acquire("dyn", "free", "busy", "o"), 404, "none left")
  T.eq(#c.list{ type = "dyn" }, 1, "no creation without a request id")
  T.eq(c.acquire("dyn", "free", "busy", "o", "r1"), 404, "new request id: still 404")
  T.eq(#c.list{ type = "dyn" }, 2, "but one was created")
  T.eq(c.acquire("dyn", "free", "busy", "o", "r1"), 200, "r1 gets it")
  T.eq(c.acquire("dyn", "free", "busy", "o", "r2"), 404, "at max-count")
  T.eq(#c.list{ type = "dyn" }, 2, "no creation past max-count")
  -- quirk 7: empty dynamic type answers type-not-found, and creates with a new id
  local status, body = c.acquire("lazy", "dirty", "busy", "o")
  T.eq({ status, body }, { 404, 'Acquire failed: resource type "lazy" does not exist\n' }, "empty type")
  status, body = c.acquire("lazy", "dirty", "busy", "o", "x1")
  T.eq({ status, body }, { 404, 'Acquire failed: resource type "lazy" does not exist\n' }, "still type-not-found")
  T.eq(#c.list{ type = "lazy" }, 1, "created")
  T.eq(c.acquire("lazy", "dirty", "busy", "o", "x1"), 200, "x1 gets it")
  S.stop(T, srv)
end)

T.test("dynamic: lifespan expiry -> toBeDeleted, tombstone deleted, top-up", function()
  local srv = S.start(T, { config = [[
resources:
- type: dyn
  state: free
  min-count: 2
  max-count: 2
  lifespan: 1s
]], args = { "--sync-period", "300ms" } })
  local c = S.new(T, srv)
  local _, body = c.acquire("dyn", "free", "busy", "o")
  local name = S.decode(body).name
  T.eq(c.release(name, "free", "o"), 200, "release")
  local r = c.by_name{ type = "dyn" }[name]
  T.ok(r["expiration-date"], "release set an expiration date", r)
  T.wait_until(function() return c.by_name{ type = "dyn" }[name].state == "toBeDeleted" end, 8, "expiry")
  T.eq(#c.list{ type = "dyn" }, 2, "being deleted still counts")
  -- the cleaner's part: toBeDeleted -> cleaning -> tombstone
  local status, b2 = c.acquire("dyn", "toBeDeleted", "cleaning", "cleaner")
  T.eq({ status, S.decode(b2).name }, { 200, name }, "cleaner takes it")
  T.eq(c.release(name, "tombstone", "cleaner"), 200, "tombstone")
  T.wait_until(function() return c.by_name{ type = "dyn" }[name] == nil end, 8, "tombstone deleted")
  T.wait_until(function() return #c.list{ type = "dyn" } == 2 end, 8, "topped up again")
  S.stop(T, srv)
end)

T.test("dynamic: lowering max-count marks idle ones toBeDeleted, names descending", function()
  local srv = S.start(T, { config = "resources:\n- type: dyn\n  min-count: 3\n  max-count: 3\n" })
  local c = S.new(T, srv)
  local names = {}
  for _, r in ipairs(c.list{ type = "dyn" }) do names[#names + 1] = r.name end
  table.sort(names)
  T.eq(#names, 3, "three")
  T.write_file(srv.config, "resources:\n- type: dyn\n  min-count: 1\n  max-count: 1\n")
  srv.proc:kill("HUP")
  T.wait_until(function()
    local by = c.by_name{ type = "dyn" }
    return by[names[3]].state == "toBeDeleted" and by[names[2]].state == "toBeDeleted"
  end, 8, "two highest names marked")
  T.eq(c.by_name{ type = "dyn" }[names[1]].state, "free", "lowest kept")
  -- removing the type drains it: the lifecycle stays until nothing is left
  T.write_file(srv.config, "resources:\n- type: other\n  names: [x]\n")
  srv.proc:kill("HUP")
  T.wait_until(function() return c.by_name{}["x"] end, 8, "new config applied")
  T.wait_until(function() return c.by_name{ type = "dyn" }[names[1]].state == "toBeDeleted" end, 8, "drained")
  for _, n in ipairs(names) do
    T.eq(c.post("/acquirebystate", { state = "toBeDeleted", dest = "cleaning", owner = "cl", names = n }), 200, "clean " .. n)
    T.eq(c.release(n, "tombstone", "cl"), 200, "tombstone " .. n)
  end
  T.wait_until(function() return #c.list{ type = "dyn" } == 0 end, 8, "all deleted, none re-created")
  T.sleep(0.3)
  T.eq(#c.list{ type = "dyn" }, 0, "the removed lifecycle creates nothing")
  S.stop(T, srv)
end)

T.cleanup()
