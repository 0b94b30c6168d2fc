-- Runs Lua code in a child process of the same Lua under `ulimit -n limit` (with this
-- process's package paths); returns what it printed, stderr included.
local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

return function(limit, code)
  local path = os.tmpname()
  local file = assert(io.open(path, "w"))
  file:write(string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath), code)
  file:close()
  local pipe = assert(io.popen("sh -c " .. quote("ulimit -n " .. limit .. " && exec " .. LUA .. " " .. path)
    .. " 2>&1"))
  local out = pipe:read("*a")
  pipe:close()
  os.remove(path)
  return out
end
