-- bosk server: every endpoint and error path over real HTTP (curl CLI),
-- with upstream's exact statuses, headers and bodies (docs/protocol.md §2, §3).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

local srv = S.start(T, { config = [[
resources:
- type: t
  state: free
  names: [r1, r2, r3]
- type: other
  state: dirty
  names: [o1]
]] })
local c = S.new(T, srv)
local TEXT = "text/plain; charset=utf-8"

local function expect_error(want_status, want_text, status, body, headers)
  T.eq(status, want_status, "status")
  T.eq(body, want_text .. "\n", "body")
  T.eq(S.header(headers, "Content-Type"), TEXT, "content type")
  T.eq(S.header(headers, "X-Content-Type-Options"), "nosniff", "nosniff")
end

T.test("acquire hands out the least recently updated free resource", function()
  local status, body, headers = c.acquire("t", "free", "busy", "alice")
  T.eq(status, 200, "status")
  T.eq(S.mask_times(body), '{"type":"t","name":"r1","state":"busy","owner":"alice","lastupdate":"T","userdata":{}}', "body")
  T.eq(S.header(headers, "Content-Type"), TEXT, "sniffed type")
  T.eq(S.header(headers, "X-Content-Type-Options"), nil, "no nosniff on success")
  local _, b2 = c.acquire("t", "free", "busy", "alice")
  T.eq(S.decode(b2).name, "r2", "second acquire")
  T.eq(c.release("r1", "free", "alice"), 200, "release r1")
  local _, b3 = c.acquire("t", "free", "busy", "alice")
  T.eq(S.decode(b3).name, "r3", "r3 before the just-released r1")
  for _, n in ipairs{ "r2", "r3" } do T.eq(c.release(n, "free", "alice"), 200, "release " .. n) end
end)

T.test("acquire errors", function()
  expect_error(400,
    "Bad request: Type: t, state: free, dest: busy, owner: , all of them must be set in the request.", c.post("/acquire", { type = "t", state = "free", dest = "busy" }))
  expect_error(405, "Method GET, /acquire only accepts POST.", c.get("/acquire"))
  expect_error(404, 'Acquire failed: resource type "nope" does not exist', c.acquire("nope", "free", "busy", "o"))
  expect_error(404, [[Acquire failed: resource type "q\"\\" does not exist]], c.acquire('q"\\', "free", "busy", "o"))
  expect_error(404, "Acquire failed: no available resource t, try again later.", c.acquire("t", "leased", "busy", "o"))
end)

T.test("release and update errors, checked in upstream's order", function()
  expect_error(400,
    "Name: r1, dest: free, owner: , all of them must be set in the request.", c.post("/release", { name = "r1", dest = "free" }))
  expect_error(405, "Method GET, /release only accepts POST.", c.get("/release"))
  expect_error(404, "Done failed: zz - free (from o): no available resource zz, try again later.", c.release("zz", "free", "o"))
  expect_error(401, "Done failed: r1 - free (from o): owner mismatch request by o, currently owned by ", c.release("r1", "free", "o"))
  expect_error(400,
    "Name: r1, owner: o, state : , all of them must be set in the request.", c.post("/update", { name = "r1", owner = "o" }))
  expect_error(405, "Method GET, /update only accepts POST.", c.get("/update"))
  expect_error(404,
    "Update failed: zz - free (o): no available resource zz, try again later.", c.post("/update", { name = "zz", owner = "o", state = "free" }))
  local status, body = c.acquire("t", "free", "busy", "merlin")
  T.eq(status, 200, "acquire")
  local n = S.decode(body).name
  expect_error(401, "Update failed: " .. n .. " - d (x): owner mismatch request by x, currently owned by merlin",
    c.post("/update", { name = n, owner = "x", state = "d" }))
  expect_error(409, "Update failed: " .. n .. " - d (merlin): state mismatch - expected busy, current d",
    c.post("/update", { name = n, owner = "merlin", state = "d" }))
  T.eq(c.release(n, "free", "merlin"), 200, "release")
end)

