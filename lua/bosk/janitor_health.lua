-- Health checks of the free pool (docs/janitor-health.md): a policy with
-- `health` and `health_every` has, every health_every, the free resources
-- of each of its types leased (free -> the policy's `via`), checked by
-- health(res) in a forked worker, and released: to free when health
-- returned true, to the policy's `on_failure` otherwise (false, nil, an
-- error, the policy's timeout, progress_timeout, a crash, the grace period
-- of a shutdown running out). So a broken resource is cleaned before a CI
-- job gets it.
--
--   Worker side:  M.work(p, payload, worker_main) -> report   ("h<i>" keys)
--   Supervisor:   M.schedule(sup)  adds the timers of sup.reg's policies
--                                  to sup.schedules (from Sup:schedule)
--
-- A round (one type, one period) never holds more than half of the type's
-- free pool: before each acquire the server's counts are read again
-- (GET /metric, upstream has it too) and the round's checks in flight must
-- stay below half of (free + those checks). Each check takes a slot as a
-- cleaning does, so checks and cleanings share the policy's concurrency
-- and --pool-size. A name comes back to a round only after the round has
-- gone through the whole free queue (both servers hand out the oldest
-- first): it goes straight back to free and the round ends, so a resource
-- is checked at most once per round.
--
-- Leases are the supervisor's: Sup:hold journals them (a crash leaves them
-- to the next start, which releases them to on_failure) and the heartbeat
-- keeps them; Sup:release retries until the server acknowledges; run_worker
-- applies the timeout and the shutdown kill. Nothing here keeps a lease of
-- its own.
local loop = require "bosk.loop"
local core = require "bosk.core"
local wire = require "bosk.wire"
local jlog = require "bosk.janitor_log"
local safety = require "bosk.janitor_safety"

local M = {}

M.FREE = "free"
-- While a round waits for room (a slot, or the half-pool rule), it looks
-- again when one of its checks ends, and at least this often.
M.RECHECK = 0.5

-- Worker side -----------------------------------------------------------------

-- checker(p) -> fn(res): p.health under the policy's exec_scope.
function M.checker(p)
  if not p.exec_scope then return p.health end
  return function(res)
    local exec = require "bosk.exec"
    exec.scope(res.name)
    local ok, err = p.health(res)
    if exec.scope_refused() then
      return nil, "exec_scope: a janitor.exec without the resource name '" .. res.name .. "' was refused"
    end
    return ok, err
  end
end

-- work(p, payload, worker_main) -> report: runs p.health on the resource
-- in payload (Resource JSON); worker_main turns the result into "T" or
-- "F<why>" as it does for a cleaning.
function M.work(p, payload, worker_main)
  local res, err = wire.decode_resource(payload)
  if not res then return "Fcannot decode the resource: " .. tostring(err) end
  return worker_main{ fn = M.checker(p), arg = res, what = "health" }
end

-- Supervisor side -------------------------------------------------------------

-- The lane the policy's cleanings of rtype use: a check takes its slots
-- there, so the weighted share of --pool-size counts it too.
local function lane_of(sup, p, rtype)
  for _, lane in ipairs(sup.lanes) do
    if lane.policy == p and lane.type == rtype then return lane end
  end
  return { policy = p, type = rtype }
end

local function has_room(sup, p)
  return p.slots.busy < p.concurrency and sup.busy < sup.opts.pool_size
end

-- nap(round): the round's driver sleeps until woken (a check ended) or
-- RECHECK seconds have passed, whichever is first.
local function nap(round)
  local co = coroutine.running()
  local function resume()
    if round.wake ~= resume then return end   -- already woken
    round.wake = nil
    local ok, err = coroutine.resume(co)
    if not ok then jlog.error("internal error in a health round", { error = debug.traceback(co, err) }) end
  end
  round.wake = resume
  local timer = loop.timer(M.RECHECK, 0, resume)
  coroutine.yield()
  timer:stop()
end

