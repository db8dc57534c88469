-- A workload for `make valgrind`: every object of the C core made, used and
-- closed (or collected), then the Lua state closed, so that anything the
-- module allocated and did not free shows as "definitely lost".
--   valgrind --leak-check=full lua5.4 spec/c/leakcheck.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("DROPPROBE_CPATH") or "./build/?.so") .. ";" .. package.cpath
local dp = require "dropprobe"
local fake = require "helpers.faketree"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- formats and reasons
for _ = 1, 3 do
  local f = dp.parse_format(read("spec/fixtures/kfree_skb-6.18.format"), "skb")
  assert(dp.reasons_of(f).NO_SOCKET == 3)
end
pcall(dp.parse_format, "garbage")
-- the kernel's BTF (libbpf): an enum, a missing enum, a missing file
assert(dp.core.btf_enum("skb_drop_reason"))
assert(not dp.core.btf_enum("no_such_enum_dropprobe"))
assert(not dp.core.btf_enum("skb_drop_reason", "/nonexistent"))

-- the text parser over every fixture, closed and collected
for _, name in ipairs({ "trace-tcp-udp-stacks.txt", "trace-hostile.txt", "trace-truncated.txt",
    "trace-seed-6.1.txt" }) do
  local n = 0
  for _ in dp.open("spec/fixtures/" .. name) do n = n + 1 end
  local it, s, c = dp.open("spec/fixtures/" .. name)
  it(s, c) -- one record read, the reader left to the garbage collector
end
collectgarbage()

-- a trace.dat (libtracecmd): read whole, left after one record, and a bad
-- file (its handles are released too)
for _ = 1, 2 do
  for _ in dp.open("spec/fixtures/trace-udp-drops.dat") do end -- luacheck: ignore 512
  local it, s, c = dp.open("spec/fixtures/trace-udp-drops.dat")
  it(s, c)
end
do
  local bad = os.tmpname()
  local f = io.open(bad, "wb")
  f:write("\23\8\68tracing6\0garbage that is no trace.dat")
  f:close()
  assert(not pcall(dp.open, bad))
  os.remove(bad)
end
collectgarbage()

-- counting a trace.dat in C: by fields, by stack, a refusal, a bad file
for _, keys in ipairs({ { "reason", "location.sym" }, { "reason", "stacktrace" } }) do
  local c = dp.core.count_dat("spec/fixtures/trace-udp-drops.dat", { keys = keys })
  c:rows()
  c:close()
  dp.core.count_dat("spec/fixtures/trace-udp-drops.dat", { keys = keys }) -- left to the GC
end
pcall(dp.core.count_dat, "spec/fixtures/trace-udp-drops.dat", { keys = { "nosuch" } })
-- and a saved text: values and frames interned as strings
for _, keys in ipairs({ { "reason", "location.sym" }, { "reason", "stacktrace" } }) do
  dp.hist_file("spec/fixtures/trace-tcp-udp-stacks.txt", { keys = keys }):read()
  dp.hist_file("spec/fixtures/trace-hostile.txt", { keys = keys }):close()
end
pcall(dp.hist_file, "spec/fixtures/trace-hostile.txt", { keys = { "x.bogus" } })

-- the pcapng writer: closed, left to the collector, refused
do
  local path = os.tmpname()
  local w = dp.core.pcapng_open(path, { snaplen = 64 })
  for i = 1, 3 do w:packet("if" .. i, i, string.rep("\69", 100), 100, "comment") end
  w:close()
  dp.core.pcapng_open(path):packet("lo", 1, "x")
  collectgarbage()
  pcall(dp.core.pcapng_open, "/nonexistent/f.pcapng")
  os.remove(path)
end
pcall(dp.core.count_dat, "/nonexistent.dat", { keys = { "reason" } })
collectgarbage()

-- a packet's headers, and the BTF the drop probe is built from
assert(dp.core.decode_packet(string.rep("\0", 16) .. "\69\0\0\29\0\0\0\0\64\17\0\0\127\0\0\1\127\0\0\1"
  .. "\0\9\0\9\0\9\0\0", 16))
assert(not dp.core.decode_packet("garbage", 0))
assert(dp.core.btf_struct("sk_buff"))
assert(not dp.core.btf_struct("no_such_struct_dropprobe"))

-- kprobes on a fake tree: created, closed, collected
local dir = fake.make()
dp.tracefs(dir)
local kp = dp.kprobe{ name = "leak", at = "kfree_skb_reason", args = { "skb=$arg1:u64" } }
kp:create()
kp:close()
do
  local k2 = dp.kprobe{ name = "leak2", at = "x", ret = true, args = { "r=$retval" } }
  k2:create()
end
pcall(dp.kprobe, { name = "bad name", at = "x" })
collectgarbage()
dp.tracefs(false)
fake.remove(dir)

-- live objects, where this is root with tracefs
local ok = pcall(dp.tracefs)
if ok and dp.core.is_root() then
  local socket = require "socket"
  for _, mode in ipairs({ "text", "raw" }) do
    local inst = dp.instance{ buffer_kb = 256 }
    local ev = inst:event("skb:kfree_skb")
    ev:filter(dp.drop_condition())
    pcall(ev.filter, ev, "bogus > 1")
    ev:trigger(dp.trigger_if("stacktrace", dp.drop_condition()))
    pcall(ev.trigger, ev, dp.trigger_if("stacktrace", dp.drop_condition()))
    ev:enable()
    local pipe = inst:pipe{ mode = mode }
    local u = socket.udp4()
    for _ = 1, 50 do u:sendto("x", "127.0.0.1", 9) end
    u:close()
    local n = 0
    while pipe:read(0.5) do n = n + 1 end
    assert(n >= 50, mode .. " read " .. n)
    local _ = pipe:stats()
    if mode == "text" then pipe:close() inst:close() end
    -- raw: left to the garbage collector and lua_close
  end
  -- recording (datwriter.c, libtracecmd): finished, closed unfinished,
  -- left to the collector, refused
  do
    local path = os.tmpname()
    local r = dp.record{ path = path, duration = 0.5, buffer_kb = 256, ready = function()
      local u = socket.udp4()
      for _ = 1, 20 do u:sendto("x", "127.0.0.1", 9) end
      u:close()
    end }
    assert(r.pages >= 1, "record kept no page")
    local n = 0
    for _ in dp.open(path) do n = n + 1 end
    assert(n >= 20, "the recording gave " .. n)
    for i = 1, 2 do
      local inst = dp.instance{ buffer_kb = 256 }
      inst:event("skb:kfree_skb"):enable()
      local rec = dp.core.recorder(inst, path, { events = { "skb/kfree_skb" } })
      rec:read(10)
      if i == 1 then rec:close() inst:close() end -- 2: left to the collector
    end
    pcall(dp.record, { path = "/nonexistent/x.dat", duration = 1 })
    assert(not dp.core.dat_check("/nonexistent/x.dat"))
    os.remove(path)
  end
  collectgarbage()
  -- counting: in C over the raw buffers (and in the kernel where it can),
  -- by fields and by stack, closed and left to the collector
  local hist = require "dropprobe.hist"
  for _, keys in ipairs({ { "reason", "location.sym" }, { "reason", "stacktrace" } }) do
    local h = hist.open{ keys = keys, where = "c", buffer_kb = 256 }
    local u = socket.udp4()
    for _ = 1, 30 do u:sendto("x", "127.0.0.1", 9) end
    u:close()
    h:run{ idle = 0.3 }
    assert(h:read().hits >= 30)
    if keys[2] == "stacktrace" then h:close() end
  end
end
print("leakcheck workload done")
os.exit(0, true)
