-- bosk janitor --once against a real bosk server: every way a cleaning can
-- end, policy mistakes, exec without a shell, log formats.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)

local srv = J.server([[
resources:
- type: ok-type
  state: dirty
  names: [ok-1, ok-2, ok-3]
- type: bad-type
  state: dirty
  names: [bad-1, bad-2, bad-3, bad-4]
- type: slow-type
  state: dirty
  names: [slow-1]
- type: inj-type
  state: dirty
  names: [inj-1]
- type: bg-type
  state: dirty
  names: [bg-1, bg-2]
- type: free-type
  state: free
  names: [free-1]
- type: mem-type
  state: dirty
  names: [mem-1]
]])
local TYPES = { "ok-type", "bad-type", "slow-type", "inj-type", "free-type", "bg-type", "mem-type" }

T.test("successful cleanings go dirty -> free, exit 0, summary per type", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy([[
      janitor.policy{ type = "ok-type", clean = function(res)
        janitor.log{ msg = "cleaning now", resource = res.name }
        return res.state == "cleaning" and res.owner == "Janitor"
      end }
    ]])
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status; stderr:\n" .. err)
    T.match(out, "ok%-type%s+success%s+3", "summary")
    T.eq(J.states(srv, "ok-type"), { ["ok-1"] = "free/-", ["ok-2"] = "free/-", ["ok-3"] = "free/-" }, "states")
    T.match(err, 'msg="cleaning now"', "janitor.log line")
    T.match(err, "msg=cleaned type=ok%-type name=ok%-%d outcome=success duration=[%d.]+s", "outcome line")
    T.eq(J.states(srv, "free-type"), { ["free-1"] = "free/-" }, "other types untouched")
  end)
end)

T.test("false, nil+err, error() and a crashed worker are failures back to dirty", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy([[
      janitor.policy{ type = "bad-type", clean = function(res)
        if res.name == "bad-1" then return false end
        if res.name == "bad-2" then return nil, "quota exceeded" end
        if res.name == "bad-3" then error("cleaner exploded") end
        os.execute("kill -9 $PPID")    -- the shell's parent is the worker
        return true
      end }
    ]])
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 1, "exit status")
    T.match(out, "bad%-type%s+failed%s+3", "summary failed")
    T.match(out, "bad%-type%s+crashed%s+1", "summary crashed")
    local want = {}
    for i = 1, 4 do want["bad-" .. i] = "dirty/-" end
    T.eq(J.states(srv, "bad-type"), want, "states")
    T.match(err, "name=bad%-1 outcome=failed .-error=\"clean returned false\"", "false")
    T.match(err, "name=bad%-2 outcome=failed .-error=\"quota exceeded\"", "nil, err")
    T.match(err, "name=bad%-3 outcome=failed .-cleaner exploded", "error()")
    T.match(err, "name=bad%-4 outcome=crashed .-killed by signal 9", "crash")
  end)
end)

T.test("timeout kills the worker's whole process group; resource goes dirty", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local p = J.policy(string.format([[
      janitor.policy{ type = "slow-type", timeout = "0.5s", clean = function(res)
        os.execute("sh -c 'echo $$ > %s/child; exec sleep 60'")
        return true
      end }
    ]], dir))
    local started = T.now()
    local out, err, code = J.once(srv, {}, { p })
    T.eq(code, 1, "exit status")
    T.ok(T.now() - started < 10, "finished long before the child's sleep")
    T.match(err, "name=slow%-1 outcome=timeout", "timeout logged")
    local pid = T.read_file(dir .. "/child")
    T.ok(pid and tonumber(pid), "child wrote its pid")
    T.wait_until(function() return not J.live(tonumber(pid)) end, 5, "grandchild sleep gone")
    T.eq(J.states(srv, "slow-type"), { ["slow-1"] = "dirty/-" }, "states")
  end)
end)

