-- The exporter's endpoint against clients that misbehave: every bound of
-- dropprobe.exporter.server driven directly over loopback (no tracefs),
-- then the real exporter process under a slow client and a flooding one,
-- scraped once a second meanwhile, its textfile on schedule, its memory
-- flat and its counts equal to the kernel's Udp NoPorts.
local socket = require "socket"
local server = require "dropprobe.exporter.server"
local live = require "helpers.live"
local state = require "helpers.tracefs_state"
local snmp = require "helpers.snmp"
local net = require "helpers.net"
local kernel = require "helpers.kernel"
local run = require "helpers.run"
local live_it = live.bind(it, pending)

local function free_tcp_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function parse(raw)
  local status = tonumber(raw:match("^HTTP/1%.0 (%d+) "))
  local head, body = raw:match("^(.-\r\n)\r\n(.*)$")
  return status, head or "", body or ""
end

-- a server on a free port of 127.0.0.1, its port, and a metrics function
-- that counts its calls
local function open(limits)
  local port = free_tcp_port()
  local srv = assert(server.open("127.0.0.1:" .. port, limits))
  local calls = { n = 0 }
  local function metrics()
    calls.n = calls.n + 1
    return "up 1\n"
  end
  return srv, port, metrics, calls
end

local function connect(port, request)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(0)
  if request then assert(c:send(request)) end
  return c
end

