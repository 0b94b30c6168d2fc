--- client:map's bookkeeping: the options, which item runs next, each item's result
-- and the summary. Running the tasks is the transport's (run_tasks: the scheduler's
-- coroutines over curl multi, or nginx light threads); this file is the same for both.

local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"

local batch = {}

batch.DEFAULTS = { concurrency = 8, fail_fast = false, keep_results = true }
-- More tasks than this would be more connections than any server lets one caller open.
batch.MAX_CONCURRENCY = 1024

local OPTION_TYPES = { concurrency = "number", fail_fast = "boolean", on_result = "function",
  keep_results = "boolean", rate_limit_max_delay = "number" }

-- The cap on a rate-limit wait of the requests each map's task makes, by the task's
-- coroutine: a map is a batch, and by default waits as long as its queue needs.
local cap_of_task = setmetatable({}, { __mode = "k" })

--- The rate_limit_max_delay of the map whose task is running, or nil outside one.
function batch.rate_limit_cap()
  local co = coroutine.running()
  return co and cap_of_task[co]
end

local function fail(message, level)
  error("soracom.groups: map: " .. message, level + 1)
end

--- Checks map's arguments (raising, naming the one at fault) and returns its options
-- with the defaults filled in.
function batch.check(items, fn, options, level)
  if type(items) ~= "table" and type(items) ~= "function" then
    fail("items must be a list (a table) or an iterator function (got " .. type(items) .. ")", level + 1)
  end
  if type(fn) ~= "function" then fail("fn must be a function (got " .. type(fn) .. ")", level + 1) end
  if options ~= nil and type(options) ~= "table" then
    fail("options must be a table (got " .. type(options) .. ")", level + 1)
  end
  local resolved = {}
  for name, value in pairs(options or {}) do
    local expected = OPTION_TYPES[name]
    if expected == nil then fail("unknown option " .. string.format("%q", tostring(name)), level + 1) end
    if type(value) ~= expected then
      fail("options." .. name .. " must be a " .. expected .. " (got " .. type(value) .. ")", level + 1)
    end
    resolved[name] = value
  end
  for name, value in pairs(batch.DEFAULTS) do
    if resolved[name] == nil then resolved[name] = value end
  end
  local cap = resolved.rate_limit_max_delay
  if cap ~= nil and (cap ~= cap or cap < 0) then
    fail("options.rate_limit_max_delay must be 0 or more seconds (got " .. tostring(resolved.rate_limit_max_delay)
      .. ")", level + 1)
  end
  local n = resolved.concurrency
  if n ~= math.floor(n) or n < 1 or n > batch.MAX_CONCURRENCY then
    fail("options.concurrency must be a whole number from 1 to " .. batch.MAX_CONCURRENCY
      .. " (got " .. tostring(n) .. ")", level + 1)
  end
  return resolved
end

