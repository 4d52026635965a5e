-- Go durations in seconds: "1h30m", "300ms", "-1.5h", "0" parsed, and
-- seconds formatted as Go's Duration.String() ("30m0s", "1.5s"). The
-- grammar, the overflow limit and the error texts are the server's own C
-- code (src/core/godur.c through bosk.gofmt), so client and server agree.
local gofmt = require "bosk.gofmt"
local M = {}

-- parse(text) -> seconds | nil, error text exactly as Go's time.ParseDuration.
function M.parse(text)
  if type(text) ~= "string" then return nil, "time: invalid duration " .. gofmt.quote(tostring(text)) end
  local secs, err = gofmt.parse_duration(text)
  if secs == nil then return nil, err end
  return secs
end

-- seconds(value, what) -> seconds from a number (seconds) or a Go duration
-- string; raises an argument error naming `what` otherwise.
function M.seconds(value, what, level)
  if type(value) == "number" then return value end
  local secs, err = M.parse(value)
  if secs == nil then error((what or "duration") .. ": " .. err, (level or 1) + 1) end
  return secs
end

-- format(seconds) -> Go's Duration.String().
M.format = gofmt.format_duration

return M
