-- A private instance: created by this process, removed with everything in
-- it, never adopting one it did not make.
local dp = require "dropprobe"
local live = require "helpers.live"
local kernel = require "helpers.kernel"
local state = require "helpers.tracefs_state"
local live_it = live.bind(it, pending)

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("03 instance", function()
  it("refuses bad names and options before touching anything", function()
    for _, bad in ipairs({ "a/b", "..", ".", "x\ny", "with space", string.rep("n", 65), "" }) do
      assert.has_error(function() dp.instance{ name = bad } end,
        ("bad instance name '%s': use 1 to 64 of A-Z a-z 0-9 _ . - (not '.' or '..')"):format(bad))
    end
    assert.has_error(function() dp.instance{ nmae = "x" } end,
      "dp.instance: unknown option 'nmae' (allowed: name, buffer_kb, clock)")
    assert.has_error(function() dp.instance{ buffer_kb = "big" } end,
      "option 'buffer_kb' must be an integer, got string")
    assert.has_error(function() dp.instance("hunt") end, "dp.instance: options must be a table, got string")
  end)

  live_it("creates, prints and removes a private instance #live", function()
    local before = state.snapshot()
    local dir = dp.tracefs()
    local inst = dp.instance{ name = "dropprobe-spec-03", buffer_kb = 256 }
    finally(function() inst:close() end)
    assert.is_true(exists(dir .. "/instances/dropprobe-spec-03/trace"))
    assert.are.equal('dropprobe.Instance "dropprobe-spec-03" (', tostring(inst):sub(1, 40))
    assert.truthy(tostring(inst):find("0 events%)$"))
    assert.are.equal("mono", inst:read_file("trace_clock"):match("%[(%w+)%]"))
    inst:event("skb:kfree_skb"):enable()
    inst:close()
    inst:close() -- idempotent
    assert.are.equal('dropprobe.Instance "dropprobe-spec-03" (closed)', tostring(inst))
    assert.is_false(exists(dir .. "/instances/dropprobe-spec-03/trace"))
    assert.has_error(function() inst:event("skb:kfree_skb") end,
      "attempt to use a closed instance")
    state.assert_same(before)
  end)

  live_it("names itself dropprobe-<pid>-<n> by default and goes on <close> and GC #live", function()
    local before = state.snapshot()
    do
      local inst <close> = dp.instance()
      assert.truthy(inst:name():match("^dropprobe%-%d+%-%d+$"))
    end
    state.assert_same(before)
    local name
    do
      local inst = dp.instance()
      name = inst:name()
      inst:event("skb:kfree_skb"):filter(kernel.cond("reason == NO_SOCKET", "protocol == 2048")):enable()
    end
    collectgarbage()
    collectgarbage()
    assert.is_false(exists(dp.tracefs() .. "/instances/" .. name .. "/trace"))
    state.assert_same(before)
  end)

  live_it("never adopts or removes an instance it did not create #live", function()
    local found = state.snapshot()
    local dir = dp.tracefs()
    assert(os.execute("mkdir " .. dir .. "/instances/foreign-spec-03"))
    finally(function() os.execute("rmdir " .. dir .. "/instances/foreign-spec-03 2>/dev/null") end)
    local ok, err = pcall(dp.instance, { name = "foreign-spec-03" })
    local still = exists(dir .. "/instances/foreign-spec-03/trace")
    assert.is_false(ok)
    assert.truthy(err:find("already exists and this process did not create it", 1, true))
    assert.is_true(still)
    assert(os.execute("rmdir " .. dir .. "/instances/foreign-spec-03"))
    state.assert_same(found)
  end)

  live_it("refuses an unknown event and bad event names #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance()
    assert.has_error(function() inst:event("skb:no_such_event") end,
      'unknown event skb:no_such_event: this kernel has no such event (see dp.events("skb") or available_events)')
    assert.has_error(function() inst:event("../../x:y") end,
      "bad event system '../../x': names are made of A-Z a-z 0-9 _ . -")
    assert.has_error(function() inst:event("skb", "kfree_skb/../../x") end,
      "bad event name 'kfree_skb/../../x': names are made of A-Z a-z 0-9 _ . -")
    assert.has_error(function() inst:event("skb:kfree_skb\nx") end,
      "event refused: it contains a control character (byte 0x0a at position 14); one write must stay one command")
    assert.are.equal(inst:event("skb", "kfree_skb"), inst:event("skb:kfree_skb"))
    inst:close()
    state.assert_same(before)
  end)

  live_it("reports features read live #live", function()
    local found = state.snapshot()
    local f = dp.features()
    for _, k in ipairs({ "kprobes", "uprobes", "eprobes", "hist", "function_tracer",
      "function_filter", "stacktrace", "instances", "raw", "btf" }) do
      assert.are.equal("boolean", type(f[k]), k)
    end
    assert.is_true(f.instances)
    assert.is_true(f.stacktrace)
    assert.is_true(f.raw)
    state.assert_same(found)
  end)
end)
