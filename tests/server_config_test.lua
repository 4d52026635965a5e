-- bosk server: hostile or broken configs and stores at start. Repeated
-- keys (they overflowed a heap buffer), alias bombs (12 s and 820 MB for
-- 26 KB), `needs` with a null type, and SQLite stores whose folder is
-- missing or not writable or whose stored lifecycle is bad: each ends in a
-- clear message naming the file, never a crash. See docs/limits-config.md.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local S = require "server"

-- `bosk server` that must fail at start: stderr, exit status, seconds taken.
local function start_fails(cfg, storage)
  local args = { "server", "--config", cfg, "--listen", "127.0.0.1:" .. S.free_port(T) }
  if storage then args[#args + 1] = "--storage" args[#args + 1] = storage end
  local t0 = T.now()
  local _, err, code = T.run(args, { timeout = 60 })
  T.ok(not err:find("Sanitizer", 1, true) and not err:find("runtime error", 1, true), "sanitizer report", err)
  return err, code, T.now() - t0
end

-- k entries aliasing one entry of m names: k*m names decoded from a file
-- of about 5k + 6m bytes.
local function bomb(k, m)
  local names = {}
  for i = 1, m do names[i] = "n" .. i end
  return "x: &n [" .. table.concat(names, ", ") .. "]\nresources:\n- &e {type: t, names: *n}\n"
         .. string.rep("- *e\n", k - 1)
end

T.test("repeated keys at start: exit 2 naming file, key and lines", function()
  local cfg = T.write_file(T.tmpdir() .. "/dup.yaml", "resources:\n- type: t\n  names: [a]\n  names: [b, c, d]\n"
                                                    .. "Resources:\n- type: u\n  names: [x]\n")
  local err, code = start_fails(cfg)
  T.eq(code, 2, "exit status")
  T.contains(err, cfg .. ":1: key resources given 2 times (lines 1, 5): give it once "
                  .. "(upstream boskos would silently use line 1)", "top-level repeat")
  T.contains(err, cfg .. ":3: key names given 2 times (lines 3, 4)", "names repeat")
end)

T.test("needs with a null type: a clear error", function()
  local cfg = T.write_file(T.tmpdir() .. "/c.yaml", "resources:\n- type: d\n  max-count: 1\n  needs: {~: 1}\n")
  local err, code = start_fails(cfg)
  T.eq(code, 2, "exit status")
  T.contains(err, cfg .. ":4: needs: a key must name a resource type, not be null", "message")
end)

T.test("an alias bomb at start is refused at once", function()
  local text = bomb(2000, 2000) -- 22 KB: 4 M names, ~6 s and ~400 MB before the cap
  local cfg = T.write_file(T.tmpdir() .. "/bomb.yaml", text)
  local err, code, took = start_fails(cfg)
  T.eq(code, 2, "exit status")
  T.contains(err, cfg .. ":1: aliases expand to more than 100000 nodes beyond the file's own", "message")
  T.ok(took < 3, "refused within 3 s", took)
end)

T.test("bosk.yaml (UserData:extract) refuses an alias bomb at once", function()
  local yaml = require "bosk.yaml"
  -- nine levels of ten aliases: a billion strings if expanded
  local lines = { "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]" }
  for i = 1, 9 do
    local prev = "*a" .. (i - 1)
    lines[#lines + 1] = string.format("a%d: &a%d [%s]", i, i, string.rep(prev .. ", ", 9) .. prev)
  end
  local t0 = T.now()
  local v, err = yaml.decode(table.concat(lines, "\n") .. "\n")
  T.eq(v, nil, "no value")
  T.contains(err, "aliases are not supported (line 2)", "message")
  T.ok(T.now() - t0 < 1, "at once", T.now() - t0)
end)

T.test("sqlite: a missing folder or a file in the path is named", function()
  local dir = T.tmpdir()
  local cfg = T.write_file(dir .. "/c.yaml", "resources:\n- type: t\n  names: [a]\n")
  local err, code = start_fails(cfg, "sqlite:" .. dir .. "/var/lib/bosk/boskos.db")
  T.eq(code, 1, "exit status")
  T.contains(err, "cannot open sqlite store " .. dir .. "/var/lib/bosk/boskos.db: folder " .. dir
                  .. "/var/lib/bosk does not exist", "missing folder")
  err, code = start_fails(cfg, "sqlite:" .. cfg .. "/boskos.db")
  T.eq(code, 1, "exit status")
  T.contains(err, cfg .. " is not a folder", "file in the path")
end)

-- As root every folder is writable, so the server runs as nobody there.
T.test("sqlite: a folder without write permission is named", function()
  local id = T.sh("id -u"):gsub("%s+", "")
  local prefix = {}
  if id == "0" then
    if not T.sh("command -v setpriv"):find("setpriv", 1, true) then
      return T.skip("sqlite: unwritable folder", "running as root without setpriv to drop to nobody")
    end
    prefix = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups" }
  end
  local dir = T.tmpdir()
  local cfg = T.write_file(dir .. "/c.yaml", "resources:\n- type: t\n  names: [a]\n")
  T.sh("mkdir " .. dir .. "/ro && chmod 755 " .. dir .. " && chmod 644 " .. cfg)
  -- an existing database (it said "disk I/O error" or "readonly database") and a new one
  local old = S.start(T, { config_path = cfg, storage = "sqlite:" .. dir .. "/ro/old.db" })
  S.stop(T, old)
  if id == "0" then T.sh("chown 65534 " .. dir .. "/ro/old.db") end
  T.sh("chmod 555 " .. dir .. "/ro")
  for _, db in ipairs{ "old.db", "new.db" } do
    local args = { table.unpack(prefix) }
    for _, a in ipairs{ T.bosk, "server", "--config", cfg, "--listen", "127.0.0.1:" .. S.free_port(T),
                        "--storage", "sqlite:" .. dir .. "/ro/" .. db } do args[#args + 1] = a end
    local bin = table.remove(args, 1)
    local _, err, code = T.run(args, { bin = bin, timeout = 30 })
    T.eq(code, 1, db .. ": exit status")
    T.contains(err, "cannot open sqlite store " .. dir .. "/ro/" .. db .. ": cannot write in folder "
                    .. dir .. "/ro: Permission denied", db .. ": message")
  end
  T.sh("chmod 755 " .. dir .. "/ro")
end)

T.test("sqlite: a bad stored lifecycle names its type (and frees the config)", function()
  local dir = T.tmpdir()
  local db = dir .. "/bosk.db"
  local cfg = T.write_file(dir .. "/c.yaml", "resources:\n- type: t\n  names: [a]\n")
  local srv = S.start(T, { config_path = cfg, storage = "sqlite:" .. db })
  S.stop(T, srv)
  local _, ok = T.sh("python3 -c " .. T.shell_quote(
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    .. "c.execute(\"INSERT INTO lifecycles VALUES('gone-type', 'not json')\"); c.commit()") .. " " .. db)
  T.ok(ok, "row inserted")
  local err, code = start_fails(cfg, "sqlite:" .. db)
  T.eq(code, 1, "exit status")
  T.contains(err, "sqlite load " .. db .. ": the stored lifecycle of type gone-type is not valid JSON", "message")
end)

T.cleanup()
