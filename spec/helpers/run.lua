-- Running dropprobe and example scripts as separate processes, in the
-- foreground or in the background (to send them traffic and signals).
local socket = require "socket"
local run = {}

run.ENV = 'LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;" LUA_CPATH="./build/?.so;;" '
run.LUA = run.ENV .. "lua5.4 "
run.DROPPROBE = run.LUA .. "bin/dropprobe "

--- Run a command; returns its output (stdout and stderr) and exit code.
function run.cmd(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

--- Run a shell command; returns its output (stdout and stderr) and
-- whether it succeeded.
function run.sh(cmd)
  local out, code = run.cmd(cmd)
  return out, code == 0
end

--- Run fn(ns) with a network namespace made for it (`dpspec_<tag>_<pid>`,
-- its loopback up, then each of `setup`'s commands run inside it, e.g. "tc
-- qdisc add dev lo root pfifo limit 0"); the namespace is deleted however
-- fn ends, and fn's error raised after.
function run.with_netns(tag, setup, fn)
  local ns = ("dpspec_%s_%s"):format(tag, (run.sh("echo $PPID")):match("%d+") or "x")
  local ok, err = pcall(function()
    assert(select(2, run.sh("ip netns add " .. ns)), "ip netns add " .. ns)
    assert(select(2, run.sh("ip -n " .. ns .. " link set lo up")))
    for _, c in ipairs(setup or {}) do
      local out, done = run.sh("ip netns exec " .. ns .. " " .. c)
      assert(done, c .. ": " .. out)
    end
    fn(ns)
  end)
  run.sh("ip netns del " .. ns)
  assert(ok, err)
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- The tracefs instances of process pid (`dropprobe-<pid>-<n>`), each
-- `{ name =, dir =, counting = }`: counting when a kernel hist trigger on
-- its drop event counts there (nothing of it is held open then).
function run.instances(pid)
  local dir = "/sys/kernel/tracing/instances"
  local p = io.popen("ls " .. dir .. " 2>/dev/null")
  local names = p:read("a")
  p:close()
  local out = {}
  for name in names:gmatch("[^\n]+") do
    if name:match("^dropprobe%-" .. pid .. "%-%d+$") then
      local t = slurp(dir .. "/" .. name .. "/events/skb/kfree_skb/trigger") or ""
      out[#out + 1] = { name = name, dir = dir .. "/" .. name,
        counting = (t:find("\nhist:", 1, true) or t:find("^hist:")) and true or false }
    end
  end
  return out
end

-- whether process pid has a hist trigger on an event of its own instance
local function counting(pid)
  for _, i in ipairs(run.instances(pid)) do
    if i.counting then return true end
  end
  return false
end

--- Start a command in the background: { pid =, wait = fn -> out, code, signal = fn(sig) }.

function run.bg(cmd)
  local base = os.tmpname()
  local sh = ("(%s > %s.out 2> %s.err & echo $! > %s.pid; wait $!; echo $? > %s.rc) &"):format(
    cmd, base, base, base, base)
  assert(os.execute(sh))
  local pid
  for _ = 1, 100 do
    pid = tonumber(slurp(base .. ".pid"))
    if pid then break end
    socket.sleep(0.02)
  end
  local h = { pid = pid }
  function h.signal(sig) os.execute(("kill -%s %d 2>/dev/null"):format(sig, pid)) end
  --- Wait until the process reads its tracefs pipe (everything is set up
  -- then: drops made from now on are its to see). Startup is slow under
  -- qemu's emulator, so no fixed sleep is long enough.
  -- ready when reading its trace pipe, or counting with a kernel hist
  -- trigger in its own instance (nothing to read then)
  function h.ready(timeout)
    -- generous: under qemu's emulation a start that reads the kernel's BTF
    -- and kallsyms beside another process takes tens of seconds
    local t = socket.gettime() + (timeout or 90)
    repeat
      -- readlink, not `ls -l`: ls looks owners up through NSS, whose
      -- refused unix-socket connects are kfree_skb drops (every kfree_skb
      -- is a drop on a kernel without drop reasons)
      local p = io.popen(("readlink /proc/%d/fd/* 2>/dev/null"):format(pid))
      local fds = p:read("a")
      p:close()
      if fds:find("trace_pipe", 1, true) then return true end
      if counting(pid) then return true end
      socket.sleep(0.05)
    until socket.gettime() > t or not slurp(("/proc/%d/stat"):format(pid))
    error(("the process %d never opened a trace pipe: %s"):format(pid,
      (slurp(base .. ".err") or "") .. (slurp(base .. ".out") or "")), 2)
  end
  --- Wait for the line a long-running command prints on stderr once its
  -- probes are armed ("dropprobe watch: listening: ..."); returns it.
  function h.listening(timeout)
    local t = socket.gettime() + (timeout or 90)
    repeat
      local err = slurp(base .. ".err") or ""
      local line = err:match("[^\n]*listening: [^\n]*\n")
      if line then return line end
      socket.sleep(0.05)
    until socket.gettime() > t or not slurp(("/proc/%d/stat"):format(pid))
    error(("the process %d never said it was listening: %s"):format(pid,
      (slurp(base .. ".err") or "") .. (slurp(base .. ".out") or "")), 2)
  end
  --- Wait until the process has printed `n` lines on stdout (or `timeout`
  -- seconds, 60 by default, or its end); returns what it printed so far.
  function h.lines(n, timeout)
    local t = socket.gettime() + (timeout or 60)
    local out
    repeat
      out = slurp(base .. ".out") or ""
      local _, got = out:gsub("\n", "")
      if got >= n then break end
      socket.sleep(0.05)
    until socket.gettime() > t or not slurp(("/proc/%d/stat"):format(pid))
    return out
  end
  function h.wait(timeout)
    local t = socket.gettime() + (timeout or 30)
    local rc
    repeat
      rc = tonumber(slurp(base .. ".rc"))
      if not rc then socket.sleep(0.05) end
    until rc or socket.gettime() > t
    if not rc then h.signal("KILL") end
    local out, err = slurp(base .. ".out") or "", slurp(base .. ".err") or ""
    for _, ext in ipairs({ "", ".out", ".err", ".pid", ".rc" }) do os.remove(base .. ext) end
    return out, rc, err
  end
  return h
end

run.sleep = socket.sleep

return run
