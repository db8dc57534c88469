--- The `dropprobe` command: argparse over the library and its recipes.
-- Exit codes: 0 success, 1 usage, 2 kernel refusal (or missing privilege),
-- 128+N after signal N (130 for Ctrl-C, 143 for SIGTERM), with the report
-- printed first.
-- @module dropprobe.cli
local argparse = require "argparse"

local M = {}

local function positive(s)
  local n = tonumber(s)
  if not n or n <= 0 then return nil, "must be a number of seconds > 0" end
  return n
end

local function port_arg(s)
  local n = math.tointeger(tonumber(s))
  if not n or n < 0 or n > 65535 then return nil, "must be a port number from 0 to 65535" end
  return n
end

-- every --filter's default, in this kernel's names (dp.drop_condition)
local EVERY = "Default: every drop (all reasons but NOT_DROPPED_YET and CONSUMED)."

local function parser()
  local p = argparse("dropprobe", "Find where and why the Linux kernel drops packets, "
    .. "with nothing but tracefs.")
    :epilog("Every command leaves tracefs as it found it. Ctrl-C ends a long-running "
      .. "command with its report.")
  p:command_target("command")
  p:require_command(false)

  local watch = p:command("watch", "Drops as they happen, one line each.")
  watch:option("--filter", "Which drops (an ftrace filter; reason names allowed). " .. EVERY)
  watch:flag("--stack", "Add the kernel stack of each drop.")
  watch:flag("--json", "JSON Lines: name, cpu, pid, comm, ts, reason, location, stack.")
  watch:option("--mode", "Read the binary buffers (raw) or trace_pipe text.", "raw")
    :choices({ "raw", "text" })
  watch:option("--duration", "Stop after S seconds."):convert(positive)
  watch:option("--port", "Only drops of packets from or to this port (needs kprobes)."):convert(port_arg)
  watch:option("--host", "Only drops of packets from or to this address (needs kprobes).")

  local stacks = p:command("stacks", "Kernel stacks of the matching drops, counted and ranked.")
  stacks:option("--filter", "Which drops (reason names allowed). " .. EVERY)
  stacks:flag("--folded", "Folded lines for flame graphs: outer;...;inner count.")
  stacks:option("--limit", "Sample at most N stacks."):convert(tonumber)
  stacks:option("--duration", "Stop after S seconds."):convert(positive)
  stacks:option("--mode", "With --limit: read records in raw or text mode.", "raw"):choices({ "raw", "text" })
  stacks:option("--where", "Count in the kernel (hist triggers) or in C. Default: the kernel where it can.")
    :choices({ "kernel", "c" })
  stacks:flag("--json", "Print one JSON object.")

  local ports = p:command("ports", "Drops per protocol, local port and reason.")
  ports:option("--filter", "Which drops. " .. EVERY)
  ports:option("--duration", "Stop after S seconds."):convert(positive)
  ports:option("--mode", "raw or text.", "raw"):choices({ "raw", "text" })
  ports:flag("--json", "Print one JSON object.")
  ports:option("--port", "Only drops of packets from or to this port."):convert(port_arg)
  ports:option("--host", "Only drops of packets from or to this address (needs kprobes).")
  ports:flag("--joins", "Attribute by joining tracepoints even where each drop's packet can be read.")

  local top = p:command("top", "Live drops per reason and location, with rates.")
  top:option("--interval", "Seconds between updates.", "1"):convert(positive)
  top:option("--duration", "Stop after S seconds."):convert(positive)
  top:option("--filter", "Which drops. " .. EVERY)
  top:option("--where", "Count in the kernel (hist triggers) or in C. Default: the kernel where it can.")
    :choices({ "kernel", "c" })

  local exp = p:command("exporter", "Drop counters for Prometheus: a textfile for node_exporter, "
    .. "or /metrics of its own.")
  exp:option("--textfile", "Write DIR/dropprobe.prom every interval (node_exporter's textfile collector).")
  exp:option("--listen", "Serve GET /metrics on ADDR:PORT (default address 127.0.0.1).")
  exp:option("--interval", "Seconds between textfile writes.", "15"):convert(positive)
  exp:option("--top", "Locations with a series of their own; the rest are \"other\".", "20"):convert(math.tointeger)
  exp:option("--where", "Count in the kernel (hist triggers) or in C. Default: the kernel where it can.")
    :choices({ "kernel", "c" })
  exp:option("--duration", "Stop after S seconds."):convert(positive)
  exp:flag("--no-ports", "No per-port series (they read each drop's packet, where the kernel has kprobes).")

  p:command("reasons", "This kernel's drop reasons, number and name.")
    :flag("--json", "Print one JSON object.")
  p:command("shell", "The Lua 5.4 REPL with dp loaded and results shown by content.")
  p:command("doctor", "What this kernel offers for drop hunting, and what would enable the rest.")
    :flag("--json", "Print one JSON object.")
  p:command("cleanup", "Remove instances left by dropprobe processes that no longer exist.")
    :flag("--dry-run", "Only list what would be removed.")
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

