-- runner_test: tests/run.sh and tests/lib/tap.lua on small made-up test
-- files in a temp dir: a file that stops early (os.exit(0) midway), one
-- whose plan disagrees with its lines and one that raises outside a test
-- are failures naming the file; complete files and an early `return`
-- (a skip) pass. `prove` reads the same files the same way.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")

local HEADER = 'local T = dofile(os.getenv("BOSK_ROOT") .. "/tests/lib/testlib.lua")\n'
local FILES = {
  good_test = HEADER .. [[
T.test("first", function() end)
T.test("second", function() T.eq(1 + 1, 2) end)
]],
  skipped_test = HEADER .. [[
T.skip("needs something", "not here")
do return end
T.test("never reached", function() end)
]],
  truncated_test = HEADER .. [[
T.test("before the exit", function() end)
os.exit(0)
T.test("lost after the exit", function() end)
]],
  stray_test = HEADER .. [[
T.test("counted", function() end)
print("ok - printed by hand, not counted by testlib")
]],
  raises_test = HEADER .. [[
T.test("fine", function() end)
error("boom outside any test")
]],
}

local function write_suite(names)
  local dir = T.tmpdir()
  for _, name in ipairs(names) do T.write_file(dir .. "/" .. name .. ".lua", FILES[name]) end
  return dir
end

-- Runs tests/run.sh on `dir`'s files only -> output, exit code.
local function run_suite(dir)
  return T.run({}, {
    bin = T.root .. "/tests/run.sh", timeout = 60,
    env = { TESTS = dir .. "/*_test.lua", UNIT = "", TEST_JOBS = "2", BOSK = T.bosk },
  })
end

T.test("run.sh: a file that calls os.exit(0) midway is a failure naming it", function()
  local out, err, code = run_suite(write_suite({ "good_test", "truncated_test" }))
  T.eq(err, "", "stderr")
  T.match(out, "not ok %- [^\n]*/truncated_test%.lua ended %(exit status 0%) before its plan line",
          "the truncated file is named")
  T.match(out, "\n3 passed, 1 failed\n$", "summary line")
  T.eq(code, 1, "exit status")
end)

T.test("run.sh: a plan that disagrees with the lines, and an error outside a test, fail", function()
  local out, _, code = run_suite(write_suite({ "stray_test", "raises_test" }))
  T.match(out, "not ok %- [^\n]*/stray_test%.lua planned 1 tests but reported 2", "mismatch named")
  T.match(out, "not ok %- [^\n]*/raises_test%.lua: error outside a test", "error reported")
  T.contains(out, "boom outside any test", "the error text is shown")
  T.match(out, "\n3 passed, 2 failed\n$", "summary line")
  T.eq(code, 1, "exit status")
end)

T.test("run.sh: complete files and an early return pass, skips are counted", function()
  local out, _, code = run_suite(write_suite({ "good_test", "skipped_test" }))
  T.ok(not out:find("not ok", 1, true), "no failure", out)
  T.match(out, "\n2 passed, 0 failed, 1 skipped\n$", "summary line")
  T.eq(code, 0, "exit status")
end)

T.test("tap.lua gives the file its own arg table", function()
  local dir = T.tmpdir()
  local file = T.write_file(dir .. "/args_test.lua", HEADER .. [[
local a, b = ...
T.test("args", function() T.eq({ arg[0]:match("[^/]+$"), arg[1], a, b }, { "args_test.lua", "x", "x", "y" }) end)
]])
  local out, _, code = T.run({ "run", T.root .. "/tests/lib/tap.lua", file, "x", "y" },
                             { env = { BOSK_ROOT = T.root } })
  T.match(out, "^ok %- args [^\n]*\n1%.%.1\n$", "stdout")
  T.eq(code, 0, "exit status")
end)

local have_prove = select(2, T.sh("command -v prove >/dev/null 2>&1"))
if not have_prove then
  T.skip("prove reads the plan", "prove is not installed")
else
  T.test("prove reads the plan: the truncated file fails, the others pass", function()
    local dir = write_suite({ "good_test", "skipped_test", "truncated_test" })
    local exec = T.bosk .. " run " .. T.root .. "/tests/lib/tap.lua"
    local out, _, code = T.run({ "-e", exec, dir .. "/good_test.lua", dir .. "/skipped_test.lua",
                                 dir .. "/truncated_test.lua" },
                               { bin = "prove", timeout = 60, env = { BOSK_ROOT = T.root } })
    T.match(out, "good_test%.lua %.%.+ ok", "good file passes")
    T.match(out, "skipped_test%.lua %.%.+ ok", "a file that skips passes")
    T.match(out, "truncated_test%.lua %(Wstat: 0[^\n]*\n%s*Parse errors: No plan found", "truncated file has no plan")
    T.match(out, "Result: FAIL", "prove's verdict")
    T.ok(code ~= 0, "prove exits non-zero", code)
  end)
end

T.cleanup()
