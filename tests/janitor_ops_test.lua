-- bosk janitor for operators: bad settings fail at start (exit 2 for a
-- malformed value, 1 for a listen address that cannot be bound), unknown
-- types are said, logs at --log-level, the --once summary names failures,
-- a periodic progress line when stderr is not a terminal, and metrics
-- (request failures, reaper, jobs, build info, bucket labels).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local F = require("fake")
local core = require "bosk.core"

local srv = J.server([[
resources:
- type: ops
  state: dirty
  names: [ops-1, ops-2]
- type: slow
  state: dirty
  names: [slow-1]
- type: stale
  state: free
  names: [stale-1]
]])
local TYPES = { "ops", "slow", "stale" }
local OK_POLICY = "janitor.policy{ type = 'ops', clean = function() return true end }"

-- count(text, plain) -> occurrences of plain in text
local function count(text, plain)
  local n, at = 0, 1
  while true do
    local i, j = text:find(plain, at, true)
    if not i then return n end
    n, at = n + 1, j + 1
  end
end

local function redirty(name)
  T.eq(J.post(srv, "/acquire?type=ops&state=free&dest=busy&owner=t"), 200, "lease " .. name)
  local states = J.states(srv, "ops")
  for n, s in pairs(states) do
    if s == "busy/t" then T.eq(J.post(srv, "/release?name=" .. n .. "&dest=dirty&owner=t"), 200, "dirty " .. n) end
  end
end

T.test("malformed flag values exit 2 at once with one line naming the flag", function()
  local p = J.policy(OK_POLICY)
  local cases = {
    { { "--boskos-url", "127.0.0.1:8080" }, "invalid value \"127.0.0.1:8080\" for flag --boskos-url" },
    { { "--boskos-url", "ftp://h/" }, "for flag --boskos-url: scheme ftp" },
    { { "--metrics-listen", "9090" }, "for flag --metrics-listen" },
    { { "--metrics-listen", "host.example:9090" }, "for flag --metrics-listen" },
    { { "--metrics-listen", "127.0.0.1:70000" }, "for flag --metrics-listen" },
    { { "--log-level", "verbose" }, "invalid value \"verbose\" for flag --log-level" },
    { { "--resource-type", "x", "--janitor-path", "/no/such/janitor" }, "for flag --janitor-path: No such file" },
  }
  for _, c in ipairs(cases) do
    local args = { "janitor", "--once" }
    for _, a in ipairs(c[1]) do args[#args + 1] = a end
    args[#args + 1] = p
    local started = core.monotime()
    local out, err, code = T.run(args, { timeout = 30 })
    T.eq(code, 2, table.concat(c[1], " ") .. ": exit status; stderr:\n" .. err)
    T.contains(err:match("^[^\n]*"), c[2], table.concat(c[1], " ") .. ": first line")
    T.eq(out, "", "nothing on stdout")
    T.ok(core.monotime() - started < 5, "refused at start, not after polling")
  end
end)

T.test("a --metrics-listen address in use: exit 1 naming the flag, nothing leased", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy(OK_POLICY)
    local busy = "127.0.0.1:" .. srv.port   -- the server listens there
    local before = J.states(srv, "ops")
    local _, err, code = J.once(srv, { "--metrics-listen", busy }, { p })
    T.eq(code, 1, "exit status; stderr:\n" .. err)
    T.eq(err, "bosk janitor: --metrics-listen " .. busy .. ": Address already in use\n", "one line naming the flag")
    T.eq(J.states(srv, "ops"), before, "nothing leased")
  end)
end)

T.test("a type the server does not know: one warning per type, --once exits 1 naming it", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy(OK_POLICY .. "\njanitor.policy{ type = 'no-such-type', clean = function() return true end }")
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 1, "exit status; stderr:\n" .. err)
    T.contains(out, "unknown resource type (the server does not know it): no-such-type", "summary")
    T.contains(out, "ops                            success  2", "the known type was cleaned")
    T.eq(count(err, "the server does not know this resource type"), 1, "one warning")
    redirty("ops-1") redirty("ops-2")
    -- as a daemon: one warning over many polls
    local j = J.start(srv, {}, { p })
    T.wait_until(function() return J.states(srv, "ops")["ops-1"] == "free/-" and J.states(srv, "ops")["ops-2"] == "free/-" end,
                 10, "ops cleaned")
    core.sleep(1.2)   -- six poll intervals of 0.2 s
    j:kill("TERM")
    T.eq(j:wait(10), 0, "exit status")
    T.eq(count(j:output(), "the server does not know this resource type"), 1, "one warning in the daemon")
  end)
end)

