-- bosk server: the cost and size of user data (docs/limits-ranch.md) over
-- real HTTP: /update checks the owner before merging and merges in
-- O(n log n); a resource's user data is capped; an acquire whose answer a
-- client could not read is refused before anything is committed; request
-- ids have a length cap.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local MiB = 1024 * 1024
-- The bound on one 80 000-key /update: the quadratic merge took 12-30 s in
-- the release build and takes ~0.15 s now; the bound leaves room for a
-- busy 2-core machine (the fuzzers of make test run beside), and the
-- sanitizer build runs ~10x slower.
local FAST = os.getenv("SANITIZE") == "1" and 8 or 3

-- {"k00000":"v",...}: n distinct keys (13 bytes each), prefix before each key.
local function many_keys(n, prefix, value)
  local parts = {}
  for i = 1, n do parts[i] = string.format('"%s%05d":"%s"', prefix or "k", i - 1, value or "v") end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- status, body, seconds of one POST /update
local function timed_update(c, name, owner, body)
  local t0 = T.now()
  local status, resp = c.post("/update", { name = name, owner = owner, state = "busy" }, body)
  return status, resp, T.now() - t0
end

local function userdata_of(c, name)
  return c.by_name{ type = "t" }[name].userdata
end

T.test("update: a non-owner's 80 000-key body is answered 401 at once", function()
  local srv = S.start(T, {})
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "owner"), 200, "owner holds r1")
  local body = many_keys(80000)
  T.ok(#body > 1000000 and #body <= MiB, "a body of about 1 MB", #body)
  local status, resp, secs = timed_update(c, "r1", "intruder", body)
  T.eq(status, 401, "non-owner refused")
  T.contains(resp, "owner mismatch request by intruder, currently owned by owner", "message")
  T.ok(secs < FAST, "answered within " .. FAST .. " s", secs)
  T.eq(userdata_of(c, "r1"), {}, "nothing stored")
  -- a malformed body is still a 400 before the owner is looked at (as Go)
  status, resp = c.post("/update", { name = "r1", owner = "intruder", state = "busy" }, '{"a":')
  T.eq({ status, resp }, { 400, "unexpected EOF\n" }, "malformed body from a non-owner")
  S.stop(T, srv)
end)

