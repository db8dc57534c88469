--- The `dropprobe` command: argparse over the library and its recipes.
-- Exit codes: 0 success, 1 usage, 2 kernel refusal.
-- @module dropprobe.cli
local argparse = require "argparse"

local M = {}

local function parser()
  local p = argparse("dropprobe", "Find where and why the Linux kernel drops packets, "
    .. "with nothing but tracefs.")
  p:command_target("command")
  p:require_command(false)
  p:command("reasons", "This kernel's drop reasons, number and name.")
    :option("--json", "Print one JSON object.", false):args(0)
  p:command("cleanup", "Remove instances left by dropprobe processes that no longer exist.")
    :flag("--dry-run", "Only list what would be removed.")
  return p
end

local function cmd_reasons(dp, args)
  local r = dp.reasons()
  local nums = {}
  for k in pairs(r) do if math.type(k) == "integer" then nums[#nums + 1] = k end end
  table.sort(nums)
  if args.json then
    local cjson = require "cjson"
    local out = {}
    for _, n in ipairs(nums) do out[#out + 1] = { number = n, name = r[n] } end
    print(cjson.encode({ reasons = out }))
  else
    for _, n in ipairs(nums) do print(string.format("%4d  %s", n, r[n])) end
  end
  return 0
end

local function cmd_cleanup(dp, args)
  local gone = dp.cleanup{ dry_run = args.dry_run }
  for _, name in ipairs(gone) do
    print((args.dry_run and "would remove " or "removed ") .. "instances/" .. name)
  end
  if #gone == 0 then print("nothing left behind by dropprobe") end
  return 0
end

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
  local cmds = { reasons = cmd_reasons, cleanup = cmd_cleanup }
  local good, rc = pcall(cmds[args.command], dp, args)
  if not good then
    io.stderr:write("dropprobe ", args.command, ": ", tostring(rc), "\n")
    return 2
  end
  return rc
end

return M
