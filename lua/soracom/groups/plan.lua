--- plan.compare: a desired-state document and the account's groups -> the changes
-- that make the account match the document; plan.render and plan.to_json show them.
-- No I/O here: apply.lua carries a plan out.
--
-- What the document owns: the groups it names (by their name tag), each one's tags
-- (all but name: a tag absent from the document is removed) and each namespace it
-- lists, whole (PUT replaces it; null deletes it). Groups and namespaces it does not
-- list are unmanaged and left alone, unless prune is set, which deletes them.
-- Groups without a name tag can never be named by a document: always unmanaged.

local core = require "soracom.groups.core"
local desired = require "soracom.groups.desired"

local plan = {}

local null = core.null
local sorted_keys, encode_compact = desired.sorted_keys, desired.encode_compact

local function is_list(value)
  return type(value) == "table" and (getmetatable(value) == core.array_mt or value[1] ~= nil)
end

local function is_object(value)
  return type(value) == "table" and not is_list(value)
end

-- Deep equality of JSON values; array marks do not count ({} and [] are both empty).
local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for key, value in pairs(a) do
    if not equal(value, b[key]) then return false end
  end
  for key in pairs(b) do
    if a[key] == nil then return false end
  end
  return true
end
plan.equal = equal

---------------------------------------------------------------------------------------
-- Sensitive values: never printed, in text or JSON.

local SENSITIVE_WORDS = { "password", "secret", "credential", "psk" }

-- Whether a key names a secret: a password, a secret, credentials, a pre-shared key,
-- or a name ending in key or token (authKey, apiKey, key of a client certificate).
-- tokenTimeoutSeconds and the like do not end so and are shown.
local function sensitive_key(key)
  local lower = tostring(key):lower()
  for _, word in ipairs(SENSITIVE_WORDS) do
    if lower:find(word, 1, true) then return true end
  end
  return lower:sub(-3) == "key" or lower:sub(-5) == "token"
end
plan.sensitive_key = sensitive_key

local function sensitive_path(keys)
  for _, key in ipairs(keys) do
    if sensitive_key(key) then return true end
  end
  return false
end

---------------------------------------------------------------------------------------
-- Differences, key by key.

