--- Stack traces only for the drops that matter: the seed's
-- `stacktrace if <condition>`, counted and de-duplicated.
--
-- Every matching drop is counted under its kernel stack: by the kernel
-- where it has hist triggers (`hist:keys=reason,stacktrace`), else in C over
-- the raw buffers (a stacktrace trigger with the same condition as the
-- filter: a trigger runs before, and regardless of, the filter); stacks are
-- keyed by their function names, counted, ranked, and the reasons seen on
-- each are kept. With a limit, the first N drops get a stack instead.
-- @module dropprobe.recipes.stacks
-- @usage local stacks = require "dropprobe.recipes.stacks"
-- local report = stacks.run{ filter = "reason == NO_SOCKET", duration = 10 }
-- io.write(stacks.format(report))
local dp = require "dropprobe"
local hunt = require "dropprobe.hunt"
local hist = require "dropprobe.hist"
local util = require "dropprobe.util"

local M = {}

local function frame_name(f)
  return (f:gsub("%+0x%x+/0x%x+$", ""):gsub("%+0x%x+$", ""))
end

-- The ranked stacks of a report from stacks -> reason -> count.
local function ranked(by)
  local list = {}
  for _, st in pairs(by) do list[#list + 1] = st end
  table.sort(list, function(x, y) return x.count > y.count end)
  return list
end

local function add(by, frames, reason, n)
  local names = {}
  for i, f in ipairs(frames) do names[i] = frame_name(f) end
  local key = table.concat(names, ";")
  local st = by[key]
  if not st then
    st = { frames = names, count = 0, reasons = {} }
    by[key] = st
  end
  st.count = st.count + n
  st.reasons[reason] = (st.reasons[reason] or 0) + n
end

-- A stack for every matching drop: counted where the kernel can (hist
-- trigger keyed by reason and stacktrace), else in C; nothing per drop in Lua.
local function counted(opts)
  local keys = { "stacktrace" }
  if dp.has_reasons() then keys = { "reason", "stacktrace" } end
  local h <close> = hist.open{ keys = keys, condition = dp.drop_filter(opts.filter, opts.all_reasons) or false,
    where = opts.where, buffer_kb = opts.buffer_kb }
  -- where the kernel counts, the counts are read every second too: if the
  -- instance is removed under us they go with it, and the report is made
  -- from the last reading (`fault` says what happened)
  local kernel = h.where == "kernel"
  local ok, ended = pcall(h.run, h, { duration = opts.duration, idle = opts.idle, ready = opts.ready,
    tick = kernel and 1 or nil, on_tick = kernel and function() h:read() end or nil })
  local fault
  if ok then ok, fault = pcall(h.read, h) else fault = ended end
  -- only the instance gone is a fault with a last report; anything else is raised as it is
  if not ok and not (h.last and h.inst and require("dropprobe.instance").gone_message(h.inst)) then
    error(fault, 0)
  end
  if ok then fault = nil end
  local r = h.last
  local by, with_stack, left_out, matched = {}, 0, {}, r.hits
  local keep = require("dropprobe.format").keeps_teardown(opts.filter, opts.all_reasons)
  for _, row in ipairs(r.rows) do
    if not keep and dp.is_teardown(row.reason) then
      left_out[row.reason] = (left_out[row.reason] or 0) + row.hitcount
      matched = matched - row.hitcount
    elseif #row.stack > 0 then
      with_stack = with_stack + row.hitcount
      add(by, row.stack, dp.reason_label(row.reason), row.hitcount)
    end
  end
  return { matched = matched, with_stack = with_stack, sampled = false, stacks = ranked(by),
    filter = h.condition or "every drop", lost = r.lost, dropped = r.dropped, read = r.hits,
    where = r.where, ended = fault and "fault" or ended, left_out = left_out, fault = fault }
end

-- The first `limit` matching drops get a stack (stacktrace:N), read as
-- records; or, with a packet condition (`match`, `dev`, `netns`), every
-- drop of the drop probe that passes it (no limit: stacktrace).
local function sampled(opts, packets)
  local h <close> = hunt.open{ filter = opts.filter, all_reasons = opts.all_reasons, stacks = opts.limit or true,
    mode = opts.mode, buffer_kb = opts.buffer_kb, packets = packets or nil, match = opts.match,
    dev = opts.dev, netns = opts.netns }
  local by, matched, with_stack = {}, 0, 0
  local ended = h:run(hunt.run_options(opts), function(rec)
    if rec.name ~= h.drop_name then return end
    matched = matched + 1
    if not rec.stack then return end
    with_stack = with_stack + 1
    add(by, rec.stack, dp.reason_label(rec.fields.reason), 1) -- from the dropping function already
  end)
  local st = h:totals()
  return { matched = matched, with_stack = with_stack, sampled = with_stack < matched,
    stacks = ranked(by), filter = h.condition or "every drop", lost = st.lost, dropped = 0,
    read = st.read, where = "records", ended = ended, left_out = h.left_out }
end

--- Hunt for `duration` seconds (or until Ctrl-C / `idle`).
-- Without `limit`, every matching drop is counted under its stack where the
-- kernel counts (hist triggers) or in C (`dropprobe.hist`); with `limit`, the
-- first N matching drops get a stack, read as records.
-- @tparam[opt] table opts `filter` (which drops: narrows the default, every
-- drop; reason names allowed), `all_reasons` (also the drops of packets a
-- socket had already received: `left_out` otherwise), `limit` (stacks to sample), `where` ("kernel" or "c": where to
-- count), `duration`, `idle`, `mode` (records, with `limit`), `buffer_kb`,
-- `ready` (called once everything is set up), `progress` (with `limit`),
-- `match` (only drops whose packet passes this tcpdump filter expression),
-- `dev` and `netns` (only drops of packets on this interface, in this
-- network namespace): these three need each drop's packet (a kernel with
-- kprobes); the drops are then read as records from the drop probe, each
-- with its stack
-- @treturn table `{ stacks = {{frames=, count=, reasons={NAME=n}}...}, matched=,
-- with_stack=, sampled=, lost=, dropped=, read=, filter=, where=, ended=, left_out={REASON=n}, fault= }`;
-- frames start at the function that dropped the packet. `fault` is the
-- error when the instance the kernel counted in was removed under this
-- process (or tracefs unmounted): the report is then the counts as last
-- read (every second), and `ended` is "fault"
-- @raise the same, when nothing had been read yet
function M.run(opts)
  opts = util.check_options(opts, { "filter", "all_reasons", "limit", "duration", "idle", "mode",
    "buffer_kb", "ready", "progress", "every", "where", "match", "dev", "netns" }, "stacks.run")
  if opts.limit ~= nil and (math.type(opts.limit) ~= "integer" or opts.limit < 1) then
    error("stacks.run: limit is a whole number of stacks >= 1", 2)
  end
  local ok, err = pcall(hunt.check_packet_opts, opts, "stacks.run")
  if not ok then error(err, 2) end
  if opts.match ~= nil or opts.dev ~= nil or opts.netns ~= nil then
    local packets, why = hunt.packets_for{ mode = opts.mode }
    if not packets then error("stacks.run: dev, netns and a packet filter need the packet of each drop: " .. why, 2) end
    return sampled(opts, true)
  end
  if opts.limit then return sampled(opts) end
  return counted(opts)
