--- Stack traces only for the drops that matter: the seed's
-- `stacktrace if <condition>`, counted and de-duplicated.
--
-- Each matching drop gets its kernel stack (the trigger carries the same
-- condition as the filter: a trigger runs before, and regardless of, the
-- event filter); stacks are keyed by their function names, counted, ranked,
-- and the reasons seen on each are kept.
-- @module dropprobe.recipes.stacks
-- @usage local stacks = require "dropprobe.recipes.stacks"
-- local report = stacks.run{ filter = "reason == NO_SOCKET", duration = 10 }
-- io.write(stacks.format(report))
local dp = require "dropprobe"
local hunt = require "dropprobe.hunt"

local M = {}

local function frame_name(f)
  return (f:gsub("%+0x%x+/0x%x+$", ""):gsub("%+0x%x+$", ""))
end

--- Hunt for `duration` seconds (or until Ctrl-C / `idle`).
-- @tparam[opt] table opts `filter` (default: every drop, `dp.drop_condition()`; reason names
-- allowed), `limit` (stacks to sample; default: every matching drop),
-- `duration`, `idle`, `mode` ("raw" or "text"), `buffer_kb`, `ready` (called
-- once everything is set up), `progress` (called with the record count every
-- `every` records)
-- @treturn table `{ stacks = {{frames=, count=, reasons={NAME=n}}...}, matched=,
-- with_stack=, sampled=, lost=, read=, filter=, ended= }`
function M.run(opts)
  opts = dp._check_options(opts, { "filter", "limit", "duration", "idle", "mode", "buffer_kb",
    "ready", "progress", "every" }, "stacks.run")
  if opts.limit ~= nil and (math.type(opts.limit) ~= "integer" or opts.limit < 1) then
    error("stacks.run: limit is a whole number of stacks >= 1", 2)
  end
  local h <close> = hunt.open{ condition = opts.filter, stacks = opts.limit or true,
    mode = opts.mode, buffer_kb = opts.buffer_kb }

  local byKey, list = {}, {}
  local report = { matched = 0, with_stack = 0, filter = h.condition or "every drop", stacks = list }
  report.ended = h:run(opts, function(rec)
    if rec.name ~= "kfree_skb" then return end
    report.matched = report.matched + 1
    if not rec.stack then return end
    report.with_stack = report.with_stack + 1
    local names = {}
    for i, f in ipairs(rec.stack) do names[i] = frame_name(f) end
    local key = table.concat(names, ";")
    local s = byKey[key]
    if not s then
      s = { frames = names, count = 0, reasons = {} }
      byKey[key] = s
      list[#list + 1] = s
    end
    s.count = s.count + 1
    local r = tostring(rec.fields.reason)
    s.reasons[r] = (s.reasons[r] or 0) + 1
  end)
  local st = h:totals()
  report.lost, report.read = st.lost, st.read
  report.sampled = report.with_stack < report.matched
  table.sort(list, function(a, b) return a.count > b.count end)
  return report
end

--- Folded lines for flame graphs: `outermost;...;innermost count`, one line
-- per distinct stack.
-- @tparam table report from `run`
-- @treturn {string,...}
function M.folded(report)
  local out = {}
  for _, s in ipairs(report.stacks) do
    local rev = {}
    for i = #s.frames, 1, -1 do rev[#rev + 1] = s.frames[i] end
    out[#out + 1] = table.concat(rev, ";") .. " " .. s.count
  end
  return out
end

--- The report as a ranked table for people.
-- @tparam table report from `run`
-- @tparam[opt=12] integer depth frames shown per stack
-- @treturn string
function M.format(report, depth)
  depth = depth or 12
  local t = {}
  t[#t + 1] = ("%d drops matched %q, %d with a stack%s; %d events lost"):format(report.matched,
    report.filter, report.with_stack, report.sampled and " (sampled)" or "", report.lost or 0)
  for rank, s in ipairs(report.stacks) do
    local rs = {}
    for r, n in pairs(s.reasons) do rs[#rs + 1] = ("%s %d"):format(r, n) end
    table.sort(rs)
    t[#t + 1] = ("\n#%d  %d drops  (%s)"):format(rank, s.count, table.concat(rs, ", "))
    for i = 1, math.min(depth, #s.frames) do t[#t + 1] = "    " .. s.frames[i] end
    if #s.frames > depth then t[#t + 1] = ("    ... %d more frames"):format(#s.frames - depth) end
  end
  return table.concat(t, "\n") .. "\n"
end

return M
