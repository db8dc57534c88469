-- The Prometheus exporter, checked with the real programs: node_exporter's
-- textfile collector and a Prometheus server scraping the exporter's own
-- endpoint, against the kernel's Udp NoPorts; promtool on every output.
local cjson = require "cjson"
local socket = require "socket"
local http = require "socket.http"
local dp = require "dropprobe"
local exporter = require "dropprobe.exporter"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local DP = run.DROPPROBE

local function free_tcp_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- dropprobe_drops_total{reason=...} per location in an exposition text
-- (in any label order: node_exporter sorts them), and their sum: UDP to a
-- closed port is NO_SOCKET, what Udp NoPorts counts. Where the kernel has
-- no drop reasons the series have no reason label, and every drop counts.
local function by_location(text, reason)
  local t, sum = {}, 0
  for labels, v in (text or ""):gmatch("dropprobe_drops_total{([^}]*)} ([%d.e+]+)") do
    if reason == nil and not labels:find("reason=", 1, true)
        or reason and labels:find('reason="' .. reason .. '"', 1, true) then
      local loc = labels:match('location="([^"]*)"') or "?"
      t[loc] = (t[loc] or 0) + tonumber(v)
      sum = sum + tonumber(v)
    end
  end
  return t, math.tointeger(sum) or sum
end

local function drops(text, reason)
  return select(2, by_location(text, reason))
end

-- how much the series of the location that grew most grew between two
-- texts: our datagrams' drops all fall at one place, whatever else the
-- machine drops meanwhile (a kernel without drop reasons counts all)
local function grown(first, last, reason)
  local a, b = by_location(first, reason), by_location(last, reason)
  local most = 0
  for loc, n in pairs(b) do most = math.max(most, n - (a[loc] or 0)) end
  return math.tointeger(most) or most
end

-- a JSON reply of Prometheus' API, or nil while it starts (a text error)
local function api(url)
  local body = http.request(url)
  local ok, j = pcall(cjson.decode, body or "")
  return ok and type(j) == "table" and j or nil
end

-- wait until f() is true (or t seconds), sleeping a little between tries
local function until_true(f, t)
  local deadline = socket.gettime() + (t or 30)
  repeat
    local v = f()
    if v then return v end
    socket.sleep(0.2)
  until socket.gettime() > deadline
  return nil
end

-- a background process of another program (node_exporter, prometheus)
local function daemon(cmd)
  local pidfile = os.tmpname()
  os.execute(("(%s > %s.log 2>&1 & echo $! > %s)"):format(cmd, pidfile, pidfile))
  local pid = tonumber(slurp(pidfile))
  return {
    stop = function()
      if pid then os.execute(("kill %d 2>/dev/null; sleep 0.3; kill -9 %d 2>/dev/null"):format(pid, pid)) end
      os.remove(pidfile)
      os.remove(pidfile .. ".log")
    end,
    log = function() return slurp(pidfile .. ".log") or "" end,
  }
end

local function promtool_ok(text)
  local f = os.tmpname()
  local h = io.open(f, "wb")
  h:write(text)
  h:close()
  local out, code = run.cmd("promtool check metrics < " .. f)
  os.remove(f)
  return code == 0, out
end

