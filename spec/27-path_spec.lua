-- The path of a dropped packet: every kernel function (a kprobe each, where
-- the kernel has kprobes) and tracepoint its skb passed through, in time
-- order, ending at the drop; checked against the kernel's own counters
-- (Udp NoPorts, an nftables rule's counter) and against what the kernel
-- lists (available_filter_functions, available_events).
local cjson = require "cjson"
local socket = require "socket"
local dp = require "dropprobe"
local path = require "dropprobe.recipes.path"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

local function paths_of(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do t[#t + 1] = cjson.decode(line) end
  return t
end

-- what a step may be called: a function available_filter_functions lists,
-- or an event available_events lists
local known
local function known_steps()
  if known then return known end
  known = {}
  local dir = dp.tracefs()
  for _, file in ipairs({ "available_events", "available_filter_functions" }) do
    local f = io.open(dir .. "/" .. file)
    if f then
      pcall(function() -- available_filter_functions refuses reading under lockdown
        for line in f:lines() do
          local name = line:match("^(%S+)")
          if name then known[name] = true end
        end
      end)
      f:close()
    end
  end
  return known
end

-- every step is a function or a tracepoint this kernel lists, and the
-- steps are in time order, the free last
local function check_path(p, last)
  local k = known_steps()
  assert.is_true(#p.steps >= 2, "a path of one step")
  for i, s in ipairs(p.steps) do
    assert.is_true(k[s.at] == true, "unknown step " .. tostring(s.at))
    if i > 1 then assert.is_true(s.ts >= p.steps[i - 1].ts, "steps out of time order") end
  end
  assert.are.equal(last, p.steps[#p.steps].at)
end

local function has_step(p, name)
  for _, s in ipairs(p.steps) do if s.at == name then return true end end
  return false
end

-- the drop's reason where the kernel has reasons (compared by name)
local function reason(name)
  if not dp.has_reasons() or not dp.reasons()[name] then return nil end
  return name
end

describe("27 path", function()
  it("refuses bad values before tracefs is touched", function()
    assert.has_error(function() dp.path{ proto = "sctp" } end, "dp.path: proto 'sctp' is not tcp, udp or icmp")
    assert.has_error(function() dp.path{ port = 70000 } end, "dp.path: port is a number from 0 to 65535")
    assert.has_error(function() dp.path{ bogus = 1 } end, "dp.path: unknown option 'bogus' (allowed: host, port, "
      .. "proto, match, filter, all_reasons, all, functions, stacks, limit, max_steps, buffer_kb, coarse)")
    assert.has_error(function() dp.path{ functions = { ["ip_rcv\nx"] = 1 } } end,
      "dp.path: functions: 'ip_rcv\nx' = 1 is not a function name and its skb argument (1 to 6)")
    local ok, why = dp.core.btf_skb_funcs(nil, "((")
    assert.is_nil(ok)
    assert.truthy(why:find("no regular expression", 1, true))
  end)

  it("finds the functions that take an skb, and where, in the kernel's BTF", function()
    local f, why = dp.core.btf_skb_funcs()
    if not f then return pending("no BTF: " .. why) end
    -- the drop hook is one of them, its skb where drop_hook says
    local hook = dp.drop_hook()
    assert.are.equal(hook.skb_arg, f[hook.func])
    local only = assert(dp.core.btf_skb_funcs(nil, "^" .. hook.func .. "$"))
    assert.are.same({ [hook.func] = hook.skb_arg }, only)
  end)

  it("prints a path as text and as JSON", function()
    local p = { packet = { proto = "udp", saddr = "127.0.0.1", daddr = "127.0.0.1", sport = 5, dport = 9 },
      steps = { { at = "ip_rcv", ts = 12.000001, cpu = 1 }, { at = "skb:kfree_skb", ts = 12.000011, cpu = 1 } },
      drop = { reason = "NO_SOCKET", location = "udp_rcv+0x1/0x2", ts = 12.000011 } }
    assert.are.equal("path 1: udp 127.0.0.1:5 -> 127.0.0.1:9, 2 steps in 0.000010 s, dropped: NO_SOCKET at "
      .. "udp_rcv+0x1/0x2\n  +0.000000 cpu1 12.000001 ip_rcv\n  +0.000010 cpu1 12.000011 skb:kfree_skb  "
      .. "NO_SOCKET udp_rcv+0x1/0x2\n", path.text(p, 1))
    local j = path.json(p, cjson.null)
    assert.are.equal("NO_SOCKET", j.drop.reason)
    p.drop = nil
    assert.are.equal(cjson.null, path.json(p, cjson.null).drop)
  end)

  live_it("gives one path per datagram to a closed port, a delivered one's with --all, none for other ports #live",
      function()
    local before = state.snapshot()
    local want, other = net.free_udp_port(), net.free_udp_port()
    while other == want do other = net.free_udp_port() end
    -- one run for both (each run places its kprobes, seconds under an emulator)
    local h = run.bg(DP .. "path --json --all --proto udp --port " .. want .. " --duration 6")
    h.listening(240)
    local s0 = snmp.read()
    net.udp_closed(want, 5)
    net.udp_closed(other, 3)
    assert.are.equal(8, snmp.settled(s0, "Udp.NoPorts", 8))
    -- then a socket on that port, which receives three
    local r = socket.udp4()
    assert(r:setsockname("127.0.0.1", want))
    r:settimeout(2)
    local u = socket.udp4()
    for _ = 1, 3 do assert(u:sendto("hello", "127.0.0.1", want)) end
    u:close()
    for _ = 1, 3 do assert.are.equal("hello", r:receive()) end
    r:close()
    local out, rc, err = h.wait(60)
    assert.are.equal(0, rc, err)
    assert.are.equal(8, snmp.delta(s0, snmp.read(), "Udp.NoPorts"))
    local dropped, delivered = 0, 0
    for _, p in ipairs(paths_of(out)) do
      assert.are.equal(want, math.tointeger(p.packet.dport))
      assert.are.equal("udp", p.packet.proto)
      assert.is_true(has_step(p, "ip_rcv") or has_step(p, "net:netif_receive_skb"))
      if p.drop ~= cjson.null then
        dropped = dropped + 1
        check_path(p, "skb:kfree_skb")
        assert.are.equal(reason("NO_SOCKET") or cjson.null, p.drop.reason)
      else
        -- freed through skb:consume_skb, or where the kernel frees a
        -- delivered skb without a tracepoint (7.2's deferred free), at
        -- the function that frees its memory
        delivered = delivered + 1
        local last = p.steps[#p.steps].at
        assert.is_true(last == "skb:consume_skb" or last == "kfree_skbmem" or last == "napi_skb_cache_put", last)
        check_path(p, last)
      end
    end
    assert.are.equal(5, dropped)
    assert.are.equal(3, delivered)
    assert.truthy(err:find(" 0 events lost", 1, true), err)
    state.assert_same(before)
  end, "kprobes")

  live_it("shows the path through netfilter of a SYN an nftables rule drops, and its stack #live", function()
    local before = state.snapshot()
    os.execute("modprobe -a -q nfnetlink nf_tables nft_counter 2>/dev/null")
    local port = net.free_udp_port() -- a free number; TCP here
    assert(os.execute("nft -f - <<'EOF'\n"
      .. "table inet dropprobe_path_spec {\n"
      .. "  chain input { type filter hook input priority -10;\n"
      .. "    tcp dport " .. port .. " tcp flags & (syn | ack) == syn counter drop\n"
      .. "  }\n"
      .. "}\nEOF"), "nft could not add the spec's table")
    local ok, e = pcall(function()
      local h = run.bg(DP .. "path --json --stack --proto tcp --port " .. port .. " --duration 5")
      h.listening(240)
      for _ = 1, 3 do
        local t = socket.tcp4()
        t:settimeout(0.05)
        t:connect("127.0.0.1", port) -- one SYN, dropped; closed before any retry
        t:close()
      end
      local out, rc, err = h.wait(60)
      assert.are.equal(0, rc, err)
      local counted = io.popen("nft -j list table inet dropprobe_path_spec"):read("a")
      local n = math.tointeger(counted:match('"counter": {"packets": (%d+)'))
      local paths = paths_of(out)
      assert.are.equal(n, #paths)
      assert.is_true(n >= 3)
      -- the segment TCP sends is a clone (skb_clone in __tcp_transmit_skb):
      -- its path starts with what the original went through
      local fns = path.functions()
      -- skb_clone probed wherever the kernel lets a probe take it
      assert.are.equal(known_steps().skb_clone == true, fns.clone ~= nil)
      local sender
      for _, f in ipairs(fns.steps) do
        if f.func == "__tcp_transmit_skb" or f.func == "tcp_transmit_skb" then sender = sender or f.func end
      end
      for _, p in ipairs(paths) do
        check_path(p, "skb:kfree_skb")
        assert.is_true(has_step(p, "nf_hook_slow"), "no nf_hook_slow in the path")
        if fns.clone and sender then -- the original is followed from its sender on
          local at
          for i, s in ipairs(p.steps) do if s.at == "skb_clone" then at = at or i end end
          assert.is_truthy(at, "no skb_clone in the SYN's path")
          local seen = false
          for i = 1, at - 1 do seen = seen or p.steps[i].at == sender end
          assert.is_true(seen, "the original's " .. sender .. " is not before the clone")
        end
        -- --stack: the drop's stack, from the function that dropped it
        assert.are.equal("table", type(p.drop.stack))
        local in_hook = false
        for _, f in ipairs(p.drop.stack) do in_hook = in_hook or f:find("^nf_hook_slow") ~= nil end
        assert.is_true(in_hook, table.concat(p.drop.stack, " "))
        assert.are.equal(reason("NETFILTER_DROP") or cjson.null, p.drop.reason)
        assert.are.equal(port, math.tointeger(p.packet.dport))
      end
    end)
    os.execute("nft delete table inet dropprobe_path_spec")
    assert(ok, e)
    state.assert_same(before)
  end, "kprobes")

  live_it("refuses cleanly when the kernel rejects one probe of many; SIGINT and SIGTERM remove every probe, kill -9 "
    .. "is mended by cleanup #live",
      function()
    local before = state.snapshot()
    local ok, err = pcall(dp.path, { functions = { ip_rcv = 1, ip_local_deliver = 1, zz_no_such_function = 1 } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("refused the probe on zz_no_such_function", 1, true), err)
    assert.truthy(tostring(err):find("nothing was left", 1, true), err)
    state.assert_same(before)
    -- SIGINT and SIGTERM: the paths so far printed, every probe removed
    for _, sig in ipairs({ { "INT", 130 }, { "TERM", 143 } }) do
      local port = net.free_udp_port()
      local h = run.bg(DP .. "path --json --proto udp --port " .. port .. " --functions '^ip_rcv' --duration 120")
      h.listening(240)
      local s0 = snmp.read()
      net.udp_closed(port, 2)
      assert.are.equal(2, snmp.delta(s0, snmp.read(), "Udp.NoPorts"))
      h.lines(2) -- both paths read and printed: the signal is what ends it
      h.signal(sig[1])
      local out, rc, perr = h.wait(60)
      assert.are.equal(sig[2], rc, perr)
      local n = 0
      for _, p in ipairs(paths_of(out)) do
        assert.are.equal(port, math.tointeger(p.packet.dport))
        n = n + 1
      end
      assert.are.equal(2, n, out)
      state.assert_same(before)
    end
    -- a few probes are enough to leave behind
    local h = run.bg(DP .. "path --functions '^ip_rcv' --duration 120")
    h.listening(240)
    h.signal("KILL")
    h.wait(30)
    local out, code = run.cmd(DP .. "cleanup")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("kprobe dropprobe/pth_", 1, true), out)
    state.assert_same(before)
  end, "kprobes")

  live_it("draws a coarse path from tracepoints where there are no kprobes, and says so #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "path --json --duration 4")
    local line = h.listening(240)
    assert.truthy(line:find("coarse", 1, true), line)
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 4)
    local sent = snmp.settled(s0, "Udp.NoPorts", 4)
    local out, rc, err = h.wait(60)
    assert.are.equal(0, rc, err)
    local n = 0
    for _, p in ipairs(paths_of(out)) do
      assert.is_true(p.coarse)
      check_path(p, "skb:kfree_skb")
      if p.drop.reason == reason("NO_SOCKET") and tostring(p.drop.location):find("udp") then
        n = n + 1
        assert.is_true(has_step(p, "net:net_dev_queue") or has_step(p, "net:netif_rx")
          or has_step(p, "net:netif_receive_skb"))
      end
    end
    assert.are.equal(sent, n)
    -- a packet condition cannot be decided from tracepoints: refused, with why
    out, rc = run.cmd(DP .. "path --port 9 --duration 1")
    assert.are.equal(2, rc)
    assert.truthy(out:find("need kprobes", 1, true), out)
    state.assert_same(before)
  end, "!kprobes")
end)
