-- install_test: bosk as a user installs it. `make install` into a
-- temporary DESTDIR (every file in its place, the installed bosk runs),
-- both man pages render without a warning and name every subcommand,
-- flag and policy field, the installed `boskos` module works in plain
-- lua5.4 against a real `bosk server` (and so does the one `luarocks make`
-- builds), `make uninstall` leaves no file behind, a non-root user
-- installs into a PREFIX of their own, the systemd units pass
-- `systemd-analyze verify`, and the Dockerfile and Kubernetes manifests
-- are checked offline (they cannot run here: no Docker engine, no cluster).
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local yaml = require "bosk.yaml"
local duration = require "bosk.duration"
local q = T.shell_quote

local root = T.root
-- The build dir of the bosk under test (build/ or build/san/), so make
-- finds everything up to date and only builds the Lua module.
local build = T.bosk:match("^(.*)/bosk$")
local sanitize = os.getenv("SANITIZE") or ""

local function have(cmd) return (T.sh("command -v " .. q(cmd) .. " >/dev/null 2>&1 && echo yes")) == "yes\n" end
local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- make(args, user, dir) -> output, ok: make in the source tree (or dir),
-- outside the make that runs the tests (its jobserver is not ours).
local function make(args, user, dir)
  local prefix = user and ("runuser -u " .. user .. " -- ") or ""
  local cmd = string.format("cd %s && %senv -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s BUILD=%s SANITIZE=%s %s 2>&1",
                            q(dir or root), prefix, q(dir and (dir .. "/build") or build), q(sanitize), args)
  local out, ok = T.sh(cmd)
  return out, ok
end

local version = trim(T.sh(q(root .. "/mk/version.sh")))
local function file_exists(p) return os.execute("test -e " .. q(p)) == true end
local function executable(p) return os.execute("test -x " .. q(p)) == true end

local tmp = T.tmpdir()
local stage = tmp .. "/stage"
local usr = stage .. "/usr/local"

T.test("make install into a DESTDIR puts every file in its place, without apt-get", function()
  local out, ok = make("install DESTDIR=" .. q(stage) .. " PREFIX=/usr/local")
  T.ok(ok, "make install", out)
  T.ok(not out:find("apt", 1, true), "make install runs no apt-get", out)
  T.ok(executable(usr .. "/bin/bosk"), "bin/bosk")
  for _, rel in ipairs{
    "share/man/man1/bosk.1", "share/man/man5/bosk-policy.5",
    "share/bosk/boskos-resources.yaml", "share/bosk/policies/gce-project.lua",
    "share/bosk/kubernetes/bosk-janitor.yaml", "share/bosk/kubernetes/bosk-server.yaml",
    "share/bash-completion/completions/bosk",
    "lib/systemd/system/bosk-server.service", "lib/systemd/system/bosk-janitor.service",
    "lib/systemd/system/bosk-janitor-once@.service", "lib/systemd/system/bosk-janitor@.timer",
    "lib/systemd/system/bosk-janitor-once@.timer",
    "share/lua/5.4/boskos.lua", "share/lua/5.4/bosk/client.lua", "lib/lua/5.4/bosk.so",
    "share/doc/bosk/LICENSE", "share/doc/bosk/CHANGELOG.md", "share/doc/bosk/README.md",
  } do
    T.ok(file_exists(usr .. "/" .. rel), "installed " .. rel)
  end
  T.ok(executable(usr .. "/share/bosk/scripts/gcp-janitor.sh"), "example script keeps its x bit")
  T.contains(T.read_file(usr .. "/lib/systemd/system/bosk-server.service"),
             "ExecStart=/usr/local/bin/bosk server", "unit names the installed binary")
end)

T.test("the installed bosk prints its version: bosk --version, bosk version", function()
  T.match(version, "^%d+%.%d+%.%d+", "VERSION")
  for _, args in ipairs{ { "--version" }, { "version" } } do
    local out, err, code = T.run(args, { bin = usr .. "/bin/bosk" })
    T.eq(code, 0, "exit status of bosk " .. args[1] .. "; stderr " .. err)
    T.eq(out, "bosk " .. version .. "\n", "bosk " .. args[1])
  end
end)

