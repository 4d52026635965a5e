-- Janitor safety (docs/janitor-safety.md): the optional policy fields that
-- keep a janitor from holding a hung lease, looping on a failing resource,
-- cleaning through an outage, setting free what was not verified, or
-- touching what it must not. The supervisor (bosk.janitor) calls these
-- hooks; every decision and all of its state live here.
--
--   Worker side:  M.cleaner(p) -> fn(res)      clean + exec_scope + verify
--                 M.progress(msg)              janitor.progress
--   Supervisor:   local st = M.new{pump =, once =, now =, clock =}
--                 M.may_start(st, lane)        breaker / canary / max_per_hour
--                 M.lease_begin(st, lane)      -> ticket (a probe? a canary?)
--                 M.lease_abort(st, ticket)    the lease cleaned nothing
--                 M.screen(st, lane, res)      -> nil | {dest =, rest =, why =}
--                 M.watch(record, lease, p) -> watcher (progress_timeout)
--                 M.on_progress(lease, text)   a PROGRESS from its worker
--                 M.outcome(st, record, lease, outcome, err) -> outcome, err
--                 M.settle(st, api, lane, lease, res, ticket, outcome, err, dest) -> dest
--                 M.heartbeat_ok(lease)        still showing progress?
--
-- State that must survive a janitor restart (a resource's failures in a
-- row and why the last one failed) lives in the resource's user data, so
-- it works with any Boskos server and needs no --state-file.
local duration = require "bosk.duration"
local jlog = require "bosk.janitor_log"
local core = require "bosk.core"

local M = {}

M.LAST_FAILURE = "bosk.janitor/last-failure"
M.FAILURES = "bosk.janitor/failures"
M.QUARANTINE = "quarantine"
M.LAST_FAILURE_MAX = 200
M.DEFAULT_PROBE = 300        -- a failed canary with no `breaker` field
local HOUR = 3600

-- Policy fields -----------------------------------------------------------
-- Checkers return the normalized value, or nil and why (the caller turns
-- that into "file:line: janitor.policy: field 'x' why").

local function positive_duration(v)
  if type(v) ~= "number" and type(v) ~= "string" then
    return nil, "must be a duration (seconds, or a string such as \"30m\")"
  end
  local ok, secs = pcall(duration.seconds, v, "duration")
  if not ok then return nil, "is not a valid duration: " .. tostring(secs):gsub("^.-duration: ", "") end
  if not (secs > 0) then return nil, "must be a positive duration" end
  return secs
end

local function positive_int(v)
  if math.type(v) ~= "integer" or v < 1 then return nil, "must be a positive integer" end
  return v
end

-- A table of named parts: {name = checker}, all required unless optional.
local function record_of(parts, optional)
  return function(v)
    if type(v) ~= "table" then return nil, "must be a table {" .. table.concat(parts.order, ", ") .. "}" end
    local out = {}
    for k in pairs(v) do
      if parts[k] == nil then return nil, "has an unknown key '" .. tostring(k) .. "'" end
    end
    for _, k in ipairs(parts.order) do
      if v[k] == nil then
        if not (optional and optional[k]) then return nil, "needs '" .. k .. "'" end
      else
        local value, why = parts[k](v[k])
        if value == nil then return nil, "'" .. k .. "' " .. why end
        out[k] = value
      end
    end
    return out
  end
end

local function check_backoff(v)
  local b, why = record_of({ order = { "min", "max" }, min = positive_duration, max = positive_duration })(v)
  if not b then return nil, why end
  if b.max < b.min then return nil, "'max' must not be less than 'min'" end
  return b
end

local function check_protect(v)
  if type(v) ~= "table" then return nil, "must be a list of strings (glob patterns)" end
  local out = {}
  for k, x in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then return nil, "must be a list (found key " .. tostring(k) .. ")" end
    if type(x) ~= "string" or x == "" then return nil, "item " .. k .. " must be a non-empty string" end
    out[k] = x
  end
  return out
end

local function check_weight(v)
  if type(v) ~= "number" or not (v > 0) or v == math.huge then return nil, "must be a positive number" end
  return v
end

