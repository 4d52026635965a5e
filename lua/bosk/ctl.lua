-- The boskosctl-style one-liners (docs/protocol.md §5.4) and `bosk status`:
--   bosk acquire --type T --state S --target-state D [--timeout DURATION]
--   bosk release --name N --target-state D
--   bosk heartbeat --resource JSON [--period 30s] [--timeout 5h] [--retries 10]
--   bosk metric --type T            (also spelled `metrics`)
--   bosk reset --type T --state S --expire DURATION --target-state D
--   bosk status [--type T ...] [--json]
--   bosk list [--type T] [--state S] [--owner O] [--json]
--   bosk history NAME [--limit K] [--json]
--   bosk hold --name N --for DURATION [--reason TEXT] [--state S]
-- Results go to stdout as JSON (resources byte for byte as boskosctl
-- prints them), errors, warnings and progress to stderr with boskosctl's
-- texts. Exit status: 0 success, 1 runtime failure, 2 usage error. Unlike
-- boskosctl, a client that cannot be built (an unreadable password file)
-- exits 1, so `set -e` scripts stop there.
local boskos = require "boskos"
local core = require "bosk.core"
local flags = require "bosk.flags"
local wire = require "bosk.wire"
local duration = require "bosk.duration"
local M = {}

local HOLD_UNTIL, HOLD_REASON = "bosk.hold/until", "bosk.hold/reason"
local KNOWN_STATES = { "free", "busy", "dirty", "cleaning", "leased", "toBeDeleted", "tombstone" }

local function say(...) io.stdout:write(...) io.stdout:flush() end
local function complain(...) io.stderr:write(...) io.stderr:flush() end

-- Prints items as one JSON list, each item written by encode(item).
local function say_json_list(items, encode)
  local parts = {}
  for i, item in ipairs(items) do parts[i] = encode(item) end
  say("[", table.concat(parts, ","), "]\n")
end

local function metric_json(m)
  return '{"type":' .. wire.encode_string(m.type or "") .. ',"current":' .. wire.encode_value(m.current or {})
    .. ',"owner":' .. wire.encode_value(m.owners or {}) .. "}"
end

-- ---- acquire -----------------------------------------------------------

-- A context that also ends when SIGINT/SIGTERM arrived: the wait loop
-- asks ctx:remaining() after every failed try, as Go's select would see
-- the cancelled context.
local function interruptible_context(seconds)
  local rl = require "bosk.readline"
  rl.trap_signals()
  local ctx = boskos.context { timeout = seconds }
  local remaining = getmetatable(ctx).__index.remaining
  ctx.remaining = function(self)
    if rl.caught() then self:cancel() end
    return remaining(self)
  end
  return ctx
end

local function cmd_acquire(c, o)
  local res, err
  if o.timeout == 0 then
    res, err = c:acquire(o.type, o.state, o.target_state)
  else
    -- A negative timeout is an expired context, as in Go: one try.
    local ctx = interruptible_context(math.max(o.timeout, 0))
    res, err = c:acquire_wait_with_priority(ctx, o.type, o.state, o.target_state, tostring(core.random_id()))
  end
  if err == boskos.ErrTypeNotFound then
    -- The server said so at once; say it as it did, not "not found".
    complain("failed to acquire a resource: ", wire.type_not_found_message(o.type), "\n")
    return 1
  elseif res == nil then
    complain("failed to acquire a resource: ", tostring(err), "\n")
    return 1
  end
  say(wire.encode_resource(res), "\n")
  return 0
end

-- ---- release, metric, reset ------------------------------------------

