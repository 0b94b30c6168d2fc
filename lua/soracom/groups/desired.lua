--- The desired-state document: what `export` writes and `plan`/`apply` read.
--
--     {scope = {tagName = "env", tagValue = "prod", tagValueMatchMode = "exact"},
--      groups = {{groupId = "...", name = "sensors-tokyo", tags = {env = "prod"},
--                 configuration = {SoracomAir = {metadata = {enabled = true}}}}}}
--
-- `scope` is the selector the document covers (or "account", the whole account):
-- plan lists only those groups and prune never reaches outside them. A group is
-- identified by its groupId when it has one, else by its `name` tag; `tags` holds
-- the others. `sims`, when given, is the list of the simIds the group holds (`[]`:
-- none); without it the group's membership is not the document's. `configuration` is
-- in the API's form, as a Group object holds it; a value {"$env": "NAME"} stands for
-- the environment variable NAME, read at plan time.
-- desired.encode writes JSON with sorted keys, so that two exports of one account are
-- byte for byte the same.

local core = require "soracom.groups.core"
local config = require "soracom.groups.config_core"
local Error = require "soracom.groups.error"
local spec = require "soracom.groups.operations"
local sandbox = require "soracom.groups.sandbox"
local secrets = require "soracom.groups.secrets"
local validate = require "soracom.groups.validate"

local desired = {}

local encode_json, null = core.encode_json, core.null

local function is_array(value)
  return type(value) == "table" and (getmetatable(value) == core.array_mt or value[1] ~= nil)
end

-- A deep copy that keeps the array marks, so that an empty list stays [].
local function copy(value)
  if type(value) ~= "table" then return value end
  local result = {}
  for key, item in pairs(value) do result[key] = copy(item) end
  if getmetatable(value) == core.array_mt then setmetatable(result, core.array_mt) end
  return result
end
desired.copy = copy

local sorted_keys = config.sorted_keys
desired.sorted_keys = sorted_keys

--- Deep equality of JSON values; array marks do not count ({} and [] are both empty).
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
desired.equal = equal

---------------------------------------------------------------------------------------
-- JSON text with sorted keys and a 2-space indent. The core's encoder writes strings
-- and numbers (exact integers, the escaping the API gets); this only lays them out,
-- which the core's encoder does not do.

