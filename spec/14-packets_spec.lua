-- The packet of every drop, read by the drop probe itself (kprobes, with
-- struct sk_buff's offsets from the kernel's BTF), decoded in C; checked
-- against nftables' own counters and the kernel's.
local cjson = require "cjson"
local socket = require "socket"
local dp = require "dropprobe"
local kprobe = require "dropprobe.kprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

local function hex(s) return (s:gsub("%s+", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

-- an IPv4 UDP datagram 127.0.0.1:43210 -> 127.0.0.2:5555 after 16 bytes of headroom
local V4_UDP = string.rep("\0", 16) .. hex([[
  45 00 00 1d 12 34 40 00 40 11 00 00 7f 00 00 01 7f 00 00 02
  a8 ca 15 b3 00 09 00 00 78]])
-- an IPv6 TCP SYN ::1 -> 2001:db8::7, port 40000 -> 5556, behind a hop-by-hop header
local V6_TCP = hex([[
  60 00 00 00 00 1c 00 40 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 07
  06 00 01 04 00 00 00 00
  9c 40 15 b4 00 00 00 01 00 00 00 00 50 02 ff ff 00 00 00 00]])
-- ICMP port unreachable, 10.0.0.1 -> 10.0.0.2
local V4_ICMP = hex([[45 00 00 1c 00 00 00 00 40 01 00 00 0a 00 00 01 0a 00 00 02 03 03 00 00]])

-- the packets each rule of an nft table counted, by the port the rule matches
local function nft_counters(table_name)
  local out = io.popen("nft -j list table inet " .. table_name):read("a")
  local counts = {}
  for _, item in ipairs(cjson.decode(out).nftables or {}) do
    local port, packets
    for _, e in ipairs(item.rule and item.rule.expr or {}) do
      if e.match and e.match.left and type(e.match.left) == "table" and e.match.left.payload
          and e.match.left.payload.field == "dport" then
        port = math.tointeger(e.match.right)
      end
      if e.counter then packets = math.tointeger(e.counter.packets) end
    end
    if port and packets then counts[port] = packets end
  end
  return counts
end

describe("14 packets", function()
  it("decodes IPv4, IPv6 behind extension headers, TCP, UDP and ICMP from a probe's bytes", function()
    local p = dp.core.decode_packet(V4_UDP, 16)
    assert.are.same({ family = 4, saddr = "127.0.0.1", daddr = "127.0.0.2", proto = "udp",
      sport = 43210, dport = 5555, len = 29 }, p)
    p = dp.core.decode_packet(V6_TCP, 0)
    assert.are.same({ family = 6, saddr = "::1", daddr = "2001:db8::7", proto = "tcp",
      sport = 40000, dport = 5556, len = 68 }, p)
    p = dp.core.decode_packet(V4_ICMP, 0)
    assert.are.equal("icmp", p.proto)
    assert.are.equal(3, p.type)
    assert.are.equal(3, p.code)
    assert.is_nil(p.sport)
  end)

  it("gives what the bytes hold, and nothing from garbage or short bytes", function()
    -- the IP header only: addresses, no ports
    local p = dp.core.decode_packet(V4_UDP:sub(1, 36), 16)
    assert.are.equal("127.0.0.2", p.daddr)
    assert.are.equal("udp", p.proto)
    assert.is_nil(p.dport)
    -- a fragment after the first carries no transport header
    local frag = V4_UDP:sub(1, 22) .. "\0\1" .. V4_UDP:sub(25)
    p = dp.core.decode_packet(frag, 16)
    assert.is_nil(p.dport)
    assert.is_nil(dp.core.decode_packet(string.rep("\x95", 64), 0))  -- not IP
    assert.is_nil(dp.core.decode_packet(V4_UDP, 60))                 -- header beyond the bytes
    assert.is_nil(dp.core.decode_packet("", 0))
    assert.is_nil(dp.core.decode_packet(V4_UDP, -1))
  end)

  it("builds the drop probe from the kernel's BTF offsets and the drop hook", function()
    local st = assert(dp.core.btf_struct("sk_buff"))
    local kp61 = kprobe.packet_probe{ name = "t61", arch = "x86_64",
      kallsyms = "ffffffff81000000 T kfree_skb_reason\n" }
    -- the device's name and its namespace's inode, through skb->dev
    local nd, netst = dp.core.btf_struct("net_device"), dp.core.btf_struct("net")
    local ns = dp.core.btf_struct("ns_common")
    assert.are.equal(("p:dropprobe/t61 kfree_skb_reason skb=%%di:x64 reason=%%si:u32 location=+0(%%sp):symbol "
      .. "nh=+%d(%%di):u16 pkt=+0(+%d(%%di)):x64[64] dev=+%d(+%d(%%di)):string netns=+%d(+%d(+%d(%%di))):u32")
      :format(st.network_header.offset, st.head.offset, nd.name.offset, st.dev.offset,
        netst.ns.offset + ns.inum.offset, nd.nd_net.offset, st.dev.offset),
      kp61:definition())
    local kp612 = kprobe.packet_probe{ name = "t612", arch = "x86_64",
      kallsyms = "ffffffff81000000 T sk_skb_reason_drop\n" }
    assert.truthy(kp612:definition():find(("nh=+%d(%%si):u16"):format(st.network_header.offset), 1, true))
    assert.truthy(kp612:definition():find("reason=%dx:u32", 1, true))
    assert.truthy(kp612:definition():find("skb=%si:x64", 1, true))
    -- before 5.17: kfree_skb(skb), the skb only, no reason
    local kp510 = kprobe.packet_probe{ name = "t510", arch = "x86_64",
      kallsyms = "ffffffff81000000 T kfree_skb\n" }
    assert.truthy(kp510:definition():find("^p:dropprobe/t510 kfree_skb skb=%%di:x64 location="), kp510:definition())
    assert.is_nil(kp510:definition():find("reason=", 1, true))
    local ok, err = pcall(kprobe.packet_probe, { btf = "/nonexistent" })
    assert.is_false(ok)
    assert.truthy(err:find("BTF", 1, true))
  end)

  live_it("attributes nftables and IPv6 no-socket drops to their ports, as nft and the kernel count #live",
      function()
    local before = state.snapshot()
    -- nftables' netlink family and its counter (a module of its own on 5.10):
    -- loaded here (a guest's module autoload may not run)
    os.execute("modprobe -a -q nfnetlink nf_tables nft_counter 2>/dev/null")
    assert(os.execute("nft -f - <<'EOF'\n"
      .. "table inet dropprobe_spec {\n"
      .. "  chain input { type filter hook input priority -10;\n"
      .. "    udp dport 5555 counter drop\n"
      .. "    tcp dport 5556 tcp flags & (syn | ack) == syn counter drop\n"
      .. "  }\n"
      .. "}\nEOF"), "nft could not add the spec's table")
    local ok, err = pcall(function()
      local h = run.bg(DP .. "ports --json --duration 4")
      h.ready()
      local s0 = snmp.read()
      net.udp_closed(5555, 25, nil, { counted = false }) -- nft drops them first
      for _ = 1, 6 do
        local t = socket.tcp4()
        t:settimeout(0.05)
        t:connect("127.0.0.1", 5556) -- one SYN, dropped; closed before any retry
        t:close()
      end
      local port6 = net.free_udp_port(6)
      net.udp_closed(port6, 7, 6)
      local s1 = snmp.read()
      local out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      local report = cjson.decode(out)
      assert.are.equal("packet", report.method)
      local udp_n, tcp_n = nft_counters("dropprobe_spec")[5555], nft_counters("dropprobe_spec")[5556]
      local got = {}
      for _, r in ipairs(report.ports) do got[r.proto .. "/" .. math.tointeger(r.port) .. "/" .. r.reason] = r end
      -- reasons by name, "-" where the kernel has none
      local NF, NS = kernel.label("NETFILTER_DROP"), kernel.label("NO_SOCKET")
      local u, t, v6 = got["udp/5555/" .. NF], got["tcp/5556/" .. NF], got["udp/" .. port6 .. "/" .. NS]
      assert(u and t and v6, out)
      assert.are.equal(25, udp_n)
      assert.are.equal(udp_n, u.count)
      assert.are.equal("127.0.0.1", u.top_remote)
      assert.are.equal(tcp_n, t.count)
      assert.is_true(tcp_n >= 6)
      assert.are.equal(snmp.delta(s0, s1, "Udp6NoPorts"), v6.count)
      assert.are.equal(7, v6.count)
      assert.are.equal("::1", v6.top_remote)
    end)
    os.execute("nft delete table inet dropprobe_spec 2>/dev/null")
    assert(ok, err)
    assert.is_nil(io.open("/sys/kernel/tracing/kprobe_events"):read("a"):find("dropprobe/", 1, true))
    state.assert_same(before)
  end, "kprobes")

  live_it("gives each drop the 5-tuple of the socket that sent it #live", function()
    local before = state.snapshot()
    local hunt = require "dropprobe.hunt"
    local h <close> = hunt.open{ packets = true, condition = kernel.cond("reason == NO_SOCKET") }
    assert.is_true(h.packets)
    local u = socket.udp4()
    assert(u:setsockname("127.0.0.1", 0))
    local _, sport = u:getsockname()
    local dport = net.free_udp_port()
    for _ = 1, 3 do u:sendto("x", "127.0.0.1", dport) end
    u:close()
    local n = 0
    h:run({ idle = 0.5 }, function(rec)
      local p = rec.packet
      if rec.name == h.drop_name and p and p.dport == dport then
        n = n + 1
        assert.are.same({ 4, "127.0.0.1", "127.0.0.1", "udp", tonumber(sport), 29 },
          { p.family, p.saddr, p.daddr, p.proto, p.sport, p.len })
        assert.are.equal(kernel.reason("NO_SOCKET"), rec.fields.reason)
        kernel.func(rec.fields.location) -- where it was called from: a function of this kernel
      end
    end)
    assert.are.equal(3, n)
    h:close()
    -- a condition on the packet, checked in C: only the drops of that port
    local f <close> = hunt.open{ packets = true, condition = kernel.cond("reason == NO_SOCKET"), port = dport }
    net.udp_closed(dport, 4)
    net.udp_closed(net.free_udp_port(), 6)
    local ports = {}
    f:run({ idle = 0.5 }, function(rec)
      if rec.name == f.drop_name then ports[#ports + 1] = rec.packet and rec.packet.dport end
    end)
    assert.are.same({ dport, dport, dport, dport }, ports)
    assert.is_true(f:totals().filtered >= 6)
    f:close()
    state.assert_same(before)
  end, "kprobes")

  live_it("falls back to the joins where the kernel has no kprobes, and says so #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "ports --json --duration 2")
    h.ready()
    net.udp_closed(9999, 5)
    local out, rc = h.wait()
    assert.are.equal(0, rc)
    local report = cjson.decode(out)
    assert.are.equal("joins", report.method)
    assert.truthy(report.note:find("kprobe", 1, true))
    local msg, code = run.cmd(DP .. "watch --port 5555 --duration 1")
    assert.are.equal(2, code)
    assert.truthy(msg:find("need the packet of each drop", 1, true), msg)
    state.assert_same(before)
  end, "!kprobes")
end)
