-- The recipes, with exact counts against the kernel's counters.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local live_it = live.bind(it, pending)

-- What the joins of the ports recipe can see depends on what the kernel's
-- tracepoints cover, probed live (helpers.kernel), never read off the
-- version: whether tcp:tcp_send_reset fires for a reset sent without a
-- socket (a segment to a closed port), and udp:udp_fail_queue_rcv_skb for
-- IPv6 (6.12 and later do both; 5.10 and 6.1 neither); and whether it has
-- icmp:icmp_send at all (5.10 has not).

describe("10 recipes", function()
  live_it("ports: attributes TCP, UDP and receive-buffer drops to their ports, v4 and v6 #live", function()
    local ports = require "dropprobe.recipes.ports"
    local resets_traced = kernel.traces_socketless_resets()
    local udp6_traced = kernel.traces_udp6_queue_fails()
    local before = state.snapshot()
    local s0, s1, refused4, refused6
    -- the joins, on every kernel (spec 14 reads each drop's packet where it can)
    local report = ports.run{ packets = false, idle = 1, ready = function()
      s0 = snmp.read()
      refused4 = net.tcp_closed(9, 120)
      net.udp_closed(9999, 700)
      net.udp_rcvbuf(7777, 400, 4, 1024)
      refused6 = net.tcp_closed(9, 40, 6)
      net.udp_closed(9999, 60, 6)   -- no event carries this port: unattributed
      net.udp_rcvbuf(7778, 100, 6, 1024)
      s1 = snmp.read()
    end }
    local NO_SOCKET, RCVBUFF = kernel.label("NO_SOCKET"), kernel.label("SOCKET_RCVBUFF")
    local nosock_unattributed = report.unattributed[NO_SOCKET] or 0
    assert.are.equal(0, report.lost)
    assert.are.equal(120, refused4)
    assert.are.equal(40, refused6)
    -- the resets to the closed TCP port: attributed where tcp_send_reset
    -- fires for a reset without a socket, else unattributed
    local resets = snmp.delta(s0, s1, "Tcp.OutRsts")
    assert.are.equal(120 + 40, resets)
    local tcp = ports.count(report, "tcp", 9, NO_SOCKET)
    assert.are.equal(resets_traced and resets or 0, tcp)
    -- UDP to a closed port: joined with icmp:icmp_send where the kernel has it (not 5.10)
    local icmp = kernel.has_event("icmp:icmp_send")
    assert.are.equal(700, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(icmp and snmp.delta(s0, s1, "Udp.NoPorts") or 0, ports.count(report, "udp", 9999, NO_SOCKET))
    local rcv4 = snmp.delta(s0, s1, "Udp.RcvbufErrors")
    assert.is_true(rcv4 > 0)
    assert.are.equal(rcv4, ports.count(report, "udp", 7777, RCVBUFF),
      require("cjson").encode(report.unattributed) .. " " .. ports.format(report))
    local rcv6 = snmp.delta(s0, s1, "Udp6RcvbufErrors")
    assert.is_true(rcv6 > 0)
    assert.are.equal(udp6_traced and rcv6 or 0, ports.count(report, "udp", 7778, RCVBUFF))
    -- what no event explains is counted, unattributed, never put on a wrong
    -- port: UDP to a closed port over ::1 always, the resets and the IPv6
    -- receive-buffer drops where the kernel does not trace them
    assert.are.equal(60, snmp.delta(s0, s1, "Udp6NoPorts"))
    local want = snmp.delta(s0, s1, "Udp6NoPorts") + (resets_traced and 0 or resets)
      + (icmp and 0 or snmp.delta(s0, s1, "Udp.NoPorts"))
    if dp.has_reasons() then
      assert.are.equal(want, nosock_unattributed)
      assert.are.equal(not udp6_traced and rcv6 or nil, report.unattributed[RCVBUFF])
    else
      -- no reasons: one unattributed count ("-") for all of them, and for
      -- every other kfree_skb of the moment (each is a drop there: the
      -- ICMPv6 errors the kernel frees after reading them too)
      assert.is_true(nosock_unattributed >= want + (udp6_traced and 0 or rcv6),
        ports.format(report))
    end
    local total = report.attributed
    for _, n in pairs(report.unattributed) do total = total + n end
    assert.are.equal(report.drops, total)
    state.assert_same(before)
  end)

  live_it("ports: text mode gives the same counts as raw mode #live", function()
    local found = state.snapshot()
    local ports = require "dropprobe.recipes.ports"
    local resets_traced = kernel.traces_socketless_resets()
    local report = ports.run{ packets = false, mode = "text", idle = 1, ready = function()
      net.tcp_closed(9, 10)
      net.udp_closed(9999, 30)
    end }
    local NO_SOCKET = kernel.label("NO_SOCKET")
    assert.are.equal(resets_traced and 10 or 0, ports.count(report, "tcp", 9, NO_SOCKET))
    assert.are.equal(kernel.has_event("icmp:icmp_send") and 30 or 0, ports.count(report, "udp", 9999, NO_SOCKET))
    state.assert_same(found)
  end)

  live_it("stacks: folded counts put every TCP drop under tcp_v4_rcv and the UDP ones under their place #live",
    function()
    local stacks = require "dropprobe.recipes.stacks"
    local tcp_rcv = kernel.named("tcp_v4_rcv")
    local before = state.snapshot()
    local s0, s1
    local report = stacks.run{ filter = kernel.cond("reason == NO_SOCKET", "protocol == 2048"), idle = 1,
      ready = function()
      s0 = snmp.read()
      net.tcp_closed(9, 30)
      net.udp_closed(9999, 50)
      s1 = snmp.read()
    end }
    -- each stack starts at the function that dropped (a function of this
    -- kernel); the TCP ones at tcp_v4_rcv, the UDP ones all at one other place
    local tcp, other, places = 0, 0, {}
    for _, st in ipairs(report.stacks) do
      local first = kernel.func(st.frames[1])
      if first == tcp_rcv then tcp = tcp + st.count
      else other, places[first] = other + st.count, true end
    end
    for _, line in ipairs(stacks.folded(report)) do
      assert.truthy(line:match("^entry_SYSCALL") or line:match("^ret_from_fork") or line:match("^%S+;"))
    end
    assert.are.equal(30, tcp)
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), other)
    assert.are.equal(50, other)
    assert.are.equal(1, #(function() local l = {} for k in pairs(places) do l[#l + 1] = k end return l end)())
    assert.is_false(report.sampled)
    assert.are.equal(report.matched, report.with_stack)
    assert.are.equal(kernel.label("NO_SOCKET"), next(report.stacks[1].reasons))
    state.assert_same(before)
  end)

  live_it("stacks: a stack limit samples and says so #live", function()
    local found = state.snapshot()
    local stacks = require "dropprobe.recipes.stacks"
    local report = stacks.run{ filter = kernel.cond("reason == NO_SOCKET", "protocol == 2048"), limit = 5,
      idle = 1, ready = function()
      net.udp_closed(9999, 20)
    end }
    assert.are.equal(20, report.matched)
    assert.are.equal(5, report.with_stack)
    assert.is_true(report.sampled)
    assert.truthy(stacks.format(report):find("(sampled)", 1, true))
    state.assert_same(found)
  end)

  live_it("watch: one call per drop, as the command's text line and JSON object #live", function()
    local found = state.snapshot()
    local watch = require "dropprobe.recipes.watch"
    -- where drops carry their packet (the drop probe: no tracepoint fields
    -- such as protocol), the port picks them; elsewhere the filter
    local packets = require("dropprobe.hunt").packets_for{}
    local opts = packets and { port = 9999 } or { filter = kernel.cond("reason == NO_SOCKET", "protocol == 2048") }
    opts.idle = 1
    opts.ready = function() net.udp_closed(9999, 25) end
    local got = {}
    local report = watch.run(opts, function(d) got[#got + 1] = d end)
    assert.are.equal(packets, report.packets)
    assert.are.equal(25, #got)
    assert.are.equal(25, report.drops)
    assert.are.equal(0, report.lost)
    local label = kernel.label("NO_SOCKET")
    for _, d in ipairs(got) do
      assert.are.equal(label, dp.reason_label(d.reason))
      assert.truthy(watch.line(d):find(" " .. label .. " ", 1, true), watch.line(d))
      if report.packets then
        assert.are.equal("drop", d.name)
        assert.are.equal(9999, d.packet.dport)
        assert.truthy(watch.line(d):find(" -> 127.0.0.1:9999 ", 1, true), watch.line(d))
      else
        assert.are.equal("kfree_skb", d.name)
      end
    end
    local j = watch.json(got[1], "NULL")
    assert.are.equal(dp.has_reasons() and label or "NULL", j.reason)
    assert.are.equal(got[1].ts, j.ts)
    assert.has_error(function() watch.run({ duration = 1, stack = true }, function() end) end,
      "watch.run: unknown option 'stack' (allowed: filter, all_reasons, stacks, mode, port, host, buffer_kb, "
      .. "duration, idle, ready, pcap, match, dev, netns)")
    state.assert_same(found)
  end)

  live_it("top: counts per reason and location, plain lines when not a terminal #live", function()
    local found = state.snapshot()
    local top = require "dropprobe.recipes.top"
    local lines = {}
    local out = { write = function(_, s) lines[#lines + 1] = s end, flush = function() end }
    local totals = top.run{ interval = 0.3, duration = 2.4, out = out, tty = false,
      filter = kernel.cond("reason == NO_SOCKET", "protocol == 2048"), ready = function()
      net.udp_closed(9999, 25)
    end }
    assert.is_true(#lines >= 3)
    local label = kernel.label("NO_SOCKET")
    assert.truthy(table.concat(lines):find(label .. "=25", 1, true))
    assert.are.equal(25, totals.reasons[label].total)
    -- one place, a function of this kernel
    local loc = next(totals.locations)
    assert.are.equal(nil, next(totals.locations, loc))
    kernel.func(loc)
    assert.is_nil(table.concat(lines):find("\27", 1, true))
    state.assert_same(found)
  end)
end)
