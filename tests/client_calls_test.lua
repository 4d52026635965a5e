-- client_calls_test: every boskos client call against the scriptable fake
-- server: the exact requests, the status mapping per call, the retry
-- policy and its aggregated messages.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local boskos = require "boskos"
local fake = require("fake").start(T)

local sleeps = {}
boskos.sleep = function(s) sleeps[#sleeps + 1] = s end

local res = require("fake").res

local function fresh(opts)
  sleeps = {}
  opts = opts or {}
  opts.url = opts.url or (fake.url .. "/ignored/base")
  return fake:client(opts)
end

-- Checks one recorded request: method, target, body, content type.
local function check_request(q, method, target, body, ctype)
  T.eq(q.method, method, "method")
  T.eq(q.target, target, "target")
  T.eq(q.body, body or "", "body")
  T.eq(q.headers["content-type"], ctype, "content-type")
  T.eq(q.headers["content-length"], tostring(#(body or "")), "content-length")
  T.eq(q.headers["expect"], nil, "no Expect header")
  if method == "GET" then T.eq(q.headers["content-length"] ~= nil and body == nil and "0", nil, "GET has no length") end
end

T.test("acquire sends the upstream request and parses the resource", function()
  local c = fresh()
  fake:script{ { body = res("r1") } }
  local r = assert(c:acquire("gce project", "free", "busy"))
  T.eq({ r.name, r.type, r.state, r.owner, r.lastupdate }, { "r1", "t", "busy", "me", "2020-01-01T00:00:00Z" })
  T.eq(getmetatable(r.userdata), require("bosk.wire").UserData, "userdata is a UserData")
  local q = fake:requests()
  T.eq(#q, 1, "one request")
  q[1].headers["content-length"] = q[1].headers["content-length"]
  T.eq(q[1].method, "POST")
  T.eq(q[1].target, "/acquire?dest=busy&owner=me&state=free&type=gce+project")
  T.eq(q[1].headers["content-length"], "0", "POST without body sends Content-Length: 0")
  T.eq(q[1].headers["content-type"], nil, "no Content-Type")
  T.eq(q[1].headers["expect"], nil, "no Expect")
  T.ok(c:has_resource(), "stored")
end)

T.test("acquire_with_priority sends request_id only when non-empty", function()
  local c = fresh()
  fake:script{ { body = res("r1") }, { body = res("r2") } }
  assert(c:acquire_with_priority("t", "free", "busy", "id-1"))
  assert(c:acquire_with_priority("t", "free", "busy", ""))
  local q = fake:requests()
  check_request(q[1], "POST", "/acquire?dest=busy&owner=me&request_id=id-1&state=free&type=t")
  check_request(q[2], "POST", "/acquire?dest=busy&owner=me&state=free&type=t")
end)

T.test("acquire status mapping: 401, 404, type-not-found, 200 without name, bad JSON", function()
  local c = fresh()
  fake:script{
    { status = 401, body = "owner mismatch\n" },
    { status = 404, body = 'Acquire failed: resource type "t" does not exist\n' },
    { status = 404, body = "Acquire failed: no available resource t, try again later.\n" },
    { body = '{"type":"t"}' },
    { body = '{"name":' },
    { body = '[1]' },
    { body = '{"name":5}' },
  }
  local r, err = c:acquire("t", "free", "busy")
  T.ok(r == nil and err == boskos.ErrAlreadyInUse, "401", err)
  r, err = c:acquire("t", "free", "busy")
  T.ok(err == boskos.ErrNotFound, "404 without the flag", err)
  c.distinguish_not_found = true
  r, err = c:acquire("t", "free", "busy")
  T.ok(err == boskos.ErrNotFound, "404 not-found text with the flag", err)
  fake:script{ { status = 404, body = 'Acquire failed: resource type "t" does not exist\n' },
               { status = 404, body = 'Acquire failed: resource type "other" does not exist\n' } }
  T.eq(#sleeps, 0, "fatal answers do not sleep")
  T.eq(tostring(select(2, c:acquire("t", "free", "busy"))), "unable to parse resource", "200 without name")
  T.contains(tostring(select(2, c:acquire("t", "free", "busy"))), "invalid JSON", "truncated JSON")
  T.contains(tostring(select(2, c:acquire("t", "free", "busy"))), "common.Resource", "array")
  T.contains(tostring(select(2, c:acquire("t", "free", "busy"))), "Resource.name", "wrong type")
  r, err = c:acquire("t", "free", "busy")
  T.ok(err == boskos.ErrTypeNotFound, "type-not-found with the flag", err)
  r, err = c:acquire("t", "free", "busy")
  T.ok(err == boskos.ErrNotFound, "another type's text", err)
  T.eq(#sleeps, 0, "no retries")
  T.eq(c:has_resource(), false, "nothing stored")
end)

T.test("acquire retries other statuses 4 times, sleeping 1, 4, 9, and aggregates", function()
  local c = fresh()
  fake:script{ { status = 500 }, { status = 503 }, { status = 500 }, { status = 409, reason = "Conflict" } }
  local r, err = c:acquire("t", "free", "busy")
  T.eq(r, nil)
  T.eq(tostring(err), "[status 500 Internal Server Error, status code 500, status 503 Service Unavailable, " ..
                      "status code 503, status 409 Conflict, status code 409]", "aggregate, duplicates dropped")
  T.eq(sleeps, { 1, 4, 9 }, "sleeps")
  T.eq(#fake:requests(), 4, "4 attempts")
  fresh()
  fake:script{ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } }
  r, err = c:acquire("t", "free", "busy")
  T.eq(tostring(err), "status 500 Internal Server Error, status code 500", "one distinct error is bare")
  fresh()
  fake:script{ { status = 500 }, { status = 502 }, { body = res("r9") } }
  r = c:acquire("t", "free", "busy")
  T.eq(r and r.name, "r9", "success on the third attempt")
  T.eq(sleeps, { 1, 4 })
  fresh()
  fake:script{ { status = 418, reason = "I'm a teapot" }, { status = 404 } }
  r, err = c:acquire("t", "free", "busy")
  T.ok(err == boskos.ErrNotFound, "a fatal answer after a retried one", err)
end)

T.test("acquire_by_state: request, array, null, 401/404, retries", function()
  local c = fresh()
  fake:script{ { body = "[" .. res("a") .. "," .. res("b") .. "]\n" }, { body = "null\n" },
               { status = 401 }, { status = 404 }, { body = '{"name":"x"}' } }
  local list = assert(c:acquire_by_state("free", "busy", { "a", "b" }))
  T.eq({ list[1].name, list[2].name }, { "a", "b" })
  check_request(fake:requests()[1], "POST", "/acquirebystate?dest=busy&names=a%2Cb&owner=me&state=free")
  T.eq(#assert(c:acquire_by_state("free", "busy", { "c" })), 0, "null -> no resources")
  T.ok(select(2, c:acquire_by_state("free", "busy", { "a" })) == boskos.ErrAlreadyInUse, "401")
  T.ok(select(2, c:acquire_by_state("free", "busy", { "a" })) == boskos.ErrNotFound, "404")
  T.contains(tostring(select(2, c:acquire_by_state("free", "busy", { "a" }))), "[]common.Resource", "object")
  T.eq(#c.storage:list(), 2, "both stored")
  fake:script{ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } }
  local _, err = c:acquire_by_state("free", "busy", { "a" })
  T.eq(tostring(err), "status 500 Internal Server Error, status code 500")
end)

T.test("release: request, every non-200 retried with the statusCode text", function()
  local c = fresh()
  T.eq(c:release("r 1", "dirty"), true)
  check_request(fake:requests()[1], "POST", "/release?dest=dirty&name=r+1&owner=me")
  fake:script{ { status = 401 }, { status = 404 }, { status = 409 }, { status = 404 } }
  local ok, err = c:release("r1", "dirty")
  T.eq(ok, nil)
  T.eq(tostring(err), "[status 401 Unauthorized, statusCode 401 releasing r1, status 404 Not Found, " ..
                      "statusCode 404 releasing r1, status 409 Conflict, statusCode 409 releasing r1]")
  T.eq(sleeps, { 1, 4, 9 })
end)

T.test("update: request with JSON body and Content-Type, retries, texts", function()
  local c = fresh()
  T.eq(c:update("r1", "busy", boskos.userdata{ test = "new", a = "<x>" }), true)
  T.eq(c:update("r1", "busy"), true)
  T.eq(c:update("r1", "busy", { plain = "map" }), true)
  local q = fake:requests()
  check_request(q[1], "POST", "/update?name=r1&owner=me&state=busy",
                '{"a":"\\u003cx\\u003e","test":"new"}\n', "application/json")
  check_request(q[2], "POST", "/update?name=r1&owner=me&state=busy", nil, "application/json")
  T.eq(q[3].body, '{"plain":"map"}\n', "plain map body")
  fake:script{ { status = 409 }, { status = 409 }, { status = 409 }, { status = 409 } }
  local ok, err = c:update("r1", "busy")
  T.eq(ok, nil)
  T.eq(tostring(err), "status 409 Conflict, status code 409 updating r1")
end)

T.test("reset: request with Go duration, map result, retries, bad JSON", function()
  local c = fresh()
  fake:script{ { body = '{"a":"o1","b":"o2"}' }, { body = "{}" }, { body = '{"a":1}' }, { body = "" } }
  T.eq(assert(c:reset("t", "busy", 1800, "dirty")), { a = "o1", b = "o2" })
  check_request(fake:requests()[1], "POST", "/reset?dest=dirty&expire=30m0s&state=busy&type=t")
  T.eq(assert(c:reset("t", "busy", "1.5h", "dirty")), {})
  T.eq(fake:requests()[2].query, "dest=dirty&expire=1h30m0s&state=busy&type=t")
  T.contains(tostring(select(2, c:reset("t", "busy", 0.25, "dirty"))), "cannot unmarshal", "non-string value")
  T.eq(fake:requests()[3].query, "dest=dirty&expire=250ms&state=busy&type=t")
  T.contains(tostring(select(2, c:reset("t", "busy", 1, "dirty"))), "invalid JSON", "empty body")
  T.eq(#sleeps, 0, "parse errors are fatal")
  fake:script{ { status = 404 }, { status = 500 }, { status = 404 }, { status = 404 } }
  T.eq(tostring(select(2, c:reset("t", "busy", 1, "dirty"))),
       "[status 404 Not Found, status code 404, status 500 Internal Server Error, status code 500]")
end)

T.test("metric: GET request, decoding, 404 retried", function()
  local c = fresh()
  fake:script{ { body = '{"type":"t","current":{"free":2,"busy":1},"owner":{"":2,"me":1}}',
                 headers = { ["Content-Type"] = "application/json" } },
               { body = '{"type":"t","current":{"free":"x"}}' } }
  T.eq(assert(c:metric("t")), { type = "t", current = { free = 2, busy = 1 }, owners = { [""] = 2, me = 1 } })
  local q = fake:requests()[1]
  T.eq({ q.method, q.target, q.body, q.headers["content-length"] }, { "GET", "/metric?type=t", "", nil })
  T.contains(tostring(select(2, c:metric("t"))), "map[string]int", "bad count")
  fake:script{ { status = 404, body = "no available resource t, try again later.\n" },
               { status = 404 }, { status = 404 }, { status = 404 } }
  T.eq(tostring(select(2, c:metric("t"))), "status 404 Not Found, status code 404")
  T.eq(sleeps, { 1, 4, 9 }, "metric 404 retried")
end)

T.test("list: GET /resources with filters; unsupported servers get a clear error", function()
  local c = fresh()
  fake:script{ { body = "[" .. res("a") .. "]" }, { body = "" }, { status = 404 }, { body = "{}" } }
  local list = assert(c:list{ type = "t", state = "free" })
  T.eq(list[1].name, "a")
  T.eq(fake:requests()[1].target, "/resources?state=free&type=t")
  local want = "the server at " .. fake.url .. "/ignored/base does not support listing resources (GET /resources)"
  T.eq(tostring(select(2, c:list())), want, "empty 200 (upstream)")
  T.eq(tostring(select(2, c:list())), want, "404")
  T.eq(tostring(select(2, c:list())), want, "object")
  T.eq(c:has_resource(), false, "list does not store")
end)

T.test("release_one / release_all / update_one / update_all / sync_all use the store", function()
  local c = fresh()
  T.eq(tostring(select(2, c:release_one("x", "dirty"))), "no resource name x")
  T.eq(tostring(select(2, c:update_one("x", "busy"))), "no resource name x")
  T.eq(tostring(select(2, c:release_all("dirty"))), "no holding resource")
  T.eq(tostring(select(2, c:update_all("busy"))), "no holding resource")
  T.eq(c:sync_all(), true, "sync_all with nothing held")
  T.eq(#fake:requests(), 0, "no requests for local errors")
  fake:script{ { body = res("a") }, { body = res("b") } }
  assert(c:acquire("t", "free", "busy"))
  assert(c:acquire("t", "free", "busy"))
  fake:reset()
  T.eq(c:update_one("a", "cleaning", { k = "v" }), true)
  local a = c.storage:get("a")
  T.eq({ a.state, a.userdata:get("k") }, { "cleaning", "v" }, "local record updated")
  T.eq(fake:requests()[1].body, '{"k":"v"}\n')
  T.eq(c:sync_all(), true)
  local q = fake:requests()
  T.eq({ q[2].query, q[3].query }, { "name=a&owner=me&state=cleaning", "name=b&owner=me&state=busy" },
       "sync_all sends each local state")
  T.eq(q[2].body, "", "heartbeat without body")
  fake:reset()
  fake:script{ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } }
  local ok, err = c:update_all("leased")
  T.eq(ok, nil)
  T.eq(tostring(err), "1 error occurred:\n\t* status 500 Internal Server Error, status code 500 updating a\n\n")
  T.eq(c.storage:get("a").state, "cleaning", "failed update keeps the local state")
  T.eq(c.storage:get("b").state, "leased", "successful update changes it")
  fake:reset()
  fake:script{ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } }
  ok, err = c:release_one("a", "dirty")
  T.eq(ok, nil)
  T.eq(c.storage:get("a"), nil, "released record gone though the call failed")
  fake:script{ { body = res("a") } }
  assert(c:acquire("t", "free", "busy"))
  fake:script{ { status = 401 }, { status = 401 }, { status = 401 }, { status = 401 },
               { status = 404 }, { status = 404 }, { status = 404 }, { status = 404 } }
  ok, err = c:release_all("dirty")
  T.eq(ok, nil)
  T.eq(tostring(err), "2 errors occurred:\n\t* status 401 Unauthorized, statusCode 401 releasing a\n" ..
                      "\t* status 404 Not Found, statusCode 404 releasing b\n\n")
  T.eq(c:has_resource(), false, "release_all empties the store")
end)

T.test("a stored name keeps its old record on re-acquire", function()
  local c = fresh()
  fake:script{ { body = res("a") },
               { body = '{"type":"t","name":"a","state":"other","owner":"me","lastupdate":"x","userdata":{}}' } }
  assert(c:acquire("t", "free", "busy"))
  local r = assert(c:acquire("t", "free", "busy"))
  T.eq(r.state, "other", "returned as sent")
  T.eq(c.storage:get("a").state, "busy", "store keeps the first record")
  r.state = "mutated"
  T.eq(c.storage:get("a").state, "busy", "store holds a copy")
end)

T.test("a custom storage table is used", function()
  local log = {}
  local inner = boskos.memory_storage()
  local storage = {}
  for _, m in ipairs({ "add", "delete", "update", "get", "list" }) do
    storage[m] = function(_, ...) log[#log + 1] = m return inner[m](inner, ...) end
  end
  local c = fresh{ storage = storage }
  fake:script{ { body = res("a") } }
  assert(c:acquire("t", "free", "busy"))
  assert(c:release_one("a", "dirty"))
  T.eq(log, { "add", "get", "delete" })
end)

T.cleanup()
