--- The exporter's own endpoint: `GET /metrics` over HTTP/1.0, served
-- without ever blocking the loop that calls it.
--
-- The exporter's counting loop calls `Server:serve` on every tick (0.2 s);
-- where the kernel has no hist triggers that loop also reads the ring
-- buffers, and it writes the textfile. So serving must never wait on a
-- client: every socket is non-blocking, each client is a small state
-- machine (request line, headers, response, a short lingering close)
-- advanced by whatever the socket has or takes at that moment, and one
-- `serve` call does a bounded amount of work whatever the clients do:
--
-- * each connection has `timeout` seconds (default 5) for its request and
--   response together, then gets 408 (or is closed while writing);
-- * the request line and each header line are at most `line` bytes
--   (default 8192: 414, 431 beyond), at most `headers` header lines (100:
--   431); the request is read in chunks into a buffer of at most `line`
--   bytes plus one chunk, never a whole unterminated line;
-- * at most `read` bytes (16384) are read from one client per call, so a
--   fast sender cannot fill a tick; at most `clients` connections (64) are
--   held at once, one more gets 503 and is closed at once; a call stops
--   taking on clients after `budget` seconds (0.05) and starts with the
--   next ones on the following call;
-- * only `GET` and `HEAD` (405 otherwise), only `/metrics` (404); the
--   responses are HTTP/1.0 with Content-Length and `Connection: close`;
--   the metrics are rendered at most once per call, only when asked for.
--
-- After its response a connection is shut for writing and what the client
-- still sends is read and dropped for at most `linger` seconds (1): closing
-- a socket with unread data makes the kernel send a reset, which can
-- reach the client before it read an error response.
--
-- Why luasocket's `socket.select` and not copas (or a poll binding):
-- luasocket is already the exporter's dependency, copas would be a new one
-- and brings a coroutine scheduler of its own that would have to be driven
-- from the counting loop anyway, and the number of sockets is bounded
-- (`clients` + 1), far below select's FD_SETSIZE. Every socket is
-- non-blocking, so `select` (with a zero timeout) only says which sockets
-- are worth a system call; should it fail (a descriptor above FD_SETSIZE
-- in a process with many per-CPU buffers open) every socket is simply
-- tried.
-- @module dropprobe.exporter.server
local socket = require "socket"
local core = require "dropprobe.core"
local util = require "dropprobe.util"

local M = {}
local fmt = string.format

