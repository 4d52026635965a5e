-- pretty: how `bosk repl` shows values. Tables are printed nested with
-- sorted keys (a short table stays on one line), a resource on a single
-- line in wire order, a list of resources one per line, user data as a
-- plain map. Anything with a __tostring (errors, clients) prints as
-- tostring does.
local M = {}

local RESOURCE_KEYS = { "type", "name", "state", "owner", "lastupdate", "userdata", "expiration_date" }
local WIDTH = 78
local MAX_DEPTH = 8

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function quote(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

-- Orders keys: integers ascending, then strings, then the rest by text.
local function key_less(a, b)
  local ta, tb = math.type(a) == "integer", math.type(b) == "integer"
  if ta ~= tb then return ta end
  if ta then return a < b end
  local sa, sb = type(a) == "string", type(b) == "string"
  if sa ~= sb then return sa end
  if sa then return a < b end
  return tostring(a) < tostring(b)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, key_less)
  return keys
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__tostring ~= nil
end

-- A user data object from boskos.userdata(): has a to_map method.
local function userdata_map(v)
  if type(v) ~= "table" and type(v) ~= "userdata" then return nil end
  local ok, to_map = pcall(function() return v.to_map end)
  if not ok or type(to_map) ~= "function" then return nil end
  local ok2, map = pcall(to_map, v)
  if ok2 and type(map) == "table" then return map end
  return nil
end

function M.is_resource(v)
  return type(v) == "table" and type(v.name) == "string" and type(v.type) == "string"
    and type(v.state) == "string" and v.owner ~= nil
end

local format

local function format_key(k)
  if is_identifier(k) then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  return "[" .. tostring(k) .. "]"
end

local function format_resource(r, seen, depth)
  local parts = {}
  for _, k in ipairs(RESOURCE_KEYS) do
    if r[k] ~= nil then parts[#parts + 1] = k .. " = " .. format(r[k], seen, depth + 1, "") end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function is_resource_list(t)
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  for i = 1, n do if not M.is_resource(t[i]) then return false end end
  return true
end

-- Formats the entries of table t; one line when short enough.
local function format_table(t, seen, depth, indent)
  if depth > MAX_DEPTH then return "{...}" end
  seen[t] = true
  local items, next_index = {}, 1
  for _, k in ipairs(sorted_keys(t)) do
    local v = format(t[k], seen, depth + 1, indent .. "  ")
    if k == next_index then               -- 1, 2, 3... print without keys
      next_index = next_index + 1
      items[#items + 1] = v
    else
      items[#items + 1] = format_key(k) .. " = " .. v
    end
  end
  seen[t] = nil
  if #items == 0 then return "{}" end
  local one_line = "{" .. table.concat(items, ", ") .. "}"
  if #one_line + #indent <= WIDTH and not one_line:find("\n", 1, true) then return one_line end
  return "{\n" .. indent .. "  " .. table.concat(items, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end

-- format(v, seen, depth, indent) -> text of a value inside a table
function format(v, seen, depth, indent)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv ~= "table" and tv ~= "userdata" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  local map = userdata_map(v)
  if map then return format_table(map, seen, depth, indent) end
  if tv == "userdata" or has_tostring(v) then return tostring(v) end
  if M.is_resource(v) then return format_resource(v, seen, depth) end
  if is_resource_list(v) then
    local lines = {}
    for i = 1, #v do lines[i] = indent .. "  " .. format_resource(v[i], seen, depth + 1) end
    return "{\n" .. table.concat(lines, ",\n") .. "\n" .. indent .. "}"
  end
  return format_table(v, seen, depth, indent)
end

-- pretty.format(v) -> text as the REPL prints a result: strings and
-- numbers as print shows them, tables expanded.
function M.format(v)
  if type(v) == "string" then return v end
  return format(v, {}, 1, "")
end

-- pretty.print(...) -> prints the values tab-separated, as print does.
function M.print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = M.format((select(i, ...))) end
  io.stdout:write(table.concat(parts, "\t"), "\n")
  io.stdout:flush()
end

return M
