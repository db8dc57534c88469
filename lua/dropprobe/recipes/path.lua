--- The path of a dropped packet: every kernel function and tracepoint its
-- skb passed through, in time order, ending at the drop (or, with `all`,
-- at its delivery). The recipe behind `dp.path` and `dropprobe path`.
--
-- Where the kernel has kprobe events, a kprobe per kernel function that
-- takes a `struct sk_buff *` (found in the kernel's BTF with libbpf, kept
-- where `available_filter_functions` has it; a default set by name, or
-- `functions = "all"` or a regular expression) fetches the skb from its
-- argument and the packet's first bytes; where it has none, the
-- tracepoints that carry `skbaddr` draw a coarser path. The skbs are
-- followed by address in C (`core.path_pipe`): a bounded table of live
-- skbs, a path made when one is freed.
-- @module dropprobe.recipes.path
-- @usage local dp = require "dropprobe"
-- local pth <close> = dp.path{ port = 9, proto = "udp" }
-- for p in pth:paths{ duration = 10 } do
--   for _, s in ipairs(p.steps) do print(s.at, s.cpu, s.ts) end
--   print(p.fields.reason)
-- end
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local tracefs = require "dropprobe.tracefs"
local format = require "dropprobe.format"
local instance = require "dropprobe.instance"
local kprobe = require "dropprobe.kprobe"
local pipe = require "dropprobe.pipe"
local record = require "dropprobe.record"
local fmt = string.format

local M = {}

--- The functions of the default set, by name: the IPv4 and IPv6 receive
-- and send paths, UDP, TCP and ICMP at their entries, netfilter's hook,
-- the device queue, loopback, veth and bridge. Only those this kernel has
-- (in its BTF, taking an skb, and in `available_filter_functions` once)
-- are probed: a name that is missing or inlined is left out, whatever the
-- kernel's version.
-- @table DEFAULT_FUNCTIONS
M.DEFAULT_FUNCTIONS = {
  "udp_send_skb", "ip_send_skb", "ip_queue_xmit", "__ip_queue_xmit", "ip_local_out", "__ip_local_out",
  "ip_output", "ip_finish_output", "__ip_finish_output", "ip_finish_output2",
  "ip6_xmit", "ip6_local_out", "ip6_output", "ip6_finish_output", "ip6_finish_output2", "udp_v6_send_skb",
  "__dev_queue_xmit", "validate_xmit_skb", "dev_hard_start_xmit", "sch_direct_xmit",
  "loopback_xmit", "veth_xmit",
  "netif_rx", "__netif_rx", "netif_rx_internal", "enqueue_to_backlog", "netif_receive_skb",
  "__netif_receive_skb", "__netif_receive_skb_one_core", "br_handle_frame", "br_forward",
  "ip_rcv", "ip_rcv_core", "ip_rcv_finish", "ip_forward", "ip_local_deliver", "ip_local_deliver_finish",
  "ip_protocol_deliver_rcu",
  "ipv6_rcv", "ip6_rcv_core", "ip6_rcv_finish", "ip6_forward", "ip6_input", "ip6_input_finish",
  "ip6_protocol_deliver_rcu",
  "udp_rcv", "__udp4_lib_rcv", "udp_unicast_rcv_skb", "udp_queue_rcv_skb", "udp_queue_rcv_one_skb",
  "__udp_enqueue_schedule_skb", "udpv6_rcv", "__udp6_lib_rcv", "udpv6_queue_rcv_skb",
  "tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_rcv_state_process", "tcp_v4_send_reset", "tcp_filter",
  "tcp_v6_rcv", "tcp_v6_do_rcv", "tcp_v6_send_reset",
  "icmp_rcv", "__icmp_send", "icmp_send", "icmpv6_rcv", "icmp6_send",
  "nf_hook_slow", "__tcp_transmit_skb", "tcp_transmit_skb", "__tcp_retransmit_skb", "tcp_retransmit_skb",
}

