-- `bosk janitor [flags] POLICY.lua... [-- EXTRA...]`: flags, policy
-- loading, then the supervisor (lua/bosk/janitor.lua). Upstream's janitor
-- command line (--resource-type, --resource-type-from-config,
-- --janitor-path, extra arguments after --) is accepted unchanged and
-- becomes a policy (janitor_upstream.lua). --plan tries the policies
-- without leasing or changing anything (janitor_plan.lua). Exit status: 0 success, 1
-- runtime failure (--once: some cleaning failed; a listen address that
-- cannot be bound), 2 usage or policy error.
local flags = require "bosk.flags"
local core = require "bosk.core"
local jlog = require "bosk.janitor_log"
local upstream = require "bosk.janitor_upstream"

local M = {}

local spec = flags.with(flags.common("Janitor"), {
  { "once", kind = "bool", default = false, help = "clean what can be leased now, then exit (1 if any cleaning failed)" },
  { "plan", kind = "bool", default = false,
    help = "lease nothing, change nothing: run clean and verify on the resources in each policy's from state, printing the commands that are not readonly instead of running them" },
  { "pool-size", kind = "int", default = 20, help = "cleanings running at once, over all policies" },
  { "update-frequency", kind = "duration", default = 300, help = "heartbeat period for held leases" },
  { "state-file", help = "SQLite journal of held leases, released at the next start after a crash" },
  { "metrics-listen", help = "HOST:PORT serving Prometheus metrics" },
  { "control", help = "PATH of a Unix socket (mode 0600) for live control with `bosk control`" },
  { "grace", kind = "duration", default = 20,
    help = "on SIGTERM/SIGINT, how long running cleanings may finish; releasing what is held then takes at most 4s more, so the default shutdown ends within Kubernetes' 30s terminationGracePeriodSeconds" },
  { "poll-interval", kind = "duration", default = 60, help = "how long a type with nothing to clean rests" },
  { "log-format", default = "text", help = "text or json" },
  { "log-level", default = "info", help = "one of " .. jlog.LEVELS .. " (as upstream's janitor)" },
  { "progress-every", kind = "duration", default = 10,
    help = "when stderr is not a terminal, a one-line progress report this often while there is work (0: never)" },
  { "resource-type", kind = "list",
    help = "upstream janitor: comma-separated types cleaned by running --janitor-path (repeatable)" },
  { "resource-type-from-config", help = "upstream janitor: also clean every type of this boskos config file" },
  { "janitor-path", default = upstream.DEFAULT_PATH,
    help = "upstream janitor: program run as PATH --<last part of the type>=NAME EXTRA... for those types" },
})

local usage_line = "usage: bosk janitor [flags] POLICY.lua... [-- EXTRA ARGS for --janitor-path]\n"

local function usage_error(msg)
  io.stderr:write("bosk janitor: ", msg, "\n", usage_line)
  return 2
end

local function read_password(path)
  if not path then return nil end
  local pw, err = require("bosk.client_core").read_password(path)
  if not pw then return nil, "--password-file: " .. err end
  return pw
end

