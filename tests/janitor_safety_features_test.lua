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

local function names(prefix, n)
  local out = {}
  for i = 1, n do out[i] = prefix .. "-" .. i end
  return "[" .. table.concat(out, ", ") .. "]"
end

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
]], names("rate", 5), names("brk", 6), names("can", 6), names("canf", 4), names("wa", 16), names("wb", 16),
    names("big", 1000), names("small", 5)))

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
    T.match(bad, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ verify failed: still has 2 disks$", "last failure of ver-bad")
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
    T.eq(J.states(srv, "ver"), before, c[2] .. ": nothing leased")
  end
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
    janitor.policy{ type = "bo", backoff = { min = "1s", max = "10s" }, clean = function(res)
      local f = io.open("DIR/" .. res.name, "a") f:write(string.format("%.3f\n", require("bosk.core").monotime())) f:close()
      return res.name ~= "bo-fail", "still broken"
    end }
  ]], dir)
  -- A restart between failures: each --once run is a new janitor.
  local _, err1, code1 = J.once(srv, {}, { p })
  T.eq(code1, 1, "first run fails bo-fail; stderr:\n" .. err1)
  T.eq(userdata("bo", "bo-fail")[COUNT], "1", "count in the user data")
  local _, err2, code2 = J.once(srv, {}, { p })
  T.eq(code2, 0, "second run at once: bo-fail is backed off, not cleaned; stderr:\n" .. err2)
  T.eq(#lines(dir .. "/bo-fail"), 1, "one cleaning of bo-fail so far")
  T.contains(err2, "backed off", "logged")
  T.eq(J.states(srv, "bo"), { ["bo-fail"] = "dirty/-", ["bo-ok"] = "free/-" }, "put back untouched, without a lease")
  -- A long-running janitor: the next attempts come after >= 1 s, then >= 2 s.
  local j = J.start(srv, { "--poll-interval", "0.1s" }, { p })
  T.sleep(3.6)
  j:kill("TERM")
  T.eq(j:wait(10), 0, "janitor exit")
  local times = lines(dir .. "/bo-fail")
  T.ok(#times >= 2 and #times <= 3, "attempts of bo-fail in 3.6 s with backoff (a poll interval of 0.1 s would give dozens): " .. #times)
  for i = 3, #times do
    T.ok(tonumber(times[i]) - tonumber(times[i - 1]) >= 1.9, "second wait is at least 2 s")
  end
  T.ok(tonumber(userdata("bo", "bo-fail")[COUNT]) >= 2, "count grows")
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

T.cleanup()
