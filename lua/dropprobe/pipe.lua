--- Reading records: the loop the recipes share, what was read and lost,
-- saved traces (text or trace.dat).
-- @module dropprobe.pipe
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local readfile = util.readfile
local check_options = util.check_options
local fmt = string.format
local Pipe = core.Pipe

local M = {}

function M.records_iter(pipe, opts, what)
  local limit, timeout = opts.limit, opts.timeout
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
    error(what .. ": limit must be a whole number >= 0", 3)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(what .. ": timeout must be a number of seconds >= 0", 3)
  end
  if opts.duration ~= nil and (type(opts.duration) ~= "number" or opts.duration < 0) then
    error(what .. ": duration must be a number of seconds >= 0", 3)
  end
  if limit == nil and timeout == nil and opts.duration == nil then
    return Pipe._next, pipe, nil, pipe -- every record, in C: no Lua call between them
  end
  local deadline = opts.duration and core.now() + opts.duration
  local n = 0
  local function iter(p)
    if limit and n >= limit then return nil end
    local wait = timeout
    if deadline then
      local left = deadline - core.now()
      if left <= 0 then return nil end
      if not wait or left < wait then wait = left end
    end
    local rec = p:read(wait)
    if rec then n = n + 1 end
    return rec
  end
  return iter, pipe, nil, pipe
end
local records_iter = M.records_iter

local function cpu_stats(inst)
  local out = {}
  local cpu = 0
  while true do
    local s = inst:read_file(fmt("per_cpu/cpu%d/stats", cpu))
    if not s then break end
    out[cpu] = {
      entries = tonumber(s:match("entries:%s*(%d+)")) or 0,
      overrun = tonumber(s:match("\noverrun:%s*(%d+)") or s:match("^overrun:%s*(%d+)")) or 0,
      dropped = tonumber(s:match("dropped events:%s*(%d+)")) or 0,
    }
    cpu = cpu + 1
  end
  return out
end

--- The clock of a reading loop: `duration`, `idle`, `tick`. It calls
-- `step(wait)` until the time is up, a quiet spell of `idle` seconds has
-- passed, or `step` ends the loop; `on_tick(now)` runs every `tick`
-- seconds, whatever comes, and once at the end. `pipe.each` reads records
-- with it, a counting hunt waits on its counts with it.
-- @tparam table opts `duration`, `idle`, `tick`, `on_tick`
-- @tparam function step `step(wait)`: wait up to `wait` seconds; true when
-- something came, false when nothing did, or nil and why to end the loop
-- @tparam[opt=0.25] number max_wait the longest wait of one step (the
-- loop checks the clock at least that often)
-- @treturn string why it ended: "duration", "idle", or step's why
function M.clock(opts, step, max_wait)
  local now = core.now()
  local deadline = opts.duration and now + opts.duration
  local tick, on_tick, idle = opts.tick, opts.on_tick, opts.idle
  local next_tick = tick and on_tick and now + tick
  local quiet_since, stepped = now, false
  local function ended(why)
    if on_tick then on_tick(core.now()) end
    return why
  end
  while true do
    now = core.now()
    quiet_since = quiet_since or now
    if next_tick and now >= next_tick then
      on_tick(now)
      next_tick = now + tick
    end
    if deadline and now >= deadline then return ended("duration") end
    if idle and stepped and now - quiet_since >= idle then return ended("idle") end
    local wait = max_wait or 0.25
    if deadline and deadline - now < wait then wait = deadline - now end
    if next_tick and next_tick - now < wait then wait = next_tick - now end
    if idle and quiet_since + idle - now < wait then wait = quiet_since + idle - now end
    local came, why = step(math.max(0, wait))
    stepped = true
    if came then
      quiet_since = nil -- from the next reading of the clock
    elseif came == nil then
      return ended(why)
    end
  end
end

