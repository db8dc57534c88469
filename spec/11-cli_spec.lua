-- The dropprobe command: output, exit codes, signals, bad callers, and
-- tracefs left as it was.
local cjson = require "cjson"
local socket = require "socket"
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local run = require "helpers.run"
local kernel = require "helpers.kernel"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

describe("11 cli #proc", function()
  it("prints help and refuses bad usage with exit code 1", function()
    local out, code = run.cmd(DP .. "--help")
    assert.are.equal(0, code)
    for _, c in ipairs({ "watch", "stacks", "ports", "top", "reasons", "shell", "doctor", "cleanup" }) do
      assert.truthy(out:find("\n   " .. c, 1, true), c)
    end
    out, code = run.cmd(DP .. "--bogus")
    assert.are.equal(1, code)
    assert.truthy(out:find("unknown option '--bogus'", 1, true))
  end)

  it("refuses a bad option value naming the option, the value and what is allowed, exit 2", function()
    -- checked before anything reaches tracefs: these run as any user
    local cases = {
      { "watch --mode binary", "dropprobe watch: --mode: 'binary' is not one of raw, text" },
      { "top --interval -1", "dropprobe top: --interval: '-1' is not a number of seconds > 0" },
      { "watch --port abc", "dropprobe watch: --port: 'abc' is not a port number from 0 to 65535" },
      { "watch --port -1", "dropprobe watch: --port: '-1' is not a port number from 0 to 65535" },
      { "ports --port 70000", "dropprobe ports: --port: '70000' is not a port number from 0 to 65535" },
      { "stacks --limit 0", "dropprobe stacks: --limit: '0' is not a whole number >= 1" },
      { "watch --host 999.1.1.1", "dropprobe watch: --host: '999.1.1.1' is not an IPv4 or IPv6 address or "
        .. "prefix (e.g. 127.0.0.1, ::1, 127.0.0.0/8, fe80::/10)" },
      { "ports --host 10.0.0.0/33", "dropprobe ports: --host: '10.0.0.0/33' is not an IPv4 or IPv6 address" },
      { "watch --duration 0", "dropprobe watch: --duration: '0' is not a number of seconds > 0" },
    }
    for _, c in ipairs(cases) do
      local out, code = run.cmd(DP .. c[1])
      assert.are.equal(2, code, c[1] .. ": " .. out)
      assert.truthy(out:find(c[2], 1, true), c[1] .. ": " .. out)
      assert.is_nil(out:find("%.lua:%d+:"), out) -- nothing of the module's insides
    end
  end)

  it("prints errors without Lua source positions", function()
    local plain = require("dropprobe.cli")._plain
    assert.are.equal("creating tracefs instance: needs root",
      plain("/usr/share/lua/5.4/dropprobe/init.lua:625: creating tracefs instance: needs root"))
    assert.are.equal("cannot remove kprobe dropprobe/x: Device or resource busy",
      plain("./lua/dropprobe/cli.lua:188: init.lua:9: cannot remove kprobe dropprobe/x: Device or resource busy"))
    assert.are.equal("filter 'a:1: b' refused", plain("filter 'a:1: b' refused"))
  end)

  live_it("lists reasons and the doctor's findings #live", function()
    local found = state.snapshot()
    local out, code = run.cmd(DP .. "reasons")
    assert.are.equal(0, code)
    local n = dp.reasons().NO_SOCKET -- this kernel's number (2 on 6.1, 3 on 6.12), nil before 5.17
    if n then
      assert.truthy(out:find(("\n%4d  NO_SOCKET\n"):format(n), 1, true), out)
    else
      assert.truthy(out:find("has no drop reasons", 1, true), out)
    end
    out = run.cmd(DP .. "reasons --json")
    local by_name = {}
    for _, r in ipairs(cjson.decode(out).reasons) do by_name[r.name] = r.number end
    assert.are.equal(n, by_name.NO_SOCKET)
    assert.are.equal(n ~= nil, next(by_name) ~= nil)
    out, code = run.cmd(DP .. "doctor --json")
    assert.are.equal(0, code)
    local checks = {}
    for _, c in ipairs(cjson.decode(out).checks) do checks[c.name] = c end
    assert.is_true(checks.tracefs.ok)
    assert.is_true(checks.instances.ok)
    if not checks.kprobes.ok then assert.truthy(checks.kprobes.fix:find("CONFIG_KPROBE_EVENTS", 1, true)) end
    out = run.cmd(DP .. "doctor")
    assert.truthy(out:find("stacktrace triggers", 1, true))
    state.assert_same(found)
  end)

  live_it("features and the doctor say what the kernel really does #live", function()
    local before = state.snapshot()
    local f = dp.features()
    -- the oracle: try each thing in a private instance, and undo it
    local did = {}
    do
      local inst <close> = dp.instance()
      local fn = kernel.named("tcp_v4_rcv")
      local kp = dp.kprobe{ name = "feature_probe", at = fn }
      did.kprobes = pcall(kp.create, kp)
      kp:close()
      local ev = inst:event("skb:kfree_skb")
      did.hist = pcall(ev.trigger, ev, "hist:keys=protocol")
      did.function_filter = pcall(inst.tracer, inst, "function", { filter = { fn } })
      -- (the shell's >> appends; Lua's "a" mode seeks, which tracefs refuses)
      local dyn = dp.tracefs() .. "/dynamic_events"
      did.eprobes = os.execute(("echo 'e:dropprobe/feature_eprobe skb/kfree_skb proto=$protocol' >> %s 2>/dev/null")
        :format(dyn)) == true
      if did.eprobes then assert(os.execute(("echo '-:dropprobe/feature_eprobe' >> %s"):format(dyn))) end
    end
    for _, k in ipairs({ "kprobes", "hist", "function_filter", "eprobes" }) do
      assert.are.equal(did[k] and true or false, f[k], k)
    end
    local out, code = run.cmd(DP .. "doctor --json")
    assert.are.equal(0, code)
    local checks = {}
    for _, c in ipairs(cjson.decode(out).checks) do checks[c.name] = c end
    assert.are.equal(f.kprobes, checks.kprobes.ok)
    assert.are.equal(f.hist, checks["hist triggers"].ok)
    assert.are.equal(f.function_filter, checks["function filter"].ok)
    assert.are.equal(f.eprobes, checks.eprobes.ok)
    -- a kernel that can map a reader's buffer has the function behind it
    assert.are.equal(kernel.has("ring_buffer_map_get_reader"), checks["mapped buffers"].ok)
    state.assert_same(before)
  end)

  live_it("watch --json gives one parseable line per drop, exactly the drops made #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "watch --json --stack --duration 3")
    h.ready()
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 25)
    local s1 = snmp.read()
    local out, rc, err = h.wait()
    assert.are.equal(0, rc, err)
    local n, places = 0, {}
    -- our drops: by their packet where the kernel gives it, else by reason
    local reason = kernel.reason("NO_SOCKET") or cjson.null
    for line in out:gmatch("[^\n]+") do
      local rec = cjson.decode(line)
      -- the tracepoint, or "drop" for the drop probe where the kernel has kprobes
      assert.are.equal(dp.features().kprobes and "drop" or "kfree_skb", rec.name)
      assert.truthy(rec.cpu and rec.pid and rec.comm and rec.ts and rec.reason)
      local ours = rec.packet and rec.packet.dport == port or (not rec.packet and rec.reason == reason
        and rec.reason ~= cjson.null)
      if ours then
        n = n + 1
        assert.are.equal(reason, rec.reason)
        local fn = kernel.func(rec.location) -- a function of this kernel, in the stack
        assert.truthy(table.concat(rec.stack, " "):find(fn, 1, true))
        places[fn] = true
      end
    end
    assert.are.equal(1, #(function() local l = {} for k in pairs(places) do l[#l + 1] = k end return l end)())
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), n)
    assert.are.equal(25, n)
    assert.truthy(err:find("0 events lost", 1, true))
    state.assert_same(before)
  end)

  live_it("ports --json prints the documented object #live", function()
    local found = state.snapshot()
    local h = run.bg(DP .. "ports --json --duration 2.5")
    h.ready()
    net.udp_closed(9999, 15)
    local out, rc = h.wait()
    assert.are.equal(0, rc)
    local report = cjson.decode(out)
    local row = report.ports[1]
    assert.are.same({ proto = "udp", port = 9999, reason = kernel.label("NO_SOCKET"), count = 15 },
      { proto = row.proto, port = row.port, reason = row.reason, count = row.count })
    -- from each drop's packet where the kernel has kprobes, also where they came from
    assert.are.equal(dp.features().kprobes and "packet" or "joins", report.method)
    assert.are.equal(dp.features().kprobes and "127.0.0.1" or nil, row.top_remote)
    assert.are.equal("string", type(report.note))
    assert.are.equal(0, report.lost)
    assert.are.equal("table", type(report.unattributed))
    state.assert_same(found)
  end)

  live_it("ends on SIGINT and SIGTERM with its report, exit 130/143, nothing left #live", function()
    local before = state.snapshot()
    local tcp_rcv = kernel.named("tcp_v4_rcv")
    for sig, code in pairs({ INT = 130, TERM = 143 }) do
      local h = run.bg(DP .. "stacks --folded")
      h.ready()
      net.tcp_closed(9, 3)
      run.sleep(0.5)
      h.signal(sig)
      local out, rc = h.wait()
      assert.are.equal(code, rc, sig)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        if line:find(";" .. tcp_rcv .. " %d+$") then n = n + tonumber(line:match("(%d+)$")) end
      end
      assert.are.equal(3, n, sig)
      state.assert_same(before)
    end
  end)

  live_it("prints the drops the kernel buffered before SIGINT or SIGTERM, however soon it comes #live", function()
    local before = state.snapshot()
    -- our drops: by their packet where the kernel gives it, else by reason
    local reason = kernel.reason("NO_SOCKET") or cjson.null
    for sig, code in pairs({ INT = 130, TERM = 143 }) do
      local h = run.bg(DP .. "watch --json")
      h.ready()
      local port = net.free_udp_port()
      local s0 = snmp.read()
      net.udp_closed(port, 7)
      local sent = snmp.delta(s0, snmp.read(), "Udp.NoPorts")
      h.signal(sig) -- at once: the reader is most likely waiting for more
      local out, rc, err = h.wait()
      assert.are.equal(code, rc, err)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        local rec = cjson.decode(line)
        if rec.packet and rec.packet.dport == port
          or (not rec.packet and rec.reason == reason and reason ~= cjson.null) then
          n = n + 1
        end
      end
      assert.are.equal(7, sent)
      assert.are.equal(sent, n, out)
      state.assert_same(before)
    end
  end)

  -- A storm faster than watch prints: before, a caught signal was noticed
  -- only once the buffers ran dry, so watch went on as long as the flood.
  live_it("ends soon after SIGINT while drops keep coming faster than it prints #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "watch --json")
    h.ready()
    -- one sender as fast as it can, for 6 s at most
    local flood = assert(io.popen(("timeout 6 build/flood 5000000 %d 2>&1"):format(net.free_udp_port())))
    socket.sleep(1.5)
    local t0 = dp.now()
    h.signal("INT")
    local _, rc, err = h.wait()
    local took = dp.now() - t0
    flood:read("a")
    flood:close()
    assert.are.equal(130, rc, err)
    -- the drain (half a second) and the exit, not the flood's end
    assert.is_true(took < 3, ("watch took %.2f s after SIGINT"):format(took))
    state.assert_same(before)
  end)

  live_it("a script that errors out, or exits with os.exit(code, true), cleans up #live", function()
    local before = state.snapshot()
    local script = [[-e 'local dp = require "dropprobe"
      local inst = dp.instance()
      local ev = inst:event("skb:kfree_skb")
      ev:filter("protocol == 2048") ev:trigger("stacktrace if protocol == 2048") ev:enable()
      %s']]
    local out, code = run.cmd(run.LUA .. script:format('error("boom")'))
    local _
    assert.are_not.equal(0, code)
    assert.truthy(out:find("boom", 1, true))
    state.assert_same(before)
    _, code = run.cmd(run.LUA .. script:format("os.exit(3, true)"))
    assert.are.equal(3, code)
    state.assert_same(before)
  end)

  live_it("refuses a non-root user clearly and changes nothing #live", function()
    local before = state.snapshot()
    -- a copy of the tree that user nobody can read wherever the checkout is
    local tmp = os.tmpname()
    os.remove(tmp)
    -- (the module only: build/ also holds the kernels of tools/vmtest)
    assert(os.execute(("mkdir -m 755 %s %s/build && cp -r lua bin %s/ && cp -r build/dropprobe %s/build/ "
      .. "&& chmod -R a+rX %s"):format(tmp, tmp, tmp, tmp, tmp)))
    finally(function() os.execute("rm -rf " .. tmp) end)
    local nobody = ("cd %s && setpriv --reuid=65534 --regid=65534 --clear-groups env "):format(tmp)
    local out, code = run.cmd(nobody .. run.ENV .. "lua5.4 bin/dropprobe watch --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("^dropprobe watch: [^\n]*needs root"), out) -- no Lua source positions
    assert.is_nil(out:find("%.lua:%d+:"), out)
    out, code = run.cmd(nobody .. run.LUA .. [[-e 'local dp = require "dropprobe"
      local _, e = pcall(dp.instance) print(e)']])
    assert.are.equal(0, code)
    assert.truthy(out:find("needs root", 1, true), out)
    state.assert_same(before)
  end)

  live_it("shell: a REPL with dp loaded that shows tables, objects and records #live", function()
    local before = state.snapshot()
    local input = os.tmpname()
    local f = io.open(input, "w")
    -- a reason name where the kernel has drop reasons, a protocol where not
    local cond = kernel.cond("reason == NO_SOCKET") or "protocol == 2048"
    local kept = dp.has_reasons() and ("reason == " .. dp.reasons().NO_SOCKET) or cond
    f:write('dp.has_reasons() and dp.reasons()[dp.reasons().NO_SOCKET] or "no reasons here"\n',
      'inst = dp.instance{ name = "dropprobe-shell-spec" }\n', 'inst\n',
      'ev = inst:event("skb:kfree_skb"):filter("' .. cond .. '"):enable()\n', 'ev\n',
      'require("helpers.net").udp_closed(9999, 1)\n',
      'for r in inst:records{ timeout = 0.5 } do print(r) print(r.fields) end\n')
    f:close()
    local out, code = run.cmd(DP .. "shell < " .. input)
    os.remove(input)
    assert.are.equal(0, code)
    assert.truthy(out:find("`dp` is loaded", 1, true))
    assert.truthy(out:find(dp.has_reasons() and "\nNO_SOCKET\n" or "\nno reasons here\n", 1, true), out)
    assert.truthy(out:find('dropprobe.Instance "dropprobe-shell-spec"', 1, true), out)
    assert.truthy(out:find('dropprobe.Event skb:kfree_skb [enabled, filter "' .. kept .. '"]', 1, true), out)
    assert.truthy(out:find("kfree_skb: skbaddr=", 1, true), out)
    if dp.has_reasons() then assert.truthy(out:find('reason = "NO_SOCKET"', 1, true), out) end
    assert.is_nil(out:find("userdata: 0x", 1, true))
    state.assert_same(before)
  end)

  live_it("two dropprobe processes at once each see every drop #live", function()
    local before = state.snapshot()
    -- both run until told to end (the slower start, the drop probe's BTF and
    -- kallsyms, takes long under emulation), then end on SIGINT with their report
    local a = run.bg(DP .. "watch --json --duration 300")
    local b = run.bg(DP .. "watch --json --mode text --duration 300")
    -- whatever happens, neither outlives the spec (SIGINT: they clean up)
    finally(function() a.signal("INT") b.signal("INT") end)
    a.ready()
    b.ready()
    local port = net.free_udp_port()
    net.udp_closed(port, 12)
    run.sleep(1.5)
    a.signal("INT")
    b.signal("INT")
    for _, h in ipairs({ a, b }) do
      local out, rc = h.wait()
      assert.are.equal(130, rc)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        -- ours: by the packet where the kernel gives it (raw, kprobes), else
        -- by the reason; without reasons (5.10, text mode) every drop counts
        local rec = cjson.decode(line)
        local ours
        if rec.packet then ours = rec.packet.dport == port
        elseif dp.has_reasons() then ours = rec.reason == "NO_SOCKET"
        else ours = true end
        if ours then n = n + 1 end
      end
      assert.are.equal(12, n)
    end
    state.assert_same(before)
  end)
end)
