--- Where tracefs is and what this kernel's tracing offers.
-- @module dropprobe.tracefs
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local readfile, exists = util.readfile, util.exists

local M = {}

--- The tracing directory.
-- Finds tracefs, mounting it at /sys/kernel/tracing when it is not mounted
-- (root only). With `dir`, points the whole library at another tree (tests
-- on a fake tracefs); `false` goes back to the real one.
-- @tparam[opt] string|false dir
-- @treturn string the tracing directory
-- @raise when not root, or tracefs cannot be mounted
function M.tracefs(dir)
  return core.tracefs(dir)
end

--- A monotonic clock in seconds (the same clock as record timestamps).
-- @treturn number
M.now = core.now

--- A path inside the tracing directory: `path("events", "skb")`.
-- @treturn string
function M.path(...)
  return M.tracefs() .. "/" .. table.concat({ ... }, "/")
end

--- What this kernel's tracing offers, read live from tracefs and /proc.
-- @treturn table booleans: kprobes, uprobes, eprobes, hist, function_tracer,
-- function_filter, stacktrace, instances, raw, btf
function M.features()
  local t = M.tracefs()
  local readme = readfile(t .. "/README") or ""
  local tracers = readfile(t .. "/available_tracers") or ""
  local config = M._kernel_config()
  local ff = io.open(t .. "/available_filter_functions", "rb")
  local function_filter = false
  if ff then
    function_filter = ff:read(0) ~= nil
    ff:close()
  end
  local eprobes
  if config then
    eprobes = config.CONFIG_EPROBE_EVENTS == "y"
  else
    eprobes = exists(t .. "/dynamic_events") and readme:find("efield:", 1, true) ~= nil
  end
  return {
    kprobes = exists(t .. "/kprobe_events"),
    uprobes = exists(t .. "/uprobe_events"),
    eprobes = eprobes,
    hist = readme:find("%shist[%s:]") ~= nil,
    function_tracer = (" " .. tracers .. " "):find("%sfunction%s") ~= nil,
    function_filter = function_filter,
    stacktrace = readme:find("stacktrace", 1, true) ~= nil,
    instances = exists(t .. "/instances/.") or exists(t .. "/instances"),
    raw = exists(t .. "/per_cpu/cpu0/trace_pipe_raw"),
    btf = exists("/sys/kernel/btf/vmlinux"),
  }
end

--- The kernel's build options from /proc/config.gz, when the kernel has it.
-- @treturn table|nil `{ CONFIG_X = "y", ... }`
function M._kernel_config()
  if not exists("/proc/config.gz") then return nil end
  local p = io.popen("gzip -dc /proc/config.gz 2>/dev/null")
  if not p then return nil end
  local cfg = {}
  for line in p:lines() do
    local k, v = line:match("^(CONFIG_[%w_]+)=(.*)$")
    if k then cfg[k] = v end
  end
  p:close()
  return next(cfg) and cfg or nil
end

local function sorted(list)
  table.sort(list)
  return list
end

--- The event systems of this kernel, sorted.
-- @treturn {string,...}
function M.systems()
  M.tracefs()
  return sorted(core.systems())
end

--- The events of one system, sorted.
-- @tparam string system e.g. "skb"
-- @treturn {string,...}
function M.events(system)
  M.tracefs()
  return sorted(core.events(system))
end

return M
