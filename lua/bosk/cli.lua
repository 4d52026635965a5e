-- bosk's command line: picks the subcommand and hands it the rest of argv.
-- Each subcommand lives in its own module and returns an exit status.
local M = {}

local subcommands = {
  run = "bosk.run",
  repl = "bosk.repl",
  server = "bosk.server_cli",
  janitor = "bosk.janitor_cli",
  acquire = "bosk.ctl", release = "bosk.ctl", heartbeat = "bosk.ctl",
  metric = "bosk.ctl", metrics = "bosk.ctl", reset = "bosk.ctl",
  status = "bosk.ctl",
}

local usage = [==[
usage: bosk COMMAND [FLAGS] [ARGS]

commands:
  run [-e CODE] [SCRIPT.lua [ARGS...]]   run Lua with the boskos module
  repl                                   interactive Lua with a client
  server --config FILE [...]             a boskos-compatible server
  janitor [--once] POLICY.lua...         clean resources with Lua policies
  acquire | release | heartbeat | metric | reset | status
                                         boskosctl-style one-liners
]==]

-- main(argv) -> exit status; argv[0] is the program name.
function M.main(argv)
  local name = argv[1]
  if name == nil or name == "-h" or name == "--help" or name == "help" then
    io.stdout:write(usage)
    return name == nil and 2 or 0
  end
  local module = subcommands[name]
  if module == nil then
    io.stderr:write("bosk: unknown command '", name, "'\n", usage)
    return 2
  end
  local args = { [0] = argv[0] .. " " .. name }
  for i = 2, #argv do args[#args + 1] = argv[i] end
  return require(module).main(args, name, argv)
end

return M
