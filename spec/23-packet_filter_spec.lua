-- Packet conditions in tcpdump's language: compiled by libpcap for raw IP,
-- run in C on the bytes the drop probe read, before any record is made;
-- checked against the traffic sent and the kernel's own counters.
local cjson = require "cjson"
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

-- the drops `watch --json` printed, by the packet's protocol and destination port
local function drops_of(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local d = cjson.decode(line)
    local p = d.packet
    local k = p and (p.proto .. "/" .. tostring(math.tointeger(p.dport))) or "none"
    t[k] = (t[k] or 0) + 1
  end
  return t
end

describe("23 packet filter", function()
  it("compiles tcpdump's language, and gives libpcap's message for what it cannot", function()
    assert.is_true(dp.core.check_packet_filter("udp and dst port 9999"))
    assert.is_true(dp.core.check_packet_filter("tcp[tcpflags] & tcp-syn != 0 and dst port 9"))
    assert.is_true(dp.core.check_packet_filter("ip6 and host ::1"))
    local ok, why = dp.core.check_packet_filter("udp and")
    assert.is_nil(ok)
    assert.are.equal("can't parse filter expression: syntax error", why)
    -- raw IP has no link layer: a MAC condition is refused, as libpcap says
    ok, why = dp.core.check_packet_filter("ether host 00:11:22:33:44:55")
    assert.is_nil(ok)
    assert.truthy(why:find("link-layer", 1, true) or why:find("ether", 1, true), why)
  end)

  it("refuses a bad expression in scripts before anything is made", function()
    assert.has_error(function() require("dropprobe.hunt").open{ packets = true, match = "udp and" } end,
      "hunt.open: packet filter 'udp and': can't parse filter expression: syntax error")
    assert.has_error(function() require("dropprobe.recipes.watch").run({ match = "port 99999" }, print) end,
      "watch.run: packet filter 'port 99999': illegal port number 99999 > 65535")
  end)

  live_it("refuses a bad expression with libpcap's message and exit 2, tracefs untouched #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(DP .. "watch 'udp and' --duration 1")
    assert.are.equal(2, code)
    assert.are.equal("dropprobe watch: packet filter 'udp and': can't parse filter expression: syntax error\n", out)
    state.assert_same(before)
  end)

  live_it("gives exactly the drops whose packet passes the expression #live", function()
    local before = state.snapshot()
    local want, other = net.free_udp_port(), net.free_udp_port()
    while other == want do other = net.free_udp_port() end
    local h = run.bg(DP .. "watch --json 'udp and dst port " .. want .. "' --duration 4")
    h.ready()
    local s0 = snmp.read()
    net.udp_closed(want, 11)
    net.udp_closed(other, 7)
    local s1 = snmp.read()
    local out, rc, err = h.wait()
    assert.are.equal(0, rc, err)
    assert.are.equal(18, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.same({ ["udp/" .. want] = 11 }, drops_of(out))
    -- the same language on TCP flags: the SYNs to a closed port, each one dropped
    h = run.bg(DP .. "watch --json 'tcp[tcpflags] & tcp-syn != 0 and dst port 9' --duration 4")
    h.ready()
    s0 = snmp.read()
    assert.are.equal(5, net.tcp_closed(9, 5))
    net.udp_closed(9, 3)
    s1 = snmp.read()
    out, rc, err = h.wait()
    assert.are.equal(0, rc, err)
    assert.are.equal(5, snmp.delta(s0, s1, "Tcp.OutRsts"))
    assert.are.same({ ["tcp/9"] = 5 }, drops_of(out))
    state.assert_same(before)
  end, "kprobes")

  live_it("says a packet filter needs the packet of each drop where the kernel gives none #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(DP .. "watch 'udp and dst port 9' --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("a packet filter needs the packet of each drop", 1, true), out)
    state.assert_same(before)
  end, "!kprobes")
end)
