--- Tasks inside nginx: light threads (ngx.thread) of the request that calls
-- client:map, and events over ngx.semaphore. Cosockets already let many requests of a
-- worker wait at once; this only bounds how many one map runs.

-- luacheck: read globals ngx

local unwind = require "soracom.groups.unwind"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local nginx_tasks = {}

local Event = {}
Event.__index = Event

--- An event light threads (of any request of the worker) can wait for.
function nginx_tasks.event()
  return setmetatable({ semaphore = require("ngx.semaphore").new(0), waiting = 0 }, Event)
end

--- Waits until signal() or `timeout` seconds; true (a light thread can always wait).
function Event:wait(timeout)
  self.waiting = self.waiting + 1
  self.semaphore:wait(timeout or 86400)
  self.waiting = self.waiting - 1
  return true
end

--- Wakes every thread waiting now.
function Event:signal()
  if self.waiting > 0 then self.semaphore:post(self.waiting) end
end

local Run = {}
Run.__index = Run

--- Starts running the jobs source() gives, at most `concurrency` at once, each in a
-- light thread of the calling request (see scheduler.start for what a job is), and
-- returns the run: step(timeout) starts what may start and waits up to timeout
-- seconds for the jobs; cancel(why) kills the running threads (called from the
-- coroutine that steps the run: only a thread's parent may kill it).
function nginx_tasks.start(source, concurrency)
  return setmetatable({ _source = source, _concurrency = concurrency, _running = {}, _count = 0,
    _slot = nginx_tasks.event(), _exhausted = false }, Run)
end

function Run:done()
  return self._cancelled or (self._exhausted and self._count == 0)
end

-- Starts jobs until `concurrency` run or the source is exhausted.
local function fill(self)
  while not self._exhausted and not self._cancelled and self._count < self._concurrency do
    local job = self._source()
    if job == nil then
      self._exhausted = true
      return
    end
    local entry = { job = job }
    local function run()
      local raised
      local function traced(err)
        raised = err
        return debug.traceback(tostring(err), 2)
      end
      local outcome = { n = 0 }
      local function keep(...) outcome = { n = select("#", ...), ... } end
      entry.co = coroutine.running()
      unwind.track(entry.co)
      keep(xpcall(job.run, traced))
      unwind.run(entry.co) -- (what a raise left undone)
      if self._running[entry] == nil then return end -- cancelled meanwhile
      self._running[entry] = nil
      self._count = self._count - 1
      self._slot:signal()
      if outcome[1] then
        job.finish(true, unpack(outcome, 2, outcome.n))
      else
        job.finish(false, raised, outcome[2])
      end
    end
    self._running[entry] = true
    self._count = self._count + 1
    local thread, why = ngx.thread.spawn(run)
    if thread == nil then
      self._running[entry] = nil
      self._count = self._count - 1
      job.finish(false, "soracom.groups: ngx.thread.spawn failed: " .. tostring(why))
    else
      entry.thread = thread
    end
  end
end

function Run:step(timeout)
  local deadline = ngx.now() + (timeout or 0)
  while true do
    fill(self)
    if self:done() then return true end
    ngx.update_time()
    local left = deadline - ngx.now()
    if left <= 0 then return false end
    self._slot:wait(math.min(left, 86400))
  end
end

--- nginx waits by itself: nothing for a caller's loop to watch.
function Run:wait_hint()
  if self:done() then return nil, {} end
  return 0, {}
end

function Run:cancel(why)
  if self:done() then return end
  self._cancelled = true
  local running = self._running
  self._running, self._count = {}, 0
  for entry in pairs(running) do
    if entry.thread then ngx.thread.kill(entry.thread) end
    if entry.co then unwind.run(entry.co) end
    entry.job.finish(false, why)
  end
end

--- Runs jobs until source() gives no more, at most `concurrency` at once, each in a
-- light thread. Returns when all have finished.
function nginx_tasks.run(source, concurrency)
  local run = nginx_tasks.start(source, concurrency)
  while not run:step(86400) do end
end

-- Runs a job in a coroutine of its own, so that a yield past it (which ngx_lua would
-- otherwise take for its own) is seen: the job finishes with false, its stray_yield
-- message, nil, "yielded". I/O inside it yields to nginx as usual.
local function run_job(job)
  local co = coroutine.create(job.run)
  local outcome = { n = 0 }
  local function keep(...) outcome = { n = select("#", ...), ... } end
  keep(coroutine.resume(co))
  if coroutine.status(co) ~= "dead" then
    job.finish(false, job.stray_yield or "soracom.groups: the job yielded past its task", nil, "yielded")
  elseif outcome[1] then
    job.finish(true, unpack(outcome, 2, outcome.n))
  else
    job.finish(false, outcome[2], debug.traceback(co, tostring(outcome[2])))
  end
end

--- Runs a job that no request owns (a login) in a timer, which runs to its end even
-- when the request that started it is aborted. Returns true (it runs by itself); when
-- nginx refuses a timer (too many pending), the job runs here and now.
function nginx_tasks.spawn(job)
  -- (ngx.timer.at raises in the phases without timers, such as init_by_lua)
  local allowed, started = pcall(ngx.timer.at, 0, function(premature)
    if premature then
      job.finish(false, "soracom.groups: nginx is exiting", nil, "exiting")
    else
      run_job(job)
    end
  end)
  if not (allowed and started) then run_job(job) end
  return true
end

return nginx_tasks
