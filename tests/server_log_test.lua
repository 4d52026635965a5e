-- bosk server: --log-level and --log-format text|json (the flags of the
-- upstream server's logrus setup): JSON lines carry level, msg and time;
-- a level hides what is below it; bad values are usage errors.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"
local cjson = require "cjson"

local GOOD = "resources:\n- type: t\n  names: [a]\n"
local BAD = "resources:\n- type: t\n  names: [a, NOPE]\n"   -- fails validation on reload

local function lines_of(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- Makes the server log an error line: a config that no longer loads.
local function break_config(srv)
  T.write_file(srv.config, BAD)
  srv.proc:kill("HUP")
  T.wait_until(function() return srv.proc:output():find("reload failed", 1, true) end, 8,
               function() return "reload failure in the log:\n" .. srv.proc:output() end)
end

T.test("--log-format json: every line is an object with level, msg and an RFC 3339 time", function()
  local srv = S.start(T, { config = GOOD, args = { "--log-format", "json" } })
  break_config(srv)
  S.stop(T, srv)
  local levels, msgs = {}, {}
  for _, line in ipairs(lines_of(srv.proc:output())) do
    local ok, obj = pcall(cjson.decode, line)
    T.ok(ok and type(obj) == "table", "a JSON object per line", line)
    T.ok(type(obj.msg) == "string" and obj.msg ~= "", "msg", line)
    T.match(obj.time, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$", "time is RFC 3339")
    levels[obj.level] = true
    msgs[#msgs + 1] = obj.msg
  end
  T.ok(levels.info and levels.error, "info and error lines", levels)
  local all = table.concat(msgs, "\n")
  T.contains(all, "listening on", "start line")
  T.contains(all, "reload failed, keeping the previous config", "the error's text")
  T.contains(all, "stopped", "stop line")
end)

T.test("--log-format json: a start-up failure is one fatal JSON line", function()
  local dir = T.tmpdir()
  local _, err, code = T.run({ "server", "--config", dir .. "/missing.yaml", "--listen", "127.0.0.1:0",
                               "--log-format", "json" }, { timeout = 10 })
  T.eq(code, 2, "exit status")
  local lines = lines_of(err)
  T.eq(#lines, 1, "one line")
  local obj = cjson.decode(lines[1])
  T.eq(obj.level, "fatal", "level")
  T.contains(obj.msg, "missing.yaml", "names the file")
  T.ok(obj.time, "time")
end)

T.test("--log-level error hides info lines, keeps errors", function()
  local srv = S.start(T, { config = GOOD, args = { "--log-level", "error" } })
  break_config(srv)
  S.stop(T, srv)
  local log = srv.proc:output()
  T.ok(not log:find("listening on", 1, true), "no start line", log)
  T.ok(not log:find("stopped", 1, true), "no stop line", log)
  T.ok(not log:find("received SIGHUP", 1, true), "no reload notice", log)
  T.match(log, "bosk server: error: reload failed", "the error, marked as such")
end)

T.test("--log-level warn and warning are the same level; text lines keep their form", function()
  for _, level in ipairs({ "warn", "warning" }) do
    local srv = S.start(T, { config = GOOD, args = { "--log-level", level } })
    S.stop(T, srv)
    T.ok(not srv.proc:output():find("listening on", 1, true), level .. " hides info", srv.proc:output())
  end
  local srv = S.start(T, { config = GOOD, args = { "--log-level", "debug", "--log-format", "text" } })
  S.stop(T, srv)
  T.match(srv.proc:output(), "%d%d:%d%d:%d%dZ bosk server: listening on ", "text info line")
end)

T.test("bad --log-level or --log-format: exit 2 with one line naming the flag", function()
  for _, case in ipairs({ { "--log-level", "loud" }, { "--log-level", "" }, { "--log-format", "xml" } }) do
    local out, err, code = T.run({ "server", "--config", "/nonexistent.yaml", case[1], case[2] }, { timeout = 10 })
    T.eq(code, 2, table.concat(case, " ") .. ": exit status")
    T.eq(out, "", "nothing on stdout")
    local first = err:match("^[^\n]*")
    T.contains(first, case[1], "first line names the flag")
    T.contains(first, '"' .. case[2] .. '"', "and the value")
  end
end)
