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

local function weight(lane) return lane.policy.weight or 1 end

-- pick(sup) -> index of the lane to start next, or nil.
-- Lanes that want slots: those that may start now, and those whose first
-- acquire (a cold lane probes with one at a time) is still out. Each gets
-- a share of the pool in proportion to its weight; the lane that may start
-- with the fewest slots per weight goes next, unless that would take it
-- past its share while a probing lane is still below its own: the slot is
-- then kept for that lane (otherwise whichever type answered first would
-- fill the pool and keep it).
function M.pick(sup)
  local n = #sup.lanes
  local best, best_load
  local wanting, total = {}, 0
  for i = 0, n - 1 do
    local idx = (sup.next_lane + i - 1) % n + 1
    local lane = sup.lanes[idx]
    local can = sup:can_start(lane)
    if can or ((lane.acquiring or 0) > 0 and not lane.warm) then
      wanting[#wanting + 1] = lane
      total = total + weight(lane)
    end
    if can then
      local load = (lane.slots or 0) / weight(lane)
      if best == nil or load < best_load then best, best_load = idx, load end
    end
  end
  if best == nil then return nil end
  local pool = sup.opts.pool_size
  local chosen = sup.lanes[best]
  if (chosen.slots or 0) + 1 > math.ceil(pool * weight(chosen) / total - 1e-9) then
    for _, lane in ipairs(wanting) do
      if lane ~= chosen and (lane.slots or 0) < pool * weight(lane) / total then return nil end
    end
  end
  return best
end

-- Slot counts per lane, kept by the supervisor's take_slot/free_slot.
function M.took(lane) lane.slots = (lane.slots or 0) + 1 end
function M.freed(lane) lane.slots = (lane.slots or 0) - 1 end

return M
