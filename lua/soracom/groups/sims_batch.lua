--- client:move_sims through the Batch API: the SIMs go as jobs of at most MAX_TASKS
-- tasks of one action (set_group or unset_group), started one at a time in a batch
-- group found (or made) by name, each polled until it ends; then the tasks that failed
-- are read, and reported by SIM.
--
-- The API runs one job per action at a time for the whole operator: a job refused
-- because another of the same action runs (400) waits for that one to end, then
-- tries again.

local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local hook = require "soracom.groups.hook"
local request = require "soracom.groups.request"
local retry = require "soracom.groups.retry"
local spec = require "soracom.groups.operations"

local operations, batch_operations = spec.operations, spec.batch_operations
local build_url = core.build_url

local sims_batch = {}

sims_batch.MAX_TASKS = 10000 -- the API's limit of tasks per job
sims_batch.DEFAULT_GROUP_NAME = "soracom-groups"
sims_batch.DEFAULT_POLL_MAX_DELAY = 10 -- seconds between two polls of a job, at most
-- Seconds a job may take, with the wait for another job of its action before it:
-- Soracom says jobs may be delayed when its load is high, not for how long.
sims_batch.DEFAULT_JOB_TIMEOUT = 3600
sims_batch.FIRST_POLL_DELAY = 0.5 -- seconds before the first poll; each wait is POLL_GROWTH times the last
sims_batch.POLL_GROWTH = 1.5
-- A job refused (400) when no other job of its action can be found running (it may
-- have ended meanwhile) is tried again this many times; then the 400 is its answer.
local UNSEEN_CONFLICT_TRIES = 1
-- The longest name the API takes for a batch group or a job.
sims_batch.MAX_NAME_LENGTH = 100
local MAX_NAME_LENGTH = sims_batch.MAX_NAME_LENGTH
-- The most items a list request asks for: few requests for the lists read here.
local PAGE_LIMIT = 100

local ENDED = { completed = true, failed = true, aborted = true }
local UNDER_WAY = { pending = true, running = true }

-- A closed client raises where the request is made: move_sims' caller is not known
-- here, so it is blamed on this file.
local LEVEL = 1

local function send(client, op, query, body, a1, a2)
  local value, next_key = request.send(client, op, LEVEL, query, body and core.encode_json(body), a1, a2)
  return value, next_key
end

-- Calls visit(item) for every item of a paged list until it returns true. Returns
-- true, or nil, err.
local function each_item(client, op, a1, a2, query, visit)
  query = query or {}
  query.limit = PAGE_LIMIT
  repeat
    local items, next_key = send(client, op, query, nil, a1, a2)
    if items == nil then return nil, next_key end
    for _, item in ipairs(items) do
      if visit(item) then return true end
    end
    query.last_evaluated_key = next_key
  until next_key == nil
  return true
end

-- The id of the batch group named `name`: the client's, else the first of that name,
-- else a new one. Returns the id or nil, err.
local function batch_group_id(client, name)
  local known = client._batch_group_ids -- (the client's: a batch group outlives any move)
  if known[name] then return known[name] end
  local found
  local ok, err = each_item(client, batch_operations.list_batch_groups, nil, nil, nil, function(group)
    if type(group) == "table" and group.batchGroupName == name and type(group.batchGroupId) == "string" then
      found = group.batchGroupId
      return true
    end
  end)
  if not ok then return nil, err end
  if found == nil then
    local group
    group, err = send(client, batch_operations.create_batch_group, nil, {
      batchGroupName = name, description = "Made by soracom-groups for client:move_sims and move-sims" })
    if group == nil then return nil, err end
    found = type(group) == "table" and group.batchGroupId
    if type(found) ~= "string" then
      return nil, Error.wrap({ kind = "decode", message = "the new batch group has no batchGroupId" }, "POST",
        batch_operations.create_batch_group.path)
    end
  end
  known[name] = found
  return found
end

-- A Lua pattern matching the API path of op's requests, capturing the SIM id (as
-- written in the path: percent-encoded), a trailing slash allowed.
local function action_pattern(op)
  local literal = op.path:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  return (literal:gsub("%b{}", "([^/]+)")) .. "/?$"
