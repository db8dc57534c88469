-- The dropped packets as pcapng: the writer's blocks read back against the
-- format, the files read by the real tcpdump and tshark, and live, the
-- packets of real drops on loopback (kernels with kprobes).
local cjson = require "cjson"
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local function hex(s) return (s:gsub("%s+", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

-- an IPv4 UDP datagram 127.0.0.1:43210 -> 127.0.0.2:5555 ("x"), 29 bytes
local V4_UDP = hex([[
  45 00 00 1d 12 34 40 00 40 11 00 00 7f 00 00 01 7f 00 00 02
  a8 ca 15 b3 00 09 00 00 78]])
-- an IPv6 TCP SYN ::1 port 40000 -> 2001:db8::7 port 5556, 60 bytes
local V6_TCP = hex([[
  60 00 00 00 00 14 06 40 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 07
  9c 40 15 b4 00 00 00 01 00 00 00 00 50 02 ff ff 00 00 00 00]])

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The blocks of a pcapng file, read independently of the writer: each
-- one's type, body and options, checked as the format says (lengths at
-- both ends, multiples of 4, zero padding, options ending in endofopt).
local function blocks(s)
  local out, pos = {}, 1
  while pos <= #s do
    assert(#s - pos + 1 >= 12, "a block shorter than 12 bytes at " .. pos)
    local btype, len = string.unpack("<I4I4", s, pos)
    assert(len % 4 == 0 and len >= 12, "block length " .. len .. " at " .. pos)
    assert(pos + len - 1 <= #s, "block cut short at " .. pos)
    assert.are.equal(len, string.unpack("<I4", s, pos + len - 4), "trailing length at " .. pos)
    local body = s:sub(pos + 8, pos + len - 5)
    local b = { type = btype, len = len }
    local opts_at
    if btype == 0x0A0D0D0A then
      b.magic, b.major, b.minor, b.section = string.unpack("<I4I2I2i8", body)
      opts_at = 17
    elseif btype == 1 then
      b.linktype, b.reserved, b.snaplen = string.unpack("<I2I2I4", body)
      opts_at = 9
    elseif btype == 6 then
      local hi, lo
      b.ifid, hi, lo, b.caplen, b.origlen = string.unpack("<I4I4I4I4I4", body)
      b.ts = hi << 32 | lo
      b.data = body:sub(21, 20 + b.caplen)
      local padded = (b.caplen + 3) // 4 * 4
      assert.are.equal(string.rep("\0", padded - b.caplen), body:sub(21 + b.caplen, 20 + padded), "data padding")
      opts_at = 21 + padded
    end
    b.opts = {}
    local o = opts_at
    while o and o <= #body do
      local code, olen = string.unpack("<I2I2", body, o)
      if code == 0 then
        assert.are.equal(0, olen)
        assert.are.equal(#body, o + 3, "opt_endofopt is the last option")
        break
      end
      local padded = (olen + 3) // 4 * 4
      b.opts[code] = body:sub(o + 4, o + 3 + olen)
      assert.are.equal(string.rep("\0", padded - olen), body:sub(o + 4 + olen, o + 3 + padded), "option padding")
      o = o + 4 + padded
    end
    out[#out + 1] = b
    pos = pos + len
  end
  return out
end

-- what tshark prints on stdout (its notes go to stderr, left out), and its exit code
local function tshark(args)
  local p = io.popen("tshark " .. args .. " 2>/dev/null")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- tcpdump's lines of a file (numbers, no names), and its exit code
local function tcpdump(path)
  return run.cmd("tcpdump -nn -tt -r " .. path .. " 2>&1")
end

describe("22 pcap", function()
  local tmp
  before_each(function() tmp = os.tmpname() end)
  after_each(function() os.remove(tmp) end)

  it("writes section, interface and packet blocks as the pcapng format has them", function()
    local w = dp.core.pcapng_open(tmp, { snaplen = 512 })
    -- 7 words, 29 bytes padded to 32, a comment option (36 padded), its end, the length again
    assert.are.equal(28 + 32 + 40 + 4 + 4,
      w:packet("lo", 1700000000123456789, V4_UDP, 29, "NO_SOCKET __udp4_lib_rcv+0x4bc/0xd00"))
    w:packet("eth0", 1700000001000000000, V6_TCP, 60, "NETFILTER_DROP nft_do_chain+0x40f/0x630")
    w:packet("lo", 1700000002000000000, V4_UDP:sub(1, 28), 29) -- no comment, cut short
    assert.are.same({ packets = 3, bytes = #slurp(tmp), interfaces = 2 }, w:stats())
    assert.is_true(w:close())
    assert.is_true(w:close()) -- idempotent
    assert.has_error(function() w:packet("lo", 0, "x") end, "attempt to use a closed pcap writer")
    local b = blocks(slurp(tmp))
    local types = {}
    for i, blk in ipairs(b) do types[i] = blk.type end
    assert.are.same({ 0x0A0D0D0A, 1, 6, 1, 6, 6 }, types)
    assert.are.same({ 0x1A2B3C4D, 1, 0, -1, "dropprobe" },
      { b[1].magic, b[1].major, b[1].minor, b[1].section, b[1].opts[4] })
    assert.are.same({ 101, 0, 512, "lo", "\9" },
      { b[2].linktype, b[2].reserved, b[2].snaplen, b[2].opts[2], b[2].opts[9] })
    assert.are.same({ 0, 1700000000123456789, 29, 29, V4_UDP },
      { b[3].ifid, b[3].ts, b[3].caplen, b[3].origlen, b[3].data })
    assert.are.equal("NO_SOCKET __udp4_lib_rcv+0x4bc/0xd00", b[3].opts[1])
    assert.are.equal("eth0", b[4].opts[2])
    assert.are.same({ 1, 60, V6_TCP }, { b[5].ifid, b[5].caplen, b[5].data })
    assert.are.same({ 0, 28, 29 }, { b[6].ifid, b[6].caplen, b[6].origlen })
    assert.is_nil(next(b[6].opts))
  end)

  it("keeps at most snaplen bytes and never an original length below what it kept", function()
    local w <close> = dp.core.pcapng_open(tmp, { snaplen = 20 })
    w:packet("lo", 5, V4_UDP, 3)
    w:close()
    local b = blocks(slurp(tmp))
    assert.are.same({ 20, 20, V4_UDP:sub(1, 20) }, { b[3].caplen, b[3].origlen, b[3].data })
  end)

  it("refuses a path it cannot make, and bad values, naming them", function()
    assert.has_error(function() dp.core.pcapng_open("/nonexistent/dir/f.pcapng") end,
      "pcap /nonexistent/dir/f.pcapng: cannot create: No such file or directory")
    assert.has_error(function() dp.core.pcapng_open(tmp, { snaplen = 0 }) end,
      "bad argument #2 to 'pcapng_open' (snaplen: 1 to 262144 bytes)")
    assert.has_error(function() dp.core.pcapng_open(tmp, { snapln = 5 }) end)
    local w <close> = dp.core.pcapng_open(tmp)
    assert.has_error(function() w:packet("lo", -1, "x") end,
      "bad argument #2 to 'packet' (a time in ns since the epoch)")
    assert.has_error(function() w:packet("lo", 1, "x", 1, string.rep("c", 70000)) end,
      "bad argument #5 to 'packet' (a comment of at most 65535 bytes)")
  end)

  it("writes a full disk's failure with what was written before", function()
    if not os.execute("test -c /dev/full") then return pending("no /dev/full device here") end
    local w <close> = dp.core.pcapng_open("/dev/full")
    assert.has_error(function() w:packet("lo", 1, "x") end,
      "pcap /dev/full: cannot write: No space left on device (0 packets, 0 bytes written before)")
  end)

  it("gives files that tcpdump and tshark read, a cut one up to its last whole block", function()
    local w = dp.core.pcapng_open(tmp)
    w:packet("lo", 1700000000123456789, V4_UDP, 29, "NO_SOCKET __udp4_lib_rcv+0x4bc/0xd00")
    w:packet("lo", 1700000001000000000, V6_TCP, 60, "NETFILTER_DROP nft_do_chain+0x40f/0x630")
    w:close()
    local out, rc = tcpdump(tmp)
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("1700000000.123456 IP 127.0.0.1.43210 > 127.0.0.2.5555: UDP, length 1", 1, true), out)
    assert.truthy(out:find("IP6 ::1.40000 > 2001:db8::7.5556: Flags [S]", 1, true), out)
    out, rc = tshark("-r " .. tmp .. " -T fields -e frame.comment -e frame.len")
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("NO_SOCKET __udp4_lib_rcv+0x4bc/0xd00\t29", 1, true), out)
    assert.truthy(out:find("NETFILTER_DROP nft_do_chain+0x40f/0x630\t60", 1, true), out)
    -- a writer killed in the middle of the last block: the ones before it read
    local s = slurp(tmp)
    local f = assert(io.open(tmp, "wb"))
    f:write(s:sub(1, #s - 10))
    f:close()
    out = tcpdump(tmp)
    assert.truthy(out:find("127.0.0.1.43210 > 127.0.0.2.5555", 1, true), out)
    assert.falsy(out:find("2001:db8::7", 1, true), out)
  end)

  it("writes a drop probe record's packet from its network header, with reason and location", function()
    local bytes = string.rep("\0", 14) .. V4_UDP .. string.rep("\0", 512 - 14 - #V4_UDP)
    local rec = { name = "drop", ts = 100.5, fields = { pkt = bytes, nh = 14, reason = "NO_SOCKET",
      location = "__udp4_lib_rcv+0x4bc/0xd00" }, packet = dp.core.decode_packet(bytes, 14) }
    local sink = dp.pcap(tmp) -- the sink for scripts, as `dropprobe.pcap` opens it
    assert.is_true(sink:write(rec))
    assert.is_false(sink:write{ name = "kfree_skb", ts = 1, fields = { reason = "NO_SOCKET" } })
    assert.are.same({ 1, 1 }, { sink:stats().packets, sink:stats().skipped })
    sink:close()
    local b = blocks(slurp(tmp))
    assert.are.same({ "drop", 29, 29, "NO_SOCKET __udp4_lib_rcv+0x4bc/0xd00" },
      { b[2].opts[2], b[3].caplen, b[3].origlen, b[3].opts[1] })
    assert.are.equal(V4_UDP, b[3].data)
    -- the kernel's monotonic time of the drop, moved onto the wall clock
    local offset = require("socket").gettime() - dp.now()
    assert.is_true(math.abs(b[3].ts / 1e9 - (100.5 + offset)) < 0.05)
  end)

  live_it("writes every dropped packet with its reason, as tcpdump and tshark read them #live", function()
    local before = state.snapshot()
    local port = net.free_udp_port()
    local h = run.bg(run.DROPPROBE .. "watch --json --pcap " .. tmp .. " --duration 4")
    h.ready()
    local s0 = snmp.read()
    net.udp_closed(port, 9)
    local s1 = snmp.read()
    local out, rc, err = h.wait()
    assert.are.equal(0, rc, err)
    local mine = 0
    for line in out:gmatch("[^\n]+") do
      local d = cjson.decode(line)
      if d.packet and d.packet.dport == port then mine = mine + 1 end
    end
    assert.are.equal(9, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(9, mine)
    local dump = tcpdump(tmp)
    local n = 0
    for _ in dump:gmatch("IP 127%.0%.0%.1%.%d+ > 127%.0%.0%.1%." .. port .. ": UDP") do n = n + 1 end
    assert.are.equal(9, n, dump)
    local comments = tshark("-r " .. tmp .. " -Y 'udp.dstport == " .. port .. "' -T fields -e frame.comment")
    local c = 0
    for line in comments:gmatch("[^\n]+") do
      c = c + 1
      assert.truthy(line:find(kernel.label("NO_SOCKET"), 1, true) == 1, line)
    end
    assert.are.equal(9, c, comments)
    assert.truthy(err:find("packets written to " .. tmp, 1, true), err)
    state.assert_same(before)
  end, "kprobes")

  live_it("refuses --pcap where the kernel gives no packet, before tracefs is touched #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(run.DROPPROBE .. "watch --pcap " .. tmp .. " --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("--pcap needs the packet of each drop", 1, true), out)
    state.assert_same(before)
  end, "!kprobes")
end)
