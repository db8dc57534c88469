-- The device and network namespace of each drop: two namespaces made here,
-- drops inside each, told apart by the namespace's inode, checked against
-- each namespace's own Udp NoPorts and the inode `stat -L` gives a process
-- in it.
local cjson = require "cjson"
local util = require "dropprobe.util"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local run = require "helpers.run"
local snmp = require "helpers.snmp"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

local sh = run.sh

-- Udp NoPorts as a namespace's own /proc/net/snmp has it
local function noports(ns)
  local text = sh("ip netns exec " .. ns .. " cat /proc/net/snmp")
  return snmp.parse(text)["Udp.NoPorts"]
end

-- n datagrams to a closed port on the namespace's loopback
local function send(ns, n)
  assert(select(2, sh(("ip netns exec %s bash -c 'for i in $(seq %d); do echo x > /dev/udp/127.0.0.1/9; done'")
    :format(ns, n))))
end

-- the drops of IP packets `watch --json` printed (a namespace also drops
-- what its own processes' unix sockets drop: no packet to tell)
local function drops(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local d = cjson.decode(line)
    if d.packet then t[#t + 1] = d end
  end
  return t
end

describe("25 netns", function()
  it("takes a namespace as an inode, a path or a name, and an interface name, refusing the rest", function()
    assert.are.equal(4026531840, util.resolve_netns("4026531840"))
    assert.are.equal(4026531840, util.resolve_netns(4026531840))
    local self_ino = assert(require("dropprobe.core").netns_inode("/proc/self/ns/net"))
    assert.are.equal(self_ino, util.resolve_netns("/proc/self/ns/net"))
    -- a file that is no network namespace, and another kind of namespace
    assert.are.same({ nil, "a network namespace here (/etc/hostname: not a namespace)" },
      { util.resolve_netns("/etc/hostname") })
    assert.are.same({ nil, "a network namespace here (/proc/self/ns/mnt: not a network namespace)" },
      { util.resolve_netns("/proc/self/ns/mnt") })
    local ino, why = util.resolve_netns("no_such_ns_dropprobe")
    assert.is_nil(ino)
    assert.are.equal("a network namespace here (/run/netns/no_such_ns_dropprobe: No such file or directory)", why)
    assert.is_nil(util.resolve_netns("0"))
    assert.is_nil(util.resolve_netns("a\nb"))
    assert.is_nil(util.resolve_netns("../x"))
    assert.is_true(util.ifname_ok("lo"))
    assert.is_true(util.ifname_ok("veth-a.10@x"))
    assert.is_false(util.ifname_ok(""))
    assert.is_false(util.ifname_ok("sixteen_bytes_xx"))
    assert.is_false(util.ifname_ok('lo" || 1'))
    assert.is_false(util.ifname_ok("a b"))
    assert.has_error(function() require("dropprobe.hunt").open{ packets = true, dev = 'x"y' } end,
      "hunt.open: dev 'x\"y' is not an interface name (1 to 15 bytes, no space, quote, slash, colon "
      .. "or glob character)")
    assert.is_false(util.ifname_ok("veth*"))
    assert.is_false(util.ifname_ok("a["))
    assert.is_false(util.ifname_ok(".."))
  end)

  live_it("refuses a namespace that is not there, before tracefs is touched #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(DP .. "watch --netns no_such_ns_dropprobe --duration 1")
    assert.are.equal(2, code)
    assert.are.equal("dropprobe watch: --netns: 'no_such_ns_dropprobe' is not a network namespace here "
      .. "(/run/netns/no_such_ns_dropprobe: No such file or directory)\n", out)
    state.assert_same(before)
  end)

  live_it("tells the drops of two namespaces apart by their inode, with their device #live", function()
    local before = state.snapshot()
    run.with_netns("a", {}, function(A) run.with_netns("b", {}, function(B)
      -- the inode a process inside each namespace sees for its own
      local inoA = tonumber((sh("ip netns exec " .. A .. " stat -L -c %i /proc/self/ns/net")))
      local inoB = tonumber((sh("ip netns exec " .. B .. " stat -L -c %i /proc/self/ns/net")))
      assert(inoA and inoB and inoA ~= inoB)
      -- by name: only A's drops
      local h = run.bg(DP .. "watch --json --netns " .. A .. " --duration 4")
      h.ready()
      local a0, b0 = noports(A), noports(B)
      send(A, 6)
      send(B, 4)
      local out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.same({ 6, 4 }, { noports(A) - a0, noports(B) - b0 })
      local got = drops(out)
      assert.are.equal(6, #got, out)
      for _, d in ipairs(got) do
        assert.are.same({ "lo", inoA, 9 }, { d.packet.dev, math.tointeger(d.packet.netns),
          math.tointeger(d.packet.dport) })
      end
      -- by inode and by path, with the device: only B's drops
      h = run.bg(DP .. "watch --json --dev lo --netns /run/netns/" .. B .. " --duration 4")
      h.ready()
      b0 = noports(B)
      send(A, 3)
      send(B, 5)
      out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal(5, noports(B) - b0)
      got = drops(out)
      assert.are.equal(5, #got, out)
      for _, d in ipairs(got) do assert.are.equal(inoB, math.tointeger(d.packet.netns)) end
      -- the text line says where
      h = run.bg(DP .. "watch --netns " .. inoA .. " --duration 3")
      h.ready()
      send(A, 1)
      out = h.wait()
      assert.truthy(out:find(" dev=lo netns=" .. inoA .. "\n", 1, true), out)
      -- ports, counted in C: only A's drops, each row with A's inode
      h = run.bg(DP .. "ports --json --netns " .. inoA .. " --duration 4")
      h.ready()
      a0, b0 = noports(A), noports(B)
      send(A, 7)
      send(B, 2)
      out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.same({ 7, 2 }, { noports(A) - a0, noports(B) - b0 })
      local rep = cjson.decode(out)
      assert.are.equal("c", rep.counted, out)
      local n = 0
      for _, row in ipairs(rep.ports) do
        assert.are.equal(inoA, math.tointeger(row.netns), out)
        if row.proto == "udp" and row.port == 9 then n = n + row.count end
      end
      assert.are.equal(7, n, out)
      -- with a packet filter and a device: records, B's drops to port 9 only
      h = run.bg(DP .. "ports --json --dev lo --netns " .. B .. " --duration 4 'udp and dst port 9'")
      h.ready()
      b0 = noports(B)
      send(A, 2)
      send(B, 3)
      assert(select(2, sh(("ip netns exec %s bash -c 'echo x > /dev/udp/127.0.0.1/10'"):format(B))))
      out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal(4, noports(B) - b0)
      rep = cjson.decode(out)
      assert.are.equal("records", rep.counted, out)
      -- stacks of one namespace's UDP drops (its processes' unix sockets drop too):
      -- each from the drop probe, with its stack
      local hs = run.bg(DP .. "stacks --json --netns " .. A .. " --duration 4 'udp and dst port 9'")
      hs.ready()
      a0 = noports(A)
      send(A, 4)
      send(B, 2)
      local sout, src, serr = hs.wait()
      assert.are.equal(0, src, serr)
      assert.are.equal(4, noports(A) - a0)
      local srep = cjson.decode(sout)
      assert.are.same({ 4, 4, "records" }, { srep.matched, srep.with_stack, srep.where }, sout)
      -- the exporter's per-port series, labelled by namespace when asked
      local dir = assert(sh("mktemp -d /tmp/dpspec_prom.XXXXXX")):match("%S+")
      local he = run.bg(DP .. "exporter --interval 0.5 --duration 5 --netns-label --textfile " .. dir)
      he.ready()
      a0, b0 = noports(A), noports(B)
      send(A, 3)
      send(B, 2)
      local _, erc, eerr = he.wait()
      local prom = util.readfile(dir .. "/dropprobe.prom") or ""
      sh("rm -rf " .. dir)
      assert.are.equal(0, erc, eerr)
      assert.are.same({ 3, 2 }, { noports(A) - a0, noports(B) - b0 })
      local per = {}
      for netns, v in prom:gmatch('dropprobe_port_drops_total{proto="udp",port="9",netns="(%d+)"[^}]*} (%d+)') do
        per[tonumber(netns)] = (per[tonumber(netns)] or 0) + tonumber(v)
      end
      assert.are.same({ 3, 2 }, { per[inoA], per[inoB] }, prom)
      assert.are.equal(1, #rep.ports, out)
      assert.are.same({ "udp", 9, 3, "lo", inoB }, { rep.ports[1].proto, rep.ports[1].port, rep.ports[1].count,
        rep.ports[1].dev, math.tointeger(rep.ports[1].netns) })
    end) end)
    state.assert_same(before)
  end, "kprobes")

  live_it("joins the device from tracepoints and refuses --netns where the kernel gives no packet #live",
    function()
    local before = state.snapshot()
    for _, mode in ipairs({ "raw", "text" }) do
      -- --dev lo: every drop of a datagram to a closed port, with its device
      local h = run.bg(DP .. "watch --json --dev lo --mode " .. mode .. " --duration 3")
      h.ready()
      local s0 = snmp.read()
      for _ = 1, 5 do assert(os.execute("bash -c 'echo x > /dev/udp/127.0.0.1/9'")) end
      local sent = snmp.settled(s0, "Udp.NoPorts", 5, 5)
      local out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal(5, sent)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        local d = cjson.decode(line)
        assert.are.equal("lo", d.dev, line)
        if d.reason == "NO_SOCKET" then n = n + 1 end
      end
      assert.are.equal(5, n, out)
      assert.truthy(errout:find("the device comes from net:netif_receive_skb", 1, true), errout)
      -- another device: none of them
      h = run.bg(DP .. "watch --json --dev dpspec0 --mode " .. mode .. " --duration 3")
      h.ready()
      for _ = 1, 3 do assert(os.execute("bash -c 'echo x > /dev/udp/127.0.0.1/9'")) end
      out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal("", out)
      assert.truthy(errout:match("; (%d+) drops on another device") + 0 >= 3, errout)
    end
    local out, code = run.cmd(DP .. "watch --netns /proc/self/ns/net --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("--dev and --netns need the packet of each drop", 1, true), out)
    out, code = run.cmd(DP .. "ports --netns /proc/self/ns/net --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("dropprobe ports: --dev and --netns need the packet of each drop", 1, true), out)
    state.assert_same(before)
  end, "!kprobes")
end)
