--- The `dropprobe` command: argparse over the library and its recipes.
-- Exit codes: 0 success, 1 usage (an unknown command or option), 2 a bad
-- option value, a kernel refusal or a missing privilege,
-- 128+N after signal N (130 for Ctrl-C, 143 for SIGTERM), with the report
-- printed first.
-- @module dropprobe.cli
local argparse = require "argparse"

local M = {}

-- Option values are checked after parsing, before anything reaches
-- tracefs, each with a message that names the option, the value and what
-- is allowed (exit 2); argparse itself only knows the options (usage, exit 1).
local function seconds(v)
  local n = tonumber(v)
  if not n or n <= 0 or n ~= n or n == math.huge then return nil, "a number of seconds > 0" end
  return n
end

local function port_number(v)
  local n = math.tointeger(tonumber(v))
  if not n or n < 0 or n > 65535 then return nil, "a port number from 0 to 65535" end
  return n
end

local function count(v)
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then return nil, "a whole number >= 1" end
  return n
end

local function host(v)
  local list, allowed = require("dropprobe.util").resolve_host(v)
  if not list then return nil, allowed end
  return list -- a name is resolved here, once
end

local function one_of(...)
  local allowed = { ... }
  return function(v)
    for _, a in ipairs(allowed) do if v == a then return v end end
    return nil, "one of " .. table.concat(allowed, ", ")
  end
end

-- option -> its check; an option that takes a value may be given one that
-- starts with "-" (--port -1): it is the value, and the check says why not
local CHECKS = { duration = seconds, interval = seconds, port = port_number, limit = count, top = count,
  host = host, mode = one_of("raw", "text"), where = one_of("kernel", "c"), by = one_of("reason", "port") }

local ORDER = { "mode", "where", "by", "duration", "interval", "limit", "top", "port", "host" }

local function check_values(args)
  for _, name in ipairs(ORDER) do
    local check, v = CHECKS[name], args[name]
    if type(v) == "string" then
      local good, allowed = check(v)
      if good == nil then
        return ("--%s: '%s' is not %s"):format(name, v, allowed)
      end
      args[name] = good
    end
  end
end