T.test("both installed man pages render without warnings", function()
  if not have("groff") then return T.skip("man pages render", "groff is not installed (groff-base)") end
  for _, page in ipairs{ "man1/bosk.1", "man5/bosk-policy.5" } do
    local path = usr .. "/share/man/" .. page
    local out, ok = T.sh("groff -ww -man -Tutf8 -z " .. q(path) .. " 2>&1")
    T.ok(ok, "groff " .. page, out)
    T.eq(out, "", "groff warnings for " .. page)
    if have("man") then
      local text = T.sh("MANWIDTH=80 man --warnings -l " .. q(path) .. " 2>&1 >/dev/null")
      T.eq(text, "", "man -l warnings for " .. page)
    end
    local rendered = T.sh("groff -man -Tutf8 " .. q(path) .. " 2>/dev/null")
    T.ok(#rendered > 2000, "rendered " .. page, rendered)
  end
end)

-- The subcommands `bosk help` lists, and the flags `bosk CMD --help` lists.
local function subcommands()
  local out = T.run({ "help" })
  local names = {}
  -- "  run [-e CODE] ..." names one; "  acquire | release | ..." several.
  for line in out:gmatch("[^\n]+") do
    local head = line:match("^  (%l[%w |%-]*)")
    if head and head:find("|", 1, true) then
      for w in head:gmatch("%l[%w%-]*") do names[#names + 1] = w end
    elseif head then
      names[#names + 1] = head:match("^%l[%w%-]*")
    end
  end
  return names
end

local function flags_of(cmd)
  local out, _, code = T.run({ cmd, "--help" })
  if code ~= 0 then return {} end
  local flags = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^%s+%-%-") then
      for f in line:match("^%s+(%S[^ ]*[^ ]*)"):gmatch("%-%-[%w_%-]+") do flags[#flags + 1] = f end
      for f in (line:match("^%s+%-%-[%w_%-]+, (%-%-[%w_%-]+)") or ""):gmatch("%-%-[%w_%-]+") do
        flags[#flags + 1] = f
      end
    end
  end
  return flags
end

local function roff(s) return (s:gsub("%-", "\\-")) end

-- has_word(text, w): w occurs in text, not as the start of a longer flag.
local function has_word(text, w)
  local from = 1
  while true do
    local i, j = text:find(w, from, true)
    if not i then return false end
    if not text:sub(j + 1, j + 1):match("[%w_%-]") then return true end
    from = j + 1
  end
end

T.test("bosk(1) and the bash completion name every subcommand and flag", function()
  local page = T.read_file(root .. "/man/bosk.1")
  local completion = T.read_file(root .. "/completion/bosk.bash")
  local cmds = subcommands()
  T.ok(#cmds >= 10, "subcommands found in bosk help", cmds)
  local missing = {}
  for _, cmd in ipairs(cmds) do
    if not page:find(".B " .. roff(cmd), 1, true) and not page:find("bosk " .. roff(cmd), 1, true)
       and not page:find(".BR " .. roff(cmd), 1, true) then
      missing[#missing + 1] = "bosk.1: subcommand " .. cmd
    end
    if not completion:find(cmd, 1, true) then missing[#missing + 1] = "completion: subcommand " .. cmd end
    for _, flag in ipairs(flags_of(cmd)) do
      if not page:find(roff(flag), 1, true) then missing[#missing + 1] = "bosk.1: " .. cmd .. " " .. flag end
      if not has_word(completion, flag) then missing[#missing + 1] = "completion: " .. cmd .. " " .. flag end
    end
  end
  T.eq(missing, {}, "subcommands and flags not documented")
end)

T.test("bosk-policy(5) names every policy, reaper and exec field", function()
  local page = T.read_file(root .. "/man/bosk-policy.5")
  local src = T.read_file(root .. "/lua/bosk/janitor_policy.lua")
  local missing, seen = {}, 0
  for _, tbl in ipairs{ "POLICY_FIELDS", "REAPER_FIELDS", "EXEC_OPTIONS" } do
    local body = src:match("local " .. tbl .. " = (%b{})")
    T.ok(body, tbl .. " in janitor_policy.lua")
    for field in body:gmatch("([%a_][%w_]*) = ") do
      seen = seen + 1
      if not page:find(field, 1, true) then missing[#missing + 1] = tbl .. "." .. field end
    end
  end
  T.ok(seen >= 15, "fields found", seen)
  T.eq(missing, {}, "fields bosk-policy(5) does not name")
end)

-- lua_client(lua_path, cpath, url) -> output, ok: plain lua5.4 (not bosk)
-- loads boskos from the given tree, checks where it came from and that
-- libcurl is loaded only by the first request, then leases and releases.
local CLIENT_SCRIPT = [[
local tree_lua, tree_c, url = ...
local function maps_have(lib)
  local f = io.open("/proc/self/maps")
  if not f then return nil end
  local text = f:read("a") f:close()
  return text:find(lib, 1, true) ~= nil
end
local boskos = require "boskos"
local core = require "bosk.core"
assert(package.searchpath("boskos", package.path):sub(1, #tree_lua) == tree_lua, "boskos.lua from the tree")
assert(package.searchpath("bosk", package.cpath):sub(1, #tree_c) == tree_c, "bosk.so from the tree")
print("version " .. core.version)
print("curl before " .. tostring(maps_have("libcurl")))
local c = assert(boskos.client{ owner = "plain-lua", url = url })
local r = assert(c:acquire("t", boskos.FREE, boskos.BUSY))
print("curl after " .. tostring(maps_have("libcurl")))
print("acquired " .. r.name .. " " .. r.state .. " " .. r.owner)
local m = assert(c:metric("t"))
print("busy " .. tostring(m.current.busy))
assert(c:release(r.name, boskos.DIRTY))
local _, err = c:acquire("no-such-type", boskos.FREE, boskos.BUSY)
print("unknown type: " .. tostring(err) .. " " .. tostring(err == boskos.ErrNotFound))
]]

local function lua_client(lua_dir, c_dir, url)
  local script = T.write_file(T.tmpdir() .. "/client.lua", CLIENT_SCRIPT)
  local cmd = string.format("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s %s %s 2>&1",
                            q(lua_dir .. "/?.lua;;"), q(c_dir .. "/?.so;;"), q(script),
                            q(lua_dir), q(c_dir), q(url))
  return T.sh(cmd)
end

local function check_client_output(out, ok, srv)
  T.ok(ok, "plain lua5.4 client", out)
  T.contains(out, "version " .. version .. "\n", "bosk.core.version")
  T.contains(out, "curl before false\n", "libcurl not loaded by require")
  T.contains(out, "curl after true\n", "libcurl loaded by the first request")
  T.match(out, "acquired r%d busy plain%-lua\n", "acquire")
  T.contains(out, "busy 1\n", "metric")
  T.contains(out, "unknown type: resources not found true\n", "ErrNotFound, compared with ==")
  -- The server saw it: one resource dirty, released by plain-lua.
  local status, body = T.http("GET", srv.url .. "/metric?type=t")
  T.eq(status, 200, "metric status")
  T.contains(body, '"dirty":1', "released dirty")
end

T.test("the installed boskos module works in plain lua5.4 against bosk server", function()
  if not have("lua5.4") then return T.skip("plain lua5.4 client", "lua5.4 is not installed") end
  local srv = T.start_server()
  local out, ok = lua_client(usr .. "/share/lua/5.4", usr .. "/lib/lua/5.4", srv.url)
  check_client_output(out, ok, srv)
  srv:stop()
end)

T.test("luarocks make builds the same module, which works in plain lua5.4", function()
  if not have("luarocks") then return T.skip("luarocks make", "luarocks is not installed") end
  -- A copy of the files the rockspec reads: luarocks builds in place.
  local src = T.tmpdir()
  local out, ok = T.sh(string.format("cd %s && cp -r lua src bosk-scm-1.rockspec README.md %s/ 2>&1", q(root), q(src)))
  T.ok(ok, "copy the tree", out)
  local rocks = T.tmpdir()
  out, ok = T.sh(string.format("cd %s && HOME=%s luarocks --lua-version=5.4 make --tree=%s --deps-mode=none bosk-scm-1.rockspec 2>&1",
                               q(src), q(rocks), q(rocks)))
  T.ok(ok, "luarocks make", out)
  local srv = T.start_server()
  out, ok = lua_client(rocks .. "/share/lua/5.4", rocks .. "/lib/lua/5.4", srv.url)
  -- The rockspec's BOSK_VERSION must follow VERSION.
  check_client_output(out, ok, srv)
  srv:stop()
end)

T.test("make uninstall removes every file make install put there", function()
  local out, ok = make("uninstall DESTDIR=" .. q(stage) .. " PREFIX=/usr/local")
  T.ok(ok, "make uninstall", out)
  local left = T.sh("find " .. q(stage) .. " ! -type d")
  T.eq(left, "", "files left behind")
  for _, rel in ipairs{ "share/bosk", "share/doc/bosk", "share/lua/5.4/bosk" } do
    T.ok(not file_exists(usr .. "/" .. rel), rel .. " removed")
  end
end)

-- ---- a user's own PREFIX, and the systemd units installed there ---------

local prefix = tmp .. "/home/prefix"
local installer, tree, as_old = nil, nil, ""
T.test("make install and uninstall work for a non-root user into a writable PREFIX", function()
  os.execute("mkdir -p " .. q(prefix))
  local is_root = trim(T.sh("id -u")) == "0"
  if is_root then
    if not have("runuser") then
      return T.skip("non-root install", "running as root and runuser(1) is missing")
    end
    installer = "nobody"
    T.ok(os.execute("chmod 755 " .. q(tmp) .. " " .. q(tmp .. "/home") .. " && chown nobody " .. q(prefix)), "chown")
    if os.execute("runuser -u nobody -- test -r " .. q(build .. "/bosk")) ~= true then
      -- The tree is not readable by nobody (a clone under /root): install
      -- from nobody's own copy, with the binaries built here taken as up
      -- to date (-o), as a user would after building.
      tree = tmp .. "/home/src"
      local out, ok = T.sh(string.format(
        "mkdir -p %s/build/lualib && cd %s && cp -r Makefile mk man completion config lua src scripts "
        .. "README.md CHANGELOG.md LICENSE VERSION %s/ && cp %s/bosk %s/build/ && cp %s/lualib/bosk.so %s/build/lualib/ "
        .. "&& chown -R nobody %s 2>&1", q(tree), q(root), q(tree), q(build), q(tree), q(build), q(tree), q(tree)))
      T.ok(ok, "copy the tree for nobody", out)
      as_old = "-o " .. q(tree .. "/build/bosk") .. " -o " .. q(tree .. "/build/lualib/bosk.so") .. " "
    end
  end
  local out, ok = make(as_old .. "install PREFIX=" .. q(prefix), installer, tree)
  T.ok(ok, "make install as " .. (installer or "this user"), out)
  local owner = trim(T.sh("stat -c %U " .. q(prefix .. "/bin/bosk")))
  T.eq(owner, installer or trim(T.sh("id -un")), "owner of the installed bosk")
  local got = T.sh((installer and ("runuser -u " .. installer .. " -- ") or "") .. q(prefix .. "/bin/bosk") .. " --version")
  T.eq(got, "bosk " .. version .. "\n", "installed bosk --version")
  T.contains(T.read_file(prefix .. "/lib/systemd/system/bosk-janitor.service"),
             "ExecStart=" .. prefix .. "/bin/bosk janitor", "units point at PREFIX/bin/bosk")
end)

T.test("the installed systemd units pass systemd-analyze verify", function()
  if not have("systemd-analyze") then
    return T.skip("systemd-analyze verify", "systemd-analyze is missing (Debian package systemd)")
  end
  local units = prefix .. "/lib/systemd/system"
  T.ok(file_exists(units .. "/bosk-server.service"), "units installed by the previous test")
  -- Templates are verified as instances, as systemd would load them.
  local dir = T.tmpdir()
  T.ok(os.execute(string.format("cp %s/bosk-* %s/", q(units), q(dir))), "copy units")
  local names = { "bosk-server.service", "bosk-janitor.service" }
  for _, template in ipairs{ "bosk-janitor-once@.service", "bosk-janitor@.timer", "bosk-janitor-once@.timer" } do
    local instance = template:gsub("@%.", "@gce-project.")
    os.execute(string.format("cp %s/%s %s/%s", q(dir), template, q(dir), instance))
    names[#names + 1] = instance
  end
  local args = {}
  for i, n in ipairs(names) do args[i] = q(dir .. "/" .. n) end
  -- MANPATH: verify also checks that Documentation=man:bosk(1) exists.
  local out, ok = T.sh(string.format("cd %s && MANPATH=%s systemd-analyze verify %s 2>&1",
                                     q(dir), q(prefix .. "/share/man"), table.concat(args, " ")))
  T.ok(ok, "systemd-analyze verify exit status", out)
  T.eq(out, "", "systemd-analyze verify findings")
  local server = T.read_file(units .. "/bosk-server.service")
  for _, want in ipairs{ "StateDirectory=bosk", "DynamicUser=yes", "sqlite:/var/lib/bosk/",
                         "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "ProtectSystem=strict" } do
    T.contains(server, want, "bosk-server.service")
  end
  local janitor = T.read_file(units .. "/bosk-janitor.service")
  for _, want in ipairs{ "--state-file /var/lib/bosk-janitor/", "StateDirectory=bosk-janitor",
                         "ExecReload=/bin/kill -HUP $MAINPID", "KillMode=mixed", "NoNewPrivileges=yes",
                         "ProtectSystem=strict" } do
    T.contains(janitor, want, "bosk-janitor.service")
  end
  -- Stop timeout above the grace the janitor is given.
  local grace = duration.parse(janitor:match("%-%-grace (%S+)"))
  T.ok(tonumber(janitor:match("TimeoutStopSec=(%d+)")) > grace, "TimeoutStopSec > --grace")
  T.contains(T.read_file(units .. "/bosk-janitor-once@.service"), "--once", "once unit")
  T.contains(T.read_file(units .. "/bosk-janitor@.timer"), "Unit=bosk-janitor-once@%i.service", "timer unit")
end)

T.test("make uninstall as the same user empties the PREFIX", function()
  local out, ok = make("uninstall PREFIX=" .. q(prefix), installer, tree)
  T.ok(ok, "make uninstall", out)
  T.eq(T.sh("find " .. q(prefix) .. " ! -type d"), "", "files left behind")
end)

-- ---- Kubernetes manifests and the Dockerfile (offline) ---------------

-- docs(path) -> the YAML documents of a manifest file, decoded.
local function manifest_docs(path)
  local text = T.read_file(path)
  local docs = {}
  for chunk in ("\n" .. text .. "\n---\n"):gmatch("(.-)\n%-%-%-\n") do
    if chunk:find("%S") and chunk:gsub("#[^\n]*", ""):find("%S") then
      local doc, err = yaml.decode(chunk)
      T.ok(doc, path .. ": YAML", err)
      docs[#docs + 1] = doc
    end
  end
  return docs
end

local function by_kind(docs)
  local out = {}
  for _, d in ipairs(docs) do
    T.ok(d.apiVersion and d.kind and d.metadata and d.metadata.name, "apiVersion, kind, metadata.name", d)
    out[d.kind] = out[d.kind] or {}
    out[d.kind][d.metadata.name] = d
  end
  return out
end

-- flag(args, name) -> the value of --name=value (or --name value) in a list.
local function flag(args, name)
  for i, a in ipairs(args) do
    local v = a:match("^%-%-" .. name:gsub("%-", "%%-") .. "=(.*)$")
    if v then return v end
    if a == "--" .. name then return args[i + 1] end
  end
end

-- mount_of(pod, path) -> the volume that holds path, and its mountPath.
local function mount_of(pod, container, path, claim_templates)
  for _, m in ipairs(container.volumeMounts or {}) do
    if path:sub(1, #m.mountPath + 1) == m.mountPath .. "/" then
      for _, v in ipairs(pod.volumes or {}) do
        if v.name == m.name then return v, m end
      end
      for _, t in ipairs(claim_templates or {}) do
        if t.metadata.name == m.name then return { persistentVolumeClaim = t }, m end
      end
    end
  end
end

-- The flags a manifest passes are accepted by the bosk that the image
-- holds: `bosk CMD FLAGS... --help` exits 0 only if every flag is known.
local function flags_accepted(args)
  local words = {}
  for _, a in ipairs(args) do if a:sub(1, 1) == "-" or #words == 0 then words[#words + 1] = a end end
  words[#words + 1] = "--help"
  local out, err, code = T.run(words)
  T.eq(code, 0, "bosk " .. table.concat(words, " ") .. ": " .. err .. out)
end

local dockerfile = T.read_file(root .. "/Dockerfile")
local image_uid = dockerfile:match("\nUSER (%d+)")

T.test("config/kubernetes/bosk-janitor.yaml: janitor Deployment with policies, state volume, metrics probe", function()
  local kinds = by_kind(manifest_docs(root .. "/config/kubernetes/bosk-janitor.yaml"))
  local dep = T.ok(kinds.Deployment and kinds.Deployment["bosk-janitor"], "Deployment bosk-janitor")
  T.eq(dep.apiVersion, "apps/v1", "apiVersion")
  T.eq(dep.spec.replicas, 1, "one janitor per state file")
  T.eq(dep.spec.selector.matchLabels.app, dep.spec.template.metadata.labels.app, "selector matches labels")
  local pod = dep.spec.template.spec
  local c = pod.containers[1]
  T.eq(c.args[1], "janitor", "runs bosk janitor")
  flags_accepted(c.args)
  -- Policies: every file named is a key of the mounted ConfigMap, and loads.
  local n = 0
  for _, a in ipairs(c.args) do
    if a:sub(1, 1) == "/" then
      n = n + 1
      local vol, m = mount_of(pod, c, a)
      T.ok(vol and vol.configMap, a .. " comes from a ConfigMap", vol)
      local cm = T.ok(kinds.ConfigMap[vol.configMap.name], "ConfigMap " .. vol.configMap.name)
      local text = T.ok(cm.data[a:sub(#m.mountPath + 2)], "policy key for " .. a)
      local path = T.write_file(T.tmpdir() .. "/policy.lua", text)
      local policy = require "bosk.janitor_policy"
      local okp, err = policy.load(policy.registry(), path)
      T.ok(okp, "policy from the ConfigMap loads", err)
    end
  end
  T.ok(n >= 1, "at least one policy file")
  -- --state-file on a persistent volume.
  local state = T.ok(flag(c.args, "state-file"), "--state-file")
  local vol = mount_of(pod, c, state)
  T.ok(vol and vol.persistentVolumeClaim, "--state-file on a PersistentVolumeClaim", vol)
  T.ok(kinds.PersistentVolumeClaim[vol.persistentVolumeClaim.claimName], "the PVC is defined")
  -- Metrics port, and the liveness probe goes through it.
  local port = tonumber(T.ok(flag(c.args, "metrics-listen"), "--metrics-listen"):match(":(%d+)$"))
  local named
  for _, p in ipairs(c.ports) do if p.containerPort == port then named = p.name end end
  T.ok(named, "containerPort " .. port)
  for _, probe in ipairs{ "livenessProbe", "readinessProbe" } do
    local get = T.ok(c[probe] and c[probe].httpGet, probe .. " httpGet")
    T.ok(get.port == named or get.port == port, probe .. " on the metrics port", get)
  end
  -- terminationGracePeriodSeconds above --grace.
  local grace = duration.parse(T.ok(flag(c.args, "grace"), "--grace"))
  T.ok(pod.terminationGracePeriodSeconds > grace, "terminationGracePeriodSeconds > --grace",
       { period = pod.terminationGracePeriodSeconds, grace = grace })
  T.eq(pod.securityContext.runAsNonRoot, true, "runAsNonRoot")
  T.eq(tostring(pod.securityContext.runAsUser), image_uid, "runAsUser is the image's user")
  T.ok(c.env and #c.env > 0, "BOSKOS_URL in env")
  local svc = T.ok(kinds.Service and kinds.Service["bosk-janitor-metrics"], "metrics Service")
  T.eq(svc.spec.ports[1].targetPort, named, "Service targets the metrics port")
end)

T.test("config/kubernetes/bosk-server.yaml: bosk server StatefulSet with SQLite on a claim", function()
  local kinds = by_kind(manifest_docs(root .. "/config/kubernetes/bosk-server.yaml"))
  local sts = T.ok(kinds.StatefulSet and kinds.StatefulSet["bosk-server"], "StatefulSet bosk-server")
  T.eq(sts.apiVersion, "apps/v1", "apiVersion")
  local pod = sts.spec.template.spec
  local c = pod.containers[1]
  T.eq(c.args[1], "server", "runs bosk server")
  flags_accepted(c.args)
  local db = T.ok(flag(c.args, "storage"), "--storage"):match("^sqlite:(.*)$")
  T.ok(db, "SQLite storage")
  local vol = mount_of(pod, c, db, sts.spec.volumeClaimTemplates)
  T.ok(vol and vol.persistentVolumeClaim, "database on a volume claim", vol)
  local config = T.ok(flag(c.args, "config"), "--config")
  local cvol, m = mount_of(pod, c, config)
  T.ok(cvol and cvol.configMap, "config from a ConfigMap")
  local text = T.ok(kinds.ConfigMap[cvol.configMap.name].data[config:sub(#m.mountPath + 2)], "config key")
  -- The resource file in the ConfigMap is one bosk server accepts.
  local srv = T.start_server{ config = text }
  local status, body = T.http("GET", srv.url .. "/metric?type=gce-project")
  T.eq(status, 200, "server on the ConfigMap's resources: " .. body)
  srv:stop()
  local listen_port = tonumber(flag(c.args, "listen"):match(":(%d+)$"))
  T.eq(c.ports[1].containerPort, listen_port, "containerPort is --listen's")
  T.eq(c.readinessProbe.httpGet.path, "/", "readiness on GET /")
  local svc = T.ok(kinds.Service and kinds.Service[sts.spec.serviceName], "Service " .. tostring(sts.spec.serviceName))
  T.eq(svc.spec.ports[1].targetPort, c.ports[1].name, "Service targets the server port")
  T.eq(pod.securityContext.runAsNonRoot, true, "runAsNonRoot")
end)

T.test("manifests parse as YAML with python3 too, when PyYAML is there", function()
  local py = "/usr/bin/python3"
  if not (executable(py) and os.execute(py .. " -c 'import yaml' 2>/dev/null")) then
    return T.skip("PyYAML cross-check", "no python3 with PyYAML (python3-yaml)")
  end
  for _, f in ipairs{ "bosk-janitor.yaml", "bosk-server.yaml" } do
    local out, ok = T.sh(py .. " -c 'import sys, yaml; print(len([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))' "
                         .. q(root .. "/config/kubernetes/" .. f) .. " 2>&1")
    T.ok(ok, f, out)
    T.eq(tonumber(out), #manifest_docs(root .. "/config/kubernetes/" .. f), f .. " document count")
  end
end)

-- Dockerfile stages: { {from =, name =, text =}, ... }
local function stages(text)
  local out = {}
  for from, rest in ("\n" .. text):gmatch("\nFROM ([^\n]+)(.-)%f[\n]\nFROM") do out[#out + 1] = { from = from, text = rest } end
  local last_from, last = text:match(".*\nFROM ([^\n]+)(.*)$")
  out[#out + 1] = { from = last_from, text = last }
  return out
end

local function apt_packages(stage_text)
  local set = {}
  local list = stage_text:gsub("\\\n", " "):match("apt%-get install ([^\n&]+)")
  for w in (list or ""):gmatch("%S+") do if w:sub(1, 1) ~= "-" then set[w] = true end end
  return set
end

T.test("Dockerfile: Debian 12 stages, non-root, the packages bosk needs", function()
  local st = stages(dockerfile)
  T.ok(#st >= 2, "multi-stage", #st)
  for _, s in ipairs(st) do T.match(s.from, "^debian:12", "Debian 12 base") end
  T.match(st[1].from, " AS build$", "first stage named build")
  T.ok(image_uid and image_uid ~= "0", "USER is a non-root uid", image_uid)
  -- The build stage has every -dev package install-deps.sh installs.
  local deps = T.read_file(root .. "/scripts/install-deps.sh"):match("packages=%((.-)%)")
  local build_pkgs = apt_packages(st[1].text)
  for p in deps:gmatch("%S+") do
    -- (libclang-rt-dev is for the fuzzing harnesses of `make test` only)
    if (p:match("%-dev$") and p ~= "libclang-rt-dev") or p == "gcc" or p == "make" or p == "pkg-config" or p == "lua5.4" then
      T.ok(build_pkgs[p], "build stage installs " .. p)
    end
  end
  -- The run stage has the package of every shared library bosk links or
  -- dlopens, named or pulled in as a dependency of one it names (libc6).
  local plain = root .. "/build/bosk"
  if not executable(plain) then return end
  local run_pkgs = apt_packages(st[#st].text)
  local pulled = {}
  for p in pairs(run_pkgs) do
    for dep in T.sh("dpkg-query -W -f '${Depends}' " .. q(p) .. " 2>/dev/null"):gmatch("([%w%.%-+]+)[^,]*") do
      pulled[dep] = true
    end
  end
  local libs = { "libcurl.so.4", "libmicrohttpd.so.12", "libreadline.so.8" }
  for lib in T.sh("ldd " .. q(plain)):gmatch("\n?%s*(lib[%w_%-%.+]+%.so[%.%d]*) =>") do libs[#libs + 1] = lib end
  local arch = trim(T.sh("dpkg --print-architecture"))
  for _, lib in ipairs(libs) do
    -- Of the packages holding a file of that name, the one of this architecture.
    local pkg = ("\n" .. T.sh("dpkg -S " .. q("*/" .. lib) .. " 2>/dev/null")):match("\n([%w%.%-+]+):" .. arch .. ":")
    T.ok(pkg, "package of " .. lib)
    T.ok(run_pkgs[pkg] or pulled[pkg], "run stage installs " .. pkg .. " (" .. lib .. ")", run_pkgs)
  end
  T.match(dockerfile, 'ENTRYPOINT %["/usr/local/bin/bosk"%]', "ENTRYPOINT")
  T.contains(dockerfile, "make install DESTDIR=/out PREFIX=/usr/local", "installs to /usr/local")
  T.contains(dockerfile, "COPY --from=build /out/usr/local/ /usr/local/", "copies the install")
end)

T.test("Docker build context: make and make install work from what .dockerignore keeps", function()
  if not file_exists(root .. "/.git") then return T.skip("build context", "not a git checkout") end
  local ignore = {}
  for line in T.read_file(root .. "/.dockerignore"):gmatch("[^\n]+") do
    if not line:match("^#") then ignore[#ignore + 1] = line:gsub("^/", "") end
  end
  local function ignored(path)
    for _, pat in ipairs(ignore) do
      local lp = "^" .. pat:gsub("[%.%-]", "%%%0"):gsub("%*", "[^/]*")
      if path:match(lp .. "$") or path:match(lp .. "/") or (pat:find("*", 1, true) and path:match("[^/]*$"):match(lp .. "$")) then
        return true
      end
    end
  end
  local ctx = T.tmpdir()
  local files = {}
  local list = T.sh("cd " .. q(root) .. " && git ls-files --cached --others --exclude-standard")
  for path in list:gmatch("[^\n]+") do
    if not ignored(path) and file_exists(root .. "/" .. path) then files[#files + 1] = q(path) end
  end
  T.ok(#files > 20, "context files", #files)
  local out, ok = T.sh(string.format("cd %s && tar cf - %s | (cd %s && tar xf -) 2>&1", q(root), table.concat(files, " "), q(ctx)))
  T.ok(ok, "copy the context", out)
  T.ok(not file_exists(ctx .. "/.git"), ".git left out")
  local mk = "cd " .. q(ctx) .. " && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make "
  -- Everything the compile needs is there (a dry run checks every prerequisite).
  out, ok = T.sh(mk .. "-n install DESTDIR=/out PREFIX=/usr/local 2>&1")
  T.ok(ok, "make -n install in the context", out)
  -- The install step itself, with binaries built here standing in for the
  -- stage's compile (-o: taken as up to date, not remade).
  if sanitize == "1" or not executable(root .. "/build/bosk") then return end
  os.execute(string.format("mkdir -p %s/build/lualib && cp %s/build/bosk %s/build/ && cp %s %s/build/lualib/",
                           q(ctx), q(root), q(ctx), q(build .. "/lualib/bosk.so"), q(ctx)))
  local out_dir = T.tmpdir()
  out, ok = T.sh(mk .. "-s -o build/bosk -o build/lualib/bosk.so install DESTDIR=" .. q(out_dir) .. " PREFIX=/usr/local 2>&1")
  T.ok(ok, "make install in the context", out)
  T.eq(T.sh(q(out_dir .. "/usr/local/bin/bosk") .. " --version"), "bosk " .. version .. "\n", "the image's bosk --version")
end)

T.cleanup()
