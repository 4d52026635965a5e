-- Janitor safety features against tests/fake_server.py, a server that
-- speaks only the upstream Boskos API (no listing, no history): the exact
-- requests the janitor sends for verify, the last failure and its removal,
-- a backed-off resource put back without cleaning, a protected one sent to
-- quarantine, and a hung cleaning. Each case checks the teardown
-- invariants: every acquired name released, the janitor gone, nothing its
-- cleanings started alive.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local F = require "fake"
local cjson = require "cjson"

local f = F.start(T)

-- A resource as upstream sends it after an acquire by the janitor.
local function res(name, userdata)
  return cjson.encode{ type = "t", name = name, state = "cleaning", owner = "Janitor",
                       lastupdate = "2020-01-01T00:00:00Z", userdata = userdata or {} }
end

local function query(r)
  local out = {}
  for k, v in (r.query or ""):gmatch("([^&=]+)=([^&]*)") do
    out[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return out
end

-- run(policy_text, acquired, flags) -> stdout, stderr, code, requests
-- The fake answers /acquire with the resources in `acquired` (JSON), one
-- each, then 404 (nothing left); /update and /release with 200.
local function run(text, acquired, flags)
  f:reset()
  local responses = {}
  for i, body in ipairs(acquired) do responses[i] = { path = "/acquire", status = 200, body = body } end
  f:script(responses)
  f:default{ status = 404, body = "resource not found" }
  f:default{ path = "/update", status = 200 }
  f:default{ path = "/release", status = 200 }
  local args = { "--pool-size", "1" }
  for _, a in ipairs(flags or {}) do args[#args + 1] = a end
  local out, err, code = J.once({ url = f.url }, args, { J.policy(text) })
  return out, err, code, f:requests()
end

-- paths(reqs) -> the paths, but all /acquire last: the janitor looks for
-- the next resource while it releases the last one, so their order varies.
local function paths(reqs)
  local out, acquires = {}, 0
  for _, r in ipairs(reqs) do
    if r.path == "/acquire" then acquires = acquires + 1 else out[#out + 1] = r.path end
  end
  for _ = 1, acquires do out[#out + 1] = "/acquire" end
  return out
end

-- The request at `path` number n (1-based).
local function nth(reqs, path, n)
  for _, r in ipairs(reqs) do
    if r.path == path then
      n = n - 1
      if n == 0 then return r end
    end
  end
end

-- Teardown invariants against the fake: every name the janitor touched
-- ends with its release (no lease held, nothing after it), and nothing
-- started under `marker` is alive.
local function settled(reqs, marker)
  local last = {}
  for _, r in ipairs(reqs) do
    if r.path ~= "/acquire" then last[query(r).name] = r.path end
  end
  T.ok(next(last), "some lease was taken")
  for name, path in pairs(last) do T.eq(path, "/release", name .. ": the last request is its release") end
  if marker then T.eq(#J.strays(marker), 0, "no child alive") end
end

T.test("upstream: verify failure writes last-failure with /update before /release; a success removes it (6, 8)", function()
  local _, err, code, reqs = run([[
    janitor.policy{ type = "t", clean = function() return true end,
                    verify = function() return false, "nope" end }
  ]], { res("up-1") })
  T.eq(code, 1, "exit status; stderr:\n" .. err)
  T.eq(paths(reqs), { "/update", "/release", "/acquire", "/acquire" }, "requests")
  local q = query(nth(reqs, "/update", 1))
  T.eq({ q.name, q.state, q.owner }, { "up-1", "cleaning", "Janitor" }, "update of the held lease")
  local body = cjson.decode(nth(reqs, "/update", 1).body)
  T.match(body["bosk.janitor/last-failure"], "^%S+Z verify failed: nope$", "the reason, in the user data")
  T.eq(body["bosk.janitor/failures"], "1", "the count")
  T.eq(query(nth(reqs, "/release", 1)).dest, "dirty", "then released to on_failure")
  settled(reqs)

  local _, err2, code2, reqs2 = run([[janitor.policy{ type = "t", clean = function() return true end }]],
    { res("up-1", { ["bosk.janitor/last-failure"] = "2020-01-01T00:00:00Z nope", ["bosk.janitor/failures"] = "1" }) })
  T.eq(code2, 0, "exit status; stderr:\n" .. err2)
  T.eq(paths(reqs2), { "/update", "/release", "/acquire", "/acquire" }, "requests")
  T.eq(cjson.decode(nth(reqs2, "/update", 1).body), { ["bosk.janitor/last-failure"] = "", ["bosk.janitor/failures"] = "" },
       "empty values delete the keys (upstream's UserData.Update)")
  T.eq(query(nth(reqs2, "/release", 1)).dest, "free", "released free")
  settled(reqs2)

  local _, _, code3, reqs3 = run([[janitor.policy{ type = "t", clean = function() return true end }]],
    { res("up-2") })
  T.eq(code3, 0, "exit status")
  T.eq(paths(reqs3), { "/release", "/acquire", "/acquire" }, "no user data update when there was nothing to remove")
  settled(reqs3)
end)

T.test("upstream: a backed-off resource is put back at once, never cleaned or held (2)", function()
  local dir = T.tmpdir()
  local S = require "bosk.janitor_safety"
  local failed = { ["bosk.janitor/failures"] = "2", ["bosk.janitor/last-failure"] = S.failure_line(os.time(), "x") }
  local _, err, code, reqs = run(string.format([[
    janitor.policy{ type = "t", backoff = { min = "1m", max = "1h" }, clean = function()
      io.open(%q, "w"):close() return true
    end }
  ]], dir .. "/cleaned"), { res("up-3", failed), res("up-3", failed) })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  T.eq(paths(reqs), { "/release", "/release", "/acquire", "/acquire" },
       "put back twice, then the lane rests (everything waiting is backed off)")
  T.eq(query(nth(reqs, "/release", 1)).dest, "dirty", "back to its state")
  T.eq(T.read_file(dir .. "/cleaned"), nil, "not cleaned")
  settled(reqs)
end)

T.test("upstream: a protected name is released to quarantine without cleaning (7)", function()
  local dir = T.tmpdir()
  local _, err, code, reqs = run(string.format([[
    janitor.policy{ type = "t", protect = { "prod-*" }, clean = function()
      io.open(%q, "w"):close() return true
    end }
  ]], dir .. "/cleaned"), { res("prod-1") })
  T.eq(code, 0, "exit status; stderr:\n" .. err)
  T.eq(paths(reqs), { "/release", "/acquire", "/acquire" }, "requests")
  T.eq(query(nth(reqs, "/release", 1)).dest, "quarantine", "released to quarantine")
  T.eq(T.read_file(dir .. "/cleaned"), nil, "not cleaned")
  settled(reqs)
end)

T.test("upstream: a hung cleaning is killed; its reason, with the last progress, goes to the user data (1)", function()
  local dir = T.tmpdir()
  local started = T.now()
  local _, err, code, reqs = run(string.format([[
    janitor.policy{ type = "t", progress_timeout = "1s", clean = function()
      janitor.progress("waiting for the api")
      janitor.exec{ "sh", "-c", "sleep 30; echo %s" }
      return true
    end }
  ]], dir), { res("up-4") })
  T.eq(code, 1, "exit status; stderr:\n" .. err)
  T.ok(T.now() - started < 8, "ended at the progress timeout")
  T.eq(paths(reqs), { "/update", "/release", "/acquire", "/acquire" }, "requests")
  local line = cjson.decode(nth(reqs, "/update", 1).body)["bosk.janitor/last-failure"]
  T.match(line, "hung: no progress for .*last progress: waiting for the api", "reason")
  settled(reqs, dir)
end)

f:stop()
T.cleanup()
