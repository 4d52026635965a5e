-- tap.lua: runs one Lua test file and ends its output with the TAP plan.
--
--   bosk run tests/lib/tap.lua tests/foo_test.lua [ARGS...]
--
-- The plan line `1..N` (N = the tests the file reported through testlib)
-- is printed only after the file's chunk has returned, so a file that
-- stops early (os.exit, a crash, a kill) has no plan and tests/run.sh and
-- `prove` count it as failed. An error raised outside T.test becomes one
-- more `not ok` line, and the exit status is then 1.
local file = arg[1]
if not file then
  io.stderr:write("usage: bosk run tests/lib/tap.lua TEST_FILE.lua [ARGS...]\n")
  os.exit(2)
end

-- The test file sees `arg` as if it had been run directly.
local shifted = {}
for i, v in pairs(arg) do shifted[i - 1] = v end
arg = shifted

-- Counters shared with tests/lib/testlib.lua (which every test file
-- loads with dofile, so only a global is common to all its copies).
local counts = rawget(_G, "__testlib_counts") or { passed = 0, failed = 0, skipped = 0 }
_G.__testlib_counts = counts

local function report_error(what, err)
  counts.failed = counts.failed + 1
  print("not ok - " .. file .. ": " .. what)
  for line in tostring(err):gmatch("[^\n]+") do print("  " .. line) end
end

local chunk, load_err = loadfile(file)
local ok, err = false, load_err
if chunk then
  ok, err = xpcall(chunk, debug.traceback, table.unpack(arg, 1))
  if not ok then report_error("error outside a test", err) end
else
  report_error("cannot load", load_err)
end
print(string.format("1..%d", counts.passed + counts.failed + counts.skipped))
io.stdout:flush()
if not ok then os.exit(1) end
