-- The libFuzzer harnesses (tests/fuzz/, docs/fuzzing.md) for a few seconds
-- each, from their seed corpora, under ASan + UBSan: a parser regression
-- that crashes, reads out of bounds or breaks a harness's invariant on a
-- seed or on what a short run derives from the seeds fails here.
-- `make test` builds them (make fuzz-build); without clang they skip.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")

local root = os.getenv("BOSK_ROOT") or "."
local seconds = tonumber(os.getenv("FUZZ_TEST_SECONDS") or "") or 3
-- Every tests/fuzz/<name>_fuzz.c; url_fuzz.c needs src/server/http_url.c.
local harnesses = {}
for file in T.sh("ls " .. T.shell_quote(root) .. "/tests/fuzz/"):gmatch("(%w+)_fuzz%.c") do
  harnesses[#harnesses + 1] = file
end
local needs = { url = "src/server/http_url.c" }

for _, name in ipairs(harnesses) do
  local bin = root .. "/build/fuzz/" .. name
  local test_name = string.format("fuzz %s for %ds from tests/fuzz/%s/", name, seconds, name)
  if needs[name] and not io.open(root .. "/" .. needs[name], "rb") then
    T.skip(test_name, needs[name] .. " is not in this tree")
  elseif not io.open(bin, "rb") then
    T.skip(test_name, "build/fuzz/" .. name .. " not built (needs clang and libclang-rt-dev)")
  else
    T.test(test_name, function()
      local corpus = T.tmpdir()
      local out, ok = T.sh(string.format("cd %s && FUZZ_CORPUS=%s tests/fuzz/run.sh build/fuzz %s %d 2>&1",
                                         T.shell_quote(root), T.shell_quote(corpus), name, seconds))
      print("# " .. out:gsub("\n$", ""):gsub("\n", "\n# "))
      T.ok(ok, "tests/fuzz/run.sh " .. name .. " found a crash (above)")
    end)
  end
end
