-- bosk.wire: the byte-level pieces of the Boskos protocol that the client,
-- the janitor and the one-liners share (docs/protocol.md §1, §4.2): URLs and
-- query escaping, Go's %q and encoding/json string forms, and the Resource
-- JSON both ways. Pure functions; no I/O.
local cjson = require("cjson").new()
local decode_compact = require("bosk.wirec").decode_resource -- src/lwire.c

local byte, char, format, concat, sort = string.byte, string.char, string.format, table.concat, table.sort
local wire = {}

wire.ZERO_TIME = "0001-01-01T00:00:00Z"
local UserData = { __name = "boskos.userdata" } -- methods below
local adopt_resource -- the fast path of decode_resource, defined with it

-- Decodes one UTF-8 sequence at i: codepoint, length; nil when invalid.
local function utf8_at(s, i)
  local c = byte(s, i)
  if c < 0x80 then return c, 1 end
  local n, cp, min
  if c >= 0xC2 and c <= 0xDF then n, cp, min = 2, c & 0x1F, 0x80
  elseif c >= 0xE0 and c <= 0xEF then n, cp, min = 3, c & 0x0F, 0x800
  elseif c >= 0xF0 and c <= 0xF4 then n, cp, min = 4, c & 0x07, 0x10000
  else return nil end
  for k = 1, n - 1 do
    local b = byte(s, i + k)
    if not b or b & 0xC0 ~= 0x80 then return nil end
    cp = (cp << 6) | (b & 0x3F)
  end
  if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil end
  return cp, n
end

-- Go's QueryEscape: A-Za-z0-9 and -_.~ kept, space -> +, the rest %XX.
local function escape_byte(ch) return format("%%%02X", byte(ch)) end
local function query_escape(s)
  if not s:find("[^%w%-_%.~]") then return s end -- the common case: nothing to escape
  return (s:gsub("[^%w%-_%.~ ]", escape_byte):gsub(" ", "+"))
end
wire.query_escape = query_escape

-- wire.url(base, action, params) -> URL with base's path replaced by action
-- and the query built from params (sorted by key, Go QueryEscape); or nil, err.
local prefixes = setmetatable({}, { __mode = "k" }) -- base URL -> scheme://authority
function wire.url(base, action, params)
  local prefix = prefixes[base]
  if not prefix then
    prefix = type(base) == "string" and base:match("^(%a[%w+.-]*://[^/?#]*)")
    if not prefix or #prefix <= (prefix:find("://", 1, true) + 2) then
      return nil, format("invalid boskos URL %q: want scheme://host[:port]", tostring(base))
    end
    prefixes[base] = prefix
  end
  local keys, n = {}, 0
  for k in pairs(params or {}) do n = n + 1 keys[n] = k end
  sort(keys)
  local parts = {}
  for i = 1, n do
    local k = keys[i]
    local v = params[k]
    parts[i] = query_escape(k) .. "=" .. query_escape(type(v) == "string" and v or tostring(v))
  end
  if #parts == 0 then return prefix .. action end
  return prefix .. action .. "?" .. concat(parts, "&")
end

-- wire.go_quote(s) -> s as Go's %q prints it: the server's own C quoter
-- (src/core/gojson.c), so the "type not found" text the client compares
-- is the one the server wrote.
wire.go_quote = require("bosk.gofmt").quote

-- wire.type_not_found_message(t) -> `resource type "t" does not exist`
function wire.type_not_found_message(rtype)
  return "resource type " .. wire.go_quote(rtype) .. " does not exist"
end

local json_escapes = { [34] = '\\"', [92] = "\\\\", [10] = "\\n", [13] = "\\r", [9] = "\\t",
                       [60] = "\\u003c", [62] = "\\u003e", [38] = "\\u0026" }

