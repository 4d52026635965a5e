-- The janitor supervisor: owns every lease and all talk with the server,
-- on one libuv loop (bosk.loop). Each lease lives in a coroutine:
--
--   acquire (from -> via) -> journal -> [recycle leasedResources] ->
--   clean in a forked worker (timeout kills its process group) ->
--   release to `to` or `on_failure` (retried until acknowledged) -> unjournal
--
-- Around that: heartbeats for every held lease, reapers, scheduled jobs,
-- the --once bookkeeping, SIGTERM/SIGINT shutdown with a grace period, and
-- the metrics text. Workers see the policies because they are forked after
-- the policy files were loaded; a worker only runs Lua and reports "T" (the
-- cleaning returned true) or "F<error>" over its pipe.
--
-- SIGHUP reloads the policies (Sup:reload): a new worker factory is forked
-- with them, and each lease keeps the generation it was taken under (its
-- policy table and its factory), so a cleaning runs and is released under
-- the version it started with. A generation's factory is retired once no
-- lease, cleaning or job of it is left.
local loop = require "bosk.loop"
local core = require "bosk.core"
local japi = require "bosk.janitor_api"
local jlog = require "bosk.janitor_log"
local wire = require "bosk.wire"
local safety = require "bosk.janitor_safety"
local sched = require "bosk.janitor_sched"
local health = require "bosk.janitor_health"

local await, sleep = japi.await, japi.sleep

local M = {}
local Sup = {}
Sup.__index = Sup

-- Shutdown fits Kubernetes' default terminationGracePeriodSeconds (30 s,
-- then SIGKILL): after --grace (default 20 s) the leases still held get
-- RELEASE_PHASE seconds to be released, with requests that time out after
-- SHUTDOWN_HTTP_TIMEOUT; then the janitor exits anyway and what is left
-- stays in the state file. 20 + 4 leaves a margin for the exit itself.
M.RELEASE_PHASE = 4
local SHUTDOWN_HTTP_TIMEOUT = 2

-- Worker side -------------------------------------------------------------

local traceback = jlog.policy_traceback

-- Runs in the forked worker: job.fn(job.arg) -> report string.
local function worker_main(job)
  local ok, result, err = xpcall(job.fn, traceback, job.arg)
  if not ok then return "F" .. tostring(result) end
  if result == true then return "T" end
  if job.what == "job" and result == nil and err == nil then return "T" end  -- a job need not return
  if result == nil or result == false then
    return "F" .. (err ~= nil and tostring(err) or (job.what .. " returned " .. tostring(result)))
  end
  return "F" .. job.what .. " returned a " .. type(result) .. " (want true)"
end

-- handler(key, payload) for the worker factory: "p<i>" cleans the resource
-- in payload (Resource JSON) with policy i; "j<i>" runs scheduled job i;
-- "h<i>" runs policy i's health check on the resource in payload.
local function worker_handler(reg)
  return function(key, payload)
    os.exit = loop.exit_now        -- exit() would run the parent's destructors
    local kind, index = key:match("^(%a)(%d+)$")
    index = tonumber(index)
    if kind == "p" and reg.policies[index] then
      local res, err = wire.decode_resource(payload)
      if not res then return "Fcannot decode the resource: " .. tostring(err) end
      return worker_main{ fn = safety.cleaner(reg.policies[index]), arg = res, what = "clean" }
    elseif kind == "j" and reg.jobs[index] then
      return worker_main{ fn = reg.jobs[index].fn, what = "job" }
    elseif kind == "h" and reg.policies[index] and reg.policies[index].health then
      return health.work(reg.policies[index], payload, worker_main)   -- a health check (janitor_health.lua)
    end
    return "Funknown worker key " .. key
  end
end

-- Supervisor ----------------------------------------------------------------

