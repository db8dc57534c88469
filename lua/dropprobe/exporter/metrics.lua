--- The exporter's metrics: a `hist:read()` result, with the per-port
-- tallies and what the exporter knows of itself, as the Prometheus text
-- exposition format (0.0.4). See `dropprobe.exporter` for the series.
-- @module dropprobe.exporter.metrics
local M = {}
local fmt = string.format
-- a reason as reports show it (a subsystem's as "qdisc/GENERIC")
local reason_label = require("dropprobe.format").reason_label

-- a label value as the exposition format escapes it
local function esc(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

-- the reason label and its comma, or nothing where the kernel has no reasons
local function reason_pair(reason)
  return reason ~= "" and fmt('reason="%s",', esc(reason)) or ""
end

--- The metrics text from a `hist:read()` result.
-- @tparam table r from `Hist:read()`
-- @tparam table state `{ top = N, kept = {} }` kept between calls (which
-- locations have a series of their own)
-- @tparam table info `{ version =, release = }`
-- @treturn string
function M.render(r, state, info)
  local by_reason = {} -- reason -> location -> count
  local loc_total = {}
  for _, row in ipairs(r.rows) do
    -- "" where the kernel has no drop reasons: the series have no reason label
    local reason, loc = row.reason ~= nil and reason_label(row.reason) or "", tostring(row.location)
    by_reason[reason] = by_reason[reason] or {}
    by_reason[reason][loc] = (by_reason[reason][loc] or 0) + row.hitcount
    loc_total[loc] = (loc_total[loc] or 0) + row.hitcount
  end
  -- locations get a series of their own while there is room, most first
  local locs = {}
  for loc in pairs(loc_total) do locs[#locs + 1] = loc end
  table.sort(locs, function(a, b) return loc_total[a] > loc_total[b] or (loc_total[a] == loc_total[b] and a < b) end)
  for _, loc in ipairs(locs) do
    if not state.kept[loc] and state.nkept < state.top then
      state.kept[loc] = true
      state.nkept = state.nkept + 1
    end
  end
  local lines = {
    "# HELP dropprobe_drops_total Packets the kernel dropped, by drop reason and the function that dropped them.",
    "# TYPE dropprobe_drops_total counter",
  }
  local reasons = {}
  for reason in pairs(by_reason) do reasons[#reasons + 1] = reason end
  table.sort(reasons)
  for _, reason in ipairs(reasons) do
    local other, names = 0, {}
    for loc, n in pairs(by_reason[reason]) do
      if state.kept[loc] then names[#names + 1] = loc else other = other + n end
    end
    table.sort(names)
    for _, loc in ipairs(names) do
      lines[#lines + 1] = fmt('dropprobe_drops_total{%slocation="%s"} %d', reason_pair(reason), esc(loc),
        by_reason[reason][loc])
    end
    if other > 0 or state.other_seen[reason] then
      state.other_seen[reason] = true
      lines[#lines + 1] = fmt('dropprobe_drops_total{%slocation="other"} %d', reason_pair(reason), other)
    end
  end
  if state.ports then
    lines[#lines + 1] = "# HELP dropprobe_port_drops_total Packets dropped, by protocol, the port they were "
      .. "going to and drop reason (kernels with kprobes: each drop's own packet)."
    lines[#lines + 1] = "# TYPE dropprobe_port_drops_total counter"
    local keys = {}
    for k in pairs(state.ports) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      -- proto/port/netns/reason: the reason last (a subsystem's has a "/"),
      -- netns empty unless the exporter labels namespaces
      local proto, port, netns, reason = k:match("^([^/]*)/([^/]*)/([^/]*)/(.*)$")
      lines[#lines + 1] = fmt('dropprobe_port_drops_total{proto="%s",port="%s"%s%s} %d', esc(proto),
        esc(port), netns ~= "" and fmt(',netns="%s"', esc(netns)) or "",
        reason ~= "" and fmt(',reason="%s"', esc(reason)) or "", state.ports[k])
    end
  end
  lines[#lines + 1] = "# HELP dropprobe_events_lost_total Drop events the exporter could not count "
    .. "(ring buffer overwritten, table full)."
  lines[#lines + 1] = "# TYPE dropprobe_events_lost_total counter"
  lines[#lines + 1] = fmt("dropprobe_events_lost_total %d", (r.lost or 0) + (r.dropped or 0)
    + (state.ports_lost or 0))
  lines[#lines + 1] = "# HELP dropprobe_cpu_seconds_total CPU time the exporter itself used."
  lines[#lines + 1] = "# TYPE dropprobe_cpu_seconds_total counter"
  lines[#lines + 1] = fmt("dropprobe_cpu_seconds_total %.3f", os.clock())
  lines[#lines + 1] = "# HELP dropprobe_build_info The dropprobe version exporting."
  lines[#lines + 1] = "# TYPE dropprobe_build_info gauge"
  lines[#lines + 1] = fmt('dropprobe_build_info{version="%s"} 1', esc(info.version))
  lines[#lines + 1] = "# HELP dropprobe_kernel_info The kernel counted, and where the counting happens."
  lines[#lines + 1] = "# TYPE dropprobe_kernel_info gauge"
  lines[#lines + 1] = fmt('dropprobe_kernel_info{release="%s",counting="%s"} 1', esc(info.release), esc(r.where))
  return table.concat(lines, "\n") .. "\n"
end

return M
