--- Drops per port: each drop attributed to protocol and local port, IPv4
-- and IPv6, without eBPF. Where the kernel has kprobes, from each drop's own
-- packet (`dp.packet_probe`: firewall drops and IPv6 included). Elsewhere by
-- joining `skb:kfree_skb` with the tracepoints that carry ports:
--
-- Join rules (addresses are reused, so never a global map):
--
-- * `tcp:tcp_send_reset` and `icmp:icmp_send` (port unreachable) share
--   `skbaddr` with the drop that follows them on the same CPU: the last such
--   event on that CPU explains the next drop there if the addresses match.
-- * `udp:udp_fail_queue_rcv_skb` has no skbaddr: it explains the drop next
--   to it on the same CPU with a receive-queue reason (SOCKET_RCVBUFF,
--   PROTO_MEM; any drop where the kernel has no drop reasons): the next one
--   where the kernel fires it before the drop, the one just before it where
--   the kernel fires it after (older kernels); the order is read from the
--   events.
--
-- Where each drop's packet can be read and no `port` or `host` narrows the
-- hunt, the drops are counted in C (`dp.hist` with packet keys: protocol,
-- local port, reason, remote address), no Lua record per drop, and the
-- report says so (`counted = "c"`); with `port`/`host` each drop is a
-- record whose packet C checks first (`counted = "records"`).
--
-- Drops that no event explains (for example UDP to a closed port over IPv6:
-- the kernel has no icmpv6 tracepoint; or, where tcp_send_reset fires only
-- for resets a socket sends, a TCP segment to a closed port) are counted as
-- unattributed, per reason (`dp.NO_REASON`, "-", where the kernel has no
-- drop reasons), never left out.
-- @module dropprobe.recipes.ports
-- @usage local ports = require "dropprobe.recipes.ports"
-- local report = ports.run{ duration = 10 }
-- io.write(ports.format(report))
local dp = require "dropprobe"
local hunt = require "dropprobe.hunt"
local hist = require "dropprobe.hist"
local format = require "dropprobe.format"
local util = require "dropprobe.util"

local M = {}

