-- Reading a saved file from spec/fixtures/ (formats, kallsyms excerpts).
local fixture = {}

--- The whole file; fails the spec when it is missing.
function fixture.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

return fixture
