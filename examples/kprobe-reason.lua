-- The seed's hard way: a kprobe that reads the drop reason straight from
-- the arguments of the kernel function that frees the packet, on any kernel:
--   6.11+     sk_skb_reason_drop(sk, skb, reason)  reason is argument 3
--   5.17-6.10 kfree_skb_reason(skb, reason)        reason is argument 2
--   older     kfree_skb(skb)                       no reason at all
-- Where the kernel has no kprobe events (CONFIG_KPROBE_EVENTS off, as on
-- locked-down hosts) it says so and takes the skb:kfree_skb tracepoint instead.
-- Run as root: lua5.4 examples/kprobe-reason.lua
local dp = require "dropprobe"
local socket = require "socket"

local hook = dp.drop_hook()
print(("drops are freed by %s (skb is argument %d%s)"):format(hook.func, hook.skb_arg,
  hook.reason_arg and (", reason argument " .. hook.reason_arg) or ", no reason"))

local args = { ("skb=$arg%d:x64"):format(hook.skb_arg) }
if hook.reason_arg then args[2] = ("reason=$arg%d:u64"):format(hook.reason_arg) end
local kp <close> = dp.kprobe{ name = "drop_reason", at = hook.func, args = args }
print("the probe line: " .. kp:definition())
print(("on %s that is register %s for the reason"):format(
  io.popen("uname -m"):read("l"), hook.reason_arg and dp.arg(hook.reason_arg) or "-"))

local inst <close> = dp.instance()
local ev
if dp.features().kprobes then
  ev = inst:event(kp)
else
  print("this kernel has no kprobe events (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS): "
    .. "using the skb:kfree_skb tracepoint instead")
  ev = inst:event("skb:kfree_skb")
end
if hook.reason_arg or hook.tracepoint_reason then
  ev:filter("reason > 2")
  ev:trigger("stacktrace if reason > 2")
else
  ev:trigger("stacktrace")
end
ev:enable()

local s = socket.tcp4()
s:settimeout(1)
s:connect("127.0.0.1", 9)
s:close()

local reasons = dp.reasons()
for rec in inst:records{ timeout = 1, limit = 1 } do
  local r = rec.fields.reason
  print(rec)
  print(("reason %s%s"):format(tostring(r), math.type(r) and reasons[r] and (" = " .. reasons[r]) or ""))
end
