-- Live control of a running janitor (issue 15, item 2;
-- docs/janitor-control.md): `bosk janitor --control PATH`, `bosk control`
-- and boskos.janitor_control(path) against a real bosk server and janitor.
-- The cleanings wait for a file per resource ("go-NAME" in the test's
-- directory, at most 20 s), so the test decides when each one ends.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local core = require "bosk.core"

local TYPES = { "ctl-a", "ctl-b" }

local function new_server()
  return J.server([[
resources:
- type: ctl-a
  state: dirty
  names: [a1, a2, a3, a4]
- type: ctl-b
  state: dirty
  names: [b1, b2]
]])
end

-- A policy per type whose cleaning reports progress and waits for go-NAME.
local function waiting_policy(dir)
  return J.policy(([[
    for _, t in ipairs{ "ctl-a", "ctl-b" } do
      janitor.policy{ type = t, on_failure = "broken", clean = function(res)
        janitor.progress("waiting for go-" .. res.name)
        local core = require "bosk.core"
        for _ = 1, 400 do
          if io.open("DIR/go-" .. res.name) or io.open("DIR/go-all") then return true end
          core.sleep(0.05)
        end
        return false, "the test never said go"
      end }
    end
  ]]):gsub("DIR", dir))
end

-- control(sock, ...) -> stdout, stderr, exit code of `bosk control`.
local function control(sock, ...)
  return T.run({ "control", "--socket", sock, ... }, { timeout = 20 })
end

local function open_control(sock)
  return T.wait_until(function() return boskos.janitor_control(sock) end, 10, "the control socket answers")
end

-- count(srv, rtype) -> {state = number of resources in it}
local function count(srv, rtype)
  local out = {}
  for _, r in ipairs(J.resources(srv, rtype)) do out[r.state] = (out[r.state] or 0) + 1 end
  return out
end

local function exists(path)
  return T.sh("test -e " .. T.shell_quote(path) .. " && echo yes"):match("yes") ~= nil
end

