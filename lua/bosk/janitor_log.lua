-- Structured logs and Prometheus metrics of `bosk janitor`.
--
--   log.setup{format = "text"|"json", out = io.stderr, level = "info"}
--   log.info(msg, fields) / log.warn / log.error / log.debug / log.trace
--   log.line(fields_or_message)
--   local m = log.metrics()  -- counters and gauges; m:render() -> text
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
    last_success = {},     -- [type] = unix time
    in_flight = 0,
    held = 0,
    request_failures = {}, -- [request \0 status] = n
    reaper_resets = {},    -- [type \0 state] = n
    reaper_failures = {},  -- [type \0 state] = n
    job_runs = {},         -- [job \0 outcome] = n
    job_last_success = {}, -- [job] = unix time
    reloads = {},          -- [outcome] = n
    unknown_types = {},    -- [type] = true
  }, Metrics)
end

function Metrics:observe(rtype, outcome, seconds)
  local by = self.cleanings[rtype] or {}
  self.cleanings[rtype] = by
  by[outcome] = (by[outcome] or 0) + 1
  local d = self.durations[rtype]
  if not d then
    d = { buckets = {}, sum = 0, count = 0 }
    for i = 1, #BUCKETS do d.buckets[i] = 0 end
    self.durations[rtype] = d
  end
  for i, le in ipairs(BUCKETS) do
    if seconds <= le then d.buckets[i] = d.buckets[i] + 1 end
  end
  d.sum, d.count = d.sum + seconds, d.count + 1
  if outcome == "success" then self.last_success[rtype] = core.realtime() end
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
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

-- Writes a counter family whose keys are label values joined by "\0".
local function add_counter(add, name, help, labels, t)
  add("# HELP " .. name .. " " .. help)
  add("# TYPE " .. name .. " counter")
  for _, key in ipairs(sorted(t)) do
    local parts, i = {}, 0
    for value in (key .. "\0"):gmatch("(.-)\0") do
      i = i + 1
      parts[i] = labels[i] .. "=" .. label(value)
    end
    add(string.format("%s{%s} %s", name, table.concat(parts, ","), num(t[key])))
  end
end

function Metrics:render()
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
  add_counter(add, "bosk_janitor_policy_reloads_total", "Policy reloads (SIGHUP), by outcome (success, partial, failed).",
              { "outcome" }, self.reloads)
  add("# HELP bosk_janitor_unknown_type Policy types the server does not know (1).")
  add("# TYPE bosk_janitor_unknown_type gauge")
  for _, t in ipairs(sorted(self.unknown_types)) do
    add(string.format("bosk_janitor_unknown_type{type=%s} 1", label(t)))
  end
  add("# HELP bosk_janitor_build_info The janitor's version; always 1.")
  add("# TYPE bosk_janitor_build_info gauge")
  add(string.format("bosk_janitor_build_info{version=%s} 1", label(M.version())))
  return table.concat(out, "\n") .. "\n"
end

return M
