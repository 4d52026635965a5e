-- The memory a `bosk server` spends on history (docs/history.md):
--   build/bosk run scripts/history_rss.lua [RESOURCES] [CYCLES] [STORAGE]
-- starts build/bosk server with RESOURCES static resources (default
-- 100000) on STORAGE (default memory), then runs CYCLES (default 10)
-- cycles of: acquire every resource (/acquirebystate, 1000 names a call)
-- and reset them all (/reset): 2 x RESOURCES changes a cycle. Prints the
-- server's RSS (VmRSS) and the events it holds after each cycle. The
-- server inherits BOSK_HISTORY_MAX_EVENTS and BOSK_HISTORY_KEEP_DELETED.
local http = require "bosk.http"
local core = require "bosk.core"

local n = tonumber(arg[1]) or 100000
local cycles = tonumber(arg[2]) or 10
local storage = arg[3] or "memory"
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))

local names = {}
for i = 1, n do names[i] = "res-" .. i end
local cfg = assert(io.open(dir .. "/config.yaml", "w"))
cfg:write("resources:\n- type: t\n  state: free\n  names:\n")
for _, name in ipairs(names) do cfg:write("  - ", name, "\n") end
cfg:close()

local port = 20000 + core.random_id() % 20000
local url = "http://127.0.0.1:" .. port
local bosk = os.getenv("BOSK") or "build/bosk"
local pidfile = dir .. "/pid"
os.execute(string.format("%s server --config %s/config.yaml --storage %s --listen 127.0.0.1:%d " ..
                         ">%s/log 2>&1 & echo $! >%s", bosk, dir, storage, port, dir, pidfile))
local pid = assert(io.open(pidfile)):read("l")
local conn = http.new()

local function call(method, path)
  local status, line, body = conn:request { method = method, url = url .. path, timeout = 600 }
  return status, line, body
end

local deadline = core.monotime() + 120
while call("GET", "/") ~= 200 do
  assert(core.monotime() < deadline, "bosk server did not start")
  core.sleep(0.1)
end

local function rss_mib()
  for line in io.lines("/proc/" .. pid .. "/status") do
    local kb = line:match("^VmRSS:%s+(%d+) kB")
    if kb then return tonumber(kb) / 1024 end
  end
end

local function events_sampled()
  -- the events of 100 resources spread over the names, scaled up
  local total, step = 0, math.max(1, n // 100)
  for i = 1, n, step do
    local _, _, body = call("GET", "/history?name=" .. names[i])
    local _, count = body:gsub('"endpoint"', "")
    total = total + count
  end
  return math.floor(total * step + 0.5)
end

print(string.format("%d resources, storage %s", n, storage))
print(string.format("cycle %2d: RSS %7.1f MiB, ~%d events kept (%.1f s)", 0, rss_mib(), events_sampled(), 0))
for c = 1, cycles do
  local start = core.monotime()
  for i = 1, n, 1000 do
    local batch = table.concat(names, ",", i, math.min(i + 999, n))
    local status, line = call("POST", "/acquirebystate?state=free&dest=busy&owner=o&names=" .. batch)
    assert(status == 200, "acquirebystate: " .. tostring(line))
  end
  assert(call("POST", "/reset?type=t&state=busy&expire=0s&dest=free") == 200, "reset")
  print(string.format("cycle %2d: RSS %7.1f MiB, ~%d events kept (%.1f s)", c, rss_mib(), events_sampled(),
                      core.monotime() - start))
end
os.execute("kill " .. pid)
core.sleep(1)
if storage:match("^sqlite:") then os.execute("ls -l " .. storage:sub(8)) end
os.execute("rm -rf " .. dir)
