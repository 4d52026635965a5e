-- The one-liners (acquire, release, heartbeat, metric, reset) and
-- `bosk status`, against `bosk server` and against a tiny fake server
-- that cannot list; plus config/examples/ci-lease.sh end to end.
-- The few failures that take the client's 14 s of retries run in the
-- background from the start so that they overlap.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local cjson = require "cjson"
local R = require "repl"

local CONFIG = [[
resources:
- type: t
  state: free
  names: [t1, t2]
- type: hb
  state: free
  names: [hb1, hb2, hb3, hb4]
- type: slow
  state: free
  names: [s1]
- type: other
  state: dirty
  names: [o1]
- type: ci
  state: free
  names: [c1]
- type: ci2
  state: free
  names: [c2]
]]

local server = T.start_server({ config = CONFIG })

-- A port nothing listens on now (the kernel's choice).
local function S_free_port()
  local out = T.sh([[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])']])
  return assert(tonumber(out), "no free port: " .. out)
end

-- ctl(args, owner, opts) -> stdout, stderr, exit code of `bosk ARGS
-- --boskos-url URL --owner OWNER`
local function ctl(args, owner, opts)
  local argv = {}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = "--boskos-url"
  argv[#argv + 1] = (opts and opts.url) or server.url
  argv[#argv + 1] = "--owner"
  argv[#argv + 1] = owner or "tester"
  return T.run(argv, { timeout = 60 })
end

local function spawn_ctl(args, owner, url)
  local argv = { T.bosk }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  for _, a in ipairs({ "--boskos-url", url or server.url, "--owner", owner or "tester" }) do argv[#argv + 1] = a end
  return T.spawn(argv)
end

-- The resource as the server lists it now (GET /resources).
local function server_resource(name)
  local status, body = T.http("GET", server.url .. "/resources")
  T.eq(status, 200, "GET /resources status")
  for _, r in ipairs(cjson.decode(body)) do if r.name == name then return r end end
  return nil
end

local RESOURCE_LINE = '^{"type":"t","name":"t[12]","state":"busy","owner":"alice","lastupdate":"%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ","userdata":{}}\n$'

-- ---- slow failures, started first -----------------------------------

-- slow: s1 is acquired by alice; mallory's release is refused (401,
-- retried 4 times by the client, as upstream).
local out, err, code = ctl({ "acquire", "--type", "slow", "--state", "free", "--target-state", "busy" }, "alice")
assert(code == 0, "setup: acquire s1: " .. tostring(err))
local slow_release = spawn_ctl({ "release", "--name", "s1", "--target-state", "free" }, "mallory")
-- hb4: heartbeat whose lease is taken away (released by the owner, then
-- leased by someone else).
out, err, code = ctl({ "acquire", "--type", "hb", "--state", "free", "--target-state", "busy" }, "carol")
assert(code == 0, "setup: acquire for the lost lease: " .. tostring(err))
local lost_json = out:gsub("\n$", "")
local lost_name = cjson.decode(lost_json).name
local lost_hb = spawn_ctl({ "heartbeat", "--resource", lost_json, "--period", "200ms", "--retries", "0" }, "carol")
T.wait_until(function() return lost_hb:output():find("heartbeat sent", 1, true) end, 10, "first heartbeat of the lease to lose")
_, err, code = ctl({ "release", "--name", lost_name, "--target-state", "free" }, "carol")
assert(code == 0, "setup: release of the lease to lose: " .. tostring(err))

-- ---- usage -------------------------------------------------------------

T.test("usage errors exit 2 with one line naming the flag", function()
  local cases = {
    { { "acquire", "--type", "t" }, 'required flag%(s%) "state", "target%-state" not set' },
    { { "acquire", "--type", "t", "--state", "free", "--target-state", "busy", "--timeout", "soon" }, "%-%-timeout" },
    { { "release", "--name", "x" }, '"target%-state"' },
    { { "metric" }, '"type"' },
    { { "metrics", "--bogus", "1", "--type", "t" }, "%-%-bogus" },
    { { "reset", "--type", "t", "--state", "busy", "--target-state", "dirty", "--expire", "10" }, "%-%-expire" },
    { { "heartbeat" }, '"resource"' },
    { { "heartbeat", "--resource", "{}", "--period", "0s" }, "%-%-period" },
    { { "heartbeat", "--resource", "{}", "--retries", "many" }, "%-%-retries" },
    { { "release", "--name", "x", "--target-state", "y", "extra" }, '"extra"' },
    { { "status", "--json=maybe" }, "%-%-json" },
  }
  for _, case in ipairs(cases) do
    local o, e, c = T.run(case[1])
    local what = table.concat(case[1], " ")
    T.eq(c, 2, "exit status of " .. what)
    T.eq(o, "", "stdout of " .. what)
    T.match(e:match("^[^\n]*"), case[2], "first stderr line of " .. what)
  end
end)

T.test("--help prints the flags and exits 0", function()
  local o, _, c = T.run({ "heartbeat", "--help" })
  T.eq(c, 0, "exit status")
  T.contains(o, "--period", "usage")
  T.contains(o, "--server-url", "usage lists boskosctl's spelling")
end)

T.test("a client that cannot be built is reported and exits 1 (boskosctl: 0)", function()
  local o, e, c = T.run({ "metric", "--type", "t", "--boskos-url", server.url, "--username", "u" })
  T.eq(c, 1, "exit status")
  T.eq(o, "", "stdout")
  T.eq(e, "failed to initialize the Boskos client: username and passwordFile must be specified together\n", "stderr")
end)

-- ---- acquire / release ---------------------------------------------------

T.test("acquire prints the resource JSON; boskosctl spellings work", function()
  local o, e, c = T.run({ "acquire", "--server-url=" .. server.url, "--owner-name=alice",
                          "--type=t", "--state=free", "--target-state=busy" })
  T.eq(e, "", "stderr")
  T.eq(c, 0, "exit status")
  T.match(o, RESOURCE_LINE, "stdout")
  local r = server_resource(cjson.decode(o).name)
  T.eq({ r.state, r.owner }, { "busy", "alice" }, "server's view")
end)

T.test("acquire with nothing free fails with boskosctl's text, exit 1", function()
  local o, e, c = ctl({ "acquire", "--type", "other", "--state", "free", "--target-state", "busy" })
  T.eq(c, 1, "exit status")
  T.eq(o, "", "stdout")
  T.eq(e, "failed to acquire a resource: resources not found\n", "stderr")
end)

T.test("acquire --timeout waits, then fails when nothing frees up", function()
  local started = T.now()
  local _, e, c = ctl({ "acquire", "--type", "other", "--state", "free", "--target-state", "busy", "--timeout", "1500ms" })
  local took = T.now() - started
  T.eq(c, 1, "exit status")
  T.eq(e, "failed to acquire a resource: resources not found\n", "stderr")
  T.ok(took >= 1.4 and took < 8, "waited about the timeout", took)
end)

T.test("acquire --timeout gets a resource released while it waits", function()
  local o, e, c = ctl({ "acquire", "--type", "t", "--state", "free", "--target-state", "busy" }, "bob")
  T.eq(c, 0, "second t acquired: " .. e)
  local held = cjson.decode(o).name
  local waiter = spawn_ctl({ "acquire", "--type", "t", "--state", "free", "--target-state", "busy", "--timeout", "30s" }, "dave")
  T.sleep(0.5)
  T.ok(waiter:alive(), "the waiter is waiting")
  _, e, c = ctl({ "release", "--name", held, "--target-state", "free" }, "bob")
  T.eq(c, 0, "release: " .. e)
  T.eq(waiter:wait(15), 0, "waiter exit status")
  local r = cjson.decode(waiter:output())
  T.eq({ r.name, r.state, r.owner }, { held, "busy", "dave" }, "waiter's resource")
end)

T.test("Ctrl-C (SIGINT) cancels a waiting acquire: exit 1 with the last error", function()
  local waiter = spawn_ctl({ "acquire", "--type", "other", "--state", "free", "--target-state", "busy", "--timeout", "5m" })
  T.sleep(0.5)
  T.ok(waiter:alive(), "waiting")
  local started = T.now()
  waiter:kill("INT")
  T.eq(waiter:wait(10), 1, "exit status")
  T.ok(T.now() - started < 5, "stopped promptly")
  T.eq(waiter:output(), "failed to acquire a resource: resources not found\n", "output")
end)

T.test("release prints boskosctl's confirmation and frees the resource", function()
  local o, e, c = ctl({ "acquire", "--type", "hb", "--state", "free", "--target-state", "busy" }, "erin")
  T.eq(c, 0, "acquire: " .. e)
  local name = cjson.decode(o).name
  o, e, c = ctl({ "release", "--name", name, "--target-state", "dirty" }, "erin")
  T.eq({ o, e, c }, { 'released resource "' .. name .. '"\n', "", 0 }, "release output")
  local r = server_resource(name)
  T.eq({ r.state, r.owner }, { "dirty", "" }, "server's view")
end)

-- ---- metric / reset --------------------------------------------------------

T.test("metric and metrics print the Metric JSON", function()
  local o, e, c = ctl({ "metric", "--type", "other" })
  T.eq({ o, e, c }, { '{"type":"other","current":{"dirty":1},"owner":{"":1}}\n', "", 0 }, "metric")
  local o2, _, c2 = ctl({ "metrics", "--type", "other" })
  T.eq({ o2, c2 }, { o, 0 }, "metrics (boskosctl's spelling)")
end)

T.test("reset returns expired leases and prints {name: previous owner}", function()
  local o, e, c = ctl({ "acquire", "--type", "hb", "--state", "free", "--target-state", "leased" }, "frank")
  T.eq(c, 0, "acquire: " .. e)
  local name = cjson.decode(o).name
  o, e, c = ctl({ "reset", "--type", "hb", "--state", "leased", "--expire", "0s", "--target-state", "dirty" })
  T.eq({ o, e, c }, { '{"' .. name .. '":"frank"}\n', "", 0 }, "reset")
  local r = server_resource(name)
  T.eq({ r.state, r.owner }, { "dirty", "" }, "server's view")
  o, _, c = ctl({ "reset", "--type", "hb", "--state", "leased", "--expire", "1h", "--target-state", "dirty" })
  T.eq({ o, c }, { "{}\n", 0 }, "nothing to reset")
end)

-- ---- heartbeat ---------------------------------------------------------------

T.test("heartbeat moves lastupdate, sends the user data, stops on SIGTERM and SIGINT", function()
  local o, e, c = ctl({ "acquire", "--type", "hb", "--state", "free", "--target-state", "busy" }, "gina")
  T.eq(c, 0, "acquire: " .. e)
  local res = cjson.decode(o)
  local before = server_resource(res.name).lastupdate
  local json = o:gsub("\n$", ""):gsub('"userdata":{}', '"userdata":{"note":"hi"}')
  T.sleep(1.1)                     -- the server's clock has whole seconds
  for _, sig in ipairs({ "TERM", "INT" }) do
    local hb = spawn_ctl({ "heartbeat", "--resource", json, "--period", "250ms" }, "gina")
    T.wait_until(function() local _, n = hb:output():gsub("heartbeat sent", "") return n >= 2 end, 10, "two heartbeats")
    hb:kill(sig)
    T.eq(hb:wait(10), 0, "exit status after SIG" .. sig)
    local text = hb:output()
    T.match(text, '^heartbeat sent for resource "' .. res.name .. '"\n', "first line")
    T.match(text, '\nreceived interrupt, stopping heartbeats for resource "' .. res.name .. '"\n$', "last line")
  end
  local after = server_resource(res.name)
  T.ok(after.lastupdate > before, "lastupdate moved", { before, after.lastupdate })
  T.eq(after.userdata, { note = "hi" }, "user data sent with the heartbeat")
end)

T.test("heartbeat stops at --timeout with exit 0", function()
  local json = '{"type":"hb","name":"nothing-sent","state":"busy","owner":"x","lastupdate":"2020-01-01T00:00:00Z","userdata":null}'
  local o, e, c = ctl({ "heartbeat", "--resource", json, "--period", "1h", "--timeout", "300ms" })
  T.eq({ o, e, c }, { 'reached timeout, stopping heartbeats for resource "nothing-sent"\n', "", 0 }, "heartbeat")
end)

T.test("heartbeat rejects a resource that is not JSON, exit 1", function()
  local o, e, c = ctl({ "heartbeat", "--resource", "not json" })
  T.eq({ o, c }, { "", 1 }, "stdout and status")
  T.match(e, "^failed to parse resource: .+\n$", "stderr")
end)

-- ---- status --------------------------------------------------------------------

T.test("status shows a table of every type with counts per state and owner", function()
  local o, e, c = ctl({ "status" })
  T.eq(e, "", "stderr")
  T.eq(c, 0, "exit status")
  local lines = {}
  for line in o:gmatch("[^\n]+") do lines[#lines + 1] = line end
  T.match(lines[1], "^TYPE%s+TOTAL%s+FREE%s+BUSY%s+DIRTY.*OWNERS$", "header")
  T.eq(#lines, 7, "header + one row per type")
  local want = { "ci", "ci2", "hb", "other", "slow", "t" }
  local col = lines[1]:find("TOTAL", 1, true) + #"TOTAL" - 1
  for i, t in ipairs(want) do
    T.match(lines[i + 1], "^" .. t .. " ", "row " .. i)
    T.match(lines[i + 1]:sub(col, col), "%d", "TOTAL right-aligned in row " .. i)
  end
  T.match(lines[5], "^other%s+1%s+0%s+0%s+1", "counts of type other")
  T.match(lines[6], "alice=1", "owners of slow")
end)

T.test("status --json prints one Metric object per type; --type filters", function()
  local o, e, c = ctl({ "status", "--json", "--type", "other", "--type", "slow" })
  T.eq({ e, c }, { "", 0 }, "stderr and status")
  T.eq(o, '[{"type":"other","current":{"dirty":1},"owner":{"":1}},'
        .. '{"type":"slow","current":{"busy":1},"owner":{"alice":1}}]\n', "stdout")
end)

-- ---- a server that cannot list ----------------------------------------------------

local function start_fake()
  local dir = T.tmpdir()
  local script = T.write_file(dir .. "/fake.py", [[
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = b""
        if self.path.startswith("/metric?type=w"):
            body = b'{"type":"w","current":{"free":2,"busy":1},"owner":{"":2,"zed":1}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)   # the kernel picks a free port
print(s.server_address[1], flush=True)
s.serve_forever()
]])
  local proc = T.spawn({ "python3", script })
  local port = T.wait_until(function() return proc:output():match("^(%d+)\n") end, 10, "fake server's port")
  local url = "http://127.0.0.1:" .. port
  T.wait_until(function() return T.http("GET", url .. "/") == 200 end, 10, "fake server")
  return url, proc
end
local fake_url = start_fake()

T.test("status against a server without listing asks for --type, exit 1", function()
  local o, e, c = ctl({ "status" }, nil, { url = fake_url })
  T.eq({ o, c }, { "", 1 }, "stdout and status")
  T.contains(e, "does not support listing", "stderr")
  T.contains(e, "--type", "stderr")
end)

T.test("status falls back to /metric for the types given", function()
  local o, e, c = ctl({ "status", "--type", "w" }, nil, { url = fake_url })
  T.eq({ e, c }, { "", 0 }, "stderr and status")
  T.eq(o, "TYPE  TOTAL  FREE  BUSY  OWNERS\nw         3     2     1  zed=1\n", "table")
end)

T.test("a server answering garbage makes reset and acquire fail at once, exit 1", function()
  local started = T.now()
  local o, e, c = ctl({ "reset", "--type", "t", "--state", "busy", "--expire", "1m", "--target-state", "dirty" }, nil, { url = fake_url })
  T.eq({ o, c }, { "", 1 }, "reset stdout and status")
  T.match(e, '^failed to reset resources of type "t": .+\n$', "reset stderr")
  o, e, c = ctl({ "acquire", "--type", "t", "--state", "free", "--target-state", "busy" }, nil, { url = fake_url })
  T.eq({ o, c }, { "", 1 }, "acquire stdout and status")
  T.match(e, "^failed to acquire a resource: .+\n$", "acquire stderr")
  T.ok(T.now() - started < 5, "no retries for unparsable answers")
end)

-- ---- the example CI script ---------------------------------------------------------

T.test("config/examples/ci-lease.sh leases, heartbeats, runs the job, releases", function()
  local dir = T.tmpdir()
  local script = T.root .. "/config/examples/ci-lease.sh"
  local job = T.write_file(dir .. "/job.sh", table.concat({
    'echo "$BOSKOS_RESOURCE" > "$1/name"',
    'printf %s "$BOSKOS_RESOURCE_JSON" > "$1/json"',
    'sleep 0.8',
    'exit 3', "" }, "\n"))
  local cmd = string.format("BOSK=%s BOSKOS_URL=%s BOSKOS_OWNER=ci-job HEARTBEAT_PERIOD=200ms LEASE_WAIT=5s sh %s ci sh %s %s 2>%s/err; echo $?",
    T.shell_quote(T.bosk), T.shell_quote(server.url), T.shell_quote(script), T.shell_quote(job),
    T.shell_quote(dir), T.shell_quote(dir))
  local code = tonumber((T.sh("timeout -k 2 60 sh -c " .. T.shell_quote(cmd))))
  local log = T.read_file(dir .. "/err") or ""
  T.eq(code, 3, "the job's exit status passes through; log:\n" .. log)
  local name = (T.read_file(dir .. "/name") or ""):gsub("%s+$", "")
  T.eq(name, "c1", "the job saw the resource name")
  T.eq(cjson.decode(T.read_file(dir .. "/json")).owner, "ci-job", "the job saw the resource JSON")
  T.contains(log, 'heartbeat sent for resource "' .. name .. '"', "heartbeats ran")
  T.contains(log, 'released resource "' .. name .. '"', "released")
  local r = server_resource(name)
  T.eq({ r.state, r.owner }, { "dirty", "" }, "released as dirty")
end)

T.test("ci-lease.sh releases the resource when the CI system kills the job's group", function()
  local script = T.root .. "/config/examples/ci-lease.sh"
  local proc = T.spawn({ "env", "BOSK=" .. T.bosk, "BOSKOS_URL=" .. server.url, "BOSKOS_OWNER=ci-killed",
                         "HEARTBEAT_PERIOD=200ms", "LEASE_WAIT=5s", "sh", script, "ci2", "sleep", "30" })
  T.wait_until(function() return proc:output():find("heartbeat sent", 1, true) end, 10, "the job running")
  T.eq(server_resource("c2").owner, "ci-killed", "leased while the job runs")
  -- As a CI system stopping a job does: TERM to the script and its children.
  local children = T.sh("ps -o pid= --ppid " .. proc.pid):gsub("%s+", " ")
  T.match(children, "%d", "the script's children")
  os.execute("kill -TERM " .. proc.pid .. " " .. children)
  T.eq(proc:wait(15), 143, "exit status after SIGTERM; output:\n" .. proc:output())
  T.contains(proc:output(), 'released resource "c2"', "released")
  local r = server_resource("c2")
  T.eq({ r.state, r.owner }, { "dirty", "" }, "released as dirty")
end)

-- ---- operator paths (issue 13) -------------------------------------------

T.test("with a password, the TLS warning goes to stderr and stdout is the result only", function()
  local pw = T.write_file(T.tmpdir() .. "/pw", "secret\n")
  local o, e, c = ctl({ "metric", "--type", "other", "--username", "u", "--password-file", pw })
  T.eq(c, 0, "exit status; stderr: " .. e)
  T.eq(o, '{"type":"other","current":{"dirty":1},"owner":{"":1}}\n', "stdout holds only the metric")
  T.eq(e, "[WARNING] should NOT use password without enabling TLS: '" .. server.url .. "'\n", "warning on stderr")
end)

T.test("an unreadable password file exits 1 naming the file", function()
  local missing = T.tmpdir() .. "/no-such-pw"
  local o, e, c = ctl({ "metric", "--type", "t", "--username", "u", "--password-file", missing })
  T.eq({ o, c }, { "", 1 }, "stdout and exit status")
  T.contains(e, "failed to initialize the Boskos client: cannot read the password file: " .. missing
             .. ": No such file or directory\n", "stderr")
end)

T.test("acquire of an unknown type reports the server's text at once", function()
  local started = T.now()
  local o, e, c = ctl({ "acquire", "--type", "no-such-type", "--state", "free", "--target-state", "busy",
                        "--timeout", "4s" })
  T.ok(T.now() - started < 3, "did not wait the 4 s", T.now() - started)
  T.eq({ o, c }, { "", 1 }, "stdout and exit status")
  T.eq(e, 'failed to acquire a resource: resource type "no-such-type" does not exist\n', "stderr")
  started = T.now()
  o, e, c = ctl({ "metric", "--type", "no-such-type" })
  T.ok(T.now() - started < 3, "metric did not retry", T.now() - started)
  T.eq({ o, e, c }, { "", 'failed to get metrics for resource "no-such-type": no available resource no-such-type, try again later.\n', 1 }, "metric")
end)

T.test("a server that is down: the retries are announced at once, --timeout bounds them", function()
  local down = "http://127.0.0.1:" .. S_free_port()
  local p = spawn_ctl({ "metric", "--type", "t", "--timeout", "3s" }, "tester", down)
  local started = T.now()
  T.wait_until(function() return p:output():find("retrying", 1, true) end, 2, "the retry notice")
  T.ok(p:alive(), "still retrying after the notice")
  T.eq(p:wait(10), 1, "exit status")
  local took = T.now() - started
  T.ok(took >= 2 and took < 5, "ended with --timeout 3s", took)
  T.match(p:output(), '^bosk metric: cannot connect to the server: Get "' .. down:gsub("%p", "%%%0")
          .. '/metric%?type=t": [^\n]*; retrying until %-%-timeout 3s has passed\n', "notice first, on its own line")
  T.contains(p:output(), 'failed to get metrics for resource "t": ', "then the failure")
  -- Without --timeout the notice says how long the client's retries take.
  local q = spawn_ctl({ "status" }, "tester", down)
  T.wait_until(function() return q:output():find("retrying", 1, true) end, 2, "the notice without --timeout")
  T.contains(q:output(), "retrying for up to 2m14s (--timeout DURATION gives up sooner)", "the budget")
  q:stop()
end)

T.test("bosk list prints a table, filters by type, state and owner, and --json", function()
  -- By now c2 was released as dirty (the SIGTERM test) and alice holds s1.
  local o, e, c = T.run({ "list", "--boskos-url", server.url, "--type", "ci2" })
  T.eq({ e, c }, { "", 0 }, "stderr and exit status")
  T.match(o, "^NAME +TYPE +STATE +OWNER +LAST UPDATE +USER DATA\nc2 +ci2 +dirty +%- +%d%d%d%d%-[^\n]+ +%-\n$", "table")
  o = T.run({ "list", "--boskos-url", server.url, "--owner", "alice", "--type", "slow" })
  T.match(o, "\ns1 +slow +busy +alice ", "--owner filters by owner")
  T.eq(select(2, o:gsub("\n", "")), 2, "header and one row")
  o = T.run({ "list", "--boskos-url", server.url, "--state", "dirty", "--json" })
  local list = cjson.decode(o)
  T.ok(#list >= 1, "some dirty resources", o)
  for _, r in ipairs(list) do T.eq(r.state, "dirty", "state filter") end
  o, e, c = T.run({ "list", "--boskos-url", server.url, "--type", "no-such-type" })
  T.eq({ o, e, c }, { "no resources\n", "", 0 }, "nothing matches")
  o, e, c = T.run({ "list", "--boskos-url", fake_url })
  T.eq(c, 1, "a server without GET /resources")
  T.contains(e, "does not support listing resources", "says why")
end)

-- ---- the slow failures started at the top ------------------------------------------

T.test("release by the wrong owner fails after the client's retries, exit 1", function()
  T.eq(slow_release:wait(60), 1, "exit status")
  T.eq(slow_release:output(), 'failed to release resource "s1": status 401 Unauthorized, statusCode 401 releasing s1\n', "output")
end)

T.test("heartbeat exits 1 when the lease is lost", function()
  T.eq(lost_hb:wait(60), 1, "exit status")
  T.match(lost_hb:output(), 'failed to send heartbeat for resource "' .. lost_name
          .. '": status 401 Unauthorized, status code 401 updating ' .. lost_name .. "\n$", "output")
end)

server:stop()
T.cleanup()
