-- tools/layers.lua OBJDIR: the dependency picture of the C core from its
-- object files (nm): file A depends on file B when A uses a symbol B
-- defines. Prints each file's layer (0: depends on no other file) and what
-- it uses; exits 1 if the files form a dependency circle.
local dir = assert(arg[1], "usage: lua5.4 tools/layers.lua OBJDIR")

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
