-- Janitor safety features (issue 14, docs/janitor-safety.md) against a
-- real bosk server: verify before free, the last failure in the user data,
-- progress-gated heartbeats, backoff and quarantine, protect, max_per_hour,
-- exec_scope, the breaker, canaries, weighted fair scheduling, and policy
-- values refused at load. tests/janitor_safety_upstream_test.lua runs them
-- against the fake (upstream-only) server. Every case ends with
-- J.settled: the janitor gone, no lease held, every resource in a defined
-- state, nothing its cleanings started still alive.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)

local srv = J.server(string.format([[
resources:
- type: ver
  state: dirty
  names: [ver-ok, ver-bad, ver-raise]
- type: hang
  state: dirty
  names: [hang-1]
- type: steady
  state: dirty
  names: [steady-1]
- type: bo
  state: dirty
  names: [bo-fail, bo-ok]
- type: qa
  state: dirty
  names: [qa-1]
- type: prot
  state: dirty
  names: [prod-db, test-1]
- type: rate
  state: dirty
  names: %s
- type: scope
  state: dirty
  names: [scope-1, scope-2]
- type: brk
  state: dirty
  names: %s
- type: can
  state: dirty
  names: %s
- type: canf
  state: dirty
  names: %s
- type: canr
  state: dirty
  names: [canr-1, canr-2, canr-3]
- type: wa
  state: dirty
  names: %s
- type: wb
  state: dirty
  names: %s
- type: big
  state: dirty
  names: %s
- type: small
  state: dirty
  names: %s
]], J.names("rate", 5), J.names("brk", 6), J.names("can", 6), J.names("canf", 4), J.names("wa", 16), J.names("wb", 16),
    J.names("big", 1000), J.names("small", 5)))

local LAST = "bosk.janitor/last-failure"
local COUNT = "bosk.janitor/failures"

local function userdata(rtype, name)
  return J.by_name(srv, rtype)[name].userdata or {}
end