-- wire.encode_string(s) -> s as a JSON string, escaped as Go's encoding/json does.
function wire.encode_string(s)
  if not s:find('[%z\1-\31"\\<>&\128-\255]') then return '"' .. s .. '"' end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = byte(s, i)
    local len = 1
    if json_escapes[c] then
      out[#out + 1] = json_escapes[c]
    elseif c < 0x20 then
      out[#out + 1] = format("\\u%04x", c)
    elseif c < 0x80 then
      out[#out + 1] = char(c)
    else
      local cp, l = utf8_at(s, i)
      if not cp then out[#out + 1] = "\\ufffd"
      elseif cp == 0x2028 or cp == 0x2029 then out[#out + 1] = format("\\u%04x", cp) len = l
      else out[#out + 1] = s:sub(i, i + l - 1) len = l end
    end
    i = i + len
  end
  return '"' .. concat(out) .. '"'
end
local encode_string = wire.encode_string

-- A plain map from a map or a UserData (anything with :to_map()).
local function plain_map(m)
  if getmetatable(m) == UserData then return m._map end
  if type(m) == "table" and type(m.to_map) == "function" then return m:to_map() end
  return m
end

-- wire.encode_map(map) -> compact JSON object of strings, keys sorted bytewise.
function wire.encode_userdata(map)
  map = plain_map(map)
  local keys = {}
  for k in pairs(map) do keys[#keys + 1] = k end
  sort(keys)
  for i, k in ipairs(keys) do keys[i] = encode_string(k) .. ":" .. encode_string(tostring(map[k])) end
  return "{" .. concat(keys, ",") .. "}"
end

-- wire.encode_value(v) -> JSON for a Lua value (tables with keys 1..n are
-- arrays, other tables objects with sorted keys); used for structured user data.
function wire.encode_value(v, depth)
  depth = (depth or 0) + 1
  if depth > 100 then error("encode_value: nesting deeper than 100 levels", 2) end
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return math.type(v) == "integer" and tostring(v) or format("%.17g", v)
  end
  if t == "boolean" then return tostring(v) end
  if v == nil or v == cjson.null then return "null" end
  if t ~= "table" then error("encode_value: cannot encode a " .. t, 2) end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  local parts = {}
  if n > 0 and n == count then
    for i = 1, n do parts[i] = wire.encode_value(v[i], depth) end
    return "[" .. concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for i, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    parts[i] = encode_string(k) .. ":" .. wire.encode_value(val, depth)
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- wire.encode_resource(res) -> the Resource JSON, byte for byte as Go emits it.
function wire.encode_resource(res)
  local ud = res.userdata
  local ud_json = "null"
  if ud ~= nil and not (type(ud) == "table" and ud._null and next(plain_map(ud)) == nil) then
    ud_json = wire.encode_userdata(ud)
  end
  local parts = {
    '{"type":', encode_string(res.type or ""),
    ',"name":', encode_string(res.name or ""),
    ',"state":', encode_string(res.state or ""),
    ',"owner":', encode_string(res.owner or ""),
    ',"lastupdate":', encode_string(res.lastupdate or wire.ZERO_TIME),
    ',"userdata":', ud_json,
  }
  if res.expiration_date then
    parts[#parts + 1] = ',"expiration-date":'
    parts[#parts + 1] = encode_string(res.expiration_date)
  end
  parts[#parts + 1] = "}"
  return concat(parts)
end

local function json_type(v)
  if v == cjson.null then return "null" end
  local t = type(v)
  if t == "table" then return (v[1] ~= nil) and "array" or "object" end
  return t
end

-- wire.decode_json(text) -> value or nil, "invalid JSON: ..."
function wire.decode_json(text)
  if type(text) ~= "string" then return nil, "invalid JSON: not a string" end
  local ok, v = pcall(cjson.decode, text)
  if not ok then
    return nil, "invalid JSON: " .. tostring(v):gsub("^.-:%d+: ", "")
  end
  return v
end

local function unmarshal_error(got, field, want)
  return format("json: cannot unmarshal %s into Go struct field %s of type %s", got, field, want)
end

-- A string field of a decoded object: "" / nil when absent or null.
local function string_field(obj, key, field, absent)
  local v = obj[key]
  if v == nil or v == cjson.null then return absent end
  if type(v) ~= "string" then return nil, unmarshal_error(json_type(v), field, "string") end
  return v
end

-- wire.decode_userdata_map(v) -> map of strings, was_null   or nil, err
function wire.decode_userdata_map(v)
  if v == nil or v == cjson.null then return {}, true end
  if type(v) ~= "table" or v[1] ~= nil then
    return nil, unmarshal_error(json_type(v), "Resource.userdata", "map[string]string")
  end
  -- As Go's FromMap: every entry is stored, "" included (null reads as "").
  local map = {}
  for k, val in pairs(v) do
    if val == cjson.null then
      map[k] = ""
    elseif type(val) ~= "string" then
      return nil, unmarshal_error(json_type(val), "Resource.userdata", "string")
    else
      map[k] = val
    end
  end
  return map, false
end

-- Errors: a table with `message` whose tostring is the message; extra
-- fields (such as `id`, `kind`) say more to programs.
local Error = { __name = "boskos.error" }
Error.__index = Error
Error.__tostring = function(e) return e.message end
wire.Error = Error

-- wire.error(message, fields) -> an error value
function wire.error(message, fields)
  local e = fields or {}
  e.message = message
  return setmetatable(e, Error)
end

-- UserData (Go common.UserData): a map string -> string whose values are
-- opaque text; structured values are stored as YAML/JSON text.
UserData.__index = UserData
wire.UserData = UserData

local function check_self(self, method)
  if getmetatable(self) ~= UserData then
    error(format("bad argument #1 to '%s' (boskos.userdata expected, got %s)", method, type(self)), 3)
  end
end

local function check_id(id, method)
  if type(id) ~= "string" then
    error(format("bad argument #1 to '%s' (string expected, got %s)", method, type(id)), 3)
  end
end

-- wire.userdata(map, was_null) -> a UserData holding a copy of map.
function wire.userdata(map, was_null)
  local copy = {}
  if map ~= nil then
    if type(map) ~= "table" then
      error(format("bad argument #1 to 'userdata' (table expected, got %s)", type(map)), 2)
    end
    for k, v in pairs(plain_map(map)) do
      if type(k) ~= "string" or type(v) ~= "string" then
        error("bad argument #1 to 'userdata' (keys and values must be strings)", 2)
      end
      copy[k] = v
    end
  end
  return setmetatable({ _map = copy, _null = was_null or nil }, UserData)
end

-- ud:get(id) -> the stored text, or nil
function UserData:get(id)
  check_self(self, "get") check_id(id, "get")
  return self._map[id]
end

-- ud:set(id, value): a string is stored as is; a table, number or boolean
-- as its JSON text (which is YAML); nil removes the entry.
function UserData:set(id, value)
  check_self(self, "set") check_id(id, "set")
  local t = type(value)
  if t == "string" or value == nil then
    self._map[id] = value
  elseif t == "table" or t == "number" or t == "boolean" then
    self._map[id] = wire.encode_value(value)
  else
    error(format("bad argument #2 to 'set' (string, table, number or boolean expected, got %s)", t), 2)
  end
  self._null = nil
end

-- ud:extract(id) -> the YAML-decoded value, or nil, err (err.id for a missing id)
function UserData:extract(id)
  check_self(self, "extract") check_id(id, "extract")
  local text = self._map[id]
  if text == nil then
    return nil, wire.error("user data ID " .. id .. " does not exist", { id = id })
  end
  local value, err = require("bosk.yaml").decode(text)
  if err then return nil, wire.error("user data ID " .. id .. ": " .. err, { id = id }) end
  return value
end

-- ud:update(other): merges a UserData or plain map; "" deletes a key.
function UserData:update(other)
  check_self(self, "update")
  if other == nil then return end
  if type(other) ~= "table" then
    error(format("bad argument #1 to 'update' (table expected, got %s)", type(other)), 2)
  end
  for k, v in pairs(plain_map(other)) do
    if v == "" then self._map[k] = nil else self._map[k] = v end
  end
  self._null = nil
end

-- ud:to_map() -> a copy of the entries as a plain table
function UserData:to_map()
  check_self(self, "to_map")
  local copy = {}
  for k, v in pairs(self._map) do copy[k] = v end
  return copy
end

-- ud:from_map(m): stores every entry of m (as Go's FromMap: no deletes).
function UserData:from_map(m)
  check_self(self, "from_map")
  if type(m) ~= "table" then
    error(format("bad argument #1 to 'from_map' (table expected, got %s)", type(m)), 2)
  end
  for k, v in pairs(m) do self._map[k] = v end
  self._null = nil
end

-- ud:to_json() -> compact JSON object, keys sorted
function UserData:to_json()
  check_self(self, "to_json")
  return wire.encode_userdata(self._map)
end

function UserData:__tostring() return "boskos.userdata " .. wire.encode_userdata(self._map) end
function UserData:__len() local n = 0 for _ in pairs(self._map) do n = n + 1 end return n end

-- wire.userdata_from_json(text) -> UserData, or nil, err
function wire.userdata_from_json(text)
  if type(text) ~= "string" then
    error(format("bad argument #1 to 'userdata_from_json' (string expected, got %s)", type(text)), 2)
  end
  local v, err = wire.decode_json(text)
  if v == nil then return nil, wire.error(err) end
  local map, e = wire.decode_userdata_map(v)
  if not map then return nil, wire.error((e:gsub("Go struct field Resource.userdata of type", "Go value of type"))) end
  return wire.userdata(map, e)
end

-- The fast path of decode_resource: turns the object decoded from text
-- into the resource in place when text is exactly Go's compact form of a
-- Resource: the six string fields with a non-empty name, user data of
-- strings, an optional string expiration-date, and nothing else. Returns
-- nil otherwise, and the general path below decides.
--
-- The length of text proves the shape without walking the object: the
-- compact form is the shortest JSON text that decodes to these fields
-- (escapes, whitespace, other keys and repeated keys all add bytes; an
-- empty "userdata":[] is as short and decodes the same), so a text of
-- exactly that length has no other keys.
local compact_len = #'{"type":"","name":"","state":"","owner":"","lastupdate":"","userdata":{}}'
local expiration_len = #',"expiration-date":""'
function adopt_resource(v, text)
  if type(v) ~= "table" then return nil end
  local rtype, name, state, owner, last, ud = v.type, v.name, v.state, v.owner, v.lastupdate, v.userdata
  if type(name) ~= "string" or type(rtype) ~= "string" or type(state) ~= "string"
    or type(owner) ~= "string" or type(last) ~= "string" or type(ud) ~= "table" or name == "" then
    return nil
  end
  local len = compact_len + #rtype + #name + #state + #owner + #last
  local exp = v["expiration-date"]
  if exp ~= nil then
    if type(exp) ~= "string" then return nil end
    len = len + expiration_len + #exp
  end
  if #text ~= len then -- longer: user data entries, or not the compact form
    if ud[1] ~= nil or next(ud) == nil then return nil end
    for k, val in pairs(ud) do -- "k":"v" and a comma, for each entry
      if type(val) ~= "string" then return nil end
      len = len + #k + #val + 6
    end
    if #text ~= len - 1 then return nil end -- one comma fewer than entries
  end
  if exp ~= nil then v.expiration_date, v["expiration-date"] = exp, nil end
  v.userdata = setmetatable({ _map = ud }, UserData)
  return v
end

-- wire.decode_resource_lua(json_text_or_table) -> resource or nil, err:
-- decode_resource without the C fast path (tests compare the two).
function wire.decode_resource_lua(v)
  if type(v) == "string" then
    local text, err = v, nil
    v, err = wire.decode_json(text)
    if v == nil then return nil, err end
    -- A freshly decoded object in Go's compact form: adopt it.
    local r = adopt_resource(v, text)
    if r then return r end
  end
  if type(v) ~= "table" or v[1] ~= nil then
    return nil, "json: cannot unmarshal " .. json_type(v) .. " into Go value of type common.Resource"
  end
  local r, err = {}, nil
  r.type, err = string_field(v, "type", "Resource.type", "")
  if err then return nil, err end
  r.name, err = string_field(v, "name", "Resource.name", "")
  if err then return nil, err end
  r.state, err = string_field(v, "state", "Resource.state", "")
  if err then return nil, err end
  r.owner, err = string_field(v, "owner", "Resource.owner", "")
  if err then return nil, err end
  r.lastupdate, err = string_field(v, "lastupdate", "Resource.lastupdate", nil)
  if err then return nil, err end
  r.expiration_date, err = string_field(v, "expiration-date", "Resource.expiration-date", nil)
  if err then return nil, err end
  local map, was_null = wire.decode_userdata_map(v.userdata)
  if not map then return nil, was_null end
  r.userdata = setmetatable({ _map = map, _null = was_null or nil }, UserData) -- map is fresh: no copy
  if r.name == "" then return nil, "unable to parse resource" end
  return r
end

-- wire.decode_resource(json_text_or_table) -> resource or nil, err.
-- A resource without a name is `unable to parse resource`. Text in Go's
-- compact form (what servers send) is read by C in one pass; anything
-- else takes the cjson path above, which gives the same results.
local decode_resource_lua = wire.decode_resource_lua
function wire.decode_resource(v)
  if type(v) == "string" then
    local r = decode_compact(v, UserData)
    if r then return r end
  end
  return decode_resource_lua(v)
end

-- wire.decode_resources(text) -> array of resources (null -> {}) or nil, err.
-- Unlike decode_resource, a nameless element is kept (as upstream does).
function wire.decode_resources(text)
  local v, err = wire.decode_json(text)
  if v == nil then return nil, err end
  if v == cjson.null then return {} end
  if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then
    return nil, "json: cannot unmarshal " .. json_type(v) .. " into Go value of type []common.Resource"
  end
  local out = {}
  for i, item in ipairs(v) do
    local r, e = wire.decode_resource(item)
    if not r and e ~= "unable to parse resource" then return nil, e end
    if not r then
      r = { type = "", name = "", state = "", owner = "", userdata = wire.userdata({}, true) }
      for _, key in ipairs({ "type", "state", "owner" }) do r[key] = type(item[key]) == "string" and item[key] or "" end
    end
    out[i] = r
  end
  return out
end

wire.null = cjson.null
return wire