-- the functions that free an skb: its path's end, never one of its steps
local END_FUNCTIONS = { "kfree_skbmem", "napi_skb_cache_put" }
-- the clone's maker: a kprobe at its entry (the parent) and a kretprobe
-- (the clone), never one of the steps
local CLONE_FUNCTION = "skb_clone"
local NOT_STEPS = { "free", "consume", "release", "destruct" }

-- the tracepoints' systems whose events may carry skbaddr
local TP_SYSTEMS = { "net", "qdisc", "icmp", "tcp", "udp", "skb", "sock" }

local PACKET_WORDS = 64 -- bytes from skb->head, as the drop probe reads them (kprobe.lua)

local function mypid()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("l"):match("^(%d+)")
  if f then f:close() end
  return pid or "0"
end

-- name -> how many times available_filter_functions lists it (a name
-- listed twice is ambiguous for a probe), or nil and why
local function filterable(dir)
  local f, err = io.open(dir .. "/available_filter_functions")
  if not f then return nil, err end
  local t = {}
  local ok, e = pcall(function()
    for line in f:lines() do
      local name = line:match("^([%w_.]+)")
      if name then t[name] = (t[name] or 0) + 1 end
    end
  end)
  f:close()
  if not ok then return nil, tostring(e) end
  return t
end

