-- `bosk run [-e CODE] [SCRIPT.lua [ARGS...]]`: Lua 5.4 with the boskos
-- module preloaded, `arg` laid out as the standalone lua interpreter does.
local M = {}

local function fail_usage(msg)
  io.stderr:write("bosk run: ", msg, "\nusage: bosk run [-e CODE] [SCRIPT.lua [ARGS...]]\n")
  return 2
end

local function traceback(err)
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then err = tostring(err)
    else err = "(error object is a " .. type(err) .. " value)" end
  end
  return debug.traceback(err, 2)
end

-- Runs one chunk protected; prints `bosk: msg` + traceback on error.
local function run_chunk(chunk, ...)
  local ok, err = xpcall(chunk, traceback, ...)
  if not ok then
    io.stderr:write("bosk: ", err, "\n")
    return false
  end
  return true
end

-- Builds `arg` as lua.c's createargtable: the script at index 0, the
-- words before it (bosk, run, options) at negative indexes.
local function make_arg(full_argv, script_index)
  local offset = script_index and script_index + 1 or 0
  local t = {}
  for j = 0, #full_argv do t[j - offset] = full_argv[j] end
  return t
end

function M.main(argv, _, full_argv)
  local codes, script_index = {}, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-e" then
      if argv[i + 1] == nil then return fail_usage("'-e' needs an argument") end
      codes[#codes + 1] = argv[i + 1]
      i = i + 2
    elseif a == "--" then
      script_index = argv[i + 1] and i + 1
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return fail_usage("unrecognized option '" .. a .. "'")
    else
      script_index = i
      break
    end
  end
  _G.boskos = require "boskos"
  _G.arg = make_arg(full_argv, script_index)
  for _, code in ipairs(codes) do
    local chunk, err = load(code, "=(command line)")
    if not chunk then io.stderr:write("bosk: ", err, "\n") return 1 end
    if not run_chunk(chunk) then return 1 end
  end
  if script_index == nil then
    if #codes > 0 then return 0 end
    if require("bosk.core").isatty(0) then return require("bosk.repl").main({ [0] = argv[0] }) end
  end
  local path = script_index and argv[script_index]
  local chunk, err = loadfile(path ~= "-" and path or nil)
  if not chunk then io.stderr:write("bosk: ", err, "\n") return 1 end
  local script_args = {}
  for j = (script_index or #argv) + 1, #argv do script_args[#script_args + 1] = argv[j] end
  return run_chunk(chunk, table.unpack(script_args)) and 0 or 1
end

return M
