-- Helpers for the janitor tests: a bosk server with a few types, policy
-- files, running `bosk janitor` in the foreground or background, and the
-- per-type resource counts every test checks before and after.
local cjson = require "cjson"

return function(T)
  local J = {}

  -- J.server(yaml) -> a running bosk server (memory storage).
  function J.server(yaml)
    return T.start_server{ config = yaml }
  end

  -- J.resources(srv, rtype) -> list of resources of that type.
  function J.resources(srv, rtype)
    local status, body = T.http("GET", srv.url .. "/resources?type=" .. rtype)
    T.eq(status, 200, "GET /resources?type=" .. rtype)
    return cjson.decode(body)
  end

  -- J.by_name(srv, rtype) -> {name = resource}
  function J.by_name(srv, rtype)
    local out = {}
    for _, r in ipairs(J.resources(srv, rtype)) do out[r.name] = r end
    return out
  end

  -- J.states(srv, rtype) -> {name = "state/owner"} (owner "" shown as "-")
  function J.states(srv, rtype)
    local out = {}
    for _, r in ipairs(J.resources(srv, rtype)) do
      out[r.name] = r.state .. "/" .. (r.owner ~= "" and r.owner or "-")
    end
    return out
  end

  function J.counts(srv, types)
    local out = {}
    for _, t in ipairs(types) do out[t] = #J.resources(srv, t) end
    return out
  end

  -- J.check_counts(srv, types, fn): fn() must leave the count of
  -- resources per type unchanged (no resource lost or invented).
  function J.check_counts(srv, types, fn)
    local before = J.counts(srv, types)
    fn()
    T.eq(J.counts(srv, types), before, "resources per type")
  end

  -- J.policy(text) -> path of a policy file holding text
  function J.policy(text)
    return T.write_file(T.tmpdir() .. "/policy.lua", text)
  end

  local function args_for(srv, flags, policies)
    local args = { "janitor", "--boskos-url", srv.url, "--poll-interval", "0.2s" }
    for _, f in ipairs(flags or {}) do args[#args + 1] = f end
    for _, p in ipairs(policies or {}) do args[#args + 1] = p end
    return args
  end

  -- J.once(srv, flags, policies) -> stdout, stderr, exit code
  function J.once(srv, flags, policies)
    local args = args_for(srv, flags, policies)
    table.insert(args, 2, "--once")
    return T.run(args, { timeout = 60 })
  end

  -- J.start(srv, flags, policies) -> background janitor (T.spawn proc)
  function J.start(srv, flags, policies)
    local args = args_for(srv, flags, policies)
    table.insert(args, 1, T.bosk)
    return T.spawn(args)
  end

  -- J.live(pid) -> true when a process with that pid exists and is not a zombie
  function J.live(pid)
    local stat = T.read_file("/proc/" .. tostring(pid) .. "/stat")
    if not stat then return false end
    return stat:match("^%d+ %b() (%a)") ~= "Z"
  end

  -- J.strays(marker) -> pids of live processes whose command line holds
  -- marker (tests put their temp dir in what their cleanings start).
  function J.strays(marker)
    local pids = {}
    local ls = io.popen("ls /proc")
    for pid in ls:lines() do
      if pid:match("^%d+$") then
        local cmd = T.read_file("/proc/" .. pid .. "/cmdline")
        if cmd and cmd:find(marker, 1, true) and J.live(pid) then pids[#pids + 1] = tonumber(pid) end
      end
    end
    ls:close()
    return pids
  end

  -- Teardown invariants of every janitor case: J.settled(srv, types,
  -- {janitor = proc, marker = dir, states = {extra...}}) checks that the
  -- janitor (if given) has exited, that no resource of those types is
  -- held by anyone, that each is in a defined state (free, dirty,
  -- quarantine, tombstone, toBeDeleted or one of `states`), and that no
  -- process whose command line holds `marker` is alive.
  local SETTLED = { free = true, dirty = true, quarantine = true, tombstone = true, toBeDeleted = true }
  function J.settled(srv, types, opts)
    opts = opts or {}
    if opts.janitor then
      T.ok(not opts.janitor:alive() or opts.janitor:wait(10) ~= nil, "the janitor has exited")
    end
    local allowed = {}
    for k in pairs(SETTLED) do allowed[k] = true end
    for _, st in ipairs(opts.states or {}) do allowed[st] = true end
    for _, rtype in ipairs(types) do
      for _, r in ipairs(J.resources(srv, rtype)) do
        T.eq(r.owner, "", "no lease held on " .. r.name .. " (state " .. r.state .. ")")
        T.ok(allowed[r.state], "defined state for " .. r.name .. ": " .. r.state)
      end
    end
    if opts.marker then
      T.wait_until(function() return #J.strays(opts.marker) == 0 end, 5,
                   function() return "no child alive; still running: " .. table.concat(J.strays(opts.marker), " ") end)
    end
  end

  -- J.post(srv, path) -> status, body: raw protocol calls to set up a scene
  function J.post(srv, path, body)
    return T.http("POST", srv.url .. path, body)
  end

  -- J.names(prefix, n) -> "[prefix-1, ..., prefix-n]", a YAML list of names
  function J.names(prefix, n)
    local out = {}
    for i = 1, n do out[i] = prefix .. "-" .. i end
    return "[" .. table.concat(out, ", ") .. "]"
  end

  -- J.scrape(port) -> the janitor's metrics text ("" when it does not answer)
  function J.scrape(port)
    local status, body = T.http("GET", "http://127.0.0.1:" .. port .. "/metrics")
    return status == 200 and body or ""
  end

  -- J.sample(text, series) -> the value of the sample `series`
  -- (name{labels}, as the janitor writes it) in text, or nil when absent.
  function J.sample(text, series)
    for line in text:gmatch("[^\n]+") do
      if line:sub(1, #series + 1) == series .. " " then return tonumber(line:sub(#series + 2)) end
    end
    return nil
  end

  return J
end
