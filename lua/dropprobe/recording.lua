--- Recording drops to a trace.dat that stock `trace-cmd report` and
-- KernelShark read, where `trace-cmd record` cannot run (a locked-down
-- kernel: it fails writing `/proc/sys/kernel/ftrace_enabled`).
--
-- The events of a private instance are kept as the kernel wrote them: the
-- per-CPU sub-buffers of `trace_pipe_raw`, nothing decoded. The file is
-- written by libtracecmd, the library trace-cmd writes its own with
-- (version 6: every trace-cmd and KernelShark reads it): header page,
-- the ftrace formats (the stacks' `kernel_stack`), the formats of the
-- events recorded, kallsyms, printk formats, saved cmdlines, the pages.
--
-- Two ways to record:
--
-- * streaming (`duration`, or until Ctrl-C): the pages are read as they
--   fill and kept in unlinked files beside the output, then written;
-- * the flight recorder (`until`): the events run into the instance's ring
--   buffer in overwrite mode, nothing is read; the first drop that matches
--   the condition (the `count`-th) stops the buffer in the kernel (a
--   `traceoff` trigger with that condition) and what it holds is written:
--   the events that led up to that drop, and the drop itself, last.
-- @module dropprobe.recording
-- @usage local recording = require "dropprobe.recording"
-- local r = recording.record{ path = "drops.dat", duration = 10 }
-- print(r.pages, r.bytes)
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local format = require "dropprobe.format"
local instance = require "dropprobe.instance"

local M = {}
local fmt = string.format

--- The drop event recorded unless told otherwise, with a stack for each drop.
M.DROP_EVENT = "skb:kfree_skb"

--- How often the flight recorder looks whether its buffer was stopped
-- (reads one control file; nothing of the buffer is read while waiting).
M.FREEZE_POLL = 0.1

-- the bytes the instance's buffers hold now, summed over CPUs
local function buffer_stats(inst)
  local out = { bytes = 0, overrun = 0, dropped = 0, entries = 0 }
  local cpu = 0
  while true do
    local s = inst:read_file(fmt("per_cpu/cpu%d/stats", cpu))
    if not s then break end
    out.bytes = out.bytes + (tonumber(s:match("bytes:%s*(%d+)")) or 0)
    out.overrun = out.overrun + (tonumber(s:match("\noverrun:%s*(%d+)") or s:match("^overrun:%s*(%d+)")) or 0)
    out.dropped = out.dropped + (tonumber(s:match("dropped events:%s*(%d+)")) or 0)
    out.entries = out.entries + (tonumber(s:match("entries:%s*(%d+)")) or 0)
    cpu = cpu + 1
  end
  out.ncpu = cpu
  return out
end

local function check(opts)
  opts = util.check_options(opts, { "path", "events", "filter", "all_reasons", "stacks", "packets",
    "duration", "until", "count", "before", "buffer_kb", "ready", "progress", "on_freeze" }, "record")
  if type(opts.path) ~= "string" or opts.path == "" then error("record: path is the trace.dat to write", 3) end
  if opts.path:find("[%c]") then error("record: the path has a control character", 3) end
  for _, k in ipairs({ "duration", "before" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v <= 0 or v ~= v or v == math.huge) then
      error(fmt("record: %s is a number of seconds > 0", k), 3)
    end
  end
  for _, k in ipairs({ "count", "buffer_kb" }) do
    local v = opts[k]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then error(fmt("record: %s is a whole number >= 1", k), 3) end
  end
  if opts["until"] ~= nil then
    if type(opts["until"]) ~= "string" or opts["until"] == "" then error("record: until is a condition", 3) end
    core.check_command(opts["until"], "until")
  elseif opts.count or opts.before then
    error("record: count and before belong to the flight recorder (until)", 3)
  end
  if opts.before and opts.buffer_kb then error("record: give before or buffer_kb, not both", 3) end
  if opts.events ~= nil then
    if type(opts.events) ~= "table" then error("record: events is a list of \"system:event\"", 3) end
    for _, e in ipairs(opts.events) do
      if type(e) ~= "string" or not e:match("^[%w_]+:[%w_]+$") then
        error(fmt("record: event '%s' is not \"system:event\" (letters, digits, _)", tostring(e)), 3)
      end
    end
  end
  return opts
end

-- The instance and what records in it: the drop event (its filter and
-- stack trigger), the packet probe beside it, the other events; the
-- flight recorder's traceoff trigger first (triggers run newest first: the
-- stack of the chosen drop is written before the buffer stops).
local function arm(inst, opts, cond, until_cond)
  local globs = {}
  local function note(ev)
    local i = ev:info()
    globs[#globs + 1] = i.system .. "/" .. i.name
  end
  local events = opts.events or { M.DROP_EVENT }
  local drop
  for _, name in ipairs(events) do
    local ev = inst:event(name)
    note(ev)
    if name == M.DROP_EVENT then drop = ev end
  end
  if until_cond and not drop then
    error("record: until needs the drop event (" .. M.DROP_EVENT .. ") among the events", 0)
  end
  local armed = {}
  if drop then
    if cond then drop:filter(cond) end
    if until_cond then
      local c = cond and ("(" .. cond .. ") && (" .. until_cond .. ")") or until_cond
      drop:trigger("traceoff if " .. c)
      armed.traceoff = c
    end
    if opts.stacks ~= false then drop:trigger(format.trigger_if("stacktrace", cond)) end
  end
  for _, name in ipairs(events) do inst:event(name):enable() end
  if opts.packets then
    local ev = inst:event(require("dropprobe.kprobe").packet_probe())
    ev:filter("skb != 0")
    ev:enable()
    note(ev)
  end
  return globs, armed
end

-- The buffer for `before` seconds at the rate the events come now: one
-- second counted in an instance of its own.
local function measured_kb(opts, cond, before)
  local inst <close> = instance.instance{ buffer_kb = 8192 }
  arm(inst, { events = opts.events, stacks = opts.stacks }, cond, nil)
  core.sleep(1)
  local st = buffer_stats(inst)
  local per_cpu = (st.bytes + 0.0) * before * 1.5 / math.max(1, st.ncpu)
  return math.max(256, math.min(262144, math.ceil(per_cpu / 1024))), st.bytes
end

--- Record the events of a private instance to a trace.dat.
-- @tparam table opts `path` (the file; checked before tracefs is touched:
-- writable, and room on its filesystem), `events` (default
-- `{ "skb:kfree_skb" }`), `filter` (which drops: narrows the default,
-- every drop, as the recipes; reason names allowed), `all_reasons`,
-- `stacks` (default true: a kernel stack for each drop, an
-- `ftrace:kernel_stack` event in the file), `packets` (the drop probe
-- beside the drop event, its packet bytes in the file; needs kprobes),
-- `duration` (seconds), `until` (the flight recorder: the condition of the
-- drop that stops the buffer, e.g. "reason == NO_SOCKET"), `count` (stop at
-- the count-th such drop), `before` (seconds of events to keep before it:
-- the buffer is sized from one second of the events as they come now) or
-- `buffer_kb` (per CPU), `ready` (called with a description once armed),
-- `progress` (called with the pages kept, every second)
-- @treturn table `{ path, pages, bytes, per_cpu, ended = "duration" |
-- "interrupted" | "frozen" | "disk", matches (the flight recorder: drops
-- that matched until), lost (events the kernel could not keep), buffer_kb }`
-- @raise a path that cannot be written (before tracefs is touched), not
-- root, a refused condition, a write that failed while finishing
function M.record(opts)
  opts = check(opts)
  local flight = opts["until"] ~= nil
  -- the file first: nothing in tracefs for a path that cannot take it
  local ok, why = core.dat_check(opts.path, flight and (opts.buffer_kb or 4096) * 1024 or 1 << 20)
  if not ok then error(fmt("record: cannot write '%s': %s; nothing was changed in tracefs", opts.path, why), 2) end
  if opts.packets then
    local can, no = require("dropprobe.hunt").packets()
    if not can then error("record: packets need the packet of each drop: " .. no, 2) end
  end
  local has_drop = opts.events == nil
  for _, e in ipairs(opts.events or {}) do has_drop = has_drop or e == M.DROP_EVENT end
  if not has_drop and (opts.filter or opts["until"]) then
    error("record: filter and until apply to the drop event (" .. M.DROP_EVENT .. "), which is not among the events", 2)
  end
  local cond = format.drop_filter(opts.filter, opts.all_reasons)
  if not format.keeps_teardown(opts.filter, opts.all_reasons) then cond = format.without_teardown(cond) end
  local buffer_kb = opts.buffer_kb or 8192
  local measured
  if flight and opts.before then buffer_kb, measured = measured_kb(opts, cond, opts.before) end
  local inst <close> = instance.instance{ buffer_kb = buffer_kb }
  local globs, armed = arm(inst, opts, cond, opts["until"])
  local rec <close> = core.recorder(inst, opts.path, { events = globs })
  local what = flight
    and fmt("the last events before a drop where %s%s, %d kB a CPU%s", opts["until"],
      (opts.count or 1) > 1 and fmt(" (the %d-th)", opts.count) or "", buffer_kb,
      measured and fmt(" (%.0f kB/s now, %g s)", measured / 1024, opts.before) or "")
    or fmt("%s%s", table.concat(globs, ","), opts.stacks ~= false and " with stacks" or "")
  if opts.ready then opts.ready(fmt("%s where %s into %s", what, cond or "(every event)", opts.path)) end
  local now = core.now()
  local deadline = opts.duration and now + opts.duration
  local ended, matches, failure = nil, 0, nil
  local next_progress = now + 1
  while not ended do
    now = core.now()
    if deadline and now >= deadline then ended = "duration" break end
    if core.signal() then ended = "interrupted" break end
    if flight then
      local slept = core.sleep(M.FREEZE_POLL)
      if not slept then ended = "interrupted" break end
      if not inst:tracing() then
        matches = matches + 1
        if opts.on_freeze then opts.on_freeze(matches) end
        if matches >= (opts.count or 1) then ended = "frozen" break end
        inst:tracing(true) -- not the one asked for: on again
      end
    else
      local wait = 250
      if deadline then wait = math.max(0, math.min(wait, math.floor((deadline - now) * 1000))) end
      local n, err = rec:read(wait)
      if not n then
        if err == "interrupted" then ended = "interrupted" else ended, failure = "disk", err end
      elseif opts.progress and now >= next_progress then
        opts.progress(rec:stats().pages)
        next_progress = now + 1
      end
    end
  end
  -- stop the buffer, keep what it still has, write the file
  inst:tracing(false)
  local st = buffer_stats(inst)
  if not failure then
    local n, err = rec:drain()
    if not n then ended, failure = "disk", err end
  end
  local res = rec:finish()
  res.ended, res.matches, res.buffer_kb = ended, matches, buffer_kb
  res.failure = failure
  -- streaming: what the kernel could not keep (a reader too slow); the
  -- flight recorder overwrites the oldest by design: that is not a loss
  res.lost = flight and 0 or (st.overrun + st.dropped)
  res.overwritten = flight and st.overrun or 0
  res.traceoff = armed.traceoff
  return res
end

return M
