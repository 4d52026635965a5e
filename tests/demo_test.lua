-- `make demo` (scripts/demo.sh), the README's main job, run as CI runs it:
-- no terminal, no stdin. Every dirty resource ends free, the mason-built
-- cluster's projects come back, and the server is stopped afterwards.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")

T.test("make demo cleans every dirty resource and stops its server", function()
  local out, err, code = T.run({ T.root .. "/scripts/demo.sh" },
                               { bin = "bash", env = { BOSK = T.bosk }, timeout = 120 })
  T.eq(code, 0, "exit status; stderr:\n" .. err .. "\nstdout:\n" .. out)
  local before, after = out:match("== before\n(.-)\n== bosk janitor.-== after\n(.-)\n== stopping")
  T.ok(before, "before/after sections", out)
  T.match(before, "gce%-project%s+[^\n]*dirty=6", "dirty projects before")
  T.match(after, "gce%-project%s+free=8\n", "every project free after")
  T.match(after, "aws%-account%s+free=3\n", "every account free after")
  T.match(after, "gke%-cluster%s+tombstone=2\n", "clusters tombstoned")
  T.match(out, "janitor exit status: 0", "janitor --once succeeded")
  T.ok(not out:find("outcome=failed", 1, true), "no failed cleaning", out)
end)
