-- The policy API of `bosk janitor`: the global `janitor` that policy files
-- see (policy, every, reaper, exec, log), field checks at load time, and the
-- registry the supervisor runs.
--
--   local reg = policy.registry()
--   local ok, err = policy.load(reg, "path/to/policy.lua")
--
-- Every mistake raises with error(msg, 2) from the janitor.* call, so the
-- message starts with the policy file and line: `p.lua:3: janitor.policy:
-- unknown field 'timout'`.
local duration = require "bosk.duration"
local jlog = require "bosk.janitor_log"
local safety = require "bosk.janitor_safety"

local M = {}

local STATES = {
  BUSY = "busy", CLEANING = "cleaning", DIRTY = "dirty", FREE = "free",
  LEASED = "leased", TO_BE_DELETED = "toBeDeleted", TOMBSTONE = "tombstone", OTHER = "other",
}
M.STATES = STATES

-- Field checkers: each returns the normalized value or nil, reason.
local function is_state(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string (a state)" end
  return v
end

local function is_name(v)
  if type(v) ~= "string" or v == "" then return nil, "must be a non-empty string" end
  return v
end

local function is_names(v)
  if type(v) ~= "table" or #v == 0 then return nil, "must be a non-empty list of strings" end
  local out = {}
  for i, x in ipairs(v) do
    if type(x) ~= "string" or x == "" then return nil, "item " .. i .. " must be a non-empty string" end
    out[i] = x
  end
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then return nil, "must be a list (found key " .. tostring(k) .. ")" end
  end
  return out
end

-- The same checkers as the production fields (janitor_safety.lua).
local is_positive_int = safety.positive_int
local is_duration = safety.positive_duration

local function is_function(v)
  if type(v) ~= "function" then return nil, "must be a function" end
  return v
end

-- check(call, spec, fields, level): validates the named-argument table.
local function check(call, spec, t, level)
  level = level + 1
  if type(t) ~= "table" then error(call .. ": expects a table of fields, got " .. type(t), level) end
  local out = {}
  for k, v in pairs(t) do
    local checker = spec[k]
    if checker == nil then
      error(string.format("%s: unknown field '%s'", call, tostring(k)), level)
    end
    local value, why = checker(v)
    if value == nil then error(string.format("%s: field '%s' %s", call, k, why), level) end
    out[k] = value
  end
  return out
end

local POLICY_FIELDS = {
  type = is_name, types = is_names, from = is_state, via = is_state, to = is_state,
  on_failure = is_state, concurrency = is_positive_int, timeout = is_duration,
  clean = is_function,
  health = is_function, health_every = is_duration,   -- free-pool checks (janitor_health.lua)
}
for field, checker in pairs(safety.POLICY_FIELDS) do POLICY_FIELDS[field] = checker end  -- janitor safety fields

local REAPER_FIELDS = {
  type = is_name, types = is_names, states = is_names, extra_states = is_names,
  expire = is_duration, dest = is_state, every = is_duration,
}

function M.registry()
  return { policies = {}, reapers = {}, jobs = {}, by_key = {} }
end

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
end

-- register(reg, p) -> nil, or the message when a type of p with p's
-- `from` state already has a policy; otherwise p gets the next index.
local function register(reg, p)
  for _, rtype in ipairs(p.types) do
    local key = rtype .. "\0" .. p.from
    local previous = reg.by_key[key]
    if previous then
      return string.format("janitor.policy: duplicate type '%s' (from '%s'), already defined at %s",
                           rtype, p.from, previous.where)
    end
    reg.by_key[key] = p
  end
  p.index = #reg.policies + 1
  reg.policies[p.index] = p
end

local function add_policy(reg, t, level)
  local p = check("janitor.policy", POLICY_FIELDS, t, level + 1)
  if p.type and p.types then error("janitor.policy: give 'type' or 'types', not both", level + 1) end
  if not p.type and not p.types then error("janitor.policy: field 'type' (or 'types') is required", level + 1) end
  if not p.clean then error("janitor.policy: field 'clean' (a function) is required", level + 1) end
  if (p.health == nil) ~= (p.health_every == nil) then
    error("janitor.policy: fields 'health' and 'health_every' go together (field '"
          .. (p.health and "health_every" or "health") .. "' is missing)", level + 1)
  end
  p.types = p.types or { p.type }
  p.type = nil
  p.from = p.from or STATES.DIRTY
  p.via = p.via or STATES.CLEANING
  p.to = p.to or STATES.FREE
  p.on_failure = p.on_failure or p.from
  p.timeout = p.timeout or 3600
  p.where = where(level + 1)
  p.recycle = p.from == STATES.TO_BE_DELETED and p.to == STATES.TOMBSTONE
  local err = register(reg, p)
  if err then error(err, level + 1) end
end

local function add_reaper(reg, t, level)
  local r = check("janitor.reaper", REAPER_FIELDS, t, level + 1)
  if r.type and r.types then error("janitor.reaper: give 'type' or 'types', not both", level + 1) end
  r.types = r.types or (r.type and { r.type })
  r.type = nil
  if not r.types then error("janitor.reaper: field 'types' is required", level + 1) end
  r.states = r.states or { STATES.BUSY, STATES.CLEANING, STATES.LEASED }
  for _, extra in ipairs(r.extra_states or {}) do r.states[#r.states + 1] = extra end
  r.extra_states = nil   -- upstream's --extra-source-states
  r.expire = r.expire or 1800
  r.dest = r.dest or STATES.DIRTY
  r.every = r.every or 60
  r.where = where(level + 1)
  reg.reapers[#reg.reapers + 1] = r
end

local function add_job(reg, interval, fn, name, level)
  local secs, why = is_duration(interval)
  if not secs then error("janitor.every: interval " .. why, level + 1) end
  if type(fn) ~= "function" then error("janitor.every: second argument must be a function", level + 1) end
  if name ~= nil and type(name) ~= "string" then error("janitor.every: name must be a string", level + 1) end
  local at = where(level + 1)
  local index = #reg.jobs + 1
  reg.jobs[index] = { every = secs, fn = fn, name = name or ("job at " .. at), where = at, index = index }
end

-- janitor.exec{"prog", "arg", ..., timeout =, env =, max_output =, readonly =}
-- -> ok, output, exit_code[, reason]. readonly: the command changes
-- nothing, so it runs in plan mode too (bosk.exec's plan switch).
local EXEC_OPTIONS = { timeout = true, env = true, max_output = true, readonly = true }
local function exec(t)
  if type(t) ~= "table" then error("janitor.exec: expects a table {\"prog\", \"arg\", ...}", 2) end
  local argv, opts = {}, {}
  for k, v in pairs(t) do
    if math.type(k) == "integer" then
      if type(v) ~= "string" and type(v) ~= "number" then
        error("janitor.exec: argument " .. k .. " must be a string, got " .. type(v), 2)
      end
    elseif not EXEC_OPTIONS[k] then
      error("janitor.exec: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  for i = 1, #t do argv[i] = tostring(t[i]) end
  if #argv == 0 then error("janitor.exec: needs at least the program name", 2) end
  if t.timeout ~= nil then
    local secs, why = is_duration(t.timeout)
    if not secs then error("janitor.exec: timeout " .. why, 2) end
    opts.timeout = secs
  end
  if t.env ~= nil and type(t.env) ~= "table" then error("janitor.exec: env must be a table", 2) end
  if t.readonly ~= nil and type(t.readonly) ~= "boolean" then error("janitor.exec: readonly must be a boolean", 2) end
  opts.env, opts.max_output, opts.readonly = t.env, t.max_output, t.readonly
  return require("bosk.exec").run(argv, opts)
end
M.exec = exec

-- api(reg) -> the `janitor` global for policy files.
function M.api(reg)
  return {
    policy = function(t) add_policy(reg, t, 2) end,
    reaper = function(t) add_reaper(reg, t, 2) end,
    every = function(interval, fn, name) add_job(reg, interval, fn, name, 2) end,
    exec = exec,
    log = jlog.line,
    progress = safety.progress,
  }
end

-- boskos as policies see it: the client module, with the state constants
-- guaranteed even if the module is reloaded without them.
local function boskos_global()
  local ok, boskos = pcall(require, "boskos")
  if not ok then boskos = {} end
  return setmetatable({}, { __index = function(_, k)
    local v = boskos[k]
    if v == nil then v = STATES[k] end
    return v
  end })
end

-- While a policy file loads, os.exit raises instead: a file that called it
-- ended `janitor --once` with status 0 having cleaned nothing. The real
-- os.exit is back once the file has run (workers replace it again, with
-- one that skips the parent's destructors).
local function exit_guard(path)
  return function()
    error(string.format("os.exit called while loading policy file %s (loading a policy must not end the janitor)",
                        path), 2)
  end
end

-- Each file runs with its own globals (reads fall through to _G, writes
-- stay in the file's table): a reload that fails half-way cannot change
-- what the previous version of that file, still in force, sees.
-- _G.janitor is set too, for the modules a policy file requires.
local function file_env(reg)
  local env = { janitor = M.api(reg) }
  _G.janitor = env.janitor
  if rawget(_G, "boskos") == nil then _G.boskos = boskos_global() end
  return setmetatable(env, { __index = _G })
end

-- load(reg, path) -> true | nil, message (syntax errors, policy mistakes)
function M.load(reg, path)
  local env = file_env(reg)
  local chunk, err = loadfile(path, "bt", env)
  if not chunk then return nil, err end
  local real_exit = os.exit
  os.exit = exit_guard(path)
  local ok, run_err = pcall(chunk)
  os.exit = real_exit
  if not ok then return nil, tostring(run_err) end
  return true
end

-- load_file(path) -> part | nil, message: the file's own registry.
function M.load_file(path)
  local reg = M.registry()
  local ok, err = M.load(reg, path)
  if not ok then return nil, err end
  return reg
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- merge(parts) -> reg | nil, message: one registry from several parts (a
-- file's, or the upstream command line's), in order, with fresh indexes.
-- The same type and `from` state in two parts is refused. The parts are
-- not changed, so a part kept across reloads can be merged again.
function M.merge(parts)
  local reg = M.registry()
  for _, part in ipairs(parts) do
    for _, p in ipairs(part.policies) do
      local c = copy(p)
      local err = register(reg, c)
      if err then return nil, c.where .. ": " .. err end
    end
    for _, r in ipairs(part.reapers) do reg.reapers[#reg.reapers + 1] = copy(r) end
    for _, j in ipairs(part.jobs) do
      local c = copy(j)
      c.index = #reg.jobs + 1
      reg.jobs[c.index] = c
    end
  end
  return reg
end

return M
