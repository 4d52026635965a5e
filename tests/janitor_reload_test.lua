-- bosk janitor and SIGHUP: the policy files are read again; a cleaning in
-- flight finishes under the version it started with, the next one uses
-- the new version; a file that no longer loads keeps its previous version
-- and the log says why; the process never exits on SIGHUP.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)

local srv = J.server([[
resources:
- type: hup
  state: dirty
  names: [hup-1, hup-2]
- type: hup2
  state: dirty
  names: [hup2-1, hup2-2]
- type: hup-other
  state: free
  names: [other-1]
]])
local TYPES = { "hup", "hup2", "hup-other" }

-- A policy version: logs "<version> <name> start|end" to the log file; with
-- wait, the cleaning holds until the go file exists (at most 20 s).
local function policy_text(version, dir, wait, rtype)
  return string.format([[
    local function note(line)
      local f = assert(io.open(%q, "a")) f:write(line, "\n") f:close()
    end
    janitor.policy{ type = %q, concurrency = 1, clean = function(res)
      note(%q .. " " .. res.name .. " start")
      if %s then
        local core = require "bosk.core"
        local deadline = core.monotime() + 20
        while not io.open(%q) and core.monotime() < deadline do core.sleep(0.02) end
      end
      note(%q .. " " .. res.name .. " end")
      return true
    end }
  ]], dir .. "/log", rtype or "hup", version, tostring(wait), dir .. "/go", version)
end

local function lines(dir) return T.read_file(dir .. "/log") or "" end

-- count(text, plain) -> occurrences of plain in text
local function count(text, plain)
  local n, at = 0, 1
  while true do
    local i, j = text:find(plain, at, true)
    if not i then return n end
    n, at = n + 1, j + 1
  end
end

-- children(pid) -> the pids of pid's children
local function children(pid)
  local text = T.read_file(string.format("/proc/%d/task/%d/children", pid, pid)) or ""
  local out = {}
  for p in text:gmatch("%d+") do out[#out + 1] = tonumber(p) end
  return out
end

T.test("SIGHUP during a cleaning: no exit, it finishes under the old policy, the next uses the new one", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local path = T.write_file(dir .. "/hup.lua", policy_text("v1", dir, true))
    local j = J.start(srv, {}, { path })
    local first = T.wait_until(function() return lines(dir):match("v1 (hup%-%d) start") end, 10, "v1 cleaning started")
    local second = first == "hup-1" and "hup-2" or "hup-1"
    T.write_file(path, policy_text("v2", dir, false))
    j:kill("HUP")
    T.wait_until(function() return j:output():find("msg=\"policies reloaded\"", 1, true) end, 10, "reload logged")
    T.ok(j:alive(), "janitor alive after SIGHUP", j:output())
    T.eq(J.states(srv, "hup")[first], "cleaning/Janitor", first .. " still being cleaned")
    T.eq(#children(j.pid), 2, "two worker factories while the old one has a cleaning")
    T.write_file(dir .. "/go", "")
    T.wait_until(function()
      local s = J.states(srv, "hup")
      return s["hup-1"] == "free/-" and s["hup-2"] == "free/-"
    end, 10, "both cleaned")
    T.contains(lines(dir), "v1 " .. first .. " end", "the cleaning in flight finished under v1")
    T.contains(lines(dir), "v2 " .. second .. " start", "the next cleaning used v2")
    T.ok(not lines(dir):find("v1 " .. second, 1, true), "v1 never cleaned " .. second)
    T.wait_until(function() return #children(j.pid) == 1 end, 5, "the old worker factory retired")
    T.ok(j:alive(), "janitor alive", j:output())
    j:kill("TERM")
    T.eq(j:wait(10), 0, "exit status after SIGTERM")
  end)
end)

T.test("SIGHUP with a broken file keeps its previous version and logs why", function()
  J.check_counts(srv, TYPES, function()
    local dir = T.tmpdir()
    local path = T.write_file(dir .. "/hup.lua", policy_text("v1", dir, false, "hup2"))
    local other = T.write_file(dir .. "/other.lua", [[
      janitor.policy{ type = "hup-other", from = "leased", clean = function() return true end }
    ]])
    local j = J.start(srv, {}, { path, other })
    T.wait_until(function() return J.states(srv, "hup2")["hup2-1"] == "free/-" and J.states(srv, "hup2")["hup2-2"] == "free/-" end,
                 10, "v1 cleaned both")
    T.write_file(path, "janitor.policy{ type = 'hup2', clean = function() return true end \n-- the closing brace is missing\n")
    j:kill("HUP")
    T.wait_until(function() return j:output():find("policy file kept at its previous version", 1, true) end, 10,
                 "the log says the file was kept")
    local line = j:output():match("[^\n]*policy file kept at its previous version[^\n]*")
    T.contains(line, "file=" .. path, "the log line names the file")
    T.match(line, "error=.*hup%.lua:%d+", "the log line says why, with the line")
    T.ok(j:alive(), "janitor alive after a failed reload", j:output())
    -- hup-1 dirty again: cleaned by v1, the version kept.
    T.eq(J.post(srv, "/acquire?type=hup2&state=free&dest=busy&owner=t"), 200, "lease hup2-1 or hup2-2")
    local name = J.states(srv, "hup2")["hup2-1"] == "busy/t" and "hup2-1" or "hup2-2"
    T.eq(J.post(srv, "/release?name=" .. name .. "&dest=dirty&owner=t"), 200, "release dirty")
    T.wait_until(function() return count(lines(dir), "v1 " .. name .. " end") == 2 end, 10,
                 "cleaned again by the kept v1")
    T.wait_until(function() return J.states(srv, "hup2")[name] == "free/-" end, 10, name .. " free")
    j:kill("TERM")
    T.eq(j:wait(10), 0, "exit status after SIGTERM")
  end)
end)

srv:stop()
