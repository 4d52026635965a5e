-- Health checks of the free pool (issue 15, item 6; docs/janitor-health.md)
-- against a real bosk server and a real janitor: healthy resources go back
-- free and the others to on_failure with the reason in their user data;
-- never more than half of the free pool leased at once (seen by the checks
-- themselves and in the server's listing); checks share the policy's
-- concurrency and --pool-size with cleanings; each resource checked once
-- per round; a check past the policy's timeout fails; SIGTERM and kill -9
-- strand nothing; a breaker-open type is not checked; --once checks
-- nothing; bad fields are refused at load. Every case ends with
-- J.settled: the janitor gone, no lease held, nothing left running.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)

local srv = J.server(string.format([[
resources:
- type: hc
  state: free
  names: %s
- type: lim
  state: free
  names: %s
- type: lim1
  state: free
  names: %s
- type: hg
  state: free
  names: [hg-1, hg-2]
- type: tm
  state: free
  names: [tm-1, tm-2, tm-3, tm-4]
- type: tq
  state: free
  names: [tq-1, tq-2]
- type: cr
  state: free
  names: [cr-1, cr-2]
- type: bk
  state: free
  names: [bk-1, bk-2, bk-3, bk-4]
- type: bkd
  state: free
  names: [bkd-1, bkd-2, bkd-3, bkd-4, bk-dirty]
- type: fl
  state: free
  names: [fl-1, fl-2, fl-3, fl-4]
- type: on
  state: free
  names: [on-1, on-2]
- type: ond
  state: dirty
  names: [on-dirty]
]], J.names("hc", 6), J.names("lim", 6), J.names("lim1", 4)))

local LAST = "bosk.janitor/last-failure"

