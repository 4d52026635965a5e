-- Upstream's janitor command line, as policies: `--resource-type T1,T2`,
-- `--resource-type-from-config FILE`, `--janitor-path PATH` and the extra
-- arguments after `--` become one policy for those types whose clean runs
--
--   PATH --<last dash-separated part of the type>=NAME EXTRA...
--
-- without a shell, as upstream's janitor does: free on exit status 0,
-- dirty otherwise, no time limit (upstream has none).
--
--   local part, err = upstream.part{types =, config =, path =, extra =}
--   local types, err = upstream.config_types(path)
local jlog = require "bosk.janitor_log"

local M = {}

-- upstream's default --janitor-path
M.DEFAULT_PATH = "/bin/gcp_janitor.py"

-- config_types(path) -> sorted list of the types in a boskos config file
-- (its `resources:` entries) | nil, message.
function M.config_types(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "--resource-type-from-config: " .. err end
  local text = f:read("a")
  f:close()
  local doc, yerr = require("bosk.yaml").decode(text)
  if doc == nil and yerr then return nil, string.format("--resource-type-from-config %s: %s", path, yerr) end
  local list = type(doc) == "table" and (doc.resources or doc.Resources)
  if type(list) ~= "table" then
    return nil, string.format("--resource-type-from-config %s: no 'resources' list", path)
  end
  local types, seen = {}, {}
  for i, entry in ipairs(list) do
    local rtype = type(entry) == "table" and entry.type
    if type(rtype) ~= "string" or rtype == "" then
      return nil, string.format("--resource-type-from-config %s: resources[%d] has no type", path, i - 1)
    end
    if not seen[rtype] then
      seen[rtype] = true
      types[#types + 1] = rtype
    end
  end
  table.sort(types)
  return types
end

-- types(opts) -> the union of --resource-type and the config's types,
-- sorted and without duplicates (as upstream merges them) | nil, message.
function M.types(opts)
  local set, out = {}, {}
  local function add(t) if t ~= "" and not set[t] then set[t] = true out[#out + 1] = t end end
  for _, t in ipairs(opts.types or {}) do add(t) end
  if opts.config then
    local from_config, err = M.config_types(opts.config)
    if not from_config then return nil, err end
    for _, t in ipairs(from_config) do add(t) end
  end
  table.sort(out)
  return out
end

-- The flag upstream passes for a type: the part after its last dash.
function M.type_flag(rtype)
  return rtype:match("([^-]*)$")
end

local function tail(text, max)
  text = (text or ""):gsub("%s+$", "")
  if #text > max then return "..." .. text:sub(-max) end
  return text
end

-- clean_with(path, extra) -> the clean function of the synthetic policy.
local function clean_with(path, extra)
  return function(res)
    local argv = { path, "--" .. M.type_flag(res.type or "") .. "=" .. res.name }
    for _, a in ipairs(extra) do argv[#argv + 1] = a end
    jlog.info("executing janitor", { type = res.type, name = res.name, command = table.concat(argv, " ") })
    local ok, output, code, reason = require("bosk.janitor_policy").exec(argv)
    if ok then
      jlog.trace("output from janitor", { type = res.type, name = res.name, output = output })
      return true
    end
    return nil, string.format("%s: %s", reason or (path .. " exited with status " .. tostring(code)), tail(output, 2000))
  end
end

-- part{types = {...}, path =, extra = {...}} -> a registry part holding
-- one policy (dirty -> cleaning -> free, dirty on failure) for the types.
function M.part(opts)
  local reg = require("bosk.janitor_policy").registry()
  if #opts.types == 0 then return reg end
  local p = {
    types = opts.types, from = "dirty", via = "cleaning", to = "free", on_failure = "dirty",
    timeout = nil, recycle = false, where = "--janitor-path " .. opts.path,
    clean = clean_with(opts.path, opts.extra or {}),
  }
  for _, rtype in ipairs(p.types) do reg.by_key[rtype .. "\0dirty"] = p end
  p.index = 1
  reg.policies[1] = p
  return reg
end

return M
