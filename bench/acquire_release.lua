-- wrk script: alternate /acquire and /release against bosk server.
-- Each connection acquires a resource, then releases what was acquired
-- (names kept per thread), so roughly half the requests are each.
-- Type "b", owner "bench"; config from scripts/bench_server.sh.
local names, count = {}, 0
local acquire = "/acquire?dest=busy&owner=bench&state=free&type=b"

function request()
  local n = #names
  if n > 0 then
    local name = names[n]
    names[n] = nil
    return wrk.format("POST", "/release?dest=free&name=" .. name .. "&owner=bench")
  end
  return wrk.format("POST", acquire)
end

function response(status, headers, body)
  if status == 200 and body and #body > 0 then
    local name = body:match('"name":"([^"]+)"')
    if name then names[#names + 1] = name end
  elseif status ~= 200 then
    count = count + 1
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("non-2xx or socket errors: %d\n",
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
