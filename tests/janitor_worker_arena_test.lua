-- A worker's first 256 KB of Lua objects come from a static arena, the rest
-- from malloc (src/janitor/worker.c, counting_alloc). Cleanings whose live
-- objects outgrow the arena while they are built (tables grown one element
-- at a time, so each growth reallocates a block, first in the arena, then
-- moved out of it; strings built piece by piece) must see every value
-- intact, in every one of several cleanings at once.
local T = dofile((os.getenv("BOSK_ROOT") or ".") .. "/tests/lib/testlib.lua")
local J = require("janitor")(T)

local srv = J.server([[
resources:
- type: arena
  state: dirty
  names: [arena-1, arena-2, arena-3, arena-4]
]])

T.test("objects that outgrow the worker's arena keep their values", function()
  local p = J.policy([[
    janitor.policy{ type = "arena", concurrency = 4, clean = function(res)
      local array = {}
      for i = 1, 100000 do array[i] = i end          -- 1.6 MB, grown by reallocation
      local sum = 0
      for i = 1, #array do sum = sum + array[i] end
      local map = {}
      for i = 1, 20000 do map["k" .. i] = i end       -- hash part, grown likewise
      local map_sum = 0
      for k, v in pairs(map) do
        if k ~= "k" .. v then return false, "map key " .. k .. " holds " .. v end
        map_sum = map_sum + v
      end
      local parts = {}
      for i = 1, 2000 do parts[i] = string.format("%05d", i) end
      local text = table.concat(parts)
      if sum ~= 100000 * 100001 // 2 then return false, "array sum " .. sum end
      if map_sum ~= 20000 * 20001 // 2 then return false, "map sum " .. map_sum end
      if #text ~= 10000 or text:sub(1, 5) ~= "00001" or text:sub(-5) ~= "02000" then
        return false, "text of " .. #text .. " bytes"
      end
      if not res.name:match("^arena%-%d$") then return false, "resource name " .. tostring(res.name) end
      return true
    end }
  ]])
  local _, err, code = J.once(srv, { "--pool-size", "4" }, { p })
  T.eq(code, 0, "exit status: " .. err)
  T.eq(J.states(srv, "arena"), { ["arena-1"] = "free/-", ["arena-2"] = "free/-",
                                 ["arena-3"] = "free/-", ["arena-4"] = "free/-" }, "all released free")
end)

srv:stop()
