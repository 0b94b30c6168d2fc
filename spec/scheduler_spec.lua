-- The scheduler of client:map outside nginx, without the network: tasks, timers,
-- events and what it does with tasks that misbehave.
local scheduler = require "soracom.groups.scheduler"

-- Runs fns as jobs at the given concurrency; returns each job's outcome {ok, ...}.
local function run(fns, concurrency)
  local outcomes, i = {}, 0
  scheduler.run(function()
    i = i + 1
    local k, fn = i, fns[i]
    if fn == nil then return nil end
    return { run = fn, finish = function(...) outcomes[k] = { ... } end }
  end, concurrency or math.max(1, #fns))
  return outcomes
end

describe("the scheduler", function()
  it("resumes sleeping tasks in the order their timers fire", function()
    local order = {}
    local function sleeper(name, seconds)
      return function()
        scheduler.sleep(seconds)
        order[#order + 1] = name
        return name
      end
    end
    local outcomes = run { sleeper("slow", 0.2), sleeper("fast", 0.05), sleeper("middle", 0.1) }
    assert.are.same({ "fast", "middle", "slow" }, order)
    assert.are.same({ true, "slow" }, outcomes[1])
  end)

  it("runs at most `concurrency` tasks at once", function()
    local running, most = 0, 0
    local fns = {}
    for k = 1, 10 do
      fns[k] = function()
        running = running + 1
        most = math.max(most, running)
        scheduler.sleep(0.01)
        running = running - 1
        return k
      end
    end
    local outcomes = run(fns, 3)
    assert.are.equal(3, most)
    assert.are.same({ true, 10 }, outcomes[10])
  end)

  it("wakes every task waiting for an event when it is signalled", function()
    local event = scheduler.event()
    local woken = 0
    local function waiter()
      event:wait(10)
      woken = woken + 1
      return true
    end
    run { waiter, waiter, function()
      scheduler.sleep(0.02)
      assert.are.equal(0, woken)
      event:signal()
      return true
    end }
    assert.are.equal(2, woken)
  end)

  it("ends an event's wait at its timeout", function()
    local event = scheduler.event()
    local outcomes = run { function() return event:wait(0.01) end }
    assert.are.same({ true, true }, outcomes[1])
  end)

  it("cannot wait for an event outside a task, and says so with false", function()
    assert.is_false(scheduler.event():wait(1))
  end)

  it("keeps what a task raised, with its traceback", function()
    local outcomes = run { function() error("broken", 0) end }
    assert.are.equal(false, outcomes[1][1])
    assert.are.equal("broken", outcomes[1][2])
    assert.truthy(outcomes[1][3]:find("stack traceback", 1, true))
  end)

  it("fails a task that yields to it, and goes on with the others", function()
    local outcomes = run { function() coroutine.yield() end, function() return "fine" end }
    assert.is_false(outcomes[1][1])
    assert.truthy(outcomes[1][2]:find("yielded", 1, true))
    assert.are.same({ true, "fine" }, outcomes[2])
  end)

  it("wakes tasks that wait for each other to an error instead of hanging", function()
    local a, b = scheduler.event(), scheduler.event()
    local outcomes = run { function() a:wait() end, function() b:wait() end }
    for k = 1, 2 do
      assert.is_false(outcomes[k][1])
      assert.truthy(outcomes[k][2]:find("nothing is left that could wake them", 1, true))
    end
    assert.are.same({ 0, 0 }, { scheduler.counts() })
  end)

  it("runs a run inside a task on the same loop", function()
    local outcomes = run { function()
      local inner = run { function() scheduler.sleep(0.01) return 1 end, function() return 2 end }
      return inner[1][2] + inner[2][2]
    end, function() return "beside" end }
    assert.are.same({ true, 3 }, outcomes[1])
    assert.are.same({ true, "beside" }, outcomes[2])
  end)

  it("returns at once for no jobs", function()
    assert.are.same({}, run {})
  end)

  it("refuses a concurrency below 1", function()
    assert.has_error(function() scheduler.run(function() end, 0) end,
      "soracom.groups: scheduler.run: concurrency must be 1 or more (got 0)")
  end)
end)
