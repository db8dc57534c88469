--- The exporter's own endpoint: `GET /metrics` over HTTP/1.0, one
-- connection at a time, each bounded by a timeout; other paths get 404.
-- @module dropprobe.exporter.server
local M = {}
local fmt = string.format

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

--- Serve the waiting connections (one at a time, each bounded by a
-- timeout), then return.
-- @param server a bound luasocket server, non-blocking
-- @tparam function metrics returns the metrics text
function M.serve(server, metrics)
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

--- Listen on an address (`parse_listen`), non-blocking.
-- @tparam string listen
-- @return the server, or nil and why
function M.open(listen)
  local host, port = M.parse_listen(listen)
  if not host then
    return nil, fmt("bad listen address %q (ADDR:PORT, [v6]:PORT or :PORT)", tostring(listen))
  end
  local socket = require "socket"
  local server, err = socket.bind(host, port)
  if not server then return nil, fmt("cannot listen on %s: %s", listen, err) end
  server:settimeout(0)
  return server
end

return M
