--- client:move_sims: many SIMs into one group (or out of theirs), either one call per
-- SIM through client:map, within the rate budget, or as Batch API jobs
-- (sims_batch.lua), a few requests in all. This file checks the arguments, reads the
-- SIMs, chooses the way and puts the results together; both ways report here.

local batch = require "soracom.groups.batch"
local core = require "soracom.groups.core"
local sims_batch = require "soracom.groups.sims_batch"
local validate = require "soracom.groups.validate"

local null = core.null

local sims = {}

-- More SIMs to move than this go through the Batch API when options.batch is not
-- given: one call each would be more than 10 s at 100 requests per 2 s, a job is
-- a few requests however many SIMs it holds.
sims.BATCH_THRESHOLD = 500

local OPTION_TYPES = {
  concurrency = "number", batch = "boolean", skip_current = "boolean", on_progress = "function",
  fail_fast = "boolean", rate_limit_max_delay = "number", batch_group_name = "string",
  job_name = "string", poll_max_delay = "number",
}

local DEFAULTS = { concurrency = batch.DEFAULTS.concurrency, fail_fast = false,
  batch_group_name = sims_batch.DEFAULT_GROUP_NAME, poll_max_delay = sims_batch.DEFAULT_POLL_MAX_DELAY }

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
  local n = resolved.concurrency
  if n ~= math.floor(n) or n < 1 or n > batch.MAX_CONCURRENCY then
    fail("options.concurrency must be a whole number from 1 to " .. batch.MAX_CONCURRENCY
      .. " (got " .. tostring(n) .. ")", level + 1)
  end
  for _, name in ipairs { "rate_limit_max_delay", "poll_max_delay" } do
    local seconds = resolved[name]
    if seconds ~= nil and not (seconds > 0 and seconds < math.huge) then
      fail("options." .. name .. " must be a positive number of seconds (got " .. tostring(seconds) .. ")", level + 1)
    end
  end
  for _, name in ipairs { "batch_group_name", "job_name" } do
    local text = resolved[name]
    if text ~= nil and (text == "" or #text > MAX_NAME_LENGTH) then
      fail("options." .. name .. " must be 1 to " .. MAX_NAME_LENGTH .. " bytes long (got " .. #text .. ")",
        level + 1)
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
    local ok, item = pcall(items)
    if not ok then return nil, item end
    if item == nil then return ids, current end
    add(item, #ids + 1)
  end
end

-- The progress reported to options.on_progress (the same table, updated).
local function new_progress(mode, total)
  return { mode = mode, total = total, done = 0, moved = 0, skipped = 0, failed = 0 }
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
  local outcomes = {}
  for j = 1, #todo do
    local result = results[j]
    outcomes[j] = { ok = result.ok, sim = result.value, err = result.err }
  end
  return outcomes
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
    local summary = { mode = nil, total = 0, moved = 0, skipped = 0, failed = 0, items_error = items_error,
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
  local function report(moved)
    progress.done = progress.done + 1
    if moved then progress.moved = progress.moved + 1 else progress.failed = progress.failed + 1 end
    if on_progress then on_progress(progress) end
  end

  local outcomes, jobs, batch_error
  if #todo > 0 and mode == "batch" then
    local todo_ids = {}
    for j, k in ipairs(todo) do todo_ids[j] = ids[k] end
    outcomes, jobs = sims_batch.move(client, todo_ids, group_id, resolved, progress, on_progress)
    if outcomes == nil then
      batch_error = jobs
      jobs, outcomes = nil, {}
      if resolved.batch == nil and refused(batch_error) then -- chosen, not asked for: the calls still work
        mode, progress.mode = "calls", "calls"
      else
        for j = 1, #todo do
          outcomes[j] = { ok = false, err = batch_error }
          report(false)
        end
      end
    end
  end
  if #todo > 0 and mode == "calls" then
    outcomes = by_calls(client, ids, todo, group_id, resolved, report)
  end
  outcomes = outcomes or {}

  local summary = { mode = mode, total = #ids, moved = 0, skipped = #ids - #todo, failed = 0, jobs = jobs,
    batch_error = batch_error }
  for j, k in ipairs(todo) do
    local outcome = outcomes[j]
    if outcome.ok then
      summary.moved = summary.moved + 1
      results[k] = { sim_id = ids[k], ok = true, sim = outcome.sim }
    else
      summary.failed = summary.failed + 1
      results[k] = { sim_id = ids[k], ok = false, err = outcome.err }
    end
  end
  return results, summary
end

return sims
