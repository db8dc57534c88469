-- Live specs need root and tracefs. Where they are missing the spec is
-- reported as skipped with the reason; under DROPPROBE_LIVE=required (CI)
-- a missing capability is a failure instead.
--
-- A live spec that needs what only some kernels have (kprobe events, hist
-- triggers, the function filter) names it: `live_it(name, body, "kprobes")`;
-- one that checks the refusal where it is missing names "!kprobes".
-- On a kernel without it the spec is skipped with the reason, also in CI:
-- `make test` runs the live specs on three kernels and fails when a spec
-- was skipped on all of them (tools/summary.lua).
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

-- what each feature is called in a skip message
local FEATURES = {
  kprobes = "kprobe events (CONFIG_KPROBE_EVENTS)",
  eprobes = "event probes (CONFIG_EPROBE_EVENTS)",
  hist = "hist triggers (CONFIG_HIST_TRIGGERS)",
  function_filter = "working function filter (set_ftrace_filter: EPERM under lockdown)",
  queue_purge = "drop reason QUEUE_PURGE (a purged socket queue has its own reason since 6.8)",
  qdisc_drop = "qdisc:qdisc_drop tracepoint (the qdisc of a QDISC_DROP, and its reason)",
}

local features
--- Whether this kernel has the feature (dp.features()); the reason if not.
function live.lacks(feature)
  if live.reason then return nil end
  if not features then
    features = require("dropprobe").features()
  end
  assert(FEATURES[feature], "unknown feature " .. tostring(feature))
  if feature == "queue_purge" then
    if require("dropprobe").reasons().QUEUE_PURGE then return nil end
  elseif feature == "qdisc_drop" then
    local dp = require "dropprobe"
    local f = io.open(dp.tracefs() .. "/events/qdisc/qdisc_drop/format")
    if f then f:close() return nil end
  elseif features[feature] then
    return nil
  end
  local p = io.popen("uname -r")
  local release = p:read("l")
  p:close()
  return ("this kernel (%s) has no %s; it runs on a kernel that has"):format(release, FEATURES[feature])
end

--- Run body only where live specs can run; otherwise skip (or fail in CI).
-- busted's `it`/`pending` live in the spec's environment, so a spec binds
-- them: `local live_it = live.bind(it, pending)`.
function live.bind(it, pending)
  return function(name, body, feature) return live.it(it, pending, name, body, feature) end
end

function live.it(it, pending, name, body, feature)
  if live.reason then
    if live.required then
      it(name, function() error("live spec could not run: " .. live.reason) end)
    else
      pending(name .. " (skipped: " .. live.reason .. ")")
    end
  elseif feature and feature:sub(1, 1) == "!" and not live.lacks(feature:sub(2)) then
    -- a refusal, checked where the kernel lacks the feature
    pending(name .. " (skipped: this kernel has " .. FEATURES[feature:sub(2)]
      .. "; the refusal is checked where it has none)")
  elseif feature and feature:sub(1, 1) ~= "!" and live.lacks(feature) then
    pending(name .. " (skipped: " .. live.lacks(feature) .. ")")
  else
    it(name, body)
  end
end

return live
