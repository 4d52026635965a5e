-- Where the janitor's policies come from, and how SIGHUP reloads them:
-- the policy files, and upstream's command line (janitor_upstream.lua).
--
--   local src = sources.new{files = {...}, upstream = {types =, config =, path =, extra =} | nil}
--   local reg, err = src:load()      -- at start: every source must load
--   local reg, report = src:reload() -- on SIGHUP
--
-- reload() loads every file again. A file that no longer loads keeps its
-- previous version (report.kept[path] = why); so does the upstream config
-- file. It returns nil, message only when the parts no longer fit together
-- (the same type in two files), and then nothing changes.
local policy = require "bosk.janitor_policy"
local upstream = require "bosk.janitor_upstream"

local M = {}
local Src = {}
Src.__index = Src

function M.new(opts)
  return setmetatable({ files = opts.files or {}, upstream = opts.upstream, parts = {} }, Src)
end

function Src:upstream_part()
  local u = self.upstream
  local types, err = upstream.types(u)
  if not types then return nil, err end
  return upstream.part{ types = types, path = u.path, extra = u.extra }
end

-- merged(parts) -> reg | nil, message; the upstream part goes first.
function Src:merged(parts, up)
  local all = {}
  if up then all[1] = up end
  for i = 1, #self.files do all[#all + 1] = parts[i] end
  local reg, err = policy.merge(all)
  if not reg then return nil, err end
  if #reg.policies == 0 and #reg.reapers == 0 and #reg.jobs == 0 then
    return nil, "the policy files define no policy, reaper or job"
  end
  return reg
end

function Src:load()
  local parts = {}
  for i, path in ipairs(self.files) do
    local part, err = policy.load_file(path)
    if not part then return nil, err end
    parts[i] = part
  end
  local up
  if self.upstream then
    local err
    up, err = self:upstream_part()
    if not up then return nil, err end
  end
  local reg, err = self:merged(parts, up)
  if not reg then return nil, err end
  self.parts, self.up = parts, up
  return reg
end

function Src:reload()
  local parts, report = {}, { loaded = 0, kept = {} }
  for i, path in ipairs(self.files) do
    local part, err = policy.load_file(path)
    if part then
      report.loaded = report.loaded + 1
    else
      report.kept[path] = err
      part = self.parts[i]
    end
    parts[i] = part
  end
  local up = self.up
  if self.upstream then
    local fresh, err = self:upstream_part()
    if fresh then up = fresh else report.kept[self.upstream.config or "--resource-type"] = err end
  end
  local reg, err = self:merged(parts, up)
  if not reg then return nil, err end
  self.parts, self.up = parts, up
  return reg, report
end

return M
