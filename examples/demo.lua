-- The demo: make one TCP and one UDP drop on loopback and show each as
-- dropprobe finds it, with its reason and the kernel stack that dropped it.
-- Leaves nothing behind in tracefs. Run as root: sudo make demo
local dp = require "dropprobe"
local socket = require "socket"

local mode = arg[1] or "text"
print(("dropprobe demo: tracefs at %s, %s mode"):format(dp.tracefs(), mode))

local inst <close> = dp.instance{ buffer_kb = dp.DEFAULTS.buffer_kb }
local ev = inst:event("skb:kfree_skb")
-- every drop: all reasons but the non-drops this kernel has, by name (the
-- numbers differ between kernels: NO_SOCKET is 2 on 6.1 and 3 on 6.12)
local cond = dp.drop_condition()
ev:filter(cond)
ev:trigger(dp.trigger_if("stacktrace", cond))   -- a stack for each of them
ev:enable()
local pipe <close> = inst:pipe{ mode = mode }

-- a TCP connect to closed port 9 and a UDP datagram to a closed port
local t = socket.tcp4()
t:settimeout(1)
t:connect("127.0.0.1", 9)
t:close()
local u = socket.udp4()
u:setsockname("127.0.0.1", 0)
local _, sport = u:getsockname()
u:sendto("dropprobe demo", "127.0.0.1", 9)
u:close()

local want = { tcp = "^tcp_v4_rcv", udp = "^__udp4_lib_rcv" }
local found = {}
while not (found.tcp and found.udp) do
  local rec = pipe:read(2)
  if not rec then break end
  for proto, pat in pairs(want) do
    local at = dp.where(rec) or ""  -- location, or the stack where text mode hides it
    if not found[proto] and at:find(pat) then
      found[proto] = rec
      print(("\n%s drop found: reason %s at %s"):format(proto:upper(), rec.fields.reason, at))
      print(rec)
    end
  end
end
local stats = pipe:stats()
print(("\nrecords read: %d, lost: %d (udp source port was %s)"):format(stats.read, stats.lost, sport))
if not (found.tcp and found.udp) then
  io.stderr:write("demo: a drop was not found\n")
  os.exit(1, true)
end
