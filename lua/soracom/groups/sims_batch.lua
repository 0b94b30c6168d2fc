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
local request = require "soracom.groups.request"
local spec = require "soracom.groups.operations"

local operations, batch_operations = spec.operations, spec.batch_operations
local build_url = core.build_url

local sims_batch = {}

sims_batch.MAX_TASKS = 10000 -- the API's limit of tasks per job
sims_batch.DEFAULT_GROUP_NAME = "soracom-groups"
sims_batch.DEFAULT_POLL_MAX_DELAY = 10 -- seconds between two polls of a job, at most
sims_batch.FIRST_POLL_DELAY = 0.5 -- seconds before the first poll; each wait is POLL_GROWTH times the last
sims_batch.POLL_GROWTH = 1.5
-- A job refused as a second one of its action, when no other job of the action can
-- be found running (it ended meanwhile), is tried again this many times.
local UNSEEN_CONFLICT_TRIES = 3
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

-- A Lua pattern matching the API path of op's requests (any SIM id).
local function action_pattern(op)
  local literal = op.path:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  return (literal:gsub("%b{}", "[^/]+")) .. "$"
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
      local first = type(tasks) == "table" and type(tasks[1]) == "table" and tasks[1].request
      if type(first) == "table" and first.method == op.method and type(first.path) == "string"
        and first.path:find(pattern) then
        found_group, found_job = group_id, job
        return true
      end
    end)
    return found_job ~= nil
  end)
  return found_group, found_job
end

-- Polls the job until it ends, calling on_poll(job) after each read. Returns the
-- ended job or nil, err.
local function until_ended(client, group_id, job, options, on_poll)
  local delay = sims_batch.FIRST_POLL_DELAY
  while not ENDED[job.status] do
    if not request.wait(client, delay) then
      return nil, Error.new("closed", "the client was closed while job " .. job.jobId .. " ran")
    end
    delay = math.min(delay * sims_batch.POLL_GROWTH, options.poll_max_delay)
    local read, err = send(client, batch_operations.get_batch_job, nil, nil, group_id, job.jobId)
    if read == nil then return nil, err end
    if type(read) ~= "table" or type(read.status) ~= "string" then
      return nil, Error.wrap({ kind = "decode", message = "the batch job read has no status" }, "GET",
        "/batch_groups/" .. group_id .. "/jobs/" .. job.jobId)
    end
    read.jobId = job.jobId
    job = read
    on_poll(job)
  end
  return job
end

-- Creates the job, after any other job of its action has ended. Returns the job or
-- nil, err.
local function start_job(client, group_id, op, body, options, progress, on_progress)
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
      local _, wait_err = until_ended(client, other_group, other, options, function() end)
      progress.waiting_for = nil
      if wait_err then return nil, wait_err end
    end
  end
end

