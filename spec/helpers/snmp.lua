-- The kernel's own counters: /proc/net/snmp and /proc/net/snmp6.
local snmp = {}

--- The counters of a /proc/net/snmp text (a namespace's too, read with
-- `ip netns exec`): { ["Udp.NoPorts"] = n, ... }
function snmp.parse(text)
  local t = {}
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  for i = 1, #lines - 1, 2 do
    local proto, names = lines[i]:match("^(%w+):%s*(.*)$")
    local _, values = lines[i + 1]:match("^(%w+):%s*(.*)$")
    if proto and values then
      local vs = {}
      for v in values:gmatch("%S+") do vs[#vs + 1] = tonumber(v) end
      local k = 0
      for name in names:gmatch("%S+") do
        k = k + 1
        t[proto .. "." .. name] = vs[k]
      end
    end
  end
  return t
end

--- All counters as { ["Udp.NoPorts"] = n, ["Udp6NoPorts"] = n, ... }
function snmp.read()
  local f = assert(io.open("/proc/net/snmp"))
  local t = snmp.parse(f:read("a"))
  f:close()
  local f6 = io.open("/proc/net/snmp6")
  if f6 then
    for l in f6:lines() do
      local name, v = l:match("^(%S+)%s+(%d+)")
      if name then t[name] = tonumber(v) end
    end
    f6:close()
  end
  return t
end

--- Difference of two readings for one counter.
function snmp.delta(before, after, key)
  return (after[key] or 0) - (before[key] or 0)
end

--- The counter's growth since `before`, once it has reached `want` (or
-- after `timeout` seconds, 3 by default): a loaded guest may leave the
-- loopback's packets to ksoftirqd, counted a moment after the send.
function snmp.settled(before, key, want, timeout)
  local socket = require "socket"
  local deadline = socket.gettime() + (timeout or 3)
  local d = snmp.delta(before, snmp.read(), key)
  while d < want and socket.gettime() < deadline do
    socket.sleep(0.05)
    d = snmp.delta(before, snmp.read(), key)
  end
  return d
end

--- The datagrams the CPUs' backlogs dropped so far (the second column of
-- /proc/net/softnet_stat, summed over the CPUs): a loopback storm under
-- load fills a backlog (netdev_max_backlog) before UDP sees the datagram.
function snmp.backlog_drops()
  local n = 0
  local f = io.open("/proc/net/softnet_stat")
  if not f then return 0 end
  for line in f:lines() do
    local dropped = line:match("^%x+%s+(%x+)")
    if dropped then n = n + tonumber(dropped, 16) end
  end
  f:close()
  return n
end

--- The packets waiting in the CPUs' backlogs now (the twelfth column of
-- /proc/net/softnet_stat, summed: input and process queues), or nil where
-- the kernel does not show it.
function snmp.backlog_queued()
  local f = io.open("/proc/net/softnet_stat")
  if not f then return nil end
  local n
  for line in f:lines() do
    local cols = {}
    for c in line:gmatch("%x+") do cols[#cols + 1] = c end
    if #cols >= 13 then n = (n or 0) + tonumber(cols[12], 16) end
  end
  f:close()
  return n
end

--- Where the kernel put `sent` datagrams to a closed port since `before`
-- (snmp.read()) and `backlog_before` (snmp.backlog_drops()), once it has
-- accounted for all of them (or after `timeout` seconds, 10 by default):
-- Udp NoPorts (or the counter `key`, "Udp6NoPorts" for IPv6) and the
-- backlogs' drops, each a delta.
-- @treturn integer noports, integer backlog
function snmp.udp_accounted(before, backlog_before, sent, timeout, key)
  local socket = require "socket"
  local deadline = socket.gettime() + (timeout or 10)
  local function now()
    return snmp.delta(before, snmp.read(), key or "Udp.NoPorts"), snmp.backlog_drops() - backlog_before
  end
  local noports, backlog = now()
  while noports + backlog < sent and socket.gettime() < deadline do
    socket.sleep(0.05)
    noports, backlog = now()
  end
  return noports, backlog
end

return snmp