-- the reasons of a failed UDP enqueue (udp_fail_queue_rcv_skb's drop)
local QUEUE_REASONS = { SOCKET_RCVBUFF = true, PROTO_MEM = true, SOCKET_BACKLOG = true, NOMEM = true }

-- the events that carry ports, read beside the drops
M.EVENTS = { "tcp:tcp_send_reset", "icmp:icmp_send", "udp:udp_fail_queue_rcv_skb" }

--- Entries of the C table when counting in C: one per protocol, port,
-- reason and remote address; drops of a new one beyond it are reported as
-- `dropped`, never silently.
M.SIZE = 16384

-- the port of an address as the kernel prints %pISpc: "127.0.0.1:9", "[::1]:9"
local function port_of(addr)
  return type(addr) == "string" and tonumber(addr:match("[%]%d]:(%d+)$")) or nil
end

-- What an explaining event says: proto, local port; nil when it explains
-- nothing. Fields by their format names, the same from text and raw records.
local function explain(rec)
  local f = rec.fields
  if rec.name == "tcp_send_reset" then
    -- a reset sent for an incoming packet: its source is our local port
    return "tcp", f.sport or port_of(f.saddr)
  elseif rec.name == "icmp_send" then
    if f.type ~= 3 or f.code ~= 3 then return nil end -- only "port unreachable"
    return "udp", f.dport
  elseif rec.name == "udp_fail_queue_rcv_skb" then
    return "udp", f.dport or f.lport or port_of(f.daddr)
  end
end

-- The tallies of attributed and unattributed drops, and the rows.
local function tally()
  local t = { counts = {}, unattributed = {}, drops = 0, attributed = 0 }
  function t.attribute(proto, port, reason, remote, n, dev, netns)
    n = n or 1
    local key = proto .. "/" .. port .. "/" .. reason .. "/" .. (dev or "") .. "/" .. (netns or "")
    local c = t.counts[key]
    if not c then
      c = { proto = proto, port = port, reason = reason, count = 0, by_remote = {}, dev = dev, netns = netns }
      t.counts[key] = c
    end
    c.count = c.count + n
    if remote then c.by_remote[remote] = (c.by_remote[remote] or 0) + n end
    t.attributed = t.attributed + n
  end
  function t.unattributed_add(reason, n)
    local v = (t.unattributed[reason] or 0) + n
    t.unattributed[reason] = v ~= 0 and v or nil
  end
  function t.rows()
    local list = {}
    for _, c in pairs(t.counts) do
      local n, top, topn = 0, nil, 0
      for addr, k in pairs(c.by_remote) do
        n = n + 1
        if k > topn or (k == topn and addr < top) then top, topn = addr, k end
      end
      c.by_remote = nil
      if n > 0 then c.remotes, c.top_remote = n, top end
      list[#list + 1] = c
    end
    table.sort(list, function(x, y)
      if x.count ~= y.count then return x.count > y.count end
      if x.proto ~= y.proto then return x.proto < y.proto end
      if x.port ~= y.port then return x.port < y.port end
      if x.reason ~= y.reason then return x.reason < y.reason end
      if (x.netns or 0) ~= (y.netns or 0) then return (x.netns or 0) < (y.netns or 0) end
      return (x.dev or "") < (y.dev or "")
    end)
    return list
  end
  return t
end

-- The join, per CPU (addresses are reused: never a global map). Returns
-- on_event(rec) for the explaining events and on_drop(rec) for the drops.
--
-- A failed UDP enqueue and its drop come in either order: where the
-- tracepoint reads the packet (sport, dport, family) it must fire before
-- the packet is freed, where it has only the socket (rc, lport) the kernel
-- fires it just after. The order is not read from the fields or the
-- version but from the events: a failed enqueue right after an unexplained
-- drop with a receive-queue reason on its CPU speaks for "after", one
-- without for "before", and each is joined the way most of them so far
-- spoke for (a stray unexplained drop before the first one misleads one
-- join, not the run).
local function join(t)
  local by_addr, next_drop, last_unexplained = {}, {}, {}
  local after_n, before_n = 0, 0 -- what the failed enqueues so far spoke for
  local function queue_reason(reason)
    -- a kernel without drop reasons: any drop may be the failed enqueue's
    return QUEUE_REASONS[reason] or reason == dp.NO_REASON
  end
  local function on_event(rec)
    local cpu = rec.cpu
    local proto, port = explain(rec)
    local before = last_unexplained[cpu]
    last_unexplained[cpu] = nil
    if not proto then return end
    if rec.name ~= "udp_fail_queue_rcv_skb" then
      by_addr[cpu] = { proto, port, rec.fields.skbaddr }
      return
    end
    local looks_after = before ~= nil and queue_reason(before)
    if looks_after then after_n = after_n + 1 else before_n = before_n + 1 end
    if after_n <= before_n then
      next_drop[cpu] = { proto, port }
    elseif looks_after and port then
      -- fired after its drop: it explains the drop just before it on its CPU
      t.unattributed_add(before, -1)
      t.attribute(proto, port, before)
    end
  end
  local function on_drop(rec)
    local cpu, reason = rec.cpu, dp.reason_label(rec.fields.reason)
    t.drops = t.drops + 1
    local a, hit = by_addr[cpu], nil
    if a and a[3] == rec.fields.skbaddr then hit = a end
    by_addr[cpu] = nil -- nearest-before only: an event explains the next drop or none
    -- a failed UDP enqueue explains its own drop, the next on its CPU with
    -- a receive-queue reason; a drop between them (an interrupt) is another
    if not hit and next_drop[cpu] and queue_reason(reason) then
      hit, next_drop[cpu] = next_drop[cpu], nil
    end
    if hit and hit[2] then
      t.attribute(hit[1], hit[2], reason)
      last_unexplained[cpu] = nil
    else
      t.unattributed_add(reason, 1)
      last_unexplained[cpu] = reason
    end
  end
  return on_event, on_drop
end

-- Every drop by its own packet: the port it was going to, the address it came from.
local function by_packet(t)
  return function(rec)
    local p, reason = rec.packet, dp.reason_label(rec.fields.reason) -- port and host: checked in C
    t.drops = t.drops + 1
    if p and p.dport and (p.proto == "tcp" or p.proto == "udp") then
      t.attribute(p.proto, p.dport, reason, p.saddr, 1, p.dev, p.netns)
    else
      t.unattributed_add(reason, 1) -- not IP, no port (ICMP), or headers beyond the bytes read
    end
  end
end

-- Every drop by its own packet, counted in C (no record per drop): the
-- rows of a C table keyed by protocol, local port, reason (where the
-- kernel has them) and remote address, folded into the tally.
local function count_in_c(opts, t, why, netns)
  local device = hunt.has_device()
  -- the remote address, and the namespace of each drop (an integer key)
  local keys = hist.port_keys(device and { "packet.saddr", "netns" } or { "packet.saddr" })
  local cond = hunt.device_condition(format.drop_filter(opts.filter, opts.all_reasons), opts.dev, netns)
  local h <close> = hist.open{ keys = keys, condition = cond or false, size = M.SIZE, buffer_kb = opts.buffer_kb }
  local progress = opts.progress
  local ended = h:run{ duration = opts.duration, idle = opts.idle, ready = opts.ready,
    tick = progress and 0.5 or nil, on_tick = progress and function() progress(h:read().hits) end or nil }
  local r = h:read()
  local keep, left_out, left = format.keeps_teardown(opts.filter, opts.all_reasons), {}, 0
  for _, row in ipairs(r.rows) do
    local reason, n = dp.reason_label(row.reason), row.hitcount
    if not keep and format.is_teardown(row.reason) then
      left_out[reason], left = (left_out[reason] or 0) + n, left + n -- already received
    else
      t.drops = t.drops + n
      if row.dport and (row.proto == "tcp" or row.proto == "udp") then
        t.attribute(row.proto, row.dport, reason, row.saddr, n, opts.dev, device and math.tointeger(row.netns) or nil)
      else
        t.unattributed_add(reason, n) -- not IP, no port (ICMP), or headers beyond the bytes read
      end
    end
  end
  return { ports = t.rows(), unattributed = t.unattributed, drops = t.drops, attributed = t.attributed,
    lost = r.lost, dropped = r.dropped, read = r.hits, ended = ended, method = "packet", counted = "c",
    note = why .. "; counted in C, no record per drop", left_out = left_out }
end

--- Hunt for `duration` seconds (or until Ctrl-C / `idle`).
-- Where the kernel has kprobes (and its BTF describes `struct sk_buff`),
-- every drop comes with its packet (`dp.packet_probe`): each drop is
-- attributed to the port it was going to, firewall drops and IPv6
-- included. Elsewhere drops are joined with the tracepoints that carry
-- ports (see above), and the report says so (`method`, `note`). With the
-- packets and neither `port` nor `host`, the drops are counted in C
-- (`counted = "c"`: no record per drop; `progress` is called with the
-- drops counted so far every half second).
-- @tparam[opt] table opts `filter` (which drops: narrows the default, every
-- drop), `all_reasons` (also the drops of packets a socket had already
-- received, `report.left_out` otherwise),
-- `port`, `host` (only drops of packets from or to them; `host` needs the
-- packets), `match` (only drops whose packet passes this tcpdump filter
-- expression, run in C), `dev` and `netns` (only drops of packets on this
-- interface, in this network namespace: an inode, a path or a name under
-- /run/netns; checked by the kernel's filter on the drop probe; these three
-- need the packets), `packets` (false: joins even where packets could be read),
-- `duration`, `idle`, `mode` (joins: "raw" default, or "text"), `buffer_kb`,
-- `ready`, `progress` (called with the record count every `every` records).
-- Where the drop probe reads each packet's device, every row also has the
-- namespace's inode (`netns`), and the interface (`dev`) where the drops
-- are records (or `dev` was given): counted in C, the interface is not a key.
-- @treturn table `{ ports = {{proto=, port=, reason=, count=, remotes=, top_remote=, netns=, dev=}...},
-- unattributed = {REASON = n}, lost =, drops =, attributed =, read =, method =
-- "packet"|"joins", counted = "c"|"records", dropped = (C: drops of a new row
-- beyond `SIZE`), note =, left_out = {REASON = n} }`
function M.run(opts)
  opts = util.check_options(opts, { "filter", "all_reasons", "duration", "idle", "mode", "buffer_kb", "ready",
    "progress", "every", "port", "host", "packets", "match", "dev", "netns" }, "ports.run")
  if opts.port ~= nil and (math.type(opts.port) ~= "integer" or opts.port < 0 or opts.port > 65535) then
    error("ports.run: port is a number from 0 to 65535", 2)
  end
  local okp, netns = pcall(hunt.check_packet_opts, opts, "ports.run")
  if not okp then error(netns, 2) end
  local packets, why = hunt.packets_for(opts)
  if opts.host ~= nil and not packets then
    error("ports.run: host needs the packet of each drop (a kernel with kprobes, raw mode)", 2)
  end
  if (opts.match ~= nil or opts.dev ~= nil or netns) and not packets then
    error("ports.run: dev, netns and a packet filter need the packet of each drop: " .. why, 2)
  end
  local t = tally()
  if packets and opts.port == nil and opts.host == nil and opts.match == nil then
    return count_in_c(opts, t, why, netns)
  end
  local h <close> = hunt.open{ filter = opts.filter, all_reasons = opts.all_reasons,
    events = not packets and M.EVENTS or nil,
    packets = packets, mode = opts.mode, buffer_kb = opts.buffer_kb, port = opts.port, host = opts.host,
    match = opts.match, dev = opts.dev, netns = netns }
  local fn
  if h.packets then
    local on_drop = by_packet(t)
    fn = function(rec) if rec.name == h.drop_name then on_drop(rec) end end
  else
    local on_event, on_drop = join(t)
    fn = function(rec) if rec.name == h.drop_name then on_drop(rec) else on_event(rec) end end
  end
  local ended = h:run(hunt.run_options(opts), fn)
  local rows = t.rows()
  if opts.port and not h.packets then -- joins: the attributed rows of that port
    local keep = {}
    for _, c in ipairs(rows) do if c.port == opts.port then keep[#keep + 1] = c end end
    rows = keep
  end
  local st = h:totals()
  return { ports = rows, unattributed = t.unattributed, drops = t.drops, attributed = t.attributed,
    lost = st.lost, read = st.read, ended = ended, method = h.packets and "packet" or "joins",
    counted = "records", dropped = 0, note = why, left_out = h.left_out }
end

--- Look up one count: `ports.count(report, "udp", 9999, "NO_SOCKET")`
-- (reason "-" where the kernel has no drop reasons), over every device
-- and namespace, or only those of `netns` (an inode).
-- @treturn integer
function M.count(report, proto, port, reason, netns)
  local n = 0
  for _, c in ipairs(report.ports) do
    if c.proto == proto and c.port == port and c.reason == reason and (netns == nil or c.netns == netns) then
      n = n + c.count
    end
  end
  return n
end

--- The report as one JSON-ready table: `{ ports = [...], unattributed = {...}, lost = n,
-- dropped = n, method = "packet"|"joins", counted = "c"|"records", note =, left_out = {...} }`.
function M.json(report)
  return { ports = report.ports, unattributed = report.unattributed, lost = report.lost,
    dropped = report.dropped or 0, method = report.method, counted = report.counted, note = report.note,
    left_out = report.left_out or {} }
end

--- The report as a table for people.
-- @treturn string
function M.format(report)
  local t = { ("%-5s %6s  %-24s %8s  %s"):format("PROTO", "PORT", "REASON", "DROPS",
    report.method == "packet" and "FROM" or "") }
  for _, c in ipairs(report.ports) do
    local from = c.top_remote and (c.remotes > 1 and ("%s and %d more"):format(c.top_remote, c.remotes - 1)
      or c.top_remote) or ""
    local where = (c.dev and " dev=" .. c.dev or "") .. (c.netns and " netns=" .. c.netns or "")
    t[#t + 1] = ("%-5s %6d  %-24s %8d  %s%s"):format(c.proto, c.port, c.reason, c.count, from, where)
  end
  local rs = {}
  for r in pairs(report.unattributed) do rs[#rs + 1] = r end
  table.sort(rs)
  for _, r in ipairs(rs) do
    t[#t + 1] = ("%-5s %6s  %-24s %8d"):format("?", "-", r, report.unattributed[r])
  end
  t[#t + 1] = ("%d drops, %d attributed to a port, %d events lost"):format(report.drops,
    report.attributed, report.lost or 0)
    .. ((report.dropped or 0) > 0 and (", %d not counted (the table was full)"):format(report.dropped) or "")
  t[#t + 1] = ("by %s: %s"):format(report.method == "packet" and "each drop's packet" or "joins",
    report.note or "")
  t[#t + 1] = hunt.left_out_note(report.left_out)
  return table.concat(t, "\n") .. "\n"
end

--- Drops per port from records already read (a recording: `dropprobe.replay.each`),
-- by each drop's packet where it carries one, else by the joins above.
-- @tparam function each called with the function to call with each record
-- @tparam[opt] table opts `all_reasons`, `drop` (the drop records' name,
-- default "kfree_skb")
-- @treturn table a report as `run` gives it (`counted = "records"`)
function M.from_records(each, opts)
  opts = opts or {}
  local drop = opts.drop or "kfree_skb"
  local t, left_out, packets = tally(), {}, false
  local on_event, on_drop = join(t)
  local on_packet = by_packet(t)
  each(function(rec)
    if rec.name ~= drop then on_event(rec) return end
    local reason = rec.fields.reason
    if not opts.all_reasons and format.is_teardown(reason) then
      left_out[reason] = (left_out[reason] or 0) + 1
      return
    end
    if rec.packet then packets = true on_packet(rec) else on_drop(rec) end
  end)
  return { ports = t.rows(), unattributed = t.unattributed, drops = t.drops, attributed = t.attributed,
    lost = 0, read = t.drops, ended = "eof", method = packets and "packet" or "joins", counted = "records",
    dropped = 0, note = "from a recording", left_out = left_out }
end

return M
