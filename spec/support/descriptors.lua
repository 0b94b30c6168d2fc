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
-- (The pipe io.popen reads this from is among this process's.)
function descriptors.of(pid)
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
  local list = {}
  for line in p:lines() do
    local fd, target = line:match("(%d+) %-> (.*)$")
    if fd then
      list[tonumber(fd)] = target
    end
  end
  p:close()
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
