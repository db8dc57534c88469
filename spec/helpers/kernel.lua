-- What the running kernel says about itself, for expectations that must
-- hold on every kernel (5.10 to the newest): reasons by name where it has
-- drop reasons, function names only after its own kallsyms has them, and
-- what its tracepoints cover, probed live once per process. Never a
-- version number, never a reason number, never a function name taken on
-- trust: an inliner removes functions (`__udp4_lib_rcv` is gone on 7.2),
-- and reason numbers move (NO_SOCKET is 2 on 6.1, 3 on 6.12).
local dp = require "dropprobe"
local K = {}

--- A reason as a record carries it: the name where the kernel has drop
-- reasons (and that name), nil where it has none.
function K.reason(name)
  if not dp.has_reasons() then return nil end
  assert(dp.reasons()[name], "this kernel has no drop reason " .. name)
  return name
end

--- A reason as reports show it: the name, or "-" without drop reasons.
function K.label(name)
  return dp.reason_label(K.reason(name))
end

--- A condition: the parts that name a reason only where the kernel has
-- drop reasons (without them every kfree_skb is a drop), joined with &&;
-- nil when nothing is left. K.cond("reason == NO_SOCKET", "protocol == 2048")
function K.cond(reason_part, ...)
  local parts = {}
  if reason_part and dp.has_reasons() then parts[1] = reason_part end
  for _, p in ipairs({ ... }) do parts[#parts + 1] = p end
  return #parts > 0 and table.concat(parts, " && ") or nil
end

-- /proc/kallsyms' text symbols: name -> true, and sorted addresses
local names, addrs
local function load()
  if names then return end
  names, addrs = {}, {}
  local f = assert(io.open("/proc/kallsyms"))
  for line in f:lines() do
    local a, kind, name = line:match("^(%x+) (%a) (%S+)")
    if kind == "T" or kind == "t" then
      names[name] = true
      addrs[#addrs + 1] = { tonumber(a:sub(-12), 16), name } -- the low 48 bits order them
    end
  end
  f:close()
  table.sort(addrs, function(x, y) return x[1] < y[1] end)
end

--- Whether the running kernel has this function (a text symbol in kallsyms).
function K.has(name)
  load()
  return names[name] == true
end

--- The function of a frame or location ("tcp_v4_rcv+0x99/0x1400" gives
-- "tcp_v4_rcv"), asserted to be a function of the running kernel.
function K.func(frame)
  local name = tostring(frame):match("^([^+%s]+)")
  assert(name and K.has(name), ("%s is not a function of this kernel's kallsyms"):format(tostring(frame)))
  return name
end

--- The function kallsyms places an address in (16 hex digits), or nil.
function K.at(hex)
  load()
  local a = tonumber(tostring(hex):sub(-12), 16)
  if not a then return nil end
  local lo, hi = 1, #addrs
  if hi == 0 or a < addrs[1][1] then return nil end
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if addrs[mid][1] <= a then lo = mid else hi = mid - 1 end
  end
  return addrs[lo][2]
end

--- Whether the running kernel has the event ("icmp:icmp_send" is not on 5.10).
function K.has_event(name)
  local sys, ev = name:match("^([^:]+):(.+)$")
  return (pcall(dp.format, sys, ev))
end

--- A function the spec names, asserted to be in this kernel first
-- (`tcp_v4_rcv` is the TCP protocol handler, called through a pointer:
-- no inliner removes it).
function K.named(name)
  assert(K.has(name), name .. " is not a function of this kernel")
  return name
end

-- Whether an event fires for the traffic make() sends: a private instance
-- with only that event, read in raw mode; once per process per question.
local probed = {}
local function fires(key, event, make)
  if probed[key] == nil then
    local inst <close> = dp.instance{ buffer_kb = 256 }
    local ok, ev = pcall(inst.event, inst, event)
    local n = 0
    if ok then
      ev:enable()
      local pipe <close> = inst:pipe{ mode = "raw" }
      make()
      dp.each(pipe, { idle = 0.3 }, function() n = n + 1 end)
    end
    probed[key] = n > 0
  end
  return probed[key]
end

--- Whether tcp:tcp_send_reset fires for a reset sent without a socket (a
-- SYN to a closed port): 6.12 and 7.2 trace it, 5.10 and 6.1 do not.
function K.traces_socketless_resets()
  local net = require "helpers.net"
  return fires("resets", "tcp:tcp_send_reset", function() net.tcp_closed(9, 1) end)
end

--- Whether udp:udp_fail_queue_rcv_skb fires for IPv6 (a full receive
-- buffer over ::1): 6.12 and 7.2 trace it, 5.10 and 6.1 only IPv4.
function K.traces_udp6_queue_fails()
  local net = require "helpers.net"
  return fires("udp6", "udp:udp_fail_queue_rcv_skb", function()
    net.udp_rcvbuf(net.free_udp_port(6), 20, 6, 1024)
  end)
end

return K