T.test("a successful cleaning's background processes are killed before its release", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local p = J.policy(string.format([[
      janitor.policy{ type = "bg-type", clean = function(res)
        os.execute("sh -c 'echo $$ > %s/" .. res.name .. "; exec sleep 60' &")
        for _ = 1, 500 do                      -- until the child has written its pid
          local f = io.open("%s/" .. res.name)
          if f and f:read("n") then f:close() return true end
          if f then f:close() end
          os.execute("sleep 0.01")
        end
        return nil, "background child never started"
      end }
    ]], dir, dir))
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status: " .. err)
    T.eq(J.states(srv, "bg-type"), { ["bg-1"] = "free/-", ["bg-2"] = "free/-" }, "released free")
    for _, name in ipairs({ "bg-1", "bg-2" }) do
      local pid = tonumber(T.read_file(dir .. "/" .. name))
      T.ok(pid, "child of " .. name .. " wrote its pid")
      -- killed before the report; init reaps it a moment later
      T.wait_until(function() return not J.live(pid) end, 5, "background child of " .. name .. " gone")
    end
  end)
end)

-- A worker starts with the collector stopped (it would copy the heap it
-- shares with the worker factory); a cleaning that allocates much gets it
-- back. Without that, this one's heap reaches ~240 MB.
T.test("a cleaning that allocates a lot of garbage keeps a bounded heap", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy([[
      janitor.policy{ type = "mem-type", clean = function()
        local keep = {}
        for i = 1, 500000 do keep[i % 100 + 1] = string.rep("x", 200) .. i end
        local kb = collectgarbage("count")
        return kb < 32 * 1024, "heap grew to " .. math.floor(kb) .. " KB"
      end }
    ]])
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status: " .. err)
    T.eq(J.states(srv, "mem-type"), { ["mem-1"] = "free/-" }, "released free")
  end)
end)

T.test("janitor.exec passes user data literally: no shell injection", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local evil = "$(touch " .. dir .. "/pwned1); `touch " .. dir .. "/pwned2`; touch " .. dir .. "/pwned3 | true"
    -- put the hostile text in the resource's user data via the protocol
    local s = J.post(srv, "/acquire?type=inj-type&state=dirty&dest=leased&owner=setup")
    T.eq(s, 200, "setup acquire")
    local body = require("cjson").encode({ cmd = evil })
    T.eq(J.post(srv, "/update?name=inj-1&owner=setup&state=leased", body), 200, "setup update")
    T.eq(J.post(srv, "/release?name=inj-1&owner=setup&dest=dirty"), 200, "setup release")
    local p = J.policy(string.format([[
      janitor.policy{ type = "inj-type", clean = function(res)
        local text = res.userdata:get("cmd")
        local ok, out, code = janitor.exec{ "printf", "%%s|%%s", res.name, text }
        local f = io.open(%q, "w") f:write(out) f:close()
        return ok and code == 0
      end }
    ]], dir .. "/out"))
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 0, "exit status; stderr:\n" .. err)
    T.eq(T.read_file(dir .. "/out"), "inj-1|" .. evil, "argument reached the program unchanged")
    for i = 1, 3 do T.eq(T.read_file(dir .. "/pwned" .. i), nil, "no file created by injection " .. i) end
  end)
end)

