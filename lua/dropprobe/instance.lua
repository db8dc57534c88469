--- The methods of Instance and Event that are easier in Lua: events by
-- "system:name", reason names in filters and triggers, readers.
-- @module dropprobe.instance
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local check_options = util.check_options
local fmt = string.format
local format = require "dropprobe.format"
local pipe = require "dropprobe.pipe"
local event_symbols, translate = format.event_symbols, format.translate
local check_condition = format.check_condition
local records_iter = pipe.records_iter
local Instance, Event = core.Instance, core.Event

local M = {}

--- Set the event's filter (an ftrace filter expression), or clear it with nil.
-- Reason names become this kernel's numbers (`reason == NO_SOCKET`).
-- A refused filter raises with the kernel's own words and leaves the
-- previous filter in force.
-- @function Event:filter
-- @tparam string|nil expr
-- @return the event
function Event:filter(expr)
  if expr ~= nil then
    core.check_command(expr, "filter")
    local ok, t = pcall(check_condition, expr, self, "filter")
    if ok then ok, t = pcall(translate, expr, event_symbols(self), "filter") end
    if not ok then error(t, 2) end
    expr = t
  end
  self:_filter(expr)
  return self
end

--- Add a trigger: `stacktrace`, `stacktrace:N`, `traceon`, `traceoff`,
-- `enable_event:sys:ev`, each with an optional `if <filter>`. Reason names
-- are allowed in the condition. Removed again when the instance closes.
-- @function Event:trigger
-- @tparam string spec
-- @return the event
function Event:trigger(spec)
  core.check_command(spec, "trigger")
  local head, cond = spec:match("^(.-)%s+if%s+(.*)$")
  if head then
    local ok, t = pcall(check_condition, cond, self, "trigger")
    if ok then ok, t = pcall(translate, cond, event_symbols(self), "trigger") end
    if not ok then error(t, 2) end
    spec = head .. " if " .. t
  end
  self:_trigger(spec)
  return self
end

--- The event's fields (from its format): `{ {name=, type=, offset=, size=, signed=}, ... }`
-- without the common_ fields.
-- @function Event:fields
-- @treturn table
function Event:fields()
  local f = core.parse_format(self:read_file("format"))
  local out = {}
  for _, fld in ipairs(f.fields) do
    if not fld.common then out[#out + 1] = fld end
  end
  return out
end

-- names of the events an instance uses: name -> system, for text records;
-- and name -> Event, for the symbol tables of their fields
local inst_names = setmetatable({}, { __mode = "k" })
local inst_events = setmetatable({}, { __mode = "k" })

--- An event of this instance: `inst:event("skb:kfree_skb")` or
-- `inst:event("skb", "kfree_skb")`. The same event twice is the same object.
-- @function Instance:event
-- @tparam string system "sys:name", or the system
-- @tparam[opt] string name
-- @treturn Event
-- @raise unknown event
function Instance:event(system, name)
  if getmetatable(system) == core.KprobeMT then
    -- a kprobe: into the kernel if it is not yet, then its event here; the
    -- instance removes the probe after its own events on close
    local kp = system
    if not kp:is_created() then kp:create() end
    self:_hold(kp)
    kp:_held()
    system, name = kp:event_name()
  elseif name == nil then
    if type(system) ~= "string" then
      error("inst:event: give \"system:event\" or (system, event)", 2)
    end
    core.check_command(system, "event")
    local s, n = system:match("^([^:]+):([^:]+)$")
    if not s then
      error(fmt("inst:event: '%s' is not \"system:event\" (e.g. \"skb:kfree_skb\")", system), 2)
    end
    system, name = s, n
  end
  local ev = core.event(self, system, name)
  local names = inst_names[self]
  if not names then names = {} inst_names[self] = names end
  names[name] = system
  local evs = inst_events[self]
  if not evs then evs = {} inst_events[self] = evs end
  evs[name] = ev
  return ev
end

--- Set this instance's tracer (never the top level's), e.g. the function
-- tracer on `__kfree_skb` as in the seed. The function filter is written
-- first: where the kernel refuses it (EPERM under lockdown) nothing changes.
-- Back to `nop`, filter cleared, on close.
-- @function Instance:tracer
-- @tparam string name "function", "nop", ...
-- @tparam[opt] table opts `filter = { "__kfree_skb", ... }`
-- @return the instance
function Instance:tracer(name, opts)
  opts = check_options(opts, { "filter" }, "inst:tracer")
  local filter
  if opts.filter ~= nil then
    if type(opts.filter) ~= "table" or #opts.filter == 0 then
      error("inst:tracer: filter is a list of function names", 2)
    end
    for _, f in ipairs(opts.filter) do
      if type(f) ~= "string" or not f:match("^[%w_.*:!]+$") then
        error(fmt("inst:tracer: bad function name %q in filter", tostring(f)), 2)
      end
    end
    filter = table.concat(opts.filter, " ")
  end
  self:_tracer(name, filter)
  return self