--- The functions a path follows on this kernel: from its BTF (every
-- function with a `struct sk_buff *` among its first five parameters, and
-- where), kept where `available_filter_functions` lists it once; the
-- default set, all of them, or those whose name matches a POSIX extended
-- regular expression.
-- @tparam[opt] string|table set nil or "default", "all", a regular
-- expression, or a table `{ name = skb_arg }` taken as given (the kernel
-- decides)
-- @treturn table `{ steps = { {func=, arg=}, ... }, ends = { ... }, clone = {func=, arg=} or nil }`,
-- steps sorted by name
-- @raise no BTF, an unreadable function list, a bad expression
function M.functions(set)
  local steps, ends = {}, {}
  if type(set) == "table" then
    for name, arg in pairs(set) do
      if type(name) ~= "string" or not name:match("^[%a_][%w_.]*$") or math.type(arg) ~= "integer"
          or arg < 1 or arg > 6 then
        error(fmt("dp.path: functions: '%s' = %s is not a function name and its skb argument (1 to 6)",
          tostring(name), tostring(arg)), 3)
      end
      steps[#steps + 1] = { func = name, arg = arg }
    end
    table.sort(steps, function(a, b) return a.func < b.func end)
    return { steps = steps, ends = ends }
  end
  if set ~= nil and type(set) ~= "string" then
    error("dp.path: functions is \"default\", \"all\", a regular expression or a table", 3)
  end
  local regex = (set ~= nil and set ~= "default" and set ~= "all") and set or nil
  if regex then core.check_command(regex, "functions expression") end
  local btf, why = core.btf_skb_funcs(nil, regex)
  if not btf then error("dp.path: " .. why, 3) end
  local all = regex and core.btf_skb_funcs() or btf
  local avail, err = filterable(tracefs.tracefs())
  if not avail then
    error("dp.path: cannot read available_filter_functions (" .. tostring(err)
      .. "): the function filter is needed to know which functions a probe can take", 3)
  end
  local function usable(name) return avail[name] == 1 end
  local function not_step(name)
    for _, w in ipairs(NOT_STEPS) do if name:find(w, 1, true) then return true end end
    return false
  end
  local chosen = {}
  if set == nil or set == "default" then
    for _, name in ipairs(M.DEFAULT_FUNCTIONS) do
      if btf[name] and usable(name) then chosen[name] = btf[name] end
    end
  else
    for name, arg in pairs(btf) do
      if usable(name) and not not_step(name) then chosen[name] = arg end
    end
  end
  for _, name in ipairs(END_FUNCTIONS) do
    if all[name] and usable(name) then
      chosen[name] = nil
      ends[#ends + 1] = { func = name, arg = all[name] }
    end
  end
  local clone
  if all[CLONE_FUNCTION] and usable(CLONE_FUNCTION) then
    chosen[CLONE_FUNCTION] = nil
    clone = { func = CLONE_FUNCTION, arg = all[CLONE_FUNCTION] }
  end
  for name, arg in pairs(chosen) do steps[#steps + 1] = { func = name, arg = arg } end
  table.sort(steps, function(a, b) return a.func < b.func end)
  return { steps = steps, ends = ends, clone = clone }
end

--- The tracepoints of this kernel that carry `skbaddr` (a coarse path's
-- steps where there are no kprobes), beside the frees `skb:kfree_skb` and
-- `skb:consume_skb`.
-- @treturn {string,...} "system:name", sorted
function M.tracepoints()
  local dir = tracefs.tracefs()
  local out = {}
  for _, sys in ipairs(TP_SYSTEMS) do
    for _, name in ipairs(core.dir(dir .. "/events/" .. sys) or {}) do
      local f = util.readfile(dir .. "/events/" .. sys .. "/" .. name .. "/format")
      if f and f:find("[%s%*]skbaddr;") and not (sys == "skb" and (name == "kfree_skb" or name == "consume_skb")) then
        out[#out + 1] = sys .. ":" .. name
      end
    end
  end
  table.sort(out)
  return out
end

local Path = {}
Path.__index = Path

--- Open a path hunt: a private instance with a probe per function (or the
-- tracepoints), the frees, and the tracker that reads them.
-- @tparam[opt] table opts `host`, `port`, `proto` ("tcp", "udp", "icmp"),
-- `match` (a tcpdump expression): which packets, decided at the first step
-- that reads the headers (needs kprobes); `filter` (which drops: narrows the
-- default, every drop; reason names allowed), `all_reasons`, `all` (also
-- the paths of delivered packets, ending in consume_skb), `functions`
-- (see `functions`), `stacks` (the stack of each drop), `limit` (live skbs
-- followed, default 4096), `max_steps` (per path, default 256), `buffer_kb`,
-- `coarse` (true: tracepoints only, also where kprobes exist)
-- @treturn Path with `paths{}`, `read(timeout)`, `stats()`, `close()`,
-- `coarse` (true: tracepoints only), `functions` (the probed ones),
-- `clones` (true: skb_clone is probed, a clone's path starts with its
-- parent's), `tracepoints`, `condition`, `attach_seconds`
-- @raise not root, no tracefs, a packet condition without kprobes, a bad
-- value (before tracefs is touched), a probe the kernel refused (nothing left)
function M.open(opts)
  opts = util.check_options(opts, { "host", "port", "proto", "match", "filter", "all_reasons", "all",
    "functions", "stacks", "limit", "max_steps", "buffer_kb", "coarse" }, "dp.path")
  if opts.port ~= nil and (math.type(opts.port) ~= "integer" or opts.port < 0 or opts.port > 65535) then
    error("dp.path: port is a number from 0 to 65535", 2)
  end
  local PROTOS = { tcp = "tcp", udp = "udp", icmp = "(icmp or icmp6)" }
  if opts.proto ~= nil and not PROTOS[opts.proto] then
    error(fmt("dp.path: proto '%s' is not tcp, udp or icmp", tostring(opts.proto)), 2)
  end
  local match = opts.match
  if opts.proto then match = match and ("(" .. match .. ") and " .. PROTOS[opts.proto]) or PROTOS[opts.proto] end
  if match ~= nil then
    local ok, why = core.check_packet_filter(tostring(match))
    if not ok then error(fmt("dp.path: packet filter '%s': %s", tostring(match), why), 2) end
  end
  local hosts
  if type(opts.host) == "table" then
    hosts = opts.host
  elseif opts.host ~= nil then
    local why
    hosts, why = util.resolve_host(opts.host)
    if not hosts then error(fmt("dp.path: host '%s' is not %s", tostring(opts.host), why), 2) end
  end
  if opts.filter ~= nil then core.check_command(opts.filter, "filter") end
  -- the function set, checked here whether or not this kernel probes functions
  local set = opts.functions
  if type(set) == "table" then
    for name, arg in pairs(set) do
      if type(name) ~= "string" or not name:match("^[%a_][%w_.]*$") or math.type(arg) ~= "integer"
          or arg < 1 or arg > 6 then
        error(fmt("dp.path: functions: '%s' = %s is not a function name and its skb argument (1 to 6)",
          tostring(name), tostring(arg)), 2)
      end
    end
  elseif set ~= nil and type(set) ~= "string" then
    error("dp.path: functions is \"default\", \"all\", a regular expression or a table", 2)
  elseif set ~= nil and set ~= "default" and set ~= "all" then
    core.check_command(set, "functions expression")
    local ok, why = core.btf_skb_funcs("/dev/null", set)
    if not ok and why:find("no regular expression", 1, true) then error("dp.path: functions: " .. why, 2) end
  end
  local coarse = opts.coarse or not tracefs.features().kprobes
  local wants_packet = opts.port ~= nil or hosts ~= nil or match ~= nil
  if coarse and wants_packet then
    error("dp.path: --host, --port, --proto and a packet filter need kprobes: without them the path is "
      .. "drawn from tracepoints, which do not carry the packet's headers (the drop's own fields, "
      .. "reason, protocol and location, can be matched with a filter)", 2)
  end
  local fns = { steps = {}, ends = {} }
  if not coarse then fns = M.functions(opts.functions) end
  local tps = M.tracepoints()

  local self = setmetatable({ coarse = coarse, functions = {}, tracepoints = tps }, Path)
  local t0 = core.now()
  self.inst = instance.instance{ buffer_kb = opts.buffer_kb or 8192 }
  local ok, err = pcall(function()
    local kinds, labels = {}, {}
    local systems = { "skb" }
    local seen_sys = { skb = true }
    local function system(s) if not seen_sys[s] then seen_sys[s] = true systems[#systems + 1] = s end end
    -- the frees first: where the kernel says what became of the packet
    local drop = self.inst:event("skb:kfree_skb")
    local cond = format.drop_filter(opts.filter, opts.all_reasons)
    if cond then
      format.check_condition(cond, drop, "filter")
      self.condition = format.translate(cond, format.event_symbols(drop), "filter")
    end
    kinds["skb:kfree_skb"] = "drop"
    kinds["skb:consume_skb"] = "consume"
    local consume = self.inst:event("skb:consume_skb")
    if opts.stacks then drop:trigger(format.trigger_if("stacktrace", cond)) end
    for _, tp in ipairs(tps) do
      kinds[tp] = "step"
      system(tp:match("^[^:]+"))
    end
    -- a probe per function: the skb from its argument, the packet's bytes
    if #fns.steps > 0 or #fns.ends > 0 then
      local st, why = core.btf_struct("sk_buff")
      if not st then error(why, 0) end
      local pid, n = mypid(), 0
      system("dropprobe")
      local function probe(fn, kind)
        n = n + 1
        local name = fmt("pth_%s_%d", pid, n)
        local reg = kind == "cloned" and "$retval" or kprobe.arg(fn.arg)
        local args = { "skb=" .. reg .. ":x64" }
        if kind == "step" and st.head and st.network_header then
          args[2] = fmt("nh=+%d(%s):u16", st.network_header.offset, reg)
          args[3] = fmt("pkt=+0(+%d(%s)):x64[%d]", st.head.offset, reg, PACKET_WORDS)
        end
        local kp = kprobe.kprobe{ name = name, at = fn.func, args = args, ret = kind == "cloned" }
        local ok2, e2 = pcall(self.inst.event, self.inst, kp)
        if not ok2 then
          kp:close()
          error(fmt("the kernel refused the probe on %s: %s", fn.func, tostring(e2):gsub("^[^%s:]*%.lua:%d+: ", "")), 0)
        end
        e2:enable()
        kinds["dropprobe:" .. name] = kind
        labels["dropprobe:" .. name] = fn.func
        if kind == "step" then self.functions[#self.functions + 1] = fn.func end
      end
      for _, fn in ipairs(fns.ends) do probe(fn, "end") end
      if fns.clone then
        -- the return first: an entry seen before its return probe was
        -- placed would wait for a return that never comes
        probe(fns.clone, "cloned")
        probe(fns.clone, "clone")
        self.clones = true
      end
      for _, fn in ipairs(fns.steps) do probe(fn, "step") end
    end
    for _, tp in ipairs(tps) do self.inst:event(tp):enable() end
    self.pipe = core.path_pipe(self.inst, { systems = systems, kinds = kinds, labels = labels,
      condition = self.condition, all = opts.all and 1 or 0, port = opts.port, hosts = hosts, match = match,
      limit = opts.limit, max_steps = opts.max_steps, buffer_percent = 1 })
    consume:enable()
    drop:enable()
  end)
  if not ok then
    self.inst:close()
    error("dp.path: " .. tostring(err):gsub("^[^%s:]*%.lua:%d+: ", "")
      .. " (nothing was left in tracefs)", 2)
  end
  self.attach_seconds = core.now() - t0
  return self
end

--- The next path, waiting at most `timeout` seconds: a record (the free
-- that ended it, as raw mode decodes it) with `steps` (`{ at, ts, cpu }` in
-- time order, the free last), `packet` (where a step read it), `dropped`
-- and `stack` (with `stacks`).
-- @function Path:read
-- @tparam[opt] number timeout
-- @treturn table|nil a path, or nil and "timeout", "interrupted"
function Path:read(timeout) return self.pipe:read(timeout) end

--- Iterate over the paths: `for p in pth:paths{ duration = 5 } do ... end`.
-- @function Path:paths
-- @tparam[opt] table opts `timeout`, `limit`, `duration` (as `inst:records`)
function Path:paths(opts)
  opts = util.check_options(opts, { "timeout", "limit", "duration" }, "pth:paths")
  local iter, p = pipe.records_iter(self.pipe, opts, "pth:paths")
  return iter, p
end

--- What the tracker counted: `paths` (drops), `delivered`, `steps`, `live`
-- skbs and their `limit`, `evicted` (followed no longer: the table was
-- full), `unmatched`, `undecided` (freed before a step read the headers),
-- `left_out` (frees the drop condition did not take), `frees_without_path`,
-- `quiet_frees`, `clones` (clones that took their parent's path),
-- `clones_unpaired`, `lost` (events the kernel lost), and the pipe's counts.
-- @function Path:stats
-- @treturn table
function Path:stats() return self.pipe:stats() end

--- Remove everything from tracefs: the instance, its events and probes.
-- Idempotent; also `<close>`.
-- @function Path:close
function Path:close()
  if self.pipe then self.pipe:close() end
  if self.inst then self.inst:close() end
end
Path.__close = Path.close
Path.__gc = Path.close

--- Follow packets until `duration`, `idle` or a signal, calling fn with each path.
-- @tparam[opt] table opts as `open`, and `duration`, `idle`, `ready`
-- (called with a line saying what is traced once armed)
-- @tparam function fn called with `{ packet, steps, drop = { reason,
-- location, ts, stack } or nil, coarse, lost_before, steps_cut }`
-- @treturn table `{ paths, delivered, lost, evicted, limit, unmatched,
-- undecided, left_out, clones (nil where skb_clone is not probed), coarse, functions, tracepoints,
-- attach_seconds, ended }`
function M.run(opts, fn)
  opts = opts or {}
  local run_opts = { duration = opts.duration, idle = opts.idle }
  local open_opts = {}
  for k, v in pairs(opts) do
    if k ~= "duration" and k ~= "idle" and k ~= "ready" then open_opts[k] = v end
  end
  local pth <close> = M.open(open_opts)
  if opts.ready then
    opts.ready(pth.coarse
      and fmt("a coarse path (no kprobes on this kernel): %d tracepoints that carry skbaddr, ending at "
        .. "skb:kfree_skb", #pth.tracepoints)
      or fmt("%d kernel functions (kprobes, armed in %.1f s)%s and %d tracepoints, ending at skb:kfree_skb",
        #pth.functions, pth.attach_seconds, pth.clones and ", clones followed from skb_clone" or "",
        #pth.tracepoints))
  end
  local ended = pipe.each(pth.pipe, run_opts, function(rec)
    fn(M.shape(rec, pth.coarse))
  end)
  local s = pth:stats()
  return { paths = s.paths, delivered = s.delivered, lost = s.lost, evicted = s.evicted, limit = s.limit,
    unmatched = s.unmatched, undecided = s.undecided, left_out = s.left_out,
    clones = pth.clones and s.clones or nil, coarse = pth.coarse,
    functions = pth.functions, tracepoints = pth.tracepoints, attach_seconds = pth.attach_seconds,
    steps = s.steps, ended = ended }
end

--- A path record as `run` gives it.
-- @tparam table rec a path record (`Path:read`)
-- @tparam boolean coarse
-- @treturn table `{ packet, steps, drop, coarse, lost_before, steps_cut }`
function M.shape(rec, coarse)
  local drop
  if rec.dropped then
    drop = { reason = rec.fields.reason, location = record.where(rec) or rec.fields.location,
      ts = rec.ts, stack = rec.stack }
  end
  return { packet = rec.packet, steps = rec.steps, drop = drop, coarse = coarse,
    lost_before = rec.lost_before, steps_cut = rec.steps_cut, cpu = rec.cpu, comm = rec.comm, pid = rec.pid }
end

local function five_tuple(p)
  if not p then return "packet unknown" end
  local function ep(addr, port)
    if not port then return addr end
    return (addr:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(addr, port)
  end
  return ("%s %s -> %s"):format(tostring(p.proto), ep(p.saddr, p.sport), ep(p.daddr, p.dport))
end

--- A path as text: a head line (the packet, how many steps, how long, how
-- it ended), then one line a step (delta from the first, CPU, time,
-- function or tracepoint), then the stack.
-- @tparam table p a path as `run` gives it
-- @tparam[opt] integer n its number
-- @treturn string lines ending in a newline
function M.text(p, n)
  local steps = p.steps or {}
  local first = steps[1] and steps[1].ts or 0
  local last = steps[#steps] and steps[#steps].ts or first
  local ending = p.drop and ("dropped: %s at %s"):format(format.reason_label(p.drop.reason),
    tostring(p.drop.location or "-")) or "delivered"
  local t = { ("path%s: %s, %d steps in %.6f s%s, %s\n"):format(n and " " .. n or "", five_tuple(p.packet),
    #steps, last - first, p.coarse and " (coarse: tracepoints only)" or "", ending) }
  if p.lost_before then t[#t + 1] = ("  (%d events lost before this path ended)\n"):format(p.lost_before) end
  if p.steps_cut then t[#t + 1] = ("  (%d more steps not kept)\n"):format(p.steps_cut) end
  for i, s in ipairs(steps) do
    local tail = ""
    if i == #steps and p.drop then
      tail = ("  %s %s"):format(format.reason_label(p.drop.reason), tostring(p.drop.location or "-"))
    end
    t[#t + 1] = ("  +%.6f cpu%d %.6f %s%s\n"):format(s.ts - first, s.cpu, s.ts, s.at, tail)
  end
  if p.drop then
    for _, f in ipairs(p.drop.stack or {}) do t[#t + 1] = "      => " .. f .. "\n" end
  end
  return table.concat(t)
end

--- A path as a JSON-ready table: `{ packet, steps = { {at, ts, cpu} },
-- drop = { reason, location, ts, stack } or null, coarse }`.
-- @tparam table p a path as `run` gives it
-- @param null the JSON null (`cjson.null`)
-- @treturn table
function M.json(p, null)
  local drop = null
  if p.drop then
    drop = { reason = p.drop.reason == nil and null or tostring(p.drop.reason),
      location = p.drop.location == nil and null or tostring(p.drop.location), ts = p.drop.ts,
      stack = p.drop.stack }
  end
  return { packet = p.packet or null, steps = p.steps, drop = drop, coarse = p.coarse,
    lost_before = p.lost_before, steps_cut = p.steps_cut }
end

return M
