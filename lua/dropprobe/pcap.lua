--- The dropped packets as a pcapng file, for Wireshark, tshark and tcpdump.
--
-- A sink for the records of the drop probe (`dp.packet_probe`, kernels with
-- kprobes): each record that carries the packet's bytes (`pkt`, read from
-- `skb->head`, and `nh`, the network header's offset) becomes an enhanced
-- packet block of link type raw IP (the packet from its IP header on, at
-- most the bytes the probe read), stamped with the kernel's time of the
-- drop (the instance's monotonic clock, moved onto the wall clock once,
-- when the file is opened), its original length as its IP header gives it,
-- and a comment: the drop reason and location. One interface per device
-- and namespace (`lo@4026532158`: `rec.packet.dev` and `.netns` where the
-- probe reads them, `drop` otherwise). Blocks are
-- written whole as they come (`core.pcapng_open`): a reader sees every
-- packet written so far, and a writer killed midway leaves a file readable
-- up to its last block.
-- @module dropprobe.pcap
-- @usage local pcap = require "dropprobe.pcap"
-- local w <close> = pcap.open("drops.pcapng")
-- for rec in pipe_of_the_drop_probe do w:write(rec) end
local core = require "dropprobe.core"
local record = require "dropprobe.record"
local format = require "dropprobe.format"

local M = {}
local Sink = {}
Sink.__index = Sink

-- CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: luasocket's gettime is the
-- wall clock to the microsecond, taken between two monotonic reads
local function wall_offset_ns()
  local socket = require "socket"
  local m0 = core.now()
  local wall = socket.gettime()
  local m1 = core.now()
  return math.floor((wall - (m0 + m1) / 2) * 1e9 + 0.5)
end

--- Whether a record carries a packet's bytes (the drop probe's, raw mode).
-- @tparam table rec
-- @treturn boolean
function M.has_packet(rec)
  local f = rec.fields
  return type(f) == "table" and type(f.pkt) == "string" and math.type(f.nh) == "integer"
    and f.nh >= 0 and f.nh < #f.pkt
end

--- Open a pcapng file for drops.
-- @tparam string path made anew, mode 0600
-- @tparam[opt] table opts `snaplen` (the bytes a packet may have, default
-- the probe's 512)
-- @return a sink: `begin()`, `write(rec)`, `stats()`, `close()` (also `<close>`)
-- @raise a path that cannot be written
function M.open(path, opts)
  opts = opts or {}
  local w = core.pcapng_open(path, { snaplen = opts.snaplen or 512 })
  return setmetatable({ w = w, offset = wall_offset_ns(), skipped = 0 }, Sink)
end

--- The comment of a drop: its reason ("-" before 5.17) and location (and its qdisc, when a
-- record has one).
-- @tparam table rec
-- @treturn string
function M.comment(rec)
  local f = rec.fields or {}
  local parts = {}
  parts[1] = format.reason_label(f.reason) -- "-" where the kernel has no drop reasons
  local where = record.where(rec)
  if where then parts[#parts + 1] = tostring(where) end
  if type(rec.qdisc) == "table" and rec.qdisc.kind then
    parts[#parts + 1] = ("qdisc %s"):format(rec.qdisc.kind)
  end
  return table.concat(parts, " ")
end

--- Write a record's packet.
-- @tparam table rec a record of the drop probe
-- @treturn boolean true when written, false for a record without a
-- packet's bytes (counted in `stats().skipped`)
-- @raise a failed write (a full disk), with what was written before
function Sink:write(rec)
  if not M.has_packet(rec) then
    self.skipped = self.skipped + 1
    return false
  end
  local f = rec.fields
  local bytes = f.pkt:sub(f.nh + 1)
  local p = rec.packet
  local orig = p and p.len or #bytes
  -- the packet's own bytes: what lies beyond its length in the buffer is not its
  if orig > 0 and orig < #bytes then bytes = bytes:sub(1, orig) end
  -- one interface per device and namespace: lo of one namespace is not another's
  local dev = p and p.dev and (p.netns and ("%s@%d"):format(p.dev, p.netns) or p.dev) or "drop"
  local ts = math.floor(rec.ts * 1e9 + 0.5) + self.offset
  self.w:packet(dev, ts, bytes, math.max(orig, 0), M.comment(rec))
  return true
end

--- Empty the file and write its header now (otherwise before the first
-- packet): a run that is set up calls it, so the file is a capture even
-- with no drop; one that fails before leaves an existing file as it was.
function Sink:begin()
  self.w:begin()
end

--- What was written: `packets`, `bytes`, `interfaces`, `skipped`.
-- @treturn table
function Sink:stats()
  local s = self.w:stats()
  s.skipped = self.skipped
  return s
end

--- Close the file (idempotent).
function Sink:close()
  return self.w:close()
end
Sink.__close = Sink.close
Sink.__gc = Sink.close

return M
