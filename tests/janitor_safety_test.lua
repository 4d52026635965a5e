-- bosk janitor safety against a real bosk server: one janitor per state
-- file, no process of a cleaning outliving it (setsid included), a bounded
-- metrics endpoint, a shutdown that fits Kubernetes' grace period, policy
-- files that cannot end the process, and the loop bindings' argument
-- checks (which must raise without leaking: run under SANITIZE=1).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)

local srv = J.server([[
resources:
- type: lock
  state: dirty
  names: [lock-1, lock-2]
- type: exit
  state: dirty
  names: [exit-1]
- type: esc
  state: dirty
  names: [esc-1, esc-2]
- type: stuck
  state: dirty
  names: [stuck-1]
]])
local TYPES = { "lock", "exit", "esc", "stuck" }

local function lines_of(text)
  local out = {}
  for l in (text or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

T.test("a second janitor on the same --state-file exits 1 naming the file; the first keeps its leases", function()
  J.check_counts(srv, TYPES, function()
    local state = T.tmpdir() .. "/leases.db"
    local p = J.policy([[
      janitor.policy{ type = "lock", clean = function()
        require("bosk.core").sleep(60) return true
      end }
    ]])
    local first = J.start(srv, { "--state-file", state, "--grace", "0.2s" }, { p })
    local held = { ["lock-1"] = "cleaning/Janitor", ["lock-2"] = "cleaning/Janitor" }
    T.wait_until(function() return T.deep_eq(J.states(srv, "lock"), held) end, 10, "both leased by the first")
    local out, err, code = J.once(srv, { "--state-file", state }, { p })
    T.eq(code, 1, "second janitor's exit status; stdout:\n" .. tostring(out))
    T.eq(#lines_of(err), 1, "one line on stderr:\n" .. err)
    T.contains(err, state, "the line names the file")
    T.contains(err, "in use by another janitor", "and says why")
    T.eq(J.states(srv, "lock"), held, "the first janitor's leases untouched")
    T.ok(first:alive(), "first janitor still running")
    first:kill("TERM")
    T.eq(first:wait(10), 0, "first janitor's exit status")
    T.eq(J.states(srv, "lock"), { ["lock-1"] = "dirty/-", ["lock-2"] = "dirty/-" }, "released by the first")
    -- The lock goes with the janitor: a new one may use the file now.
    local p2 = J.policy([[janitor.policy{ type = "lock", clean = function() return true end }]])
    local _, err2, code2 = J.once(srv, { "--state-file", state }, { p2 })
    T.eq(code2, 0, "a later janitor on the file; stderr:\n" .. err2)
    T.eq(J.states(srv, "lock"), { ["lock-1"] = "free/-", ["lock-2"] = "free/-" }, "cleaned by the later one")
  end)
end)

-- A policy whose cleaning of each resource starts a daemon that leaves the
-- worker's process group and session (setsid) and records its pid; `tail`
-- is what the cleaning does afterwards.
local function escaping_policy(dir, extra, tail)
  return J.policy(string.format([[
    janitor.policy{ type = "esc", %s clean = function(res)
      janitor.exec{ "setsid", "sh", "-c", "sleep 30 & echo $! > %s/pid-" .. res.name }
      %s
    end }
  ]], extra, dir, tail))
end

local function daemons_gone(dir)
  local pids = {}
  for _, name in ipairs{ "esc-1", "esc-2" } do
    local pid = tonumber(T.read_file(dir .. "/pid-" .. name) or "")
    T.ok(pid, "the cleaning of " .. name .. " recorded its daemon's pid")
    pids[#pids + 1] = pid
  end
  T.wait_until(function()
    for _, pid in ipairs(pids) do if J.live(pid) then return false end end
    return true
  end, 5, function()
    local live = {}
    for _, pid in ipairs(pids) do if J.live(pid) then live[#live + 1] = pid end end
    for _, pid in ipairs(live) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    return "the setsid daemons to be gone; still alive: " .. table.concat(live, " ")
  end)
end

T.test("a daemon started with setsid does not outlive a cleaning that returns", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local _, err, code = J.once(srv, {}, { escaping_policy(dir, "", "return true") })
    T.eq(code, 0, "exit status; stderr:\n" .. err)
    T.eq(J.states(srv, "esc"), { ["esc-1"] = "free/-", ["esc-2"] = "free/-" }, "cleaned")
    daemons_gone(dir)
    local back = J.policy("janitor.policy{ type = 'esc', from = 'free', to = 'dirty', clean = function() return true end }")
    T.eq(select(3, J.once(srv, {}, { back })), 0, "esc back to dirty")
  end)
end)

T.test("a daemon started with setsid does not outlive a cleaning that times out or exits", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local p = escaping_policy(dir, 'timeout = "0.5s",', [[
      if res.name == "esc-1" then os.exit(0) end
      require("bosk.core").sleep(60)]])
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 1, "exit status; stderr:\n" .. err)
    T.match(out, "esc%s+timeout%s+1", "one timed out")
    T.eq(J.states(srv, "esc"), { ["esc-1"] = "dirty/-", ["esc-2"] = "dirty/-" }, "back to dirty")
    daemons_gone(dir)
  end)
end)

T.test("SIGTERM with a cleaning that ignores it: killed after --grace, released to on_failure, exit in bound", function()
  local help = T.run({ "janitor", "--help" })
  T.match(help, "%-%-grace .-Kubernetes.-%(default 20s%)", "--help gives the default grace and why")
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local p = J.policy(string.format([[
      janitor.policy{ type = "stuck", clean = function()
        janitor.exec{ "sh", "-c", "trap '' TERM; echo $$ > %s/sh; while :; do sleep 0.1; done" }
        return true
      end }
    ]], dir))
    local j = J.start(srv, { "--grace", "1s" }, { p })
    local sh = T.wait_until(function() return tonumber(T.read_file(dir .. "/sh") or "") end, 10, "cleaning started")
    local t0 = T.now()
    os.execute("kill -TERM " .. sh)
    j:kill("TERM")
    T.eq(j:wait(1 + 4 + 3), 0, "exit status within grace + release phase")
    T.ok(T.now() - t0 < 1 + 4 + 1, "exited within the bound")
    T.eq(J.states(srv, "stuck"), { ["stuck-1"] = "dirty/-" }, "released to its failure state")
    T.ok(not J.live(sh), "the cleaning's shell is gone")
  end)
end)

