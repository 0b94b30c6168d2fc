-- finalizable(fn): an object whose finalizer is fn: a table on 5.2+, a newproxy on 5.1
-- and LuaJIT, whose tables take no __gc.
local newproxy = rawget(_G, "newproxy")

return function(fn)
  if newproxy then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = fn
    return proxy
  end
  return setmetatable({}, { __gc = fn })
end