T.test("--log-level: lease, start (debug) and end of each cleaning; --once names failures and why", function()
  J.check_counts(srv, TYPES, function()
    redirty("ops-1")
    local p = J.policy([[janitor.policy{ type = 'ops', clean = function(res) return nil, "disk " .. res.name .. " is stuck" end }]])
    local out, err, code = J.once(srv, { "--log-level", "debug" }, { p })
    T.eq(code, 1, "exit status")
    T.match(err, "level=info msg=leased type=ops name=ops%-%d", "lease logged")
    T.match(err, "level=debug msg=\"cleaning started\" type=ops name=ops%-%d", "start logged at debug")
    T.match(err, "level=warning msg=\"cleaning failed\" type=ops name=ops%-%d", "end logged")
    T.match(out, "failed:\n  ops%-%d %(ops%) failed: disk ops%-%d is stuck\n", "summary names the failure")
    local _, err2 = J.once(srv, {}, { p })
    T.ok(not err2:find("cleaning started", 1, true), "no debug lines at the default level")
    T.contains(err2, "msg=leased", "info lines at the default level")
    local _, err3 = J.once(srv, { "--log-level", "error" }, { p })
    T.ok(not err3:find("msg=leased", 1, true) and not err3:find("cleaning failed", 1, true), "error hides info and warnings")
    -- back to free
    local ok = J.policy(OK_POLICY)
    T.eq(select(3, J.once(srv, {}, { ok })), 0, "cleaned")
  end)
end)

T.test("stderr not a terminal: a periodic one-line progress report", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy([[janitor.policy{ type = 'slow', clean = function()
      require("bosk.core").sleep(1.5) return true end }]])
    local j = J.start(srv, { "--progress-every", "0.3s" }, { p })
    T.wait_until(function() return j:output():find("msg=progress[^\n]*in_flight=1") end, 10, "progress with one in flight")
    T.wait_until(function() return j:output():find("msg=progress done=1 failed=0 in_flight=0 per_type=slow:1/0") end,
                 10, "progress after the cleaning")
    core.sleep(0.8)
    local n = count(j:output(), "msg=progress done=1 failed=0 in_flight=0")
    j:kill("TERM")
    T.eq(j:wait(10), 0, "exit status")
    T.eq(n, 1, "an idle janitor repeats no progress line")
    T.eq(J.post(srv, "/acquire?type=slow&state=free&dest=busy&owner=t"), 200, "lease slow-1")
    T.eq(J.post(srv, "/release?name=slow-1&dest=dirty&owner=t"), 200, "dirty again")
  end)
end)

T.test("metrics: request failures, reaper, jobs, build info, bucket labels as Go writes them", function()
  J.check_counts(srv, TYPES, function()
    T.eq(J.post(srv, "/acquire?type=stale&state=free&dest=busy&owner=gone"), 200, "stale lease")
    redirty("ops-1")
    local port = T.free_port()
    local p = J.policy([[
      janitor.policy{ type = 'ops', clean = function() return true end }
      janitor.reaper{ types = { "stale" }, expire = "1s", every = "0.3s" }
      janitor.every("0.3s", function() return true end, "tick")
    ]])
    local j = J.start(srv, { "--metrics-listen", "127.0.0.1:" .. port }, { p })
    local body = T.wait_until(function()
      local status, b = T.http("GET", "http://127.0.0.1:" .. port .. "/metrics")
      return status == 200 and b:find('bosk_janitor_reaper_resets_total{type="stale",state="busy"} 1', 1, true)
         and b:find('bosk_janitor_job_runs_total{job="tick",outcome="success"}', 1, true)
         and b:find('bosk_janitor_cleaning_duration_seconds_count{type="ops"} 1', 1, true) and b
    end, 10, function() return "metrics; janitor output:\n" .. j:output() end)
    T.contains(body, 'le="0.1"}', "bucket bound 0.1")
    T.ok(not body:find("0.10000000000000001", 1, true), "no 17-digit bucket bound")
    T.match(body, 'bosk_janitor_build_info{version="[^"]+"} 1', "build info")
    T.match(body, 'bosk_janitor_job_last_success_timestamp_seconds{job="tick"} %d', "job last success")
    j:kill("TERM")
    T.eq(j:wait(10), 0, "exit status")
    -- stale-1 went dirty; the ops policy does not clean stale: free it again
    T.eq(J.post(srv, "/acquire?type=stale&state=dirty&dest=busy&owner=t"), 200, "lease stale-1")
    T.eq(J.post(srv, "/release?name=stale-1&dest=free&owner=t"), 200, "free stale-1")
  end)
  local f = F.start(T)
  f:default{ path = "/acquire", status = 503, body = "overloaded" }
  local port = T.free_port()
  local p = J.policy(OK_POLICY)
  local j = T.spawn({ T.bosk, "janitor", "--boskos-url", f.url, "--poll-interval", "0.2s",
                      "--metrics-listen", "127.0.0.1:" .. port, p })
  T.wait_until(function()
    local status, b = T.http("GET", "http://127.0.0.1:" .. port .. "/metrics")
    return status == 200 and b:find('bosk_janitor_request_failures_total{request="acquire",status="503"} [1-9]')
  end, 10, function() return "request failure counter; janitor output:\n" .. j:output() end)
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exit status")
  f:stop()
end)

srv:stop()
