-- Kprobes, argument registers, the drop hook and the function tracer: the
-- seed's hard way. The kernel here has no kprobe events, so exact writes are
-- checked on a fake tracefs tree, and this kernel's refusals live.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local fake = require "helpers.faketree"
local live_it = live.bind(it, pending)

local read_fixture = require("helpers.fixture").read

describe("09 kprobes", function()
  it("builds the seed's probe line exactly", function()
    local kp = dp.kprobe{ name = "my_skb_probe", at = "kfree_skb_reason",
      args = { "skb=$arg1:u64", "reason=$arg2:u64" } }
    assert.are.equal("p:dropprobe/my_skb_probe kfree_skb_reason skb=$arg1:u64 reason=$arg2:u64",
      kp:definition())
    local rp = dp.kprobe{ name = "ret", at = "kfree_skb_reason", ret = true, args = { "rv=$retval:s32" } }
    assert.are.equal("r:dropprobe/ret kfree_skb_reason rv=$retval:s32", rp:definition())
    local mp = dp.kprobe{ name = "ret8", at = "tcp_v4_rcv+0x10", ret = true, maxactive = 8 }
    assert.are.equal("r8:dropprobe/ret8 tcp_v4_rcv+0x10", mp:definition())
    local rp2 = dp.kprobe{ name = "regs", at = "kfree_skb_reason",
      args = { "skb=%di:x64", "len=+112(%di):u32", "comm=$comm:string", "s=$stack0", "@jiffies" } }
    assert.are.equal("p:dropprobe/regs kfree_skb_reason skb=%di:x64 len=+112(%di):u32 "
      .. "comm=$comm:string s=$stack0 @jiffies", rp2:definition())
    assert.truthy(tostring(kp):find('"p:dropprobe/my_skb_probe', 1, true))
  end)

  it("refuses malformed names, places and arguments, saying which part", function()
    local bad = {
      { { name = "1abc", at = "f" }, "bad name" },
      { { name = "a-b", at = "f" }, "bad name" },
      { { name = "a\nb", at = "f" }, "bad name" },
      { { name = "ok", at = "f\n-:x" }, "bad place" },
      { { name = "ok", at = "f g" }, "bad place" },
      { { name = "ok", at = "f+zz" }, "bad place" },
      { { name = "ok", at = "f", args = { "x=$arg0" } }, "argument 1" },
      { { name = "ok", at = "f", args = { "x=$arg1:u65" } }, "unknown type 'u65'" },
      { { name = "ok", at = "f", args = { "x=$retval" } }, "only in return probes" },
      { { name = "ok", at = "f", args = { "x=$bogus" } }, "is not a fetch arg" },
      { { name = "ok", at = "f", args = { "x=+zz(%di)" } }, "bad offset" },
      { { name = "ok", at = "f", args = { "1x=$arg1" } }, "bad argument name" },
      { { name = "ok", at = "f", args = { "x=$arg1", "x=$arg2" } }, "used twice" },
      { { name = "ok", at = "f", args = { "x=$arg1\n-:dropprobe/other" } }, "control character" },
      { { name = "ok", at = "f", maxactive = 4 }, "maxactive" },
      { { name = "ok", at = "f", bogus = 1 }, "unknown option 'bogus'" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(dp.kprobe, case[1])
      assert.is_false(ok, case[2])
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
    end
  end)

  it("knows the argument registers of each architecture", function()
    assert.are.equal("%di", dp.arg(1, "x86_64"))
    assert.are.equal("%si", dp.arg(2, "x86_64"))
    assert.are.equal("%dx", dp.arg(3, "x86_64"))
    assert.are.equal("%x2", dp.arg(3, "aarch64"))
    assert.are.equal("%a0", dp.arg(1, "riscv64"))
    assert.are.equal("%r3", dp.arg(1, "ppc64le"))
    assert.has_error(function() dp.arg(7, "x86_64") end, "dp.arg: x86_64 passes arguments 1 to 6 in registers")
    assert.has_error(function() dp.arg(1, "vax") end, "dp.arg: no register table for architecture 'vax' (use $arg1)")
    assert.truthy(dp.arg(1):match("^%%"))
  end)

  it("finds where the drop reason lives on 5.10, 6.1 and 6.12 style kernels", function()
    local f618 = read_fixture("spec/fixtures/kfree_skb-6.18.format")
    local f510 = read_fixture("spec/fixtures/kfree_skb-5.10.format")
    local h = dp.drop_hook{ kallsyms = read_fixture("spec/fixtures/kallsyms/6.12.txt"), format = f618 }
    assert.are.same({ func = "sk_skb_reason_drop", skb_arg = 2, reason_arg = 3, tracepoint_reason = true }, h)
    h = dp.drop_hook{ kallsyms = read_fixture("spec/fixtures/kallsyms/6.1.txt"), format = f618 }
    assert.are.same({ func = "kfree_skb_reason", skb_arg = 1, reason_arg = 2, tracepoint_reason = true }, h)
    h = dp.drop_hook{ kallsyms = read_fixture("spec/fixtures/kallsyms/5.10.txt"), format = f510 }
    assert.are.same({ func = "kfree_skb", skb_arg = 1, tracepoint_reason = false }, h)
    assert.has_error(function() dp.drop_hook{ kallsyms = "", format = "" } end,
      "dp.drop_hook: none of sk_skb_reason_drop, kfree_skb_reason, kfree_skb is in kallsyms "
      .. "(is /proc/kallsyms readable? kptr_restrict hides it from non-root)")
  end)

  describe("on a fake tracefs tree", function()
    local dir, rundir
    local kprobe = require "dropprobe.kprobe"
    before_each(function()
      dir = fake.make()
      dp.tracefs(dir)
      rundir = dir .. "/run"
      kprobe.set_rundir(rundir)
    end)
    after_each(function()
      kprobe.set_rundir(nil)
      dp.tracefs(false)
      fake.remove(dir)
    end)

    it("writes exactly the probe line, and removes it on close", function()
      local kp = dp.kprobe{ name = "my_skb_probe", at = "kfree_skb_reason",
        args = { "skb=$arg1:u64", "reason=$arg2:u64" } }
      kp:create()
      assert.are.equal(kp:definition() .. "\n", fake.read(dir .. "/dynamic_events"))
      assert.truthy(tostring(kp):find("(in the kernel)", 1, true))
      fake.write(dir .. "/dynamic_events", "")
      local me = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
      assert.are.equal("my_skb_probe\n", fake.read(rundir .. "/" .. me .. ".kprobes"))
      kp:close()
      kp:close()
      assert.are.equal("-:dropprobe/my_skb_probe", fake.read(dir .. "/dynamic_events"))
      assert.is_nil(fake.read(rundir .. "/" .. me .. ".kprobes"))
      assert.has_error(function() kp:create() end, "attempt to use a closed kprobe")
    end)

    it("writes a return probe, and removes a probe on garbage collection", function()
      do
        local rp = dp.kprobe{ name = "ret", at = "kfree_skb_reason", ret = true, args = { "rv=$retval:s32" } }
        rp:create()
        assert.are.equal("r:dropprobe/ret kfree_skb_reason rv=$retval:s32\n", fake.read(dir .. "/dynamic_events"))
        fake.write(dir .. "/dynamic_events", "")
      end
      collectgarbage()
      collectgarbage()
      assert.are.equal("-:dropprobe/ret", fake.read(dir .. "/dynamic_events"))
    end)

    it("writes maxactive return probes as the kernel reads them", function()
      local mp = dp.kprobe{ name = "ret8", at = "tcp_v4_rcv", ret = true, maxactive = 8 }
      mp:create()
      assert.are.equal("r8:dropprobe/ret8 tcp_v4_rcv", fake.read(dir .. "/kprobe_events"))
      fake.write(dir .. "/kprobe_events", "")
      mp:close()
      assert.are.equal("-:dropprobe/ret8", fake.read(dir .. "/kprobe_events"))
      assert.are.equal("", fake.read(dir .. "/dynamic_events"))
    end)

    it("writes nothing for a refused probe", function()
      local ok1, e1 = pcall(dp.kprobe, { name = "ok", at = "f", args = { "x=$arg1\n-:dropprobe/other" } })
      assert.is_false(ok1)
      assert.truthy(tostring(e1):find("control character", 1, true), e1)
      local ok2, e2 = pcall(dp.kprobe, { name = "bad name", at = "f" })
      assert.is_false(ok2)
      assert.truthy(tostring(e2):find("bad name", 1, true), e2)
      assert.are.equal("", fake.read(dir .. "/dynamic_events"))
      assert.are.equal("", fake.read(dir .. "/kprobe_events"))
    end)

    it("sets the function filter before the tracer and restores both on close", function()
      local inst = dp.instance{ name = "fk" }
      local idir = dir .. "/instances/fk"
      fake.write(idir .. "/set_ftrace_filter", "")
      fake.write(idir .. "/current_tracer", "nop")
      inst:tracer("function", { filter = { "__kfree_skb", "kfree_skb_reason" } })
      assert.are.equal("__kfree_skb kfree_skb_reason", fake.read(idir .. "/set_ftrace_filter"))
      assert.are.equal("function", fake.read(idir .. "/current_tracer"))
      assert.has_error(function() inst:tracer("function", { filter = { "a b" } }) end,
        'inst:tracer: bad function name "a b" in filter')
      assert.has_error(function() inst:tracer("bogus_tracer") end,
        "tracer 'bogus_tracer' is not available on this kernel (see available_tracers; "
        .. "the function tracer needs CONFIG_FUNCTION_TRACER=y)")
      -- the fake directory cannot be removed while it holds files: close
      -- restores, reports, and removes on the next try
      assert.is_false(pcall(inst.close, inst))
      assert.are.equal("nop", fake.read(idir .. "/current_tracer"))
      assert.are.equal("", fake.read(idir .. "/set_ftrace_filter"))
      os.remove(idir .. "/set_ftrace_filter")
      os.remove(idir .. "/current_tracer")
      inst:close()
      assert.is_nil(fake.read(idir .. "/current_tracer"))
    end)
  end)

  it("refuses to create on a tree without kprobe events, naming the kernel options", function()
    local dir = fake.make{ kprobes = false }
    dp.tracefs(dir)
    finally(function() dp.tracefs(false) fake.remove(dir) end)
    local kp = dp.kprobe{ name = "p1", at = "kfree_skb_reason", args = { "reason=$arg2:u64" } }
    local ok, err = pcall(kp.create, kp)
    assert.is_false(ok)
    assert.truthy(err:find("CONFIG_KPROBES", 1, true))
    assert.truthy(err:find("CONFIG_KPROBE_EVENTS", 1, true))
    assert.are.equal("", fake.read(dir .. "/dynamic_events"))
  end)

  live_it("fails clearly where the kernel has no kprobes or function filter, changing nothing #live", function()
    local before = state.snapshot()
    local kp = dp.kprobe{ name = "my_skb_probe", at = dp.drop_hook().func,
      args = { "skb=$arg1:u64", "reason=$arg2:u64" } }
    local inst = dp.instance()
    finally(function() inst:close() end)
    local ok, err = pcall(inst.event, inst, kp)
    assert.is_false(ok)
    assert.truthy(err:find("no kprobe events", 1, true))
    assert.truthy(err:find("CONFIG_KPROBE_EVENTS", 1, true))
    inst:close()
    kp:close()
    state.assert_same(before)
  end, "!kprobes")

  live_it("refuses the function filter where the kernel does, changing nothing #live", function()
    local before = state.snapshot()
    local inst = dp.instance()
    finally(function() inst:close() end)
    local ok, err = pcall(inst.tracer, inst, "function", { filter = { "__kfree_skb" } })
    assert.is_false(ok)
    assert.truthy(err:find("nothing was changed", 1, true))
    assert.are.equal("nop\n", inst:read_file("current_tracer"))
    inst:close()
    state.assert_same(before)
  end, "!function_filter")

  -- the seed's hard way, live, on kernels with kprobe events
  local where = require "helpers.where"
  local net = require "helpers.net"
  local snmp = require "helpers.snmp"
  local kernel = require "helpers.kernel"

  -- the seed's probe for this kernel: registers of the drop hook's
  -- arguments (no reason where the hook has none: kfree_skb before 5.17)
  local function seed_probe(name)
    local hook = dp.drop_hook()
    local args = { ("skb=%s:u64"):format(dp.arg(hook.skb_arg)) }
    if hook.reason_arg then args[2] = ("reason=%s:u64"):format(dp.arg(hook.reason_arg)) end
    return dp.kprobe{ name = name or "my_skb_probe", at = hook.func, args = args }, hook
  end

  for _, mode in ipairs({ "text", "raw" }) do
    live_it(("runs the seed's kprobe at the drop hook: TCP to closed port 9 is NO_SOCKET in tcp_v4_rcv, "
      .. "%s mode #live"):format(mode), function()
      local before = state.snapshot()
      local kp, hook = seed_probe()
      -- the hook is the one this kernel's kallsyms has, and the line follows from it
      assert.is_true(kernel.has(hook.func))
      if hook.func == "kfree_skb_reason" then -- exactly the seed's line
        assert.are.equal("p:dropprobe/my_skb_probe kfree_skb_reason skb=%di:u64 reason=%si:u64", kp:definition())
      elseif hook.func == "sk_skb_reason_drop" then
        assert.are.equal("p:dropprobe/my_skb_probe sk_skb_reason_drop skb=%si:u64 reason=%dx:u64", kp:definition())
      else -- kfree_skb: the skb only
        assert.are.equal("p:dropprobe/my_skb_probe kfree_skb skb=%di:u64", kp:definition())
      end
      do
        local inst <close> = dp.instance()
        local ev = inst:event(kp)
        local cond = dp.drop_condition()
        ev:filter(cond)
        ev:trigger(dp.trigger_if("stacktrace", cond))
        ev:enable()
        if cond then
          assert.truthy(inst:read_file("events/dropprobe/my_skb_probe/filter"):find("reason != ", 1, true))
        end
        local pipe <close> = inst:pipe{ mode = mode }
        local s0 = snmp.read()
        assert.are.equal(3, net.tcp_closed(9, 3))
        local s1 = snmp.read()
        local tcp = 0
        local tcp_rcv = kernel.named("tcp_v4_rcv")
        dp.each(pipe, { idle = 1 }, function(rec)
          assert.are.equal("my_skb_probe", rec.name)
          assert.truthy(rec.stack, "a stack for every matching drop")
          if where(rec) == tcp_rcv then -- from the stack: a kprobe has no location
            tcp = tcp + 1
            -- named from dp.reasons(), not "2"; none where the hook has no reason
            assert.are.equal(kernel.reason("NO_SOCKET"), rec.fields.reason)
            assert.are.equal("string", type(rec.fields.skb))
            assert.truthy(rec.fields.skb:find("^%x+$") and #rec.fields.skb == 16, rec.fields.skb)
            assert.truthy(table.concat(rec.stack, " "):find(tcp_rcv, 1, true))
          end
        end)
        assert.are.equal(3, snmp.delta(s0, s1, "Tcp.OutRsts")) -- one reset per dropped SYN
        assert.are.equal(snmp.delta(s0, s1, "Tcp.OutRsts"), tcp)
        assert.are.equal(0, pipe:stats().lost)
      end
      kp:close()
      state.assert_same(before)
    end, "kprobes")
  end

  live_it("runs a kretprobe and reads its return value #live", function()
    local before = state.snapshot()
    local rp = dp.kprobe{ name = "tcp_rcv_ret", at = kernel.named("tcp_v4_rcv"), ret = true,
      args = { "rv=$retval:s32" } }
    assert.are.equal("r:dropprobe/tcp_rcv_ret tcp_v4_rcv rv=$retval:s32", rp:definition())
    do
      local inst <close> = dp.instance()
      inst:event(rp):enable()
      local pipe <close> = inst:pipe{ mode = "raw" }
      assert.are.equal(2, net.tcp_closed(9, 2))
      local n = 0
      dp.each(pipe, { idle = 0.5 }, function(rec)
        if rec.name == "tcp_rcv_ret" then
          n = n + 1
          assert.are.equal("integer", math.type(rec.fields.rv))
        end
      end)
      assert.is_true(n >= 2, "tcp_v4_rcv returned at least once per SYN")
    end
    rp:close()
    state.assert_same(before)
  end, "kprobes")

  live_it("leaves no kprobe behind after a refusal, SIGINT, SIGTERM, or kill -9 and cleanup #live", function()
    local run = require "helpers.run"
    local before = state.snapshot()
    -- the kernel refuses a probe on a function it does not have
    local bad = dp.kprobe{ name = "nowhere", at = "no_such_function_dropprobe" }
    local ok, err = pcall(bad.create, bad)
    assert.is_false(ok)
    assert.truthy(err:find("nowhere", 1, true), err)
    bad:close()
    state.assert_same(before)
    -- a process that holds the seed's probe in an instance until a signal
    local script = [[-e 'local dp = require "dropprobe"
      dp.core.catch_signals()
      local hook = dp.drop_hook()
      local kp <close> = dp.kprobe{ name = "held", at = hook.func,
        args = { "skb=" .. dp.arg(hook.skb_arg) .. ":u64" } }
      local inst <close> = dp.instance()
      inst:event(kp):enable()
      print("ready") io.stdout:flush()
      local pipe <close> = inst:pipe{}
      while pipe:read(0.2) ~= nil or not dp.core.signal() do end']]
    for _, sig in ipairs({ "INT", "TERM" }) do
      local h = run.bg(run.LUA .. script)
      h.ready()
      assert.truthy((io.open(dp.tracefs() .. "/kprobe_events"):read("a")):find("dropprobe/held", 1, true))
      h.signal(sig)
      local out, rc, errout = h.wait(30)
      assert.are.equal(0, rc, out .. errout)
      state.assert_same(before)
    end
    -- kill -9: the probe and the instance stay until `dropprobe cleanup`
    local killed = run.cmd(run.LUA .. [[-e 'local dp = require "dropprobe"
      local hook = dp.drop_hook()
      local kp = dp.kprobe{ name = "held", at = hook.func }
      local inst = dp.instance()
      inst:event(kp):enable()
      io.write(inst:name(), "\n") io.flush()
      os.execute("kill -9 " .. io.open("/proc/self/stat"):read("l"):match("^(%d+)"))']])
    assert.truthy(killed:find("dropprobe%-%d+%-%d+"), killed)
    assert.truthy((io.open(dp.tracefs() .. "/kprobe_events"):read("a")):find("dropprobe/held", 1, true))
    local out, code = run.cmd(run.DROPPROBE .. "cleanup")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("removed instances/" .. killed:match("dropprobe%-%d+%-%d+"), 1, true), out)
    assert.truthy(out:find("removed kprobe dropprobe/held", 1, true), out)
    state.assert_same(before)
  end, "kprobes")

  live_it("runs the seed's first step: the function tracer on __kfree_skb in the private instance #live",
    function()
      local before = state.snapshot()
      local fn = kernel.named("__kfree_skb")
      do
        local inst <close> = dp.instance{ buffer_kb = 1024 }
        inst:tracer("function", { filter = { fn } })
        assert.are.equal("function\n", inst:read_file("current_tracer"))
        assert.are.equal(fn .. "\n", inst:read_file("set_ftrace_filter"))
        -- the top level is untouched
        assert.are.equal(before.current_tracer, io.open(dp.tracefs() .. "/current_tracer"):read("a"))
        net.tcp_closed(9, 2)
        local n, parents = 0, {}
        for rec in inst:records{ mode = "text", timeout = 0.5 } do
          if rec.name == "function" then -- "__kfree_skb <-tcp_rcv_established", as in the seed
            n = n + 1
            assert.are.equal("ftrace", rec.system)
            assert.are.equal(fn, rec.fields.ip:match("^([^+]+)"), rec.payload)
            parents[rec.fields.parent_ip:match("^([^+]+)")] = true
          end
        end
        assert.is_true(n >= 2, "__kfree_skb is called for every freed packet")
        assert.is_true(next(parents) ~= nil)
        inst:close()
        assert.is_true(inst:is_closed())
      end
      state.assert_same(before)
    end, "function_filter")
end)
