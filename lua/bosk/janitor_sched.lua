-- Weighted fair scheduling of the janitor's lanes (one lane per policy and
-- type; docs/janitor-safety.md). When lanes compete for --pool-size, the
-- next slot goes to the lane that may start and holds the fewest slots per
-- unit of its policy's `weight` (default 1); ties go round robin from the
-- supervisor's next_lane. So each type's share of the pool follows its
-- weight, and a type with a small pool always gets its share at once: it
-- is never queued behind a large one. Within a type the server hands out
-- the oldest waiting resource first (both bosk server and upstream Boskos
-- keep each state's resources in the order they entered it).
local M = {}

-- pick(sup) -> index of the lane to start next, or nil.
function M.pick(sup)
  local n = #sup.lanes
  local best, best_load
  for i = 0, n - 1 do
    local idx = (sup.next_lane + i - 1) % n + 1
    local lane = sup.lanes[idx]
    if sup:can_start(lane) then
      local load = (lane.slots or 0) / (lane.policy.weight or 1)
      if best == nil or load < best_load then best, best_load = idx, load end
    end
  end
  return best
end

-- Slot counts per lane, kept by the supervisor's take_slot/free_slot.
function M.took(lane) lane.slots = (lane.slots or 0) + 1 end
function M.freed(lane) lane.slots = (lane.slots or 0) - 1 end

return M
