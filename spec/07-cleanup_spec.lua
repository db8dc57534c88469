-- After kill -9: `dropprobe cleanup` removes the instances of dead dropprobe
-- processes, and nothing else.
local dp = require "dropprobe"
local fake = require "helpers.faketree"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local live_it = live.bind(it, pending)

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local LUA = 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" lua5.4 '

describe("07 cleanup #proc", function()
  live_it("removes a killed process's instance and leaves a foreign one alone #live", function()
    local before = state.snapshot()
    local dir = require("dropprobe").tracefs()
    local name
    assert(os.execute("mkdir " .. dir .. "/instances/foreign-spec-07"))
    finally(function() -- busted keeps one finally per spec
      os.execute("rmdir " .. dir .. "/instances/foreign-spec-07 2>/dev/null")
      if name then os.execute("rmdir " .. dir .. "/instances/" .. name .. " 2>/dev/null") end
    end)
    -- a dropprobe process that is killed with SIGKILL while it holds an instance
    local out = run(LUA .. [[-e 'local dp = require "dropprobe"
      local inst = dp.instance{ buffer_kb = 64 }
      inst:event("skb:kfree_skb"):filter("protocol == 2048"):enable()
      io.write(inst:name(), "\n") io.flush()
      os.execute("kill -9 " .. io.open("/proc/self/stat"):read("l"):match("^(%d+)"))']])
    name = out:match("(dropprobe%-%d+%-%d+)")
    assert.truthy(name, out)
    local f = io.open(dir .. "/instances/" .. name .. "/trace")
    assert.truthy(f, "the killed process left no instance")
    f:close()
    local listed = run(LUA .. "bin/dropprobe cleanup --dry-run")
    assert.truthy(listed:find("would remove instances/" .. name, 1, true))
    local done, code = run(LUA .. "bin/dropprobe cleanup")
    assert.are.equal(0, code)
    assert.truthy(done:find("removed instances/" .. name, 1, true))
    assert.is_nil(done:find("foreign", 1, true))
    f = io.open(dir .. "/instances/foreign-spec-07/trace")
    assert.truthy(f, "cleanup removed a foreign instance")
    f:close()
    os.execute("rmdir " .. dir .. "/instances/foreign-spec-07")
    state.assert_same(before)
  end)

  it("removes the kprobes a killed process noted as its own, and no others (fake tree)", function()
    local dir = fake.make()
    local rundir = os.tmpname()
    os.remove(rundir)
    finally(function()
      dp.tracefs(false)
      fake.remove(dir)
      os.execute("rm -rf " .. rundir)
    end)
    -- a process makes two probes, closes one, and is killed with SIGKILL
    local out = run("DROPPROBE_RUNDIR=" .. rundir .. " " .. LUA .. [[-e 'local dp = require "dropprobe"
      dp.tracefs("]] .. dir .. [[")
      local a = dp.kprobe{ name = "left_a", at = "kfree_skb_reason", args = { "skb=$arg1:u64" } }
      a:create()
      local b = dp.kprobe{ name = "closed_b", at = "kfree_skb_reason" }
      b:create()
      b:close()
      os.execute("kill -9 " .. io.open("/proc/self/stat"):read("l"):match("^(%d+)"))']])
    local files = {}
    for f in io.popen("ls " .. rundir):lines() do files[#files + 1] = f end
    assert.are.equal(1, #files, out)
    assert.are.equal("left_a\n", fake.read(rundir .. "/" .. files[1]))
    -- what the kernel lists: the dead process's probe, and one a living
    -- process (this one) noted as its own
    fake.write(dir .. "/dynamic_events", "p:dropprobe/left_a kfree_skb_reason skb=$arg1:u64\n"
      .. "p:dropprobe/other_live tcp_v4_rcv\n")
    fake.write(dir .. "/kprobe_events", "")
    local me = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
    fake.write(rundir .. "/" .. me .. ".kprobes", "left_a\nother_live\n")
    dp.tracefs(dir)
    assert.are.same({}, dp.cleanup{ rundir = rundir, dry_run = true }) -- left_a is claimed by a live pid
    os.remove(rundir .. "/" .. me .. ".kprobes")
    fake.write(rundir .. "/" .. me .. ".kprobes", "other_live\n")
    assert.are.same({ "kprobe dropprobe/left_a" }, dp.cleanup{ rundir = rundir, dry_run = true })
    assert.are.equal("", fake.read(dir .. "/kprobe_events"))
    assert.are.same({ "kprobe dropprobe/left_a" }, dp.cleanup{ rundir = rundir })
    assert.are.equal("-:dropprobe/left_a", fake.read(dir .. "/kprobe_events"))
    assert.is_nil(fake.read(rundir .. "/" .. files[1]))
    assert.is_not_nil(fake.read(rundir .. "/" .. me .. ".kprobes"))
  end)
end)
