-- Recording drops to a trace.dat (`dropprobe record`, issue 24): stock
-- `trace-cmd report` reads the file (this host's `trace-cmd record` cannot
-- even start: it must write /proc/sys/kernel/ftrace_enabled), and prints
-- each drop the kernel counted (Udp NoPorts) with its reason, location and
-- stack; dp.open reads the same drops from it. The flight recorder stops
-- the ring buffer in the kernel at a chosen drop: the file ends with that
-- drop and holds what came before it. Signals finish a valid file; kill -9
-- leaves one dp.open refuses cleanly, and `dropprobe cleanup` removes the
-- instance. Nothing is left in tracefs after any of them.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local run = require "helpers.run"
local kernel = require "helpers.kernel"
local where = require "helpers.where"
local live_it = live.bind(it, pending)

local N = 12

-- a file name in a fresh directory of its own
local function tmpfile(name)
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d .. "/" .. name, d
end

local function report(path)
  local out, rc = run.cmd("trace-cmd report " .. path)
  assert.are.equal(0, rc, out)
  return out
end

-- the kfree_skb lines of a trace-cmd report, each with the stack lines
-- that follow it (the next kernel_stack on the same CPU)
local function drops_of(text)
  local drops, last_by_cpu, cur_stack = {}, {}, nil
  for line in text:gmatch("[^\n]+") do
    local cpu = line:match("%[(%d+)%]")
    if line:find(" kfree_skb: ", 1, true) then
      local d = { line = line, skb = line:match("skbaddr=0x(%x+)"), protocol = tonumber(line:match("protocol=(%d+)")),
        location = line:match("location=(%S+)"), reason = line:match("reason: (%S+)"), frames = {} }
      drops[#drops + 1] = d
      last_by_cpu[cpu] = d
      cur_stack = nil
    elseif line:find(" kernel_stack: ", 1, true) then
      cur_stack = last_by_cpu[cpu]
      last_by_cpu[cpu] = nil
    elseif line:match("^=> ") and cur_stack then
      cur_stack.frames[#cur_stack.frames + 1] = line:match("^=> (%S+)")
    else
      cur_stack = nil
    end
  end
  return drops
end

-- the drop records dp.open gives
local function opened(path)
  local recs = {}
  for rec in dp.open(path) do
    if rec.name == "kfree_skb" then recs[#recs + 1] = rec end
  end
  return recs
end

-- whether this kernel prints kfree_skb's location as a symbol (%pS)
local function location_symbolic()
  local f = dp.format("skb", "kfree_skb")
  return tostring(f.print_fmt or ""):find("location=%pS", 1, true) ~= nil
end

local COND = kernel.cond("reason == NO_SOCKET", "protocol == 2048")

describe("28 record", function()
  live_it("records N drops: trace-cmd report prints N kfree_skb lines with reasons, locations and stacks; "
    .. "dp.open gives the same N #live", function()
    local before = state.snapshot()
    local f = tmpfile("f.dat")
    local port = net.free_udp_port()
    -- the live reader, beside the recorder: the same drops, decoded
    local inst = dp.instance{ buffer_kb = 1024 }
    local ev = inst:event("skb:kfree_skb")
    ev:filter(COND)
    ev:trigger(dp.trigger_if("stacktrace", COND))
    ev:enable()
    local pipe = inst:pipe{ mode = "raw" }
    local h = run.bg(run.DROPPROBE .. ("record -o %s --duration 3 --filter '%s'"):format(f, COND))
    h.listening()
    local s0 = snmp.read()
    net.udp_closed(port, N)
    local d = snmp.settled(s0, "Udp.NoPorts", N)
    assert.are.equal(N, d)
    local live_recs = {}
    while #live_recs < d do
      local rec = pipe:read(5)
      if not rec then break end
      if rec.name == "kfree_skb" then live_recs[#live_recs + 1] = rec end
    end
    pipe:close()
    inst:close()
    local _, rc, err = h.wait(120)
    assert.are.equal(0, rc, err)
    assert.matches("written to " .. f:gsub("%p", "%%%0"), err)
    local drops = drops_of(report(f))
    assert.are.equal(d, #drops)
    local recs = opened(f)
    assert.are.equal(d, #recs)
    assert.are.equal(d, #live_recs)
    local symbolic = location_symbolic()
    for i, x in ipairs(drops) do
      assert.are.equal(2048, x.protocol)
      if kernel.reason("NO_SOCKET") then assert.are.equal("NO_SOCKET", x.reason) end
      if symbolic then kernel.func(x.location) end -- a function of this kernel, as the reader names it
      assert.is_true(#x.frames > 3, x.line)
      for _, fr in ipairs(x.frames) do kernel.func(fr) end
      -- the same drop, in the same order, from dp.open
      local r = recs[i]
      assert.are.equal(x.skb, (tostring(r.fields.skbaddr):gsub("^0+", "")))
      assert.are.equal(kernel.reason("NO_SOCKET"), r.fields.reason)
      assert.is_truthy(r.stack and #r.stack > 0)
      assert.is_truthy(where(r))
      -- as the live reader gave it (its own instance: its own timestamps)
      local l = live_recs[i]
      assert.are.equal(l.fields.skbaddr, r.fields.skbaddr)
      assert.are.equal(l.fields.reason, r.fields.reason)
      assert.are.equal(l.fields.location, r.fields.location)
      assert.are.same(l.stack, r.stack)
    end
    state.assert_same(before, state.snapshot())
  end)

  live_it("the flight recorder: a storm, one chosen drop, more traffic; the file ends with the chosen drop "
    .. "#live", function()
    local before = state.snapshot()
    local f = tmpfile("fl.dat")
    local port, port6 = net.free_udp_port(), net.free_udp_port(6)
    local h = run.bg(run.DROPPROBE .. ("record -o %s --until 'protocol == 34525' --duration 60"):format(f))
    h.listening()
    local s0 = snmp.read()
    net.udp_closed(port, 200)
    net.udp_closed(port6, 1, 6) -- the chosen one: the only IPv6 drop
    net.udp_closed(port, 100)
    assert.are.equal(300, snmp.settled(s0, "Udp.NoPorts", 300))
    local _, rc, err = h.wait(120)
    assert.are.equal(0, rc, err)
    assert.matches("frozen at drop 1", err)
    local drops = drops_of(report(f))
    assert.is_true(#drops >= 201, #drops)
    assert.are.equal(34525, drops[#drops].protocol)
    assert.is_true(#drops[#drops].frames > 3) -- its stack came before the buffer stopped
    local v4 = 0
    for i = 1, #drops - 1 do if drops[i].protocol == 2048 then v4 = v4 + 1 end end
    assert.are.equal(#drops - 1, v4)
    local recs = opened(f)
    assert.are.equal(#drops, #recs)
    assert.are.equal(34525, recs[#recs].fields.protocol)
    state.assert_same(before, state.snapshot())
  end)

  live_it("record --packets: each drop's packet is in the file, watch --from shows its port #live", function()
    local before = state.snapshot()
    local f = tmpfile("p.dat")
    local port = net.free_udp_port()
    local h = run.bg(run.DROPPROBE .. ("record -o %s --packets --duration 3 --filter '%s'"):format(f, COND))
    h.listening()
    local s0 = snmp.read()
    net.udp_closed(port, 5)
    assert.are.equal(5, snmp.settled(s0, "Udp.NoPorts", 5))
    local _, rc, err = h.wait(120)
    assert.are.equal(0, rc, err)
    assert.are.equal(5, #drops_of(report(f)))
    local out, code = run.cmd(run.DROPPROBE .. "watch --from " .. f .. " --json")
    assert.are.equal(0, code, out)
    local n = 0
    for line in out:gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then
        local d = require("cjson").decode(line)
        if type(d.packet) == "table" and d.packet.dport == port and d.packet.proto == "udp" then n = n + 1 end
      end
    end
    assert.are.equal(5, n)
    state.assert_same(before, state.snapshot())
  end, "kprobes")

  for _, sig in ipairs({ { "INT", 130 }, { "TERM", 143 } }) do
    live_it(("SIG%s finishes a valid file #live"):format(sig[1]), function()
      local before = state.snapshot()
      local f = tmpfile("s.dat")
      local port = net.free_udp_port()
      local h = run.bg(run.DROPPROBE .. ("record -o %s --duration 120 --filter '%s'"):format(f, COND))
      h.listening()
      local s0 = snmp.read()
      net.udp_closed(port, 5)
      assert.are.equal(5, snmp.settled(s0, "Udp.NoPorts", 5))
      run.sleep(0.5)
      h.signal(sig[1])
      local _, rc, err = h.wait(60)
      assert.are.equal(sig[2], rc, err)
      assert.are.equal(5, #drops_of(report(f)))
      assert.are.equal(5, #opened(f))
      state.assert_same(before, state.snapshot())
    end)
  end

  live_it("kill -9 leaves a file dp.open refuses cleanly, and cleanup removes the instance #live", function()
    local before = state.snapshot()
    local f, dir = tmpfile("k.dat")
    local h = run.bg(run.DROPPROBE .. ("record -o %s --duration 120"):format(f))
    h.listening()
    h.signal("KILL")
    h.wait(30)
    local ok, e = pcall(opened, f)
    if not ok then
      assert.matches("cannot read trace.dat", tostring(e))
    end
    -- the pages were kept in unlinked files: nothing else is left beside it
    local p = io.popen("ls -A " .. dir)
    local left = p:read("a")
    p:close()
    assert.are.equal("k.dat\n", left)
    local out, rc = run.cmd(run.DROPPROBE .. "cleanup")
    assert.are.equal(0, rc, out)
    state.assert_same(before, state.snapshot())
  end)

  live_it("a path that cannot be written is refused before tracefs is touched #live", function()
    local before = state.snapshot()
    local out, rc = run.cmd(run.DROPPROBE .. "record -o /nonexistent-dir/x.dat --duration 1")
    assert.are.equal(2, rc)
    assert.matches("cannot write '/nonexistent%-dir/x.dat': no directory", out)
    assert.matches("nothing was changed in tracefs", out)
    state.assert_same(before, state.snapshot())
  end)
end)

describe("28 record, replay (no privileges)", function()
  local DAT = "spec/fixtures/trace-udp-drops.dat"

  it("watch, stacks, ports and top --from read a trace.dat as the live kernel", function()
    local out, rc = run.cmd(run.DROPPROBE .. "watch --from " .. DAT)
    assert.are.equal(0, rc, out)
    local lines = 0
    for l in out:gmatch("[^\n]+") do if l:match("^%d+%.%d+ cpu%d") then lines = lines + 1 end end
    assert.are.equal(4, lines)
    assert.matches("4 drops in " .. DAT:gsub("%p", "%%%0"), out)
    out, rc = run.cmd(run.DROPPROBE .. "stacks --from " .. DAT .. " --json")
    assert.are.equal(0, rc, out)
    local j = require("cjson").decode(out:match("{.*}"))
    assert.are.equal(4, j.matched)
    assert.are.equal(2, j.with_stack)
    assert.are.equal("__udp4_lib_rcv", j.stacks[1].frames[1])
    out, rc = run.cmd(run.DROPPROBE .. "ports --from " .. DAT .. " --json")
    assert.are.equal(0, rc, out)
    j = require("cjson").decode(out:match("{.*}"))
    assert.are.equal(4, j.unattributed.NO_SOCKET) -- the fixture has no event that carries ports
    out, rc = run.cmd(run.DROPPROBE .. "top --from " .. DAT)
    assert.are.equal(0, rc, out)
    assert.matches("NO_SOCKET%s+__udp4_lib_rcv%s+3", out)
    assert.matches("NO_SOCKET%s+tcp_v4_rcv%s+1", out)
  end)

  it("refuses what only a live hunt can narrow, and a file that is not there", function()
    local out, rc = run.cmd(run.DROPPROBE .. "watch --from " .. DAT .. " --filter 'reason == NO_SOCKET'")
    assert.are.equal(2, rc)
    assert.matches("dropprobe watch: %-%-from: %-%-filter is for live hunts", out)
    -- the packet narrowing of ports and stacks too, never silently ignored
    out, rc = run.cmd(run.DROPPROBE .. "ports --from " .. DAT .. " --netns 4026531840")
    assert.are.equal(2, rc)
    assert.matches("dropprobe ports: %-%-from: %-%-netns is for live hunts", out)
    out, rc = run.cmd(run.DROPPROBE .. "stacks --from " .. DAT .. " --dev lo")
    assert.are.equal(2, rc)
    assert.matches("dropprobe stacks: %-%-from: %-%-dev is for live hunts", out)
    out, rc = run.cmd(run.DROPPROBE .. "ports --from " .. DAT .. " 'udp and dst port 9'")
    assert.are.equal(2, rc)
    assert.matches("dropprobe ports: %-%-from: a packet filter is for live hunts", out)
    out, rc = run.cmd(run.DROPPROBE .. "ports --from /nonexistent/f.dat")
    assert.are.equal(2, rc)
    assert.matches("cannot open '/nonexistent/f.dat'", out)
  end)

  it("checks a path before anything else (dp.core.dat_check)", function()
    local ok, why = dp.core.dat_check("/nonexistent-dir/x.dat")
    assert.is_nil(ok)
    assert.matches("no directory '/nonexistent%-dir'", why)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    ok, why = dp.core.dat_check(dir)
    assert.is_nil(ok)
    assert.matches("is a directory", why)
    -- more room asked for than any disk has: refused, saying how much there is
    ok, why = dp.core.dat_check(dir .. "/f.dat", 1 << 60)
    assert.is_nil(ok)
    assert.matches("kB free, a recording needs at least", why)
    os.execute("rmdir " .. dir)
  end)
end)