local function lines(path)
  local out = {}
  for l in (T.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- A policy file whose cleanings may append to files in dir.
local function policy(text, dir)
  return J.policy((text:gsub("DIR", dir or "")))
end

T.test("verify: only true sets free; false or an error fails with 'verify failed: ...' (6, 8)", function()
  J.check_counts(srv, { "ver" }, function()
    local p = policy[[
      janitor.policy{ type = "ver",
        clean = function() return true end,
        verify = function(res)
          if res.name == "ver-bad" then return false, "still has 2 disks" end
          if res.name == "ver-raise" then error("cannot list disks\nsecond line") end
          return true
        end }
    ]]
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 1, "exit status (two failed); stderr:\n" .. err)
    local st = J.states(srv, "ver")
    T.eq(st, { ["ver-ok"] = "free/-", ["ver-bad"] = "dirty/-", ["ver-raise"] = "dirty/-" }, "states")
    local bad = userdata("ver", "ver-bad")[LAST]
    T.match(bad, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ verify failed: still has 2 disks$", "last failure of ver-bad")
    local raised = userdata("ver", "ver-raise")[LAST]
    T.match(raised, "^%S+Z verify failed: .*cannot list disks second line", "last failure of ver-raise, one line")
    T.ok(#raised <= 200 and not raised:find("\n"), "one line of at most 200 bytes: " .. #raised)
    T.eq(userdata("ver", "ver-ok")[LAST], nil, "no failure recorded on success")
    T.eq(userdata("ver", "ver-bad")[COUNT], "1", "failure count")
    -- A later success removes the keys.
    local p2 = policy[[janitor.policy{ type = "ver", clean = function() return true end, verify = function() return true end }]]
    local _, err2, code2 = J.once(srv, {}, { p2 })
    T.eq(code2, 0, "second run; stderr:\n" .. err2)
    T.eq(userdata("ver", "ver-bad")[LAST], nil, "last-failure removed after a success")
    T.eq(userdata("ver", "ver-bad")[COUNT], nil, "failure count removed after a success")
    J.settled(srv, { "ver" })
  end)
end)

T.test("bad safety values are refused at load with file:line:field, exit 2, before any lease", function()
  local cases = {
    { "progress_timeout = \"-1s\",", "progress_timeout" },
    { "backoff = { min = \"1m\", max = -5 },", "backoff" },
    { "breaker = { failures = 0, probe = \"1m\" },", "breaker" },
    { "protect = \"prod-*\",", "protect" },
    { "protect = { \"prod-*\", 3 },", "protect" },
    { "verify = true,", "verify" },
    { "quarantine_after = 0,", "quarantine_after" },
    { "canary = 1.5,", "canary" },
    { "weight = 0,", "weight" },
    { "max_per_hour = -1,", "max_per_hour" },
    { "exec_scope = \"all\",", "exec_scope" },
  }
  for _, c in ipairs(cases) do
    local before = J.states(srv, "ver")
    local p = policy("-- line 1\njanitor.policy{ type = \"ver\", clean = function() return true end,\n  " .. c[1] .. "\n}\n")
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 2, c[2] .. ": exit status; stdout:\n" .. out)
    T.contains(err, p .. ":2:", c[2] .. ": file and line")
    T.contains(err, "field '" .. c[2] .. "'", c[2] .. ": the field")
    T.ok(not err:find("unknown field", 1, true), c[2] .. ": a known field, refused for its value: " .. err)
    T.eq(J.states(srv, "ver"), before, c[2] .. ": nothing leased")
  end
  -- The same fields with good values load.
  local good = policy[[
    janitor.policy{ type = "ver", clean = function() return true end, verify = function() return true end,
      progress_timeout = "10m", backoff = { min = "1m", max = "1h" }, quarantine_after = 5, weight = 2,
      breaker = { failures = 5, probe = "5m" }, canary = 2, protect = { "prod-*" }, max_per_hour = 200,
      exec_scope = "name" }
  ]]
  local _, gerr, gcode = J.once(srv, {}, { good })
  T.eq(gcode, 0, "good values load and run; stderr:\n" .. gerr)
  J.settled(srv, { "ver" })
end)

T.test("progress_timeout: a silent cleaning is killed (its group too), fails with its last progress (1)", function()
  local dir = T.tmpdir()
  local p = policy([[
    janitor.policy{ type = "hang", progress_timeout = "1s", timeout = "60s", clean = function(res)
      janitor.progress("deleting vms of " .. res.name)
      janitor.exec{ "sh", "-c", "sleep 30; echo DIR" }
      return true
    end }
  ]], dir)
  local started = T.now()
  local _, err, code = J.once(srv, {}, { p })
  local took = T.now() - started
  T.eq(code, 1, "exit status; stderr:\n" .. err)
  T.ok(took < 8, "ended soon after the progress timeout, not at timeout: " .. took)
  T.eq(J.states(srv, "hang"), { ["hang-1"] = "dirty/-" }, "to its failure state")
  local last = userdata("hang", "hang-1")[LAST]
  T.match(last, "hung: no progress for", "failure reason")
  T.contains(last, "last progress: deleting vms of hang-1", "last progress in the reason")
  T.contains(err, "deleting vms of hang-1", "last progress in the log")
  J.settled(srv, { "hang" }, { marker = dir })
end)

T.test("progress_timeout: a cleaning that keeps reporting progress outlives it and succeeds (1)", function()
  local p = policy[[
    janitor.policy{ type = "steady", progress_timeout = "0.5s", clean = function()
      for i = 1, 8 do
        janitor.progress("step " .. i)
        require("bosk.core").sleep(0.2)
      end
      return true
    end }
  ]]
  local _, err, code = J.once(srv, {}, { p })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  T.eq(J.states(srv, "steady"), { ["steady-1"] = "free/-" }, "cleaned")
  J.settled(srv, { "steady" })
end)

T.test("progress_timeout: a hung cleaning's lease is no longer heartbeated (1)", function()
  -- The worker is stopped (SIGSTOP) so the kill is what ends it; heartbeats
  -- every 0.1s would keep touching the lease if they were not gated.
  local S = require "bosk.janitor_safety"
  local lease = { progress_timeout = 0.2, progress_at = T.now() }
  T.ok(S.heartbeat_ok(lease), "fresh progress: heartbeated")
  lease.progress_at = T.now() - 1
  T.ok(not S.heartbeat_ok(lease), "silent past progress_timeout: not heartbeated")
  T.ok(S.heartbeat_ok({}), "no progress_timeout: always heartbeated")
end)

T.test("backoff: a failing resource waits min*2^(k-1) while the type's others are cleaned; the count survives a restart (2)", function()
  local dir = T.tmpdir()
  local p = policy([[
    janitor.policy{ type = "bo", backoff = { min = "1.5s", max = "10s" }, clean = function(res)
      local f = io.open("DIR/" .. res.name, "a") f:write(string.format("%.3f\n", require("bosk.core").realtime())) f:close()
      return res.name ~= "bo-fail", "still broken"
    end }
  ]], dir)
  -- A restart between failures: each --once run is a new janitor.
  local _, err1, code1 = J.once(srv, {}, { p })
  T.eq(code1, 1, "first run fails bo-fail; stderr:\n" .. err1)
  T.eq(userdata("bo", "bo-fail")[COUNT], "1", "count in the user data")
  T.eq(J.states(srv, "bo"), { ["bo-fail"] = "dirty/-", ["bo-ok"] = "free/-" }, "the type's other resource cleaned")
  local _, err2, code2 = J.once(srv, {}, { p })
  T.eq(code2, 0, "second run at once: bo-fail is backed off, not cleaned; stderr:\n" .. err2)
  T.eq(#lines(dir .. "/bo-fail"), 1, "one cleaning of bo-fail so far")
  T.contains(err2, "backed off", "logged")
  T.eq(J.states(srv, "bo"), { ["bo-fail"] = "dirty/-", ["bo-ok"] = "free/-" }, "put back untouched, without a lease")
  -- A long-running janitor (polling every 0.1 s): the next attempts come
  -- 1.5 s after the first failure, then 3 s after the second.
  local j = J.start(srv, { "--poll-interval", "0.1s" }, { p })
  T.wait_until(function() return #lines(dir .. "/bo-fail") >= 3 end, 15, "two more attempts")
  T.sleep(0.5)
  j:kill("TERM")
  T.eq(j:wait(10), 0, "janitor exit")
  local times = lines(dir .. "/bo-fail")
  T.eq(#times, 3, "attempts of bo-fail (a poll interval of 0.1 s without backoff: dozens)")
  T.ok(times[2] - times[1] >= 1.45, "first wait >= 1.5 s: " .. (times[2] - times[1]))
  T.ok(times[3] - times[2] >= 2.95, "second wait >= 3 s: " .. (times[3] - times[2]))
  T.eq(userdata("bo", "bo-fail")[COUNT], "3", "count grows")
  J.settled(srv, { "bo" }, { janitor = j, marker = dir })
end)

T.test("quarantine_after: the N-th failure in a row goes to quarantine, logged; an operator's release returns it (2)", function()
  local p = policy[[janitor.policy{ type = "qa", quarantine_after = 2, clean = function() return false, "disk busy" end }]]
  local _, err1, code1 = J.once(srv, {}, { p })
  T.eq(code1, 1, "first failure")
  T.eq(J.states(srv, "qa"), { ["qa-1"] = "dirty/-" }, "first failure: on_failure")
  local _, err2 = J.once(srv, {}, { p })
  T.eq(J.states(srv, "qa"), { ["qa-1"] = "quarantine/-" }, "second failure: quarantine")
  T.contains(err2, "quarantined", "logged:\n" .. err2)
  T.match(userdata("qa", "qa-1")[LAST], "quarantined after 2 failures in a row: disk busy", "why, on the resource")
  -- The janitor leaves it there.
  J.once(srv, {}, { p })
  T.eq(J.states(srv, "qa"), { ["qa-1"] = "quarantine/-" }, "not touched again")
  J.settled(srv, { "qa" })
  T.ok(err1, "first run logged")
end)

T.test("protect: a matching name is never given to clean, goes to quarantine with an error line (7)", function()
  local dir = T.tmpdir()
  local p = policy([[
    janitor.policy{ type = "prot", protect = { "prod-*", "*-keep" }, clean = function(res)
      io.open("DIR/" .. res.name, "w"):close()
      return true
    end }
  ]], dir)
  local _, err, code = J.once(srv, {}, { p })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  T.eq(J.states(srv, "prot"), { ["prod-db"] = "quarantine/-", ["test-1"] = "free/-" }, "states")
  T.eq(T.read_file(dir .. "/prod-db"), nil, "clean never ran for prod-db")
  T.ok(T.read_file(dir .. "/test-1"), "clean ran for test-1")
  T.match(err, "error[^\n]*protected resource[^\n]*prod%-db", "an error-level line names it:\n" .. err)
  J.settled(srv, { "prot" })
end)

T.test("max_per_hour: past the cap the type waits and says so (7)", function()
  local p = policy[[janitor.policy{ type = "rate", max_per_hour = 2, clean = function() return true end }]]
  local _, err, code = J.once(srv, {}, { p })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  local free = 0
  for _, st in pairs(J.states(srv, "rate")) do if st == "free/-" then free = free + 1 end end
  T.eq(free, 2, "two cleanings started in this hour")
  T.contains(err, "max_per_hour reached", "says so")
  -- A running janitor waits (holding nothing) instead of ending.
  local j = J.start(srv, {}, { policy[[janitor.policy{ type = "rate", max_per_hour = 1, clean = function() return true end }]] })
  T.wait_until(function() return j:output():find("max_per_hour reached", 1, true) end, 10, "the wait is logged")
  T.sleep(0.5)
  local now_free = 0
  for _, st in pairs(J.states(srv, "rate")) do if st == "free/-" then now_free = now_free + 1 end end
  T.eq(now_free, 3, "one more in a new janitor's hour, then it waits")
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exit")
  J.settled(srv, { "rate" }, { janitor = j })
end)

T.test("exec_scope = name: an exec without the resource name is refused and fails the cleaning, even under pcall (7)", function()
  local dir = T.tmpdir()
  local p = policy([[
    janitor.policy{ type = "scope", exec_scope = "name", clean = function(res)
      assert(janitor.exec{ "touch", "DIR/" .. res.name })          -- carries the name: runs
      if res.name == "scope-2" then
        pcall(janitor.exec, { "touch", "DIR/other" })              -- refused, error swallowed
        return true
      end
      janitor.exec{ "touch", "DIR/other", readonly = true }        -- refused: raises
      return true
    end }
  ]], dir)
  local _, err, code = J.once(srv, {}, { p })
  T.eq(code, 1, "exit status; stderr:\n" .. err)
  T.eq(J.states(srv, "scope"), { ["scope-1"] = "dirty/-", ["scope-2"] = "dirty/-" }, "both failed")
  T.ok(T.read_file(dir .. "/scope-1") and T.read_file(dir .. "/scope-2"), "the scoped execs ran")
  T.eq(T.read_file(dir .. "/other"), nil, "the unscoped ones never ran")
  T.contains(userdata("scope", "scope-1")[LAST], "refused by exec_scope", "reason of scope-1")
  T.contains(userdata("scope", "scope-2")[LAST], "exec_scope", "reason of scope-2")
  J.settled(srv, { "scope" }, { marker = dir })
end)

local function metric(port, pattern)
  local status, body = T.http("GET", "http://127.0.0.1:" .. port .. "/metrics")
  if status ~= 200 then return nil end
  return body:match(pattern)
end

T.test("breaker: failures in a row open it (metric 1), one probe per period, a good probe closes it (4)", function()
  local dir = T.tmpdir()
  local port = T.free_port()
  local p = policy([[
    janitor.policy{ type = "brk", breaker = { failures = 2, probe = "1s" }, clean = function(res)
      local f = io.open("DIR/attempts", "a") f:write(res.name, "\n") f:close()
      return io.open("DIR/fixed") ~= nil, "outage"
    end }
  ]], dir)
  local j = J.start(srv, { "--pool-size", "1", "--poll-interval", "0.1s", "--metrics-listen", "127.0.0.1:" .. port }, { p })
  T.wait_until(function() return metric(port, 'bosk_janitor_breaker_open{type="brk"} (%d)') == "1" end, 10, "breaker open")
  T.sleep(1.6)
  local n = #lines(dir .. "/attempts")
  T.ok(n >= 2 and n <= 4, "2 failures, then at most one probe per second: " .. n)
  T.contains(j:output(), "breaker open", "logged")
  T.write_file(dir .. "/fixed", "")
  T.wait_until(function() return metric(port, 'bosk_janitor_breaker_open{type="brk"} (%d)') == "0" end, 10, "breaker closed")
  T.wait_until(function()
    for _, st in pairs(J.states(srv, "brk")) do if st ~= "free/-" then return false end end
    return true
  end, 10, "all cleaned once closed")
  T.contains(j:output(), "breaker closed", "logged")
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exit")
  J.settled(srv, { "brk" }, { janitor = j })
end)

-- Start and end times of each cleaning, from files the cleanings write.
local function spans(dir)
  local out = {}
  for _, l in ipairs(lines(dir .. "/spans")) do
    local a, b = l:match("^(%S+) (%S+)")
    out[#out + 1] = { tonumber(a), tonumber(b) }
  end
  table.sort(out, function(x, y) return x[1] < y[1] end)
  return out
end

-- timed_policy(rtype, canary, dir) -> a policy whose cleanings take 0.3 s
-- and append their "start end" monotime span to DIR/spans.
local function timed_policy(rtype, canary, dir)
  return policy(([[
    janitor.policy{ type = "TYPE", canary = CANARY, clean = function(res)
      local core = require "bosk.core"
      local a = core.monotime() core.sleep(0.3)
      local f = io.open("DIR/spans", "a") f:write(string.format("%.3f %.3f\n", a, core.monotime())) f:close()
      return true
    end }
  ]]):gsub("TYPE", rtype):gsub("CANARY", tostring(canary)), dir)
end

T.test("canary: the first N cleanings after load run one at a time, then full concurrency (5)", function()
  local dir = T.tmpdir()
  local p = timed_policy("can", 2, dir)
  local _, err, code = J.once(srv, { "--pool-size", "4" }, { p })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  local s = spans(dir)
  T.eq(#s, 6, "all six cleaned")
  T.ok(s[2][1] >= s[1][2], "canary 2 started after canary 1 ended")
  T.ok(s[3][1] >= s[2][2], "the rest after both canaries")
  local overlapped = s[4][1] < s[3][2] or s[5][1] < s[4][2]
  T.ok(overlapped, "full concurrency after the canaries")
  T.contains(err, "canary passed", "logged")
  J.settled(srv, { "can" })
end)

T.test("canary: a SIGHUP reload starts a new canary; its cleanings run one at a time again (5)", function()
  local dir = T.tmpdir()
  local p = timed_policy("canr", 1, dir)
  local function all_free()
    local st = J.states(srv, "canr")
    return st["canr-1"] == "free/-" and st["canr-2"] == "free/-" and st["canr-3"] == "free/-"
  end
  local j = J.start(srv, { "--pool-size", "3" }, { p })
  T.wait_until(all_free, 15, "first load: all three cleaned")
  T.eq(T.count(j:output(), "canary passed"), 1, "one canary after the load")
  os.remove(dir .. "/spans")
  j:kill("HUP")
  T.wait_until(function() return j:output():find("msg=\"policies reloaded\"", 1, true) end, 10, "reload logged")
  for i = 1, 3 do
    T.eq(J.post(srv, "/acquire?type=canr&state=free&dest=busy&owner=t"), 200, "lease one of canr")
  end
  for i = 1, 3 do
    T.eq(J.post(srv, "/release?name=canr-" .. i .. "&dest=dirty&owner=t"), 200, "release canr-" .. i .. " dirty")
  end
  T.wait_until(function() return #spans(dir) == 3 and all_free() end, 15, "after the reload: all three cleaned again")
  T.eq(T.count(j:output(), "canary passed"), 2, "a new canary after the reload; log:\n" .. j:output())
  local s = spans(dir)
  T.ok(s[2][1] >= s[1][2] and s[3][1] >= s[1][2], "after the reload the others waited for the canary")
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exit status after SIGTERM")
  J.settled(srv, { "canr" }, { janitor = j, marker = dir })
end)

T.test("canary: a failed canary opens the breaker; nothing else of the type is cleaned (5)", function()
  local dir = T.tmpdir()
  local p = policy([[
    janitor.policy{ type = "canf", canary = 1, breaker = { failures = 5, probe = "1h" }, clean = function(res)
      io.open("DIR/" .. res.name, "w"):close()
      return false, "broken release"
    end }
  ]], dir)
  local _, err, code = J.once(srv, { "--pool-size", "4" }, { p })
  T.eq(code, 1, "exit status; stderr:\n" .. err)
  T.contains(err, "a canary cleaning failed", "logged")
  local cleaned = 0
  for i = 1, 4 do if T.read_file(dir .. "/canf-" .. i) then cleaned = cleaned + 1 end end
  T.eq(cleaned, 1, "only the canary ran")
  J.settled(srv, { "canf" })
end)

T.test("weight: competing types share --pool-size in proportion to their weights (3)", function()
  local dir = T.tmpdir()
  local p = policy([[
    local function clean(res)
      local f = io.open("DIR/started", "a") f:write(res.type, "\n") f:close()
      require("bosk.core").sleep(0.4)
      return true
    end
    janitor.policy{ type = "wa", weight = 3, clean = clean }
    janitor.policy{ type = "wb", weight = 1, clean = clean }
  ]], dir)
  local j = J.start(srv, { "--pool-size", "4" }, { p })
  T.wait_until(function() return #lines(dir .. "/started") >= 16 end, 20, "16 cleanings started")
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exit")
  local by = { wa = 0, wb = 0 }
  for i, t in ipairs(lines(dir .. "/started")) do if i <= 16 then by[t] = by[t] + 1 end end
  T.ok(by.wa >= 2 * by.wb and by.wb >= 2, string.format("about 3:1 (wa %d, wb %d)", by.wa, by.wb))
  J.settled(srv, { "wa", "wb" }, { janitor = j })
end)

T.test("fairness: a type of 5 finishes early next to a type of 1000 (3)", function()
  local dir = T.tmpdir()
  local p = policy[[
    janitor.policy{ type = "big", clean = function() return true end }
    janitor.policy{ type = "small", clean = function() return true end }
  ]]
  local j = J.start(srv, { "--pool-size", "4" }, { p })
  local function free_of(rtype)
    local n = 0
    for _, st in pairs(J.states(srv, rtype)) do if st == "free/-" then n = n + 1 end end
    return n
  end
  T.wait_until(function() return free_of("small") == 5 end, 30, "small type done")
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exit")
  -- Counted in the janitor's own log: big cleanings before small's last.
  local big_done, small_done = 0, 0
  for line in j:output():gmatch("[^\n]+") do
    if line:find("msg=cleaned", 1, true) then
      if line:find("type=small", 1, true) then small_done = small_done + 1
      elseif small_done < 5 then big_done = big_done + 1 end
    end
  end
  T.eq(small_done, 5, "small cleaned")
  T.ok(big_done < 50, "small finished while big had done " .. big_done .. " of 1000")
  J.settled(srv, { "big", "small" }, { janitor = j, marker = dir })
end)

T.cleanup()
