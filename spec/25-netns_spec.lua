-- The device and network namespace of each drop: two namespaces made here,
-- drops inside each, told apart by the namespace's inode, checked against
-- each namespace's own Udp NoPorts and the inode `stat -L` gives a process
-- in it.
local cjson = require "cjson"
local util = require "dropprobe.util"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

-- Udp NoPorts as a namespace's own /proc/net/snmp has it
local function noports(ns)
  local out = sh("ip netns exec " .. ns .. " cat /proc/net/snmp")
  local names, values = out:match("Udp: ([^\n]+)\nUdp: ([^\n]+)")
  local k = 0
  local vs = {}
  for v in values:gmatch("%S+") do vs[#vs + 1] = tonumber(v) end
  for name in names:gmatch("%S+") do
    k = k + 1
    if name == "NoPorts" then return vs[k] end
  end
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
    local pid = select(1, sh("echo $PPID")):match("%d+") or "x"
    local A, B = "dpspec_a_" .. pid, "dpspec_b_" .. pid
    local ok, err = pcall(function()
      for _, ns in ipairs({ A, B }) do
        assert(select(2, sh("ip netns add " .. ns)), "ip netns add " .. ns)
        assert(select(2, sh("ip -n " .. ns .. " link set lo up")))
      end
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
    end)
    sh("ip netns del " .. A)
    sh("ip netns del " .. B)
    assert(ok, err)
    state.assert_same(before)
  end, "kprobes")

  live_it("says --dev and --netns need the packet where the kernel gives none #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(DP .. "watch --dev lo --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("--dev and --netns need the packet of each drop", 1, true), out)
    state.assert_same(before)
  end, "!kprobes")
end)
