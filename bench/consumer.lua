-- One reader of the bench flood, run under /usr/bin/time by bench/run.lua.
-- Prints "ready" once it is set up, reads until the flood is over (a quiet
-- spell), then prints one line of JSON: what it got and what was lost.
--   lua5.4 bench/consumer.lua text|raw|raw-copy|ports|stacks|count|count-copy|exporter|memory
--   lua5.4 bench/consumer.lua naive TRACE_PIPE EXPECTED_COUNT
local kind, path, expect = arg[1], arg[2], tonumber(arg[3])
local cjson = require "cjson"

local function ready() io.write("ready\n") io.flush() end
local function done(t) io.write(cjson.encode(t), "\n") io.flush() end

local function rss_kb()
  local f = io.open("/proc/self/status")
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

if kind == "naive" then
  -- the reader a user writes first: io.lines and string.match into tables;
  -- it never ends by itself, so it prints its count as it goes
  local n, recs = 0, {} -- luacheck: ignore 241 (kept like a user keeps records)
  local ok = pcall(function()
    ready()
    for line in io.lines(path) do
      local comm, pid, cpu, ts, name, payload =
        line:match("^%s*(.-)%-(%d+)%s+%[(%d+)%]%s+%S+%s+([%d.]+): ([%w_]+): (.*)$")
      if name == "kfree_skb" then
        local rec = { comm = comm, pid = tonumber(pid), cpu = tonumber(cpu), ts = tonumber(ts),
          reason = payload:match("reason: (%S+)"), location = payload:match("location=(%S+)") }
        n = n + 1
        recs[n % 1000 + 1] = rec
        if n % 1000 == 0 then io.write(n, "\n") io.flush() end
        if n == expect then break end
      end
    end
  end)
  local _ = ok
  io.write(n, "\n")
  return
end

local dp = require "dropprobe"
local idle = 2
-- every reader keeps the flood's drops, the recipes too
local opts = { idle = idle, ready = ready, buffer_kb = 8192, filter = "reason == NO_SOCKET" }

-- "-copy": every page copied out with read() where the kernel would let the
-- buffers be mapped and read in place
local copy = kind:match("%-copy$") ~= nil
kind = kind:gsub("%-copy$", "")

if kind == "text" or kind == "raw" then
  local inst <close> = dp.instance{ buffer_kb = 8192 }
  inst:event("skb:kfree_skb"):filter("reason == NO_SOCKET"):enable()
  local map
  if kind == "raw" then map = not copy end
  local pipe <close> = inst:pipe{ mode = kind, map = map }
  local n = 0
  dp.each(pipe, { idle = idle, ready = ready }, function(rec)
    if rec.name == "kfree_skb" then n = n + 1 end
  end)
  done({ got = n, lost = pipe:stats().lost, mapped = pipe:stats().mapped })
elseif kind == "ports" then
  local r = require("dropprobe.recipes.ports").run(opts)
  done({ got = r.drops, lost = r.lost, attributed = r.attributed })
elseif kind == "stacks" then
  local r = require("dropprobe.recipes.stacks").run(opts)
  done({ got = r.matched, lost = r.lost, stacks = r.with_stack })
elseif kind == "count" then
  -- counting by reason and location: the kernel where it has hist
  -- triggers, C over the raw buffers here
  local h <close> = dp.hist{ keys = { "reason", "location.sym" }, condition = opts.filter,
    buffer_kb = opts.buffer_kb, map = not copy }
  h:run{ idle = idle, ready = ready }
  local r = h:read()
  done({ got = r.hits, lost = r.lost + r.dropped, where = r.where, mapped = r.mapped })
elseif kind == "exporter" then
  -- the exporter writing its textfile every second through the flood
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  require("dropprobe.exporter").run{ textfile = dir, interval = 1, idle = idle, ready = ready }
  local text = io.open(dir .. "/dropprobe.prom"):read("a")
  os.execute("rm -rf " .. dir)
  local got = 0
  for v in text:gmatch('dropprobe_drops_total{reason="NO_SOCKET",[^}]*} (%d+)') do got = got + tonumber(v) end
  done({ got = got, lost = tonumber(text:match("dropprobe_events_lost_total (%d+)")) })
elseif kind == "memory" then
  local rss = {}
  opts.every, opts.progress = 500000, function(n) rss[#rss + 1] = { n, rss_kb() } end
  local r = require("dropprobe.recipes.ports").run(opts)
  done({ got = r.drops, lost = r.lost, rss = rss })
else
  io.stderr:write("usage: consumer.lua text|raw|ports|stacks|count|exporter|memory|naive [trace_pipe]\n")
  os.exit(2)
end
