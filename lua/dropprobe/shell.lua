--- The `dropprobe shell` REPL helpers: `dp` loaded, and results printed by
-- their contents. Loaded into `lua5.4 -i`, whose REPL prints results through
-- the global `print`: this module replaces it with `show`, so tables print as
-- their contents, records as trace lines and objects by their `__tostring`.
-- @module dropprobe.shell
local dp = require "dropprobe"

local M = {}

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function scalar(v)
  if type(v) == "string" then return string.format("%q", v):gsub("\\\n", "\\n") end
  return tostring(v)
end

--- A readable rendering of any value (tables nested to `depth`, default 3).
-- @param v
-- @tparam[opt=3] integer depth
-- @tparam[opt] string indent (recursion)
-- @tparam[opt] table seen (recursion)
-- @treturn string
function M.render(v, depth, indent, seen)
  depth, indent, seen = depth or 3, indent or "", seen or {}
  if type(v) ~= "table" then return scalar(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end -- records, objects
  if seen[v] then return "<cycle>" end
  if depth == 0 then return "{...}" end
  seen[v] = true
  local keys, n = {}, #v
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  local inner = indent .. "  "
  local parts = {}
  for i = 1, math.min(n, 40) do parts[#parts + 1] = M.render(v[i], depth - 1, inner, seen) end
  if n > 40 then parts[#parts + 1] = ("... (%d more)"):format(n - 40) end
  for _, k in ipairs(keys) do
    local ks = is_identifier(k) and k or ("[" .. scalar(k) .. "]")
    parts[#parts + 1] = ks .. " = " .. M.render(v[k], depth - 1, inner, seen)
  end
  seen[v] = nil
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if #parts == 0 then return "{}" end
  if #one <= 100 and not one:find("\n") then return one end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "}"
end

local raw_print = print

--- Print values the way the shell shows results.
function M.show(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do
    local v = select(i, ...)
    out[i] = type(v) == "string" and v or M.render(v)
  end
  raw_print(table.concat(out, "\t"))
end

--- Set up the REPL: global `dp`, and `print` showing contents.
function M.install()
  _G.dp = dp
  _G.print = M.show
  _G.raw_print = raw_print
  raw_print(("dropprobe %s on %s - `dp` is loaded. Try: dp.reasons(), dp.features(),\n"
    .. "  inst = dp.instance(); ev = inst:event(\"skb:kfree_skb\"); ev:filter(\"reason == NO_SOCKET\"); "
    .. "ev:enable()\n  for r in inst:records{ timeout = 2 } do print(r) end      "
    .. "(Ctrl-D leaves; instances go with it)"):format(dp.VERSION, _VERSION))
end

return M
