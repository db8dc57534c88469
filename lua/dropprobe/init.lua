--- Hunt Linux kernel packet drops from Lua, with nothing on the host but tracefs.
--
-- The C core (`dropprobe.core`) holds the tracefs objects: a private
-- `Instance`, its `Event`s (enable, filter, trigger) and `Pipe`s that read
-- records in text or raw mode. This module adds what is easier in Lua:
-- option defaults, drop-reason names in filters, record printing, the
-- iterators, and feature detection.
--
-- @module dropprobe
-- @usage
-- local dp = require "dropprobe"
-- local inst <close> = dp.instance{ buffer_kb = 4096 }
-- local ev = inst:event("skb:kfree_skb")
-- ev:filter("reason == NO_SOCKET")          -- names, not this kernel's numbers
-- ev:trigger("stacktrace if reason == NO_SOCKET")
-- ev:enable()
-- for rec in inst:records{ timeout = 2 } do print(rec) end

local core = require "dropprobe.core"

local M = { core = core, VERSION = "0.1.0" }

--- What a hunt uses unless told otherwise (the recipes and the CLI): a
-- per-CPU ring buffer of `buffer_kb`, read in `mode`. The condition's
-- default is `drop_condition()`, made of this kernel's names.
-- @table DEFAULTS
M.DEFAULTS = { buffer_kb = 8192, mode = "raw" }

local kprobe = require "dropprobe.kprobe"

local Instance, Event, Pipe = core.Instance, core.Event, core.Pipe
local Record = core.Record

local fmt = string.format

--- Options checking: unknown keys are an error naming the allowed ones.
local function check_options(opts, allowed, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fmt("%s: options must be a table, got %s", what, type(opts)), 3)
  end
  for k in pairs(opts) do
    local ok = false
    for _, a in ipairs(allowed) do if k == a then ok = true break end end
    if not ok then
      error(fmt("%s: unknown option '%s' (allowed: %s)", what, tostring(k),
        table.concat(allowed, ", ")), 3)
    end
  end
  return opts
end
M._check_options = check_options

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- The tracing directory.
-- Finds tracefs, mounting it at /sys/kernel/tracing when it is not mounted
-- (root only). With `dir`, points the whole library at another tree (tests
-- on a fake tracefs); `false` goes back to the real one.
-- @tparam[opt] string|false dir
-- @treturn string the tracing directory
-- @raise when not root, or tracefs cannot be mounted
function M.tracefs(dir)
  return core.tracefs(dir)
end

--- A monotonic clock in seconds (the same clock as record timestamps).
-- @treturn number
M.now = core.now

local function tpath(...)
  return M.tracefs() .. "/" .. table.concat({ ... }, "/")
end

--- What this kernel's tracing offers, read live from tracefs and /proc.
-- @treturn table booleans: kprobes, uprobes, eprobes, hist, function_tracer,
-- function_filter, stacktrace, instances, raw, btf
function M.features()
  local t = M.tracefs()
  local readme = readfile(t .. "/README") or ""
  local tracers = readfile(t .. "/available_tracers") or ""
  local config = M._kernel_config()
  local ff = io.open(t .. "/available_filter_functions", "rb")
  local function_filter = false
  if ff then
    function_filter = ff:read(0) ~= nil
    ff:close()
  end
  local eprobes
  if config then
    eprobes = config.CONFIG_EPROBE_EVENTS == "y"
  else
    eprobes = exists(t .. "/dynamic_events") and readme:find("efield:", 1, true) ~= nil
  end
  return {
    kprobes = exists(t .. "/kprobe_events"),
    uprobes = exists(t .. "/uprobe_events"),
    eprobes = eprobes,
    hist = readme:find("%shist[%s:]") ~= nil,
    function_tracer = (" " .. tracers .. " "):find("%sfunction%s") ~= nil,
    function_filter = function_filter,
    stacktrace = readme:find("stacktrace", 1, true) ~= nil,
    instances = exists(t .. "/instances/.") or exists(t .. "/instances"),
    raw = exists(t .. "/per_cpu/cpu0/trace_pipe_raw"),
    btf = exists("/sys/kernel/btf/vmlinux"),
  }
end

--- The kernel's build options from /proc/config.gz, when the kernel has it.
-- @treturn table|nil `{ CONFIG_X = "y", ... }`
function M._kernel_config()
  if not exists("/proc/config.gz") then return nil end
  local p = io.popen("gzip -dc /proc/config.gz 2>/dev/null")
  if not p then return nil end
  local cfg = {}
  for line in p:lines() do
    local k, v = line:match("^(CONFIG_[%w_]+)=(.*)$")
    if k then cfg[k] = v end
  end
  p:close()
  return next(cfg) and cfg or nil
