-- Run inside a stock kernel by `make bench` (tools/vmtest): the same flood
-- counted by dp.hist in the kernel (hist triggers) and in C, one after the
-- other; prints "VMCOUNT <json>" per place. Timings under the emulator are
-- not comparable with the host's: only counts and loss are reported.
--   tools/vmtest 6.12 lua5.4 bench/vmcount.lua [count]
package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local dp = require "dropprobe"
local COUNT = tonumber(arg[1]) or 100000

local common = require "benchlib"
local noports = common.noports

for _, where in ipairs({ "kernel", "c" }) do
  local h <close> = dp.hist{ keys = { "reason", "location.sym" }, condition = "reason == NO_SOCKET",
    where = where }
  local before = noports()
  assert(os.execute(("build/flood %d 9 > /dev/null"):format(COUNT)), "flood failed")
  local kernel = noports() - before
  h:run{ idle = 1 }
  local r = h:read()
  common.report("VMCOUNT", { where = r.where, kernel = kernel, got = r.hits, lost = r.lost + r.dropped })
end

-- Per port, where the kernel has kprobes: the `ports` recipe counting in C
-- (the drop probe's packet decoded in the counter, no record per drop)
-- against `cat trace_pipe` of the same drop probe's events, each through
-- its own flood of PORTS_COUNT datagrams to a closed port. Prints
-- "VMPORTS <json>" per reader: counts, lost, CPU seconds in the guest
-- (comparable with each other, not with the host's).
--   tools/vmtest 6.12 lua5.4 bench/vmcount.lua [count] [ports_count]
local PORTS_COUNT = tonumber(arg[2]) or 300000
local function vmports(t) common.report("VMPORTS", t) end

-- the flood of a row: one sender, or `senders` pinned one to a CPU, each
-- sending PORTS_COUNT datagrams to port 9
local function flood_cmd(senders)
  if senders == 1 then return ("build/flood %d 9 > /dev/null"):format(PORTS_COUNT) end
  return ("build/flood -s %d %d 9 > /dev/null"):format(senders, PORTS_COUNT)
end

-- cat: the drop probe's events in an instance of our own, read as text,
-- with a buffer big enough that cat loses nothing either (its CPU is then
-- for every event, as the counters' is)
local function cat_row(senders)
  local inst <close> = dp.instance{ buffer_kb = 65536 }
  local ev = inst:event(require("dropprobe.kprobe").packet_probe())
  ev:filter("skb != 0 && reason == NO_SOCKET")
  ev:enable()
  local r = common.cat_reader(inst, flood_cmd(senders))
  vmports{ reader = "cat", senders = senders, kernel = r.kernel, got = r.events, lost = r.lost, cpu = r.cpu }
end

local function flood_when_ready(senders) return common.flood_when_ready(flood_cmd(senders)) end

-- ports, counting in C: this process's CPU for the whole run (startup,
-- BTF, the instance and probe, reading, the report)
local function ports_row(senders)
  local ports = require "dropprobe.recipes.ports"
  local start, wait = flood_when_ready(senders)
  local before = noports()
  local c0 = os.clock()
  local r = ports.run{ filter = "reason == NO_SOCKET", idle = 5, ready = start }
  local cpu = os.clock() - c0
  wait()
  local kernel = noports() - before
  vmports{ reader = "ports", senders = senders, counted = r.counted, kernel = kernel,
    got = ports.count(r, "udp", 9, "NO_SOCKET"), lost = r.lost + (r.dropped or 0), cpu = cpu }
end

-- the exporter with its per-port series (and the drops by reason and
-- location), a textfile every second, through the flood
local function exporter_row(senders)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local start, wait = flood_when_ready(senders)
  local before = noports()
  local c0 = os.clock()
  require("dropprobe.exporter").run{ textfile = dir, interval = 1, idle = 5, ready = start }
  local cpu = os.clock() - c0
  wait()
  local kernel = noports() - before
  local text = io.open(dir .. "/dropprobe.prom"):read("a")
  os.execute("rm -rf " .. dir)
  local got = tonumber(text:match('dropprobe_port_drops_total{proto="udp",port="9",reason="NO_SOCKET"} (%d+)')
    or text:match('dropprobe_port_drops_total{proto="udp",port="9"} (%d+)')) or 0
  vmports{ reader = "exporter", senders = senders, kernel = kernel, got = got,
    lost = tonumber(text:match("dropprobe_events_lost_total (%d+)")), cpu = cpu }
end

if dp.features().kprobes then
  for _, senders in ipairs({ 1, 2 }) do
    cat_row(senders)
    ports_row(senders)
    exporter_row(senders)
  end
end