T.test("janitor.exec: exit codes, missing program, timeout, env, output cap", function()
  local out, err, code = T.run({ "run", "-e", [[
    local jp = require "bosk.janitor_policy"
    local exec = jp.exec
    local ok, text, c, why = exec{ "sh", "-c", "echo out; echo err >&2; exit 3" }
    print(ok, text == "out\nerr\n", c, why)
    print((select(3, exec{ "no-such-program-here" })))
    local t0 = require("bosk.core").monotime()
    local ok, _, c, why = exec{ "sh", "-c", "sleep 5", timeout = "0.3s" }
    print(ok, c, why, require("bosk.core").monotime() - t0 < 3)
    print((select(2, exec{ "sh", "-c", "printf %s \"$X\"", env = { X = "a b;c" } })))
    print(#select(2, exec{ "head", "-c", "100000", "/dev/zero", max_output = 10 }) < 100)
    print(pcall(exec, { "echo", timeout = "bogus" }))
  ]] })
  T.eq(code, 0, "bosk run; stderr:\n" .. err)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  T.eq(lines[1], "false\ttrue\t3\tsh exited with status 3", "combined output, exit status")
  T.eq(lines[2], "127", "missing program")
  T.match(lines[3], "^false\t137\tsh timed out after .*true$", "timeout")
  T.eq(lines[4], "a b;c", "env")
  T.eq(lines[5], "true", "cap")
  T.match(lines[6], "^false\t.*janitor.exec: timeout is not a valid duration", "bad timeout raises")
end)

T.test("policy mistakes exit 2 with file:line and field, before leasing", function()
  local cases = {
    { "janitor.policy{ type = 'ok-type', timout = '1m', clean = function() return true end }", "unknown field 'timout'" },
    { "janitor.policy{ type = 'ok-type' }", "field 'clean' %(a function%) is required" },
    { "janitor.policy{ type = 'ok-type', concurrency = 'x', clean = print }", "field 'concurrency' must be a positive integer" },
    { "janitor.policy{ type = 'ok-type', clean = print }\njanitor.policy{ type = 'ok-type', clean = print }", "policy.lua:2: janitor.policy: duplicate type 'ok%-type'" },
    { "janitor.policy{ types = {}, clean = print }", "field 'types' must be a non%-empty list" },
    { "janitor.reaper{ types = {'ok-type'}, expire = 'soon' }", "field 'expire' is not a valid duration" },
    { "janitor.every('1m')", "janitor.every: second argument must be a function" },
    { "janitor.policy{ type = 'ok-type', clean = print ", "expected" },
  }
  -- make the resources dirty again so leasing anything would show
  local p0 = J.policy("janitor.policy{ type = 'ok-type', from = 'free', to = 'dirty', clean = function() return true end }")
  local _, _, c0 = J.once(srv, {}, { p0 })
  T.eq(c0, 0, "reset ok-type to dirty")
  for i, case in ipairs(cases) do
    local p = J.policy(case[1])
    local _, err, code = J.once(srv, {}, { p })
    T.eq(code, 2, "case " .. i .. " exit status")
    T.match(err, "policy%.lua:%d+:", "case " .. i .. " names file and line")
    T.match(err, case[2], "case " .. i .. " message")
  end
  T.eq(J.states(srv, "ok-type"), { ["ok-1"] = "dirty/-", ["ok-2"] = "dirty/-", ["ok-3"] = "dirty/-" }, "nothing leased")
end)

T.test("--log-format json writes one JSON object per line", function()
  local p = J.policy("janitor.policy{ type = 'ok-type', clean = function() return true end }")
  local _, err, code = J.once(srv, { "--log-format", "json" }, { p })
  T.eq(code, 0, "exit status")
  local n = 0
  for line in err:gmatch("[^\n]+") do
    local obj = require("cjson").decode(line)
    if obj.msg == "cleaned" then
      n = n + 1
      T.eq(obj.type, "ok-type", "type field")
      T.eq(obj.outcome, "success", "outcome field")
      T.ok(type(obj.duration) == "number", "duration is a number")
    end
  end
  T.eq(n, 3, "cleaned lines")
end)

T.test("usage errors exit 2 naming the flag", function()
  local _, err, code = T.run({ "janitor", "--pool-size", "0", "x.lua" })
  T.eq(code, 2, "exit status")
  T.contains(err, "--pool-size", "message")
  _, err, code = T.run({ "janitor", "--log-format", "xml", "x.lua" })
  T.eq(code, 2, "exit status")
  T.contains(err, "--log-format", "message")
  _, err, code = T.run({ "janitor" })
  T.eq(code, 2, "no policy")
end)

T.test("--once against a dead server: one error per type, exit 1", function()
  local p = J.policy("janitor.policy{ types = { 'a', 'b' }, clean = function() return true end }")
  local port = T.free_port()
  local out, err, code = T.run({ "janitor", "--once", "--boskos-url", "http://127.0.0.1:" .. port, p }, { timeout = 30 })
  T.eq(code, 1, "exit status")
  local n = 0
  for _ in err:gmatch('msg="acquire failed"') do n = n + 1 end
  T.eq(n, 2, "acquire errors logged (one probe per type)")
  T.contains(out, "errors talking to the server: 2", "summary")
end)

T.test("a failing resource is not cleaned again within the poll interval", function()
  J.check_counts(srv, TYPES, function()
    local p = J.policy("janitor.policy{ type = 'slow-type', clean = function() return false end }")
    local j = J.start(srv, { "--poll-interval", "0.5s" }, { p })
    local function failures()
      local n = 0
      for _ in j:output():gmatch('msg="cleaning failed"') do n = n + 1 end
      return n
    end
    T.wait_until(function() return failures() >= 1 end, 10, "a first failed cleaning")
    local first = failures()
    T.sleep(1.2)              -- without the backoff: hundreds more
    local more = failures() - first
    j:kill("TERM")
    T.eq(j:wait(10), 0, "exit status")
    T.ok(more <= 4, "cleanings in 1.2 s with a 0.5 s poll interval", more)
    T.eq(J.states(srv, "slow-type"), { ["slow-1"] = "dirty/-" }, "back to dirty")
  end)
end)

T.test("a closed log pipe does not stop the janitor", function()
  J.check_counts(srv, TYPES, function()
    local back = J.policy("janitor.policy{ type = 'ok-type', from = 'free', to = 'dirty', clean = function() return true end }")
    T.eq(select(3, J.once(srv, {}, { back })), 0, "ok-type back to dirty")
    local p = J.policy([[
      janitor.policy{ type = "ok-type", concurrency = 1, clean = function(res)
        for i = 1, 50 do janitor.log{ msg = "chatty", i = i } end
        return true
      end }
    ]])
    local cmd = string.format("%s janitor --once --boskos-url %s %s 2>&1 >/dev/null | head -c 10 >/dev/null; echo ${PIPESTATUS[0]}",
                              T.shell_quote(T.bosk), srv.url, T.shell_quote(p))
    local out = T.sh("bash -c " .. T.shell_quote(cmd))
    T.eq(out, "0\n", "janitor exit status")
    T.eq(J.states(srv, "ok-type"), { ["ok-1"] = "free/-", ["ok-2"] = "free/-", ["ok-3"] = "free/-" }, "all cleaned")
  end)
end)

T.test("a name leased again before its release is seen is counted once", function()
  -- The race behind a --once run that never ended (and ignored SIGTERM):
  -- the server frees a resource, a concurrent acquire gets it back, and
  -- the acquire's answer is handled before the release's.
  local out, err, code = T.run({ "run", "-e", [[
    local reg = { policies = {}, reapers = {}, jobs = {} }
    local s = require("bosk.janitor").new(reg, { once = true, pool_size = 1 })
    local old = { name = "r-1", type = "t", owner = "Janitor", via = "cleaning", on_failure = "dirty" }
    local new = { name = "r-1", type = "t", owner = "Janitor", via = "cleaning", on_failure = "dirty" }
    s:hold(old)
    s:hold(new)          -- acquired again, answer handled first
    print(s.held_count)
    s:forget(old)        -- then the old release's acknowledgement
    print(s.held_count, s.held["r-1"] == new)
    s:forget(new)
    print(s.held_count, s:idle())
  ]] })
  T.eq(code, 0, "bosk run; stderr:\n" .. err)
  T.eq(out, "1\n1\ttrue\n0\ttrue\n", "held_count")
end)

srv:stop()