local function encode_value(value, indent, out)
  if type(value) ~= "table" then
    out[#out + 1] = encode_json(value)
    return
  end
  local inner = indent .. "  "
  if is_array(value) then
    if #value == 0 then out[#out + 1] = "[]" return end
    out[#out + 1] = "[\n"
    for i, item in ipairs(value) do
      out[#out + 1] = inner
      encode_value(item, inner, out)
      out[#out + 1] = i < #value and ",\n" or "\n"
    end
    out[#out + 1] = indent .. "]"
    return
  end
  local keys = sorted_keys(value)
  if #keys == 0 then out[#out + 1] = "{}" return end
  out[#out + 1] = "{\n"
  for i, key in ipairs(keys) do
    if type(key) ~= "string" then
      error("soracom.groups.desired: encode: object keys must be strings (got " .. type(key) .. ")", 0)
    end
    out[#out + 1] = inner .. encode_json(key) .. ": "
    encode_value(value[key], inner, out)
    out[#out + 1] = i < #keys and ",\n" or "\n"
  end
  out[#out + 1] = indent .. "}"
end

--- desired.encode(value) -> JSON text, keys sorted, 2-space indent, final newline.
function desired.encode(value)
  local out = {}
  encode_value(value, "", out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

--- desired.encode_compact(value) -> JSON text on one line, keys sorted (for plan lines).
function desired.encode_compact(value)
  if type(value) ~= "table" then return encode_json(value) end
  local out = {}
  if is_array(value) then
    for i, item in ipairs(value) do out[i] = desired.encode_compact(item) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  for _, key in ipairs(sorted_keys(value)) do
    out[#out + 1] = encode_json(tostring(key)) .. ":" .. desired.encode_compact(value[key])
  end
  return "{" .. table.concat(out, ",") .. "}"
end

---------------------------------------------------------------------------------------
-- The scope: which groups a document covers.

desired.MATCH_MODES = { exact = true, prefix = true }
local ACCOUNT = "account"

--- The scope of list options {tag_name=, tag_value=, tag_value_match_mode=}: the whole
-- account without a tag name. Raises on a tag name without a value, or the reverse.
function desired.scope_of(selector)
  selector = selector or {}
  if selector.tag_name == nil and selector.tag_value == nil then return { account = true } end
  if type(selector.tag_name) ~= "string" or selector.tag_name == "" then
    error("soracom.groups.desired: tag_value needs tag_name", 2)
  end
  if type(selector.tag_value) ~= "string" then
    error("soracom.groups.desired: tag_name needs tag_value", 2)
  end
  local match = selector.tag_value_match_mode or "exact"
  if not desired.MATCH_MODES[match] then
    error("soracom.groups.desired: tag_value_match_mode must be exact or prefix (got " .. tostring(match) .. ")", 2)
  end
  return { tag_name = selector.tag_name, tag_value = selector.tag_value, match = match }
end

--- Whether a group with these tags (its name among them) is within the scope.
function desired.in_scope(scope, tags)
  if scope == nil or scope.account then return true end
  local value = type(tags) == "table" and tags[scope.tag_name]
  if type(value) ~= "string" then return false end
  if scope.match == "prefix" then return value:sub(1, #scope.tag_value) == scope.tag_value end
  return value == scope.tag_value
end

--- list_groups' options for the groups of a scope (the server filters them).
function desired.scope_query(scope)
  if scope == nil or scope.account then return {} end
  return { tag_name = scope.tag_name, tag_value = scope.tag_value, tag_value_match_mode = scope.match }
end

--- The scope in words, for plans and messages.
function desired.describe_scope(scope)
  if scope == nil then return "no scope (the file does not say which groups it covers)" end
  if scope.account then return "the whole account" end
  return "groups whose tag " .. encode_json(scope.tag_name)
    .. (scope.match == "prefix" and " starts with " or " is ") .. encode_json(scope.tag_value)
end

-- The scope as the document writes it.
local function scope_json(scope)
  if scope.account then return ACCOUNT end
  return { tagName = scope.tag_name, tagValue = scope.tag_value, tagValueMatchMode = scope.match }
end

---------------------------------------------------------------------------------------
-- Secret references: {"$env": "NAME"}.

local ENV_KEY = "$env"

--- The variable name when value is a secret reference {"$env": "NAME"}, else nil.
function desired.env_ref(value)
  if type(value) ~= "table" or type(value[ENV_KEY]) ~= "string" then return nil end
  if next(value, next(value)) ~= nil then return nil end
  return value[ENV_KEY]
end
local env_ref = desired.env_ref

--- A reference to the environment variable name.
function desired.make_env_ref(name)
  return { [ENV_KEY] = name }
end

--- value with every secret reference in it replaced by its variable's value, read
-- through getenv; or nil, message naming the variable and path (where it stands).
function desired.resolve(value, getenv, path)
  local name = env_ref(value)
  if name then
    local text = getenv(name)
    if type(text) ~= "string" then
      return nil, path .. " needs the environment variable " .. name .. ", which is not set"
    end
    -- CI systems expand a secret they do not have to "": that is no value either.
    if text == "" then return nil, path .. " needs the environment variable " .. name .. ", which is empty" end
    return text
  end
  if type(value) ~= "table" then return value end
  local result = {}
  for key, item in pairs(value) do
    local resolved, err = desired.resolve(item, getenv, path .. "." .. tostring(key))
    if resolved == nil and err then return nil, err end
    result[key] = resolved
  end
  return setmetatable(result, getmetatable(value))
end

--- Whether value holds a secret reference anywhere.
function desired.has_env_ref(value)
  if env_ref(value) then return true end
  if type(value) ~= "table" then return false end
  for _, item in pairs(value) do
    if desired.has_env_ref(item) then return true end
  end
  return false
end

---------------------------------------------------------------------------------------
-- From the account.

local function group_name(group)
  local tags = type(group) == "table" and group.tags
  local name = type(tags) == "table" and tags.name
  if type(name) == "string" and name ~= "" then return name end
  return nil
end
desired.group_name = group_name

--- desired.from_groups(account_groups, scope, members) -> document, unnamed ids (groups
-- without a name tag, which a document leaves out). Each group keeps its groupId, so
-- that a rename is a tag change. members: nil, or group id -> the simIds it holds
-- (account.read_members), written sorted as each group's `sims`. Pure.
function desired.from_groups(account_groups, scope, members)
  local document, unnamed = { groups = setmetatable({}, core.array_mt) }, {}
  if scope then document.scope = scope_json(scope) end
  for _, group in ipairs(account_groups) do
    local name = group_name(group)
    if name == nil then
      unnamed[#unnamed + 1] = group.groupId
    else
      local tags = {}
      for key, value in pairs(group.tags) do
        if key ~= "name" then tags[key] = value end
      end
      local configuration = type(group.configuration) == "table" and copy(group.configuration) or {}
      setmetatable(configuration, nil) -- an object, even when the API sent []
      local sims
      if members then
        sims = setmetatable(copy(members[group.groupId] or {}), core.array_mt)
        table.sort(sims)
      end
      document.groups[#document.groups + 1] = { groupId = group.groupId, name = name, tags = tags,
        configuration = configuration, sims = sims }
    end
  end
  table.sort(document.groups, function(a, b)
    if a.name ~= b.name then return a.name < b.name end
    return tostring(a.groupId) < tostring(b.groupId)
  end)
  return document, unnamed
end

--- Every group of the account (or those the tag options select), all pages.
function desired.list(client, options)
  local query, list = {}, {}
  for key, value in pairs(options or {}) do query[key] = value end
  repeat
    local page, next_key = client:list_groups(query)
    if page == nil then return nil, next_key end
    for _, group in ipairs(page) do list[#list + 1] = group end
    query.last_evaluated_key = next_key
  until next_key == nil
  return list
end

--- desired.export(client, {tag_name=, tag_value=, tag_value_match_mode=, with_sims=})
-- -> document (its scope: those options, or the whole account; with_sims: each group's
-- SIMs too), unnamed group ids; or nil, err.
function desired.export(client, options)
  options = options or {}
  local scope = desired.scope_of(options)
  local list, err = desired.list(client, desired.scope_query(scope))
  if list == nil then return nil, err end
  local members
  if options.with_sims then
    local ids = {}
    for _, group in ipairs(list) do
      if group_name(group) then ids[#ids + 1] = group.groupId end
    end
    -- account.lua reads through desired.lua: required here, not at the top.
    members, err = require("soracom.groups.account").read_members(client, ids)
    if members == nil then return nil, err end
  end
  return desired.from_groups(list, scope, members)
end

-- A variable name's part: upper case letters, digits and underscores.
local function variable_part(text)
  return (tostring(text):upper():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", ""))
end

--- desired.secrets_as_env(document, prefix) -> a copy of an exported document whose
-- secret settings (by the namespace's schema, or a string holding a secret such as a
-- URL's password) are secret references {"$env": NAME}, and the list of {variable,
-- where} to set, and the tags that look secret (a tag cannot be a reference: they are
-- written as they are). Names are PREFIX_GROUP_NAMESPACE_PATH in upper case, unique.
function desired.secrets_as_env(document, prefix)
  local result = copy(document)
  local variables, taken = {}, {}
  local function name_for(group, namespace, keys)
    local parts = { prefix, variable_part(group.name), variable_part(namespace) }
    for _, key in ipairs(keys) do parts[#parts + 1] = variable_part(key) end
    local base = table.concat(parts, "_"):gsub("__+", "_")
    local name, n = base, 1
    while taken[name] do
      n = n + 1
      name = base .. "_" .. n
    end
    taken[name] = true
    return name
  end
  local function walk(group, namespace, keys, value)
    if type(value) ~= "table" or env_ref(value) then
      local leaf = value
      local shown = secrets.masked(namespace, keys, leaf)
      if leaf ~= nil and leaf ~= null and not equal(shown, leaf) then
        local name = name_for(group, namespace, keys)
        variables[#variables + 1] = { variable = name, where = group.name .. " " .. namespace .. "."
          .. table.concat(keys, ".") }
        return desired.make_env_ref(name)
      end
      return value
    end
    for _, key in ipairs(sorted_keys(value)) do
      value[key] = walk(group, namespace, config.with_key(keys, key), value[key])
    end
    return value
  end
  local tags = {}
  for _, group in ipairs(result.groups) do
    for _, namespace in ipairs(sorted_keys(group.configuration or {})) do
      group.configuration[namespace] = walk(group, namespace, {}, group.configuration[namespace])
    end
    for _, name in ipairs(sorted_keys(group.tags or {})) do
      if secrets.is_secret_name(name) or select(2, secrets.mask_string(group.tags[name])) then
        tags[#tags + 1] = group.name .. " tag " .. name
      end
    end
  end
  return result, variables, tags
end

---------------------------------------------------------------------------------------
-- Checking a document (from a file, or built in Lua).

local function describe(value)
  if value == null then return "null" end
  if type(value) == "string" then return "a string" end
  if is_array(value) then return "a list" end
  return type(value) == "table" and "an object" or type(value)
end

-- Raised inside check and turned into nil, err by its caller.
local function bad(path, message)
  error({ document_error = path .. " " .. message }, 0)
end

local GROUP_KEYS = { groupId = true, name = true, tags = true, configuration = true, sims = true }
local SCOPE_KEYS = { tagName = true, tagValue = true, tagValueMatchMode = true }

local function check_scope(scope)
  if scope == nil then return nil end
  if scope == ACCOUNT then return { account = true } end
  if type(scope) ~= "table" or is_array(scope) then
    bad("scope", 'must be "account" or {"tagName": ..., "tagValue": ..., "tagValueMatchMode": '
      .. '"exact" | "prefix"} (got ' .. describe(scope) .. ")")
  end
  for key in pairs(scope) do
    if not SCOPE_KEYS[key] then
      bad("scope", "has an unknown key " .. string.format("%q", tostring(key))
        .. " (expected tagName, tagValue, tagValueMatchMode)")
    end
  end
  if type(scope.tagName) ~= "string" or scope.tagName == "" then
    bad("scope.tagName", "must be a non-empty string (got " .. describe(scope.tagName) .. ")")
  end
  if type(scope.tagValue) ~= "string" then
    bad("scope.tagValue", "must be a string (got " .. describe(scope.tagValue) .. ")")
  end
  local match = scope.tagValueMatchMode or "exact"
  if not desired.MATCH_MODES[match] then
    bad("scope.tagValueMatchMode", 'must be "exact" or "prefix"')
  end
  return { tag_name = scope.tagName, tag_value = scope.tagValue, match = match }
end

local function check_tags(tags, path)
  if tags == nil then return {} end
  if type(tags) ~= "table" or (is_array(tags) and #tags > 0) then
    bad(path, "must be an object of tag name -> value (got " .. describe(tags) .. ")")
  end
  local result = {}
  for _, key in ipairs(sorted_keys(tags)) do
    local value = tags[key]
    if type(key) ~= "string" or key == "" then bad(path, "has a tag name that is not a non-empty string") end
    if key == "name" then bad(path .. ".name", "is the group's name: give it as name, beside tags") end
    if type(value) ~= "string" then bad(path .. "." .. key, "must be a string (got " .. describe(value) .. ")") end
    result[key] = value
  end
  return result
end

-- How deep a setting's value may nest: far deeper than any setting of the API, and
-- a table that holds itself (a .lua document's) is refused instead of looping.
local MAX_DEPTH = 64

-- A setting's value: JSON values and secret references; a reference's name is checked.
local function check_value(value, path, depth)
  if type(value) ~= "table" then return end
  if depth > MAX_DEPTH then bad(path, "nests deeper than " .. MAX_DEPTH .. " levels") end
  if value[ENV_KEY] ~= nil then
    local name = env_ref(value)
    if name == nil or not name:match("^[%a_][%w_]*$") then
      bad(path, 'must be a secret reference {"$env": "NAME"} alone, NAME a variable name')
    end
    return
  end
  for key, item in pairs(value) do check_value(item, path .. "." .. tostring(key), depth + 1) end
end

-- A check_api message (which starts with the path below the namespace) below path.
local function below(path, message)
  if message:match("^must ") then return path .. " " .. message end
  return path .. (message:sub(1, 1) == "[" and "" or ".") .. message
end

-- A namespace's settings: an object of API keys, or a built configuration (the
-- builder's API form), or null (the namespace is to be deleted). Checked against the
-- namespace's schema: errors raise, warnings are added to the list.
local function check_settings(namespace, settings, path, warnings)
  if settings == null then return null end
  if config.is_built(settings) then
    if settings.namespace ~= namespace then
      bad(path, "was built for " .. settings.namespace .. ", not " .. namespace)
    end
    local map = {}
    for _, param in ipairs(settings.params) do map[param.key] = param.value end
    return map
  end
  if type(settings) ~= "table" or (is_array(settings) and #settings > 0) then
    bad(path, "must be an object of settings, a built configuration or null (got " .. describe(settings) .. ")")
  end
  if settings[ENV_KEY] ~= nil then
    bad(path, 'cannot be one secret reference: give {"$env": "NAME"} as the value of a setting')
  end
  local map = {}
  for key, value in pairs(settings) do
    if type(key) ~= "string" or key == "" then bad(path, "has a key that is not a non-empty string") end
    check_value(value, path .. "." .. key, 1)
    map[key] = copy(value)
  end
  local errors, notes = config.check_api(namespace, map)
  if #errors > 0 then error({ document_error = below(path, errors[1]) }, 0) end
  for _, note in ipairs(notes) do warnings[#warnings + 1] = below(path, note) end
  return map
end

local function check_configuration(configuration, path, warnings)
  if configuration == nil then return {} end
  if type(configuration) ~= "table" then
    bad(path, "must be an object of namespace -> settings (got " .. describe(configuration) .. ")")
  end
  -- A list of built configurations ({config.air{...}, config.harvest{...}}) stands for
  -- the namespaces they were built for.
  if config.is_built(configuration) then configuration = { configuration } end
  if config.is_built(configuration[1]) then
    local by_namespace = {}
    for i, built in ipairs(configuration) do
      if not config.is_built(built) then bad(path .. "[" .. i .. "]", "is not a built configuration") end
      if by_namespace[built.namespace] then bad(path, "builds " .. built.namespace .. " twice") end
      by_namespace[built.namespace] = built
    end
    configuration = by_namespace
  elseif is_array(configuration) and #configuration > 0 then
    bad(path, "must be an object of namespace -> settings or a list of built configurations (got a list)")
  end
  local result = {}
  for _, name in ipairs(sorted_keys(configuration)) do
    local namespace = type(name) == "string" and spec.NAMESPACE_OF[name]
    if not namespace then
      bad(path, "has an unknown " .. spec.unknown_namespace(name, spec.ALL_NAMESPACES))
    end
    if result[namespace] ~= nil then bad(path, "names " .. namespace .. " twice") end
    result[namespace] = check_settings(namespace, configuration[name], path .. "." .. namespace, warnings)
  end
  return result
end

--- Whether value can be a simId: what client:move_sims takes as one (a string that is
-- a path segment).
function desired.is_sim_id(value)
  return (pcall(validate.segment, "desired", "simId", value, 1))
end

-- A group's SIMs: nil (not managed), or a list of distinct simIds.
local function check_sims(sims, path)
  if sims == nil then return nil end
  if type(sims) ~= "table" or (next(sims) ~= nil and not is_array(sims)) then
    bad(path, "must be a list of simIds (got " .. describe(sims) .. ")")
  end
  local result, seen, count = setmetatable({}, core.array_mt), {}, 0
  for _ in pairs(sims) do count = count + 1 end
  if count ~= #sims then bad(path, "must be a list without other keys") end
  for i, sim in ipairs(sims) do
    local where = path .. "[" .. i .. "]"
    if type(sim) ~= "string" or sim == "" then
      bad(where, "must be a non-empty string (got " .. describe(sim) .. ")")
    end
    if not desired.is_sim_id(sim) then bad(where, "must be a simId (got " .. encode_json(sim) .. ")") end
    if seen[sim] then bad(where, "repeats " .. encode_json(sim) .. " (" .. path .. "[" .. seen[sim] .. "])") end
    seen[sim] = i
    result[i] = sim
  end
  return result
end

local function check_group(group, path, scope, warnings)
  if type(group) ~= "table" or is_array(group) then bad(path, "must be an object (got " .. describe(group) .. ")") end
  for _, key in ipairs(sorted_keys(group)) do
    if not GROUP_KEYS[key] then
      bad(path, "has an unknown key " .. string.format("%q", tostring(key))
        .. " (expected groupId, name, tags, configuration, sims)")
    end
  end
  if type(group.name) ~= "string" or group.name == "" then
    bad(path .. ".name", "must be a non-empty string (got " .. describe(group.name) .. ")")
  end
  if group.groupId ~= nil and (type(group.groupId) ~= "string" or group.groupId == "") then
    bad(path .. ".groupId", "must be a non-empty string (got " .. describe(group.groupId) .. ")")
  end
  local checked = {
    group_id = group.groupId, name = group.name,
    tags = check_tags(group.tags, path .. ".tags"),
    configuration = check_configuration(group.configuration, path .. ".configuration", warnings),
    sims = check_sims(group.sims, path .. ".sims"),
  }
  local all_tags = copy(checked.tags)
  all_tags.name = checked.name
  if not desired.in_scope(scope, all_tags) then
    bad(path, "(" .. encode_json(group.name) .. ") is outside the document's scope, "
      .. desired.describe_scope(scope) .. ": give it that tag, or change the scope")
  end
  return checked
end

-- A SIM is in one group at a time: two entries listing it cannot both be right.
local function check_sim_owners(groups)
  local owner = {}
  for i, group in ipairs(groups) do
    for _, sim in ipairs(group.sims or {}) do
      local first = owner[sim]
      if first then
        bad("groups[" .. i .. "] (" .. encode_json(group.name) .. ")", "lists the SIM " .. encode_json(sim)
          .. ", which groups[" .. first .. "] (" .. encode_json(groups[first].name) .. ") lists too: "
          .. "a SIM is in one group at a time")
      end
      owner[sim] = i
    end
  end
end

-- The entries that share one name (among those matched by name) or one groupId.
local function check_identities(groups)
  local by_name, by_id = {}, {}
  for i, group in ipairs(groups) do
    local where = "groups[" .. i .. "]"
    if group.group_id then
      if by_id[group.group_id] then
        bad(where, "has the groupId of " .. by_id[group.group_id] .. ": one group, two entries")
      end
      by_id[group.group_id] = where
    else
      if by_name[group.name] then
        bad(where, "has the name of " .. by_name[group.name] .. " (" .. encode_json(group.name)
          .. "), and neither says its groupId: the name cannot identify both")
      end
      by_name[group.name] = where
    end
  end
end

-- The mark of a checked document, which checks as itself.
local Checked = {}

local function check(document)
  if getmetatable(document) == Checked then return document end
  if type(document) ~= "table" or is_array(document) then
    bad("the document", "must be an object with groups (got " .. describe(document) .. ")")
  end
  for key in pairs(document) do
    if key ~= "groups" and key ~= "scope" then
      bad("the document", "has an unknown key " .. string.format("%q", tostring(key)) .. " (expected scope, groups)")
    end
  end
  local scope = check_scope(document.scope)
  local list = document.groups
  if list == nil then list = {} end
  if type(list) ~= "table" or (next(list) ~= nil and not is_array(list)) then
    bad("groups", "must be a list (got " .. describe(list) .. ")")
  end
  local warnings = {}
  local result = { scope = scope, groups = setmetatable({}, core.array_mt), warnings = warnings }
  for i = 1, #list do result.groups[i] = check_group(list[i], "groups[" .. i .. "]", scope, warnings) end
  local count = 0
  for _ in pairs(list) do count = count + 1 end
  if count ~= #list then bad("groups", "must be a list without other keys") end
  check_identities(result.groups)
  check_sim_owners(result.groups)
  return setmetatable(result, Checked)
end

--- desired.check(document) -> the document normalised, or nil, err whose message
-- names the place in the document (`groups[3].tags.env must be a string (got
-- number)`). The normalised document: {scope = nil | {account = true} | {tag_name,
-- tag_value, match}, groups = {{group_id, name, tags, configuration, sims (nil: not
-- managed)}}, warnings =
-- {text}}, namespaces by their API names, built configurations in API form, settings
-- checked against the namespace's schema (unknown keys close to a known one are
-- errors, others warnings).
function desired.check(document)
  local ok, result = pcall(check, document)
  if ok then return result end
  if type(result) == "table" and result.document_error then
    return nil, Error.new("desired", result.document_error)
  end
  error(result, 0)
end

-- The document value of a file: a Lua chunk run in the sandbox, or JSON (strict:
-- duplicate keys and inexact integers are errors).
local function read_document(path, text)
  if path:match("%.lua$") then
    local value, why = sandbox.run_document(text, "@" .. path)
    if why == nil then return value end
    -- A Lua error names the file and line already.
    if why:sub(1, #path + 1) == path .. ":" then return nil, why end
    return nil, path .. ": " .. why
  end
  local value, decode_err = core.decode_json(text, { strict = true })
  if value == nil then return nil, path .. ": invalid JSON: " .. tostring(decode_err) end
  return value
end

--- desired.load(path) -> checked document, or nil, err. A path ending in .lua is a
-- Lua chunk returning the document, run in a sandbox that holds the builders and no
-- way out (see sandbox.lua); anything else is JSON. The document's `source` is
-- {path, sha256} of the file read.
function desired.load(path)
  if type(path) ~= "string" then
    error("soracom.groups.desired: load: path must be a string (got " .. type(path) .. ")", 2)
  end
  local file, why = io.open(path, "rb")
  if file == nil then return nil, Error.new("desired", why) end
  local text = file:read("*a")
  file:close()
  if text == nil then return nil, Error.new("desired", path .. ": cannot read the file") end
  local document, err = read_document(path, text)
  if document == nil then return nil, Error.new("desired", err) end
  local result
  result, err = desired.check(document)
  if result == nil then
    err.message = path .. ": " .. err.message
    return nil, err
  end
  result.source = { path = path, sha256 = core.sha256(text) }
  return result
end

return desired
