-- `bosk repl`: interactive Lua 5.4 with the boskos module and a client.
-- Reading, multi-line input and result printing follow lua.c (5.4.4):
-- a line is first tried as `return LINE;`, then as a statement, and an
-- error ending in "<eof>" asks for more lines with the `>>` prompt. On a
-- terminal, lines come from GNU readline (bosk.readline): history in
-- ~/.bosk_history, Tab completion, Ctrl-C cancels the line or interrupts
-- the running call, Ctrl-D exits. Otherwise stdin is read line by line
-- the same way, without prompts, and the exit status is 1 when any chunk
-- failed.
local core = require "bosk.core"
local flags = require "bosk.flags"
local pretty = require "bosk.pretty"
local M = {}

local PROGNAME = "bosk"
local HISTORY_MAX = 1000
local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

local function usage_text(spec)
  return "usage: bosk repl [FLAGS]\n\nflags:\n" .. flags.usage(spec)
end

-- lua.c's msghandler: error objects with __tostring keep their text.
local function msghandler(err)
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then
      local ok, s = pcall(tostring, err)
      if ok and type(s) == "string" then return s end
    end
    err = string.format("(error object is a %s value)", type(err))
  end
  -- The frames below the chunk are the REPL's own: drop them.
  local tb = debug.traceback(err, 2)
  local cut = tb:find("\n[^\n]*in main chunk\n")
  if cut then return tb:sub(1, tb:find("\n", cut + 1, true) - 1) end
  cut = tb:find("\n\t%[C%]: in function '[%w.]*[ix]p?call'")
  if cut then tb = tb:sub(1, cut - 1):gsub("\n\t%(%.%.%.tail calls%.%.%.%)$", "") end
  return tb
end

local function report(msg)
  io.stdout:flush()
  io.stderr:write(PROGNAME, ": ", msg, "\n")
  io.stderr:flush()
end

local function incomplete(err)
  return type(err) == "string" and err:sub(-5) == "<eof>"
end

-- read_chunk(first, more) -> fn, nil, text | nil, err, text | nil, nil, nil
-- (cancelled). more() gives the next line, nil at end of input, false
-- when Ctrl-C cancelled it.
local function read_chunk(first, more)
  if first:sub(1, 1) == "=" then first = "return " .. first:sub(2) end
  local fn = load("return " .. first .. ";", "=stdin")
  if fn then return fn, nil, first end
  local text = first
  while true do
    local err
    fn, err = load(text, "=stdin")
    if fn or not incomplete(err) then return fn, err, text end
    local line = more()
    if line == false then return nil, nil, nil end
    if line == nil then return nil, err, text end
    text = text .. "\n" .. line
  end
end

-- Runs a chunk and prints its results; returns true when it succeeded,
-- and then whether it returned the API's failure, nil and an error.
local function run_chunk(fn, call)
  local results = table.pack(call(fn, msghandler))
  if not results[1] then
    report(tostring(results[2]))
    return false
  end
  if results.n > 1 then
    local ok, err = pcall(pretty.print, table.unpack(results, 2, results.n))
    if not ok then report("error printing results: " .. tostring(err)) end
  end
  return true, results.n >= 3 and results[2] == nil and results[3] ~= nil
end

-- ---- help ------------------------------------------------------------

local HELP = [[
bosk repl: Lua 5.4 with a Boskos client. Calls return their result, or nil
and an error (printed as `nil  error`); wrong argument types raise.

globals
  boskos   the module: boskos.client{...}, boskos.context{timeout = "1m"},
           states (boskos.FREE, BUSY, DIRTY, ...), errors (boskos.ErrNotFound, ...)
  client   a client built from --boskos-url, --owner, --username,
           --password-file (on first use)

common calls
  r = client:acquire("type", "free", "busy")       lease one resource
  client:acquire_wait(boskos.context{timeout = "5m"}, "type", "free", "busy")
  client:release(r.name, "dirty")                  give it back
  client:update(r.name, "busy", {key = "value"})   heartbeat with user data
  client:list{type = "t", state = "free", owner = "o", name = "n"}  (all optional)
  client:metric("type")                            counts by state and owner
  client:reset("type", "busy", "30m", "dirty")     expire stale leases

Tab completes names (client:<Tab> lists the methods); Ctrl-C stops a call;
Ctrl-D exits.
]]

-- help (or help()) prints the guide above.
local help = setmetatable({}, {
  __name = "bosk.help",
  __tostring = function() return (HELP:gsub("\n$", "")) end,
  __call = function() io.stdout:write(HELP) end,
})

-- ---- globals ---------------------------------------------------------

-- Installs `boskos` and, built on first use (no network at startup),
-- `client`.
local function install_globals(opts)
  local boskos = require "boskos"
  _G.boskos = boskos
  _G.help = help
  local params = { owner = opts.owner, url = opts.boskos_url,
                   username = opts.username, password_file = opts.password_file }
  local lazy = {}
  lazy.__index = function(t, k)
    if k ~= "client" then return nil end
    if type(boskos.client) ~= "function" then error("boskos.client is not available", 2) end
    local c, err = boskos.client(params)
    if c == nil then error("cannot build client: " .. tostring(err), 2) end
    rawset(t, "client", c)
    if getmetatable(t) == lazy then setmetatable(t, nil) end
    return c
  end
  setmetatable(_G, lazy)
