--- The exporter's textfile for node_exporter's textfile collector: the
-- directory checked before anything reaches tracefs, the file written
-- atomically (a temporary file renamed in the same directory).
-- @module dropprobe.exporter.textfile
local core = require "dropprobe.core"

local M = {}
local fmt = string.format

--- Write dir/dropprobe.prom atomically: a temporary file in the same
-- directory, renamed over it.
-- @tparam string dir
-- @tparam string text
-- @return true, or nil and the error
function M.write(dir, text)
  local tmp = fmt("%s/.dropprobe.prom.%d.tmp", dir, math.floor(core.now() * 1000) % 1000000)
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  f:close()
  if not ok then os.remove(tmp) return nil, werr end
  local rok, rerr = os.rename(tmp, dir .. "/dropprobe.prom")
  if not rok then os.remove(tmp) return nil, rerr end
  return true
end

--- Check a textfile directory before anything reaches tracefs.
-- @tparam string dir
-- @treturn string|nil why it cannot be used
function M.check(dir)
  if type(dir) ~= "string" or dir == "" then return "the textfile directory is a path" end
  local probe = dir .. "/.dropprobe.write-test"
  local f, err = io.open(probe, "wb")
  if not f then return fmt("cannot write into the textfile directory: %s", err) end
  f:close()
  os.remove(probe)
  return nil
end

return M
