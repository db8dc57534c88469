--- Counting events by keys, storm-proof: in the kernel where it has hist
-- triggers (`hist:keys=reason,location.sym:vals=hitcount`, nothing read
-- per event), in C over the raw buffers where it has not (each event read
-- straight into a C hash table, no Lua value per event). One object, one
-- shape of answer, and it says where it counted.
-- @module dropprobe.hist
-- @usage
-- local hist = require "dropprobe.hist"
-- local h <close> = hist.open{ keys = { "reason", "location.sym" } }
-- h:run{ duration = 10 }
-- for _, row in ipairs(h:read().rows) do print(row.reason, row.location, row.hitcount) end
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local tracefs = require "dropprobe.tracefs"
local format = require "dropprobe.format"
local instance = require "dropprobe.instance"
local record = require "dropprobe.record"

local M = {}
local fmt = string.format

-- the depth of a kernel hist stacktrace key (HIST_STACKTRACE_DEPTH)
local STACK_DEPTH = 16

local Hist = {}
Hist.__index = Hist

-- whether a key is a field of the drop's packet ("packet.dport"), decoded in C
local function is_packet_key(k)
  return type(k) == "string" and k:match("^packet%.") ~= nil
end

-- the field of a key: "location.sym" -> "location", "sym"
local function split_key(k)
  local field, how = k:match("^([%w_]+)%.([%w%-]+)$")
  return field or k, how
end

