--- plan.compare: a desired-state document and the account's groups -> the changes
-- that make the account match the document. No I/O here: account.lua reads what a
-- plan needs, plan_view.lua shows a plan, apply.lua carries it out.
--
-- What the document owns: the groups it lists (matched by groupId, else by name tag),
-- each one's tags (all of them: a tag absent from the document is removed; a changed
-- name is a tag change, not a new group) and each namespace it lists, whole (PUT
-- replaces it; null deletes it). Within its scope, groups it does not list are
-- unmanaged and left alone unless prune is set, which deletes the named ones; a
-- group's namespaces it does not list are left alone unless prune_namespaces is set.
-- An entry's `sims`, when given, is its membership: the SIMs it lists that the group
-- lacks move in, from no group or from a group the document owns (one it lists, or
-- one of its scope; from any other only with allow_sims_from_outside_scope); with
-- prune_sims, the group's SIMs that no entry lists move out, to no group. An entry
-- without `sims` leaves the group's SIMs alone. Nothing outside the scope is ever
-- deleted or emptied, and prune, prune_namespaces and prune_sims need a document with
-- a scope.

local config = require "soracom.groups.config_core"
local core = require "soracom.groups.core"
local desired = require "soracom.groups.desired"
local Error = require "soracom.groups.error"
local secrets = require "soracom.groups.secrets"
local validate = require "soracom.groups.validate"

local plan = {}

local unpack = table.unpack or unpack
local null = core.null
local sorted_keys = desired.sorted_keys

local function is_list(value)
  return type(value) == "table" and (getmetatable(value) == core.array_mt or value[1] ~= nil)
end

local function is_object(value)
  return type(value) == "table" and not is_list(value)
end

local equal = desired.equal
plan.equal = equal

---------------------------------------------------------------------------------------
-- Differences, key by key.

local path_of = config.api_path

local with_key = config.with_key

-- The value at keys below root, or nil.
local function at(root, keys, first)
  local value = root
  for i = first, #keys do
    if type(value) ~= "table" then return nil end
    value = value[keys[i]]
  end
  return value
end

-- Appends to out one {op = "add" | "change" | "remove", path, keys, from, to, sensitive,
-- ref} per leaf that differs. keys[1] is the namespace. Objects are compared key by
-- key; lists and scalars are leaves. `source` is the document's settings, whose secret
-- references name the variable a leaf came from (ref): such a leaf is never shown.
local function diff(keys, before, after, source, out)
  if equal(before, after) then return end
  local open_before = is_object(before) and next(before) ~= nil
  local open_after = is_object(after) and next(after) ~= nil
  if (open_before or before == nil or is_object(before)) and (open_after or after == nil or is_object(after))
      and (open_before or open_after) then
    local union = {}
    for key in pairs(open_before and before or {}) do union[key] = true end
    for key in pairs(open_after and after or {}) do union[key] = true end
    for _, key in ipairs(sorted_keys(union)) do
      local from, to -- not `and ... or nil`: a false value must stay false
      if open_before then from = before[key] end
      if open_after then to = after[key] end
      diff(with_key(keys, key), from, to, source, out)
    end
    return
  end
  local below = { unpack(keys, 2) }
  local ref = desired.env_ref(at(source, keys, 2))
  out[#out + 1] = {
    op = before == nil and "add" or after == nil and "remove" or "change",
    path = path_of(keys), keys = keys, from = before, to = after,
    sensitive = ref ~= nil or secrets.is_secret(keys[1], below) or desired.has_env_ref(at(source, keys, 2)),
    ref = ref,
  }
end

---------------------------------------------------------------------------------------
-- The comparison.

-- The tag changes from present to wanted (both with the name tag).
local function tag_changes(wanted, present)
  local changes, names = {}, {}
  for name in pairs(wanted) do names[name] = true end
  for name in pairs(present) do names[name] = true end
  for _, name in ipairs(sorted_keys(names)) do
    local from, to = present[name], wanted[name]
    if from ~= to then
      changes[#changes + 1] = { op = from == nil and "add" or to == nil and "remove" or "change",
        name = name, from = from, to = to }
    end
  end
  return changes
