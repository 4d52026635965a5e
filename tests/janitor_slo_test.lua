-- The janitor's SLO metrics (issue 15, item 5; docs/janitor-metrics.md):
-- bosk_janitor_backlog, _oldest_waiting_seconds, _in_flight and the
-- _cleaning_seconds histogram against a real bosk server while a slow
-- cleaning runs; the breaker and quarantine families kept; against an
-- upstream-only server (tests/fake_server.py) the backlog from /metric and
-- no oldest-waiting gauge; the example alert rules parse and name only
-- metrics the janitor or the server exports.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)
local F = require "fake"
local yaml = require "bosk.yaml"

local srv = J.server([[
resources:
- type: slo
  state: dirty
  names: [slo-1, slo-2, slo-3, slo-4]
- type: slo-brk
  state: dirty
  names: [brk-1]
]])
local TYPES = { "slo", "slo-brk" }

-- Waits until the sample satisfies want(value); returns the last scrape.
local function wait_sample(port, series, want, what)
  local text
  T.wait_until(function()
    text = J.scrape(port)
    return want(J.sample(text, series))
  end, 15, function() return what .. ": " .. series .. " = " .. tostring(J.sample(text, series)) .. "\n" .. text end)
  return text
end

local function equals(n) return function(v) return v == n end end

T.test("backlog, oldest waiting, in flight and the cleaning histogram follow a slow cleaning (5)", function()
  local dir = T.tmpdir()
  local port = T.free_port()
  local p = J.policy(([[
    janitor.policy{ type = "slo", concurrency = 1, on_failure = "broken", clean = function(res)
      local core = require "bosk.core"
      for _ = 1, 300 do                       -- at most 15 s, until the test says go
        if io.open("DIR/go") then break end
        core.sleep(0.05)
      end
      return res.name ~= "slo-4", "slo-4 always fails"
    end }
    janitor.policy{ type = "slo-brk", on_failure = "broken", quarantine_after = 1,
                    breaker = { failures = 1, probe = "1h" }, clean = function() return false, "broken" end }
  ]]):gsub("DIR", dir))
  local j = J.start(srv, { "--pool-size", "2", "--metrics-listen", "127.0.0.1:" .. port }, { p })

  local text = wait_sample(port, 'bosk_janitor_in_flight{type="slo"}', equals(1), "one slow cleaning")
  T.match(text, "# TYPE bosk_janitor_in_flight gauge", "in_flight typed")
  text = wait_sample(port, 'bosk_janitor_backlog{type="slo"}', equals(3), "three wait while one is cleaned")
  T.match(text, "# TYPE bosk_janitor_backlog gauge", "backlog typed")
  text = wait_sample(port, 'bosk_janitor_oldest_waiting_seconds{type="slo"}', function(v) return v and v > 0 end,
                     "the oldest waiting resource has an age")
  T.ok(J.sample(text, 'bosk_janitor_oldest_waiting_seconds{type="slo"}') < 600, "an age in seconds, not a date")
  T.eq(J.sample(text, 'bosk_janitor_in_flight{type="slo"}'), 1, "concurrency 1: one in flight")

  -- The breaker and quarantine families are still there.
  text = wait_sample(port, 'bosk_janitor_breaker_open{type="slo-brk"}', equals(1), "breaker of slo-brk")
  T.eq(J.sample(text, 'bosk_janitor_quarantined_total{type="slo-brk"}'), 1, "quarantined_total")

  T.write_file(dir .. "/go", "")
  text = wait_sample(port, 'bosk_janitor_cleaning_seconds_count{type="slo",outcome="success"}', equals(3),
                     "three successful cleanings")
  T.eq(J.sample(text, 'bosk_janitor_cleaning_seconds_count{type="slo",outcome="failed"}'), 1, "one failed")
  T.match(text, "# TYPE bosk_janitor_cleaning_seconds histogram", "histogram typed")
  T.eq(J.sample(text, 'bosk_janitor_cleaning_seconds_bucket{type="slo",outcome="success",le="+Inf"}'), 3, "+Inf bucket")
  T.eq(J.sample(text, 'bosk_janitor_cleaning_seconds_bucket{type="slo",outcome="success",le="3600"}'), 3, "3600 bucket")
  T.ok(J.sample(text, 'bosk_janitor_cleaning_seconds_bucket{type="slo",outcome="success",le="0.1"}') ~= nil,
       "bucket bounds as Prometheus writes them (0.1)")
  T.ok(J.sample(text, 'bosk_janitor_cleaning_seconds_sum{type="slo",outcome="success"}') > 0, "sum")
  T.eq(J.sample(text, 'bosk_janitor_in_flight{type="slo"}'), 0, "nothing in flight")

  text = wait_sample(port, 'bosk_janitor_backlog{type="slo"}', equals(0), "the backlog drains")
  text = wait_sample(port, 'bosk_janitor_oldest_waiting_seconds{type="slo"}', equals(0), "nothing waits")
  j:kill("TERM")
  T.eq(j:wait(15), 0, "exit status")
  T.eq(J.states(srv, "slo"), { ["slo-1"] = "free/-", ["slo-2"] = "free/-", ["slo-3"] = "free/-",
                               ["slo-4"] = "broken/-" }, "cleaned or failed, none lost")
  J.settled(srv, TYPES, { janitor = j, states = { "broken" }, marker = dir })
end)

