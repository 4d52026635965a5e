-- Structured logs and Prometheus metrics of `bosk janitor`.
--
--   log.setup{format = "text"|"json", out = io.stderr, level = "info"}
--   log.info(msg, fields) / log.warn / log.error / log.debug / log.trace
--   log.line(fields_or_message)
--   local m = log.metrics()  -- counters and gauges; m:render() -> text
--   m:poll_backlog(api, lanes, spawn)  -- refreshes the backlog gauges (docs/janitor-metrics.md)
--
-- One line per event, written with a single write so lines from the
-- supervisor and its workers (which share stderr) never interleave.
local cjson = require("cjson").new()
local core = require "bosk.core"

local M = {}
local settings = { format = "text", out = io.stderr, progress = false, level = 4 }

-- The levels of upstream's --log-level (logrus), most severe first. A line
-- is written when its level is at or above the chosen one: "info" (the
-- default) hides debug and trace. The janitor writes nothing at "panic" or
-- "fatal" (what ends it goes to stderr as a plain message), so those two
-- silence its log, as they silence upstream's janitor.
local LEVELS = { panic = 0, fatal = 1, error = 2, warning = 3, warn = 3, info = 4, debug = 5, trace = 6 }
M.LEVELS = "panic, fatal, error, warn, info, debug, trace"

-- level_ok(name) -> true when name is one of upstream's log levels.
function M.level_ok(name) return LEVELS[name] ~= nil end

-- setup{format =, out =, progress =, level =}; progress: a live line is
-- kept on the terminal, so each log line first erases it.
function M.setup(opts)
  settings.format = opts.format or settings.format
  settings.out = opts.out or settings.out
  if opts.progress ~= nil then settings.progress = opts.progress end
  if opts.level then settings.level = assert(LEVELS[opts.level], "unknown log level") end
end

-- enabled(level) -> whether a line of that level is written now.
function M.enabled(level) return (LEVELS[level] or 4) <= settings.level end

local function timestamp()
  local now = core.realtime()
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(now)) .. string.format(".%03dZ", math.floor(now % 1 * 1000))
end

local function text_value(v)
  v = tostring(v)
  if v == "" or v:find('[%s"=]') then return string.format("%q", v):gsub("\\\n", "\\n") end
  return v
end

