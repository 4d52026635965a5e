-- bosk server under connection exhaustion (issue 11, item 4): the soft fd
-- limit raised to the hard one, a per-client-address connection limit,
-- and a deadline on receiving a whole request that a client trickling one
-- byte at a time cannot stretch. Real sockets on 127.0.0.1; the clients
-- that misbehave connect from 127.0.0.2 (also loopback), so that they are
-- another client address than the well-behaved curl.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local CONNS = T.write_file(T.tmpdir() .. "/conns.py", [[
import socket, sys, time

def connect(port, src):
    s = socket.socket()
    s.settimeout(2)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    return s

def closed(s):
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "hold":
    # hold N SRC WAIT READYFILE HOLD [OPEN]: open N half requests, report
    # after WAIT seconds (or as soon as only OPEN are left open: a busy
    # machine may take a while to close the rest) how many the server
    # closed, keep them HOLD seconds more (sending a byte every half
    # second, as a trickling client does)
    n, src, wait, ready, hold = int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), sys.argv[6], float(sys.argv[7])
    want_open = int(sys.argv[8]) if len(sys.argv) > 8 else None
    socks, refused = [], 0
    for _ in range(n):
        try:
            socks.append(connect(port, src))
        except OSError:
            refused += 1
    deadline = time.time() + wait
    gone = set()
    while True:
        gone |= {i for i, s in enumerate(socks) if i not in gone and closed(s)}
        if time.time() >= deadline or (want_open is not None and len(socks) - len(gone) <= want_open):
            break
        time.sleep(0.1)
    if want_open is not None:
        time.sleep(0.5)   # a server that closes too many shows it now
        gone |= {i for i, s in enumerate(socks) if i not in gone and closed(s)}
    shut = len(gone)
    with open(ready, "w") as f:
        f.write("open %d closed %d\n" % (len(socks) - shut, shut + refused))
    end = time.time() + hold
    while time.time() < end:
        for s in socks:
            try:
                s.send(b"X")
            except OSError:
                pass
        time.sleep(0.5)
elif mode == "trickle":
    # trickle SRC INTERVAL MAX: one byte of a never-ending header every
    # INTERVAL s; prints how long until the server closed the connection
    src, interval, limit = sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    s = connect(port, src)
    s.sendall(b"X-Slow: ")
    start = time.time()
    while time.time() - start < limit:
        time.sleep(interval)
        if closed(s):
            print("closed %.1f" % (time.time() - start))
            sys.exit(0)
        s.setblocking(True)
        try:
            s.send(b"a")
        except OSError:
            print("closed %.1f" % (time.time() - start))
            sys.exit(0)
    print("open %.1f" % (time.time() - start))
]])

-- Starts `bosk server` on a kernel-chosen port; opts.ulimit: a shell
-- `ulimit` argument applied first; opts.env: environment.
local function start(opts)
  local cfg = T.write_file(T.tmpdir() .. "/c.yaml", "resources:\n- type: t\n  state: free\n  names: [a, b]\n")
  local cmd = string.format("ulimit %s && exec %s server --config %s --listen 127.0.0.1:0",
    opts.ulimit or "-a >/dev/null", T.shell_quote(T.bosk), T.shell_quote(cfg))
  local p = T.spawn({ "bash", "-c", cmd }, { env = opts.env })
  local port = T.wait_until(function()
    if not p:alive() then error("bosk server exited:\n" .. p:output(), 0) end
    return tonumber(p:output():match("%(port (%d+);"))
  end, 10, "the port in the server's log")
  return { proc = p, port = port, url = "http://127.0.0.1:" .. port }
end

local function stop(srv)
  srv.proc:kill("TERM")
  T.eq(srv.proc:wait(10), 0, "server exit status")
  local log = srv.proc:output()
  T.ok(not log:find("Sanitizer", 1, true) and not log:find("runtime error", 1, true), "sanitizer report", log)
end

local function limits_of(pid)
  local text = T.read_file("/proc/" .. pid .. "/limits") or ""
  local soft, hard = text:match("Max open files%s+(%S+)%s+(%S+)")
  return tonumber(soft) or soft, tonumber(hard) or hard
end

local _, own_hard = limits_of("self")
if type(own_hard) ~= "number" or own_hard <= 256 then
  T.skip("the soft descriptor limit is raised to the hard one", "hard limit " .. tostring(own_hard))
else T.test("the soft descriptor limit is raised to the hard one", function()
  local srv = start{ ulimit = "-Sn 256" }
  local soft, hard2 = limits_of(srv.proc.pid)
  T.eq(soft, hard2, "soft limit of the running server")
  T.ok(soft > 256, "raised", soft)
  T.contains(srv.proc:output(), "per client address", "limits logged")
  stop(srv)
end) end

T.test("connections from one address are capped; others still get in", function()
  local srv = start{ env = { BOSK_SERVER_CONNS_PER_IP = "8" } }
  local ready = T.tmpdir() .. "/ready"
  local holder = T.spawn{ "python3", CONNS, "hold", tostring(srv.port), "20", "127.0.0.2", "10", ready, "8", "8" }
  local report = T.wait_until(function() return T.read_file(ready) end, 15, "the holder's report")
  T.eq(report, "open 8 closed 12\n", "8 kept, the rest closed at once")
  local status = T.http("GET", srv.url .. "/metric?type=t", nil, "--max-time 5")
  T.eq(status, 200, "another address is served")
  holder:kill("KILL")
  stop(srv)
end)

T.test("a request trickled one byte at a time is cut at the deadline", function()
  local srv = start{ env = { BOSK_SERVER_REQUEST_DEADLINE = "2" } }
  local out = T.sh(string.format("python3 %s trickle %d 127.0.0.2 0.3 10", CONNS, srv.port))
  local state, secs = out:match("^(%a+) ([%d.]+)")
  T.eq(state, "closed", "closed by the server: " .. out)
  T.ok(tonumber(secs) >= 1.5 and tonumber(secs) <= 5, "after about 2 s", out)
  -- a request that completes in time is answered; its connection then has
  -- the same deadline to start and send the next one
  T.eq((T.http("GET", srv.url .. "/metric?type=t")), 200, "normal request")
  T.wait_until(function() return srv.proc:output():find("closed 1 connection", 1, true) end, 5, "the log line")
  stop(srv)
end)

T.test("300 trickling connections under a 256-descriptor limit leave the server reachable", function()
  local srv = start{ ulimit = "-n 256", env = { BOSK_SERVER_CONNS_PER_IP = "32" } }
  local ready = T.tmpdir() .. "/ready"
  local holder = T.spawn{ "python3", CONNS, "hold", tostring(srv.port), "300", "127.0.0.2", "0.5", ready, "15" }
  T.wait_until(function() return T.read_file(ready) end, 30, "the holder's report")
  local started = T.now()
  local status = T.http("GET", srv.url .. "/metric?type=t", nil, "--max-time 5")
  T.eq(status, 200, "served while 300 connections trickle")
  T.ok(T.now() - started < 3, "promptly", T.now() - started)
  holder:kill("KILL")
  stop(srv)
end)

T.cleanup()
