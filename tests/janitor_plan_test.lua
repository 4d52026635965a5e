-- `bosk janitor --plan` (issue 15 item 1) against a real bosk server: the
-- resources in each policy's `from` state are listed and each clean (and
-- verify) runs in a worker where only readonly execs run and every other
-- prints `would run: ...`; nothing changes on the server (listing and
-- history compared before and after); the per-type summary and the exit
-- codes; the policy's timeout and exec_scope; upstream's --janitor-path;
-- and a server without the listing endpoint (tests/fake_server.py).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local F = require "fake"

local srv = J.server([[
resources:
- type: pt
  state: dirty
  names: [pt-1, pt-2, pt-bad]
- type: pt
  state: free
  names: [pt-free]
- type: other
  state: dirty
  names: [other-1]
- type: gcp-project
  state: dirty
  names: [proj-a, proj-b]
]])

local TYPES = { "pt", "other", "gcp-project" }
local ALL_NAMES = { "pt-1", "pt-2", "pt-bad", "pt-free", "other-1", "proj-a", "proj-b" }

-- snapshot() -> what the server shows of every resource and its history
local function snapshot()
  local out = {}
  for _, t in ipairs(TYPES) do
    local status, body = T.http("GET", srv.url .. "/resources?type=" .. t)
    T.eq(status, 200, "GET /resources?type=" .. t)
    out["resources " .. t] = body
  end
  for _, name in ipairs(ALL_NAMES) do
    local status, body = T.http("GET", srv.url .. "/history?name=" .. name)
    T.eq(status, 200, "GET /history?name=" .. name)
    out["history " .. name] = body
  end
  return out
end

