--- The `dropprobe` command: argparse over the library and its recipes.
-- Exit codes: 0 success, 1 usage, 2 kernel refusal (or missing privilege),
-- 128+N after signal N (130 for Ctrl-C, 143 for SIGTERM), with the report
-- printed first.
-- @module dropprobe.cli
local argparse = require "argparse"

local M = {}

local function positive(s)
  local n = tonumber(s)
  if not n or n <= 0 then return nil, "must be a number of seconds > 0" end
  return n
end

-- every --filter's default, in this kernel's names (dp.drop_condition)
local EVERY = "Default: every drop (all reasons but NOT_DROPPED_YET and CONSUMED)."

local function parser()
  local p = argparse("dropprobe", "Find where and why the Linux kernel drops packets, "
    .. "with nothing but tracefs.")
    :epilog("Every command leaves tracefs as it found it. Ctrl-C ends a long-running "
      .. "command with its report.")
  p:command_target("command")
  p:require_command(false)

  local watch = p:command("watch", "Drops as they happen, one line each.")
  watch:option("--filter", "Which drops (an ftrace filter; reason names allowed). " .. EVERY)
  watch:flag("--stack", "Add the kernel stack of each drop.")
  watch:flag("--json", "JSON Lines: name, cpu, pid, comm, ts, reason, location, stack.")
  watch:option("--mode", "Read the binary buffers (raw) or trace_pipe text.", "raw")
    :choices({ "raw", "text" })
  watch:option("--duration", "Stop after S seconds."):convert(positive)

  local stacks = p:command("stacks", "Kernel stacks of the matching drops, counted and ranked.")
  stacks:option("--filter", "Which drops (reason names allowed). " .. EVERY)
  stacks:flag("--folded", "Folded lines for flame graphs: outer;...;inner count.")
  stacks:option("--limit", "Sample at most N stacks."):convert(tonumber)
  stacks:option("--duration", "Stop after S seconds."):convert(positive)
  stacks:option("--mode", "raw or text.", "raw"):choices({ "raw", "text" })
  stacks:flag("--json", "Print one JSON object.")

  local ports = p:command("ports", "Drops per protocol, local port and reason.")
  ports:option("--filter", "Which drops. " .. EVERY)
  ports:option("--duration", "Stop after S seconds."):convert(positive)
  ports:option("--mode", "raw or text.", "raw"):choices({ "raw", "text" })
  ports:flag("--json", "Print one JSON object.")

  local top = p:command("top", "Live drops per reason and location, with rates.")
  top:option("--interval", "Seconds between updates.", "1"):convert(positive)
  top:option("--duration", "Stop after S seconds."):convert(positive)
  top:option("--filter", "Which drops. " .. EVERY)
  top:option("--mode", "raw or text.", "raw"):choices({ "raw", "text" })

  p:command("reasons", "This kernel's drop reasons, number and name.")
    :flag("--json", "Print one JSON object.")
  p:command("shell", "The Lua 5.4 REPL with dp loaded and results shown by content.")
  p:command("doctor", "What this kernel offers for drop hunting, and what would enable the rest.")
    :flag("--json", "Print one JSON object.")
  p:command("cleanup", "Remove instances left by dropprobe processes that no longer exist.")
    :flag("--dry-run", "Only list what would be removed.")
  return p
end

local function json() return require "cjson" end

-- lua-cjson writes an empty table as {}: the lists in reports stay lists
local function encode_list(list)
  return #list > 0 and json().encode(list) or "[]"
end

local function encode_map(map)
  return next(map) and json().encode(map) or "{}"
end

local function lost_note(n)
  if n and n > 0 then
    io.stderr:write(("dropprobe: %d events were lost (a bigger buffer, or raw mode, keeps up)\n")
      :format(n))
  end
end

local cmds = {}