local function names_of(list)
  local names = {}
  for _, c in ipairs(list) do names[#names + 1] = c.name end
  table.sort(names)
  return table.concat(names, ",")
end

-- start(srv, pool_size, flags...) -> janitor, control, test dir, socket
-- path: a janitor with the waiting policy and a control socket.
local function start(srv, pool_size, ...)
  local dir = T.tmpdir()
  local sock = dir .. "/control.sock"
  local j = J.start(srv, { "--pool-size", tostring(pool_size), "--control", sock, ... }, { waiting_policy(dir) })
  return j, open_control(sock), dir, sock
end

local function wait_in_flight(j, n)
  local list
  T.wait_until(function()
    list = j:list()
    if not list or #list ~= n then return false end
    for _, c in ipairs(list) do
      if not c.last_progress then return false end   -- each has said where it is
    end
    return true
  end, 15, function() return "cleanings in flight: " .. T.dump(list) end)
  return list
end

T.test("list, kill, pause, resume and breakers steer a running janitor", function()
  local srv = new_server()
  local dir = T.tmpdir()
  local sock = dir .. "/control.sock"
  local port = T.free_port()
  local j = J.start(srv, { "--pool-size", "3", "--control", sock, "--metrics-listen", "127.0.0.1:" .. port },
                    { waiting_policy(dir) })
  local ctl = open_control(sock)

  local mode = T.sh("stat -c %a " .. T.shell_quote(sock)):gsub("%s+$", "")
  T.eq(mode, "600", "the socket is private to the janitor's user")

  local list = wait_in_flight(ctl, 3)
  for _, c in ipairs(list) do
    T.ok(c.pid and J.live(math.tointeger(c.pid)), "list gives the live worker's pid for " .. c.name)
    T.ok(require("bosk.janitor_safety").parse_time(c.started), "started is a time: " .. tostring(c.started))
    T.eq(c.last_progress, "waiting for go-" .. c.name, "last progress of " .. c.name)
    T.eq(c.kind, "cleaning", "kind")
  end
  local out, err, code = control(sock, "list")
  T.eq(code, 0, "bosk control list: " .. tostring(err))
  T.match(out, "^NAME%s+TYPE%s+KIND%s+PID%s+STARTED%s+LAST PROGRESS\n", "a table with a header")
  T.contains(out, "waiting for go-" .. list[1].name, "the table shows the progress")

  -- pause: no new lease of ctl-b; the ones in flight go on.
  local b_in_flight = 0
  for _, c in ipairs(list) do if c.type == "ctl-b" then b_in_flight = b_in_flight + 1 end end
  out, err, code = control(sock, "pause", "ctl-b")
  T.eq(code, 0, "pause: " .. tostring(err))
  T.contains(out, "paused ctl-b", "pause answered")
  local b = ctl:breakers()
  T.eq(b["ctl-b"].paused, true, "breakers shows the pause")
  T.eq(b["ctl-a"].state, "closed", "breaker of ctl-a closed")
  T.wait_until(function()
    local _, text = T.http("GET", "http://127.0.0.1:" .. port .. "/metrics")
    return text and text:find('bosk_janitor_paused{type="ctl-b"} 1', 1, true)
  end, 5, "the paused gauge")

  -- kill one cleaning: it fails to on_failure with the reason; the others go on.
  local victim = list[1]
  out, err, code = control(sock, "kill", victim.name)
  T.eq(code, 0, "kill: " .. tostring(err))
  T.contains(out, "killed the cleaning of " .. victim.name, "kill answered")
  T.wait_until(function() return J.by_name(srv, victim.type)[victim.name].state == "broken" end, 10,
               victim.name .. " released to on_failure")
  local r = J.by_name(srv, victim.type)[victim.name]
  T.contains(r.userdata["bosk.janitor/last-failure"] or "", "killed by bosk control", "the reason is recorded")
  T.wait_until(function() return not J.live(math.tointeger(victim.pid)) end, 5, "the killed worker is gone")
  T.ok(J.live(math.tointeger(list[2].pid)), "the other cleanings still run")

  -- Let every ctl-a cleaning end; ctl-b, paused, has nothing new leased.
  T.write_file(dir .. "/go-a1", "") T.write_file(dir .. "/go-a2", "")
  T.write_file(dir .. "/go-a3", "") T.write_file(dir .. "/go-a4", "")
  T.wait_until(function()
    local states = count(srv, "ctl-a")
    return (states.free or 0) + (states.broken or 0) == 4
  end, 15, "every ctl-a resource cleaned or broken")
  local states = count(srv, "ctl-b")
  T.eq(states.dirty or 0, 2 - b_in_flight, "paused: no ctl-b leased since")

  T.ok(ctl:resume("ctl-b"), "resume")
  T.write_file(dir .. "/go-b1", "") T.write_file(dir .. "/go-b2", "")
  T.wait_until(function()
    local s = count(srv, "ctl-b")
    return (s.free or 0) + (s.broken or 0) == 2
  end, 15, "resumed: ctl-b cleaned")

  T.eq(j:stop(10), 0, "SIGTERM: exit 0")
  T.ok(not exists(sock), "the socket is removed at exit")
  J.settled(srv, TYPES, { states = { "broken" } })
end)

T.test("bad commands get an error answer; bosk control exits 1 or 2", function()
  local srv = new_server()
  local j, ctl, dir, sock = start(srv, 1)

  local r, err = ctl:kill("no-such")
  T.eq(r, nil, "kill of a name not being cleaned")
  T.contains(err, 'no cleaning of "no-such" is running', "says which name")
  r, err = ctl:pause("no-type")
  T.eq(r, nil, "pause of an unknown type")
  T.contains(err, 'no policy cleans type "no-type" (types: ctl-a, ctl-b)', "names the known types")
  r, err = ctl:kill("two words")
  T.eq(r, nil, "a name with a space is refused before sending")
  r, err = ctl:call("frobnicate now")
  T.contains(err, 'unknown command "frobnicate"', "unknown command")
  r, err = ctl:call("list everything")
  T.contains(err, "list takes no argument", "extra argument")

  local _, stderr, code = control(sock, "kill", "no-such")
  T.eq(code, 1, "a refused command exits 1")
  T.contains(stderr, "no-such", "and says why")
  _, stderr, code = control(sock, "frob")
  T.eq(code, 2, "an unknown command is a usage error")
  _, stderr, code = control(sock, "kill")
  T.eq(code, 2, "kill without a name is a usage error")
  _, stderr, code = T.run({ "control", "--socket", dir .. "/nothing-here", "list" }, { timeout = 10 })
  T.eq(code, 1, "no janitor there: exit 1")
  T.contains(stderr, "cannot connect", "says so")

  T.write_file(dir .. "/go-all", "")
  T.eq(j:stop(10), 0, "exit 0")
  J.settled(srv, TYPES, { states = { "broken" } })
end)

-- A raw client (python3) that does what a broken tool might.
local function raw_client(sock, script)
  return T.spawn({ "python3", "-c", [[
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
]] .. script, sock })
end

T.test("a slow or flooding client never blocks the janitor; a huge line is refused", function()
  local srv = new_server()
  local j, ctl, dir, sock = start(srv, 2)
  wait_in_flight(ctl, 2)

  -- Half a command, then silence; and one that floods without reading.
  local silent = raw_client(sock, "s.sendall(b'li')\ntime.sleep(30)\n")
  local flood = raw_client(sock, "s.sendall(b'list\\n' * 200000)\ntime.sleep(30)\n")
  core.sleep(0.5)
  local started = core.monotime()
  local list = ctl:list()
  T.ok(list and #list == 2, "another client is answered meanwhile")
  T.ok(core.monotime() - started < 2, "at once")

  -- A line longer than 4 KiB: an error answer, then the connection closes.
  local out = T.sh("python3 -c " .. T.shell_quote([[
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(10)
s.sendall(b'x' * 5000)
data = b''
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(data.decode())
]]) .. " " .. T.shell_quote(sock))
  T.contains(out, '"error":"command longer than 4096 bytes"', "a huge line is refused")

  -- The janitor kept working: the cleanings end and the next ones start.
  T.write_file(dir .. "/go-all", "")
  T.wait_until(function() return (count(srv, "ctl-a").free or 0) == 4 and (count(srv, "ctl-b").free or 0) == 2 end,
               20, "every resource cleaned while the bad clients hang on")
  silent:kill("KILL")
  flood:kill("KILL")
  T.eq(j:stop(10), 0, "exit 0")
  J.settled(srv, TYPES)
end)

T.test("drain finishes the cleanings in flight, leases nothing more and exits 0", function()
  local srv = new_server()
  local j, ctl, dir, sock = start(srv, 2, "--grace", "1s")
  local list = wait_in_flight(ctl, 2)
  local out, err, code = control(sock, "drain")
  T.eq(code, 0, "drain: " .. tostring(err))
  T.contains(out, "draining: 2 cleaning(s) in flight", "drain answered")
  -- Longer than --grace: a drain waits for the cleanings, it kills none.
  core.sleep(1.5)
  T.ok(j:alive(), "still draining while the cleanings run")
  T.eq(#(ctl:list() or {}), 2, "both still in flight")
  T.write_file(dir .. "/go-all", "")
  T.eq(j:wait(15), 0, "the janitor exits 0 once they are released")
  local cleaned = 0
  for _, rtype in ipairs(TYPES) do
    for name, r in pairs(J.by_name(srv, rtype)) do
      if r.state == "free" then
        cleaned = cleaned + 1
        T.ok(names_of(list):find(name, 1, true), name .. " was one of the two in flight")
      else
        T.eq(r.state, "dirty", name .. " was never leased")
      end
    end
  end
  T.eq(cleaned, 2, "exactly the two in flight were cleaned")
  J.settled(srv, TYPES)
end)

T.test("SIGTERM during a drain still shuts down within --grace", function()
  local srv = new_server()
  local j, ctl, dir, sock = start(srv, 2, "--grace", "1s")
  wait_in_flight(ctl, 2)
  T.ok(ctl:drain(), "drain")
  local started = core.monotime()
  j:kill("TERM")
  T.eq(j:wait(10), 0, "exits after the grace period, the leases released")
  T.ok(core.monotime() - started < 6, "within grace + the release phase")
  J.settled(srv, TYPES, { states = { "broken" } })
end)

T.test("the socket path: stale socket replaced, a file or a live janitor refused", function()
  local srv = new_server()
  local dir = T.tmpdir()
  local policy = waiting_policy(dir)

  local file = T.write_file(dir .. "/not-a-socket", "keep me")
  local _, err, code = T.run({ "janitor", "--boskos-url", srv.url, "--control", file, policy }, { timeout = 20 })
  T.eq(code, 1, "a regular file at the path: exit 1")
  T.contains(err, "exists and is not a socket", "says why")
  T.eq(T.read_file(file), "keep me", "the file is untouched")
  T.eq(count(srv, "ctl-a").dirty, 4, "nothing was leased")

  -- A socket left by a killed process (nobody listens): replaced.
  local stale = dir .. "/stale.sock"
  T.sh("python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' " .. T.shell_quote(stale))
  T.ok(exists(stale), "a stale socket is there")
  local j = J.start(srv, { "--pool-size", "1", "--control", stale }, { policy })
  local ctl = open_control(stale)
  T.ok(ctl:list(), "the janitor took over the stale socket")

  -- A second janitor on the same path: refused, the first one unharmed.
  _, err, code = T.run({ "janitor", "--boskos-url", srv.url, "--control", stale, policy }, { timeout = 20 })
  T.eq(code, 1, "a live socket: exit 1")
  T.contains(err, "another process is listening", "says why")
  T.ok(ctl:list(), "the first janitor still answers")

  T.write_file(dir .. "/go-all", "")
  T.eq(j:stop(10), 0, "exit 0")
  J.settled(srv, TYPES, { states = { "broken" } })
end)

T.test("pause stops health checks of a type; list and kill reach a check", function()
  local srv = J.server([[
resources:
- type: ctl-h
  state: free
  names: [h1, h2, h3, h4]
]])
  local dir = T.tmpdir()
  local sock = dir .. "/control.sock"
  local log = dir .. "/checks"
  -- h1's check waits for go-h1 (so list and kill can see it); the others pass.
  local policy = J.policy(([[
    janitor.policy{ type = "ctl-h", from = "never", on_failure = "dirty", health_every = "0.3s",
      clean = function() return true end,
      health = function(res)
        local f = io.open("DIR/checks", "a") f:write(res.name, "\n") f:close()
        janitor.progress("checking " .. res.name)
        if res.name ~= "h1" then return true end
        local core = require "bosk.core"
        for _ = 1, 400 do
          if io.open("DIR/go-h1") then return true end
          core.sleep(0.05)
        end
        return false, "the test never said go"
      end }
  ]]):gsub("DIR", dir))
  local j = J.start(srv, { "--pool-size", "2", "--control", sock }, { policy })
  local ctl = open_control(sock)
  local list
  T.wait_until(function()
    list = ctl:list()
    for _, c in ipairs(list or {}) do
      if c.name == "h1" and c.last_progress then return true end
    end
  end, 15, function() return "h1's check in the list: " .. T.dump(list) end)
  for _, c in ipairs(list) do
    if c.name == "h1" then T.eq(c.kind, "health", "a check shows as kind health") end
  end
  T.ok(ctl:kill("h1"), "kill a check")
  T.wait_until(function() return J.by_name(srv, "ctl-h").h1.state == "dirty" end, 10, "the killed check's resource to on_failure")
  T.contains(J.by_name(srv, "ctl-h").h1.userdata["bosk.janitor/last-failure"] or "", "killed by bosk control", "with the reason")

  T.ok(ctl:pause("ctl-h"), "pause")
  T.wait_until(function()
    local l = ctl:list()
    return l and #l == 0
  end, 10, "the checks in flight end")
  local before = T.count(T.read_file(log) or "", "\n")
  core.sleep(1.2)   -- four periods
  T.eq(T.count(T.read_file(log) or "", "\n"), before, "paused: no check started")
  T.ok(ctl:resume("ctl-h"), "resume")
  T.wait_until(function() return T.count(T.read_file(log) or "", "\n") > before end, 10, "resumed: checks again")
  T.eq(j:stop(10), 0, "exit 0")
  J.settled(srv, { "ctl-h" })
end)
