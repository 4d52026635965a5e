-- bosk server: config reload on SIGHUP and on file change (docs/protocol.md
-- §3.7): added names appear, removed names go once unowned, a bad file
-- keeps the old config.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local function names_of(c, filters)
  local out = {}
  for _, r in ipairs(c.list(filters or {})) do out[#out + 1] = r.name end
  table.sort(out)
  return table.concat(out, ",")
end

T.test("SIGHUP: add, remove when unowned, type change", function()
  local srv = S.start(T, { config = "resources:\n- type: t\n  state: dirty\n  names: [a, b, e]\n" })
  local c = S.new(T, srv)
  T.eq(names_of(c), "a,b,e", "initial")
  T.eq(c.post("/acquirebystate", { state = "dirty", dest = "busy", owner = "o", names = "a" }), 200, "hold a")
  T.eq(c.post("/update", { name = "b", owner = "", state = "dirty" }), 400, "sanity: owner required")
  T.write_file(srv.config, "resources:\n- type: t\n  state: free\n  names: [b, c]\n- type: u\n  names: [e]\n")
  srv.proc:kill("HUP")
  T.wait_until(function() return names_of(c) == "a,b,c,e" end, 8, "c added, a kept while owned")
  local by = c.by_name{}
  T.eq(by.c.state, "free", "new name in the entry's state")
  T.eq(by.b.state, "dirty", "existing name keeps its state")
  T.eq(by.e.type, "u", "e moved to type u")
  T.eq(c.release("a", "free", "o"), 200, "release a")
  T.wait_until(function() return names_of(c) == "b,c,e" end, 8, "a deleted once released")
  -- one sync deleting c and creating d in the same type and state
  T.write_file(srv.config, "resources:\n- type: t\n  state: free\n  names: [b, d]\n")
  srv.proc:kill("HUP")
  T.wait_until(function() return names_of(c) == "b,d" end, 8, "c replaced by d, e gone")
  T.contains(srv.proc:output(), "reloading", "logged")
  S.stop(T, srv)
end)

T.test("file change triggers a reload; a bad file keeps the old config", function()
  local srv = S.start(T, { config = "resources:\n- type: t\n  names: [a]\n" })
  local c = S.new(T, srv)
  T.write_file(srv.config, "resources:\n- type: t\n  names: [a, bb]\n")
  T.wait_until(function() return names_of(c) == "a,bb" end, 8, "picked up without a signal")
  T.write_file(srv.config, "resources:\n- type: t\n  names: [a, NOPE]\n")
  T.wait_until(function() return srv.proc:output():find("reload failed", 1, true) end, 8, "failure logged")
  T.contains(srv.proc:output(), "NOPE", "names the bad name")
  T.eq(names_of(c), "a,bb", "old config kept")
  T.write_file(srv.config, "resources:\n- type: t\n  names: [a]\n")
  T.wait_until(function() return names_of(c) == "a" end, 8, "good config applied again")
  S.stop(T, srv)
end)

-- A repeated key made a running server segfault (memory storage then lost
-- every lease). Now such a file, one with an invalid value, or an alias
-- bomb, takes the "reload failed" path at once.
T.test("repeated keys and alias bombs in the watched file: answers, keeps its leases", function()
  local srv = S.start(T, { config = "resources:\n- type: t\n  names: [a, b]\n" })
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "o"), 200, "lease one")
  local held = c.by_name{}
  local owned = held.a.owner == "o" and "a" or "b"
  T.write_file(srv.config, "resources:\n- type: t\n  names: [a]\nresources:\n- type: t\n"
                           .. "  names: [x]\n  names: [a, b, c]\nResources:\n- type: t\n  names: [y]\n")
  T.wait_until(function() return srv.proc:output():find("key resources given 3 times (lines 1, 4, 8)", 1, true) end,
               8, "repeat refused")
  T.contains(srv.proc:output(), "reload failed, keeping the previous config", "failure path")
  T.eq(names_of(c), "a,b", "old config kept")
  T.write_file(srv.config, "resources:\n- type: t\n  names: [a, b, c]\n")
  T.wait_until(function() return names_of(c) == "a,b,c" end, 8, "a good file reloads")
  T.write_file(srv.config, "resources:\n- type: t\n  names: [a, b, NOPE]\n")
  T.wait_until(function() return srv.proc:output():find("NOPE", 1, true) end, 8, "failure logged")
  T.contains(srv.proc:output(), "reload failed, keeping the previous config", "failure path")
  local names = {}
  for i = 1, 1500 do names[i] = "n" .. i end
  T.write_file(srv.config, "x: &n [" .. table.concat(names, ", ") .. "]\nresources:\n"
                           .. "- &e {type: t, names: *n}\n" .. string.rep("- *e\n", 1499))
  local t0 = T.now()
  T.wait_until(function() return srv.proc:output():find("alias bomb", 1, true) end, 8, "bomb refused")
  T.ok(T.now() - t0 < 4, "refused within a reload period or so", T.now() - t0)
  T.eq(names_of(c), "a,b,c", "old config kept")
  T.eq(c.by_name{}[owned].owner, "o", "lease kept")
  T.eq(c.release(owned, "free", "o"), 200, "released by its owner")
  S.stop(T, srv)
end)

T.cleanup()