-- Rounds waiting for a slot are served in the order they began to wait:
-- senior(sup, me) -> the napping round that has waited longer than `me`
-- and could take a slot now. Woken, it takes one (which ends its wait) or
-- stops, so deferring to it never goes round in a circle.
local function senior(sup, me)
  local best
  for _, r in pairs(sup.health_rounds) do
    if r ~= me and r.wake and r.waiting_since and has_room(sup, r.policy)
       and (best == nil or r.waiting_since < best.waiting_since) then best = r end
  end
  if best and me.waiting_since and best.waiting_since >= me.waiting_since then return nil end
  return best
end

-- A check ended: the waiting rounds look again, the longest-waiting first
-- (it takes the freed slot before the others wake).
local function wake_all(sup)
  local waiting = {}
  for _, r in pairs(sup.health_rounds) do
    if r.wake then waiting[#waiting + 1] = r end
  end
  table.sort(waiting, function(a, b) return (a.waiting_since or math.huge) < (b.waiting_since or math.huge) end)
  for _, r in ipairs(waiting) do
    if r.wake then r.wake() end
  end
end

-- Records why a check failed in the resource's user data (as a failed
-- cleaning does), while the lease is still held.
local function record_failure(sup, lease, reason)
  local line = safety.failure_line(core.realtime(), "health check failed: " .. tostring(reason))
  local ok, kind, msg = sup.api:update(lease.name, lease.via, { [safety.LAST_FAILURE] = line })
  if not ok then
    jlog.warn("cannot record the health check's failure in the user data",
              { type = lease.type, name = lease.name, error = msg, kind = kind })
  end
end

-- check(sup, round, lease, res): one resource, from its lease to its
-- release. Runs in its own coroutine; holds one slot until the check ends.
local function check(sup, round, lease, res)
  local p = round.policy
  local started = core.monotime()
  local record = { kind = "health", lease = lease }
  local watch = safety.watch(record, lease, p)      -- progress_timeout, as a cleaning
  local outcome, err
  if sup.stopping and sup.grace_over then
    outcome, err = "failed", "shutting down"
  else
    jlog.debug("health check started", { type = lease.type, name = lease.name, policy = p.where })
    outcome, err = sup:run_worker("h" .. p.index, wire.encode_resource(res), p.timeout, record, round.gen)
  end
  watch.stop()
  outcome, err = safety.outcome(sup.safety, record, lease, outcome, err)
  sup.metrics:bump("health_checks", lease.type, outcome)
  local dest = outcome == "success" and M.FREE or p.on_failure
  local fields = { type = lease.type, name = lease.name, outcome = outcome, duration = core.monotime() - started,
                   error = err, dest = dest }
  if outcome == "success" then
    round.healthy = round.healthy + 1
    jlog.info("health check passed", fields)
  else
    round.unhealthy = round.unhealthy + 1
    record_failure(sup, lease, err or outcome)
    jlog.warn("health check failed", fields)
  end
  sup:free_slot(round.lane)
  sup:pump()                     -- cleanings waiting for a slot come first
  sup:release(lease, dest)
  round.active = round.active - 1
  wake_all(sup)
end

-- half_pool(sup, round) -> "go", "wait" or "end": does the half-pool rule
-- let the round lease one more? Asks the server for the type's counts.
local function half_pool(sup, round)
  local m, _, msg = sup.api:metric(round.type)
  if type(m) ~= "table" or type(m.current) ~= "table" then
    jlog.warn("health round stopped: cannot read the type's counts", { type = round.type, error = msg })
    return "end"
  end
  local free = math.tointeger(tonumber(m.current[M.FREE]) or 0) or 0
  local allowed = (free + round.active) // 2     -- never more than half of the free pool
  if round.active < allowed then return "go" end
  return round.active > 0 and "wait" or "end"   -- nothing of ours in flight: the pool is too small
end

