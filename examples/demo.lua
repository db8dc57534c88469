-- The demo: make one TCP and one UDP drop on loopback and show each as
-- dropprobe finds it, with its reason (where the kernel has drop reasons)
-- and the kernel stack that dropped it. Leaves nothing behind in tracefs.
-- Run as root: sudo make demo
local dp = require "dropprobe"
local socket = require "socket"

local mode = arg[1] or "text"
print(("dropprobe demo: tracefs at %s, %s mode"):format(dp.tracefs(), mode))

local inst <close> = dp.instance{ buffer_kb = dp.DEFAULTS.buffer_kb }
local ev = inst:event("skb:kfree_skb")
-- every drop: all reasons but the non-drops this kernel has, by name (the
-- numbers differ between kernels: NO_SOCKET is 2 on 6.1 and 3 on 6.12);
-- nil, every kfree_skb, on a kernel without drop reasons
local cond = dp.drop_condition()
ev:filter(cond)
ev:trigger(dp.trigger_if("stacktrace", cond))   -- a stack for each of them
ev:enable()
local pipe <close> = inst:pipe{ mode = mode }
if not dp.has_reasons() then
  print("this kernel's drops carry no reason (skb:kfree_skb has none before 5.17): every kfree_skb is a drop")
end

-- Which drop is which is told by when it happened, not by the name of the
-- function that dropped it (an inliner may remove that one): each packet is
-- sent alone, and the first IPv4 drop read after it is its drop; the place
-- and the stack are then what this kernel says.
local mypid = tonumber(io.open("/proc/self/stat"):read("l"):match("^(%d+)"))
local found, read = {}, 0
local function drop_after(proto, send)
  send()
  local mine, other
  while true do
    local rec = pipe:read(0.5)
    if not rec then break end
    read = read + 1
    if rec.fields.protocol == 2048 and dp.where(rec) then -- IPv4, and placed
      if rec.pid == mypid then mine = mine or rec else other = other or rec end
    end
  end
  local rec = mine or other
  if rec then
    found[proto] = rec
    print(("\n%s drop found: reason %s at %s"):format(proto:upper(), dp.reason_label(rec.fields.reason),
      dp.where(rec)))
    print(rec)
  end
end

-- a TCP connect to closed port 9: the SYN is dropped
drop_after("tcp", function()
  local t = socket.tcp4()
  t:settimeout(1)
  t:connect("127.0.0.1", 9)
  t:close()
end)
-- a UDP datagram to a closed port
local sport
drop_after("udp", function()
  local u = socket.udp4()
  u:setsockname("127.0.0.1", 0)
  sport = select(2, u:getsockname())
  u:sendto("dropprobe demo", "127.0.0.1", 9)
  u:close()
end)

local stats = pipe:stats()
print(("\nrecords read: %d, lost: %d (udp source port was %s)"):format(stats.read, stats.lost, sport))
if not (found.tcp and found.udp) then
  io.stderr:write("demo: a drop was not found\n")
  os.exit(1, true)
end