end

local function is_empty_settings(settings)
  return settings == null or (is_object(settings) and next(settings) == nil)
end

-- A namespace to delete, with what it held (shown by the plan; it is destroyed).
local function namespace_delete(namespace, before)
  local diffs = {}
  diff({ namespace }, before, nil, nil, diffs)
  return { op = "delete", namespace = namespace, diffs = diffs }
end

-- A namespace to put: settings (resolved) is what is sent, source the document's
-- form (with its secret references).
--- The differences, leaf by leaf, between a namespace's settings before and the
-- settings to send (source: the document's form, with its secret references).
function plan.namespace_diffs(namespace, before, settings, source)
  local diffs = {}
  diff({ namespace }, before, settings, source, diffs)
  return diffs
end

local function namespace_put(namespace, before, settings, source)
  return { op = "put", namespace = namespace, settings = settings, source = source,
    diffs = plan.namespace_diffs(namespace, before, settings, source) }
end

-- The namespaces to put or delete, and the ones left unmanaged.
local function namespace_changes(wanted, resolved, present, prune_namespaces)
  local changes, unmanaged = {}, {}
  local names = {}
  for namespace in pairs(wanted) do names[namespace] = true end
  for namespace in pairs(present) do names[namespace] = true end
  for _, namespace in ipairs(sorted_keys(names)) do
    local to, from = wanted[namespace], present[namespace]
    if to == nil then
      if prune_namespaces then changes[#changes + 1] = namespace_delete(namespace, from)
      else unmanaged[#unmanaged + 1] = namespace end
    elseif is_empty_settings(to) then
      -- Nothing set: the API has no empty PUT, and a namespace without settings is
      -- one the group does not have.
      if from ~= nil and not equal(from, {}) then changes[#changes + 1] = namespace_delete(namespace, from) end
    elseif from == nil or not equal(from, resolved[namespace]) then
      changes[#changes + 1] = namespace_put(namespace, from, resolved[namespace], to)
    end
  end
  return changes, unmanaged
end

-- Every namespace's settings with its secret references read through getenv; or nil, err.
local function resolve_configuration(configuration, getenv, where)
  local resolved = {}
  for namespace, settings in pairs(configuration) do
    local value, err = desired.resolve(settings, getenv, where .. ".configuration." .. namespace)
    if value == nil and err then return nil, err end
    resolved[namespace] = value
  end
  return resolved
end

local function all_tags(group)
  local tags = desired.copy(group.tags)
  tags.name = group.name
  return tags
end

local function create_change(group, resolved, missing_id, known)
  local configuration, namespaces = {}, {}
  for _, namespace in ipairs(sorted_keys(group.configuration)) do
    local settings = group.configuration[namespace]
    if not is_empty_settings(settings) then
      configuration[namespace] = resolved[namespace]
      namespaces[#namespaces + 1] = namespace_put(namespace, nil, resolved[namespace], settings)
    end
  end
  return {
    action = "create", name = group.name, missing_id = missing_id,
    -- The groups of that name the plan saw: apply makes the group unless another one
    -- of that name has come into the scope since.
    known = known,
    tags = tag_changes(group.tags, {}), namespaces = namespaces, -- the heading names it
    -- create_group refuses empty tags or configuration: leave them out.
    create = { name = group.name, tags = next(group.tags) and group.tags or nil,
      configuration = next(configuration) and configuration or nil },
  }
end

local function delete_change(group)
  local namespaces = {}
  if is_object(group.configuration) then
    for _, namespace in ipairs(sorted_keys(group.configuration)) do
      if not is_empty_settings(group.configuration[namespace]) then namespaces[#namespaces + 1] = namespace end
    end
  end
  return { action = "delete", name = desired.group_name(group), group_id = group.groupId,
    last_modified_time = group.lastModifiedTime, tags = {}, namespaces = {},
    holds = { tags = is_object(group.tags) and group.tags or {}, namespaces = namespaces } }
end

-- The ids of the groups named `name`.
local function ids_named(account_groups, name)
  local ids = setmetatable({}, core.array_mt)
  for _, group in ipairs(account_groups) do
    if desired.group_name(group) == name then ids[#ids + 1] = group.groupId end
  end
  return ids
end

-- The account's groups by id, and the in-scope ones by name, for matching.
local function index_account(account_groups, scope)
  local by_id, by_name = {}, {}
  for _, group in ipairs(account_groups) do
    by_id[group.groupId] = group
    local name = desired.group_name(group)
    if name and desired.in_scope(scope, group.tags) then
      by_name[name] = by_name[name] or {}
      table.insert(by_name[name], group)
    end
  end
  return by_id, by_name
end

-- The account group each entry stands for (or false): by id first, then by name
-- among the groups no id claimed; or raises {plan_error} on an ambiguous name.
local function match_entries(doc, by_id, by_name)
  local matched, claimed = {}, {}
  for i, entry in ipairs(doc.groups) do
    if entry.group_id then
      local group = by_id[entry.group_id] or false
      matched[i] = group
      if group then claimed[group.groupId] = true end
    end
  end
  for i, entry in ipairs(doc.groups) do
    if not entry.group_id then
      local candidates = {}
      for _, group in ipairs(by_name[entry.name] or {}) do
        if not claimed[group.groupId] then candidates[#candidates + 1] = group end
      end
      if #candidates > 1 then
        local ids = {}
        for j, group in ipairs(candidates) do ids[j] = tostring(group.groupId) end
        table.sort(ids)
        error({ plan_error = "groups[" .. i .. "] (" .. core.encode_json(entry.name) .. ") names "
          .. #candidates .. " groups of the account (" .. table.concat(ids, ", ")
          .. "): give it the groupId of the one it is" }, 0)
      end
      matched[i] = candidates[1] or false
      if candidates[1] then claimed[candidates[1].groupId] = true end
    end
  end
  return matched, claimed
end

---------------------------------------------------------------------------------------
-- Membership.

--- The set of the SIMs a plan's changes move, in or out: plan.members_digest leaves
-- them out, so that one group's check is not upset by the moves of another.
function plan.moved_sims(changes)
  local moved = {}
  for _, change in ipairs(changes) do
    local members = change.members
    if members then
      for _, move in ipairs(members.moves_in) do moved[move.sim_id] = true end
      for _, sim in ipairs(members.moves_out) do moved[sim] = true end
    end
  end
  return moved
end

--- plan.members_digest(sim_ids, moved) -> {count, sha256} of the ids not in the set
-- moved: what a group holds that the plan leaves where it is. apply compares it with
-- the group's SIMs read again, to see that nobody moved them since the plan.
function plan.members_digest(sim_ids, moved)
  local staying = {}
  for _, sim in ipairs(sim_ids) do
    if not moved[sim] then staying[#staying + 1] = sim end
  end
  table.sort(staying)
  return { count = #staying, sha256 = core.sha256(table.concat(staying, "\n")) }
end

local function sorted_copy(list)
  local copy = {}
  for i, item in ipairs(list) do copy[i] = item end
  table.sort(copy)
  return copy
end

-- Where the listings the plan read put each SIM (sim id -> group id), and the ids of
-- those groups, sorted. Raises when members lacks one of them.
local function listed_sims(doc, matched, members)
  local group_of, read = {}, {}
  for i, entry in ipairs(doc.groups) do
    local present = matched[i]
    if entry.sims and present then
      local list = members[present.groupId]
      if type(list) ~= "table" then
        error("soracom.groups.plan: members has no list of the SIMs of group "
          .. tostring(present.groupId) .. ", which groups[" .. i .. "] lists SIMs of (account.read_members "
          .. "reads those plan.member_groups names)", 0)
      end
      for _, sim in ipairs(list) do group_of[sim] = present.groupId end
      read[#read + 1] = present.groupId
    end
  end
  table.sort(read, function(a, b) return tostring(a) < tostring(b) end)
  return group_of, read
end

-- Calls fn(entry index, sim id) for each SIM an entry lists that its group lacks (all
-- of them when the group is to be made), in the entry's order.
local function each_moving_in(doc, matched, members, fn)
  for i, entry in ipairs(doc.groups) do
    if entry.sims then
      local present = matched[i]
      local here = {}
      for _, sim in ipairs(present and members[present.groupId] or {}) do here[sim] = true end
      for _, sim in ipairs(sorted_copy(entry.sims)) do
        if not here[sim] then fn(i, sim) end
      end
    end
  end
end

-- Whether the document owns the group of that id, so that a SIM may be taken out of
-- it: a group it lists, or one of its scope. A document without a scope owns only the
-- groups it lists.
local function owns(scope, by_id, claimed, group_id)
  if claimed[group_id] then return true end
  if scope == nil then return false end
  if scope.account then return true end
  local group = by_id[group_id]
  return group ~= nil and desired.in_scope(scope, group.tags)
end

-- The plan error for the SIMs entries may not take in: `refused` is a list of {i,
-- sim, why}; the first is named, the others counted ("1 more " .. one, "2 more " ..
-- many).
local function refuse_sims(doc, refused, one, many)
  local first = refused[1]
  local more = #refused - 1
  error({ plan_error = "groups[" .. first.i .. "] (" .. core.encode_json(doc.groups[first.i].name)
    .. ") lists the SIM " .. core.encode_json(first.sim) .. ", " .. first.why
    .. (more > 0 and (" (and " .. more .. " more " .. (more == 1 and one or many) .. ")") or "") }, 0)
end

-- Each listing entry's moves: {moves_in = {{sim_id, from_group_id, from_name,
-- outside}}, moves_out = {sim ids}, unlisted = the group's SIMs kept though no entry
-- lists them, present = the group's SIMs now} by entry index. Every SIM moving in has
-- a known origin: a listing the plan read, or options.sims (the SIM as read); a SIM
-- that does not exist, or (unless allowed) one in a group the document does not own,
-- refuses the plan.
local function membership(doc, matched, claimed, options, by_id)
  local members, sims_read = options.members or {}, options.sims or {}
  local prune_sims, allow_outside = options.prune_sims or false, options.allow_sims_from_outside_scope or false
  local listed = {}
  for i, entry in ipairs(doc.groups) do
    for _, sim in ipairs(entry.sims or {}) do listed[sim] = i end
  end
  local group_of, read = listed_sims(doc, matched, members)
  local origins, missing, outside = {}, {}, {}
  each_moving_in(doc, matched, members, function(i, sim)
    local from = group_of[sim]
    if from == nil then
      local state = sims_read[sim]
      if state == nil then
        error("soracom.groups.plan: compare: options.sims has no entry for the SIM " .. core.encode_json(sim)
          .. ", which groups["
          .. i .. "] moves in (account.read_sims reads those plan.sims_to_locate names)", 0)
      elseif state == false then
        missing[#missing + 1] = { i = i, sim = sim, why = "which does not exist (GET /sims/{sim_id} answered 404)" }
        return
      end
      from = type(state) == "table" and type(state.groupId) == "string" and state.groupId or nil
    end
    local move = { sim_id = sim, from_group_id = from, from_name = from and by_id[from]
      and desired.group_name(by_id[from]) }
    if from and not owns(doc.scope, by_id, claimed, from) then
      if allow_outside then
        move.outside = true
      else
        local where = doc.scope and ", outside the document's scope (" .. desired.describe_scope(doc.scope) .. ")"
          or ", which the document does not list (it has no scope, so it owns only the groups it lists)"
        outside[#outside + 1] = { i = i, sim = sim, why = "which is in the group " .. tostring(move.from_name or from)
          .. (move.from_name and " (" .. from .. ")" or "") .. where .. ": the document does not own that group, "
          .. "so it takes no SIM out of it (--allow-sims-from-outside-scope allows it)" }
      end
    end
    origins[sim] = move
  end)
  if #missing > 0 then refuse_sims(doc, missing, "SIM that does not exist", "SIMs that do not exist") end
  if #outside > 0 then
    refuse_sims(doc, outside, "SIM from a group the document does not own",
      "SIMs from groups the document does not own")
  end
  local result = {}
  for i, entry in ipairs(doc.groups) do
    if entry.sims then
      local present = matched[i]
      local current = sorted_copy(present and members[present.groupId] or {})
      local moves = { moves_in = setmetatable({}, core.array_mt), moves_out = setmetatable({}, core.array_mt),
        unlisted = 0, present = current }
      for _, sim in ipairs(sorted_copy(entry.sims)) do
        if origins[sim] then moves.moves_in[#moves.moves_in + 1] = origins[sim] end
      end
      for _, sim in ipairs(current) do
        if not listed[sim] then
          if prune_sims then moves.moves_out[#moves.moves_out + 1] = sim
          else moves.unlisted = moves.unlisted + 1 end
        end
      end
      result[i] = moves
    end
  end
  return result, read
end

local function has_moves(moves)
  return moves ~= nil and (#moves.moves_in > 0 or #moves.moves_out > 0)
end

local OPTION_TYPES = { prune = "boolean", prune_namespaces = "boolean", prune_sims = "boolean",
  allow_sims_from_outside_scope = "boolean", getenv = "function", members = "table", sims = "table" }

local function check_options(options)
  if type(options) ~= "table" then
    error("soracom.groups.plan: compare: options must be a table (got " .. type(options) .. ")", 3)
  end
  validate.option_types("soracom.groups.plan: compare: ", options, OPTION_TYPES, 3)
end

local function compare(doc, account_groups, options)
  local prune, prune_namespaces = options.prune or false, options.prune_namespaces or false
  local prune_sims = options.prune_sims or false
  if (prune or prune_namespaces or prune_sims) and doc.scope == nil then
    error({ plan_error = "the document has no scope, so " .. (prune and "--prune" or prune_namespaces
      and "--prune-namespaces" or "--prune-sims")
      .. ' could reach groups it never claimed: add "scope": "account" (it covers every group) or "scope": '
      .. '{"tagName": "env", "tagValue": "prod"} (the groups a tag selects) to it; export writes one' }, 0)
  end
  local getenv = options.getenv or os.getenv
  local by_id, by_name = index_account(account_groups, doc.scope)
  local matched, claimed = match_entries(doc, by_id, by_name)
  local moves, member_groups = membership(doc, matched, claimed, options, by_id)
  local result = { scope = doc.scope, prune = prune, prune_namespaces = prune_namespaces, prune_sims = prune_sims,
    allow_sims_from_outside_scope = options.allow_sims_from_outside_scope or false, member_groups = member_groups,
    changes = {}, unmanaged = { groups = {}, namespaces = {}, sims = {} }, unnamed = {},
    warnings = doc.warnings or {} }
  local changes, unmanaged = result.changes, result.unmanaged

  for i, entry in ipairs(doc.groups) do
    local resolved, err = resolve_configuration(entry.configuration, getenv, "groups[" .. i .. "]")
    if resolved == nil then error({ plan_error = err }, 0) end
    local present = matched[i]
    local members = has_moves(moves[i]) and moves[i] or nil
    if not present then
      changes[#changes + 1] = create_change(entry, resolved, entry.group_id, ids_named(account_groups, entry.name))
      changes[#changes].entry = i
      changes[#changes].members = members
    else
      if moves[i] and moves[i].unlisted > 0 then
        unmanaged.sims[#unmanaged.sims + 1] = { name = entry.name, group_id = present.groupId,
          count = moves[i].unlisted }
      end
      local configuration = is_object(present.configuration) and present.configuration or {}
      local namespaces, left = namespace_changes(entry.configuration, resolved, configuration, prune_namespaces)
      for _, namespace in ipairs(left) do
        unmanaged.namespaces[#unmanaged.namespaces + 1] =
          { name = entry.name, group_id = present.groupId, namespace = namespace }
      end
      local tags = tag_changes(all_tags(entry), is_object(present.tags) and present.tags or {})
      if #tags > 0 or #namespaces > 0 or members then
        changes[#changes + 1] = { action = "update", name = entry.name, group_id = present.groupId,
          entry = i, was = desired.group_name(present), last_modified_time = present.lastModifiedTime,
          tags = tags, namespaces = namespaces, members = members }
      end
    end
  end

  -- What each group with moves keeps, once every move of the plan is made.
  local moved = plan.moved_sims(changes)
  for _, change in ipairs(changes) do
    if change.members then
      local present = change.members.present
      change.members.present = nil
      if change.action == "update" then change.members.staying = plan.members_digest(present, moved) end
    end
  end

  for _, group in ipairs(account_groups) do
    if not claimed[group.groupId] then
      local name = desired.group_name(group)
      if name == nil then
        result.unnamed[#result.unnamed + 1] = group.groupId
      elseif prune and desired.in_scope(doc.scope, group.tags) then
        changes[#changes + 1] = delete_change(group)
      else
        unmanaged.groups[#unmanaged.groups + 1] = { name = name, group_id = group.groupId }
      end
    end
  end

  table.sort(changes, function(a, b)
    if a.name ~= b.name then return a.name < b.name end
    return tostring(a.group_id) < tostring(b.group_id)
  end)
  table.sort(unmanaged.groups, function(a, b)
    if a.name ~= b.name then return a.name < b.name end
    return tostring(a.group_id) < tostring(b.group_id)
  end)
  table.sort(unmanaged.sims, function(a, b)
    if a.name ~= b.name then return a.name < b.name end
    return tostring(a.group_id) < tostring(b.group_id)
  end)
  table.sort(result.unnamed, function(a, b) return tostring(a) < tostring(b) end)
  return result
end

--- plan.compare(document, account_groups, {prune, prune_namespaces, prune_sims,
-- allow_sims_from_outside_scope, members, sims, getenv}) -> plan, or nil, err (a
-- document that does not check, an entry whose name matches two groups, a secret
-- reference whose variable is not set, a prune without a scope, a SIM to move in that
-- does not exist or, unless allow_sims_from_outside_scope, that is in a group the
-- document does not own). account_groups: the Group objects of the document's scope,
-- as listed, plus those its entries name by groupId (account.read gives both).
-- members: group id -> its simIds, for each group plan.member_groups names
-- (account.read_members reads them; a missing one raises). sims: sim id -> the SIM
-- (get_sim's answer) or false when it does not exist, for each SIM
-- plan.sims_to_locate names (account.read_sims reads them; a missing one raises). The
-- plan:
--   scope, prune, prune_namespaces, prune_sims, allow_sims_from_outside_scope: as given
--   member_groups: the ids of the groups whose SIMs members gave (apply reads them
--     again to check where SIMs moving out of them are)
--   changes: in name order, each {action = "create" | "update" | "delete", name,
--     group_id, was (update: the name it had), missing_id (create: the groupId the
--     document gave, not found), last_modified_time (as seen now, for apply's check),
--     entry (the document's index of the group), tags = {{op, name, from, to}} (the
--     name tag among them), namespaces = {{op = "put"
--     | "delete", namespace, settings (put: what is sent), source (put: the document's
--     form), diffs}}, create = create_group's options (create), holds = {tags,
--     namespaces} (delete: what the group has; account.count_sims adds sims),
--     members (create, update: when SIMs move) = {moves_in = {{sim_id, from_group_id,
--     from_name, outside}} (from_*: the group it leaves, nil for none; outside: true for
--     a group the document does not own),
--     moves_out = {sim ids} (prune_sims), unlisted = n, staying (update) =
--     plan.members_digest of the SIMs it keeps}}
--   unmanaged: {groups = {{name, group_id}}, namespaces = {{name, group_id, namespace}},
--     sims = {{name, group_id, count}} (SIMs of listing groups kept without prune_sims)}
--   unnamed: the ids of groups without a name tag, which a document cannot list
--   warnings: the document's (settings passed through unchecked)
function plan.compare(document, account_groups, options)
  options = options or {}
  check_options(options)
  if type(account_groups) ~= "table" then
    error("soracom.groups.plan: compare: account_groups must be a list of groups (got "
      .. type(account_groups) .. ")", 2)
  end
  local doc, err = desired.check(document)
  if doc == nil then return nil, err end
  local ok, result = pcall(compare, doc, account_groups, options)
  if ok then return result end
  if type(result) == "table" and result.plan_error then return nil, Error.new("plan", result.plan_error) end
  error(result, 0)
end

--- True when the plan changes nothing (unmanaged groups and namespaces do not count).
function plan.empty(p)
  return #p.changes == 0
end

--- The number of groups to create, change and delete, and of SIMs to move in and out.
function plan.counts(p)
  local counts = { create = 0, update = 0, delete = 0, sims_in = 0, sims_out = 0 }
  for _, change in ipairs(p.changes) do
    counts[change.action] = counts[change.action] + 1
    if change.members then
      counts.sims_in = counts.sims_in + #change.members.moves_in
      counts.sims_out = counts.sims_out + #change.members.moves_out
    end
  end
  return counts
end

--- plan.member_groups(document, account_groups) -> the ids of the account's groups whose
-- SIMs plan.compare needs (those that entries listing `sims` stand for), or nil, err as
-- plan.compare gives it.
function plan.member_groups(document, account_groups)
  local doc, err = desired.check(document)
  if doc == nil then return nil, err end
  local ok, matched = pcall(function()
    local by_id, by_name = index_account(account_groups, doc.scope)
    return (match_entries(doc, by_id, by_name))
  end)
  if not ok then
    if type(matched) == "table" and matched.plan_error then return nil, Error.new("plan", matched.plan_error) end
    error(matched, 0)
  end
  local ids = {}
  for i, entry in ipairs(doc.groups) do
    if entry.sims and matched[i] then ids[#ids + 1] = matched[i].groupId end
  end
  return ids
end

--- plan.sims_to_locate(document, account_groups, members) -> the ids of the SIMs the
-- document moves into a group that no listing in members shows (members as
-- plan.compare takes it): plan.compare needs each one as read (account.read_sims); or
-- nil, err as plan.compare gives it. SIMs already in their group, or in a group whose
-- SIMs members lists, are not among them.
function plan.sims_to_locate(document, account_groups, members)
  if type(members) ~= "table" then
    error("soracom.groups.plan: sims_to_locate: members must be a table of group id -> simIds (got "
      .. type(members) .. ")", 2)
  end
  if type(account_groups) ~= "table" then
    error("soracom.groups.plan: sims_to_locate: account_groups must be a list of groups (got "
      .. type(account_groups) .. ")", 2)
  end
  local doc, err = desired.check(document)
  if doc == nil then return nil, err end
  local ok, ids = pcall(function()
    local by_id, by_name = index_account(account_groups, doc.scope)
    local matched = match_entries(doc, by_id, by_name)
    local group_of = listed_sims(doc, matched, members)
    local found = {}
    each_moving_in(doc, matched, members, function(_, sim)
      if group_of[sim] == nil then found[#found + 1] = sim end
    end)
    return found
  end)
  if not ok then
    if type(ids) == "table" and ids.plan_error then return nil, Error.new("plan", ids.plan_error) end
    error(ids, 0)
  end
  return ids
end

--- plan.render(plan, options): plan_view.render, for callers holding only this module.
function plan.render(p, options)
  return require("soracom.groups.plan_view").render(p, options)
end

--- plan.to_json(plan): plan_view.to_json, for callers holding only this module.
function plan.to_json(p)
  return require("soracom.groups.plan_view").to_json(p)
end

--- plan.apply(client, plan, options): apply.run, for callers holding only this module.
function plan.apply(client, p, options)
  return require("soracom.groups.apply").run(client, p, options)
end

return plan
