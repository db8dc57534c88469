-- Live specs need root and tracefs. Where they are missing the spec is
-- reported as skipped with the reason; under DROPPROBE_LIVE=required (CI)
-- a missing capability is a failure instead.
local live = {}

local function why_not()
  local f = io.popen("id -u")
  local uid = f and tonumber(f:read("l"))
  if f then f:close() end
  if uid ~= 0 then return "live specs need root (run: sudo make test)" end
  local dp = require "dropprobe"
  local ok, dir = pcall(dp.tracefs)
  if not ok then return "no tracefs: " .. tostring(dir) end
  local probe = io.open(dir .. "/instances", "r")
  if not probe then return "tracefs has no instances/ directory" end
  probe:close()
  return nil
end

live.reason = why_not()
live.required = os.getenv("DROPPROBE_LIVE") == "required"

--- Run body only where live specs can run; otherwise skip (or fail in CI).
-- busted's `it`/`pending` live in the spec's environment, so a spec binds
-- them: `local live_it = live.bind(it, pending)`.
function live.bind(it, pending)
  return function(name, body) return live.it(it, pending, name, body) end
end

function live.it(it, pending, name, body)
  if live.reason then
    if live.required then
      it(name, function() error("live spec could not run: " .. live.reason) end)
    else
      pending(name .. " (skipped: " .. live.reason .. ")")
    end
  else
    it(name, body)
  end
end

return live
