-- `bosk server`: flags in Lua, the daemon in C (module bosk.server).
-- Upstream's spellings are accepted where they make sense here: --port N
-- listens on all interfaces like upstream boskos; the Kubernetes-only
-- flags are accepted and ignored so existing command lines keep working.
local flags = require "bosk.flags"
local M = {}

local spec = {
  { "config", default = "config.yaml", help = "boskos resource config file (YAML)" },
  { "storage", default = "memory", help = "memory or sqlite:PATH" },
  { "listen", help = "HOST:PORT to serve on", default = "127.0.0.1:8080" },
  { "port", kind = "int", help = "serve on 0.0.0.0:PORT (upstream's flag; overrides --listen)" },
  { "metrics-port", kind = "int", help = "also serve /metrics alone on this port (same host as --listen)" },
  { "request-ttl", kind = "duration", help = "how long a request id keeps its place (default 30s)" },
  { "sync-period", kind = "duration", help = "re-sync and request-id GC period (default 1m)" },
  { "log-level", default = "info", help = "panic, fatal, error, warn, info, debug or trace" },
  { "log-format", default = "text", help = "text or json (one object per line: level, msg, time)" },
  { "namespace", help = "accepted for compatibility; ignored" },
  { "in_memory", kind = "bool", help = "accepted for compatibility; ignored" },
  { "kubeconfig", help = "accepted for compatibility; ignored" },
  { "dynamic-resource-update-period", help = "accepted for compatibility; ignored" },
}

-- logrus' level names; "warn" is also spelled "warning".
local log_levels = { panic = true, fatal = true, error = true, warn = true, warning = true,
                     info = true, debug = true, trace = true }

local function check_log_flags(opts)
  if not log_levels[opts.log_level] then
    return string.format("invalid value %q for flag --log-level: want panic, fatal, error, warn, info, debug or trace",
                         opts.log_level)
  end
  if opts.log_format ~= "text" and opts.log_format ~= "json" then
    return string.format("invalid value %q for flag --log-format: want text or json", opts.log_format)
  end
end

-- A start-up failure, in the log's format (a fatal line, as logrus' Fatal).
local function report_failure(opts, err)
  if opts.log_format == "json" then
    local line = require("cjson").new().encode{ level = "fatal", msg = tostring(err),
                                                time = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    io.stderr:write(line, "\n")
  else
    io.stderr:write("bosk server: ", err, "\n")
  end
end

local function usage_error(args, msg)
  io.stderr:write(args[0], ": ", msg, "\nusage: bosk server --config FILE [--storage memory|sqlite:PATH]",
                  " [--listen HOST:PORT] [--request-ttl DURATION]\n", flags.usage(spec))
  return 2
end

-- main(args) -> exit status; args[1..] are the words after `server`.
function M.main(args)
  local opts, rest = flags.parse_main(args, spec, "usage: bosk server [FLAGS]\n",
                                     function(msg) return usage_error(args, msg) end)
  if opts == nil then return rest end
  if #rest > 0 then return usage_error(args, "unexpected argument: " .. rest[1]) end
  if opts.port then opts.listen = "0.0.0.0:" .. opts.port end
  opts.request_ttl = opts.request_ttl or 30
  opts.sync_period = opts.sync_period or 60
  if opts.request_ttl <= 0 then return usage_error(args, "--request-ttl must be positive") end
  if opts.sync_period <= 0 then return usage_error(args, "--sync-period must be positive") end
  local bad = check_log_flags(opts)
  if bad then return usage_error(args, bad) end
  local server = require "bosk.server"
  local ok, err, code = server.run{
    config = opts.config, storage = opts.storage, listen = opts.listen,
    request_ttl = opts.request_ttl, sync_period = opts.sync_period,
    log_level = opts.log_level, log_format = opts.log_format,
    metrics_listen = opts.metrics_port and (opts.listen:match("^(.*):[^:]*$") .. ":" .. opts.metrics_port),
  }
  if ok == nil then
    report_failure(opts, err)
    return code or 1
  end
  return ok
end

return M