M.POLICY_FIELDS = {
  progress_timeout = positive_duration,
  backoff = check_backoff,
  quarantine_after = positive_int,
  weight = check_weight,
  breaker = record_of({ order = { "failures", "probe" }, failures = positive_int, probe = positive_duration }),
  canary = positive_int,
  verify = function(v) if type(v) ~= "function" then return nil, "must be a function" end return v end,
  protect = check_protect,
  max_per_hour = positive_int,
  exec_scope = function(v) if v ~= "name" then return nil, "must be \"name\"" end return v end,
}

-- Globs: * any run of characters, ? one character, everything else literal.
local function glob_pattern(glob)
  local out = glob:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return "^" .. out .. "$"
end

function M.protected(p, name)
  for _, glob in ipairs(p.protect or {}) do
    if name:match(glob_pattern(glob)) then return glob end
  end
end

-- Time and user data --------------------------------------------------------

-- RFC 3339 in UTC with milliseconds (a backoff of a second needs them).
function M.rfc3339(t)
  local secs = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", math.floor((t - secs) * 1000))
end

-- Days since 1970-01-01 of a civil date (proleptic Gregorian).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- parse_time("2024-05-01T10:00:00Z ...") -> unix seconds | nil (UTC, or
-- an offset such as +02:00).
function M.parse_time(text)
  local y, mo, d, h, mi, s, frac, rest =
    (text or ""):match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(%S*)")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
  if #frac > 1 then t = t + tonumber("0" .. frac) end
  if rest == "Z" then return t end
  local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
  if not sign then return nil end
  local off = tonumber(oh) * 3600 + tonumber(om) * 60
  return sign == "+" and t - off or t + off
end

