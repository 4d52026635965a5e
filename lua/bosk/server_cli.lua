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
  { "log-level", help = "accepted for compatibility; ignored" },
  { "namespace", help = "accepted for compatibility; ignored" },
  { "in_memory", kind = "bool", help = "accepted for compatibility; ignored" },
  { "kubeconfig", help = "accepted for compatibility; ignored" },
  { "dynamic-resource-update-period", help = "accepted for compatibility; ignored" },
}

local function usage_error(args, msg)
  io.stderr:write(args[0], ": ", msg, "\nusage: bosk server --config FILE [--storage memory|sqlite:PATH]",
                  " [--listen HOST:PORT] [--request-ttl DURATION]\n", flags.usage(spec))
  return 2
end

-- main(args) -> exit status; args[1..] are the words after `server`.
function M.main(args)
  local opts, rest = flags.parse(args, spec)
  if opts == nil then
    if rest == "help" then
      io.stdout:write("usage: bosk server [FLAGS]\n", flags.usage(spec))
      return 0
    end
    return usage_error(args, rest)
  end
  if #rest > 0 then return usage_error(args, "unexpected argument: " .. rest[1]) end
  if opts.port then opts.listen = "0.0.0.0:" .. opts.port end
  opts.request_ttl = opts.request_ttl or 30
  opts.sync_period = opts.sync_period or 60
  if opts.request_ttl <= 0 then return usage_error(args, "--request-ttl must be positive") end
  if opts.sync_period <= 0 then return usage_error(args, "--sync-period must be positive") end
  local server = require "bosk.server"
  local ok, err, code = server.run{
    config = opts.config, storage = opts.storage, listen = opts.listen,
    request_ttl = opts.request_ttl, sync_period = opts.sync_period,
    metrics_listen = opts.metrics_port and (opts.listen:match("^(.*):[^:]*$") .. ":" .. opts.metrics_port),
  }
  if ok == nil then
    io.stderr:write("bosk server: ", err, "\n")
    return code or 1
  end
  return ok
end

return M
