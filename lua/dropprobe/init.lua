--- Hunt Linux kernel packet drops from Lua, with nothing on the host but tracefs.
--
-- The C core (`dropprobe.core`) holds the tracefs objects: a private
-- `Instance`, its `Event`s (enable, filter, trigger) and `Pipe`s that read
-- records from one of four sources (trace_pipe text, a saved text, the raw
-- per-CPU buffers, a trace.dat). The Lua files beside this one mirror the C
-- files: `tracefs` (where it is, what it offers), `format` (formats, drop
-- reasons by name), `instance` (Instance and Event methods), `pipe` (the
-- read loop, stats, saved traces), `record` (printing, where a drop
-- happened), `kprobe`, `doctor` (checks and cleanup), `hunt` (what every
-- recipe opens and runs), `hist` (counting in the kernel or in C),
-- `recording` (a trace.dat of an instance's pages, the flight recorder). This
-- file only assembles the public module.
--
-- @module dropprobe
-- @usage
-- local dp = require "dropprobe"
-- local inst <close> = dp.instance{ buffer_kb = 4096 }
-- local ev = inst:event("skb:kfree_skb")
-- ev:filter("reason == NO_SOCKET")          -- names, not this kernel's numbers
-- ev:trigger("stacktrace if reason == NO_SOCKET")
-- ev:enable()
-- for rec in inst:records{ timeout = 2 } do print(rec) end

local core = require "dropprobe.core"
local tracefs = require "dropprobe.tracefs"
local format = require "dropprobe.format"
local instance = require "dropprobe.instance"
local pipe = require "dropprobe.pipe"
local record = require "dropprobe.record"
local kprobe = require "dropprobe.kprobe"
local doctor = require "dropprobe.doctor"
local hunt = require "dropprobe.hunt"
local hist = require "dropprobe.hist"
local recording = require "dropprobe.recording"

local M = { core = core, VERSION = "0.1.0" }

--- What a hunt uses unless told otherwise (`dropprobe.hunt.DEFAULTS`).
M.DEFAULTS = hunt.DEFAULTS

-- tracefs.lua
M.tracefs, M.now, M.features = tracefs.tracefs, tracefs.now, tracefs.features
M.systems, M.events, M._kernel_config = tracefs.systems, tracefs.events, tracefs._kernel_config
-- format.lua
M.parse_format, M.format, M.reasons_of = format.parse_format, format.format, format.reasons_of
M.reasons, M.NON_DROPS, M.has_reasons = format.reasons, format.NON_DROPS, format.has_reasons
M.reason_label, M.NO_REASON = format.reason_label, format.NO_REASON
M.subsystems, M.SUBSYS_SHIFT = format.subsystems, format.SUBSYS_SHIFT
M.drop_condition, M.trigger_if = format.drop_condition, format.trigger_if
M.drop_filter, M.is_teardown, M.TEARDOWN = format.drop_filter, format.is_teardown, format.TEARDOWN
M._translate, M._event_symbols = format.translate, format.event_symbols
-- instance.lua
M.instance = instance.instance
-- pipe.lua
M.each, M.open, M._known_names = pipe.each, pipe.open, pipe.known_names
-- record.lua
M.where = record.where
-- kprobe.lua
M.kprobe, M.arg, M.drop_hook = kprobe.kprobe, kprobe.arg, kprobe.drop_hook
-- hist.lua
M.hist, M.hist_file = hist.open, hist.file
-- pcap.lua: the dropped packets as pcapng, a sink for scripts (loaded when first used)
--- Open a pcapng file for the drop probe's records: `dp.pcap(path)`, then
-- `w:write(rec)` for each record, `w:close()` (see `dropprobe.pcap`).
-- @tparam string path made anew, mode 0600, never through a symlink
-- @tparam[opt] table opts `snaplen`
-- @return the sink
function M.pcap(path, opts)
  return require("dropprobe.pcap").open(path, opts)
end
-- doctor.lua
M.doctor, M.cleanup = doctor.doctor, doctor.cleanup
-- recording.lua: a trace.dat that trace-cmd reads, the flight recorder
M.record = recording.record

--- The path of each dropped packet: the kernel functions (kprobes, where
-- the kernel has them) and tracepoints its skb passed through, ending at
-- the drop (`dropprobe.recipes.path`).
-- @tparam[opt] table opts `host`, `port`, `proto`, `match`, `filter`, `all`,
-- `functions` ("default", "all", a regular expression), `stacks`, `limit`, ...
-- @treturn Path with `paths{}`, `read(timeout)`, `stats()`, `close()`
-- @usage local pth <close> = dp.path{ port = 9 }
-- for p in pth:paths{ duration = 5 } do print(#p.steps, p.fields.reason) end
function M.path(opts)
  return require("dropprobe.recipes.path").open(opts)
end

return M
