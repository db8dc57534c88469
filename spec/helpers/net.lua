-- Drops made on loopback, bounded in count and time (luasocket).
local socket = require "socket"
local snmp = require "helpers.snmp"
local net = {}

local function host(family) return family == 6 and "::1" or "127.0.0.1" end

--- n TCP connects to a closed port: each SYN is dropped with NO_SOCKET and
-- answered with a reset.
function net.tcp_closed(port, n, family)
  local refused = 0
  for _ = 1, n or 1 do
    local s = family == 6 and socket.tcp6() or socket.tcp4()
    s:settimeout(1)
    local ok, err = s:connect(host(family), port)
    if not ok and err == "connection refused" then refused = refused + 1 end
    s:close()
  end
  return refused
end

--- n UDP datagrams to a closed port: NO_SOCKET, counted in Udp NoPorts
-- (Udp6NoPorts). Returns once the kernel has counted them there (or in a
-- CPU's backlog; at most 3 s: a burst on a loaded, emulated machine leaves
-- part of the receive work to ksoftirqd, after sendto returned), unless `opts.counted == false` (a firewall drops them
-- before UDP sees them).
-- A UDP socket to send from, bound to an ephemeral port that is not
-- `avoid`: a port net.free_udp_port just gave back may be handed out again
-- to the next socket, which would then send to itself (seen on 7.2: 11 of
-- 18 datagrams delivered, not dropped).
local function sender(family, avoid)
  local held = {}
  for _ = 1, 8 do
    local u = family == 6 and socket.udp6() or socket.udp4()
    assert(u:setsockname(host(family), 0))
    local _, mine = u:getsockname()
    if tonumber(mine) ~= avoid then
      for _, h in ipairs(held) do h:close() end
      return u
    end
    held[#held + 1] = u -- kept open until another port is found
  end
  error("udp sender: no ephemeral port other than " .. tostring(avoid))
end

function net.udp_closed(port, n, family, opts)
  n = n or 1
  local key = family == 6 and "Udp6NoPorts" or "Udp.NoPorts"
  local wait = not (opts and opts.counted == false)
  local s0, b0 = wait and snmp.read(), wait and snmp.backlog_drops()
  local u = sender(family, port)
  for _ = 1, n do
    u:sendto("x", host(family), port)
  end
  u:close()
  if wait then snmp.udp_accounted(s0, b0, n, 3, key) end
end

--- n UDP datagrams into a bound socket with a tiny receive buffer that is
-- never read: SOCKET_RCVBUFF, counted in Udp RcvbufErrors.
function net.udp_rcvbuf(port, n, family, rcvbuf)
  local r = family == 6 and socket.udp6() or socket.udp4()
  assert(r:setoption("recv-buffer-size", rcvbuf or 1024))
  assert(r:setsockname(host(family), port))
  local u = sender(family, port)
  local payload = string.rep("y", 512)
  -- the receiver stays open until the kernel has dealt with every datagram:
  -- one still in a backlog when it closes would be a NoPorts, not a full
  -- buffer. Done when the CPUs' backlogs are empty twice in a row (a queued
  -- datagram is counted only when read, so no counter says it); where the
  -- kernel does not show its backlogs, when the drops stopped growing for
  -- 0.2 s.
  local errs = family == 6 and "Udp6RcvbufErrors" or "Udp.RcvbufErrors"
  for _ = 1, n or 1 do
    u:sendto(payload, host(family), port)
  end
  u:close()
  local deadline, last, since, empty = socket.gettime() + 3, -1, socket.gettime(), 0
  while socket.gettime() < deadline do
    local queued = snmp.backlog_queued()
    if queued then
      empty = queued == 0 and empty + 1 or 0
      if empty >= 2 then break end
    else
      local now = snmp.read()[errs] + snmp.backlog_drops()
      if now ~= last then last, since = now, socket.gettime()
      elseif socket.gettime() - since >= 0.2 then break end
    end
    socket.sleep(0.02)
  end
  r:close()
end

--- A flood from every CPU: `senders` processes (default 2), each pinned to
-- its own CPU, each sending `each` UDP datagrams to a closed port on
-- 127.0.0.1 (NO_SOCKET, counted in Udp NoPorts), all started together by
-- build/flood (bench/flood.c, built by `make build`). Runs in the
-- background: returns a function that waits for the senders and returns
-- the datagrams they sent (an error when the flood failed).
function net.udp_flood(port, each, senders)
  senders = senders or 2
  assert(math.type(each) == "integer" and each > 0, "udp_flood: each is a count > 0")
  local f = io.open("build/flood")
  assert(f, "build/flood is missing: run make build")
  f:close()
  local p = assert(io.popen(("build/flood -s %d %d %d 2>&1"):format(senders, each, port)))
  return function()
    local out = p:read("a")
    local ok = p:close()
    assert(ok and tonumber(out), "build/flood failed: " .. out)
    return senders * each
  end
end

--- A free UDP port on loopback.
function net.free_udp_port(family)
  local u = family == 6 and socket.udp6() or socket.udp4()
  u:setsockname(host(family), 0)
  local _, port = u:getsockname()
  u:close()
  return tonumber(port)
end

return net
