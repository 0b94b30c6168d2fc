--- What a task must undo when it is dropped before it could: cancelled, collected,
-- raised past, or yielded away. A request admitted by the rate-limit budget must tell
-- it that its answer will never come, or the API's queue would wait for it until a
-- fixed timeout.
--
-- The schedulers (scheduler.lua, transport/nginx_tasks.lua) track each task's
-- coroutine and run what is left when they drop it; code running in a task pushes an
-- undo function and pops it once done. Outside a tracked task nothing is kept: a plain
-- call that raises has nothing left in flight.

local unwind = {}

local pending = setmetatable({}, { __mode = "k" }) -- tracked coroutine -> its undo functions
local running = coroutine.running

--- The number of coroutines tracked, counted as they come and go by hand: one the
-- collector took is still counted (so 0 surely means that nothing is tracked: a
-- plain call looks no further than that).
unwind.tracked = 0

--- Tracks `co`, a task's coroutine.
function unwind.track(co)
  if pending[co] == nil then
    pending[co] = {}
    unwind.tracked = unwind.tracked + 1
  end
end

--- Pushes `undo` for the running task (nothing outside a tracked one); returns a
-- handle for pop.
function unwind.push(undo)
  local list = pending[running() or false]
  if list == nil then return nil end
  list[#list + 1] = undo
  return undo
end

--- Whether the running coroutine is a tracked task (so that a push would keep its
-- undo): a caller outside any skips making one.
function unwind.tracking()
  return pending[running() or false] ~= nil
end

--- Pops the handle push gave, its work done.
function unwind.pop(handle)
  if handle == nil then return end
  local list = pending[running() or false]
  if list == nil then return end
  for i = #list, 1, -1 do
    if list[i] == handle then
      table.remove(list, i)
      return
    end
  end
end

--- Runs what the task of `co` left to undo, newest first, and stops tracking it.
-- Called by the scheduler that drops it, from outside it. An undo that raises is
-- skipped: the others still run.
function unwind.run(co)
  local list = pending[co]
  if list == nil then return end
  pending[co] = nil
  unwind.tracked = unwind.tracked - 1
  for i = #list, 1, -1 do pcall(list[i]) end
end

return unwind
