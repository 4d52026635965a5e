-- bosk janitor with upstream's janitor command line, unchanged:
-- --resource-type (comma list), --resource-type-from-config, --janitor-path
-- and the extra arguments after --, run as PATH --<last part of the
-- type>=NAME EXTRA... (no shell), free on exit 0, dirty otherwise; with
-- Lua policy files beside; against bosk server and against a server that
-- speaks only the upstream API (tests/fake_server.py).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local F = require("fake")
local cjson = require "cjson"

local CONFIG = [[
resources:
- type: gce-project
  state: dirty
  names: [p-1, p-bad-2]
- type: aws-account
  state: dirty
  names: [a-1]
- type: lua-type
  state: dirty
  names: [l-1]
]]
local srv = J.server(CONFIG)
local TYPES = { "gce-project", "aws-account", "lua-type" }

-- A stand-in for gcp_janitor.py: appends its arguments (one per line, then
-- a blank line) to DIR/calls; fails for a name with "bad" in it.
local function stand_in(dir)
  local path = T.write_file(dir .. "/janitor.sh", string.format([[#!/bin/sh
# one write per call: two cleanings run at once and append to one file
rec=""
for a in "$@"; do rec="$rec$a
"; done
printf '%%s\n' "$rec" >> %s/calls
case "$1" in *bad*) echo "cannot delete $1: quota"; exit 1;; esac
echo "cleaned $1"
]], dir))
  T.sh("chmod +x " .. T.shell_quote(path))
  return path
end

-- calls(dir) -> sorted list of argument lists joined by "|"
local function calls(dir)
  local out = {}
  for block in (T.read_file(dir .. "/calls") or ""):gmatch("(.-)\n\n") do
    out[#out + 1] = block:gsub("\n", "|")
  end
  table.sort(out)
  return out
end

T.test("upstream's command line against bosk server, with a Lua policy beside it", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local script = stand_in(dir)
    local config = T.write_file(dir .. "/boskos.yaml", "resources:\n- type: aws-account\n  state: free\n  names: [x]\n")
    local lua = J.policy([[janitor.policy{ type = "lua-type", clean = function() return true end }]])
    local out, err, code = J.once(srv, { "--resource-type=gce-project", "--resource-type-from-config", config,
                                         "--janitor-path=" .. script, "--pool-size=2", "--update-frequency=1m",
                                         "--log-level=info", lua, "--", "--hours=0", "--dry-run" })
    local states = J.states(srv, "gce-project")
    if states["p-bad-2"] == "dirty/-" then   -- free it for the next test
      T.eq(J.post(srv, "/acquire?type=gce-project&state=dirty&dest=busy&owner=t"), 200, "lease p-bad-2")
      T.eq(J.post(srv, "/release?name=p-bad-2&dest=free&owner=t"), 200, "free p-bad-2")
    end
    T.eq(code, 1, "exit status (p-bad-2 failed); stderr:\n" .. err)
    T.eq(calls(dir), {
      "--account=a-1|--hours=0|--dry-run",
      "--project=p-1|--hours=0|--dry-run",
      "--project=p-bad-2|--hours=0|--dry-run",
    }, "the janitor path's argument lists")
    T.eq(states, { ["p-1"] = "free/-", ["p-bad-2"] = "dirty/-" }, "gce-project")
    T.eq(J.states(srv, "aws-account"), { ["a-1"] = "free/-" }, "aws-account")
    T.eq(J.states(srv, "lua-type"), { ["l-1"] = "free/-" }, "lua-type (the Lua policy)")
    T.match(out, "failed:\n  p%-bad%-2 %(gce%-project%) failed: [^\n]*janitor%.sh exited with status 1: cannot delete %-%-project=p%-bad%-2: quota",
            "the summary names the failed resource and why")
    T.contains(err, "msg=\"executing janitor\"", "each run is logged, as upstream does")
  end)
end)

T.test("--resource-type is a comma list and may repeat; a type in a policy file too is refused", function()
  local dir = T.tmpdir()
  local script = stand_in(dir)
  local lua = J.policy([[janitor.policy{ type = "aws-account", clean = function() return true end }]])
  local _, err, code = J.once(srv, { "--resource-type", "gce-project,aws-account", "--janitor-path", script, lua })
  T.eq(code, 2, "exit status")
  T.match(err, "duplicate type 'aws%-account'", "names the type")
  local _, err2, code2 = J.once(srv, { "--resource-type", "gce-project", "--resource-type", "aws-account",
                                       "--janitor-path", script })
  T.eq(code2, 0, "two --resource-type flags; stderr:\n" .. err2)
end)

T.test("the upstream flags alone against a server speaking only the upstream API", function()
  local f = F.start(T)
  local dir = T.tmpdir()
  local script = stand_in(dir)
  local function res(rtype, name)
    return cjson.encode{ type = rtype, name = name, state = "cleaning", owner = "Janitor",
                         lastupdate = "2020-01-01T00:00:00Z", userdata = {} }
  end
  f:script{
    { path = "/acquire", body = res("gce-project", "up-1") },
    { path = "/acquire", body = res("gce-project", "up-bad-2") },
  }
  f:default{ path = "/acquire", status = 404, body = "resources not found" }
  local out, err, code = T.run({ "janitor", "--once", "--boskos-url", f.url, "--resource-type=gce-project",
                                 "--janitor-path=" .. script, "--", "--hours=0" }, { timeout = 60 })
  T.eq(code, 1, "exit status (up-bad-2 failed); stdout:\n" .. out .. "\nstderr:\n" .. err)
  T.eq(calls(dir), { "--project=up-1|--hours=0", "--project=up-bad-2|--hours=0" }, "argument lists")
  local releases, acquires = {}, 0
  for _, r in ipairs(f:requests()) do
    if r.path == "/release" then
      releases[#releases + 1] = r.query
    elseif r.path == "/acquire" then
      acquires = acquires + 1
      T.eq(r.method, "POST", "acquire method")
      T.contains(r.query, "type=gce-project", "acquire query")
      T.contains(r.query, "state=dirty", "acquire query")
      T.contains(r.query, "dest=cleaning", "acquire query")
      T.contains(r.query, "owner=Janitor", "acquire query")
    end
  end
  table.sort(releases)
  T.eq(releases, { "dest=dirty&name=up-bad-2&owner=Janitor", "dest=free&name=up-1&owner=Janitor" }, "releases")
  T.ok(acquires >= 3, "acquired until the server said not found", acquires)
  f:stop()
end)

T.test("a type the server does not know (upstream API): a warning, --once exits 1 naming it", function()
  local f = F.start(T)
  local dir = T.tmpdir()
  local script = stand_in(dir)
  f:default{ path = "/acquire", status = 404, body = 'resource type "gce-projetc" does not exist' }
  local out, err, code = T.run({ "janitor", "--once", "--boskos-url", f.url, "--resource-type=gce-projetc",
                                 "--janitor-path=" .. script }, { timeout = 60 })
  T.eq(code, 1, "exit status; stderr:\n" .. err)
  T.contains(out, "unknown resource type (the server does not know it): gce-projetc", "summary names it")
  T.match(err, "level=warning msg=\"the server does not know this resource type[^\n]*type=gce%-projetc", "warned")
  f:stop()
end)

srv:stop()