-- new(reg, opts) -> supervisor. opts: api (janitor_api), once, pool_size,
-- update_frequency, poll_interval, grace, journal (or nil), metrics_listen.
function M.new(reg, opts)
  local s = setmetatable({
    reg = reg, opts = opts, journal = opts.journal,
    lanes = {}, next_lane = 1,
    held = {},            -- name -> lease
    held_count = 0,
    busy = 0,             -- slots in use (acquiring or cleaning)
    workers = {},         -- worker id -> {kind =, lease = | job =, timed_out =, killed =}
    acquiring = 0,
    releasing = 0,
    seen = {},            -- --once: names already cleaned in this run
    recent_failures = {}, -- name -> time of the last failed cleaning
    stats = {},           -- [type][outcome] = n, for the --once summary
    failed = {},          -- --once: {type =, name =, outcome =, error =} per failed cleaning
    unknown = {},         -- types the server does not know: type -> true
    paused = {},          -- types `bosk control pause` stopped leasing: type -> true
    slots = {},           -- policy types -> {busy = n}, shared across reloads
    stopping = false, errors = 0, failures = 0,
    metrics = jlog.metrics(),
    timers = {}, schedules = {},
  }, Sup)
  s.safety = safety.new{ once = opts.once, pump = function() s:pump() end,
                         finish = function(lane) lane.done = true end }
  safety.attach_metrics(s.metrics, s.safety)
  s.api = s:counting_api(opts.api)
  s:attach(reg)
  return s
end

-- counting_api(api) -> api whose failed requests are counted in the
-- metrics by request and HTTP status ("none" when nothing answered).
function Sup:counting_api(api)
  local counted = setmetatable({}, { __index = api, __newindex = api })
  local metrics = self.metrics
  for _, request in ipairs({ "acquire", "acquire_by_state", "release", "update", "reset", "metric" }) do
    rawset(counted, request, function(_, ...)
      local r, kind, msg = api[request](api, ...)
      if r == nil and (kind == "error" or kind == "lost") then
        local status = kind == "lost" and "lost" or tostring(msg):match("status (%d%d%d)") or "none"
        metrics:bump("request_failures", request, status)
      end
      return r, kind, msg
    end)
  end
  return counted
end

-- attach(reg): the lanes of reg's policies replace the current ones. A
-- policy's concurrency counts the cleanings of the same types started
-- under earlier versions too (slots are shared by type list).
function Sup:attach(reg)
  self.reg = reg
  self.lanes, self.next_lane = {}, 1
  for _, p in ipairs(reg.policies) do
    p.concurrency = p.concurrency or self.opts.pool_size
    local key = table.concat(p.types, ",") .. "\0" .. p.from
    self.slots[key] = self.slots[key] or { busy = 0 }
    p.slots = self.slots[key]
    for _, rtype in ipairs(p.types) do
      self.lanes[#self.lanes + 1] = { policy = p, type = rtype, idle = false, done = false,
                                      wake = 0, owed = {}, cycled = {} }
    end
  end
end

-- Runs fn(...) as a coroutine; an error in it is logged, never raised.
function Sup:spawn(what, fn, ...)
  local co = coroutine.create(fn)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    jlog.error("internal error in " .. what, { error = debug.traceback(co, err) })
  end
end

function Sup:count(rtype, outcome)
  local by = self.stats[rtype] or {}
  self.stats[rtype] = by
  by[outcome] = (by[outcome] or 0) + 1
end

-- Leases ----------------------------------------------------------------------

-- A name can be held again before the release of its previous lease has
-- been seen: the server freed it, and a concurrent acquire got it back and
-- returned first. The name is counted once; forget() of the older lease
-- then leaves the newer one (and its journal row) alone. Counting it twice
-- left held_count above zero forever, so --once and SIGTERM never ended.
function Sup:hold(lease)
  if self.held[lease.name] == nil then self.held_count = self.held_count + 1 end
  self.held[lease.name] = lease
  self.metrics.held = self.held_count
  if self.journal then
    local ok, err = self.journal:add(lease)
    if not ok then jlog.error("cannot journal lease", { name = lease.name, error = err }) end
  end
end

function Sup:forget(lease)
  if self.held[lease.name] ~= lease then return end
  self.held[lease.name] = nil
  self.held_count = self.held_count - 1
  self.metrics.held = self.held_count
  if self.journal then
    local ok, err = self.journal:remove(lease.name)
    if not ok then jlog.error("cannot update the state file", { name = lease.name, error = err }) end
  end
end

