-- What the bench scripts share (bench/run.lua on the host, bench/vmcount.lua
-- and bench/vmpath.lua in a guest): the kernel's count of a flood, a
-- process's CPU, an instance's ring-buffer totals.
local M = {}

--- A file's whole text, or nil (dropprobe.util's).
M.slurp = require("dropprobe.util").readfile

--- Udp NoPorts (/proc/net/snmp): one per datagram to a closed port.
function M.noports()
  local names, values = M.slurp("/proc/net/snmp"):match("\nUdp: ([^\n]+)\nUdp: ([^\n]+)")
  local vs, k = {}, 0
  for v in values:gmatch("%S+") do vs[#vs + 1] = tonumber(v) end
  for name in names:gmatch("%S+") do
    k = k + 1
    if name == "NoPorts" then return vs[k] end
  end
end

--- CPU seconds (user + sys) process pid has used so far, or nil.
function M.cpu_of(pid)
  local s = M.slurp(("/proc/%d/stat"):format(pid))
  if not s then return nil end
  local fields = {}
  for v in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = v end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime, stime (USER_HZ)
end

--- An instance's events over its CPUs (per_cpu/cpuN/stats): read, lost
-- (overrun and dropped), and entries still in the buffers.
function M.totals(inst)
  local read, lost, left = 0, 0, 0
  for cpu = 0, 255 do
    local s = inst:read_file(("per_cpu/cpu%d/stats"):format(cpu))
    if not s then break end
    read = read + tonumber(s:match("read events:%s*(%d+)"))
    left = left + tonumber(s:match("entries:%s*(%d+)"))
    lost = lost + tonumber(s:match("\noverrun:%s*(%d+)")) + tonumber(s:match("dropped events:%s*(%d+)"))
  end
  return read, lost, left
end

return M