T.test("SIGTERM with a server that stops answering: the release phase is bounded", function()
  local F = require("fake")
  local f = F.start(T)
  f:reset()
  f:script{ { status = 200, body = F.res("hang-1") } }
  f:default{ status = 404, body = "resource not found" }
  local dir = T.tmpdir()
  local p = J.policy(string.format([[
    janitor.policy{ type = "t", clean = function()
      janitor.exec{ "sh", "-c", "touch %s/started; exec sleep 60" }
      return true
    end }
  ]], dir))
  local state = dir .. "/leases.db"
  local j = J.start({ url = f.url }, { "--grace", "0.5s", "--state-file", state }, { p })
  T.wait_until(function() return T.read_file(dir .. "/started") end, 10, "cleaning started")
  f:default{ delay = 60 }                 -- from now on nothing is answered
  T.sleep(0.3)                            -- an acquire or two now hang
  local t0 = T.now()
  j:kill("TERM")
  local code = j:wait(0.5 + 4 + 3)
  local took = T.now() - t0
  f:stop()
  T.eq(code, 1, "exit status (a lease is left); output:\n" .. j:output())
  T.ok(took < 0.5 + 4 + 1.5, "exited within grace + release phase, took " .. took)
  T.match(j:output(), "release phase over.-leases=hang%-1", "says what was left")
  local out = T.run({ "run", "-e", string.format([[
    local j = assert(require("bosk.journal").open(%q))
    for _, e in ipairs(j:list()) do print(e.name) end
  ]], state) })
  T.eq(out, "hang-1\n", "the lease stays in the state file for the next start")
end)

-- idle.py PORT N SECONDS: opens N idle connections to PORT, prints "open",
-- then for SECONDS prints how many the server has closed, as it happens
-- ("closed K"), and exits.
local IDLE_PY = [[
import select, socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
print("open", flush=True)
closed, deadline = set(), time.monotonic() + secs
while time.monotonic() < deadline and len(closed) < n:
    live = [s for s in socks if s not in closed]
    ready, _, _ = select.select(live, [], [], 0.1)
    for s in ready:
        try:
            data = s.recv(1)
        except OSError:
            data = b""
        if not data:
            closed.add(s)
            print("closed", len(closed), flush=True)
time.sleep(max(0, deadline - time.monotonic()))
]]

local function idle_clients(port, n, secs)
  local script = T.write_file(T.tmpdir() .. "/idle.py", IDLE_PY)
  local p = T.spawn({ "python3", script, tostring(port), tostring(n), tostring(secs) })
  T.wait_until(function() return p:output():find("open") end, 10, "idle connections opened:\n" .. p:output())
  return p
end

local function closed_count(p)
  local n = 0
  for k in p:output():gmatch("closed (%d+)") do n = tonumber(k) end
  return n
end

-- A `bosk run` serving loop.metrics_listen with short limits for 20 s; a
-- port taken meanwhile by a parallel test is retried with another one.
local function limited_endpoint()
  for _ = 1, 3 do
    local port = T.free_port()
    local server = T.spawn({ T.bosk, "run", "-e", string.format([[
      local loop = require "bosk.loop"
      assert(loop.metrics_listen("127.0.0.1", %d, { idle_timeout = 1, max_connections = 6, max_per_ip = 4 }))
      loop.metrics_set("x 1\n")
      loop.timer(20, 0, function() loop.stop() end)
      loop.run()
      loop.close()
    ]], port) })
    local up = T.wait_until(function()
      if not server:alive() then return "exited" end
      return T.http("GET", "http://127.0.0.1:" .. port .. "/metrics") == 200 and "up"
    end, 10, "endpoint up")
    if up == "up" then return server, port end
    if not server:output():find("cannot listen", 1, true) then error("bosk run exited:\n" .. server:output()) end
  end
  error("no free port for the metrics endpoint")
