-- The seed walkthrough's tracepoint steps, as a script:
--   echo 1 > events/skb/kfree_skb/enable
--   echo "reason > 2" > events/skb/kfree_skb/filter
--   echo 'stacktrace if reason > 2' > events/skb/kfree_skb/trigger
--   cat trace_pipe
-- in a private instance that is gone again when the script ends. The seed's
-- "reason > 2" belongs to the kernel it was written on (on 6.1, NO_SOCKET
-- is 2 and would be left out): the condition here is made of this kernel's
-- names, every drop but the non-drops (NOT_DROPPED_YET, CONSUMED).
-- Run as root: lua5.4 examples/seed-walkthrough.lua
local dp = require "dropprobe"
local socket = require "socket"

local inst <close> = dp.instance{ buffer_kb = dp.DEFAULTS.buffer_kb }
local ev = inst:event("skb:kfree_skb")
local cond = dp.drop_condition()
ev:filter(cond)
ev:trigger(dp.trigger_if("stacktrace", cond))
ev:enable()
print(inst)
print(ev)

-- one TCP connect to a closed port on loopback: the SYN is dropped
local s = socket.tcp4()
s:settimeout(1)
print("connect 127.0.0.1:9 ->", select(2, s:connect("127.0.0.1", 9)))
s:close()

-- the first IPv4 drop after the connect is its SYN (told by when, not by
-- the name of a function an inliner may remove)
for rec in inst:records{ timeout = 1 } do
  -- dp.where: the location the kernel printed, or the stack's frame where
  -- it printed only a hashed pointer (text mode before 6.12)
  local at = dp.where(rec)
  if rec.fields.protocol == 2048 and at then
    print(rec)
    print(string.format("reason %s, dropped in %s", dp.reason_label(rec.fields.reason), at))
    break
  end
end