end

local function percent_decode(text)
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- The SIM id a task's request names (decoded), when it is of op's action.
local function sim_of_task(op, pattern, asked)
  if type(asked) ~= "table" or asked.method ~= op.method or type(asked.path) ~= "string" then return nil end
  local encoded = asked.path:match(pattern)
  return encoded and percent_decode(encoded)
end

-- The batch group and job of another job of `op`'s action still under way, if one
-- can be found (any batch group of the operator). Returns group id, job, or nil.
local function job_under_way(client, op)
  local pattern = action_pattern(op)
  local found_group, found_job
  each_item(client, batch_operations.list_batch_groups, nil, nil, nil, function(group)
    local group_id = type(group) == "table" and group.batchGroupId
    if type(group_id) ~= "string" then return false end
    each_item(client, batch_operations.list_batch_jobs, group_id, nil, nil, function(job)
      if type(job) ~= "table" or not UNDER_WAY[job.status] or type(job.jobId) ~= "string" then return false end
      local tasks = send(client, batch_operations.list_batch_tasks, { limit = 1 }, nil, group_id, job.jobId)
      if type(tasks) == "table" and type(tasks[1]) == "table" and sim_of_task(op, pattern, tasks[1].request) then
        found_group, found_job = group_id, job
        return true
      end
    end)
    return found_job ~= nil
  end)
  return found_group, found_job
end

-- An error's words without the library's name, to quote inside another error.
local function words(err)
  return (tostring(err):gsub("^soracom%-groups: ", ""))
end

