--- What is dropping right now: live counts per reason and per location,
-- with rates, redrawn in place on a terminal and as plain periodic lines
-- when the output is a pipe or a file.
-- @module dropprobe.recipes.top
-- @usage require("dropprobe.recipes.top").run{ interval = 1, duration = 30 }
local dp = require "dropprobe"
local hunt = require "dropprobe.hunt"

local M = {}

local function sym(loc)
  return (tostring(loc):gsub("%+0x%x+/0x%x+$", ""):gsub("%+0x%x+$", ""))
end

local function ranked(t)
  local list = {}
  for k, v in pairs(t) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[2].total > b[2].total or (a[2].total == b[2].total and a[1] < b[1]) end)
  return list
end

local function bump(t, key)
  local e = t[key]
  if not e then e = { total = 0, tick = 0 } t[key] = e end
  e.total, e.tick = e.total + 1, e.tick + 1
end

local function draw(out, tty, state, dt, rows)
  local reasons, locations = ranked(state.reasons), ranked(state.locations)
  if tty then
    local t = { "\27[H\27[2J", ("dropprobe top  %d drops, %.1f/s now, %d lost  (Ctrl-C ends)\n\n")
      :format(state.drops, state.tick / dt, state.lost) }
    t[#t + 1] = ("%-28s %10s %10s\n"):format("REASON", "TOTAL", "PER SEC")
    for i = 1, math.min(rows, #reasons) do
      local r = reasons[i]
      t[#t + 1] = ("%-28s %10d %10.1f\n"):format(r[1], r[2].total, r[2].tick / dt)
    end
    t[#t + 1] = ("\n%-40s %10s %10s\n"):format("LOCATION", "TOTAL", "PER SEC")
    for i = 1, math.min(rows, #locations) do
      local l = locations[i]
      t[#t + 1] = ("%-40s %10d %10.1f\n"):format(l[1], l[2].total, l[2].tick / dt)
    end
    out:write(table.concat(t))
  else
    local parts = {}
    for i = 1, math.min(rows, #reasons) do
      local r = reasons[i]
      parts[#parts + 1] = ("%s=%d(%.1f/s)"):format(r[1], r[2].total, r[2].tick / dt)
    end
    out:write(("t=%.1f drops=%d rate=%.1f/s lost=%d %s\n"):format(state.elapsed, state.drops,
      state.tick / dt, state.lost, table.concat(parts, " ")))
  end
  out:flush()
  for _, e in pairs(state.reasons) do e.tick = 0 end
  for _, e in pairs(state.locations) do e.tick = 0 end
  state.tick = 0
end

--- Count drops live and print every `interval` seconds.
-- @tparam[opt] table opts `interval` (default 1), `duration`, `filter`
-- (default: every drop, `dp.drop_condition()`), `mode`, `rows` (default 10), `out` (default
-- io.stdout), `tty` (default: whether stdout is a terminal), `ready`
-- @treturn table totals `{ drops=, lost=, reasons={NAME={total=}}, locations={fn={total=}} }`
function M.run(opts)
  opts = dp._check_options(opts, { "interval", "duration", "filter", "mode", "rows", "out", "tty",
    "ready", "buffer_kb" }, "top.run")
  local interval = opts.interval or 1
  if type(interval) ~= "number" or interval <= 0 then error("top.run: interval must be > 0", 2) end
  local out = opts.out or io.stdout
  local tty = opts.tty
  if tty == nil then tty = out == io.stdout and dp.core.isatty(1) end
  local h <close> = hunt.open{ condition = opts.filter, mode = opts.mode, buffer_kb = opts.buffer_kb }
  local state = { drops = 0, tick = 0, lost = 0, reasons = {}, locations = {}, elapsed = 0 }
  local t0 = dp.now()
  local last = t0
  h:run({ duration = opts.duration, ready = opts.ready, tick = interval, on_tick = function(now)
    state.lost = h:totals().lost
    state.elapsed = now - t0
    draw(out, tty, state, math.max(now - last, 1e-3), opts.rows or 10)
    last = now
  end }, function(rec)
    if rec.name ~= "kfree_skb" then return end
    state.drops, state.tick = state.drops + 1, state.tick + 1
    bump(state.reasons, tostring(rec.fields.reason))
    bump(state.locations, sym(rec.fields.location))
  end)
  state.lost = h:totals().lost
  return state
end

return M
