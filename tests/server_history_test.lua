-- bosk server's history (docs/history.md): GET /history, c:history and
-- `bosk history` over a real server; the per-resource and global caps;
-- SQLite keeping it across a restart and a kill -9; deleted resources.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"
local F = require "fake"
local boskos = require "boskos"
local http = require "bosk.http"
local cjson = require "cjson"

local function history(srv, name, limit)
  local status, body = T.http("GET", srv.url .. "/history" .. S.query{ name = name, limit = limit })
  T.eq(status, 200, "GET /history?name=" .. name, body)
  return cjson.decode(body)
end

-- One POST over a kept connection (many changes, quickly).
local function post(conn, url)
  local status, _, body = conn:request{ method = "POST", url = url.url, body = url.body }
  assert(status == 200, url.url .. ": " .. tostring(status) .. " " .. tostring(body))
  return body
end

local function summary(e)
  return { e.endpoint, e.from, e.to, e.owner_from, e.owner_to, table.concat(e.userdata_changed, ",") }
end

T.test("history: every endpoint, before and after, keys changed, newest first, limit", function()
  local srv = S.start(T)
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "a"), 200, "acquire")
  local function update(body)
    return c.post("/update", { name = "r1", owner = "a", state = "busy" }, body)
  end
  -- acquire took r1, the first in scan order
  T.eq(update('{"k":"1","j":"2"}'), 200, "update adds k and j")
  T.eq(update('{"k":"1"}'), 200, "update changing nothing")
  T.eq(update('{"j":""}'), 200, "update removing j")
  T.eq(c.release("r1", "dirty", "a"), 200, "release")
  T.eq(c.post("/acquirebystate", { names = "r1", state = "dirty", dest = "busy", owner = "b" }), 200,
       "acquirebystate")
  T.eq(c.post("/reset", { type = "t", state = "busy", expire = "0s", dest = "dirty" }), 200, "reset")
  local list = history(srv, "r1")
  local got = {}
  for i, e in ipairs(list) do got[i] = summary(e) end
  T.eq(got, {
    { "reset", "busy", "dirty", "b", "", "" },
    { "acquirebystate", "dirty", "busy", "", "b", "" },
    { "release", "busy", "dirty", "a", "", "" },
    { "update", "busy", "busy", "a", "a", "j" },
    { "update", "busy", "busy", "a", "a", "" },
    { "update", "busy", "busy", "a", "a", "j,k" },
    { "acquire", "free", "busy", "", "a", "" },
    { "sync", "", "free", "", "", "" },
  }, "the changes, newest first")
  for i = 2, #list do T.ok(list[i - 1].time >= list[i].time, "newest first", list[i - 1].time, list[i].time) end
  T.match(list[1].time, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$", "RFC 3339 time")
  T.eq(#history(srv, "r1", 3), 3, "limit=3")
  T.eq(summary(history(srv, "r1", 3)[3]), got[3], "limit keeps the newest")
  T.eq(#history(srv, "r1", 100), 8, "a limit past the end")
  T.eq(list[4].userdata_changed_count, 1, "the count of keys changed")
  -- a large update names its first 100 keys and counts them all
  local keys = {}
  for i = 1, 150 do keys[i] = string.format('"k%03d":"v"', i) end
  T.eq(c.acquire("t", "free", "busy", "a"), 200, "acquire r2")
  T.eq(c.post("/update", { name = "r2", owner = "a", state = "busy" }, "{" .. table.concat(keys, ",") .. "}"), 200,
       "150 keys")
  local big = history(srv, "r2", 1)[1]
  T.eq({ #big.userdata_changed, big.userdata_changed[1], big.userdata_changed[100], big.userdata_changed_count },
       { 100, "k001", "k100", 150 }, "100 keys named, 150 counted")
  T.match(T.run({ "history", "r2", "--limit", "1", "--boskos-url", srv.url }), "k100,%.%.%. %(50 more%)\n",
          "bosk history says how many more")
  -- the client
  local cl = assert(boskos.client { owner = "a", url = srv.url })
  local h = assert(cl:history("r1"))
  T.eq(#h, 8, "c:history")
  T.eq(summary(h[4]), got[4], "c:history's events")
  T.eq(#assert(cl:history("r1", 2)), 2, "c:history(name, limit)")
  -- the CLI
  local o, e, code = T.run({ "history", "r1", "--boskos-url", srv.url })
  T.eq({ e, code }, { "", 0 }, "bosk history")
  T.match(o, "^TIME +ENDPOINT +STATE +OWNER +USER DATA CHANGED\n", "table header")
  T.match(o, "\n%S+ +update +busy %-> busy +a %-> a +j,k\n", "a row")
  T.match(o, "\n%S+ +sync +%- %-> free +%- %-> %- +%-\n$", "creation, last")
  o, e, code = T.run({ "history", "--name", "r1", "--limit", "2", "--json", "--boskos-url", srv.url })
  T.eq({ e, code }, { "", 0 }, "bosk history --json")
  T.eq(cjson.decode(o), history(srv, "r1", 2), "--json prints what the server keeps")
  S.stop(T, srv)
end)

T.test("history: 404 for an unknown name, 400 for bad arguments, 405 for POST", function()
  local srv = S.start(T)
  local status, body = T.http("GET", srv.url .. "/history?name=nope")
  T.eq(status, 404, "unknown name")
  T.contains(body, "nope", "the answer names it")
  T.eq(T.http("GET", srv.url .. "/history"), 400, "no name")
  T.eq(T.http("GET", srv.url .. "/history?name=r1&limit=0"), 400, "limit 0")
  T.eq(T.http("GET", srv.url .. "/history?name=r1&limit=x"), 400, "limit not a number")
  T.eq(T.http("POST", srv.url .. "/history?name=r1"), 405, "POST")
  local cl = assert(boskos.client { owner = "a", url = srv.url })
  local list, err = cl:history("nope")
  T.eq(list, nil, "c:history of an unknown name")
  T.contains(tostring(err), "no resource nope", "its error")
  local o, e, code = T.run({ "history", "nope", "--boskos-url", srv.url })
  T.eq({ o, code }, { "", 1 }, "bosk history of an unknown name")
  T.contains(e, "no resource nope", "stderr")
  _, e, code = T.run({ "history", "--boskos-url", srv.url })
  T.eq(code, 2, "bosk history without a name")
  T.contains(e, "name", "names what is missing")
  S.stop(T, srv)
end)

T.test("history: a server without GET /history (upstream) is a clear error", function()
  local f = F.start(T)
  local c = f:client()
  f:default { status = 200, body = "" }     -- upstream's catch-all for unknown paths
  local list, err = c:history("r1")
  T.eq(list, nil, "no list")
  T.contains(tostring(err), "does not keep history", "says why")
  local _, e, code = T.run({ "history", "r1", "--boskos-url", f.url })
  T.eq(code, 1, "bosk history exit status")
  T.contains(e, "does not keep history", "stderr")
  f:stop()
end)

local function count_events(srv, name)
  return #history(srv, name)
end

for _, storage in ipairs({ "memory", "sqlite" }) do
  T.test("history (" .. storage .. "): the last 1 000 per resource, the global cap oldest first", function()
    local dir = T.tmpdir()
    local srv = S.start(T, { storage = storage == "sqlite" and ("sqlite:" .. dir .. "/h.db") or nil,
                             env = { BOSK_HISTORY_MAX_EVENTS = "1500" } })
    local conn = http.new()
    local function acquire(name)
      post(conn, { url = srv.url .. "/acquirebystate?dest=busy&names=" .. name .. "&owner=w&state=free" })
    end
    local function updates(name, n)
      for i = 1, n do
        post(conn, { url = srv.url .. "/update?name=" .. name .. "&owner=w&state=busy",
                     body = '{"i":"' .. i .. '"}' })
      end
    end
    acquire("r1")
    updates("r1", 1100)
    local h = history(srv, "r1")
    T.eq(#h, 1000, "r1 keeps its last 1000 of 1102")
    for _, e in ipairs(h) do
      if e.endpoint ~= "update" then T.eq(e.endpoint, "update", "only updates are left") break end
    end
    T.eq(count_events(srv, "r2"), 1, "r2: its creation")
    -- 1 + 1000 kept, then 601 more: 101 over the cap of 1500, the oldest
    -- go first: r2's creation, then r1's 101 oldest.
    acquire("r2")
    updates("r2", 600)
    T.eq(count_events(srv, "r1"), 899, "r1 lost its oldest")
    h = history(srv, "r2")
    T.eq(#h, 601, "r2 lost its creation")
    T.eq(h[#h].endpoint, "acquirebystate", "r2's oldest kept")
    conn:close()
    S.stop(T, srv)
  end)
end

-- The writer: per resource, acquire, update, release, logging each
-- acknowledged change (one line, flushed) before the next request.
local writer = [[
local http = require "bosk.http"
local url, log = arg[1], assert(io.open(arg[2], "w"))
local conn = http.new()
local function post(path, body)
  local status = conn:request{ method = "POST", url = url .. path, body = body }
  return status == 200
end
for i = 1, 100000 do
  local name = "r" .. (i % 20 + 1)
  if not post("/acquirebystate?dest=busy&names=" .. name .. "&owner=w&state=free") then break end
  log:write(name, " acquirebystate\n") log:flush()
  if not post("/update?name=" .. name .. "&owner=w&state=busy", '{"i":"' .. i .. '"}') then break end
  log:write(name, " update\n") log:flush()
  if not post("/release?dest=free&name=" .. name .. "&owner=w") then break end
  log:write(name, " release\n") log:flush()
end
]]

T.test("history (sqlite): kept across a restart, and a kill -9 loses no acknowledged event", function()
  local dir = T.tmpdir()
  local names = {}
  for i = 1, 20 do names[i] = "r" .. i end
  local cfg = "resources:\n- type: t\n  state: free\n  names: [" .. table.concat(names, ", ") .. "]\n"
  local db = "sqlite:" .. dir .. "/bosk.db"
  local srv = S.start(T, { config = cfg, storage = db })
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "a"), 200, "acquire")
  T.eq(c.release("r1", "free", "a"), 200, "release")
  local before = history(srv, "r1")
  T.eq(#before, 3, "creation, acquire, release")
  S.stop(T, srv)
  srv = S.start(T, { config_path = srv.config, storage = db })
  T.eq(history(srv, "r1"), before, "the same history after a restart")

  local log = dir .. "/acks"
  local w = T.spawn { T.bosk, "run", T.write_file(dir .. "/writer.lua", writer), srv.url, log }
  T.wait_until(function()
    local _, n = (T.read_file(log) or ""):gsub("\n", "")
    return n >= 150
  end, 30, "150 acknowledged changes")
  srv.proc:kill("KILL")
  T.ok(w:wait(10) ~= nil, "writer stopped")
  local acked = {}
  for line in (T.read_file(log) or ""):gmatch("[^\n]+") do
    local name, endpoint = line:match("^(%S+) (%S+)$")
    acked[name] = acked[name] or {}
    table.insert(acked[name], endpoint)
  end
  srv = S.start(T, { config_path = srv.config, storage = db })
  local checked = 0
  for name, list in pairs(acked) do
    local h = history(srv, name)
    local recorded = {}
    for i = #h, 1, -1 do   -- oldest first, the writer's changes only
      if h[i].owner_from == "w" or h[i].owner_to == "w" then recorded[#recorded + 1] = h[i].endpoint end
    end
    T.ok(#recorded == #list or #recorded == #list + 1, "at most the in-flight change beyond the log",
         name, #recorded, #list)
    local prefix = {}
    for i = 1, #list do prefix[i] = recorded[i] end
    T.eq(prefix, list, "every acknowledged change of " .. name .. " is in its history")
    checked = checked + #list
  end
  T.ok(checked >= 150, "checked every acknowledged change", checked)
  S.stop(T, srv)
end)

for _, storage in ipairs({ "memory", "sqlite" }) do
  T.test("history (" .. storage .. "): a deleted dynamic resource keeps it, then it expires", function()
    local dir = T.tmpdir()
    local srv = S.start(T, {
      config = "resources:\n- type: dyn\n  state: free\n  min-count: 1\n  max-count: 1\n",
      storage = storage == "sqlite" and ("sqlite:" .. dir .. "/h.db") or nil,
      env = { BOSK_HISTORY_KEEP_DELETED = "2s" }, args = { "--sync-period", "1s" } })
    local c = S.new(T, srv)
    local status, body = c.acquire("dyn", "free", "busy", "o")
    T.eq(status, 200, "acquire the dynamic resource")
    local name = cjson.decode(body).name
    T.eq(c.release(name, "tombstone", "o"), 200, "release it as a tombstone")
    T.wait_until(function() return c.by_name{ type = "dyn" }[name] == nil end, 10, "deleted by the sync")
    local h = history(srv, name)
    T.eq(summary(h[1]), { "sync", "tombstone", "", "", "", "" }, "its deletion, newest")
    T.eq(summary(h[2]), { "release", "busy", "tombstone", "o", "", "" }, "then the release")
    T.wait_until(function() return T.http("GET", srv.url .. "/history?name=" .. name) == 404 end, 15,
                 "the history expired (404)")
    S.stop(T, srv)
  end)
end

T.cleanup()
