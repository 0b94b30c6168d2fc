--- apply.run: carries out a plan from plan.compare, through client:map (groups in
-- parallel, one group's requests in order), making exactly the plan's changes.
--
-- Before writing to a group it reads the group again: when its lastModifiedTime is
-- not the one the plan saw, someone changed it since, the plan may be wrong for it,
-- and nothing is written to it (it is reported as skipped). The same holds for its
-- SIMs when the plan moves some: the SIMs it keeps must be those the plan saw, and
-- those it moves out still in it. Before creating one it looks for a group of that
-- name made since. Every SIM to move in must still be in the group it was in when the
-- plan was made (a group the plan read the SIMs of is read again, once; any other SIM
-- is read alone): when one is not, nothing is written to the group it was to join.
-- Deletes are guarded: no more than max_deletes in one run, and none
-- of a group that holds SIMs (counted again just before the delete) unless
-- allow_delete_with_sims. One group failing does not stop the others.
--
-- Three steps: the groups' creates and updates in parallel; then the SIM moves,
-- through client:move_sims (the Batch API past its threshold), into each group once
-- its other changes are made, and out of them (to no group) in one call; then the
-- deletes in parallel, so that a SIM moving from a group the plan deletes goes
-- straight to its new group, never through none.

local account = require "soracom.groups.account"
local desired = require "soracom.groups.desired"
local Error = require "soracom.groups.error"
local plan = require "soracom.groups.plan"
local validate = require "soracom.groups.validate"

local apply = {}

-- The group is as the plan saw it: the group read now, or nil, a reason to skip, or
-- nil, nil, err when the read failed.
local function unchanged(client, change)
  local group, err = client:get_group(change.group_id)
  if group == nil then return nil, nil, err end
  if group.lastModifiedTime ~= change.last_modified_time then
    return nil, "changed since the plan was made (lastModifiedTime " .. tostring(change.last_modified_time)
      .. " -> " .. tostring(group.lastModifiedTime) .. "); nothing was written to it"
  end
  return group
end

local function update(client, change)
  local id = change.group_id
  local put, removed = {}, {}
  for _, tag in ipairs(change.tags) do
    if tag.op == "remove" then removed[#removed + 1] = tag.name
    else put[#put + 1] = { tagName = tag.name, tagValue = tag.to } end
  end
  -- One PUT for every added or changed tag: the API merges it into the others.
  if #put > 0 then
    local ok, err = client:put_tags(id, put)
    if not ok then return nil, err end
  end
  for _, name in ipairs(removed) do
    local ok, err = client:delete_tag(id, name)
    if not ok then return nil, err end
  end
  for _, namespace in ipairs(change.namespaces) do
    local ok, err
    if namespace.op == "delete" then
      ok, err = client:delete_config_namespace(id, namespace.namespace)
    else
      ok, err = client:put_config(id, namespace.namespace, namespace.settings)
    end
    if not ok then return nil, err end
  end
  return true
end

local function set_of(list)
  local set = {}
  for _, item in ipairs(list) do set[item] = true end
  return set
end

-- The group's tags once the change's tag changes are made.
local function tags_after(tags, changes)
  local result = {}
  for name, value in pairs(type(tags) == "table" and tags or {}) do result[name] = value end
  for _, tag in ipairs(changes) do result[tag.name] = tag.to end
  return result
end

-- Why the plan's SIM moves must not be made to the group (read just now), or nil; or
-- nil, nil, err when its SIMs could not be read. The SIMs it keeps (the plan's moves
-- aside, which other groups' changes may have made already) must be those the plan
-- saw, and those to move out still in it; moving SIMs out needs the group in the scope
-- once its tags are changed.
local function members_stale(client, change, group, moved, scope)
  local members = change.members
  if #members.moves_out > 0 and not desired.in_scope(scope, tags_after(group.tags, change.tags)) then
    return "it would be outside the plan's scope, " .. desired.describe_scope(scope) .. ", so no SIM is moved "
      .. "out of it; nothing was written to it"
  end
  local current, err = account.list_members(client, change.group_id)
  if current == nil then return nil, nil, err end
  local now, here, gone = plan.members_digest(current, moved), set_of(current), 0
  for _, sim in ipairs(members.moves_out) do
    if not here[sim] then gone = gone + 1 end
  end
  if now.sha256 ~= members.staying.sha256 or gone > 0 then
    return "its SIMs changed since the plan was made (it kept " .. members.staying.count .. " then, "
      .. now.count .. " now" .. (gone > 0 and ("; " .. gone .. " of those to move out left it") or "")
      .. "); nothing was written to it"
  end
  return nil
end

-- A group (or no group) as a reason says it.
local function group_words(group_id, name)
  if group_id == nil then return "no group" end
  return "group " .. (name and name .. " (" .. group_id .. ")" or group_id)
end

-- Why the SIMs each change moves in must not move (by the plan's index): one of them is
-- no longer in the group the plan saw it in; and the errors of the changes whose SIMs
-- could not be read. The groups the plan read the SIMs of (member_groups) are listed
-- again, once each; every other SIM to move in costs one get_sim.
local function origins_changed(client, changes, member_groups, concurrency)
  local listed = set_of(member_groups or {})
  local tasks, group_task, task_of = {}, {}, {} -- task_of[i][k]: the task of change i's k-th move in
  for i, change in ipairs(changes) do
    task_of[i] = {}
    for k, move in ipairs(change.members and change.members.moves_in or {}) do
      local from = move.from_group_id
      if from ~= nil and listed[from] then
        if group_task[from] == nil then
          tasks[#tasks + 1] = { group_id = from }
          group_task[from] = #tasks
        end
        task_of[i][k] = group_task[from]
      else
        tasks[#tasks + 1] = { sim_id = move.sim_id }
        task_of[i][k] = #tasks
      end
    end
  end
  local reasons, errors = {}, {}
  if #tasks == 0 then return reasons, errors end
  -- Each result: a listed group's SIMs as a set, or {group_id} of one SIM ({gone =
  -- true} when it does not exist).
  local results = client:map(tasks, function(task)
    if task.group_id then
      local ids, err = account.list_members(client, task.group_id)
      if ids == nil then return nil, err end
      return set_of(ids)
    end
    local sim, err = client:get_sim(task.sim_id)
    if sim ~= nil then return { group_id = type(sim.groupId) == "string" and sim.groupId or nil } end
    if err.status == 404 then return { gone = true } end
    return nil, err
  end, { concurrency = concurrency })
  for i, change in ipairs(changes) do
    local moves = change.members and change.members.moves_in or {}
    local stale, first = 0, nil
    for k, move in ipairs(moves) do
      local task, result = tasks[task_of[i][k]], results[task_of[i][k]]
      local now
      if not result.ok then
        local err = result.err
        errors[i] = errors[i] or (Error.is(err) and err or Error.new("apply", tostring(err)))
      elseif task.group_id then
        if not result.value[move.sim_id] then now = "no longer in it" end
      elseif result.value.gone then
        now = "it does not exist now"
      elseif result.value.group_id ~= move.from_group_id then
        now = "now in " .. group_words(result.value.group_id)
      end
      if now then
        stale = stale + 1
        first = first or (move.sim_id .. " was in " .. group_words(move.from_group_id, move.from_name) .. ", " .. now)
      end
    end
    if stale > 0 then
      reasons[i] = "its SIMs to move in changed since the plan was made (" .. stale .. " of " .. #moves
        .. " not where the plan saw them: " .. first .. "); nothing was written to it"
    end
  end
  return reasons, errors
end

-- One group's changes: {status = "applied"} or {status = "skipped", reason}, or nil,
-- err. (No pcall and no iterator here: Lua 5.1 could not suspend the task across them.)
local function apply_change(client, change, allow_sims, scope, verify, moved)
  if change.action == "create" then
    local refused = verify and verify(change, nil)
    if refused then return { status = "skipped", reason = refused } end
    -- A group of that name made in the scope since the plan would be doubled: look
    -- first. The ones the plan saw (a group it deletes or renames, one outside the
    -- scope) are not in the way.
    local found, err = client:list_groups { tag_name = "name", tag_value = change.name }
    if found == nil then return nil, err end
    local known = {}
    for _, id in ipairs(change.known or {}) do known[id] = true end
    for _, other in ipairs(found) do
      if type(other.tags) == "table" and other.tags.name == change.name and not known[other.groupId]
          and desired.in_scope(scope, other.tags) then
        return { status = "skipped", reason = "a group of that name (" .. tostring(other.groupId)
          .. ") was created since the plan was made; nothing was written" }
      end
    end
    local group
    group, err = client:create_group(change.create)
    if group == nil then return nil, err end
    return { status = "applied", group_id = group.groupId }
  end
  local group, reason, err = unchanged(client, change)
  if reason then return { status = "skipped", reason = reason } end
  if err then return nil, err end
  reason = verify and verify(change, group)
  if reason then return { status = "skipped", reason = reason } end
  if change.members then
    reason, err = members_stale(client, change, group, moved, scope)
    if reason then return { status = "skipped", reason = reason } end
    if err then return nil, err end
  end
  local ok
  if change.action == "delete" then
    if not desired.in_scope(scope, group.tags) then
      return { status = "skipped", reason = "it is outside the plan's scope, " .. desired.describe_scope(scope)
        .. "; nothing was deleted" }
    end
    if not allow_sims then
      local sims, count_err = account.count_sims(client, change.group_id)
      if sims == nil then return nil, count_err end
      if sims.count > 0 then
        return { status = "skipped", reason = "it holds " .. (sims.at_least and "at least " or "") .. sims.count
          .. " SIM(s); nothing was deleted (allow_delete_with_sims, --allow-delete-with-sims, deletes it)" }
      end
    end
    ok, err = client:delete_group(change.group_id)
  else
    ok, err = update(client, change)
  end
  if not ok then return nil, err end
  return { status = "applied", group_id = change.group_id }
end

apply.DEFAULT_MAX_DELETES = 10

local OPTION_TYPES = { concurrency = "number", on_progress = "function", max_deletes = "number",
  allow_delete_with_sims = "boolean", sims_batch = "boolean", on_sims_progress = "function" }

-- How many SIMs' failures an error names; the rest are counted.
apply.SIM_FAILURES_NAMED = 3

-- A SIM's failure in a few words.
local function short_error(err)
  if not Error.is(err) then return tostring(err) end
  local head = err.status and ("HTTP " .. err.status .. (err.code and " " .. err.code or "") .. ": ") or ""
  return head .. tostring(err.message)
end

-- The error of a group whose SIM moves failed (some or all): it names the first few.
local function sims_error(failures, total, direction)
  local named = {}
  for i = 1, math.min(#failures, apply.SIM_FAILURES_NAMED) do
    named[i] = failures[i].sim_id .. " (" .. short_error(failures[i].err) .. ")"
  end
  local more = #failures - #named
  local err = Error.new("apply", #failures .. " of " .. total .. " SIM(s) were not moved " .. direction
    .. " (its other changes were made): " .. table.concat(named, ", ")
    .. (more > 0 and (" and " .. more .. " more") or ""))
  err.sims = failures
  return err
end

-- client:move_sims(ids, group_id) with apply's options; the failures {{sim_id, err}}
-- by position in ids, and how many moved.
local function move(client, ids, group_id, options, direction, name)
  local on_sims_progress = options.on_sims_progress
  local results, summary = client:move_sims(ids, group_id, {
    concurrency = options.concurrency, batch = options.sims_batch,
    on_progress = on_sims_progress and function(progress) on_sims_progress(direction, name, progress) end,
  })
  local failures = {}
  for i, result in ipairs(results) do
    if not result.ok then failures[i] = { sim_id = ids[i], err = result.err } end
  end
  return failures, summary.moved or 0
end

-- Why the plan's deletes may not run at all, or nil: more than max_deletes, or a
-- group counted (account.count_deleted_sims) holding SIMs.
local function refused_deletes(changes, max_deletes, allow_sims)
  local deletes, holding = 0, {}
  for _, change in ipairs(changes) do
    if change.action == "delete" then
      deletes = deletes + 1
      if change.sims and change.sims.count > 0 then
        holding[#holding + 1] = tostring(change.name) .. " (" .. tostring(change.group_id) .. "): "
          .. (change.sims.at_least and "at least " or "") .. change.sims.count .. " SIM(s)"
      end
    end
  end
  if deletes > max_deletes then
    return "the plan deletes " .. deletes .. " groups, more than max_deletes (" .. max_deletes
      .. "; --max-deletes N allows more): nothing was changed"
  end
  if #holding > 0 and not allow_sims then
    return "the plan deletes groups that hold SIMs (" .. table.concat(holding, "; ")
      .. "; --allow-delete-with-sims allows it): nothing was changed"
  end
end

--- apply.refused(plan, options) -> why apply.run would refuse the plan's deletes
-- (more than options.max_deletes, or groups counted holding SIMs), or nil: for asking
-- before a person is asked to confirm.
function apply.refused(p, options)
  options = options or {}
  return refused_deletes(p.changes, options.max_deletes or apply.DEFAULT_MAX_DELETES,
    options.allow_delete_with_sims or false)
end

--- A plan may carry verify(change, group) -> why not, or nil: a saved plan checks
-- there that what it sends is what it shows.
--- apply.run(client, plan, {concurrency = 8, on_progress = function(done, total,
-- name, outcome) end, max_deletes = 10, allow_delete_with_sims = false, sims_batch =
-- nil (move_sims' batch: nil decides by the count), on_sims_progress =
-- function(direction ("in" | "out"), name (the group's, for "in"), progress (move_sims'))
-- end}) -> summary {applied = n, created = {{name, group_id}}, changed = {...},
-- deleted = {...}, skipped = {{name, group_id, reason}}, failed = {{name, group_id,
-- err}} (err.sims = {{sim_id, err}} when SIMs failed to move), sims = {moved_in,
-- moved_out, failed}}, each list in the plan's order; or nil, err, with nothing
-- changed, when the deletes are refused. outcome is "applied", "skipped" or "failed".
-- The plan's member_groups (plan.compare's) says which groups' SIMs to list again to
-- check where SIMs moving in are; without it each such SIM is read alone.
-- Wrong arguments raise.
function apply.run(client, p, options)
  if type(p) ~= "table" or type(p.changes) ~= "table" then
    error("soracom.groups.apply: plan must be a plan from plan.compare (got " .. type(p) .. ")", 2)
  end
  options = options or {}
  validate.option_types("soracom.groups.apply: ", options, OPTION_TYPES, 2)
  local max_deletes = options.max_deletes or apply.DEFAULT_MAX_DELETES
  if max_deletes < 0 or max_deletes ~= math.floor(max_deletes) then
    error("soracom.groups.apply: options.max_deletes must be a whole number of 0 or more (got "
      .. tostring(max_deletes) .. ")", 2)
  end
  local allow_sims = options.allow_delete_with_sims or false
  local changes, done = p.changes, 0
  local refusal = refused_deletes(changes, max_deletes, allow_sims)
  if refusal then return nil, Error.new("apply", refusal) end
  local moved = plan.moved_sims(changes)
  local origin_reasons, origin_errors = origins_changed(client, changes, p.member_groups, options.concurrency)

  -- outcomes[i]: {ok = true, value} or {ok = false, err}, by the plan's index.
  local outcomes = {}
  local function finish(i)
    done = done + 1
    if options.on_progress then
      local outcome = outcomes[i]
      options.on_progress(done, #changes, changes[i].name, outcome.ok and outcome.value.status or "failed")
    end
  end
  local function moves_of(i)
    local outcome, members = outcomes[i], changes[i].members
    return members and outcome.ok and outcome.value.status == "applied" and members or nil
  end
  local function run_step(indices, after)
    if #indices == 0 then return end
    client:map(indices, function(i)
      if origin_reasons[i] then return { status = "skipped", reason = origin_reasons[i] } end
      if origin_errors[i] then return nil, origin_errors[i] end
      return apply_change(client, changes[i], allow_sims, p.scope, p.verify, moved)
    end, {
      concurrency = options.concurrency,
      on_result = function(k, value, err)
        local i = indices[k]
        outcomes[i] = err == nil and { ok = true, value = value } or { ok = false, err = err }
        if after(i) then finish(i) end
      end,
    })
  end

  local writes, deletes = {}, {}
  for i, change in ipairs(changes) do
    table.insert(change.action == "delete" and deletes or writes, i)
  end
  -- 1. Creates and updates; a group whose SIMs move is finished after the moves.
  run_step(writes, function(i) return moves_of(i) == nil end)

  -- 2. The SIM moves: into each group, then out of every group at once.
  local sims = { moved_in = 0, moved_out = 0, failed = 0 }
  local failures_of, out_ids, out_owner = {}, {}, {}
  for _, i in ipairs(writes) do
    local members = moves_of(i)
    if members then
      if #members.moves_in > 0 then
        local ids = {}
        for k, sim in ipairs(members.moves_in) do ids[k] = sim.sim_id end
        local failures, count = move(client, ids, outcomes[i].value.group_id, options, "in", changes[i].name)
        sims.moved_in = sims.moved_in + count
        local list = {}
        for k = 1, #ids do list[#list + 1] = failures[k] end
        if #list > 0 then failures_of[i] = sims_error(list, #ids, "in") end
      end
      for _, sim in ipairs(members.moves_out) do
        out_ids[#out_ids + 1] = sim
        out_owner[#out_ids] = i
      end
    end
  end
  if #out_ids > 0 then
    local failures, count = move(client, out_ids, nil, options, "out", nil)
    sims.moved_out = count
    local by_group, totals = {}, {}
    for k, i in ipairs(out_owner) do
      totals[i] = (totals[i] or 0) + 1
      if failures[k] then
        by_group[i] = by_group[i] or {}
        table.insert(by_group[i], failures[k])
      end
    end
    for i, list in pairs(by_group) do
      -- A group that failed moving in already says so; the moves out add to it.
      local err = sims_error(list, totals[i], "out")
      if failures_of[i] then
        for _, failure in ipairs(list) do table.insert(failures_of[i].sims, failure) end
        failures_of[i].message = failures_of[i].message .. "; " .. err.message
      else
        failures_of[i] = err
      end
    end
  end
  for _, i in ipairs(writes) do
    if moves_of(i) then
      if failures_of[i] then
        sims.failed = sims.failed + #failures_of[i].sims
        outcomes[i] = { ok = false, err = failures_of[i], group_id = outcomes[i].value.group_id }
      end
      finish(i)
    end
  end

  -- 3. Deletes.
  run_step(deletes, function() return true end)

  local summary = { applied = 0, created = {}, changed = {}, deleted = {}, skipped = {}, failed = {}, sims = sims }
  local done_list = { create = summary.created, update = summary.changed, delete = summary.deleted }
  for i, change in ipairs(changes) do
    local result = outcomes[i]
    if result.ok and result.value.status == "applied" then
      summary.applied = summary.applied + 1
      table.insert(done_list[change.action], { name = change.name, group_id = result.value.group_id })
    elseif result.ok then
      summary.skipped[#summary.skipped + 1] = { name = change.name, group_id = change.group_id,
        reason = result.value.reason }
    else
      local err = result.err
      if not Error.is(err) then err = Error.new("apply", tostring(err)) end
      summary.failed[#summary.failed + 1] = { name = change.name, group_id = result.group_id or change.group_id,
        err = err }
    end
  end
  return summary
end

return apply