-- A hold (bosk.hold/*) must not outlive the lease it protects: the
-- caller's own resource loses it before it is released. Found through the
-- listing; a server without one (upstream) does not honour holds anyway.
-- Any other failure of the listing is the release's too (the server is
-- down): reported at once rather than waited for twice.
local function clear_hold(c, name)
  local list, err = c:list { name = name, owner = c.owner }
  if list == nil and not tostring(err):find("does not support listing", 1, true) then return nil, err end
  local r = list and list[1]
  local ud = r and r.userdata and r.userdata:to_map() or {}
  if ud[HOLD_UNTIL] == nil and ud[HOLD_REASON] == nil then return true end
  return c:unhold(name, r.state)
end

local function cmd_release(c, o)
  local ok, err = clear_hold(c, o.name)
  if ok then ok, err = c:release(o.name, o.target_state) end
  if not ok then
    complain("failed to release resource ", wire.go_quote(o.name), ": ", tostring(err), "\n")
    return 1
  end
  say("released resource ", wire.go_quote(o.name), "\n")
  return 0
end

local function cmd_metric(c, o)
  local m, err = c:metric(o.type)
  if m == nil then
    complain("failed to get metrics for resource ", wire.go_quote(o.type), ": ", tostring(err), "\n")
    return 1
  end
  say(metric_json(m), "\n")
  return 0
end

local function cmd_reset(c, o)
  local map, err = c:reset(o.type, o.state, o.expire, o.target_state)
  if map == nil then
    complain("failed to reset resources of type ", wire.go_quote(o.type), ": ", tostring(err), "\n")
    return 1
  end
  say(wire.encode_value(map), "\n")
  return 0
end

-- ---- heartbeat ---------------------------------------------------------

-- The resource named by --resource, and the user data to send with each
-- heartbeat (nil when the JSON had none or null, as boskosctl does).
local function parse_resource(text)
  local v, err = wire.decode_json(text)
  if v == nil then return nil, err end
  local res
  res, err = wire.decode_resource(v)
  if res == nil then return nil, err end
  local ud = res.userdata
  if type(v) ~= "table" or v.userdata == nil or v.userdata == wire.null then ud = nil end
  return res, ud
end

local function cmd_heartbeat(c, o)
  local res, ud = parse_resource(o.resource)
  if res == nil then
    complain("failed to parse resource: ", tostring(ud), "\n")
    return 1
  end
  local rl = require "bosk.readline"
  rl.trap_signals()
  local name = wire.go_quote(res.name)
  local start = core.monotime()
  local deadline, next_beat, failures = start + o.timeout, start + o.period, 0
  while true do
    local now = core.monotime()
    local wake = math.min(next_beat, deadline)
    if wake > now and not rl.caught() then core.sleep(wake - now) end
    now = core.monotime()
    if rl.caught() then
      say("received interrupt, stopping heartbeats for resource ", name, "\n")
      return 0
    elseif now >= deadline then
      say("reached timeout, stopping heartbeats for resource ", name, "\n")
      return 0
    elseif now >= next_beat then
      local ok, err = c:update(res.name, res.state, ud)
      if ok then
        failures = 0
        say("heartbeat sent for resource ", name, "\n")
      else
        complain("failed to send heartbeat for resource ", name, ": ", tostring(err), "\n")
        failures = failures + 1
        if failures > o.retries then return 1 end
      end
      next_beat = math.max(next_beat + o.period, core.monotime())
    end
  end
end

-- ---- status ------------------------------------------------------------

-- Counts per type from a list of resources: {type=, current=, owners=}.
local function metrics_from_list(list, only)
  local by_type = {}
  for t in pairs(only or {}) do by_type[t] = { type = t, current = {}, owners = {} } end
  for _, r in ipairs(list) do
    if only == nil or only[r.type] then
      local m = by_type[r.type]
      if m == nil then
        m = { type = r.type, current = {}, owners = {} }
        by_type[r.type] = m
      end
      m.current[r.state] = (m.current[r.state] or 0) + 1
      m.owners[r.owner] = (m.owners[r.owner] or 0) + 1
    end
  end
  local out = {}
  for _, m in pairs(by_type) do out[#out + 1] = m end
  table.sort(out, function(a, b) return a.type < b.type end)
  return out
end

-- Gathers the metrics: from GET /resources, else /metric per --type.
local function gather(c, types)
  local only
  if #types > 0 then
    only = {}
    for _, t in ipairs(types) do only[t] = true end
  end
  local list, err = c:list {}
  if list then return metrics_from_list(list, only) end
  if not tostring(err):find("does not support listing", 1, true) then return nil, tostring(err) end
  if only == nil then
    return nil, tostring(err) .. "; pass --type TYPE (repeatable) to read the counts from /metric"
  end
  local out = {}
  for _, t in ipairs(types) do
    local m, merr = c:metric(t)
    if m == nil then return nil, "type " .. wire.go_quote(t) .. ": " .. tostring(merr) end
    m.type = t
    out[#out + 1] = m
  end
  return out
end

local function state_columns(metrics)
  local seen, cols = {}, {}
  for _, m in ipairs(metrics) do for s in pairs(m.current) do seen[s] = true end end
  for _, s in ipairs(KNOWN_STATES) do
    if seen[s] then cols[#cols + 1] = s seen[s] = nil end
  end
  local others = {}
  for s in pairs(seen) do others[#others + 1] = s end
  table.sort(others)
  for _, s in ipairs(others) do cols[#cols + 1] = s end
  return cols
end

local function owners_text(owners)
  local names = {}
  for owner in pairs(owners) do if owner ~= "" then names[#names + 1] = owner end end
  table.sort(names)
  for i, owner in ipairs(names) do names[i] = owner .. "=" .. owners[owner] end
  return #names > 0 and table.concat(names, " ") or "-"
end

-- Renders rows (lists of cells) with aligned columns; numbers right-aligned.
local function render(rows)
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  local lines = {}
  for r, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local numeric = r > 1 and cell:match("^%d+$") or (r == 1 and i > 1 and i < #row)
      if i == #row then cells[i] = cell
      elseif numeric then cells[i] = string.rep(" ", widths[i] - #cell) .. cell
      else cells[i] = cell .. string.rep(" ", widths[i] - #cell) end
    end
    lines[r] = table.concat(cells, "  ")
  end
  return table.concat(lines, "\n") .. "\n"
end

local function status_table(metrics)
  local cols = state_columns(metrics)
  local header = { "TYPE", "TOTAL" }
  for _, s in ipairs(cols) do header[#header + 1] = s:upper() end
  header[#header + 1] = "OWNERS"
  local rows = { header }
  for _, m in ipairs(metrics) do
    local total = 0
    for _, n in pairs(m.current) do total = total + n end
    local row = { m.type, tostring(total) }
    for _, s in ipairs(cols) do row[#row + 1] = tostring(m.current[s] or 0) end
    row[#row + 1] = owners_text(m.owners)
    rows[#rows + 1] = row
  end
  return render(rows)
end

local function cmd_status(c, o)
  local metrics, err = gather(c, o.type or {})
  if metrics == nil then
    complain("failed to get the status: ", err, "\n")
    return 1
  end
  if o.json then
    say_json_list(metrics, metric_json)
  elseif #metrics == 0 then
    say("no resources\n")
  else
    say(status_table(metrics))
  end
  return 0
end

-- ---- list ----------------------------------------------------------------

-- Rows of cells, left-aligned columns two spaces apart.
local function render_left(rows)
  local widths, lines = {}, {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  for r, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i == #row and cell or cell .. string.rep(" ", widths[i] - #cell)
    end
    lines[r] = table.concat(cells, "  ")
  end
  return table.concat(lines, "\n") .. "\n"
end

M.render_left = render_left

local function userdata_keys(r)
  local keys = {}
  for k in pairs(r.userdata and r.userdata:to_map() or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return #keys > 0 and table.concat(keys, ",") or "-"
end

-- The hold column: its end, "(ended)" once past; "-" without one.
local function hold_text(r)
  local ud = r.userdata and r.userdata:to_map() or {}
  local until_text = ud[HOLD_UNTIL]
  if until_text == nil or until_text == "" then return "-" end
  -- bosk writes "YYYY-MM-DDTHH:MM:SSZ", which sorts as the time does
  if until_text:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$") and
     until_text <= os.date("!%Y-%m-%dT%H:%M:%SZ") then
    return until_text .. " (ended)"
  end
  return until_text
end

local function cmd_list(c, o)
  local list, err = c:list { type = o.type, state = o.state, owner = o.list_owner }
  if list == nil then
    complain("failed to list resources: ", tostring(err), "\n")
    return 1
  end
  table.sort(list, function(a, b)
    if a.type ~= b.type then return a.type < b.type end
    return a.name < b.name
  end)
  if o.json then
    say_json_list(list, wire.encode_resource)
  elseif #list == 0 then
    say("no resources\n")
  else
    -- the HELD UNTIL column only when some resource has a hold
    local holds = false
    for _, r in ipairs(list) do holds = holds or hold_text(r) ~= "-" end
    local header = { "NAME", "TYPE", "STATE", "OWNER", "LAST UPDATE", "USER DATA" }
    if holds then table.insert(header, 6, "HELD UNTIL") end
    local rows = { header }
    for _, r in ipairs(list) do
      local row = { r.name, r.type, r.state, r.owner ~= "" and r.owner or "-", r.lastupdate or "-",
                    userdata_keys(r) }
      if holds then table.insert(row, 6, hold_text(r)) end
      rows[#rows + 1] = row
    end
    say(render_left(rows))
  end
  return 0
end

-- ---- history, hold ----------------------------------------------------

local function event_json(e)
  local parts = {}
  for i, k in ipairs(e.userdata_changed) do parts[i] = wire.encode_string(k) end
  return string.format('{"time":%s,"endpoint":%s,"from":%s,"to":%s,"owner_from":%s,"owner_to":%s,'
                       .. '"userdata_changed":[%s],"userdata_changed_count":%d}', wire.encode_string(e.time),
                       wire.encode_string(e.endpoint), wire.encode_string(e.from),
                       wire.encode_string(e.to), wire.encode_string(e.owner_from),
                       wire.encode_string(e.owner_to), table.concat(parts, ","), e.userdata_changed_count)
end

local function from_to(a, b)
  return (a ~= "" and a or "-") .. " -> " .. (b ~= "" and b or "-")
end

local function cmd_history(c, o)
  local list, err = c:history(o.name, o.limit)
  if list == nil then
    complain("failed to get the history of ", wire.go_quote(o.name), ": ", tostring(err), "\n")
    return 1
  end
  if o.json then
    say_json_list(list, event_json)
  elseif #list == 0 then
    say("no recorded changes\n")
  else
    local rows = { { "TIME", "ENDPOINT", "STATE", "OWNER", "USER DATA CHANGED" } }
    for _, e in ipairs(list) do
      local keys = #e.userdata_changed > 0 and table.concat(e.userdata_changed, ",") or "-"
      local more = e.userdata_changed_count - #e.userdata_changed
      if more > 0 then keys = keys .. ",... (" .. more .. " more)" end
      rows[#rows + 1] = { e.time, e.endpoint, from_to(e.from, e.to), from_to(e.owner_from, e.owner_to), keys }
    end
    say(render_left(rows))
  end
  return 0
end

local function cmd_hold(c, o)
  local until_text, err = c:hold(o.name, o["for"], o.reason, o.state)
  if until_text == nil then
    complain("failed to hold resource ", wire.go_quote(o.name), ": ", tostring(err), "\n")
    return 1
  end
  if o["for"] <= 0 then
    say("released the hold on resource ", wire.go_quote(o.name), "\n")
  else
    say("holding resource ", wire.go_quote(o.name), " until ", until_text, "\n")
  end
  return 0
end

-- ---- flags and dispatch ------------------------------------------------

local commands = {
  acquire = {
    synopsis = "--type T --state S --target-state D [--timeout DURATION]",
    run = cmd_acquire, required = { "type", "state", "target-state" },
    flags = {
      { "type", help = "type of resource to acquire" },
      { "state", help = "state to acquire the resource in" },
      { "target-state", help = "move the resource to this state after acquiring" },
      { "timeout", kind = "duration", default = 0, help = "if set, wait this long (in a FIFO queue) for a resource; it also bounds the retries" },
    },
  },
  release = {
    synopsis = "--name N --target-state D",
    run = cmd_release, required = { "name", "target-state" },
    flags = {
      { "name", help = "name of the resource to release" },
      { "target-state", help = "move the resource to this state after releasing" },
      { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
    },
  },
  metric = {
    synopsis = "--type T",
    run = cmd_metric, required = { "type" },
    flags = {
      { "type", help = "type of resource to count" },
      { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
    },
  },
  reset = {
    synopsis = "--type T --state S --expire DURATION --target-state D",
    run = cmd_reset, required = { "type", "state", "expire", "target-state" },
    flags = {
      { "type", help = "type of the resources to reset" },
      { "state", help = "state of the resources to reset" },
      { "expire", kind = "duration", help = "reset leases not updated for this long" },
      { "target-state", help = "move reset resources to this state" },
      { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
    },
  },
  heartbeat = {
    synopsis = "--resource JSON [--period DURATION] [--timeout DURATION] [--retries N]",
    run = cmd_heartbeat, required = { "resource" },
    flags = {
      { "resource", help = "JSON of the leased resource (as acquire prints it)" },
      { "period", kind = "duration", help = "time between heartbeats (default 30s)" },
      { "timeout", kind = "duration", help = "how long to send heartbeats for (default 5h)" },
      { "retries", kind = "int", default = 10, help = "failed heartbeats in a row to tolerate" },
    },
  },
  status = {
    synopsis = "[--type T ...] [--json]",
    run = cmd_status, required = {},
    flags = {
      { "type", kind = "list", help = "a type to show (repeatable; needed when the server cannot list)" },
      { "json", kind = "bool", default = false, help = "print a JSON array of metrics instead of a table" },
      { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
    },
  },
  list = {
    synopsis = "[--type T] [--state S] [--owner O] [--json]",
    run = cmd_list, required = {}, owner_filter = true,
    flags = {
      { "type", help = "only resources of this type" },
      { "state", help = "only resources in this state" },
      { "owner", help = "only resources leased by this owner" },
      { "json", kind = "bool", default = false, help = "print the resources as a JSON array instead of a table" },
      { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
    },
  },
}
commands.history = {
  synopsis = "NAME [--limit K] [--json]",
  run = cmd_history, required = { "name" }, positional = "name",
  flags = {
    { "name", help = "the resource (also the first argument)" },
    { "limit", kind = "int", help = "only the K newest changes" },
    { "json", kind = "bool", default = false, help = "print the changes as a JSON array instead of a table" },
    { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
  },
}
commands.hold = {
  synopsis = "--name N --for DURATION [--reason TEXT] [--state S]",
  run = cmd_hold, required = { "name", "for" },
  flags = {
    { "name", help = "the resource to hold (one the owner has leased)" },
    { "for", kind = "duration", help = "how long bosk server's reaper (/reset) leaves it alone; 0 ends the hold" },
    { "reason", default = "", help = "why, for whoever finds it (bosk.hold/reason)" },
    { "state", help = "its current state (default: looked up with the listing endpoint)" },
    { "timeout", kind = "duration", default = 0, help = "give up after this long, retries included (0: the client's own retries)" },
  },
}
commands.metrics = commands.metric

local function usage_text(name, cmd, spec)
  return string.format("usage: bosk %s %s [--boskos-url URL] [--owner NAME]\n\nflags:\n%s",
                       name, cmd.synopsis, flags.usage(spec))
end

-- One line naming the problem, one with the synopsis (--help has the rest).
local function usage_error(name, cmd, msg)
  complain("bosk ", name, ": ", msg, "\nusage: bosk ", name, " ", cmd.synopsis,
           " (bosk ", name, " --help lists every flag)\n")
  return 2
end

-- Checks what the flags parser cannot: required flags, sane values.
local function check_values(name, cmd, o)
  local missing = {}
  for _, f in ipairs(cmd.required) do
    local v = o[(f:gsub("-", "_"))]
    if v == nil or v == "" then missing[#missing + 1] = '"' .. f .. '"' end
  end
  table.sort(missing)
  if #missing > 0 then return "required flag(s) " .. table.concat(missing, ", ") .. " not set" end
  if name == "history" and o.limit ~= nil and o.limit < 1 then
    return "invalid value for --limit: must be at least 1"
  end
  if name == "heartbeat" then
    o.period, o.timeout = o.period or 30, o.timeout or 5 * 3600
    if o.period <= 0 then return "invalid value for --period: must be positive" end
    if o.retries < 0 then return "invalid value for --retries: must not be negative" end
  end
  return nil
end

local function default_owner()
  local user = os.getenv("USER")
  return (user and user ~= "") and user or "bosk"
end

-- The common flags; for `list`, --owner is a filter, not the client's owner.
local function common_flags(cmd)
  local common = flags.common(default_owner())
  if not cmd.owner_filter then return common end
  local out = {}
  for _, f in ipairs(common) do if f[1] ~= "owner" then out[#out + 1] = f end end
  return out
end

-- What the client's retries of an unreachable server add up to (connection
-- refused at once): the dialer's pauses in each of the 4 attempts, plus
-- the 1 + 4 + 9 s between attempts.
local function retry_budget(c)
  local d = c.dialer
  return 4 * math.max(0, d.retry_count) * d.retry_sleep + 14
end

-- Said on stderr at the first failed connection, so a one-liner facing a
-- server that is down is not silent for minutes.
local function retry_notice(name, c, o, err)
  local how_long
  if c._deadline then
    how_long = "until --timeout " .. duration.format(o.timeout) .. " has passed"
  else
    how_long = "for up to " .. duration.format(retry_budget(c)) .. " (--timeout DURATION gives up sooner)"
  end
  return string.format("bosk %s: cannot connect to the server: %s; retrying %s\n", name, tostring(err), how_long)
end

-- The one-liners' settings on top of the library's: final errors for an
-- unknown type, the notice and the whole-command deadline of --timeout.
local function setup_client(c, name, o)
  c.distinguish_not_found = true
  c._final_not_found = true
  if name ~= "heartbeat" and o.timeout and o.timeout > 0 then
    c._deadline = core.monotime() + o.timeout
  end
  c._on_retry = function(err) complain(retry_notice(name, c, o, err)) end
end

-- main(args, name) -> exit status
function M.main(args, name)
  local cmd = commands[name]
  local spec = flags.with(common_flags(cmd), cmd.flags)
  local o, rest = flags.parse(args, spec)
  if o == nil then
    if rest == "help" then say(usage_text(name, cmd, spec)) return 0 end
    return usage_error(name, cmd, rest)
  end
  if cmd.positional and #rest > 0 and (o[cmd.positional] == nil or o[cmd.positional] == "") then
    o[cmd.positional] = table.remove(rest, 1)
  end
  if #rest > 0 then return usage_error(name, cmd, "unexpected argument " .. wire.go_quote(rest[1])) end
  local bad = check_values(name, cmd, o)
  if bad then return usage_error(name, cmd, bad) end
  if cmd.owner_filter then o.list_owner, o.owner = o.owner, default_owner() end
  local ok, c, err = pcall(boskos.client, { owner = o.owner, url = o.boskos_url,
                                            username = o.username, password_file = o.password_file })
  if not ok or c == nil then
    complain("failed to initialize the Boskos client: ", tostring(ok and err or c), "\n")
    return 1
  end
  setup_client(c, name, o)
  return cmd.run(c, o)
end

return M
