--- Small helpers the library's Lua files share (not public API).
-- @module dropprobe.util
local M = {}
local fmt = string.format

--- Options checking: unknown keys are an error naming the allowed ones.
-- @tparam table|nil opts
-- @tparam {string,...} allowed
-- @tparam string what the caller, for the message
-- @treturn table opts, or {} for nil
function M.check_options(opts, allowed, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fmt("%s: options must be a table, got %s", what, type(opts)), 3)
  end
  for k in pairs(opts) do
    local ok = false
    for _, a in ipairs(allowed) do if k == a then ok = true break end end
    if not ok then
      error(fmt("%s: unknown option '%s' (allowed: %s)", what, tostring(k),
        table.concat(allowed, ", ")), 3)
    end
  end
  return opts
end

--- What a host condition stands for: an address or a prefix as it is
-- (127.0.0.1, ::1, [::1], 127.0.0.0/8, fe80::/10), a name resolved once
-- here (getaddrinfo, through luasocket) into its addresses.
-- @tparam string s
-- @treturn {string,...}|nil the addresses and prefixes
-- @treturn string what s is not: "'x' is not <this>"
function M.resolve_host(s)
  local core = require "dropprobe.core"
  if type(s) ~= "string" or s == "" or #s > 255 or s:find("[%c%s]") then
    return nil, "an address, a prefix or a name"
  end
  if core.parse_prefix(s) then return { s } end
  -- digits and dots, or a prefix length, mean an address, never a name
  if s:find("/", 1, true) or s:find(":", 1, true) or s:match("^[%d.]+$") then
    return nil, "an IPv4 or IPv6 address or prefix (e.g. 127.0.0.1, ::1, 127.0.0.0/8, fe80::/10)"
  end
  local ok, socket = pcall(require, "socket")
  local infos = ok and socket.dns.getaddrinfo(s)
  if not infos then
    return nil, "an address, a prefix or a name this machine resolves"
  end
  local out, seen = {}, {}
  for _, i in ipairs(infos) do
    if i.addr and not seen[i.addr] and core.parse_prefix(i.addr) then
      seen[i.addr] = true
      out[#out + 1] = i.addr
    end
  end
  if #out == 0 then return nil, "a name with an IP address" end
  return out
end

--- What a network namespace condition stands for: its inode, from an
-- inode number, a path (`/proc/PID/ns/net`, anything `stat -L` takes) or a
-- name under `/run/netns` (`ip netns add NAME`).
-- @tparam string|integer s
-- @treturn integer|nil the namespace's inode
-- @treturn string what s is not: "'x' is not <this>"
function M.resolve_netns(s)
  local core = require "dropprobe.core"
  if math.type(s) == "integer" then s = tostring(s) end
  if type(s) ~= "string" or s == "" or s:find("%c") then
    return nil, "an inode number, a path such as /proc/PID/ns/net, or a name under /run/netns"
  end
  if s:match("^%d+$") then
    local n = math.tointeger(tonumber(s))
    if n and n > 0 and n <= 0xffffffff then return n end
    return nil, "an inode number from 1 to 4294967295"
  end
  local path = s:find("/", 1, true) and s or "/run/netns/" .. s
  if not s:find("/", 1, true) and not s:match("^[%w_.%-]+$") then
    return nil, "an inode number, a path such as /proc/PID/ns/net, or a name under /run/netns"
  end
  local ino, why = core.netns_inode(path)
  if not ino then return nil, "a network namespace here (" .. why .. ")" end
  return ino
end

--- Whether a string is an interface name a condition can carry: 1 to 15
-- bytes, none of them a space, a quote, a slash, a colon or a control
-- character (what the kernel refuses in a name, and what would end a
-- filter's string), nor `*`, `?` or `[` (ftrace's `==` would take them as
-- a glob); not `.` or `..`.
-- @tparam string s
-- @treturn boolean
function M.ifname_ok(s)
  return type(s) == "string" and #s >= 1 and #s <= 15 and not s:find("[%c%s\"'/:\\%*%?%[]")
    and s ~= "." and s ~= ".."
end

--- A whole file, or nil.
function M.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Whether a path can be opened.
function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

return M