-- lease_one(sup, round) -> true when the round goes on. The round holds
-- a slot already; the check takes it over.
local function lease_one(sup, round)
  local p = round.policy
  local res, kind, msg
  if not sup.stopping then res, kind, msg = sup.api:acquire(round.type, M.FREE, p.via) end
  if not res then
    sup:free_slot(round.lane)
    if kind ~= nil and kind ~= "not_found" then
      jlog.warn("health round stopped: acquire failed", { type = round.type, error = msg })
    end
    sup:pump()
    return false
  end
  local lease = { name = res.name, type = res.type ~= "" and res.type or round.type, owner = sup.api.owner,
                  via = p.via, on_failure = p.on_failure, since = core.realtime() }
  sup:hold(lease)
  round.active = round.active + 1
  if round.checked[res.name] or sup.stopping then
    -- Checked already in this round (the queue went round) or stopping:
    -- put back as it was, unchecked this time.
    sup:free_slot(round.lane)
    sup:pump()
    sup:release(lease, M.FREE)
    round.active = round.active - 1
    return false
  end
  round.checked[res.name] = true
  round.count = round.count + 1
  sup:spawn("health check of " .. res.name, check, sup, round, lease, res)
  return true
end

-- step(sup, round) -> false when the round leases no more. Takes a slot
-- (the longest-waiting round first) before asking for the counts, so the
-- slot cannot go to another round or a cleaning meanwhile.
local function step(sup, round)
  if sup.stopping then return false end
  if sup.paused[round.type] then
    jlog.info("health round stopped: the type is paused", { type = round.type })
    return false
  end
  if safety.type_state(sup.safety, round.type).open then
    jlog.info("health round stopped: the type's breaker is open", { type = round.type })
    return false
  end
  if not has_room(sup, round.policy) then
    round.waiting_since = round.waiting_since or core.monotime()
    nap(round)
    return true
  end
  local first = senior(sup, round)
  if first then
    first.wake()                 -- its turn: it takes the slot before this round looks again
    return true
  end
  round.waiting_since = nil
  sup:take_slot(round.lane)
  local verdict = half_pool(sup, round)
  if verdict == "go" then return lease_one(sup, round) end
  sup:free_slot(round.lane)
  sup:pump()
  if verdict == "end" then return false end
  nap(round)
  return true
end

-- The round's driver: leases and starts checks while step() allows, then
-- waits for its checks to end.
local function drive(sup, round)
  while step(sup, round) do end
  round.waiting_since = nil
  while round.active > 0 do nap(round) end
  sup.health_rounds[round.type] = nil
  sup:gen_release(round.gen)
  jlog.info("health round done", { type = round.type, checked = round.count, healthy = round.healthy,
                                   unhealthy = round.unhealthy, duration = core.monotime() - round.started })
end

-- start_round(sup, p, rtype): one period's round for one type, unless the
-- previous one is still going (one round per type, whatever the policy,
-- so two rounds never add up to more than half of the pool).
local function start_round(sup, p, rtype)
  if sup.stopping then return end
  sup.health_rounds = sup.health_rounds or {}
  if sup.health_rounds[rtype] then
    jlog.warn("health round skipped: the previous one is still going", { type = rtype })
    return
  end
  if safety.type_state(sup.safety, rtype).open then
    jlog.info("health round skipped: the type's breaker is open", { type = rtype })
    return
  end
  if sup.paused[rtype] then
    jlog.debug("health round skipped: the type is paused", { type = rtype })
    return
  end
  local round = { policy = p, type = rtype, lane = lane_of(sup, p, rtype), gen = sup:gen_hold(),
                  checked = {}, active = 0, count = 0, healthy = 0, unhealthy = 0, started = core.monotime() }
  sup.health_rounds[rtype] = round
  sup:spawn("health round of " .. rtype, drive, sup, round)
end

-- schedule(sup): a timer per policy with `health` (first round one period
-- after the start or the reload), kept in sup.schedules so that a reload
-- or a shutdown stops it with the reapers' and jobs' timers.
function M.schedule(sup)
  for _, p in ipairs(sup.reg.policies) do
    if p.health then
      sup.schedules[#sup.schedules + 1] = loop.timer(p.health_every, p.health_every, function()
        for _, rtype in ipairs(p.types) do start_round(sup, p, rtype) end
      end)
    end
  end
end

return M
