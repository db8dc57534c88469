-- The kernel's own counters: /proc/net/snmp and /proc/net/snmp6.
local snmp = {}

--- All counters as { ["Udp.NoPorts"] = n, ["Udp6NoPorts"] = n, ... }
function snmp.read()
  local t = {}
  local f = assert(io.open("/proc/net/snmp"))
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
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

return snmp