--- The default bounds (see the module's description); `open` takes any
-- of them in its `limits` table.
-- @table LIMITS
M.LIMITS = { timeout = 5, line = 8192, headers = 100, read = 16384, clients = 64, budget = 0.05,
  linger = 1 }

local INTEGERS = { line = true, headers = true, read = true, clients = true }
local NAMES = { "timeout", "line", "headers", "read", "clients", "budget", "linger" }

local REASONS = {
  [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [414] = "URI Too Long", [431] = "Request Header Fields Too Large",
  [503] = "Service Unavailable",
}

local METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
local CHUNK = 4096 -- bytes asked of a socket at a time

--- An address to listen on: "127.0.0.1:9101", "[::1]:9101", ":9101"
-- (127.0.0.1).
-- @tparam string s
-- @return host and port, or nil
function M.parse_listen(s)
  if type(s) ~= "string" then return nil end
  local host, port = s:match("^%[([%x:]+)%]:(%d+)$")
  if not host then host, port = s:match("^([%w.%-]*):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host ~= "" and host or "127.0.0.1", port
end

-- a whole response; extra headers as one string ending in CRLF
local function response(status, body, ctype, extra, head)
  return fmt("HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n%s",
    status, REASONS[status], ctype, #body, extra or "", head and "" or body)
end

local function plain(status, text, extra)
  return response(status, text .. "\n", "text/plain; charset=utf-8", extra)
end

local Server = {}
Server.__index = Server

--- Listen on an address (`parse_listen`), non-blocking.
-- @tparam string listen
-- @tparam[opt] table limits any of `LIMITS`' bounds: `timeout`, `budget`,
-- `linger` (seconds, > 0), `line`, `headers`, `read`, `clients` (whole
-- numbers > 0)
-- @treturn Server the server, or nil and why (a bad address, a port in use)
-- @raise bad limits, before anything is bound
-- @usage local srv = assert(server.open("127.0.0.1:9101"))
-- while true do srv:serve(function() return "up 1\n" end) socket.sleep(0.2) end
function M.open(listen, limits)
  limits = util.check_options(limits, NAMES, "server.open")
  local lim = {}
  for _, k in ipairs(NAMES) do
    local v = limits[k]
    if v == nil then v = M.LIMITS[k] end
    if type(v) ~= "number" or v <= 0 or v ~= v or v == math.huge
        or INTEGERS[k] and math.type(v) ~= "integer" then
      error(fmt("server.open: %s must be a %s > 0, got %s", k, INTEGERS[k] and "whole number" or "number",
        tostring(v)), 2)
    end
    lim[k] = v
  end
  local host, port = M.parse_listen(listen)
  if not host then
    return nil, fmt("bad listen address %q (ADDR:PORT, [v6]:PORT or :PORT)", tostring(listen))
  end
  local sock, err = socket.bind(host, port, 128)
  if not sock then return nil, fmt("cannot listen on %s: %s", listen, err) end
  sock:settimeout(0)
  local busy = plain(503, fmt("more than %d connections at once", lim.clients), "Retry-After: 1\r\n")
  return setmetatable({ sock = sock, lim = lim, clients = {}, next = 1, listen = listen,
    counts = {}, busy = busy }, Server)
end

-- drop a connection
local function drop(self, c)
  if not c.closed then
    c.closed = true
    c.sock:close()
  end
  self.dirty = true
end

-- queue a response: it is written from now on, the request is read no more
local function respond(self, c, status, text, now)
  c.state, c.out, c.sent = "write", text, 0
  c.buf = nil
  self.counts[status] = (self.counts[status] or 0) + 1
  if status == 408 then c.deadline = now + self.lim.linger end -- time to write the 408
end

-- a complete request: the answer to it
local function answer(self, c, metrics, now)
  local head = c.method == "HEAD"
  if c.method ~= "GET" and not head then
    return respond(self, c, 405, plain(405, "only GET (and HEAD) /metrics", "Allow: GET, HEAD\r\n"), now)
  end
  local path = c.target:match("^([^?#]*)")
  if path ~= "/metrics" then return respond(self, c, 404, plain(404, "not found: try /metrics"), now) end
  return respond(self, c, 200, response(200, metrics(), METRICS_TYPE, nil, head), now)
end

-- one line of the request (without its line end)
local function line_in(self, c, line, metrics, now)
  local lim = self.lim
  if c.state == "line" then
    if line == "" and not c.blank then c.blank = true return end -- one empty line before it is allowed
    local method, target = line:match("^([%w!#$%%&'*+.^_`|~-]+) (%S+) HTTP/1%.%d$")
    if not method then return respond(self, c, 400, plain(400, "bad request line"), now) end
    c.method, c.target, c.state, c.nheaders = method, target, "headers", 0
    return
  end
  if line == "" then return answer(self, c, metrics, now) end
  c.nheaders = c.nheaders + 1
  if c.nheaders > lim.headers then
    return respond(self, c, 431, plain(431, fmt("at most %d header lines", lim.headers)), now)
  end
  if not line:find("^[^%s:]+:") then return respond(self, c, 400, plain(400, "bad header line"), now) end
end

-- what came from a client while its request is read: whole lines taken,
-- an unterminated one bounded
local function data_in(self, c, data, metrics, now)
  local lim = self.lim
  c.buf = c.buf .. data
  while c.state == "line" or c.state == "headers" do
    local nl = c.buf:find("\n", 1, true)
    local len = (nl or #c.buf + 1) - 1
    if nl and len > 0 and c.buf:byte(len) == 13 then len = len - 1 end
    if len > lim.line then
      if c.state == "line" then
        return respond(self, c, 414, plain(414, fmt("the request line is longer than %d bytes", lim.line)), now)
      end
      return respond(self, c, 431, plain(431, fmt("a header line is longer than %d bytes", lim.line)), now)
    end
    if not nl then return end
    local line = c.buf:sub(1, len)
    c.buf = c.buf:sub(nl + 1)
    line_in(self, c, line, metrics, now)
  end
end

-- read what a client has, at most lim.read bytes; "closed" when it closed
local function read(self, c, metrics, now)
  local got = 0
  while got < self.lim.read and not c.closed do
    local data, err, partial = c.sock:receive(math.min(CHUNK, self.lim.read - got))
    data = data or partial
    if data and #data > 0 then
      got = got + #data
      if c.state == "line" or c.state == "headers" then data_in(self, c, data, metrics, now) end
      -- a response queued meanwhile: what follows is dropped (lingering)
    end
    if err then return err end
  end
end

-- write what the socket takes of the response; then shut it for writing
local function write(self, c, now)
  local last, err, partial = c.sock:send(c.out, c.sent + 1)
  c.sent = last or partial or c.sent
  if err and err ~= "timeout" then return drop(self, c) end
  if c.sent >= #c.out then
    c.sock:shutdown("send")
    c.state, c.out, c.deadline = "linger", nil, now + self.lim.linger
  end
end

-- one client's turn: at most lim.read bytes read, the response written as
-- far as the socket takes it, the deadline kept
local function step(self, c, readable, writable, metrics, now)
  if (c.state == "line" or c.state == "headers") and now >= c.deadline then
    respond(self, c, 408, plain(408, fmt("the request took more than %g s", self.lim.timeout)), now)
    writable = true
  end
  if c.state ~= "write" and readable then
    local err = read(self, c, metrics, now)
    if err == "closed" or err and err ~= "timeout" then
      -- the client is gone (or shut its side: no request will come now)
      if c.state ~= "write" then return drop(self, c) end
    end
    if c.state == "write" then writable = true end
  end
  if c.state == "write" and writable then write(self, c, now) end
  if not c.closed and c.state ~= "line" and c.state ~= "headers" and now >= c.deadline then
    drop(self, c) -- a response not taken in time, or the lingering over
  end
end

-- new connections, as many as are waiting (at most lim.clients per call):
-- each held, or answered 503 and closed when lim.clients are held
local function accept(self, now)
  for _ = 1, self.lim.clients do
    local s = self.sock:accept()
    if not s then return end
    s:settimeout(0)
    if #self.clients >= self.lim.clients then
      s:send(self.busy)
      s:close()
      self.counts[503] = (self.counts[503] or 0) + 1
    else
      self.clients[#self.clients + 1] = { sock = s, state = "line", buf = "", deadline = now + self.lim.timeout }
    end
  end
end

--- Serve the connections: accept the waiting ones, then advance each
-- client as far as its socket allows without waiting. Returns after a
-- bounded amount of work, whatever the clients do.
-- @function Server:serve
-- @tparam function metrics returns the metrics text (called at most once
-- per call, only when a client asks for /metrics)
-- @raise on a closed server
function Server:serve(metrics)
  if self.closed then error("server:serve: the server is closed", 2) end
  local t0 = core.now()
  local text
  local function render()
    if not text then text = metrics() end
    return text
  end
  accept(self, t0)
  local n = #self.clients
  if n == 0 then return end
  local rset, wset = {}, {}
  for _, c in ipairs(self.clients) do
    if c.state == "write" then wset[#wset + 1] = c.sock else rset[#rset + 1] = c.sock end
  end
  local ok, r, w = pcall(socket.select, rset, wset, 0)
  if not ok then r, w = nil, nil end -- every socket is tried: they never block
  local start = self.next <= n and self.next or 1
  for i = 0, n - 1 do
    local c = self.clients[(start + i - 1) % n + 1]
    local now = core.now()
    if i > 0 and now - t0 > self.lim.budget then -- at least one a call
      self.next = (start + i - 1) % n + 1 -- these first on the next call
      break
    end
    step(self, c, not r or r[c.sock], not w or w[c.sock], render, now)
  end
  if self.dirty then
    local kept = {}
    for _, c in ipairs(self.clients) do if not c.closed then kept[#kept + 1] = c end end
    self.clients, self.dirty = kept, false
  end
end

--- What the server holds and has answered.
-- @function Server:stats
-- @treturn table `clients` (connections held now) and `answered` (a count
-- per HTTP status: `answered[408]`)
function Server:stats()
  local answered = {}
  for k, v in pairs(self.counts) do answered[k] = v end
  return { clients = #self.clients, answered = answered }
end

--- The address it listens on (host and port as bound).
-- @function Server:address
-- @return host, port
function Server:address()
  local host, port = self.sock:getsockname()
  return host, tonumber(port)
end

--- Close every connection and stop listening; closing twice does nothing.
-- @function Server:close
function Server:close()
  if self.closed then return end
  self.closed = true
  for _, c in ipairs(self.clients) do if not c.closed then c.closed = true c.sock:close() end end
  self.clients = {}
  self.sock:close()
end

Server.__close = Server.close
Server.__gc = Server.close

function Server:__tostring()
  if self.closed then return "dropprobe.exporter.Server (closed)" end
  return fmt("dropprobe.exporter.Server %s (%d connections)", self.listen, #self.clients)
end

return M
