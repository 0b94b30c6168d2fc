--- apply.run: carries out a plan from plan.compare, through client:map (groups in
-- parallel, one group's requests in order), making exactly the plan's changes.
--
-- Before writing to a group it reads the group again: when its lastModifiedTime is
-- not the one the plan saw, someone changed it since, the plan may be wrong for it,
-- and nothing is written to it (it is reported as skipped). Before creating one it
-- looks for a group of that name made since. Deletes are guarded: no more than
-- max_deletes in one run, and none of a group that holds SIMs (counted again just
-- before the delete) unless allow_delete_with_sims. One group failing does not stop
-- the others.

local account = require "soracom.groups.account"
local desired = require "soracom.groups.desired"
local Error = require "soracom.groups.error"
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

-- One group's changes: {status = "applied"} or {status = "skipped", reason}, or nil,
-- err. (No pcall and no iterator here: Lua 5.1 could not suspend the task across them.)
local function apply_change(client, change, allow_sims, scope, verify)
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
  allow_delete_with_sims = "boolean" }

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
-- name, outcome) end, max_deletes = 10, allow_delete_with_sims = false}) -> summary
-- {applied = n, created = {{name, group_id}}, changed = {...}, deleted = {...},
-- skipped = {{name, group_id, reason}}, failed = {{name, group_id, err}}}, each list
-- in the plan's order; or nil, err, with nothing changed, when the deletes are
-- refused. outcome is "applied", "skipped" or "failed". Wrong arguments raise.
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
  local results = client:map(changes, function(change)
    return apply_change(client, change, allow_sims, p.scope, p.verify)
  end, {
    concurrency = options.concurrency,
    on_result = function(i, value, err)
      done = done + 1
      if options.on_progress then
        local outcome = err ~= nil and "failed" or value.status
        options.on_progress(done, #changes, changes[i].name, outcome)
      end
    end,
  })
  local summary = { applied = 0, created = {}, changed = {}, deleted = {}, skipped = {}, failed = {} }
  local done_list = { create = summary.created, update = summary.changed, delete = summary.deleted }
  for i, change in ipairs(changes) do
    local result = results[i]
    if result.ok and result.value.status == "applied" then
      summary.applied = summary.applied + 1
      table.insert(done_list[change.action], { name = change.name, group_id = result.value.group_id })
    elseif result.ok then
      summary.skipped[#summary.skipped + 1] = { name = change.name, group_id = change.group_id,
        reason = result.value.reason }
    else
      local err = result.err
      if not Error.is(err) then err = Error.new("apply", tostring(err)) end
      summary.failed[#summary.failed + 1] = { name = change.name, group_id = change.group_id, err = err }
    end
  end
  return summary
end

return apply
