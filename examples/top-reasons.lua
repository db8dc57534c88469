-- What is dropping right now: per-reason and per-location counts with
-- rates, redrawn every second on a terminal (plain lines when piped).
--   sudo lua5.4 examples/top-reasons.lua [seconds]
local top = require "dropprobe.recipes.top"

local seconds = tonumber(arg[1]) or 10
local totals = top.run{ interval = 1, duration = seconds }

-- after the live view: the totals, worst reason first
local list = {}
for reason, e in pairs(totals.reasons) do list[#list + 1] = { reason, e.total } end
table.sort(list, function(a, b) return a[2] > b[2] end)
print(("\n%d drops in %g s, %d events lost"):format(totals.drops, seconds, totals.lost))
for _, r in ipairs(list) do print(("%-28s %d"):format(r[1], r[2])) end
