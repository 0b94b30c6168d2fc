--- Argument checks. A wrong argument is a programming error: it raises at once,
-- naming the method and the argument, before any request is sent.

local config = require "soracom.groups.config_core"
local core = require "soracom.groups.core"
local spec = require "soracom.groups.operations"
local suggest = require "soracom.groups.suggest"

local validate = {}

local function fail(method, message, level)
  error("soracom.groups: " .. method .. ": " .. message, level + 1)
end
validate.fail = fail

local function describe(value)
  if type(value) == "string" then return string.format("%q", value) end
  return type(value)
end

function validate.non_empty_string(method, name, value, level)
  if type(value) ~= "string" or value == "" then
    fail(method, name .. " must be a non-empty string (got " .. describe(value) .. ")", level + 1)
  end
end

--- A path segment: "." and ".." would name another resource, whatever the escaping.
function validate.segment(method, name, value, level)
  validate.non_empty_string(method, name, value, level + 1)
  if value == "." or value == ".." then
    fail(method, name .. " must not be " .. describe(value), level + 1)
  end
end

--- The namespace that value names (a namespace, or its builder's name: "air"), among
-- the set `allowed` (all by default); raises for anything else.
function validate.namespace(method, value, level, allowed)
  allowed = allowed or spec.ALL_NAMESPACES
  validate.non_empty_string(method, "namespace", value, level + 1)
  local namespace = spec.NAMESPACE_OF[value]
  if namespace == nil or not allowed[namespace] then
    fail(method, spec.unknown_namespace(value, allowed), level + 1)
  end
  return namespace
end

-- The checks of one path parameter that is a namespace or no plain segment.
local function check_param(op, name, value, level)
  if name == "namespace" then
    if op.namespaces[value] then return end
    validate.namespace(op.name, value, level + 1, op.namespaces)
  else
    validate.segment(op.name, name, value, level + 1)
  end
end

--- Checks the path parameters of an operation (at most three), in the method's order.
-- (A plain segment, the common case, costs no call: a non-empty string, not "." or "..")
function validate.params(op, level, a1, a2, a3)
  local params = op.params
  local count = #params
  if count == 0 then return end
  local p1, p2, p3 = params[1], params[2], params[3]
  if p1 == "namespace" or type(a1) ~= "string" or a1 == "" or a1 == "." or a1 == ".." then
    check_param(op, p1, a1, level + 1)
  end
  if count >= 2 and (p2 == "namespace" or type(a2) ~= "string" or a2 == "" or a2 == "." or a2 == "..") then
    check_param(op, p2, a2, level + 1)
  end
  if count >= 3 and (p3 == "namespace" or type(a3) ~= "string" or a3 == "" or a3 == "." or a3 == "..") then
    check_param(op, p3, a3, level + 1)
  end
end

local function is_positive_integer(value)
  return type(value) == "number" and value >= 1 and value == math.floor(value)
    and value < 2 ^ 31
end

local query_checks = {
  tag_name = function(value) return type(value) == "string" and value ~= "", "a non-empty string" end,
  tag_value = function(value) return type(value) == "string", "a string" end,
  tag_value_match_mode = function(value)
    return value == "exact" or value == "prefix", '"exact" or "prefix"'
  end,
  limit = function(value) return is_positive_integer(value), "a positive integer" end,
  last_evaluated_key = function(value)
    return type(value) == "string" and value ~= "", "a non-empty string"
  end,
  status = function(value) -- a batch job's tasks
    return value == "pending" or value == "success" or value == "error", '"pending", "success" or "error"'
  end,
}

--- Checks a list operation's options table (nil is no options).
function validate.query(op, options, level)
  if options == nil then return end
  if type(options) ~= "table" then
    fail(op.name, "options must be a table (got " .. describe(options) .. ")", level + 1)
  end
  local allowed = {}
  for _, name in ipairs(op.query) do allowed[name] = true end
  for name, value in pairs(options) do
    if not allowed[name] then
      fail(op.name, "unknown option " .. describe(name) .. " (expected one of "
        .. table.concat(op.query, ", ") .. ")" .. suggest.hint(name, op.query), level + 1)
    end
    local ok, expected = query_checks[name](value)
    if not ok then
      fail(op.name, "option " .. name .. " must be " .. expected .. " (got "
        .. describe(value) .. ")", level + 1)
    end
  end
  if options.tag_name ~= nil and options.tag_value == nil then
    fail(op.name, "option tag_value is required with tag_name", level + 1)
  end
  if options.tag_name == nil and (options.tag_value ~= nil or options.tag_value_match_mode ~= nil) then
    fail(op.name, "options tag_value and tag_value_match_mode need tag_name", level + 1)
  end
end

--- True for a sequence; raises for a table that mixes a sequence with other keys.
local function is_array(method, name, t, level)
  if t[1] == nil then return false end
  local count = 0
  for key in pairs(t) do
    if type(key) ~= "number" then
      fail(method, name .. " mixes an array with the key " .. describe(key), level + 1)
    end
    count = count + 1
  end
  if count ~= #t then fail(method, name .. " is an array with holes", level + 1) end
  return true
end

local sorted_keys = config.sorted_keys

local function array(t)
  return setmetatable(t, core.array_mt)
end
validate.array = array

-- Tags and configuration parameters are both sent as an array of two-field records
-- ({tagName, tagValue} and {key, value}); each may be given as a plain map instead,
-- which becomes the array sorted by name.
local TAG = { argument = "tags", name = "tagName", value = "tagValue", value_type = "string",
  shape = "{tagName = <non-empty string>, tagValue = <string>}" }
local PARAM = { argument = "params", name = "key", value = "value",
  shape = "{key = <non-empty string>, value = <any>}" }

local function value_ok(record, value)
  if record.value_type then return type(value) == record.value_type end
  return value ~= nil
end

local function records(method, record, given, level)
  local argument = record.argument
  if type(given) ~= "table" or next(given) == nil then
    fail(method, argument .. " must be a non-empty table (got " .. describe(given) .. ")", level + 1)
  end
  local result = {}
  if is_array(method, argument, given, level + 1) then
    for i, entry in ipairs(given) do
      local name = type(entry) == "table" and entry[record.name]
      if type(name) ~= "string" or name == "" or not value_ok(record, entry[record.value]) then
        fail(method, argument .. "[" .. i .. "] must be " .. record.shape, level + 1)
      end
      validate.plain_data(method, argument .. "[" .. i .. "]." .. record.value, entry[record.value], level + 1)
      result[i] = { [record.name] = name, [record.value] = entry[record.value] }
    end
    return array(result)
  end
  for _, name in ipairs(sorted_keys(given)) do
    local value = given[name]
    if type(name) ~= "string" or name == "" then
      fail(method, argument .. " names must be non-empty strings (got " .. describe(name) .. ")",
        level + 1)
    end
    if not value_ok(record, value) then
      fail(method, argument .. "." .. name .. " must be a " .. record.value_type .. " (got "
        .. describe(value) .. ")", level + 1)
    end
    validate.plain_data(method, argument .. "." .. name, value, level + 1)
    result[#result + 1] = { [record.name] = name, [record.value] = value }
  end
  return array(result)
end

--- Tags as the API's array of {tagName=, tagValue=}, from that array or a
-- {name = value} map.
function validate.tag_array(method, tags, level)
  local result = records(method, TAG, tags, level + 1)
  return result
end

--- Tags as the API's {name = value} object (create_group); an array of
-- {tagName=, tagValue=} is accepted too.
function validate.tag_map(method, tags, level)
  local map = {}
  for _, tag in ipairs(records(method, TAG, tags, level + 1)) do
    map[tag.tagName] = tag.tagValue
  end
  return map
end

--- Configuration parameters as the API's array of {key=, value=}, from that array
-- or a {key = value} map.
function validate.config_params(method, params, level)
  local result = records(method, PARAM, params, level + 1)
  return result
end

-- Whether a table's metatable is only the mark of a JSON array (ours or lua-cjson's).
local function plain_metatable(t)
  local mt = getmetatable(t)
  if mt == nil or mt == core.array_mt then return true end
  local cjson = package.loaded.cjson
  return type(cjson) == "table" and mt == rawget(cjson, "array_mt")
end

--- Raises unless value is plain API data: no table in it carries a metatable (a
-- builder's object, a class instance), whose fields would be sent as they are.
function validate.plain_data(method, name, value, level)
  if type(value) ~= "table" then return end
  if config.is_built(value) then
    fail(method, name .. " is a built configuration; give it as configuration = config.<builder>{...} "
      .. "(or a list of them), or give put_config the built value", level + 1)
  end
  if not plain_metatable(value) then
    fail(method, name .. " is a table with a metatable, not plain JSON data", level + 1)
  end
  for key, item in pairs(value) do
    validate.plain_data(method, name .. "." .. tostring(key), item, level + 1)
  end
end

-- The plain {Namespace = {key = value}} of a built configuration or a list of them,
-- or nil when value is neither.
local function built_configuration(method, value, level)
  local list = config.is_built(value) and { value } or value
  if not config.is_built(list[1]) then return nil end
  if not is_array(method, "configuration", list, level + 1) then return nil end
  local configuration = {}
  for i, built in ipairs(list) do
    if not config.is_built(built) then
      fail(method, "configuration[" .. i .. "] is not a built configuration, as the others are", level + 1)
    end
    if configuration[built.namespace] then
      fail(method, "configuration builds " .. built.namespace .. " twice", level + 1)
    end
    local settings = {}
    for _, param in ipairs(built.params) do settings[param.key] = param.value end
    configuration[built.namespace] = settings
  end
  return configuration
end

--- A group's configuration, {Namespace = {key = value}}, with the namespace's builder
-- name in place of a namespace if wished; a namespace may also be given as
-- put_config's array of {key=, value=}. A built configuration (config.air{...}), or a
-- list of them, stands for the namespaces it was built for.
function validate.configuration(method, configuration, namespaces, level)
  if type(configuration) ~= "table" then
    fail(method, "configuration must be a table (got " .. describe(configuration) .. ")", level + 1)
  end
  configuration = built_configuration(method, configuration, level + 1) or configuration
  local result = {}
  for name, settings in pairs(configuration) do
    local namespace = validate.namespace(method, name, level + 1, namespaces)
    if result[namespace] then
      fail(method, "configuration names " .. namespace .. " twice", level + 1)
    end
    if type(settings) ~= "table" then
      fail(method, "configuration." .. name .. " must be a table (got "
        .. describe(settings) .. ")", level + 1)
    end
    validate.plain_data(method, "configuration." .. name, settings, level + 1)
    local map = {}
    if is_array(method, "configuration." .. namespace, settings, level + 1) then
      for _, entry in ipairs(validate.config_params(method, settings, level + 1)) do
        map[entry.key] = entry.value
      end
    else
      for key, value in pairs(settings) do
        if type(key) ~= "string" or key == "" then
          fail(method, "configuration." .. namespace .. " keys must be non-empty strings (got "
            .. describe(key) .. ")", level + 1)
        end
        map[key] = value
      end
    end
    result[namespace] = map
  end
  return result
end

-- create_group's options, in the order its messages list them.
local GROUP_OPTIONS = { "name", "tags", "configuration" }

--- The body of create_group: {tags = ..., configuration = {Namespace = {...}}}.
function validate.group(method, options, namespaces, level)
  if options == nil then return {} end
  if type(options) ~= "table" then
    fail(method, "options must be a table (got " .. describe(options) .. ")", level + 1)
  end
  local body = {}
  for name, value in pairs(options) do
    if name == "name" then
      validate.non_empty_string(method, "name", value, level + 1)
    elseif name == "tags" then
      body.tags = validate.tag_map(method, value, level + 1)
    elseif name == "configuration" then
      if type(value) ~= "table" then
        fail(method, "configuration must be a table (got " .. describe(value) .. ")", level + 1)
      end
      body.configuration = validate.configuration(method, value, namespaces, level + 1)
    else
      fail(method, "unknown option " .. describe(name) .. " (expected " .. table.concat(GROUP_OPTIONS, ", ")
        .. ")" .. suggest.hint(name, GROUP_OPTIONS), level + 1)
    end
  end
  -- The name tag is what the console shows as the group's name.
  if options.name ~= nil then
    body.tags = body.tags or {}
    if body.tags.name ~= nil and body.tags.name ~= options.name then
      fail(method, "name and tags.name differ", level + 1)
    end
    body.tags.name = options.name
  end
  return body
end

--- Checks an options table against name -> Lua type, raising at level above the
-- caller with a message led by prefix ("soracom.groups.apply: ") that names the option.
function validate.option_types(prefix, options, types, level)
  for name, value in pairs(options) do
    if types[name] == nil then
      error(prefix .. "unknown option " .. string.format("%q", tostring(name)), level + 1)
    end
    if type(value) ~= types[name] then
      error(prefix .. "options." .. name .. " must be a " .. types[name] .. " (got " .. type(value) .. ")", level + 1)
    end
  end
end

return validate
