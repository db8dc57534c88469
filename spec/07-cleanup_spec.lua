-- After kill -9: `dropprobe cleanup` removes the instances of dead dropprobe
-- processes, and nothing else.
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
      inst:event("skb:kfree_skb"):filter("reason > 2"):enable()
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
end)
