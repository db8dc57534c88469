--- What is dropping right now: live counts per reason and per location
-- (or, `by = "port"`, per protocol, local port and reason from each drop's
-- own packet, where the kernel has kprobes), with rates, redrawn in place
-- on a terminal and as plain periodic lines when the output is a pipe or a
-- file.
-- @module dropprobe.recipes.top
-- @usage require("dropprobe.recipes.top").run{ interval = 1, duration = 30 }
local dp = require "dropprobe"
local hist = require "dropprobe.hist"
local util = require "dropprobe.util"

local M = {}

local function ranked(t)
  local list = {}
  for k, v in pairs(t) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[2].total > b[2].total or (a[2].total == b[2].total and a[1] < b[1]) end)
  return list
end

local function draw(out, tty, state, dt, rows)
  local reasons, locations = ranked(state.reasons), ranked(state.by == "port" and state.ports or state.locations)
  local place = state.by == "port" and "PROTO/PORT/REASON" or "LOCATION"
  if tty then
    local t = { "\27[H\27[2J", ("dropprobe top  %d drops, %.1f/s now, %d events lost, counted %s%s  (Ctrl-C ends)\n\n")
      :format(state.drops, state.tick / dt, state.lost, state.where == "kernel" and "in the kernel" or "in C",
        (state.left_out or 0) > 0 and (", %d left out as already received"):format(state.left_out) or "") }
    t[#t + 1] = ("%-28s %10s %10s\n"):format("REASON", "TOTAL", "PER SEC")
    for i = 1, math.min(rows, #reasons) do
      local r = reasons[i]
      t[#t + 1] = ("%-28s %10d %10.1f\n"):format(r[1], r[2].total, r[2].tick / dt)
    end
    t[#t + 1] = ("\n%-40s %10s %10s\n"):format(place, "TOTAL", "PER SEC")
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
    local places = {}
    for i = 1, math.min(rows, #locations) do
      local l = locations[i]
      places[#places + 1] = ("%s=%d"):format(l[1], l[2].total)
    end
    out:write(("t=%.1f drops=%d rate=%.1f/s lost=%d where=%s %s | %s %s%s\n"):format(state.elapsed,
      state.drops, state.tick / dt, state.lost, state.where, table.concat(parts, " "),
      state.by == "port" and "ports" or "at",
      table.concat(places, " "), (state.left_out or 0) > 0
        and (" | left out as already received: %d"):format(state.left_out) or ""))
  end
  out:flush()
  for _, e in pairs(state.reasons) do e.tick = 0 end
  for _, e in pairs(state.locations) do e.tick = 0 end
  for _, e in pairs(state.ports) do e.tick = 0 end
  state.tick = 0
end

--- Count drops live and print every `interval` seconds. Counted by the
-- kernel where it has hist triggers, else in C (`dropprobe.hist`): a storm
-- costs no Lua per drop.
-- @tparam[opt] table opts `interval` (default 1), `duration`, `filter`
-- (narrows the default, every drop), `all_reasons` (also the drops of
-- packets a socket had already received), `where` ("kernel" or "c"),
-- `rows` (default 10), `out` (default io.stdout), `tty` (default: whether
-- stdout is a terminal), `ready`, `buffer_kb`, `by` ("reason", the default:
-- reasons and locations; "port": reasons and "proto/port/reason" from each
-- drop's packet, counted in C where the kernel has kprobes, refused where
-- it has none; "-" for a packet without ports, "-/-/REASON" for one with no IP header)
-- @treturn table totals `{ drops=, lost=, left_out=, reasons={NAME={total=}}, locations={fn={total=}},
-- ports={["udp/9999/NO_SOCKET"]={total=}}, by=, where= }`
-- @raise the instance was removed under this process or tracefs unmounted
-- (`dropprobe.hist`): after the counts as last read were printed once more
function M.run(opts)
  opts = util.check_options(opts, { "interval", "duration", "filter", "all_reasons", "where", "rows", "out",
    "tty", "ready", "buffer_kb", "by" }, "top.run")
  local interval = opts.interval or 1
  if type(interval) ~= "number" or interval <= 0 then error("top.run: interval must be > 0", 2) end
  local by = opts.by or "reason"
  if by ~= "reason" and by ~= "port" then
    error(("top.run: by is \"reason\" or \"port\", not %q"):format(tostring(by)), 2)
  end
  local keys = hist.default_keys()
  if by == "port" then
    local ok, why = require("dropprobe.hunt").packets()
    if not ok then
      error("top.run: counting by port needs each drop's packet, read by the drop probe (a kprobe): "
        .. tostring(why):gsub(": ports come from joining tracepoints$", ""), 2)
    end
    keys = hist.port_keys()
  end
  local out = opts.out or io.stdout
  local tty = opts.tty
  if tty == nil then tty = out == io.stdout and dp.core.isatty(1) end
  local h <close> = hist.open{ keys = keys,
    condition = dp.drop_filter(opts.filter, opts.all_reasons) or false,
    where = opts.where, buffer_kb = opts.buffer_kb }
  local keep = require("dropprobe.format").keeps_teardown(opts.filter, opts.all_reasons)
  local state = { drops = 0, tick = 0, lost = 0, reasons = {}, locations = {}, ports = {}, elapsed = 0,
    where = h.where, by = by }
  local t0 = dp.now()
  local last = t0
  -- the counts so far become totals, and what they grew by since the last tick
  local function update()
    local r = h:read()
    local reasons, locations, ports = {}, {}, {}
    local hits, left = r.hits, 0
    for _, row in ipairs(r.rows) do
      local reason, loc = dp.reason_label(row.reason), tostring(row.location)
      if not keep and dp.is_teardown(row.reason) then
        left, hits = left + row.hitcount, hits - row.hitcount -- already received: left out
      elseif by == "port" then
        reasons[reason] = (reasons[reason] or 0) + row.hitcount
        local k = ("%s/%s/%s"):format(row.proto or "-", row.dport or "-", reason)
        ports[k] = (ports[k] or 0) + row.hitcount
      else
        reasons[reason] = (reasons[reason] or 0) + row.hitcount
        locations[loc] = (locations[loc] or 0) + row.hitcount
      end
    end
    state.left_out = left
    local function into(t, counts)
      for k, n in pairs(counts) do
        local e = t[k] or { total = 0, tick = 0 }
        e.tick, e.total = n - e.total, n
        t[k] = e
      end
    end
    into(state.reasons, reasons)
    into(state.locations, locations)
    into(state.ports, ports)
    state.tick, state.drops = hits - state.drops, hits
    state.lost = r.lost + r.dropped
  end
  local ok, err = pcall(h.run, h, { duration = opts.duration, ready = opts.ready, tick = interval,
    on_tick = function(now)
    update()
    state.elapsed = now - t0
    draw(out, tty, state, math.max(now - last, 1e-3), opts.rows or 10)
    last = now
  end })
  if not ok then
    -- the instance went away under us (rmdir, tracefs unmounted): the
    -- counts as last read are the last report, then the error
    local now = dp.now()
    state.elapsed = now - t0
    draw(out, tty, state, math.max(now - last, 1e-3), opts.rows or 10)
    error(err, 0)
  end
  return state
end

return M
