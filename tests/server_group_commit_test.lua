-- bosk server with SQLite and group commit: concurrent writers share
-- commits, and every answer waits for its commit. kill -9 during a burst
-- of writes from several client processes (each on one keep-alive
-- connection), restart on the same database, and find every acknowledged
-- change of every writer.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"
local B = require("burst")(T, S)
local http = require "bosk.http"

local N, WRITERS, ACKS = 30000, 8, 400


-- GET /history of each name over one kept connection: name -> events,
-- newest first.
local function histories(url, names)
  local conn, out = http.new(), {}
  for _, name in ipairs(names) do
    local status, _, body = conn:request{ method = "GET", url = url .. "/history" .. S.query{ name = name } }
    assert(status == 200, "GET /history?name=" .. name .. ": " .. tostring(status) .. " " .. tostring(body))
    out[name] = S.decode(body)
  end
  return out
end

-- Resources whose newest history event does not end in their state and
-- owner: an event without its change, or a change without its event.
local function history_mismatches(url, resources)
  local names, by_name = {}, {}
  for _, r in ipairs(resources) do names[#names + 1], by_name[r.name] = r.name, r end
  local wrong = {}
  for name, events in pairs(histories(url, names)) do
    local e, r = events[1], by_name[name]
    if not (e and e.to == r.state and e.owner_to == r.owner) then
      wrong[#wrong + 1] = name .. " is " .. r.state .. "/" .. r.owner .. ", its newest event " ..
                          (e and (e.endpoint .. " to " .. e.to .. "/" .. e.owner_to) or "none")
    end
  end
  table.sort(wrong)
  return wrong
end

-- The acknowledged updates in all logs, and in the log with fewest.
local function count_acks(logs)
  local n, least = 0, math.huge
  for _, log in ipairs(logs) do
    local _, k = (T.read_file(log) or ""):gsub("\nU ", "")
    n, least = n + k, math.min(least, k)
  end
  return n, least
end


T.test("kill -9 during concurrent writers: every acknowledged change of each survives", function()
  local dir = T.tmpdir()
  local srv, db, script = B.start(dir, N)
  local logs, procs = {}, {}
  for w = 1, WRITERS do
    logs[w] = dir .. "/acks-" .. w
    procs[w] = T.spawn{ T.bosk, "run", script, srv.url, "w" .. w, logs[w] }
  end
  T.wait_until(function()
    local n, least = count_acks(logs)
    return n >= ACKS and least >= 1
  end, 30, ACKS .. " acknowledged updates, some from each writer")
  srv.proc:kill("KILL")
  for w = 1, WRITERS do T.ok(procs[w]:wait(10) ~= nil, "writer " .. w .. " stopped") end

  local again = S.start(T, { config_path = srv.config, storage = db })
  local c = S.new(T, again)
  local all = c.list{ type = "t" }
  T.eq(#all, N, "no resource lost or duplicated")
  local seen = {}
  for _, r in ipairs(all) do seen[r.name] = r end
  local total, busy_writers = 0, 0
  for w = 1, WRITERS do
    local owner = "w" .. w
    local acked, updates = B.read_log(logs[w])
    total = total + #acked
    if #acked > 0 then busy_writers = busy_writers + 1 end
    local lost = {}
    for _, name in ipairs(acked) do
      local r = seen[name]
      if not (r and r.owner == owner and r.state == "busy") then lost[#lost + 1] = name end
    end
    T.eq(lost, {}, "acknowledged acquires of " .. owner .. " (of " .. #acked .. ")")
    local stale = {}
    for name, i in pairs(updates) do
      if not (seen[name] and seen[name].userdata.i == i) then stale[#stale + 1] = name end
    end
    T.eq(stale, {}, "acknowledged updates of " .. owner)
    local held = 0
    for _, r in ipairs(all) do if r.owner == owner then held = held + 1 end end
    T.ok(held == #acked or held == #acked + 1, owner .. " holds at most one unacknowledged", held)
  end
  -- the history came back with the changes: an event for each one
  -- acknowledged, none for a change the kill undid
  local touched = {}
  for _, r in ipairs(all) do if r.owner ~= "" then touched[#touched + 1] = r end end
  T.eq(history_mismatches(again.url, touched), {}, "each leased resource's newest event")
  for w = 1, WRITERS do
    local acked, updates = B.read_log(logs[w])
    local h, missing = histories(again.url, acked), {}
    for _, name in ipairs(acked) do
      local acquire, update = false, updates[name] == nil
      for _, e in ipairs(h[name]) do
        acquire = acquire or (e.endpoint == "acquire" and e.owner_to == "w" .. w)
        update = update or (e.endpoint == "update" and e.owner_to == "w" .. w)
      end
      if not (acquire and update) then missing[#missing + 1] = name end
    end
    T.eq(missing, {}, "the events of w" .. w .. "'s acknowledged acquires and updates")
  end
  T.ok(total < N, "the kill landed mid-burst", total)
  T.eq(busy_writers, WRITERS, "every writer got answers")
  S.stop(T, again)
end)

T.test("answers wait for their commit, and a stop flushes the rest", function()
  local dir = T.tmpdir()
  local db = "sqlite:" .. dir .. "/bosk.db"
  local srv = S.start(T, { config = "resources:\n- type: t\n  state: free\n  names: [a, b, c]\n",
                           storage = db })
  local c = S.new(T, srv)
  T.eq(c.acquire("t", "free", "busy", "o1"), 200, "acquire")
  local st, body = c.post("/update", { name = "a", owner = "o1", state = "busy" }, '{"k":"v"}')
  if st ~= 200 then  -- acquire may have taken b or c: find the one o1 holds
    local mine = c.list{ owner = "o1" }[1]
    st = c.post("/update", { name = mine.name, owner = "o1", state = "busy" }, '{"k":"v"}')
  end
  T.eq(st, 200, "update", body)
  S.stop(T, srv)       -- SIGTERM: a clean stop
  local again = S.start(T, { config_path = srv.config, storage = db })
  local held = S.new(T, again).list{ owner = "o1" }
  T.eq(#held, 1, "the lease survived the restart")
  T.eq(held[1] and held[1].userdata.k, "v", "the update survived the restart")
  S.stop(T, again)
end)

-- A flush that cannot be written (the WAL reaches the file size limit:
-- ulimit -f, with SIGXFSZ ignored so that the write fails with EFBIG):
-- the request that saw it gets a 500 storage error, memory is rebuilt from
-- the file (the failed change is not there), and the server goes on.
T.test("a commit that cannot be written: 500, memory back to the file, server alive", function()
  local dir = T.tmpdir()
  local names = {}
  for i = 1, 20 do names[#names + 1] = "r" .. i end
  local cfg = T.write_file(dir .. "/config.yaml", "resources:\n- type: t\n  state: free\n  names: [" ..
                           table.concat(names, ", ") .. "]\n")
  local port = S.free_port(T)
  local url = "http://127.0.0.1:" .. port
  local proc = T.spawn{ "sh", "-c", "trap '' XFSZ; ulimit -f 256; exec \"$0\" server --config \"$1\" " ..
                        "--storage \"$2\" --listen \"$3\"", T.bosk, cfg, "sqlite:" .. dir .. "/bosk.db",
                        "127.0.0.1:" .. port }
  T.wait_until(function()
    if not proc:alive() then error("bosk server exited:\n" .. proc:output(), 0) end
    return T.http("GET", url .. "/") == 200
  end, 10, "bosk server on " .. url)
  local failed, on, body
  for i = 1, 400 do
    local st
    st, body = T.http("POST", url .. "/acquire?type=t&state=free&dest=busy&owner=o" .. i)
    if st ~= 200 then failed, on = i, "acquire" break end
    local name = S.decode(body).name
    st, body = T.http("POST", url .. "/release?dest=free&owner=o" .. i .. "&name=" .. name)
    if st ~= 200 then failed, on = i, "release" break end
  end
  T.ok(failed ~= nil, "a commit failed within 400 acquire+release pairs")
  T.contains(body, "storage error: the change could not be made durable and was undone",
             "the answer of the " .. tostring(on))
  local st, list = T.http("GET", url .. "/resources?type=t")
  T.eq(st, 200, "the server still answers", list)
  local owned = {}
  for _, r in ipairs(S.decode(list)) do
    if r.owner ~= "" then owned[#owned + 1] = r.owner end
  end
  -- a failed acquire leased nothing; a failed release left the lease
  T.eq(owned, on == "acquire" and {} or { "o" .. failed }, "leases after the failed " .. tostring(on))
  -- the history is the file's too: no event of the undone change
  T.eq(history_mismatches(url, S.decode(list)), {}, "each resource's newest event after the reload")
  for i = 1, 3 do  -- and it goes on after the reload
    local st2, body2 = T.http("POST", url .. "/acquire?type=t&state=free&dest=busy&owner=after" .. i)
    if st2 == 200 then
      local name = S.decode(body2).name
      local e = histories(url, { name })[name][1]
      T.eq({ e and e.endpoint, e and e.owner_to }, { "acquire", "after" .. i }, "the event of an acquire after the reload")
      break
    end
  end
  T.contains(proc:output(), "undone", "the server log")
  T.ok(proc:alive(), "the server is still running")
  proc:kill("TERM")
  T.ok(proc:wait(10) ~= nil, "the server stopped")
  local log = proc:output()
  T.ok(not log:find("Sanitizer", 1, true) and not log:find("runtime error", 1, true),
       "sanitizer report", log)
end)

T.cleanup()
