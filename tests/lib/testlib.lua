-- testlib: the small harness every tests/*_test.lua uses.
-- Prints TAP lines ("ok - name", "not ok - name", "ok - name # skip why");
-- tests/lib/tap.lua runs a file and adds the plan line from the counts
-- kept here. Processes started through it are killed when the file ends;
-- every wait is bounded in time.
local core = require "bosk.core"
local T = {}

T.root = os.getenv("BOSK_ROOT") or "."
T.bosk = os.getenv("BOSK") or "build/bosk"
if T.bosk:sub(1, 1) ~= "/" then T.bosk = T.root .. "/" .. T.bosk end
package.path = T.root .. "/tests/lib/?.lua;" .. package.path

local procs, tmpdirs = {}, {}
-- Shared by every copy of this file in one process (test files load it
-- with dofile) and read by tests/lib/tap.lua for the plan.
local counts = rawget(_G, "__testlib_counts") or { passed = 0, failed = 0, skipped = 0 }
_G.__testlib_counts = counts

local function dump(v, depth)
  depth = depth or 0
  if type(v) ~= "table" or depth > 3 then
    return type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. dump(v[k], depth + 1) end
  return "{" .. table.concat(parts, ", ") .. "}"
end
T.dump = dump

local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
T.deep_eq = deep_eq

-- Assertions raise with a message; T.test turns that into "not ok".
function T.eq(got, want, what)
  if not deep_eq(got, want) then
    error(string.format("%s: got %s, want %s", what or "value", dump(got), dump(want)), 2)
  end
end
function T.ok(v, what, ...)
  if not v then error((what or "assertion failed") .. (select("#", ...) > 0 and (": " .. dump((...))) or ""), 2) end
  return v
end
function T.match(s, pattern, what)
  if type(s) ~= "string" or not s:find(pattern) then
    error(string.format("%s: %s does not match %q", what or "string", dump(s), pattern), 2)
  end
end
function T.contains(s, plain, what)
  if type(s) ~= "string" or not s:find(plain, 1, true) then
    error(string.format("%s: %s does not contain %q", what or "string", dump(s), plain), 2)
  end
end

-- T.count(text, plain) -> how many times plain occurs in text.
function T.count(text, plain)
  local n, at = 0, 1
  while true do
    local i, j = text:find(plain, at, true)
    if not i then return n end
    n, at = n + 1, j + 1
  end
end

-- T.test(name, fn): runs fn now; reports ok / not ok with the error.
function T.test(name, fn)
  local started = core.monotime()
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    counts.passed = counts.passed + 1
    print(string.format("ok - %s (%.2fs)", name, core.monotime() - started))
  else
    counts.failed = counts.failed + 1
    print("not ok - " .. name)
    for line in tostring(err):gmatch("[^\n]+") do print("  " .. line) end
  end
  io.stdout:flush()
end
function T.skip(name, why)
  counts.skipped = counts.skipped + 1
  print("ok - " .. name .. " # skip " .. why)
  io.stdout:flush()
end

-- T.wait_until(fn, seconds, what): polls fn every 20 ms until it returns a
-- truthy value or the deadline passes (then raises naming `what`; a
-- function `what` is called then, to say what was seen instead).
function T.wait_until(fn, seconds, what)
  local deadline = core.monotime() + (seconds or 10)
  repeat
    local v = fn()
    if v then return v end
    core.sleep(0.02)
  until core.monotime() > deadline
  if type(what) == "function" then what = what() end
  error("timed out after " .. (seconds or 10) .. "s waiting for " .. (what or "condition"), 2)
end

T.sleep, T.now = core.sleep, core.monotime

function T.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = T.shell_quote

-- T.sh(cmd) -> output, ok, exit_code (stdout and stderr together when cmd says 2>&1)
function T.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok == true, code
end

-- T.run(args, opts) -> stdout, stderr, exit code for `bosk ARGS...`.
-- opts.stdin: text fed on stdin; opts.env: table of extra environment.
function T.run(args, opts)
  opts = opts or {}
  local dir = T.tmpdir()
  local words = {}
  for k, v in pairs(opts.env or {}) do words[#words + 1] = k .. "=" .. q(v) end
  words[#words + 1] = q(opts.bin or T.bosk)
  for _, a in ipairs(args) do words[#words + 1] = q(a) end
  local stdin = "/dev/null"
  if opts.stdin then
    stdin = dir .. "/stdin"
    T.write_file(stdin, opts.stdin)
  end
  -- With a timeout, `timeout` runs the program itself (env assignments go
  -- through env(1)), so its SIGKILL reaches the program, not a wrapper
  -- shell; the exit status is then 124 (or 137) instead of a hang.
  local prefix = ""
  if opts.timeout then prefix = "timeout -k 2 " .. opts.timeout .. " env " end
  local cmd = string.format("%s%s <%s >%s/out 2>%s/err; echo $?", prefix, table.concat(words, " "),
                            q(stdin), dir, dir)
  local code = tonumber((T.sh(cmd)))
  return T.read_file(dir .. "/out"), T.read_file(dir .. "/err"), code
end

function T.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
function T.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

function T.tmpdir()
  local dir = T.sh("mktemp -d ${TMPDIR:-/tmp}/bosk-test.XXXXXX"):gsub("%s+$", "")
  tmpdirs[#tmpdirs + 1] = dir
  return dir
end

-- A process started in the background, in its own process group.
local Proc = {}
Proc.__index = Proc
function Proc:alive()
  return os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end
function Proc:kill(sig)
  os.execute(string.format("kill -%s %d 2>/dev/null", sig or "TERM", self.pid))
end
-- Waits for the process to exit; returns its exit status (or nil on timeout).
function Proc:wait(seconds)
  local deadline = core.monotime() + (seconds or 10)
  while core.monotime() < deadline do
    local code = T.read_file(self.dir .. "/rc")
    if code and code ~= "" then return tonumber(code) end
    core.sleep(0.02)
  end
  return nil
end
function Proc:output() return T.read_file(self.dir .. "/out") or "" end
function Proc:stop(seconds)
  if self:alive() then
    self:kill("TERM")
    if self:wait(seconds or 5) == nil then self:kill("KILL") self:wait(2) end
  end
  return tonumber(T.read_file(self.dir .. "/rc"))
end

-- T.spawn(args, opts) -> Proc running `args` (a list) with output in proc.dir/out.
-- The shell that waits for it records the exit status in proc.dir/rc.
function T.spawn(args, opts)
  opts = opts or {}
  local dir = T.tmpdir()
  local words = {}
  for k, v in pairs(opts.env or {}) do words[#words + 1] = k .. "=" .. q(v) end
  for _, a in ipairs(args) do words[#words + 1] = q(a) end
  local inner = string.format("%s </dev/null >%s/out 2>&1 & echo $! >%s/pid; wait $!; echo $? >%s/rc.tmp; mv %s/rc.tmp %s/rc",
                              table.concat(words, " "), dir, dir, dir, dir, dir)
  os.execute("setsid sh -c " .. q(inner) .. " >/dev/null 2>&1 &")
  local pid = T.wait_until(function()
    local s = T.read_file(dir .. "/pid")
    return s and tonumber(s)
  end, 5, "pid of " .. args[1])
  local p = setmetatable({ pid = pid, dir = dir, args = args }, Proc)
  procs[#procs + 1] = p
  return p
end

-- Below the kernel's ephemeral range, so no outgoing connection (curl,
-- libcurl, the janitor's own) can take a port between the choice and the
-- bind: that race made tests fail now and then under load.
local function ephemeral_low()
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  local low = f and tonumber((f:read("l") or ""):match("^%s*(%d+)"))
  if f then f:close() end
  return low or 32768
end

-- T.free_port() -> a TCP port on 127.0.0.1 nobody listens on right now.
function T.free_port()
  local low = math.max(ephemeral_low(), 12000)
  for _ = 1, 50 do
    local port = 10000 + (core.random_id() % (low - 10000))
    -- bash, not sh: dash has no /dev/tcp, so every port would look free.
    local busy = os.execute(string.format(
      "bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null", port))
    if not busy then return port end
  end
  error("no free port found")
end

-- T.http(method, url, body) -> status, body, headers (via the curl CLI, so
-- tests check the server with a client that is not ours).
function T.http(method, url, body, extra)
  local dir = T.tmpdir()
  local cmd = string.format("curl -s -S -X %s -o %s/body -D %s/headers -w '%%{http_code}' %s %s %s",
                            method, dir, dir, body and ("--data-binary @" .. T.write_file(dir .. "/req", body)) or "",
                            extra or "", q(url))
  local status = T.sh(cmd)
  return tonumber(status), T.read_file(dir .. "/body") or "", T.read_file(dir .. "/headers") or ""
end

-- T.start_server{config = YAML text | path, storage =, args = {...}} -> server
-- with .url, .port, .proc, :stop(). Waits until GET / answers 200. A port
-- taken meanwhile by a parallel test is retried with another one.
local function start_server_once(opts)
  local dir = T.tmpdir()
  local config = opts.config_path or T.write_file(dir .. "/config.yaml", opts.config or
    "resources:\n- type: t\n  state: free\n  names: [r1, r2]\n")
  local port = opts.port or T.free_port()
  local args = { T.bosk, "server", "--config", config, "--listen", "127.0.0.1:" .. port }
  if opts.storage then args[#args + 1] = "--storage" args[#args + 1] = opts.storage end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local proc = T.spawn(args, { env = opts.env })
  local url = "http://127.0.0.1:" .. port
  T.wait_until(function()
    if not proc:alive() then error("bosk server exited:\n" .. proc:output(), 0) end
    return T.http("GET", url .. "/") == 200
  end, 10, "bosk server on " .. url)
  return { url = url, port = port, proc = proc, config = config, dir = dir,
           stop = function(self, s) return self.proc:stop(s) end }
end

function T.start_server(opts)
  opts = opts or {}
  local last
  for _ = 1, opts.port and 1 or 3 do
    local ok, server = pcall(start_server_once, opts)
    if ok then return server end
    last = server
    if not tostring(server):find("in use", 1, true) then break end
  end
  error(last, 2)
end

-- Kills what the file left running and removes temp dirs.
local function cleanup()
  for _, p in ipairs(procs) do
    if p:alive() then p:kill("KILL") end
    os.execute("kill -KILL -" .. p.pid .. " 2>/dev/null")
  end
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf " .. q(d)) end
end
T.cleanup = cleanup
setmetatable(T, { __gc = cleanup })
_G.__testlib_sentinel = T

return T