-- release(lease, dest) -> true when the server acknowledged. Retries with a
-- growing delay while the server cannot be reached; stops retrying (the
-- lease stays in the journal) only once the janitor is shutting down.
function Sup:release(lease, dest)
  self.releasing = self.releasing + 1
  lease.releasing = dest
  local delay, attempts = 0.2, 0
  local done = false
  while true do
    attempts = attempts + 1
    local ok, kind, msg = self.api:release(lease.name, dest, lease.owner)
    if ok then
      self:forget(lease)
      done = true
      break
    elseif kind == "lost" then
      jlog.warn("lease lost before release", { type = lease.type, name = lease.name, error = msg })
      self:forget(lease)
      break
    end
    if self.deadline and (attempts >= 4 or core.monotime() >= self.deadline) then
      jlog.error("release failed; lease left in the state file", { type = lease.type, name = lease.name, dest = dest, error = msg })
      if self.held[lease.name] == lease then
        self.held[lease.name] = nil
        self.held_count = self.held_count - 1
        self.metrics.held = self.held_count
      end
      self.errors = self.errors + 1
      break
    end
    jlog.warn("release failed, will retry", { type = lease.type, name = lease.name, dest = dest, error = msg, retry_in = delay })
    sleep(delay)
    delay = math.min(delay * 2, self.stopping and 1 or 30)
  end
  self.releasing = self.releasing - 1
  self:check_done()
  return done
end

-- Workers -----------------------------------------------------------------

-- run_worker(key, payload, timeout, record) -> outcome, error
-- outcome: "success", "failed", "timeout" or "crashed".
function Sup:run_worker(key, payload, timeout, record, gen)
  local co = coroutine.running()
  local id, err = loop.spawn(key, payload, function(...)
    local ok, e = coroutine.resume(co, ...)
    if not ok then jlog.error("internal error after a worker", { error = debug.traceback(co, e) }) end
  end, gen and gen.id)
  if not id then return "failed", err end
  record.id = id
  record.started = core.realtime()
  self.workers[id] = record
  local timer
  if timeout then
    timer = loop.timer(timeout, 0, function()
      record.timed_out = true
      loop.kill(id)
    end)
  end
  local report, code, signal, why = coroutine.yield()
  if timer then timer:stop() end
  self.workers[id] = nil
  if record.control_killed then return "failed", "killed by bosk control" end
  if record.timed_out then return "timeout", string.format("timed out after %gs", timeout) end
  if record.killed then return "failed", "killed at shutdown (grace period over)" end
  if why then return "crashed", why end
  if signal then return "crashed", "worker killed by signal " .. signal end
  if code ~= 0 then return "crashed", "worker exited with status " .. tostring(code) end
  if report == "T" then return "success" end
  if report == nil then return "crashed", "worker exited without reporting" end
  return "failed", report:sub(2)
end

