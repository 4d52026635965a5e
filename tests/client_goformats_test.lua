-- client_goformats_test: the Lua side of tests/data/go_formats.txt (the C
-- side is tests/unit/go_formats_test.c): bosk.duration and wire.go_quote
-- give Go's answers, the same as the server's C code; and a real server's
-- "type not found" text for a name Go escapes is recognised by the client.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local duration = require "bosk.duration"
local wire = require "bosk.wire"
local boskos = require "boskos"

-- \\ is one backslash; \xNN one byte. A tiny scanner is clearer than gsub.
local function decode_input(s)
  local out, i = {}, 1
  while i <= #s do
    if s:sub(i, i + 1) == "\\x" then
      out[#out + 1] = string.char(tonumber(s:sub(i + 2, i + 3), 16))
      i = i + 4
    elseif s:sub(i, i + 1) == "\\\\" then
      out[#out + 1] = "\\"
      i = i + 2
    else
      out[#out + 1] = s:sub(i, i)
      i = i + 1
    end
  end
  return table.concat(out)
end

local cases = {}
for line in assert(io.lines(T.root .. "/tests/data/go_formats.txt")) do
  if line ~= "" and line:sub(1, 1) ~= "#" then
    local kind, input, want = line:match("^(%a+)\t([^\t]*)\t(.*)$")
    assert(kind, "bad line in go_formats.txt: " .. line)
    cases[#cases + 1] = { kind = kind, input = input, want = want, line = line }
  end
end

local function each(kind, fn)
  local n = 0
  for _, c in ipairs(cases) do
    if c.kind == kind then n = n + 1 fn(c) end
  end
  T.ok(n > 10, "cases of kind " .. kind, n)
end

T.test("duration.parse gives Go's value or Go's error for every table case", function()
  local gofmt = require "bosk.gofmt"
  each("parse", function(c)
    local text = decode_input(c.input)
    local secs, err = duration.parse(text)
    local _, ns = gofmt.parse_duration(text)
    if c.want:sub(1, 7) == "error: " then
      T.eq({ secs, err }, { nil, c.want:sub(8) }, c.line)
    else
      T.eq(ns, math.tointeger(tonumber(c.want)), c.line)
      T.ok(math.abs(secs - tonumber(c.want) / 1e9) <= 1e-9 * math.abs(secs), c.line, secs)
    end
  end)
  local secs, err = duration.parse("3000000h")
  T.eq({ secs, err }, { nil, 'time: invalid duration "3000000h"' }, "overflow is Go's error")
end)

T.test("duration.format gives Go's Duration.String for every table case", function()
  each("format", function(c)
    local ns = math.tointeger(tonumber(c.input))
    -- Lua carries seconds as floats: exact only below 2^53 ns (104 days).
    if math.abs(ns) < 2^53 then T.eq(duration.format(ns / 1e9), c.want, c.line) end
  end)
  T.eq(duration.format(5400), "1h30m0s", "integer seconds")
  T.ok(not pcall(duration.format, 1e300), "out of a Go Duration's range raises")
end)

T.test("wire.go_quote gives Go's %q for every table case", function()
  each("quote", function(c) T.eq(wire.go_quote(decode_input(c.input)), c.want, c.line) end)
  T.eq(wire.go_quote("a\u{180e}"), '"a\\u180e"', "U+180E escaped")
end)

local ok, server = pcall(T.start_server, { config = "resources:\n- type: project\n  state: free\n  names: [p1]\n" })
if not ok then
  T.skip("type not found with escaped characters", "bosk server did not start: " .. tostring(server):sub(1, 200))
else
  T.test("distinguish_not_found recognises the server's text for a name %q escapes", function()
    local c = assert(boskos.client{ owner = "o", url = server.url, distinguish_not_found = true,
                                    dialer = { retry_count = 0, retry_sleep = 0.01, timeout = 2 } })
    for _, rtype in ipairs({ "gpu\u{180e}", "a\u{a0}b", "x\u{200b}", "plain-missing" }) do
      local r, err = c:acquire(rtype, "free", "busy")
      T.ok(r == nil and err == boskos.ErrTypeNotFound, "unknown type " .. wire.go_quote(rtype), err)
    end
    T.ok(select(2, c:acquire("project", "dirty", "busy")) == boskos.ErrNotFound, "known type, none in state")
  end)
end

T.cleanup()
