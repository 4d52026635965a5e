-- `bosk repl`: through a pipe (results, errors, exit status) and through a
-- pseudo-terminal (completion, history, multi-line input, Ctrl-C, Ctrl-D).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local R = require "repl"
local boskos = require "boskos"
local HAVE_CLIENT = type(boskos.client) == "function"
local HAVE_USERDATA = type(boskos.userdata) == "function"

-- T.test, or a skip line when the client module is not there yet.
local function test_if(have, name, fn)
  if have then T.test(name, fn) else T.skip(name, "boskos module not built yet") end
end

local function repl(stdin, args)
  local argv = { "repl" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return T.run(argv, { stdin = stdin, timeout = 30, env = { HOME = T.tmpdir() } })
end

-- ---- pipe mode -------------------------------------------------------

T.test("pipe: expressions print their values as lua does, tab-separated", function()
  local out, err, code = repl('1 + 1\n"text"\n=3, nil, "x"\nx = 5\nx\nprint("p")\n')
  T.eq(err, "", "stderr")
  T.eq(code, 0, "exit status")
  T.eq(out, "2\ntext\n3\tnil\tx\n5\np\n", "stdout")
end)

T.test("pipe: incomplete statements continue on the next lines", function()
  local out, err, code = repl("for i = 1, 3 do\n  io.write(i, ' ')\nend\nlocal function f(a,\n b)\n return a + b end print(f(2, 3))\n")
  T.eq(err, "", "stderr")
  T.eq(code, 0, "exit status")
  T.eq(out, "1 2 3 5\n", "stdout")
end)

T.test("pipe: tables are pretty-printed with sorted keys", function()
  local out, _, code = repl('{b = 2, a = {1, 2, "three"}, [10] = true, ["not id"] = 1}\n{1, nil, 3, [2.5] = "f"}\n')
  T.eq(code, 0, "exit status")
  T.eq(out, '{[10] = true, a = {1, 2, "three"}, b = 2, ["not id"] = 1}\n{1, [3] = 3, [2.5] = "f"}\n', "stdout")
end)

T.test("pipe: long tables are split one entry per line, nested and indented", function()
  local out, _, code = repl('local t = {} for i = 1, 3 do t["key" .. i] = {name = string.rep("x", 30), n = i} end return t\n')
  T.eq(code, 0, "exit status")
  T.eq(out, table.concat({
    "{",
    '  key1 = {n = 1, name = "' .. string.rep("x", 30) .. '"},',
    '  key2 = {n = 2, name = "' .. string.rep("x", 30) .. '"},',
    '  key3 = {n = 3, name = "' .. string.rep("x", 30) .. '"}',
    "}", "" }, "\n"), "stdout")
end)

T.test("pipe: resources print one per line in wire order; cycles are marked", function()
  local out, _, code = repl(table.concat({
    'r1 = {name = "r1", type = "t", state = "busy", owner = "me", lastupdate = "2024-01-01T00:00:00Z", userdata = {}}',
    'r2 = {name = "r2", type = "t", state = "free", owner = "", lastupdate = "2024-01-01T00:00:01Z"}',
    'return {r1, r2}',
    'local t = {} t.self = t return t', "" }, "\n"))
  T.eq(code, 0, "exit status")
  T.eq(out, table.concat({
    "{",
    '  {type = "t", name = "r1", state = "busy", owner = "me", lastupdate = "2024-01-01T00:00:00Z", userdata = {}},',
    '  {type = "t", name = "r2", state = "free", owner = "", lastupdate = "2024-01-01T00:00:01Z"}',
    "}",
    "{self = <cycle>}", "" }, "\n"), "stdout")
end)

test_if(HAVE_USERDATA, "pipe: user data objects print as their map", function()
  local out, err, code = repl('local u = boskos.userdata{b = "2", a = "1"} return u\n')
  T.eq(err, "", "stderr")
  T.eq(code, 0, "exit status")
  T.eq(out, '{a = "1", b = "2"}\n', "stdout")
end)

T.test("pipe: a failing chunk goes to stderr, later chunks still run, exit 1", function()
  local out, err, code = repl('print("before")\nerror("boom")\nprint("after")\n')
  T.eq(code, 1, "exit status")
  T.eq(out, "before\nafter\n", "stdout")
  T.match(err, "^bosk: stdin:1: boom\nstack traceback:\n", "stderr")
  T.ok(not err:find("repl.lua", 1, true), "traceback stops at the chunk", err)
end)

T.test("pipe: syntax errors and unfinished input at end of stdin fail", function()
  local out, err, code = repl('x = = 1\n')
  T.eq(code, 1, "exit status for a syntax error")
  T.eq(out, "", "stdout")
  T.match(err, "^bosk: stdin:1: unexpected symbol near '='", "stderr")
  _, err, code = repl('for i = 1, 2 do\n')
  T.eq(code, 1, "exit status for unfinished input")
  T.contains(err, "<eof>", "stderr")
end)

T.test("pipe: error objects print through __tostring", function()
  local _, err, code = repl('error(setmetatable({}, {__tostring = function() return "custom error" end}))\n')
  T.eq(code, 1, "exit status")
  T.eq(err, "bosk: custom error\n", "stderr")
end)

T.test("pipe: a top-level nil, err is printed and makes the exit status 1", function()
  local out, err, code = repl('nil, "no such thing"\nprint("after")\n')
  T.eq(code, 1, "exit status")
  T.eq(out, "nil\tno such thing\nafter\n", "stdout")
  T.eq(err, "", "stderr")
  out, err, code = repl('nil\nnil, nil\n')
  T.eq({ out, err, code }, { "nil\nnil\tnil\n", "", 0 }, "nil alone is a value, not a failure")
end)

T.test("pipe: help prints a guide to client, boskos and the common calls", function()
  local out, err, code = repl("help\n")
  T.eq({ err, code }, { "", 0 }, "stderr and exit status")
  for _, want in ipairs({ "client", "boskos.client{", "client:acquire(", "client:release(",
                          "client:list{", "boskos.context{" }) do
    T.contains(out, want, "guide")
  end
  local again = repl("help()\n")
  T.eq(again, out, "help() prints the same")
end)

test_if(HAVE_CLIENT, "pipe: client:list with an unknown filter returns nil, err instead of raising", function()
  local out, err, code = repl('client:list{ kind = "x" }\n', { "--boskos-url", "http://127.0.0.1:1" })
  T.eq(code, 1, "a failed call fails the chunk")
  T.eq(err, "", "no traceback")
  T.eq(out, 'nil\tlist: unknown filter "kind" (known: type, state, owner, name)\n', "stdout")
end)

test_if(HAVE_CLIENT, "pipe: boskos and client globals exist; client uses the common flags", function()
  local out, err, code = repl('type(boskos), type(client)\n', { "--owner", "alice", "--boskos-url", "http://127.0.0.1:1" })
  T.eq(err, "", "stderr")
  T.eq(code, 0, "exit status")
  T.match(out, "^table\t%a+\n$", "stdout")
end)

test_if(HAVE_CLIENT, "completion lists client methods, private names only when asked", function()
  local out, err, code = repl(table.concat({
    'c = require("bosk.repl").complete',
    'table.concat(c("client:rel"), " ")',
    '(function() for _, m in ipairs(c("client:")) do if m:find("^client:_") then return false end end return #c("client:") > 10 end)()',
    'c("client:_se")[1]',
    'table.concat(c("whil"), " "), #c("no_such_thing.x"), #c("(1):x")', "" }, "\n"))
  T.eq({ err, code }, { "", 0 }, "stderr and status")
  T.eq(out, "client:release( client:release_all( client:release_one(\ntrue\nclient:_send(\nwhile\t0\t0\n", "stdout")
end)

T.test("usage errors exit 2 and name the flag", function()
  local _, err, code = T.run({ "repl", "--bogus" })
  T.eq(code, 2, "exit status")
  T.contains(err, "--bogus", "stderr")
  _, err, code = T.run({ "repl", "extra" })
  T.eq(code, 2, "exit status for a positional argument")
  T.contains(err, "extra", "stderr")
end)

-- ---- terminal mode ---------------------------------------------------

local PROMPT = "\n> $"

T.test("tty: expressions, multi-line input with >> and Ctrl-D exits 0", function()
  local res = R.check(R.pty(T, {
    { expect = "> $" },
    { send = "1 + 1\n" }, { expect = "\n2" .. PROMPT },
    { send = "for i = 1, 2 do\n" }, { expect = "\n>> $" },
    { send = "print('line', i) end\n" }, { expect = "line\t1\nline\t2" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "multi-line session")
  T.eq(res.exit, 0, "exit status after Ctrl-D")
end)

T.test("tty: Tab completes globals, table fields and methods", function()
  local res = R.check(R.pty(T, {
    { expect = "> $" },
    { send = "prin\t" }, { expect = "print\\($" },
    { send = "'done')\n" }, { expect = "done" .. PROMPT },
    { send = "string.fo\t" }, { expect = "string\\.format\\($" },
    { send = "'%d', 7)\n" }, { expect = "\n7" .. PROMPT },
    { send = "s = 'abc'\n" }, { expect = PROMPT },
    { send = "s:up\t" }, { expect = "s:upper\\($" },
    { send = ")\n" }, { expect = "\nABC" .. PROMPT },
    { send = "obj = setmetatable({}, {__index = {release_one = print, release_all = print, size = 1}})\n" },
    { expect = PROMPT },
    { send = "obj:rel\t" }, { expect = "obj:release_$" },
    { send = "o\t" }, { expect = "one\\($" },
    { send = "'method ok')\n" }, { expect = "method ok" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "completion session")
  T.eq(res.exit, 0, "exit status")
end)

test_if(HAVE_CLIENT, "tty: client methods complete", function()
  R.check(R.pty(T, {
    { expect = "> $" },
    { send = "client:release_o\t" }, { expect = "client:release_one\\($" },
    { send = "\3" }, { expect = PROMPT },
    { send = "boskos.backg\t" }, { expect = "boskos\\.background\\($" },
    { send = ")\n" }, { expect = PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "client completion session")
end)

T.test("tty: history persists in $HOME/.bosk_history across runs", function()
  local home = T.tmpdir()
  R.check(R.pty(T, {
    { expect = "> $" },
    { send = "for i = 1, 2 do\n" }, { expect = "\n>> $" },
    { send = "print('ml', i) end\n" }, { expect = PROMPT },
    { send = "marker_value = 6 * 7\n" }, { expect = PROMPT },
    { send = "\4" }, { exit = 5 },
  }, { env = { HOME = home } }), "first run")
  T.contains(T.read_file(home .. "/.bosk_history") or "", "marker_value = 6 * 7", "history file")
  T.eq(T.sh("stat -c %a " .. T.shell_quote(home .. "/.bosk_history")), "600\n", "history file mode")
  local res = R.check(R.pty(T, {
    { expect = "> $" },
    { send = "\27[A" }, { expect = "marker_value = 6 \\* 7$" },   -- Up recalls it
    { send = "\n" }, { expect = PROMPT },
    { send = "marker_value\n" }, { expect = "\n42" .. PROMPT },
    { send = "\27[A\27[A\27[A\27[A" }, { sleep = 0.2 },   -- the multi-line chunk, whole
    { send = "\n" }, { expect = "ml\t1\nml\t2" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }, { env = { HOME = home } }), "second run")
  T.eq(res.exit, 0, "exit status")
end)

T.test("tty: Ctrl-C cancels the line being typed and the REPL goes on", function()
  local res = R.check(R.pty(T, {
    { expect = "> $" },
    { send = "print('never printed')" }, { expect = "never printed'\\)$" },
    { send = "\3" }, { expect = PROMPT },
    { send = "for i = 1, 2 do\n" }, { expect = "\n>> $" },
    { send = "\3" }, { expect = PROMPT },            -- cancels a multi-line chunk too
    { send = "print('still here')\n" }, { expect = "\nstill here" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "cancel session")
  T.eq(res.exit, 0, "exit status")
  local _, count = res.transcript:gsub("\nnever printed", "")
  T.eq(count, 0, "the cancelled line never ran")
end)

T.test("tty: Ctrl-C interrupts a running loop and a sleep without leaving", function()
  local started = T.now()
  local res = R.check(R.pty(T, {
    { expect = "> $" },
    { send = "while true do end\n" }, { sleep = 0.3 },
    { send = "\3" }, { expect = "interrupted!.*" .. PROMPT, timeout = 5 },
    { send = "(boskos.sleep or require('bosk.core').sleep)(30)\n" }, { sleep = 0.3 },
    { send = "\3" }, { expect = "interrupted!.*" .. PROMPT, timeout = 5 },
    { send = "'alive'\n" }, { expect = "\nalive" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "interrupt session")
  T.eq(res.exit, 0, "exit status")
  T.ok(T.now() - started < 20, "the 30 s sleep was cut short")
end)

T.test("tty: errors are reported and the REPL goes on", function()
  R.check(R.pty(T, {
    { expect = "> $" },
    { send = "error('oops')\n" }, { expect = "bosk: stdin:1: oops.*" .. PROMPT },
    { send = "x = = 1\n" }, { expect = "unexpected symbol.*" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "error session")
end)

test_if(HAVE_CLIENT, "tty: client talks to bosk server; Ctrl-C interrupts a waiting acquire", function()
  local server = T.start_server({ config = "resources:\n- type: t\n  state: free\n  names: [r1]\n" })
  local res = R.check(R.pty(T, {
    { expect = "> $" },
    { send = "r = client:acquire('t', 'free', 'busy')\n" }, { expect = PROMPT },
    { send = "r.name, r.owner\n" }, { expect = "\nr1\trepl-user" .. PROMPT },
    { send = "client:acquire_wait(boskos.context{timeout = 60}, 't', 'free', 'busy')\n" }, { sleep = 0.5 },
    { send = "\3" }, { expect = "interrupted!.*" .. PROMPT, timeout = 8 },
    { send = "client:release(r.name, 'dirty')\n" }, { expect = "\ntrue" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }, { argv = { T.bosk, "repl", "--boskos-url", server.url, "--owner", "repl-user" } }), "client session")
  T.eq(res.exit, 0, "exit status")
  local _, body = T.http("GET", server.url .. "/resources")
  T.contains(body, '"state":"dirty","owner":""', "released through the REPL")
  server:stop()
end)

-- libreadline is dlopen'ed by the REPL's first line, not linked: the
-- one-liners (and the janitor's workers) map neither it nor libtinfo.
T.test("bosk run maps no libreadline; the REPL loads it for its first line", function()
  local out, err, code = T.run({ "run", "-e", [[
    local rl = require "bosk.readline"
    rl.trap_signals()
    local f = assert(io.open("/proc/self/maps"))
    local maps = f:read("a") f:close()
    print(maps:find("libreadline", 1, true) ~= nil, maps:find("libtinfo", 1, true) ~= nil)]] })
  T.eq({ out, err, code }, { "false\tfalse\n", "", 0 }, "bosk run: libreadline, libtinfo mapped")
  R.check(R.pty(T, {
    { expect = "> $" },
    { send = "io.open('/proc/self/maps'):read('a'):find('libreadline', 1, true) ~= nil\n" },
    { expect = "\ntrue" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }), "REPL session")
end)

-- A broken libreadline.so.8 found first (LD_LIBRARY_PATH) stands for a
-- missing one: the REPL names it once and goes on with plain lines.
T.test("tty: without a loadable libreadline the REPL says so and reads plain lines", function()
  local home = T.tmpdir()
  local libdir = T.tmpdir()
  T.write_file(libdir .. "/libreadline.so.8", "")
  local res = R.check(R.pty(T, {
    { expect = "cannot load GNU readline \\(libreadline\\.so\\.8\\).*plain lines.*\n> $" },
    { send = "1 + 1\n" }, { expect = "\n2" .. PROMPT },
    { send = "print('never printed')" }, { sleep = 0.2 },
    { send = "\3" }, { expect = PROMPT },              -- Ctrl-C drops the line
    { send = "for i = 1, 2 do\n" }, { expect = "\n>> $" },
    { send = "print('line', i) end\n" }, { expect = "line\t1\nline\t2" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }, { env = { HOME = home, LD_LIBRARY_PATH = libdir } }), "plain session")
  T.eq(res.exit, 0, "exit status after Ctrl-D")
  local _, said = res.transcript:gsub("cannot load GNU readline", "")
  T.eq(said, 1, "the missing library is named once")
  local _, ran = res.transcript:gsub("\nnever printed", "")
  T.eq(ran, 0, "the cancelled line never ran")
  T.contains(T.read_file(home .. "/.bosk_history") or "", "1 + 1", "history file")
  T.eq(T.sh("stat -c %a " .. T.shell_quote(home .. "/.bosk_history")), "600\n", "history file mode")
end)

T.test("bosk run with no script on a terminal starts the REPL", function()
  R.check(R.pty(T, {
    { expect = "> $" },
    { send = "10 * 10\n" }, { expect = "\n100" .. PROMPT },
    { send = "\4" }, { exit = 5 },
  }, { argv = { T.bosk, "run" } }), "bosk run session")
end)

T.cleanup()
