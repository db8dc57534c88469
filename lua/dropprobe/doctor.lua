--- What this kernel offers (`dropprobe doctor`), and removing what dead
-- dropprobe processes left behind (`dropprobe cleanup`).
-- @module dropprobe.doctor
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local readfile, exists = util.readfile, util.exists
local check_options = util.check_options
local fmt = string.format
local tracefs = require "dropprobe.tracefs"
local format = require "dropprobe.format"
local kprobe = require "dropprobe.kprobe"

local M = {}

--- What this kernel offers for drop hunting and what would enable the rest:
-- the checks behind `dropprobe doctor`, from the same detection as
-- `features()`.
-- @treturn {table,...} `{ name=, ok=, detail=, fix= }` per check
function M.doctor()
  local out = {}
  local function check(name, ok, detail, fix)
    out[#out + 1] = { name = name, ok = ok and true or false, detail = detail, fix = (not ok) and fix or nil }
  end
  check("root", core.is_root(), core.is_root() and "running as root" or "not root",
    "run as root (sudo): tracefs control files need CAP_SYS_ADMIN")
  local ok, dir = pcall(core.tracefs)
  check("tracefs", ok, ok and ("mounted at " .. dir) or tostring(dir),
    "CONFIG_TRACING=y, and mount -t tracefs nodev /sys/kernel/tracing")
  if not ok then return out end
  local f = tracefs.features()
  check("instances", f.instances, "private ring buffers (instances/)", "CONFIG_TRACING=y (kernel 4.x or later)")
  check("stacktrace triggers", f.stacktrace, "stacks of the drops that match",
    "CONFIG_STACKTRACE=y")
  check("raw buffers", f.raw, "per_cpu/cpuN/trace_pipe_raw for raw mode", "CONFIG_RING_BUFFER=y")
  -- whether a reader may map a CPU's buffer: tried on a private instance,
  -- which goes again
  local mapped = false
  if f.instances and f.raw and core.is_root() then
    local tried, n = pcall(function()
      local inst <close> = require("dropprobe.instance").instance{ buffer_kb = 64 }
      local pipe <close> = inst:pipe{ mode = "raw" }
      return pipe:stats().mapped
    end)
    mapped = tried and n > 0
  end
  check("mapped buffers", mapped, mapped and "raw mode and counting in C read each CPU's buffer in place"
    or "raw mode and counting in C copy every page out with read()",
    "a kernel of 6.10 or later (mmap of trace_pipe_raw): less to copy in a storm")
  local has_reasons = format.has_reasons()
  check("drop reasons", has_reasons,
    has_reasons and "skb:kfree_skb carries a reason"
      or "skb:kfree_skb has no reason field: every kfree_skb is a drop here; records and reports "
      .. "carry no reason (\"-\"), conditions cannot name one",
    "a kernel of 5.17 or later")
  -- real addresses: a text symbol's address is not zero (the first line of
  -- kallsyms may be a per-CPU symbol at 0 even when addresses are shown)
  local kok = false
  local ks = io.open("/proc/kallsyms")
  if ks then
    for line in ks:lines() do
      local addr, kind = line:match("^(%x+) (%a) ")
      if kind == "T" or kind == "t" then
        kok = addr:match("^0+$") == nil
        break
      end
    end
    ks:close()
  end
  check("kallsyms", kok, kok and "real addresses: stacks and locations get symbols"
    or "addresses hidden", "root, and sysctl kernel.kptr_restrict=0 (or 1)")
  check("kprobes", f.kprobes, f.kprobes and "kprobe_events" or "no kprobe_events",
    "CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y")
  check("eprobes", f.eprobes, "event probes on tracepoints", "CONFIG_EPROBE_EVENTS=y")
  check("hist triggers", f.hist, "in-kernel histograms", "CONFIG_HIST_TRIGGERS=y")
  check("function tracer", f.function_tracer, "the function tracer", "CONFIG_FUNCTION_TRACER=y")
  check("function filter", f.function_filter, f.function_filter and "set_ftrace_filter usable"
    or "available_filter_functions refused (EPERM)",
    "CONFIG_DYNAMIC_FTRACE=y and no kernel lockdown (boot with lockdown=none)")
  local hunt = require "dropprobe.hunt"
  local pok, pwhy = hunt.packets()
  check("packet of each drop", pok, pwhy,
    "CONFIG_KPROBE_EVENTS=y and CONFIG_DEBUG_INFO_BTF=y (no lockdown): `ports` and `watch` then "
      .. "give every drop's addresses and ports, firewall drops included")
  check("BTF", f.btf, f.btf and "/sys/kernel/btf/vmlinux: names of the non-drops (CONSUMED) in conditions"
    or "no /sys/kernel/btf/vmlinux: only the reason names skb:kfree_skb prints are known",
    "CONFIG_DEBUG_INFO_BTF=y")
  return out
end

--- Remove what dropprobe processes that no longer exist left behind
-- (after `kill -9` or a crash): instances named `dropprobe-<pid>-<n>` whose
-- pid is dead, and the kprobes of the group `dropprobe` that such a process
-- noted as its own (in `/run/dropprobe/<pid>.kprobes`) and that no living
-- process claims. Never touches anything else.
-- @tparam[opt] table opts `dry_run = true` only lists; `rundir` (tests)
-- @treturn {string,...} what was removed (or would be): "instances/<name>",
-- "kprobe dropprobe/<name>"
function M.cleanup(opts)
  opts = check_options(opts, { "dry_run", "rundir" }, "dp.cleanup")
  local dir = tracefs.tracefs()
  local function ls(path) return core.dir(path) or {} end
  local function alive(pid) return exists("/proc/" .. pid .. "/stat") end
  local removed = {}
  for _, name in ipairs(ls(dir .. "/instances")) do
    local pid = name:match("^dropprobe%-(%d+)%-%d+$")
    if pid and not alive(pid) then
      if not opts.dry_run then
        local ok, err = os.remove(dir .. "/instances/" .. name)
        if not ok then error(fmt("cannot remove instance %s: %s", name, err), 2) end
      end
      removed[#removed + 1] = "instances/" .. name
    end
  end
  local rundir = opts.rundir or kprobe.rundir()
  local live_names, dead = {}, {}
  for _, file in ipairs(ls(rundir)) do
    local pid = file:match("^(%d+)%.kprobes$")
    if pid then
      local names = kprobe.state_names(rundir .. "/" .. file)
      if alive(pid) then
        for _, n in ipairs(names) do live_names[n] = true end
      else
        dead[#dead + 1] = { file = rundir .. "/" .. file, names = names }
      end
    end
  end
  local defined = (readfile(dir .. "/kprobe_events") or "") .. "\n" .. (readfile(dir .. "/dynamic_events") or "")
  local done = {} -- two dead processes may have noted the same name
  for _, d in ipairs(dead) do
    for _, name in ipairs(d.names) do
      if not live_names[name] and not done[name] and defined:find(":dropprobe/" .. name .. "[%s\n]") then
        done[name] = true
        if not opts.dry_run then
          local ok, err = core.kprobe_remove(name)
          if not ok then error(err, 2) end
        end
        removed[#removed + 1] = "kprobe dropprobe/" .. name
      end
    end
    if not opts.dry_run then os.remove(d.file) end
  end
  return removed
end

return M
