-- tools/layers.lua OBJDIR [SRCDIR]: the dependency picture of the C core
-- from its object files (nm): file A depends on file B when A uses a symbol
-- B defines. Prints each file's layer (0: depends on no other file) and
-- what it uses; exits 1 if the files form a dependency circle.
--
-- With SRCDIR (the sources of those objects) it also reads what symbols do
-- not show, and exits 1 on either:
--   * a header included from a floor below its owner's (the file that
--     defines what it declares): a file reaching up through a header.
--     core.h is the exception: it declares each file's open function, which
--     core.c calls; a file includes it to check its own;
--   * a field of another file's struct written (=, op=, ++, --): an
--     object's fields change through its own functions.
local dir = assert(arg[1], "usage: lua5.4 tools/layers.lua OBJDIR [SRCDIR]")
local srcdir = arg[2]

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local files, defines, uses = {}, {}, {}
for _, path in ipairs(lines("ls " .. dir .. "/*.o")) do
  local name = path:match("([^/]+)%.o$") .. ".c"
  files[#files + 1] = name
  uses[name] = {}
  for _, l in ipairs(lines("nm -P " .. path)) do
    local sym, kind = l:match("^(%S+) (%a)")
    if sym then
      if kind == "U" then uses[name][#uses[name] + 1] = sym
      elseif kind:match("[TDBR]") then defines[sym] = name end
    end
  end
end
table.sort(files)

local deps = {}
for _, f in ipairs(files) do
  local set = {}
  for _, sym in ipairs(uses[f]) do
    local d = defines[sym]
    if d and d ~= f then set[d] = true end
  end
  local list = {}
  for d in pairs(set) do list[#list + 1] = d end
  table.sort(list)
  deps[f] = list
end

-- layers by longest path; a file on a circle never gets one
local layer, changed = {}, true
while changed do
  changed = false
  for _, f in ipairs(files) do
    if not layer[f] then
      local l, ok = 0, true
      for _, d in ipairs(deps[f]) do
        if not layer[d] then ok = false break end
        if layer[d] + 1 > l then l = layer[d] + 1 end
      end
      if ok then layer[f], changed = l, true end
    end
  end
end

local circle = {}
table.sort(files, function(a, b)
  local la, lb = layer[a] or math.huge, layer[b] or math.huge
  if la ~= lb then return la < lb end
  return a < b
end)
for _, f in ipairs(files) do
  print(("%-6s %-12s %s"):format(layer[f] and ("L" .. layer[f]) or "CIRCLE", f,
    #deps[f] > 0 and ("uses " .. table.concat(deps[f], " ")) or "-"))
  if not layer[f] then circle[#circle + 1] = f end
end
if #circle > 0 then
  io.stderr:write("dependency circle among: ", table.concat(circle, " "), "\n")
  os.exit(1)
end
print(("%d files, no dependency circle"):format(#files))

if not srcdir then return end

local function slurp(path)
  local f = assert(io.open(path))
  local t = f:read("a")
  f:close()
  -- comments and strings out: what is left is code
  return (t:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " "):gsub('"[^"\n]*"', '""'))
end
local function raw(path)
  local f = assert(io.open(path))
  local t = f:read("a")
  f:close()
  return t
end

local is_file = {}
for _, f in ipairs(files) do is_file[f] = true end
local sources = {}
for _, path in ipairs(lines("ls " .. srcdir .. "/*.c " .. srcdir .. "/*.h")) do
  sources[#sources + 1] = path:match("([^/]+)$")
end

-- a header's owner: the .c of its name, else the file that defines what it declares
local owner = {}
for _, name in ipairs(sources) do
  if name:match("%.c$") then
    owner[name] = name
  else
    local c = name:gsub("%.h$", ".c")
    if is_file[c] then
      owner[name] = c
    else
      for fn in slurp(srcdir .. "/" .. name):gmatch("([%a_][%w_]*)%s*%(") do
        if defines[fn] then owner[name] = defines[fn] break end
      end
    end
  end
end

local bad = {}
for _, name in ipairs(sources) do
  local own = owner[name]
  for inc in raw(srcdir .. "/" .. name):gmatch('#include%s+"([^"]+)"') do
    local up = owner[inc]
    if inc ~= "core.h" and own and up and layer[own] and layer[up] and layer[up] > layer[own] then
      bad[#bad + 1] = ("%s (L%d) includes %s, the header of %s (L%d): a floor up"):format(name, layer[own],
        inc, up, layer[up])
    end
  end
end

-- every struct's members, by the file that owns the struct; a struct that
-- is also handled by value somewhere (a span, an embedded buffer) is a
-- value, not an object, and anyone may fill it in
local all_code = {}
for _, name in ipairs(sources) do all_code[#all_code + 1] = slurp(srcdir .. "/" .. name) end
all_code = table.concat(all_code, "\n")
local field_owners = {}
for _, name in ipairs(sources) do
  local own = owner[name] or name
  for sname, body in slurp(srcdir .. "/" .. name):gmatch("struct%s+([%a_][%w_]*)%s*(%b{})") do
    local holder = all_code:find("struct%s+" .. sname .. "%s+[%a_]") and "*" or own
    body = body:sub(2, -2):gsub("%b{}", " "):gsub("%b[]", " "):gsub("%b()", " ")
    for stmt in body:gmatch("[^;]+") do
      for decl in stmt:gmatch("[^,]+") do
        local member = decl:gsub(":%s*%d+%s*$", ""):match("([%a_][%w_]*)%s*$")
        if member then
          field_owners[member] = field_owners[member] or {}
          field_owners[member][holder] = true
        end
      end
    end
  end
end

for _, name in ipairs(sources) do
  if name:match("%.c$") then
    local code = slurp(srcdir .. "/" .. name)
    local seen = {}
    local function check(member)
      local owners = field_owners[member]
      if not owners or owners[name] or owners["*"] or seen[member] then return end
      local list = {}
      for o in pairs(owners) do list[#list + 1] = o end
      table.sort(list)
      seen[member] = true
      bad[#bad + 1] = ("%s writes the field '%s' of a struct of %s"):format(name, member,
        table.concat(list, ", "))
    end
    local at = code:find("->", 1, true)
    while at do
      local member, op = code:match("^%->%s*([%a_][%w_]*)%s*([=%+%-%*/|&%^<>]*)", at)
      if member and (op:match("^=[^=]") or op == "=" or op:match("^%+%+") or op:match("^%-%-")
          or op:match("^[%+%-%*/|&%^]=") or op:match("^<<=") or op:match("^>>=")) then
        check(member)
      end
      at = code:find("->", at + 2, true)
    end
    for member in code:gmatch("[%+%-][%+%-]%s*[%a_][%w_]*%->([%a_][%w_]*)") do check(member) end
  end
end

if #bad > 0 then
  for _, b in ipairs(bad) do io.stderr:write("layers: ", b, "\n") end
  os.exit(1)
end
print("no header include a floor up, no field written across objects")