T.test("update merges user data; empty values delete; bodies as upstream", function()
  local _, body = c.acquire("t", "free", "busy", "u")
  local name = S.decode(body).name
  local p = { name = name, owner = "u", state = "busy" }
  T.eq(c.post("/update", p, '{"a":"1","b":"<&>","c":"x"}'), 200, "merge")
  T.eq(c.post("/update", p, '{"c":"","a":null,"d":"\\u2028"}\ntrailing junk'), 200, "delete keys, junk ignored")
  for _, b in ipairs{ "", "  \n", "null" } do T.eq(c.post("/update", p, b), 200, "no-op body " .. T.dump(b)) end
  local st, eb, hd = c.post("/update", p, "[1]")
  expect_error(400, "json: cannot unmarshal array into Go value of type common.UserData", st, eb, hd)
  T.eq((c.post("/update", p, '{"a":1}')), 400, "non-string value")
  T.eq((c.post("/update", p, '{"a":')), 400, "broken JSON")
  local r = c.by_name{ type = "t" }[name]
  T.eq(r.userdata, { b = "<&>", d = "\u{2028}" }, "user data")
  local _, list = c.get("/resources", { owner = "u" })
  T.contains(list, '"userdata":{"b":"\\u003c\\u0026\\u003e","d":"\\u2028"}', "Go escaping")
  T.eq(c.release(name, "free", "u"), 200, "release")
  local _, again = c.acquire("t", "free", "busy", "u2")
  -- user data survives leases
  T.eq(c.by_name{ owner = "u2" }[S.decode(again).name] ~= nil, true, "acquired")
  T.eq(c.release(S.decode(again).name, "free", "u2"), 200, "release")
end)

T.test("acquirebystate: all or 404, available ones stay taken", function()
  expect_error(400,
    "state: dirty, dest: busy, owner: o, names:  - all of them must be set in the request.", c.post("/acquirebystate", { state = "dirty", dest = "busy", owner = "o" }))
  expect_error(405, "Method GET, /acquire only accepts POST.", c.get("/acquirebystate"))
  local status, body = c.post("/acquirebystate", { state = "dirty", dest = "cleaning", owner = "o", names = "o1,o1" })
  T.eq(status, 200, "status")
  T.eq(S.mask_times(body), '[{"type":"other","name":"o1","state":"cleaning","owner":"o","lastupdate":"T","userdata":{}}]\n', "body")
  T.eq(c.release("o1", "dirty", "o"), 200, "release")
  expect_error(404,
    "AcquireByState: no available resource dirty, try again later.", c.post("/acquirebystate", { state = "dirty", dest = "cleaning", owner = "p", names = "o1,missing" }))
  T.eq(c.by_name{}["o1"].owner, "p", "partial success keeps o1 taken")
  T.eq(c.release("o1", "dirty", "p"), 200, "release")
end)

T.test("reset moves idle owned resources and reports previous owners", function()
  expect_error(400,
    "Type: t, state: busy, expire: , dest: dirty, all of them must be set in the request.", c.post("/reset", { type = "t", state = "busy", dest = "dirty" }))
  expect_error(405, "Method GET, /reset only accepts POST.", c.get("/reset"))
  local bad = {
    ["1x"] = 'time: unknown unit "x" in duration "1x"', ["5"] = 'time: missing unit in duration "5"',
    ["abc"] = 'time: invalid duration "abc"', ["-"] = 'time: invalid duration "-"',
  }
  for e, text in pairs(bad) do
    expect_error(400, text, c.post("/reset", { type = "t", state = "busy", expire = e, dest = "dirty" }))
  end
  T.eq(c.acquire("t", "free", "busy", "bob"), 200, "acquire")
  local status, body = c.post("/reset", { type = "t", state = "busy", expire = "1h", dest = "dirty" })
  T.eq({ status, body }, { 200, "{}" }, "nothing idle for an hour")
  local _, unknown = c.post("/reset", { type = "nope", state = "busy", expire = "0", dest = "dirty" })
  T.eq(unknown, "{}", "unknown type")
  status, body = c.post("/reset", { type = "t", state = "busy", expire = "-1s", dest = "dirty" })
  T.eq(status, 200, "status")
  local m = S.decode(body)
  local name = next(m)
  T.eq(m, { [name] = "bob" }, "reset map")
  local r = c.by_name{}[name]
  T.eq({ r.owner, r.state }, { "", "dirty" }, "reset resource")
  T.eq(c.post("/acquirebystate", { state = "dirty", dest = "free", owner = "z", names = name }), 200, "take back")
  T.eq(c.release(name, "free", "z"), 200, "release")
end)

