--- Calling the client's debug hook: one line, never a secret, from any part of the
-- client. The hook runs in a coroutine of its own, so that a yield from it (a loop's
-- I/O, say) is a clear error here rather than a task or login yielded away; inside
-- nginx, I/O that yields to nginx passes through as usual.

local hook = {}

local YIELDED = "soracom.groups: the debug hook yielded (coroutine.yield): it must return without yielding"

--- Calls client's debug hook, if any, with "soracom-groups: " .. text. What the hook
-- raises is raised again.
function hook.debug(client, text)
  local call = client._debug
  if call == nil then return end
  local co = coroutine.create(call)
  local ok, err = coroutine.resume(co, "soracom-groups: " .. text)
  if not ok then error(err, 0) end
  if coroutine.status(co) ~= "dead" then error(YIELDED, 0) end
end

return hook
