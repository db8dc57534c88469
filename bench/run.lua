-- make bench: every reader on the same bounded loopback flood, in one run,
-- side by side, as one Markdown table (also written to bench/results.md);
-- then the readers that must hold a storm from every CPU on a flood from
-- two senders pinned to their own CPUs (2 x N), each row checked: what it
-- got and what it lost add up to the kernel's count (Udp NoPorts).
--   lua5.4 bench/run.lua [--count N] [--memory N] [--out FILE]
-- Root only (it makes drops and reads them from tracefs). Loopback only.
package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local dp = require "dropprobe"
local cjson = require "cjson"
local socket = require "socket"

local COUNT, MEMORY, OUT, PORT = 300000, 2000000, "bench/results.md", 9
for i = 1, #arg do
  if arg[i] == "--count" then COUNT = assert(tonumber(arg[i + 1]), "--count N") end
  if arg[i] == "--memory" then MEMORY = assert(tonumber(arg[i + 1]), "--memory N") end
  if arg[i] == "--out" then OUT = arg[i + 1] end
end
-- every reader keeps the drops of the flood: NO_SOCKET, this kernel's number
-- where a tool takes no names (bpftrace, trace-cmd)
local NO_SOCKET = assert(dp.reasons().NO_SOCKET, "this kernel has no NO_SOCKET reason")
local FILTER = "reason == NO_SOCKET"
local ENV = 'env LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" '

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

local common = require "benchlib"
local slurp, noports = common.slurp, common.noports

-- n drops from one sender, or n from each of `senders` pinned to their own CPUs
local function flood(n, senders)
  local before = noports()
  local t0 = dp.now()
  local out = sh(("build/flood %s%d %d"):format(senders and ("-s %d "):format(senders) or "", n, PORT))
  assert(tonumber(out), "flood failed: " .. out)
  return noports() - before, t0
end

-- start CMD under /usr/bin/time in the background
local function start(cmd)
  local base = os.tmpname()
  os.execute(("(/usr/bin/time -f '%%U %%S %%e %%M' -o %s.time %s > %s.out 2> %s.err & echo $! > %s.pid; "
    .. "wait) &"):format(base, cmd, base, base, base))
  local h = { base = base }
  for _ = 1, 200 do
    h.pid = tonumber(slurp(base .. ".pid"))
    if h.pid then break end
    socket.sleep(0.01)
  end
  function h.output() return slurp(base .. ".out") or "" end
  function h.wait_for(text, timeout)
    local t = dp.now() + (timeout or 30)
    while not h.output():find(text, 1, true) do
      if dp.now() > t then error("timed out waiting for " .. text .. ": " .. (slurp(base .. ".err") or "")) end
      if h.exited() and not h.output():find(text, 1, true) then
        error(text .. " never came, it ended: " .. (slurp(base .. ".err") or ""))
      end
      socket.sleep(0.02)
    end
  end
  function h.exited() return (slurp(base .. ".time") or ""):find("%d") ~= nil end
  -- readers started in the background ignore SIGINT (the shell's rule for
  -- background jobs), so they are ended with SIGTERM
  function h.interrupt(sig) os.execute(("pkill -%s -P %d"):format(sig or "TERM", h.pid)) end
  function h.finish(timeout)
    local t = dp.now() + (timeout or 120)
    while not (slurp(base .. ".time") or ""):find("%d") do
      if dp.now() > t then os.execute(("pkill -KILL -P %d"):format(h.pid)) break end
      socket.sleep(0.05)
    end
    local tm = slurp(base .. ".time") or ""
    local u, s, e, m = tm:match("([%d.]+) ([%d.]+) ([%d.]+) (%d+)%s*$")
    local res = { cpu = (tonumber(u) or 0) + (tonumber(s) or 0), wall = tonumber(e), rss = tonumber(m),
      out = h.output(), err = slurp(base .. ".err") or "" }
    for _, ext in ipairs({ "", ".time", ".out", ".err", ".pid" }) do os.remove(base .. ext) end
    return res
  end
  return h
end

