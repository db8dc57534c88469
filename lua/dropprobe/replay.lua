--- The recipes over a recording: `watch`, `stacks`, `ports` and `top`
-- read a trace.dat (written by `dropprobe record`, or by stock `trace-cmd
-- record`/`extract`) as they read the live kernel, through `dp.open` (the
-- same decoder, stacks joined) or C counting (`dp.hist_file`), and report
-- in the same shapes, printed by the recipes' own formatters. What the
-- recording was filtered by was decided when it was recorded.
--
-- Where the recording holds the drop probe beside the drop event
-- (`record --packets`), each drop gets the packet of the probe's record
-- just before it on the same CPU with the same skb (the probe fires as the
-- freeing function is entered, the tracepoint inside it).
-- @module dropprobe.replay
-- @usage local replay = require "dropprobe.replay"
-- replay.watch("drops.dat", {}, function(d) io.write(require("dropprobe.recipes.watch").line(d)) end)
local pipe = require "dropprobe.pipe"
local format = require "dropprobe.format"
local record = require "dropprobe.record"
local util = require "dropprobe.util"

local M = {}

--- The drop event a recording's drops are read from.
M.DROP = "kfree_skb"

-- an skb's address as one key (pointer text or a probe's integer)
local function skb_key(v)
  if math.type(v) == "integer" then return ("%x"):format(v) end
  if type(v) == "string" then return (v:lower():gsub("^0x", ""):gsub("^0+", "")) end
end

--- Every record of a recording, in time order, with the drop probe's
-- packet joined to its drop (`rec.packet`); the probe's own records are
-- not handed on.
-- @tparam string path
-- @tparam function fn called with each record
-- @treturn integer the records read
function M.each(path, fn)
  local pending, n = {}, 0
  for rec in pipe.open(path) do
    n = n + 1
    if rec.packet and rec.name ~= M.DROP then
      pending[rec.cpu] = rec
    else
      if rec.name == M.DROP then
        local p = pending[rec.cpu]
        if p and skb_key(p.fields.skb) == skb_key(rec.fields.skbaddr) then rec.packet = p.packet end
        pending[rec.cpu] = nil
      end
      fn(rec)
    end
  end
  return n
end

