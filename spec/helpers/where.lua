-- The function where a drop record says the kernel dropped it (dp.where
-- without the offsets), or nil.
local dp = require "dropprobe"

return function(rec)
  local at = dp.where(rec)
  return at and at:match("^([^+]+)")
end