local function drained(inst)
  for cpu = 0, 255 do
    local s = inst:read_file(("per_cpu/cpu%d/stats"):format(cpu))
    if not s then break end
    if tonumber(s:match("entries:%s*(%d+)")) ~= 0 then return false end
  end
  return true
end

local function kernel_counts(inst)
  local read, lost = 0, 0
  for cpu = 0, 255 do
    local s = inst:read_file(("per_cpu/cpu%d/stats"):format(cpu))
    if not s then break end
    read = read + tonumber(s:match("read events:%s*(%d+)"))
    lost = lost + tonumber(s:match("\noverrun:%s*(%d+)")) + tonumber(s:match("dropped events:%s*(%d+)"))
  end
  return read, lost
end

local rows = {}
-- readers whose buffers hold more than the drops: a lost event may be a
-- drop's stack (stacks counted in C) or a joined event (ports by joins),
-- so got < kernel <= got + lost is all the loss can say there
local BOUNDED = { stacks = "a drop's stack shares the buffer", ports = "the joined events share the buffer" }
local function row(name, r) rows[#rows + 1] = r r.name = name io.stderr:write("done: ", name, "\n") end

-- readers of a trace_pipe that this script sets up: cat, the naive Lua reader
local function pipe_reader(name, cmd_of, senders)
  local inst <close> = dp.instance{ buffer_kb = 8192 }
  inst:event("skb:kfree_skb"):filter(FILTER):enable()
  local h = start(cmd_of(inst:dir() .. "/trace_pipe"))
  socket.sleep(0.5)
  local kernel, t0 = flood(COUNT, senders)
  local t = dp.now() + 120
  while not drained(inst) and dp.now() < t and not h.exited() do socket.sleep(0.05) end
  local t_end = dp.now()
  socket.sleep(0.3)
  h.interrupt()
  local r = h.finish()
  local read, lost = kernel_counts(inst)
  -- got: what the reader took from the buffer (the naive reader's own
  -- count, printed every 1000, misses the last ones when it is stopped)
  row(name, { kernel = kernel, got = read, lost = lost, cpu = r.cpu,
    wall = t_end - t0, rss = r.rss, senders = senders })
end

-- dropprobe readers: they make their own instance and end after a quiet spell
local function dp_reader(name, kind, count, senders)
  local h = start(ENV .. "lua5.4 bench/consumer.lua " .. kind)
  h.wait_for("ready")
  local kernel = flood(count or COUNT, senders)
  local r = h.finish()
  local res = cjson.decode(r.out:match("(%b{})%s*$") or "{}")
  local function int(v) return v and math.tointeger(v) or v end
  -- raw mode and counting in C say how many CPUs' buffers they read in place
  if res.mapped then
    name = name .. (res.mapped > 0 and (": buffers mapped (%d CPUs)"):format(int(res.mapped))
      or ": pages copied with read()")
  end
  row(name, { kernel = kernel, got = int(res.got), lost = int(res.lost), cpu = r.cpu, wall = (r.wall or 0) - 2,
    rss = r.rss, extra = res, note = r.err ~= "" and r.err or nil, senders = senders, bounded = BOUNDED[kind],
    kind = kind, startup = count == 1 or nil })
end

io.stderr:write(("bench: %d UDP drops to 127.0.0.1:%d per row\n"):format(COUNT, PORT))
assert(os.execute("test -x build/flood"), "build/flood missing: run make bench")

pipe_reader("`cat trace_pipe > /dev/null`", function(p) return "cat " .. p .. " > /dev/null" end)
pipe_reader("naive Lua reader (io.lines + string.match)",
  function(p) return ENV .. "lua5.4 bench/consumer.lua naive " .. p .. " " .. COUNT end)
dp_reader("dropprobe text mode", "text")
dp_reader("dropprobe raw mode", "raw")
dp_reader("dropprobe raw mode, `map = false`", "raw-copy")
dp_reader("dropprobe `ports` recipe (raw)", "ports")
dp_reader("dropprobe `stacks` recipe (a stack per drop, counted in C here)", "stacks")
dp_reader("dropprobe count by reason and location (`dp.hist`, in C here)", "count")
dp_reader("dropprobe count by reason and location (`dp.hist`, in C here), `map = false`", "count-copy")
dp_reader("`dropprobe exporter` (textfile every 1 s, in C here)", "exporter")
-- what the readers above cost before and after the flood: one drop, so
-- that the rest of each row is the per-drop cost
dp_reader("start-up and close alone (one drop): dropprobe raw mode", "raw", 1)
dp_reader("start-up and close alone (one drop): dropprobe count (`dp.hist`, in C here)", "count", 1)

-- the kernel's part of those start-ups and closes, done by a C program
-- without the library (bench/floor.c): the instance, its buffers, the
-- filter and the event, /proc/kallsyms read once, the instance removed.
-- No reader goes below it; it reads no drop.
do
  local h = start(("build/floor %s 8192 'reason == %d' 2"):format(dp.tracefs(), NO_SOCKET))
  h.wait_for("ready")
  local r = h.finish()
  assert(r.out:find('"got":0', 1, true), "build/floor failed: " .. r.err)
  row("the kernel's part of start-up and close alone (`build/floor`: instance, 8 MB buffers, filter, "
    .. "event, /proc/kallsyms read once; no library, no drop read)", { cpu = r.cpu, wall = (r.wall or 0) - 2,
    rss = r.rss, nodrops = true })
end

-- recording to a trace.dat (dropprobe record: the kernel's pages into the
-- file, nothing decoded) against cat of the same trace_pipe into a file
do
  local file = os.tmpname()
  pipe_reader("`cat trace_pipe > file`", function(p) return "cat " .. p .. " > " .. file end)
  os.remove(file)
  local dat = os.tmpname()
  local h = start(ENV .. ("lua5.4 bin/dropprobe record -o %s --events skb:kfree_skb --filter '%s' --duration 15")
    :format(dat, FILTER))
  local t = dp.now() + 60
  while not (slurp(h.base .. ".err") or ""):find("listening", 1, true) and dp.now() < t do socket.sleep(0.02) end
  local kernel = flood(COUNT)
  local r = h.finish(120)
  local ok, got = pcall(function() return dp.hist_file(dat, { keys = { "reason" } }):read().hits end)
  os.remove(dat)
  row("`dropprobe record` to a trace.dat (`--events skb:kfree_skb`; got: the file's events; wall: its --duration)",
    { kernel = kernel, got = ok and got or nil, lost = tonumber(r.err:match("(%d+) events lost")), cpu = r.cpu,
      rss = r.rss, note = not ok and tostring(got) or nil })
end

-- a storm from every CPU: two senders, each pinned to its own CPU, COUNT each
local SENDERS = 2
local function pinned(name) return ("%d senders pinned to their CPUs: %s"):format(SENDERS, name) end
pipe_reader(pinned("`cat trace_pipe > /dev/null`"), function(p) return "cat " .. p .. " > /dev/null" end, SENDERS)
dp_reader(pinned("dropprobe raw mode (the record reader)"), "raw", nil, SENDERS)
dp_reader(pinned("dropprobe `ports` recipe (raw, by joins here)"), "ports", nil, SENDERS)
dp_reader(pinned("dropprobe `stacks` recipe (a stack per drop, counted in C here)"), "stacks", nil, SENDERS)
dp_reader(pinned("dropprobe count by reason and location (`dp.hist`, in C here)"), "count", nil, SENDERS)
dp_reader(pinned("dropprobe count by reason and location (`dp.hist`, in C here), `map = false`"), "count-copy", nil,
  SENDERS)

-- the exporter at rest: CPU over 10 s without a drop
local at_rest
do
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local h = start(ENV .. "lua5.4 bin/dropprobe exporter --interval 1 --duration 10 --textfile " .. dir)
  local r = h.finish(60)
  os.execute("rm -rf " .. dir)
  at_rest = r.cpu
  io.stderr:write("done: exporter at rest\n")
end

-- bpftrace, counting in the kernel
if sh("command -v bpftrace"):find("bpftrace") then
  local h = start(("bpftrace -e 'tracepoint:skb:kfree_skb /args->reason == %d/ { @ = count(); }'"):format(NO_SOCKET))
  local ok = pcall(h.wait_for, "Attaching", 30)
  if ok then
    socket.sleep(0.5)
    local kernel = flood(COUNT)
    socket.sleep(0.5)
    h.interrupt("INT")
    local r = h.finish()
    row("`bpftrace` count() in the kernel", { kernel = kernel, got = tonumber(r.out:match("@: (%d+)")),
      lost = 0, cpu = r.cpu, rss = r.rss })
  else
    local r = h.finish(5)
    row("`bpftrace` count() in the kernel", { skipped = "bpftrace did not attach: " .. r.err:sub(1, 80) })
  end
else
  row("`bpftrace` count() in the kernel", { skipped = "bpftrace is not installed" })
end

-- a stock kernel with hist triggers, under qemu: the count in the kernel
-- and in C, counts and loss only (the emulator's timings are not the host's)
local VM = os.getenv("BENCH_VM_KERNEL") or "6.12"
if VM ~= "" and os.execute("test -x tools/vmtest") then
  local out = sh(("timeout 900 tools/vmtest %s lua5.4 bench/vmcount.lua %d"):format(VM, math.min(COUNT, 100000)))
  local n = 0
  for json in out:gmatch("VMCOUNT (%b{})") do
    local r = cjson.decode(json)
    n = n + 1
    row(("`dp.hist` %s on Debian's %s (qemu TCG: counts only)"):format(
      r.where == "kernel" and "in the kernel (hist trigger)" or "in C", r.release),
      { kernel = math.tointeger(r.kernel), got = math.tointeger(r.got), lost = math.tointeger(r.lost) })
  end
  if n == 0 then row("`dp.hist` in the kernel under qemu", { skipped = "the guest reported nothing: "
    .. out:sub(-120):gsub("\n", " ") }) end
  -- per port in C (`ports`) against `cat trace_pipe` of the drop probe's events, in the guest
  local vm, cat_cpu = {}, {}
  for json in out:gmatch("VMPORTS (%b{})") do vm[#vm + 1] = cjson.decode(json) end
  for _, r in ipairs(vm) do if r.reader == "cat" then cat_cpu[r.senders or 1] = r.cpu end end
  local READERS = { cat = "`cat trace_pipe`", ports = "`ports` counting per port in C",
    exporter = "`dropprobe exporter` with its per-port series (C)" }
  for _, r in ipairs(vm) do
    local senders, base = math.tointeger(r.senders) or 1, cat_cpu[math.tointeger(r.senders) or 1]
    row(("%s%s of the drop probe's events on Debian's %s (measured in a qemu TCG guest: CPU %.2f s%s)"):format(
      senders > 1 and ("%d senders pinned to their CPUs: "):format(senders) or "",
      READERS[r.reader] or r.reader, r.release, r.cpu,
      r.reader ~= "cat" and base and base > 0 and (", **%.2fx** cat's"):format(r.cpu / base) or ""),
      { kernel = math.tointeger(r.kernel), got = math.tointeger(r.got), lost = math.tointeger(r.lost) })
  end
end

-- dropprobe path in the same kind of guest: placing and removing the probes
-- of the default set, a regular expression and every function that takes
-- an skb, and following a flood against `cat trace_pipe` of the same events
local pathrows = {}
local PATH_COUNT = math.min(COUNT, 20000)
if VM ~= "" and os.execute("test -x tools/vmtest") then
  local out = sh(("timeout 2400 tools/vmtest %s lua5.4 bench/vmpath.lua %d %s"):format(VM, PATH_COUNT,
    os.getenv("BENCH_PATH_SETS") or "default,regex,all"))
  for json in out:gmatch("VMPATH (%b{})") do pathrows[#pathrows + 1] = cjson.decode(json) end
  if #pathrows == 0 then pathrows.failed = out:sub(-160):gsub("\n", " ") end
end

-- trace-cmd record, where it can run
do
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local out = sh(("cd %s && timeout 20 trace-cmd record -e skb:kfree_skb -f 'reason == %d' -o %s/t.dat true")
    :format(dir, NO_SOCKET, dir))
  os.execute("rm -rf " .. dir)
  if out:find("Operation not permitted", 1, true) or out:find("Can't enable", 1, true) then
    row("`trace-cmd record`", { skipped = "cannot run here: it must write /proc/sys/kernel/ftrace_enabled "
      .. "(\"Can't enable ftrace\", EPERM on this locked-down kernel)" })
  elseif out:find("not found", 1, true) then
    row("`trace-cmd record`", { skipped = "trace-cmd is not installed" })
  else
    row("`trace-cmd record`", { skipped = "runs here, not measured (its recording is offline)" })
  end
end

-- offline parse: dp.open against the naive parser on the same saved trace;
-- then on a trace where 9 drops in 10 carry a kernel stack (the <stack
-- trace> entry a stacktrace trigger adds, 22 frames), the naive parser
-- collecting each stack's frames into its record
local FRAMES = { "trace_event_raw_event_kfree_skb+0xac/0x100", "sk_skb_reason_drop+0x90/0x130",
  "__udp4_lib_rcv+0x4bc/0xd00", "ip_protocol_deliver_rcu+0xb3/0x180", "ip_local_deliver_finish+0x81/0x100",
  "__netif_receive_skb_one_core+0x8d/0xa0", "process_backlog+0x83/0x130", "__napi_poll+0x31/0x1f0",
  "net_rx_action+0x16e/0x340", "handle_softirqs+0xcd/0x290", "do_softirq.part.0+0x3b/0x70",
  "__local_bh_enable_ip+0x64/0x70", "__dev_queue_xmit+0x394/0x1010", "ip_finish_output2+0x2c1/0x5e0",
  "ip_output+0x5f/0x150", "ip_send_skb+0x91/0xa0", "udp_send_skb+0x1a7/0x3f0", "udp_sendmsg+0x9a1/0xe30",
  "__sys_sendto+0x1d5/0x1f0", "__x64_sys_sendto+0x24/0x30", "do_syscall_64+0x71/0x290",
  "entry_SYSCALL_64_after_hwframe+0x76/0x7e" }
local function offline_trace(with_stacks)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  local lines = {}
  for i = 1, 1000 do
    lines[#lines + 1] = ("%16s-%-7d [%03d] ..s1. %6d.%06d: kfree_skb: skbaddr=ffff8881%08x "
      .. "rx_sk=0000000000000000 protocol=2048 location=__udp4_lib_rcv+0x4bc/0xd00 reason: NO_SOCKET\n")
      :format("flood", 1000 + i % 50, i % 2, 100 + i, i, i * 256)
    if with_stacks and i % 10 ~= 0 then
      lines[#lines + 1] = ("%16s-%-7d [%03d] ..s1. %6d.%06d: <stack trace>\n")
        :format("flood", 1000 + i % 50, i % 2, 100 + i, i + 1)
      for _, fr in ipairs(FRAMES) do lines[#lines + 1] = " => " .. fr .. "\n" end
    end
  end
  local block = table.concat(lines)
  for _ = 1, COUNT // 1000 do f:write(block) end
  f:close()
  return path, (COUNT // 1000) * 1000, (COUNT // 1000) * 900
end

-- Each reader runs in a process of its own (bench/offline.lua), as a user
-- runs one: Lua's collector walks the whole heap of the process it runs
-- in, and this one's holds some 100 MB by now, which weighed on the reader
-- that allocates more. Each is run 3 times, the median kept.
local function offline_run(kind, path)
  local runs = {}
  for i = 1, 3 do
    local out = sh(ENV .. "lua5.4 bench/offline.lua " .. kind .. " " .. path)
    runs[i] = cjson.decode((assert(out:match("(%b{})%s*$"), "offline " .. kind .. ": " .. out)))
  end
  table.sort(runs, function(x, y) return x.cpu < y.cpu end)
  return runs[2]
end

local offline
do
  local path, nlines = offline_trace(false)
  local d, nv, c = offline_run("dp", path), offline_run("naive", path), offline_run("count", path)
  os.remove(path)
  assert(d.records == nlines and nv.records == nlines, "offline parse counted wrong")
  assert(c.rows == 1 and c.records == nlines, "offline count counted wrong")
  offline = { lines = nlines, dp = nlines / d.cpu, naive = nlines / nv.cpu, count = nlines / c.cpu }
  -- the same drops, 9 in 10 with a stack: both readers take every stack's
  -- frames (dp.open as each record's stack, from the function that dropped)
  local spath, drops, nstacks = offline_trace(true)
  d, nv = offline_run("dp-stacks", spath), offline_run("naive-stacks", spath)
  os.remove(spath)
  -- every stack trimmed to the function that dropped: the tracepoint's
  -- handler and the freeing function left out
  assert(d.records == drops and nv.records == drops and d.stacks == nstacks and nv.stacks == nstacks
    and d.frames == nstacks * (#FRAMES - 2), "offline parse with stacks counted wrong")
  offline.stacked = { drops = drops, stacks = nstacks, frames = #FRAMES, dp = drops / d.cpu,
    naive = drops / nv.cpu }
  io.stderr:write("done: offline parse\n")
end

-- memory: the ports recipe through a long flood, RSS at 0.5M, 1M, 2M records
local memory
do
  local h = start(ENV .. "lua5.4 bench/consumer.lua memory")
  h.wait_for("ready")
  local kernel = 0
  for _ = 1, 4 do kernel = kernel + flood(MEMORY // 4) end
  local r = h.finish(300)
  local res = cjson.decode(r.out:match("(%b{})%s*$") or "{}")
  memory = { kernel = kernel, got = math.tointeger(res.got), lost = math.tointeger(res.lost),
    rss = res.rss or {}, peak = r.rss }
  io.stderr:write("done: memory\n")
end

-- the table: CPU against `cat trace_pipe` of the same flood (one sender,
-- or the pinned senders), and whether got + lost is the kernel's count
local cat = {}
for _, r in ipairs(rows) do
  -- the host's own `cat trace_pipe > /dev/null` (not `> file`, nor a guest's cat, which has no CPU here)
  if r.name:find("`cat trace_pipe > /dev/null`", 1, true) and r.cpu then cat[r.senders or 1] = r.cpu end
end
local function adds_up(r)
  local got, lost = math.tointeger(r.got), math.tointeger(r.lost)
  if not (got and lost and r.kernel) then return "?" end
  if got + lost == r.kernel then return "yes" end
  if r.bounded and lost > 0 and got < r.kernel and r.kernel <= got + lost then
    return ("bounded: %d lost drops in %d lost events (%s)"):format(r.kernel - got, lost, r.bounded)
  end
  r.mismatch = true
  return ("**NO: %+d**"):format(got + lost - r.kernel)
end
local t = {}
t[#t + 1] = ("Flood: %d UDP datagrams to a closed port on 127.0.0.1 (one `NO_SOCKET` drop each), "
  .. "`skb:kfree_skb` with `reason == NO_SOCKET`, 8 MB per-CPU buffer, %d CPUs, %s; the rows \"%d senders "
  .. "pinned\": %d datagrams from each of %d senders, each pinned to its own CPU (`build/flood -s %d`), "
  .. "CPU against `cat` of that flood. \"got + lost = kernel\" checks the loss accounting against Udp NoPorts.\n")
  :format(COUNT, tonumber(sh("nproc")) or 0, os.date("!%Y-%m-%d"), SENDERS, COUNT, SENDERS, SENDERS)
t[#t + 1] = "| reader | kernel counted | reader got | lost | got + lost = kernel | CPU s (user+sys) | CPU vs cat "
  .. "| wall s | peak RSS MB |"
t[#t + 1] = "|---|---:|---:|---:|---|---:|---:|---:|---:|"
local mismatches = 0
for _, r in ipairs(rows) do
  if r.skipped then
    t[#t + 1] = ("| %s | *skipped: %s* | | | | | | | |"):format(r.name, r.skipped)
  else
    local check = adds_up(r)
    if r.mismatch then mismatches = mismatches + 1 end
    if r.nodrops then
      t[#t + 1] = ("| %s | - | - | - | - | %.2f | %.2f | %.2f | %.1f |"):format(r.name, r.cpu,
        r.cpu / (cat[1] or r.cpu), r.wall or 0, (r.rss or 0) / 1024)
    elseif r.cpu then
      local base = cat[r.senders or 1]
      t[#t + 1] = ("| %s | %d | %s | %s | %s | %.2f | %s | %s | %.1f |"):format(r.name, r.kernel or 0,
        tostring(r.got or "?"), tostring(r.lost or "?"), check, r.cpu or 0,
        base and ("%.2f"):format((r.cpu or 0) / base) or "-",
        r.wall and ("%.2f"):format(r.wall) or "-", (r.rss or 0) / 1024)
    else
      t[#t + 1] = ("| %s | %d | %s | %s | %s | - | - | - | - |"):format(r.name, r.kernel or 0,
        tostring(r.got or "?"), tostring(r.lost or "?"), check)
    end
  end
end
if mismatches > 0 then
  t[#t + 1] = ""
  t[#t + 1] = ("**%d rows do not add up**: what the reader got and lost is not the kernel's count."):format(mismatches)
end
-- per drop: a reader's CPU less its start-up and close (the one-drop rows)
do
  local startup, full = {}, {}
  for _, r in ipairs(rows) do
    if r.kind and not r.senders and r.cpu then
      if r.startup then startup[r.kind] = r.cpu elseif not full[r.kind] then full[r.kind] = r.cpu end
    end
  end
  local parts = {}
  for _, k in ipairs({ "raw", "raw-copy", "count", "count-copy" }) do
    local base = startup[k:gsub("%-copy$", "")]
    if full[k] and base and cat[1] and cat[1] > 0 then
      parts[#parts + 1] = ("%s %.2f"):format(k, (full[k] - base) / cat[1])
    end
  end
  if #parts > 0 then
    t[#t + 1] = ""
    t[#t + 1] = ("Per drop (CPU less the one-drop row's start-up and close), against `cat`: %s.")
      :format(table.concat(parts, ", "))
  end
end
t[#t + 1] = ""
t[#t + 1] = ("Offline, each reader in a process of its own (the median of 3 runs).")
t[#t + 1] = ""
t[#t + 1] = ("Offline parse of a saved %d-line trace: `dp.open` %.0f lines/s, naive Lua parser %.0f lines/s: "
  .. "**%.1fx**."):format(offline.lines, offline.dp, offline.naive, offline.dp / offline.naive)
t[#t + 1] = ""
t[#t + 1] = ("Offline parse of a saved trace of %d drops, %d of them with a kernel stack (`<stack trace>` and %d "
  .. "frame lines each, the same stack every time, as a storm's drops share theirs): `dp.open` (reading every stack) "
  .. "%.0f drops/s, naive Lua parser (collecting the frames) %.0f drops/s: **%.1fx**.")
  :format(offline.stacked.drops, offline.stacked.stacks, offline.stacked.frames, offline.stacked.dp,
    offline.stacked.naive, offline.stacked.dp / offline.stacked.naive)
t[#t + 1] = ""
t[#t + 1] = ("The exporter at rest (no drops, a textfile every second): %.2f s CPU in 10 s, startup included.")
  :format(at_rest or 0)
t[#t + 1] = ""
t[#t + 1] = ("Offline count by reason of the same trace, in C (`dp.hist_file`): %.0f lines/s, **%.1fx** the "
  .. "naive Lua parser."):format(offline.count, offline.count / offline.naive)
t[#t + 1] = ""
local ms = {}
for _, s in ipairs(memory.rss) do ms[#ms + 1] = ("%.1fM records: %.1f MB"):format(s[1] / 1e6, s[2] / 1024) end
local flat = #memory.rss >= 2 and (memory.rss[#memory.rss][2] - memory.rss[1][2]) / 1024
t[#t + 1] = ("Memory, `ports` recipe through %d drops (%d read, %s lost, kernel counted %d): RSS %s%s.")
  :format(MEMORY, memory.got or 0, tostring(memory.lost), memory.kernel, table.concat(ms, ", "),
    flat and (" — %+.2f MB from the first sample to the last"):format(flat) or "")
-- the path's table: attach and detach against the default set's, the
-- reader's CPU against cat's of the same events
if #pathrows > 0 or pathrows.failed then
  t[#t + 1] = ""
  t[#t + 1] = ("`dropprobe path` (`bench/vmpath.lua`) in a guest (qemu TCG: seconds compare with each other "
    .. "only), --port 9 --proto udp:")
  if pathrows.failed then t[#t + 1] = "*the guest reported nothing: " .. pathrows.failed .. "*" end
  local base, cat_cpu, release
  for _, r in ipairs(pathrows) do
    release = release or r.release
    if r.row == "attach" and r.set == "default" then base = r end
    if r.row == "follow" and r.reader == "cat" then cat_cpu = r.cpu end
  end
  t[#t + 1] = ""
  t[#t + 1] = ("| function set (Debian's %s) | probes | open (armed) | close | open vs default | close vs default "
    .. "| dynamic_events as before |"):format(release or "?")
  t[#t + 1] = "|---|---:|---:|---:|---:|---:|---|"
  for _, r in ipairs(pathrows) do
    if r.row == "attach" then
      t[#t + 1] = ("| %s | %d | %.1f s | %.1f s | %s | %s | %s |"):format(
        r.set == "regex" and ("`--functions '%s'`"):format(r.functions:gsub("|", "\\|")) or
        ("`--functions %s`"):format(r.set), math.tointeger(r.probes) or 0, r.open, r.close,
        base and ("%.2f"):format(r.open / base.open) or "-", base and ("%.2f"):format(r.close / base.close) or "-",
        r.clean and "yes" or "**NO**")
    end
  end
  t[#t + 1] = ""
  local rate
  for _, r in ipairs(pathrows) do rate = rate or r.rate end
  t[#t + 1] = ("| reader of %d datagrams to a closed port, %s a second | probes | kernel counted | events "
    .. "| paths | lost | CPU s | CPU vs cat |"):format(PATH_COUNT, tostring(math.tointeger(rate) or rate))
  t[#t + 1] = "|---|---:|---:|---:|---:|---:|---:|---:|"
  for _, r in ipairs(pathrows) do
    if r.row == "follow" then
      t[#t + 1] = ("| %s | %d | %d | %s | %s | %d | %.2f | %s |"):format(
        r.reader == "cat" and "`cat trace_pipe` of the path's probes and tracepoints" or
        "`dp.path`, following each skb in C", math.tointeger(r.probes) or 0, math.tointeger(r.kernel) or 0,
        r.events and tostring(math.tointeger(r.events)) or tostring(math.tointeger(r.steps) or "-") .. " steps",
        r.paths and tostring(math.tointeger(r.paths)) or "-", math.tointeger(r.lost) or 0, r.cpu,
        cat_cpu and cat_cpu > 0 and ("**%.2f**"):format(r.cpu / cat_cpu) or "-")
      if r.reader == "path" and (r.paths ~= r.kernel or (r.lost or 0) > 0) then
        mismatches = mismatches + 1
        t[#t + 1] = ("| **NO: the paths are not the kernel's count: %s of %s, %s lost** | | | | | | | |"):format(
          tostring(r.paths), tostring(r.kernel), tostring(r.lost))
      end
    end
  end
end
local text = table.concat(t, "\n") .. "\n"
io.write(text)
local f = io.open(OUT, "wb")
if f then f:write(text) f:close() end
if mismatches > 0 then io.stderr:write(("bench: %d rows do not add up (marked NO)\n"):format(mismatches)) end
