--- Event formats, this kernel's drop reasons by name, and reason names
-- in filters and triggers.
-- @module dropprobe.format
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local readfile = util.readfile
local fmt = string.format
local tracefs = require "dropprobe.tracefs"
local tpath = tracefs.path

local M = {}

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

local reasons_cache, has_reasons_cache = {}, {}

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

--- Where a drop reason keeps its subsystem: the bits above this one
-- (`SKB_DROP_REASON_SUBSYS_SHIFT` in the kernel's `include/net/dropreason.h`,
-- 6.4 and later; the core reasons have subsystem 0).
M.SUBSYS_SHIFT = 16

local subsystems_cache

--- The drop reason subsystems this kernel's BTF names, and the reasons of
-- each: enum `skb_drop_reason_subsys` gives the subsystems
-- (`SKB_DROP_REASON_SUBSYS_QDISC = 3` becomes "qdisc"), and every enum
-- named `*_drop_reason` whose values carry that subsystem in their high
-- bits gives its reasons, named without their common prefix
-- (`QDISC_DROP_GENERIC = 3 << 16 | 1` becomes "qdisc/GENERIC"). Enums of a
-- module (openvswitch, mac80211) are read from the module's own BTF where
-- it is loaded. Empty on a kernel without subsystems (before 6.4).
-- @treturn table `{ names = { [3] = "qdisc" }, reasons = { [196609] = "qdisc/GENERIC" } }`
function M.subsystems()
  if subsystems_cache then return subsystems_cache end
  local out = { names = {}, reasons = {} }
  local ok, all = pcall(core.btf_enums, "_drop_reason_subsys")
  local subs = ok and all and all.skb_drop_reason_subsys
  for name, id in pairs(subs or {}) do
    local short = name:match("^SKB_DROP_REASON_SUBSYS_(.+)$")
    if short and short ~= "NUM" and id > 0 then out.names[id] = short:lower() end
  end
  -- the kernel's BTF, and the BTF of a loaded module named like a subsystem
  local files, seen = { "/sys/kernel/btf/vmlinux" }, {}
  for _, s in pairs(out.names) do
    for _, m in ipairs({ s, s:match("^[^_]+") }) do
      local path = "/sys/kernel/btf/" .. m
      if not seen[m] and m ~= "vmlinux" and util.exists(path) then files[#files + 1] = path end
      seen[m] = true
    end
  end
  for _, file in ipairs(next(out.names) and files or {}) do
    local eok, enums = pcall(core.btf_enums, "_drop_reason", file)
    for ename, values in pairs(eok and enums or {}) do
      if ename ~= "skb_drop_reason" then
        local by = {} -- subsystem -> { {name, value} ... }
        for vname, v in pairs(values) do
          local id = v >> M.SUBSYS_SHIFT
          if out.names[id] and v & ((1 << M.SUBSYS_SHIFT) - 1) ~= 0 and not vname:match("^__")
              and not vname:match("_MAX$") then
            by[id] = by[id] or {}
            table.insert(by[id], { vname, v })
          end
        end
        for id, list in pairs(by) do
          -- the names' common prefix, up to its last "_"
          local prefix = list[1][1]
          for _, e in ipairs(list) do
            local i = 0
            while i < #prefix and prefix:byte(i + 1) == e[1]:byte(i + 1) do i = i + 1 end
            prefix = prefix:sub(1, i)
          end
          prefix = #list > 1 and prefix:match("^(.*_)") or ""
          for _, e in ipairs(list) do
            out.reasons[e[2]] = out.names[id] .. "/" .. e[1]:sub(#prefix + 1)
          end
        end
      end
    end
  end
  subsystems_cache = out
  return out
end

--- This kernel's drop reasons: the names skb:kfree_skb prints, from its
-- format's `__print_symbolic` table, plus what the kernel's BTF adds to
-- them: the non-drops `NOT_DROPPED_YET` and `CONSUMED`, which the table
-- leaves out, and the reasons of subsystems (`qdisc/GENERIC`, see
-- `subsystems`), which perf and trace-cmd print as numbers. Numbers differ
-- between kernels (NO_SOCKET is 2 on 6.1 and 3 on 6.12): only names carry
-- across. Kernels without a reason field (before 5.17) give an empty table.
-- @treturn table `r[3] == "NO_SOCKET"` and `r.NO_SOCKET == 3`
function M.reasons()
  local dir = tracefs.tracefs()
  if reasons_cache[dir] then return reasons_cache[dir] end
  local ok, f = pcall(M.format, "skb", "kfree_skb")
  local r = ok and M.reasons_of(f) or {}
  local btf = next(r) and btf_reasons()
  if btf then
    for n, name in pairs(M.subsystems().reasons) do btf[n] = name end
  end
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

--- Whether this kernel's drops carry a reason: `skb:kfree_skb` has a
-- `reason` field (5.17 and later). Where it has none, every `kfree_skb` is
-- a drop (`consume_skb` is separate), records carry no `reason`, and a
-- condition that names `reason` is refused before anything is written.
-- @treturn boolean
function M.has_reasons()
  local dir = tracefs.tracefs()
  if has_reasons_cache[dir] == nil then
    local ok, f = pcall(M.format, "skb", "kfree_skb")
    local has = false
    for _, fld in ipairs(ok and f.fields or {}) do
      if fld.name == "reason" and not fld.common then has = true end
    end
    has_reasons_cache[dir] = has
  end
  return has_reasons_cache[dir]
end

--- What reports show for the reason of a drop that carries none (a kernel
-- without drop reasons): `"-"`.
M.NO_REASON = "-"

--- The reason of a drop as reports show it: its name, or `NO_REASON` ("-")
-- where the kernel gives none; a number the kernel names nothing for as
-- the number, and one of a subsystem as `subsystem/N` ("qdisc/12", or
-- "subsys5/12" where even the subsystem has no name), never silently.
-- @param reason a record's `fields.reason` (a name, a number, or nil)
-- @treturn string
function M.reason_label(reason)
  if reason == nil then return M.NO_REASON end
  if math.type(reason) == "integer" then
    local name = M.reasons()[reason]
    if name then return name end
    local id = reason >> M.SUBSYS_SHIFT
    if id ~= 0 then -- a subsystem's reason this kernel's BTF does not name
      return ("%s/%d"):format(M.subsystems().names[id] or ("subsys" .. id), reason & ((1 << M.SUBSYS_SHIFT) - 1))
    end
  end
  return tostring(reason)
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

--- Drops of packets a local socket had already received, discarded when
-- it was closed or its queue purged: closing a packet socket (tcpdump,
-- scapy) purges every copy it queued, and each copy is a `kfree_skb` with
-- its own reason. They are not packets the network lost: hunts leave them
-- out by default, count them, and say how many (`all_reasons` keeps them).
M.TEARDOWN = { "QUEUE_PURGE", "SOCKET_CLOSE", "UNIX_DISCONNECT" }
local teardown = {}
for _, r in ipairs(M.TEARDOWN) do teardown[r] = true end

--- Whether a drop's reason is one of `TEARDOWN`.
-- @param reason a reason name (a record's `fields.reason`, a row's `reason`)
-- @treturn boolean
function M.is_teardown(reason)
  return teardown[reason] == true
end

--- Whether a hunt keeps every reason it reads: asked for (`all_reasons`),
-- or a filter that names one of `TEARDOWN` (`reason == QUEUE_PURGE` asks
-- for exactly those).
-- @tparam[opt] string filter
-- @tparam[opt] boolean all_reasons
-- @treturn boolean
function M.keeps_teardown(filter, all_reasons)
  if all_reasons then return true end
  for _, r in ipairs(M.TEARDOWN) do
    if filter and filter:find("%f[%w_]" .. r .. "%f[^%w_]") then return true end
  end
  return false
end

--- A condition that also leaves out the `TEARDOWN` reasons this kernel
-- has (for a stack trigger: the drops left out get no stack).
-- @tparam[opt] string cond
-- @treturn string|nil
function M.without_teardown(cond)
  local r, parts = M.reasons(), {}
  for _, name in ipairs(M.TEARDOWN) do
    if r[name] then parts[#parts + 1] = "reason != " .. name end
  end
  if #parts == 0 then return cond end
  local t = table.concat(parts, " && ")
  return cond and ("(" .. cond .. ") && " .. t) or t
end

--- The kernel condition of a hunt: the user's `filter` narrows the default
-- (`drop_condition()`, every drop), it never replaces it; with
-- `all_reasons` the filter alone (every reason, the non-drops too).
-- @tparam[opt] string filter
-- @tparam[opt] boolean all_reasons
-- @treturn string|nil
function M.drop_filter(filter, all_reasons)
  if all_reasons then return filter end
  local d = M.drop_condition()
  if d and filter then return "(" .. d .. ") && (" .. filter .. ")" end
  return d or filter
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
    part = part:gsub("([%a_][%w_]*)(%s*)([=!<>]=?)(%s*)([%a_][%w_]*/?[%w_]*)",
      function(field, s1, op, s2, name)
        local tab = symbols[field]
        if not tab then return nil end
        local n
        for num, sym in pairs(tab) do
          if sym == name or "SKB_DROP_REASON_" .. sym == name then n = num break end
        end
        if not n and field == "reason" and math.type(M.reasons()[name]) == "integer" then
          n = M.reasons()[name] -- a subsystem's reason by its full name: qdisc/GENERIC
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
M.translate = translate

-- The tokens of a filter expression: identifiers (with `.sym`-like
-- suffixes), numbers, quoted strings and operators, in order.
local OPS = { "==", "!=", "<=", ">=", "&&", "||", "<", ">", "~", "&", "!", "(", ")" }
local COMPARE = { ["=="] = true, ["!="] = true, ["<="] = true, [">="] = true, ["<"] = true,
  [">"] = true, ["~"] = true, ["&"] = true }

local function tokens(expr)
  local out, pos = {}, 1
  while pos <= #expr do
    local c = expr:sub(pos, pos)
    if c:match("%s") then
      pos = pos + 1
    elseif c == '"' or c == "'" then
      local close = expr:find(c, pos + 1, true) or #expr
      out[#out + 1] = { "string", expr:sub(pos, close) }
      pos = close + 1
    elseif c:match("[%a_]") then
      local word = expr:match("^[%a_][%w_.%-]*", pos)
      out[#out + 1] = { "name", word }
      pos = pos + #word
    elseif c:match("%d") then
      local num = expr:match("^[%w_.]+", pos)
      out[#out + 1] = { "number", num }
      pos = pos + #num
    else
      local op
      for _, o in ipairs(OPS) do
        if expr:sub(pos, pos + #o - 1) == o then op = o break end
      end
      op = op or c
      out[#out + 1] = { "op", op }
      pos = pos + #op
    end
  end
  return out
end

-- names people give a packet's fields (they are no event's fields: the
-- packet condition is --host/--port, checked in C)
local PACKET_FIELDS = { saddr = true, daddr = true, sport = true, dport = true, src = true,
  dst = true, port = true, host = true, addr = true, proto = true, ip = true, ip6 = true,
  lport = true, rport = true }

--- How an event is named in messages: "skb:kfree_skb", or "the drop probe
-- (dropprobe:pkt_1234_1)" for the probe that carries each drop's packet.
-- @treturn string
function M.event_label(system, name)
  local label = (system or "?") .. ":" .. (name or "?")
  if system == "dropprobe" and tostring(name):match("^pkt_%d+_%d+$") then
    return "the drop probe (" .. label .. ")"
  end
  return label
end

-- what the kernel's filters accept beside an event's own fields
local SPECIAL = { CPU = true, COMM = true, cpu = true, comm = true, common_cpu = true,
  common_comm = true, common_timestamp = true, common_stacktrace = true, stacktrace = true }

--- The field names a filter expression compares (`reason == 3 && protocol
-- == 2048` gives reason, protocol), without their `.sym`-like suffixes.
-- @tparam string expr
-- @treturn {string,...}
function M.condition_fields(expr)
  local t, names = tokens(expr), {}
  for i, tok in ipairs(t) do
    local nxt = t[i + 1]
    local prev = t[i - 1]
    if tok[1] == "name" and nxt and nxt[1] == "op" and COMPARE[nxt[2]]
        and not (prev and prev[1] == "op" and COMPARE[prev[2]]) then
      names[#names + 1] = tok[2]:match("^[^.]+")
    end
  end
  return names
end

--- Check that a condition names only fields the event has, before anything
-- is written: the kernel would refuse it with "Field not found" after the
-- old filter was already gone. A `reason` on a kernel without drop reasons
-- gets a message of its own.
-- @tparam string expr
-- @tparam table ev an Event
-- @tparam string what "filter" or "trigger", for the message
-- @raise an unknown field, naming the fields the event has
function M.check_condition(expr, ev, what)
  for _, name in ipairs(M.condition_fields(expr)) do
    local missing = M.missing_field(ev, name)
    if missing then
      error(fmt("%s '%s' on %s; nothing was changed", what, expr, missing), 0)
    end
  end
end

--- Why an event has no field `name` (what conditions and hist keys may
-- name: its own fields, the common ones, CPU, COMM, ...), or nil when it
-- has it or its format cannot be read (the kernel decides then).
-- @tparam table ev an Event
-- @tparam string name
-- @treturn string|nil "skb:kfree_skb: the event has no field 'x' (its fields: ...)"
function M.missing_field(ev, name)
  local f = M.event_format(ev)
  if not f or SPECIAL[name] then return nil end
  local list = {}
  for _, fld in ipairs(f.fields) do
    if fld.name == name then return nil end
    if not fld.common then list[#list + 1] = fld.name end
  end
  local label = M.event_label(f.system, f.name)
  if name == "reason" and (f.name == "kfree_skb" or f.system == "dropprobe") and not M.has_reasons() then
    return label .. ": this kernel has no drop reasons (skb:kfree_skb carries no reason field "
      .. "before 5.17; every kfree_skb is a drop here): leave reason out"
  end
  return fmt("%s: the event has no field '%s' (its fields: %s)%s", label, name, table.concat(list, ", "),
    PACKET_FIELDS[name] and "; a packet's addresses and ports are not event fields: use --host and "
      .. "--port (host =, port = in scripts)" or "")
end

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
        f.named.reason = f.symbols.reason -- records name what the format's table leaves out
      end
    end
    formats[ev] = f
  end
  return f and f.symbols, f and f.named
end
M.event_symbols = event_symbols

--- An event's parsed format (cached with the event), or nil where it
-- cannot be read.
-- @tparam table ev an Event
-- @treturn table|nil
function M.event_format(ev)
  event_symbols(ev)
  return formats[ev] or nil
end

return M
