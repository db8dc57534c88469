-- A snapshot of everything a test could leave behind in tracefs: instances,
-- top-level enabled events, filters and triggers, dynamic events, current
-- tracer, tracing_on. Two snapshots compare equal when nothing was left.
local assert = require "luassert"
local state = {}

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function lines_of(cmd)
  local p = io.popen(cmd)
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  table.sort(out)
  return out
end

function state.snapshot(dir)
  dir = dir or require("dropprobe").tracefs()
  local q = "'" .. dir:gsub("'", "'\\''") .. "'"
  return {
    instances = table.concat(lines_of("ls " .. q .. "/instances"), " "),
    set_event = read(dir .. "/set_event") or "",
    current_tracer = read(dir .. "/current_tracer") or "",
    tracing_on = read(dir .. "/tracing_on") or "",
    dynamic_events = read(dir .. "/dynamic_events") or "",
    kprobe_events = read(dir .. "/kprobe_events") or "",
    filters = table.concat(lines_of("cd " .. q .. "/events && grep -H -v -x none */*/filter 2>/dev/null"), "\n"),
    triggers = table.concat(lines_of("cd " .. q .. "/events && grep -H -v '^#' */*/trigger 2>/dev/null"), "\n"),
  }
end

--- Assert (busted) that tracefs is as the snapshot had it.
function state.assert_same(before, after)
  after = after or state.snapshot()
  for k, v in pairs(before) do
    assert.are.equal(v, after[k], "tracefs " .. k .. " changed")
  end
end

return state
