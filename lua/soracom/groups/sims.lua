--- client:move_sims: many SIMs into one group (or out of theirs), either one call per
-- SIM through client:map, within the rate budget, or as Batch API jobs
-- (sims_batch.lua), a few requests in all. This file checks the arguments, reads the
-- SIMs, chooses the way and puts the results together; both ways report here.

local batch = require "soracom.groups.batch"
local core = require "soracom.groups.core"
local sims_batch = require "soracom.groups.sims_batch"
local validate = require "soracom.groups.validate"

local null = core.null
local unpack = table.unpack or unpack

local sims = {}

-- More SIMs to move than this go through the Batch API when options.batch is not
-- given: one call each would be more than 10 s at 100 requests per 2 s, a job is
-- a few requests however many SIMs it holds.
sims.BATCH_THRESHOLD = 500

local OPTION_TYPES = {
  concurrency = "number", batch = "boolean", skip_current = "boolean", on_progress = "function",
  fail_fast = "boolean", rate_limit_max_delay = "number", batch_group_name = "string",
  job_name = "string", poll_max_delay = "number", job_timeout = "number",
}

local DEFAULTS = { concurrency = batch.DEFAULTS.concurrency, fail_fast = false,
  batch_group_name = sims_batch.DEFAULT_GROUP_NAME, poll_max_delay = sims_batch.DEFAULT_POLL_MAX_DELAY,
  job_timeout = sims_batch.DEFAULT_JOB_TIMEOUT }

local MAX_NAME_LENGTH = sims_batch.MAX_NAME_LENGTH

local function fail(message, level)
  validate.fail("move_sims", message, level + 1)
end

local function check_options(options, level)
  if options ~= nil and type(options) ~= "table" then
    fail("options must be a table (got " .. type(options) .. ")", level + 1)
  end
  local resolved = {}
  validate.option_types("soracom.groups: move_sims: ", options or {}, OPTION_TYPES, level + 1)
  for name, value in pairs(options or {}) do resolved[name] = value end
  for name, value in pairs(DEFAULTS) do
    if resolved[name] == nil then resolved[name] = value end
  end
  local why = batch.option_problem(resolved) -- (those client:map takes)
  if why then fail(why, level + 1) end
  for _, name in ipairs { "poll_max_delay", "job_timeout" } do
    local seconds = resolved[name]
    if not (seconds > 0 and seconds < math.huge) then
      fail("options." .. name .. " must be a positive number of seconds (got " .. tostring(seconds) .. ")", level + 1)
    end
  end
  for _, name in ipairs { "batch_group_name", "job_name" } do
    local text = resolved[name]
    if text ~= nil and (text == "" or sims_batch.first_characters(text, MAX_NAME_LENGTH) ~= text) then
      fail("options." .. name .. " must be 1 to " .. MAX_NAME_LENGTH .. " characters long", level + 1)
    end
  end
  return resolved
end

-- One item's SIM id and current group: a group id, false for none, nil when unknown
-- (an id given alone). `where` names the item in messages ("sims[3]").
local function read_item(item, where, level)
  if type(item) == "string" then
    validate.segment("move_sims", where, item, level + 1)
    return item, nil
  elseif type(item) == "table" then
    local id = item.simId
    if type(id) ~= "string" then
      fail(where .. " must be a SIM id or a SIM with its simId (got a table with "
        .. (id == nil and "no simId" or "a " .. type(id) .. " simId") .. ")", level + 1)
    end
    validate.segment("move_sims", where .. ".simId", id, level + 1)
    local current = item.groupId
    if current == nil or current == null then return id, false end -- a SIM read from the API: in no group
    if type(current) ~= "string" then
      fail(where .. ".groupId must be a string or null (got " .. type(current) .. ")", level + 1)
    end
    return id, current
  end
  fail(where .. " must be a SIM id (a string) or a SIM (a table with simId) (got " .. type(item) .. ")", level + 1)
end

-- pcall(fn) where it may yield: Lua 5.1's pcall cannot be yielded across, so there
-- fn runs in a coroutine of its own whose yields are passed on to the caller's (an
-- iterator that waits through a `sleep` option that yields, say).
local protected_call = pcall
if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
  protected_call = function(fn)
    local co = coroutine.create(fn)
    local answer = { coroutine.resume(co) }
    while coroutine.status(co) == "suspended" do
      answer = { coroutine.resume(co, coroutine.yield(unpack(answer, 2, table.maxn(answer)))) }
    end
    return unpack(answer, 1, table.maxn(answer))
  end
end

