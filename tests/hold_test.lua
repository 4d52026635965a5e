-- Holds (docs/history.md): `bosk hold` / c:hold record bosk.hold/until and
-- bosk.hold/reason; bosk server's /reset leaves a held resource alone
-- until then; `bosk release` clears the hold; `bosk list` shows it.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"
local F = require "fake"
local boskos = require "boskos"
local core = require "bosk.core"
local cjson = require "cjson"

local UNTIL, REASON = "bosk.hold/until", "bosk.hold/reason"

local function client(srv, owner)
  return assert(boskos.client { owner = owner or "me", url = srv.url,
                                dialer = { retry_count = 0, retry_sleep = 0.01, timeout = 2 } })
end

local function reset(c)
  return assert(c:reset("t", "busy", 0, "dirty"))
end

T.test("hold: /reset skips a held resource until the hold ends", function()
  local srv = S.start(T)
  local c = client(srv)
  local a = assert(c:acquire("t", "free", "busy"))
  local b = assert(c:acquire("t", "free", "busy"))
  local until_text = assert(c:hold(a.name, 2, "look at the logs"))
  T.match(until_text, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", "c:hold returns the end, RFC 3339 UTC")
  local r = S.new(T, srv).by_name{}[a.name]
  T.eq({ r.state, r.owner, r.userdata[UNTIL], r.userdata[REASON] }, { "busy", "me", until_text, "look at the logs" },
       "the hold in its user data, state kept")
  T.eq(reset(c), { [b.name] = "me" }, "reset took only the resource not held")
  local start = core.monotime()
  local map = T.wait_until(function()
    local m = reset(c)
    if next(m) then return m end
    core.sleep(0.2)
  end, 10, "the held resource reset once its hold ended")
  T.eq(map, { [a.name] = "me" }, "reset took it")
  T.ok(os.date("!%Y-%m-%dT%H:%M:%SZ") >= until_text, "not before the hold's end", until_text)
  T.ok(core.monotime() - start >= 0.5, "it waited for the hold")
  S.stop(T, srv)
end)

T.test("hold: bosk hold, bosk list shows it, bosk release clears it", function()
  local srv = S.start(T)
  local o, e, code = T.run({ "acquire", "--type", "t", "--state", "free", "--target-state", "busy",
                             "--owner", "me", "--boskos-url", srv.url })
  T.eq({ e, code }, { "", 0 }, "acquire")
  local name = cjson.decode(o).name
  o, e, code = T.run({ "hold", "--name", name, "--for", "1h", "--reason", "flaky e2e", "--owner", "me",
                       "--boskos-url", srv.url })
  T.eq({ e, code }, { "", 0 }, "bosk hold")
  T.match(o, '^holding resource "' .. name .. '" until %d%d%d%d%-[%d%-T:]+Z\n$', "what bosk hold says")
  local until_text = o:match("until (%S+)\n")
  o, e, code = T.run({ "list", "--boskos-url", srv.url })
  T.eq({ e, code }, { "", 0 }, "bosk list")
  T.match(o, "^NAME +TYPE +STATE +OWNER +LAST UPDATE +HELD UNTIL +USER DATA\n", "a hold column")
  T.match(o, "\n" .. name .. " +t +busy +me +%S+ +" .. until_text:gsub("%-", "%%-") .. " +bosk%.hold/reason,bosk%.hold/until\n",
          "the held resource's row")
  T.match(o, "\nr%d +t +free +%- +%S+ +%- +%-\n", "the other row")
  local ud = S.new(T, srv).by_name{}[name].userdata
  T.eq({ ud[UNTIL], ud[REASON] }, { until_text, "flaky e2e" }, "user data")
  o, e, code = T.run({ "release", "--name", name, "--target-state", "dirty", "--owner", "me",
                       "--boskos-url", srv.url })
  T.eq({ o, e, code }, { 'released resource "' .. name .. '"\n', "", 0 }, "bosk release")
  local r = S.new(T, srv).by_name{}[name]
  T.eq({ r.state, r.owner, r.userdata }, { "dirty", "", {} }, "released, hold cleared")
  o = T.run({ "list", "--boskos-url", srv.url })
  T.match(o, "^NAME +TYPE +STATE +OWNER +LAST UPDATE +USER DATA\n", "no hold column without holds")
  -- the history tells the story
  local h = assert(client(srv):history(name, 3))
  T.eq({ h[1].endpoint, h[2].endpoint, h[3].endpoint }, { "release", "update", "update" }, "release after clearing")
  T.eq(h[2].userdata_changed, { REASON, UNTIL }, "the clearing update")
  S.stop(T, srv)
end)

T.test("hold: on a resource the caller does not own fails (401 from update)", function()
  local srv = S.start(T)
  local mine = assert(client(srv):acquire("t", "free", "busy"))
  local _, e, code = T.run({ "hold", "--name", mine.name, "--for", "1h", "--owner", "other",
                             "--boskos-url", srv.url })
  T.eq(code, 1, "bosk hold exit status")
  T.contains(e, "401", "stderr names the status")
  T.contains(e, "owner mismatch", "and the server's reason")
  local other = client(srv, "other")
  local ok, err = other:hold(mine.name, "1h", "mine now")
  T.eq(ok, nil, "c:hold fails")
  T.eq(err.status, 401, "with the update's 401")
  ok, err = other:hold("no-such", "1h")
  T.eq(ok, nil, "c:hold of an unknown resource")
  T.contains(tostring(err), "no resource no-such", "says so")
  T.eq(S.new(T, srv).by_name{}[mine.name].userdata, {}, "nothing recorded")
  S.stop(T, srv)
end)

T.test("hold: c:hold(name, 0) and c:unhold clear it; bosk hold --for 0 too", function()
  local srv = S.start(T)
  local c = client(srv)
  local r = assert(c:acquire("t", "free", "busy"))
  local s = S.new(T, srv)
  assert(c:hold(r.name, "10m", "x"))
  T.ok(s.by_name{}[r.name].userdata[UNTIL], "held")
  assert(c:hold(r.name, 0))
  T.eq(s.by_name{}[r.name].userdata, {}, "c:hold(name, 0) cleared it")
  assert(c:hold(r.name, "10m"))
  T.eq(s.by_name{}[r.name].userdata[REASON], nil, "no reason, no key")
  assert(c:unhold(r.name))
  T.eq(s.by_name{}[r.name].userdata, {}, "c:unhold cleared it")
  assert(c:hold(r.name, "10m", "y"))
  local o, e, code = T.run({ "hold", "--name", r.name, "--for", "0s", "--owner", "me", "--boskos-url", srv.url })
  T.eq({ o, e, code }, { 'released the hold on resource "' .. r.name .. '"\n', "", 0 }, "bosk hold --for 0s")
  T.eq(s.by_name{}[r.name].userdata, {}, "cleared")
  T.eq(s.by_name{}[r.name].state, "busy", "state kept throughout")
  S.stop(T, srv)
end)

T.test("hold: against a server without listing, the state is passed or known", function()
  local f = F.start(T)
  local c = f:client()
  f:default { status = 200, body = "" }
  local ok, err = c:hold("x", "1h", "why")
  T.eq(ok, nil, "no state, no listing")
  T.contains(tostring(err), "cannot tell the state of x", "says what is missing")
  f:reset()
  f:default { status = 200, body = "" }
  T.ok(c:hold("x", "1h", "why", "busy"), "with the state")
  local req = f:last()
  T.eq(req.path, "/update", "an update")
  T.match(req.query, "state=busy", "keeping the state")
  local body = cjson.decode(req.body)
  T.eq(body[REASON], "why", "the reason")
  T.match(body[UNTIL], "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", "the end")
  f:stop()
end)

T.cleanup()
