--- Every drop as it happens: one line (or one JSON object) a drop, with its
-- reason, its place, its packet where the kernel gives it, and its stack
-- when asked. The recipe behind `dropprobe watch`.
-- @module dropprobe.recipes.watch
-- @usage local watch = require "dropprobe.recipes.watch"
-- watch.run({ duration = 10 }, function(d) io.write(watch.line(d)) end)
local dp = require "dropprobe"
local hunt = require "dropprobe.hunt"
local util = require "dropprobe.util"

local M = {}

--- Watch drops until `duration`, `idle` or a signal, calling fn with each.
-- @tparam[opt] table opts `filter` (narrows the default, every drop),
-- `all_reasons`, `stacks` (true or a number: a stack for the first N),
-- `mode` ("raw" default, or "text"), `port`, `host` (only drops of packets
-- from or to them: they need the packet of each drop), `buffer_kb`,
-- `duration`, `idle`, `ready` (called with what is traced once armed),
-- `pcap` (a file: every drop's packet written to it as pcapng as it comes,
-- `dropprobe.pcap`; needs the packet of each drop), `match` (only drops
-- whose packet passes this tcpdump filter expression, e.g. "udp and dst
-- port 53"; needs the packet of each drop), `dev` and `netns` (only drops
-- of packets on that interface, in that network namespace: see `hunt.open`;
-- where drops come without their packet, `dev` joins them with the
-- tracepoints that name a packet's device, and `netns` is refused)
-- @tparam function fn called with each drop: `{ name, cpu, pid, comm, ts,
-- reason (nil where the kernel has no drop reasons), location, stack,
-- lost_before, packet, qdisc, dev }` (`dev`: the device joined from
-- tracepoints, where there is no packet); `name` is the event's, or "drop" for the drop
-- probe that reads the packet; `qdisc` for a QDISC_DROP where the kernel
-- has qdisc:qdisc_drop (`{ kind, handle, parent, ifindex, reason, dev }`)
-- @treturn table `{ drops =, lost =, left_out = {REASON = n}, ended =,
-- qdisc_unexplained = the QDISC_DROP drops that got no qdisc (qdisc_why says
-- why, where the kernel has no qdisc:qdisc_drop),
-- packets = whether drops carry their packet, devices = the tracepoints
-- the device was joined from (or nil), other_dev, no_dev = the drops left
-- out as on another device or on none known, pcap = what was written
-- (`{ packets, bytes, interfaces, skipped }`) }`
-- @raise `port`, `host` or `pcap` where no packet can be read (why, from
-- `hunt.packets_for`), a pcap file that cannot be made (both before
-- tracefs is touched), and what `hunt.open` raises
function M.run(opts, fn)
  opts = util.check_options(opts, { "filter", "all_reasons", "stacks", "mode", "port", "host", "buffer_kb",
    "duration", "idle", "ready", "pcap", "match", "dev", "netns" }, "watch.run")
  local ok, err = pcall(hunt.check_packet_opts, opts, "watch.run")
  if not ok then error(err, 2) end
  local packets, why = hunt.packets_for{ mode = opts.mode }
  if (opts.port or opts.host or opts.match or opts.netns) and not packets then
    error("watch.run: port, host, netns and a packet filter need the packet of each drop: " .. why, 2)
  end
  if opts.pcap ~= nil and not packets then
    error("watch.run: pcap needs the packet of each drop: " .. why, 2)
  end
  local pcap <close> = opts.pcap ~= nil and require("dropprobe.pcap").open(opts.pcap) or nil
  local h <close> = hunt.open{ filter = opts.filter, all_reasons = opts.all_reasons, stacks = opts.stacks,
    mode = opts.mode, packets = packets, port = opts.port, host = opts.host, match = opts.match,
    dev = opts.dev, netns = opts.netns, buffer_kb = opts.buffer_kb, qdisc = true }
  if pcap then pcap:begin() end -- emptied only now that the hunt is set up
  local n, unexplained = 0, 0
  local ended = h:run(hunt.run_options(opts), function(rec)
    if rec.name ~= h.drop_name then return end
    n = n + 1
    if rec.fields.reason == "QDISC_DROP" and not rec.qdisc then unexplained = unexplained + 1 end
    if pcap then pcap:write(rec) end
    -- the place: the kernel's location, or the stack's where it has none
    fn{ name = h.packets and "drop" or rec.name, cpu = rec.cpu, pid = rec.pid, comm = rec.comm, ts = rec.ts,
      reason = rec.fields.reason, location = dp.where(rec) or rec.fields.location, stack = rec.stack,
      lost_before = rec.lost_before, packet = rec.packet, qdisc = rec.qdisc, dev = rec.dev }
  end)
  return { drops = n, lost = h:totals().lost, left_out = h.left_out, ended = ended, packets = h.packets == true,
    qdisc = h.qdisc == true, qdisc_why = h.qdisc_why, qdisc_unexplained = unexplained,
    devices = h.devices, other_dev = h.other_dev,
    no_dev = h.no_dev,
    pcap = pcap and pcap:stats() or nil }
end

-- "udp 127.0.0.1:43210 -> 127.0.0.1:5555 ", or "" without a packet
local function five_tuple(p)
  if not p then return "" end
  local function ep(addr, port)
    if not port then return addr end
    return (addr:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(addr, port)
  end
  return ("%s %s -> %s "):format(tostring(p.proto), ep(p.saddr, p.sport), ep(p.daddr, p.dport))
end

--- A drop as text: "ts cpuN comm/pid [5-tuple ]REASON location[ dev=IF
-- netns=INODE]", then the
-- events lost before it and its stack, one frame a line.
-- @tparam table d a drop as `run` gives it
-- @treturn string lines ending in a newline
function M.line(d)
  local p, q = d.packet or {}, d.qdisc
  -- a qdisc's drop: the qdisc says where, not the function that freed the list
  local where = q and ("qdisc=%s handle=0x%x parent=0x%x reason=%s"):format(tostring(q.kind),
    math.tointeger(q.handle) or 0, math.tointeger(q.parent) or 0, tostring(q.reason))
    or tostring(d.location or "-")
  local t = { ("%.6f cpu%d %s/%d %s%s %s%s%s\n"):format(d.ts, d.cpu, d.comm, d.pid, five_tuple(d.packet),
    dp.reason_label(d.reason), where, (p.dev or d.dev) and " dev=" .. (p.dev or d.dev) or "",
    p.netns and " netns=" .. p.netns or "") }
  if d.lost_before then t[#t + 1] = ("  (%d events lost before this one)\n"):format(d.lost_before) end
  for _, f in ipairs(d.stack or {}) do t[#t + 1] = "    => " .. f .. "\n" end
  return table.concat(t)
end

--- A drop as a JSON-ready table: what `run` gives, with no reason or
-- location as `null` (the given null value), never as a string.
-- @tparam table d a drop as `run` gives it
-- @param null the JSON null (`cjson.null`)
-- @treturn table
function M.json(d, null)
  return { name = d.name, cpu = d.cpu, pid = d.pid, comm = d.comm, ts = d.ts,
    reason = d.reason == nil and null or dp.reason_label(d.reason),
    location = d.location == nil and null or tostring(d.location),
    stack = d.stack, lost_before = d.lost_before, packet = d.packet, qdisc = d.qdisc, dev = d.dev }
end

return M
