--- Tasks outside nginx: each task of client:map is a coroutine. When one sends a
-- request it hands the curl session to one libcurl multi handle and yields; a wait
-- (between retries, for the rate-limit budget, for the login in flight) becomes a
-- timer or an event. The loop in drive() resumes tasks as their transfers finish or
-- their timers fire, so many requests share the wire and no wait blocks the others.
--
-- One scheduler per Lua state (this module), so a task may use any curl client. The
-- C core never calls back into Lua: the loop asks the multi handle which transfers
-- are done (multi:poll) and does everything else here.

local core = require "soracom.groups.core"

local now = core.now
local unpack = table.unpack or unpack -- luacheck: ignore 143

local scheduler = {}

-- What a task yields to the loop; any other yield that reaches the loop is a stray.
local PARKED = setmetatable({}, { __tostring = function() return "soracom.groups parked task" end })
-- What a task parked for good is woken with when nothing could ever wake it.
local STUCK = {}

local task_of = setmetatable({}, { __mode = "k" }) -- coroutine -> its task
local ready = {}        -- tasks to resume, in order
local timers = {}       -- { at = seconds, task, wait }
local groups = {}       -- the batches running, each { source, concurrency, running, ... }
local multi             -- core.multi(), made at the first transfer
local transfers = {}    -- session -> { task, wait }
local transfer_count = 0

--- The task running now, or nil outside any.
function scheduler.current()
  return task_of[coroutine.running() or false]
end

-- Parks the running task until wake(task, wait, ...) with this wait; returns what
-- wake passed.
local function park(task, wait)
  task.wait = wait
  local results = { coroutine.yield(PARKED) }
  if results[1] == STUCK then
    error("soracom.groups: every task is waiting and nothing is left that could wake them "
      .. "(a task waits for another that waits for it?)", 0)
  end
  return unpack(results)
end