--- Raises, blaming `level`, when `concurrency` tasks at once would need more file
-- descriptors than the process may open (the curl transport's sockets).
function batch.check_capacity(transport, method, concurrency, level)
  local why = transport.capacity_error and transport:capacity_error(concurrency)
  if why then error("soracom.groups: " .. method .. ": " .. why, level + 1) end
end

-- The result of one item from what its task ended with: fn's results (completed),
-- or what it raised and where.
local function result_of(completed, first, second)
  if not completed then return { ok = false, err = first, traceback = second } end
  if first ~= nil then return { ok = true, value = first } end
  if second == nil then
    second = Error.new("map", "fn returned nothing: return its result (or true), or nil and an error")
  end
  return { ok = false, err = second }
end

local MapRun = {}
MapRun.__index = MapRun

-- The state of a map: its results and summary, and the source of its jobs. The jobs
-- refer to this state, never to the run object its caller holds, so that a run its
-- caller drops can be collected (and its transfers cancelled).
local function prepare(items, fn, options)
  local state = { results = {}, summary = { ok = 0, failed = 0, skipped = 0 }, options = options,
    started = core.now(), pending = {}, index = 0 }
  local results, summary, pending = state.results, state.summary, state.pending -- pending: i -> true while it runs
  local list = type(items) == "table" and items or nil
  local count = list and #list
  state.list = list
  local stopped = false

  local function finish(i, completed, first, second)
    pending[i] = nil
    local result = result_of(completed, first, second)
    if result.ok then summary.ok = summary.ok + 1 else summary.failed = summary.failed + 1 end
    if options.keep_results then results[i] = result end
    if not result.ok and options.fail_fast then stopped = true end
    if options.on_result and state.raised_by_on_result == nil then
      local ok, why = pcall(options.on_result, i, result.value, result.err)
      if not ok then state.raised_by_on_result, stopped = why, true end
    end
  end

  local function next_item()
    if list then
      if state.index >= count then return nil end
      return true, list[state.index + 1]
    end
    local ok, item = pcall(items)
    if not ok then
      state.items_error = item
      return nil
    end
    if item == nil then return nil end
    return true, item
  end

  function state.source()
    if stopped or state.cancelled then return nil end
    local more, item = next_item()
    if not more then return nil end
    state.index = state.index + 1
    local i = state.index
    pending[i] = true
    return {
      run = function()
        -- Each job runs in a coroutine of its own (a task, a light thread), which ends with it.
        local co, main = coroutine.running()
        if co and not main then cap_of_task[co] = options.rate_limit_max_delay or math.huge end
        return fn(item, i)
      end,
      finish = function(...) finish(i, ...) end,
    }
  end

  return setmetatable({ _state = state }, MapRun)
end

--- Starts fn(item, i) for each item through `transport` (see client:start_map) and
-- returns the run; nothing is sent before its first step. `waiter` is the client's
-- way to wait ({ wait = fn } or { sleep = fn }, or nil: block).
function batch.start(transport, items, fn, options, waiter)
  local run = prepare(items, fn, options)
  run._waiter = waiter
  run._tasks = transport:start_tasks(run._state.source, options.concurrency)
  return run
end

--- Does the work that is ready, waiting up to `timeout` seconds (0: none) for more;
-- it waits as the client's wait or sleep option says, else blocks. Returns true once
-- every item is done.
function MapRun:step(timeout)
  if self._tasks:done() then return true end
  return self._tasks:step(timeout or 0, self._waiter)
end

--- What to wait for before the next step: seconds (nil once done) and the sockets to
-- watch ({fd =, read =, write =} each; nginx: none).
function MapRun:wait_hint()
  return self._tasks:wait_hint()
end

--- Whether every item has ended (or the run was cancelled).
function MapRun:done()
  return self._tasks:done()
end

--- Stops the map: no item starts; the running ones end now with err.kind "cancelled".
function MapRun:cancel()
  if self._tasks:done() then return end
  self._state.cancelled = true
  self._tasks:cancel(Error.new("cancelled", "the map was cancelled while this item ran"))
end

--- The results and summary so far (final once done): see client:map. A third value is
-- the error the items iterator raised, if it did.
function MapRun:results()
  local state = self._state
  local results, summary, options, list, index = state.results, state.summary, state.options, state.list, state.index
  local finished = state.finished or self._tasks:done()
  summary.skipped = 0
  if finished and list and index < #list then
    summary.skipped = #list - index
    if options.keep_results then
      local why = state.cancelled and "the map was cancelled" or "the map stopped early (an item failed with "
        .. "fail_fast set, or on_result raised an error)"
      for i = index + 1, #list do
        results[i] = { ok = false, skipped = true, err = Error.new("map", "not run: " .. why) }
      end
    end
  end
  summary.running = 0
  for _ in pairs(state.pending) do summary.running = summary.running + 1 end
  summary.seconds = core.now() - state.started
  local items_error = state.items_error
  if items_error ~= nil then
    summary.items_error = items_error
    if type(items_error) == "table" then summary.resume_key = items_error.resume_key end
  end
  return results, summary, items_error
end

--- Runs fn(item, i) for each item through `transport` (see client:map); `waiter` (see
-- batch.start) is how the loop waits when it drives the tasks. Returns
-- results, summary and, when the items iterator raised, its error.
function batch.run(transport, items, fn, options, waiter)
  local run
  if transport:in_task() then
    -- A map within a map: the task's own run carries it while the task waits.
    run = prepare(items, fn, options)
    transport:run_tasks(run._state.source, options.concurrency)
    run._state.finished = true
  else
    run = batch.start(transport, items, fn, options, waiter)
    while not run:step(math.huge) do end
  end
  if run._state.raised_by_on_result ~= nil then error(run._state.raised_by_on_result, 0) end
  return run:results()
end

return batch