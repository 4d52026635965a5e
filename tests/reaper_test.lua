-- bosk reaper: the upstream reaper's command line against a real bosk
-- server (leases whose owner stopped heartbeating go to the target state,
-- fresh ones stay), types from a boskos config, extra source states, the
-- loop with SIGHUP and SIGTERM; and against the fake server, the exact
-- requests upstream's reaper sends, and a failed reset.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"
local F = require "fake"

local CONFIG = [[
resources:
- type: t
  state: free
  names: [a, b, c]
- type: u
  state: free
  names: [d]
]]

-- reaper(url, args, opts) -> stdout, stderr, exit code of `bosk reaper ARGS --boskos-url URL`
local function reaper(url, args, opts)
  local argv = { "reaper" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = "--boskos-url"
  argv[#argv + 1] = url
  return T.run(argv, { timeout = (opts and opts.timeout) or 30 })
end

local function lease(c, name, dest, owner)
  T.eq(c.post("/acquirebystate", { state = "free", dest = dest, owner = owner, names = name }), 200,
       "lease " .. name .. " as " .. dest)
end

local function heartbeat(c, name, state, owner)
  T.eq(c.post("/update", { name = name, state = state, owner = owner }), 200, "heartbeat " .. name)
end

-- Waits until the leases taken before are older than expire = 1s.
local function let_expire(seconds) T.sleep((seconds or 1) + 0.3) end

-- expire 3s here: the heartbeated lease must stay younger than that until
-- the reaper has run, which takes a while under the sanitizers.
T.test("--once --expire 3s: stale busy and leased go to dirty; a heartbeated lease stays", function()
  local srv = S.start(T, { config = CONFIG })
  local c = S.new(T, srv)
  lease(c, "a", "busy", "gone")
  lease(c, "b", "leased", "gone")
  lease(c, "c", "busy", "alive")
  let_expire(3)
  heartbeat(c, "c", "busy", "alive")
  local out, err, code = reaper(srv.url, { "--resource-type", "t", "--expire", "3s", "--once" })
  T.eq(code, 0, "exit status: " .. err)
  T.eq(out, "", "nothing on stdout")
  local by = c.by_name{}
  T.eq({ by.a.state, by.a.owner }, { "dirty", "" }, "a reaped")
  T.eq({ by.b.state, by.b.owner }, { "dirty", "" }, "b reaped")
  T.eq({ by.c.state, by.c.owner }, { "busy", "alive" }, "c kept")
  T.match(err, 'msg="Reset resource"[^\n]*previous_owner=gone[^\n]*resource_name=a[^\n]*source_state=busy',
          "a logged")
  T.match(err, 'msg="Reset resource"[^\n]*resource_name=b[^\n]*source_state=leased', "b logged")
  T.ok(not err:find("resource_name=c", 1, true), "c not logged", err)
  S.stop(T, srv)
end)

T.test("types from a boskos config (merged with --resource-type), --target-state", function()
  local srv = S.start(T, { config = CONFIG })
  local c = S.new(T, srv)
  lease(c, "a", "busy", "gone")
  lease(c, "d", "busy", "gone")
  let_expire()
  local cfg = T.write_file(T.tmpdir() .. "/boskos.yaml", "resources:\n- type: u\n  state: free\n  names: [d]\n")
  local _, err, code = reaper(srv.url, { "--resource-type-from-config", cfg, "--resource-type", "t",
                                         "--expire", "1s", "--target-state", "toBeDeleted", "--once" })
  T.eq(code, 0, "exit status: " .. err)
  local by = c.by_name{}
  T.eq(by.a.state, "toBeDeleted", "a (from --resource-type)")
  T.eq(by.d.state, "toBeDeleted", "d (from the config)")
  T.match(err, "types=t,u", "start line lists both types")
  S.stop(T, srv)
end)

T.test("--extra-source-states: other states are reaped only when named", function()
  local srv = S.start(T, { config = CONFIG })
  local c = S.new(T, srv)
  lease(c, "a", "weird", "gone")
  lease(c, "b", "odd", "gone")
  let_expire()
  local _, err, code = reaper(srv.url, { "--resource-type", "t", "--expire", "1s", "--once" })
  T.eq(code, 0, "exit status: " .. err)
  T.eq(c.by_name{}.a.state, "weird", "not reaped without the flag")
  _, err, code = reaper(srv.url, { "--resource-type", "t", "--expire", "1s", "--once",
                                   "--extra-source-states", "weird,odd" })
  T.eq(code, 0, "exit status: " .. err)
  local by = c.by_name{}
  T.eq({ by.a.state, by.b.state }, { "dirty", "dirty" }, "both reaped")
  T.match(err, "resource_name=b[^\n]*source_state=odd", "logged with its source state")
  S.stop(T, srv)
end)

T.test("the loop: later leases reaped by a later pass; SIGHUP re-reads the config; SIGTERM exits 0", function()
  local srv = S.start(T, { config = CONFIG })
  local c = S.new(T, srv)
  local cfg = T.write_file(T.tmpdir() .. "/boskos.yaml", "resources:\n- type: t\n  names: [a]\n")
  local p = T.spawn({ T.bosk, "reaper", "--boskos-url", srv.url, "--resource-type-from-config", cfg,
                      "--expire", "1s", "--every", "300ms" })
  T.wait_until(function() return p:output():find("reaper starting", 1, true) end, 10, "start line")
  lease(c, "a", "busy", "gone")
  T.wait_until(function() return c.by_name{}.a.state == "dirty" end, 10,
               function() return "a reaped by the loop:\n" .. p:output() end)
  T.write_file(cfg, "resources:\n- type: t\n  names: [a]\n- type: u\n  names: [d]\n")
  for _ = 1, 3 do p:kill("HUP") end
  T.wait_until(function() return p:output():find("received SIGHUP", 1, true) end, 10,
               function() return "SIGHUP logged:\n" .. p:output() end)
  T.wait_until(function() return p:output():find("types=t,u", 1, true) end, 10, "new types logged")
  T.ok(p:alive(), "alive after SIGHUP", p:output())
  lease(c, "d", "busy", "gone")
  T.wait_until(function() return c.by_name{}.d.state == "dirty" end, 10, "d (type u) reaped")
  p:kill("TERM")
  T.eq(p:wait(5), 0, "exit status after SIGTERM")
  T.contains(p:output(), "received SIGTERM, stopping", "stop logged")
  S.stop(T, srv)
end)

T.test("SIGHUP with a config that no longer loads keeps the previous types", function()
  local srv = S.start(T, { config = CONFIG })
  local cfg = T.write_file(T.tmpdir() .. "/boskos.yaml", "resources:\n- type: t\n  names: [a]\n")
  local p = T.spawn({ T.bosk, "reaper", "--boskos-url", srv.url, "--resource-type-from-config", cfg,
                      "--every", "1m" })
  T.wait_until(function() return p:output():find("reaper starting", 1, true) end, 10, "start line")
  T.write_file(cfg, "resources: [\n")
  p:kill("HUP")
  T.wait_until(function() return p:output():find("keeping the previous ones", 1, true) end, 10,
               function() return "failure logged:\n" .. p:output() end)
  T.contains(p:output(), cfg, "names the file")
  T.ok(p:alive(), "alive", p:output())
  p:kill("INT")
  T.eq(p:wait(5), 0, "exit status after SIGINT")
  S.stop(T, srv)
end)

T.test("requests as upstream's reaper sends them; a failed reset makes --once exit 1", function()
  local f = F.start(T)
  f:default{ status = 200, body = "{}" }
  local _, err, code = reaper(f.url, { "--resource-type", "t1,t2", "--expire", "90s", "--target-state", "dirty",
                                       "--extra-source-states", "x", "--once" })
  T.eq(code, 0, "exit status: " .. err)
  local seen = {}
  for _, r in ipairs(f:requests()) do
    T.eq({ r.method, r.path }, { "POST", "/reset" }, "endpoint")
    local state, rtype = r.query:match("^dest=dirty&expire=1m30s&state=([^&]*)&type=([^&]*)$")
    T.ok(state, "query as the Go client builds it", r.query)
    seen[#seen + 1] = rtype .. "/" .. state
  end
  T.eq(table.concat(seen, " "), "t1/busy t1/cleaning t1/leased t1/x t2/busy t2/cleaning t2/leased t2/x", "order")
  f:reset()
  f:default{ status = 200, body = "not json" }
  _, err, code = reaper(f.url, { "--resource-type", "t1", "--once" })
  T.eq(code, 1, "exit status")
  T.match(err, 'level=error msg="Reset failed"[^\n]*resource_type=t1', "failure logged")
  f:stop()
end)

T.test("bad flags: exit 2 with a first line naming the flag", function()
  local dir = T.tmpdir()
  local cases = {
    { { "--resource-type", "t", "--expire", "soon" }, "--expire" },
    { { "--resource-type", "t", "--expire", "0s" }, "--expire" },
    { { "--resource-type", "t", "--every", "-1s" }, "--every" },
    { { "--resource-type", "t", "--every", "x" }, "--every" },
    { { "--resource-type", "t", "--log-level", "loud" }, "--log-level" },
    { { "--resource-type", "t", "--log-format", "xml" }, "--log-format" },
    { { "--resource-type", "t", "--target-state", "" }, "--target-state" },
    { { "--resource-type", "t", "--boskos-url", "127.0.0.1:8080" }, "--boskos-url" },
    { { "--resource-type-from-config", dir .. "/missing.yaml" }, "--resource-type-from-config" },
    { { "--resource-type-from-config", T.write_file(dir .. "/bad.yaml", "resources:\n- names: [a]\n") },
      "--resource-type-from-config" },
    { { "--expire", "1s" }, "--resource-type" },
    { { "--resource-type", "t", "--no-such-flag" }, "--no-such-flag" },
  }
  for _, case in ipairs(cases) do
    local argv = { "reaper" }
    for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
    local out, err, code = T.run(argv, { timeout = 10 })
    local what = table.concat(case[1], " ")
    T.eq(code, 2, what .. ": exit status")
    T.eq(out, "", what .. ": stdout")
    T.contains(err:match("^[^\n]*"), case[2], what .. ": first line")
  end
end)