local function wake(task, wait, ...)
  if task.wait ~= wait or task.wait == nil then return end -- woken already (a timeout and a signal)
  task.wait = nil
  task.wake_values = { n = select("#", ...), ... }
  ready[#ready + 1] = task
end

local function add_timer(task, wait, seconds)
  timers[#timers + 1] = { at = now() + seconds, task = task, wait = wait }
end

--- Waits `seconds` in the running task while the others go on.
function scheduler.sleep(seconds)
  local task = assert(scheduler.current(), "scheduler.sleep outside a task")
  local wait = {}
  add_timer(task, wait, seconds)
  park(task, wait)
end

--- Runs the prepared curl session's transfer on the multi handle and parks the
-- running task until it ends: returns true then, or false when it was cancelled
-- (cancel), or nil, message when the multi handle refused it.
function scheduler.transfer(session)
  local task = assert(scheduler.current(), "scheduler.transfer outside a task")
  multi = multi or core.multi()
  local added, why = multi:add(session)
  if not added then return nil, why end
  local wait = {}
  transfers[session] = { task = task, wait = wait }
  transfer_count = transfer_count + 1
  local finished = park(task, wait)
  return finished
end

local function end_transfer(session, finished)
  local transfer = transfers[session]
  if transfer == nil then return end
  transfers[session] = nil
  transfer_count = transfer_count - 1
  wake(transfer.task, transfer.wait, finished)
end

--- Stops the transfer of `session`, if it is running: its task wakes to false.
function scheduler.cancel(session)
  if transfers[session] == nil then return end
  multi:remove(session)
  end_transfer(session, false)
end

local Event = {}
Event.__index = Event

--- An event tasks can wait for until someone signals it.
function scheduler.event()
  return setmetatable({ waiters = {} }, Event)
end

--- Parks the running task until signal() or `timeout` seconds. Returns false without
-- waiting outside a task, where nothing else could run to signal it.
function Event:wait(timeout)
  local task = scheduler.current()
  if task == nil then return false end
  local wait = {}
  self.waiters[#self.waiters + 1] = { task = task, wait = wait }
  if timeout then add_timer(task, wait, timeout) end
  park(task, wait)
  return true
end

--- Wakes every task waiting now.
function Event:signal()
  local waiters = self.waiters
  self.waiters = {}
  for _, waiter in ipairs(waiters) do wake(waiter.task, waiter.wait) end
end

local function group_done(group)
  return group.exhausted and group.running == 0
end

-- A group whose jobs have all finished leaves the loop, and wakes the task that
-- waits for it (a map within a map).
local function retire(group)
  for i, g in ipairs(groups) do
    if g == group then table.remove(groups, i) break end
  end
  if group.waiter then wake(group.waiter, group) end
end

local function finish(task, ok, ...)
  local group = task.group
  task_of[task.co] = nil
  group.running = group.running - 1
  task.job.finish(ok, ...)
  if group_done(group) then retire(group) end
end

local function resume(task)
  local co, values = task.co, task.wake_values or { n = 0 }
  task.wake_values = nil
  local results = { n = 0 }
  local function keep(...) results = { n = select("#", ...), ... } end
  keep(coroutine.resume(co, unpack(values, 1, values.n)))
  if coroutine.status(co) == "dead" then
    if results[1] then
      finish(task, true, unpack(results, 2, results.n))
    else
      finish(task, false, results[2], debug.traceback(co, tostring(results[2])))
    end
  elseif results[2] ~= PARKED then
    -- fn yielded past the task: nothing would ever resume it
    finish(task, false, "soracom.groups: the function yielded (coroutine.yield) to the task running it; "
      .. "run your own coroutines inside it instead", debug.traceback(co))
  end
end

-- Starts tasks until each group runs as many as it may.
local function fill()
  for _, group in ipairs({ unpack(groups) }) do -- (a group may retire meanwhile)
    while not group.exhausted and group.running < group.concurrency do
      local job = group.source()
      if job == nil then
        group.exhausted = true
        if group.running == 0 then retire(group) end
      else
        local task = { co = coroutine.create(job.run), group = group, job = job }
        task_of[task.co] = task
        group.running = group.running + 1
        ready[#ready + 1] = task
      end
    end
  end
end

-- A timer whose task was woken otherwise (an event signalled before its timeout)
-- is stale.
local function stale(timer)
  return timer.task.wait ~= timer.wait
end

local function fire_timers()
  local at, due = now(), {}
  for i = #timers, 1, -1 do
    local timer = timers[i]
    if stale(timer) or timer.at <= at then
      table.remove(timers, i)
      if not stale(timer) then due[#due + 1] = timer end
    end
  end
  for i = #due, 1, -1 do wake(due[i].task, due[i].wait) end
end

local function next_timer()
  local first
  for _, timer in ipairs(timers) do
    if not stale(timer) and (first == nil or timer.at < first) then first = timer.at end
  end
  return first
end

-- Every task waits and no transfer or timer can wake one: wake them to an error.
local function unstick()
  for _, task in pairs(task_of) do
    if task.wait ~= nil then wake(task, task.wait, STUCK) end
  end
  assert(#ready > 0, "soracom.groups: scheduler: a group is not done, yet has no task")
end

-- With an idle wait (a sleep option that yields to the application's own loop),
-- transfers are polled this often instead of waited for inside libcurl.
local IDLE_STEP = 0.005

-- Waits for a transfer to end or the first timer, at most `timeout` seconds: inside
-- libcurl, or through `idle` when the application's loop must go on meanwhile.
local function await_transfers(timeout, idle)
  local ended = multi:poll(idle and 0 or timeout)
  if idle and #ended == 0 then
    idle(math.min(timeout, IDLE_STEP))
    ended = multi:poll(0)
  end
  for _, session in ipairs(ended) do end_transfer(session, true) end
end

-- Runs the loop until `group` is done.
local function drive(group)
  while not group_done(group) do
    fill()
    while #ready > 0 do
      resume(table.remove(ready, 1))
      fill()
    end
    if group_done(group) then break end
    local first = next_timer()
    if transfer_count > 0 then
      await_transfers(first and math.max(0, first - now()) or 1, group.idle)
    elseif first then
      (group.idle or core.sleep)(math.max(0, first - now()))
    else
      unstick()
    end
    fire_timers()
  end
end

--- Runs jobs until source() gives no more, at most `concurrency` at once. A job is
-- { run = function, finish = function(ok, ...) }: run is the task's body, and finish
-- gets true and what it returned, or false, the error it raised and a traceback.
-- Inside a task (a map within a map) the outer loop runs the jobs while the task waits.
-- Outside, this call drives the loop until they are done; `idle(seconds)`, when given,
-- is how it waits (an application's own sleep, which lets its loop run meanwhile).
function scheduler.run(source, concurrency, idle)
  if type(concurrency) ~= "number" or concurrency < 1 then
    error("soracom.groups: scheduler.run: concurrency must be 1 or more (got " .. tostring(concurrency) .. ")", 2)
  end
  local group = { source = source, concurrency = concurrency, running = 0, exhausted = false,
    idle = idle }
  groups[#groups + 1] = group
  local parent = scheduler.current()
  if parent then
    group.waiter = parent
    park(parent, group) -- the loop fills the group: a job may start at once
  else
    drive(group)
  end
end

--- How many transfers and tasks are running (for the specs and close()).
function scheduler.counts()
  local tasks = 0
  for _ in pairs(task_of) do tasks = tasks + 1 end
  return transfer_count, tasks
end

return scheduler