-- "--port -1" as "--port=-1": argparse would take "-1" for an option
local function join_values(argv)
  local out = {}
  local i = 1
  while argv[i] do
    local a, v = argv[i], argv[i + 1]
    local name = type(a) == "string" and a:match("^%-%-([%w-]+)$")
    if name and CHECKS[name] and type(v) == "string" and v:match("^%-") and not v:match("^%-%-?%a") then
      out[#out + 1] = a .. "=" .. v
      i = i + 2
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end

-- every --filter narrows the default (dp.drop_filter)
local EVERY = "It narrows the default, every drop (all reasons but NOT_DROPPED_YET, CONSUMED and "
  .. "the drops of packets a socket had already received: --all-reasons)."
local ALL = "Every reason: also CONSUMED and the drops of packets a socket had already received "
  .. "(QUEUE_PURGE, SOCKET_CLOSE, UNIX_DISCONNECT), which are left out and counted otherwise; "
  .. "--filter alone decides."

-- dropprobe record, and --from FILE on watch, stacks, ports and top (a
-- recording read as the live kernel is): options, then the commands
local function recording_options(watch, stacks, ports, top)
  local from = "Read a recording (a trace.dat from dropprobe record or trace-cmd) instead of the live kernel."
  for _, c in ipairs({ watch, stacks, ports, top }) do c:option("--from", from) end
end

local function record_command(p)
  local rec = p:command("record", "Record drops to a trace.dat that trace-cmd report and KernelShark read "
    .. "(where trace-cmd record cannot run); --until: the flight recorder.")
  rec:option("-o --output", "The trace.dat to write (checked before tracefs is touched).")
  rec:option("--events", "SYS:EVENT,... to record (default skb:kfree_skb with a stack for each drop, and the "
    .. "events ports --from joins: " .. "tcp:tcp_send_reset, icmp:icmp_send, udp:udp_fail_queue_rcv_skb).")
  rec:option("--filter", "Which drops (reason names allowed). " .. EVERY)
  rec:flag("--all-reasons", ALL)
  rec:flag("--stack", "A kernel stack for each drop (the default without --events).")
  rec:flag("--packets", "Also the drop probe with each drop's packet (needs kprobes).")
  rec:option("--duration", "Stop after S seconds (also with --until: write what the buffer holds).")
  rec:option("--until", "The flight recorder: events run into the ring buffer, nothing is read; the first "
    .. "drop where COND (an ftrace condition on the drop event, e.g. 'reason == NO_SOCKET') stops it in the "
    .. "kernel, and what it holds is written, that drop last.")
  rec:option("--count", "With --until: stop at the N-th such drop.")
  rec:option("--before", "With --until: keep about S seconds of events (the buffer sized from the rate now).")
  rec:option("--buffer-kb", "With --until: the ring buffer per CPU, in kB (default 8192).")
end

local function parser()
  local p = argparse("dropprobe", "Find where and why the Linux kernel drops packets, "
    .. "with nothing but tracefs.")
    :epilog("Every command leaves tracefs as it found it. Ctrl-C ends a long-running "
      .. "command with its report.")
  p:command_target("command")
  p:require_command(false)

  local watch = p:command("watch", "Drops as they happen, one line each.")
  watch:argument("expression", "Only drops whose packet passes this filter, in tcpdump's language "
    .. "(pcap-filter(7)), e.g. 'udp and dst port 53' (needs kprobes).")
    :args("*")
  watch:option("--filter", "Which drops: an ftrace filter on the drop event's fields (reason names "
    .. "allowed; packet fields are --host and --port). " .. EVERY)
  watch:flag("--all-reasons", ALL)
  watch:flag("--stack", "Add the kernel stack of each drop, from the function that dropped it.")
  watch:flag("--json", "JSON Lines: name, cpu, pid, comm, ts, reason, location, stack, packet.")
  watch:option("--mode", "Read the binary buffers (raw) or trace_pipe text: raw or text.", "raw")
  watch:option("--duration", "Stop after S seconds.")
  watch:option("--port", "Only drops of packets from or to this port (needs kprobes).")
  watch:option("--host", "Only drops of packets from or to this address, prefix (127.0.0.0/8, "
    .. "fe80::/10) or name (needs kprobes).")
  watch:option("--dev", "Only drops of packets on this interface (where the kernel has no kprobes: from "
    .. "the tracepoints that name a packet's device, joined by skb address).")
  watch:option("--netns", "Only drops of packets in this network namespace: its inode, a path such as "
    .. "/proc/PID/ns/net, or a name under /run/netns (needs kprobes).")
  watch:option("--pcap", "Write each dropped packet to FILE as pcapng, as it comes, with its reason and "
    .. "location as the packet's comment (needs kprobes).")

  local stacks = p:command("stacks", "Kernel stacks of the matching drops, counted and ranked.")
  stacks:argument("expression", "Only drops whose packet passes this filter, in tcpdump's language "
    .. "(pcap-filter(7)) (needs kprobes).")
    :args("*")
  stacks:option("--filter", "Which drops (reason names allowed). " .. EVERY)
  stacks:flag("--all-reasons", ALL)
  stacks:flag("--folded", "Folded lines for flame graphs: outer;...;inner count.")
  stacks:option("--limit", "Sample at most N stacks.")
  stacks:option("--duration", "Stop after S seconds.")
  stacks:option("--mode", "With --limit: read records in raw or text mode.", "raw")
  stacks:option("--where", "Count in the kernel (hist triggers) or in C: kernel or c. Default: the "
    .. "kernel where it can.")
  stacks:option("--dev", "Only drops of packets on this interface (needs kprobes).")
  stacks:option("--netns", "Only drops of packets in this network namespace: its inode, a path such as "
    .. "/proc/PID/ns/net, or a name under /run/netns (needs kprobes).")
  stacks:flag("--json", "Print one JSON object.")

  local ports = p:command("ports", "Drops per protocol, local port and reason.")
  ports:argument("expression", "Only drops whose packet passes this filter, in tcpdump's language "
    .. "(pcap-filter(7)), e.g. 'udp and dst port 53' (needs kprobes).")
    :args("*")
  ports:option("--filter", "Which drops. " .. EVERY)
  ports:flag("--all-reasons", ALL)
  ports:option("--duration", "Stop after S seconds.")
  ports:option("--mode", "raw or text.", "raw")
  ports:flag("--json", "Print one JSON object.")
  ports:option("--port", "Only drops of packets from or to this port.")
  ports:option("--host", "Only drops of packets from or to this address, prefix or name (needs kprobes).")
  ports:option("--dev", "Only drops of packets on this interface (needs kprobes).")
  ports:option("--netns", "Only drops of packets in this network namespace: its inode, a path such as "
    .. "/proc/PID/ns/net, or a name under /run/netns (needs kprobes).")
  ports:flag("--joins", "Attribute by joining tracepoints even where each drop's packet can be read.")

  local top = p:command("top", "Live drops per reason and location (or port), with rates.")
  top:option("--interval", "Seconds between updates.", "1")
  top:option("--duration", "Stop after S seconds.")
  top:option("--filter", "Which drops. " .. EVERY)
  top:flag("--all-reasons", ALL)
  top:option("--where", "Count in the kernel (hist triggers) or in C: kernel or c. Default: the "
    .. "kernel where it can.")
  top:option("--by", "reason (reasons and locations) or port (protocol, local port and reason from each "
    .. "drop's packet, counted in C; needs kprobes).", "reason")

  local exp = p:command("exporter", "Drop counters for Prometheus: a textfile for node_exporter, "
    .. "or /metrics of its own.")
  exp:option("--textfile", "Write DIR/dropprobe.prom every interval (node_exporter's textfile collector).")
  exp:option("--listen", "Serve GET /metrics on ADDR:PORT (default address 127.0.0.1).")
  exp:option("--interval", "Seconds between textfile writes.", "15")
  exp:option("--top", "Locations with a series of their own; the rest are \"other\".", "20")
  exp:option("--where", "Count in the kernel (hist triggers) or in C: kernel or c. Default: the "
    .. "kernel where it can.")
  exp:option("--duration", "Stop after S seconds.")
  exp:flag("--no-ports", "No per-port series (they read each drop's packet, where the kernel has kprobes).")
  exp:flag("--netns-label", "Label the per-port series with the network namespace (its inode) of each "
    .. "drop: a series per namespace and port (needs kprobes).")

  -- dropprobe path (issue 22): one self-contained block
  local path = p:command("path", "The path of each dropped packet: the kernel functions and tracepoints "
    .. "its skb passed through, in time order, ending at the drop.")
  path:option("--host", "Only packets from or to this address, prefix or name (needs kprobes).")
  path:option("--port", "Only packets from or to this port (needs kprobes).")
  path:option("--proto", "Only packets of this protocol: tcp, udp or icmp (needs kprobes).")
  path:option("--filter", "Which drops: an ftrace filter on skb:kfree_skb's fields (reason names "
    .. "allowed). " .. EVERY)
  path:flag("--all-reasons", ALL)
  path:option("--functions", "Which kernel functions (kprobes): default (a set by name that attaches in "
    .. "seconds), all (every function that takes an skb, from BTF), or a regular expression.", "default")
  path:flag("--all", "Also the paths of packets that were delivered (ending in consume_skb).")
  path:flag("--stack", "Add the kernel stack of each drop.")
  path:flag("--json", "JSON Lines: one object a path, {packet, steps, drop}.")
  path:option("--duration", "Stop after S seconds.")
  path:option("--limit", "Follow at most N skbs at a time (the oldest are evicted, and counted).", "4096")

  p:command("reasons", "This kernel's drop reasons, number and name.")
    :flag("--json", "Print one JSON object.")
  p:command("shell", "The Lua 5.4 REPL with dp loaded and results shown by content.")
  p:command("doctor", "What this kernel offers for drop hunting, and what would enable the rest.")
    :flag("--json", "Print one JSON object.")
  p:command("cleanup", "Remove instances left by dropprobe processes that no longer exist.")
    :flag("--dry-run", "Only list what would be removed.")
  recording_options(watch, stacks, ports, top)
  record_command(p)
  return p
end

-- JSON through lua-cjson. It writes an empty table as {}; Debian's 2.1.0
-- has no empty-array marker, so lists that may be empty are marked with a
-- metatable the encoder hook below turns into [] (see as_list).
local cjson = require "cjson"
local LIST = {}

-- a list to encode as [] when empty
local function as_list(t)
  return setmetatable(t, LIST)
end

local EMPTY = "__dropprobe_empty_list__"
local function mark(v)
  if type(v) ~= "table" then return v end
  if getmetatable(v) == LIST and next(v) == nil then return EMPTY end
  local out = {}
  for k, x in pairs(v) do out[k] = mark(x) end
  return out
end

local function encode(v)
  return (cjson.encode(mark(v)):gsub('"' .. EMPTY .. '"', "[]"))
end

local function json_line(v)
  io.write(encode(v), "\n")
end

local function lost_note(n)
  if n and n > 0 then
    io.stderr:write(("dropprobe: %d events were lost (a bigger buffer, or raw mode, keeps up)\n")
      :format(n))
  end
end

local cmds = {}

function cmds.reasons(dp, args)
  local r = dp.reasons()
  local nums = {}
  for k in pairs(r) do if math.type(k) == "integer" then nums[#nums + 1] = k end end
  table.sort(nums)
  if args.json then
    local out = as_list{}
    for _, n in ipairs(nums) do out[#out + 1] = { number = n, name = r[n] } end
    json_line{ reasons = out }
  else
    if #nums == 0 then print("this kernel's skb:kfree_skb has no drop reasons (before 5.17)") end
    for _, n in ipairs(nums) do print(string.format("%4d  %s", n, r[n])) end
  end
  return 0
end

-- The one line on stderr that says the probes are armed: what is traced,
-- how, and how to stop (tcpdump's "listening on", bpftrace's "Attaching").
local function listening(cmd, what)
  io.stderr:write(("dropprobe %s: listening: %s; Ctrl-C to stop\n"):format(cmd, what))
  io.stderr:flush()
end

local function left_out_note(left_out)
  local note = require("dropprobe.hunt").left_out_note(left_out)
  if note then io.stderr:write("dropprobe: ", note, "\n") end
end

-- The packet arguments of watch and ports, checked before tracefs is
-- touched: a tcpdump filter expression (refused with libpcap's own words),
-- --dev, --netns (resolved to its inode), and whether this kernel gives
-- the packet they need. Returns the expression or nil.
local function packet_args(args)
  local expr = #args.expression > 0 and table.concat(args.expression, " ") or nil
  if expr then
    local ok, why = require("dropprobe.core").check_packet_filter(expr)
    if not ok then error(("packet filter '%s': %s"):format(expr, why), 0) end
  end
  if args.dev and not require("dropprobe.util").ifname_ok(args.dev) then
    error(("--dev: '%s' is not an interface name (1 to 15 bytes, no space, quote, slash, colon or glob character)")
      :format(args.dev), 0)
  end
  if args.netns then
    local ino, why = require("dropprobe.util").resolve_netns(args.netns)
    if not ino then error(("--netns: '%s' is not %s"):format(args.netns, why), 0) end
    args.netns = ino
  end
  -- watch's --dev joins tracepoints where there is no packet; the rest needs it
  local dev_needs = args.dev and args.command ~= "watch"
  if (args.port and args.command == "watch") or args.host or args.pcap or expr or dev_needs or args.netns then
    local ok, why = require("dropprobe.hunt").packets_for{ mode = args.mode }
    if not ok then
      error((args.pcap and "--pcap needs" or expr and "a packet filter needs"
        or (args.dev or args.netns) and "--dev and --netns need" or "--port and --host need")
        .. " the packet of each drop: " .. why, 0)
    end
  end
  return expr
end

function cmds.watch(_, args)
  local recipe = require "dropprobe.recipes.watch"
  local expr = packet_args(args)
  local report = recipe.run({ filter = args.filter, all_reasons = args.all_reasons, stacks = args.stack,
    mode = args.mode, port = args.port, host = args.host, duration = args.duration, pcap = args.pcap,
    match = expr, dev = args.dev, netns = args.netns,
    ready = function(what) listening("watch", what) end }, function(d)
    if args.json then json_line(recipe.json(d, cjson.null)) else io.write(recipe.line(d)) end
    io.stdout:flush()
  end)
  io.stderr:write(("dropprobe watch: %d drops, %d events lost\n"):format(report.drops, report.lost))
  if (report.qdisc_unexplained or 0) > 0 then
    io.stderr:write(("dropprobe watch: %d QDISC_DROP drops show no qdisc: %s\n"):format(report.qdisc_unexplained,
      report.qdisc_why
        or "the kernel's qdisc:qdisc_drop event of their packet was not read (lost, or before the start)"))
  end
  if report.devices then
    io.stderr:write(("dropprobe watch: no drop carries its packet here: the device comes from %s, joined by "
      .. "skb address; %d drops on another device and %d on none known were left out\n")
      :format(table.concat(report.devices, " and "), report.other_dev or 0, report.no_dev or 0))
  end
  if report.pcap then
    io.stderr:write(("dropprobe watch: %d packets written to %s\n"):format(report.pcap.packets, args.pcap))
  end
  left_out_note(report.left_out)
  return 0
end

-- dropprobe path (issue 22)
function cmds.path(_, args)
  local recipe = require "dropprobe.recipes.path"
  if args.proto and args.proto ~= "tcp" and args.proto ~= "udp" and args.proto ~= "icmp" then
    error(("--proto: '%s' is not tcp, udp or icmp"):format(args.proto), 0)
  end
  if args.functions ~= "default" and args.functions ~= "all" then
    local ok, why = require("dropprobe.core").btf_skb_funcs("/dev/null", args.functions)
    if not ok and why:find("no regular expression", 1, true) then error("--functions: " .. why, 0) end
  end
  local n = 0
  local report = recipe.run({ host = args.host, port = args.port, proto = args.proto, filter = args.filter,
    all_reasons = args.all_reasons, all = args.all, functions = args.functions, stacks = args.stack,
    limit = args.limit, duration = args.duration,
    ready = function(what) listening("path", what) end }, function(pth)
    n = n + 1
    if args.json then json_line(recipe.json(pth, cjson.null)) else io.write(recipe.text(pth, n)) end
    io.stdout:flush()
  end)
  io.stderr:write(("dropprobe path: %d paths of dropped packets%s, %d events lost, %d skbs evicted "
    .. "(a table of %d)%s%s\n"):format(report.paths,
    args.all and (", %d of delivered ones"):format(report.delivered) or "", report.lost, report.evicted,
    report.limit, report.clones and (", %d clones followed"):format(report.clones) or "",
    report.coarse and "; a coarse path: this kernel has no kprobes, so only tracepoints" or ""))
  return 0
end

function cmds.stacks(_, args)
  local recipe = require "dropprobe.recipes.stacks"
  local expr = packet_args(args)
  local report = recipe.run{ filter = args.filter, all_reasons = args.all_reasons, limit = args.limit,
    duration = args.duration, mode = args.mode, where = args.where, match = expr, dev = args.dev,
    netns = args.netns,
    ready = function(what) listening("stacks", what) end }
  if args.json then
    json_line{ stacks = as_list(report.stacks), matched = report.matched,
      with_stack = report.with_stack, sampled = report.sampled, lost = report.lost,
      dropped = report.dropped, where = report.where, left_out = report.left_out }
  elseif args.folded then
    for _, l in ipairs(recipe.folded(report)) do print(l) end
    left_out_note(report.left_out)
  else
    io.write(recipe.format(report))
  end
  lost_note(report.lost)
  -- the instance went away under it: the report above is the last reading
  if report.fault then io.stdout:flush() error(report.fault, 0) end
  return 0
end

function cmds.ports(_, args)
  local recipe = require "dropprobe.recipes.ports"
  local expr = packet_args(args)
  local report = recipe.run{ filter = args.filter, all_reasons = args.all_reasons, duration = args.duration,
    mode = args.mode, port = args.port, host = args.host, packets = not args.joins,
    match = expr, dev = args.dev, netns = args.netns,
    ready = function(what) listening("ports", what) end }
  if args.json then
    local j = recipe.json(report)
    j.ports = as_list(j.ports)
    json_line(j)
  else
    io.write(recipe.format(report))
  end
  lost_note(report.lost)
  return 0
end

function cmds.top(_, args)
  local recipe = require "dropprobe.recipes.top"
  local st = recipe.run{ interval = args.interval, duration = args.duration, filter = args.filter,
    all_reasons = args.all_reasons, where = args.where, by = args.by,
    ready = function(what) listening("top", what) end }
  lost_note(st.lost)
  return 0
end

function cmds.exporter(dp, args)
  local exporter = require "dropprobe.exporter"
  exporter.run{ textfile = args.textfile, listen = args.listen, interval = args.interval,
    top = args.top, where = args.where, duration = args.duration, version = dp.VERSION,
    ports = not args.no_ports, netns = args.netns_label or nil, ready = function(what) listening("exporter", what) end }
  return 0
end

function cmds.doctor(dp, args)
  local checks = dp.doctor()
  if args.json then
    local out = as_list{}
    for _, c in ipairs(checks) do
      out[#out + 1] = { name = c.name, ok = c.ok, detail = c.detail or "", fix = c.fix }
    end
    json_line{ checks = out }
  else
    for _, c in ipairs(checks) do
      print(("%-22s %-4s %s"):format(c.name, c.ok and "yes" or "NO", c.detail or ""))
      if not c.ok and c.fix then print(("%-22s      -> %s"):format("", c.fix)) end
    end
  end
  return 0
end

function cmds.cleanup(dp, args)
  local gone = dp.cleanup{ dry_run = args.dry_run }
  for _, name in ipairs(gone) do
    print((args.dry_run and "would remove " or "removed ") .. name)
  end
  if #gone == 0 then print("nothing left behind by dropprobe") end
  return 0
end

function cmds.shell(_, _, argv)
  local lua = (argv and argv[-1]) or "lua5.4"
  if not lua:match("^[%w_./%-]+$") then lua = "lua5.4" end
  local ok, _, code = os.execute(lua .. [[ -e 'require("dropprobe.shell").install()' -i]])
  return ok and 0 or (code or 1)
end

-- dropprobe record and --from: the commands
local function whole(name, v)
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then error(("--%s: '%s' is not a whole number >= 1"):format(name, v), 0) end
  return n
end

function cmds.record(_, args)
  if not args.output then error("-o FILE: the trace.dat to write", 0) end
  local events
  if args.events then
    events = {}
    for e in args.events:gmatch("[^,%s]+") do
      if not e:match("^[%w_]+:[%w_]+$") then
        error(("--events: '%s' is not SYS:EVENT (letters, digits, _)"):format(e), 0)
      end
      events[#events + 1] = e
    end
  else
    events = { "skb:kfree_skb" }
    for _, e in ipairs(require("dropprobe.recipes.ports").EVENTS) do
      local sys, name = e:match("^(.-):(.*)$")
      if require("dropprobe.util").exists(require("dropprobe").tracefs() .. "/events/" .. sys .. "/" .. name) then
        events[#events + 1] = e
      end
    end
  end
  local before = args.before and tonumber(args.before)
  if args.before and (not before or before <= 0 or before ~= before or before == math.huge) then
    error(("--before: '%s' is not a number of seconds > 0"):format(args.before), 0)
  end
  local opts = { path = args.output, events = events, filter = args.filter, all_reasons = args.all_reasons,
    stacks = args.stack or not args.events, packets = args.packets, duration = args.duration,
    ["until"] = args["until"], count = whole("count", args.count), before = before,
    buffer_kb = whole("buffer-kb", args.buffer_kb),
    ready = function(what) listening("record", "recording " .. what) end,
    on_freeze = args["until"] and function(n)
      io.stderr:write(("dropprobe record: drop %d where %s: the buffer stopped\n"):format(n, args["until"]))
    end or nil }
  local ok, r = pcall(require("dropprobe.recording").record, opts)
  if not ok then error((tostring(r):gsub("^[^%s:]*%.lua:%d+: ", ""):gsub("^record: ", "")), 0) end
  local how = r.ended == "frozen" and ("frozen at drop %d where %s"):format(r.matches, args["until"])
    or args["until"] and ("not frozen (%s): the buffer as it was"):format(r.ended) or r.ended
  io.stderr:write(("dropprobe record: %d pages (%d kB) written to %s, %s, %d events lost\n"):format(r.pages,
    r.bytes // 1024, r.path, how, r.lost))
  if r.failure then error(r.failure .. " (the file holds the pages kept before it)", 0) end
  return 0
end

local function from_recording(cmd, args)
  local replay = require "dropprobe.replay"
  local path = args.from
  local f = io.open(path, "rb")
  if not f then
    local _, err = io.open(path, "rb")
    error(("--from: cannot open '%s': %s"):format(path, err), 0)
  end
  f:close()
  if args.expression and #args.expression > 0 then
    error("--from: a packet filter is for live hunts (give it to dropprobe record)", 0)
  end
  if cmd == "watch" then
    replay.refuse(args, { "filter", "port", "host", "dev", "netns", "pcap", "duration" })
    local recipe = require "dropprobe.recipes.watch"
    local report = replay.watch(path, { all_reasons = args.all_reasons, stacks = args.stack == true }, function(d)
      if args.json then json_line(recipe.json(d, cjson.null)) else io.write(recipe.line(d)) end
    end)
    io.stderr:write(("dropprobe watch: %d drops in %s\n"):format(report.drops, path))
    left_out_note(report.left_out)
  elseif cmd == "stacks" then
    replay.refuse(args, { "filter", "limit", "dev", "netns", "duration" })
    local recipe = require "dropprobe.recipes.stacks"
    local report = replay.stacks(path, { all_reasons = args.all_reasons })
    if args.json then
      json_line{ stacks = as_list(report.stacks), matched = report.matched, with_stack = report.with_stack,
        sampled = false, lost = 0, dropped = report.dropped, where = report.where, left_out = report.left_out }
    elseif args.folded then
      for _, l in ipairs(recipe.folded(report)) do print(l) end
    else
      io.write(recipe.format(report))
    end
  elseif cmd == "ports" then
    replay.refuse(args, { "filter", "port", "host", "dev", "netns", "duration" })
    local recipe = require "dropprobe.recipes.ports"
    local report = recipe.from_records(function(fn) replay.each(path, fn) end, { all_reasons = args.all_reasons })
    if args.json then
      local j = recipe.json(report)
      j.ports = as_list(j.ports)
      json_line(j)
    else
      io.write(recipe.format(report))
    end
  else
    replay.refuse(args, { "filter", "duration" })
    io.write(replay.top_format(replay.top(path)))
  end
  return 0
end

for _, name in ipairs({ "watch", "stacks", "ports", "top" }) do
  local live = cmds[name]
  cmds[name] = function(dp, args, argv)
    if args.from then return from_recording(name, args) end
    return live(dp, args, argv)
  end
end

-- An error as a user reads it: without the Lua source positions
-- ("…/dropprobe/init.lua:625: ") that error() and luaL_error put in front.
local function plain(msg)
  local s, n = tostring(msg), 1
  while n > 0 do s, n = s:gsub("^[^%s:]*%.lua:%d+: ", "") end
  return s
end
M._plain = plain

--- Run the command line; returns the exit code.
-- @tparam table argv the `arg` table
-- @treturn integer exit code
function M.main(argv)
  local p = parser()
  local joined = join_values(argv)
  joined[0], joined[-1] = argv[0], argv[-1]
  local ok, args = p:pparse(joined)
  if not ok then
    io.stderr:write("dropprobe: ", args, "\n", p:get_usage(), "\n")
    return 1
  end
  if not args.command then
    print(p:get_help())
    return 0
  end
  -- bad values end here, before tracefs is touched
  local bad = check_values(args)
  if bad then
    io.stderr:write("dropprobe ", args.command, ": ", bad, "\n")
    return 2
  end
  local dp = require "dropprobe"
  if args.command ~= "shell" then dp.core.catch_signals() end
  local good, rc = pcall(cmds[args.command], dp, args, argv)
  local sig = dp.core.signal()
  if not good then
    io.stderr:write("dropprobe ", args.command, ": ", plain(rc), "\n")
    return sig and 128 + sig or 2
  end
  if sig then return 128 + sig end
  return rc
end

return M