-- Fields in a stable order: the common ones first, the rest sorted.
local first = { "type", "name", "outcome", "duration", "error" }
local function ordered_keys(fields)
  local keys, seen = {}, {}
  for _, k in ipairs(first) do
    if fields[k] ~= nil then keys[#keys + 1] = k seen[k] = true end
  end
  local rest = {}
  for k in pairs(fields) do
    if not seen[k] and k ~= "msg" and k ~= "level" then rest[#rest + 1] = tostring(k) end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local function format_line(level, msg, fields)
  fields = fields or {}
  if settings.format == "json" then
    local obj = { time = timestamp(), level = level, msg = msg }
    for k, v in pairs(fields) do
      if type(v) ~= "number" and type(v) ~= "boolean" then v = tostring(v) end
      obj[tostring(k)] = v
    end
    return cjson.encode(obj) .. "\n"
  end
  local parts = { timestamp(), "level=" .. level, "msg=" .. text_value(msg) }
  for _, k in ipairs(ordered_keys(fields)) do
    local v = fields[k]
    if type(v) == "number" and k == "duration" then v = string.format("%.3fs", v) end
    parts[#parts + 1] = k .. "=" .. text_value(v)
  end
  return table.concat(parts, " ") .. "\n"
end

local function emit(level, msg, fields)
  if (LEVELS[level] or 4) > settings.level then return end
  settings.out:write(settings.progress and "\r\27[K" or "", format_line(level, msg, fields))
  settings.out:flush()
end

function M.info(msg, fields) emit("info", msg, fields) end
function M.warn(msg, fields) emit("warning", msg, fields) end
function M.error(msg, fields) emit("error", msg, fields) end
function M.debug(msg, fields) emit("debug", msg, fields) end
function M.trace(msg, fields) emit("trace", msg, fields) end

-- janitor.log(fields_or_message): a policy's own log line.
function M.line(v)
  if type(v) == "table" then
    local fields = {}
    for k, x in pairs(v) do fields[k] = x end
    local msg = fields.msg or fields.message or ""
    local level = fields.level or "info"
    fields.msg, fields.message, fields.level = nil, nil, nil
    emit(level, tostring(msg), fields)
  else
    emit("info", tostring(v), nil)
  end
end

-- Metrics ----------------------------------------------------------------
local BUCKETS = { 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600 }

local Metrics = {}
Metrics.__index = Metrics

function M.metrics()
  return setmetatable({
    cleanings = {},        -- [type][outcome] = n
    durations = {},        -- [type] = {buckets = {...}, sum =, count =}
    cleaning_seconds = {}, -- [type \0 outcome] = {buckets = {...}, sum =, count =}
    in_flight_by_type = {},-- [type] = n (0 once a type was seen)
    backlog = {},          -- [type] = {count =, oldest = seconds | nil, at = monotime}
    backlog_polls = {},    -- [type] = {busy =, at = monotime of the last poll}
    listing = nil,         -- false once the server proved it has no GET /resources
    rendered = false,      -- render() was called: someone reads these metrics
    last_success = {},     -- [type] = unix time
    in_flight = 0,
    held = 0,
    request_failures = {}, -- [request \0 status] = n
    reaper_resets = {},    -- [type \0 state] = n
    reaper_failures = {},  -- [type \0 state] = n
    job_runs = {},         -- [job \0 outcome] = n
    job_last_success = {}, -- [job] = unix time
    reloads = {},          -- [outcome] = n
    health_checks = {},    -- [type \0 outcome] = n (janitor_health.lua)
    unknown_types = {},    -- [type] = true
    paused_types = {},     -- [type] = true while `bosk control pause` holds it
  }, Metrics)
end

-- Adds one observation to the histogram t[key] (created empty).
local function observe_into(t, key, seconds)
  local d = t[key]
  if not d then
    d = { buckets = {}, sum = 0, count = 0 }
    for i = 1, #BUCKETS do d.buckets[i] = 0 end
    t[key] = d
  end
  for i, le in ipairs(BUCKETS) do
    if seconds <= le then d.buckets[i] = d.buckets[i] + 1 end
  end
  d.sum, d.count = d.sum + seconds, d.count + 1
end

function Metrics:observe(rtype, outcome, seconds)
  local by = self.cleanings[rtype] or {}
  self.cleanings[rtype] = by
  by[outcome] = (by[outcome] or 0) + 1
  observe_into(self.durations, rtype, seconds)
  observe_into(self.cleaning_seconds, rtype .. "\0" .. outcome, seconds)
  if outcome == "success" then self.last_success[rtype] = core.realtime() end
end

-- m:cleaning_began(type) / m:cleaning_ended(type): the in-flight gauges.
function Metrics:cleaning_began(rtype)
  self.in_flight = self.in_flight + 1
  self.in_flight_by_type[rtype] = (self.in_flight_by_type[rtype] or 0) + 1
end

function Metrics:cleaning_ended(rtype)
  self.in_flight = self.in_flight - 1
  self.in_flight_by_type[rtype] = (self.in_flight_by_type[rtype] or 1) - 1
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Backlog ----------------------------------------------------------------
-- The backlog gauges are the server's figures, not the janitor's: /metric
-- counts every state of a type (upstream Boskos has it too) and the
-- listing endpoint (bosk server only) gives each waiting resource's
-- lastupdate. They are asked for off the cleaning path, by their own
-- coroutines, at most once per BACKLOG_EVERY seconds and type, and only
-- once render() has been called (someone serves these metrics).
M.BACKLOG_EVERY = 5

-- Unix time of the oldest lastupdate among the resources the listing
-- answered with; nil when there is none.
local function oldest_lastupdate(list)
  local parse = require("bosk.janitor_safety").parse_time
  local oldest
  for _, r in ipairs(list) do
    local t = type(r) == "table" and type(r.lastupdate) == "string" and parse(r.lastupdate)
    if t and (oldest == nil or t < oldest) then oldest = t end
  end
  return oldest
end

-- oldest_waiting(api, rtype, state) -> unix time | false (nothing waits) |
-- nil (unknown now). A 404, or a 200 that is not a JSON list (upstream's
-- catch-all handler), means the server has no listing: never asked again.
function Metrics:oldest_waiting(api, rtype, state)
  local status, body, err = api:request("GET", "/resources", { type = rtype, state = state })
  if status == 404 or (status == 200 and not (body or ""):find("^%s*[%[n]")) then
    self.listing = false
    M.info("the server has no listing endpoint (GET /resources): bosk_janitor_oldest_waiting_seconds is left out",
           { type = rtype })
    return nil
  end
  if status ~= 200 then
    M.debug("backlog: cannot list the waiting resources", { type = rtype, state = state, status = status, error = err })
    return nil
  end
  local list = require("bosk.wire").decode_json(body)
  if type(list) ~= "table" then return nil end
  self.listing = true
  return oldest_lastupdate(list) or false
end

-- Refreshes self.backlog[rtype] from the server: the resources in any of
-- the `from` states of the type's policies (a set), and the oldest of them.
function Metrics:poll_type(api, rtype, froms)
  local m, _, msg = api:metric(rtype)
  if type(m) ~= "table" or type(m.current) ~= "table" then
    self.backlog[rtype] = nil        -- no figure rather than a stale one
    M.debug("backlog: cannot read the type's counts", { type = rtype, error = msg })
    return
  end
  local entry = { count = 0, since = false }
  for state in pairs(froms) do
    local n = tonumber(m.current[state]) or 0
    entry.count = entry.count + n
    -- Nothing waits: no listing needed, unless it is not known yet
    -- whether the server has one (so upstream never shows the gauge).
    if entry.since ~= nil and (n > 0 or self.listing == nil) and self.listing ~= false then
      local t = self:oldest_waiting(api, rtype, state)
      if t == nil then entry.since = nil
      elseif t and (entry.since == false or t < entry.since) then entry.since = t end
    end
  end
  if self.listing == false then entry.since = nil end
  self.backlog[rtype] = entry
end

-- m:poll_backlog(api, lanes, spawn): called every second or so by the
-- supervisor; starts spawn(fn) for each policy type whose figures are
-- older than BACKLOG_EVERY and not being fetched already.
function Metrics:poll_backlog(api, lanes, spawn)
  if not self.rendered then return end
  local froms, order = {}, {}
  for _, lane in ipairs(lanes) do
    local t = lane.type
    self.in_flight_by_type[t] = self.in_flight_by_type[t] or 0
    if not froms[t] then froms[t], order[#order + 1] = {}, t end
    froms[t][lane.policy.from] = true
  end
  for t in pairs(self.backlog) do
    if not froms[t] then self.backlog[t] = nil end   -- a type a reload dropped
  end
  local now = core.monotime()
  for _, t in ipairs(order) do
    local poll = self.backlog_polls[t] or {}
    self.backlog_polls[t] = poll
    if not poll.busy and (poll.at == nil or now - poll.at >= M.BACKLOG_EVERY) then
      poll.busy, poll.at = true, now
      spawn(function()
        local ok, err = pcall(self.poll_type, self, api, t, froms[t])
        poll.busy = false
        if not ok then M.error("backlog: internal error", { type = t, error = err }) end
      end)
    end
  end
end

-- Label values and numbers as the server writes them (core/prom_text.c,
-- through bosk.loop), so bucket bounds read 0.1, as Prometheus' Go client
-- writes them.
local function label(v) return require("bosk.loop").prom_label(tostring(v)) end
local function num(v) return require("bosk.loop").prom_number(v) end

-- The version in bosk_janitor_build_info: the one place it is read from.
-- bosk.version, when the build provides it, returns {version = "..."}.
function M.version()
  local ok, v = pcall(require, "bosk.version")
  if ok and type(v) == "table" and type(v.version) == "string" then return v.version end
  return "dev"
end

-- m:bump(counter, label values...): adds one to a labelled counter, whose
-- table is keyed by the label values joined with "\0".
local function bump(t, ...)
  local key = table.concat({ ... }, "\0")
  t[key] = (t[key] or 0) + 1
end
Metrics.bump = function(self, which, ...) bump(self[which], ...) end

-- The label set of a key made of label values joined by "\0":
-- `a="x",b="y"` for labels {"a", "b"}.
local function label_set(labels, key)
  local parts, i = {}, 0
  for value in (key .. "\0"):gmatch("(.-)\0") do
    i = i + 1
    parts[i] = labels[i] .. "=" .. label(value)
  end
  return table.concat(parts, ",")
end

-- Writes a counter family whose keys are label values joined by "\0".
local function add_counter(add, name, help, labels, t)
  add("# HELP " .. name .. " " .. help)
  add("# TYPE " .. name .. " counter")
  for _, key in ipairs(sorted(t)) do
    add(string.format("%s{%s} %s", name, label_set(labels, key), num(t[key])))
  end
end

-- Writes a histogram family whose keys are label values joined by "\0".
local function add_histogram(add, name, help, labels, t)
  add("# HELP " .. name .. " " .. help)
  add("# TYPE " .. name .. " histogram")
  for _, key in ipairs(sorted(t)) do
    local lbl, d = label_set(labels, key), t[key]
    for b, le in ipairs(BUCKETS) do
      add(string.format("%s_bucket{%s,le=%s} %d", name, lbl, label(num(le)), d.buckets[b]))
    end
    add(string.format("%s_bucket{%s,le=\"+Inf\"} %d", name, lbl, d.count))
    add(string.format("%s_sum{%s} %s", name, lbl, num(d.sum)))
    add(string.format("%s_count{%s} %d", name, lbl, d.count))
  end
end

-- The SLO families (issue 15): backlog, oldest waiting, in flight per
-- type, and cleaning time by type and outcome.
function Metrics:render_slo(add)
  local now = core.realtime()
  add("# HELP bosk_janitor_backlog Resources waiting in the policy's from state, by type (the server's count).")
  add("# TYPE bosk_janitor_backlog gauge")
  for _, t in ipairs(sorted(self.backlog)) do
    add(string.format("bosk_janitor_backlog{type=%s} %s", label(t), num(self.backlog[t].count)))
  end
  add("# HELP bosk_janitor_oldest_waiting_seconds Age of the oldest resource waiting in the from state (0: none waits).")
  add("# TYPE bosk_janitor_oldest_waiting_seconds gauge")
  for _, t in ipairs(sorted(self.backlog)) do
    local since = self.backlog[t].since
    if since ~= nil then
      local age = since and math.max(0, now - since) or 0
      add(string.format("bosk_janitor_oldest_waiting_seconds{type=%s} %s", label(t), num(age)))
    end
  end
  add("# HELP bosk_janitor_in_flight Cleanings running now, by type.")
  add("# TYPE bosk_janitor_in_flight gauge")
  for _, t in ipairs(sorted(self.in_flight_by_type)) do
    add(string.format("bosk_janitor_in_flight{type=%s} %s", label(t), num(self.in_flight_by_type[t])))
  end
  add_histogram(add, "bosk_janitor_cleaning_seconds", "Time from lease to the end of the cleaning, by type and outcome.",
                { "type", "outcome" }, self.cleaning_seconds)
end

function Metrics:render()
  self.rendered = true
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("# HELP bosk_janitor_cleanings_total Cleanings finished, by resource type and outcome.")
  add("# TYPE bosk_janitor_cleanings_total counter")
  for _, t in ipairs(sorted(self.cleanings)) do
    for _, o in ipairs(sorted(self.cleanings[t])) do
      add(string.format("bosk_janitor_cleanings_total{type=%s,outcome=%s} %s", label(t), label(o), num(self.cleanings[t][o])))
    end
  end
  add("# HELP bosk_janitor_cleaning_duration_seconds Time from lease to the end of the cleaning.")
  add("# TYPE bosk_janitor_cleaning_duration_seconds histogram")
  for _, t in ipairs(sorted(self.durations)) do
    local d = self.durations[t]
    for i, le in ipairs(BUCKETS) do
      add(string.format("bosk_janitor_cleaning_duration_seconds_bucket{type=%s,le=%s} %d", label(t), label(num(le)), d.buckets[i]))
    end
    add(string.format("bosk_janitor_cleaning_duration_seconds_bucket{type=%s,le=\"+Inf\"} %d", label(t), d.count))
    add(string.format("bosk_janitor_cleaning_duration_seconds_sum{type=%s} %s", label(t), num(d.sum)))
    add(string.format("bosk_janitor_cleaning_duration_seconds_count{type=%s} %d", label(t), d.count))
  end
  self:render_slo(add)
  add("# HELP bosk_janitor_cleanings_in_flight Cleanings running now.")
  add("# TYPE bosk_janitor_cleanings_in_flight gauge")
  add("bosk_janitor_cleanings_in_flight " .. num(self.in_flight))
  add("# HELP bosk_janitor_leases_held Resources the janitor holds now.")
  add("# TYPE bosk_janitor_leases_held gauge")
  add("bosk_janitor_leases_held " .. num(self.held))
  add("# HELP bosk_janitor_last_success_timestamp_seconds Unix time of the last successful cleaning, by type.")
  add("# TYPE bosk_janitor_last_success_timestamp_seconds gauge")
  for _, t in ipairs(sorted(self.last_success)) do
    add(string.format("bosk_janitor_last_success_timestamp_seconds{type=%s} %s", label(t), num(self.last_success[t])))
  end
  add_counter(add, "bosk_janitor_request_failures_total",
              "Requests to the server that failed, by request and HTTP status (\"none\": no answer).",
              { "request", "status" }, self.request_failures)
  add_counter(add, "bosk_janitor_reaper_resets_total", "Stale leases the reapers reset, by type and state.",
              { "type", "state" }, self.reaper_resets)
  add_counter(add, "bosk_janitor_reaper_failures_total", "Reaper resets that failed, by type and state.",
              { "type", "state" }, self.reaper_failures)
  add_counter(add, "bosk_janitor_job_runs_total", "Scheduled job runs, by job and outcome.",
              { "job", "outcome" }, self.job_runs)
  add("# HELP bosk_janitor_job_last_success_timestamp_seconds Unix time of a job's last successful run.")
  add("# TYPE bosk_janitor_job_last_success_timestamp_seconds gauge")
  for _, j in ipairs(sorted(self.job_last_success)) do
    add(string.format("bosk_janitor_job_last_success_timestamp_seconds{job=%s} %s", label(j), num(self.job_last_success[j])))
  end
  add_counter(add, "bosk_janitor_health_checks_total",
              "Health checks of free resources, by type and outcome (success: released free; any other: to on_failure).",
              { "type", "outcome" }, self.health_checks)
  add_counter(add, "bosk_janitor_policy_reloads_total", "Policy reloads (SIGHUP), by outcome (success, partial, failed).",
              { "outcome" }, self.reloads)
  add("# HELP bosk_janitor_unknown_type Policy types the server does not know (1).")
  add("# TYPE bosk_janitor_unknown_type gauge")
  for _, t in ipairs(sorted(self.unknown_types)) do
    add(string.format("bosk_janitor_unknown_type{type=%s} 1", label(t)))
  end
  add("# HELP bosk_janitor_paused Types paused with `bosk control pause` (1).")
  add("# TYPE bosk_janitor_paused gauge")
  for _, t in ipairs(sorted(self.paused_types)) do
    add(string.format("bosk_janitor_paused{type=%s} 1", label(t)))
  end
  add("# HELP bosk_janitor_build_info The janitor's version; always 1.")
  add("# TYPE bosk_janitor_build_info gauge")
  add(string.format("bosk_janitor_build_info{version=%s} 1", label(M.version())))
  return table.concat(out, "\n") .. "\n"
end

-- The error message and the traceback of the policy's frames only (an
-- xpcall handler for clean, verify and jobs).
function M.policy_traceback(err)
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    err = (mt and mt.__tostring) and tostring(err) or ("(error object is a " .. type(err) .. " value)")
  end
  local tb = debug.traceback(err, 2)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  return cut and tb:sub(1, cut - 1) or tb
end

return M
