-- tools/summary.lua COUNTS KERNEL... : the closing line of `make test`.
-- COUNTS is what spec/helpers/output.lua appended for each run ("run",
-- label, passed, failed, skipped; "skip", label, spec name). A kernel whose
-- run never reported counts as a failure, and so does a spec that was
-- skipped on every kernel (every live spec must run somewhere).
local path = assert(arg[1], "usage: lua5.4 tools/summary.lua COUNTS KERNEL...")
local runs, skips, order, fails = {}, {}, {}, {}
local f = io.open(path)
for line in (f and f:lines() or function() return nil end) do
  local kind, label, a, b, c = line:match("^(%a+)\t([^\t]+)\t([^\t]*)\t?([^\t]*)\t?([^\t]*)$")
  if kind == "run" then
    runs[label] = { passed = tonumber(a), failed = tonumber(b), skipped = tonumber(c) }
    order[#order + 1] = label
  elseif kind == "fail" then
    fails[#fails + 1] = ("[%s] %s%s"):format(label, a, b ~= "" and (": " .. b) or "")
  elseif kind == "skip" then
    skips[a] = skips[a] or {}
    skips[a][label] = true
  end
end
if f then f:close() end

local passed, failed, skipped = 0, 0, 0
local notes = {}
local host
for _, label in ipairs(order) do
  if label:match("^host") then host = label end
end
if not host then
  failed = failed + 1
  notes[#notes + 1] = "the specs on this host never reported"
end
for i = 2, #arg do
  if not runs[arg[i]] then
    failed = failed + 1
    notes[#notes + 1] = ("the live specs on %s never reported (the guest failed to boot or timed out)"):format(arg[i])
  end
end
-- the host first, then the guests in the order given (oldest kernel first),
-- whatever order they ended in; then any other run that reported
local shown, listing = {}, { host }
for i = 2, #arg do listing[#listing + 1] = arg[i] end
for _, label in ipairs(order) do listing[#listing + 1] = label end
for _, label in ipairs(listing) do
  local r = label and runs[label]
  if r and not shown[label] then
    shown[label] = true
    passed, failed, skipped = passed + r.passed, failed + r.failed, skipped + r.skipped
    print(("%-10s %4d passed, %d failed, %d skipped"):format(label, r.passed, r.failed, r.skipped))
  end
end
-- a spec skipped on every kernel that ran the live specs never ran at all
local names = {}
for name in pairs(skips) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local everywhere = true
  for _, label in ipairs(order) do
    if not skips[name][label] then everywhere = false end
  end
  if everywhere and #order > 0 then
    failed = failed + 1
    notes[#notes + 1] = "skipped on every kernel: " .. name
  end
end
for _, n in ipairs(fails) do print("FAILED: " .. n) end
for _, n in ipairs(notes) do print("FAILED: " .. n) end
print(("%d passed, %d failed, %d skipped"):format(passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
