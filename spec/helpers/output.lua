-- busted output: the usual terminal output, every spec named with the
-- kernel it ran on ("[6.1] 05 text records ..."), then one closing line
-- "N passed, N failed, N skipped" from busted's own counts (CI reads it).
--
-- Under tools/testall (DROPPROBE_COUNTS=<file>) the counts and the names of
-- the skipped specs are appended to that file instead, and the closing line
-- carries the kernel's label: tools/summary.lua adds up every kernel's run
-- and prints the one closing line of `make test`.
local function kernel_label()
  local label = os.getenv("DROPPROBE_KERNEL_LABEL")
  if label and label ~= "" then return label end
  local p = io.popen("uname -r 2>/dev/null")
  local release = p and p:read("l") or "?"
  if p then p:close() end
  return "host " .. (release:match("^(%d+%.%d+)") or release)
end

return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local label = kernel_label()
  local full_name = handler.getFullName
  handler.getFullName = function(context)
    return "[" .. label .. "] " .. full_name(context)
  end
  -- subscribed after the terminal handler, so this line comes last
  busted.subscribe({ "suite", "end" }, function()
    local passed = #handler.successes
    local failed = #handler.failures + #handler.errors
    local skipped = #handler.pendings
    local counts = os.getenv("DROPPROBE_COUNTS")
    if counts and counts ~= "" then
      local f = assert(io.open(counts, "a"))
      f:write(("run\t%s\t%d\t%d\t%d\n"):format(label, passed, failed, skipped))
      for _, p in ipairs(handler.pendings) do
        local name = (p.name or "?"):gsub("^%[.-%] ", ""):gsub(" %(skipped.*%)$", "")
        f:write(("skip\t%s\t%s\n"):format(label, name))
      end
      -- the failures by name, with the first line of their message, so that
      -- the closing summary says which spec failed on which kernel even
      -- when only the end of a long log is kept
      local bad = {}
      for _, list in ipairs({ handler.failures, handler.errors }) do
        for _, e in ipairs(list) do bad[#bad + 1] = e end
      end
      for _, e in ipairs(bad) do
        local name = (e.name or "?"):gsub("^%[.-%] ", "")
        local msg = tostring(e.message or ""):match("[^\n]*"):gsub("\t", " ")
        f:write(("fail\t%s\t%s\t%s\n"):format(label, name:gsub("\t", " "), msg:sub(1, 200)))
      end
      f:close()
      io.write(("\n[%s] %d passed, %d failed, %d skipped\n"):format(label, passed, failed, skipped))
    else
      io.write(("\n%d passed, %d failed, %d skipped\n"):format(passed, failed, skipped))
    end
    io.flush()
    return nil, true
  end)
  return handler
end
