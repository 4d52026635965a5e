-- tests/lib/repl.lua: drives `bosk repl` (or any command) on a
-- pseudo-terminal through tests/pty_driver.py.
--
--   local R = require "repl"
--   local res = R.pty(T, { {send = "1+1\n"}, {expect = "2"}, ... }, { env = {HOME = dir} })
--   -- res.ok, res.error, res.step, res.exit, res.transcript
local cjson = require "cjson"
local R = {}

-- Steps are encoded by hand where cjson would turn "\t" into an escape it
-- also understands; cjson round-trips control characters, so plain encode.
function R.pty(T, steps, opts)
  opts = opts or {}
  local dir = T.tmpdir()
  T.write_file(dir .. "/steps.json", cjson.encode(steps))
  local env = { TERM = "dumb", INPUTRC = "/dev/null", HOME = dir }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local words = { "env" }
  for k, v in pairs(env) do words[#words + 1] = T.shell_quote(k .. "=" .. v) end
  words[#words + 1] = "python3"
  words[#words + 1] = T.shell_quote(T.root .. "/tests/pty_driver.py")
  words[#words + 1] = T.shell_quote(dir .. "/steps.json")
  words[#words + 1] = T.shell_quote(dir .. "/result.json")
  words[#words + 1] = "--"
  for _, a in ipairs(opts.argv or { T.bosk, "repl" }) do words[#words + 1] = T.shell_quote(a) end
  local out, ok = T.sh("timeout -k 2 60 " .. table.concat(words, " ") .. " 2>&1")
  local text = T.read_file(dir .. "/result.json")
  if not ok or not text then error("pty_driver failed: " .. out, 2) end
  return cjson.decode(text)
end

-- R.check(res): raises with the transcript when a step failed.
function R.check(res, what)
  if not res.ok then
    error(string.format("%s: step %s: %s\n--- transcript ---\n%s\n---", what or "pty session",
                        tostring(res.step), tostring(res.error), res.transcript), 2)
  end
  return res
end

return R
