-- The layout of src/ shows the parts: every C file sits in core/, client/,
-- server/ or janitor/ (main.c alone stays at the top), a part includes
-- only its own headers and core's (the janitor also uses the client's
-- transport), and no two files include each other in a loop.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local root = os.getenv("BOSK_ROOT") or "."

local function c_files()
  local out = T.sh("cd " .. T.shell_quote(root) .. " && find src -name '*.[ch]' | sort")
  local files = {}
  for path in out:gmatch("[^\n]+") do files[#files + 1] = path end
  return files
end

-- module "src/server/ranch" -> set of modules it includes
-- (headers generated in build/, such as bosk_version.h, are not edges)
local function include_graph(files)
  local graph, present = {}, {}
  for _, path in ipairs(files) do present[(path:gsub("%.[ch]$", ""))] = true end
  for _, path in ipairs(files) do
    local module = path:gsub("%.[ch]$", "")
    graph[module] = graph[module] or {}
    for inc in T.read_file(root .. "/" .. path):gmatch('#include "([^"]+)"') do
      local target = ("src/" .. inc):gsub("%.[ch]$", "")
      if target ~= module and present[target] then graph[module][target] = true end
    end
  end
  return graph
end

-- The first cycle found, as a list of modules, or nil.
local function find_cycle(graph)
  local state, stack = {}, {}
  local function visit(m)
    state[m] = "open"
    stack[#stack + 1] = m
    for next_m in pairs(graph[m] or {}) do
      if state[next_m] == "open" then
        local cycle = {}
        for i = #stack, 1, -1 do
          table.insert(cycle, 1, stack[i])
          if stack[i] == next_m then break end
        end
        return cycle
      elseif state[next_m] == nil then
        local found = visit(next_m)
        if found then return found end
      end
    end
    stack[#stack] = nil
    state[m] = "done"
  end
  for m in pairs(graph) do
    if state[m] == nil then
      local found = visit(m)
      if found then return found end
    end
  end
end

local allowed = {
  core = { core = true },
  client = { client = true, core = true },
  server = { server = true, core = true },
  janitor = { janitor = true, client = true, core = true },
}

T.test("every C file belongs to one part; main.c alone at the top", function()
  local stray = {}
  for _, path in ipairs(c_files()) do
    local part = path:match("^src/([^/]+)/")
    if not (part and allowed[part]) and path ~= "src/main.c" then stray[#stray + 1] = path end
  end
  T.eq(stray, {}, "files outside src/{core,client,server,janitor}/")
end)

T.test("a part includes only its own headers and the parts below it", function()
  local bad = {}
  for module, targets in pairs(include_graph(c_files())) do
    local part = module:match("^src/([^/]+)/")
    for target in pairs(targets) do
      local target_part = target:match("^src/([^/]+)/")
      if part and allowed[part] and not allowed[part][target_part] then
        bad[#bad + 1] = module .. " -> " .. target
      end
    end
  end
  table.sort(bad)
  T.eq(bad, {}, "includes across parts")
end)

T.test("no include cycle between files", function()
  local cycle = find_cycle(include_graph(c_files()))
  T.eq(cycle and table.concat(cycle, " -> ") or nil, nil, "include cycle")
end)

-- The checker itself must see a cycle when there is one.
T.test("the cycle finder finds a planted cycle", function()
  local graph = { a = { b = true }, b = { c = true }, c = { a = true }, d = { a = true } }
  local cycle = find_cycle(graph)
  T.ok(cycle and #cycle == 3, "cycle of three found", cycle)
end)
