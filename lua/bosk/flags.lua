-- Command-line flags in Go's style (the spellings boskos users know):
-- `--name value`, `--name=value`, `-name value`; booleans take no value
-- (or `--name=false`). Every subcommand declares its flags as a list.
--
--   local opts, rest = flags.parse(argv, spec)   -- or nil, "usage message"
--
-- spec entries: { "boskos-url", aliases = {"server-url"}, env = "BOSKOS_URL",
--   default = ..., kind = "string"|"bool"|"int"|"duration"|"list", help = "..." }
-- `duration` values become seconds; `list` collects repeated flags.
-- Option keys use underscores: opts.boskos_url.
local duration = require "bosk.duration"
local M = {}

local function key_of(name) return (name:gsub("-", "_")) end

local function index_spec(spec)
  local by_name = {}
  for _, f in ipairs(spec) do
    by_name[f[1]] = f
    for _, alias in ipairs(f.aliases or {}) do by_name[alias] = f end
  end
  return by_name
end

local function convert(f, name, text)
  if f.kind == "int" then
    local n = math.tointeger(tonumber(text))
    if n == nil then return nil, string.format("invalid value %q for flag --%s: not an integer", text, name) end
    return n
  elseif f.kind == "duration" then
    local secs, err = duration.parse(text)
    if secs == nil then return nil, string.format("invalid value %q for flag --%s: %s", text, name, err) end
    return secs
  elseif f.kind == "bool" then
    if text == "true" or text == "1" then return true end
    if text == "false" or text == "0" then return false end
    return nil, string.format("invalid value %q for flag --%s: not a boolean", text, name)
  end
  return text
end

local function store(opts, f, value)
  local k = key_of(f[1])
  if f.kind == "list" then
    opts[k] = opts[k] or {}
    table.insert(opts[k], value)
  else
    opts[k] = value
  end
end

local function apply_defaults(opts, spec)
  for _, f in ipairs(spec) do
    local k = key_of(f[1])
    if opts[k] == nil and f.env and os.getenv(f.env) and os.getenv(f.env) ~= "" then
      local v, err = convert(f, f[1], os.getenv(f.env))
      if v == nil then return nil, err .. " (from $" .. f.env .. ")" end
      opts[k] = v
    end
    if opts[k] == nil then opts[k] = f.default end
  end
  return true
end

-- parse(argv, spec) -> opts, positional | nil, message
function M.parse(argv, spec)
  local by_name, opts, rest = index_spec(spec), {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
      break
    end
    local name, value = a:match("^%-%-?([^=]+)=(.*)$")
    if not name then name = a:match("^%-%-?(.+)$") end
    if name == nil or a == "-" then
      rest[#rest + 1] = a
    else
      local f = by_name[name]
      if f == nil then
        if name == "h" or name == "help" then return nil, "help" end
        return nil, "unknown flag: --" .. name
      end
      if value == nil and f.kind ~= "bool" then
        i = i + 1
        value = argv[i]
        if value == nil then return nil, "flag needs an argument: --" .. name end
      end
      local v, err = convert(f, name, value or "true")
      if v == nil then return nil, err end
      store(opts, f, v)
    end
    i = i + 1
  end
  local ok, err = apply_defaults(opts, spec)
  if not ok then return nil, err end
  return opts, rest
end

-- The flags every subcommand that talks to a server takes (docs/interface.md).
function M.common(owner_default)
  return {
    { "boskos-url", aliases = { "server-url" }, env = "BOSKOS_URL", default = "http://127.0.0.1:8080",
      help = "URL of the boskos server" },
    { "owner", aliases = { "owner-name" }, env = "BOSKOS_OWNER", default = owner_default,
      help = "owner name for leases" },
    { "username", env = "BOSKOS_USERNAME", help = "basic auth user name" },
    { "password-file", env = "BOSKOS_PASSWORD_FILE", help = "file holding the basic auth password" },
  }
end

-- with(spec, extra) -> a new spec: the entries of both lists.
function M.with(spec, extra)
  local all = {}
  for _, f in ipairs(spec) do all[#all + 1] = f end
  for _, f in ipairs(extra) do all[#all + 1] = f end
  return all
end

-- parse_main(args, spec, usage_line, usage_error) -> opts, rest, or nil
-- and the exit status once --help is printed (0) or usage_error(message)
-- has said what was wrong: the start of every subcommand's main.
function M.parse_main(args, spec, usage_line, usage_error)
  local opts, rest = M.parse(args, spec)
  if opts then return opts, rest end
  if rest == "help" then
    io.stdout:write(usage_line, M.usage(spec))
    return nil, 0
  end
  return nil, usage_error(rest)
end

-- usage(spec) -> text listing the flags, for --help and usage errors.
function M.usage(spec)
  local lines = {}
  for _, f in ipairs(spec) do
    local names = "--" .. f[1]
    for _, a in ipairs(f.aliases or {}) do names = names .. ", --" .. a end
    local shown = f.default
    if f.kind == "duration" and type(shown) == "number" then shown = duration.format(shown) end
    local default = shown ~= nil and (" (default " .. tostring(shown) .. ")") or ""
    lines[#lines + 1] = string.format("  %-34s %s%s", names, f.help or "", default)
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
