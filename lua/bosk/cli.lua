-- bosk's command line: picks the subcommand and hands it the rest of argv.
-- Each subcommand lives in its own module and returns an exit status.
local M = {}

local subcommands = {
  run = "bosk.run",
  repl = "bosk.repl",
  server = "bosk.server_cli",
  reaper = "bosk.reaper",
  janitor = "bosk.janitor_cli",
  control = "bosk.control_cli",
  acquire = "bosk.ctl", release = "bosk.ctl", heartbeat = "bosk.ctl",
  metric = "bosk.ctl", metrics = "bosk.ctl", reset = "bosk.ctl",
  status = "bosk.ctl", list = "bosk.ctl", history = "bosk.ctl", hold = "bosk.ctl",
}

local usage = [==[
usage: bosk COMMAND [FLAGS] [ARGS]

commands:
  run [-e CODE] [SCRIPT.lua [ARGS...]]   run Lua with the boskos module
  repl                                   interactive Lua with a client
  server --config FILE [...]             a boskos-compatible server
  janitor [--once] POLICY.lua...         clean resources with Lua policies
  control --socket PATH COMMAND [ARG]    steer a running janitor (list, kill, pause, resume, breakers, drain)
  reaper --resource-type T1,T2 [...]     move stale leases to dirty (upstream's reaper)
  acquire | release | heartbeat | metric | reset | status
                                         boskosctl-style one-liners
  list [--type T] [--state S] [--owner O] [--json]
                                         the resources, as a table
  history NAME [--limit K] [--json]      a resource's recorded changes
  hold --name N --for DURATION [--reason TEXT]
                                         keep a leased resource from the reaper
  version (or --version)                 print "bosk VERSION"
]==]

-- boskosctl lets the global flags come before the subcommand
-- (`bosk --server-url URL acquire ...`): move leading flags after it.
-- Every global flag takes a value, as `--flag value` or `--flag=value`.
local function hoist_leading_flags(argv)
  local leading, i = {}, 1
  while argv[i] and argv[i]:match("^%-%-?[%w]") and argv[i] ~= "-h" and argv[i] ~= "--help" do
    leading[#leading + 1] = argv[i]
    if not argv[i]:find("=", 1, true) then
      leading[#leading + 1] = argv[i + 1]
      i = i + 1
    end
    i = i + 1
  end
  if #leading == 0 then return argv end
  local moved = { [0] = argv[0], argv[i] }
  for _, w in ipairs(leading) do moved[#moved + 1] = w end
  for j = i + 1, #argv do moved[#moved + 1] = argv[j] end
  return moved
end

-- main(argv) -> exit status; argv[0] is the program name.
function M.main(argv)
  -- Before hoisting, which would take --version for a flag with a value.
  if argv[1] == "version" or argv[1] == "--version" or argv[1] == "-version" then
    io.stdout:write("bosk ", require("bosk.core").version, "\n")
    return 0
  end
  argv = hoist_leading_flags(argv)
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