-- One line of at most `max` bytes, never cut inside a UTF-8 character.
function M.one_line(text, max)
  text = tostring(text):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #text <= max then return text end
  local cut = max
  while cut > 0 and (text:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return text:sub(1, cut)
end

function M.failure_line(t, reason)
  return M.one_line(M.rfc3339(t) .. " " .. tostring(reason), M.LAST_FAILURE_MAX)
end

local function ud_get(res, key)
  local ud = res.userdata
  local v = ud and ud.get and ud:get(key)
  if v == nil or v == "" then return nil end
  return v
end

-- failures(res) -> failures in a row (from its user data), time of the last
function M.failures(res)
  local n = tonumber(ud_get(res, M.FAILURES) or "") or 0
  local at = M.parse_time(ud_get(res, M.LAST_FAILURE))
  if n > 0 and not at then n = 0 end
  return math.max(0, math.floor(n)), at
end

-- backoff_until(p, k, at) -> unix time before which a resource whose k-th
-- failure in a row happened at `at` is not cleaned again (nil: no wait).
function M.backoff_until(p, k, at)
  if not p.backoff or k < 1 or not at then return nil end
  local wait = math.min(p.backoff.min * 2 ^ (k - 1), p.backoff.max)
  return at + wait
end

-- Worker side -----------------------------------------------------------------

function M.progress(msg)
  if msg == nil then msg = "" end
  local ok = require("bosk.loop").progress(tostring(msg))
  return ok
end

local function verify_error(err)
  return debug.traceback(tostring(err), 2)
end

-- cleaner(p) -> the function a worker runs for policy p: clean under the
-- exec_scope, then verify. Plain p.clean when neither is set.
function M.cleaner(p)
  if not p.verify and not p.exec_scope then return p.clean end
  return function(res)
    local exec = require "bosk.exec"
    if p.exec_scope == "name" then exec.scope(res.name) end
    local ok, err = p.clean(res)
    if exec.scope_refused() then
      return nil, "exec_scope: a janitor.exec without the resource name '" .. res.name .. "' was refused"
    end
    if ok ~= true or not p.verify then return ok, err end
    local called, vok, verr = xpcall(p.verify, verify_error, res)
    if exec.scope_refused() then
      return nil, "verify failed: exec_scope: a janitor.exec without the resource name '" .. res.name .. "' was refused"
    end
    if not called then return nil, "verify failed: " .. tostring(vok) end
    if vok == true then return true end
    return nil, "verify failed: " .. (verr ~= nil and tostring(verr) or ("verify returned " .. tostring(vok)))
  end
end

-- Supervisor side ------------------------------------------------------------

-- new{pump = fn(), once = bool, finish = fn(lane)} -> state
function M.new(opts)
  local st = {
    pump = opts.pump, once = opts.once, finish = opts.finish,
    types = {},          -- type -> {fails = n in a row, open =, since =, last_probe =, probing =, starts = {}}
    quarantined = {},    -- type -> n (metric)
  }
  return st
end

local function type_state(st, rtype)
  local t = st.types[rtype]
  if not t then
    t = { fails = 0, open = false, probing = false, starts = {} }
    st.types[rtype] = t
  end
  return t
end
M.type_state = type_state

-- One timer per lane at a time wakes the scheduler when a wait is over.
local function wake_at(st, lane, seconds)
  if lane.safety_wake then return end
  lane.safety_wake = true
  require("bosk.loop").timer(math.max(0.01, seconds), 0, function()
    lane.safety_wake = false
    if st.pump then st.pump() end
  end)
end

-- A type that cannot start now: with --once its lane is finished for the
-- run (no waiting an hour in a one-shot job); otherwise wake up later.
local function blocked(st, lane, seconds, msg, fields)
  if st.once then
    if st.finish then st.finish(lane) end
    jlog.warn(msg .. "; --once: this type is done for this run", fields)
    return false
  end
  if not lane.safety_said or lane.safety_said ~= msg then
    lane.safety_said = msg
    jlog.warn(msg, fields)
  end
  wake_at(st, lane, seconds)
  return false
end

local function prune_starts(t, now)
  local keep = {}
  for _, at in ipairs(t.starts) do if now - at < HOUR then keep[#keep + 1] = at end end
  t.starts = keep
end

-- may_start(st, lane) -> may the lane begin another lease now?
function M.may_start(st, lane)
  local p = lane.policy
  if p.canary_left == nil then p.canary_left = p.canary or 0 end
  if p.canary_left > 0 and p.slots.busy >= 1 then return false end
  local t = type_state(st, lane.type)
  local now = core.monotime()
  if t.open then
    if t.probing then return false end
    local due = t.last_probe + t.probe_every
    if now < due then
      return blocked(st, lane, due - now, "breaker open: waiting for the next probe",
                     { type = lane.type, failures = t.fails, probe_in = due - now })
    end
  end
  if p.max_per_hour then
    prune_starts(t, now)
    if #t.starts >= p.max_per_hour then
      return blocked(st, lane, t.starts[1] + HOUR - now, "max_per_hour reached: the type waits",
                     { type = lane.type, max_per_hour = p.max_per_hour, next_in = t.starts[1] + HOUR - now })
    end
  end
  if lane.safety_said then
    jlog.info("type may clean again", { type = lane.type, was = lane.safety_said })
    lane.safety_said = nil
  end
  return true
end

-- lease_begin(st, lane) -> ticket: reserves an hourly start and, with the
-- breaker open, the probe. Undone by lease_abort when nothing is cleaned.
function M.lease_begin(st, lane)
  local t = type_state(st, lane.type)
  local now = core.monotime()
  local ticket = { type = lane.type, at = now }
  if lane.policy.max_per_hour then t.starts[#t.starts + 1] = now end
  if t.open then
    t.probing, t.last_probe = true, now
    ticket.probe = true
  end
  if (lane.policy.canary_left or 0) > 0 then ticket.canary = true end
  return ticket
end

function M.lease_abort(st, ticket)
  if not ticket or ticket.done then return end
  ticket.done = true
  local t = type_state(st, ticket.type)
  for i = #t.starts, 1, -1 do
    if t.starts[i] == ticket.at then table.remove(t.starts, i) break end
  end
  if ticket.probe then
    t.probing = false
    t.last_probe = t.last_probe - t.probe_every   -- nothing was probed: the next may go now
  end
end

-- screen(st, lane, res) -> nil (clean it) or {dest =, rest =, why =}: a
-- protected name goes to quarantine; a backed-off one goes back at once.
-- Put back untouched, a resource returns to the end of its state's queue
-- (both servers hand out the oldest first), so the next acquire gets
-- another one; once the same backed-off name comes round again in a row
-- of put-backs, every waiting resource is backed off and the lane rests.
function M.screen(st, lane, res)
  local p = lane.policy
  local glob = M.protected(p, res.name)
  if glob then
    st.quarantined[lane.type] = (st.quarantined[lane.type] or 0) + 1
    jlog.error("protected resource: not cleaned, sent to quarantine",
               { type = lane.type, name = res.name, protect = glob, dest = M.QUARANTINE })
    return { dest = M.QUARANTINE, why = "protected" }
  end
  if p.backoff then
    local k, at = M.failures(res)
    local not_before = M.backoff_until(p, k, at)
    if not_before and core.realtime() < not_before then
      lane.backoff_seen = lane.backoff_seen or {}
      local again = lane.backoff_seen[res.name]
      lane.backoff_seen[res.name] = true
      if again then lane.backoff_seen = {} end
      jlog.info("backed off: put back", { type = lane.type, name = res.name, failures = k,
                                          not_before = M.rfc3339(not_before) })
      return { dest = p.from, rest = again, why = "backoff" }
    end
  end
  lane.backoff_seen = nil
end

-- progress_timeout -------------------------------------------------------------

function M.heartbeat_ok(lease)
  if not lease.progress_timeout then return true end
  return not lease.hung and core.monotime() - lease.progress_at <= lease.progress_timeout
end

-- Receives janitor.progress from the worker cleaning `lease`.
function M.on_progress(lease, text)
  lease.progress_at = core.monotime()
  lease.progress_msg = text
end

-- watch(record, lease, p) -> {stop = fn}: with progress_timeout, a
-- cleaning silent for that long is hung: its worker's process group is
-- killed (the cleaning then ends as "hung") and its lease is no longer
-- heartbeated.
function M.watch(record, lease, p)
  lease.progress_at = core.monotime()
  lease.progress_msg = nil
  lease.progress_timeout = p.progress_timeout
  if not p.progress_timeout then return { stop = function() end } end
  local loop = require "bosk.loop"
  local every = math.min(math.max(p.progress_timeout / 10, 0.02), 1)
  local timer = loop.timer(every, every, function()
    if record.hung or not record.id then return end
    local silent = core.monotime() - lease.progress_at
    if silent > p.progress_timeout then
      record.hung = string.format("hung: no progress for %.1fs (progress_timeout %gs)", silent, p.progress_timeout)
      lease.hung = true
      jlog.warn("cleaning hung: killing its process group", { type = lease.type, name = lease.name,
                last_progress = lease.progress_msg, silent = silent })
      loop.kill(record.id)
    end
  end)
  return { stop = function()
    timer:stop()
    if not lease.hung then lease.progress_timeout = nil end   -- over: heartbeated until released
  end }
end

-- outcome(st, record, lease, outcome, err) -> outcome, err: "hung" when
-- the watch killed it; failures carry the last progress message.
function M.outcome(st, record, lease, outcome, err)
  if record.hung and outcome ~= "success" then outcome, err = "hung", record.hung end
  -- Ended by the janitor's own shutdown: says nothing about the resource.
  lease.shutdown = outcome ~= "success" and (record.killed or err == "shutting down") or nil
  if outcome ~= "success" and lease.progress_msg then
    err = string.format("%s (last progress: %s)", tostring(err), lease.progress_msg)
  end
  return outcome, err
end

-- Settling a cleaning ----------------------------------------------------------

local function open_breaker(st, rtype, probe, why, fields)
  local t = type_state(st, rtype)
  t.probe_every = probe
  if t.open then return end
  t.open, t.since, t.last_probe = true, core.realtime(), core.monotime()
  fields.type, fields.probe = rtype, probe
  jlog.error("breaker open: " .. why, fields)
end

local function breaker_after(st, lane, ticket, success, err)
  local p = lane.policy
  local t = type_state(st, lane.type)
  if ticket and ticket.probe then t.probing = false end
  if success then
    if t.open then jlog.info("breaker closed: a probe succeeded", { type = lane.type }) end
    t.fails, t.open = 0, false
  else
    t.fails = t.fails + 1
    if p.breaker and t.fails >= p.breaker.failures then
      open_breaker(st, lane.type, p.breaker.probe, "too many failures in a row",
                   { failures = t.fails, error = err })
    end
  end
  if ticket and ticket.canary then
    if success then
      p.canary_left = math.max(0, p.canary_left - 1)
      if p.canary_left == 0 then jlog.info("canary passed: full concurrency", { type = lane.type }) end
    else
      open_breaker(st, lane.type, p.breaker and p.breaker.probe or M.DEFAULT_PROBE, "a canary cleaning failed",
                   { error = err })
    end
  end
end

-- settle(st, api, lane, lease, res, ticket, outcome, err, dest) -> dest
-- After a cleaning, before its release: breaker and canary bookkeeping;
-- on a failure the failure count and reason go into the resource's user
-- data (and the N-th failure in a row goes to quarantine); after a success
-- those keys are removed. Runs in the lease's coroutine (api calls yield).
function M.settle(st, api, lane, lease, res, ticket, outcome, err, dest)
  if ticket then ticket.done = true end
  if lease.shutdown then
    if ticket and ticket.probe then type_state(st, lane.type).probing = false end
    return dest
  end
  local p = lane.policy
  local success = outcome == "success"
  breaker_after(st, lane, ticket, success, err)
  local k = M.failures(res)
  local update
  if success then
    if ud_get(res, M.FAILURES) or ud_get(res, M.LAST_FAILURE) then
      update = { [M.FAILURES] = "", [M.LAST_FAILURE] = "" }
    end
  else
    k = k + 1
    local reason = tostring(err or outcome)
    update = { [M.FAILURES] = tostring(k) }
    if p.quarantine_after and k >= p.quarantine_after then
      dest = M.QUARANTINE
      reason = string.format("quarantined after %d failures in a row: %s", k, reason)
      update[M.FAILURES] = ""           -- a returned resource starts a new count
      st.quarantined[lease.type] = (st.quarantined[lease.type] or 0) + 1
      jlog.error("quarantined", { type = lease.type, name = lease.name, failures = k, error = err })
    end
    update[M.LAST_FAILURE] = M.failure_line(core.realtime(), reason)
  end
  if update then
    local ok, kind, msg = api:update(lease.name, lease.via, update)
    if not ok then
      jlog.warn("cannot record the cleaning's outcome in the user data", { type = lease.type, name = lease.name,
                error = msg, kind = kind })
    end
  end
  return dest
end

-- Metrics ---------------------------------------------------------------------

-- Label values as the rest of the janitor's metrics write them (the
-- server's escaper, janitor_log.lua).
local function label(v) return require("bosk.loop").prom_label(tostring(v)) end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

function M.metrics_text(st)
  local out = {
    "# HELP bosk_janitor_breaker_open 1 while the type's circuit breaker is open.",
    "# TYPE bosk_janitor_breaker_open gauge",
  }
  for _, rtype in ipairs(sorted_keys(st.types)) do
    out[#out + 1] = string.format("bosk_janitor_breaker_open{type=%s} %d", label(rtype), st.types[rtype].open and 1 or 0)
  end
  out[#out + 1] = "# HELP bosk_janitor_quarantined_total Resources sent to quarantine, by type."
  out[#out + 1] = "# TYPE bosk_janitor_quarantined_total counter"
  for _, rtype in ipairs(sorted_keys(st.quarantined)) do
    out[#out + 1] = string.format("bosk_janitor_quarantined_total{type=%s} %d", label(rtype), st.quarantined[rtype])
  end
  return table.concat(out, "\n") .. "\n"
end

-- attach_metrics(metrics, st): metrics:render() also renders these.
function M.attach_metrics(metrics, st)
  local render = metrics.render
  metrics.render = function(self) return render(self) .. M.metrics_text(st) end
end

-- breakers(st) -> {type = {state = "closed"|"open"|"probing", since =, failures =}}
-- (for `bosk control breakers`).
function M.breakers(st)
  local out = {}
  for rtype, t in pairs(st.types) do
    out[rtype] = { state = t.open and (t.probing and "probing" or "open") or "closed",
                   since = t.open and M.rfc3339(t.since) or nil, failures = t.fails }
  end
  return out
end

-- Shared with janitor_policy's own fields, so both say the same.
M.positive_duration = positive_duration
M.positive_int = positive_int

return M
