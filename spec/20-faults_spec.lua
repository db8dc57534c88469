-- Reader faults: the process's instance removed under it (someone's
-- `rmdir`), `dropprobe cleanup` run while it lives, tracefs unmounted
-- under it. What each kernel does was measured (see the README's "When
-- tracefs changes under a running dropprobe"): an instance whose buffers a
-- process reads (trace_pipe, trace_pipe_raw: `ports`, and counting in C)
-- cannot be removed, rmdir says EBUSY and the process carries on; one where
-- the kernel counts (a hist trigger: `top` and `exporter` where the kernel
-- has hist triggers) holds nothing open, rmdir removes it with the counts,
-- and the process ends: its last report, the instance named, exit 2.
-- Which case applies is read off the process (a hist trigger in its
-- instance), never off the kernel's version.
local cjson = require "cjson"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE
local TRACEFS = "/sys/kernel/tracing"

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

-- rmdir as someone else would; true, or false and what rmdir said
local function rmdir(dir)
  local out, code = run.cmd("rmdir " .. dir)
  return code == 0, out
end

-- Remove each of the process's instances. Where the kernel counts with a
-- hist trigger nothing is held open and the instance goes; where a reader
-- has its buffers open, the kernel refuses with EBUSY. Returns the names
-- removed.
local function rmdir_all(pid)
  local insts = run.instances(pid)
  assert.is_true(#insts > 0, "the process has no instance")
  -- the refused ones first: the process ends soon after a removal
  table.sort(insts, function(a, b) return not a.counting and b.counting end)
  local removed = {}
  for _, i in ipairs(insts) do
    local ok, out = rmdir(i.dir)
    if i.counting then
      assert.is_true(ok, i.name .. " where the kernel counts: " .. out)
      removed[#removed + 1] = i.name
    else
      assert.is_false(ok, i.name .. " with its buffers open was removed")
      assert.truthy(out:find("Device or resource busy", 1, true), out)
    end
  end
  return removed
end

local function mounted()
  return (slurp("/proc/self/mounts") or ""):find(" " .. TRACEFS .. " tracefs ", 1, true) ~= nil
end

-- what a private mount of the close path could leave
local function private_mounts()
  local p = io.popen("ls -d /tmp/dropprobe-tracefs-* 2>/dev/null")
  local out = p:read("a")
  p:close()
  return (slurp("/proc/self/mounts") or ""):match("/tmp/dropprobe%-tracefs%-%S+") or (out ~= "" and out) or nil
end

-- When an assertion fails, the process started by the spec is stopped as
-- Ctrl-C stops it (it then removes what it made), and tracefs is mounted
-- again if it was unmounted: the specs after it find tracefs as before.
local function stop_on_failure(h)
  finally(function()
    if (slurp(("/proc/%d/cmdline"):format(h.pid)) or ""):find("dropprobe", 1, true) then
      h.signal("INT")
      h.wait(30)
    end
    if not mounted() then os.execute("mount -t tracefs nodev " .. TRACEFS) end
  end)
end

-- `top`'s plain lines: the last one, and NO_SOCKET's total in it
local function last_report(out)
  local last
  for line in out:gmatch("[^\n]+") do
    if line:match("^t=") then last = line end
  end
  return last
end

local function reason_total(line, label)
  return tonumber((line or ""):match(" " .. label:gsub("%p", "%%%0") .. "=(%d+)%(")) or 0
end

describe("20 faults #live", function()
  live_it("top: its instance removed under it ends it after its last report, or rmdir is refused and it "
    .. "counts on #live", function()
    local before = state.snapshot()
    local label = kernel.label("NO_SOCKET")
    -- a duration longer than the test takes under qemu's emulator: the
    -- removal comes while top runs, never during its close at the end
    local h = run.bg(DP .. "top --interval 0.3 --duration 120")
    h.ready()
    stop_on_failure(h)
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 30)
    local first = snmp.settled(s0, "Udp.NoPorts", 30)
    assert.are.equal(30, first)
    -- cleanup removes what dead processes left, never a living one's instance
    local names = {}
    for _, i in ipairs(run.instances(h.pid)) do names[#names + 1] = i.name end
    local cout, ccode = run.cmd(DP .. "cleanup")
    assert.are.equal(0, ccode, cout)
    for _, n in ipairs(names) do
      assert.is_nil(cout:find(n, 1, true), cout)
      assert.truthy(slurp(TRACEFS .. "/instances/" .. n .. "/trace_clock"), n .. " was removed by cleanup")
    end
    run.sleep(1) -- a report with the drops so far
    local removed = rmdir_all(h.pid)
    local s1 = snmp.read()
    net.udp_closed(port, 20)
    local second = snmp.settled(s1, "Udp.NoPorts", 20)
    assert.are.equal(20, second)
    if #removed == 0 then -- it counts on: stopped as a user would, after a report or more
      run.sleep(1)
      h.signal("INT")
    end
    local out, rc, err = h.wait(40)
    local last = last_report(out)
    if #removed > 0 then
      assert.are.equal(2, rc, err)
      assert.truthy(err:find("dropprobe top: instance " .. removed[1] .. " was removed under this process",
        1, true), err)
      -- the last report is the counts as last read: the first drops at least
      assert.is_true(reason_total(last, label) >= first, out)
    else
      assert.are.equal(130, rc, err) -- ended by SIGINT, as by Ctrl-C
      assert.are.equal("", (err:gsub("[^\n]*listening: [^\n]*\n", "")))
      assert.is_true(reason_total(last, label) >= first + second, out)
    end
    state.assert_same(before)
  end)

  live_it("stacks: its instance removed under it prints the stacks as last read and ends, or is refused #live",
    function()
    local before = state.snapshot()
    local h = run.bg(DP .. "stacks --duration 120") -- longer than the test: see top's
    h.ready()
    stop_on_failure(h)
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 30)
    local first = snmp.settled(s0, "Udp.NoPorts", 30)
    assert.are.equal(30, first)
    run.sleep(1.5) -- the kernel's counts are read every second
    local removed = rmdir_all(h.pid)
    local s1 = snmp.read()
    net.udp_closed(port, 20)
    assert.are.equal(20, snmp.settled(s1, "Udp.NoPorts", 20))
    if #removed == 0 then -- it counts on: stopped as a user would, once it read them
      run.sleep(1.5)
      h.signal("INT")
    end
    local out, rc, err = h.wait(40)
    local matched = tonumber(out:match("^(%d+) drops matched"))
    if #removed > 0 then
      assert.are.equal(2, rc, err)
      assert.truthy(err:find("dropprobe stacks: instance " .. removed[1] .. " was removed under this process",
        1, true), err)
      assert.is_true(matched >= first, out)
    else
      assert.are.equal(130, rc, err) -- ended by SIGINT, as by Ctrl-C
      assert.is_true(matched >= first + 20, out)
    end
    state.assert_same(before)
  end)

  live_it("ports: rmdir of its instance is refused (its buffers are open) and it counts every drop #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "ports --json --duration 120") -- ended below, as by Ctrl-C
    h.ready()
    stop_on_failure(h)
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 30)
    local removed = rmdir_all(h.pid)
    assert.are.same({}, removed)
    net.udp_closed(port, 20)
    local delta = snmp.settled(s0, "Udp.NoPorts", 50)
    run.sleep(1)
    h.signal("INT")
    local out, rc, err = h.wait(40)
    assert.are.equal(130, rc, err)
    assert.are.equal(50, delta)
    local count
    for _, row in ipairs(cjson.decode(out).ports) do
      if row.port == port and row.proto == "udp" then count = row.count end
    end
    assert.are.equal(delta, count)
    state.assert_same(before)
  end)

  live_it("exporter --textfile: the instance removed under it writes the file once more and ends, or is refused #live",
    function()
    local before = state.snapshot()
    local dir = tmpdir()
    local file = dir .. "/dropprobe.prom"
    -- writes 2 s apart: the rmdir falls right after one, long before the next
    -- a duration longer than the test: see top's
    local h = run.bg(DP .. "exporter --interval 2 --duration 120 --textfile " .. dir)
    h.ready()
    stop_on_failure(h)
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 30)
    local first = snmp.settled(s0, "Udp.NoPorts", 30)
    assert.are.equal(30, first)
    local reason = kernel.reason("NO_SOCKET")
    -- NO_SOCKET's drops in an exposition text (every drop without drop reasons)
    local function drops(text)
      local sum = 0
      for labels, v in (text or ""):gmatch("dropprobe_drops_total{([^}]*)} ([%d.e+]+)") do
        if reason == nil or labels:find('reason="' .. reason .. '"', 1, true) then sum = sum + tonumber(v) end
      end
      return sum
    end
    local t = require("socket").gettime() + 30
    while drops(slurp(file)) < first and require("socket").gettime() < t do run.sleep(0.1) end
    assert.is_true(drops(slurp(file)) >= first, slurp(file))
    local t_rm = require("socket").gettime()
    local removed = rmdir_all(h.pid)
    local s1 = snmp.read()
    net.udp_closed(port, 20)
    assert.are.equal(20, snmp.settled(s1, "Udp.NoPorts", 20))
    if #removed == 0 then -- it counts on: stopped as a user would
      run.sleep(1)
      h.signal("INT")
    end
    local out, rc, err = h.wait(40)
    local text = slurp(file)
    if #removed > 0 then
      assert.are.equal(2, rc, err .. out)
      assert.truthy(err:find("dropprobe exporter: instance " .. removed[1] .. " was removed under this process",
        1, true), err)
      -- the next regular write was 2 s away, and fails to read the counts:
      -- a write after the rmdir is the last one, the counts as last read
      local mtime = tonumber((run.cmd("stat -c %.9Y " .. file)))
      assert.is_true(mtime > t_rm, ("written at %s, removed at %s"):format(mtime, t_rm))
      assert.is_true(drops(text) >= first, text)
    else
      assert.are.equal(130, rc, err .. out) -- ended by SIGINT, as by Ctrl-C
      assert.is_true(drops(text) >= first + 20, text)
    end
    os.remove(file)
    os.remove(dir)
    state.assert_same(before)
  end)

  live_it("tracefs unmounted under top (umount -l): ends it or it counts on; the unmount stands, nothing left #live",
    function()
    local before = state.snapshot()
    local label = kernel.label("NO_SOCKET")
    local h = run.bg(DP .. "top --interval 0.3 --duration 120") -- longer than the test: see the first
    h.ready()
    stop_on_failure(h)
    local insts = run.instances(h.pid)
    local port = net.free_udp_port()
    net.udp_closed(port, 30)
    run.sleep(1)
    assert(os.execute("umount -l " .. TRACEFS))
    local s1 = snmp.read()
    net.udp_closed(port, 20)
    local second = snmp.settled(s1, "Udp.NoPorts", 20)
    if not insts[1].counting then -- it counts on: stopped as a user would
      run.sleep(1)
      h.signal("INT")
    end
    local out, rc, err = h.wait(40)
    local was_mounted = mounted()
    local left = private_mounts()
    assert(os.execute("mount -t tracefs nodev " .. TRACEFS)) -- as it was found
    assert.is_false(was_mounted, "dropprobe mounted tracefs again at " .. TRACEFS)
    assert.is_nil(left)
    local last = last_report(out)
    if insts[1].counting then
      assert.are.equal(2, rc, err)
      assert.truthy(err:find("dropprobe top: tracefs was unmounted under this process: instance "
        .. insts[1].name, 1, true), err)
      assert.is_true(reason_total(last, label) >= 30, out)
    else
      -- the reader's open buffers keep working after a lazy unmount
      assert.are.equal(130, rc, err) -- ended by SIGINT, as by Ctrl-C
      assert.is_true(reason_total(last, label) >= 30 + second, out)
    end
    state.assert_same(before)
  end)

  live_it("tracefs unmounted under ports with the drop probe: the kprobe goes too #live", function()
    local before = state.snapshot()
    local h = run.bg(DP .. "ports --json --duration 120") -- ended below, as by Ctrl-C
    h.ready()
    stop_on_failure(h)
    assert.truthy((slurp(TRACEFS .. "/kprobe_events") or ""):find("dropprobe/", 1, true),
      "no drop probe in kprobe_events")
    assert(os.execute("umount -l " .. TRACEFS))
    local port = net.free_udp_port()
    local s0 = snmp.read()
    net.udp_closed(port, 25)
    local delta = snmp.settled(s0, "Udp.NoPorts", 25)
    run.sleep(1)
    h.signal("INT")
    local out, rc, err = h.wait(40)
    local was_mounted = mounted()
    assert(os.execute("mount -t tracefs nodev " .. TRACEFS))
    assert.is_false(was_mounted)
    assert.is_nil(private_mounts())
    assert.are.equal(130, rc, err) -- ended by SIGINT, as by Ctrl-C
    local count
    for _, row in ipairs(cjson.decode(out).ports) do
      if row.port == port then count = row.count end
    end
    assert.are.equal(delta, count)
    state.assert_same(before) -- kprobe_events and dynamic_events as found
  end, "kprobes")
end)

