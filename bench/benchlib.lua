-- What the bench scripts share (bench/run.lua on the host, bench/vmcount.lua
-- and bench/vmpath.lua in a guest): the kernel's count of a flood, a
-- process's CPU, an instance's ring-buffer totals, cat as the reader to
-- beat, a flood started once a reader is armed, a result line.
local M = {}

--- A file's whole text, or nil (dropprobe.util's).
M.slurp = require("dropprobe.util").readfile

--- Udp NoPorts (/proc/net/snmp, read by the specs' helpers.snmp): one per
-- datagram to a closed port.
function M.noports() return require("helpers.snmp").read()["Udp.NoPorts"] end

--- The running kernel's release (uname -r).
function M.release()
  local p = io.popen("uname -r")
  local r = p:read("l")
  p:close()
  return r
end

--- One result line for bench/run.lua: "TAG <json>", with the release.
function M.report(tag, t)
  t.release = t.release or M.release()
  io.write(tag, " ", require("cjson").encode(t), "\n")
  io.flush()
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

--- `cat trace_pipe` of an instance through a flood (a shell command run
-- to its end): { kernel = NoPorts delta, events = read, lost, cpu = cat's
-- CPU seconds from the flood's start until the buffers are empty }.
function M.cat_reader(inst, flood, timeout)
  local dp = require "dropprobe"
  local socket = require "socket"
  local pidfile = os.tmpname()
  assert(os.execute(("cat %s/trace_pipe > /dev/null & echo $! > %s"):format(inst:dir(), pidfile)))
  local pid = tonumber(M.slurp(pidfile))
  os.remove(pidfile)
  socket.sleep(0.5)
  local c0, n0 = M.cpu_of(pid), M.noports()
  assert(os.execute(flood), "flood failed")
  local kernel = M.noports() - n0
  local deadline = dp.now() + (timeout or 600)
  while select(3, M.totals(inst)) > 0 and dp.now() < deadline do socket.sleep(0.2) end
  socket.sleep(0.5)
  local cpu = M.cpu_of(pid) - c0
  os.execute("kill " .. pid)
  local read, lost = M.totals(inst)
  return { kernel = kernel, events = read, lost = lost, cpu = cpu }
end

--- A flood (a shell command) to start once a reader is armed: returns
-- start() and wait(), which returns when the flood has ended.
function M.flood_when_ready(flood)
  local socket = require "socket"
  local done = os.tmpname()
  return function()
    assert(os.execute(("(%s; echo done > %s) &"):format(flood, done)))
  end, function()
    while M.slurp(done) == "" do socket.sleep(0.1) end
    os.remove(done)
  end
end

return M
