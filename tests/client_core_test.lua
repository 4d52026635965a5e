-- client_core_test: bosk.client_core, the part both Lua clients (the
-- `boskos` module's and the janitor's) share: the one password-file
-- reader, the password kept fresh, what each status means per call.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local ccore = require "bosk.client_core"

T.test("read_password trims the text and names the file it could not read", function()
  local dir = T.tmpdir()
  T.eq(ccore.read_password(T.write_file(dir .. "/pw", " \tsecret \n\n")), "secret")
  local pw, err = ccore.read_password(dir .. "/missing")
  T.eq(pw, nil)
  T.contains(err, dir .. "/missing", "names the file")
  pw, err = ccore.read_password(dir)
  T.eq(pw, nil, "a directory")
  T.contains(err, dir, "names the directory")
end)

T.test("a password source re-reads a changed file and keeps the last good one", function()
  local dir = T.tmpdir()
  local path = T.write_file(dir .. "/pw", "one\n")
  local src = assert(ccore.password_file(path))
  T.eq(src:current(), "one")
  T.write_file(path, "two-longer\n")
  T.eq(src:current(), "two-longer", "rotated")
  os.remove(path)
  T.eq(src:current(), "two-longer", "vanished file keeps the last password")
  local none, err = ccore.password_file(dir .. "/nope")
  T.eq(none, nil)
  T.contains(err, dir .. "/nope")
  T.eq(ccore.password_file(path, "known"):current(), "known", "a known password needs no file")
end)

T.test("one table says what each status means for each call", function()
  local want = {
    { "/acquire", 200, "ok" }, { "/acquire", 401, "in_use" }, { "/acquire", 404, "not_found" },
    { "/acquire", 500, "error" }, { "/acquirebystate", 404, "not_found" },
    { "/release", 401, "lost" }, { "/release", 404, "lost" }, { "/release", 409, "error" },
    { "/update", 409, "lost" }, { "/reset", 404, "error" }, { "/metric", 404, "not_found" },
    { "/resources", 404, "unsupported" }, { "/nosuch", 200, "error" },
  }
  for _, w in ipairs(want) do T.eq(ccore.meaning(w[1], w[2]), w[3], w[1] .. " " .. w[2]) end
  T.ok(ccore.type_not_found('resource type "a\\u180e" does not exist\n', "a\u{180e}"), "type not found")
  T.ok(not ccore.type_not_found("resources not found\n", "a"), "none free")
end)

T.cleanup()