describe("15 exporter #proc", function()
  it("renders counters in the exposition format, a bounded number of locations", function()
    local st = { top = 1, kept = {}, nkept = 0, other_seen = {} }
    local r = { where = "c", lost = 0, dropped = 0, rows = {
      { reason = "NO_SOCKET", location = "__udp4_lib_rcv", hitcount = 5 },
      { reason = "NO_SOCKET", location = "tcp_v4_rcv", hitcount = 2 },
      { reason = 'we"ird', location = "x\\y", hitcount = 1 } } }
    local text = exporter.render(r, st, { version = "0.1.0", release = "6.1.0" })
    assert.truthy(text:find('dropprobe_drops_total{reason="NO_SOCKET",location="__udp4_lib_rcv"} 5', 1, true))
    assert.truthy(text:find('dropprobe_drops_total{reason="NO_SOCKET",location="other"} 2', 1, true))
    assert.truthy(text:find('reason="we\\"ird",location="other"} 1', 1, true))
    assert.truthy(text:find('dropprobe_kernel_info{release="6.1.0",counting="c"} 1', 1, true))
    local ok, out = promtool_ok(text)
    assert.is_true(ok, out)
    -- a location that ranks later keeps counting under "other": counters only grow
    r.rows[2].hitcount = 50
    text = exporter.render(r, st, { version = "0.1.0", release = "6.1.0" })
    assert.truthy(text:find('reason="NO_SOCKET",location="other"} 50', 1, true))
  end)

  it("renders series without a reason label where the kernel has no drop reasons", function()
    local st = { top = 5, kept = {}, nkept = 0, other_seen = {}, ports = { ["udp/9999//"] = 3 }, ports_lost = 0 }
    local r = { where = "c", lost = 0, dropped = 0, rows = {
      { location = "tcp_v4_rcv", hitcount = 2 } } }
    local text = exporter.render(r, st, { version = "0.1.0", release = "5.10.0" })
    assert.truthy(text:find('dropprobe_drops_total{location="tcp_v4_rcv"} 2', 1, true), text)
    assert.truthy(text:find('dropprobe_port_drops_total{proto="udp",port="9999"} 3', 1, true), text)
    assert.is_nil(text:find("reason=", 1, true))
    local ok, out = promtool_ok(text)
    assert.is_true(ok, out)
  end)

  it("passes promtool's rule check for the example alerts", function()
    local out, code = run.cmd("promtool check rules examples/dropprobe-alerts.yml")
    assert.are.equal(0, code, out)
  end)

  live_it("grows node_exporter's textfile counter by exactly the Udp NoPorts delta #live", function()
    local before = state.snapshot()
    local dir = tmpdir()
    local port = free_tcp_port()
    local ne = daemon(("prometheus-node-exporter --web.listen-address=127.0.0.1:%d "
      .. "--collector.disable-defaults --collector.textfile --collector.textfile.directory=%s"):format(port, dir))
    local h = run.bg(DP .. "exporter --interval 0.5 --duration 120 --textfile " .. dir)
    local NO_SOCKET = kernel.reason("NO_SOCKET")
    local ok, err = pcall(function()
      local url = ("http://127.0.0.1:%d/metrics"):format(port)
      local first = until_true(function()
        local body = http.request(url)
        return body and body:find("dropprobe_kernel_info", 1, true) and body
      end, 60)
      assert(first, "node_exporter never showed the exporter's file: " .. ne.log())
      local v0 = first
      local s0 = snmp.read()
      local dport = net.free_udp_port()
      net.udp_closed(dport, 40)
      -- counted once the kernel has received them (under load, ksoftirqd does it a moment later)
      local delta = snmp.settled(s0, "Udp.NoPorts", 40)
      -- per port where the kernel gives each drop's packet (kprobes)
      local function port_drops(body)
        for labels, v in (body or ""):gmatch("dropprobe_port_drops_total{([^}]*)} (%d+)") do
          if labels:find('port="' .. dport .. '"', 1, true) and labels:find('proto="udp"', 1, true)
              and (NO_SOCKET == nil and not labels:find("reason=", 1, true)
                or NO_SOCKET and labels:find('reason="' .. NO_SOCKET .. '"', 1, true)) then
            return tonumber(v)
          end
        end
      end
      local kprobes = dp.features().kprobes
      local last = until_true(function()
        local body = http.request(url)
        return body and grown(v0, body, NO_SOCKET) >= delta
          and (not kprobes or (port_drops(body) or 0) >= delta) and body
      end, 30)
      assert.are.equal(40, delta)
      assert.are.equal(delta, grown(v0, last, NO_SOCKET))
      local per_port = port_drops(last)
      if kprobes then
        assert.are.equal(delta, per_port)
      else
        assert.is_nil(last:find("dropprobe_port_drops_total", 1, true))
      end
      local good, out = promtool_ok(slurp(dir .. "/dropprobe.prom"))
      assert.is_true(good, out)
    end)
    h.signal("TERM")
    local _, rc = h.wait()
    ne.stop()
    os.execute("rm -rf " .. dir)
    assert(ok, err)
    assert.are.equal(143, rc)
    state.assert_same(before)
  end)

  live_it("gives Prometheus' query API exactly the Udp NoPorts delta between two scrapes #live", function()
    local before = state.snapshot()
    local ep, pp = free_tcp_port(), free_tcp_port()
    local data = tmpdir()
    local cfg = data .. "/prometheus.yml"
    local f = io.open(cfg, "wb")
    f:write(("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dropprobe\n"
      .. "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"):format(ep))
    f:close()
    local h = run.bg(DP .. ("exporter --listen 127.0.0.1:%d --duration 90"):format(ep))
    local prom = daemon(("prometheus --config.file=%s --storage.tsdb.path=%s/tsdb "
      .. "--web.listen-address=127.0.0.1:%d"):format(cfg, data, pp))
    local ok, err = pcall(function()
      local function query()
        -- sum by (location) (dropprobe_drops_total{reason="NO_SOCKET"}),
        -- URL-encoded; every series where the kernel has no drop reasons
        local selector = kernel.reason("NO_SOCKET") and "%7Breason%3D%22NO_SOCKET%22%7D" or ""
        local j = api(("http://127.0.0.1:%d/api/v1/query?query=sum%%20by%%20(location)%%20"
          .. "(dropprobe_drops_total%s)"):format(pp, selector))
        if not j then return nil end
        local t = {}
        for _, r in ipairs(j.data and j.data.result or {}) do
          t[r.metric.location or "?"] = tonumber(r.value[2])
        end
        return t
      end
      -- the growth of the location that grew most: our drops fall at one place
      local function most(a, b)
        local m = 0
        for loc, n in pairs(b) do m = math.max(m, n - (a[loc] or 0)) end
        return m
      end
      local function scraped() -- a scrape newer than now
        local t = socket.gettime()
        return until_true(function()
          local j = api(("http://127.0.0.1:%d/api/v1/query?query=timestamp(dropprobe_build_info)"):format(pp))
          local r = j and j.data and j.data.result and j.data.result[1]
          return r and tonumber(r.value[2]) > t + 0.1
        end, 60)
      end
      assert(scraped(), "Prometheus never scraped the exporter: " .. prom.log())
      local v0 = query() or {}
      local s0 = snmp.read()
      net.udp_closed(net.free_udp_port(), 30)
      local sent = snmp.settled(s0, "Udp.NoPorts", 30)
      assert(scraped(), "no scrape after the drops")
      assert(scraped(), "no second scrape after the drops")
      local v1 = query() or {}
      assert.are.equal(30, sent)
      assert.are.equal(sent, most(v0, v1))
      local body = http.request(("http://127.0.0.1:%d/metrics"):format(ep))
      local good, out = promtool_ok(body)
      assert.is_true(good, out)
      local _, code = http.request(("http://127.0.0.1:%d/other"):format(ep))
      assert.are.equal(404, code)
    end)
    prom.stop()
    h.signal("INT")
    local _, rc = h.wait()
    os.execute("rm -rf " .. data)
    assert(ok, err)
    assert.are.equal(130, rc)
    state.assert_same(before)
  end)

  live_it("refuses a bad directory, a port in use and a malformed address, exit 2, nothing left #live", function()
    local before = state.snapshot()
    local out, code = run.cmd(DP .. "exporter --textfile /nonexistent/dropprobe-dir --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("cannot write into the textfile directory", 1, true), out)
    local busy = assert(socket.bind("127.0.0.1", 0))
    local _, port = busy:getsockname()
    out, code = run.cmd(DP .. "exporter --listen 127.0.0.1:" .. port .. " --duration 1")
    busy:close()
    assert.are.equal(2, code)
    assert.truthy(out:find("cannot listen on", 1, true), out)
    out, code = run.cmd(DP .. "exporter --listen 'nonsense:port' --duration 1")
    assert.are.equal(2, code)
    assert.truthy(out:find("bad listen address", 1, true), out)
    state.assert_same(before)
  end)

  live_it("starts again at 0 when restarted, nothing left from the last run #live", function()
    local before = state.snapshot()
    local dir = tmpdir()
    local out, code = run.cmd(DP .. "exporter --interval 0.3 --duration 1.5 --textfile " .. dir)
    assert.are.equal(0, code, out)
    state.assert_same(before)
    local h = run.bg(DP .. "exporter --interval 0.3 --duration 6 --textfile " .. dir)
    h.ready()
    local port = net.free_udp_port()
    net.udp_closed(port, 12)
    local _, rc = h.wait()
    assert.are.equal(0, rc)
    local NO_SOCKET = kernel.reason("NO_SOCKET")
    local first = drops(slurp(dir .. "/dropprobe.prom"), NO_SOCKET)
    assert.is_true(first >= 12)
    -- a new process counts from 0: the last file's 12+ are not carried over
    out = run.cmd(DP .. "exporter --interval 0.3 --duration 1.5 --textfile " .. dir)
    assert.is_true(drops(slurp(dir .. "/dropprobe.prom"), NO_SOCKET) < first, out)
    os.execute("rm -rf " .. dir)
    state.assert_same(before)
  end)
end)
