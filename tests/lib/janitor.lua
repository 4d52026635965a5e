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

  -- J.post(srv, path) -> status, body: raw protocol calls to set up a scene
  function J.post(srv, path, body)
    return T.http("POST", srv.url .. path, body)
  end

  return J
end