-- the library alone: close after the instance was removed does not fail
describe("20 faults: the library #live", function()
  live_it("an instance removed under it closes without error and leaves nothing #live", function()
    local before = state.snapshot()
    local hunt = require "dropprobe.hunt"
    local h = hunt.open{}
    local inst = h.inst
    assert.is_nil(inst:gone())
    h.pipe:close() -- nothing holds it open now
    local ok, out = rmdir(inst:dir())
    assert.is_true(ok, out)
    assert.are.equal("removed", inst:gone())
    assert.truthy(require("dropprobe.instance").gone_message(inst):find("instance " .. inst:name()
      .. " was removed under this process", 1, true))
    h:close()
    assert.is_true(inst:is_closed())
    state.assert_same(before)
  end)

  live_it("an instance removed while close undoes its filter and enable closes without error #live", function()
    local before = state.snapshot()
    local hunt = require "dropprobe.hunt"
    local h = hunt.open{}
    local inst = h.inst
    h.pipe:close() -- nothing holds it open now
    -- the removal falls between close's look at the directory and its
    -- first write into it, as another program's cleanup can
    local methods = getmetatable(inst:event("skb", "kfree_skb")).__index
    local teardown, removed = methods._teardown, nil
    methods._teardown = function(ev, write)
      if removed == nil then removed = { rmdir(inst:dir()) } end
      return teardown(ev, write)
    end
    local ok, err = pcall(h.close, h)
    methods._teardown = teardown
    assert.is_true(removed[1], removed[2])
    assert.is_true(ok, err)
    assert.is_true(inst:is_closed())
    state.assert_same(before)
  end)
end)
