-- Runs Lua code in a child process of the same Lua under `ulimit -n limit` (with this
-- process's package paths); returns what it printed, stderr included.
local command = require "spec.support.command"

local quote = command.quote

return function(limit, code)
  local path = os.tmpname()
  local file = assert(io.open(path, "w"))
  file:write(string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath), code)
  file:close()
  local out = command.output("sh -c " .. quote("ulimit -n " .. limit .. " && exec " .. command.LUA .. " " .. path)
    .. " 2>&1")
  os.remove(path)
  return out
end
