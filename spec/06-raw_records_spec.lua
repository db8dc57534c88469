-- Raw mode: the per-CPU binary buffers decoded in C through libtraceevent,
-- checked against the kernel's counters and against text mode.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local live_it = live.bind(it, pending)

describe("06 raw records", function()
  live_it("reads exactly the Udp NoPorts delta for 3000 drops, named and symbolized #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance{ buffer_kb = 4096 }
    local ev = inst:event("skb:kfree_skb")
    ev:filter(kernel.cond("reason == NO_SOCKET", "protocol == 2048"))
    ev:enable()
    local pipe <close> = inst:pipe{ mode = "raw" }
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 3000)
    local s1 = snmp.read()
    -- every drop named and symbolized as this kernel's kallsyms places it
    local udp, places = 0, {}
    dp.each(pipe, { idle = 0.5 }, function(rec)
      udp = udp + 1
      assert.are.equal(kernel.reason("NO_SOCKET"), rec.fields.reason)
      assert.are.equal("skb", rec.system)
      assert.are.equal(2048, rec.fields.protocol)
      assert.truthy(rec.fields.location_addr:find("^ff%x+$") and #rec.fields.location_addr == 16,
        rec.fields.location_addr)
      assert.truthy(rec.fields.skbaddr:find("^ff%x+$") and #rec.fields.skbaddr == 16, rec.fields.skbaddr)
      local fn = rec.fields.location:match("^([%w_.]+)%+0x%x+/0x%x+$")
      assert.are.equal(kernel.at(rec.fields.location_addr), fn, rec.fields.location)
      places[fn] = true
    end)
    local stats = pipe:stats()
    assert.are.equal(3000, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), udp)
    assert.are.equal(0, stats.lost)
    assert.are.equal(udp, stats.read)
    assert.are.equal(1, #(function() local l = {} for k in pairs(places) do l[#l + 1] = k end return l end)())
    pipe:close()
    inst:close()
    state.assert_same(before)
  end)

  live_it("agrees with text mode record by record, stacks included #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance{ buffer_kb = 2048 }
    local ev = inst:event("skb:kfree_skb")
    local cond = dp.drop_condition()
    ev:filter(cond)
    ev:trigger(dp.trigger_if("stacktrace", cond))
    ev:enable()
    -- where text mode has real pointers (probed: not 6.1), they are raw mode's
    local real = inst:real_pointers()
    -- keep the drops in the buffer, then read the same buffer twice: the
    -- kernel's `trace` file (text, not consumed) and trace_pipe_raw
    inst:tracing(true)
    net.tcp_closed(9, 5)
    net.udp_closed(net.free_udp_port(), 20)
    inst:tracing(false)
    local dir = inst:dir()
    local text = {}
    for rec in dp.open(dir .. "/trace") do
      if rec.name == "kfree_skb" then text[#text + 1] = rec end
    end
    local raw = {}
    for rec in inst:records{ mode = "raw", timeout = 0.5 } do
      if rec.name == "kfree_skb" then raw[#raw + 1] = rec end
    end
    assert.is_true(#text >= 25)
    assert.are.equal(#text, #raw)
    for i = 1, #text do
      local t, r = text[i], raw[i]
      assert.are.equal(t.cpu, r.cpu)
      assert.are.equal(t.fields.reason, r.fields.reason)
      if not t.fields.location:find("^%x+$") then -- a symbol where the kernel printed one
        assert.are.equal(t.fields.location, r.fields.location)
      end
      assert.are.equal(t.fields.protocol, r.fields.protocol)
      assert.are.equal("string", type(t.fields.skbaddr)) -- one representation: 16 hex digits
      assert.are.equal(16, #t.fields.skbaddr)
      assert.are.equal(16, #r.fields.skbaddr)
      if real then assert.are.equal(t.fields.skbaddr, r.fields.skbaddr) end
      assert.are.equal(t.flags, r.flags)
      assert.are.same(t.stack, r.stack)
      -- the kernel prints microseconds rounded half up (ns2usecs), raw mode
      -- keeps the nanoseconds: the same instant within half a microsecond
      -- (and a hair for the binary fractions)
      assert.is_true(math.abs(t.ts - r.ts) <= 0.5e-6 + 1e-9,
        ("text %.6f, raw %.9f"):format(t.ts, r.ts))
    end
    inst:close()
    state.assert_same(before)
  end)

  live_it("gives text and raw records one shape: the format's field names and the same values #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance{ buffer_kb = 2048 }
    inst:event("skb:kfree_skb"):filter(kernel.cond("reason == NO_SOCKET", "protocol == 2048"))
    for _, name in ipairs{ "skb:kfree_skb", "icmp:icmp_send", "tcp:tcp_send_reset" } do
      local ok, ev = pcall(inst.event, inst, name)
      if ok then ev:enable() end
    end
    local real = inst:real_pointers() -- where this kernel prints everything with them
    inst:tracing(true)
    local port = net.free_udp_port()
    net.udp_closed(port, 5)
    net.tcp_closed(9, 3)
    inst:tracing(false)
    local text, raw = {}, {}
    for rec in dp.open(inst:dir() .. "/trace") do text[#text + 1] = rec end
    for rec in inst:records{ mode = "raw", timeout = 0.5 } do raw[#raw + 1] = rec end
    assert.are.equal(#text, #raw)
    local icmp = 0
    for i = 1, #text do
      local t, r = text[i], raw[i]
      assert.are.equal(t.name, r.name)
      for k, v in pairs(t.fields) do
        -- tcp_send_reset prints state 0 as "UNKNOWN" (a ?: around its table)
        local pointer = type(v) == "string" and #v == 16 and v:find("^%x+$")
        if k ~= "state" and (real or not pointer) and not (k == "location" and pointer) then
          assert.are.equal(v, r.fields[k], t.name .. "." .. k)
        end
        assert.is_not_nil(r.fields[k], t.name .. "." .. k)
      end
      if t.name == "icmp_send" then
        icmp = icmp + 1
        -- "From 127.0.0.1:41234 to 127.0.0.1:<port>": the format's fields
        assert.are.equal(port, t.fields.dport)
        assert.are.equal("127.0.0.1", t.fields.daddr)
        assert.are.equal(3, t.fields.type)
      end
    end
    -- icmp:icmp_send where the kernel has it (not on 5.10)
    assert.are.equal(kernel.has_event("icmp:icmp_send") and 5 or 0, icmp)
    inst:close()
    state.assert_same(before)
  end)

  live_it("gives stacks to exactly 3 of 10 drops with stacktrace:3 #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance()
    local ev = inst:event("skb:kfree_skb")
    local cond = kernel.cond("reason == NO_SOCKET", "protocol == 2048")
    ev:filter(cond)
    ev:trigger("stacktrace:3 if " .. cond)
    ev:enable()
    local pipe <close> = inst:pipe{ mode = "raw" }
    local port = net.free_udp_port()
    net.udp_closed(port, 10)
    local n, stacks = 0, 0
    dp.each(pipe, { idle = 0.5 }, function(rec)
      n = n + 1
      if rec.stack then
        stacks = stacks + 1
        -- the stack passes through the place the kernel says it dropped
        local fn = kernel.func(rec.fields.location)
        assert.truthy(table.concat(rec.stack, " "):find(fn .. "+", 1, true), fn)
      end
    end)
    assert.are.equal(10, n)
    assert.are.equal(3, stacks)
    pipe:close()
    inst:close()
    state.assert_same(before)
  end)

  live_it("counts lost events exactly as the kernel's overrun on a tiny buffer #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance{ buffer_kb = 8 }
    local ev = inst:event("skb:kfree_skb")
    ev:filter(kernel.cond("reason == NO_SOCKET", "protocol == 2048"))
    ev:enable()
    net.udp_closed(net.free_udp_port(), 3000) -- nobody reads: the buffer overwrites
    inst:tracing(false)
    local overrun = 0
    for cpu = 0, 255 do
      local s = inst:read_file(("per_cpu/cpu%d/stats"):format(cpu))
      if not s then break end
      overrun = overrun + tonumber(s:match("\noverrun:%s*(%d+)"))
    end
    assert.is_true(overrun > 0)
    local pipe <close> = inst:pipe{ mode = "raw" }
    local n, marked = 0, 0
    dp.each(pipe, { idle = 0.3 }, function(rec)
      n = n + 1
      marked = marked + (rec.lost_before or 0)
    end)
    local stats = pipe:stats()
    assert.are.equal(overrun, stats.lost)
    assert.are.equal(overrun, stats.overrun)
    assert.are.equal(overrun, marked) -- the records after each gap carry it
    assert.is_true(n > 0)
    pipe:close()
    inst:close()
    state.assert_same(before)
  end)

  -- Where the kernel lets a reader map a CPU's buffer (6.10 on: it has
  -- ring_buffer_map_get_reader), raw mode reads each CPU's buffer in place;
  -- elsewhere, or with map = false, it copies the pages out. Either way a
  -- flood from both CPUs, read while it is written (sub-buffers taken while
  -- the kernel still adds to them), comes out whole, and C counting reads
  -- it the same way.
  live_it("reads a trickle one drop at a time: each once, though its sub-buffer is read again and again #live",
    function()
    -- the sub-buffer being written is read before it is full, many times
    -- over: a reader that does not go on from where it stopped (mapped:
    -- the resume offset; copied: the kernel's read position) hands out a
    -- drop twice
    local before = state.snapshot()
    local cond = kernel.cond("reason == NO_SOCKET", "protocol == 2048")
    for _, map in ipairs({ true, false }) do
      local inst <close> = dp.instance{ buffer_kb = 1024 }
      local ev = inst:event("skb:kfree_skb")
      ev:filter(cond)
      ev:enable()
      local pipe <close> = inst:pipe{ mode = "raw", map = map }
      local port = net.free_udp_port()
      local s0 = snmp.read()
      local seen = {}
      for i = 1, 25 do
        net.udp_closed(port, 1, 4, { counted = false })
        local rec = pipe:read(3)
        assert.truthy(rec, ("map = %s: drop %d not read"):format(map, i))
        local key = rec.fields.skbaddr .. "@" .. rec.ts
        assert.is_nil(seen[key], ("map = %s: drop %d handed out twice"):format(map, i))
        seen[key] = true
        assert.is_nil(pipe:read(0.05), ("map = %s: a record after drop %d"):format(map, i))
      end
      assert.are.equal(25, snmp.delta(s0, snmp.read(), "Udp.NoPorts"), ("map = %s"):format(map))
      assert.are.equal(0, pipe:stats().lost)
      assert.are.equal(map and kernel.has("ring_buffer_map_get_reader"), pipe:stats().mapped > 0)
      pipe:close()
      inst:close()
    end
    state.assert_same(before)
  end)

  live_it("reads the buffers mapped where the kernel lets it, copied elsewhere: a flood read whole #live", function()
    local before = state.snapshot()
    local can_map = kernel.has("ring_buffer_map_get_reader")
    local cond = kernel.cond("reason == NO_SOCKET", "protocol == 2048")
    local EACH = 5000
    -- the flood's drops: Udp NoPorts, and where every kfree_skb is a drop
    -- (no reasons) also what a CPU's backlog dropped before UDP saw it
    local function flood()
      local s0, b0 = snmp.read(), snmp.backlog_drops()
      local wait = net.udp_flood(net.free_udp_port(), EACH)
      return function()
        local sent = wait()
        local noports, backlog = snmp.udp_accounted(s0, b0, sent)
        -- every datagram counted; a CPU's backlog may also have dropped some of
        -- the ICMP port-unreachable replies (seen on 6.1: 43632 for 40000 sent)
        assert.is_true(noports <= sent and noports + backlog >= sent,
          ("%d sent, %d NoPorts, %d backlog"):format(sent, noports, backlog))
        return dp.has_reasons() and noports or noports + backlog
      end
    end
    for _, map in ipairs({ true, false }) do
      local inst <close> = dp.instance{ buffer_kb = 4096 }
      local ncpu = 0
      while inst:read_file(("per_cpu/cpu%d/stats"):format(ncpu)) do ncpu = ncpu + 1 end
      local ev = inst:event("skb:kfree_skb")
      ev:filter(cond)
      ev:enable()
      assert.has_error(function() inst:pipe{ mode = "raw", map = "yes" } end, "inst:pipe: map is true or false")
      -- what only the binary buffers have is refused in text mode, not ignored
      for k, v in pairs({ map = map, port = 9, buffer_percent = 1 }) do
        assert.has_error(function() inst:pipe{ mode = "text", [k] = v } end,
          ("inst:pipe: %s needs raw mode (mode = \"raw\")"):format(k))
      end
      local pipe <close> = inst:pipe{ mode = "raw", map = map }
      local done = flood()
      local n = 0
      dp.each(pipe, { idle = 1 }, function() n = n + 1 end)
      local stats = pipe:stats()
      assert.are.equal(done(), n, ("map = %s"):format(map))
      assert.are.equal(0, stats.lost)
      assert.are.equal((map and can_map) and ncpu or 0, stats.mapped)
      pipe:close()
      inst:close()
      -- counting in C over the same kind of buffers
      local h <close> = dp.hist{ keys = { "protocol" }, where = "c", map = map, condition = cond }
      h:run{ idle = 1, ready = function() done = flood() end }
      local r = h:read()
      assert.are.equal(done(), r.hits, ("map = %s"):format(map))
      assert.are.equal(0, r.lost)
      assert.are.equal((map and can_map) and ncpu or 0, r.mapped)
      h:close()
    end
    state.assert_same(before)
  end)

  live_it("names this kernel's addresses as libtraceevent does: the same name, start and size #live", function()
    -- ksym.c's table of /proc/kallsyms (what names a record's location and
    -- stack) against tep_parse_kallsyms over the same text, at every
    -- symbol's address and two past it; a distribution kernel's modules
    -- come after its own symbols, out of order, and sort here
    local before = state.snapshot()
    local symbols, lookups, out = require("helpers.ksym").assert_agrees("/proc/kallsyms")
    assert.is_true(symbols > 1000 and lookups > 3000, out)
    state.assert_same(before)
  end)
end)