--- Read a pipe until a time limit, a quiet spell or a signal, calling fn
-- for each record. The loop the recipes share (through `dropprobe.hunt`).
-- @tparam Pipe pipe
-- @tparam table opts `duration` (seconds in all), `idle` (end after that many
-- seconds without a record), `tick` and `on_tick` (on_tick(now) every tick
-- seconds, records or not, and once at the end), `ready` (called once,
-- before the first read), `progress` (called with the count every `every`
-- records, default 100000)
-- @tparam function fn called with each record
-- @treturn string why it ended: "duration", "idle", "interrupted", "eof"
function M.each(pipe, opts, fn)
  local progress, every, n = opts.progress, opts.every or 100000, 0
  local got = fn
  if progress then
    got = function(rec)
      fn(rec)
      n = n + 1
      if n % every == 0 then progress(n) end
    end
  end
  if opts.ready then opts.ready() end
  local read = pipe.read
  if not opts.duration and not opts.tick and not opts.on_tick then
    -- nothing to do between records but call fn: no clock read per record
    local wait, idle = opts.idle or 0.25, opts.idle
    while true do
      local rec, why = read(pipe, wait)
      if rec then
        got(rec)
      elseif why == "timeout" then
        if idle then return "idle" end
      else
        return why
      end
    end
  end
  return M.clock(opts, function(wait)
    local rec, why = read(pipe, wait)
    if rec then
      got(rec)
      return true
    end
    if why == "timeout" then return false end
    return nil, why
  end, opts.idle)
end

--- What the pipe read and what was lost.
-- `lost` is never silent: per CPU it is the larger of what the reader saw
-- marked lost and the ring buffer's overrun counter, plus events the kernel
-- dropped when the buffer was full (overwrite off).
-- @function Pipe:stats
-- @treturn table `{ read=, lost=, lost_marked=, overrun=, dropped=, per_cpu={[cpu]={...}}, ... }`
function Pipe:stats()
  local s = self:_stats()
  local inst = self:instance()
  s.overrun, s.dropped = 0, 0
  s.per_cpu = {}
  local lost = 0
  local kernel = (inst and not inst:is_closed()) and cpu_stats(inst) or {}
  local marked = s.lost_cpu or {}
  local seen = {}
  for cpu, k in pairs(kernel) do seen[cpu] = true
    s.overrun = s.overrun + k.overrun
    s.dropped = s.dropped + k.dropped
  end
  for cpu in pairs(marked) do seen[cpu] = true end
  for cpu in pairs(seen) do
    local k = kernel[cpu] or { overrun = 0, dropped = 0 }
    local m = marked[cpu] or 0
    local l = math.max(m, k.overrun) + k.dropped
    s.per_cpu[cpu] = { lost = l, marked = m, overrun = k.overrun, dropped = k.dropped,
      read = s.read_cpu and s.read_cpu[cpu] or nil }
    lost = lost + l
  end
  s.lost = lost
  s.lost_cpu = nil
  return s
end

--- Records from a saved trace: the text of `trace`/`trace_pipe`, parsed by
-- the same C parser as live text mode (or a trace-cmd `trace.dat`, where
-- supported).
-- @tparam string path
-- @tparam[opt] table opts `limit`: stop after that many records;
-- `raw_stacks`: stacks as the kernel gave them (else from the function that
-- dropped, `record.drop_frames`)
-- @treturn function iterator, plus the to-be-closed reader
-- @usage for rec in dp.open("saved-trace.txt") do print(rec.fields.reason) end
function M.open(path, opts)
  opts = check_options(opts, { "limit", "raw_stacks" }, "dp.open")
  local f = io.open(path, "rb")
  if not f then
    local _, err = io.open(path, "rb")
    error(fmt("dp.open: cannot open '%s': %s", tostring(path), err), 2)
  end
  local magic = f:read(10) or ""
  f:close()
  local p
  if magic:sub(1, 3) == "\23\8\68" and magic:sub(4, 10) == "tracing" and core.open_dat then
    p = core.open_dat(path)
  else
    local ok, dir = pcall(core.tracefs)
    p = core.open_text(path, { names = M.known_names(), formats_dir = ok and dir or nil })
  end
  if opts.raw_stacks then p:_raw_stacks(true) end
  return records_iter(p, opts, "dp.open")
end

-- name -> system of every event this kernel knows, when tracefs is readable
function M.known_names()
  local ok, dir = pcall(core.tracefs)
  if not ok then return nil end
  local text = readfile(dir .. "/available_events")
  if not text then return nil end
  local names = {}
  for sys, name in text:gmatch("([^:\n]+):([^\n]+)") do
    if names[name] == nil then names[name] = sys end
  end
  return names
end


return M
