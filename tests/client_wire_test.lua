-- client_wire_test: the pure pieces of the client (bosk.wire, UserData,
-- bosk.yaml, contexts, memory storage, sentinels, argument errors). No
-- network.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local wire = require "bosk.wire"
local yaml = require "bosk.yaml"
local boskos = require "boskos"

T.test("wire.url replaces the base path and sorts and escapes the query", function()
  T.eq(wire.url("http://h:8/base/x?q=1#f", "/acquire",
                { type = "a b", state = "free", owner = "me&you", dest = "ü", request_id = "x~y-_." }),
       "http://h:8/acquire?dest=%C3%BC&owner=me%26you&request_id=x~y-_.&state=free&type=a+b", "url")
  T.eq(wire.url("https://user:pw@h", "/metric", { type = "t/1+2=3" }),
       "https://user:pw@h/metric?type=t%2F1%2B2%3D3", "url with userinfo")
  T.eq(wire.url("http://h", "/", {}), "http://h/", "no query")
  local u, err = wire.url("127.0.0.1:8080", "/acquire", {})
  T.eq(u, nil, "url without scheme")
  T.contains(err, "invalid boskos URL", "error")
end)

T.test("wire.go_quote matches Go's %q", function()
  T.eq(wire.go_quote('plain'), '"plain"')
  T.eq(wire.go_quote('a"b\\c'), '"a\\"b\\\\c"')
  T.eq(wire.go_quote("\a\b\f\n\r\t\v"), '"\\a\\b\\f\\n\\r\\t\\v"')
  T.eq(wire.go_quote("\0\1\127"), '"\\x00\\x01\\x7f"')
  T.eq(wire.go_quote("é日本"), '"é日本"', "printable unicode kept")
  T.eq(wire.go_quote("\194\160\226\128\168"), '"\\u00a0\\u2028"', "non-printable unicode")
  T.eq(wire.go_quote("\255x"), '"\\xffx"', "invalid UTF-8")
  T.eq(wire.go_quote("\240\159\152\128"), '"😀"', "astral printable")
  T.eq(boskos.resource_type_not_found_message('gce"x'), 'resource type "gce\\"x" does not exist')
end)

T.test("wire.encode_string escapes as Go encoding/json", function()
  T.eq(wire.encode_string("abc"), '"abc"')
  T.eq(wire.encode_string('<a href="x">&</a>'), '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e"')
  T.eq(wire.encode_string("\n\r\t\1\31\127\\"), '"\\n\\r\\t\\u0001\\u001f\127\\\\"')
  T.eq(wire.encode_string("\226\128\168\226\128\169é"), '"\\u2028\\u2029é"')
  T.eq(wire.encode_string("a\255b\237\160\128"), '"a\\ufffdb\\ufffd\\ufffd\\ufffd"', "invalid bytes, surrogate")
end)

T.test("wire encodes and decodes the Resource golden form byte for byte", function()
  local golden = '{"type":"t","name":"res","state":"d","owner":"o","lastupdate":"2006-01-02T15:04:05Z","userdata":{}}'
  local r = assert(wire.decode_resource(golden))
  T.eq({ r.type, r.name, r.state, r.owner, r.lastupdate }, { "t", "res", "d", "o", "2006-01-02T15:04:05Z" })
  T.eq(wire.encode_resource(r), golden, "round trip")
  local full = '{"type":"t","name":"n","state":"s","owner":"","lastupdate":"2020-01-02T03:04:05.5+01:00",' ..
               '"userdata":{"a":"1","b":"\\u003cx\\u003e"},"expiration-date":"2021-01-01T00:00:00Z"}'
  r = assert(wire.decode_resource(full))
  T.eq(r.expiration_date, "2021-01-01T00:00:00Z", "expiration date")
  T.eq(r.userdata:get("b"), "<x>", "userdata value")
  T.eq(wire.encode_resource(r), full, "full round trip")
  r = assert(wire.decode_resource('{"name":"n","lastupdate":null}'))
  T.eq(wire.encode_resource(r),
       '{"type":"","name":"n","state":"","owner":"","lastupdate":"0001-01-01T00:00:00Z","userdata":null}',
       "missing fields re-emitted as Go does")
  T.eq(wire.encode_resource({ name = "x", type = "t", state = "s", owner = "o", lastupdate = "L",
                              userdata = boskos.userdata{ z = "1", a = "2" } }),
       '{"type":"t","name":"x","state":"s","owner":"o","lastupdate":"L","userdata":{"a":"2","z":"1"}}')
end)