--- The keys of a count per port: the packet's protocol and local port,
-- the drop reason where the kernel has drop reasons, then `more` (e.g.
-- "packet.saddr", "netns"). Counted in C from the drop probe's packets.
-- @tparam[opt] {string,...} more
-- @treturn {string,...} e.g. `{ "packet.proto", "packet.dport", "reason" }`
function M.port_keys(more)
  local keys = { "packet.proto", "packet.dport" }
  if format.has_reasons() then keys[#keys + 1] = "reason" end
  for _, k in ipairs(more or {}) do keys[#keys + 1] = k end
  return keys
end

--- The keys a histogram counts by unless told: the drop reason (where the
-- kernel has drop reasons) and the function that dropped the packet.
-- @tparam[opt] string event "system:name" (default the drop event)
-- @treturn {string,...} e.g. `{ "reason", "location.sym" }`, or
-- `{ "location.sym" }` on a kernel without drop reasons
function M.default_keys(event)
  local defaults = require("dropprobe.hunt").DEFAULTS
  if (event == nil or event == defaults.drop_event) and not format.has_reasons() then
    return { "location.sym" }
  end
  return { "reason", "location.sym" }
end

-- Keys and values must be fields of the event: checked before anything is
-- written, with the event's fields named (a reason on a kernel without
-- drop reasons says so).
local function check_keys(ev, keys, values)
  for _, k in ipairs(keys) do
    local missing = not is_packet_key(k) and format.missing_field(ev, split_key(k))
    if missing then error("hist.open: " .. missing, 0) end
  end
  for _, v in ipairs(values) do
    local missing = format.missing_field(ev, v)
    if missing then error("hist.open: a value to sum: " .. missing, 0) end
  end
end

--- Open a histogram on an event of a new private instance.
-- @tparam[opt] table opts `event` (default "skb:kfree_skb"), `keys` (fields,
-- with `.sym` or `.sym-offset` for addresses, and `stacktrace`; default
-- `default_keys(event)`: `{ "reason", "location.sym" }`, without the reason
-- where the kernel has none), `values` (numeric fields to sum beside
-- hitcount), `condition` (reason names allowed; default every drop for the
-- drop event; false: none, every event), `size` (most entries, default 2048, as the kernel's), `where`
-- ("kernel" or "c"; default the kernel when it has hist triggers),
-- `buffer_kb` (C counting's ring buffer per CPU; default the hunts'), `map`
-- (C counting: false copies every page out with read() even where the
-- kernel lets the buffers be mapped and read in place; default true;
-- refused where the kernel counts, which reads no buffer).
--
-- Packet keys count each drop by its own packet: `packet.proto`,
-- `packet.dport` (the port a received packet was going to: the local one),
-- `packet.sport`, `packet.saddr` (where it came from), `packet.daddr`,
-- `packet.family`. They count the drop probe's events (`dp.packet_probe`,
-- a kprobe: `event` is left out), always in C, the packet decoded there, no
-- record per drop; rows name them as `rec.packet` does (`row.proto =
-- "udp"`, `row.dport = 9999`, `row.saddr = "127.0.0.1"`) and leave out what
-- a packet has not (no ports in ICMP or a later fragment: `row.dport ==
-- nil`). `reason` may be beside them (a kernel with drop reasons).
-- @treturn Hist with `read()`, `run()`, `close()`, and `where`
-- @raise not root, no tracefs, an unknown event or field, "kernel" where the
-- kernel has no hist triggers, packet keys where the kernel has no kprobes
-- (or with `where = "kernel"` or an `event`)
function M.open(opts)
  opts = util.check_options(opts, { "event", "keys", "values", "condition", "size", "where",
    "buffer_kb", "map" }, "hist.open")
  if opts.map ~= nil and type(opts.map) ~= "boolean" then error("hist.open: map is true or false", 2) end
  local defaults = require("dropprobe.hunt").DEFAULTS
  local event = opts.event or defaults.drop_event
  local keys = opts.keys or M.default_keys(event)
  local values = opts.values or {}
  local size = opts.size or 2048
  if type(keys) ~= "table" or #keys == 0 then error("hist.open: keys is a list of fields", 2) end
  if math.type(size) ~= "integer" or size < 1 or size > 1048576 then
    error("hist.open: size is a whole number of entries (1 to 1048576)", 2)
  end
  local where = opts.where
  local packet = false
  for _, k in ipairs(keys) do packet = packet or is_packet_key(k) end
  if packet then
    if opts.event ~= nil then
      error("hist.open: packet keys count the drop probe's events: leave event out", 2)
    end
    if where == "kernel" then
      error("hist.open: packet keys are counted in C (where = \"c\"): a kernel hist trigger cannot "
        .. "decode a packet", 2)
    end
    local ok, why = require("dropprobe.hunt").packets()
    if not ok then
      error("hist.open: packet keys need each drop's packet, read by the drop probe (a kprobe): "
        .. tostring(why):gsub(": ports come from joining tracepoints$", ""), 2)
    end
    where = "c"
  end
  local has_hist = tracefs.features().hist
  if where == nil then where = has_hist and "kernel" or "c" end
  if where ~= "kernel" and where ~= "c" then
    error(fmt("hist.open: where is \"kernel\" or \"c\", not %q", tostring(where)), 2)
  end
  if where == "kernel" and not has_hist then
    error("hist.open: this kernel has no hist triggers (CONFIG_HIST_TRIGGERS): count with where = \"c\"", 2)
  end
  -- the stack key last: the kernel prints it over several lines
  local ordered, stack = {}, false
  for _, k in ipairs(keys) do
    if type(k) ~= "string" or not k:match("^[%w_]+[%w_.%-]*$") then
      error(fmt("hist.open: bad key %q", tostring(k)), 2)
    end
    if k == "stacktrace" then stack = true else ordered[#ordered + 1] = k end
  end
  for _, v in ipairs(values) do
    if type(v) ~= "string" or not v:match("^[%w_]+$") then
      error(fmt("hist.open: bad value %q", tostring(v)), 2)
    end
  end
  if where == "kernel" and opts.map == false then
    error("hist.open: map = false copies the buffers C counting reads: the kernel counts without them "
      .. "(where = \"c\")", 2)
  end
  if where == "kernel" and #ordered + (stack and 1 or 0) > 3 then
    error("hist.open: a kernel hist trigger takes at most 3 keys (stacktrace included): count with where = \"c\"", 2)
  end
  local cond = opts.condition
  if cond == nil and event == defaults.drop_event then cond = format.drop_condition() end

  local self = setmetatable({ where = where, keys = ordered, stack = stack, values = values,
    event = event, packet = packet }, Hist)
  local ks = {}
  for _, k in ipairs(ordered) do ks[#ks + 1] = k end
  if stack then ks[#ks + 1] = "stacktrace" end
  local count = { keys = ks, values = values, size = size, map = opts.map,
    check = function(ev) check_keys(ev, ordered, values) end }
  if where == "kernel" then
    local vals = { "hitcount" }
    for _, v in ipairs(values) do vals[#vals + 1] = v end
    self.spec = fmt("hist:keys=%s:vals=%s:sort=hitcount.descending:size=%d",
      table.concat(ks, ","), table.concat(vals, ","), size)
    count = { trigger = self.spec, check = count.check }
  end
  -- the hunt every recipe opens: the instance, the event (or the drop
  -- probe, for packet keys: it adds skb != 0), the condition, a stack
  -- trigger for a stack key, and here the counter or the hist trigger
  local ok, h = pcall(require("dropprobe.hunt").open, { event = not packet and event or nil,
    packets = packet or nil, condition = cond or false, stacks = stack and where == "c" or nil,
    buffer_kb = opts.buffer_kb, count = count })
  if not ok then error(h, 2) end
  self.hunt, self.inst, self.ev, self.counter = h, h.inst, h.ev, h.counter
  self.condition = h.condition or nil
  self.system, self.name = h.ev:info().system, h.ev:info().name
  self.symbols = format.event_symbols(h.ev) or {}
  return self
end

-- A key's value as records give it: a reason by its name, an address
-- symbol without the kernel's "[address] " and padding.
local function key_value(self, field, v)
  if type(v) == "string" then
    v = v:gsub("^%[%x+%]%s*", ""):gsub("%s+$", "")
    v = math.tointeger(tonumber(v)) or v
  end
  local syms = self.symbols[field]
  if syms and math.type(v) == "integer" and syms[v] then return syms[v] end
  return v
end

-- One entry of the kernel's `hist` file: the keys between { and }, the
-- stack frames on the lines between, the values after }.
local function hist_row(self, head, frames, tail)
  local row = {}
  for part in head:gmatch("[^,]+") do
    local name, v = part:match("^%s*([%w_]+):%s*(.-)%s*$")
    if name and name ~= "stacktrace" and name ~= "common_stacktrace" then
      row[name] = key_value(self, name, v)
    end
  end
  if self.stack then row.stack = frames end
  for name, n in tail:gmatch("([%w_]+):%s*(%d+)") do row[name] = math.tointeger(tonumber(n)) end
  return row
end

-- The kernel's `hist` file as rows and its totals.
local function parse_hist(self, text)
  local rows, totals = {}, {}
  local cur
  for line in text:gmatch("[^\n]+") do
    local tk, tv = line:match("^%s+(%a+): (%d+)%s*$")
    if line:sub(1, 1) == "#" then -- luacheck: ignore 542
    elseif tk and not cur then
      totals[tk:lower()] = tonumber(tv)
    elseif line:sub(1, 1) == "{" then
      local head, tail = line:match("^{(.-)}(.*)$")
      if head then
        rows[#rows + 1] = hist_row(self, head, {}, tail)
      else
        cur = { head = line:sub(2), frames = {} }
      end
    elseif cur and line:sub(1, 1) == "}" then
      rows[#rows + 1] = hist_row(self, cur.head, cur.frames, line:sub(2))
      cur = nil
    elseif cur then
      cur.frames[#cur.frames + 1] = line:match("^%s*(.-)%s*$")
    end
  end
  return rows, totals
end

-- One stack for the same drop whoever counted: from the function that
-- dropped (a kernel hist stack starts there, a stacktrace trigger's in the
-- tracing code), at most the kernel's 16 frames; rows that become the same
-- are one.
local function merge_stacks(self, rows)
  local out, by = {}, {}
  for _, row in ipairs(rows) do
    row.stack = record.drop_frames(row.stack or {}, STACK_DEPTH)
    local id = { table.concat(row.stack, ";") }
    for _, k in ipairs(self.keys) do
      id[#id + 1] = tostring(row[is_packet_key(k) and k:sub(8) or split_key(k)])
    end
    id = table.concat(id, "|")
    local m = by[id]
    if m then
      m.hitcount = (m.hitcount or 0) + (row.hitcount or 0)
      for _, v in ipairs(self.values) do m[v] = (m[v] or 0) + (row[v] or 0) end
    else
      by[id] = row
      out[#out + 1] = row
    end
  end
  return out
end

--- What was counted so far. The answer is also kept as `self.last`: the
-- counts a report can still give after the instance went away.
-- @function Hist:read
-- @treturn table `{ rows = {{<key> = value, stack = {...}, hitcount = n, <value> = sum}...}
-- (most first), where = "kernel"|"c", hits =, entries =, dropped = (no room
-- in the table), lost = (C: events the ring buffer lost), mapped = (C: the
-- CPUs whose buffer was read in place, 0 where every page was copied),
-- without_stack, orphan_stacks = (C, counting by stack: drops whose stack
-- never came, stacks that came after no counted drop), bad_lines = (a
-- saved text: lines that are no trace line) }`
-- @raise the instance was removed under this process, or tracefs
-- unmounted (`dropprobe.instance.gone_message`: the instance is named)
function Hist:read()
  local rows, totals
  if self.where == "kernel" then
    local ok, text = pcall(self.ev.read_file, self.ev, "hist")
    if not ok then error(instance.gone_message(self.inst) or text, 0) end
    rows, totals = parse_hist(self, text or "")
    totals.lost = 0
  else
    rows, totals = self.counter:rows()
    for _, row in ipairs(rows) do
      for _, k in ipairs(self.keys) do
        if not is_packet_key(k) then -- those come named from C
          local field = split_key(k)
          row[field] = key_value(self, field, row[field])
        end
      end
    end
  end
  if self.stack then rows = merge_stacks(self, rows) end
  table.sort(rows, function(a, b) return (a.hitcount or 0) > (b.hitcount or 0) end)
  self.last = { rows = rows, where = self.where, hits = totals.hits or 0, entries = totals.entries or #rows,
    dropped = totals.dropped or 0, lost = totals.lost or 0, mapped = totals.mapped,
    without_stack = totals.without_stack, orphan_stacks = totals.orphan_stacks, bad_lines = totals.bad_lines }
  return self.last
end

--- Count until `duration` seconds, `idle` seconds without an event, or a
-- signal, calling `on_tick(now)` every `tick` seconds (and once at the
-- end). The kernel counts on its own; C counting reads the buffers here.
-- @function Hist:run
-- @tparam table opts `duration`, `idle`, `tick`, `on_tick`, `ready` (called
-- with `describe()` once counting)
-- @treturn string why it ended: "duration", "idle", "interrupted"
-- @raise where the kernel counts, its instance removed under this process
-- or tracefs unmounted (noticed within a quarter of a second; `self.last`
-- keeps the counts as last read)
function Hist:run(opts)
  opts = util.check_options(opts, require("dropprobe.hunt").COUNT_RUN_OPTIONS, "hist:run")
  local ready = opts.ready
  return self.hunt:run({ duration = opts.duration, idle = opts.idle, tick = opts.tick,
    on_tick = opts.on_tick, ready = ready and function() ready(self:describe()) end },
    function() return self:read().hits end)
end

--- What the histogram counts, in a line: the event, where, the keys and
-- the condition.
-- @function Hist:describe
-- @treturn string
function Hist:describe()
  local keys = {}
  for _, k in ipairs(self.keys or {}) do keys[#keys + 1] = k end
  if self.stack then keys[#keys + 1] = "stacktrace" end
  return ("counting %s:%s by %s %s where %s"):format(self.system or "?", self.name or "?",
    table.concat(keys, ","), self.where == "kernel" and "in the kernel (a hist trigger)"
      or "in C over the raw buffers", self.condition or "(every event)")
end

--- Count a saved trace in C: a trace.dat (its own formats name the
-- reasons) or the text of `trace`/`trace_pipe` (keys are the printed
-- labels, `reason: NO_SOCKET` gives "NO_SOCKET"). No record is made.
-- @tparam string path
-- @tparam[opt] table opts `event` ("skb:kfree_skb" or "kfree_skb"), `keys`
-- (default `{ "reason", "location.sym" }`), `values`, `size`
-- @treturn Hist whose `read()` gives the rows (`where = "c"`)
-- @usage local r = dp.hist_file("trace.dat", { keys = { "reason" } }):read()
function M.file(path, opts)
  opts = util.check_options(opts, { "event", "keys", "values", "size" }, "hist.file")
  local defaults = require("dropprobe.hunt").DEFAULTS
  local sys, name = (opts.event or defaults.drop_event):match("^([^:]+):([^:]+)$")
  if not sys then sys, name = nil, opts.event end
  local keys = opts.keys or { "reason", "location.sym" }
  local f = io.open(path, "rb")
  if not f then
    local _, err = io.open(path, "rb")
    error(fmt("hist.file: cannot open '%s': %s", tostring(path), err), 2)
  end
  local magic = f:read(10) or ""
  f:close()
  local spec = { event = name, system = sys, keys = keys, values = opts.values, size = opts.size }
  local ok, counter
  if magic:sub(1, 3) == "\23\8\68" and magic:sub(4, 10) == "tracing" then
    ok, counter = pcall(core.count_dat, path, spec)
  else
    spec.system = nil
    ok, counter = pcall(core.count_text, path, spec)
  end
  if not ok then error(counter, 2) end
  local ordered, stack = {}, false
  for _, k in ipairs(keys) do
    if k == "stacktrace" then stack = true else ordered[#ordered + 1] = k end
  end
  return setmetatable({ where = "c", counter = counter, keys = ordered, stack = stack,
    values = opts.values or {}, symbols = {}, file = true }, Hist)
end

--- Remove the histogram (its trigger, or the counter and its events) and the instance.
-- @function Hist:close
function Hist:close()
  if self.hunt then
    self.hunt:close() -- its counter with it
  elseif self.counter then
    self.counter:close() -- a file's
  end
end
Hist.__close = Hist.close

return M