local function path_of(keys)
  local parts = {}
  for i, key in ipairs(keys) do
    key = tostring(key)
    if key:match("^[%a_$][%w_$]*$") then
      parts[#parts + 1] = (i > 1 and "." or "") .. key
    else
      parts[#parts + 1] = "[" .. string.format("%q", key) .. "]"
    end
  end
  return table.concat(parts)
end

local function with_key(keys, key)
  local result = {}
  for i, k in ipairs(keys) do result[i] = k end
  result[#result + 1] = key
  return result
end

-- Appends to out one {op = "add" | "change" | "remove", path, keys, from, to,
-- sensitive} per leaf that differs. Objects are compared key by key; lists and
-- scalars are leaves. Missing values are nil.
local function diff(keys, before, after, out)
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
      diff(with_key(keys, key), from, to, out)
    end
    return
  end
  out[#out + 1] = {
    op = before == nil and "add" or after == nil and "remove" or "change",
    path = path_of(keys), keys = keys, from = before, to = after, sensitive = sensitive_path(keys),
  }
end

---------------------------------------------------------------------------------------
-- The comparison.

local function tag_changes(wanted, present)
  local changes, names = {}, {}
  for name in pairs(wanted) do names[name] = true end
  for name in pairs(present) do
    if name ~= "name" then names[name] = true end
  end
  for _, name in ipairs(sorted_keys(names)) do
    local from, to = present[name], wanted[name]
    if from ~= to then
      changes[#changes + 1] = {
        op = from == nil and "add" or to == nil and "remove" or "change",
        name = name, from = from, to = to, sensitive = sensitive_key(name),
      }
    end
  end
  return changes
end

local function namespace_put(namespace, before, after)
  local diffs = {}
  diff({ namespace }, before, after, diffs)
  return { op = "put", namespace = namespace, settings = after, diffs = diffs }
end

-- The namespaces to put or delete, and the ones left unmanaged.
local function namespace_changes(wanted, present, prune)
  local changes, unmanaged = {}, {}
  local names = {}
  for namespace in pairs(wanted) do names[namespace] = true end
  for namespace in pairs(present) do names[namespace] = true end
  for _, namespace in ipairs(sorted_keys(names)) do
    local to, from = wanted[namespace], present[namespace]
    if to == nil then
      if prune then changes[#changes + 1] = { op = "delete", namespace = namespace }
      else unmanaged[#unmanaged + 1] = namespace end
    elseif to == null or (is_object(to) and next(to) == nil) then
      -- Nothing set: the API has no empty PUT, and a namespace without settings is
      -- one the group does not have.
      if from ~= nil and not equal(from, {}) then
        changes[#changes + 1] = { op = "delete", namespace = namespace }
      end
    elseif from == nil or not equal(from, to) then
      changes[#changes + 1] = namespace_put(namespace, from, to)
    end
  end
  return changes, unmanaged
end

local function create_change(group)
  local configuration, namespaces = {}, {}
  for _, namespace in ipairs(sorted_keys(group.configuration)) do
    local settings = group.configuration[namespace]
    if settings ~= null and next(settings) ~= nil then
      configuration[namespace] = settings
      namespaces[#namespaces + 1] = namespace_put(namespace, nil, settings)
    end
  end
  return {
    action = "create", name = group.name,
    tags = tag_changes(group.tags, {}), namespaces = namespaces,
    -- create_group refuses empty tags or configuration: leave them out.
    create = { name = group.name, tags = next(group.tags) and group.tags or nil,
      configuration = next(configuration) and configuration or nil },
  }
end

--- plan.compare(document, account_groups, {prune = bool}) -> plan, or nil, err (a
-- document that does not check, or two account groups with one name).
-- account_groups are Group objects as listed (each with groupId, tags,
-- configuration, lastModifiedTime). The plan:
--   changes: in name order, each {action = "create" | "update" | "delete", name,
--     group_id, last_modified_time (as seen now, for apply's check), tags = {{op, name,
--     from, to, sensitive}}, namespaces = {{op = "put" | "delete", namespace,
--     settings, diffs}}, create = create_group's options (create only)}
--   unmanaged: {groups = {{name, group_id}}, namespaces = {{name, group_id, namespace}}}
function plan.compare(document, account_groups, options)
  options = options or {}
  if type(options) ~= "table" then
    error("soracom.groups.plan: compare: options must be a table (got " .. type(options) .. ")", 2)
  end
  if type(account_groups) ~= "table" then
    error("soracom.groups.plan: compare: account_groups must be a list of groups (got "
      .. type(account_groups) .. ")", 2)
  end
  local doc, err = desired.check(document)
  if doc == nil then return nil, err end
  err = desired.check_account(account_groups)
  if err then return nil, err end
  local prune = options.prune and true or false

  local by_name = {}
  for _, group in ipairs(account_groups) do
    local name = desired.group_name(group)
    if name then by_name[name] = group end
  end
  local result = { prune = prune, changes = {}, unmanaged = { groups = {}, namespaces = {} } }
  local changes, unmanaged = result.changes, result.unmanaged
  local wanted = {}

  for _, group in ipairs(doc.groups) do
    wanted[group.name] = true
    local present = by_name[group.name]
    if present == nil then
      changes[#changes + 1] = create_change(group)
    else
      local configuration = is_object(present.configuration) and present.configuration or {}
      local namespaces, left = namespace_changes(group.configuration, configuration, prune)
      for _, namespace in ipairs(left) do
        unmanaged.namespaces[#unmanaged.namespaces + 1] =
          { name = group.name, group_id = present.groupId, namespace = namespace }
      end
      local tags = tag_changes(group.tags, is_object(present.tags) and present.tags or {})
      if #tags > 0 or #namespaces > 0 then
        changes[#changes + 1] = { action = "update", name = group.name, group_id = present.groupId,
          last_modified_time = present.lastModifiedTime, tags = tags, namespaces = namespaces }
      end
    end
  end

  for _, group in ipairs(account_groups) do
    local name = desired.group_name(group)
    if name == nil or not wanted[name] then
      if prune and name ~= nil then
        changes[#changes + 1] = { action = "delete", name = name, group_id = group.groupId,
          last_modified_time = group.lastModifiedTime, tags = {}, namespaces = {} }
      else
        unmanaged.groups[#unmanaged.groups + 1] = { name = name, group_id = group.groupId }
      end
    end
  end

  table.sort(changes, function(a, b) return a.name < b.name end)
  table.sort(unmanaged.groups, function(a, b)
    if (a.name or "") ~= (b.name or "") then return (a.name or "") < (b.name or "") end
    return tostring(a.group_id) < tostring(b.group_id)
  end)
  return result
end

--- True when the plan changes nothing (unmanaged groups and namespaces do not count).
function plan.empty(p)
  return #p.changes == 0
end

--- The number of groups to create, change and delete.
function plan.counts(p)
  local counts = { create = 0, update = 0, delete = 0 }
  for _, change in ipairs(p.changes) do counts[change.action] = counts[change.action] + 1 end
  return counts
end

---------------------------------------------------------------------------------------
-- Showing a plan.

local SENSITIVE = "(sensitive)"

-- A value with whatever sits under a sensitive key inside it hidden (a list is one
-- leaf of the diff, and may hold objects with passwords).
local function masked(value)
  if type(value) ~= "table" then return value end
  local result = {}
  for key, item in pairs(value) do
    if type(key) == "string" and sensitive_key(key) then result[key] = SENSITIVE else result[key] = masked(item) end
  end
  return setmetatable(result, getmetatable(value))
end

local function shown(value, sensitive)
  if sensitive then return SENSITIVE end
  return encode_compact(masked(value))
end

local function tag_line(tag)
  local to, from = tag.sensitive and SENSITIVE or tag.to, tag.sensitive and SENSITIVE or tag.from
  if tag.op == "add" then return "  + tag " .. tag.name .. " = " .. to end
  if tag.op == "remove" then return "  - tag " .. tag.name end
  return "  ~ tag " .. tag.name .. ": " .. from .. " -> " .. to
end

local function diff_line(d)
  if d.op == "add" then return "  + " .. d.path .. " = " .. shown(d.to, d.sensitive) end
  if d.op == "remove" then return "  - " .. d.path end
  return "  ~ " .. d.path .. ": " .. shown(d.from, d.sensitive) .. " -> " .. shown(d.to, d.sensitive)
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

--- plan.render(plan) -> a list of text lines (no newlines): the changes, the
-- unmanaged groups and namespaces, and a summary line last.
function plan.render(p)
  local lines = {}
  for _, change in ipairs(p.changes) do
    if change.action == "delete" then
      lines[#lines + 1] = "- group " .. change.name
    else
      lines[#lines + 1] = (change.action == "create" and "+ create group " or "~ group ") .. change.name
      for _, tag in ipairs(change.tags) do lines[#lines + 1] = tag_line(tag) end
      for _, namespace in ipairs(change.namespaces) do
        if namespace.op == "delete" then
          lines[#lines + 1] = "  - namespace " .. namespace.namespace
        else
          for _, d in ipairs(namespace.diffs) do lines[#lines + 1] = diff_line(d) end
        end
      end
    end
  end
  for _, group in ipairs(p.unmanaged.groups) do
    lines[#lines + 1] = "# unmanaged group " .. (group.name or "(no name tag)")
      .. " (" .. tostring(group.group_id) .. ")"
  end
  for _, namespace in ipairs(p.unmanaged.namespaces) do
    lines[#lines + 1] = "# unmanaged namespace " .. namespace.namespace .. " of group " .. namespace.name
  end
  local counts = plan.counts(p)
  if plan.empty(p) then
    lines[#lines + 1] = "No changes."
  else
    lines[#lines + 1] = "Plan: " .. counts.create .. " to create, " .. counts.update .. " to change, "
      .. counts.delete .. " to delete."
  end
  local left = #p.unmanaged.groups + #p.unmanaged.namespaces
  if left > 0 then
    lines[#lines + 1] = "Unmanaged (left alone" .. (p.prune and "" or "; --prune deletes named ones") .. "): "
      .. plural(#p.unmanaged.groups, "group") .. ", " .. plural(#p.unmanaged.namespaces, "namespace") .. "."
  end
  return lines
end

local function json_value(value, sensitive)
  if sensitive and value ~= nil then return SENSITIVE end
  return masked(value)
end

--- plan.to_json(plan) -> JSON text (sorted keys, indented): {changes, unmanaged,
-- summary}, with sensitive values as "(sensitive)" and no full settings (they may
-- hold secrets; the per-key differences say what changes).
function plan.to_json(p)
  local changes = setmetatable({}, core.array_mt)
  for _, change in ipairs(p.changes) do
    local tags, namespaces = setmetatable({}, core.array_mt), setmetatable({}, core.array_mt)
    for _, tag in ipairs(change.tags) do
      tags[#tags + 1] = { op = tag.op, name = tag.name, from = json_value(tag.from, tag.sensitive),
        to = json_value(tag.to, tag.sensitive) }
    end
    for _, namespace in ipairs(change.namespaces) do
      local diffs = setmetatable({}, core.array_mt)
      for _, d in ipairs(namespace.diffs or {}) do
        diffs[#diffs + 1] = { op = d.op, path = d.path, from = json_value(d.from, d.sensitive),
          to = json_value(d.to, d.sensitive) }
      end
      namespaces[#namespaces + 1] = { op = namespace.op, namespace = namespace.namespace, diffs = diffs }
    end
    changes[#changes + 1] = { action = change.action, name = change.name, groupId = change.group_id,
      tags = tags, namespaces = namespaces }
  end
  local groups, namespaces = setmetatable({}, core.array_mt), setmetatable({}, core.array_mt)
  for _, group in ipairs(p.unmanaged.groups) do
    groups[#groups + 1] = { name = group.name, groupId = group.group_id }
  end
  for _, left in ipairs(p.unmanaged.namespaces) do
    namespaces[#namespaces + 1] = { name = left.name, groupId = left.group_id, namespace = left.namespace }
  end
  local counts = plan.counts(p)
  return desired.encode({
    changes = changes,
    unmanaged = { groups = groups, namespaces = namespaces },
    summary = { create = counts.create, change = counts.update, delete = counts.delete, prune = p.prune },
  })
end

--- plan.apply(client, plan, options): apply.run, for callers holding only this module.
function plan.apply(client, p, options)
  return require("soracom.groups.apply").run(client, p, options)
end

return plan
