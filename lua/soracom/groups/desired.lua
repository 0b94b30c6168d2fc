--- The desired-state document: what `export` writes and `plan`/`apply` read.
--
--     {groups = {{name = "sensors-tokyo", tags = {env = "prod"},
--                 configuration = {SoracomAir = {metadata = {enabled = true}}}}}}
--
-- A group is identified by its `name` tag; `tags` holds the others. `configuration`
-- is in the API's form, as a Group object holds it. desired.encode writes it as JSON
-- with sorted keys, so that two exports of one account are byte for byte the same.

local core = require "soracom.groups.core"
local config = require "soracom.groups.config"
local Error = require "soracom.groups.error"
local spec = require "soracom.groups.operations"

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
-- From the account.

--- The groups with one name tag shared by several: nil, or an error listing each
-- name with its group ids. `what` says where the groups come from.
local function duplicate_names(list, name_of, id_of, what)
  local seen, order = {}, {}
  for i, item in ipairs(list) do
    local name = name_of(item)
    if name ~= nil then
      if seen[name] == nil then
        seen[name] = {}
        order[#order + 1] = name
      end
      local ids = seen[name]
      ids[#ids + 1] = id_of(item, i)
    end
  end
  local lines = {}
  table.sort(order)
  for _, name in ipairs(order) do
    if #seen[name] > 1 then lines[#lines + 1] = name .. " (" .. table.concat(seen[name], ", ") .. ")" end
  end
  if #lines == 0 then return nil end
  return "several groups share one name " .. what .. ", so the name does not identify a group: "
    .. table.concat(lines, "; ")
end

local function group_name(group)
  local tags = type(group) == "table" and group.tags
  local name = type(tags) == "table" and tags.name
  if type(name) == "string" and name ~= "" then return name end
  return nil
end
desired.group_name = group_name

--- Whether the account's groups (as listed or read) name each group once: nil, or an
-- error object naming the duplicated names and their group ids.
function desired.check_account(account_groups)
  local why = duplicate_names(account_groups, group_name,
    function(group) return tostring(group.groupId) end, "in the account")
  if why then return Error.new("desired", why) end
  return nil
end

--- desired.from_groups(account_groups) -> document, unnamed ids (groups without a
-- name tag, which a document cannot identify), or nil, err on duplicate names. Pure.
function desired.from_groups(account_groups)
  local err = desired.check_account(account_groups)
  if err then return nil, err end
  local document, unnamed = { groups = setmetatable({}, core.array_mt) }, {}
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
      document.groups[#document.groups + 1] = { name = name, tags = tags, configuration = configuration }
    end
  end
  table.sort(document.groups, function(a, b) return a.name < b.name end)
  return document, unnamed
end

--- desired.export(client, {tag_name=, tag_value=, tag_value_match_mode=}) -> document,
-- unnamed group ids; or nil, err (an API error, or two groups with one name).
function desired.export(client, options)
  local list, err = desired.list(client, options)
  if list == nil then return nil, err end
  return desired.from_groups(list)
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

local GROUP_KEYS = { name = true, tags = true, configuration = true }

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

-- A namespace's settings: an object of API keys, or a built configuration (the
-- builder's API form), or null (the namespace is to be deleted).
local function check_settings(namespace, settings, path)
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
  local map = {}
  for key, value in pairs(settings) do
    if type(key) ~= "string" or key == "" then bad(path, "has a key that is not a non-empty string") end
    map[key] = copy(value)
  end
  return map
end

local function check_configuration(configuration, path)
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
    result[namespace] = check_settings(namespace, configuration[name], path .. "." .. namespace)
  end
  return result
end

local function check_group(group, path)
  if type(group) ~= "table" or is_array(group) then bad(path, "must be an object (got " .. describe(group) .. ")") end
  for _, key in ipairs(sorted_keys(group)) do
    if not GROUP_KEYS[key] then
      bad(path, "has an unknown key " .. string.format("%q", tostring(key)) .. " (expected name, tags, configuration)")
    end
  end
  if type(group.name) ~= "string" or group.name == "" then
    bad(path .. ".name", "must be a non-empty string (got " .. describe(group.name) .. ")")
  end
  return {
    name = group.name,
    tags = check_tags(group.tags, path .. ".tags"),
    configuration = check_configuration(group.configuration, path .. ".configuration"),
  }
end

local function check(document)
  if type(document) ~= "table" or is_array(document) then
    bad("the document", "must be an object with groups (got " .. describe(document) .. ")")
  end
  for key in pairs(document) do
    if key ~= "groups" then bad("the document", "has an unknown key " .. string.format("%q", tostring(key))
      .. " (expected groups)") end
  end
  local list = document.groups
  if list == nil then list = {} end
  if type(list) ~= "table" or (next(list) ~= nil and not is_array(list)) then
    bad("groups", "must be a list (got " .. describe(list) .. ")")
  end
  local result = { groups = setmetatable({}, core.array_mt) }
  for i = 1, #list do result.groups[i] = check_group(list[i], "groups[" .. i .. "]") end
  local count = 0
  for _ in pairs(list) do count = count + 1 end
  if count ~= #list then bad("groups", "must be a list without other keys") end
  local why = duplicate_names(result.groups, function(group) return group.name end,
    function(_, i) return "groups[" .. i .. "]" end, "in the document")
  if why then error({ document_error = why }, 0) end
  return result
end

--- desired.check(document) -> the document normalised (namespaces by their API names,
-- built configurations in API form, tags and configuration always present), or nil,
-- err whose message names the place in the document (`groups[3].tags.env must be a
-- string (got number)`).
function desired.check(document)
  local ok, result = pcall(check, document)
  if ok then return result end
  if type(result) == "table" and result.document_error then
    return nil, Error.new("desired", result.document_error)
  end
  error(result, 0)
end

--- desired.load(path) -> checked document, or nil, err. A path ending in .lua is a
-- Lua chunk returning the document (builders may be used in it); anything else is
-- JSON.
function desired.load(path)
  if type(path) ~= "string" then
    error("soracom.groups.desired: load: path must be a string (got " .. type(path) .. ")", 2)
  end
  local document
  if path:match("%.lua$") then
    local chunk, why = loadfile(path)
    if chunk == nil then return nil, Error.new("desired", why) end
    local ok, value = pcall(chunk)
    if not ok then return nil, Error.new("desired", path .. ": " .. tostring(value)) end
    document = value
  else
    local file, why = io.open(path, "rb")
    if file == nil then return nil, Error.new("desired", why) end
    local text = file:read("*a")
    file:close()
    local value, decode_err = core.decode_json(text)
    if value == nil then return nil, Error.new("desired", path .. ": invalid JSON: " .. tostring(decode_err)) end
    document = value
  end
  local result, err = desired.check(document)
  if result == nil then
    err.message = path .. ": " .. err.message
    return nil, err
  end
  return result
end

return desired