T.test("decoded user data keeps empty and null values, as Go's FromMap", function()
  local r = assert(wire.decode_resource('{"name":"n","userdata":{"a":"","b":null,"c":"x"}}'))
  T.eq(r.userdata:to_map(), { a = "", b = "", c = "x" })
  T.eq(r.userdata:to_json(), '{"a":"","b":"","c":"x"}')
end)

T.test("wire.decode_resource rejects bad shapes with clear errors", function()
  local cases = {
    { "{}", "unable to parse resource" },
    { '{"name":""}', "unable to parse resource" },
    { '{"name":3}', "json: cannot unmarshal number into Go struct field Resource.name of type string" },
    { '{"name":"x","userdata":{"a":1}}', "json: cannot unmarshal number into Go struct field Resource.userdata of type string" },
    { '{"name":"x","userdata":"s"}', "json: cannot unmarshal string into Go struct field Resource.userdata" },
    { "[1,2]", "json: cannot unmarshal array into Go value of type common.Resource" },
    { '"str"', "json: cannot unmarshal string into Go value of type common.Resource" },
    { '{"name":"x"', "invalid JSON" },
    { "", "invalid JSON" },
    { "nul", "invalid JSON" },
  }
  for _, c in ipairs(cases) do
    local r, err = wire.decode_resource(c[1])
    T.eq(r, nil, "decode of " .. c[1])
    T.contains(err, c[2], "error for " .. c[1])
  end
end)