end

-- Whether this kernel prints everything of an event with hash-ptr off.
-- Some do not (Debian 12's 6.1: what an event prints after a bare %p, such
-- as kfree_skb's "reason: NO_SOCKET", came out empty), so this is probed
-- once per process instead of read off the version: a scratch instance
-- records one timer:hrtimer_start of this process ("hrtimer=%p function=%ps
-- ... mode=%s"), its `trace` is read with hash-ptr on and off, and the two
-- lines must be the same but for the pointer's digits. Where the probe
-- cannot run, or the kernel has no hash-ptr option, pointers stay hashed.
local text_pointers_probed
local function text_pointers_ok()
  if text_pointers_probed ~= nil then return text_pointers_probed end
  local ok, same = pcall(function()
    local scratch <close> = core.instance{ buffer_kb = 64 }
    if not scratch:_option("hash-ptr", "1") then return false end
    local ev = core.event(scratch, "timer", "hrtimer_start")
    local stat = io.open("/proc/self/stat")
    local pid = stat:read("l"):match("^(%d+)")
    stat:close()
    ev:_filter("common_pid == " .. pid)
    ev:enable()
    core.sleep(0.001) -- a nanosleep: one hrtimer started by this process
    ev:disable()
    local function first(text)
      for line in (text or ""):gmatch("[^\n]+") do
        if line:find("hrtimer_start:", 1, true) then
          return (line:gsub("%x%x%x%x%x%x%x%x+", "P")) -- pointers' digits differ
        end
      end
    end
    local hashed = first(scratch:read_file("trace"))
    scratch:_option("hash-ptr", "0")
    local real = first(scratch:read_file("trace"))
    return hashed ~= nil and hashed == real
  end)
  text_pointers_probed = ok and same or false
  return text_pointers_probed
end

--- Text output with real pointers (the `hash-ptr` option off) in this
-- private instance, where the kernel prints everything with it (probed
-- once per process); else the kernel's hashed pointers stay. Text pipes
-- ask for it; raw mode has real pointers everywhere.
-- @function Instance:real_pointers
-- @treturn boolean whether text output now has real pointers
function Instance:real_pointers()
  if not text_pointers_ok() then return false end
  return self:_option("hash-ptr", "0")
end

-- How many latency-flag columns this kernel prints ("..s1." has five, a
-- kernel without the migrate-disable column four): from the header of a
-- `trace` file ("CPU#  |||||  TIMESTAMP"), once per process, so that raw
-- records carry the flags as text records do. Read from the first new
-- instance, before anything records into it: an open `trace` pauses
-- recording (pause-on-trace).
local flag_columns_cache
local function flag_columns(inst)
  if flag_columns_cache or not inst then return flag_columns_cache or 5 end
  local f = io.open(inst:dir() .. "/trace", "rb")
  local head = f and f:read(4096) or ""
  if f then f:close() end
  local bars = head:match("CPU#%s+(|+)")
  if bars then flag_columns_cache = #bars end
  return flag_columns_cache or 5
end

--- A reader of this instance's records.
-- @function Instance:pipe
-- @tparam[opt] table opts `mode` ("text" or "raw", default "text"), `grace`
-- (seconds a record waits for its stack, default 0.1), `buffer_percent`
-- (raw), `port` and `host` (raw: only drop-probe records whose packet is
-- from or to them; the others are skipped in C, `stats().filtered`; host is
-- an address, a prefix such as 127.0.0.0/8 or fe80::/10, or a name
-- resolved once here, or a list of addresses and prefixes; compared as
-- bytes), `match` (raw: only drop-probe records whose packet passes this
-- filter expression in tcpdump's language, pcap-filter(7), e.g. "udp and
-- dst port 53"; compiled by libpcap, run in C on the packet's bytes),
-- `raw_stacks` (stacks as the
-- kernel gave them, the tracing machinery's frames at the top included),
-- `map` (raw, default true: read each CPU's buffer in place where the
-- kernel lets it be mapped, 6.10 on; false: copy every page out with
-- read(); `stats().mapped` is the CPUs read in place); the raw options
-- in text mode are refused
-- @treturn Pipe with `read(timeout)`, `fd()`, `stats()`, `close()`
function Instance:pipe(opts)
  opts = check_options(opts, { "mode", "grace", "buffer_percent", "port", "host", "match", "raw_stacks",
    "map" }, "inst:pipe")
  if opts.map ~= nil and type(opts.map) ~= "boolean" then error("inst:pipe: map is true or false", 2) end
  if (opts.mode or "text") == "text" then
    -- what only the binary buffers have: refused, not ignored
    for _, k in ipairs({ "buffer_percent", "port", "host", "map" }) do
      if opts[k] ~= nil then error(fmt("inst:pipe: %s needs raw mode (mode = \"raw\")", k), 2) end
    end
  end
  if opts.match ~= nil then
    local ok, why = core.check_packet_filter(tostring(opts.match))
    if not ok then error(fmt("inst:pipe: packet filter '%s': %s", tostring(opts.match), why), 2) end
    if (opts.mode or "text") ~= "raw" then error("inst:pipe: a packet filter (match) needs raw mode", 2) end
  end
  if opts.port ~= nil and (math.type(opts.port) ~= "integer" or opts.port < 0 or opts.port > 65535) then
    error("inst:pipe: port is a number from 0 to 65535", 2)
  end
  local hosts
  if type(opts.host) == "table" then -- resolved already: addresses and prefixes
    hosts = opts.host
    for _, h in ipairs(hosts) do
      if not core.parse_prefix(tostring(h)) then
        error(("inst:pipe: host '%s' is not an IPv4 or IPv6 address or prefix"):format(tostring(h)), 2)
      end
    end
  elseif opts.host ~= nil then
    local why
    hosts, why = util.resolve_host(opts.host)
    if not hosts then error(("inst:pipe: host '%s' is not %s"):format(tostring(opts.host), why), 2) end
  end
  local names = inst_names[self]
  if not names then names = {} inst_names[self] = names end
  local systems, seen = {}, {}
  for _, sys in pairs(names) do
    if not seen[sys] then seen[sys] = true systems[#systems + 1] = sys end
  end
  -- names for the fields whose format has none (a kprobe's reason)
  local symbols = {}
  for name, ev in pairs(inst_events[self] or {}) do
    local _, named = event_symbols(ev)
    if named and next(named) then symbols[name] = named end
  end
  local mode = opts.mode or "text"
  if mode == "raw" then
    local p = core.raw_pipe(self, { grace = opts.grace, systems = systems,
      buffer_percent = opts.buffer_percent, symbols = symbols, port = opts.port, hosts = hosts,
      match = opts.match, flag_columns = flag_columns(), map = opts.map })
    if opts.raw_stacks then p:_raw_stacks(true) end
    return p
  elseif mode == "text" then
    self:real_pointers()
    local ok, dir = pcall(core.tracefs)
    local p = core.text_pipe(self, { grace = opts.grace, names = names, symbols = symbols,
      formats_dir = ok and dir or nil })
    if opts.raw_stacks then p:_raw_stacks(true) end
    return p
  end
  error(fmt("inst:pipe: bad mode '%s' (text or raw)", tostring(mode)), 2)
end

--- Iterate over this instance's records.
-- The loop ends after `timeout` seconds without a record (nil: waits), after
-- `limit` records, or after `duration` seconds; breaking out of it closes the
-- pipe (the fourth value is a to-be-closed pipe).
-- @function Instance:records
-- @tparam[opt] table opts `mode`, `timeout`, `limit`, `duration`, `grace`,
-- `buffer_percent`, `raw_stacks`, `map` (as `Instance:pipe` takes them)
-- @usage for rec in inst:records{ mode = "raw", timeout = 2 } do print(rec) end
function Instance:records(opts)
  opts = check_options(opts, { "mode", "timeout", "limit", "duration", "grace",
    "buffer_percent", "raw_stacks", "map" }, "inst:records")
  local p = self:pipe{ mode = opts.mode, grace = opts.grace, buffer_percent = opts.buffer_percent,
    raw_stacks = opts.raw_stacks, map = opts.map }
  return records_iter(p, opts, "inst:records")
end

--- What happened to an instance that went away under this process, as
-- a reader says it (nil while it is there): someone removed it (`rmdir`,
-- another program's cleanup: what the kernel counted in it went with it),
-- or tracefs was unmounted (the instance is still in the kernel; closing
-- it removes it through a mount of its own). See `Instance:gone`.
-- @tparam Instance inst
-- @treturn string|nil
-- @usage local why = require("dropprobe.instance").gone_message(inst)
function M.gone_message(inst)
  local how = inst:gone()
  if how == "removed" then
    return fmt("instance %s was removed under this process (rmdir of instances/%s, or "
      .. "another program's cleanup): what the kernel counted in it went with it", inst:name(), inst:name())
  elseif how == "unmounted" then
    return fmt("tracefs was unmounted under this process: instance %s is out of reach (it is "
      .. "removed on exit through a mount of dropprobe's own)", inst:name())
  end
  return nil
end

--- A private tracefs instance (its own ring buffer), removed with
-- everything in it on close, `<close>` or garbage collection.
-- @tparam[opt] table opts `name` (default `dropprobe-<pid>-<n>`), `buffer_kb`
-- (per CPU), `clock` (default "mono")
-- @treturn Instance
-- @raise not root, tracefs missing, bad name, existing instance
function M.instance(opts)
  opts = check_options(opts, { "name", "buffer_kb", "clock" }, "dp.instance")
  local inst = core.instance(opts)
  flag_columns(inst) -- empty yet: reading its `trace` header pauses nothing
  return inst
end

return M
