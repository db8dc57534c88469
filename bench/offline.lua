-- One offline reader of a saved trace, in a process of its own (as a user
-- runs one), so that what the bench process holds does not weigh on it:
-- Lua's collector walks a process's whole heap, and bench/run.lua's is
-- some 100 MB by the time it gets here. Prints one line of JSON: what it
-- read and its CPU seconds (os.clock, the reading alone: dropprobe, for
-- the readers that use it, is loaded before the clock starts).
--   lua5.4 bench/offline.lua dp|dp-stacks|naive|naive-stacks|count PATH
local kind, path = arg[1], arg[2]
local cjson = require "cjson"
local dp = not kind:match("^naive") and require "dropprobe"

-- the naive parser of bench/run.lua's saved traces: io.lines and
-- string.match into tables; with stacks, the frame lines (" => fn+0x../0x..")
-- after a <stack trace> line collected into the record before it
local function naive(with_stacks)
  -- luacheck: ignore 241 (records kept like a user keeps them)
  local m, recs, rec, stack, stacks = 0, {}, nil, nil, 0
  for line in io.lines(path) do
    local frame = with_stacks and line:match("^ => (%S+)")
    if frame then
      if stack then stack[#stack + 1] = frame end
    else
      local comm, pid, cpu, ts, name, payload =
        line:match("^%s*(.-)%-(%d+)%s+%[(%d+)%]%s+%S+%s+([%d.]+): ([%w_]+): (.*)$")
      stack = nil
      if name == "kfree_skb" then
        m = m + 1
        rec = { comm = comm, pid = tonumber(pid), cpu = tonumber(cpu), ts = tonumber(ts),
          reason = payload:match("reason: (%S+)"), location = payload:match("location=(%S+)") }
        recs[m % 1000 + 1] = rec
      elseif with_stacks and rec and line:find(": <stack trace>", 1, true) then
        stack = {}
        rec.stack = stack
        stacks = stacks + 1
      end
    end
  end
  return m, stacks
end

local c0 = os.clock()
local out
if kind == "dp" or kind == "dp-stacks" then
  -- the records' reasons; with stacks, each stack's frames too (the naive
  -- parser collects them)
  local n, stacks, frames = 0, 0, 0
  local with_stacks = kind == "dp-stacks"
  for rec in dp.open(path) do
    if rec.fields.reason == "NO_SOCKET" then n = n + 1 end
    if with_stacks and rec.stack then
      stacks = stacks + 1
      frames = frames + #rec.stack
    end
  end
  out = { records = n, stacks = stacks, frames = frames }
elseif kind == "naive" or kind == "naive-stacks" then
  local n, stacks = naive(kind == "naive-stacks")
  out = { records = n, stacks = stacks }
elseif kind == "count" then
  -- counting by reason in C: no record made
  local counter <close> = dp.core.count_text(path, { keys = { "reason" } })
  local rows = counter:rows()
  out = { records = #rows == 1 and rows[1].hitcount or -1, rows = #rows }
else
  io.stderr:write("usage: offline.lua dp|dp-stacks|naive|naive-stacks|count PATH\n")
  os.exit(2)
end
out.cpu = os.clock() - c0
io.write(cjson.encode(out), "\n")
