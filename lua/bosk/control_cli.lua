-- `bosk control --socket PATH COMMAND [ARG]`: talks to a janitor started
-- with --control PATH (bosk.janitor_control) and prints its answer as a
-- table, or as JSON with --json. Exit status: 0 done, 1 the janitor refused
-- or could not be reached, 2 usage.
local flags = require "bosk.flags"
local control = require "bosk.janitor_control"

local M = {}

local spec = {
  { "socket", env = "BOSK_CONTROL_SOCKET", help = "the janitor's --control PATH (or $BOSK_CONTROL_SOCKET)" },
  { "json", kind = "bool", default = false, help = "print the janitor's answer as JSON" },
  { "timeout", kind = "duration", default = 10, help = "how long to wait for the janitor's answer" },
}

local usage_line = "usage: bosk control --socket PATH list | kill NAME | pause TYPE | resume TYPE | breakers | drain\n"

local takes_arg = { list = false, breakers = false, drain = false, kill = true, pause = true, resume = true }

local function render(rows)
  return require("bosk.ctl").render_left(rows)
end

-- "2026-12-03T19:11:28Z (4s ago)", or just "4s ago" when short.
local function age(now, rfc, short)
  if not rfc then return "" end
  local t = require("bosk.janitor_safety").parse_time(rfc)
  if not t then return rfc end
  local ago = string.format("%ds ago", math.floor(now - t + 0.5))
  return short and ago or string.format("%sZ (%s)", rfc:sub(1, 19), ago)
end

local function int_text(n)
  return n and tostring(math.tointeger(n) or n) or "-"
end

local printers = {}

function printers.list(result)
  local now = require("bosk.core").realtime()
  local rows = { { "NAME", "TYPE", "KIND", "PID", "STARTED", "LAST PROGRESS" } }
  for _, c in ipairs(result) do
    local progress = c.last_progress and string.format("%s (%s)", c.last_progress, age(now, c.last_progress_at, true)) or "-"
    rows[#rows + 1] = { c.name, c.type, c.kind or "cleaning", int_text(c.pid), age(now, c.started), progress }
  end
  io.stdout:write(render(rows))
end

function printers.breakers(result)
  local types = {}
  for t in pairs(result) do types[#types + 1] = t end
  table.sort(types)
  local rows = { { "TYPE", "BREAKER", "SINCE", "FAILURES", "PAUSED" } }
  for _, t in ipairs(types) do
    local b = result[t]
    rows[#rows + 1] = { t, b.state, b.since or "-", int_text(b.failures or 0), b.paused and "yes" or "no" }
  end
  io.stdout:write(render(rows))
end

function printers.kill(r)
  io.stdout:write(string.format("killed the cleaning of %s (%s, pid %s); it is released to %s\n",
                                r.killed, r.type, int_text(r.pid), tostring(r.dest)))
end

function printers.pause(r) io.stdout:write("paused ", r.paused, ": no new leases of it\n") end
function printers.resume(r) io.stdout:write("resumed ", r.resumed, "\n") end

function printers.drain(r)
  io.stdout:write(string.format("draining: %d cleaning(s) in flight; the janitor exits 0 once they are released\n",
                                r.in_flight))
end

local function usage_error(msg)
  io.stderr:write("bosk control: ", msg, "\n", usage_line)
  return 2
end

function M.main(args)
  local opts, rest = flags.parse_main(args, spec, usage_line, usage_error)
  if not opts then return rest end
  if not opts.socket or opts.socket == "" then return usage_error("--socket PATH is required") end
  local command, arg = rest[1], rest[2]
  if command == nil then return usage_error("no command given") end
  if takes_arg[command] == nil then
    return usage_error(string.format("unknown command %q (want %s)", command, control.COMMANDS))
  end
  if takes_arg[command] and (arg == nil or #rest > 2) then
    return usage_error(command .. " takes one argument")
  elseif not takes_arg[command] and arg ~= nil then
    return usage_error(command .. " takes no argument")
  end
  if not (opts.timeout > 0) then return usage_error("invalid value for flag --timeout: must be positive") end
  local j, err = control.open(opts.socket, { timeout = opts.timeout })
  local result
  if j then result, err = j[command](j, arg) end
  if result == nil then
    io.stderr:write("bosk control: ", tostring(err), "\n")
    return 1
  end
  if opts.json then
    local empty = type(result) == "table" and next(result) == nil
    io.stdout:write(empty and (command == "list" and "[]" or "{}") or require("cjson").encode(result), "\n")
  else
    printers[command](result)
  end
  return 0
end

return M
