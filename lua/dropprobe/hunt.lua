--- What every drop hunt opens and runs, in one place: a private instance
-- with its events, the condition as the drop event's filter (and, for
-- stacks, as the condition of its stacktrace trigger: the kernel runs
-- triggers before, and regardless of, the filter), one reader; then the
-- read loop with `duration`, `idle` and a periodic tick; then the loss,
-- totalled. The recipes and the CLI are this plus what they count.
-- @module dropprobe.hunt
-- @usage
-- local hunt = require "dropprobe.hunt"
-- local h <close> = hunt.open{ stacks = true }
-- h:run({ duration = 10 }, function(rec) print(rec) end)
-- print(h:totals().lost)
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local tracefs = require "dropprobe.tracefs"
local kprobe = require "dropprobe.kprobe"
local format = require "dropprobe.format"
local instance = require "dropprobe.instance"
local pipe = require "dropprobe.pipe"

local M = {}

--- What a hunt uses unless told otherwise: a per-CPU ring buffer of
-- `buffer_kb`, read in `mode`, and the drop event. The condition's default
-- is `dp.drop_condition()` (every drop, in this kernel's names).
-- @table DEFAULTS
M.DEFAULTS = { buffer_kb = 8192, mode = "raw", drop_event = "skb:kfree_skb" }

local Hunt = {}
Hunt.__index = Hunt

local packets_cache

--- Whether this kernel lets a drop's packet be read by the drop probe:
-- kprobe events, a drop hook, and `struct sk_buff` in the kernel's BTF.
-- @treturn boolean
-- @treturn string why (or why not), for reports and `dropprobe doctor`
function M.packets()
  if packets_cache then return table.unpack(packets_cache) end
  local ok, why = M.packets_check()
  packets_cache = { ok, why }
  return ok, why
end

--- Whether a hunt opened with these options reads each drop's packet: the
-- one place that decides it. `packets = false` asks for none, text mode
-- cannot (the probe's bytes are decoded from the binary buffers only),
-- otherwise it is `packets()`.
-- @tparam[opt] table opts `packets`, `mode` (as `open` takes them)
-- @treturn boolean
-- @treturn string why (or why not)
function M.packets_for(opts)
  opts = opts or {}
  if opts.packets == false then return false, "the packets were not asked for: ports come from joining tracepoints" end
  if (opts.mode or M.DEFAULTS.mode) == "text" then
    return false, "text mode: a drop's packet is read in raw mode only"
  end
  return M.packets()
end

-- the check behind packets(), uncached
function M.packets_check()
  if not tracefs.features().kprobes then
    return false, "no kprobe events on this kernel: ports come from joining tracepoints"
  end
  local ok, kp = pcall(kprobe.packet_probe)
  if not ok then return false, tostring(kp):gsub("^[^%s:]*%.lua:%d+: ", "") end
  local hook = kprobe.drop_hook()
  local _ = kp -- not created: only built, to check it can be
  return true, ("each drop's packet read at %s by a kprobe (struct sk_buff offsets from BTF)")
    :format(hook.func)
end

--- Check the packet options of a hunt or a recipe before anything is
-- written: `match` (a tcpdump filter expression: refused with libpcap's
-- own message), `dev` (an interface name) and `netns` (an inode, a path
-- such as /proc/PID/ns/net, or a name under /run/netns).
-- @tparam table opts
-- @tparam string who the caller, for messages ("ports.run")
-- @treturn integer|nil the namespace's inode, where `netns` was given
-- @raise "<who>: ..." saying what is wrong
function M.check_packet_opts(opts, who)
  if opts.dev ~= nil and not util.ifname_ok(opts.dev) then
    error(("%s: dev '%s' is not an interface name (1 to 15 bytes, no space, quote, slash, colon "
      .. "or glob character)"):format(who, tostring(opts.dev)), 0)
  end
  local netns
  if opts.netns ~= nil then
    local why
    netns, why = util.resolve_netns(opts.netns)
    if not netns then error(("%s: netns '%s' is not %s"):format(who, tostring(opts.netns), why), 0) end
  end
  if opts.match ~= nil then
    local ok, why = core.check_packet_filter(tostring(opts.match))
    if not ok then error(("%s: packet filter '%s': %s"):format(who, tostring(opts.match), why), 0) end
  end
  return netns
end

--- A condition on the drop probe narrowed to a device and a namespace
-- (checked by the kernel's filter: `dev == "lo" && netns == 4026531840`).
-- @tparam string|nil cond the probe's condition so far
-- @tparam[opt] string dev an interface name (checked by `check_packet_opts`)
-- @tparam[opt] integer netns a namespace's inode
-- @treturn string|nil
-- @raise where the kernel's BTF does not say where a device keeps its name
function M.device_condition(cond, dev, netns)
  if dev == nil and netns == nil then return cond end
  if not kprobe.packet_probe():definition():find(" dev=", 1, true) then
    error("dev and netns need the packet's device, and this kernel's BTF does not say "
      .. "where struct net_device keeps its name and namespace", 0)
  end
  local parts = { cond }
  if dev then parts[#parts + 1] = ('dev == "%s"'):format(dev) end
  if netns then parts[#parts + 1] = ("netns == %d"):format(netns) end
  return table.concat(parts, " && ")
end

--- Whether the drop probe reads each packet's device and namespace (its
-- `dev` and `netns` fields; the kernel's BTF says where they are).
-- @treturn boolean
function M.has_device()
  local ok, kp = pcall(kprobe.packet_probe)
  return ok and kp:definition():find(" dev=", 1, true) ~= nil
end

--- Open a hunt.
-- @tparam[opt] table opts `filter` (which drops: it narrows the default,
-- every drop; reason names allowed), `all_reasons` (every reason: the
-- filter alone, and the drops `format.TEARDOWN` names are kept), or
-- `condition` (the exact kernel condition, nothing added), `stacks` (true:
-- a stack for each matching drop; N: for the first N), `events` (more events to read beside the drop event, each
-- enabled where this kernel has it), `mode` ("raw" or "text"), `buffer_kb`,
-- `packets` (true: where the kernel allows, and in raw mode, drops come
-- from the drop probe that carries the packet, `rec.packet`; see `packets()`),
-- `port`, `host` (with packets: only drops of packets from or to them,
-- checked in C), `qdisc` (true: each QDISC_DROP drop gets `rec.qdisc` =
-- `{ kind, handle, parent, ifindex, reason, dev }` from the kernel's
-- `qdisc:qdisc_drop` of the same skb, where the kernel has that tracepoint;
-- `qdisc_why` says why not), `match` (with packets: only drops whose packet passes this
-- tcpdump filter expression, compiled by libpcap and run in C), `dev` (with
-- packets: only drops of packets on this interface) and `netns` (only those
-- in this network namespace: an inode, a path such as /proc/PID/ns/net, or
-- a name under /run/netns), both checked by the kernel's filter on the probe.
-- Where drops come without their packet, `dev` (or `devices = true`, every
-- drop) joins each drop with the tracepoints that name a packet's device
-- (`DEVICE_EVENTS`) by skb address, nearest before on the same CPU: `rec.dev`
-- where the join is exact, none elsewhere; with `dev` only the drops on that
-- device are handed on (`other_dev`, `no_dev` count the rest); `devices`
-- lists the tracepoints read. `netns` has no such join: refused there.
-- `event` ("system:name") hunts that event in place of the drop event.
-- `count` makes a hunt that counts instead of handing out records (what
-- `dropprobe.hist` opens): `{ trigger = "hist:keys=..." }` (the kernel
-- counts, the trigger set with the condition, the event not enabled, the
-- instance's buffer left as the kernel sizes it) or `{ keys =, values =,
-- size =, map = }` (a C counter over the raw buffers, `core.counter`);
-- `check`, a function given the Event before its filter and triggers are
-- written (it raises to refuse; the instance, and a probe, are removed)
-- @treturn Hunt with `inst`, `ev` (the drop event or probe), `pipe` or
-- `counter` (a C count), `condition` (what the kernel was
-- given), `drop_name` (the drop records' name), `packets` (whether they
-- carry the packet), `packets_why` and `left_out` (reason -> drops left
-- out, see `Hunt:run`); close it (or `<close>`)
-- @raise not root, no tracefs, a refused condition
function M.open(opts)
  opts = util.check_options(opts, { "condition", "filter", "all_reasons", "stacks", "events", "mode",
    "buffer_kb", "packets", "port", "host", "match", "dev", "netns", "qdisc", "devices", "event", "count" },
    "hunt.open")
  local count = opts.count
  if count ~= nil and type(count) ~= "table" then error("hunt.open: count is a table", 2) end
  if opts.match ~= nil and not opts.packets then
    error("hunt.open: a packet filter (match) needs the packet of each drop (packets = true)", 2)
  end
  local netns = M.check_packet_opts(opts, "hunt.open")
  if opts.condition ~= nil and opts.filter ~= nil then
    error("hunt.open: give a filter (it narrows the default) or a condition (it replaces it), not both", 2)
  end
  local cond = opts.condition
  if cond == nil then cond = format.drop_filter(opts.filter, opts.all_reasons) end
  if opts.stacks ~= nil and opts.stacks ~= true and opts.stacks ~= false
      and (math.type(opts.stacks) ~= "integer" or opts.stacks < 1) then
    error("hunt.open: stacks is true, false or a whole number of stacks >= 1", 2)
  end
  local h = setmetatable({ condition = cond, left_out = {}, mode = opts.mode or M.DEFAULTS.mode, count = count,
    buffer_kb = opts.buffer_kb or M.DEFAULTS.buffer_kb,
    keep_all = opts.condition ~= nil or format.keeps_teardown(opts.filter, opts.all_reasons) }, Hunt)
  -- a kernel hist trigger counts without the buffer: the kernel's size
  h.inst = instance.instance{ buffer_kb = not (count and count.trigger) and h.buffer_kb or nil }
  if opts.packets then h.packets, h.packets_why = M.packets_for(opts) end
  local ok, err = pcall(function()
    local ev
    if h.packets then
      -- the drop probe that carries the packet, in place of the tracepoint;
      -- the instance removes it after its events. The probe also fires for
      -- kfree_skb(NULL), which frees nothing (the tracepoint does not):
      -- those never become records.
      local kp = kprobe.packet_probe()
      local ok_dev, why_dev = pcall(M.device_condition, nil, opts.dev, netns)
      if not ok_dev then error("hunt.open: " .. why_dev, 0) end
      ev = h.inst:event(kp)
      h.drop_name = ev:info().name
      cond = cond and ("skb != 0 && (" .. cond .. ")") or "skb != 0"
      -- the device and namespace, checked by the kernel's filter on the probe
      cond = M.device_condition(cond, opts.dev, netns)
      h.condition = cond
    else
      if netns then
        error("hunt.open: netns needs the packet of each drop (packets = true, where the kernel allows): "
          .. "no tracepoint carries a packet's namespace", 0)
      end
      ev = h.inst:event(opts.event or M.DEFAULTS.drop_event)
      h.drop_name = ev:info().name
      if opts.dev or opts.devices then
        -- no probe reads the device: the tracepoints that name it, joined by skb address
        for _, name in ipairs(M.DEVICE_EVENTS) do
          local found, dev_ev = pcall(h.inst.event, h.inst, name)
          if found then
            dev_ev:enable()
            h.devices = h.devices or {}
            h.devices[#h.devices + 1] = name
          end
        end
        if not h.devices then
          error("hunt.open: dev needs the packet of each drop or the tracepoints that name a packet's "
            .. "device (" .. table.concat(M.DEVICE_EVENTS, ", ") .. "), and this kernel has neither", 0)
        end
        h.want_dev, h.other_dev, h.no_dev = opts.dev, 0, 0
      end
    end
    h.ev = ev
    if count and count.check then count.check(ev) end
    if count and count.trigger then
      -- a trigger fires on a disabled event too (soft-enabled): nothing
      -- goes to the ring buffer, the kernel only counts
      ev:trigger(format.trigger_if(count.trigger, cond))
      return
    end
    if cond then ev:filter(cond) end
    if opts.stacks then
      local spec = opts.stacks == true and "stacktrace" or ("stacktrace:" .. opts.stacks)
      -- the drops left out get no stack (stacktrace:N is not spent on them);
      -- a hunt that keeps every reason gives every drop its stack
      local scond = cond
      if not h.keep_all then scond = format.without_teardown(cond) end
      ev:trigger(format.trigger_if(spec, scond))
    end
    ev:enable()
    for _, name in ipairs(opts.events or {}) do
      local found, other = pcall(h.inst.event, h.inst, name)
      if found then other:enable() end -- a kernel without it: counted as unexplained
    end
    if opts.qdisc then
      -- the qdisc that dropped a QDISC_DROP packet, where the kernel says (7.2 has it)
      local found, qev = pcall(h.inst.event, h.inst, "qdisc:qdisc_drop")
      if found then
        qev:enable()
        h.qdisc = true
      else
        h.qdisc_why = "this kernel has no qdisc:qdisc_drop tracepoint: a QDISC_DROP shows where its packet was freed"
      end
    end
    if count then
      local info = ev:info()
      h.counter = core.counter(h.inst, { system = info.system, event = info.name, keys = count.keys,
        values = count.values, size = count.size, systems = { info.system }, map = count.map })
      return
    end
    -- a packet condition is checked in C, before any record is made
    h.pipe = h.inst:pipe{ mode = opts.mode or M.DEFAULTS.mode,
      port = h.packets and opts.port or nil, host = h.packets and opts.host or nil,
      match = h.packets and opts.match or nil }
  end)
  if not ok then
    h.inst:close()
    error(err, 2)
  end
  return h
end

--- The options `Hunt:run` takes (`Hist:run` takes `duration`, `idle`,
-- `tick`, `on_tick` and `ready` of them: counting makes no records).
M.RUN_OPTIONS = { "duration", "idle", "tick", "on_tick", "ready", "progress", "every" }

--- The run options out of a recipe's options (`RUN_OPTIONS`), to hand on
-- to `Hunt:run`; the rest is the recipe's own.
-- @tparam[opt] table opts
-- @treturn table
function M.run_options(opts)
  local t = {}
  for _, k in ipairs(M.RUN_OPTIONS) do
    if opts then t[k] = opts[k] end
  end
  return t
end

--- Read until `duration`, `idle`, a signal or the end, calling fn with each
-- record. A counting hunt (`count`) takes `COUNT_RUN_OPTIONS` and counts
-- until then; its fn, where the kernel counts, gives the hits so far (for
-- `idle`). See `dropprobe.pipe.each` for opts (`duration`, `idle`, `tick`,
-- `on_tick`, `progress`, `every`; `ready` is called with `describe()` once
-- everything is armed); any other key is refused (`run_options` picks
-- these out of a recipe's options). Unless the hunt keeps every
-- reason (`all_reasons`, `condition`), the drops of packets a socket had
-- already received (`format.TEARDOWN`) are left out: counted in
-- `self.left_out`, not given to fn.
-- @function Hunt:run
-- @treturn string why it ended
-- an skb's address as one key whatever the field's shape: a pointer field
-- (hex text) or the drop probe's x64 (an integer)
local function skb_key(v)
  if math.type(v) == "integer" then return ("%x"):format(v) end
  if type(v) == "string" then return (v:lower():gsub("^0x", "")) end
end

-- the most qdisc drops kept while waiting for their packet's free
local QDISC_PENDING = 4096

-- Join each QDISC_DROP drop with the qdisc:qdisc_drop of its skb (which
-- comes first: the qdisc decides at enqueue, the packet is freed after);
-- the qdisc records themselves are not handed on.
local function qdisc_join(self, fn)
  local pending, order, first, last = {}, {}, 1, 0
  self.qdisc_unjoined = 0
  return function(rec)
    local f = rec.fields
    if rec.name == "qdisc_drop" and rec.system == "qdisc" then
      local k = skb_key(f.skbaddr)
      if k then
        if last - first + 1 >= QDISC_PENDING then -- the oldest never got its free
          pending[order[first]], order[first], first = nil, nil, first + 1
          self.qdisc_unjoined = self.qdisc_unjoined + 1
        end
        last = last + 1
        order[last], pending[k] = k, { kind = f.kind, handle = f.handle, parent = f.parent,
          ifindex = f.ifindex, reason = f.reason }
      end
      return
    end
    if rec.name == self.drop_name and f.reason == "QDISC_DROP" then
      local k = skb_key(f.skbaddr or f.skb)
      local q = k and pending[k]
      if q then
        pending[k] = nil
        q.dev = rec.packet and rec.packet.dev or nil
        rec.qdisc = q
      end
    end
    fn(rec)
  end
end

--- The tracepoints that name a packet's device and carry its skb address
-- (a receive and a transmit), read where no probe gives each drop's
-- device: `net:netif_receive_skb`, `net:net_dev_queue`.
M.DEVICE_EVENTS = { "net:netif_receive_skb", "net:net_dev_queue" }

-- the device events kept per CPU: a drop comes a few events after its
-- packet's (a UDP drop after the ICMP error it sends is queued)
local DEVICE_RECENT = 8

-- Give each drop the device of its skb where the kernel received or
-- queued that skb among the last DEVICE_RECENT device events on the
-- drop's CPU (never a global map: addresses are reused); with `want_dev`
-- only those drops go on (the others are counted in `other_dev`, the ones
-- with no device in `no_dev`). The device events themselves are not
-- handed on.
local function device_join(self, fn)
  -- cpu -> { keys = ring of skb keys, devs = their devices, at = next slot }:
  -- looked up newest first, since the slab hands the same address to the
  -- next packet (a map by key lost a packet's device when the slot of an
  -- older packet at that address was overwritten)
  local recent = {}
  return function(rec)
    if rec.system == "net" and (rec.name == "netif_receive_skb" or rec.name == "net_dev_queue") then
      local r = recent[rec.cpu]
      if not r then r = { keys = {}, devs = {}, at = 1 } recent[rec.cpu] = r end
      local k = skb_key(rec.fields.skbaddr)
      if k then
        -- the format's field, or the label its text prints ("dev=%s")
        r.keys[r.at], r.devs[r.at], r.at = k, rec.fields.name or rec.fields.dev, r.at % DEVICE_RECENT + 1
      end
      return
    end
    if rec.name == self.drop_name then
      local r, k = recent[rec.cpu], skb_key(rec.fields.skbaddr)
      if r and k then
        for j = 0, DEVICE_RECENT - 1 do
          local i = (r.at - 2 - j) % DEVICE_RECENT + 1
          if r.keys[i] == k then
            rec.dev = rec.dev or r.devs[i]
            r.keys[i] = nil -- freed: its address is the next packet's
          end
        end
      end
      if self.want_dev and rec.dev ~= self.want_dev then
        if rec.dev then self.other_dev = self.other_dev + 1 else self.no_dev = self.no_dev + 1 end
        return
      end
    end
    fn(rec)
  end
end

-- The read loop of a counting hunt (`count`), on `pipe.clock`: the C
-- counter reads the buffers, or the kernel counts and this only waits;
-- idle asks hits() whether the kernel's counts moved.
local function count_loop(self, opts, hits)
  local last_hits = -1
  if opts.ready then opts.ready(self:describe()) end
  return pipe.clock(opts, function(wait)
    local got
    if self.counter then
      local n, why = self.counter:poll(math.floor(wait * 1000))
      if not n then return nil, why end
      got = n > 0
    else
      local ok, why = core.sleep(wait)
      if not ok then return nil, why end
      -- the kernel counts in the instance: gone (rmdir, tracefs
      -- unmounted), the counts are out of reach; say so at once
      local gone = instance.gone_message(self.inst)
      if gone then error(gone, 0) end
      if opts.idle and hits then
        local n = hits()
        got = n ~= last_hits
        last_hits = n
      end
    end
    if core.signal() then return nil, "interrupted" end
    return got == true
  end)
end

--- The options a counting hunt's `run` takes (of `RUN_OPTIONS`: counting
-- makes no records to report progress by).
M.COUNT_RUN_OPTIONS = { "duration", "idle", "tick", "on_tick", "ready" }

function Hunt:run(opts, fn)
  if self.count then
    -- fn: where the kernel counts, what idle asks for the hits so far
    return count_loop(self, util.check_options(opts, M.COUNT_RUN_OPTIONS, "hunt:run"), fn)
  end
  opts = util.check_options(opts, M.RUN_OPTIONS, "hunt:run")
  if self.qdisc then fn = qdisc_join(self, fn) end
  if self.devices then fn = device_join(self, fn) end
  local each = fn
  if not self.keep_all then
    local drop, left_out = self.drop_name, self.left_out
    each = function(rec)
      local reason = rec.fields.reason
      if rec.name == drop and format.is_teardown(reason) then
        left_out[reason] = (left_out[reason] or 0) + 1
        return
      end
      fn(rec)
    end
  end
  local ready = opts.ready and function() opts.ready(self:describe()) end
  return pipe.each(self.pipe, {
    duration = opts.duration, idle = opts.idle, tick = opts.tick, on_tick = opts.on_tick,
    ready = ready, progress = opts.progress, every = opts.every,
  }, each)
end

--- What the hunt reads, in a line: the drop event (or the drop probe and
-- where it sits), its condition, the mode and the buffer.
-- @function Hunt:describe
-- @treturn string
function Hunt:describe()
  local what = self.packets and ("drops with their packet at %s (a kprobe)"):format(kprobe.drop_hook().func)
    or M.DEFAULTS.drop_event
  if self.devices then
    what = what .. (" with the device from %s by skb address"):format(table.concat(self.devices, " and "))
  end
  return ("%s where %s, %s mode, %d kB a CPU"):format(what, self.condition or "(every event)", self.mode,
    self.buffer_kb)
end

--- The drops left out as already received (`left_out`), as a report line:
-- "28 drops of packets a socket had already received were left out
-- (QUEUE_PURGE 28; --all-reasons shows them)", or nil when none were.
-- @tparam table left_out reason -> count
-- @treturn string|nil
function M.left_out_note(left_out)
  local parts, n = {}, 0
  for r, k in pairs(left_out or {}) do parts[#parts + 1] = r .. " " .. k n = n + k end
  if n == 0 then return nil end
  table.sort(parts)
  return ("%d drops of packets a socket had already received were left out (%s; --all-reasons "
    .. "shows them)"):format(n, table.concat(parts, ", "))
end

--- What was read and lost so far (`Pipe:stats()`).
-- @function Hunt:totals
-- @treturn table `{ read=, lost=, ... }`
-- @raise for a counting hunt (`count`): it has no reader
function Hunt:totals()
  if not self.pipe then error("hunt:totals: a counting hunt has no reader: its counts are dp.hist's read()", 2) end
  return self.pipe:stats()
end

--- Close the reader and the instance (everything the hunt set is removed).
-- @function Hunt:close
function Hunt:close()
  if self.pipe then self.pipe:close() end
  if self.counter then self.counter:close() end
  self.inst:close()
end
Hunt.__close = Hunt.close

return M
