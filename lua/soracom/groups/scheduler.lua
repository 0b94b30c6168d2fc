--- Tasks outside nginx. Each task of client:map is a coroutine: a request it sends
-- goes to its client's libcurl multi handle and the task parks; a wait becomes a timer
-- or an event.
--
-- Who drives what: a run (one map, with the maps started inside its tasks) belongs to
-- its caller, and only its step() resumes its tasks; a run nobody drives makes no
-- progress and never runs inside another one. Free tasks (a client's login) belong to
-- no run: every driver resumes them, so whoever waits for a login carries it. A run
-- that is cancelled, or collected unfinished, removes its transfers.
--
-- A task registers nothing before it has yielded: it yields what it waits for, and
-- the driver registers it. A yield that fails (Lua 5.1 cannot yield across pcall or
-- an iterator) leaves nothing behind that could wake the task twice.
--
-- The C core never calls back into Lua: a step asks the multi handles which transfers
-- ended (multi:poll) and does everything else here.

local core = require "soracom.groups.core"
local unwind = require "soracom.groups.unwind"

local now = core.now
local unpack = table.unpack or unpack -- luacheck: ignore 143

local scheduler = {}

-- What a task yields to its driver, with what it waits for; any other yield that
-- reaches the driver is a stray.
local PARKED = setmetatable({}, { __tostring = function() return "soracom.groups parked task" end })
-- What a task parked for good is woken with when nothing could ever wake it.
local STUCK = {}

-- With a waiter that only sleeps (an application's loop), transfers are polled this
-- often instead of waited for inside libcurl.
local IDLE_STEP = 0.005

local task_of = setmetatable({}, { __mode = "k" }) -- coroutine -> its task
local transfer_of = {}                             -- session -> { task, wait, multi }
local live_groups = setmetatable({}, { __mode = "k" }) -- the groups running, in every run

-- The waits in progress through an application's loop: wait -> { waiter, by_multi }.
-- A loop that watches a descriptor must be told before it closes (cqueues raises
-- otherwise): removing a transfer or closing a multi handle first tells the waiter's
-- forget about the descriptors of that multi a wait is watching.
local waits = {}

local function forget_sockets(multi)
  for entry in pairs(waits) do
    local fds = entry.by_multi[multi]
    if fds and #fds > 0 and entry.waiter.forget then
      entry.by_multi[multi] = nil
      entry.waiter.forget(fds)
    end
  end
end

-- An owner of tasks: a run, or the free tasks. ready: tasks to resume, in order;
-- timers: { at, task, wait }; multis: multi -> its transfers of this owner; tasks: the
-- owner's tasks; groups: the maps running (a run's first, then those started in its
-- tasks).
local function new_owner()
  return { ready = {}, timers = {}, multis = {}, tasks = {}, groups = {} }
end

local free = new_owner()
-- Runs collected unfinished (their finalizer queues them; the next step cancels them:
-- a finalizer may run anywhere, so it changes nothing itself).
local abandoned = {}

-- Whether the running coroutine can yield here. Lua 5.3+ says so; PUC Lua 5.1 cannot
-- yield across a C function (pcall), an iterator called by a for loop or a
-- metamethod, which its stack shows (an unnamed Lua frame other than the coroutine's
-- own function is taken for a metamethod: at worst a call blocks that could have
-- waited). LuaJIT and 5.2 yield across pcall, iterators and metamethods, and are
-- taken to yield anywhere.
local isyieldable = coroutine.isyieldable
local PUC_51 = _VERSION == "Lua 5.1" and rawget(_G, "jit") == nil

local function can_yield()
  if isyieldable then return isyieldable() end
  if not PUC_51 then return true end
  local level = 3
  while true do
    local info = debug.getinfo(level, "Sn")
    if info == nil then return true end
    if info.what == "C" or info.name == "(for generator)" or info.namewhat == "metamethod" then return false end
    if info.what == "Lua" and info.name == nil then
      local caller = debug.getinfo(level + 1, "S")
      if caller ~= nil and caller.what ~= "tail" then return false end
    end
    level = level + 1
  end
end

--- The task running now, or nil outside any, or where it cannot yield (then a call
-- blocks, as outside tasks, instead of failing).
local running = coroutine.running

--- The number of tasks in task_of, counted as they come and go by hand: one the
-- collector took is still counted (so 0 surely means that no task runs: the
-- transports' plain calls look no further).
scheduler.live = 0

function scheduler.current()
  local task = task_of[running() or false]
  if task and can_yield() then return task end
  return nil
end

-- Parks the running task until it is woken with this wait; returns what wake passed.
-- The driver registers `wait` once the yield has happened.
local function park(wait)
  local results = { n = 0 }
  local function keep(...) results = { n = select("#", ...), ... } end
  keep(coroutine.yield(PARKED, wait))
  if results[1] == STUCK then
    error("soracom.groups: every task is waiting and nothing is left that could wake them "
      .. "(a task waits for another that waits for it?)", 0)
  end
  return unpack(results, 1, results.n)
end

local function wake(task, wait, ...)
  if task.wait ~= wait or task.wait == nil then return end -- woken already (a timeout and a signal)
  task.wait = nil
  task.wake_values = { n = select("#", ...), ... }
  local ready = task.owner.ready
  ready[#ready + 1] = task
end

local function add_timer(task, wait, seconds)
  local timers = task.owner.timers
  timers[#timers + 1] = { at = now() + seconds, task = task, wait = wait }
end

local function count_transfer(owner, multi, delta)
  local count = (owner.multis[multi] or 0) + delta
  owner.multis[multi] = count > 0 and count or nil
end

local function end_transfer(session, ...)
  local transfer = transfer_of[session]
  if transfer == nil then return end
  transfer_of[session] = nil
  count_transfer(transfer.task.owner, transfer.multi, -1)
  wake(transfer.task, transfer.wait, ...)
end

local register = {}

function register.sleep(task, wait)
  add_timer(task, wait, wait.seconds)
end

function register.transfer(task, wait)
  local added, why = wait.multi:add(wait.session)
  if not added then
    wake(task, wait, nil, why)
    return
  end
  transfer_of[wait.session] = { task = task, wait = wait, multi = wait.multi }
  count_transfer(task.owner, wait.multi, 1)
end

function register.event(task, wait)
  local waiters = wait.event.waiters
  waiters[#waiters + 1] = { task = task, wait = wait }
  if wait.timeout then add_timer(task, wait, wait.timeout) end
end

function register.group(task, wait)
  local groups = task.owner.groups
  wait.group.waiter, wait.group.wait = task, wait
  groups[#groups + 1] = wait.group
  live_groups[wait.group] = true
end

--- Waits `seconds` in the running task while the others go on.
function scheduler.sleep(seconds)
  assert(task_of[coroutine.running() or false], "scheduler.sleep outside a task")
  park({ kind = "sleep", seconds = seconds })
end

--- Runs the prepared curl session's transfer on `multi` and parks the running task
-- until it ends: returns true then, or false when it was cancelled, or nil, message
-- when the multi handle refused it.
function scheduler.transfer(session, multi)
  assert(task_of[coroutine.running() or false], "scheduler.transfer outside a task")
  return park({ kind = "transfer", session = session, multi = multi })
end

--- Stops the transfer of `session`, if it is running: its task wakes to false.
function scheduler.cancel(session)
  local transfer = transfer_of[session]
  if transfer == nil then return end
  forget_sockets(transfer.multi)
  transfer.multi:remove(session)
  end_transfer(session, false)
end

local function group_done(group)
  return group.exhausted and group.running == 0
end

-- A group whose jobs have all finished leaves its owner, and wakes the task that
-- waits for it (a map within a map).
local function retire(group)
  local groups = group.owner.groups
  for i, g in ipairs(groups) do
    if g == group then table.remove(groups, i) break end
  end
  if group.waiter then wake(group.waiter, group.wait) end
end

local function forget(task)
  if task_of[task.co] then scheduler.live = scheduler.live - 1 end
  task_of[task.co] = nil
  task.owner.tasks[task] = nil
end

local function finish(task, ok, ...)
  if task.finished then return end -- (cancelled while it ran)
  task.finished = true
  forget(task)
  unwind.run(task.co)
  local group = task.group
  if group then group.running = group.running - 1 end
  task.job.finish(ok, ...)
  if group and group_done(group) then retire(group) end
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
  elseif results[2] == PARKED then
    if task.finished then return end -- its run was cancelled while it ran: it waits for nothing
    local wait = results[3]
    task.wait = wait
    register[wait.kind](task, wait)
  else
    -- It yielded past the task: nothing would ever resume it.
    finish(task, false, task.job.stray_yield or "soracom.groups: the function yielded (coroutine.yield) to "
      .. "the task running it; run your own coroutines inside it instead", debug.traceback(co), "yielded")
  end
end

local function new_task(owner, job, group)
  local task = { co = coroutine.create(job.run), owner = owner, group = group, job = job }
  task_of[task.co] = task
  scheduler.live = scheduler.live + 1
  unwind.track(task.co)
  owner.tasks[task] = true
  local ready = owner.ready
  ready[#ready + 1] = task
  return task
end

--- Starts `job` as a free task: one no run owns, which every driver resumes (a
-- client's login). job is as for scheduler.start; its finish also gets "yielded" as a
-- fourth value when the job yielded past the task.
function scheduler.spawn(job)
  new_task(free, job)
end

-- Starts tasks until each group of `owner` runs as many as it may.
local function fill(owner)
  for _, group in ipairs({ unpack(owner.groups) }) do -- (a group may retire meanwhile)
    while not group.exhausted and group.running < group.concurrency do
      local job = group.source()
      if job == nil then
        group.exhausted = true
        if group.running == 0 then retire(group) end
      else
        group.running = group.running + 1
        new_task(owner, job, group)
      end
    end
  end
end

-- Removes every transfer and task of `owner`; with `report`, each running job
-- finishes with `why`.
local function cancel_owner(owner, why, report)
  if owner.cancelled then return end
  owner.cancelled = true
  for session, transfer in pairs(transfer_of) do
    if transfer.task.owner == owner then
      forget_sockets(transfer.multi)
      transfer.multi:remove(session)
      transfer_of[session] = nil
    end
  end
  local tasks = owner.tasks
  owner.tasks, owner.ready, owner.timers, owner.multis, owner.groups = {}, {}, {}, {}, {}
  for task in pairs(tasks) do
    task.finished = true
    if task_of[task.co] then scheduler.live = scheduler.live - 1 end
    task_of[task.co] = nil
    unwind.run(task.co)
    if report and task.group then task.job.finish(false, why) end
  end
end

local function cancel_abandoned()
  while #abandoned > 0 do cancel_owner(table.remove(abandoned), nil, false) end
end

--- Cancels the runs collected unfinished (what every step does first): for the
-- transport's plain calls and close(), which run no step.
scheduler.tidy = cancel_abandoned

--- How many more transfers the maps running now may start, beyond those on the wire:
-- the sockets they may still open.
function scheduler.reserved()
  local total, transfers = 0, 0
  for group in pairs(live_groups) do
    if not group_done(group) and not group.owner.cancelled then total = total + group.concurrency end
  end
  for _ in pairs(transfer_of) do transfers = transfers + 1 end
  return math.max(0, total - transfers)
end

-- A timer whose task was woken otherwise (an event signalled before its timeout)
-- is stale.
local function stale(timer)
  return timer.task.wait ~= timer.wait
end

local function fire_timers(owner, at)
  local timers, due = owner.timers, {}
  at = at or now()
  for i = #timers, 1, -1 do
    local timer = timers[i]
    if stale(timer) or timer.at <= at then
      table.remove(timers, i)
      if not stale(timer) then due[#due + 1] = timer end
    end
  end
  for i = #due, 1, -1 do wake(due[i].task, due[i].wait) end
end

local function first_timer(owner, first)
  for _, timer in ipairs(owner.timers) do
    if not stale(timer) and (first == nil or timer.at < first) then first = timer.at end
  end
  return first
end

-- The multi handles with transfers of `owner` or of the free tasks, as a list.
local function involved_multis(owner)
  local list, seen = {}, {}
  for _, holder in ipairs({ owner, free }) do
    for multi in pairs(holder.multis) do
      if not seen[multi] then
        seen[multi] = true
        list[#list + 1] = multi
      end
    end
  end
  return list
end

local function end_transfers(ended)
  for _, session in ipairs(ended) do end_transfer(session, true) end
end

local function has_ready(owner)
  return #owner.ready > 0 or #free.ready > 0
end

-- Resumes the ready tasks of `owner` and the free ones, starting new tasks as slots
-- free up, until none is ready.
local function work(owner)
  cancel_abandoned()
  while true do
    if not owner.cancelled then fill(owner) end
    local task = table.remove(owner.ready, 1) or table.remove(free.ready, 1)
    if task == nil then return end
    if not task.finished then resume(task) end -- (a cancelled run's tasks are never resumed)
  end
end

-- Takes in what ended without waiting: transfers, timers.
local function collect(owner)
  for _, multi in ipairs(involved_multis(owner)) do end_transfers(multi:poll(0)) end
  fire_timers(owner)
  fire_timers(free)
end

-- The sockets libcurl watches on `multis`, and the soonest of its timeouts and
-- `timeout`; with `by_multi`, each multi's descriptors are listed there too.
local function watched(multis, timeout, by_multi)
  local sockets = {}
  for _, multi in ipairs(multis) do
    local after, list = multi:wait_hint()
    if after and (timeout == nil or after < timeout) then timeout = after end
    local fds = {}
    for _, socket in ipairs(list) do
      sockets[#sockets + 1] = socket
      fds[#fds + 1] = socket.fd
    end
    if by_multi then by_multi[multi] = fds end
  end
  return timeout, sockets
end

-- Waits up to `left` seconds for a transfer to end or a timer to come: inside
-- libcurl, or through the application's `waiter` (the client's: { wait = fn } or
-- { sleep = fn }, from its options of those names): its wait,
-- given the sockets to watch, or its sleep, which polls transfers every IDLE_STEP
-- when `transfers_too` (else they block, as a plain call's do). A wait the waiter was
-- asked for counts as waited, even when it returns early (a loop's may). Returns false
-- when nothing is left that could end a wait.
local function wait_some(owner, left, waiter, transfers_too)
  local first = first_timer(free, first_timer(owner))
  local timeout = first and math.max(0, math.min(left, first - now())) or left
  local multis = involved_multis(owner)
  if #multis > 0 then
    if waiter and waiter.wait then
      local entry = { waiter = waiter, by_multi = {} }
      local until_next, sockets = watched(multis, timeout, entry.by_multi)
      waits[entry] = true
      waiter.wait(math.max(0, until_next), sockets)
      waits[entry] = nil
    elseif waiter and transfers_too then
      waiter.sleep(math.min(timeout, IDLE_STEP))
    else
      local others = { unpack(multis, 2) }
      end_transfers(multis[1]:poll(timeout, others))
    end
  elseif first then
    local started = now()
    if waiter then
      if waiter.wait then waiter.wait(timeout, {}) else waiter.sleep(timeout) end
      fire_timers(owner, started + timeout)
      fire_timers(free, started + timeout)
    else
      core.sleep(timeout)
    end
  else
    return false
  end
  collect(owner)
  return true
end

-- Every task of `owner` waits and nothing can wake one: wake them to an error.
local function unstick(owner)
  for task in pairs(owner.tasks) do
    if task.wait ~= nil then wake(task, task.wait, STUCK) end
  end
  assert(#owner.ready > 0, "soracom.groups: scheduler: a run is not done, yet has no task")
end

local Run = {}
Run.__index = Run

-- run -> its owner record, out of the run's fields: tasks refer to the record, never
-- to the run, so that a run its caller dropped can be collected (and cancelled).
local owner_of = setmetatable({}, { __mode = "k" })

-- Calls `on_collect` when `object` is collected: a __gc on a proxy (Lua 5.1 and
-- LuaJIT have __gc for userdata only).
local function on_collect(object, on_collect_fn)
  local proxy
  if rawget(_G, "newproxy") then
    proxy = newproxy(true) -- luacheck: ignore 113
    getmetatable(proxy).__gc = on_collect_fn
  else
    proxy = setmetatable({}, { __gc = on_collect_fn })
  end
  object._collected = proxy
end

--- Starts running the jobs source() gives, at most `concurrency` at once, and returns
-- the run that drives them: run:step(timeout, waiter), run:wait_hint(), run:cancel(why)
-- and run:done(). A job is { run = function, finish = function(ok, ...) }: run is the
-- task's body; finish gets true and what it returned, or false, the error it raised
-- and a traceback. Nothing runs before the first step.
function scheduler.start(source, concurrency)
  if type(concurrency) ~= "number" or concurrency < 1 then
    error("soracom.groups: scheduler.start: concurrency must be 1 or more (got " .. tostring(concurrency)
      .. ")", 2)
  end
  local owner = new_owner()
  owner.groups[1] = { source = source, concurrency = concurrency, running = 0, exhausted = false, owner = owner }
  live_groups[owner.groups[1]] = true
  local run = setmetatable({}, Run)
  owner_of[run] = owner
  on_collect(run, function()
    if #owner.groups > 0 and not owner.cancelled then abandoned[#abandoned + 1] = owner end
  end)
  return run
end

--- Whether every job has finished (or the run was cancelled).
function Run:done()
  local owner = owner_of[self]
  return owner.cancelled or #owner.groups == 0
end

--- Does the work that is ready, then waits for more up to `timeout` seconds (0: does
-- not wait) and does it; `waiter` (see wait_some) is how it waits. Returns true
-- once the run is done.
function Run:step(timeout, waiter)
  local owner = owner_of[self]
  local deadline = now() + (timeout or 0)
  while true do
    work(owner)
    if self:done() then return true end
    collect(owner)
    if not has_ready(owner) then
      local left = deadline - now()
      if left <= 0 then return false end
      if not wait_some(owner, left, waiter, true) then unstick(owner) end
    end
  end
end

--- What to wait for before the next step: seconds (0 when work is ready; nil when
-- the run is done) and the sockets libcurl watches, { fd =, read =, write = } each.
function Run:wait_hint()
  local owner = owner_of[self]
  if self:done() then return nil, {} end
  if has_ready(owner) then return 0, {} end
  local first = first_timer(free, first_timer(owner))
  local timeout, sockets = watched(involved_multis(owner), first and math.max(0, first - now()))
  return timeout, sockets
end

--- Stops the run: no job starts, the transfers in flight are removed, and each job
-- that was running finishes with false, `why`.
function Run:cancel(why)
  cancel_owner(owner_of[self], why, true)
end

--- Runs jobs until source() gives no more, at most `concurrency` at once (see
-- scheduler.start). Inside a task (a map within a map) the task's run runs them while
-- the task waits; outside, this call drives them to the end, waiting through `waiter`
-- when given.
function scheduler.run(source, concurrency, waiter)
  if type(concurrency) ~= "number" or concurrency < 1 then
    error("soracom.groups: scheduler.run: concurrency must be 1 or more (got " .. tostring(concurrency)
      .. ")", 2)
  end
  local parent = scheduler.current()
  if parent and parent.group then
    local group = { source = source, concurrency = concurrency, running = 0, exhausted = false,
      owner = parent.owner }
    park({ kind = "group", group = group })
    return
  end
  local run = scheduler.start(source, concurrency)
  while not run:step(math.huge, waiter) do end
end

local Event = {}
Event.__index = Event

--- An event tasks can wait for until someone signals it.
function scheduler.event()
  return setmetatable({ waiters = {} }, Event)
end

--- Waits until signal() or `timeout` seconds. Inside a task it parks the task. Outside
-- any, it carries the free tasks (a login in flight) meanwhile: their transfers block,
-- as a plain call's do (unless `waiter` waits for sockets), and their timers wait
-- through `waiter` when given. Returns true
-- once signalled or timed out; false, at once, when nothing could signal it.
function Event:wait(timeout, waiter)
  local task = scheduler.current()
  if task then
    park({ kind = "event", event = self, timeout = timeout })
    return true
  end
  local mark = { signalled = false }
  self.waiters[#self.waiters + 1] = { mark = mark }
  local owner = new_owner()
  local deadline = now() + (timeout or math.huge)
  while true do
    work(owner)
    if mark.signalled then return true end
    collect(owner)
    if not has_ready(owner) and not mark.signalled then
      local left = deadline - now()
      if left <= 0 then return true end
      if not wait_some(owner, left, waiter, false) then return false end
    end
  end
end

--- Wakes every task waiting now.
function Event:signal()
  local waiters = self.waiters
  self.waiters = {}
  for _, waiter in ipairs(waiters) do
    if waiter.mark then waiter.mark.signalled = true else wake(waiter.task, waiter.wait) end
  end
end

--- How many transfers and tasks are running (for the specs and close()).
function scheduler.counts()
  local transfers, tasks = 0, 0
  for _ in pairs(transfer_of) do transfers = transfers + 1 end
  for _ in pairs(task_of) do tasks = tasks + 1 end
  return transfers, tasks
end

--- Removes every transfer on `multi` (its client is closing): their tasks wake to false,
-- and the waits watching its sockets forget them.
function scheduler.cancel_transfers(multi)
  forget_sockets(multi)
  for session, transfer in pairs(transfer_of) do
    if transfer.multi == multi then scheduler.cancel(session) end
  end
end

return scheduler
