-- Real drops on loopback, read back in text mode, checked against the
-- kernel's own counters.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local where = require "helpers.where"
local kernel = require "helpers.kernel"
local live_it = live.bind(it, pending)

local function drop_hunt(inst, stack)
  local ev = inst:event("skb:kfree_skb")
  local cond = dp.drop_condition()
  ev:filter(cond)
  if stack then ev:trigger(dp.trigger_if("stacktrace", cond)) end
  ev:enable()
  return ev
end

describe("05 text records", function()
  live_it("finds a TCP connect to closed port 9 with reason and stack #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance()
    drop_hunt(inst, true)
    local pid = tonumber(io.open("/proc/self/stat"):read("l"):match("^(%d+)"))
    assert.are.equal(1, net.tcp_closed(9, 1))
    -- TCP's receive function: the protocol handler, in this kernel's kallsyms
    local tcp_rcv = kernel.named("tcp_v4_rcv")
    local found
    for rec in inst:records{ mode = "text", timeout = 1 } do
      if where(rec) == tcp_rcv and rec.pid == pid then found = rec break end
    end
    assert.truthy(found, "no kfree_skb record from " .. tcp_rcv)
    assert.are.equal(kernel.reason("NO_SOCKET"), found.fields.reason)
    assert.are.equal("skb", found.system)
    local frames = table.concat(found.stack, " ")
    assert.truthy(frames:find(tcp_rcv, 1, true))
    -- the location by name wherever the kernel printed a real address (as
    -- %pS, or as a bare %p on 5.10); only a hashed %p (6.1) stays a number,
    -- one that is no address of this kernel
    local loc = found.fields.location
    if loc:find("^%x+$") then
      assert.is_nil(kernel.at(loc), loc)
    else
      assert.are.equal(tcp_rcv, kernel.func(loc))
    end
    inst:close()
    state.assert_same(before)
  end)

  live_it("reads exactly the Udp NoPorts delta for 500 datagrams to a closed port #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance{ buffer_kb = 2048 }
    local ev = drop_hunt(inst, false)
    ev:filter(kernel.cond("reason == NO_SOCKET", "protocol == 2048"))
    local port = net.free_udp_port()
    local pipe <close> = inst:pipe{ mode = "text" }
    local s0 = snmp.read()
    net.udp_closed(port, 500)
    local s1 = snmp.read()
    -- our datagrams' drops: all at one place, a function of this kernel
    local n, at, hashed = 0, {}, 0
    dp.each(pipe, { idle = 0.5 }, function(rec)
      n = n + 1
      local w = where(rec) -- nil where text mode prints only a hashed pointer (6.1)
      if w then
        at[kernel.func(w)] = (at[kernel.func(w)] or 0) + 1
      else -- a hash: no address of this kernel
        assert.is_nil(kernel.at(rec.fields.location), rec.fields.location)
        hashed = hashed + 1
      end
    end)
    local stats = pipe:stats()
    assert.are.equal(500, snmp.delta(s0, s1, "Udp.NoPorts"))
    assert.are.equal(0, stats.lost)
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), n)
    local places = 0
    for _, k in pairs(at) do places = places + 1 assert.are.equal(n, k) end
    assert.are.equal(hashed == n and 0 or 1, places) -- one place, unless the kernel hashed them all
    assert.are.equal(n, stats.read)
    pipe:close()
    inst:close()
    state.assert_same(before)
  end)

  live_it("returns a record whose stack never comes after the grace time #live", function()
    local found = state.snapshot()
    local inst <close> = dp.instance()
    local ev = inst:event("skb:kfree_skb")
    local cond = kernel.cond("reason == NO_SOCKET", "protocol == 2048")
    ev:filter(cond)
    -- only the first drop gets a stack
    ev:trigger("stacktrace:1 if " .. cond)
    ev:enable()
    local port = net.free_udp_port()
    net.udp_closed(port, 2)
    local got = {}
    local t0 = dp.now()
    for rec in inst:records{ timeout = 1 } do got[#got + 1] = rec end
    assert.are.equal(2, #got)
    assert.truthy(got[1].stack and #got[1].stack > 3)
    assert.is_nil(got[2].stack)
    assert.truthy(dp.now() - t0 < 5)
    inst:close()
    state.assert_same(found)
  end)

  live_it("closes the pipe when the loop is left with break, so the instance can go #live", function()
    local before = state.snapshot()
    local inst = dp.instance()
    finally(function() inst:close() end)
    drop_hunt(inst, false)
    local it, s, c, pipe = inst:records{ timeout = 1 }
    net.udp_closed(net.free_udp_port(), 3)
    for _ in it, s, c, pipe do break end -- luacheck: ignore 512
    assert.truthy(tostring(pipe):find("closed", 1, true))
    inst:close()
    state.assert_same(before)
  end)

  live_it("refuses bad record options #live", function()
    local found = state.snapshot()
    local inst <close> = dp.instance()
    assert.has_error(function() inst:records{ timout = 1 } end,
      "inst:records: unknown option 'timout' (allowed: mode, timeout, limit, duration, grace, "
      .. "buffer_percent, raw_stacks, map)")
    assert.has_error(function() inst:records{ mode = "binary" } end, "inst:pipe: bad mode 'binary' (text or raw)")
    inst:close()
    state.assert_same(found)
  end)
end)