-- Lua run by the health functions (in the janitor's workers): enter()
-- marks the check active and appends "type name active_all active_type"
-- to DIR/log in one write; leave() unmarks it.
local HELPERS = [[
local DIR = "%s"
local function count(prefix)
  local n, ls = 0, io.popen("ls " .. DIR)
  for l in ls:lines() do if l:sub(1, #prefix) == prefix then n = n + 1 end end
  ls:close()
  return n
end
local function enter(res)
  local f = assert(io.open(DIR .. "/active-" .. res.type .. "-" .. res.name, "w")) f:close()
  local line = string.format("%%s %%s %%d %%d\n", res.type, res.name, count("active-"), count("active-" .. res.type .. "-"))
  local log = assert(io.open(DIR .. "/log", "a")) log:write(line) log:close()
end
local function leave(res) os.remove(DIR .. "/active-" .. res.type .. "-" .. res.name) end
]]

local function policy(dir, text)
  return J.policy(string.format(HELPERS, dir) .. text)
end

-- The checks logged so far: {type =, name =, all =, same =} in order.
local function checks(dir, rtype)
  local out = {}
  for t, n, all, same in (T.read_file(dir .. "/log") or ""):gmatch("(%S+) (%S+) (%d+) (%d+)\n") do
    if rtype == nil or t == rtype then
      out[#out + 1] = { type = t, name = n, all = tonumber(all), same = tonumber(same) }
    end
  end
  return out
end

local function rounds_done(j, rtype)
  local out = {}
  for line in j:output():gmatch("[^\n]+") do
    if line:find("msg=\"health round done\"", 1, true) and line:find("type=" .. rtype .. " ", 1, true) then
      out[#out + 1] = tonumber(line:match("checked=(%d+)"))
    end
  end
  return out
end

-- How many resources of rtype the janitor holds now (server's listing).
local function held(rtype)
  local n = 0
  for _, r in ipairs(J.resources(srv, rtype)) do
    if r.owner ~= "" then n = n + 1 end
  end
  return n
end

local function stop(j)
  T.eq(j:stop(15), 0, "janitor exit status after SIGTERM; output:\n" .. j:output())
end

T.test("healthy ones free, unhealthy to on_failure with the reason; at most half of the pool at once; once per round", function()
  J.check_counts(srv, { "hc" }, function()
    local dir = T.tmpdir()
    local port = T.free_port()
    local p = policy(dir, [[
      janitor.policy{ type = "hc", from = "never", on_failure = "dirty", health_every = "1s",
        clean = function() return true end,
        health = function(res)
          enter(res)
          janitor.progress("checking " .. res.name)
          janitor.exec{ "sleep", "0.3", readonly = true }
          leave(res)
          if res.name == "hc-2" then return false, "disk missing" end
          if res.name == "hc-5" then error("cannot reach it") end
          return true
        end }
    ]])
    local j = J.start(srv, { "--metrics-listen", "127.0.0.1:" .. port }, { p })
    local max_held = 0
    T.wait_until(function()
      max_held = math.max(max_held, held("hc"))
      return #rounds_done(j, "hc") >= 2
    end, 30, function() return "two health rounds; output:\n" .. j:output() end)
    -- The metrics page is rendered once a second: wait for round 2 in it.
    local text = T.wait_until(function()
      local t = J.scrape(port)
      local ok = J.sample(t, 'bosk_janitor_health_checks_total{type="hc",outcome="success"}')
      return ok and ok >= 8 and t
    end, 10, "the checks in the metrics")
    stop(j)
    local rounds = rounds_done(j, "hc")
    T.eq(rounds[1], 6, "first round: each of the 6 free resources checked once")
    T.eq(rounds[2], 4, "second round: the 4 healthy ones")
    local seen = checks(dir, "hc")
    local first = {}
    for i = 1, 6 do first[seen[i].name] = (first[seen[i].name] or 0) + 1 end
    T.eq(first, { ["hc-1"] = 1, ["hc-2"] = 1, ["hc-3"] = 1, ["hc-4"] = 1, ["hc-5"] = 1, ["hc-6"] = 1 }, "first round's names")
    local most = 0
    for i, c in ipairs(seen) do
      most = math.max(most, c.same)
      if i <= 6 then T.ok(c.same <= 3, "round 1: at most 3 of 6 at once, saw " .. c.same) end
      if i > 6 and i <= 10 then T.ok(c.same <= 2, "round 2: at most 2 of 4 at once, saw " .. c.same) end
    end
    T.ok(most >= 2, "checks ran side by side (most at once: " .. most .. ")")
    T.ok(max_held <= 3, "the server never saw more than 3 of 6 leased: " .. max_held)
    local st = J.states(srv, "hc")
    T.eq(st, { ["hc-1"] = "free/-", ["hc-2"] = "dirty/-", ["hc-3"] = "free/-", ["hc-4"] = "free/-",
               ["hc-5"] = "dirty/-", ["hc-6"] = "free/-" }, "states")
    local by = J.by_name(srv, "hc")
    T.match(by["hc-2"].userdata[LAST], "^%S+Z health check failed: disk missing %(last progress: checking hc%-2%)$", "reason of hc-2")
    T.match(by["hc-5"].userdata[LAST], "^%S+Z health check failed: .*cannot reach it", "reason of hc-5")
    T.eq((by["hc-1"].userdata or {})[LAST], nil, "nothing recorded on a healthy one")
    T.eq(J.sample(text, 'bosk_janitor_health_checks_total{type="hc",outcome="failed"}'), 2, "failed checks metric")
    T.ok((J.sample(text, 'bosk_janitor_health_checks_total{type="hc",outcome="success"}') or 0) >= 8,
         "successful checks metric:\n" .. text)
    J.settled(srv, { "hc" }, { janitor = j })
  end)
end)

T.test("an unhealthy resource is cleaned by the policy and comes back free; exec_scope applies to health", function()
  J.check_counts(srv, { "fl" }, function()
    local dir = T.tmpdir()
    local p = policy(dir, [[
      janitor.policy{ type = "fl", health_every = "0.5s", exec_scope = "name",
        clean = function(res) janitor.exec{ "touch", DIR .. "/cleaned-" .. res.name } return true end,
        health = function(res)
          if res.name == "fl-2" and not io.open(DIR .. "/unscoped-tried") then
            assert(io.open(DIR .. "/unscoped-tried", "w")):close()
            pcall(janitor.exec, { "true", readonly = true })     -- no name in it: refused
            return true
          end
          if res.name ~= "fl-1" then return true end
          local ok = janitor.exec{ "test", "-e", DIR .. "/cleaned-" .. res.name, readonly = true }
          return ok, "not cleaned yet"
        end }
    ]])
    local j = J.start(srv, {}, { p })
    T.wait_until(function()
      return T.read_file(dir .. "/cleaned-fl-1") and T.read_file(dir .. "/cleaned-fl-2")
    end, 20, function() return "fl-1 and fl-2 cleaned; output:\n" .. j:output() end)
    T.wait_until(function()
      local st = J.states(srv, "fl")
      return st["fl-1"] == "free/-" and st["fl-2"] == "free/-"
    end, 10, "both back free")
    stop(j)
    local out = j:output()
    T.match(out, 'msg="health check failed" type=fl name=fl%-1 outcome=failed [^\n]*error="not cleaned yet"', "fl-1 failed its check")
    T.match(out, 'msg="health check failed" type=fl name=fl%-2 outcome=failed [^\n]*exec_scope', "fl-2 refused by exec_scope")
    T.match(out, 'msg=cleaned type=fl name=fl%-1', "fl-1 cleaned")
    T.eq(T.read_file(dir .. "/cleaned-fl-3"), nil, "a healthy resource is not cleaned")
    J.settled(srv, { "fl" }, { janitor = j })
    T.eq(J.states(srv, "fl"), { ["fl-1"] = "free/-", ["fl-2"] = "free/-", ["fl-3"] = "free/-", ["fl-4"] = "free/-" }, "all free")
  end)
end)

T.test("checks share the policy's concurrency and --pool-size with cleanings", function()
  J.check_counts(srv, { "lim", "lim1" }, function()
    local dir = T.tmpdir()
    local p = policy(dir, [[
      local function check(res)
        enter(res)
        janitor.exec{ "sleep", "0.2", readonly = true }
        leave(res)
        return true
      end
      janitor.policy{ type = "lim", from = "never", health_every = "0.5s", clean = function() return true end,
                      health = check }
      janitor.policy{ type = "lim1", from = "never", health_every = "0.5s", concurrency = 1,
                      clean = function() return true end, health = check }
    ]])
    local j = J.start(srv, { "--pool-size", "2" }, { p })
    T.wait_until(function() return #rounds_done(j, "lim") >= 1 and #rounds_done(j, "lim1") >= 1 end, 30,
                 function() return "a round of each type; output:\n" .. j:output() end)
    stop(j)
    T.eq(rounds_done(j, "lim")[1], 6, "lim: all six checked")
    T.eq(rounds_done(j, "lim1")[1], 4, "lim1: all four checked")
    for _, c in ipairs(checks(dir)) do
      T.ok(c.all <= 2, "--pool-size 2: at most 2 checks at once, saw " .. c.all)
      if c.type == "lim1" then T.ok(c.same <= 1, "concurrency 1: one lim1 check at a time, saw " .. c.same) end
    end
    J.settled(srv, { "lim", "lim1" }, { janitor = j })
    T.eq(J.states(srv, "lim1"), { ["lim1-1"] = "free/-", ["lim1-2"] = "free/-", ["lim1-3"] = "free/-", ["lim1-4"] = "free/-" },
         "all healthy, all free")
  end)
end)

T.test("a check that hangs past the policy's timeout fails: on_failure, its processes killed", function()
  J.check_counts(srv, { "hg" }, function()
    local dir = T.tmpdir()
    local p = policy(dir, string.format([[
      janitor.policy{ type = "hg", from = "never", on_failure = "dirty", health_every = "0.5s", timeout = "1s",
        clean = function() return true end,
        health = function(res)
          if res.name == "hg-1" then janitor.exec{ "sh", "-c", "sleep 30 # %s", readonly = true } end
          return true
        end }
    ]], dir))
    local j = J.start(srv, {}, { p })
    T.wait_until(function() return J.states(srv, "hg")["hg-1"] == "dirty/-" end, 20,
                 function() return "hg-1 dirty; output:\n" .. j:output() end)
    T.wait_until(function() return J.states(srv, "hg")["hg-2"] == "free/-" and #rounds_done(j, "hg") >= 1 end, 20,
                 "the round over")
    stop(j)
    T.match(J.by_name(srv, "hg")["hg-1"].userdata[LAST], "health check failed: timed out after 1s", "reason")
    J.settled(srv, { "hg" }, { janitor = j, marker = dir })
    T.eq(J.states(srv, "hg"), { ["hg-1"] = "dirty/-", ["hg-2"] = "free/-" }, "states")
  end)
end)

T.test("SIGTERM during checks: finished ones free, those killed at the grace's end to on_failure, nothing held", function()
  J.check_counts(srv, { "tm", "tq" }, function()
    local dir = T.tmpdir()
    local p = policy(dir, string.format([[
      janitor.policy{ type = "tm", from = "never", on_failure = "dirty", health_every = "0.3s",
        clean = function() return true end,
        health = function(res)
          enter(res)
          janitor.exec{ "sh", "-c", "sleep 30 # %s", readonly = true }
          return true
        end }
      janitor.policy{ type = "tq", from = "never", on_failure = "dirty", health_every = "0.3s",
        clean = function() return true end,
        health = function(res)
          enter(res)
          janitor.exec{ "sleep", "1", readonly = true }
          return true
        end }
    ]], dir, dir))
    local j = J.start(srv, { "--grace", "3s" }, { p })
    T.wait_until(function() return #checks(dir, "tm") >= 2 and #checks(dir, "tq") >= 1 end, 20,
                 function() return "checks running; output:\n" .. j:output() end)
    T.sleep(0.2)
    T.eq(held("tm"), 2, "two of the four tm held (half the pool)")
    T.ok(held("tq") <= 1, "at most one of the two tq held")
    j:kill("TERM")
    T.eq(j:wait(15), 0, "exit status; output:\n" .. j:output())
    J.settled(srv, { "tm", "tq" }, { janitor = j, marker = dir })
    local dirty, free = 0, 0
    for name, s in pairs(J.states(srv, "tm")) do
      if s == "dirty/-" then
        dirty = dirty + 1
        T.match(J.by_name(srv, "tm")[name].userdata[LAST], "health check failed: killed at shutdown", name .. " reason")
      elseif s == "free/-" then free = free + 1 end
    end
    T.eq({ dirty, free }, { 2, 2 }, "tm: the two being checked to on_failure, the rest free")
    T.eq(J.states(srv, "tq"), { ["tq-1"] = "free/-", ["tq-2"] = "free/-" }, "tq: its check passed within the grace")
  end)
end)

T.test("kill -9 during a check, restart with --state-file: the lease goes to on_failure, never free", function()
  J.check_counts(srv, { "cr" }, function()
    local dir = T.tmpdir()
    local state = T.tmpdir() .. "/leases.db"
    local p = policy(dir, string.format([[
      janitor.policy{ type = "cr", from = "never", on_failure = "dirty", health_every = "0.3s",
        clean = function() return true end,
        health = function(res)
          enter(res)
          janitor.exec{ "sh", "-c", "sleep 30 # %s", readonly = true }
          return true
        end }
    ]], dir))
    local j = J.start(srv, { "--state-file", state }, { p })
    T.wait_until(function() return #checks(dir, "cr") >= 1 end, 20, function() return "a check; output:\n" .. j:output() end)
    local name = checks(dir, "cr")[1].name
    T.eq(J.states(srv, "cr")[name], "cleaning/Janitor", "held while checked")
    j:kill("KILL")
    j:wait(5)
    T.wait_until(function() return #J.strays(dir) == 0 end, 10, "the check's processes gone with the janitor")
    local other = J.policy("janitor.policy{ type = 'cr', from = 'never', clean = function() return true end }")
    local _, err, code = J.once(srv, { "--state-file", state }, { other })
    T.eq(code, 0, "restart exit status; stderr:\n" .. err)
    T.contains(err, "releasing a lease left by an earlier run", "recovery logged")
    T.eq(J.states(srv, "cr")[name], "dirty/-", "the interrupted check's resource to on_failure")
    J.settled(srv, { "cr" })
  end)
end)

T.test("a type whose breaker is open is not checked", function()
  J.check_counts(srv, { "bk", "bkd" }, function()
    local dir = T.tmpdir()
    local p = policy(dir, [[
      janitor.policy{ types = { "bk", "bkd" }, breaker = { failures = 1, probe = "1h" }, health_every = "0.5s",
        clean = function() return false, "broken cleaner" end,
        health = function(res) enter(res) leave(res) return true end }
    ]])
    T.eq(J.post(srv, "/acquirebystate?state=free&dest=busy&owner=t&names=bk-dirty"), 200, "take bk-dirty")
    T.eq(J.post(srv, "/release?name=bk-dirty&dest=dirty&owner=t"), 200, "make it dirty")
    local j = J.start(srv, {}, { p })
    T.wait_until(function() return j:output():find("breaker open", 1, true) end, 20, "the bkd breaker opens")
    T.wait_until(function() return #rounds_done(j, "bk") >= 1 end, 20,
                 function() return "a bk round (its breaker is closed); output:\n" .. j:output() end)
    T.wait_until(function() return j:output():find('health round skipped: the type\'s breaker is open" type=bkd', 1, true) end,
                 20, function() return "bkd round skipped; output:\n" .. j:output() end)
    stop(j)
    T.eq(#checks(dir, "bkd"), 0, "nothing of the breaker-open type checked")
    T.ok(#checks(dir, "bk") >= 4, "the other type checked")
    J.settled(srv, { "bk", "bkd" }, { janitor = j })
  end)
end)

T.test("--once runs no health check", function()
  J.check_counts(srv, { "on", "ond" }, function()
    local dir = T.tmpdir()
    local p = policy(dir, [[
      janitor.policy{ types = { "on", "ond" }, health_every = "0.1s",
        clean = function() janitor.exec{ "sleep", "0.5" } return true end,
        health = function(res) enter(res) leave(res) return true end }
    ]])
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status; stderr:\n" .. err)
    T.eq(#checks(dir), 0, "no check")
    T.eq(J.states(srv, "ond"), { ["on-dirty"] = "free/-" }, "the cleaning ran")
    J.settled(srv, { "on", "ond" })
  end)
end)

T.test("health and health_every are checked at load: file:line, exit 2, nothing leased", function()
  local cases = {
    { 'health = function() return true end,', "'health_every' is missing" },
    { 'health_every = "1m",', "'health' is missing" },
    { 'health = true, health_every = "1m",', "field 'health' must be a function" },
    { 'health = function() end, health_every = "soon",', "field 'health_every' is not a valid duration" },
    { 'health = function() end, health_every = -1,', "field 'health_every'" },
  }
  for _, c in ipairs(cases) do
    local before = J.states(srv, "on")
    local p = J.policy("-- line 1\njanitor.policy{ type = \"on\", clean = function() return true end,\n  " .. c[1] .. "\n}\n")
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 2, c[1] .. ": exit status; stdout:\n" .. out)
    T.contains(err, p .. ":2:", c[1] .. ": names the policy file and line")
    T.contains(err, c[2], c[1] .. ": says what is wrong")
    T.eq(J.states(srv, "on"), before, c[1] .. ": nothing leased")
  end
end)
