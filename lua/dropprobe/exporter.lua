--- Drop counters for Prometheus: node_exporter's textfile collector
-- (`textfile`: a file written atomically every interval) or an endpoint of
-- its own (`listen`: `GET /metrics`, text exposition format 0.0.4). Counting
-- goes through `dropprobe.hist`: in the kernel where it has hist triggers,
-- in C elsewhere, so an exporter costs next to nothing at rest and keeps up
-- in a storm.
--
-- Series: `dropprobe_drops_total{reason,location}` (counter),
-- `dropprobe_port_drops_total{proto,port,reason}` (counter, where the
-- kernel has kprobes: each drop's own packet, `dp.packet_probe`; with
-- `netns`, also labelled with the network namespace's inode),
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
local format = require "dropprobe.format"
local metrics = require "dropprobe.exporter.metrics"
local textfile = require "dropprobe.exporter.textfile"
local http = require "dropprobe.exporter.server"

local M = {}

--- The metrics text from a `hist:read()` result (`dropprobe.exporter.metrics`).
-- @function render
M.render = metrics.render

--- Run the exporter until SIGINT/SIGTERM (or `duration`).
-- @tparam table opts `textfile` (a directory) and/or `listen`
-- ("ADDR:PORT", default address 127.0.0.1), `interval` (seconds, default
-- 15), `top` (locations with a series of their own, default 20), `where`
-- ("kernel" or "c"), `duration`, `idle` (end after that many seconds
-- without a drop), `ready` (called once serving), `ports` (false: no
-- per-port series; where the kernel has kprobes they come from each drop's
-- packet counted in C, `dp.hist` with packet keys: no record per drop),
-- `netns` (true: the per-port series get a `netns` label, the inode of the
-- drop's network namespace; one series per namespace and port, so only
-- where the namespaces are few; needs the drop probe's device)
-- @treturn string why it ended
-- @raise a bad directory, address or port, before tracefs is touched; the
-- instance removed under this process or tracefs unmounted, after the
-- textfile was written once more with the counts as last read
function M.run(opts)
  opts = util.check_options(opts, { "textfile", "listen", "interval", "top", "where", "duration",
    "idle", "ready", "version", "ports", "netns" }, "exporter.run")
  if not opts.textfile and not opts.listen then
    error("exporter: give --textfile DIR or --listen ADDR:PORT (or both)", 2)
  end
  local interval = opts.interval or 15
  if type(interval) ~= "number" or interval <= 0 then error("exporter: interval must be > 0", 2) end
  local top = opts.top or 20
  if math.type(top) ~= "integer" or top < 0 then error("exporter: top is a whole number >= 0", 2) end
  if opts.textfile then
    local why = textfile.check(opts.textfile)
    if why then error("exporter: " .. why, 2) end
  end
  local hunt = require "dropprobe.hunt"
  if opts.netns then
    local packets, why = hunt.packets_for{ packets = opts.ports }
    if not packets then error("exporter: netns labels need the packet of each drop: " .. why, 2) end
    if not hunt.has_device() then
      error("exporter: netns labels need the packet's device, and this kernel's BTF does not say where "
        .. "struct net_device keeps its namespace", 2)
    end
  end
  local server
  if opts.listen then
    local err
    server, err = http.open(opts.listen)
    if not server then error("exporter: " .. err, 2) end
  end
  local release = (util.readfile("/proc/sys/kernel/osrelease") or "?"):match("^%s*(.-)%s*$")
  local h <close> = hist.open{ keys = hist.default_keys(), where = opts.where }
  local state = { top = top, kept = {}, nkept = 0, other_seen = {} }
  local info = { version = opts.version or "?", release = release }
  -- per port where the kernel gives each drop's packet: counted in C by
  -- the packet's protocol and local port (and reason), read every tick; at
  -- most `top` ports, the rest "other" (a port keeps its series once it
  -- has one, so every counter only grows)
  local pkeys = hist.port_keys(opts.netns and { "netns" } or nil)
  -- as big a table as `ports` has: a port scan fills a small one (what a
  -- full table cannot count shows in dropprobe_events_lost_total)
  local ph <close> = hunt.packets_for{ packets = opts.ports }
    and hist.open{ keys = pkeys, size = require("dropprobe.recipes.ports").SIZE } or nil
  if ph then state.ports, state.ports_lost = {}, 0 end
  local nports, kept_ports = 0, {}
  local function drain()
    if not ph then return end
    local r = ph:read()
    local ports = {}
    for _, row in ipairs(r.rows) do -- most first: the busiest ports get the series
      if row.dport and (row.proto == "tcp" or row.proto == "udp") then
        local port = tostring(row.dport)
        local k = row.proto .. "/" .. port
        if not kept_ports[k] and nports < top then kept_ports[k], nports = true, nports + 1 end
        local reason = row.reason ~= nil and format.reason_label(row.reason) or ""
        local netns = opts.netns and row.netns and tostring(math.tointeger(row.netns) or row.netns) or ""
        local key = row.proto .. "/" .. (kept_ports[k] and port or "other") .. "/" .. netns .. "/" .. reason
        ports[key] = (ports[key] or 0) + row.hitcount
      end
    end
    state.ports = ports
    state.ports_lost = r.lost + r.dropped
  end
  local function publish()
    drain()
    local text = M.render(h:read(), state, info)
    if opts.textfile then
      local ok, err = textfile.write(opts.textfile, text)
      if not ok then io.stderr:write("dropprobe exporter: ", tostring(err), "\n") end
    end
  end
  publish()
  core.catch_hup()
  -- short ticks when something is served, or the packets are drained
  local tick = (server or ph) and math.min(interval, 0.2) or interval
  local last = core.now()
  local ok, why = pcall(h.run, h, { duration = opts.duration, idle = opts.idle, ready = opts.ready, tick = tick,
    on_tick = function(now)
    if core.hup() or now - last >= interval - 1e-3 then
      publish() -- a SIGHUP writes at once (the directory is opened anew on every write)
      last = now
    end
    drain()
    if server then server:serve(function() drain() return M.render(h:read(), state, info) end) end
  end })
  if ok then ok, why = pcall(publish) end
  if not ok then
    -- the instance went away under us (rmdir, tracefs unmounted): the
    -- textfile is written once more with the counts as last read, then
    -- the error ends the process
    if opts.textfile and h.last then
      pcall(drain)
      local done, err = textfile.write(opts.textfile, M.render(h.last, state, info))
      if not done then io.stderr:write("dropprobe exporter: ", tostring(err), "\n") end
    end
    if server then server:close() end
    error(why, 0)
  end
  if server then server:close() end
  return why
end

return M
