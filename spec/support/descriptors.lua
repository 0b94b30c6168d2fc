-- This process's descriptors, read from /proc (Linux), for the specs about sockets.
local descriptors = {}

--- This process's pid.
function descriptors.own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return pid
end

--- The descriptors of process `pid`, as ls shows them: { [fd] = "socket:[1234]", ... }.
-- ls writes to a file, not to a pipe of this process's: a pipe's write end would be
-- among them until io.popen closes it, which ls may or may not see first.
function descriptors.of(pid)
  local path = os.tmpname()
  local ok = os.execute("ls -l /proc/" .. pid .. "/fd >" .. path .. " 2>/dev/null")
  assert(ok == true or ok == 0, "ls /proc/" .. pid .. "/fd failed")
  local list = {}
  for line in io.lines(path) do
    local fd, target = line:match("(%d+) %-> (.*)$")
    if fd then
      list[tonumber(fd)] = target
    end
  end
  os.remove(path)
  return list
end

--- The set of sockets in such a list, and how many.
function descriptors.sockets_in(list)
  local set, n = {}, 0
  for _, target in pairs(list) do
    if target:match("^socket:") then
      set[target] = true
      n = n + 1
    end
  end
  return set, n
end

return descriptors