T.test("upstream server: backlog from /metric, no oldest-waiting gauge (no listing endpoint) (5)", function()
  local f = F.start(T)
  f:default{ status = 200, body = "" }                                   -- upstream's catch-all handler
  f:default{ path = "/acquire", status = 404, body = "resources not found" }
  f:default{ path = "/metric", status = 200,
             body = '{"type":"up","current":{"dirty":7,"free":2},"owners":{}}' }
  local port = T.free_port()
  local p = J.policy("janitor.policy{ type = 'up', clean = function() return true end }")
  local j = J.start({ url = f.url }, { "--metrics-listen", "127.0.0.1:" .. port }, { p })
  local text = wait_sample(port, 'bosk_janitor_backlog{type="up"}', equals(7), "backlog from /metric")
  T.eq(J.sample(text, 'bosk_janitor_in_flight{type="up"}'), 0, "in_flight 0")
  T.ok(not text:find("bosk_janitor_oldest_waiting_seconds{", 1, true), "no oldest-waiting sample:\n" .. text)
  local function listings()
    local n = 0
    for _, r in ipairs(f:requests()) do if r.path == "/resources" then n = n + 1 end end
    return n
  end
  T.wait_until(function() return listings() >= 1 end, 10, "the listing tried")
  T.sleep(1.2)   -- more poll ticks: none may try the listing again
  T.eq(listings(), 1, "the missing listing is tried once, then never again")
  j:kill("TERM")
  T.eq(j:wait(15), 0, "exit status")
  T.contains(j:output(), "no listing endpoint", "said in the log")
  f:stop()
end)

-- Metric names an expression uses (histogram series folded to their family).
local function names_in(expr)
  local out = {}
  for name in expr:gmatch("[%a_:][%w_:]*") do
    if name:match("^bosk_janitor_") or name:match("^boskos_") then
      out[#out + 1] = name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
    end
  end
  return out
end

T.test("config/prometheus/bosk-janitor-alerts.yaml parses and names only exported metrics (5)", function()
  local doc, err = yaml.decode(assert(T.read_file(T.root .. "/config/prometheus/bosk-janitor-alerts.yaml")))
  T.ok(doc, "YAML: " .. tostring(err))
  T.ok(type(doc.groups) == "table" and #doc.groups > 0, "groups")

  -- What is exported: the families the janitor and the server declare.
  local port = T.free_port()
  local p = J.policy("janitor.policy{ type = 'slo', concurrency = 1, clean = function() return true end }")
  local j = J.start(srv, { "--metrics-listen", "127.0.0.1:" .. port }, { p })
  local janitor_text = wait_sample(port, 'bosk_janitor_backlog{type="slo"}', function(v) return v ~= nil end, "backlog")
  j:kill("TERM")
  T.eq(j:wait(15), 0, "exit status")
  local _, server_text = T.http("GET", srv.url .. "/metrics")
  local exported = {}
  for name in (janitor_text .. "\n" .. server_text):gmatch("# TYPE (%S+)") do exported[name] = true end

  local alerts, used = {}, 0
  for _, g in ipairs(doc.groups) do
    T.ok(type(g.name) == "string" and type(g.rules) == "table", "group has a name and rules")
    for _, rule in ipairs(g.rules) do
      T.ok(type(rule.alert) == "string" and type(rule.expr) == "string", "rule has alert and expr")
      alerts[rule.alert] = true
      for _, name in ipairs(names_in(rule.expr)) do
        T.ok(exported[name], rule.alert .. ": " .. name .. " is exported")
        used = used + 1
      end
    end
  end
  T.ok(used > 0, "the rules use metrics")
  T.ok(alerts.BoskJanitorBreakerOpen, "a breaker-open alert")
  local draining = 0
  for name in pairs(alerts) do if name:find("PoolDraining", 1, true) then draining = draining + 1 end end
  T.ok(draining >= 3, "pool-draining alerts: backlog, oldest waiting, free count")
  J.settled(srv, TYPES, { states = { "broken" } })
end)

srv:stop()
