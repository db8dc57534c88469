-- trace.dat files written by stock trace-cmd read back through dp.open with
-- the same decoder as raw mode.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local live_it = live.bind(it, pending)

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
end

describe("08 trace.dat", function()
  it("tells a bad file from a trace.dat by its magic bytes", function()
    local path = os.tmpname()
    local f = io.open(path, "wb")
    f:write("\23\8\68tracing6\0garbage that is no trace.dat")
    f:close()
    local ok, err = pcall(dp.open, path)
    os.remove(path)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cannot read trace.dat", 1, true))
  end)

  it("reads a saved trace.dat with its own formats and symbols, stacks joined", function()
    -- spec/fixtures/trace-udp-drops.dat: `trace-cmd extract -B` of an instance
    -- with kfree_skb (reason == NO_SOCKET), a stacktrace:2 trigger, three
    -- UDP datagrams and one TCP connect to closed ports
    local recs = {}
    for rec in dp.open("spec/fixtures/trace-udp-drops.dat") do recs[#recs + 1] = rec end
    assert.are.equal(4, #recs)
    local udp, tcp, stacks = 0, 0, 0
    for _, r in ipairs(recs) do
      assert.are.equal("kfree_skb", r.name)
      assert.are.equal("NO_SOCKET", r.fields.reason)
      if r.fields.location:find("^__udp4_lib_rcv%+") then udp = udp + 1 end
      if r.fields.location:find("^tcp_v4_rcv%+") then tcp = tcp + 1 end
      if r.stack then
        stacks = stacks + 1
        -- from the function that dropped: the place the kernel says
        assert.are.equal(r.fields.location:match("^[^+]+"), r.stack[1]:match("^[^+]+"))
      end
    end
    assert.are.same({ 3, 1, 2 }, { udp, tcp, stacks })
    -- closed on a break and collected: nothing to see but valgrind's word
    for _ in dp.open("spec/fixtures/trace-udp-drops.dat") do break end -- luacheck: ignore 512
    collectgarbage()
  end)

  live_it("reads a trace-cmd extract of a filled instance: count equals Udp NoPorts #live", function()
    assert.is_true(have("trace-cmd"), "trace-cmd is not installed (make deps)")
    local before = state.snapshot()
    local inst <close> = dp.instance{ buffer_kb = 2048 }
    local ev = inst:event("skb:kfree_skb")
    local cond = kernel.cond("reason == NO_SOCKET", "protocol == 2048")
    ev:filter(cond)
    ev:trigger("stacktrace:5 if " .. cond)
    ev:enable()
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 1500)
    local s1 = snmp.read()
    inst:tracing(false)
    local dat = os.tmpname()
    finally(function() os.remove(dat) end)
    local cmd = ("cd /tmp && trace-cmd extract -B %s -o %s >/dev/null 2>&1"):format(inst:name(), dat)
    assert.is_true(os.execute(cmd), "trace-cmd extract failed")
    local n, stacks, lost = 0, 0, 0
    local it, a, b, pipe = dp.open(dat)
    for rec in it, a, b, pipe do
      if rec.name == "kfree_skb" then
        n = n + 1
        assert.are.equal(kernel.reason("NO_SOCKET"), rec.fields.reason)
        -- the place as this kernel's kallsyms has it
        assert.are.equal(kernel.at(rec.fields.location_addr), kernel.func(rec.fields.location))
        if rec.stack then stacks = stacks + 1 end
      end
      lost = lost + (rec.lost_before or 0)
    end
    assert.are.equal(1500, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(0, lost)
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), n)
    assert.are.equal(5, stacks)
    inst:close() -- trace-cmd removed the instance already: closing is quiet
    state.assert_same(before)
  end)
end)
