--- Small helpers the library's Lua files share (not public API).
-- @module dropprobe.util
local M = {}
local fmt = string.format

--- Options checking: unknown keys are an error naming the allowed ones.
-- @tparam table|nil opts
-- @tparam {string,...} allowed
-- @tparam string what the caller, for the message
-- @treturn table opts, or {} for nil
function M.check_options(opts, allowed, what)
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

--- A whole file, or nil.
function M.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Whether a path can be opened.
function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

return M
