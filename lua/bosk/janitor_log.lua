-- Structured logs and Prometheus metrics of `bosk janitor`.
--
--   log.setup{format = "text"|"json", out = io.stderr}
--   log.info(msg, fields) / log.warn / log.error ; log.line(fields_or_message)
--   local m = log.metrics()  -- counters and gauges; m:render() -> text
--
-- One line per event, written with a single write so lines from the
-- supervisor and its workers (which share stderr) never interleave.
local cjson = require("cjson").new()
local core = require "bosk.core"

local M = {}
local settings = { format = "text", out = io.stderr, progress = false }

-- setup{format =, out =, progress =}; progress: a live line is kept on the
-- terminal, so each log line first erases it.
function M.setup(opts)
  settings.format = opts.format or settings.format
  settings.out = opts.out or settings.out
  if opts.progress ~= nil then settings.progress = opts.progress end
end

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
  settings.out:write(settings.progress and "\r\27[K" or "", format_line(level, msg, fields))
  settings.out:flush()
end

function M.info(msg, fields) emit("info", msg, fields) end
function M.warn(msg, fields) emit("warning", msg, fields) end
function M.error(msg, fields) emit("error", msg, fields) end

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

local function label(v)
  return '"' .. tostring(v):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }) .. '"'
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function num(v)
  if v == math.huge then return "+Inf" end
  if math.type(v) == "integer" or v == math.floor(v) and math.abs(v) < 1e15 then
    return string.format("%d", v)
  end
  return string.format("%.17g", v)
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
    add(string.format("bosk_janitor_last_success_timestamp_seconds{type=%s} %.3f", label(t), self.last_success[t]))
  end
  return table.concat(out, "\n") .. "\n"
end

return M
