-- bosk janitor's toBeDeleted -> tombstone policies: the resources a parent
-- lists in its leasedResources user data are released dirty and the entry
-- is cleared before the parent is cleaned and released (upstream cleaner).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local cjson = require "cjson"

local srv = J.server([[
resources:
- type: parent
  state: free
  names: [parent-1, parent-2]
- type: child
  state: free
  names: [child-1, child-2, child-3]
]])
local TYPES = { "parent", "child" }

-- What mason does: children leased, then parked in a state named after the
-- parent; the parent lists them and is released toBeDeleted.
local function build(parent, children, listing)
  for _, c in ipairs(children) do
    T.eq(J.post(srv, "/acquirebystate?state=free&dest=leased&owner=mason&names=" .. c), 200, "take " .. c)
    T.eq(J.post(srv, "/release?name=" .. c .. "&dest=" .. parent .. "&owner=mason"), 200, "park " .. c)
  end
  T.eq(J.post(srv, "/acquirebystate?state=free&dest=leased&owner=mason&names=" .. parent), 200, "take " .. parent)
  T.eq(J.post(srv, "/update?name=" .. parent .. "&owner=mason&state=leased",
              cjson.encode({ leasedResources = listing, other = "kept" })), 200, "user data")
  T.eq(J.post(srv, "/release?name=" .. parent .. "&dest=toBeDeleted&owner=mason"), 200, "to delete")
end

T.test("leasedResources are released dirty, the entry cleared, the parent tombstoned", function()
  J.check_counts(srv, TYPES, function()
    build("parent-1", { "child-1", "child-2" }, "- child-1\n- child-2\n")
    build("parent-2", { "child-3" }, '["child-3"]')
    local dir = T.tmpdir()
    local p = J.policy(string.format([[
      janitor.policy{ type = "parent", from = boskos.TO_BE_DELETED, to = boskos.TOMBSTONE,
        clean = function(res)
          local f = io.open(%q .. "/" .. res.name, "w")
          f:write(tostring(res.userdata:get("leasedResources")), "|", tostring(res.userdata:get("other")))
          f:close()
          return true
        end }
    ]], dir))
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status; stderr:\n" .. err)
    T.eq(J.states(srv, "child"), { ["child-1"] = "dirty/-", ["child-2"] = "dirty/-", ["child-3"] = "dirty/-" }, "children")
    T.eq(J.states(srv, "parent"), { ["parent-1"] = "tombstone/-", ["parent-2"] = "tombstone/-" }, "parents")
    for _, r in ipairs(J.resources(srv, "parent")) do
      T.eq(r.userdata, { other = "kept" }, r.name .. " user data")
      T.eq(T.read_file(dir .. "/" .. r.name), "nil|kept", "clean saw the entry cleared")
    end
    T.match(err, 'released leased resource" type=child name=child%-1 .-parent=parent%-1', "log")
  end)
end)

T.test("a parent without leasedResources is simply cleaned", function()
  J.check_counts(srv, TYPES, function()
    local p0 = J.policy("janitor.policy{ type = 'parent', from = 'tombstone', to = 'toBeDeleted', clean = function() return true end }")
    T.eq(select(3, J.once(srv, {}, { p0 })), 0, "parents back to toBeDeleted")
    local p = J.policy("janitor.policy{ type = 'parent', from = 'toBeDeleted', to = 'tombstone', clean = function() return true end }")
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status; stderr:\n" .. err)
    T.eq(J.states(srv, "parent"), { ["parent-1"] = "tombstone/-", ["parent-2"] = "tombstone/-" }, "parents")
    T.eq(J.states(srv, "child"), { ["child-1"] = "dirty/-", ["child-2"] = "dirty/-", ["child-3"] = "dirty/-" }, "children untouched")
  end)
end)

srv:stop()

-- --once: the recycle releases children dirty while the run goes on. The
-- child lane (dirty -> free) has surely finished by then: parent "pa" (no
-- leasedResources) takes a second to clean and the parent policy cleans one
-- at a time, so "pb", the parent with children, is leased and recycled only
-- afterwards. The released children are leasable now, so the finished lane
-- is woken and they are cleaned in this run.
local function late_children(child_clean)
  local srv2 = J.server([[
resources:
- type: parent
  state: toBeDeleted
  names: [pa]
- type: parent
  state: free
  names: [pb]
- type: child
  state: free
  names: [child-1, child-2]
- type: child
  state: dirty
  names: [child-3]
]])
  local function post(path, body) T.eq(J.post(srv2, path, body), 200, path) end
  for _, c in ipairs({ "child-1", "child-2" }) do
    post("/acquirebystate?state=free&dest=leased&owner=mason&names=" .. c)
    post("/release?name=" .. c .. "&dest=pb&owner=mason")
  end
  post("/acquirebystate?state=free&dest=leased&owner=mason&names=pb")
  post("/update?name=pb&owner=mason&state=leased", cjson.encode({ leasedResources = "- child-1\n- child-2\n" }))
  post("/release?name=pb&dest=toBeDeleted&owner=mason")   -- behind pa
  local dir = T.tmpdir()
  return srv2, dir, J.policy(string.format([[
    local dir = %q
    janitor.policy{ type = "parent", from = boskos.TO_BE_DELETED, to = boskos.TOMBSTONE, concurrency = 1,
      clean = function(res)
        if res.name == "pa" then janitor.exec{ "sleep", "1" } end
        return true
      end }
    janitor.policy{ type = "child", from = boskos.DIRTY, via = boskos.CLEANING, to = boskos.FREE,
      on_failure = boskos.DIRTY,
      clean = function(res)
        local f = io.open(dir .. "/" .. res.name, "a"); f:write("x"); f:close()
        %s
      end }
  ]], dir, child_clean))
end

T.test("--once: children released after the dirty lane finished are cleaned too", function()
  local srv2, dir, p = late_children("return true")
  local out, err, code = J.once(srv2, {}, { p })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  T.eq(J.states(srv2, "child"), { ["child-1"] = "free/-", ["child-2"] = "free/-", ["child-3"] = "free/-" }, "children")
  T.eq(J.states(srv2, "parent"), { pa = "tombstone/-", pb = "tombstone/-" }, "parents")
  for _, c in ipairs({ "child-1", "child-2", "child-3" }) do
    T.eq(T.read_file(dir .. "/" .. c), "x", c .. " cleaned exactly once")
  end
  T.match(out, "child%s+success%s+3\n", "summary")
  T.contains(err, 'msg="lane revived" type=child', "the finished lane was woken")
  srv2:stop()
end)

-- The same, with child-3 failing back to dirty before the lane finishes:
-- when the lane is woken, child-3 (already tried in this run) is dirty too.
-- It is not tried again, and the released children are still cleaned.
T.test("--once: a child that failed earlier is not retried; the released ones are cleaned", function()
  local srv2, dir, p = late_children('if res.name == "child-3" then return false end return true')
  local out, err, code = J.once(srv2, {}, { p })
  T.eq(code, 1, "exit status (child-3 failed); stderr:\n" .. err)
  T.eq(J.states(srv2, "child"), { ["child-1"] = "free/-", ["child-2"] = "free/-", ["child-3"] = "dirty/-" }, "children")
  for _, c in ipairs({ "child-1", "child-2", "child-3" }) do
    T.eq(T.read_file(dir .. "/" .. c), "x", c .. " tried exactly once")
  end
  T.match(out, "child%s+success%s+2\n", "summary: successes")
  T.match(out, "child%s+failed%s+1\n", "summary: failures")
  srv2:stop()
end)
