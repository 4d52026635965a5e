-- The Makefile: plain `make`, `clean` and `install` never run apt-get
-- (they used to, at parse time, through scripts/install-deps.sh); `make
-- deps`, `test` and `demo` install what is missing; the benchmark-only
-- tools come with `make bench`.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local root = os.getenv("BOSK_ROOT") or "."

-- Stand-ins for the package tools, earlier on PATH: each call is logged.
local stubs = T.tmpdir()
local calls = stubs .. "/calls"
for _, tool in ipairs({ "dpkg-query", "apt-get", "sudo" }) do
  T.write_file(stubs .. "/" .. tool, "#!/bin/sh\necho " .. tool .. " \"$@\" >> " .. T.shell_quote(calls) .. "\nexit 1\n")
  T.sh("chmod +x " .. T.shell_quote(stubs .. "/" .. tool))
end

-- What `make -n TARGET` would run (nothing is run, nothing installed), and
-- which package tools were called meanwhile (a parse-time $(shell ...)).
local function dry_run(target)
  T.write_file(calls, "")
  local out = T.sh("cd " .. T.shell_quote(root) .. " && PATH=" .. T.shell_quote(stubs) .. ":$PATH make -n "
                   .. target .. " 2>&1")
  return out, T.read_file(calls)
end

T.test("make, make clean and make install never touch apt", function()
  for _, target in ipairs({ "", "clean", "install DESTDIR=/nonexistent-bosk-test" }) do
    local out, tools = dry_run(target)
    T.eq(tools, "", "make " .. target .. ": package tools called")
    T.ok(not out:find("install-deps", 1, true) and not out:find("apt-get", 1, true),
         "make " .. target .. " runs no installer", out)
  end
end)

T.test("make deps, test and demo install what is missing; bench adds its tools", function()
  for _, target in ipairs({ "deps", "test", "demo" }) do
    local out = dry_run(target)
    T.contains(out, "scripts/install-deps.sh", "make " .. target)
  end
  T.contains(dry_run("bench"), "scripts/install-deps.sh --bench", "make bench")
  local script = T.read_file(root .. "/scripts/install-deps.sh")
  local default_list = script:match("packages=%((.-)%)")
  T.ok(default_list and not default_list:find("wrk", 1, true) and not default_list:find("hyperfine", 1, true),
       "wrk and hyperfine only with --bench", default_list)
end)
