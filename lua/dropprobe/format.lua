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
  local dir = tracefs.tracefs()
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
M.translate = translate

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
M.event_symbols = event_symbols

return M
