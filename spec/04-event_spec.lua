-- Filters and triggers: the kernel's words on refusal, nothing changed by
-- bad input, reason names, one write one command.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local live_it = live.bind(it, pending)

-- a good condition and what the kernel keeps of it: reason names become
-- this kernel's numbers; a kernel without drop reasons takes a protocol
local function good()
  local r = dp.reasons()
  if dp.has_reasons() then return "reason == NO_SOCKET", "reason == " .. r.NO_SOCKET end
  return "protocol == 2048", "protocol == 2048"
end

local function file(inst, name)
  return inst:read_file("events/skb/kfree_skb/" .. name)
end

describe("04 event", function()
  live_it("sets a filter with reason names and refuses a bad one, keeping the old #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance()
    local ev = inst:event("skb:kfree_skb")
    local cond, no_socket = good()
    ev:filter(cond)
    assert.are.equal(no_socket .. "\n", file(inst, "filter"))
    -- a field the event does not have: refused before the kernel sees it
    local ok, err = pcall(ev.filter, ev, "bogus > 3")
    assert.is_false(ok)
    assert.truthy(err:find("filter 'bogus > 3' on skb:kfree_skb: the event has no field 'bogus' "
      .. "(its fields: skbaddr, location, ", 1, true), err)
    assert.are.equal(no_socket .. "\n", file(inst, "filter"))
    -- one the kernel refuses: its own words, and the old filter back
    ok, err = pcall(ev.filter, ev, "protocol > ")
    assert.is_false(ok)
    assert.truthy(err:find("filter 'protocol > ' on skb:kfree_skb: the kernel refused:", 1, true), err)
    assert.truthy(err:find("previous filter is still in force", 1, true), err)
    assert.are.equal(no_socket .. "\n", file(inst, "filter"))
    ok, err = pcall(ev.filter, ev, "reason == NOT_A_REASON")
    assert.is_false(ok)
    if dp.has_reasons() then
      assert.truthy(err:find("unknown reason name 'NOT_A_REASON'", 1, true), err)
    else
      assert.truthy(err:find("this kernel has no drop reasons", 1, true), err)
    end
    ok, err = pcall(ev.filter, ev, cond .. "\nbogus")
    assert.is_false(ok)
    assert.truthy(err:find("control character", 1, true))
    assert.are.equal(no_socket .. "\n", file(inst, "filter"))
    assert.are.equal('dropprobe.Event skb:kfree_skb [disabled, filter "' .. no_socket .. '"]', tostring(ev))
    ev:filter(nil)
    assert.are.equal("none\n", file(inst, "filter"))
    inst:close()
    state.assert_same(before)
  end)

  live_it("adds and removes triggers, refusing duplicates and injections #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance()
    local ev = inst:event("skb:kfree_skb")
    local cond, no_socket = good()
    ev:trigger("stacktrace:5 if " .. cond)
    assert.truthy(file(inst, "trigger"):find("stacktrace:count=5 if " .. no_socket, 1, true))
    local ok, err = pcall(ev.trigger, ev, "stacktrace:5 if " .. cond)
    assert.is_false(ok)
    assert.truthy(err:find("already set", 1, true))
    ok, err = pcall(ev.trigger, ev, "stacktrace if protocol >")
    assert.is_false(ok)
    assert.truthy(err:find("the kernel refused", 1, true))
    ok, err = pcall(ev.trigger, ev, "traceoff\nstacktrace")
    assert.is_false(ok)
    assert.truthy(err:find("control character", 1, true))
    ev:trigger("traceoff if protocol == 99")
    ev:untrigger("traceoff if protocol == 99")
    assert.is_nil(file(inst, "trigger"):find("traceoff", 1, true))
    assert.are.same({ "stacktrace:5 if " .. no_socket }, ev:info().triggers)
    ev:enable()
    assert.truthy(tostring(ev):find("enabled", 1, true))
    inst:close()
    state.assert_same(before)
  end)

  live_it("lists the event's fields #live", function()
    local found = state.snapshot()
    local inst <close> = dp.instance()
    local names = {}
    for _, f in ipairs(inst:event("skb:kfree_skb"):fields()) do names[#names + 1] = f.name end
    assert.truthy(table.concat(names, " "):find("skbaddr location", 1, true))
    -- a reason where the kernel has drop reasons, none where it has not
    assert.are.equal(dp.has_reasons(), table.concat(names, " "):find("reason", 1, true) ~= nil)
    inst:close()
    state.assert_same(found)
  end)
end)
