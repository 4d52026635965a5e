-- `bosk janitor --plan POLICY.lua...`: tries policies without touching
-- anything. For each policy and type it lists the resources in the
-- policy's `from` state (bosk server's GET /resources), then runs `clean`
-- and `verify` for each, one at a time, in a worker of the janitor's
-- worker factory (its own process, the policy's timeout). bosk.exec is in
-- plan mode there: only janitor.exec{..., readonly = true} starts its
-- program; any other prints `would run: PROG ARG...` and returns
-- true, "", 0. Nothing is leased, released or updated; reapers and jobs
-- do not run.
--
--   local status = janitor_plan.run(reg, {api = janitor_api, out = io.stdout})
--
-- stdout: one header per resource, the would-run lines, the outcome, then
-- a summary per type. Exit status 0; 1 when a policy raised an error or
-- a type could not be listed (a server without the listing endpoint).
local loop = require "bosk.loop"
local wire = require "bosk.wire"
local ccore = require "bosk.client_core"
local jlog = require "bosk.janitor_log"

local M = {}

-- Worker side -----------------------------------------------------------------

local traceback = jlog.policy_traceback

local function refused(exec, res, what)
  if not exec.scope_refused() then return nil end
  return string.format("F%sexec_scope: a janitor.exec without the resource name '%s' was refused",
                       what, res.name)
end

-- A function's result as a report: "T" for true, "F<why>" otherwise.
local function verdict(what, result, err)
  if result == true then return "T" end
  if result == nil or result == false then
    return "F" .. (err ~= nil and tostring(err) or (what .. " returned " .. tostring(result)))
  end
  return "F" .. what .. " returned a " .. type(result) .. " (want true)"
end

-- attempt(p, res) -> report: "T" would succeed, "F<why>" would fail,
-- "E<error>" the policy raised. A refused exec_scope is a failure, as in
-- the janitor, even when the refusal's error was not caught.
local function attempt(p, res)
  local exec = require "bosk.exec"
  if p.exec_scope == "name" then exec.scope(res.name) end
  local ok, result, err = xpcall(p.clean, traceback, res)
  local scope = refused(exec, res, "")
  if scope then return scope end
  if not ok then return "Eclean raised: " .. tostring(result) end
  local report = verdict("clean", result, err)
  if report ~= "T" or not p.verify then return report end
  ok, result, err = xpcall(p.verify, traceback, res)
  scope = refused(exec, res, "verify failed: ")
  if scope then return scope end
  if not ok then return "Everify raised: " .. tostring(result) end
  report = verdict("verify", result, err)
  if report == "T" then return report end
  return "Fverify failed: " .. report:sub(2)
end

-- handler(key, payload) for the worker factory: "p<i>" tries policy i on
-- the resource in payload (Resource JSON).
local function handler(reg)
  return function(key, payload)
    os.exit = loop.exit_now        -- exit() would run the parent's destructors
    local index = tonumber(key:match("^p(%d+)$"))
    local p = index and reg.policies[index]
    if not p then return "Eunknown worker key " .. key end
    local res, err = wire.decode_resource(payload)
    if not res then return "Ecannot decode the resource: " .. tostring(err) end
    return attempt(p, res)
  end
end

-- Supervisor side -------------------------------------------------------------

local Plan = {}
Plan.__index = Plan

-- list(rtype, state) -> resources | nil, message
function Plan:list(rtype, state)
  local status, body, err, line = self.api:request("GET", "/resources", { type = rtype, state = state })
  local meaning = ccore.meaning("/resources", status)
  if meaning == "unsupported" or (meaning == "ok" and not (body or ""):find("^%s*[%[n]")) then
    return nil, string.format("the server at %s does not support listing resources (GET /resources), "
                              .. "which --plan needs to find the %s resources of type %s; "
                              .. "plan mode works against bosk server", self.api.url, state, rtype)
  end
  if status == nil then return nil, string.format("listing %s resources of type %s: %s", state, rtype, tostring(err)) end
  if meaning ~= "ok" then
    return nil, string.format("listing %s resources of type %s: status %s: %s", state, rtype,
                              line or status, (body or ""):gsub("%s+$", ""))
  end
  local list, perr = wire.decode_resources(body)
  if not list then return nil, string.format("listing %s resources of type %s: %s", state, rtype, perr) end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- try(p, res) -> report (see attempt), run in a worker with the policy's
-- timeout; a worker that did not report is a failure.
function Plan:try(p, res)
  local co = coroutine.running()
  local id, err = loop.spawn("p" .. p.index, wire.encode_resource(res), function(...)
    local ok, e = coroutine.resume(co, ...)
    if not ok then jlog.error("internal error after a plan worker", { error = debug.traceback(co, e) }) end
  end)
  if not id then return "F" .. tostring(err) end
  self.running = { id = id, type = res.type, name = res.name }
  local timed_out, timer = false, nil
  if p.timeout then
    timer = loop.timer(p.timeout, 0, function()
      timed_out = true
      loop.kill(id)
    end)
  end
  local report, code, signal, why = coroutine.yield()
  if timer then timer:stop() end
  self.running = nil
  if timed_out then return string.format("Ftimed out after %gs", p.timeout) end
  if why then return "F" .. why end
  if signal then return "Fworker killed by signal " .. signal end
  if code ~= 0 then return "Fworker exited with status " .. tostring(code) end
  return report or "Fworker exited without reporting"
end

function Plan:count(rtype)
  local c = self.per_type[rtype]
  if not c then
    c = { resources = 0, succeed = 0, fail = 0 }
    self.per_type[rtype] = c
    self.types[#self.types + 1] = rtype
  end
  return c
end

local function first_line(text)
  return (tostring(text):match("^[^\n]*"))
end

function Plan:record(rtype, name, report)
  local c = self:count(rtype)
  c.resources = c.resources + 1
  if report == "T" then
    c.succeed = c.succeed + 1
    self.out:write("  => would succeed\n")
    return
  end
  c.fail = c.fail + 1
  local kind, why = report:sub(1, 1), report:sub(2):gsub("%s+$", "")
  if kind == "E" then self.raised = self.raised + 1 end
  self.out:write(kind == "E" and "  => would fail, the policy raised an error: " or "  => would fail: ",
                 (why:gsub("\n", "\n     ")), "\n")
  self.failed[#self.failed + 1] = string.format("%s %s: %s%s", rtype, name,
                                                kind == "E" and "(error) " or "", first_line(why))
end

-- One policy, one type: list, then try each resource in turn.
function Plan:policy_type(p, rtype)
  local list, err = self:list(rtype, p.from)
  self:count(rtype)
  if not list then
    io.stderr:write("bosk janitor --plan: ", err, "\n")
    self.list_errors = self.list_errors + 1
    return
  end
  for _, res in ipairs(list) do
    self.out:write(string.format("plan %s %s (%s, policy at %s)\n", rtype, res.name, p.from, p.where or "?"))
    self.out:flush()                -- before the worker's would-run lines
    local report = self:try(p, res)
    self:record(rtype, res.name, report)
  end
end

function Plan:main()
  for _, p in ipairs(self.reg.policies) do
    for _, rtype in ipairs(p.types) do
      self:policy_type(p, rtype)
      if self.list_errors > 0 then return end   -- the same server: the rest would fail alike
    end
  end
end

function Plan:summary()
  local out = self.out
  out:write("plan summary (type resources would-succeed would-fail):\n")
  for _, rtype in ipairs(self.types) do
    local c = self.per_type[rtype]
    out:write(string.format("  %s %d %d %d\n", rtype, c.resources, c.succeed, c.fail))
  end
  if #self.failed > 0 then
    out:write("would fail:\n")
    for _, line in ipairs(self.failed) do out:write("  ", line, "\n") end
  end
  if self.raised > 0 then out:write("policy errors: ", self.raised, "\n") end
  local r = self.reg
  if #r.reapers > 0 or #r.jobs > 0 then
    out:write(string.format("not run in plan mode: %d reaper(s), %d job(s)\n", #r.reapers, #r.jobs))
  end
  out:flush()
end

-- run(reg, opts) -> exit status. opts: api (janitor_api), out (default io.stdout).
function M.run(reg, opts)
  local plan = setmetatable({
    reg = reg, api = opts.api, out = opts.out or io.stdout,
    per_type = {}, types = {}, failed = {}, raised = 0, list_errors = 0,
  }, Plan)
  -- Set before the factory forks, so that every worker inherits it.
  require("bosk.exec").plan(true)
  collectgarbage()
  local gen, err = loop.zygote(handler(reg))
  if not gen then
    io.stderr:write("bosk janitor --plan: ", tostring(err), "\n")
    return 1
  end
  loop.on_progress(function(_, text)
    local r = plan.running
    jlog.info("progress", { type = r and r.type, name = r and r.name, message = text })
  end)
  local finished = false
  local co = coroutine.create(function()
    local ok, e = xpcall(Plan.main, debug.traceback, plan)
    if not ok then
      jlog.error("internal error in plan mode", { error = e })
      plan.list_errors = plan.list_errors + 1
    end
    finished = true
    loop.stop()
  end)
  local ok, e = coroutine.resume(co)
  if not ok then error(e, 0) end
  if not finished then loop.run() end
  loop.on_progress(nil)
  loop.zygote_retire(gen)
  loop.close()
  if plan.list_errors > 0 then return 1 end
  plan:summary()
  return plan.raised > 0 and 1 or 0
end

return M
