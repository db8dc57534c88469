-- A fake tracefs tree in a temp dir, for the paths this kernel cannot take
-- (kprobe events) and for exact bytes written. The library is pointed at it
-- with dp.tracefs(dir) and back with dp.tracefs(false).
local fake = {}

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s or "")
  f:close()
end
fake.write = write

function fake.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Make a tree; opts.kprobes = false leaves kprobe_events out.
function fake.make(opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/instances " .. dir .. "/events/skb/kfree_skb"))
  write(dir .. "/events/header_page", "")
  write(dir .. "/events/skb/enable", "0")
  write(dir .. "/available_tracers", "function nop\n")
  write(dir .. "/dynamic_events", "")
  if opts.kprobes ~= false then write(dir .. "/kprobe_events", "") end
  return dir
end

function fake.remove(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf '" .. dir .. "'") end
end

return fake
