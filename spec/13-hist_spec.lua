-- Counting without a Lua value per drop: in the kernel (hist triggers)
-- where it can, in C where it cannot; exact against the kernel's counters.
local dp = require "dropprobe"
local hist = require "dropprobe.hist"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local live_it = live.bind(it, pending)

local function has_frame(stack, fn)
  for _, f in ipairs(stack or {}) do
    if f:match("^[^+]*") == fn then return true end
  end
  return false
end

describe("13 hist", function()
  it("counts a trace.dat in C exactly as its records count", function()
    local c <close> = dp.core.count_dat("spec/fixtures/trace-udp-drops.dat",
      { keys = { "reason", "location.sym" } })
    local rows, totals = c:rows()
    local want = {}
    for rec in dp.open("spec/fixtures/trace-udp-drops.dat") do
      if rec.name == "kfree_skb" then
        local k = rec.fields.reason .. "|" .. rec.fields.location:match("^[^+]*")
        want[k] = (want[k] or 0) + 1
      end
    end
    local got = {}
    for _, row in ipairs(rows) do
      -- named with the file's own format, as its records are
      local k = row.reason .. "|" .. row.location
      got[k] = (got[k] or 0) + row.hitcount
    end
    assert.are.same(want, got)
    assert.are.equal(0, totals.dropped)
    local n = 0
    for _ in pairs(want) do n = n + 1 end
    assert.are.equal(n, totals.entries)
  end)

  it("counts a trace.dat's stacks, each stack once, symbolized", function()
    local c <close> = dp.core.count_dat("spec/fixtures/trace-udp-drops.dat", { keys = { "stacktrace" } })
    local rows, totals = c:rows()
    local with = 0
    for _, row in ipairs(rows) do
      if row.stack then
        with = with + row.hitcount
        assert.truthy(has_frame(row.stack, "__udp4_lib_rcv") or has_frame(row.stack, "tcp_v4_rcv"))
      end
    end
    local stacks = 0
    for rec in dp.open("spec/fixtures/trace-udp-drops.dat") do
      if rec.name == "kfree_skb" and rec.stack then stacks = stacks + 1 end
    end
    assert.are.equal(stacks, with)
    assert.are.equal(totals.hits - with, totals.without_stack)
  end)

  it("counts saved texts in C exactly as their records count, stacks too", function()
    for _, name in ipairs({ "trace-tcp-udp-stacks.txt", "trace-seed-6.1.txt", "trace-hostile.txt",
        "trace-truncated.txt" }) do
      local path = "spec/fixtures/" .. name
      local want, stacks = {}, 0
      for rec in dp.open(path) do
        if rec.name == "kfree_skb" then
          local k = tostring(rec.fields.reason) .. "|" .. tostring(rec.fields.location):match("^[^+]*")
          want[k] = (want[k] or 0) + 1
          if rec.stack then stacks = stacks + 1 end
        end
      end
      local r = hist.file(path):read()
      assert.are.equal("c", r.where)
      local got = {}
      for _, row in ipairs(r.rows) do
        local k = tostring(row.reason) .. "|" .. tostring(row.location)
        got[k] = (got[k] or 0) + row.hitcount
      end
      assert.are.same(want, got, name)
      local s = hist.file(path, { keys = { "reason", "stacktrace" } }):read()
      local with = 0
      for _, row in ipairs(s.rows) do
        if #row.stack > 0 then
          with = with + row.hitcount
          assert.is_nil(row.stack[1]:find("^trace_event_raw")) -- from the dropping function
        end
      end
      assert.are.equal(stacks, with, name)
    end
  end)

  it("joins a stack to its drop by the records' rule: as many without a stack, orphan stacks, bad lines", function()
    local fixtures = { "trace-udp-drops.dat", "trace-hostile.txt", "trace-seed-6.1.txt",
      "trace-tcp-udp-stacks.txt", "trace-truncated.txt" }
    local orphans, bad = 0, 0
    for _, name in ipairs(fixtures) do
      local path = "spec/fixtures/" .. name
      local it, s, c0, reader = dp.open(path)
      local drops, nostack = 0, 0
      for rec in it, s, c0 do
        if rec.name == "kfree_skb" then
          drops = drops + 1
          if not rec.stack then nostack = nostack + 1 end
        end
      end
      local st = reader:stats()
      reader:close()
      local c <close> = name:match("%.dat$") and dp.core.count_dat(path, { keys = { "stacktrace" } })
        or dp.core.count_text(path, { keys = { "stacktrace" } })
      local _, totals = c:rows()
      assert.are.equal(drops, totals.hits, name)
      assert.are.equal(nostack, totals.without_stack, name)
      assert.are.equal(st.orphan_stacks, totals.orphan_stacks, name)
      assert.are.equal(st.bad_lines or 0, totals.bad_lines, name)
      orphans = orphans + totals.orphan_stacks
      bad = bad + totals.bad_lines
    end
    assert.is_true(orphans > 0) -- trace-hostile.txt has a stack after no drop
    assert.is_true(bad > 0) -- and lines of no trace
  end)

  it("refuses what it cannot count, naming it", function()
    local ok, err = pcall(dp.core.count_dat, "spec/fixtures/trace-udp-drops.dat", { keys = { "nosuch" } })
    assert.is_false(ok)
    assert.truthy(err:find("no numeric field 'nosuch'", 1, true))
    ok, err = pcall(dp.core.count_dat, "spec/fixtures/trace-udp-drops.dat", { keys = { "location.bogus" } })
    assert.is_false(ok)
    assert.truthy(err:find(".sym", 1, true))
    ok, err = pcall(dp.core.count_dat, "/nonexistent.dat", { keys = { "reason" } })
    assert.is_false(ok)
    assert.truthy(err:find("/nonexistent.dat", 1, true))
    -- a saved text that cannot be read is an error, not an empty count
    ok, err = pcall(dp.core.count_text, "spec/fixtures", { keys = { "reason" } })
    assert.is_false(ok)
    assert.are.equal("spec/fixtures: Is a directory", err)
    ok, err = pcall(hist.open, { keys = { "reason" }, where = "gpu" })
    assert.is_false(ok)
    assert.truthy(err:find('"kernel" or "c"', 1, true))
  end)

  it("counts in its C table exactly what a model of it in Lua counts, without Lua in the table", function()
    -- 20000 events over 2 keys, a stack and a sum; 3000 distinct stacks
    -- (the index grows many times); at most 500 entries, the rest dropped
    math.randomseed(7)
    local lines, stacks, ids = { "init 2 1 500" }, {}, {}
    local expect_ids = {}
    for i = 1, 3000 do
      local frames = {}
      for f = 1, math.random(0, 6) do frames[f] = math.random(1, 40) end
      stacks[i] = table.concat(frames, " ")
      if not ids[stacks[i]] then
        ids[#ids + 1] = stacks[i]
        ids[stacks[i]] = #ids
      end
      lines[#lines + 1] = "stack " .. stacks[i]
      expect_ids[#expect_ids + 1] = ids[stacks[i]]
    end
    local model, order, dropped = {}, {}, 0
    for _ = 1, 20000 do
      local k1, k2 = math.random(1, 30), math.random(1, 30)
      local st = math.random(0, 20) == 0 and 0 or ids[stacks[math.random(1, 3000)]]
      local v = math.random(0, 1000)
      lines[#lines + 1] = ("add %d %d %d %d"):format(k1, k2, st, v)
      local key = ("%d %d %d"):format(k1, k2, st)
      if model[key] then
        model[key].hits, model[key].sum = model[key].hits + 1, model[key].sum + v
      elseif #order < 500 then
        model[key] = { k = { k1, k2, st }, hits = 1, sum = v }
        order[#order + 1] = key
      else
        dropped = dropped + 1
      end
    end
    lines[#lines + 1] = "intern NO_SOCKET"
    lines[#lines + 1] = "intern tcp_v4_rcv+0x1a/0x30"
    lines[#lines + 1] = "intern NO_SOCKET"
    lines[#lines + 1] = "str 2"
    lines[#lines + 1] = "dump"
    local input = os.tmpname()
    local f = assert(io.open(input, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    local p = assert(io.popen("build/ctable_driver < " .. input .. " 2>&1"))
    local out = {}
    for l in p:lines() do out[#out + 1] = l end
    assert.is_true(p:close(), table.concat(out, "\n"))
    os.remove(input)
    -- the stack ids: the same frames, the same id; new frames, the next one
    for i = 1, 3000 do assert.are.equal(tostring(expect_ids[i]), out[i], "stack " .. i) end
    assert.are.same({ "1", "2", "1", "tcp_v4_rcv+0x1a/0x30" }, { out[3001], out[3002], out[3003], out[3004] })
    local rows = {}
    for _, key in ipairs(order) do rows[#rows + 1] = model[key] end
    table.sort(rows, function(a, b)
      for i = 1, 3 do if a.k[i] ~= b.k[i] then return a.k[i] < b.k[i] end end
      return false
    end)
    for i, r in ipairs(rows) do
      assert.are.equal(("%d %d %d %d %d"):format(r.k[1], r.k[2], r.k[3], r.hits, r.sum), out[3004 + i])
    end
    assert.are.equal(("hits 20000 dropped %d entries 500 stacks %d strings 2"):format(dropped, #ids),
      out[3004 + #rows + 1])
    assert.is_true(dropped > 0)
  end)

  it("reads a key spec one way, for a saved trace.dat and a saved text alike", function()
    local sources = {
      { dp.core.count_dat, "spec/fixtures/trace-udp-drops.dat" },
      { dp.core.count_text, "spec/fixtures/trace-tcp-udp-stacks.txt" },
    }
    local cases = {
      { { keys = { "reason" }, values = { "a", "b", "c", "d", "e" } }, "at most 4 summed values" },
      { { keys = { "reason", 7 } }, "keys[2]: a field name is a string, got number" },
      { { keys = { "reason" }, values = { "hitcount", false } }, "values[2]: a field name is a string, got boolean" },
      { { keys = { "a", "b", "c", "d", "e", "f", "g" } }, "at most 6 key fields (and stacktrace)" },
      { { keys = { "location.bogus" } }, "key 'location.bogus': the modifiers are .sym and .sym-offset" },
      { { keys = { ".sym" } }, "key '.sym': not a field name" },
      { { keys = {} }, "keys: at least one field or stacktrace" },
      { { keys = "reason" }, "keys: give a list of fields" },
    }
    for _, src in ipairs(sources) do
      for _, case in ipairs(cases) do
        local ok, err = pcall(src[1], src[2], case[1])
        assert.is_false(ok, case[2])
        assert.are.equal(src[2] .. ": " .. case[2], err:sub(1, #src[2] + 2 + #case[2]))
      end
    end
  end)

  live_it("counts N UDP and M TCP drops by reason and location, as the kernel's counters say #live", function()
    local before = state.snapshot()
    local tcp_rcv = kernel.named("tcp_v4_rcv")
    -- the reason where the kernel has drop reasons (keys and condition)
    local h <close> = hist.open{ keys = hist.default_keys(),
      condition = kernel.cond("reason == NO_SOCKET", "protocol == 2048") }
    local s0 = snmp.read()
    net.udp_closed(net.free_udp_port(), 300)
    net.tcp_closed(9, 20)
    local s1 = snmp.read()
    h:run{ idle = 0.5 }
    local r = h:read()
    assert.are.equal(dp.features().hist and "kernel" or "c", r.where)
    -- TCP's at tcp_v4_rcv; the UDP ones all at one other function of this kernel
    local tcp, udp, places = 0, 0, {}
    for _, row in ipairs(r.rows) do
      assert.are.equal(kernel.reason("NO_SOCKET"), row.reason)
      local fn = kernel.func(row.location)
      if fn == tcp_rcv then tcp = tcp + row.hitcount
      else udp, places[#places + 1] = udp + row.hitcount, fn end
    end
    assert.are.equal(snmp.delta(s0, s1, "Udp.NoPorts"), udp)
    assert.are.equal(300, udp)
    assert.are.equal(1, #places)
    assert.are.equal(20, tcp)
    assert.are.equal(snmp.delta(s0, s1, "Tcp.OutRsts"), tcp)
    assert.are.equal(0, r.lost)
    assert.are.equal(0, r.dropped)
    h:close()
    state.assert_same(before)
  end)

  live_it("puts the TCP drops under a stack that starts at tcp_v4_rcv #live", function()
    local before = state.snapshot()
    local tcp_rcv = kernel.named("tcp_v4_rcv")
    local keys = dp.has_reasons() and { "reason", "stacktrace" } or { "stacktrace" }
    local h <close> = hist.open{ keys = keys, condition = kernel.cond("reason == NO_SOCKET", "protocol == 2048") }
    net.tcp_closed(9, 12)
    net.udp_closed(net.free_udp_port(), 30)
    h:run{ idle = 0.5 }
    local tcp, udp, places = 0, 0, {}
    for _, row in ipairs(h:read().rows) do
      assert.are.equal(kernel.reason("NO_SOCKET"), row.reason)
      assert.is_true(#row.stack <= 16)
      -- a stack starts at the function that dropped the packet
      local first = kernel.func(row.stack[1])
      if first == tcp_rcv then tcp = tcp + row.hitcount
      else udp, places[first] = udp + row.hitcount, true end
    end
    assert.are.equal(12, tcp)
    assert.are.equal(30, udp)
    assert.are.equal(1, #(function() local l = {} for k in pairs(places) do l[#l + 1] = k end return l end)())
    h:close()
    state.assert_same(before)
  end)

  live_it("gives the same rows counted in the kernel and in C for the same drops #live", function()
    local before = state.snapshot()
    -- the kernel's hist takes three keys: a fourth is refused before tracefs is touched
    assert.has_error(function()
      hist.open{ keys = { "reason", "location", "protocol", "stacktrace" }, where = "kernel" }
    end, "hist.open: a kernel hist trigger takes at most 3 keys (stacktrace included): count with where = \"c\"")
    -- nor does it read the buffers, so it has nothing to copy
    assert.has_error(function() hist.open{ where = "kernel", map = false } end,
      "hist.open: map = false copies the buffers C counting reads: the kernel counts without them (where = \"c\")")
    state.assert_same(before)
    local cond = kernel.cond("reason == NO_SOCKET", "protocol == 2048")
    local keysets = dp.has_reasons() and { { "reason", "location.sym" }, { "reason", "stacktrace" } }
      or { { "location.sym" }, { "stacktrace" } }
    for _, keys in ipairs(keysets) do
      local k <close> = hist.open{ keys = keys, condition = cond, where = "kernel" }
      local c <close> = hist.open{ keys = keys, condition = cond, where = "c" }
      net.udp_closed(net.free_udp_port(), 40)
      net.tcp_closed(9, 7)
      c:run{ idle = 0.5 }
      local kr, cr = k:read(), c:read()
      assert.are.equal("kernel", kr.where)
      assert.are.equal("c", cr.where)
      assert.are.equal(47, kr.hits)
      assert.are.equal(kr.hits, cr.hits)
      local second = keys[#keys] == "stacktrace" and "stack" or "location"
      local function key(row)
        return tostring(row.reason) .. "|" .. (second == "stack" and table.concat(row.stack, ";") or row.location)
      end
      local kt, ct = {}, {}
      for _, row in ipairs(kr.rows) do kt[key(row)] = row.hitcount end
      for _, row in ipairs(cr.rows) do ct[key(row)] = row.hitcount end
      if second == "stack" then
        -- the kernel and a stacktrace trigger unwind from different places:
        -- the same drops fall under stacks with the same dropping function
        local function by_top(t)
          local out = {}
          for st, n in pairs(t) do
            local top = st:match("|([^+;]*)") or st
            out[top] = (out[top] or 0) + n
          end
          return out
        end
        assert.are.same(by_top(kt), by_top(ct))
      else
        assert.are.same(kt, ct)
      end
      c:close()
      k:close()
    end
    state.assert_same(before)
  end, "hist")

  live_it("where = \"kernel\" is refused where the kernel has no hist triggers, nothing left #live", function()
    local before = state.snapshot()
    local ok, err = pcall(hist.open, { where = "kernel" })
    assert.is_false(ok)
    assert.truthy(err:find("CONFIG_HIST_TRIGGERS", 1, true))
    state.assert_same(before)
  end, "!hist")

  -- what keeps every reason gives every drop its stack: the stack trigger
  -- has no condition (not the one that leaves the teardown reasons out)
  live_it("a count or a hunt that keeps every drop sets its stack trigger without a condition #live", function()
    local before = state.snapshot()
    local h <close> = hist.open{ keys = { "stacktrace" }, where = "c", condition = false }
    local trig = h.ev:read_file("trigger")
    assert.truthy(trig:find("stacktrace", 1, true), trig)
    assert.is_nil(trig:find(" if ", 1, true), trig)
    h:close()
    local hu <close> = require("dropprobe.hunt").open{ stacks = true, all_reasons = true }
    trig = hu.ev:read_file("trigger")
    assert.truthy(trig:find("stacktrace", 1, true), trig)
    assert.is_nil(trig:find(" if ", 1, true), trig)
    hu:close()
    state.assert_same(before)
  end)
end)
