-- `bosk reaper`: the upstream Boskos reaper (cmd/reaper) with its command
-- line unchanged. Every period, for each resource type and each source
-- state (busy, cleaning, leased, then --extra-source-states), it asks the
-- server to move the leases not updated for --expire to --target-state
-- (client:reset), and logs each resource moved.
--
-- Differences from upstream, all additive: the first pass runs at start
-- (upstream's after one period); --every, --once, --log-level and
-- --log-format; SIGHUP re-reads --resource-type-from-config instead of
-- ending the process (the file is also re-read at every pass, where
-- upstream watches it). Exit status: 0 after SIGTERM/SIGINT, or after
-- --once when every reset succeeded; 1 when one failed (--once) or the
-- client cannot start; 2 for a bad flag value.
local flags = require "bosk.flags"
local core = require "bosk.core"
local jlog = require "bosk.janitor_log"

local M = {}

local spec = flags.with(flags.common("Reaper"), {
  { "resource-type", kind = "list", help = "comma-separated resource types to reap (repeatable)" },
  { "resource-type-from-config", help = "also reap every type of this boskos resource config (YAML)" },
  { "expire", kind = "duration", default = 30 * 60, help = "leases not updated for this long are reaped" },
  { "target-state", default = "dirty", help = "the state reaped resources are moved to" },
  { "extra-source-states", kind = "list", help = "comma-separated states reaped besides busy, cleaning, leased" },
  { "every", kind = "duration", default = 60, help = "time between passes" },
  { "once", kind = "bool", default = false, help = "one pass, then exit (1 if a reset failed)" },
  { "log-level", default = "info", help = "panic, fatal, error, warn, info, debug or trace" },
  { "log-format", default = "text", help = "text or json" },
})

local usage_line = "usage: bosk reaper --resource-type T1,T2 [--resource-type-from-config FILE] [--expire D]"
  .. " [--target-state S] [--extra-source-states S1,S2] [--every D] [--once]\n"

-- logrus' levels; a line is written when its level is at most the threshold.
local LEVELS = { panic = 0, fatal = 1, error = 2, warn = 3, warning = 3, info = 4, debug = 5, trace = 6 }
local threshold = LEVELS.info

local function log(level, msg, fields)
  if LEVELS[level] > threshold then return end
  if level == "error" then jlog.error(msg, fields)
  elseif level == "warning" then jlog.warn(msg, fields)
  elseif level == "info" then jlog.info(msg, fields)
  else
    local line = { msg = msg, level = level }
    for k, v in pairs(fields or {}) do line[k] = v end
    jlog.line(line)
  end
end

local function usage_error(msg)
  io.stderr:write("bosk reaper: ", msg, "\n", usage_line)
  return 2
end

-- Appends the words of comma lists to out, once each, skipping empty ones.
local function add_words(out, seen, lists)
  for _, list in ipairs(lists or {}) do
    for word in list:gmatch("[^,]+") do
      if not seen[word] then
        seen[word] = true
        out[#out + 1] = word
      end
    end
  end
  return out
end

-- M.types_from_config(path) -> list of the types named in a boskos
-- resource config (resources[].type), or nil, message naming the file.
function M.types_from_config(path)
  local f, oerr = io.open(path, "rb")
  if not f then return nil, "cannot read " .. oerr end
  local text = f:read("a")
  f:close()
  local doc, yerr = require("bosk.yaml").decode(text)
  if yerr then return nil, path .. ": " .. yerr end
  if type(doc) ~= "table" or type(doc.resources) ~= "table" then
    return nil, path .. ": no resources list"
  end
  local types, seen = {}, {}
  for i, entry in ipairs(doc.resources) do
    local t = type(entry) == "table" and entry.type
    if type(t) ~= "string" or t == "" then
      return nil, string.format("%s: resources[%d] has no type", path, i - 1)
    end
    if not seen[t] then
      seen[t] = true
      types[#types + 1] = t
    end
  end
  return types
end

-- The types to reap now: the flag's, then the config's (upstream's union).
local function current_types(o)
  local types, seen = {}, {}
  add_words(types, seen, o.resource_type)
  if o.resource_type_from_config then
    local from_config, err = M.types_from_config(o.resource_type_from_config)
    if not from_config then return nil, err end
    add_words(types, seen, from_config)
  end
  return types
end

local function check_opts(o, rest)
  if #rest > 0 then return "unexpected argument: " .. rest[1] end
  if not LEVELS[o.log_level] then
    return string.format("invalid value %q for flag --log-level: want panic, fatal, error, warn, info, debug or trace",
                         o.log_level)
  end
  if o.log_format ~= "text" and o.log_format ~= "json" then
    return string.format("invalid value %q for flag --log-format: want text or json", o.log_format)
  end
  if not (o.expire > 0) then return "invalid value for flag --expire: must be positive" end
  if not (o.every > 0) then return "invalid value for flag --every: must be positive" end
  if o.target_state == "" then return "invalid value for flag --target-state: must not be empty" end
  if not o.boskos_url:match("^https?://[^/]") then
    return string.format("invalid value %q for flag --boskos-url: want http://HOST[:PORT] or https://...",
                         o.boskos_url)
  end
  if (o.username == nil) ~= (o.password_file == nil) then
    return "--username and --password-file must be given together"
  end
  if #add_words({}, {}, o.resource_type) == 0 and not o.resource_type_from_config then
    return "--resource-type or --resource-type-from-config must be set"
  end
end

-- Resets one type and source state; logs each resource moved.
-- -> number moved, or nil on failure (logged).
local function reset_one(c, o, rtype, state)
  local fields = { resource_type = rtype, source_state = state, target_state = o.target_state }
  local owners, err = c:reset(rtype, state, o.expire, o.target_state)
  if owners == nil then
    fields.error = tostring(err)
    log("error", "Reset failed", fields)
    return nil
  end
  local names = {}
  for name in pairs(owners) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    log("info", "Reset resource", { resource_type = rtype, source_state = state, target_state = o.target_state,
                                    resource_name = name, previous_owner = owners[name] })
  end
  return #names
end

-- One pass over every type and state; stops early after SIGTERM/SIGINT.
-- -> moved, failed
local function pass(c, o, rl, types, states)
  local moved, failed = 0, 0
  for _, rtype in ipairs(types) do
    for _, state in ipairs(states) do
      if rl.caught() then return moved, failed end
      local n = reset_one(c, o, rtype, state)
      if n then moved = moved + n else failed = failed + 1 end
    end
  end
  log("debug", "pass done", { moved = moved, failed = failed })
  return moved, failed
end

-- Re-reads the types; a config that no longer loads keeps the previous list.
local function refresh_types(o, types, why)
  local now, err = current_types(o)
  if not now then
    log("warning", "cannot re-read the resource types; keeping the previous ones",
        { error = err, reason = why })
    return types
  end
  if table.concat(now, ",") ~= table.concat(types, ",") then
    log("info", "resource types changed", { types = table.concat(now, ","), reason = why })
  end
  return now
end

-- Sleeps until the monotonic deadline; a SIGHUP on the way re-reads the
-- types. -> types, false when SIGTERM/SIGINT came.
local function rest_until(deadline, o, rl, types)
  while not rl.caught() do
    if rl.take_hup() then
      log("info", "received SIGHUP, re-reading the resource types",
          { config = o.resource_type_from_config or "(none)" })
      types = refresh_types(o, types, "SIGHUP")
    end
    local left = deadline - core.monotime()
    if left <= 0 then return types, true end
    core.sleep(math.min(left, 0.25))   -- slices: take_hup is polled
  end
  return types, false
end

local function run(c, o, types, states)
  local rl = require "bosk.readline"
  rl.trap_signals()
  rl.trap_hup()
  local failed_total = 0
  while true do
    local started = core.monotime()
    local _, failed = pass(c, o, rl, types, states)
    failed_total = failed_total + failed
    if o.once then return failed_total > 0 and 1 or 0 end
    local going
    types, going = rest_until(started + o.every, o, rl, types)
    if not going then
      log("info", "received " .. rl.caught() .. ", stopping")
      return 0
    end
    if o.resource_type_from_config then types = refresh_types(o, types, "pass") end
  end
end

-- main(args) -> exit status; args[1..] are the words after `reaper`.
function M.main(args)
  local o, rest = flags.parse_main(args, spec, usage_line, usage_error)
  if not o then return rest end
  local bad = check_opts(o, rest)
  if bad then return usage_error(bad) end
  threshold = LEVELS[o.log_level]
  jlog.setup{ format = o.log_format }
  local types, terr = current_types(o)
  if not types then return usage_error("--resource-type-from-config: " .. terr) end
  if #types == 0 then log("warning", "no resource types to reap yet", { config = o.resource_type_from_config }) end
  local states = add_words({}, {}, { "busy,cleaning,leased" })
  add_words(states, { busy = true, cleaning = true, leased = true }, o.extra_source_states)

  local boskos = require "boskos"
  local c, cerr = boskos.client{ owner = o.owner, url = o.boskos_url, username = o.username,
                                 password_file = o.password_file }
  if not c then
    io.stderr:write("bosk reaper: cannot create the Boskos client: ", tostring(cerr), "\n")
    return 1
  end
  log("info", "reaper starting", { url = o.boskos_url, types = table.concat(types, ","),
                                   states = table.concat(states, ","), target_state = o.target_state,
                                   expire = require("bosk.duration").format(o.expire),
                                   every = require("bosk.duration").format(o.every), once = o.once })
  return run(c, o, types, states)
end

return M
