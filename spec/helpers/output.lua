-- busted output: the usual terminal output, then one closing line
-- "N passed, N failed, N skipped" from busted's own counts (CI reads it).
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  -- subscribed after the terminal handler, so this line comes last
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("\n%d passed, %d failed, %d skipped\n", #handler.successes,
      #handler.failures + #handler.errors, #handler.pendings))
    io.flush()
    return nil, true
  end)
  return handler
end