end

local function sorted(list)
  table.sort(list)
  return list
end

--- The event systems of this kernel, sorted.
-- @treturn {string,...}
function M.systems()
  M.tracefs()
  return sorted(core.systems())
end

--- The events of one system, sorted.
-- @tparam string system e.g. "skb"
-- @treturn {string,...}
function M.events(system)
  M.tracefs()
  return sorted(core.events(system))
end

--- Parse the text of an event's `format` file.
-- @tparam string text the format file
-- @tparam[opt] string system
-- @treturn table `{ name, id, system, print_fmt, symbols = { field = {[n] = name} },
-- fields = {{name, type, offset, size, signed}...} }`
function M.parse_format(text, system)
  return core.parse_format(text, system)
end

--- The format of one event of this kernel.
-- @tparam string system
-- @tparam string name
-- @treturn table see `parse_format`
-- @raise unknown event
function M.format(system, name)
  if name == nil and type(system) == "string" then
    system, name = system:match("^([^:]+):(.+)$")
  end
  core.check_command(system or "", "event system")
  core.check_command(name or "", "event name")
  if not system or not name or system:find("..", 1, true) or name:find("..", 1, true)
      or system:find("/", 1, true) or name:find("/", 1, true) then
    error("dp.format: give a system and an event name, e.g. dp.format(\"skb\", \"kfree_skb\")", 2)
  end
  local text = readfile(tpath("events", system, name, "format"))
  if not text then
    error(fmt("unknown event %s:%s: this kernel has no such event", system, name), 2)
  end
  return core.parse_format(text, system)
end

--- Turn a format's symbol table into a two-way reason table.
-- @tparam table format from `parse_format`
-- @tparam[opt="reason"] string field
-- @treturn table `r[3] == "NO_SOCKET"`, `r.NO_SOCKET == 3`
function M.reasons_of(format, field)
  local syms = format.symbols and format.symbols[field or "reason"]
  local r = {}
  if not syms then return r end
  for n, name in pairs(syms) do
    r[n] = name
    r[name] = n
  end
  return r
end

local reasons_cache = {}

-- The names the kernel's BTF gives enum skb_drop_reason, without the
-- SKB_DROP_REASON_/SKB_ prefixes: { [n] = "CONSUMED", ... }, or nil.
local function btf_reasons()
  local ok, e = pcall(core.btf_enum, "skb_drop_reason")
  if not ok or not e then return nil end
  local out = {}
  for name, n in pairs(e) do
    local short = name:match("^SKB_DROP_REASON_(.+)$") or name:match("^SKB_(.+)$") or name
    if short ~= "MAX" and not short:match("^SUBSYS_") then out[n] = short end
  end
  return out
end

--- This kernel's drop reasons: the names skb:kfree_skb prints, from its
-- format's `__print_symbolic` table, plus what the kernel's BTF adds to
-- them (the non-drops `NOT_DROPPED_YET` and `CONSUMED`, which the table
-- leaves out). Numbers differ between kernels (NO_SOCKET is 2 on 6.1 and
-- 3 on 6.12): only names carry across. Kernels without a reason field
-- (before 5.17) give an empty table.
-- @treturn table `r[3] == "NO_SOCKET"` and `r.NO_SOCKET == 3`
function M.reasons()
  local dir = M.tracefs()
  if reasons_cache[dir] then return reasons_cache[dir] end
  local ok, f = pcall(M.format, "skb", "kfree_skb")
  local r = ok and M.reasons_of(f) or {}
  local btf = next(r) and btf_reasons()
  if btf then
    -- only when the BTF is this table's kernel (a fake tree's format may
    -- come from another): every name both know has the same number
    local same = true
    for n, name in pairs(btf) do
      if r[name] ~= nil and r[name] ~= n then same = false break end
    end
    for n, name in pairs(same and btf or {}) do
      if r[n] == nil and r[name] == nil then
        r[n] = name
        r[name] = n
      end
    end
  end
  reasons_cache[dir] = r
  return r
end

--- The reasons that are not drops: `NOT_DROPPED_YET` and `CONSUMED`, those
-- of them this kernel has.
M.NON_DROPS = { "NOT_DROPPED_YET", "CONSUMED" }

