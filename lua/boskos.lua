-- boskos: the Boskos client module (docs/interface.md, "The boskos Lua module").
--
-- `bosk run` loads this module before every script, so it is kept small:
-- the states, the four sentinels and the replaceable sleep live here; the
-- client itself (lua/bosk/client.lua, with bosk.wire) is loaded by the first
-- call of any function below, which then replaces these stubs.
local core = require "bosk.core"

local M = {}

-- States (upstream common.go).
M.BUSY, M.CLEANING, M.DIRTY, M.FREE = "busy", "cleaning", "dirty", "free"
M.LEASED, M.TO_BE_DELETED, M.TOMBSTONE, M.OTHER = "leased", "toBeDeleted", "tombstone", "other"

-- The four sentinels: unique values compared with ==, printing upstream's texts.
local Sentinel = { __name = "boskos.error" }
Sentinel.__index = Sentinel
Sentinel.__tostring = function(e) return e.message end
local function sentinel(name, message)
  return setmetatable({ sentinel = name, message = message }, Sentinel)
end
M.ErrNotFound = sentinel("ErrNotFound", "resources not found")
M.ErrAlreadyInUse = sentinel("ErrAlreadyInUse", "resources already used by another user")
M.ErrContextRequired = sentinel("ErrContextRequired", "context required")
M.ErrTypeNotFound = sentinel("ErrTypeNotFound", "resource type not found")

-- Looked up at call time, so tests and scripts may replace them: the sleep
-- between retries (Go's SleepFunc) and the pause between polls of *_wait.
M.sleep = core.sleep
M.poll_interval = 3

-- Stubs that load the client and then call the real function.
local lazy = { "client", "memory_storage", "context", "background", "userdata",
               "userdata_from_json", "resource_type_not_found_message", "error" }
for _, name in ipairs(lazy) do
  M[name] = function(...)
    require "bosk.client"
    return M[name](...)
  end
end

-- boskos.janitor_control(path[, opts]) -> control | nil, err: talks to a
-- janitor started with --control PATH (bosk.janitor_control).
function M.janitor_control(path, opts)
  return require("bosk.janitor_control").open(path, opts)
end

return M
