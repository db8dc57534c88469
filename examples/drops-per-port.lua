-- Which ports are losing packets, and why: each drop joined to the
-- tcp_send_reset / icmp_send / udp_fail_queue_rcv_skb event that names its
-- port; what no event explains is counted per reason, never left out.
--   sudo lua5.4 examples/drops-per-port.lua [seconds]
local dp = require "dropprobe"
local ports = require "dropprobe.recipes.ports"

local seconds = tonumber(arg[1]) or 10
print(("counting drops per port for %g s ..."):format(seconds))

local report = ports.run{ duration = seconds }
io.write(ports.format(report))

-- one port's story, as a script would ask for it (reasons by name; "-"
-- on a kernel without drop reasons)
local n = ports.count(report, "udp", 9999, dp.has_reasons() and "NO_SOCKET" or dp.NO_REASON)
if n > 0 then print(("udp port 9999 lost %d datagrams: nothing listens there"):format(n)) end
