-- Drops per port counted in C: the drop probe's packet bytes decoded in
-- the counter (no Lua record per drop), keyed by protocol, local port,
-- reason and address; through dp.hist, the ports recipe and `top --by
-- port`, exact against the kernel's own counters. Where the kernel has no
-- kprobes: a clear refusal, and the joins.
local cjson = require "cjson"
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

-- the rows of a packet-keyed count, by "proto/port/reason" ("-" for none)
local function by_port(rows)
  local t = {}
  for _, row in ipairs(rows) do
    local k = ("%s/%s/%s"):format(row.proto or "-", row.dport or "-", dp.reason_label(row.reason))
    t[k] = (t[k] or 0) + row.hitcount
  end
  return t
end

-- n UDP datagrams to a closed port and m TCP SYNs to another (each one
-- dropped, each SYN answered with a reset); the kernel's counter deltas
local function make_drops(udp_port, n, tcp_port, m, family)
  local s0 = snmp.read()
  net.udp_closed(udp_port, n, family)
  assert.are.equal(m, net.tcp_closed(tcp_port, m, family))
  local s1 = snmp.read()
  return s0, s1
end

describe("21 port counting in C", function()
  it("takes packet keys in the one key parser, and refuses what cannot have them", function()
    local ok, err = pcall(dp.core.count_text, "spec/fixtures/trace-seed-6.1.txt", { keys = { "packet.port" } })
    assert.is_false(ok)
    assert.are.equal("spec/fixtures/trace-seed-6.1.txt: key 'packet.port': the packet keys are packet.family, "
      .. "packet.proto, packet.saddr, packet.daddr, packet.sport and packet.dport", err)
    -- a saved text has no packet bytes
    ok, err = pcall(dp.core.count_text, "spec/fixtures/trace-seed-6.1.txt", { keys = { "packet.dport", "reason" } })
    assert.is_false(ok)
    assert.are.equal("spec/fixtures/trace-seed-6.1.txt: packet keys need the drop probe's raw records (its pkt "
      .. "bytes): a saved text has none", err)
    -- a trace.dat of the tracepoint: no pkt and nh fields
    ok, err = pcall(dp.core.count_dat, "spec/fixtures/trace-udp-drops.dat", { keys = { "packet.proto" } })
    assert.is_false(ok)
    assert.are.equal("spec/fixtures/trace-udp-drops.dat: skb:kfree_skb carries no packet (no pkt and nh fields): "
      .. "packet keys count the drop probe's events (dp.packet_probe, a kernel with kprobes)", err)
    -- counted in C only, on the drop probe only: refused before tracefs is touched
    assert.has_error(function() dp.hist{ keys = { "packet.dport" }, where = "kernel" } end,
      "hist.open: packet keys are counted in C (where = \"c\"): a kernel hist trigger cannot decode a packet")
    assert.has_error(function() dp.hist{ keys = { "packet.dport" }, event = "skb:kfree_skb" } end,
      "hist.open: packet keys count the drop probe's events: leave event out")
    assert.has_error(function() require("dropprobe.recipes.top").run{ by = "host" } end,
      "top.run: by is \"reason\" or \"port\", not \"host\"")
  end)

  it("finds an interned string without adding one (the C table's address look-up)", function()
    local p = assert(io.popen("printf 'init 1 0 10\\nfind ::1\\nintern ::1\\nfind ::1\\nfind ::2\\ndump\\n' "
      .. "| build/ctable_driver"))
    local out = p:read("a")
    assert.is_true(p:close())
    assert.are.equal("0\n1\n1\n0\nhits 0 dropped 0 entries 0 stacks 0 strings 1\n", out)
  end)

  live_it("dp.hist counts UDP and TCP drops per port exactly as Udp NoPorts and Tcp OutRsts #live", function()
    local before = state.snapshot()
    local keys = { "packet.proto", "packet.dport", "packet.saddr" }
    if dp.has_reasons() then keys[4] = "reason" end -- 5.10: none
    local h <close> = dp.hist{ keys = keys }
    assert.are.equal("c", h.where)
    local uport, tport = net.free_udp_port(), net.free_udp_port()
    local s0, s1 = make_drops(uport, 25, tport, 6)
    local u6 = net.free_udp_port(6)
    local s2 = snmp.read()
    net.udp_closed(u6, 7, 6)
    local s3 = snmp.read()
    h:run{ idle = 0.5 }
    local r = h:read()
    local NS = kernel.label("NO_SOCKET")
    local got = by_port(r.rows)
    assert.are.equal(25, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), got["udp/" .. uport .. "/" .. NS])
    assert.are.equal(6, snmp.delta(s0, s1, "Tcp.OutRsts"))
    assert.are.equal(snmp.delta(s0, s1, "Tcp.OutRsts"), got["tcp/" .. tport .. "/" .. NS])
    assert.are.equal(snmp.delta(s2, s3, "Udp6NoPorts"), got["udp/" .. u6 .. "/" .. NS])
    -- addresses as text, a 128-bit one too; protocols by name
    local from = {}
    for _, row in ipairs(r.rows) do
      if row.dport == uport or row.dport == u6 then from[row.dport] = row.saddr end
    end
    assert.are.same({ [uport] = "127.0.0.1", [u6] = "::1" }, from)
    assert.are.equal(0, r.lost)
    assert.are.equal(0, r.dropped)
    h:close()
    state.assert_same(before)
  end, "kprobes")

  live_it("counts a drop without ports under a nil port, and a full table's new keys as dropped #live", function()
    local before = state.snapshot()
    -- IP protocol 253 (reserved for experiments), sent with its own IP
    -- header: no socket takes it, the kernel drops it; it has no ports
    local raw = [[/usr/bin/python3 -c 'import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
lo = socket.inet_aton("127.0.0.1")
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 253, 0, lo, lo)
for _ in range(4): s.sendto(ip + b"dropprobe", ("127.0.0.1", 0))']]
    -- room for one entry: the first key seen; later new keys are dropped,
    -- a known address with a new port as much as a new address (never interned)
    local h <close> = dp.hist{ keys = { "packet.proto", "packet.dport", "packet.saddr" }, size = 1 }
    assert(os.execute(raw))
    net.udp_closed(net.free_udp_port(), 3)
    net.udp_closed(net.free_udp_port(6), 2, 6)
    h:run{ idle = 0.5 }
    local r = h:read()
    assert.are.equal(1, #r.rows)
    local row = r.rows[1]
    assert.are.same({ 253, "127.0.0.1", 4 }, { row.proto, row.saddr, row.hitcount })
    assert.is_nil(row.dport)
    assert.is_true(r.dropped >= 5)
    assert.are.equal(r.hits, 4 + r.dropped)
    h:close()
    state.assert_same(before)
  end, "kprobes")

  live_it("ports counts in C where the kernel has kprobes, exactly the kernel's counters #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "ports --json --duration 4")
    h.ready()
    local uport, tport = net.free_udp_port(), net.free_udp_port()
    local s0, s1 = make_drops(uport, 40, tport, 5)
    local out, rc, errout = h.wait()
    assert.are.equal(0, rc, errout)
    local report = cjson.decode(out)
    assert.are.equal("packet", report.method)
    assert.are.equal("c", report.counted)
    assert.truthy(report.note:find("counted in C", 1, true), report.note)
    local got = {}
    for _, row in ipairs(report.ports) do
      got[row.proto .. "/" .. math.tointeger(row.port) .. "/" .. row.reason] = row
    end
    local NS = kernel.label("NO_SOCKET")
    local u, t = got["udp/" .. uport .. "/" .. NS], got["tcp/" .. tport .. "/" .. NS]
    assert(u and t, out)
    assert.are.equal(40, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), u.count)
    assert.are.equal(snmp.delta(s0, s1, "Tcp.OutRsts"), t.count)
    assert.are.same({ 1, "127.0.0.1" }, { u.remotes, u.top_remote })
    assert.are.equal(0, report.lost)
    assert.are.equal(0, report.dropped)
    state.assert_same(before)
  end, "kprobes")

  live_it("top --by port gives the rows per protocol, port and reason #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "top --by port --interval 1 --duration 4")
    h.ready()
    local uport, tport = net.free_udp_port(), net.free_udp_port()
    local s0, s1 = make_drops(uport, 12, tport, 4)
    local out, rc, errout = h.wait()
    assert.are.equal(0, rc, errout)
    local last = out:match("([^\n]*)\n$")
    assert(last and last:find(" | ports ", 1, true), out)
    assert.truthy(last:find(" where=c ", 1, true), last)
    local NS = kernel.label("NO_SOCKET")
    local function count(key)
      return tonumber(last:match("[ |]" .. key:gsub("%p", "%%%0") .. "=(%d+)"))
    end
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), count("udp/" .. uport .. "/" .. NS), last)
    assert.are.equal(snmp.delta(s0, s1, "Tcp.OutRsts"), count("tcp/" .. tport .. "/" .. NS), last)
    assert.are.equal(12, count("udp/" .. uport .. "/" .. NS))
    state.assert_same(before)
  end, "kprobes")

  live_it("refuses packet keys and top --by port where the kernel has no kprobes; ports joins #live", function()
    local before = state.snapshot()
    local ok, err = pcall(dp.hist, { keys = { "packet.proto", "packet.dport" } })
    assert.is_false(ok)
    assert.truthy(err:find("hist.open: packet keys need each drop's packet, read by the drop probe (a kprobe): "
      .. "no kprobe events on this kernel", 1, true), err)
    local out, code = run.cmd(DP .. "top --by port --duration 1")
    assert.are.equal(2, code, out)
    assert.truthy(out:find("counting by port needs each drop's packet, read by the drop probe (a kprobe): "
      .. "no kprobe events on this kernel", 1, true), out)
    local h = run.bg(DP .. "ports --json --duration 2.5")
    h.ready()
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 9)
    local s1 = snmp.read()
    local jout, rc = h.wait()
    assert.are.equal(0, rc)
    local report = cjson.decode(jout)
    assert.are.same({ "joins", "records" }, { report.method, report.counted })
    local n = 0
    for _, row in ipairs(report.ports) do
      if row.proto == "udp" and row.port == port then n = n + row.count end
    end
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), n)
    assert.are.equal(9, n)
    state.assert_same(before)
  end, "!kprobes")
end)
