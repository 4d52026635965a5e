-- client_transport_test: what happens below the protocol: keep-alive, the
-- dialer's connect retries, timeouts, dropped and truncated responses, huge
-- responses, basic auth with a rotating password file, and the *_wait
-- calls with contexts.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local boskos = require "boskos"
local http = require "bosk.http"
local Fake = require "fake"
local fake = Fake.start(T)

local sleeps = {}
boskos.sleep = function(s) sleeps[#sleeps + 1] = s end
boskos.poll_interval = 0.05

local res = Fake.res

local function fresh(opts)
  sleeps = {}
  return fake:client(opts)
end

local function base64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((s:gsub(".", function(ch)
    local bits, b = "", ch:byte()
    for i = 8, 1, -1 do bits = bits .. ((b >> (i - 1)) & 1) end
    return bits
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(six)
    if #six < 6 then return "" end
    local n = tonumber(six, 2)
    return alphabet:sub(n + 1, n + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

T.test("consecutive calls reuse one TCP connection", function()
  local c = fresh()
  for _ = 1, 5 do assert(c:release("r", "dirty")) end
  assert(c:metric("t") == nil or true)
  local q = fake:requests()
  T.eq(#q, 6)
  for i = 2, #q do T.eq(q[i].conn, q[1].conn, "connection of request " .. i) end
  T.eq(q[6].client_port, q[1].client_port, "same client port")
  fake:script{ { close = true } }
  assert(c:release("r", "dirty"))
  assert(c:release("r", "dirty"))
  q = fake:requests()
  T.ok(q[8].conn ~= q[7].conn, "a new connection after the server closed one")
end)

T.test("the status line is kept as the server sent it", function()
  local c = fresh()
  fake:script{ { status = 499, reason = "Custom Reason Here" }, { status = 499, reason = "Custom Reason Here" },
               { status = 499, reason = "Custom Reason Here" }, { status = 499, reason = "Custom Reason Here" } }
  T.eq(tostring(select(2, c:acquire("t", "free", "busy"))), "status 499 Custom Reason Here, status code 499")
end)

T.test("the dialer retries a refused connect retry_count times, then the attempt fails", function()
  local port = Fake.free_port(T)
  local c = fresh{ url = "http://127.0.0.1:" .. port, dialer = { retry_count = 2, retry_sleep = 0.05, timeout = 1 } }
  local started = T.now()
  local r, err = c:acquire("t", "free", "busy")
  local took = T.now() - started
  T.eq(r, nil)
  T.eq(err.kind, "connect", "error kind")
  T.contains(tostring(err), 'Post "http://127.0.0.1:' .. port .. '/acquire?dest=busy&owner=me&state=free&type=t": ')
  T.contains(tostring(err), "Connection refused")
  T.eq(sleeps, { 1, 4, 9 }, "the call itself retried 4 times")
  T.ok(took >= 4 * 2 * 0.05 and took < 5, "4 attempts x 2 dialer pauses of 50 ms", took)
end)

T.test("the dialer's retries reach a server that comes up late", function()
  local port = Fake.free_port(T)
  local late = T.spawn({ "sh", "-c", "sleep 0.4; exec python3 " .. T.root .. "/tests/fake_server.py " .. port })
  local c = fresh{ url = "http://127.0.0.1:" .. port, dialer = { retry_count = 50, retry_sleep = 0.05, timeout = 1 } }
  local started = T.now()
  local ok, err = c:release("r", "dirty")
  T.eq(ok, true, "release through the late server: " .. tostring(err))
  T.eq(#sleeps, 0, "no call-level retry: the dialer waited")
  T.ok(T.now() - started >= 0.3, "it did wait")
  late:stop()
end)

T.test("the overall timeout fails an attempt, which is retried", function()
  local c = fresh{ timeout = 0.2 }
  fake:script{ { delay = 1 }, { delay = 1 }, { delay = 1 }, { body = res("r1") } }
  local started = T.now()
  local r, err = c:acquire("t", "free", "busy")
  T.eq(r and r.name, "r1", "fourth attempt succeeds: " .. tostring(err))
  T.eq(sleeps, { 1, 4, 9 })
  T.ok(T.now() - started < 3, "timeouts were short")
  fake:script{ { delay = 1 }, { delay = 1 }, { delay = 1 }, { delay = 1 } }
  r, err = c:acquire("t", "free", "busy")
  T.eq(err.kind, "timeout")
  T.contains(tostring(err), "timed out")
end)

T.test("dropped connections and truncated bodies are retried transport errors", function()
  local c = fresh()
  fake:script{ { drop = true }, { drop = true }, { drop = true }, { drop = true } }
  local ok, err = c:release("r1", "dirty")
  T.eq(ok, nil)
  T.eq(err.kind, "io")
  T.contains(tostring(err), "Empty reply from server")
  T.eq(sleeps, { 1, 4, 9 })
  c = fresh()
  fake:script{ { body = res("r1"), truncate = 20 }, { body = res("r1"), truncate = 20 },
               { body = res("r1"), truncate = 20 }, { body = res("r1"), truncate = 5 } }
  local r
  r, err = c:acquire("t", "free", "busy")
  T.eq(r, nil)
  T.contains(tostring(err), "transfer closed", "truncated")
  c = fresh()
  fake:script{ { drop = true }, { body = res("r2") } }
  r, err = c:acquire("t", "free", "busy")
  T.eq(r and r.name, "r2", "recovers on a new connection: " .. tostring(err))
end)

T.test("garbage instead of HTTP is a retried io error, never a crash", function()
  local c = fresh()
  fake:script{ { raw = "HELLO WORLD\r\n\r\n" }, { raw = "HTTP/1.1 abc\r\n\r\n" },
               { raw = "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n" },
               { raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" } }
  local r, err = c:acquire("t", "free", "busy")
  T.eq(r, nil)
  T.eq(err.kind, "io", "kind")
  T.eq(#err.errors, 4, "four distinct failures: " .. tostring(err))
  T.eq(sleeps, { 1, 4, 9 })
  fake:script{ { body = res("ok1") } }
  T.eq(assert(c:acquire("t", "free", "busy")).name, "ok1", "the client still works")
end)

T.test("a 1 GB response fails fast without buffering it", function()
  local c = fresh()
  local started = T.now()
  fake:default{ huge = 1000000000 }
  local r, err = c:acquire("t", "free", "busy")
  T.eq(r, nil)
  T.eq(err.kind, "too_large")
  T.contains(tostring(err), "response body larger than 16777216 bytes")
  fake:default{ huge = 1000000000, no_length = true }
  r, err = c:acquire("t", "free", "busy")
  T.eq(r, nil)
  T.eq(err.kind, "too_large", "no Content-Length: stopped while streaming")
  T.ok(T.now() - started < 20, "fast", T.now() - started)
  c = fresh{ max_body = 50 }
  fake:script{ { body = res("r1") }, { body = res("r1") }, { body = res("r1") }, { body = res("r1") },
               { body = "[]", no_length = true } }
  r, err = c:acquire("t", "free", "busy")
  T.eq(err.kind, "too_large", "max_body option")
  T.eq(c:acquire_by_state("free", "busy", { "a" }) ~= nil, true, "a small streamed body is fine")
end)

T.test("bosk.http: methods, bodies and error kinds", function()
  fake:reset()
  local conn <close> = http.new()
  local status, line, body = conn:request{ url = fake.url .. "/x" }
  T.eq({ status, line, body }, { 200, "200 OK", "" })
  fake:script{ { status = 201, body = "made" } }
  status, line, body = conn:request{ method = "PUT", url = fake.url .. "/y", body = "abc", content_type = "text/plain" }
  T.eq({ status, line, body }, { 201, "201 Created", "made" })
  local q = fake:requests()
  T.eq({ q[1].method, q[1].headers["content-length"], q[2].method, q[2].body, q[2].headers["content-type"] },
       { "GET", nil, "PUT", "abc", "text/plain" })
  local ok, kind, msg = conn:request{ url = "http://127.0.0.1:" .. Fake.free_port(T) .. "/", connect_timeout = 1 }
  T.eq({ ok, kind }, { nil, "connect" })
  T.contains(msg, "Connection refused")
  ok, kind = conn:request{ url = "notaurl" }
  T.eq({ ok, kind }, { nil, "io" })
end)

T.test("conn:post: a bodiless POST; a compact 200 resource comes back decoded", function()
  fake:reset()
  local wire = require "bosk.wire"
  local conn <close> = http.new()
  fake:script{ { body = res("p1") }, { body = " " .. res("p2") }, { status = 404, body = res("p3") },
               { body = res("p4") } }
  local status, line, r, decoded = conn:post(fake.url .. "/acquire?x=1", 5, 10, 1000, wire.UserData)
  T.eq({ status, line, decoded, r.name, r.type, r.owner }, { 200, "200 OK", true, "p1", "t", "me" })
  T.eq(getmetatable(r.userdata), wire.UserData, "user data is a UserData")
  T.eq(r, wire.decode_resource(res("p1")), "the same table as bosk.wire's decoder makes")
  -- Anything but Go's compact form, or any other status: the text, as conn:send gives it.
  T.eq({ conn:post(fake.url .. "/acquire", 5, 10, 1000, wire.UserData) }, { 200, "200 OK", " " .. res("p2") })
  T.eq({ conn:post(fake.url .. "/acquire", 5, 10, 1000, wire.UserData) }, { 404, "404 Not Found", res("p3") })
  T.eq({ conn:post(fake.url .. "/release", 5, 10, 1000) }, { 200, "200 OK", res("p4") }, "no decoding without UserData")
  local q = fake:requests()
  T.eq(#q, 4, "one request per call")
  T.eq({ q[1].method, q[1].target, q[1].body, q[1].headers["content-length"], q[1].headers["content-type"] },
       { "POST", "/acquire?x=1", "", "0", nil })
  fake:script{ { body = string.rep("x", 2000) } }
  local ok, kind = conn:post(fake.url .. "/big", 5, 10, 1000, wire.UserData)
  T.eq({ ok, kind }, { nil, "too_large" }, "max_body holds")
  T.eq(select(3, conn:post(fake.url .. "/after")), "", "the next answer starts empty")
  T.eq(select(2, pcall(http.new().post, {}, fake.url)):match("bosk.http.conn expected") ~= nil, true,
       "a wrong self is an argument error")
end)

-- Runs a one-pair script in a child `bosk run` with the given environment;
-- returns its output (the fake server records the request).
local function release_with_env(url, env)
  local out, err, code = T.run({ "run", "-e", string.format([[
    local c = assert(boskos.client{ owner = "me", url = %q, dialer = { retry_count = 0, timeout = 2 } })
    boskos.sleep = function() end
    local ok, e = c:release("r", "dirty")
    print(ok and "released" or tostring(e))]], url) }, { env = env, timeout = 30 })
  T.eq(code, 0, "bosk run: " .. err)
  return out
end

local proxy_vars = {}
for _, name in ipairs({ "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }) do
  if os.getenv(name) then proxy_vars[#proxy_vars + 1] = name end
end

local proxy_test = #proxy_vars == 0 and T.test or function(name)
  T.skip(name, "the environment names a proxy: " .. table.concat(proxy_vars, ", "))
end

proxy_test("proxies: taken from the environment as libcurl does, never for 127.0.0.1", function()
  fake:reset()
  local proxy = "http://127.0.0.1:" .. fake.port
  -- 127.0.0.2 is no loopback name in the no-proxy list: it goes through the proxy.
  local far = "http://127.0.0.2:1"
  for _, var in ipairs({ "http_proxy", "ALL_PROXY" }) do
    T.eq(release_with_env(far, { [var] = proxy }), "released\n", var)
    T.eq(fake:last().target, far .. "/release?dest=dirty&name=r&owner=me", var .. ": sent to the proxy")
  end
  T.eq(release_with_env(fake.url, { http_proxy = "http://127.0.0.1:" .. Fake.free_port(T) }), "released\n",
       "127.0.0.1 bypasses a (dead) proxy")
  T.eq(fake:last().target, "/release?dest=dirty&name=r&owner=me", "direct")
  local n = #fake:requests()
  T.contains(release_with_env(far, { no_proxy = "example.com" }), "Connection refused",
             "no proxy variable: 127.0.0.2 is tried directly")
  T.eq(#fake:requests(), n, "and the fake server saw nothing")
end)

T.test("basic auth, with the password file read again when it changes", function()
  local dir = T.tmpdir()
  local pw = T.write_file(dir .. "/pw", "  first-secret\n")
  local c = fresh{ username = "user", password_file = pw }
  assert(c:release("r", "dirty"))
  T.write_file(pw, "second-secret-longer\n")
  assert(c:release("r", "dirty"))
  os.remove(pw)
  assert(c:release("r", "dirty"))
  local q = fake:requests()
  T.eq(q[1].headers.authorization, "Basic " .. base64("user:first-secret"), "trimmed password")
  T.eq(q[2].headers.authorization, "Basic " .. base64("user:second-secret-longer"), "rotated")
  T.eq(q[3].headers.authorization, q[2].headers.authorization, "a vanished file keeps the last password")
  c = fresh()
  assert(c:release("r", "dirty"))
  T.eq(fake:requests()[1].headers.authorization, nil, "no auth without credentials")
end)

T.test("acquire_wait polls with one request id until it gets a resource", function()
  local c = fresh()
  fake:script{ { status = 404 }, { status = 401 }, { status = 404 }, { body = res("w1") } }
  local r, err = c:acquire_wait(boskos.background(), "t", "free", "busy")
  T.eq(r and r.name, "w1", tostring(err))
  local q = fake:requests()
  T.eq(#q, 4)
  local id = q[1].query:match("request_id=([%x%-]+)")
  T.match(id, "^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", "a UUIDv4 request id")
  for i = 2, 4 do T.eq(q[i].query:match("request_id=([%x%-]+)"), id, "same id in request " .. i) end
  T.eq(#sleeps, 0, "polling does not use the retry sleep")
  T.ok(c.storage:get("w1"), "stored")
end)

T.test("acquire_wait returns the last not-found when the context ends", function()
  local c = fresh()
  fake:default{ status = 404 }
  local started = T.now()
  local r, err = c:acquire_wait(boskos.context{ timeout = 0.3 }, "t", "free", "busy")
  local took = T.now() - started
  T.ok(r == nil and err == boskos.ErrNotFound, "ErrNotFound", err)
  T.ok(took >= 0.28 and took < 2, "waited for the context", took)
  local n = #fake:requests()
  T.ok(n >= 3 and n <= 8, "polled every 50 ms", n)
  fake:default{ status = 401 }
  local ctx = boskos.context{ timeout = 10 }
  ctx:cancel()
  r, err = c:acquire_wait(ctx, "t", "free", "busy")
  T.ok(err == boskos.ErrAlreadyInUse, "a cancelled context stops after one try", err)
  T.eq(#fake:requests(), n + 1)
end)

T.test("wait variants: nil context, fatal errors, priority id, by state", function()
  local c = fresh()
  T.ok(select(2, c:acquire_wait(nil, "t", "free", "busy")) == boskos.ErrContextRequired, "acquire_wait")
  T.ok(select(2, c:acquire_wait_with_priority(nil, "t", "free", "busy", "id")) == boskos.ErrContextRequired)
  T.ok(select(2, c:acquire_by_state_wait(nil, "free", "busy", { "a" })) == boskos.ErrContextRequired)
  T.eq(#fake:requests(), 0, "no request without a context")
  c.distinguish_not_found = true
  fake:script{ { status = 404, body = 'resource type "t" does not exist' } }
  T.ok(select(2, c:acquire_wait(boskos.background(), "t", "free", "busy")) == boskos.ErrTypeNotFound,
       "type-not-found ends the wait")
  fake:script{ { status = 404 }, { body = res("p1") } }
  local r = assert(c:acquire_wait_with_priority(boskos.background(), "t", "free", "busy", "my-id"))
  T.eq(r.name, "p1")
  local q = fake:requests()
  T.contains(q[2].query, "request_id=my-id")
  T.contains(q[3].query, "request_id=my-id")
  fake:reset()
  fake:script{ { status = 404 }, { status = 401 }, { body = "[" .. res("s1") .. "]\n" } }
  local list = assert(c:acquire_by_state_wait(boskos.context{ timeout = 5 }, "free", "busy", { "s1" }))
  T.eq(list[1].name, "s1")
  q = fake:requests()
  T.eq(#q, 3)
  T.eq(q[3].query, "dest=busy&names=s1&owner=me&state=free", "no request id by state")
  fake:reset()
  fake:script{ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } }
  local _, err = c:acquire_by_state_wait(boskos.background(), "free", "busy", { "s1" })
  T.eq(tostring(err), "status 500 Internal Server Error, status code 500", "retried error ends the wait")
end)

T.test("close drops the connection; the client then raises", function()
  local c = fresh()
  assert(c:release("r", "dirty"))
  c:close()
  T.ok(not pcall(c.release, c, "r", "dirty"), "use after close raises")
  do
    local scoped <close> = fresh()
    assert(scoped:release("r", "dirty"))
  end
end)

fake:stop()
T.cleanup()