-- Polls the job until it ends, calling on_poll(job) after each read. A read that
-- fails as a request may fail for a while (a network error, 429, 5xx: the request
-- loop's retries spent) is polled through: the job runs on regardless. Returns the
-- ended job, or nil, err when the deadline (the client's clock) passes first, the
-- client is closed, or the job cannot be read for good.
local function until_ended(client, group_id, job, options, deadline, on_poll)
  local delay, clock = sims_batch.FIRST_POLL_DELAY, request.clock(client)
  while not ENDED[job.status] do
    if clock() + delay > deadline then
      return nil, Error.new("batch", "job " .. job.jobId .. " has not ended within job_timeout ("
        .. options.job_timeout .. " s)")
    end
    if not request.wait(client, delay) then
      return nil, Error.new("closed", "the client was closed while job " .. job.jobId .. " ran")
    end
    delay = math.min(delay * sims_batch.POLL_GROWTH, options.poll_max_delay)
    local read, err = send(client, batch_operations.get_batch_job, nil, nil, group_id, job.jobId)
    if read == nil then
      if not retry.retryable(err, "GET", client._retry) then return nil, err end
      hook.debug(client, "job " .. job.jobId .. " could not be read (" .. words(err) .. "); polling on")
    elseif type(read) ~= "table" or type(read.status) ~= "string" then
      return nil, Error.wrap({ kind = "decode", message = "the batch job read has no status" }, "GET",
        "/batch_groups/" .. group_id .. "/jobs/" .. job.jobId)
    else
      read.jobId = job.jobId
      job = read
      on_poll(job)
    end
  end
  return job
end

-- Creates the job, after any other job of its action has ended. Returns the job or
-- nil, err.
local function start_job(client, group_id, op, body, options, deadline, progress, on_progress)
  local unseen = 0
  while true do
    local job, err = send(client, batch_operations.create_batch_job, nil, body, group_id)
    if job ~= nil then
      if type(job) ~= "table" or type(job.jobId) ~= "string" then
        return nil, Error.wrap({ kind = "decode", message = "the new batch job has no jobId" }, "POST",
          "/batch_groups/" .. group_id .. "/jobs")
      end
      return job
    end
    if err.status ~= 400 then return nil, err end
    local other_group, other = job_under_way(client, op)
    if other == nil then
      unseen = unseen + 1
      if unseen > UNSEEN_CONFLICT_TRIES then return nil, err end -- a 400 of another cause
      if not request.wait(client, sims_batch.FIRST_POLL_DELAY) then return nil, err end
    else
      progress.waiting_for = other.jobId
      if on_progress then on_progress(progress) end
      local _, wait_err = until_ended(client, other_group, other, options, deadline, function() end)
      progress.waiting_for = nil
      if wait_err then return nil, wait_err end
    end
  end
end

-- The failed (and never run) tasks of an ended job: index in `index_of_sim` -> Error,
-- and how many of them named no SIM of the job. Returns those or nil, err.
local function failed_tasks(client, group_id, job, op, index_of_sim)
  local failures, unmatched, pattern = {}, 0, action_pattern(op)
  for _, status in ipairs { "error", "pending" } do
    local ok, err = each_item(client, batch_operations.list_batch_tasks, group_id, job.jobId, { status = status },
      function(task)
        local asked = type(task) == "table" and task.request
        local sim_id = sim_of_task(op, pattern, asked)
        local index = sim_id and index_of_sim[sim_id]
        if index == nil then
          unmatched = unmatched + 1
          return false
        end
        local _, path = build_url("", op.path, nil, nil, sim_id) -- as a call's error has it: without "/v1"
        local response = type(task.response) == "table" and task.response or {}
        local body = type(response.body) == "table" and response.body or {}
        if status == "pending" then
          failures[index] = Error.wrap({ kind = "batch", job_id = job.jobId, message = "not run: job " .. job.jobId
            .. " ended " .. job.status .. " before this task" }, op.method, path)
        else
          failures[index] = Error.wrap({ kind = "http", job_id = job.jobId, status = tonumber(response.statusCode),
            code = type(body.code) == "string" and body.code or nil,
            message = type(body.message) == "string" and body.message or "the task failed (job " .. job.jobId .. ")" },
            op.method, path)
        end
      end)
    if not ok then return nil, err end
  end
  return failures, unmatched
end

-- The API's version segment of the endpoint ("/v1"): a task names its request's path
-- from there, whatever path a proxy in front of the API adds before it.
local function version_segment(endpoint)
  return endpoint:match("(/[^/]+)/*$") or ""
end

-- At most `n` characters of UTF-8 text (the API counts characters, not bytes).
local function first_characters(text, n)
  local count = 0
  for position in text:gmatch("()[^\128-\191]") do
    count = count + 1
    if count > n then return text:sub(1, position - 1) end
  end
  return text
end
sims_batch.first_characters = first_characters

--- Moves ids (a list of SIM ids) into group_id (nil: out of their groups) as Batch
-- API jobs. Updates `progress` (see sims.lua) and calls on_progress after each poll.
-- Returns the outcome of each id ({ok =, err =, unknown =}) and the ids of the jobs,
-- or nil, err when no job could be started (nothing was asked of any SIM).
function sims_batch.move(client, ids, group_id, options, progress, on_progress)
  local op = group_id and operations.set_sim_group or operations.unset_sim_group
  local outcomes, jobs = {}, {}
  local clock = request.clock(client)
  local function report()
    if on_progress then on_progress(progress) end
  end
  -- Every id from `first` on gets err; `unknown` when its job may still move it.
  local function fail_from(first, err, unknown)
    for j = first, #ids do
      if outcomes[j] == nil then
        outcomes[j] = { ok = false, err = err, unknown = unknown }
        if unknown then progress.unknown = progress.unknown + 1 else progress.failed = progress.failed + 1 end
      end
    end
    progress.done = math.max(progress.done, progress.skipped + #ids)
    report()
    return outcomes, jobs
  end

  local group, err = batch_group_id(client, options.batch_group_name)
  if group == nil then return nil, err end
  local prefix = version_segment(client:endpoint())
  local body_of_task = group_id and { groupId = group_id } or nil

  for first = 1, #ids, sims_batch.MAX_TASKS do
    local last = math.min(first + sims_batch.MAX_TASKS - 1, #ids)
    local deadline = clock() + options.job_timeout
    local tasks, index_of_sim = {}, {}
    for j = first, last do
      local _, path = build_url("", op.path, nil, nil, ids[j])
      index_of_sim[ids[j]] = j
      tasks[#tasks + 1] = { request = { method = op.method, path = prefix .. path, body = body_of_task } }
    end
    local body = { abortOnFailure = options.fail_fast, tasks = tasks, jobName = first_characters(options.job_name
      or ("move-sims: " .. (last - first + 1) .. " SIMs " .. (group_id and "to group " .. group_id
      or "out of their groups")), MAX_NAME_LENGTH) }
    local job
    job, err = start_job(client, group, op, body, options, deadline, progress, on_progress)
    if job == nil and err.status == 404 then -- the batch group known by name was deleted since: find or make it
      client._batch_group_ids[options.batch_group_name] = nil
      group, err = batch_group_id(client, options.batch_group_name)
      if group then job, err = start_job(client, group, op, body, options, deadline, progress, on_progress) end
    end
    if job == nil then
      if first == 1 then return nil, err end
      return fail_from(first, err)
    end
    jobs[#jobs + 1] = job.jobId
    progress.job_id = job.jobId
    -- What the job says it did: progress only grows (a job's counts never shrink).
    local done_before, moved_before, failed_before = progress.done, progress.moved, progress.failed
    local function on_poll(read)
      local counts = type(read.summary) == "table" and read.summary or {}
      local success, failed = tonumber(counts.success) or 0, tonumber(counts.error) or 0
      progress.moved = math.max(progress.moved, moved_before + success)
      progress.failed = math.max(progress.failed, failed_before + failed)
      progress.done = math.max(progress.done, done_before + success + failed)
      report()
    end
    on_poll(job)
    local ended
    ended, err = until_ended(client, group, job, options, deadline, on_poll)
    if ended == nil then
      return fail_from(first, Error.new("batch", "the outcome of job " .. job.jobId .. " is unknown: "
        .. words(err)), true)
    end
    local failures, unmatched, counts = {}, 0, type(ended.summary) == "table" and ended.summary or {}
    local reported = (tonumber(counts.error) or 0) + (tonumber(counts.pending) or 0)
    if ended.status ~= "completed" or reported > 0 then
      failures, unmatched = failed_tasks(client, group, ended, op, index_of_sim)
      if failures == nil then
        return fail_from(first, Error.new("batch", "job " .. ended.jobId .. " ended " .. ended.status
          .. " but its failed tasks could not be read: " .. words(unmatched)), true)
      end
    end
    local found = 0
    for j = first, last do
      if failures[j] then found = found + 1 end
    end
    -- Failures the job counts but no task named: any SIM not known to have failed may be one.
    local unknown_err = (unmatched > 0 or found < reported) and Error.new("batch", "job " .. ended.jobId
      .. " counts " .. reported .. " failed or unrun tasks, of which " .. found .. " named a SIM of it: "
      .. "whether this SIM moved is unknown")
    for j = first, last do
      if failures[j] then
        outcomes[j] = { ok = false, err = failures[j] }
      elseif unknown_err then
        outcomes[j] = { ok = false, err = unknown_err, unknown = true }
      else
        outcomes[j] = { ok = true }
      end
    end
    -- The job's end, SIM by SIM: the counts of its polls give way to these.
    local moved, failed, unknown = 0, 0, 0
    for j = first, last do
      local outcome = outcomes[j]
      if outcome.ok then
        moved = moved + 1
      elseif outcome.unknown then
        unknown = unknown + 1
      else
        failed = failed + 1
      end
    end
    progress.moved = math.max(progress.moved, moved_before + moved)
    progress.failed = math.max(progress.failed, failed_before + failed)
    progress.unknown = progress.unknown + unknown
    progress.done = math.max(progress.done, done_before + (last - first + 1))
    report()
  end
  return outcomes, jobs
end

return sims_batch