T.test("update: the owner's 80 000-key merges are fast and exact", function()
  local srv = S.start(T, {})
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "owner"), 200, "owner holds r1")
  local status, resp, secs = timed_update(c, "r1", "owner", many_keys(80000))
  T.eq({ status, resp }, { 200, "" }, "first merge")
  T.ok(secs < FAST, "first merge within " .. FAST .. " s", secs)
  -- the second merge rewrites half the keys, deletes others, adds new ones
  local parts = {}
  for i = 0, 39999 do parts[#parts + 1] = string.format('"k%05d":"w"', i * 2) end
  for i = 0, 999 do parts[#parts + 1] = string.format('"k%05d":""', i * 2 + 1) end
  for i = 0, 999 do parts[#parts + 1] = string.format('"k%05d":null', i * 2 + 3001) end
  parts[#parts + 1] = '"a<new>":"x&y"'
  status, resp, secs = timed_update(c, "r1", "owner", "{" .. table.concat(parts, ",") .. "}")
  T.eq({ status, resp }, { 200, "" }, "second merge")
  T.ok(secs < FAST, "second merge within " .. FAST .. " s", secs)
  local ud = userdata_of(c, "r1")
  local n = 0
  for _ in pairs(ud) do n = n + 1 end
  T.eq(n, 80000 - 2000 + 1, "keys after the merge")
  T.eq({ ud.k00000, ud.k00001, ud.k00003, ud.k02999, ud.k03001, ud.k04999, ud.k05001, ud["a<new>"] },
       { "w", nil, nil, "v", nil, nil, "v", "x&y" }, "values after the merge")
  -- the stored text is Go's: sorted keys, HTML-safe escapes
  local _, raw = c.get("/resources", { type = "t" })
  T.contains(raw, '"userdata":{"a\\u003cnew\\u003e":"x\\u0026y","k00000":"w","k00002":"w"', "Go encoding")
  S.stop(T, srv)
end)

T.test("update: user data is capped at 1 MiB (encoded); 413 and nothing changes", function()
  local srv = S.start(T, {})
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "o"), 200, "o holds r1")
  -- 200 000 '<' become 1.2 MB once escaped as \u003c
  local status, resp = c.post("/update", { name = "r1", owner = "o", state = "busy" },
                              '{"a":"' .. string.rep("<", 200000) .. '"}')
  T.eq(status, 413, "escaped growth refused")
  T.match(resp, "^Update failed: r1 %- busy %(o%): user data would be 1200008 bytes, more than the 1048576 allowed", "message")
  T.eq(userdata_of(c, "r1"), {}, "nothing stored")
  -- merges add up: three 400 kB updates do not fit
  local big = string.rep("x", 400000)
  T.eq(c.post("/update", { name = "r1", owner = "o", state = "busy" }, '{"a":"' .. big .. '"}'), 200, "first")
  T.eq(c.post("/update", { name = "r1", owner = "o", state = "busy" }, '{"b":"' .. big .. '"}'), 200, "second")
  status = c.post("/update", { name = "r1", owner = "o", state = "busy" }, '{"c":"' .. big .. '"}')
  T.eq(status, 413, "third refused")
  local ud = userdata_of(c, "r1")
  T.eq({ #ud.a, #ud.b, ud.c }, { 400000, 400000, nil }, "the first two kept")
  -- replacing a value in place still fits
  T.eq(c.post("/update", { name = "r1", owner = "o", state = "busy" }, '{"a":"small","c":"' .. big .. '"}'),
       200, "shrink one, add another")
  T.eq(#userdata_of(c, "r1").c, 400000, "c stored")
  -- the client reads the resource back
  local out, err, code = T.run({ "run", "-e", string.format([[
    local c = assert(require("boskos").client{ owner = "o", url = %q })
    local rs = assert(c:list{ type = "t" })
    for _, r in ipairs(rs) do if r.name == "r1" then print(#r.userdata:get("b")) end end
  ]], srv.url) })
  T.eq({ out, code }, { "400000\n", 0 }, "client reads it: " .. tostring(err))
  S.stop(T, srv)
end)

T.test("acquirebystate: an answer over 16 MiB is refused (413), nothing leased", function()
  local names = {}
  for i = 1, 17 do names[i] = "r" .. i end
  local srv = S.start(T, { config = "resources:\n- type: t\n  state: free\n  names: [" ..
                                    table.concat(names, ", ") .. "]\n" })
  local c = S.new(T, srv)
  local value = string.rep("x", MiB - 2000)
  for _, n in ipairs(names) do
    T.eq(c.post("/acquirebystate", { state = "free", dest = "busy", owner = "o", names = n }), 200, "take " .. n)
    T.eq(c.post("/update", { name = n, owner = "o", state = "busy" }, '{"a":"' .. value .. '"}'), 200, "fill " .. n)
    T.eq(c.release(n, "free", "o"), 200, "release " .. n)
  end
  local status, resp = c.post("/acquirebystate", { state = "free", dest = "busy", owner = "p",
                                                   names = table.concat(names, ",") })
  T.eq(status, 413, "refused")
  T.match(resp, "^AcquireByState: the answer would be %d+ bytes, more than the 16777216 a client reads", "message")
  for n, r in pairs(c.by_name{ type = "t" }) do
    T.eq({ r.state, r.owner }, { "free", "" }, n .. " still free")
  end
  -- sixteen of them fit
  status = c.post("/acquirebystate", { state = "free", dest = "busy", owner = "p",
                                       names = table.concat(names, ",", 1, 16) })
  T.eq(status, 200, "sixteen fit")
  S.stop(T, srv)
end)

T.test("acquire: a stored resource whose answer is over 16 MiB stays free (413)", function()
  local dir = T.tmpdir()
  local db = dir .. "/bosk.db"
  local cfg = "resources:\n- type: t\n  state: free\n  names: [big, small]\n"
  local srv = S.start(T, { config = cfg, storage = "sqlite:" .. db })
  S.stop(T, srv)
  -- user data written by an older server, without the cap
  local out, ok = T.sh(string.format([[sqlite3 %s "UPDATE resources SET userdata = '{\"a\":\"' || printf('%%.*c', 17000000, 'x') || '\"}', seq = 0 WHERE name = 'big'" 2>&1]],
                                     T.shell_quote(db)))
  T.ok(ok, "sqlite3 update", out)
  srv = S.start(T, { config = cfg, storage = "sqlite:" .. db })
  local c = S.new(T, srv)
  local status, resp = c.acquire("t", "free", "busy", "o")
  T.eq(status, 413, "refused")
  T.match(resp, "^Acquire failed: the answer would be %d+ bytes, more than the 16777216 a client reads", "message")
  local by = c.by_name{ type = "t" }
  T.eq({ by.big.state, by.big.owner, by.small.state }, { "free", "", "free" }, "nothing leased")
  S.stop(T, srv)
end)

T.test("acquire: request ids longer than 256 bytes are refused (400)", function()
  local srv = S.start(T, {})
  local c = S.new(T, srv)
  local status, resp = c.acquire("t", "free", "busy", "o", string.rep("i", 257))
  T.eq({ status, resp }, { 400, "Bad request: request_id is 257 bytes, more than the 256 allowed\n" }, "too long")
  T.eq(c.by_name{ type = "t" }.r1.state, "free", "nothing leased")
  T.eq(c.acquire("t", "free", "busy", "o", string.rep("i", 256)), 200, "256 bytes is fine")
  S.stop(T, srv)
end)

T.cleanup()
