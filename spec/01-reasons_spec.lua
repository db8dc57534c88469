-- Drop reasons come from the kernel's own format file (the __print_symbolic
-- table of skb:kfree_skb), never from a list in the code.
local dp = require "dropprobe"
local live = require "helpers.live"
local live_it = live.bind(it, pending)

local read = require("helpers.fixture").read

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
    assert.has_error(function() dp.parse_format("this is not a format") end)
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

  live_it("reads this kernel's reasons live #live", function()
    local r = dp.reasons()
    assert.are.equal("NO_SOCKET", r[3])
    assert.are.equal(3, r.NO_SOCKET)
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
  end)
end)
