-- The seed's hard way: a kprobe that reads the drop reason straight from
-- the registers of the kernel function that frees the packet,
--   echo 'p:my_skb_probe kfree_skb_reason skb=%di:u64 reason=%si:u64' > kprobe_events
--   echo "reason > 2" > events/kprobes/my_skb_probe/filter
--   echo 'stacktrace if reason > 2' > events/kprobes/my_skb_probe/trigger
-- built for the kernel it runs on:
--   6.11+     sk_skb_reason_drop(sk, skb, reason)  reason in argument 3 (%dx)
--   5.17-6.10 kfree_skb_reason(skb, reason)        reason in argument 2 (%si)
--   older     kfree_skb(skb)                       no reason at all
-- The condition is made of this kernel's reason names, and the probe's
-- reason number is named like the tracepoint's (the seed looked "reason=2"
-- up by hand). Where the kernel has no kprobe events (CONFIG_KPROBE_EVENTS
-- off, as on locked-down hosts) it says so and takes the skb:kfree_skb
-- tracepoint instead.
--   sudo lua5.4 examples/kprobe-reason.lua [text|raw]
local dp = require "dropprobe"
local socket = require "socket"

local mode = arg[1] or "text"
local hook = dp.drop_hook()
print(("drops are freed by %s (skb is argument %d%s)"):format(hook.func, hook.skb_arg,
  hook.reason_arg and (", reason argument " .. hook.reason_arg) or ", no reason"))

-- the seed's registers, for this architecture and this hook
local args = { ("skb=%s:u64"):format(dp.arg(hook.skb_arg)) }
if hook.reason_arg then args[2] = ("reason=%s:u64"):format(dp.arg(hook.reason_arg)) end
local kp <close> = dp.kprobe{ name = "my_skb_probe", at = hook.func, args = args }
print("the probe line: " .. kp:definition())

local inst <close> = dp.instance()
local ev
if dp.features().kprobes then
  ev = inst:event(kp)
else
  print("this kernel has no kprobe events (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS): "
    .. "using the skb:kfree_skb tracepoint instead")
  ev = inst:event("skb:kfree_skb")
end
local cond = (hook.reason_arg or hook.tracepoint_reason) and dp.drop_condition() or nil
ev:filter(cond)
ev:trigger(dp.trigger_if("stacktrace", cond))
ev:enable()
print(ev)

-- one TCP connect to a closed port on loopback: the SYN is dropped
local s = socket.tcp4()
s:settimeout(1)
s:connect("127.0.0.1", 9)
s:close()

-- the first drop placed after the connect is its SYN (told by when; the
-- stack then says where: tcp_v4_rcv, TCP's receive function)
for rec in inst:records{ mode = mode, timeout = 2 } do
  if rec.stack and dp.where(rec) then
    print(rec)
    print(("reason %s, skb %s"):format(dp.reason_label(rec.fields.reason),
      tostring(rec.fields.skb or rec.fields.skbaddr)))
    break
  end
end