end

-- ---- completion ------------------------------------------------------

local function add_keys(out, seen, t, want_functions)
  for _ = 1, 8 do
    if type(t) == "table" then
      for k, v in pairs(t) do
        if type(k) == "string" and k:match("^[%a_][%w_]*$") and not seen[k]
           and (not want_functions or type(v) == "function") then
          seen[k] = type(v)
          out[#out + 1] = k
        end
      end
    end
    local mt = getmetatable(t)
    local index = type(mt) == "table" and rawget(mt, "__index")
    if type(index) ~= "table" then return end
    t = index
  end
end

-- Walks a dotted path of globals ("boskos", "string.format") safely.
local function lookup(path)
  local v = _G
  for name in path:gmatch("[^.:]+") do
    local ok, next_v = pcall(function() return v[name] end)
    if not ok or next_v == nil then return nil end
    v = next_v
  end
  return v
end

-- complete(word) -> list of full replacements for word.
function M.complete(word)
  local prefix, sep, partial = word:match("^(.-)([.:])([%w_]*)$")
  local names, kinds, base = {}, {}, nil
  if prefix == nil then
    partial, prefix, sep = word, "", ""
    add_keys(names, kinds, _G, false)
    if rawget(_G, "client") == nil then names[#names + 1] = "client" kinds.client = "userdata" end
    for _, k in ipairs(KEYWORDS) do names[#names + 1] = k kinds[k] = "keyword" end
  else
    if not prefix:match("^[%a_][%w_.]*$") then return {} end
    base = lookup(prefix)
    if base == nil then return {} end
    if type(base) == "string" then base = string end
    add_keys(names, kinds, base, sep == ":")
  end
  local out = {}
  local hide_private = partial:sub(1, 1) ~= "_"    -- _send, __index: only when asked
  for _, k in ipairs(names) do
    if k:sub(1, #partial) == partial and not (hide_private and k:sub(1, 1) == "_") then
      out[#out + 1] = prefix .. sep .. k .. (kinds[k] == "function" and "(" or "")
    end
  end
  table.sort(out)
  return out
end

-- ---- interactive and piped loops ------------------------------------

-- ---- history: one entry per line; the newlines of a multi-line chunk
-- are stored as \1 so that it comes back as one entry.

local History = {}
History.__index = History

local function open_history(rl)
  local h = setmetatable({ rl = rl, path = (os.getenv("HOME") or ".") .. "/.bosk_history" }, History)
  rl.create_private(h.path)        -- without it, history is not kept
  local f = io.open(h.path, "r")
  if f then
    for line in f:lines() do rl.history_add((line:gsub("\1", "\n"))) end
    f:close()
  end
  return h
end

function History:add(text)
  self.rl.history_add(text)
  local f = io.open(self.path, "a")
  if f then
    f:write((text:gsub("\n", "\1")), "\n")
    f:close()
  end
end

-- Keeps the file to its last HISTORY_MAX entries.
function History:trim()
  local f = io.open(self.path, "r")
  if not f then return end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  if #lines <= HISTORY_MAX then return end
  f = io.open(self.path, "w")
  if not f then return end
  f:write(table.concat(lines, "\n", #lines - HISTORY_MAX + 1), "\n")
  f:close()
end

local function prompt(name, default)
  local p = rawget(_G, name)
  return type(p) == "string" and p or default
end

local function interactive()
  local rl = require "bosk.readline"
  local history = open_history(rl)
  rl.set_completer(function(word) return M.complete(word) end)
  io.stdout:write("bosk repl (", _VERSION, "); globals: boskos, client. help for a guide; Ctrl-D exits.\n")
  io.stdout:flush()
  while true do
    local line = rl.readline(prompt("_PROMPT", "> "))
    if line == nil then break end
    if line then
      local fn, err, text = read_chunk(line, function() return rl.readline(prompt("_PROMPT2", ">> ")) end)
      if text and text:find("%S") then
        history:add(text)
      end
      if fn then run_chunk(fn, rl.icall)
      elseif err then report(err) end
    end
  end
  io.stdout:write("\n")
  history:trim()
  return 0
end

local function piped()
  local failed = false
  local lines = io.stdin:lines()
  for line in lines do
    local fn, err = read_chunk(line, lines)
    if fn then
      -- A top-level `nil, err` (a failed call) counts as a failed chunk:
      -- a script piped in must not exit 0 past it.
      local ok, returned_error = run_chunk(fn, xpcall)
      if not ok or returned_error then failed = true end
    else
      report(err)
      failed = true
    end
  end
  return failed and 1 or 0
end

-- main(args) -> exit status
function M.main(args)
  local spec = flags.common(os.getenv("USER") or "bosk-repl")
  local opts, rest = flags.parse(args, spec)
  if opts == nil then
    if rest == "help" then io.stdout:write(usage_text(spec)) return 0 end
    io.stderr:write("bosk repl: ", rest, "\n", usage_text(spec))
    return 2
  end
  if #rest > 0 then
    io.stderr:write("bosk repl: unexpected argument '", rest[1], "'\n", usage_text(spec))
    return 2
  end
  install_globals(opts)
  if core.isatty(0) then return interactive() end
  return piped()
end

return M
