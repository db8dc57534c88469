-- Drop reasons come from the kernel's own format file (the __print_symbolic
-- table of skb:kfree_skb), never from a list in the code.
local dp = require "dropprobe"
local live = require "helpers.live"
local live_it = live.bind(it, pending)

local read = require("helpers.fixture").read
local state = require "helpers.tracefs_state"

describe("01 reasons", function()
  it("parses the reason table of a 6.18 kfree_skb format both ways", function()
    local f = dp.parse_format(read("spec/fixtures/kfree_skb-6.18.format"), "skb")
    assert.are.equal("kfree_skb", f.name)
    assert.are.equal(2310, f.id)
    local r = dp.reasons_of(f)
    assert.are.equal("NO_SOCKET", r[3])
    assert.are.equal(3, r.NO_SOCKET)
    assert.are.equal(6, r.SOCKET_RCVBUFF)
    assert.are.equal("NOT_SPECIFIED", r[2])
    assert.is_nil(r[1]) -- SKB_CONSUMED is not in the table: it is no drop
  end)

  it("parses Debian 12's 6.1 table, where NO_SOCKET is 2: only names carry across kernels", function()
    local r = dp.reasons_of(dp.parse_format(read("spec/fixtures/kfree_skb-6.1.format"), "skb"))
    local r618 = dp.reasons_of(dp.parse_format(read("spec/fixtures/kfree_skb-6.18.format"), "skb"))
    assert.are.equal("NO_SOCKET", r[2])
    assert.are.equal("NOT_SPECIFIED", r[1])
    assert.are.equal("NO_SOCKET", r618[3])
    -- a condition in names means the same drops on both; numbers do not
    local f61 = dp.parse_format(read("spec/fixtures/kfree_skb-6.1.format"), "skb")
    local f618 = dp.parse_format(read("spec/fixtures/kfree_skb-6.18.format"), "skb")
    assert.are.equal("reason == 2", dp._translate("reason == NO_SOCKET", f61.symbols, "filter"))
    assert.are.equal("reason == 3", dp._translate("reason == NO_SOCKET", f618.symbols, "filter"))
  end)

  it("describes every field with type, offset, size and signedness", function()
    local f = dp.parse_format(read("spec/fixtures/kfree_skb-6.18.format"), "skb")
    local byname = {}
    for _, fld in ipairs(f.fields) do byname[fld.name] = fld end
    assert.are.same({ name = "reason", type = "enum skb_drop_reason", offset = 36, size = 4,
      signed = false, common = false }, byname.reason)
    assert.are.equal(8, byname.skbaddr.offset)
    assert.is_true(byname.common_pid.signed)
    assert.is_true(byname.common_pid.common)
  end)

  it("gives an empty table for a kernel without a reason field (5.10)", function()
    local f = dp.parse_format(read("spec/fixtures/kfree_skb-5.10.format"), "skb")
    assert.are.same({}, dp.reasons_of(f))
    assert.are.equal(3, #f.fields - 4)
  end)

  it("refuses text that is not a format", function()
    assert.has_error(function() dp.parse_format("this is not a format") end,
      "cannot parse event format: not the text of an event's format file (a 'name:' line, then 'ID:' and 'format:')")
  end)

  it("turns reason names in a filter into numbers, and only those", function()
    local f = dp.parse_format(read("spec/fixtures/kfree_skb-6.18.format"), "skb")
    local t = dp._translate
    assert.are.equal("reason == 3", t("reason == NO_SOCKET", f.symbols, "filter"))
    assert.are.equal("reason != 6 && protocol == 2048",
      t("reason != SKB_DROP_REASON_SOCKET_RCVBUFF && protocol == 2048", f.symbols, "filter"))
    assert.are.equal('comm == "reason == NO_SOCKET"',
      t('comm == "reason == NO_SOCKET"', f.symbols, "filter"))
    assert.has_error(function() t("reason == NOT_A_REASON", f.symbols, "filter") end,
      "filter: unknown reason name 'NOT_A_REASON' on this kernel (see dp.reasons())")
  end)

  live_it("reads this kernel's reasons live, numbers as its own format and BTF give them #live", function()
    local found = state.snapshot()
    local r = dp.reasons()
    -- the oracle: the kernel's format file read by plain Lua, and its BTF
    local text = assert(io.open(dp.tracefs() .. "/events/skb/kfree_skb/format")):read("a")
    local field = text:find("field:[^;]- reason;") ~= nil
    assert.are.equal(field, dp.has_reasons())
    if not field then -- before 5.17: no reasons, every kfree_skb a drop, and a clear refusal
      assert.are.same({}, r)
      assert.is_nil(dp.drop_condition())
      local inst <close> = dp.instance()
      local ev = inst:event("skb:kfree_skb")
      assert.has_error(function() ev:filter("reason == NO_SOCKET") end,
        "filter 'reason == NO_SOCKET' on skb:kfree_skb: this kernel has no drop reasons "
        .. "(skb:kfree_skb carries no reason field before 5.17; every kfree_skb is a drop here): leave "
        .. "reason out; nothing was changed")
      assert.are.equal("none\n", inst:read_file("events/skb/kfree_skb/filter"))
      return
    end
    for _, name in ipairs({ "NO_SOCKET", "NOT_SPECIFIED", "SOCKET_RCVBUFF", "TCP_CSUM" }) do
      local n = tonumber(text:match("{ (%d+), \"" .. name .. "\" }"))
      assert.is_number(n, name)
      assert.are.equal(n, r[name], name)
      assert.are.equal(name, r[n], name)
    end
    local btf = dp.core.btf_enum("skb_drop_reason")
    assert.are.equal(btf.SKB_NOT_DROPPED_YET, r.NOT_DROPPED_YET)
    assert.are.equal(btf.SKB_CONSUMED, r.CONSUMED) -- nil on 6.1, which has none
    assert.are.equal(btf.SKB_DROP_REASON_NO_SOCKET, r.NO_SOCKET)
    local f = dp.format("skb", "kfree_skb")
    assert.are.equal("kfree_skb", f.name)
    local sys = dp.systems()
    local has_skb = false
    for _, s in ipairs(sys) do if s == "skb" then has_skb = true end end
    assert.is_true(has_skb)
    assert.are.same({ "consume_skb", "kfree_skb", "skb_copy_datagram_iovec" },
      (function()
        local want = {}
        for _, e in ipairs(dp.events("skb")) do
          if e == "consume_skb" or e == "kfree_skb" or e == "skb_copy_datagram_iovec" then
            want[#want + 1] = e
          end
        end
        return want
      end)())
    assert.has_error(function() dp.format("skb", "no_such_event") end,
      "unknown event skb:no_such_event: this kernel has no such event")
    state.assert_same(found)
  end)

  live_it("builds the default condition from this kernel's non-drop names #live", function()
    local found = state.snapshot()
    local r = dp.reasons()
    local cond = dp.drop_condition()
    local want = {}
    if r.NOT_DROPPED_YET then want[#want + 1] = "reason != NOT_DROPPED_YET" end
    if r.CONSUMED then want[#want + 1] = "reason != CONSUMED" end
    assert.are.equal(#want > 0 and table.concat(want, " && ") or nil, cond)
    -- the kernel takes it, as this kernel's numbers
    local inst <close> = dp.instance()
    local ev = inst:event("skb:kfree_skb"):filter(cond)
    local filter = inst:read_file("events/skb/kfree_skb/filter")
    if cond then
      assert.truthy(filter:find("reason != " .. r.NOT_DROPPED_YET, 1, true), filter)
      assert.is_nil(filter:find("NOT_DROPPED_YET", 1, true))
    end
    ev:trigger(dp.trigger_if("stacktrace", cond))
    assert.truthy(inst:read_file("events/skb/kfree_skb/trigger"):find("stacktrace", 1, true))
    inst:close()
    state.assert_same(found)
  end)
end)