end

T.test("the metrics endpoint closes idle connections and bounds their number", function()
  local server, port = limited_endpoint()
  local clients = idle_clients(port, 12, 6)
  T.wait_until(function() return closed_count(clients) >= 8 end, 3, "the 8 over the per-address limit closed at once")
  T.ok(closed_count(clients) < 12, "the other 4 still open before their idle timeout")
  T.wait_until(function() return closed_count(clients) == 12 end, 4, "the other 4 closed after 1 s idle")
  T.eq(T.http("GET", "http://127.0.0.1:" .. port .. "/metrics"), 200, "still serving")
  server:stop()
end)

T.test("the janitor's --metrics-listen, under 100 idle connections, keeps its descriptors bounded", function()
  local port = T.free_port()
  local p = J.policy([[janitor.policy{ type = "lock", from = "nothing-here", clean = function() return true end }]])
  local j = J.start(srv, { "--metrics-listen", "127.0.0.1:" .. port, "--grace", "0.2s" }, { p })
  T.wait_until(function() return T.http("GET", "http://127.0.0.1:" .. port .. "/metrics") == 200 end, 10, "endpoint up")
  local function fds() return tonumber((T.sh("ls /proc/" .. j.pid .. "/fd | wc -l"))) end
  local before = fds()
  local clients = idle_clients(port, 100, 3)
  T.sleep(0.5)
  local during = fds()
  T.ok(during - before <= 32, string.format("descriptors %d before, %d with 100 idle clients", before, during))
  T.ok(closed_count(clients) >= 100 - 32, "connections over the limit closed: " .. closed_count(clients))
  clients:stop()
  T.wait_until(function() return T.http("GET", "http://127.0.0.1:" .. port .. "/metrics") == 200 end, 5, "serving after")
  j:kill("TERM")
  T.eq(j:wait(10), 0, "janitor exit status")
end)

T.test("os.exit in a policy file at load time fails the load (exit 2), not the run", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy([[
      janitor.policy{ type = "exit", clean = function() return true end }
      os.exit(0)
    ]])
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 2, "exit status; stderr:\n" .. err)
    T.match(err, "policy%.lua:2: os%.exit called while loading policy file .*policy%.lua", "message names the file")
    T.eq(J.states(srv, "exit"), { ["exit-1"] = "dirty/-" }, "nothing leased")
    -- os.exit inside a cleaning still ends only that worker.
    local p2 = J.policy([[janitor.policy{ type = "exit", clean = function() os.exit(0) end }]])
    local _, err2, code2 = J.once(srv, {}, { p2 })
    T.eq(code2, 1, "exit status with os.exit in clean")
    T.match(err2, "name=exit%-1 outcome=", "cleaning ended")
    T.eq(J.states(srv, "exit"), { ["exit-1"] = "dirty/-" }, "back to dirty")
  end)
end)

T.test("loop.http and loop.spawn check their arguments before allocating; one strict request reader", function()
  local out, err, code = T.run({ "run", "-e", [[
    local loop = require "bosk.loop"
    local conn = require("bosk.http").new()
    local cb = function() end
    local function try(f, ...) print((select(2, pcall(f, ...)))) end
    try(loop.http, { url = "http://127.0.0.1:1/", method = {} }, cb)
    try(loop.http, { url = "http://127.0.0.1:1/", bogus = 1 }, cb)
    try(conn.request, conn, { url = "http://127.0.0.1:1/", bogus = 1 })
    try(loop.http, { method = "GET" }, cb)
    try(loop.http, { url = "http://127.0.0.1:1/", timeout = -1 }, cb)
    try(loop.http, { url = "http://127.0.0.1:1/" }, nil)
    try(loop.spawn, "k", "payload", cb)
    loop.close()
  ]] })
  T.eq(code, 0, "bosk run; stderr:\n" .. err)
  T.eq(lines_of(out), {
    "bad argument #1 to 'http' (field 'method' must be a string, got table)",
    "bad argument #1 to 'http' (unknown field 'bogus')",
    "bad argument #1 to 'request' (unknown field 'bogus')",
    "bad argument #1 to 'http' (field 'url' is required)",
    "bad argument #1 to 'http' (field 'timeout' out of range)",
    "bad argument #2 to 'bosk.loop.http' (function expected, got nil)",
    "loop.spawn: no worker handler; call loop.zygote(handler) first",
  }, "messages")
end)

T.cleanup()
