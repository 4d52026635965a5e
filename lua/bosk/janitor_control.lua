-- Live control of a running janitor (docs/janitor-control.md).
--
-- The janitor side, M.serve(sup, path), answers on a Unix socket opened by
-- bosk.loop (src/janitor/control.c); the client side, M.open(path), is what
-- boskos.janitor_control(path) returns and what `bosk control` uses.
--
-- The protocol is one line each way, so `socat - UNIX-CONNECT:PATH` works
-- too. A request is a command word and at most one argument:
--   list | kill NAME | pause TYPE | resume TYPE | breakers | drain | ping
-- An answer is one JSON object: {"ok":true,"result":...} or
-- {"ok":false,"error":"..."}.
local cjson = require "cjson"

local M = {}

M.COMMANDS = "list, kill NAME, pause TYPE, resume TYPE, breakers, drain"

-- Janitor side -----------------------------------------------------------------

local function answer_ok(result)
  local text = (type(result) == "table" and next(result) == nil) and "[]" or cjson.encode(result)
  return '{"ok":true,"result":' .. text .. "}"
end

local function answer_error(message)
  return cjson.encode({ ok = false, error = message })
end

local function rfc3339(t)
  return require("bosk.janitor_safety").rfc3339(t)
end

-- The leases being worked on by a worker (cleanings and health checks).
local function worked_leases(sup)
  local out = {}
  for id, record in pairs(sup.workers) do
    if record.lease then out[#out + 1] = { id = id, record = record } end
  end
  table.sort(out, function(a, b) return a.record.started < b.record.started end)
  return out
end

local function known_type(sup, rtype)
  local types = {}
  for _, lane in ipairs(sup.lanes) do
    if lane.type == rtype then return true end
    types[#types + 1] = lane.type
  end
  table.sort(types)
  return false, string.format("no policy cleans type %q (types: %s)", rtype, table.concat(types, ", "))
end

local commands = {}

function commands.ping() return "pong" end

function commands.list(sup)
  local core, loop = require "bosk.core", require "bosk.loop"
  local now_real, now_mono = core.realtime(), core.monotime()
  local rows = {}
  for _, w in ipairs(worked_leases(sup)) do
    local lease = w.record.lease
    rows[#rows + 1] = {
      name = lease.name, type = lease.type, kind = w.record.kind, pid = loop.worker_pid(w.id),
      started = rfc3339(w.record.started),
      last_progress = lease.progress_msg,
      last_progress_at = lease.progress_msg and lease.progress_at
                         and rfc3339(now_real - (now_mono - lease.progress_at)) or nil,
    }
  end
  return rows
end

function commands.kill(sup, name)
  if name == "" then return nil, "kill needs the name of a resource being cleaned" end
  for _, w in ipairs(worked_leases(sup)) do
    if w.record.lease.name == name then
      local pid = require("bosk.loop").worker_pid(w.id)
      sup:control_kill(w.id)
      return { killed = name, type = w.record.lease.type, pid = pid, dest = w.record.lease.on_failure }
    end
  end
  return nil, string.format("no cleaning of %q is running", name)
end

-- pause and resume: sup:pause(type) / sup:resume(type) on a type a
-- policy cleans; the result says what was done.
local function type_command(word, done)
  return function(sup, rtype)
    if rtype == "" then return nil, word .. " needs a resource type" end
    local ok, err = known_type(sup, rtype)
    if not ok then return nil, err end
    sup[word](sup, rtype)
    return { [done] = rtype }
  end
end

commands.pause = type_command("pause", "paused")
commands.resume = type_command("resume", "resumed")

-- Every type a policy cleans, closed unless its breaker says otherwise.
function commands.breakers(sup)
  local states = require("bosk.janitor_safety").breakers(sup.safety)
  local out = {}
  for _, lane in ipairs(sup.lanes) do
    local b = states[lane.type] or { state = "closed", failures = 0 }
    b.paused = sup.paused[lane.type] or false
    out[lane.type] = b
  end
  return out
end

function commands.drain(sup)
  local in_flight = #worked_leases(sup)
  sup:drain()
  return { draining = true, in_flight = in_flight }
end

-- dispatch(sup, line) -> answer text (one line of JSON).
function M.dispatch(sup, line)
  local word, arg = line:match("^%s*(%S*)%s*(.-)%s*$")
  local command = commands[word]
  if not command then
    if word == "" then return answer_error("empty command (want " .. M.COMMANDS .. ")") end
    return answer_error(string.format("unknown command %q (want %s)", word, M.COMMANDS))
  end
  if (word == "list" or word == "breakers" or word == "drain" or word == "ping") and arg ~= "" then
    return answer_error(string.format("%s takes no argument (got %q)", word, arg))
  end
  local ok, result, err = pcall(command, sup, arg)
  if not ok then
    require("bosk.janitor_log").error("internal error in a control command", { command = line, error = result })
    return answer_error("internal error: " .. tostring(result))
  end
  if result == nil then return answer_error(err) end
  return answer_ok(result)
end

-- serve(sup, path) -> true | nil, message: listens on path (mode 0600).
function M.serve(sup, path)
  local jlog = require "bosk.janitor_log"
  local ok, err = require("bosk.loop").control_listen(path, function(line)
    local answer = M.dispatch(sup, line)
    jlog.debug("control command", { command = line })
    return answer
  end)
  if not ok then return nil, err end
  jlog.info("control socket open", { path = path })
  return true
end

-- Client side --------------------------------------------------------------------

local Control = {}
Control.__index = Control

-- call(line) -> result | nil, message
function Control:call(line)
  local answer, err = require("bosk.unixsock").exchange(self.path, line, self.timeout)
  if not answer then return nil, err end
  local ok, msg = pcall(cjson.decode, answer)
  if not ok or type(msg) ~= "table" then
    return nil, string.format("control socket %s: not a control answer: %s", self.path, answer:sub(1, 200))
  end
  if msg.ok ~= true then return nil, tostring(msg.error) end
  return msg.result
end

-- A name or type sent as the command's argument: one word.
local function with_word(command, what)
  return function(self, word)
    if type(word) ~= "string" or not word:match("^%S+$") then
      return nil, string.format("janitor_control:%s: want a %s (a string without spaces), got %s",
                                command, what, type(word) == "string" and string.format("%q", word) or type(word))
    end
    return self:call(command .. " " .. word)
  end
end

Control.kill = with_word("kill", "resource name")
Control.pause = with_word("pause", "resource type")
Control.resume = with_word("resume", "resource type")
function Control:list() return self:call("list") end
function Control:breakers() return self:call("breakers") end
function Control:drain() return self:call("drain") end
function Control:ping() return self:call("ping") end
Control.__tostring = function(self) return "janitor_control(" .. self.path .. ")" end
Control.__name = "boskos.janitor_control"

-- open(path[, opts]) -> control | nil, message. opts.timeout: seconds
-- for each send and answer (default 10). Checks that a janitor answers.
function M.open(path, opts)
  if type(path) ~= "string" or path == "" then
    return nil, "janitor_control: want the path of a janitor's --control socket, got " .. type(path)
  end
  local timeout = opts and opts.timeout or 10
  if type(timeout) ~= "number" or not (timeout > 0) then
    return nil, "janitor_control: timeout must be a positive number of seconds"
  end
  local j = setmetatable({ path = path, timeout = timeout }, Control)
  local pong, err = j:ping()
  if not pong then return nil, err end
  return j
end

return M
