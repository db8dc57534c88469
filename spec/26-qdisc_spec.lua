-- Qdisc drops explained: a `pfifo limit 0` qdisc on the loopback of a
-- namespace made here drops every datagram; each QDISC_DROP is joined with
-- the kernel's qdisc:qdisc_drop of the same skb, and counted against
-- `tc -s qdisc`'s own `dropped`.
local cjson = require "cjson"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

local sh = run.sh
-- a namespace whose loopback drops every packet at its qdisc
local PFIFO0 = { "tc qdisc add dev lo root pfifo limit 0" }

-- what `tc -s qdisc` says the root qdisc of lo in ns dropped
local function tc_dropped(ns)
  local out = sh("ip netns exec " .. ns .. " tc -s qdisc show dev lo")
  return tonumber(out:match("dropped (%d+)")), out
end

describe("26 qdisc", function()
  live_it("names the qdisc of every QDISC_DROP, as many as tc counts #live", function()
    local before = state.snapshot()
    run.with_netns("q", PFIFO0, function(ns)
      local h = run.bg(DP .. "watch --json --netns " .. ns .. " --duration 4")
      h.ready()
      local d0 = tc_dropped(ns)
      sh(("ip netns exec %s bash -c 'for i in $(seq 7); do echo x > /dev/udp/127.0.0.1/9; done'"):format(ns))
      local d1, tc = tc_dropped(ns)
      local out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal(7, d1 - d0, tc)
      local n, all = 0, 0
      for line in out:gmatch("[^\n]+") do
        local d = cjson.decode(line)
        all = all + 1
        if d.reason == "QDISC_DROP" then
          n = n + 1
          assert.is_table(d.qdisc, line)
          assert.are.same({ "pfifo", "GENERIC", "lo" }, { d.qdisc.kind, d.qdisc.reason, d.qdisc.dev })
          assert.are.equal(0xFFFFFFFF, math.tointeger(d.qdisc.parent)) -- the root
        end
      end
      assert.are.equal(7, n, out)
      -- the line names the qdisc, not the function that freed the list
      h = run.bg(DP .. "watch --netns " .. ns .. " --duration 3")
      h.ready()
      sh(("ip netns exec %s bash -c 'echo x > /dev/udp/127.0.0.1/9'"):format(ns))
      out = h.wait()
      assert.truthy(out:find("QDISC_DROP qdisc=pfifo handle=0x", 1, true), out)
      assert.truthy(out:find("reason=GENERIC dev=lo", 1, true), out)
    end)
    state.assert_same(before)
  end, "qdisc_drop")

  live_it("says why a QDISC_DROP shows no qdisc where the kernel has no qdisc:qdisc_drop #live", function()
    local dp = require "dropprobe"
    local before = state.snapshot()
    run.with_netns("qn", PFIFO0, function(ns)
      -- the tracepoint (text mode: no drop probe), which sees a packet list
      -- freed at once too (kfree_skb_list_reason: the probe's function is not called there)
      local h = run.bg(DP .. "watch --json --mode text --duration 4")
      h.ready()
      local d0 = tc_dropped(ns)
      sh(("ip netns exec %s bash -c 'for i in $(seq 5); do echo x > /dev/udp/127.0.0.1/9; done'"):format(ns))
      local d1, tc = tc_dropped(ns)
      local out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal(5, d1 - d0, tc)
      local n, all = 0, 0
      for line in out:gmatch("[^\n]+") do
        local d = cjson.decode(line)
        all = all + 1
        if d.reason == "QDISC_DROP" then
          n = n + 1
          assert.is_nil(d.qdisc, line)
        end
      end
      if dp.reasons().QDISC_DROP then
        assert.are.equal(5, n, out)
        assert.truthy(errout:find("5 QDISC_DROP drops show no qdisc: this kernel has no qdisc:qdisc_drop "
          .. "tracepoint", 1, true), errout)
      else -- no drop reasons: the drops are seen, with nothing to explain, and nothing said
        assert.is_true(all >= 5, out)
        assert.are.equal(0, n, out)
        assert.falsy(errout:find("QDISC_DROP", 1, true), errout)
      end
    end)
    state.assert_same(before)
  end, "!qdisc_drop")

  live_it("names each qdisc reason qdisc/NAME from the BTF, as qdisc:qdisc_drop prints it, "
    .. "and takes the names in conditions #live", function()
    local dp = require "dropprobe"
    local before = state.snapshot()
    -- the tracepoint's own table against the names made from the BTF enums
    local f = dp.format("qdisc", "qdisc_drop")
    local r, named = dp.reasons(), 0
    for num, name in pairs(f.symbols.reason or {}) do
      if num >> dp.SUBSYS_SHIFT ~= 0 and name ~= "MAX" then
        assert.are.equal("qdisc/" .. name, r[num])
        assert.are.equal(num, r["qdisc/" .. name])
        named = named + 1
      end
    end
    assert.is_true(named > 1, "qdisc:qdisc_drop names no subsystem reason")
    local generic = r["qdisc/GENERIC"]
    -- a value the BTF does not name still shows its subsystem
    assert.are.equal("qdisc/4095", dp.reason_label((generic & ~0xffff) | 4095))
    -- the CLI lists them with their numbers
    local out = sh(DP .. "reasons --json")
    local listed
    for _, e in ipairs(cjson.decode(out).reasons) do
      if e.name == "qdisc/GENERIC" then listed = e.number end
    end
    assert.are.equal(generic, listed, out)
    -- a kernel filter by the subsystem's name: exactly the datagrams tc counts
    run.with_netns("qs", PFIFO0, function(ns)
      local inst <close> = dp.instance()
      local ev = inst:event("qdisc:qdisc_drop")
      ev:filter("reason == qdisc/GENERIC")
      local written = ev:read_file("filter")
      assert.truthy(written:find("reason == " .. generic, 1, true), written)
      ev:enable()
      local d0 = tc_dropped(ns)
      sh(("ip netns exec %s bash -c 'for i in $(seq 5); do echo x > /dev/udp/127.0.0.1/9; done'"):format(ns))
      local d1, tc = tc_dropped(ns)
      assert.are.equal(5, d1 - d0, tc)
      local n = 0
      for rec in inst:records{ mode = "raw", timeout = 1 } do
        if rec.name == "qdisc_drop" then
          n = n + 1
          assert.are.equal("GENERIC", rec.fields.reason)
        end
      end
      assert.are.equal(5, n)
      -- another subsystem reason: none of these
      ev:filter("reason == qdisc/OVERLIMIT")
      sh(("ip netns exec %s bash -c 'echo x > /dev/udp/127.0.0.1/9'"):format(ns))
      for rec in inst:records{ mode = "raw", timeout = 1 } do
        assert.are_not.equal("qdisc_drop", rec.name)
      end
    end)
    state.assert_same(before)
  end, "qdisc_drop")
end)
