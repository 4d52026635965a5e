-- Go durations: parse "1h30m", "300ms", "-1.5h", "0" into seconds, and
-- format seconds as Go's Duration.String() ("30m0s", "1h0m0s", "1.5s").
local M = {}

local unit_seconds = {
  ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ["μs"] = 1e-6, ms = 1e-3,
  s = 1, m = 60, h = 3600,
}

-- parse(text) -> seconds | nil, error text exactly as Go's time.ParseDuration.
function M.parse(text)
  if type(text) ~= "string" then return nil, "time: invalid duration " .. string.format("%q", tostring(text)) end
  local quoted = '"' .. text .. '"'
  local s, sign = text, 1
  local first = s:sub(1, 1)
  if first == "-" or first == "+" then
    sign = first == "-" and -1 or 1
    s = s:sub(2)
  end
  if s == "0" then return 0 end
  if s == "" then return nil, "time: invalid duration " .. quoted end
  local total = 0
  while s ~= "" do
    local number, rest = s:match("^(%d*%.?%d*)(.*)$")
    if number == "" or number == "." then return nil, "time: invalid duration " .. quoted end
    local unit = rest:match("^[^%d%.]+")
    if unit == nil then return nil, "time: missing unit in duration " .. quoted end
    local scale = unit_seconds[unit]
    if scale == nil then
      return nil, "time: unknown unit " .. string.format('"%s"', unit) .. " in duration " .. quoted
    end
    total = total + tonumber(number) * scale
    s = rest:sub(#unit + 1)
  end
  return sign * total
end

-- seconds(value, what) -> seconds from a number (seconds) or a Go duration
-- string; raises an argument error naming `what` otherwise.
function M.seconds(value, what, level)
  if type(value) == "number" then return value end
  local secs, err = M.parse(value)
  if secs == nil then error((what or "duration") .. ": " .. err, (level or 1) + 1) end
  return secs
end

local function format_fraction(value, digits)
  local s = string.format("%." .. digits .. "f", value)
  return (s:gsub("%.?0+$", ""))
end

-- format(seconds) -> Go's Duration.String().
function M.format(seconds)
  local sign = seconds < 0 and "-" or ""
  local ns = math.floor(math.abs(seconds) * 1e9 + 0.5)
  if ns == 0 then return "0s" end
  if ns < 1000 then return sign .. ns .. "ns" end
  if ns < 1000000 then return sign .. format_fraction(ns / 1e3, 3) .. "µs" end
  if ns < 1000000000 then return sign .. format_fraction(ns / 1e6, 6) .. "ms" end
  local h = ns // 3600000000000
  ns = ns - h * 3600000000000
  local m = ns // 60000000000
  ns = ns - m * 60000000000
  local s = format_fraction(ns / 1e9, 9)
  if h > 0 then return string.format("%s%dh%dm%ss", sign, h, m, s) end
  if m > 0 then return string.format("%s%dm%ss", sign, m, s) end
  return sign .. s .. "s"
end

return M
