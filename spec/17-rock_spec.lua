-- The rock: `luarocks make` into a fresh tree installs every module and the
-- C core from the one list the Makefile keeps, the installed command runs,
-- and the rockspec names every library the code requires. The manual:
-- `make docs` documents every function of the C core from its C files.
local run = require "helpers.run"

local ROCKSPEC = "rockspec/dropprobe-scm-1.rockspec"
local LUAROCKS = "luarocks --lua-version 5.4 "

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  table.sort(out)
  return out
end

-- the rock each library the code requires comes in (Debian's package in
-- the comment of the rockspec)
local ROCK_OF = { argparse = "argparse", cjson = "lua-cjson", socket = "luasocket" }

describe("17 rock #proc", function()
  local tree

  before_each(function()
    tree = os.tmpname()
    os.remove(tree)
  end)

  after_each(function()
    if tree then os.execute("rm -rf '" .. tree .. "'") end
  end)

  it("installs every module and the C core into a fresh tree, and the command runs from it", function()
    local out, code = run.cmd(LUAROCKS .. "make --tree " .. tree .. " --deps-mode=none " .. ROCKSPEC)
    assert.are.equal(0, code, out)
    -- the same files as lua/ holds, not a hand-kept list
    local want = lines("cd lua && find dropprobe -name '*.lua'")
    local got = lines("cd " .. tree .. "/share/lua/5.4 && find dropprobe -name '*.lua'")
    assert.is_true(#want > 10)
    assert.are.same(want, got)
    local so = io.open(tree .. "/lib/lua/5.4/dropprobe/core.so", "rb")
    assert.truthy(so, "the C core was not installed")
    so:close()
    -- the installed command, with the tree's paths as `luarocks path` gives them
    local env = table.concat(lines(LUAROCKS .. "path --tree " .. tree), "; ")
    out, code = run.cmd(env .. "; cd / && " .. tree .. "/bin/dropprobe --help")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("doctor", 1, true), out)
    -- the installed core, not the checkout's
    out, code = run.cmd(env .. [[; cd / && lua5.4 -e 'print(package.searchpath("dropprobe.core", package.cpath))']])
    assert.are.equal(0, code, out)
    assert.are.equal(tree .. "/lib/lua/5.4/dropprobe/core.so", out:match("[^\n]+"))
  end)

  it("documents every function and method of dropprobe.core from the C files", function()
    local out, code = run.cmd("ldoc -q -d " .. tree .. " .")
    assert.are.equal(0, code, out)
    local html = assert(io.open(tree .. "/modules/dropprobe.core.html")):read("a")
    -- what the C core registers, in a process of its own (dropprobe's Lua
    -- side adds methods of its own, documented in its modules)
    local list = run.cmd(run.LUA .. [[-e '
      local core = require "dropprobe.core"
      for k, v in pairs(core) do if type(v) == "function" then print(k) end end
      local reg = debug.getregistry()
      for _, t in ipairs({ "Instance", "Event", "Pipe", "Kprobe", "Counter", "Record" }) do
        local mt = reg["dropprobe." .. t]
        local idx = mt and mt.__index
        for k, v in pairs(type(idx) == "table" and idx or {}) do
          if type(v) == "function" then print(t .. ":" .. k) end
        end
      end']])
    local want = {}
    for name in list:gmatch("[^\n]+") do want[#want + 1] = name end
    assert.is_true(#want > 50)
    local missing = {}
    for _, name in ipairs(want) do
      if not html:find('<a name = "' .. name .. '">', 1, true) then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("names every library the code requires as a dependency", function()
    local env = setmetatable({}, { __index = _G })
    local spec = assert(loadfile(ROCKSPEC, "t", env))
    spec()
    local deps = {}
    for _, d in ipairs(env.dependencies) do deps[d:match("^(%S+)")] = true end
    assert.is_true(deps.lua)
    local required = {}
    for _, f in ipairs(lines("find lua bin -type f")) do
      local text = assert(io.open(f)):read("a")
      for name in text:gmatch("require%s*%(?%s*[\"']([%w_.]+)[\"']") do
        local top = name:match("^[^.]+")
        if top ~= "dropprobe" then required[top] = f end
      end
    end
    assert.is_not_nil(next(required))
    for lib, f in pairs(required) do
      local rock = ROCK_OF[lib]
      assert.truthy(rock, ("%s requires %s: which rock is it in?"):format(f, lib))
      assert.truthy(deps[rock], ("%s requires %s, the rockspec does not depend on %s"):format(f, lib, rock))
    end
  end)
end)