-- plan(flags, policies) -> stdout, stderr, exit code; the server must look
-- exactly the same afterwards.
local function plan(flags, policies, url)
  local before = snapshot()
  local args = { "janitor", "--plan", "--boskos-url", url or srv.url }
  for _, f in ipairs(flags or {}) do args[#args + 1] = f end
  for _, p in ipairs(policies or {}) do args[#args + 1] = p end
  local out, err, code = T.run(args, { timeout = 60 })
  T.eq(snapshot(), before, "the server after --plan")
  return out, err, code
end

T.test("the resources in `from` are listed and each clean runs; only readonly execs run", function()
  local dir = T.tmpdir()
  local policy = J.policy(string.format([[
local dir = %q
janitor.policy{
  type = "pt",
  clean = function(res)
    janitor.progress("looking at " .. res.name)
    janitor.log{ msg = "plan log line", name = res.name }
    local ok, out, code = janitor.exec{ "sh", "-c", "touch " .. dir .. "/read-$0; echo seen $0", res.name, readonly = true }
    assert(ok and code == 0 and out == "seen " .. res.name .. "\n", "readonly exec ran: " .. tostring(out))
    local wok, wout, wcode = janitor.exec{ "touch", dir .. "/deleted-" .. res.name }
    assert(wok == true and wout == "" and wcode == 0, "a would-run exec returns true, '', 0")
    janitor.exec{ "gcloud", "projects", "delete", res.name, "--quiet", "--filter", "labels.x = 'y'" }
    if res.name == "pt-bad" then return nil, "pt-bad is broken" end
    return true
  end,
}
]], dir))
  local out, err, code = plan({}, { policy })
  T.eq(code, 0, "exit status (stderr: " .. tostring(err) .. ")")
  for _, name in ipairs({ "pt-1", "pt-2", "pt-bad" }) do
    T.ok(T.read_file(dir .. "/read-" .. name), "the readonly exec ran for " .. name)
    T.ok(not T.read_file(dir .. "/deleted-" .. name), "the other exec did not run for " .. name)
    T.contains(out, "plan pt " .. name .. " (dirty", "a header for " .. name)
    T.contains(out, "would run: touch " .. dir .. "/deleted-" .. name .. "\n", "would run for " .. name)
    T.contains(out, "would run: gcloud projects delete " .. name .. " --quiet --filter 'labels.x = '\\''y'\\'''\n",
               "arguments quoted for the shell")
    T.contains(err, 'message="looking at ' .. name .. '"', "janitor.progress for " .. name)
    T.contains(err, "plan log line", "janitor.log")
  end
  T.ok(not out:find("pt-free", 1, true), "a free resource is not in the plan")
  T.ok(not T.read_file(dir .. "/read-pt-free"), "nor cleaned")
  T.contains(out, "plan summary (type resources would-succeed would-fail):\n  pt 3 2 1\n", "summary")
  T.contains(out, "would fail:\n  pt pt-bad: pt-bad is broken\n", "the reason")
  T.eq(T.count(out, "would run: "), 6, "would-run lines")
  J.settled(srv, TYPES)
end)

T.test("verify runs after clean; a raised error fails the run with status 1", function()
  local policy = J.policy([[
janitor.policy{
  types = { "pt", "other" },
  clean = function(res)
    if res.name == "other-1" then error("clean blew up on " .. res.name) end
    return true
  end,
  verify = function(res)
    janitor.exec{ "gcloud", "projects", "describe", res.name }
    if res.name == "pt-2" then return false, "pt-2 still has instances" end
    return true
  end,
}
]])
  local out, _, code = plan({}, { policy })
  T.eq(code, 1, "a policy raised an error")
  T.contains(out, "would run: gcloud projects describe pt-1\n", "verify ran")
  T.ok(not out:find("describe other-1", 1, true), "no verify after a failed clean")
  T.contains(out, "  pt 3 2 1\n", "pt: 3 resources, 2 would succeed")
  T.contains(out, "  other 1 0 1\n", "other: 1 would fail")
  T.contains(out, "pt pt-2: verify failed: pt-2 still has instances", "verify's reason")
  T.contains(out, "other other-1: (error) clean raised: ", "the raised error in the summary")
  T.contains(out, "clean blew up on other-1", "its message")
  T.contains(out, "policy errors: 1\n", "counted")
  J.settled(srv, TYPES)
end)

T.test("each run is isolated and bounded by the policy's timeout", function()
  local policy = J.policy([[
janitor.policy{
  type = "pt", timeout = "1s",
  clean = function(res)
    if res.name == "pt-1" then janitor.exec{ "sleep", "30", readonly = true } end
    _G.leak = (_G.leak or 0) + 1      -- a fresh worker each time: never above 1
    if _G.leak ~= 1 then return nil, "state leaked between runs" end
    return true
  end,
}
]])
  local started = T.now()
  local out, _, code = plan({}, { policy })
  T.ok(T.now() - started < 15, "bounded by the timeout, not the sleep")
  T.eq(code, 0, "a timeout is a would-fail, not an error")
  T.contains(out, "pt pt-1: timed out after 1s", "the timeout")
  T.contains(out, "  pt 3 2 1\n", "the others succeed")
  J.settled(srv, TYPES)
end)

T.test("exec_scope still applies in plan mode", function()
  local dir = T.tmpdir()
  local policy = J.policy(string.format([[
janitor.policy{
  type = "pt", exec_scope = "name",
  clean = function(res)
    janitor.exec{ "touch", %q .. "/scoped-" .. res.name }
    if res.name == "pt-2" then janitor.exec{ "touch", %q .. "/unscoped", readonly = true } end
    return true
  end,
}
]], dir, dir))
  local out, _, code = plan({}, { policy })
  T.eq(code, 0, "a refused exec is a would-fail")
  T.contains(out, "would run: touch " .. dir .. "/scoped-pt-1\n", "a scoped exec is printed")
  T.ok(not T.read_file(dir .. "/unscoped"), "the refused readonly exec did not run")
  T.contains(out, "pt pt-2: exec_scope: a janitor.exec without the resource name 'pt-2' was refused", "why")
  T.contains(out, "  pt 3 2 1\n", "summary")
end)

T.test("upstream --janitor-path types print the command for each resource", function()
  local out, err, code = plan({ "--resource-type", "gcp-project", "--janitor-path", "/nonexistent/gcp_janitor.py",
                                "--", "--dry-run", "--hours=0" }, {})
  T.eq(code, 0, "exit status (stderr: " .. tostring(err) .. ")")
  T.contains(out, "would run: /nonexistent/gcp_janitor.py --project=proj-a --dry-run --hours=0\n", "proj-a")
  T.contains(out, "would run: /nonexistent/gcp_janitor.py --project=proj-b --dry-run --hours=0\n", "proj-b")
  T.contains(out, "  gcp-project 2 2 0\n", "summary")
end)

T.test("a server without the listing endpoint: a clear error, status 1, nothing leased", function()
  local f = F.start(T)
  f:reset()
  f:default{ status = 404, body = "404 page not found" }
  local policy = J.policy([[janitor.policy{ type = "pt", clean = function() return true end }]])
  local out, err, code = T.run({ "janitor", "--plan", "--boskos-url", f.url, policy }, { timeout = 30 })
  T.eq(code, 1, "exit status")
  T.contains(err, "does not support listing resources (GET /resources)", "the message")
  T.contains(err, f.url, "names the server")
  T.ok(not out:find("would", 1, true), "no plan")
  for _, r in ipairs(f:requests()) do
    T.eq(r.method .. " " .. r.path, "GET /resources", "only listings were sent")
  end
  f:stop()
end)

T.test("a server that does not answer: status 1 with the reason", function()
  local policy = J.policy([[janitor.policy{ type = "pt", clean = function() return true end }]])
  local url = "http://127.0.0.1:" .. F.free_port(T)
  local _, err, code = T.run({ "janitor", "--plan", "--boskos-url", url, policy }, { timeout = 60 })
  T.eq(code, 1, "exit status")
  T.contains(err, "listing dirty resources of type pt", "says what failed")
end)

srv:stop()
T.cleanup()
