--- How a record prints, and where a drop happened.
-- @module dropprobe.record
local core = require "dropprobe.core"
local format = require "dropprobe.format"
local Record = core.Record
local fmt = string.format

local M = {}

local field_order = {}
local function order_of(rec)
  local key = (rec.system or "?") .. ":" .. (rec.name or "?")
  local mt = getmetatable(rec)
  local own = mt and mt.__order and mt.__order[key]
  if own then return own end -- the formats the record was decoded with
  if field_order[key] == nil then
    local ok, f = pcall(format.format, rec.system, rec.name)
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

--- The frames of a drop's stack from the function that dropped it: the
-- tracing machinery and the freeing function (`kfree_skb_reason`,
-- `sk_skb_reason_drop`) at its top left out, as a kernel hist stack has it.
-- Records' stacks come so already (unless `raw_stacks`); this is the same
-- rule (`core.drop_frames`, C) for stacks from elsewhere (hist rows).
-- @tparam {string,...} stack
-- @tparam[opt] integer depth at most this many frames
-- @treturn {string,...}
function M.drop_frames(stack, depth)
  return core.drop_frames(stack, depth)
end

--- Where the kernel dropped the packet of a drop record: its `location`
-- when the kernel named it (`tcp_v4_rcv+0x91/0x13f0`), else the stack's
-- frame that called the freeing function (a kprobe's record, or text mode
-- before 6.12, where `location` is a hashed pointer), else nil.
-- @tparam table rec a record
-- @treturn string|nil "function+0xoff/0xsize"
function M.where(rec)
  local loc = rec.fields and rec.fields.location
  -- a symbol, not an address (hex digits are letters too)
  if type(loc) == "string" and loc:find("^[%a_]") and not loc:find("^%x+$") then return loc end
  local stack = rec.stack
  if not stack then return nil end
  return core.drop_frames(stack, 1)[1] -- a trimmed stack is kept as it is; a raw one trimmed
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

return M
