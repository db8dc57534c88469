-- Filters and triggers: the kernel's words on refusal, nothing changed by
-- bad input, reason names, one write one command.
local dp = require "dropprobe"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local live_it = live.bind(it, pending)

local function file(inst, name)
  return inst:read_file("events/skb/kfree_skb/" .. name)
end

describe("04 event", function()
  live_it("sets a filter with reason names and refuses a bad one, keeping the old #live", function()
    local before = state.snapshot()
    local inst <close> = dp.instance()
    local ev = inst:event("skb:kfree_skb")
    local no_socket = "reason == " .. dp.reasons().NO_SOCKET -- this kernel's number
    ev:filter("reason == NO_SOCKET")
    assert.are.equal(no_socket .. "\n", file(inst, "filter"))
    local ok, err = pcall(ev.filter, ev, "bogus > 3")
    assert.is_false(ok)
    assert.truthy(err:find("filter 'bogus > 3' on skb:kfree_skb: the kernel refused:", 1, true))
    assert.truthy(err:find("Field not found", 1, true))
    assert.truthy(err:find("previous filter is still in force", 1, true))
    assert.are.equal(no_socket .. "\n", file(inst, "filter"))
    ok, err = pcall(ev.filter, ev, "reason == NOT_A_REASON")
    assert.is_false(ok)
    assert.truthy(err:find("unknown reason name 'NOT_A_REASON'", 1, true))
    ok, err = pcall(ev.filter, ev, "reason == NO_SOCKET\nbogus")
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
    local no_socket = "reason == " .. dp.reasons().NO_SOCKET -- this kernel's number
    ev:trigger("stacktrace:5 if reason == NO_SOCKET")
    assert.truthy(file(inst, "trigger"):find("stacktrace:count=5 if " .. no_socket, 1, true))
    local ok, err = pcall(ev.trigger, ev, "stacktrace:5 if reason == NO_SOCKET")
    assert.is_false(ok)
    assert.truthy(err:find("already set", 1, true))
    ok, err = pcall(ev.trigger, ev, "stacktrace if reason >")
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
    local inst <close> = dp.instance()
    local names = {}
    for _, f in ipairs(inst:event("skb:kfree_skb"):fields()) do names[#names + 1] = f.name end
    assert.truthy(table.concat(names, " "):find("skbaddr location", 1, true))
    assert.truthy(table.concat(names, " "):find("reason", 1, true))
  end)
end)