-- The failed (and, in an aborted job, never run) tasks of a job: their SIMs' index
-- in `index_of_path` -> Error. Returns that map or nil, err.
local function failed_tasks(client, group_id, job, index_of_path, prefix)
  local failures = {}
  for _, status in ipairs { "error", "pending" } do
    local ok, err = each_item(client, batch_operations.list_batch_tasks, group_id, job.jobId, { status = status },
      function(task)
        local asked = type(task) == "table" and type(task.request) == "table" and task.request
        local index = asked and index_of_path[asked.path]
        if index == nil then return false end
        local method, path = asked.method, asked.path:sub(#prefix + 1) -- as Error has it: without "/v1"
        local response = type(task.response) == "table" and task.response or {}
        local body = type(response.body) == "table" and response.body or {}
        if status == "pending" then
          failures[index] = Error.wrap({ kind = "batch", message = "not run: job " .. job.jobId
            .. " ended " .. job.status .. " before this task" }, method, path)
        else
          failures[index] = Error.wrap({ kind = "http", status = tonumber(response.statusCode),
            code = type(body.code) == "string" and body.code or nil,
            message = type(body.message) == "string" and body.message or "the task failed (job " .. job.jobId .. ")" },
            method, path)
        end
      end)
    if not ok then return nil, err end
  end
  return failures
end

-- The API path prefix of the endpoint ("/v1"): a task names its request's path whole.
local function path_prefix(endpoint)
  return (endpoint:match("^%a[%w+.-]*://[^/]*(/.-)/*$") or "")
end

--- Moves ids (a list of SIM ids) into group_id (nil: out of their groups) as Batch
-- API jobs. Updates `progress` (see sims.lua) and calls on_progress after each poll.
-- Returns the outcome of each id ({ok =, err =}) and the ids of the jobs, or nil, err
-- when no job could be started (nothing was asked of any SIM).
function sims_batch.move(client, ids, group_id, options, progress, on_progress)
  local op = group_id and operations.set_sim_group or operations.unset_sim_group
  local outcomes, jobs = {}, {}
  local function fail_from(first, err)
    for j = first, #ids do
      if outcomes[j] == nil then
        outcomes[j] = { ok = false, err = err }
        progress.failed, progress.done = progress.failed + 1, progress.done + 1
      end
    end
    if on_progress then on_progress(progress) end
    return outcomes, jobs
  end

  local group, err = batch_group_id(client, options.batch_group_name)
  if group == nil then return nil, err end
  local prefix = path_prefix(client:endpoint())
  local body_of_task = group_id and { groupId = group_id } or nil

  for first = 1, #ids, sims_batch.MAX_TASKS do
    local last = math.min(first + sims_batch.MAX_TASKS - 1, #ids)
    local tasks, index_of_path = {}, {}
    for j = first, last do
      local _, path = build_url("", op.path, nil, nil, ids[j])
      path = prefix .. path
      index_of_path[path] = j
      tasks[#tasks + 1] = { request = { method = op.method, path = path, body = body_of_task } }
    end
    local body = { abortOnFailure = false, tasks = tasks, jobName = options.job_name or ("move-sims: "
      .. (last - first + 1) .. " SIMs " .. (group_id and "to group " .. group_id or "out of their groups"))
      :sub(1, MAX_NAME_LENGTH) }
    local job
    job, err = start_job(client, group, op, body, options, progress, on_progress)
    if job == nil and err.status == 404 then -- the batch group known by name was deleted since: find or make it
      client._batch_group_ids[options.batch_group_name] = nil
      group, err = batch_group_id(client, options.batch_group_name)
      if group then job, err = start_job(client, group, op, body, options, progress, on_progress) end
    end
    if job == nil then
      if first == 1 then return nil, err end
      return fail_from(first, err)
    end
    jobs[#jobs + 1] = job.jobId
    progress.job_id = job.jobId
    local done_before, moved_before, failed_before = progress.done, progress.moved, progress.failed
    local function on_poll(read)
      local counts = type(read.summary) == "table" and read.summary or {}
      local success, failed = tonumber(counts.success) or 0, tonumber(counts.error) or 0
      progress.moved, progress.failed = moved_before + success, failed_before + failed
      progress.done = done_before + success + failed
      if on_progress then on_progress(progress) end
    end
    on_poll(job)
    job, err = until_ended(client, group, job, options, on_poll)
    if job == nil then
      progress.done, progress.moved, progress.failed = done_before, moved_before, failed_before
      return fail_from(first, Error.new("batch", "the outcome of job " .. jobs[#jobs] .. " is unknown: "
        .. tostring(err)))
    end
    local failures, counts = {}, type(job.summary) == "table" and job.summary or {}
    if job.status ~= "completed" or (tonumber(counts.error) or 0) > 0 or (tonumber(counts.pending) or 0) > 0 then
      failures, err = failed_tasks(client, group, job, index_of_path, prefix)
      if failures == nil then
        progress.done, progress.moved, progress.failed = done_before, moved_before, failed_before
        return fail_from(first, Error.new("batch", "job " .. job.jobId .. " ended " .. job.status
          .. " but its failed tasks could not be read: " .. tostring(err)))
      end
    end
    for j = first, last do
      outcomes[j] = failures[j] and { ok = false, err = failures[j] } or { ok = true }
    end
    progress.done = done_before + (last - first + 1)
    progress.failed = failed_before
    for j = first, last do
      if failures[j] then progress.failed = progress.failed + 1 end
    end
    progress.moved = progress.done - progress.skipped - progress.failed
    if on_progress then on_progress(progress) end
  end
  return outcomes, jobs
end

return sims_batch
