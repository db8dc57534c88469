-- build/ksym_driver over a kallsyms text: ksym.c's table of the symbols
-- against libtraceevent's own (tep_parse_kallsyms) at every address.
local assert = require "luassert"
local ksym = {}

--- Assert that ksym.c names every symbol's address of the kallsyms text at
-- `path`, and two past it, as libtraceevent does (the same name, start and
-- size), with as many symbols. Returns the symbols and the lookups made.
function ksym.assert_agrees(path)
  local p = assert(io.popen("build/ksym_driver " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  assert.is_true(ok, out)
  local a, b, n, d = out:match("symbols (%d+) (%d+) lookups (%d+) differ (%d+)")
  assert.are.equal(a, b, out)
  assert.are.equal("0", d, out)
  return tonumber(a), tonumber(n), out
end

return ksym