-- serve until the client c has its whole reply (the server closed); the
-- status, head, body, the serve calls it took and the seconds
local function reply(srv, metrics, c, t)
  local got, calls, t0 = {}, 0, socket.gettime()
  repeat
    srv:serve(metrics)
    calls = calls + 1
    local data, err, partial = c:receive(65536)
    got[#got + 1] = data or partial
    if err and err ~= "timeout" then break end
    socket.sleep(0.002)
  until socket.gettime() - t0 > (t or 5)
  c:close()
  local status, head, body = parse(table.concat(got))
  return status, head, body, calls, socket.gettime() - t0
end

local function exchange(srv, metrics, port, request)
  return reply(srv, metrics, connect(port, request))
end

describe("19 exporter clients #proc", function()
  it("answers GET /metrics with 200, HTTP/1.0, Content-Length and Connection: close; HEAD without a body", function()
    local srv, port, metrics, calls = open()
    local status, head, body = exchange(srv, metrics, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(200, status)
    assert.are.equal("up 1\n", body)
    assert.truthy(head:find("\r\nContent-Length: 5\r\n", 1, true), head)
    assert.truthy(head:find("\r\nConnection: close\r\n", 1, true), head)
    assert.truthy(head:find("\r\nContent-Type: text/plain; version=0.0.4", 1, true), head)
    status, head, body = exchange(srv, metrics, port, "HEAD /metrics HTTP/1.0\r\n\r\n")
    assert.are.equal(200, status)
    assert.are.equal("", body)
    assert.truthy(head:find("\r\nContent-Length: 5\r\n", 1, true), head)
    status = exchange(srv, metrics, port, "GET /other HTTP/1.0\r\n\r\n")
    assert.are.equal(404, status)
    assert.are.equal(2, calls.n) -- the 404 rendered nothing
    srv:close()
  end)

  it("renders the metrics once per call however many clients ask", function()
    local srv, port, metrics, calls = open()
    local a = connect(port, "GET /metrics HTTP/1.0\r\n\r\n")
    local b = connect(port, "GET /metrics HTTP/1.0\r\n\r\n")
    socket.sleep(0.05)
    srv:serve(metrics)
    assert.are.equal(1, calls.n)
    assert.are.equal(200, (reply(srv, metrics, a)))
    assert.are.equal(200, (reply(srv, metrics, b)))
    assert.are.equal(1, calls.n)
    srv:close()
  end)

  it("answers 400 to a bad request line or header, 405 to another method", function()
    local srv, port, metrics, calls = open()
    assert.are.equal(400, (exchange(srv, metrics, port, "hello there\r\n\r\n")))
    assert.are.equal(400, (exchange(srv, metrics, port, "GET /metrics\r\n\r\n")))
    assert.are.equal(400, (exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\nno colon here\r\n\r\n")))
    local status, head = exchange(srv, metrics, port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    assert.are.equal(405, status)
    assert.truthy(head:find("\r\nAllow: GET, HEAD\r\n", 1, true), head)
    assert.are.equal(0, calls.n)
    srv:serve(metrics) -- the last one's close seen: nothing held
    local st = srv:stats()
    assert.are.same({ [400] = 3, [405] = 1 }, st.answered)
    assert.are.equal(0, st.clients)
    srv:close()
  end)

  it("answers 414 to a request line and 431 to a header line longer than 8 KiB, 431 to 101 headers", function()
    local srv, port, metrics = open()
    local line = server.LIMITS.line
    assert.are.equal(8192, line)
    local long = "GET /metrics?" .. ("a"):rep(line) .. " HTTP/1.0\r\n\r\n"
    assert.are.equal(414, (exchange(srv, metrics, port, long)))
    local function header(n) return "X-Long: " .. ("b"):rep(n - 8) .. "\r\n" end
    -- a header line of exactly 8 KiB is taken, one byte more is not
    assert.are.equal(200, (exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\n" .. header(line) .. "\r\n")))
    assert.are.equal(431, (exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\n" .. header(line + 1) .. "\r\n")))
    -- unterminated: answered once it passes the bound, not when it ends
    assert.are.equal(431, (exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\nX: " .. ("c"):rep(3 * line))))
    local hundred = ("X-H: 1\r\n"):rep(100)
    assert.are.equal(200, (exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\n" .. hundred .. "\r\n")))
    local status, _, body = exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\n" .. hundred .. "X-H: 1\r\n\r\n")
    assert.are.equal(431, status)
    assert.are.equal("at most 100 header lines\n", body)
    srv:close()
  end)

  it("reads at most `read` bytes of one client per call", function()
    local srv, port, metrics = open{ line = 65536, read = 4096 }
    local c = connect(port, "GET /metrics?" .. ("a"):rep(40000) .. " HTTP/1.0\r\n\r\n")
    socket.sleep(0.05) -- all of it is in the server's socket before the first call
    local status, _, _, calls = reply(srv, metrics, c)
    assert.are.equal(200, status)
    assert.is_true(calls >= 10, "answered after " .. calls .. " calls")
    srv:close()
  end)

  it("stops taking on clients after its time budget, and starts with the next ones on the next call", function()
    local srv, port, metrics = open{ budget = 1e-9 }
    local cs = {}
    for i = 1, 3 do cs[i] = connect(port, "GET /metrics HTTP/1.0\r\n\r\n") end
    socket.sleep(0.05)
    for n = 1, 3 do
      srv:serve(metrics)
      assert.are.equal(n, srv:stats().answered[200])
    end
    for i = 1, 3 do assert.are.equal(200, (reply(srv, metrics, cs[i]))) end
    srv:close()
  end)

  it("answers 503 beyond 64 connections at once, and still serves the ones it holds", function()
    local srv, port, metrics = open()
    local held = {}
    for i = 1, 64 do held[i] = connect(port) end
    socket.sleep(0.05)
    srv:serve(metrics)
    assert.are.equal(64, srv:stats().clients)
    local t0 = socket.gettime()
    local status, _, body = exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\n\r\n")
    assert.are.equal(503, status)
    assert.are.equal("more than 64 connections at once\n", body)
    assert.is_true(socket.gettime() - t0 < 1)
    assert.are.equal(64, srv:stats().clients)
    assert(held[1]:send("GET /metrics HTTP/1.0\r\n\r\n"))
    assert.are.equal(200, (reply(srv, metrics, held[1])))
    for i = 2, 64 do held[i]:close() end
    srv:close()
  end)

  it("answers 408 to a client too slow for the timeout, while another is served at once", function()
    local srv, port, metrics = open{ timeout = 0.5 }
    local slow = connect(port, "GET /metrics HTTP/1.0\r\nX-Slow: ")
    socket.sleep(0.05)
    srv:serve(metrics)
    local status, _, _, _, took = exchange(srv, metrics, port, "GET /metrics HTTP/1.0\r\n\r\n")
    assert.are.equal(200, status)
    assert.is_true(took < 0.2, took)
    local status2, _, body, _, waited = reply(srv, metrics, slow)
    assert.are.equal(408, status2)
    assert.are.equal("the request took more than 0.5 s\n", body)
    assert.is_true(waited > 0.3 and waited < 1, waited)
    srv:close()
  end)

  it("refuses bad limits and a bad address before anything is bound", function()
    local port = free_tcp_port()
    assert.has_error(function() server.open("127.0.0.1:" .. port, { clients = 0 }) end,
      "server.open: clients must be a whole number > 0, got 0")
    assert.has_error(function() server.open("127.0.0.1:" .. port, { timeout = "5" }) end,
      "server.open: timeout must be a number > 0, got 5")
    assert.has_error(function() server.open("127.0.0.1:" .. port, { bogus = 1 }) end,
      "server.open: unknown option 'bogus' (allowed: timeout, line, headers, read, clients, budget, linger)")
    local srv, err = server.open("nonsense:port")
    assert.is_nil(srv)
    assert.are.equal('bad listen address "nonsense:port" (ADDR:PORT, [v6]:PORT or :PORT)', err)
    -- nothing was left listening on the port
    local s = assert(socket.bind("127.0.0.1", port))
    s:close()
    srv = assert(server.open("127.0.0.1:" .. port))
    srv:close()
    srv:close()
    assert.has_error(function() srv:serve(function() return "" end) end, "server:serve: the server is closed")
  end)
end)

-- the misbehaving clients, each a process of its own (lua5.4 + luasocket):
-- it prints one line saying what it got
local SLOW = [[
-- GET /metrics HTTP/1.0, then one header byte every 0.5 s, for SECONDS;
-- connecting again whenever the server closes: each connection's status
-- and how long it lasted
local socket = require "socket"
local host, port, secs = arg[1], tonumber(arg[2]), tonumber(arg[3])
local t0, out = socket.gettime(), {}
while socket.gettime() - t0 < secs do
  local c = assert(socket.connect(host, port))
  c:settimeout(0)
  local start, got, nexts = socket.gettime(), {}, socket.gettime()
  c:send("GET /metrics HTTP/1.0\r\n")
  while socket.gettime() - t0 < secs do
    if socket.gettime() >= nexts then c:send("X") nexts = nexts + 0.5 end
    local data, err, partial = c:receive(4096)
    got[#got + 1] = data or partial
    if err and err ~= "timeout" then break end
    socket.sleep(0.02)
  end
  c:close()
  local status = table.concat(got):match("^HTTP/1%.0 (%d+)") or "none"
  out[#out + 1] = ("%s/%.2f"):format(status, socket.gettime() - start)
end
print("slow " .. table.concat(out, " "))
]]

local FLOOD = [[
-- BYTES without a newline, as fast as the server takes them, for at most
-- SECONDS, connecting again whenever the server closes: the bytes sent and
-- each connection's status
local socket = require "socket"
local host, port, total, secs = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
local chunk, partial = ("a"):rep(65536), nil
local t0, sent, out = socket.gettime(), 0, {}
while sent < total and socket.gettime() - t0 < secs do
  local c = assert(socket.connect(host, port))
  c:settimeout(0.5)
  local _, err, last = c:send("GET /")
  while not err and sent < total and socket.gettime() - t0 < secs do
    last, err, partial = c:send(chunk)
    sent = sent + (last or partial or 0)
    if err == "timeout" then err = nil end
  end
  c:settimeout(0.5)
  local data, _, partial = c:receive("*a")
  c:close()
  out[#out + 1] = ((data or partial or ""):match("^HTTP/1%.0 (%d+)") or "none")
end
print(("flood %d %s"):format(sent, table.concat(out, " ")))
]]

local function script(dir, name, text)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(text)
  f:close()
  return dir .. "/" .. name
end

-- one scrape with a raw socket, every step bounded by t seconds: status,
-- body, seconds taken
local function scrape(port, t)
  local t0 = socket.gettime()
  local c = socket.tcp()
  c:settimeout(t)
  local raw = ""
  if c:connect("127.0.0.1", port) and c:send("GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n") then
    local data, _, partial = c:receive("*a")
    raw = data or partial or ""
  end
  c:close()
  local status, _, body = parse(raw)
  return status, body, socket.gettime() - t0
end

local function rss_kb(pid)
  return tonumber((slurp(("/proc/%d/status"):format(pid)) or ""):match("VmRSS:%s*(%d+) kB"))
end

-- dropprobe_drops_total of one reason (every series where the kernel has
-- no drop reasons) per location
local function by_location(text, reason)
  local t = {}
  for labels, v in (text or ""):gmatch("dropprobe_drops_total{([^}]*)} ([%d.e+]+)") do
    if reason == nil and not labels:find("reason=", 1, true)
        or reason and labels:find('reason="' .. reason .. '"', 1, true) then
      local loc = labels:match('location="([^"]*)"') or "?"
      t[loc] = (t[loc] or 0) + tonumber(v)
    end
  end
  return t
end

describe("19 exporter clients, live #proc", function()
  live_it("keeps scraping, the textfile and the counts going under a slow and a flooding client #live", function()
    local before = state.snapshot()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local port = free_tcp_port()
    local NO_SOCKET = kernel.reason("NO_SOCKET")
    local h = run.bg(run.DROPPROBE .. ("exporter --listen 127.0.0.1:%d --textfile %s --interval 1 --duration 90")
      :format(port, dir))
    local kids = {}
    local ok, err = pcall(function()
      -- serving: a scrape that shows the counters
      local t0 = socket.gettime()
      local body
      repeat
        local status
        status, body = scrape(port, 2)
        if status ~= 200 then socket.sleep(0.2) end
      until status == 200 or socket.gettime() - t0 > 90
      assert(body and body:find("dropprobe_kernel_info", 1, true), "the exporter never served its metrics")
      assert.are.equal("lua5.4", (slurp(("/proc/%d/comm"):format(h.pid)) or ""):match("%S+"))
      -- where this kernel counts UDP to a closed port: the location that
      -- grows by what we send while nothing else runs
      local function location()
        local v0 = by_location(select(2, scrape(port, 2)), NO_SOCKET)
        local s0 = snmp.read()
        net.udp_closed(net.free_udp_port(), 10)
        local want = snmp.settled(s0, "Udp.NoPorts", 10)
        local t1 = socket.gettime()
        repeat
          socket.sleep(0.3)
          for loc, n in pairs(by_location(select(2, scrape(port, 2)), NO_SOCKET)) do
            if n - (v0[loc] or 0) == want then return loc end
          end
        until socket.gettime() - t1 > 10
        error("no location grew by the " .. want .. " NoPorts drops")
      end
      local loc = location()
      local rss0 = rss_kb(h.pid)
      local v0 = by_location(select(2, scrape(port, 2)), NO_SOCKET)[loc] or 0
      local s0 = snmp.read()
      -- the textfile's writes (mtime), the slow client and the flooder
      local prom = dir .. "/dropprobe.prom"
      local stop = dir .. "/stop"
      kids.stat = run.bg(("while [ ! -e %s ]; do stat -c %%.9Y %s; sleep 0.05; done"):format(stop, prom))
      kids.slow = run.bg(("lua5.4 %s 127.0.0.1 %d 20"):format(script(dir, "slow.lua", SLOW), port))
      kids.flood = run.bg(("lua5.4 %s 127.0.0.1 %d %d 20"):format(script(dir, "flood.lua", FLOOD), port, 100 * 2 ^ 20))
      -- a scrape a second for 20 s, 10 drops at 5, 10 and 15 s
      local start, scrapes = socket.gettime(), {}
      for i = 1, 20 do
        local status, text, took = scrape(port, 2)
        scrapes[#scrapes + 1] = { status = status, took = took, ok = text:find("dropprobe_kernel_info", 1, true) }
        if i % 5 == 0 and i < 20 then net.udp_closed(net.free_udp_port(), 10) end
        socket.sleep(math.max(0, start + i - socket.gettime()))
      end
      local slow_out = kids.slow.wait(10)
      local flood_out = kids.flood.wait(10)
      io.open(stop, "wb"):close()
      local stat_out = kids.stat.wait(5)
      kids = {}
      local s1 = snmp.read()
      local rss1 = rss_kb(h.pid)
      -- every scrape answered, with the metrics, within 2 s
      for i, s in ipairs(scrapes) do
        assert(s.status == 200 and s.ok and s.took < 2,
          ("scrape %d: status %s after %.2f s"):format(i, tostring(s.status), s.took))
      end
      -- the slow client was cut off at the timeout (5 s), every time
      local slow = assert(slow_out:match("slow ([^\n]*)"), slow_out)
      local n = 0
      for status, secs in slow:gmatch("(%w+)/([%d.]+) ") do -- the last one ended with the client's 20 s
        n = n + 1
        assert(status == "408" and tonumber(secs) >= 4.8 and tonumber(secs) < 6.5, "slow client: " .. slow)
      end
      assert.is_true(n >= 3, "slow client: " .. slow)
      -- the flooder was answered 414 and closed, again and again
      local sent, statuses = flood_out:match("flood (%d+) ([^\n]*)")
      assert(sent, flood_out)
      local n414 = select(2, statuses:gsub("414", ""))
      assert.is_true(n414 >= 3, "flooder: " .. flood_out)
      assert.is_true(tonumber(sent) > 5 * 2 ^ 20, "flooder: " .. flood_out)
      -- the textfile rewritten every second, never a gap of 2.5 s
      local times, seen = {}, {}
      for t in stat_out:gmatch("[%d.]+") do
        if not seen[t] then seen[t] = true times[#times + 1] = tonumber(t) end
      end
      table.sort(times)
      assert.is_true(#times >= 18, ("%d textfile writes in 20 s"):format(#times))
      for i = 2, #times do
        assert.is_true(times[i] - times[i - 1] < 2.5, ("textfile gap %.2f s"):format(times[i] - times[i - 1]))
      end
      -- memory flat
      assert.is_true(rss1 - rss0 < 5 * 1024, ("VmRSS grew from %d to %d kB"):format(rss0, rss1))
      -- the drops made meanwhile, counted
      local delta = snmp.delta(s0, s1, "Udp.NoPorts")
      assert.is_true(delta >= 30)
      local v1
      local t1 = socket.gettime()
      repeat
        v1 = by_location(select(2, scrape(port, 2)), NO_SOCKET)[loc] or 0
        if v1 - v0 < delta then socket.sleep(0.3) end
      until v1 - v0 >= delta or socket.gettime() - t1 > 10
      assert.are.equal(delta, v1 - v0)
    end)
    for _, k in pairs(kids) do
      k.signal("KILL")
      k.wait(5)
    end
    h.signal("TERM")
    local _, rc, stderr = h.wait()
    os.execute("rm -rf " .. dir)
    assert(ok, err)
    assert.are.equal(143, rc, stderr)
    state.assert_same(before)
  end)
end)
