--- Kprobes, argument registers and where the drop reason lives: the seed's
-- hard way, checked before anything reaches the kernel.
-- @module dropprobe.kprobe
local core = require "dropprobe.core"

local M = {}
local fmt = string.format

-- fetch-arg types the kernel's probe parser takes (Documentation/trace/kprobetrace.rst)
local TYPES = {
  u8 = true, u16 = true, u32 = true, u64 = true,
  s8 = true, s16 = true, s32 = true, s64 = true,
  x8 = true, x16 = true, x32 = true, x64 = true,
  char = true, string = true, ustring = true, symbol = true, symstr = true,
}

local function type_ok(t)
  if TYPES[t] then return true end
  if t:match("^b%d+@%d+/%d+$") then return true end            -- bitfield
  local base, n = t:match("^([%w]+)%[(%d+)%]$")                  -- array
  if base and TYPES[base] and tonumber(n) > 0 then return true end
  return false
end

-- Check one fetch arg (without name and type); returns nil or why not.
local function fetcharg_error(a, ret, depth)
  if depth > 8 then return "nested too deep" end
  if a == "$retval" then
    return (not ret) and "$retval exists only in return probes (ret = true)" or nil
  end
  if a == "$comm" or a == "$stack" then return nil end
  local n = a:match("^%$arg(%d+)$")
  if n then
    n = tonumber(n)
    return (n < 1 or n > 64) and fmt("$arg%d: arguments count from $arg1", n) or nil
  end
  n = a:match("^%$stack(%d+)$")
  if n then return nil end
  if a:match("^%%[%a][%w]*$") then return nil end                 -- %reg
  if a:match("^@0x%x+$") or a:match("^@%d+$") then return nil end  -- @address
  if a:match("^@[%a_.][%w_.]*$") or a:match("^@[%a_.][%w_.]*[+-]%d+$")
      or a:match("^@[%a_.][%w_.]*[+-]0x%x+$") then return nil end  -- @symbol[+-off]
  local sign, u, off, inner = a:match("^([+-])(u?)(%w+)%((.*)%)$")  -- +off(arg)
  if sign then
    if not (off:match("^%d+$") or off:match("^0x%x+$")) then
      return fmt("bad offset '%s' in '%s'", off, a)
    end
    local _ = u
    return fetcharg_error(inner, ret, depth + 1)
  end
  if a:match("^\\%-?%d+$") or a:match("^\\0x%x+$") or a:match('^\\"[^"]*"$') then return nil end
  return fmt("'%s' is not a fetch arg ($argN, %%reg, $retval, $stackN, $stack, $comm, "
    .. "@sym, @addr, +|-off(arg), \\imm)", a)
end

--- Check one probe argument "name=fetcharg[:type]"; returns nil or why not.
-- @tparam string arg
-- @tparam boolean ret a return probe
-- @treturn string|nil
function M.arg_error(arg, ret)
  if type(arg) ~= "string" then return "an argument must be a string" end
  if arg:find("[%z\1-\31\127]") then return "it contains a control character" end
  if arg:find(" ", 1, true) then return "it contains a space" end
  local name, rest = arg:match("^([^=]+)=(.*)$")
  if name then
    if not name:match("^[%a_][%w_]*$") then
      return fmt("bad argument name '%s' (a letter or '_', then letters, digits, '_')", name)
    end
    if name == "common_pid" or name:match("^common_") then
      return fmt("argument name '%s' is reserved", name)
    end
  else
    rest = arg
  end
  -- the type follows the last ':' that is not inside "...": types have no ':'
  local fetch, typ = rest:match("^(.-):([%w@/%[%]]+)$")
  if fetch then
    if not type_ok(typ) then
      return fmt("unknown type '%s' (u8..u64, s8..s64, x8..x64, string, symbol, ...)", typ)
    end
  else
    fetch = rest
  end
  if fetch == "" then return "no fetch arg" end
  return fetcharg_error(fetch, ret, 0)
end