T.test("metric", function()
  T.eq(c.acquire("t", "free", "busy", "m"), 200, "acquire")
  local status, body, headers = c.get("/metric", { type = "t" })
  T.eq(status, 200, "status")
  T.eq(body, '{"type":"t","current":{"busy":1,"free":2},"owner":{"":2,"m":1}}', "body")
  T.eq(S.header(headers, "Content-Type"), "application/json", "content type")
  expect_error(405, "/metric only accepts GET", c.post("/metric", { type = "t" }))
  expect_error(400, "Type must be set in the request.", c.get("/metric"))
  expect_error(404, "no available resource nope, try again later.", c.get("/metric", { type = "nope" }))
  local name = c.list{ owner = "m" }[1].name
  T.eq(c.release(name, "free", "m"), 200, "release")
end)

T.test("health catch-all, unclean paths, /resources filters", function()
  for _, p in ipairs{ "/", "/foo", "/acquire/" } do
    local status, body, headers = T.http("POST", srv.url .. p)
    T.eq({ status, body }, { 200, "" }, p)
    T.eq(S.header(headers, "Content-Length"), "0", p .. " length")
    T.eq(S.header(headers, "Content-Type"), nil, p .. " no type")
  end
  local status, _, headers = T.http("GET", srv.url .. "//metric?type=t", nil, "--path-as-is")
  T.eq(status, 301, "double slash")
  T.eq(S.header(headers, "Location"), "/metric?type=t", "location")
  status, _, headers = T.http("POST", srv.url .. "/a/../release", nil, "--path-as-is")
  T.eq({ status, S.header(headers, "Location") }, { 301, "/release" }, "dot-dot")
  T.eq(#c.list{}, 4, "all")
  T.eq(#c.list{ type = "t" }, 3, "by type")
  T.eq(#c.list{ type = "t", state = "dirty" }, 0, "by type and state")
  T.eq(#c.list{ state = "dirty" }, 1, "by state")
  T.eq(c.list{ owner = "nobody" }, {}, "none")
  local _, body = c.get("/resources", { owner = "nobody" })
  T.eq(body, "[]", "empty array")
  T.eq((c.post("/resources")), 405, "POST /resources")
end)

T.test("keep-alive: two POSTs share one connection, no Connection: close", function()
  local q = srv.url .. "/acquire" .. S.query{ type = "t", state = "free", dest = "busy", owner = "k" }
  local out = T.sh(string.format("curl -sv -X POST %s --next -X POST %s 2>&1", T.shell_quote(q),
    T.shell_quote(srv.url .. "/release?name=r1&dest=free&owner=nobody")))
  T.contains(out, "Re-using existing connection", "connection reused")
  T.ok(not out:lower():find("connection: close", 1, true), "no Connection: close", out)
  local name = c.list{ owner = "k" }[1].name
  T.eq(c.release(name, "free", "k"), 200, "release")
  -- the same for an /update with a body
  local u = srv.url .. "/update?name=r1&owner=x&state=free"
  out = T.sh(string.format("curl -sv -X POST -d '{\"a\":\"b\"}' %s --next -X POST -d '{}' %s 2>&1",
    T.shell_quote(u), T.shell_quote(u)))
  T.contains(out, "Re-using existing connection", "reused after a body")
  T.ok(not out:lower():find("connection: close", 1, true), "no close after a body", out)
end)

T.test("bad input: no crash, no hang", function()
  local script = T.write_file(T.tmpdir() .. "/huge.sh", [[
exec 3<>/dev/tcp/127.0.0.1/$1
printf "POST /acquire?type=%s&state=free&dest=b&owner=o HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" \
  "$(head -c 300000 /dev/zero | tr "\0" a)" >&3
head -1 <&3
]])
  local line = T.sh("bash " .. script .. " " .. srv.port)
  -- the server answers 414 and closes; when the close beats the rest of
  -- the upload, TCP resets the connection and the 414 is lost: both refuse
  local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
  T.ok(line == "" or (status and status >= 400 and status < 500), "huge query string refused", line)
  T.eq(T.http("GET", srv.url .. "/"), 200, "healthy after the huge request")
  status = T.http("POST", srv.url .. "/acquire?type=%zz%&state=%&dest=b&owner=o")
  T.ok(status == 404 or status == 400, "bad percent-encoding answered", status)
  status = c.post("/update", { name = "r1", owner = "o", state = "free" }, string.rep("x", 2 * 1024 * 1024))
  T.eq(status, 413, "2 MiB body")
  -- a slow client that sends half a request and stalls does not block others
  local slow = T.spawn{ "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" .. srv.port ..
    "; printf 'POST /acquire HTTP/1.1\\r\\nHost: x\\r\\n' >&3; sleep 5" }
  T.eq((c.get("/metric", { type = "t" })), 200, "server answers while a client stalls")
  slow:kill("KILL")
  T.eq(T.http("GET", srv.url .. "/"), 200, "still healthy")
end)

T.test("/metrics: resources, request histograms, acquire durations", function()
  local status, body, headers = c.get("/metrics")
  T.eq(status, 200, "status")
  T.match(S.header(headers, "Content-Type"), "^text/plain", "content type")
  T.contains(body, 'boskos_resources{state="free",type="t"} 3\n', "free gauge")
  T.contains(body, 'boskos_resources{state="dirty",type="other"} 1\n', "dirty gauge")
  T.contains(body, 'boskos_resources{state="tombstone",type="t"} 0\n', "zero gauge")
  T.match(body, 'boskos_acquire_duration_seconds_count{dest="busy",has_request_id="false",state="free",type="t"} %d+', "acquire histogram")
  T.match(body, 'boskos_http_request_duration_seconds_count{method="POST",path="/acquire",status="200",user_agent="curl/[^"]*"} %d+', "latency")
  T.match(body, 'boskos_http_response_size_bytes_bucket{method="GET",path="unmatched",status="200",user_agent="curl/[^"]*",le="128"} %d+', "size")
end)

T.test("request targets read as Go's net/http reads them", function()
  -- an invalid escape in the path: Go's exact 400, and the connection closes
  local status, body, headers = T.http("POST", srv.url .. "/met%zzric", nil, "--path-as-is")
  T.eq({ status, body }, { 400, "400 Bad Request" }, "bad path escape")
  T.eq(S.header(headers, "Connection"), "close", "closes as Go does")
  T.eq((T.http("GET", srv.url .. "/metric%7", nil, "--path-as-is")), 400, "escape cut short")
  -- an invalid escape in the query drops that pair (url.ParseQuery)
  expect_error(400, "Name: r1, dest: free, owner: , all of them must be set in the request.",
    T.http("POST", srv.url .. "/release?name=r1&dest=free&owner=%zz"))
  expect_error(400, "Type must be set in the request.", T.http("GET", srv.url .. "/metric?type=t%g1"))
  expect_error(400, "Type must be set in the request.", T.http("GET", srv.url .. "/metric?type=t;x=1"))
  T.eq((T.http("GET", srv.url .. "/metric?bad=%zz&type=t")), 200, "the good pair stays")
  T.eq((T.http("GET", srv.url .. "/met%72ic?type=%74&type=other")), 200, "escapes decoded, first value wins")
  T.eq((T.http("GET", srv.url .. "/metric?type=+t")), 404, "+ is a space in the query")
end)

T.test("%00, many parameters, CR LF in a redirect: answered at once", function()
  expect_error(400, "the path contains %00", T.http("GET", srv.url .. "/metric%00x?type=t"))
  expect_error(400, "invalid query: the value of owner contains %00",
    T.http("POST", srv.url .. "/release?name=r1&dest=free&owner=po%00ol"))
  local many = {}
  for i = 1, 600 do many[i] = "k" .. i .. "=v" end
  local started = T.now()
  local status, body = T.http("GET", srv.url .. "/metric?type=t&" .. table.concat(many, "&"), nil, "--max-time 10")
  T.eq({ status, body }, { 400, "invalid query: 601 parameters, at most 256 are accepted\n" }, "600 parameters")
  T.ok(T.now() - started < 5, "answered at once", T.now() - started)
  T.eq((T.http("GET", srv.url .. "/metric?type=t&" .. table.concat(many, "&", 1, 255))), 200, "256 parameters")
  local headers
  status, body, headers = T.http("GET", srv.url .. "//metric%0d%0a?type=t", nil, "--path-as-is")
  T.eq(status, 301, "redirect")
  T.eq(S.header(headers, "Location"), "/metric%0D%0A?type=t", "escaped location")
  T.eq(body, '<a href="/metric%0D%0A?type=t">Moved Permanently</a>.\n\n', "body")
  status, _, headers = T.http("GET", srv.url .. "/a/../x%20y%3F%C3%A9?q=%C3%A9", nil, "--path-as-is")
  T.eq({ status, S.header(headers, "Location") }, { 301, "/x%20y%3F%C3%A9?q=%C3%A9" }, "escaped as Go's EscapedPath")
end)

T.test("/update bodies: trailing data and lone surrogates as Go's Decoder reads them", function()
  local _, body = c.acquire("t", "free", "busy", "json")
  local name = S.decode(body).name
  local p = { name = name, owner = "json", state = "busy" }
  expect_error(400, "invalid character 'g' after top-level value", c.post("/update", p, "nullgarbage"))
  expect_error(400, "invalid character 'y' after top-level value", c.post("/update", p, '"x"y'))
  expect_error(400, "invalid character '.' after top-level value", c.post("/update", p, "1.5.3"))
  T.eq((c.post("/update", p, "null garbage")), 200, "a space ends the value")
  -- Go stops right after an object's closing brace and never reads the rest
  T.eq((c.post("/update", p, '{"a":"b"}garbage')), 200, "after an object")
  T.eq((c.post("/update", p, '{"s":"\\ud800","t":"\\udc00x","u":"\\ud83d\\ude00"}')), 200, "lone surrogates")
  local ud = c.by_name{ owner = "json" }[name].userdata
  T.eq(ud, { a = "b", s = "\u{FFFD}", t = "\u{FFFD}x", u = "\u{1F600}" }, "replaced by U+FFFD as Go does")
  T.eq(c.release(name, "free", "json"), 200, "release")
end)

T.test("/metrics: labels escaped, user agents bounded, numbers as Go's client", function()
  local ua = 'odd "agent" \\ \255\254 end'
  T.eq((T.http("GET", srv.url .. "/resources", nil, "-H " .. T.shell_quote("User-Agent: " .. ua))), 200, "odd agent")
  local _, body = c.acquire("t", "free", "line\nbreak", "esc")
  local name = S.decode(body).name
  T.eq(c.release(name, "free", "esc"), 200, "release")
  -- 150 more distinct agents over one keep-alive connection
  T.sh(string.format([[python3 -c '
import http.client
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
for i in range(150):
    c.request("GET", "/", headers={"User-Agent": "agent-%%d" %% i})
    c.getresponse().read()
']], srv.port))
  local status, text = c.get("/metrics")
  T.eq(status, 200, "scrape")
  T.contains(text, 'user_agent="odd \\"agent\\" \\\\ \u{FFFD} end"', "escaped, invalid UTF-8 replaced")
  T.contains(text, 'dest="line\\nbreak"', "newline escaped")
  local agents = {}
  for a in text:gmatch('boskos_http_request_duration_seconds_count{[^}]*user_agent="([^"]*)"') do agents[a] = true end
  local n = 0
  for _ in pairs(agents) do n = n + 1 end
  T.ok(n <= 101, "at most 100 agents and other", n)
  T.ok(agents.other, "the rest under other")
  T.match(text, "bosk_http_user_agents_folded_total [1-9]%d*\n", "folded requests counted")
  T.contains(text, 'path="/resources"', "GET /resources has its own path label")
  T.contains(text, 'le="0.005"', "bucket bound")
  T.contains(text, 'le="0.0078125"', "bucket bound")
  T.ok(not text:find('le="[%d.]*0000000', 1) and not text:find('le="[%d.]*9999999'), "shortest bounds")
  for line in text:gmatch("[^\n]+") do
    T.ok(utf8.len(line) ~= nil, "valid UTF-8 line", line)
  end
end)

T.test("SIGTERM: stop accepting, finish the request in flight, exit 0", function()
  -- a client that sends half of an /update body, waits, then the rest
  local dir = T.tmpdir()
  local script = T.write_file(dir .. "/slow.sh", [[
exec 3<>/dev/tcp/127.0.0.1/$1
printf 'POST /update?name=zz&owner=o&state=free HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{"a"' >&3
sleep 1.5
printf ':"b"}' >&3
head -1 <&3 >$2
]])
  local client = T.spawn{ "bash", script, tostring(srv.port), dir .. "/answer" }
  T.sleep(0.5)
  srv.proc:kill("TERM")
  T.wait_until(function() return srv.proc:output():find("stopping", 1, true) end, 5, "stopping")
  T.sleep(0.2)
  T.eq((T.http("GET", srv.url .. "/")), 0, "no new connections")
  T.eq(client:wait(10), 0, "client finished")
  T.eq(T.read_file(dir .. "/answer"), "HTTP/1.1 404 Not Found\r\n", "the request in flight was answered")
  T.eq(srv.proc:wait(10), 0, "exit status")
  T.contains(srv.proc:output(), "stopped", "log line")
  T.ok(not srv.proc:output():find("Sanitizer", 1, true), "no sanitizer report", srv.proc:output())
end)

T.test("--metrics-port serves /metrics alone", function()
  local mport = S.free_port(T)
  local s2 = S.start(T, { args = { "--metrics-port", tostring(mport) } })
  local status, body = T.http("GET", "http://127.0.0.1:" .. mport .. "/metrics")
  T.eq(status, 200, "metrics")
  T.contains(body, 'boskos_resources{state="free",type="t"} 2', "gauge")
  local st, b = T.http("POST", "http://127.0.0.1:" .. mport .. "/acquire?type=t&state=free&dest=b&owner=o")
  T.eq({ st, b }, { 404, "404 page not found\n" }, "no API there")
  S.stop(T, s2)
end)

T.test("--listen HOST:0 picks a port and logs it", function()
  local cfg = T.write_file(T.tmpdir() .. "/c.yaml", "resources:\n- type: t\n  names: [a]\n")
  local p = T.spawn{ T.bosk, "server", "--config", cfg, "--listen", "127.0.0.1:0" }
  local port = T.wait_until(function() return tonumber(p:output():match("%(port (%d+);")) end, 10, "port in the log")
  T.ok(port > 0, "a real port", port)
  T.eq((T.http("GET", "http://127.0.0.1:" .. port .. "/metric?type=t")), 200, "serves on it")
  p:kill("TERM")
  T.eq(p:wait(10), 0, "exit status")
end)

T.test("bad config at start: exit 2 naming the file and line", function()
  local dir = T.tmpdir()
  local cfg = T.write_file(dir .. "/bad.yaml", "resources:\n- type: t\n  names: [Bad_Name]\n- state: free\n  min-count: 2\n  max-count: 1\n")
  local _, err, code = T.run({ "server", "--config", cfg, "--listen", "127.0.0.1:" .. S.free_port(T) }, { timeout = 10 })
  T.eq(code, 2, "exit status")
  T.contains(err, ".0.names.0(Bad_Name) is invalid: [a lowercase RFC 1123 subdomain", "DNS error")
  T.contains(err, "(line 3)", "line of the name")
  T.contains(err, ".1.type: must be set (line 4)", "missing type")
  T.contains(err, ".1.min-count: must be <= .1.max-count", "min > max")
  T.contains(err, dir .. "/bad.yaml", "file named")
  _, err, code = T.run({ "server", "--config", dir .. "/missing.yaml" }, { timeout = 10 })
  T.eq(code, 2, "missing file")
  T.contains(err, "missing.yaml", "names the file")
  _, err, code = T.run({ "server", "--config", cfg, "--bogus" }, { timeout = 10 })
  T.eq(code, 2, "bad flag")
end)

T.cleanup()