-- The drops of a recording counted in C by reason (where the file's drop
-- event has one: the recording's kernel decides, not this one) and key.
local function counted(path, key)
  local hist = require "dropprobe.hist"
  local ok, h = pcall(hist.file, path, { keys = { "reason", key } })
  if not ok then h = hist.file(path, { keys = { key } }) end
  return h:read()
end

-- a recipe's live-only options given with --from
local function refuse(opts, names)
  for _, k in ipairs(names) do
    if opts[k] ~= nil and opts[k] ~= false then
      error(("--from: --%s is for live hunts (a recording holds what was recorded: give it to "
        .. "dropprobe record)"):format((k:gsub("_", "-"))), 0)
    end
  end
end

--- The drops of a recording, as `watch.run` gives them.
-- @tparam string path
-- @tparam table opts `all_reasons` (also the drops of packets a socket had
-- already received: left out and counted otherwise), `stacks` (keep each
-- drop's stack; default true)
-- @tparam function fn called with each drop (see `dropprobe.recipes.watch.run`)
-- @treturn table `{ drops =, lost = 0, left_out = {REASON = n}, ended = "eof", packets = }`
function M.watch(path, opts, fn)
  opts = util.check_options(opts, { "all_reasons", "stacks" }, "replay.watch")
  local n, left_out, packets = 0, {}, false
  M.each(path, function(rec)
    if rec.name ~= M.DROP then return end
    local reason = rec.fields.reason
    if not opts.all_reasons and format.is_teardown(reason) then
      left_out[reason] = (left_out[reason] or 0) + 1
      return
    end
    n = n + 1
    packets = packets or rec.packet ~= nil
    fn{ name = rec.name, cpu = rec.cpu, pid = rec.pid, comm = rec.comm, ts = rec.ts, reason = reason,
      location = record.where(rec) or rec.fields.location, stack = opts.stacks ~= false and rec.stack or nil,
      lost_before = rec.lost_before, packet = rec.packet }
  end)
  return { drops = n, lost = 0, left_out = left_out, ended = "eof", packets = packets }
end

--- The stacks of a recording's drops, counted in C, as `stacks.run`
-- reports them (`dropprobe.recipes.stacks.format` prints it).
-- @tparam string path
-- @tparam[opt] table opts `all_reasons`
-- @treturn table the report (`where = "c"`)
function M.stacks(path, opts)
  opts = util.check_options(opts, { "all_reasons" }, "replay.stacks")
  local r = counted(path, "stacktrace")
  local by, list, matched, with_stack, left_out = {}, {}, 0, 0, {}
  for _, row in ipairs(r.rows) do
    local reason = format.reason_label(row.reason)
    if not opts.all_reasons and format.is_teardown(row.reason) then
      left_out[reason] = (left_out[reason] or 0) + row.hitcount
    else
      matched = matched + row.hitcount
      if #row.stack > 0 then
        with_stack = with_stack + row.hitcount
        local names = {}
        for i, f in ipairs(row.stack) do names[i] = (f:gsub("%+0x%x+/0x%x+$", ""):gsub("%+0x%x+$", "")) end
        local key = table.concat(names, ";")
        local st = by[key]
        if not st then
          st = { frames = names, count = 0, reasons = {} }
          by[key] = st
          list[#list + 1] = st
        end
        st.count = st.count + row.hitcount
        st.reasons[reason] = (st.reasons[reason] or 0) + row.hitcount
      end
    end
  end
  table.sort(list, function(x, y) return x.count > y.count end)
  return { matched = matched, with_stack = with_stack, sampled = false, stacks = list,
    filter = "as recorded in " .. path, lost = 0, dropped = r.dropped, read = r.hits, where = "c",
    ended = "eof", left_out = left_out }
end

--- A recording's drops per reason and location, counted in C: the rows
-- `top` would have shown at the end.
-- @tparam string path
-- @treturn table `{ drops =, reasons = {NAME = n}, rows = {{reason=, location=, hitcount=}...} }`
function M.top(path)
  local r = counted(path, "location.sym")
  local reasons, drops = {}, 0
  for _, row in ipairs(r.rows) do
    local reason = format.reason_label(row.reason)
    row.reason = reason
    reasons[reason] = (reasons[reason] or 0) + row.hitcount
    drops = drops + row.hitcount
  end
  return { drops = drops, reasons = reasons, rows = r.rows }
end

--- `top`'s table for a recording, as text.
-- @tparam table t from `top`
-- @tparam[opt=10] integer rows
-- @treturn string
function M.top_format(t, rows)
  rows = rows or 10
  local out = { ("%d drops in the recording"):format(t.drops), "",
    ("%-28s %10s"):format("REASON", "TOTAL") }
  local rs = {}
  for r, n in pairs(t.reasons) do rs[#rs + 1] = { r, n } end
  table.sort(rs, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  for i = 1, math.min(rows, #rs) do out[#out + 1] = ("%-28s %10d"):format(rs[i][1], rs[i][2]) end
  out[#out + 1] = ""
  out[#out + 1] = ("%-28s %-40s %10s"):format("REASON", "LOCATION", "TOTAL")
  for i = 1, math.min(rows, #t.rows) do
    local row = t.rows[i]
    out[#out + 1] = ("%-28s %-40s %10d"):format(row.reason, tostring(row.location), row.hitcount)
  end
  return table.concat(out, "\n") .. "\n"
end

--- Raise when a live-only option is given with --from.
-- @tparam table opts the parsed options
-- @tparam {string,...} names the options a recording cannot honour
M.refuse = refuse

return M