T.test("wire.decode_resources: arrays, null, wrong shapes", function()
  T.eq(#assert(wire.decode_resources("null")), 0, "null")
  T.eq(#assert(wire.decode_resources("[]\n")), 0, "empty")
  local list = assert(wire.decode_resources('[{"name":"a","type":"t"},{"name":"b"}]\n'))
  T.eq({ list[1].name, list[2].name, list[1].type }, { "a", "b", "t" })
  local _, err = wire.decode_resources('{"name":"a"}')
  T.contains(err, "[]common.Resource", "object instead of array")
  _, err = wire.decode_resources('[{"name":1}]')
  T.contains(err, "Resource.name", "bad element")
  _, err = wire.decode_resources('[{"name":"a"')
  T.contains(err, "invalid JSON", "truncated")
end)

T.test("UserData: get, set, extract, update, maps and JSON", function()
  local ud = boskos.userdata{ a = "1" }
  T.eq(ud:get("a"), "1")
  T.eq(ud:get("zz"), nil)
  ud:set("s", "text: as is")
  T.eq(ud:get("s"), "text: as is", "string stored as is")
  ud:set("t", { name = "x", list = { 1, 2 }, nested = { ok = true } })
  T.eq(ud:get("t"), '{"list":[1,2],"name":"x","nested":{"ok":true}}', "table stored as JSON text")
  T.eq(ud:extract("t"), { name = "x", list = { 1, 2 }, nested = { ok = true } }, "extract of a table")
  T.eq(ud:extract("s"), { text = "as is" }, "extract parses YAML")
  ud:set("y", "project: p1\nzones:\n- us-east1-b\n- 'quoted: 1'\ncount: 3\n")
  T.eq(ud:extract("y"), { project = "p1", zones = { "us-east1-b", "quoted: 1" }, count = 3 }, "YAML block")
  local v, err = ud:extract("missing")
  T.eq(v, nil)
  T.eq(err.id, "missing", "err.id")
  T.eq(tostring(err), "user data ID missing does not exist")
  ud:set("bad", "a: [")
  v, err = ud:extract("bad")
  T.eq(v, nil)
  T.contains(tostring(err), "yaml", "YAML error")
  ud:update{ a = "", s = "new", n = "2" }
  T.eq(ud:get("a"), nil, "empty value deletes")
  T.eq(ud:get("s"), "new")
  ud:update(nil)
  T.eq(ud:get("n"), "2", "nil update changes nothing")
  ud:update(boskos.userdata{ n = "3" })
  T.eq(ud:get("n"), "3", "update from a UserData")
  local m = ud:to_map()
  m.n = "changed"
  T.eq(ud:get("n"), "3", "to_map returns a copy")
  local ud2 = boskos.userdata()
  ud2:from_map{ k = "v", ["<"] = ">" }
  T.eq(ud2:to_json(), '{"\\u003c":"\\u003e","k":"v"}', "to_json sorted and escaped")
  local back = assert(boskos.userdata_from_json(ud2:to_json()))
  T.eq(back:to_map(), ud2:to_map(), "JSON round trip")
  T.eq(assert(boskos.userdata_from_json("null")):to_map(), {}, "null")
  local bad, e = boskos.userdata_from_json('{"a":1}')
  T.eq(bad, nil)
  T.contains(tostring(e), "cannot unmarshal number", "non-string value")
  bad, e = boskos.userdata_from_json('{"a":')
  T.eq(bad, nil)
  T.contains(tostring(e), "invalid JSON", "broken JSON")
end)

T.test("bosk.yaml decodes scalars, nesting and refuses aliases and deep nests", function()
  T.eq(yaml.decode("a: 1\nb: 2.5\nc: true\nd: null\ne: '3'\nf: 0x10\n"),
       { a = 1, b = 2.5, c = true, e = "3", f = "0x10" })
  T.eq(yaml.decode('{"k": ["v", 1]}'), { k = { "v", 1 } }, "JSON is YAML")
  T.eq(yaml.decode(""), nil, "empty document")
  local v, err = yaml.decode("a: &x 1\nb: *x\n")
  T.eq(v, nil)
  T.contains(err, "aliases", "alias refused")
  v, err = yaml.decode(string.rep("[", 500) .. string.rep("]", 500))
  T.eq(v, nil)
  T.contains(err, "nesting", "depth cap")
  T.ok(not pcall(yaml.decode, {}), "table argument raises")
end)

T.test("sentinels are unique and print upstream texts", function()
  T.eq(tostring(boskos.ErrNotFound), "resources not found")
  T.eq(tostring(boskos.ErrAlreadyInUse), "resources already used by another user")
  T.eq(tostring(boskos.ErrTypeNotFound), "resource type not found")
  T.eq(tostring(boskos.ErrContextRequired), "context required")
  T.ok(boskos.ErrNotFound ~= boskos.ErrAlreadyInUse, "distinct")
  T.eq({ boskos.BUSY, boskos.CLEANING, boskos.DIRTY, boskos.FREE, boskos.LEASED, boskos.TO_BE_DELETED,
         boskos.TOMBSTONE, boskos.OTHER },
       { "busy", "cleaning", "dirty", "free", "leased", "toBeDeleted", "tombstone", "other" })
end)

T.test("memory storage: add/get/update/delete/list with upstream texts", function()
  local s = boskos.memory_storage()
  T.ok(s:add{ name = "b" })
  T.ok(s:add{ name = "a" })
  local ok, err = s:add{ name = "a" }
  T.eq(ok, nil)
  T.eq(tostring(err), "resource a already exists")
  T.eq(#s:list(), 2)
  T.eq(s:list()[1].name, "a", "sorted list")
  T.eq(s:update{ name = "a", state = "x" }.state, "x")
  T.eq(s:get("a").state, "x")
  ok, err = s:get("zz")
  T.eq(tostring(err), "cannot find item zz")
  T.ok(s:delete("a"))
  ok, err = s:delete("a")
  T.eq(tostring(err), "cannot find item a")
  ok, err = s:update{ name = "q" }
  T.eq(tostring(err), "cannot find item q")
end)

T.test("contexts: timeout, cancel, background", function()
  local bg = boskos.background()
  T.eq(bg:done(), false)
  T.eq(bg:remaining(), nil)
  local ctx = boskos.context{ timeout = 0.05 }
  T.eq(ctx:done(), false)
  T.sleep(0.08)
  T.eq(ctx:done(), true)
  T.eq(ctx:err(), "context deadline exceeded")
  ctx = boskos.context{ timeout = "1h" }
  ctx:cancel()
  T.eq(ctx:err(), "context canceled")
  T.ok(not pcall(boskos.context, { timeout = "soon" }), "bad duration raises")
  T.ok(not pcall(boskos.context, { deadline = 1 }), "unknown field raises")
end)

T.test("client construction: both-or-neither, bad options raise, warning line", function()
  local c, err = boskos.client{ owner = "me", username = "u" }
  T.eq(c, nil)
  T.eq(tostring(err), "username and passwordFile must be specified together")
  c, err = boskos.client{ owner = "me", password_file = "/nonexistent" }
  T.eq(tostring(err), "username and passwordFile must be specified together")
  c, err = boskos.client{ owner = "me", url = "localhost:8080" }
  T.eq(c, nil)
  T.contains(tostring(err), "invalid boskos URL")
  for _, bad in ipairs({ { owner = 3 }, { urll = "x" }, { dialer = { retries = 1 } }, { dialer = 3 },
                         { distinguish_not_found = "yes" } }) do
    local ok = pcall(boskos.client, bad)
    T.ok(not ok, "bad options raise: " .. T.dump(bad))
  end
  local dir = T.tmpdir()
  T.write_file(dir .. "/pw", "secret\n")
  -- The warning goes to stderr: stdout holds only what the script prints.
  local out, stderr = T.run({ "run", "-e", string.format(
    "local c, e = boskos.client{owner='o', url='http://127.0.0.1:1', username='u', password_file=%q} print(c ~= nil, e)",
    dir .. "/pw") })
  T.eq(out, "true\tnil\n", "stdout")
  T.eq(stderr, "[WARNING] should NOT use password without enabling TLS: 'http://127.0.0.1:1'\n", "warning on stderr")
  out = T.run({ "run", "-e", string.format(
    "local c, e = boskos.client{owner='o', url='https://h', username='u', password_file=%q} print(c ~= nil, e)",
    dir .. "/nope") })
  T.match(out, "^false\tcannot read the password file: " .. dir:gsub("%p", "%%%0") .. "/nope: ", "unreadable password file, named")
end)

T.test("wrong argument types raise like the standard library", function()
  local c = assert(boskos.client{ owner = "me", url = "http://127.0.0.1:1" })
  local calls = {
    { "acquire", { 1, "free", "busy" }, "bad argument #1 to 'acquire' (string expected, got number)" },
    { "acquire", { "t", nil, "busy" }, "bad argument #2 to 'acquire' (string expected, got no value)" },
    { "acquire_with_priority", { "t", "s", "d", 5 }, "#4" },
    { "acquire_wait", { {}, "t", "s", "d" }, "boskos.context expected" },
    { "acquire_by_state", { "s", "d", "n" }, "#3" },
    { "acquire_by_state", { "s", "d", { "a", 2 } }, "element 2" },
    { "release", { "n" }, "#2" },
    { "update", { "n", "s", 5 }, "#3" },
    { "update", { "n", "s", { k = 1 } }, "keys and values must be strings" },
    { "reset", { "t", "s", {}, "d" }, "#3" },
    { "reset", { "t", "s", "soon", "d" }, "time: invalid duration" },
    { "metric", { nil }, "#1" },
    { "list", { { type = 5 } }, "string expected, got number" },
    { "release_one", { 1, "d" }, "#1" },
    { "update_one", { "n", 2 }, "#2" },
    { "update_all", {}, "#1" },
    { "release_all", {}, "#1" },
  }
  for _, call in ipairs(calls) do
    local ok, err = pcall(c[call[1]], c, table.unpack(call[2], 1, 4))
    T.eq(ok, false, call[1] .. " raises")
    T.contains(err, call[3], call[1] .. " message")
  end
  -- An unknown filter is a typo to report, not a raise (issue 13).
  local list, lerr = c:list{ kind = "x" }
  T.eq(list, nil, "list with an unknown filter")
  T.eq(tostring(lerr), 'list: unknown filter "kind" (known: type, state, owner, name)', "its error")
  local ok, err = pcall(c.acquire, "t", "s", "d")
  T.eq(ok, false)
  T.contains(err, "bad self", "dot call")
  T.ok(not pcall(boskos.userdata, { a = 1 }), "userdata with a number value raises")
  T.ok(not pcall(boskos.userdata().set, boskos.userdata(), "k", print), "set of a function raises")
  local conn = require("bosk.http").new()
  T.ok(not pcall(conn.request, conn, { url = 1 }), "http url type")
  T.ok(not pcall(conn.request, conn, { url = "http://x", timeout = "1" }), "http timeout type")
  T.ok(not pcall(conn.request, conn, { url = "http://x", bogus = 1 }), "http unknown field")
  T.ok(not pcall(conn.request, conn, "http://x"), "http non-table")
  conn:close()
  conn:close()
  ok, err = pcall(conn.request, conn, { url = "http://x" })
  T.contains(err, "closed", "closed connection raises")
end)

-- The C fast path (bosk.wirec) against the cjson path: same results and
-- errors for every text, whichever path reads it.
local function decoded_shape(r, err)
  if not r then return { err = err } end
  local ud = r.userdata
  return { fields = r, ud_mt = getmetatable(ud) == wire.UserData, ud_null = ud._null,
           ud_map = ud._map, ud_keys = (function() local n = 0 for _ in pairs(ud) do n = n + 1 end return n end)(),
           res_meta = getmetatable(r) }
end
local function same_both_ways(text, what)
  local fast = decoded_shape(wire.decode_resource(text))
  local slow = decoded_shape(wire.decode_resource_lua(text))
  T.eq(fast, slow, what or text)
  return fast
end

T.test("wire.decode_resource: the C compact path and the cjson path agree", function()
  local head = '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":'
  local shapes = {
    head .. '{}}', head .. 'null}', head .. '{"a":"1"}}', head .. '{"a":"1","b":"","c":"x y"}}',
    head .. '{"a":"1","a":"2"}}', head .. '{}' .. ',"expiration-date":"E"}',
    head .. '{"k":"v"},"expiration-date":""}', head .. 'null,"expiration-date":"E"}',
    head .. '[]}', head .. '{"a":1}}', head .. '{"a":null}}', head .. '{"a":true}}', head .. '"x"}',
    head .. '{"a":"\\u00e9"}}', head .. '{"a":"é日本😀"}}', head .. '{"\\n":"\\t"}}',
    head .. '{"a":"\255\254"}}', head .. '{"a":"b\\"c"}}', head .. '{"a":"\1"}}',
    '{"type":"t","name":"","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '{"type":"t","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '{"type":"t","name":"n"}', '{"name":"n","type":"t","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{},"extra":"x"}',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{},"expiration-date":1}',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":null,"userdata":{}}',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{},"expiration-date":null}',
    '{"type":1,"name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '{"type":"t","name":"n","name":"m","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    ' {"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{ }}',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{}}\n',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{}} x',
    '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L","userdata":{}}\0',
    '{"type":"\\u003c","name":"\\ud83d\\ude00","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '{"type":"t","name":"n\0","state":"s","owner":"o","lastupdate":"L","userdata":{}}',
    '[]', '{}', 'null', '"x"', '', '{', '1',
  }
  for _, text in ipairs(shapes) do same_both_ways(text) end
  local r = same_both_ways(head .. 'null,"expiration-date":"E"}')
  T.eq({ r.fields.expiration_date, r.ud_null, r.ud_mt }, { "E", true, true }, "null user data, expiration")
  r = same_both_ways(head .. '{"a":"1","a":"2"}}')
  T.eq(r.ud_map, { a = "2" }, "a repeated key keeps its last value")
  r = same_both_ways('{"type":"t","name":"","state":"s","owner":"o","lastupdate":"L","userdata":{}}')
  T.eq(r.err, "unable to parse resource", "empty name")
  T.eq(select(2, wire.decode_resource('{"type":"t"}')), "unable to parse resource", "missing name")
  T.eq(require("bosk.wirec").decode_resource(head .. '{"a":"1"}}', wire.UserData).userdata:get("a"), "1",
       "the compact form is read by C")
  T.eq(require("bosk.wirec").decode_resource(head .. '{"a":"\\n"}}', wire.UserData), nil, "escapes are not")
end)

T.test("wire.decode_resource: truncated and corrupted texts agree and never crash", function()
  local full = '{"type":"t","name":"n","state":"s","owner":"o","lastupdate":"L",' ..
               '"userdata":{"a":"1","bb":"22"},"expiration-date":"E"}'
  for i = 0, #full do same_both_ways(full:sub(1, i), "prefix " .. i) end
  math.randomseed(42)
  local alphabet = '{}[]":,\\ane0\255 '
  for _ = 1, 3000 do
    local b = { string.byte(full, 1, -1) }
    for _ = 1, math.random(1, 3) do
      local pos = math.random(1, #b)
      local k = math.random(1, #alphabet)
      b[pos] = alphabet:byte(k)
    end
    local text = string.char(table.unpack(b))
    same_both_ways(text, "corrupted " .. text)
  end
  for _ = 1, 500 do
    local b = {}
    for i = 1, math.random(0, 40) do b[i] = math.random(0, 255) end
    same_both_ways(string.char(table.unpack(b)), "random bytes")
  end
end)

T.cleanup()
