-- Run inside a stock kernel by `make bench` (tools/vmtest): the same flood
-- counted by dp.hist in the kernel (hist triggers) and in C, one after the
-- other; prints "VMCOUNT <json>" per place. Timings under the emulator are
-- not comparable with the host's: only counts and loss are reported.
--   tools/vmtest 6.12 lua5.4 bench/vmcount.lua [count]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local dp = require "dropprobe"
local cjson = require "cjson"
local COUNT = tonumber(arg[1]) or 100000

local function noports()
  local s = io.open("/proc/net/snmp"):read("a")
  local names, values = s:match("\nUdp: ([^\n]+)\nUdp: ([^\n]+)")
  local vs, k = {}, 0
  for v in values:gmatch("%S+") do vs[#vs + 1] = tonumber(v) end
  for name in names:gmatch("%S+") do
    k = k + 1
    if name == "NoPorts" then return vs[k] end
  end
end

for _, where in ipairs({ "kernel", "c" }) do
  local h <close> = dp.hist{ keys = { "reason", "location.sym" }, condition = "reason == NO_SOCKET",
    where = where }
  local before = noports()
  assert(os.execute(("build/flood %d 9 > /dev/null"):format(COUNT)), "flood failed")
  local kernel = noports() - before
  h:run{ idle = 1 }
  local r = h:read()
  io.write("VMCOUNT ", cjson.encode({ where = r.where, kernel = kernel, got = r.hits,
    lost = r.lost + r.dropped, release = io.popen("uname -r"):read("l") }), "\n")
  io.flush()
end