-- Recycling (upstream cleaner): the children listed in leasedResources are
-- taken from the state named after the parent, released dirty, and the
-- entry is cleared, before the parent is cleaned and released.
local function leased_resources(res)
  local ud = res.userdata
  local text = ud and ud.get and ud:get("leasedResources")
  if text == nil or text == "" then return nil end
  local ok, names = pcall(function() return ud:extract("leasedResources") end)
  if not ok or type(names) ~= "table" then
    names = {}
    for item in text:gmatch("%-%s*([^\n]+)") do names[#names + 1] = item:gsub("%s+$", "") end
  end
  local out = {}
  for _, n in ipairs(names) do if type(n) == "string" and n ~= "" then out[#out + 1] = n end end
  return out
end

function Sup:recycle(lease, res)
  local names = leased_resources(res)
  if not names then return end
  if #names > 0 then
    local children, kind, msg = self.api:acquire_by_state(res.name, lease.via, names)
    if not children then
      jlog.warn("cannot take leased resources", { type = res.type, name = res.name, error = msg, kind = kind })
      children = {}
    end
    for _, child in ipairs(children) do
      local c = { name = child.name, type = child.type, owner = self.api.owner, via = lease.via,
                  on_failure = "dirty", since = core.realtime() }
      self:hold(c)
      local released = self:release(c, "dirty")
      jlog.info("released leased resource", { type = child.type, name = child.name, parent = res.name, dest = "dirty" })
      if released then self:revive("dirty", child.type, child.name) end
    end
  end
  local ok, kind, msg = self.api:update(res.name, lease.via, { leasedResources = "" })
  if not ok then
    jlog.warn("cannot clear leasedResources", { name = res.name, error = msg, kind = kind })
  elseif res.userdata and res.userdata.update then
    res.userdata:update({ leasedResources = "" })   -- clean() sees what the server has
  end
end

-- Scheduling ----------------------------------------------------------------

-- A lane probes with one acquire at a time until one succeeds (so an empty
-- type or a dead server costs one request, not pool-size of them), then
-- keeps up to its policy's concurrency going.
function Sup:can_start(lane)
  local p = lane.policy
  return not self.stopping and not lane.idle and not lane.done and not self.paused[lane.type]
     and (lane.acquiring or 0) < (lane.warm and p.concurrency or 1)
     and p.slots.busy < p.concurrency and self.busy < self.opts.pool_size
     and safety.may_start(self.safety, lane)
end

-- pump(): starts as many acquisitions as the limits allow; the next lane
-- is bosk.janitor_sched's choice (weighted shares, round robin on ties),
-- so no type starves another.
function Sup:pump()
  local n = #self.lanes
  local progress = true
  while progress and n > 0 do
    progress = false
    local idx = sched.pick(self)     -- weighted: the lane with the fewest slots per weight
    if idx then
      local lane = self.lanes[idx]
      self.next_lane = idx % n + 1
      self:take_slot(lane)
      self:spawn("lease of " .. lane.type, self.lease, self, lane)
      progress = true
    end
  end
  self:check_done()
end

function Sup:take_slot(lane)
  sched.took(lane)
  lane.policy.slots.busy = lane.policy.slots.busy + 1
  self.busy = self.busy + 1
end

function Sup:free_slot(lane)
  sched.freed(lane)
  lane.policy.slots.busy = lane.policy.slots.busy - 1
  self.busy = self.busy - 1
end

-- A lane with nothing to lease rests for --poll-interval (or, with --once,
-- is finished).
function Sup:rest(lane)
  if self.opts.once then
    lane.done = true
    return
  end
  if lane.idle then return end
  lane.idle = true
  loop.timer(self.opts.poll_interval, 0, function()
    lane.idle = false
    self:pump()
  end)
end

-- --once: the recycle just released `name` into `state` during this run,
-- so it is leasable now and must be cleaned too. Every lane whose policy
-- leases from `state` (of the child's type, or any type when the server
-- gave none) is woken if it had finished, and owes that name: it does not
-- finish again on a put-back until it has leased the name or the server
-- answered "not found" to an acquire started after this call. Only lanes
-- fed by the recycle are re-probed, never every lane on every completion.
function Sup:revive(state, rtype, name)
  if not self.opts.once or self.stopping then return end
  local woke = false
  for _, lane in ipairs(self.lanes) do
    if lane.policy.from == state and (rtype == nil or rtype == "" or lane.type == rtype) then
      lane.wake = lane.wake + 1     -- a "not found" from an older acquire proves nothing
      lane.owed[name] = true
      lane.cycled = {}
      if lane.done then
        lane.done = false
        jlog.info("lane revived", { type = lane.type, from = state, name = name })
      end
      woke = true
    end
  end
  if woke then self:pump() end
end

-- --once: may this lane finish after putting back `name` (cleaned earlier
-- in this run)? Yes, unless it still owes a revived name and has not yet
-- gone round the queue (the same put-back name coming up twice since the
-- last revive means the owed names are not in it). Bounded: each name is
-- let through once per revive, and revives come from finitely many parents.
function Sup:finished_by_put_back(lane, name)
  if next(lane.owed) == nil or lane.cycled[name] then return true end
  lane.cycled[name] = true
  return false
end

-- Should this freshly leased resource be put back untouched? (--once:
-- already cleaned in this run; otherwise: failed less than a poll
-- interval ago, so a failing resource cannot monopolize a slot.)
function Sup:put_back(res)
  if self.opts.once then return self.seen[res.name] end
  local failed_at = self.recent_failures[res.name]
  return failed_at and core.monotime() - failed_at < self.opts.poll_interval
end

-- lease(lane): one resource's whole life, from acquire to release.
function Sup:lease(lane)
  local gen = self:gen_hold()
  self:lease_in(lane, gen)
  self:gen_release(gen)
end

-- unknown_type(lane, msg): the server answered that the lane's type does
-- not exist (a typo in a policy): warned once per type; --once fails.
function Sup:unknown_type(lane, msg)
  if self.unknown[lane.type] then return end
  self.unknown[lane.type] = true
  self.metrics.unknown_types[lane.type] = true
  jlog.warn("the server does not know this resource type; its policy cleans nothing",
            { type = lane.type, policy = lane.policy.where, error = msg })
end

function Sup:lease_in(lane, gen)
  local p = lane.policy
  local wake = lane.wake
  local ticket = safety.lease_begin(self.safety, lane)
  self.acquiring = self.acquiring + 1
  lane.acquiring = (lane.acquiring or 0) + 1
  local res, kind, msg = self.api:acquire(lane.type, p.from, p.via)
  self.acquiring = self.acquiring - 1
  lane.acquiring = lane.acquiring - 1
  lane.warm = res ~= nil
  if not res then
    safety.lease_abort(self.safety, ticket)
    self:free_slot(lane)
    if kind ~= "not_found" then
      self.errors = self.errors + 1
      jlog.error("acquire failed", { type = lane.type, error = msg })
    elseif tostring(msg):find(wire.type_not_found_message(lane.type), 1, true) then
      self:unknown_type(lane, msg)
    else
      self.unknown[lane.type] = nil
      self.metrics.unknown_types[lane.type] = nil
    end
    if self.opts.once and kind == "not_found" and lane.wake ~= wake then
      return self:pump()      -- revived since this acquire went out: probe again
    end
    if kind == "not_found" then lane.owed = {} end
    self:rest(lane)
    return self:pump()
  end
  local lease = { name = res.name, type = res.type ~= "" and res.type or lane.type, owner = self.api.owner,
                  via = p.via, on_failure = p.on_failure, since = core.realtime() }
  self:hold(lease)
  jlog.info("leased", { type = lease.type, name = lease.name, from = p.from, via = p.via })
  lane.leased = (lane.leased or 0) + 1
  lane.owed[res.name] = nil
  local screened = not self.stopping and not self:put_back(res) and safety.screen(self.safety, lane, res)
  if screened then                 -- protected (quarantine) or backed off (put back)
    safety.lease_abort(self.safety, ticket)
    self:free_slot(lane)
    if screened.rest then self:rest(lane) end
    self:pump()
    return self:release(lease, screened.dest)
  end
  if self:put_back(res) or self.stopping then
    safety.lease_abort(self.safety, ticket)
    self:free_slot(lane)
    if self.stopping or not self.opts.once or self:finished_by_put_back(lane, res.name) then
      self:rest(lane)
    end
    self:pump()
    return self:release(lease, p.from)
  end
  self:pump()   -- more room? lease the next one while this one is cleaned
  self:clean(lane, lease, res, ticket, gen)
end

function Sup:clean(lane, lease, res, ticket, gen)
  local p = lane.policy
  local started = core.monotime()
  self.seen[res.name] = true
  if p.recycle then self:recycle(lease, res) end
  self.metrics:cleaning_began(lease.type)
  local record = { kind = "cleaning", lease = lease }
  local outcome, err
  local watch = safety.watch(record, lease, p)   -- progress_timeout
  if self.stopping and record.killed == nil and self.grace_over then
    outcome, err = "failed", "shutting down"
  else
    jlog.debug("cleaning started", { type = lease.type, name = lease.name, policy = p.where })
    outcome, err = self:run_worker("p" .. p.index, wire.encode_resource(res), p.timeout, record, gen)
  end
  watch.stop()
  outcome, err = safety.outcome(self.safety, record, lease, outcome, err)
  self.metrics:cleaning_ended(lease.type)
  local elapsed = core.monotime() - started
  self:free_slot(lane)
  self:count(lease.type, outcome)
  self.metrics:observe(lease.type, outcome, elapsed)
  local dest = outcome == "success" and p.to or p.on_failure
  dest = safety.settle(self.safety, self.api, lane, lease, res, ticket, outcome, err, dest)
  local fields = { type = lease.type, name = lease.name, outcome = outcome, duration = elapsed, error = err, dest = dest,
                   last_progress = lease.progress_msg }
  if outcome == "success" then
    self.recent_failures[lease.name] = nil
    jlog.info("cleaned", fields)
  else
    self.failures = self.failures + 1
    self.recent_failures[lease.name] = core.monotime()
    self.failed[#self.failed + 1] = { type = lease.type, name = lease.name, outcome = outcome, error = err }
    jlog.warn("cleaning failed", fields)
  end
  self:pump()
  self:release(lease, dest)
end

-- Heartbeats, reapers, jobs ----------------------------------------------------

function Sup:heartbeat()
  for name, lease in pairs(self.held) do
    if not lease.releasing and safety.heartbeat_ok(lease) then   -- a hung cleaning is not kept alive
      self:spawn("heartbeat", function()
        local ok, kind, msg = self.api:update(name, lease.via, nil, lease.owner)
        if not ok then jlog.warn("heartbeat failed", { type = lease.type, name = name, error = msg, kind = kind }) end
      end)
    end
  end
end

function Sup:reap(r)
  for _, rtype in ipairs(r.types) do
    for _, state in ipairs(r.states) do
      self:spawn("reaper", function()
        local reset, _, msg = self.api:reset(rtype, state, r.expire, r.dest)
        if not reset then
          self.metrics:bump("reaper_failures", rtype, state)
          jlog.warn("reaper: reset failed", { type = rtype, state = state, error = msg })
          return
        end
        for name, owner in pairs(reset) do
          self.metrics:bump("reaper_resets", rtype, state)
          jlog.info("reaper: reset stale lease", { type = rtype, name = name, state = state, owner = owner, dest = r.dest })
        end
      end)
    end
  end
end

function Sup:run_job(job)
  if self.stopping then return end
  if job.running then
    jlog.warn("scheduled job skipped: previous run still going", { job = job.name })
    return
  end
  job.running = true
  self:spawn("job", function()
    local gen = self:gen_hold()
    local started = core.monotime()
    local record = { kind = "job", job = job }
    jlog.debug("job started", { job = job.name })
    local outcome, err = self:run_worker("j" .. job.index, "", nil, record, gen)
    self:gen_release(gen)
    job.running = false
    self.metrics:bump("job_runs", job.name, outcome)
    local fields = { job = job.name, outcome = outcome, duration = core.monotime() - started, error = err }
    if outcome == "success" then
      self.metrics.job_last_success[job.name] = core.realtime()
      jlog.info("job done", fields)
    else
      jlog.warn("job failed", fields)
    end
    self:check_done()
  end)
end

-- Start, recovery, shutdown -----------------------------------------------------

function Sup:every(seconds, fn)
  self.timers[#self.timers + 1] = loop.timer(seconds, seconds, fn)
end

-- Leases a crashed run left in the state file go to their failure state now.
function Sup:recover()
  if not self.journal then return end
  local entries, err = self.journal:list()
  if not entries then
    jlog.error("cannot read the state file", { error = err })
    return
  end
  for _, e in ipairs(entries) do
    jlog.info("releasing a lease left by an earlier run", { type = e.type, name = e.name, dest = e.on_failure })
    self.held[e.name] = e           -- already journaled: not hold()
    self.held_count = self.held_count + 1
    self.metrics.held = self.held_count
    self:spawn("recovery", self.release, self, e, e.on_failure)
  end
end

-- The reapers', jobs' and health checks' timers of the current policies
-- (not with --once).
function Sup:schedule()
  for _, t in ipairs(self.schedules) do t:stop() end
  self.schedules = {}
  if self.opts.once or self.stopping then return end
  for _, r in ipairs(self.reg.reapers) do
    self.schedules[#self.schedules + 1] = loop.timer(r.every, r.every, function() self:reap(r) end)
  end
  for _, job in ipairs(self.reg.jobs) do
    self.schedules[#self.schedules + 1] = loop.timer(job.every, job.every, function() self:run_job(job) end)
  end
  health.schedule(self)      -- free-pool health checks: their timers join these
end

-- start() -> true | nil (on_start refused to start: nothing was leased).
function Sup:start()
  if self.opts.on_start then
    local ok, err = self.opts.on_start(self)
    if ok == false then
      io.stderr:write("bosk janitor: ", tostring(err), "\n")
      return nil
    end
  end
  self.started = true
  loop.on_progress(function(id, text)
    local record = self.workers[id]
    if record and record.lease then safety.on_progress(record.lease, text) end
  end)
  self:recover()
  self:schedule()
  self:every(self.opts.update_frequency, function() self:heartbeat() end)
  -- The backlog gauges: fetched from the server off the cleaning path,
  -- only while the metrics are served (bosk.janitor_log).
  self:every(1, function()
    if self.stopping then return end
    self.metrics:poll_backlog(self.api, self.lanes, function(fn) self:spawn("backlog", fn) end)
  end)
  self.signals = {
    loop.signal("TERM", function() self:shutdown("SIGTERM") end),
    loop.signal("INT", function() self:shutdown("SIGINT") end),
  }
  if self.opts.reload then
    self.signals[#self.signals + 1] = loop.signal("HUP", function() self:spawn("reload", self.reload, self) end)
  end
  self:pump()
  return true
end

-- Generations ----------------------------------------------------------------

-- gen_hold() -> the current generation, counted as in use until gen_release.
function Sup:gen_hold()
  local gen = self.gen
  gen.users = gen.users + 1
  return gen
end

-- A generation no longer current and no longer used: its factory goes.
function Sup:gen_release(gen)
  gen.users = gen.users - 1
  if gen.users == 0 and gen ~= self.gen then
    jlog.debug("worker factory of earlier policies retired", { generation = gen.id })
    loop.zygote_retire(gen.id)
  end
end

-- reload(): SIGHUP. Loads the policy sources again (opts.reload), forks a
-- factory holding the result and makes it current; leases taken before go
-- on with the policies they were taken under. On any failure nothing
-- changes, and the log says why.
function Sup:reload()
  if self.stopping then return end
  jlog.info("SIGHUP: reloading the policy files")
  local reg, report = self.opts.reload()
  if not reg then
    self.metrics:bump("reloads", "failed")
    jlog.error("reload failed; the previous policies stay in force", { error = report })
    return
  end
  for path, why in pairs(report.kept) do
    jlog.error("policy file kept at its previous version", { file = path, error = why })
  end
  collectgarbage()
  local id, err = loop.zygote(worker_handler(reg))
  if not id then
    self.metrics:bump("reloads", "failed")
    jlog.error("reload failed; the previous policies stay in force", { error = err })
    return
  end
  local old = self.gen
  self.gen = { id = id, users = 0 }
  self:attach(reg)
  self:schedule()
  old.users = old.users + 1
  self:gen_release(old)
  self.metrics:bump("reloads", next(report.kept) and "partial" or "success")
  jlog.info("policies reloaded", { policies = #reg.policies, reapers = #reg.reapers, jobs = #reg.jobs,
                                   files_reloaded = report.loaded, generation = id })
  self:pump()
end

-- Live control (bosk.janitor_control) --------------------------------------------

function Sup:pause(rtype)
  if not self.paused[rtype] then jlog.info("control: type paused; no new leases of it", { type = rtype }) end
  self.paused[rtype] = true
  self.metrics.paused_types[rtype] = true
end

function Sup:resume(rtype)
  if self.paused[rtype] then jlog.info("control: type resumed", { type = rtype }) end
  self.paused[rtype] = nil
  self.metrics.paused_types[rtype] = nil
  self:pump()
end

-- control_kill(id): ends that worker's cleaning as a failure (its
-- resource goes to the failure state); nothing else is touched.
function Sup:control_kill(id)
  local record = self.workers[id]
  if not record then return end
  record.control_killed = true
  jlog.warn("control: killing a cleaning", { type = record.lease and record.lease.type,
                                             name = record.lease and record.lease.name })
  loop.kill(id)
end

-- drain(): no new leases; the cleanings in flight finish (no grace
-- period, no kill) and are released, then the janitor exits 0. A signal
-- during a drain still shuts down within --grace.
function Sup:drain()
  if self.stopping then return end
  self.stopping, self.draining = true, true
  for _, t in ipairs(self.schedules) do t:stop() end
  jlog.info("control: draining: no new leases; exiting when the cleanings in flight are released",
            { in_flight = self.metrics.in_flight })
  self:check_done()
end

function Sup:shutdown(why)
  if self.stopping and not (self.draining and not self.deadline) then
    jlog.warn("second signal: exiting now; held leases stay in the state file", { signal = why })
    self.exit_code = 1
    self.finished = true
    loop.stop()
    return
  end
  self.stopping = true
  self.deadline = core.monotime() + self.opts.grace + M.RELEASE_PHASE
  -- Requests from now on are the releases of the shutdown: short ones.
  self.api.timeout = math.min(self.api.timeout or SHUTDOWN_HTTP_TIMEOUT, SHUTDOWN_HTTP_TIMEOUT)
  for _, t in ipairs(self.schedules) do t:stop() end
  jlog.info("stopping: no new leases; waiting for running cleanings", { signal = why, grace = self.opts.grace })
  loop.timer(self.opts.grace, 0, function()
    self.grace_over = true
    for id, record in pairs(self.workers) do
      record.killed = true
      loop.kill(id)
    end
  end)
  loop.timer(self.opts.grace + M.RELEASE_PHASE, 0, function() self:give_up() end)
  self:check_done()
end

-- The release phase is over and leases are still held (a server that does
-- not answer): exit now, leaving them in the state file for the next start.
function Sup:give_up()
  if self.finished then return end
  local names = {}
  for name in pairs(self.held) do names[#names + 1] = name end
  table.sort(names)
  jlog.error("shutdown: release phase over; exiting with leases left in the state file",
             { leases = table.concat(names, ","), release_phase = M.RELEASE_PHASE })
  self.gave_up = true
  self.exit_code = 1
  self.finished = true
  loop.stop()
end

function Sup:idle()
  return self.busy == 0 and self.acquiring == 0 and self.releasing == 0
     and next(self.workers) == nil and self.held_count == 0
end

function Sup:check_done()
  if self.finished then return end
  if self.stopping then
    if self:idle() then
      self.finished = true
      self.exit_code = self.exit_code or 0
      loop.stop()
    end
    return
  end
  if self.opts.once then
    for _, lane in ipairs(self.lanes) do if not lane.done then return end end
    if self:idle() then
      self.finished = true
      self.exit_code = (self.failures == 0 and self.errors == 0 and next(self.unknown) == nil) and 0 or 1
      loop.stop()
    end
  end
end

-- run() -> exit status. Returns when --once is finished or after a signal.
function Sup:run()
  -- Workers inherit this heap. Collected now (0.06 ms for ~200 KB), no
  -- garbage is left whose finalizer would run in a worker once its own
  -- collector restarts (see worker.c).
  collectgarbage()
  local id, err = loop.zygote(worker_handler(self.reg))
  if not id then
    jlog.error("cannot start", { error = err })
    return 1
  end
  self.gen = { id = id, users = 0 }
  if not self:start() then
    self.exit_code = 1
    self.finished = true
  end
  if not self.finished then loop.run() end
  if self.gave_up and loop.http_in_flight() > 0 then
    -- loop.close would wait for those requests (up to their timeout),
    -- past the bound; the journal is committed, the zygote follows us.
    if self.journal then self.journal:close() end
    loop.exit_now(self.exit_code)
  end
  for _, t in ipairs(self.timers) do t:stop() end
  for _, t in ipairs(self.schedules) do t:stop() end
  for _, sig in ipairs(self.signals or {}) do sig:stop() end
  loop.close()
  return self.exit_code or 0
end

-- summary() -> lines "type outcome count", sorted.
function Sup:summary()
  local lines = {}
  for rtype, by in pairs(self.stats) do
    for outcome, n in pairs(by) do lines[#lines + 1] = string.format("%-30s %-8s %d", rtype, outcome, n) end
  end
  table.sort(lines)
  return lines
end

-- failed_lines() -> "name (type) outcome: reason" per failed cleaning,
-- sorted; the reason cut to its first line.
function Sup:failed_lines()
  local lines = {}
  for _, f in ipairs(self.failed) do
    local why = tostring(f.error or f.outcome):match("^[^\n]*")
    if #why > 200 then why = why:sub(1, 197) .. "..." end
    lines[#lines + 1] = string.format("%s (%s) %s: %s", f.name, f.type, f.outcome, why)
  end
  table.sort(lines)
  return lines
end

-- unknown_types() -> sorted list of the types the server does not know.
function Sup:unknown_types()
  local list = {}
  for t in pairs(self.unknown) do list[#list + 1] = t end
  table.sort(list)
  return list
end

return M