local function place_error(at)
  if type(at) ~= "string" or at == "" then return "give `at`, a kernel symbol" end
  if at:find("[%z\1-\31\127 ]") then return "it contains a space or control character" end
  if at:match("^0x%x+$") then return nil end
  local mod_sym = at:match("^[%w_%-]+:(.+)$") or at
  if mod_sym:match("^[%a_.][%w_.]*$") or mod_sym:match("^[%a_.][%w_.]*%+%d+$")
      or mod_sym:match("^[%a_.][%w_.]*%+0x%x+$") then
    return nil
  end
  return "a symbol (letters, digits, '_', '.'), symbol+offset, module:symbol or 0xaddress"
end

local function check_options(opts, allowed)
  for k in pairs(opts) do
    local ok = false
    for _, a in ipairs(allowed) do if a == k then ok = true end end
    if not ok then
      error(fmt("dp.kprobe: unknown option '%s' (allowed: %s)", tostring(k),
        table.concat(allowed, ", ")), 3)
    end
  end
end

--- A kprobe (or with `ret = true` a kretprobe) in the group `dropprobe`,
-- built and validated here; nothing reaches the kernel until `create()` or
-- `inst:event(kp)`. Closing or collecting it removes it again.
-- @tparam table opts `name`, `at` (symbol[+off]), `ret`, `args` (list, in
-- order), `maxactive` (return probes)
-- @treturn Kprobe with `definition()`, `create()`, `close()`
-- @usage local kp <close> = dp.kprobe{ name = "my_skb_probe", at = "kfree_skb_reason",
--   args = { "skb=$arg1:u64", "reason=$arg2:u64" } }
function M.kprobe(opts)
  if type(opts) ~= "table" then error("dp.kprobe: give an option table", 2) end
  check_options(opts, { "name", "at", "ret", "args", "maxactive" })
  local name, at, ret = opts.name, opts.at, opts.ret and true or false
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or #name > 64 then
    error(fmt("dp.kprobe: bad name %q: a letter or '_', then letters, digits or '_'",
      tostring(name)), 2)
  end
  local why = place_error(at)
  if why then error(fmt("dp.kprobe: bad place `at` %q: %s", tostring(at), why), 2) end
  local args = opts.args or {}
  if type(args) ~= "table" then error("dp.kprobe: args must be a list of strings", 2) end
  local seen = {}
  for i, a in ipairs(args) do
    why = M.arg_error(a, ret)
    if why then error(fmt("dp.kprobe: argument %d (%q): %s", i, tostring(a), why), 2) end
    local n = a:match("^([^=]+)=")
    if n then
      if seen[n] then error(fmt("dp.kprobe: argument %d: name '%s' is used twice", i, n), 2) end
      seen[n] = true
    end
  end
  if #args > 128 then error("dp.kprobe: at most 128 arguments", 2) end
  local maxactive = opts.maxactive
  if maxactive ~= nil and (math.type(maxactive) ~= "integer" or maxactive < 1 or not ret) then
    error("dp.kprobe: maxactive is a whole number >= 1, for return probes only", 2)
  end
  return core.kprobe(name, at, ret, maxactive,
    #args > 0 and table.concat(args, " ") or nil)
end

-- argument registers per architecture (the kernel's calling conventions)
local REGS = {
  x86_64 = { "%di", "%si", "%dx", "%cx", "%r8", "%r9" },
  i386 = { "%ax", "%dx", "%cx" }, i686 = { "%ax", "%dx", "%cx" },
  aarch64 = { "%x0", "%x1", "%x2", "%x3", "%x4", "%x5", "%x6", "%x7" },
  arm64 = { "%x0", "%x1", "%x2", "%x3", "%x4", "%x5", "%x6", "%x7" },
  arm = { "%r0", "%r1", "%r2", "%r3" }, armv7l = { "%r0", "%r1", "%r2", "%r3" },
  riscv64 = { "%a0", "%a1", "%a2", "%a3", "%a4", "%a5", "%a6", "%a7" },
  loongarch64 = { "%r4", "%r5", "%r6", "%r7", "%r8", "%r9", "%r10", "%r11" },
  ppc64 = { "%r3", "%r4", "%r5", "%r6", "%r7", "%r8", "%r9", "%r10" },
  ppc64le = { "%r3", "%r4", "%r5", "%r6", "%r7", "%r8", "%r9", "%r10" },
  s390x = { "%r2", "%r3", "%r4", "%r5", "%r6" },
}

local function machine()
  local f = io.open("/proc/sys/kernel/arch")
  local m = f and f:read("l")
  if f then f:close() end
  if not m or m == "" then
    local p = io.popen("uname -m")
    m = p and p:read("l")
    if p then p:close() end
  end
  return m
end

--- The register that holds argument n on this architecture (or `arch`), for
-- kernels whose kprobes lack `$argN`.
-- @tparam integer n from 1
-- @tparam[opt] string arch e.g. "x86_64", "aarch64"; default: this machine
-- @treturn string e.g. "%si"
function M.arg(n, arch)
  arch = arch or machine()
  local regs = REGS[arch]
  if not regs then
    error(fmt("dp.arg: no register table for architecture '%s' (use $arg%d)", tostring(arch),
      tonumber(n) or 0), 2)
  end
  if math.type(n) ~= "integer" or n < 1 or n > #regs then
    error(fmt("dp.arg: %s passes arguments 1 to %d in registers", arch, #regs), 2)
  end
  return regs[n]
end

--- Where the drop reason lives on this kernel, decided from what the
-- kernel says, not from the version string: the kernel's BTF (the first of
-- sk_skb_reason_drop, kfree_skb_reason, kfree_skb it kept as a function,
-- and where its `skb` and `reason` parameters are), else kallsyms; and the
-- kfree_skb format.
-- @tparam[opt] table src `kallsyms` (text; default: BTF, else /proc/kallsyms)
-- and `format` (kfree_skb format text; default this kernel's)
-- @treturn table `{ func = "sk_skb_reason_drop", skb_arg = 2, reason_arg = 3,
-- tracepoint_reason = true }`; `reason_arg` is nil where drops have no reason
local hook_cache -- this kernel's, once per process: kallsyms is megabytes

-- without BTF: which of the functions kallsyms has (their arguments are
-- where these functions have always had them)
local function hook_from_kallsyms(syms)
  if not syms then
    local f = io.open("/proc/kallsyms")
    syms = f and f:read("a") or ""
    if f then f:close() end
  end
  local function has(name)
    return syms:find("%s[TtWw]%s+" .. name:gsub("_", "%%_") .. "\n") ~= nil
      or syms:find("%s[TtWw]%s+" .. name:gsub("_", "%%_") .. "$") ~= nil
  end
  if has("sk_skb_reason_drop") then
    return { func = "sk_skb_reason_drop", skb_arg = 2, reason_arg = 3 }
  elseif has("kfree_skb_reason") then
    return { func = "kfree_skb_reason", skb_arg = 1, reason_arg = 2 }
  elseif has("kfree_skb") then
    return { func = "kfree_skb", skb_arg = 1 }
  end
  error("dp.drop_hook: none of sk_skb_reason_drop, kfree_skb_reason, kfree_skb is in "
    .. "kallsyms (is /proc/kallsyms readable? kptr_restrict hides it from non-root)", 3)
end

function M.drop_hook(src)
  src = src or {}
  if not src.kallsyms and not src.format and hook_cache then
    local copy = {}
    for k, v in pairs(hook_cache) do copy[k] = v end
    return copy
  end
  local cacheable = not src.kallsyms and not src.format
  local hook
  if not src.kallsyms then
    -- the BTF: parsed once per process (the drop probe needs it anyway),
    -- where reading /proc/kallsyms costs seconds under emulation
    for _, fn in ipairs({ "sk_skb_reason_drop", "kfree_skb_reason", "kfree_skb" }) do
      local params = core.btf_func(fn)
      if params then
        local at = {}
        for i, p in ipairs(params) do at[p] = i end
        if at.skb then hook = { func = fn, skb_arg = at.skb, reason_arg = at.reason } break end
      end
    end
  end
  if not hook then hook = hook_from_kallsyms(src.kallsyms) end
  local format = src.format
  if format == nil then
    local ok, dir = pcall(core.tracefs)
    local f = ok and io.open(dir .. "/events/skb/kfree_skb/format")
    format = f and f:read("a") or ""
    if f then f:close() end
  end
  hook.tracepoint_reason = format:find("skb_drop_reason reason;", 1, true) ~= nil
  if cacheable then hook_cache = hook end
  return hook
end

local function mypid_early()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("l"):match("^(%d+)")
  if f then f:close() end
  return pid or "0"
end

-- where a probe at a function's entry finds its return address
local RETURN = { x86_64 = "+0(%sp)", aarch64 = "%x30", arm64 = "%x30", riscv64 = "%ra" }

-- the bytes a packet probe fetches from skb->head: 64 u64 (the most a
-- kprobe array holds) = 512, enough for the headroom measured (a UDP
-- datagram on loopback 16, a TCP segment 260, NICs about 80 to 130) and
-- IPv6 with TCP behind it
local PACKET_WORDS = 64
local probes_made = 0
local skb_layout -- { members } or { nil, why }: this kernel's BTF, read once
local dev_layout -- { name =, nd_net =, inum = } offsets, or { why = }: read once

-- Where a packet's device name and its network namespace's inode are,
-- from the kernel's BTF: skb->dev->name (a char array in struct
-- net_device) and skb->dev->nd_net.net->ns.inum (possible_net_t holds only
-- its `struct net *`, at its start). Offsets, or nil and why.
local function device_layout(btf)
  local function get(name)
    local st, err = core.btf_struct(name, btf)
    if not st then error(err, 0) end
    return st
  end
  local ok, t = pcall(function()
    local nd, net, ns = get("net_device"), get("net"), get("ns_common")
    if not (nd.name and nd.nd_net and net.ns and ns.inum) then
      error("struct net_device, net or ns_common lacks name, nd_net, ns or inum", 0)
    end
    return { name = nd.name.offset, nd_net = nd.nd_net.offset, inum = net.ns.offset + ns.inum.offset }
  end)
  if ok then return t end
  return nil, t
end

--- The drop probe that carries the packet: a kprobe at `drop_hook()` that
-- fetches the skb (a hunt keeps `skb != 0` only: the probe also fires for
-- `kfree_skb(NULL)`, which frees nothing), the reason, where the drop was called from (`location`), the
-- network header's offset (`nh`) and the first 512 bytes from `skb->head`
-- (`pkt`), which the decoder turns into `rec.packet` (addresses, protocol,
-- ports), and the packet's device (`dev`, `skb->dev->name`) and network
-- namespace (`netns`, the inode of `skb->dev`'s namespace), which become
-- `rec.packet.dev` and `rec.packet.netns`. The offsets of `struct sk_buff`'s members come from the kernel's
-- BTF (`/sys/kernel/btf/vmlinux`, libbpf), never from a version table.
-- @tparam[opt] table opts `name` (default "pkt_<pid>_<n>"), `kallsyms`, `btf`
-- (a BTF file, tests), `arch`
-- @treturn Kprobe (not yet created: `inst:event(kp)` creates it)
-- @raise no drop hook, no BTF or no `sk_buff` in it, an architecture without a table
function M.packet_probe(opts)
  opts = opts or {}
  check_options(opts, { "name", "kallsyms", "btf", "arch" })
  local hook = opts.kallsyms and M.drop_hook{ kallsyms = opts.kallsyms } or M.drop_hook()
  local st, err
  if opts.btf then
    st, err = core.btf_struct("sk_buff", opts.btf)
  else
    skb_layout = skb_layout or { core.btf_struct("sk_buff") } -- parsed once per process
    st, err = skb_layout[1], skb_layout[2]
  end
  if not st then error("dp.packet_probe: " .. err .. " (needs CONFIG_DEBUG_INFO_BTF)", 2) end
  for _, m in ipairs({ "head", "network_header" }) do
    if not st[m] then error("dp.packet_probe: the kernel's struct sk_buff has no member " .. m, 2) end
  end
  local arch = opts.arch or machine()
  local ret = RETURN[arch]
  if not ret then error(fmt("dp.packet_probe: no return-address register for '%s'", tostring(arch)), 2) end
  local skb = M.arg(hook.skb_arg, arch)
  -- the skb itself: kfree_skb(NULL) frees nothing, and the hunts filter
  -- those out (skb != 0); the probe fires for them, the tracepoint does not
  local args = { "skb=" .. skb .. ":x64" }
  if hook.reason_arg then args[#args + 1] = "reason=" .. M.arg(hook.reason_arg, arch) .. ":u32" end
  args[#args + 1] = "location=" .. ret .. ":symbol"
  args[#args + 1] = fmt("nh=+%d(%s):u16", st.network_header.offset, skb)
  args[#args + 1] = fmt("pkt=+0(+%d(%s)):x64[%d]", st.head.offset, skb, PACKET_WORDS)
  -- its device and network namespace, where the BTF says where they are
  local dl
  if opts.btf then
    dl = st.dev and device_layout(opts.btf)
  else
    dev_layout = dev_layout or (st.dev and { device_layout() }) or {}
    dl = dev_layout[1]
  end
  if dl and st.dev then
    local dev = fmt("+%d(%s)", st.dev.offset, skb)
    args[#args + 1] = fmt("dev=+%d(%s):string", dl.name, dev)
    args[#args + 1] = fmt("netns=+%d(+%d(%s)):u32", dl.inum, dl.nd_net, dev)
  end
  probes_made = probes_made + 1
  local name = opts.name or fmt("pkt_%s_%d", tostring(mypid_early()), probes_made)
  return M.kprobe{ name = name, at = hook.func, args = args }
end

-- Which process made which probe: /run/dropprobe/<pid>.kprobes, one name a
-- line, so that `dropprobe cleanup` can remove the probes of a process that
-- died without closing them (kill -9), and only those.
-- (`M.set_rundir(dir)` moves it, for tests.)
local rundir_override
function M.rundir() return rundir_override or os.getenv("DROPPROBE_RUNDIR") or "/run/dropprobe" end
function M.set_rundir(dir) rundir_override = dir end

local function mypid()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("l"):match("^(%d+)")
  if f then f:close() end
  return pid
end

local function state_names(path)
  local names = {}
  local f = io.open(path)
  if f then
    for l in f:lines() do if l:match("^[%a_][%w_]*$") then names[#names + 1] = l end end
    f:close()
  end
  return names
end
M.state_names = state_names

-- true when written (or removed, with no names left)
local function state_write(path, names)
  if #names == 0 then os.remove(path) return true end
  local f = io.open(path, "w")
  if not f then return false end
  f:write(table.concat(names, "\n"), "\n")
  return f:close() == true
end

local Kprobe = core.Kprobe
local c_create, c_close, c_destroy = Kprobe.create, Kprobe.close, Kprobe._destroy

--- Create the probe in the kernel (and note it as this process's).
-- @function Kprobe:create
function Kprobe:create()
  local was = self:is_created()
  c_create(self)
  if was then return end
  local _, name = self:event_name()
  local dir, pid = M.rundir(), mypid()
  if not pid then return end
  local path = dir .. "/" .. pid .. ".kprobes"
  local names = state_names(path)
  names[#names + 1] = name
  -- the directory made when the note cannot be written (not a shell per
  -- probe: that cost a path of many probes most of its placing time under
  -- an emulator)
  if not state_write(path, names)
      and os.execute("mkdir -p -m 700 '" .. dir:gsub("'", "") .. "' 2>/dev/null") then
    state_write(path, names)
  end
end

local function forget(kp)
  local _, name = kp:event_name()
  local pid = mypid()
  if not pid then return end
  local path = M.rundir() .. "/" .. pid .. ".kprobes"
  local names, keep = state_names(path), {}
  for _, n in ipairs(names) do if n ~= name then keep[#keep + 1] = n end end
  if #keep ~= #names then state_write(path, keep) end
end

--- Remove the probe from the kernel (and from this process's notes). Where
-- an instance's event still uses it, the instance removes it after its
-- events, so closing works in any order (`<close>` variables).
-- @function Kprobe:close
-- @treturn boolean|nil true when the instance will remove it
function Kprobe:close()
  local was = self:is_created()
  local deferred = c_close(self)
  if was and not deferred then forget(self) end
  return deferred
end

-- the instance removes a probe its events used: forget it then
function Kprobe:_destroy()
  local ok, err = c_destroy(self)
  if ok then forget(self) end
  return ok, err
end

local c_gc = core.KprobeMT.__gc
core.KprobeMT.__close = Kprobe.close
core.KprobeMT.__gc = function(kp)
  local was = kp:is_created()
  c_gc(kp) -- removes it, or leaves it to the instance whose event uses it
  if was then forget(kp) end
end

return M
