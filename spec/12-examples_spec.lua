-- Every example in examples/ runs, and shows what it promises.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local net = require "helpers.net"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local function example(name, args)
  return run.LUA .. "examples/" .. name .. (args and (" " .. args) or "")
end

describe("12 examples #proc", function()
  live_it("demo.lua finds a TCP and a UDP drop with reason and stack, in both modes #live", function()
    local before = state.snapshot()
    for _, mode in ipairs({ "text", "raw" }) do
      local out, code = run.cmd(example("demo.lua", mode))
      assert.are.equal(0, code, out)
      assert.truthy(out:find("TCP drop found: reason NO_SOCKET at tcp_v4_rcv", 1, true), out)
      assert.truthy(out:find("UDP drop found: reason NO_SOCKET at __udp4_lib_rcv", 1, true), out)
      assert.truthy(out:find("\n => tcp_v4_rcv", 1, true), out)
      assert.truthy(out:find("lost: 0", 1, true), out)
    end
    state.assert_same(before)
  end)

  live_it("seed-walkthrough.lua prints the TCP drop with its stack #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(example("seed-walkthrough.lua"))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("reason NO_SOCKET, dropped in tcp_v4_rcv", 1, true), out)
    assert.truthy(out:find(" => tcp_v4_rcv", 1, true), out)
    state.assert_same(before)
  end)

  live_it("kprobe-reason.lua builds the probe for this kernel and reports the drop #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(example("kprobe-reason.lua"))
    assert.are.equal(0, code, out)
    local hook = dp.drop_hook()
    assert.truthy(out:find("the probe line: p:dropprobe/my_skb_probe " .. hook.func .. " skb=%", 1, true), out)
    assert.truthy(out:find("reason NO_SOCKET, skb ", 1, true), out)
    if dp.features().kprobes then
      assert.truthy(out:find("my_skb_probe: ", 1, true), out) -- the probe's own record
      assert.truthy(out:find(" => tcp_v4_rcv", 1, true), out)
    end
    state.assert_same(before)
  end)

  live_it("conditional-stacks.lua, drops-per-port.lua and top-reasons.lua report real drops #live", function()
    local before = state.snapshot()
    local cases = {
      { "conditional-stacks.lua", function() net.udp_closed(9999, 7) end,
        { "7 drops matched", "\nfolded:\n", ";__udp4_lib_rcv 7" } },
      { "drops-per-port.lua", function() net.udp_closed(9999, 9) end,
        { "udp     9999  NO_SOCKET", "udp port 9999 lost 9 datagrams" } },
      { "top-reasons.lua", function() net.udp_closed(9999, 11) end,
        { "NO_SOCKET=11", "\nNO_SOCKET                    11" } },
    }
    for _, c in ipairs(cases) do
      -- the stacks of our drops only: the guest's own (NOT_SPECIFIED from
      -- unix_stream_connect on 6.1) would be ranked beside them
      local h = run.bg(example(c[1], c[1] == "conditional-stacks.lua" and "2.5 'reason == NO_SOCKET'" or "2.5"))
      h.ready()
      c[2]()
      local out, rc, err = h.wait()
      assert.are.equal(0, rc, c[1] .. ": " .. err)
      for _, want in ipairs(c[3]) do
        assert.truthy(out:find(want, 1, true), c[1] .. " lacks " .. want .. ":\n" .. out)
      end
    end
    state.assert_same(before)
  end)
end)
