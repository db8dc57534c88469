-- Which code paths drop packets, and how often: kernel stacks only for the
-- drops that match a condition, counted and ranked (the seed's
-- `stacktrace if reason > 2`, summed up; by default every drop, in this
-- kernel's reason names).
--   sudo lua5.4 examples/conditional-stacks.lua [seconds] [filter]
--   sudo lua5.4 examples/conditional-stacks.lua 30 'reason == NO_SOCKET'
local dp = require "dropprobe"
local stacks = require "dropprobe.recipes.stacks"

local seconds = tonumber(arg[1]) or 10
local filter = arg[2] or dp.drop_condition()
print(("collecting the stacks of drops matching %q for %g s ..."):format(filter or "every drop", seconds))

local report = stacks.run{ filter = filter, duration = seconds }
io.write(stacks.format(report, 8))

-- the same, folded for a flame graph (flamegraph.pl, speedscope, inferno)
print("\nfolded:")
for _, line in ipairs(stacks.folded(report)) do print(line) end
