--- Drop counters for Prometheus: node_exporter's textfile collector
-- (`textfile`: a file written atomically every interval) or an endpoint of
-- its own (`listen`: `GET /metrics`, text exposition format 0.0.4). Counting
-- goes through `dropprobe.hist`: in the kernel where it has hist triggers,
-- in C elsewhere, so an exporter costs next to nothing at rest and keeps up
-- in a storm.
--
-- Series: `dropprobe_drops_total{reason,location}` (counter),
-- `dropprobe_port_drops_total{proto,port,reason}` (counter, where the
-- kernel has kprobes: each drop's own packet, `dp.packet_probe`),
-- `dropprobe_events_lost_total` (counter), `dropprobe_cpu_seconds_total`
-- (counter: the exporter's own CPU), `dropprobe_build_info{version}` and
-- `dropprobe_kernel_info{release,counting}` (gauges, 1). Label cardinality
-- is bounded: at most `top` locations get a series of their own (the first
-- ones seen to rank in the top, kept for the life of the process so every
-- counter only grows); drops elsewhere are counted under `location="other"`.
-- On a kernel without drop reasons (before 5.17) the drop series have no
-- `reason` label (Prometheus reads a missing label as an empty one).
-- @module dropprobe.exporter
local core = require "dropprobe.core"
local util = require "dropprobe.util"
local hist = require "dropprobe.hist"

local M = {}
local fmt = string.format

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
    local reason, loc = row.reason ~= nil and tostring(row.reason) or "", tostring(row.location)
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
      local proto, port, reason = k:match("^([^/]*)/([^/]*)/(.*)$")
      lines[#lines + 1] = fmt('dropprobe_port_drops_total{proto="%s",port="%s"%s} %d', esc(proto),
        esc(port), reason ~= "" and fmt(',reason="%s"', esc(reason)) or "", state.ports[k])
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

-- Write path atomically: a temporary file in the same directory, renamed.
local function write_atomic(dir, text)
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

-- Check a textfile directory before anything reaches tracefs.
local function check_dir(dir)
  if type(dir) ~= "string" or dir == "" then return "the textfile directory is a path" end
  local probe = dir .. "/.dropprobe.write-test"
  local f, err = io.open(probe, "wb")
  if not f then return fmt("cannot write into the textfile directory: %s", err) end
  f:close()
  os.remove(probe)
  return nil
end

-- "127.0.0.1:9101", "[::1]:9101", ":9101" (127.0.0.1) -> host, port
local function parse_listen(s)
  if type(s) ~= "string" then return nil end
  local host, port = s:match("^%[([%x:]+)%]:(%d+)$")
  if not host then host, port = s:match("^([%w.%-]*):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host ~= "" and host or "127.0.0.1", port
end

-- Serve the waiting connections (one at a time, each bounded by a timeout).
local function serve(server, metrics)
  while true do
    local c = server:accept()
    if not c then return end
    c:settimeout(1) -- a slow client gets a second, not the exporter
    local line = c:receive("*l")
    local path = line and line:match("^GET%s+(%S+)")
    repeat local h = c:receive("*l") until not h or h == ""
    local status, body, ctype
    if path == "/metrics" then
      status, body, ctype = "200 OK", metrics(), "text/plain; version=0.0.4; charset=utf-8"
    else
      status, body, ctype = "404 Not Found", "not found: try /metrics\n", "text/plain; charset=utf-8"
    end
    c:send(fmt("HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
      status, ctype, #body, body))
    c:close()
  end
end

--- Run the exporter until SIGINT/SIGTERM (or `duration`).
-- @tparam table opts `textfile` (a directory) and/or `listen`
-- ("ADDR:PORT", default address 127.0.0.1), `interval` (seconds, default
-- 15), `top` (locations with a series of their own, default 20), `where`
-- ("kernel" or "c"), `duration`, `idle` (end after that many seconds
-- without a drop), `ready` (called once serving), `ports` (false: no
-- per-port series; they read each drop's packet as a record, which costs
-- what the `ports` recipe costs in a storm)
-- @treturn string why it ended
-- @raise a bad directory, address or port, before tracefs is touched
function M.run(opts)
  opts = util.check_options(opts, { "textfile", "listen", "interval", "top", "where", "duration",
    "idle", "ready", "version", "ports" }, "exporter.run")
  if not opts.textfile and not opts.listen then
    error("exporter: give --textfile DIR or --listen ADDR:PORT (or both)", 2)
  end
  local interval = opts.interval or 15
  if type(interval) ~= "number" or interval <= 0 then error("exporter: interval must be > 0", 2) end
  local top = opts.top or 20
  if math.type(top) ~= "integer" or top < 0 then error("exporter: top is a whole number >= 0", 2) end
  if opts.textfile then
    local why = check_dir(opts.textfile)
    if why then error("exporter: " .. why, 2) end
  end
  local server
  if opts.listen then
    local host, port = parse_listen(opts.listen)
    if not host then
      error(fmt("exporter: bad listen address %q (ADDR:PORT, [v6]:PORT or :PORT)", tostring(opts.listen)), 2)
    end
    local socket = require "socket"
    local err
    server, err = socket.bind(host, port)
    if not server then error(fmt("exporter: cannot listen on %s: %s", opts.listen, err), 2) end
    server:settimeout(0)
  end
  local release = (util.readfile("/proc/sys/kernel/osrelease") or "?"):match("^%s*(.-)%s*$")
  local h <close> = hist.open{ keys = hist.default_keys(), where = opts.where }
  local state = { top = top, kept = {}, nkept = 0, other_seen = {} }
  local info = { version = opts.version or "?", release = release }
  -- per port where the kernel gives each drop's packet: the drop probe's
  -- records, drained every tick; at most `top` ports, the rest "other"
  local hunt = require "dropprobe.hunt"
  local ph <close> = hunt.packets_for{ packets = opts.ports } and hunt.open{ packets = true } or nil
  if ph then state.ports, state.ports_lost = {}, 0 end
  local nports, kept_ports = 0, {}
  local function drain()
    if not ph then return end
    while true do
      local rec = ph.pipe:read(0)
      if not rec then break end
      local p = rec.packet
      if rec.name == ph.drop_name and p and p.dport and (p.proto == "tcp" or p.proto == "udp") then
        local port = tostring(p.dport)
        local k = p.proto .. "/" .. port
        if not kept_ports[k] and nports < top then kept_ports[k], nports = true, nports + 1 end
        local reason = rec.fields.reason ~= nil and tostring(rec.fields.reason) or ""
        local key = p.proto .. "/" .. (kept_ports[k] and port or "other") .. "/" .. reason
        state.ports[key] = (state.ports[key] or 0) + 1
      end
    end
    state.ports_lost = ph:totals().lost
  end
  local function publish()
    drain()
    local text = M.render(h:read(), state, info)
    if opts.textfile then
      local ok, err = write_atomic(opts.textfile, text)
      if not ok then io.stderr:write("dropprobe exporter: ", tostring(err), "\n") end
    end
  end
  publish()
  core.catch_hup()
  -- short ticks when something is served, or the packets are drained
  local tick = (server or ph) and math.min(interval, 0.2) or interval
  local last = core.now()
  local why = h:run{ duration = opts.duration, idle = opts.idle, ready = opts.ready, tick = tick,
    on_tick = function(now)
    if core.hup() or now - last >= interval - 1e-3 then
      publish() -- a SIGHUP writes at once (the directory is opened anew on every write)
      last = now
    end
    drain()
    if server then serve(server, function() drain() return M.render(h:read(), state, info) end) end
  end }
  publish()
  if server then server:close() end
  return why
end

return M
