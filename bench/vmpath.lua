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
package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local dp = require "dropprobe"
local path = require "dropprobe.recipes.path"
local common = require "benchlib"
local COUNT = tonumber(arg[1]) or 20000
local SETS = arg[2] or "default,regex,all"
local RATE = tonumber(arg[3]) or 400
local REGEX = "^(ip|udp|tcp)_"
local RELEASE = common.release()
local function out(t)
  t.release = RELEASE
  common.report("VMPATH", t)
end

if not dp.features().kprobes then
  out{ skipped = "this kernel has no kprobe events" }
  os.exit(0)
end

local readfile, noports = common.slurp, common.noports

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

local FLOOD = ("build/flood %d 9 %d > /dev/null"):format(COUNT, RATE)

-- cat: the path's own instance (its probes and tracepoints), its reader
-- closed, read as text by cat through the same flood
do
  local pth <close> = path.open{ port = 9, proto = "udp", buffer_kb = 65536 }
  pth.pipe:close()
  local r = common.cat_reader(pth.inst, FLOOD, 900)
  out{ row = "follow", reader = "cat", kernel = r.kernel, events = r.events, lost = r.lost, cpu = r.cpu,
    probes = #pth.functions, rate = RATE }
end

-- dp.path following the same flood: the paths made in C, one per datagram
do
  local start, wait = common.flood_when_ready(FLOOD)
  local n0, c0
  local got, cut = 0, 0
  local r = path.run({ port = 9, proto = "udp", buffer_kb = 65536, idle = 10, ready = function()
    n0, c0 = noports(), os.clock()
    start()
  end }, function(p)
    if p.drop then got = got + 1 end
    if p.steps_cut then cut = cut + 1 end
  end)
  local cpu = os.clock() - c0
  wait()
  out{ row = "follow", reader = "path", kernel = noports() - n0, got = got, paths = r.paths, steps = r.steps,
    lost = r.lost, evicted = r.evicted, cut = cut, cpu = cpu, probes = #r.functions, rate = RATE }
end