-- upstream_types(opts) -> the --resource-type values split at commas.
local function upstream_types(opts)
  local out = {}
  for _, v in ipairs(opts.resource_type or {}) do
    for t in (v .. ","):gmatch("([^,]*),") do
      t = t:gsub("^%s+", ""):gsub("%s+$", "")
      if t ~= "" then out[#out + 1] = t end
    end
  end
  return out
end

-- A URL the HTTP client can use: http or https, and a host.
local function check_url(url)
  local scheme, host = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then
    return string.format("invalid value %q for flag --boskos-url: want a URL such as http://%s", url, url)
  end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return string.format("invalid value %q for flag --boskos-url: scheme %s is not http or https", url, scheme)
  end
  if host:gsub("^.*@", "") == "" then
    return string.format("invalid value %q for flag --boskos-url: no host", url)
  end
end

-- HOST:PORT with an IPv4 address (or localhost) and a port 1-65535.
local function check_listen(value)
  local host, port = value:match("^([^:]+):(%d+)$")
  port = tonumber(port)
  if not host or port < 1 or port > 65535 then
    return string.format("invalid value %q for flag --metrics-listen: want HOST:PORT (an IPv4 address, port 1-65535)", value)
  end
  if host ~= "localhost" then
    local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a or tonumber(a) > 255 or tonumber(b) > 255 or tonumber(c) > 255 or tonumber(d) > 255 then
      return string.format("invalid value %q for flag --metrics-listen: %s is not an IPv4 address", value, host)
    end
  end
end

local function check_upstream(opts, files, extra, plan)
  local typed = #upstream_types(opts) > 0 or opts.resource_type_from_config
  if not typed then
    if opts.resource_type then return "invalid value for flag --resource-type: no type given" end
    if #extra > 0 then
      return "arguments after -- go to --janitor-path, which needs --resource-type or --resource-type-from-config"
    end
    if #files == 0 then
      return "no policy file given (nor --resource-type or --resource-type-from-config for --janitor-path)"
    end
    return
  end
  if plan then return end   -- --plan prints the command; it need not be installed here
  local ok, why = require("bosk.exec").runnable(opts.janitor_path)
  if not ok then
    return string.format("invalid value %q for flag --janitor-path: %s", opts.janitor_path, why)
  end
end

local function check_opts(opts, files, extra)
  if opts.pool_size < 1 then return "invalid value for flag --pool-size: must be at least 1" end
  if not (opts.update_frequency > 0) then return "invalid value for flag --update-frequency: must be positive" end
  if not (opts.poll_interval > 0) then return "invalid value for flag --poll-interval: must be positive" end
  if opts.grace < 0 then return "invalid value for flag --grace: must not be negative" end
  if opts.log_format ~= "text" and opts.log_format ~= "json" then
    return string.format("invalid value %q for flag --log-format: want text or json", opts.log_format)
  end
  if not jlog.level_ok(opts.log_level) then
    return string.format("invalid value %q for flag --log-level: want one of %s", opts.log_level, jlog.LEVELS)
  end
  if opts.progress_every < 0 then return "invalid value for flag --progress-every: must not be negative" end
  local bad = check_url(opts.boskos_url) or (opts.metrics_listen and check_listen(opts.metrics_listen))
  if bad then return bad end
  if (opts.username == nil) ~= (opts.password_file == nil) then
    return "username and passwordFile must be specified together"
  end
  return check_upstream(opts, files, extra, opts.plan)
end

-- split_extra(args) -> args before the first "--", args after it (the
-- extra arguments of --janitor-path, as upstream takes them).
local function split_extra(args)
  for i, a in ipairs(args) do
    if a == "--" then return table.move(args, 1, i - 1, 1, {}), table.move(args, i + 1, #args, 1, {}) end
  end
  return args, {}
end

-- The progress numbers: in flight, done, failed, overall and per type.
local function progress_counts(sup)
  local per, done, failed = {}, 0, 0
  for rtype, by in pairs(sup.stats) do
    local d, f = 0, 0
    for outcome, n in pairs(by) do
      if outcome == "success" then d = d + n else f = f + n end
    end
    per[rtype] = { d, f }
    done, failed = done + d, failed + f
  end
  return sup.metrics.in_flight, done, failed, per
end

-- Every `seconds`, while cleanings run or since the counts last changed, a
-- one-line report on stderr (a log line: the chosen format applies).
local function periodic_progress(sup, seconds)
  local last = "0/0/0"
  sup:every(seconds, function()
    local running, done, failed, per = progress_counts(sup)
    local key = string.format("%d/%d/%d", running, done, failed)
    if running == 0 and key == last then return end
    last = key
    local types = {}
    for rtype, c in pairs(per) do types[#types + 1] = string.format("%s:%d/%d", rtype, c[1], c[2]) end
    table.sort(types)
    jlog.info("progress", { in_flight = running, done = done, failed = failed,
                            per_type = #types > 0 and table.concat(types, " ") or nil })
  end)
end

-- The first log line, once every setting has been checked.
local function log_start(opts, reg)
  local all_types = {}
  for _, p in ipairs(reg.policies) do
    for _, t in ipairs(p.types) do all_types[#all_types + 1] = t end
  end
  jlog.info("janitor starting", { url = opts.boskos_url, owner = opts.owner, policies = #reg.policies,
                                  reapers = #reg.reapers, jobs = #reg.jobs, once = opts.once,
                                  types = table.concat(all_types, ",") })
end

-- Serves metrics (rendered every second on the loop) and, with --once on a
-- terminal, keeps a progress line on stderr.
local function on_start(opts)
  return function(sup)
    local loop = require "bosk.loop"
    if opts.metrics_listen then
      local host, port = opts.metrics_listen:match("^(.*):(%d+)$")
      if host == "localhost" then host = "127.0.0.1" end
      local ok, err = loop.metrics_listen(host, tonumber(port))
      if not ok then return false, err end
      loop.metrics_set(sup.metrics:render())
      sup:every(1, function() loop.metrics_set(sup.metrics:render()) end)
    end
    if opts.control then
      local ok, err = require("bosk.janitor_control").serve(sup, opts.control)
      if not ok then return false, err end
    end
    log_start(opts, sup.reg)
    if not core.isatty(2) then
      if opts.progress_every > 0 then periodic_progress(sup, opts.progress_every) end
    elseif opts.once then
      sup.progress = true
      jlog.setup{ progress = true }
      local total = 0
      for _, lane in ipairs(sup.lanes) do
        sup:spawn("progress", function()
          local m = sup.api:metric(lane.type)
          local waiting = m and type(m.current) == "table" and tonumber(m.current[lane.policy.from]) or 0
          total = total + waiting + (lane.leased or 0)
        end)
      end
      sup:every(0.2, function()
        local done, failed = 0, 0
        for _, by in pairs(sup.stats) do
          for outcome, n in pairs(by) do
            if outcome == "success" then done = done + n else failed = failed + n end
          end
        end
        local running = sup.metrics.in_flight
        io.stderr:write(string.format("\r\27[Kdone %d  failed %d  running %d  remaining %d",
                                      done, failed, running, math.max(0, total - done - failed - running)))
      end)
    end
    return true
  end
end

local function print_summary(sup)
  io.stdout:write("summary (type outcome count):\n")
  for _, line in ipairs(sup:summary()) do io.stdout:write("  ", line, "\n") end
  local failed = sup:failed_lines()
  if #failed > 0 then
    io.stdout:write("failed:\n")
    for _, line in ipairs(failed) do io.stdout:write("  ", line, "\n") end
  end
  for _, rtype in ipairs(sup:unknown_types()) do
    io.stdout:write("  unknown resource type (the server does not know it): ", rtype, "\n")
  end
  if sup.errors > 0 then io.stdout:write("  errors talking to the server: ", sup.errors, "\n") end
end

function M.main(args)
  local before, extra = split_extra(args)
  local opts, files = flags.parse_main(before, spec, usage_line, usage_error)
  if not opts then return files end
  local bad = check_opts(opts, files, extra)
  if bad then return usage_error(bad) end
  jlog.setup{ format = opts.log_format, level = opts.log_level }
  local password, perr = read_password(opts.password_file)
  if perr then return usage_error(perr) end

  local types = upstream_types(opts)
  local sources = require("bosk.janitor_sources").new{
    files = files,
    upstream = (#types > 0 or opts.resource_type_from_config) and {
      types = types, config = opts.resource_type_from_config, path = opts.janitor_path, extra = extra,
    } or nil,
  }
  local reg, err = sources:load()
  if not reg then
    io.stderr:write("bosk janitor: ", err, "\n")
    return 2
  end

  local api = require("bosk.janitor_api").new{
    url = opts.boskos_url, owner = opts.owner, username = opts.username, password = password,
    password_file = opts.password_file,
  }
  if opts.plan then return require("bosk.janitor_plan").run(reg, { api = api }) end

  local journal
  if opts.state_file then
    local jerr
    journal, jerr = require("bosk.journal").open(opts.state_file)
    if not journal then
      io.stderr:write("bosk janitor: ", jerr, "\n")
      return 1
    end
  end

  local sup = require("bosk.janitor").new(reg, {
    api = api, once = opts.once, pool_size = opts.pool_size,
    update_frequency = opts.update_frequency, poll_interval = opts.poll_interval,
    grace = opts.grace, journal = journal, on_start = on_start(opts),
    reload = function() return sources:reload() end,
  })
  local status = sup:run()
  if sup.progress then io.stderr:write("\r\27[K") end
  if opts.once and sup.started then print_summary(sup) end
  if journal then journal:close() end
  return status
end

return M