end

--- Folded lines for flame graphs: `outermost;...;innermost count`, one line
-- per distinct stack.
-- @tparam table report from `run`
-- @treturn {string,...}
function M.folded(report)
  local out = {}
  for _, s in ipairs(report.stacks) do
    local rev = {}
    for i = #s.frames, 1, -1 do rev[#rev + 1] = s.frames[i] end
    out[#out + 1] = table.concat(rev, ";") .. " " .. s.count
  end
  return out
end

--- The report as a ranked table for people.
-- @tparam table report from `run`
-- @tparam[opt=12] integer depth frames shown per stack
-- @treturn string
function M.format(report, depth)
  depth = depth or 12
  local t = {}
  local where = report.where == "kernel" and "counted in the kernel"
    or report.where == "c" and "counted in C" or "read as records"
  t[#t + 1] = ("%d drops matched %q, %d with a stack%s (%s); %d events lost"):format(report.matched,
    report.filter, report.with_stack, report.sampled and " (sampled)" or "", where,
    (report.lost or 0) + (report.dropped or 0))
  for rank, s in ipairs(report.stacks) do
    local rs = {}
    for r, n in pairs(s.reasons) do rs[#rs + 1] = ("%s %d"):format(r, n) end
    table.sort(rs)
    t[#t + 1] = ("\n#%d  %d drops  (%s)"):format(rank, s.count, table.concat(rs, ", "))
    for i = 1, math.min(depth, #s.frames) do t[#t + 1] = "    " .. s.frames[i] end
    if #s.frames > depth then t[#t + 1] = ("    ... %d more frames"):format(#s.frames - depth) end
  end
  local note = hunt.left_out_note(report.left_out)
  if note then t[#t + 1] = "\n" .. note end
  return table.concat(t, "\n") .. "\n"
end

return M