--- The default condition of every hunt: every drop, leaving out the
-- non-drops this kernel has, in names (`reason != NOT_DROPPED_YET &&
-- reason != CONSUMED`), or nil when the kernel has neither (every event is
-- a drop). Give it to `Event:filter` and triggers: the names become this
-- kernel's numbers there.
-- @tparam[opt="reason"] string field the reason field (a kprobe's may differ)
-- @treturn string|nil
function M.drop_condition(field)
  local r = M.reasons()
  local parts = {}
  for _, name in ipairs(M.NON_DROPS) do
    if r[name] then parts[#parts + 1] = (field or "reason") .. " != " .. name end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, " && ")
end

--- A trigger with a condition: `trigger("stacktrace", cond)` is
-- "stacktrace if <cond>", or plain "stacktrace" when cond is nil (every
-- drop). The stack trigger must repeat the event's filter: the kernel runs
-- triggers before, and regardless of, the filter.
-- @tparam string spec e.g. "stacktrace" or "stacktrace:5"
-- @tparam[opt] string cond
-- @treturn string
function M.trigger_if(spec, cond)
  return cond and (spec .. " if " .. cond) or spec
end

-- Replace `<field> <op> NAME` by the number NAME stands for in the event's
-- symbol tables (reason names in filters). Quoted strings are left alone.
local function translate(expr, symbols, what)
  if not symbols or not next(symbols) then return expr end
  local out, pos = {}, 1
  -- split out double-quoted strings, translate only the parts between them
  while pos <= #expr do
    local q = expr:find('"', pos, true)
    local part = expr:sub(pos, (q or #expr + 1) - 1)
    part = part:gsub("([%a_][%w_]*)(%s*)([=!<>]=?)(%s*)([%a_][%w_]*)",
      function(field, s1, op, s2, name)
        local tab = symbols[field]
        if not tab then return nil end
        local n
        for num, sym in pairs(tab) do
          if sym == name or "SKB_DROP_REASON_" .. sym == name then n = num break end
        end
        if not n then
          error(fmt("%s: unknown %s name '%s' on this kernel (see dp.reasons())",
            what, field, name), 0)
        end
        return field .. s1 .. op .. s2 .. tostring(n)
      end)
    out[#out + 1] = part
    if not q then break end
    local q2 = expr:find('"', q + 1, true) or #expr
    out[#out + 1] = expr:sub(q, q2)
    pos = q2 + 1
  end
  return table.concat(out)
end
M._translate = translate

-- The symbol tables of an event's fields, per event (weak keys: they go
-- with the event): the format's own (`__print_symbolic`), and for a
-- `reason` field this kernel's reasons (`dp.reasons()`): where the format
-- has no table (a kprobe's `reason=$arg2`), and for skb:kfree_skb, whose
-- table leaves out the non-drops. `named` lists the fields that got a
-- table the format lacks: records need it for those only.
local formats = setmetatable({}, { __mode = "k" })

local function reason_numbers()
  local t = {}
  for k, v in pairs(M.reasons()) do
    if math.type(k) == "integer" then t[k] = v end
  end
  return t
end

local function event_symbols(ev)
  local f = formats[ev]
  if f == nil then
    local ok, text = pcall(ev.read_file, ev, "format")
    f = ok and core.parse_format(text, ev:info().system) or false
    if f then
      f.symbols = f.symbols or {}
      f.named = {}
      local has_reason = false
      for _, fld in ipairs(f.fields) do
        if fld.name == "reason" and not fld.common then has_reason = true end
      end
      local kernel = has_reason and next(M.reasons()) ~= nil
      if kernel and not f.symbols.reason then
        f.symbols.reason = reason_numbers()
        f.named.reason = f.symbols.reason
      elseif kernel and f.name == "kfree_skb" and f.system == "skb" then
        f.symbols.reason = reason_numbers() -- the table, and what BTF adds to it
      end
    end
    formats[ev] = f
  end
  return f and f.symbols, f and f.named
end
M._event_symbols = event_symbols

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
    local ok, t = pcall(translate, expr, event_symbols(self), "filter")
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
    local ok, t = pcall(translate, cond, event_symbols(self), "trigger")
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

--- A reader of this instance's records.
-- @function Instance:pipe
-- @tparam[opt] table opts `mode` ("text" or "raw", default "text"), `grace`
-- (seconds a record waits for its stack, default 0.1)
-- @treturn Pipe with `read(timeout)`, `fd()`, `stats()`, `close()`
function Instance:pipe(opts)
  opts = check_options(opts, { "mode", "grace", "buffer_percent" }, "inst:pipe")
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
    return core.raw_pipe(self, { grace = opts.grace, systems = systems,
      buffer_percent = opts.buffer_percent, symbols = symbols })
  elseif mode == "text" then
    local ok, dir = pcall(core.tracefs)
    return core.text_pipe(self, { grace = opts.grace, names = names, symbols = symbols,
      formats_dir = ok and dir or nil })
  end
  error(fmt("inst:pipe: bad mode '%s' (text or raw)", tostring(mode)), 2)
end

local function records_iter(pipe, opts, what)
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

--- Iterate over this instance's records.
-- The loop ends after `timeout` seconds without a record (nil: waits), after
-- `limit` records, or after `duration` seconds; breaking out of it closes the
-- pipe (the fourth value is a to-be-closed pipe).
-- @function Instance:records
-- @tparam[opt] table opts `mode`, `timeout`, `limit`, `duration`, `grace`
-- @usage for rec in inst:records{ mode = "raw", timeout = 2 } do print(rec) end
function Instance:records(opts)
  opts = check_options(opts, { "mode", "timeout", "limit", "duration", "grace",
    "buffer_percent" }, "inst:records")
  local p = self:pipe{ mode = opts.mode, grace = opts.grace, buffer_percent = opts.buffer_percent }
  return records_iter(p, opts, "inst:records")
end

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

--- Read a pipe until a time limit, a quiet spell or a signal, calling fn
-- for each record. The loop the recipes share.
-- @tparam Pipe pipe
-- @tparam table opts `duration` (seconds in all), `idle` (end after that many
-- seconds without a record), `ready` (called once, before the first read),
-- `progress` (called with the count every `every` records, default 100000)
-- @tparam function fn called with each record
-- @treturn string why it ended: "duration", "idle", "interrupted", "eof"
function M.each(pipe, opts, fn)
  local deadline = opts.duration and core.now() + opts.duration
  local progress, every, n = opts.progress, opts.every or 100000, 0
  if opts.ready then opts.ready() end
  while true do
    local wait = opts.idle or 0.25
    if deadline then
      local left = deadline - core.now()
      if left <= 0 then return "duration" end
      if left < wait then wait = left end
    end
    local rec, why = pipe:read(wait)
    if rec then
      fn(rec)
      if progress then
        n = n + 1
        if n % every == 0 then progress(n) end
      end
    elseif why == "timeout" then
      if opts.idle and (not deadline or deadline - core.now() > 0) then return "idle" end
    else
      return why
    end
  end
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
-- @tparam[opt] table opts `limit`: stop after that many records
-- @treturn function iterator, plus the to-be-closed reader
-- @usage for rec in dp.open("saved-trace.txt") do print(rec.fields.reason) end
function M.open(path, opts)
  opts = check_options(opts, { "limit" }, "dp.open")
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
    p = core.open_text(path, { names = M._known_names(), formats_dir = ok and dir or nil })
  end
  return records_iter(p, opts, "dp.open")
end

-- name -> system of every event this kernel knows, when tracefs is readable
function M._known_names()
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

-- field order of an event, from its format (raw records have no payload)
local field_order = {}
local function order_of(rec)
  local key = (rec.system or "?") .. ":" .. (rec.name or "?")
  local mt = getmetatable(rec)
  local own = mt and mt.__order and mt.__order[key]
  if own then return own end -- the formats the record was decoded with
  if field_order[key] == nil then
    local ok, f = pcall(M.format, rec.system, rec.name)
    local names = {}
    if ok then
      for _, fld in ipairs(f.fields) do
        if not fld.common then names[#names + 1] = fld.name end
      end
    end
    field_order[key] = names
  end
  return field_order[key]
end

local function show(v)
  if math.type(v) == "integer" and (v < 0 or v > 0xffffffff) then
    return fmt("%x", v)
  elseif type(v) == "string" and v:find("[%z\1-\31\127-\255]") then
    return (v:gsub(".", function(c) return fmt("%02x", c:byte()) end))
  end
  return tostring(v)
end

local function payload_of(rec)
  if rec.payload then return rec.payload end
  local fields = rec.fields or {}
  local keys = order_of(rec)
  if #keys == 0 then
    for k in pairs(fields) do keys[#keys + 1] = k end
    table.sort(keys)
  end
  local parts = {}
  for _, k in ipairs(keys) do
    local v = fields[k]
    if v ~= nil and not k:find("_addr$") then parts[#parts + 1] = k .. "=" .. show(v) end
  end
  return table.concat(parts, " ")
end

-- frames of the tracing machinery above the freeing function in a stack
local MACHINERY = { "^trace_", "^__traceiter", "^perf_trace", "^kprobe", "^aggr_", "^ftrace",
  "^0x", "^%x+$" }
-- the functions that free a dropped packet (the drop hooks of dp.drop_hook)
local FREEING = { "kfree_skb", "reason_drop" }

local function matches(fn, pats)
  for _, pat in ipairs(pats) do
    if fn:find(pat) then return true end
  end
  return false
end

--- Where the kernel dropped the packet of a drop record: its `location`
-- when the kernel named it (`tcp_v4_rcv+0x91/0x13f0`), else the stack's
-- frame that called the freeing function (a kprobe's record, or text mode
-- before 6.12, where `location` is a hashed pointer), else nil.
-- @tparam table rec a record
-- @treturn string|nil "function+0xoff/0xsize"
function M.where(rec)
  local loc = rec.fields and rec.fields.location
  if type(loc) == "string" and loc:find("^[%a_]") then return loc end
  local stack = rec.stack
  if not stack then return nil end
  local after = 0
  for i = 1, math.min(#stack, 12) do
    local fn = stack[i]:match("^[^+]*")
    if matches(fn, FREEING) then after = i end
  end
  for i = after + 1, #stack do
    local fn = stack[i]:match("^[^+]*")
    if not matches(fn, MACHINERY) and not matches(fn, FREEING) then return stack[i] end
  end
  return nil
end

--- A record prints as one trace line (and its stack, one frame a line).
-- @function Record:__tostring
Record.__tostring = function(rec)
  local line = fmt("%16s-%-7d [%03d] %s %12.6f: %s: %s", rec.comm or "<...>", rec.pid or 0,
    rec.cpu or 0, rec.flags or ".....", rec.ts or 0, rec.name or "?", payload_of(rec))
  if rec.lost_before then
    line = rec.lost_before < 0 and fmt("CPU:%d [LOST EVENTS]\n%s", rec.cpu or 0, line)
      or fmt("CPU:%d [LOST %d EVENTS]\n%s", rec.cpu or 0, rec.lost_before, line)
  end
  if rec.stack then
    local t = { line }
    for _, f in ipairs(rec.stack) do t[#t + 1] = " => " .. f end
    line = table.concat(t, "\n")
  end
  return line
end
Record.__name = "dropprobe.Record"

--- A kprobe in the group `dropprobe`, validated before anything reaches the
-- kernel. See `dropprobe.kprobe`.
-- @function kprobe
M.kprobe = kprobe.kprobe
--- The register that holds argument n on this architecture.
-- @function arg
M.arg = kprobe.arg
--- Where the drop reason lives on this kernel (from kallsyms and formats).
-- @function drop_hook
M.drop_hook = kprobe.drop_hook

--- A private tracefs instance (its own ring buffer), removed with
-- everything in it on close, `<close>` or garbage collection.
-- @tparam[opt] table opts `name` (default `dropprobe-<pid>-<n>`), `buffer_kb`
-- (per CPU), `clock` (default "mono")
-- @treturn Instance
-- @raise not root, tracefs missing, bad name, existing instance
function M.instance(opts)
  opts = check_options(opts, { "name", "buffer_kb", "clock" }, "dp.instance")
  return core.instance(opts)
end

--- What this kernel offers for drop hunting and what would enable the rest:
-- the checks behind `dropprobe doctor`, from the same detection as
-- `features()`.
-- @treturn {table,...} `{ name=, ok=, detail=, fix= }` per check
function M.doctor()
  local out = {}
  local function check(name, ok, detail, fix)
    out[#out + 1] = { name = name, ok = ok and true or false, detail = detail, fix = (not ok) and fix or nil }
  end
  check("root", core.is_root(), core.is_root() and "running as root" or "not root",
    "run as root (sudo): tracefs control files need CAP_SYS_ADMIN")
  local ok, dir = pcall(core.tracefs)
  check("tracefs", ok, ok and ("mounted at " .. dir) or tostring(dir),
    "CONFIG_TRACING=y, and mount -t tracefs nodev /sys/kernel/tracing")
  if not ok then return out end
  local f = M.features()
  check("instances", f.instances, "private ring buffers (instances/)", "CONFIG_TRACING=y (kernel 4.x or later)")
  check("stacktrace triggers", f.stacktrace, "stacks of the drops that match",
    "CONFIG_STACKTRACE=y")
  check("raw buffers", f.raw, "per_cpu/cpuN/trace_pipe_raw for raw mode", "CONFIG_RING_BUFFER=y")
  local reasons = M.reasons()
  check("drop reasons", next(reasons) ~= nil,
    next(reasons) and "skb:kfree_skb carries a reason" or "skb:kfree_skb has no reason field",
    "a kernel of 5.17 or later")
  local ks = io.open("/proc/kallsyms")
  local line = ks and ks:read("l") or ""
  if ks then ks:close() end
  local kok = line:match("^%x+") ~= nil and not line:match("^0+%s")
  check("kallsyms", kok, kok and "real addresses: stacks and locations get symbols"
    or "addresses hidden", "root, and sysctl kernel.kptr_restrict=0 (or 1)")
  check("kprobes", f.kprobes, f.kprobes and "kprobe_events" or "no kprobe_events",
    "CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y")
  check("eprobes", f.eprobes, "event probes on tracepoints", "CONFIG_EPROBE_EVENTS=y")
  check("hist triggers", f.hist, "in-kernel histograms", "CONFIG_HIST_TRIGGERS=y")
  check("function tracer", f.function_tracer, "the function tracer", "CONFIG_FUNCTION_TRACER=y")
  check("function filter", f.function_filter, f.function_filter and "set_ftrace_filter usable"
    or "available_filter_functions refused (EPERM)",
    "CONFIG_DYNAMIC_FTRACE=y and no kernel lockdown (boot with lockdown=none)")
  check("BTF", f.btf, f.btf and "/sys/kernel/btf/vmlinux: names of the non-drops (CONSUMED) in conditions"
    or "no /sys/kernel/btf/vmlinux: only the reason names skb:kfree_skb prints are known",
    "CONFIG_DEBUG_INFO_BTF=y")
  return out
end

--- Remove what dropprobe processes that no longer exist left behind
-- (after `kill -9` or a crash): instances named `dropprobe-<pid>-<n>` whose
-- pid is dead, and the kprobes of the group `dropprobe` that such a process
-- noted as its own (in `/run/dropprobe/<pid>.kprobes`) and that no living
-- process claims. Never touches anything else.
-- @tparam[opt] table opts `dry_run = true` only lists; `rundir` (tests)
-- @treturn {string,...} what was removed (or would be): "instances/<name>",
-- "kprobe dropprobe/<name>"
function M.cleanup(opts)
  opts = check_options(opts, { "dry_run", "rundir" }, "dp.cleanup")
  local dir = M.tracefs()
  local function ls(path) return core.dir(path) or {} end
  local function alive(pid) return exists("/proc/" .. pid .. "/stat") end
  local removed = {}
  for _, name in ipairs(ls(dir .. "/instances")) do
    local pid = name:match("^dropprobe%-(%d+)%-%d+$")
    if pid and not alive(pid) then
      if not opts.dry_run then
        local ok, err = os.remove(dir .. "/instances/" .. name)
        if not ok then error(fmt("cannot remove instance %s: %s", name, err), 2) end
      end
      removed[#removed + 1] = "instances/" .. name
    end
  end
  local rundir = opts.rundir or kprobe.rundir()
  local live_names, dead = {}, {}
  for _, file in ipairs(ls(rundir)) do
    local pid = file:match("^(%d+)%.kprobes$")
    if pid then
      local names = kprobe.state_names(rundir .. "/" .. file)
      if alive(pid) then
        for _, n in ipairs(names) do live_names[n] = true end
      else
        dead[#dead + 1] = { file = rundir .. "/" .. file, names = names }
      end
    end
  end
  local defined = (readfile(dir .. "/kprobe_events") or "") .. "\n" .. (readfile(dir .. "/dynamic_events") or "")
  local done = {} -- two dead processes may have noted the same name
  for _, d in ipairs(dead) do
    for _, name in ipairs(d.names) do
      if not live_names[name] and not done[name] and defined:find(":dropprobe/" .. name .. "[%s\n]") then
        done[name] = true
        if not opts.dry_run then
          local ok, err = core.kprobe_remove(name)
          if not ok then error(err, 2) end
        end
        removed[#removed + 1] = "kprobe dropprobe/" .. name
      end
    end
    if not opts.dry_run then os.remove(d.file) end
  end
  return removed
end

return M
