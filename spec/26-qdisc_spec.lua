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

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

-- what `tc -s qdisc` says the root qdisc of lo in ns dropped
local function tc_dropped(ns)
  local out = sh("ip netns exec " .. ns .. " tc -s qdisc show dev lo")
  return tonumber(out:match("dropped (%d+)")), out
end

describe("26 qdisc", function()
  live_it("names the qdisc of every QDISC_DROP, as many as tc counts #live", function()
    local before = state.snapshot()
    local ns = "dpspec_q_" .. (sh("echo $PPID"):match("%d+") or "x")
    local ok, err = pcall(function()
      assert(select(2, sh("ip netns add " .. ns)))
      assert(select(2, sh("ip -n " .. ns .. " link set lo up")))
      assert(select(2, sh("ip netns exec " .. ns .. " tc qdisc add dev lo root pfifo limit 0")))
      local h = run.bg(DP .. "watch --json --netns " .. ns .. " --duration 4")
      h.ready()
      local d0 = tc_dropped(ns)
      sh(("ip netns exec %s bash -c 'for i in $(seq 7); do echo x > /dev/udp/127.0.0.1/9; done'"):format(ns))
      local d1, tc = tc_dropped(ns)
      local out, rc, errout = h.wait()
      assert.are.equal(0, rc, errout)
      assert.are.equal(7, d1 - d0, tc)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        local d = cjson.decode(line)
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
    sh("ip netns del " .. ns)
    assert(ok, err)
    state.assert_same(before)
  end, "qdisc_drop")
end)
