-- The C text parser, through dp.open on saved traces: the same code that
-- reads a live trace_pipe.
local dp = require "dropprobe"

local function all(path)
  local out = {}
  for rec in dp.open(path) do out[#out + 1] = rec end
  return out
end

describe("02 text parser", function()
  it("reads kfree_skb records with their stacks from a saved trace", function()
    local recs = all("spec/fixtures/trace-tcp-udp-stacks.txt")
    local drops, resets, icmp = {}, 0, 0
    for _, r in ipairs(recs) do
      if r.name == "kfree_skb" then drops[#drops + 1] = r end
      if r.name == "tcp_send_reset" then resets = resets + 1 end
      if r.name == "icmp_send" then icmp = icmp + 1 end
    end
    assert.are.equal(4, #drops)
    assert.are.equal(1, resets)
    assert.are.equal(3, icmp)
    local tcp = drops[1]
    assert.are.equal("python3", tcp.comm)
    assert.are.equal(2844, tcp.pid)
    assert.are.equal(1, tcp.cpu)
    assert.are.equal("..s1.", tcp.flags)
    assert.are.equal(101.435754, tcp.ts)
    assert.are.equal("NO_SOCKET", tcp.fields.reason)
    assert.are.equal(2048, tcp.fields.protocol)
    assert.are.equal("tcp_v4_rcv+0x99/0x1400", tcp.fields.location)
    -- a stack starts at the function that dropped: the tracing machinery
    -- and the freeing function above it are left out (one rule everywhere)
    assert.are.equal(23, #tcp.stack)
    assert.are.equal("tcp_v4_rcv+0x99/0x1400", tcp.stack[1])
    -- the frames as the kernel gave them, for scripts that want them
    local raw
    for rec in dp.open("spec/fixtures/trace-tcp-udp-stacks.txt", { raw_stacks = true }) do
      if rec.name == "kfree_skb" then raw = rec break end
    end
    assert.are.equal(25, #raw.stack)
    assert.are.equal("trace_event_raw_event_kfree_skb+0xac/0x100", raw.stack[1])
    assert.are.equal("tcp_v4_rcv+0x99/0x1400", raw.stack[3])
    -- two UDP drops got stacks (the trigger was stacktrace:2), two did not
    assert.are.equal(20, #drops[2].stack)
    assert.is_nil(drops[3].stack)
    assert.is_nil(drops[4].stack)
    -- never a separate record for a stack
    for _, r in ipairs(recs) do assert.are_not.equal("<stack trace>", r.name) end
  end)

  it("gives fields and stacks made when first read, also after the reader closed", function()
    -- text records decode their fields and make their stack when a loop
    -- first reads them; the ones kept are read here, the reader long gone
    local recs = all("spec/fixtures/trace-tcp-udp-stacks.txt")
    collectgarbage()
    collectgarbage()
    local tcp = recs[2]
    assert.is_nil(rawget(tcp, "fields")) -- not made yet
    local keys = {}
    for k in pairs(tcp) do if k ~= "system" then keys[#keys + 1] = k end end -- system: where tracefs names it
    table.sort(keys)
    assert.are.same({ "comm", "cpu", "fields", "flags", "name", "payload", "pid", "stack", "ts" }, keys)
    assert.are.equal("table", type(rawget(tcp, "fields")))
    assert.are.equal("NO_SOCKET", tcp.fields.reason)
    assert.are.equal("tcp_v4_rcv+0x99/0x1400", tcp.stack[1])
    assert.are.equal(23, #tcp.stack)
    local n = 0
    for _ in pairs(tcp.fields) do n = n + 1 end
    assert.are.equal(5, n)
    -- the same values as a record read whole
    local udp = recs[#recs]
    assert.are.equal("NO_SOCKET", udp.fields.reason)
    assert.are.equal(2048, udp.fields.protocol)
    assert.is_nil(udp.stack)
    -- a field set by the user stays as set
    tcp.fields.reason = "mine"
    assert.are.equal("mine", tcp.fields.reason)
    -- a record not read yet has only its own keys: a serializer that walks
    -- them (lua-cjson) takes it, and a stack set before the first read stays
    local other = recs[4] -- a drop with a stack, neither read yet
    assert.are.equal("kfree_skb", other.name)
    for k in next, other do assert.are.equal("string", type(k)) end
    assert.truthy(require("cjson").encode(other):find('"payload"', 1, true))
    other.stack = { "mine" }
    assert.are.same({ "mine" }, other.stack)
    for k, v in pairs(other) do if k == "stack" then assert.are.same({ "mine" }, v) end end
  end)

  it("gives every record a stack of its own when the same stack repeats", function()
    -- a storm's drops share their stack; the reader copies a repeated one
    -- rather than making its frames again, and each copy is the record's own
    local frames = { "trace_event_raw_event_kfree_skb+0xac/0x100", "sk_skb_reason_drop+0x90/0x130",
      "__udp4_lib_rcv+0x4bc/0xd00", "ip_protocol_deliver_rcu+0xb3/0x180", "ip_local_deliver_finish+0x81/0x100" }
    local other = { "kfree_skb+0x10/0x20", "tcp_v4_rcv+0x99/0x1400", "ip_local_deliver_finish+0x81/0x100" }
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    local stacks = { frames, frames, frames, frames, other, frames }
    for i, st in ipairs(stacks) do
      f:write(("           flood-%d    [000] ..s1.   10%d.000001: kfree_skb: skbaddr=ffff88810000%04x "
        .. "rx_sk=0000000000000000 protocol=2048 location=__udp4_lib_rcv+0x4bc/0xd00 reason: NO_SOCKET\n")
        :format(1000 + i, i, i))
      f:write(("           flood-%d    [000] ..s1.   10%d.000002: <stack trace>\n"):format(1000 + i, i))
      for _, fr in ipairs(st) do f:write(" => ", fr, "\n") end
    end
    f:close()
    local recs, raw = all(path), {}
    for rec in dp.open(path, { raw_stacks = true }) do raw[#raw + 1] = rec end
    os.remove(path)
    assert.are.equal(#stacks, #recs)
    -- a record's stack changed by the user changes no other's, made before
    -- or after it
    local want = { "__udp4_lib_rcv+0x4bc/0xd00", "ip_protocol_deliver_rcu+0xb3/0x180",
      "ip_local_deliver_finish+0x81/0x100" }
    for i = 1, 3 do
      assert.are.same(want, recs[i].stack)
      recs[i].stack[1] = "mine"
      table.remove(recs[i].stack)
    end
    assert.are.same(want, recs[4].stack)
    assert.are.same({ "tcp_v4_rcv+0x99/0x1400", "ip_local_deliver_finish+0x81/0x100" }, recs[5].stack)
    assert.are.same(want, recs[6].stack)
    for i = 1, 3 do assert.are.same({ "mine", want[2] }, recs[i].stack) end
    for i = 1, #recs do
      for j = i + 1, #recs do assert.are_not.equal(recs[i].stack, recs[j].stack) end
    end
    -- trimmed by the one rule, as drop_frames trims the kernel's frames
    for i, st in ipairs(stacks) do
      if i > 3 then assert.are.same(dp.core.drop_frames(st), recs[i].stack) end
      assert.are.same(st, raw[i].stack)
    end
  end)

  it("trims a text stack by drop_frames' rule, also at the rule's limits", function()
    -- the text reader counts the frames to leave out on the text itself;
    -- what it keeps must be what drop_frames keeps of the same frames
    local function rep(frame, n)
      local t = {}
      for i = 1, n do t[i] = frame:format(i) end
      return t
    end
    local function cat(...)
      local t = {}
      for _, part in ipairs({ ... }) do
        for _, fr in ipairs(part) do t[#t + 1] = fr end
      end
      return t
    end
    local tail = { "__udp4_lib_rcv+0x4bc/0xd00", "ip_protocol_deliver_rcu+0xb3/0x180" }
    local handler = { "trace_event_raw_event_kfree_skb+0xac/0x100" }
    local stacks = {
      cat(handler, { "kfree_skb_reason+0x90/0x130" }, tail), -- the usual
      cat({ "ffffffffc0a01234", "0xffffffffc0a01234" }, { "sk_skb_reason_drop+0x90/0x130" }, tail), -- bare addresses
      cat(rep("trace_x%d+0x1/0x2", 30), tail), -- machinery, no freeing function: 12 at most
      cat(rep("trace_x%d+0x1/0x2", 11), { "kfree_skb+0x10/0x20" }, tail), -- freeing as frame 12
      cat(rep("trace_x%d+0x1/0x2", 12), { "kfree_skb+0x10/0x20" }, tail), -- freeing as frame 13: past the look
      cat(handler, { "kfree_skb+0x10/0x20" }, rep("perf_trace_x%d+0x1/0x2", 30), tail), -- 24 left out at most
      cat(handler, { "kfree_skb+0x10/0x20", "aggr_x+0x1/0x2" }), -- nothing after the machinery
      cat({ "tcp_v4_rcv+0x99/0x1400" }, { "kfree_skb+0x10/0x20" }, tail), -- trimmed already
      cat({ "trace_x+0x1/0x2", "ip_rcv+0x1/kfree_skb" }, tail), -- a name is what comes before the '+'
    }
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    for i, st in ipairs(stacks) do
      f:write(("           flood-%d    [000] ..s1.   10%d.000001: kfree_skb: skbaddr=ffff88810000%04x "
        .. "rx_sk=0000000000000000 protocol=2048 location=__udp4_lib_rcv+0x4bc/0xd00 reason: NO_SOCKET\n")
        :format(1000 + i, i, i))
      f:write(("           flood-%d    [000] ..s1.   10%d.000002: <stack trace>\n"):format(1000 + i, i))
      for _, fr in ipairs(st) do f:write(" => ", fr, "\n") end
    end
    f:close()
    local recs = all(path)
    os.remove(path)
    assert.are.equal(#stacks, #recs)
    for i, st in ipairs(stacks) do
      assert.are.same(dp.core.drop_frames(st), recs[i].stack or {}, "stack " .. i)
    end
    -- the rule's limits, as record.h states them: the machinery at the
    -- top, 12 frames at most; a freeing function among the first 12; 24
    -- frames left out at most
    assert.are.same({ table.unpack(stacks[3], 13) }, recs[3].stack)
    assert.are.same(tail, recs[4].stack)
    assert.are.same({ table.unpack(stacks[5], 13) }, recs[5].stack)
    assert.are.same({ table.unpack(stacks[6], 25) }, recs[6].stack)
    assert.are.same(stacks[8], recs[8].stack)
    assert.are.same({ table.unpack(stacks[9], 2) }, recs[9].stack)
  end)

  it("prints a record as its trace line", function()
    local recs = all("spec/fixtures/trace-tcp-udp-stacks.txt")
    local line = tostring(recs[2]):match("^[^\n]+")
    assert.are.equal("         python3-2844    [001] ..s1.   101.435754: kfree_skb: "
      .. "skbaddr=ffff888102a068e0 rx_sk=0000000000000000 protocol=2048 "
      .. "location=tcp_v4_rcv+0x99/0x1400 reason: NO_SOCKET", line)
    assert.truthy(tostring(recs[2]):find("\n => tcp_v4_rcv%+0x99/0x1400\n"))
  end)

  it("survives comm names with spaces and dashes, LOST lines, garbage and orphans", function()
    local recs = all("spec/fixtures/trace-hostile.txt")
    assert.are.equal(5, #recs)
    assert.are.equal("Web Content", recs[1].comm)
    assert.are.equal(1234, recs[1].pid)
    assert.are.equal("kworker/u4:2-my-task", recs[2].comm)
    assert.are.equal(77, recs[2].pid)
    assert.are.equal(34525, recs[2].fields.protocol)
    -- the record after "CPU:1 [LOST 42 EVENTS]" carries the gap
    assert.are.equal("<...>", recs[3].comm)
    assert.are.equal(42, recs[3].lost_before)
    assert.are.equal("SOCKET_RCVBUFF", recs[3].fields.reason)
    assert.are.same({ "__udp4_lib_rcv+0x4bc/0xd00" }, recs[3].stack)
    -- an optional "(tgid)" column
    assert.are.equal("tgid", recs[4].comm)
    assert.are.equal(55, recs[4].pid)
    assert.are.equal("icmp_send", recs[4].name)
    assert.are.equal(3, recs[4].fields.type)
    assert.are.equal("ksoftirqd/0", recs[5].comm)
    assert.is_nil(recs[5].stack) -- the stack on CPU 3 belongs to no record
  end)

  it("counts what it could not parse, and loss, in the reader's stats", function()
    local it, _, _, pipe = dp.open("spec/fixtures/trace-hostile.txt")
    for _ in it, pipe do end
    local s = pipe:stats()
    assert.are.equal(5, s.read)
    assert.are.equal(42, s.lost)
    assert.are.equal(2, s.bad_lines)
    assert.are.equal(1, s.orphan_stacks)
    pipe:close()
  end)

  it("skips a truncated last line instead of crashing", function()
    local recs = all("spec/fixtures/trace-truncated.txt")
    assert.are.equal(1, #recs)
    assert.are.equal("kfree_skb", recs[1].name)
    assert.are.equal("rea", recs[1].payload:match("(rea)$"))
  end)

  it("reads a line longer than one read, and counts one longer than its buffer as bad", function()
    -- the decoder reads a few KB at a time; a longer line grows over several
    -- reads up to the 64 KB buffer, a longer one still is a bad line
    local head = "           flood-1001    [001] ..s1.    101.%06d: "
    local drop = head .. "kfree_skb: skbaddr=ffff888100000100 rx_sk=0000000000000000 protocol=2048 "
      .. "location=__udp4_lib_rcv+0x4bc/0xd00 reason: NO_SOCKET\n"
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(drop:format(1), (head .. "foo_bar: x=%s y=1\n"):format(2, ("A"):rep(20000)), drop:format(3),
      (head .. "foo_bar: x=%s y=2\n"):format(4, ("B"):rep(70000)), drop:format(5))
    for i = 6, 200 do f:write(drop:format(i)) end
    f:close()
    local it, _, _, pipe = dp.open(path)
    local recs = {}
    for rec in it, pipe do recs[#recs + 1] = rec end
    local s = pipe:stats()
    pipe:close()
    os.remove(path)
    assert.are.equal(199, #recs)
    assert.are.equal("foo_bar", recs[2].name)
    assert.are.equal(20000, #recs[2].fields.x)
    assert.are.equal(1, recs[2].fields.y)
    for i = 3, #recs do
      assert.are.equal("NO_SOCKET", recs[i].fields.reason)
      assert.are.equal("ffff888100000100", recs[i].fields.skbaddr)
    end
    assert.are.equal(101.000003, recs[3].ts)
    assert.are.equal(101.000005, recs[4].ts)
    assert.is_true(s.bad_lines >= 1)
  end)

  it("stops at limit and closes the reader when the loop is left", function()
    local n = 0
    local it, s, c, pipe = dp.open("spec/fixtures/trace-tcp-udp-stacks.txt", { limit = 2 })
    for _ in it, s, c, pipe do n = n + 1 end
    assert.are.equal(2, n)
    assert.truthy(tostring(pipe):find("closed"))
  end)

  it("refuses a missing file and unknown options clearly", function()
    assert.has_error(function() dp.open("/nonexistent/trace.txt") end,
      "dp.open: cannot open '/nonexistent/trace.txt': /nonexistent/trace.txt: No such file or directory")
    assert.has_error(function() dp.open("spec/fixtures/trace-truncated.txt", { limt = 1 }) end,
      "dp.open: unknown option 'limt' (allowed: limit, raw_stacks)")
    -- a line of a CPU no kernel has is a bad line, not an error
    local path = os.tmpname()
    local line = "            bash-126     [%s] ..s1.     4.282591: kfree_skb: skbaddr=00000000754972ff "
      .. "protocol=2048 location=00000000d4a41c2d reason: NO_SOCKET\n"
    local f = assert(io.open(path, "wb"))
    f:write(line:format("001"), line:format("70000"), line:format("001"))
    f:close()
    local it, st, c0, reader = dp.open(path)
    local n = 0
    for _ in it, st, c0 do n = n + 1 end
    assert.are.equal(2, n)
    assert.are.equal(1, reader:stats().bad_lines)
    os.remove(path)
    -- a file that opens but cannot be read is an error, not an empty trace
    local ok, err = pcall(function() for _ in dp.open("spec/fixtures") do end end)
    assert.is_false(ok)
    assert.truthy(err:find("cannot read trace file 'spec/fixtures': Is a directory", 1, true), err)
  end)

  it("classifies every line of the fixtures in the C driver, without Lua", function()
    local function driver(path)
      local p = assert(io.popen("build/parse_driver " .. path .. " 2>&1"))
      local out = p:read("a")
      assert.is_true(p:close(), out)
      return out
    end
    local out = driver("spec/fixtures/trace-hostile.txt")
    assert.truthy(out:find("# empty=1 comment=4 event=5 stack=2 ustack=0 frame=4 lost=1 bad=2", 1, true), out)
    assert.truthy(out:find("0 1234 Web Content|kfree_skb|skbaddr=ffff888100000001;", 1, true), out)
    assert.truthy(out:find("\nlost 1 42\n", 1, true), out)
    out = driver("spec/fixtures/trace-tcp-udp-stacks.txt")
    assert.truthy(out:find("event=8 ustack=0", 1, true) or out:find(" event=8 ", 1, true), out)
    assert.truthy(out:find(" stack=2 ", 1, true), out)
    assert.truthy(out:find(" frame=47 ", 1, true), out)
    assert.truthy(out:find(" bad=0", 1, true), out)
    -- every input the fuzzer ever broke is kept as a fixture and must parse
    for name in io.popen("ls spec/fixtures/fuzz 2>/dev/null"):lines() do
      driver("spec/fixtures/fuzz/" .. name)
    end
  end)

  it("reads the seed's lines from a 6.1 kernel: function tracer, kprobe, hashed location", function()
    local recs = all("spec/fixtures/trace-seed-6.1.txt")
    assert.are.equal(5, #recs)
    -- the function tracer: ftrace:function's fields, ip and parent_ip
    assert.are.equal("function", recs[1].name)
    assert.are.equal("ftrace", recs[1].system)
    assert.are.same({ ip = "__kfree_skb", parent_ip = "tcp_ack" }, recs[1].fields)
    assert.are.equal("__kfree_skb+0x4/0x90", recs[2].fields.ip)
    assert.are.equal("tcp_rcv_established+0x2b1/0x7b0", recs[2].fields.parent_ip)
    -- one representation for an address: 16 hex digits, whether printed as
    -- an unsigned decimal beyond a Lua integer, as 0x-hex, or as %p
    assert.are.equal("ffff8c80c4a69600", recs[3].fields.skb)
    assert.are.equal(2, recs[3].fields.reason)
    assert.are.equal("ff11230fc1a34ee8", recs[4].fields.skb)
    assert.are.equal(2, recs[4].fields.reason)
    assert.are.equal("00000000754972ff", recs[5].fields.skbaddr)
    assert.are.equal("00000000d4a41c2d", recs[5].fields.location) -- hashed: not a symbol
    assert.are.equal("NO_SOCKET", recs[5].fields.reason)
    -- where the location is hashed, the stack says where it was dropped
    assert.are.equal("tcp_v4_rcv+0x81/0xee0", dp.where(recs[5]))
    assert.is_nil(dp.where(recs[3]))
  end)

  it("names where a kprobe's record was dropped from its stack", function()
    local rec = { fields = { reason = "NO_SOCKET" }, stack = { "kprobe_trace_func+0x1/0x2",
      "kprobe_dispatcher+0x1/0x2", "create_port+0x1/0x2", "kfree_skb_reason+0x0/0xd0",
      "tcp_v4_rcv+0x81/0xee0", "ip_protocol_deliver_rcu+0x3c/0x1e0" } }
    assert.are.equal("tcp_v4_rcv+0x81/0xee0", dp.where(rec))
    rec = { fields = { location = "__udp4_lib_rcv+0x4bc/0xd00" } }
    assert.are.equal("__udp4_lib_rcv+0x4bc/0xd00", dp.where(rec))
  end)
  it("ends a read loop on a quiet spell also when it ticks, and a record starts the spell again", function()
    local pipe = require "dropprobe.pipe"
    local reads, ticks, got, record_at = 0, 0, 0, nil
    local quiet = { read = function(_, wait)
      reads = reads + 1
      if reads > 200 then return nil, "eof" end -- the loop never ended on idle
      if reads == 3 then
        record_at = dp.core.now()
        return { name = "kfree_skb" }
      end
      dp.core.sleep(wait)
      return nil, "timeout"
    end }
    local why = pipe.each(quiet, { idle = 0.3, tick = 0.05, on_tick = function() ticks = ticks + 1 end },
      function() got = got + 1 end)
    assert.are.equal("idle", why)
    assert.are.equal(1, got)
    assert.is_true(dp.core.now() - record_at >= 0.3)
    assert.is_true(ticks >= 5)
    -- on_tick without tick: once, at the end
    reads, ticks = 0, 0
    assert.are.equal("idle", pipe.each(quiet, { idle = 0.1, on_tick = function() ticks = ticks + 1 end },
      function() end))
    assert.are.equal(1, ticks)
  end)
  it("reads kallsyms as libtraceevent does: the same name, start and size at every address", function()
    -- ksym.c's own table against tep_parse_kallsyms, on odd lines
    -- (absolute symbols, '$' names, modules, an empty line, no last
    -- newline) and on modules out of order with several names at one
    -- address (the table is sorted as libtraceevent sorts it); this
    -- kernel's /proc/kallsyms in spec 06, on every kernel
    for _, path in ipairs({ "spec/fixtures/kallsyms-odd.txt", "spec/fixtures/kallsyms-unsorted.txt" }) do
      local symbols, lookups, out = require("helpers.ksym").assert_agrees(path)
      assert.is_true(symbols > 0 and lookups > 0, out)
    end
  end)
end)