-- "udp 127.0.0.1:43210 -> 127.0.0.1:5555 ", or "" without a packet
local function five_tuple(p)
  if not p then return "" end
  local function ep(addr, port)
    if not port then return addr end
    return (addr:find(":", 1, true) and "[%s]:%d" or "%s:%d"):format(addr, port)
  end
  return ("%s %s -> %s "):format(tostring(p.proto), ep(p.saddr, p.sport), ep(p.daddr, p.dport))
end

function cmds.watch(dp, args)
  local hunt = require "dropprobe.hunt"
  local packets, why = false, "text mode reads no packet (use raw mode)"
  if args.mode ~= "text" then packets, why = hunt.packets() end
  if (args.port or args.host) and not packets then
    error("--port and --host need the packet of each drop: " .. why, 0)
  end
  local h <close> = hunt.open{ condition = args.filter, stacks = args.stack, mode = args.mode,
    packets = packets, port = args.port, host = args.host }
  local n = 0
  h:run({ duration = args.duration }, function(rec)
    if rec.name ~= h.drop_name then return end
    local p = rec.packet -- --port and --host were checked in C
    n = n + 1
    -- the place: the kernel's location, or the stack's where it has none
    local reason, location = rec.fields.reason, dp.where(rec) or rec.fields.location
    if args.json then
      -- no reason (a kernel without drop reasons) is null, not a string
      json_line{ name = rec.name, cpu = rec.cpu, pid = rec.pid, comm = rec.comm, ts = rec.ts,
        reason = reason == nil and cjson.null or tostring(reason),
        location = location == nil and cjson.null or tostring(location),
        stack = rec.stack, lost_before = rec.lost_before, packet = p }
    else
      io.write(("%.6f cpu%d %s/%d %s%s %s\n"):format(rec.ts, rec.cpu, rec.comm, rec.pid, five_tuple(p),
        dp.reason_label(reason), tostring(location or "-")))
      if rec.lost_before then io.write(("  (%d events lost before this one)\n"):format(rec.lost_before)) end
      for _, f in ipairs(rec.stack or {}) do io.write("    => ", f, "\n") end
    end
    io.stdout:flush()
  end)
  io.stderr:write(("dropprobe watch: %d drops, %d events lost\n"):format(n, h:totals().lost))
  return 0
end

function cmds.stacks(_, args)
  local recipe = require "dropprobe.recipes.stacks"
  local report = recipe.run{ filter = args.filter, limit = args.limit, duration = args.duration,
    mode = args.mode, where = args.where }
  if args.json then
    json_line{ stacks = as_list(report.stacks), matched = report.matched,
      with_stack = report.with_stack, sampled = report.sampled, lost = report.lost,
      dropped = report.dropped, where = report.where }
  elseif args.folded then
    for _, l in ipairs(recipe.folded(report)) do print(l) end
  else
    io.write(recipe.format(report))
  end
  lost_note(report.lost)
  return 0
end

function cmds.ports(_, args)
  local recipe = require "dropprobe.recipes.ports"
  local report = recipe.run{ filter = args.filter, duration = args.duration, mode = args.mode,
    port = args.port, host = args.host, packets = not args.joins }
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
    where = args.where }
  lost_note(st.lost)
  return 0
end

function cmds.exporter(dp, args)
  local exporter = require "dropprobe.exporter"
  exporter.run{ textfile = args.textfile, listen = args.listen, interval = args.interval,
    top = args.top, where = args.where, duration = args.duration, version = dp.VERSION,
    ports = not args.no_ports }
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
  local ok, args = p:pparse(argv)
  if not ok then
    io.stderr:write("dropprobe: ", args, "\n", p:get_usage(), "\n")
    return 1
  end
  if not args.command then
    print(p:get_help())
    return 0
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