-- Every item, read to the end before anything is sent: the ids and the current groups
-- (by position), or nil and what the iterator raised.
local function read_items(items, level)
  local ids, current, seen = {}, {}, {}
  local function add(item, i)
    local where = "sims[" .. i .. "]"
    local id, group = read_item(item, where, level + 2)
    if seen[id] then fail(where .. " repeats sims[" .. seen[id] .. "] (" .. id .. ")", level + 2) end
    seen[id] = i
    ids[i], current[i] = id, group
  end
  if type(items) == "table" then
    for i = 1, #items do add(items[i], i) end
    return ids, current
  end
  if type(items) ~= "function" then
    fail("sims must be a list (a table) or an iterator function (got " .. type(items) .. ")", level + 1)
  end
  while true do
    local ok, item = protected_call(items)
    if not ok then return nil, item end
    if item == nil then return ids, current end
    add(item, #ids + 1)
  end
end

-- The progress reported to options.on_progress (the same table, updated).
local function new_progress(mode, total)
  return { mode = mode, total = total, done = 0, moved = 0, skipped = 0, failed = 0, unknown = 0 }
end

-- Whether err is the Batch API refusing this operator (no permission, no such API
-- where the endpoint is): the calls one by one may still be allowed.
local function refused(err)
  return err.kind == "http" and (err.status == 403 or err.status == 404)
end

-- Moves the SIMs ids[k] for k in todo one call each through client:map; the outcome
-- of todo[j] goes to outcomes[j] ({ok =, sim =, err =}).
local function by_calls(client, ids, todo, group_id, options, report)
  local function move(k)
    local sim, err
    if group_id then
      sim, err = client:set_sim_group(ids[k], group_id)
    else
      sim, err = client:unset_sim_group(ids[k])
    end
    return sim, err
  end
  local results = client:map(todo, move, {
    concurrency = options.concurrency, fail_fast = options.fail_fast,
    rate_limit_max_delay = options.rate_limit_max_delay,
    on_result = function(_, sim) report(sim ~= nil) end,
  })
  local outcomes, not_run = {}, 0
  for j = 1, #todo do
    local result = results[j]
    outcomes[j] = { ok = result.ok, sim = result.value, err = result.err }
    if result.skipped then not_run = not_run + 1 end -- (fail_fast stopped the map before it)
  end
  if not_run > 0 then report(false, not_run) end
  return outcomes
end

-- Runs the moves of ids[k] for k in todo, one call each or as Batch API jobs (mode),
-- reporting through report. Returns the outcome of each (by position in todo), the
-- mode that ran, the jobs, and why the Batch API, chosen by itself, was refused.
local function run(client, ids, todo, group_id, options, mode, progress, report)
  local outcomes, jobs, batch_error
  if mode == "batch" then
    local todo_ids = {}
    for j, k in ipairs(todo) do todo_ids[j] = ids[k] end
    outcomes, jobs = sims_batch.move(client, todo_ids, group_id, options, progress, options.on_progress)
    if outcomes ~= nil then return outcomes, mode, jobs end
    batch_error = jobs
    if options.batch ~= nil or not refused(batch_error) then
      outcomes = {}
      for j = 1, #todo do outcomes[j] = { ok = false, err = batch_error } end
      report(false, #todo)
      return outcomes, mode, nil, batch_error
    end
    mode, progress.mode = "calls", "calls" -- chosen, not asked for: the calls may still be allowed
  end
  return by_calls(client, ids, todo, group_id, options, report), mode, nil, batch_error
end

-- The group moved into, read once before more than one SIM is sent to it: a mistyped
-- id costs one request, not one per SIM. Returns true or nil, err.
local function group_exists(client, group_id, count)
  if group_id == nil or count < 2 then return true end
  local group, err = client:get_group(group_id)
  if group == nil then return nil, err end
  return true
end

--- move_sims(client, items, group_id, options): see Client:move_sims. `level` counts
-- from move_sims' caller, where argument errors are blamed.
function sims.move(client, items, group_id, options, level)
  if group_id == null then group_id = nil end
  if group_id ~= nil then validate.non_empty_string("move_sims", "group_id", group_id, level + 1) end
  local resolved = check_options(options, level + 1)
  if client:is_closed() then error("soracom.groups: move_sims: the client is closed", level + 1) end
  local ids, current = read_items(items, level + 1)
  if ids == nil then
    local items_error = current
    local summary = { total = 0, moved = 0, skipped = 0, failed = 0, unknown = 0, items_error = items_error,
      resume_key = type(items_error) == "table" and items_error.resume_key or nil }
    return {}, summary, items_error
  end

  -- What is already where it should be is left alone, when the caller asks and knows.
  local results, todo = {}, {}
  for k, id in ipairs(ids) do
    if resolved.skip_current and current[k] ~= nil and current[k] == (group_id or false) then
      results[k] = { sim_id = id, ok = true, skipped = true }
    else
      todo[#todo + 1] = k
    end
  end
  local mode = resolved.batch
  if mode == nil then mode = #todo > sims.BATCH_THRESHOLD end
  mode = mode and "batch" or "calls"
  if mode == "calls" or resolved.batch == nil then -- (an automatic choice may fall back to calls)
    resolved.concurrency = math.max(1, math.min(resolved.concurrency, #todo)) -- no more tasks than SIMs
    batch.check_capacity(client._transport, "move_sims", resolved.concurrency, level + 1)
  end

  local progress = new_progress(mode, #ids)
  progress.skipped, progress.done = #ids - #todo, #ids - #todo
  local on_progress = resolved.on_progress
  local function report(moved, count)
    count = count or 1
    progress.done = progress.done + count
    if moved then progress.moved = progress.moved + count else progress.failed = progress.failed + count end
    if on_progress then on_progress(progress) end
  end

  local outcomes, jobs, batch_error = {}, nil, nil
  if #todo > 0 then
    local exists, missing = group_exists(client, group_id, #todo)
    if exists then
      outcomes, mode, jobs, batch_error = run(client, ids, todo, group_id, resolved, mode, progress, report)
    else
      for j = 1, #todo do outcomes[j] = { ok = false, err = missing } end
      report(false, #todo)
    end
  end

  local summary = { mode = mode, total = #ids, moved = 0, skipped = #ids - #todo, failed = 0, unknown = 0,
    jobs = jobs, batch_error = batch_error }
  for j, k in ipairs(todo) do
    local outcome = outcomes[j]
    if outcome.ok then
      summary.moved = summary.moved + 1
      results[k] = { sim_id = ids[k], ok = true, sim = outcome.sim }
    else
      summary.failed = summary.failed + 1
      if outcome.unknown then summary.unknown = summary.unknown + 1 end
      results[k] = { sim_id = ids[k], ok = false, err = outcome.err, unknown = outcome.unknown }
    end
  end
  return results, summary
end

return sims
