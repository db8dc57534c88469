-- Run inside a stock kernel with kprobes by `make bench` (tools/vmtest):
-- what `dropprobe path` costs. Prints "VMPATH <json>" per row:
--   * placing and removing the probes of a function set (the default set,
--     a regular expression, every function that takes an skb), nothing
--     sent: seconds in the guest (comparable with each other only), the
--     probes made, and whether dynamic_events is as before afterwards;
--   * following a flood of COUNT datagrams to a closed port (one path
--     each) against `cat trace_pipe` of the same events (the same probes
--     and tracepoints in an instance of their own): the reader's CPU
--     seconds while the flood ran, paths got against Udp NoPorts, lost.
--   tools/vmtest 6.12 lua5.4 bench/vmpath.lua [count] [sets] [rate]
-- sets: "default,regex,all" (the default), any of them comma separated, or
-- "-" for none; rate: datagrams a second (default 400: under an emulator
-- neither reader keeps up with a flood at full speed, and a reader that
-- loses events is not measured on the same work).
package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local dp = require "dropprobe"
local path = require "dropprobe.recipes.path"
local cjson = require "cjson"
local socket = require "socket"
local common = require "benchlib"
local COUNT = tonumber(arg[1]) or 20000
local SETS = arg[2] or "default,regex,all"
local RATE = tonumber(arg[3]) or 400
local REGEX = "^(ip|udp|tcp)_"
local RELEASE = io.popen("uname -r"):read("l")

if not dp.features().kprobes then
  io.write("VMPATH ", cjson.encode({ skipped = "this kernel has no kprobe events", release = RELEASE }), "\n")
  os.exit(0)
end

local function out(t)
  t.release = RELEASE
  io.write("VMPATH ", cjson.encode(t), "\n")
  io.flush()
end

local readfile, noports, cpu_of = common.slurp, common.noports, common.cpu_of

local DYN = dp.tracefs() .. "/dynamic_events"

-- placing and removing one set's probes
for set in SETS:gmatch("[^,-]+") do
  local functions = set == "regex" and REGEX or set
  local before = readfile(DYN)
  local t0 = dp.now()
  local pth = path.open{ functions = functions, port = 9, proto = "udp" }
  local armed = dp.now() - t0
  local probes = #pth.functions
  local t1 = dp.now()
  pth:close()
  local removed = dp.now() - t1
  out{ row = "attach", set = set, functions = functions, probes = probes, open = armed, close = removed,
    clean = readfile(DYN) == before }
end

local totals = common.totals

local FLOOD = ("build/flood %d 9 %d > /dev/null"):format(COUNT, RATE)

-- cat: the path's own instance (its probes and tracepoints), its reader
-- closed, read as text by cat through the same flood
do
  local pth <close> = path.open{ port = 9, proto = "udp", buffer_kb = 65536 }
  pth.pipe:close()
  local pidfile = os.tmpname()
  assert(os.execute(("cat %s/trace_pipe > /dev/null & echo $! > %s"):format(pth.inst:dir(), pidfile)))
  local pid = tonumber(readfile(pidfile))
  os.remove(pidfile)
  socket.sleep(0.5)
  local c0 = cpu_of(pid)
  local n0 = noports()
  assert(os.execute(FLOOD), "flood failed")
  local kernel = noports() - n0
  local deadline = dp.now() + 900
  while select(3, totals(pth.inst)) > 0 and dp.now() < deadline do socket.sleep(0.2) end
  socket.sleep(0.5)
  local cpu = cpu_of(pid) - c0
  os.execute("kill " .. pid)
  local read, lost = totals(pth.inst)
  out{ row = "follow", reader = "cat", kernel = kernel, events = read, lost = lost, cpu = cpu,
    probes = #pth.functions, rate = RATE }
end

-- dp.path following the same flood: the paths made in C, one per datagram
do
  local done = os.tmpname()
  local n0, c0
  local got, cut = 0, 0
  local r = path.run({ port = 9, proto = "udp", buffer_kb = 65536, idle = 10, ready = function()
    n0, c0 = noports(), os.clock()
    assert(os.execute(("(%s; echo done > %s) &"):format(FLOOD, done)))
  end }, function(p)
    if p.drop then got = got + 1 end
    if p.steps_cut then cut = cut + 1 end
  end)
  local cpu = os.clock() - c0
  while readfile(done) == "" do socket.sleep(0.1) end
  os.remove(done)
  out{ row = "follow", reader = "path", kernel = noports() - n0, got = got, paths = r.paths, steps = r.steps,
    lost = r.lost, evicted = r.evicted, cut = cut, cpu = cpu, probes = #r.functions, rate = RATE }
end