function cmds.reasons(dp, args)
  local r = dp.reasons()
  local nums = {}
  for k in pairs(r) do if math.type(k) == "integer" then nums[#nums + 1] = k end end
  table.sort(nums)
  if args.json then
    local out = {}
    for _, n in ipairs(nums) do out[#out + 1] = '{"number":' .. n .. ',"name":' .. json().encode(r[n]) .. '}' end
    print('{"reasons":[' .. table.concat(out, ",") .. "]}")
  else
    if #nums == 0 then print("this kernel's skb:kfree_skb has no drop reasons (before 5.17)") end
    for _, n in ipairs(nums) do print(string.format("%4d  %s", n, r[n])) end
  end
  return 0
end

function cmds.watch(dp, args)
  local inst <close> = dp.instance{ buffer_kb = dp.DEFAULTS.buffer_kb }
  local ev = inst:event("skb:kfree_skb")
  local cond = args.filter or dp.drop_condition()
  ev:filter(cond)
  if args.stack then ev:trigger(dp.trigger_if("stacktrace", cond)) end
  ev:enable()
  local pipe <close> = inst:pipe{ mode = args.mode }
  local n = 0
  dp.each(pipe, { duration = args.duration }, function(rec)
    if rec.name ~= "kfree_skb" then return end
    n = n + 1
    local reason, location = tostring(rec.fields.reason), tostring(rec.fields.location)
    if args.json then
      local t = { name = rec.name, cpu = rec.cpu, pid = rec.pid, comm = rec.comm, ts = rec.ts,
        reason = reason, location = location, stack = rec.stack }
      if rec.lost_before then t.lost_before = rec.lost_before end
      io.write(json().encode(t), "\n")
    else
      io.write(("%.6f cpu%d %s/%d %s %s\n"):format(rec.ts, rec.cpu, rec.comm, rec.pid, reason, location))
      if rec.lost_before then io.write(("  (%d events lost before this one)\n"):format(rec.lost_before)) end
      for _, f in ipairs(rec.stack or {}) do io.write("    => ", f, "\n") end
    end
    io.stdout:flush()
  end)
  local st = pipe:stats()
  io.stderr:write(("dropprobe watch: %d drops, %d events lost\n"):format(n, st.lost))
  return 0
end

function cmds.stacks(_, args)
  local recipe = require "dropprobe.recipes.stacks"
  local report = recipe.run{ filter = args.filter, limit = args.limit, duration = args.duration,
    mode = args.mode }
  if args.json then
    print(('{"stacks":%s,"matched":%d,"with_stack":%d,"sampled":%s,"lost":%d}'):format(
      encode_list(report.stacks), report.matched, report.with_stack, tostring(report.sampled),
      report.lost))
  elseif args.folded then
    for _, l in ipairs(recipe.folded(report)) do print(l) end
  else
    io.write(recipe.format(report))
  end
  lost_note(report.lost)
  return 0
end

function cmds.ports(_, args)
  local recipe = require "dropprobe.recipes.ports"
  local report = recipe.run{ filter = args.filter, duration = args.duration, mode = args.mode }
  if args.json then
    print(('{"ports":%s,"unattributed":%s,"lost":%d}'):format(encode_list(report.ports),
      encode_map(report.unattributed), report.lost))
  else
    io.write(recipe.format(report))
  end
  lost_note(report.lost)
  return 0
end

function cmds.top(_, args)
  local recipe = require "dropprobe.recipes.top"
  local st = recipe.run{ interval = args.interval, duration = args.duration, filter = args.filter,
    mode = args.mode }
  lost_note(st.lost)
  return 0
end

function cmds.doctor(dp, args)
  local checks = dp.doctor()
  if args.json then
    local out = {}
    for _, c in ipairs(checks) do
      out[#out + 1] = ('{"name":%s,"ok":%s,"detail":%s%s}'):format(json().encode(c.name),
        tostring(c.ok), json().encode(c.detail or ""), c.fix and (',"fix":' .. json().encode(c.fix)) or "")
    end
    print('{"checks":[' .. table.concat(out, ",") .. "]}")
  else
    for _, c in ipairs(checks) do
      print(("%-22s %-4s %s"):format(c.name, c.ok and "yes" or "NO", c.detail or ""))
      if not c.ok and c.fix then print(("%-22s      -> %s"):format("", c.fix)) end
    end
  end
  return 0
end

function cmds.cleanup(dp, args)
  local gone = dp.cleanup{ dry_run = args.dry_run }
  for _, name in ipairs(gone) do
    print((args.dry_run and "would remove " or "removed ") .. name)
  end
  if #gone == 0 then print("nothing left behind by dropprobe") end
  return 0
end

function cmds.shell(_, _, argv)
  local lua = (argv and argv[-1]) or "lua5.4"
  if not lua:match("^[%w_./%-]+$") then lua = "lua5.4" end
  local ok, _, code = os.execute(lua .. [[ -e 'require("dropprobe.shell").install()' -i]])
  return ok and 0 or (code or 1)
end

-- An error as a user reads it: without the Lua source positions
-- ("…/dropprobe/init.lua:625: ") that error() and luaL_error put in front.
local function plain(msg)
  local s, n = tostring(msg), 1
  while n > 0 do s, n = s:gsub("^[^%s:]*%.lua:%d+: ", "") end
  return s
end
M._plain = plain

--- Run the command line; returns the exit code.
-- @tparam table argv the `arg` table
-- @treturn integer exit code
function M.main(argv)
  local p = parser()
  local ok, args = p:pparse(argv)
  if not ok then
    io.stderr:write("dropprobe: ", args, "\n", p:get_usage(), "\n")
    return 1
  end
  if not args.command then
    print(p:get_help())
    return 0
  end
  local dp = require "dropprobe"
  if args.command ~= "shell" then dp.core.catch_signals() end
  local good, rc = pcall(cmds[args.command], dp, args, argv)
  local sig = dp.core.signal()
  if not good then
    io.stderr:write("dropprobe ", args.command, ": ", plain(rc), "\n")
    return sig and 128 + sig or 2
  end
  if sig then return 128 + sig end
  return rc
end

return M
