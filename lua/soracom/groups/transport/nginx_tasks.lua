--- Tasks inside nginx: light threads (ngx.thread) of the request that calls
-- client:map, and events over ngx.semaphore. Cosockets already let many requests of a
-- worker wait at once; this only bounds how many one map runs.

-- luacheck: read globals ngx

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

--- Runs jobs until source() gives no more, at most `concurrency` at once, each in a
-- light thread (see scheduler.run for what a job is). Returns when all have finished.
function nginx_tasks.run(source, concurrency)
  local running, slot = 0, nginx_tasks.event()
  local function run(job)
    local raised
    local function traced(err)
      raised = err
      return debug.traceback(tostring(err), 2)
    end
    local outcome = { n = 0 }
    local function keep(...) outcome = { n = select("#", ...), ... } end
    keep(xpcall(job.run, traced))
    running = running - 1
    slot:signal()
    if outcome[1] then
      job.finish(true, unpack(outcome, 2, outcome.n))
    else
      job.finish(false, raised, outcome[2])
    end
  end
  while true do
    while running >= concurrency do slot:wait() end
    local job = source()
    if job == nil then break end
    running = running + 1
    local thread, why = ngx.thread.spawn(run, job)
    if thread == nil then
      running = running - 1
      job.finish(false, "soracom.groups: ngx.thread.spawn failed: " .. tostring(why))
    end
  end
  while running > 0 do slot:wait() end
end

return nginx_tasks
