-- `bosk janitor [flags] POLICY.lua...`: flags, policy loading, then the
-- supervisor (lua/bosk/janitor.lua). Exit status: 0 success, 1 runtime
-- failure (--once: some cleaning failed), 2 usage or policy error.
local flags = require "bosk.flags"
local core = require "bosk.core"
local jlog = require "bosk.janitor_log"
local policy = require "bosk.janitor_policy"

local M = {}

local spec = flags.with(flags.common("Janitor"), {
  { "once", kind = "bool", default = false, help = "clean what can be leased now, then exit (1 if any cleaning failed)" },
  { "pool-size", kind = "int", default = 20, help = "cleanings running at once, over all policies" },
  { "update-frequency", kind = "duration", default = 300, help = "heartbeat period for held leases" },
  { "state-file", help = "SQLite journal of held leases, released at the next start after a crash" },
  { "metrics-listen", help = "HOST:PORT serving Prometheus metrics" },
  { "grace", kind = "duration", default = 20,
    help = "on SIGTERM/SIGINT, how long running cleanings may finish; releasing what is held then takes at most 4s more, so the default shutdown ends within Kubernetes' 30s terminationGracePeriodSeconds" },
  { "poll-interval", kind = "duration", default = 60, help = "how long a type with nothing to clean rests" },
  { "log-format", default = "text", help = "text or json" },
})

local usage_line = "usage: bosk janitor [flags] POLICY.lua...\n"

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

local function check_opts(opts, files)
  if opts.pool_size < 1 then return "invalid value for flag --pool-size: must be at least 1" end
  if not (opts.update_frequency > 0) then return "invalid value for flag --update-frequency: must be positive" end
  if not (opts.poll_interval > 0) then return "invalid value for flag --poll-interval: must be positive" end
  if opts.grace < 0 then return "invalid value for flag --grace: must not be negative" end
  if opts.log_format ~= "text" and opts.log_format ~= "json" then
    return string.format("invalid value %q for flag --log-format: want text or json", opts.log_format)
  end
  if opts.metrics_listen and not opts.metrics_listen:match("^[^:]+:%d+$") then
    return string.format("invalid value %q for flag --metrics-listen: want HOST:PORT", opts.metrics_listen)
  end
  if (opts.username == nil) ~= (opts.password_file == nil) then
    return "username and passwordFile must be specified together"
  end
  if #files == 0 then return "no policy file given" end
end

local function load_policies(files)
  local reg = policy.registry()
  for _, path in ipairs(files) do
    local ok, err = policy.load(reg, path)
    if not ok then return nil, err end
  end
  if #reg.policies == 0 and #reg.reapers == 0 and #reg.jobs == 0 then
    return nil, "the policy files define no policy, reaper or job"
  end
  return reg
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
      if not ok then jlog.error("metrics disabled", { error = err }) end
      loop.metrics_set(sup.metrics:render())
      sup:every(1, function() loop.metrics_set(sup.metrics:render()) end)
    end
    if opts.once and core.isatty(2) then
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
  end
end

function M.main(args)
  local opts, files = flags.parse(args, spec)
  if not opts then
    if files == "help" then
      io.stdout:write(usage_line, flags.usage(spec))
      return 0
    end
    return usage_error(files)
  end
  local bad = check_opts(opts, files)
  if bad then return usage_error(bad) end
  jlog.setup{ format = opts.log_format }
  local password, perr = read_password(opts.password_file)
  if perr then return usage_error(perr) end

  local reg, err = load_policies(files)
  if not reg then
    io.stderr:write("bosk janitor: ", err, "\n")
    return 2
  end

  local journal
  if opts.state_file then
    local jerr
    journal, jerr = require("bosk.journal").open(opts.state_file)
    if not journal then
      io.stderr:write("bosk janitor: ", jerr, "\n")
      return 1
    end
  end

  local api = require("bosk.janitor_api").new{
    url = opts.boskos_url, owner = opts.owner, username = opts.username, password = password,
    password_file = opts.password_file,
  }
  local sup = require("bosk.janitor").new(reg, {
    api = api, once = opts.once, pool_size = opts.pool_size,
    update_frequency = opts.update_frequency, poll_interval = opts.poll_interval,
    grace = opts.grace, journal = journal, on_start = on_start(opts),
  })
  jlog.info("janitor starting", { url = opts.boskos_url, owner = opts.owner, policies = #reg.policies,
                                  reapers = #reg.reapers, jobs = #reg.jobs, once = opts.once })
  local status = sup:run()
  if sup.progress then io.stderr:write("\r\27[K") end
  if opts.once then
    io.stdout:write("summary (type outcome count):\n")
    for _, line in ipairs(sup:summary()) do io.stdout:write("  ", line, "\n") end
    if sup.errors > 0 then io.stdout:write("  errors talking to the server: ", sup.errors, "\n") end
  end
  if journal then journal:close() end
  return status
end

return M
