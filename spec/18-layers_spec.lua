-- The C core's layers (tools/layers.lua, `make layers`): what the object
-- files' symbols show, and what they do not: a header included from a floor
-- below its owner's, a field of another object's struct written.
local run = require "helpers.run"

describe("18 layers #proc", function()
  local copy

  before_each(function()
    local out, code = run.cmd("make -s layers")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("no header include a floor up, no field written across objects", 1, true), out)
    copy = os.tmpname()
    os.remove(copy)
    assert(os.execute("cp -r lua-dropprobe " .. copy))
  end)

  after_each(function()
    if copy then os.execute("rm -rf " .. copy) end
  end)

  local function edit(file, from, to)
    local path = copy .. "/" .. file
    local text = assert(io.open(path)):read("a")
    local s, e = text:find(from, 1, true)
    assert.truthy(s, from)
    local f = assert(io.open(path, "w"))
    f:write(text:sub(1, s - 1), to, text:sub(e + 1))
    f:close()
  end

  it("fails on a header included a floor up, naming it", function()
    edit("parse.c", '#include "parse.h"', '#include "parse.h"\n#include "instance.h"')
    local out, code = run.cmd("lua5.4 tools/layers.lua build/obj " .. copy)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("layers: parse.c (L0) includes instance.h, the header of instance.c (L2): a floor up",
      1, true), out)
  end)

  it("fails on a field of another object's struct written, naming it", function()
    edit("event.c", "dp_instance_event_made(in);", "in->nevents++;")
    edit("src_text.c", "return dp_instance_stacked(s->inst);", "return s->inst->stack_triggers = 0;")
    local out, code = run.cmd("lua5.4 tools/layers.lua build/obj " .. copy)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("layers: event.c writes the field 'nevents' of a struct of instance.c", 1, true), out)
    assert.truthy(out:find("layers: src_text.c writes the field 'stack_triggers' of a struct of instance.c",
      1, true), out)
  end)
end)
