--- Configuration builders: one per namespace, taking idiomatic Lua fields and giving
-- the API's array of {key=, value=} with the API's key names and value shapes, and
-- config.read, the way back. What each namespace accepts follows Soracom's user
-- documentation of the service; keys it does not list pass through `extra`.
--
--     client:put_config(group_id, config.air { metadata = { enabled = true } })
--
-- Each builder's fields are in the "Configuration builders" topic.
-- @module soracom.groups.config

local core = require "soracom.groups.core"
local spec = require "soracom.groups.operations"
local suggest = require "soracom.groups.suggest"

local config = {}

local null = core.null
local function array(t) return setmetatable(t, core.array_mt) end

-- A built configuration: what put_config takes without a namespace argument.
local Built = {}
Built.__index = Built
config.Built = Built

function Built:__tostring()
  return "soracom.groups.config(" .. self.namespace .. ", " .. #self.params .. " settings)"
end

--- Whether a value is a builder's result.
function config.is_built(value)
  return getmetatable(value) == Built
end

-- =====================================================================================
-- Field kinds. Each has to_api(value, path) -> API value (raising a message that names
-- path on a bad value), from_api(value) -> idiomatic value, and for config.describe
-- (the reference and the editor types are made from it) doc, the accepted values in
-- words, and type, their lua-language-server type.

local function fail(path, message)
  error({ config_error = path .. " " .. message }, 0)
end

-- What a bad value was, without echoing a string (it may be a key or a password).
local function describe(value)
  if type(value) == "number" or type(value) == "boolean" then return type(value) .. " " .. tostring(value) end
  return type(value)
end

-- A name (of a field, an entry, a namespace), quoted.
local function quoted(name)
  return string.format("%q", tostring(name))
end

local function identity(value) return value end

local function typed(kind)
  return function()
    return {
      to_api = function(value, path)
        if type(value) ~= kind then fail(path, "must be a " .. kind .. " (got " .. describe(value) .. ")") end
        return value
      end,
      from_api = identity,
      doc = kind, type = kind,
      takes_string = kind == "string" or nil, -- where {"$env": NAME} may stand in (check_api)
    }
  end
end

local boolean, string_field = typed("boolean"), typed("string")

local to_integer = math.tointeger -- (5.3+; on 5.1 and LuaJIT every number is a double)

local function integer(min, max)
  local range = min and max and (" from " .. min .. " to " .. max) or min and (" from " .. min) or ""
  return {
    to_api = function(value, path)
      if type(value) ~= "number" or value % 1 ~= 0 or (min and value < min) or (max and value > max) then
        fail(path, "must be a whole number" .. (min and (" from " .. min .. " to " .. (max or "any")) or "")
          .. " (got " .. describe(value) .. ")")
      end
      -- A whole float (1400.0, or 2800 / 2) is sent as the integer it is: floats keep
      -- a fraction on the wire.
      return to_integer and to_integer(value) or value
    end,
    from_api = identity,
    doc = "whole number" .. range, type = "integer",
  }
end

local function enum(values)
  local allowed, quoted_values = {}, {}
  for i, value in ipairs(values) do
    allowed[value] = true
    quoted_values[i] = string.format("%q", value)
  end
  return {
    to_api = function(value, path)
      if not allowed[value] then
        fail(path, "must be one of " .. table.concat(values, ", ") .. " (got "
          .. (type(value) == "string" and quoted(value) or describe(value)) .. ")" .. suggest.hint(value, values))
      end
      return value
    end,
    from_api = identity,
    doc = "one of " .. table.concat(quoted_values, ", "), type = table.concat(quoted_values, "|"),
    takes_string = true,
  }
end

-- item_type: the items' lua-language-server type.
local function list(item_check, what, item_type)
  return {
    to_api = function(value, path)
      if type(value) ~= "table" or (next(value) ~= nil and value[1] == nil) then
        fail(path, "must be a list of " .. what .. " (got " .. describe(value) .. ")")
      end
      local result = {}
      for i, item in ipairs(value) do
        if not item_check(item) then
          fail(path .. "[" .. i .. "]", "must be " .. what .. " (got " .. describe(item) .. ")")
        end
        result[i] = item
      end
      if #result ~= 0 and next(value, #result) ~= nil then fail(path, "must be a list without other keys") end
      return array(result)
    end,
    from_api = function(value)
      if type(value) ~= "table" then return value end
      local result = {}
      for i, item in ipairs(value) do result[i] = item end
      return array(result)
    end,
    doc = "list of " .. what, type = item_type .. "[]",
  }
end

local function is_string(value) return type(value) == "string" end

local function is_ipv4(value)
  if type(value) ~= "string" then return false end
  local a, b, c, d = value:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, octet in ipairs({ a, b, c, d }) do
    if tonumber(octet) > 255 or (#octet > 1 and octet:sub(1, 1) == "0") then return false end
  end
  return true
end

-- A Credentials Store reference, {"$credentialsId": id}, given as the id.
local credentials_ref = {
  to_api = function(value, path)
    if type(value) ~= "string" or value == "" then
      fail(path, "must be a credentials ID, a non-empty string (got " .. describe(value) .. ")")
    end
    return { ["$credentialsId"] = value }
  end,
  from_api = function(value)
    if type(value) == "table" and type(value["$credentialsId"]) == "string" then
      return value["$credentialsId"]
    end
    return value
  end,
  doc = "Credentials Store ID (non-empty string)", type = "string",
  api_doc = '{"$credentialsId": <id>}', -- what the API form takes, for check_api's messages
}

-- =====================================================================================
-- Objects: a table of idiomatic fields, each {key = "apiKey", kind = ...}. Unknown
-- idiomatic names are errors (a typo must not vanish); `extra` passes API keys through.

local function sorted_names(fields)
  local names = {}
  for name in pairs(fields) do names[#names + 1] = name end
  names[#names + 1] = "extra"
  table.sort(names)
  return names
end

local object_to_api, object_from_api

-- A message about a secret field's value names its type alone: a kind's message may
-- quote a number or a boolean.
local function without_value(message, value)
  return (message:gsub("%(got [^)]*%)$", "(got " .. type(value) .. ")"))
end

local function field_to_api(field, value, path)
  if field.fields then return object_to_api(field.fields, value, path) end
  if not field.secret then return field.kind.to_api(value, path) end
  local ok, api = pcall(field.kind.to_api, value, path)
  if ok then return api end
  if type(api) == "table" and api.config_error then
    error({ config_error = without_value(api.config_error, value) }, 0)
  end
  error(api, 0)
end

local function field_from_api(field, value)
  if field.fields and type(value) == "table" then return object_from_api(field.fields, value) end
  return field.kind.from_api(value)
end

local function merge_extra(result, removed, extra, path)
  if extra == nil then return end
  if type(extra) ~= "table" then
    fail(path .. ".extra", "must be a table of API keys (got " .. describe(extra) .. ")")
  end
  for key, value in pairs(extra) do
    if type(key) ~= "string" or key == "" then fail(path .. ".extra", "keys must be non-empty strings") end
    if result[key] ~= nil then fail(path .. ".extra." .. key, "is set by a field already") end
    if value == null then removed[#removed + 1] = key else result[key] = value end
  end
end

-- The input with each shorthand field replaced by the fields it stands for.
local function long_form(fields, input, path)
  local expanded, has_shorthand = {}, false
  for name, value in pairs(input) do
    local field = fields[name]
    if field and field.long and value ~= null then has_shorthand = true else expanded[name] = value end
  end
  if not has_shorthand then return input end
  for name, value in pairs(input) do
    local field = fields[name]
    if field and field.long and value ~= null then
      for long_name, long_value in pairs(field.long(value, path .. "." .. name)) do
        if expanded[long_name] ~= nil then
          fail(path .. "." .. name, "sets " .. long_name .. ", which is given too")
        end
        expanded[long_name] = long_value
      end
    end
  end
  return expanded
end

-- Returns the API object and the list of API keys set to null (to remove).
function object_to_api(fields, input, path)
  if type(input) ~= "table" then fail(path, "must be a table (got " .. describe(input) .. ")") end
  input = long_form(fields, input, path)
  local result, removed = {}, {}
  for name, value in pairs(input) do
    if name ~= "extra" then
      local field = fields[name]
      if field == nil then
        local names = sorted_names(fields)
        fail(path, "has no field " .. quoted(name) .. " (fields: " .. table.concat(names, ", ") .. ")"
          .. suggest.hint(name, names))
      end
      local sub_path = path .. "." .. name
      if value == null then
        if field.key then removed[#removed + 1] = field.key end
      else
        result[field.key] = field_to_api(field, value, sub_path)
      end
    end
  end
  merge_extra(result, removed, input.extra, path)
  return result, removed
end

-- Whether an API value is one a kind's builder would write.
local function kind_accepts(kind, value)
  return (pcall(kind.to_api, kind.from_api(value), ""))
end

-- An API object: a table that is not a list (an empty one is both).
local function is_api_object(value)
  return type(value) == "table" and value[1] == nil
end

-- Whether an API value is one the field's builder would write (else read keeps it in
-- extra, unchanged, so that it is written back as it was).
local function acceptable(field, value)
  if field.fields then return is_api_object(value) end
  return kind_accepts(field.kind, value)
end

function object_from_api(fields, api)
  local by_key = {}
  for name, field in pairs(fields) do
    if field.key then by_key[field.key] = name end
  end
  local result, extra = {}, nil
  for key, value in pairs(api) do
    local name = by_key[key]
    if name and acceptable(fields[name], value) then
      result[name] = field_from_api(fields[name], value)
    else
      extra = extra or {}
      extra[key] = value
    end
  end
  result.extra = extra
  return result
end

local function f(key, kind) return { key = key, kind = kind } end
local function obj(key, fields) return { key = key, fields = fields } end
-- A field whose value is a secret: plans never show it (secrets.lua reads the mark; a
-- Credentials Store reference given instead names a secret and is shown).
local function secret(field)
  field.secret = true
  return field
end

-- =====================================================================================
-- The namespaces.

local FIELDS = {}

FIELDS.SoracomAir = {
  use_custom_dns = f("useCustomDns", boolean()),
  dns_servers = f("dnsServers", list(is_ipv4, "IPv4 addresses", "string")),
  -- custom_dns = {"8.8.8.8"} turns Custom DNS on with those servers.
  custom_dns = { long = function(value) return { use_custom_dns = true, dns_servers = value } end,
    doc = "list of IPv4 addresses: sets use_custom_dns = true and dns_servers", type = "string[]" },
  metadata = obj("metadata", {
    enabled = f("enabled", boolean()),
    readonly = f("readonly", boolean()),
    allow_origin = f("allowOrigin", string_field()),
    minimize_response_body = f("minimizeResponseBody", boolean()),
  }),
  userdata = f("userdata", string_field()),
  authentication_required = f("authenticationRequired", boolean()),
  username = f("username", string_field()),
  password = secret(f("password", string_field())), -- the CHAP password
  -- chap = {username=, password=} turns CHAP authentication on with those credentials.
  chap = { long = function(value, path)
    if type(value) ~= "table" or type(value.username) ~= "string" or type(value.password) ~= "string" then
      fail(path, "must be {username = <string>, password = <string>}")
    end
    for key in pairs(value) do
      if key ~= "username" and key ~= "password" then
        fail(path, "has no field " .. quoted(key) .. suggest.hint(key, { "password", "username" }))
      end
    end
    return { authentication_required = true, username = value.username, password = value.password }
  end, doc = "{username = <string>, password = <string>}: sets authentication_required = true, username "
    .. "and password", type = "{username: string, password: string}" },
  location_enabled = f("locationEnabled", boolean()),
  ip_link_mtu = f("ipLinkMtu", integer(1, 65535)),
  session_event_enabled = f("sessionEventEnabled", boolean()),
  use_vpg = f("useVpg", boolean()),
  vpg_id = f("vpgId", string_field()),
  binary_parser_enabled = f("binaryParserEnabled", boolean()),
  binary_parser_format = f("binaryParserFormat", string_field()),
  -- binary_parser = "@button" (or a custom format) turns the Binary Parser on with it.
  binary_parser = { long = function(value)
    return { binary_parser_enabled = true, binary_parser_format = value }
  end, doc = "format (\"@button\" or a custom one): sets binary_parser_enabled = true and binary_parser_format",
    type = "string" },
}

-- The kind of an object field given as a table of idiomatic fields.
local function object_kind(fields)
  return {
    to_api = function(value, path)
      local api = object_to_api(fields, value, path)
      return api
    end,
    from_api = function(value)
      if type(value) ~= "table" then return value end
      return object_from_api(fields, value)
    end,
    doc = "table", fields = fields,
  }
end

-- A value that may also be kept in the Credentials Store: {credentials_id = id} in
-- Lua, {"$credentialsId": id} in the API; anything else is the given kind, which
-- `what` describes.
local function reference_or(kind, what)
  return {
    to_api = function(value, path)
      if type(value) == "table" and value.credentials_id ~= nil then
        if next(value, next(value)) ~= nil then fail(path, "must be {credentials_id = <id>} alone") end
        return credentials_ref.to_api(value.credentials_id, path .. ".credentials_id")
      end
      local ok, api = pcall(kind.to_api, value, path)
      if not ok then
        fail(path, "must be " .. what .. " or {credentials_id = <id>} (got " .. describe(value) .. ")")
      end
      return api
    end,
    from_api = function(value)
      if type(value) == "table" and type(value["$credentialsId"]) == "string" then
        return { credentials_id = value["$credentialsId"] }
      end
      return kind.from_api(value)
    end,
    doc = what .. " or {credentials_id = <id>}", of = kind,
    api_doc = what .. ' or {"$credentialsId": <id>}', takes_string = kind.takes_string,
  }
end

-- A table of name -> value of the given kind.
local function map_of(kind, what)
  return {
    to_api = function(value, path)
      if type(value) ~= "table" then
        fail(path, "must be a table of " .. what .. " (got " .. describe(value) .. ")")
      end
      local result = {}
      for name, item in pairs(value) do result[name] = kind.to_api(item, path .. "." .. tostring(name)) end
      return result
    end,
    from_api = function(value)
      if type(value) ~= "table" then return value end
      local result = {}
      for name, item in pairs(value) do result[name] = kind.from_api(item) end
      return result
    end,
    doc = "table of " .. what, values = kind,
  }
end

local CLIENT_CERT = {
  -- ca and cert are public; key is the client's private key
  ca = f("ca", string_field()), cert = f("cert", string_field()), key = secret(f("key", string_field())),
}

local CUSTOM_HEADER = {
  action = f("action", string_field()),
  header_key = f("headerKey", string_field()),
  header_value = secret(f("headerValue", string_field())), -- may be "Bearer <token>"
}

local BEAM_ENTRY = {
  name = f("name", string_field()),
  destination = f("destination", string_field()),
  enabled = f("enabled", boolean()),
  add_subscriber_header = f("addSubscriberHeader", boolean()),
  add_signature = f("addSignature", boolean()),
  add_sim_id_header = f("addSimIdHeader", boolean()),
  add_msisdn_header = f("addMsisdnHeader", boolean()),
  add_equipment_header = f("addEquipmentHeader", boolean()),
  skip_status_code = f("skipStatusCode", boolean()),
  -- a pre-shared key: the key itself, or {credentials_id = id} from the Credentials Store
  psk = secret(f("psk", reference_or(string_field(), "a string"))),
  custom_headers = f("customHeaders", map_of(object_kind(CUSTOM_HEADER),
    "header name -> {action, header_key, header_value}")),
  username = f("username", string_field()),
  password = secret(f("password", string_field())), -- the MQTT broker's
  use_client_cert = f("useClientCert", boolean()),
  client_certs = f("clientCerts", map_of(reference_or(object_kind(CLIENT_CERT), "{ca, cert, key}"),
    "name -> {credentials_id = <id>} or {ca, cert, key}")),
  version = f("version", string_field()),
}

-- Beam's settings are keyed by entry point; the idiomatic names stand for these.
local BEAM_ENTRY_POINTS = {
  tcp = "tcp://beam.soracom.io:8023",
  udp = "udp://beam.soracom.io:23080",
  mqtt = "mqtt://beam.soracom.io:1883",
}
local BEAM_HTTP_PREFIX = "http://beam.soracom.io:8888"

local BEAM_ENTRY_KEYS = {}
for _, key in pairs(BEAM_ENTRY_POINTS) do BEAM_ENTRY_KEYS[key] = true end

-- Whether a top-level Beam key is an entry point the builder knows (tcp, udp, mqtt or
-- an HTTP one with its path).
local function is_beam_entry_point(key)
  return BEAM_ENTRY_KEYS[key] ~= nil
    or (type(key) == "string" and key:sub(1, #BEAM_HTTP_PREFIX + 1) == BEAM_HTTP_PREFIX .. "/")
end

local FUNK_DESTINATION = {
  provider = f("provider", enum({ "aws", "azure", "google" })),
  service = f("service", string_field()),
  resource_url = f("resourceUrl", string_field()),
}

FIELDS.SoracomEndorse = {
  enabled = f("enabled", boolean()),
  parameters_to_endorse = obj("parametersToEndorse", {
    sim_id = f("simId", boolean()), imsi = f("imsi", boolean()), imei = f("imei", boolean()),
    msisdn = f("msisdn", boolean()), request_parameters = f("requestParameters", boolean()),
  }),
  token_timeout_seconds = f("tokenTimeoutSeconds", integer(1)),
  allow_origin = f("allowOrigin", string_field()),
  authorized_redirect_urls = f("authorizedRedirectUrls", list(is_string, "URL strings", "string")),
}

-- No key of SoracomFlux is documented: everything goes through extra.
FIELDS.SoracomFlux = {}

FIELDS.SoracomFunk = {
  enabled = f("enabled", boolean()),
  destination = obj("destination", FUNK_DESTINATION),
  credentials_id = f("credentialsId", credentials_ref), -- {"$credentialsId": id} in the API
  content_type = f("contentType", string_field()),
}

FIELDS.SoracomFunnel = {
  enabled = f("enabled", boolean()),
  credentials_id = f("credentialsId", string_field()), -- a plain string in the API
  destination = obj("destination", {
    provider = f("provider", string_field()),
    service = f("service", string_field()),
    resource_url = f("resourceUrl", string_field()),
    randomize_partition_key = f("randomizePartitionKey", boolean()),
    send_payloads_as_binary = f("sendPayloadsAsBinary", boolean()),
    payloads_only = f("payloadsOnly", boolean()),
  }),
  content_type = f("contentType", enum({ "json", "text", "unspecified", "binary", "application/x-soracom-bf-v1" })),
  add_sim_id = f("addSimId", boolean()),
}

FIELDS.SoracomHarvest = {
  enabled = f("enabled", boolean()),
  custom_timestamp = obj("customTimestamp", {
    format = f("format", string_field()), type = f("type", string_field()), value = f("value", string_field()),
  }),
}

FIELDS.SoracomHarvestFiles = {
  enabled = f("enabled", boolean()),
  default_path = f("defaultPath", string_field()),
  assumed_role_id = f("assumedRoleId", string_field()),
}

FIELDS.SoracomKrypton = {
  enabled = f("enabled", boolean()),
  aws_iot = obj("AwsIot", {
    region = f("region", string_field()),
    credentials_id = f("credentialsId", string_field()),
    policy_name = f("policyName", string_field()),
    thing_name_pattern = f("thingNamePattern", string_field()),
    host = f("host", string_field()),
  }),
}

FIELDS.SoracomOrbit = {
  enabled = f("enabled", boolean()),
  code_srn = f("codeSrn", string_field()),
  direction = f("direction", list(function(v) return v == "uplink" or v == "downlink" end,
    '"uplink" or "downlink"', '"uplink"|"downlink"')),
  content_type = f("contentType", string_field()),
  use_location = f("useLocation", boolean()),
  use_metadata = f("useMetadata", boolean()),
}

FIELDS.UnifiedEndpoint = {
  enabled = f("enabled", boolean()),
  response = obj("response", { format = f("format", string_field()) }),
}

-- =====================================================================================
-- Beam, whose top level is entries rather than fields.

-- The HTTP entries of a beam{http = ...}: one entry with a path, a list of them, or a
-- map of path -> entry (the form config.read gives, which update_config merges by
-- path). Yields path in the error messages, the entry point's path, the entry.
local function http_entries(value, path)
  if type(value) ~= "table" then fail(path, "must be an entry, a list of entries or a map of path -> entry") end
  local entries = {}
  local function add(entry_path, entry_point, entry)
    if type(entry_point) ~= "string" or entry_point:sub(1, 1) ~= "/" then
      fail(entry_path, 'needs path = "/..." (the entry point is ' .. BEAM_HTTP_PREFIX .. '<path>)')
    end
    entries[#entries + 1] = { entry_path, entry_point, entry }
  end
  local function without_path(entry)
    local copy = {}
    for k, v in pairs(entry) do if k ~= "path" then copy[k] = v end end
    return copy
  end
  if value.path ~= nil then
    add(path, value.path, without_path(value))
  elseif value[1] ~= nil then
    for i, entry in ipairs(value) do
      if type(entry) ~= "table" then fail(path .. "[" .. i .. "]", "must be an entry table") end
      add(path .. "[" .. i .. "]", entry.path, without_path(entry))
    end
  else
    for entry_point, entry in pairs(value) do
      add(path .. "[" .. quoted(entry_point) .. "]", entry_point, entry)
    end
  end
  local i = 0
  return function()
    i = i + 1
    if entries[i] then return entries[i][1], entries[i][2], entries[i][3] end
  end
end

-- What a beam{...} takes at its top level, sorted, for messages.
local BEAM_ENTRY_NAMES = { "extra", "http" }
for name in pairs(BEAM_ENTRY_POINTS) do BEAM_ENTRY_NAMES[#BEAM_ENTRY_NAMES + 1] = name end
table.sort(BEAM_ENTRY_NAMES)

local function beam_to_api(input, path)
  if type(input) ~= "table" then fail(path, "must be a table (got " .. describe(input) .. ")") end
  local result, removed = {}, {}
  local function add(key, entry, entry_path)
    if result[key] ~= nil then fail(entry_path, "sets the entry " .. key .. " twice") end
    if entry == null then removed[#removed + 1] = key return end
    result[key] = object_to_api(BEAM_ENTRY, entry, entry_path)
  end
  for name, value in pairs(input) do
    local sub_path = path .. "." .. tostring(name)
    if BEAM_ENTRY_POINTS[name] then
      add(BEAM_ENTRY_POINTS[name], value, sub_path)
    elseif name == "http" then
      for entry_path, entry_point, entry in http_entries(value, sub_path) do
        add(BEAM_HTTP_PREFIX .. entry_point, entry, entry_path)
      end
    elseif name ~= "extra" then
      fail(path, "has no entry " .. quoted(name) .. " (entries: " .. table.concat(BEAM_ENTRY_NAMES, ", ") .. ")"
        .. suggest.hint(name, BEAM_ENTRY_NAMES))
    end
  end
  merge_extra(result, removed, input.extra, path)
  return result, removed
end

local function beam_from_api(api)
  local by_key = {}
  for name, key in pairs(BEAM_ENTRY_POINTS) do by_key[key] = name end
  local result, extra = {}, nil
  for key, value in pairs(api) do
    if by_key[key] and type(value) == "table" then
      result[by_key[key]] = object_from_api(BEAM_ENTRY, value)
    elseif is_beam_entry_point(key) and type(value) == "table" then
      result.http = result.http or {}
      result.http[key:sub(#BEAM_HTTP_PREFIX + 1)] = object_from_api(BEAM_ENTRY, value)
    else
      extra = extra or {}
      extra[key] = value
    end
  end
  result.extra = extra
  return result
end

-- =====================================================================================
-- The builders.

local BUILDERS = spec.BUILDERS
config.NAMESPACES = BUILDERS
local BUILDER_OF = {}
for builder, namespace in pairs(BUILDERS) do BUILDER_OF[namespace] = builder end

--- A table's keys in a stable order (by their text), for messages and sorted output.
local function sorted_keys(t)
  local keys = {}
  for key in pairs(t) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end
config.sorted_keys = sorted_keys

--- The API object of a namespace's idiomatic settings, and the API keys set to null.
-- Raises {config_error = message} on a bad field.
local function to_api(namespace, settings, path)
  if namespace == "SoracomBeam" then return beam_to_api(settings, path) end
  return object_to_api(FIELDS[namespace], settings, path)
end

--- The API's array of {key=, value=} of a {key = value} map, sorted by key.
local function params_of(api)
  local params = {}
  for _, key in ipairs(sorted_keys(api)) do params[#params + 1] = { key = key, value = api[key] } end
  return array(params)
end

-- Runs fn, turning a config error into a Lua error at the builder's caller.
local function guarded(level, fn, ...)
  local ok, result, second = pcall(fn, ...)
  if not ok then
    if type(result) == "table" and result.config_error then
      error("soracom.groups.config: " .. result.config_error, level + 1)
    end
    error(result, 0)
  end
  return result, second
end

for builder, namespace in pairs(BUILDERS) do
  config[builder] = function(settings)
    local api = guarded(2, to_api, namespace, settings, builder)
    return setmetatable({ namespace = namespace, params = params_of(api) }, Built)
  end
end

config.params = params_of

--- config.air(settings), and the same for each namespace: config.beam, endorse, flux,
-- funk, funnel, harvest, harvest_files, krypton, orbit and unified_endpoint (there is
-- no config.builder: the name is the namespace's).
-- Each checks every field (a wrong one raises, naming it) and returns what put_config
-- sends; their fields are in the "Configuration builders" topic.
-- @function air
-- @tparam table settings the namespace's settings in idiomatic fields
-- @return the built configuration, for `client:put_config(group_id, built)`
-- @usage client:put_config(id, groups.config.air { metadata = { enabled = true } })

--- A namespace's idiomatic settings with shorthands (Air's custom_dns, chap,
-- binary_parser) replaced by the fields they stand for, so that changes merge into
-- what config.read gives. Raises at level+1 on a bad shorthand.
-- @local
function config.long_form(namespace, settings, level)
  if type(settings) ~= "table" then return settings end
  local builder = BUILDER_OF[namespace]
  if namespace == "SoracomBeam" then
    if type(settings.http) ~= "table" then return settings end
    -- Beam's HTTP entries, in any of their forms, as the map of path -> entry.
    local expanded = {}
    for name, value in pairs(settings) do expanded[name] = value end
    expanded.http = guarded(level + 1, function()
      local map = {}
      for _, entry_point, entry in http_entries(settings.http, builder .. ".http") do map[entry_point] = entry end
      return map
    end)
    return expanded
  end
  local expanded = guarded(level + 1, long_form, FIELDS[namespace], settings, builder)
  return expanded
end

-- =====================================================================================
-- Merging changes into settings read from a group (update_config).

local function copy(value)
  if type(value) ~= "table" then return value end
  local result = {}
  for key, item in pairs(value) do result[key] = copy(item) end
  return setmetatable(result, getmetatable(value))
end
config.copy = copy

local function is_list(value)
  return type(value) == "table" and (value[1] ~= nil or getmetatable(value) == core.array_mt)
end

local function is_object(value)
  return type(value) == "table" and not is_list(value)
end

-- The levels of a namespace's idiomatic form: name -> {key = API key, fields = the
-- level below}. Beam's top level is its entry points; its HTTP entries sit in `http`
-- but their API keys are top-level keys, which beam_merge handles.
local BEAM_LEVEL = {
  http = { fields = setmetatable({}, { __index = function() return { fields = BEAM_ENTRY } end }) },
}
for name, key in pairs(BEAM_ENTRY_POINTS) do BEAM_LEVEL[name] = { key = key, fields = BEAM_ENTRY } end

-- Forgets, in target, the value that `key` names at this level: the field reading it,
-- or the raw value kept in extra.
local function forget_key(target, fields, key)
  if type(target.extra) == "table" then target.extra[key] = nil end
  for name, field in pairs(fields) do
    if field.key == key then target[name] = nil end
  end
end

-- Merges changes into target: nested objects key by key, lists and anything else
-- replace what was there; null stays as the mark of a removal. A field the changes
-- set replaces a raw value the server holds under its key in extra, and an extra key
-- the changes set replaces the field that reads that key: the change wins, and the
-- result never sets one key twice.
local function merge_level(target, changes, fields)
  for name, value in pairs(changes) do
    local field = fields and fields[name]
    if fields and name == "extra" and is_object(value) then
      for key in pairs(value) do forget_key(target, fields, key) end
    elseif field and field.key and value ~= null and type(target.extra) == "table" then
      target.extra[field.key] = nil
    end
    local current = target[name]
    if is_object(value) and is_object(current) then
      merge_level(current, value, field and field.fields or nil)
    else
      target[name] = copy(value)
    end
  end
  return target
end

-- Beam: HTTP entries are merged by path, and each stands for a top-level API key.
local function beam_merge(target, changes)
  local http = changes.http
  if is_object(http) then
    for path in pairs(http) do
      if type(target.extra) == "table" then target.extra[BEAM_HTTP_PREFIX .. path] = nil end
    end
  end
  if is_object(changes.extra) and is_object(target.http) then
    for key in pairs(changes.extra) do
      if key:sub(1, #BEAM_HTTP_PREFIX) == BEAM_HTTP_PREFIX then target.http[key:sub(#BEAM_HTTP_PREFIX + 1)] = nil end
    end
  end
  return merge_level(target, changes, BEAM_LEVEL)
end

--- config.merge(namespace, current, changes): the settings of config.read (or
-- from_api) with changes (in long form, see config.long_form) merged in; changes
-- current in place and returns it.
-- @local
function config.merge(namespace, current, changes)
  if namespace == "SoracomBeam" then return beam_merge(current, changes) end
  return merge_level(current, changes, FIELDS[namespace])
end

--- The namespace name of a builder name or a namespace name, or nil.
-- @local
function config.namespace_of(name)
  return spec.NAMESPACE_OF[name]
end

--- Like config.to_api, but a bad field gives nil, message instead of raising.
-- @local
function config.try_to_api(namespace, settings)
  local ok, api, removed = pcall(to_api, namespace, settings, BUILDER_OF[namespace])
  if ok then return api, removed end
  if type(api) == "table" and api.config_error then return nil, api.config_error end
  error(api, 0)
end

--- Idiomatic settings -> API {key = value} map, and the API keys marked for removal
-- (set to groups.null). Raises at level+1 on a bad field.
-- @local
function config.to_api(namespace, settings, level)
  local api, removed = guarded(level + 1, to_api, namespace, settings, BUILDER_OF[namespace])
  return api, removed
end

--- The API's {key = value} map of a namespace -> idiomatic settings, the form the
-- namespace's builder takes, so that config.air(config.read(group, "SoracomAir"))
-- writes back what was read.
-- @local
function config.from_api(namespace, api)
  if type(api) ~= "table" then return {} end
  if namespace == "SoracomBeam" then return beam_from_api(api) end
  return object_from_api(FIELDS[namespace], api)
end

--- config.read(group, namespace): a group's settings of a namespace (builder name or
-- namespace name) in the builder's idiomatic form; {} when it has none.
function config.read(group, namespace)
  if type(group) ~= "table" then
    error("soracom.groups.config.read: group must be a group table (got " .. type(group) .. ")", 2)
  end
  local resolved = config.namespace_of(namespace)
  if resolved == nil then
    error("soracom.groups.config.read: " .. spec.unknown_namespace(namespace, spec.ALL_NAMESPACES), 2)
  end
  local configuration = type(group.configuration) == "table" and group.configuration or {}
  return config.from_api(resolved, configuration[resolved])
end

-- =====================================================================================
-- Settings in the API's form (a desired-state document holds them so): references,
-- where an API path falls in the schema (secrets.lua reads it), and config.check_api.

--- The keys of the references a value may be instead of a secret: {"$credentialsId":
-- id} names an entry of the Credentials Store, {"$env": "NAME"} an environment
-- variable read when the document is applied. Either names a secret, none holds one.
-- @local
config.REFERENCE_KEYS = { ["$credentialsId"] = true, ["$env"] = true }

-- Whether value is {[key] = <non-empty string>} and nothing else.
local function is_reference_of(value, key)
  return type(value) == "table" and type(value[key]) == "string" and value[key] ~= ""
    and next(value, next(value)) == nil
end

--- Whether value is a reference, {"$credentialsId": id} or {"$env": "NAME"}, each
-- with a non-empty string and no other key.
-- @local
function config.is_reference(value)
  return is_reference_of(value, "$credentialsId") or is_reference_of(value, "$env")
end

-- A level of fields by API key (shorthands have none), made once per level.
local by_api_key_cache = {}
local function by_api_key(fields)
  local map = by_api_key_cache[fields]
  if map == nil then
    map = {}
    for _, field in pairs(fields) do
      if field.key then map[field.key] = field end
    end
    by_api_key_cache[fields] = map
  end
  return map
end

-- A place in the schema is a level of fields ({fields = ...}: a namespace's, an obj
-- field, an object kind), a map kind (values =), a reference kind (of =) or a plain
-- kind. One step down by an API key: the place below and whether the field there is
-- secret; nil when the schema does not know the key there.
local function step(place, key)
  if place.of then place = place.of end -- the value itself, when it is no reference
  if place.fields then
    local field = by_api_key(place.fields)[key]
    if field == nil then return nil end
    return field.fields and field or field.kind, field.secret == true
  end
  if place.values then return place.values, false end
  return nil
end

-- The place of a namespace's settings object, nil for an unknown namespace. Beam's
-- top level is its entry points, which api_lookup and check_api handle.
local function api_root(namespace)
  local fields = FIELDS[namespace]
  return fields and { fields = fields } or nil
end

--- config.api_lookup(namespace, keys): what the schema says of the API path keys
-- (API keys from the namespace's settings object down): "secret" when a field marked
-- secret is at it or above it, "known" when the schema knows every key and none is
-- secret, else nil, i where keys[i] is the first key it does not know (a key under a
-- plain value, such as a list's index, counts as unknown).
-- @local
function config.api_lookup(namespace, keys)
  namespace = config.namespace_of(namespace)
  local place, first = api_root(namespace), 1
  if namespace == "SoracomBeam" then
    if keys[1] == nil then return "known" end
    if not is_beam_entry_point(keys[1]) then return nil, 1 end
    place, first = { fields = BEAM_ENTRY }, 2
  end
  if place == nil then return nil, 1 end
  for i = first, #keys do
    local below, is_secret = step(place, keys[i])
    if below == nil then return nil, i end
    if is_secret then return "secret" end
    place = below
  end
  return "known"
end

local key_names

--- config.api_key_names(): every API key of a field the schema knows (any namespace,
-- any level) -> true when a field of that key is marked secret, else false.
-- @local
function config.api_key_names()
  if key_names then return key_names end
  key_names = {}
  local seen = {}
  local function walk(place)
    if place == nil or seen[place] then return end
    seen[place] = true
    if place.fields then
      for _, field in pairs(place.fields) do
        if field.key then key_names[field.key] = key_names[field.key] or field.secret == true end
        walk(field.fields and field or field.kind)
      end
    end
    walk(place.values)
    walk(place.of)
  end
  for _, fields in pairs(FIELDS) do walk({ fields = fields }) end
  walk({ fields = BEAM_ENTRY })
  return key_names
end

--- config.api_path(keys): a path of API keys as text: names joined with ".", other
-- keys (entry-point URLs, header names) as ["..."]: `metadata.enabled`,
-- `["tcp://beam.soracom.io:8023"].psk`.
-- @local
function config.api_path(keys)
  local parts = {}
  for i, key in ipairs(keys) do
    if type(key) == "string" and key:match("^[%a_$][%w_$]*$") then
      parts[#parts + 1] = (i > 1 and "." or "") .. key
    elseif type(key) == "number" then
      parts[#parts + 1] = "[" .. key .. "]"
    else
      parts[#parts + 1] = "[" .. quoted(key) .. "]"
    end
  end
  return table.concat(parts)
end

-- The known key an unknown one is likely a typo of: equal but for case, or (both of 5+
-- characters) close by suggest.closest's rule; nil when none is.
local function near_key(key, known)
  local candidate = suggest.closest(key, sorted_keys(known), 5)
  return candidate
end

--- keys with key added at the end, as a new list.
-- @local
local function with_key(keys, key)
  local result = {}
  for i, k in ipairs(keys) do result[i] = k end
  result[#result + 1] = key
  return result
end
config.with_key = with_key

local function api_describe(value)
  if is_list(value) then return "list" end
  return describe(value)
end

-- What a place takes, in words, for messages.
local function takes(place)
  if place.fields or place.values then return "an object" end
  return place.api_doc or place.doc
end

local check_level

-- Checks one API value against its place in the schema; null (a removal) always passes.
local function check_value(place, value, keys, out)
  if value == null then return end
  local path = config.api_path(keys)
  if type(value) == "table" and value["$env"] ~= nil then
    if not place.takes_string then
      out.errors[#out.errors + 1] = path .. ' cannot be {"$env": ...}, which stands for a string: it takes '
        .. takes(place)
    elseif not is_reference_of(value, "$env") then
      out.errors[#out.errors + 1] = path .. ' must be {"$env": "<NAME>"}: a non-empty name and no other key'
    end
    return
  end
  if place.of then
    if is_reference_of(value, "$credentialsId") then return end
    if place.of.fields and is_api_object(value) then return check_level(place.of.fields, value, keys, out) end
    if place.of.fields or not kind_accepts(place.of, value) then
      out.errors[#out.errors + 1] = path .. " must be " .. place.api_doc .. " (got " .. api_describe(value) .. ")"
    end
    return
  end
  if place.fields or place.values then
    if not is_api_object(value) then
      out.errors[#out.errors + 1] = path .. " must be an object (got " .. api_describe(value) .. ")"
    elseif place.fields then
      check_level(place.fields, value, keys, out)
    else
      for _, name in ipairs(sorted_keys(value)) do check_value(place.values, value[name], with_key(keys, name), out) end
    end
    return
  end
  if kind_accepts(place, value) then return end
  if place.api_doc then
    out.errors[#out.errors + 1] = path .. " must be " .. place.api_doc .. " (got " .. api_describe(value) .. ")"
    return
  end
  local _, err = pcall(place.to_api, place.from_api(value), path)
  out.errors[#out.errors + 1] = type(err) == "table" and err.config_error or tostring(err)
end

-- Checks an API object against a level of fields: known keys by their kinds, unknown
-- ones near a known one are errors (a typo), others warnings (Soracom adds keys).
function check_level(fields, settings, keys, out)
  local known = by_api_key(fields)
  for _, key in ipairs(sorted_keys(settings)) do
    local path = with_key(keys, key)
    local field = known[key]
    if field then
      local before = #out.errors
      check_value(field.fields and field or field.kind, settings[key], path, out)
      if field.secret then
        -- A kind's message may quote the value (a number, a boolean): not a secret's.
        for i = before + 1, #out.errors do out.errors[i] = without_value(out.errors[i], settings[key]) end
      end
    else
      local near = near_key(key, known)
      if near then
        out.errors[#out.errors + 1] = config.api_path(path) .. " is an unknown key; did you mean "
          .. quoted(near) .. "?"
      else
        out.warnings[#out.warnings + 1] = config.api_path(path) .. " is an unknown key, passed through unchanged"
      end
    end
  end
end

--- Checks a namespace's settings given in the API's form, as a desired-state
-- document or a group holds them: {apiKey = value}, Beam's keyed by entry point.
-- A value the builder would refuse is an error; `{"$credentialsId": id}` passes where
-- the schema takes a Credentials Store reference, `{"$env": "NAME"}` (a string read
-- from the environment later) wherever it takes a string; null (a removal) anywhere.
-- An unknown key is an error when it is likely a typo of a known key at its level
-- (equal but for case, or, for keys of 5+ characters, within a third of its length and
-- at most 2 edits, a swap of neighbours counting one), else a warning:
-- Soracom adds keys, and what a group holds must check clean. Beam's unknown entry
-- points are warnings; SoracomFlux, whose keys are undocumented, gives neither.
-- Each message starts with the path below the namespace (`metadata.enabled must be a
-- boolean (got string)`, `["tcp://beam.soracom.io:8023"].psk ...`), except the one
-- for settings that are no object, which starts with "must".
-- @tparam string namespace a namespace (or builder) name; raises on an unknown one
-- @tparam table settings the namespace's settings object
-- @treturn {string,...} errors
-- @treturn {string,...} warnings
-- @usage local errors, warnings = config.check_api("SoracomAir", {useCustomDNS = true})
-- -- errors: {'useCustomDNS is an unknown key; did you mean "useCustomDns"?'}
function config.check_api(namespace, settings)
  local resolved = config.namespace_of(namespace)
  if resolved == nil then
    error("soracom.groups.config.check_api: " .. spec.unknown_namespace(namespace, spec.ALL_NAMESPACES), 2)
  end
  local out = { errors = {}, warnings = {} }
  if settings == null then return out.errors, out.warnings end
  if not is_api_object(settings) then
    out.errors[1] = "must be an object of API keys (got " .. api_describe(settings) .. ")"
    return out.errors, out.warnings
  end
  if resolved == "SoracomBeam" then
    for _, key in ipairs(sorted_keys(settings)) do
      if is_beam_entry_point(key) then
        check_value({ fields = BEAM_ENTRY }, settings[key], { key }, out)
      else
        out.warnings[#out.warnings + 1] = config.api_path({ key }) .. " is an unknown key, passed through unchanged"
      end
    end
  elseif next(FIELDS[resolved]) ~= nil then
    check_level(FIELDS[resolved], settings, {}, out)
  end
  return out.errors, out.warnings
end

-- =====================================================================================
-- What each builder accepts, described from the tables the checks use, so that the
-- reference (docs/) and the editor types (types/) cannot drift from them.

local EXTRA = {
  name = "extra", doc = "table of API key -> value, passed through as it is (keys the docs do not list)",
  type = "table<string, any>",
}

local describe_fields

local function describe_kind(kind)
  return {
    doc = kind.doc, type = kind.type,
    fields = kind.fields and describe_fields(kind.fields) or nil,
    values = kind.values and describe_kind(kind.values) or nil,
    of = kind.of and describe_kind(kind.of) or nil,
  }
end

local function describe_field(name, field)
  local description
  if field.fields then
    description = { doc = "table", fields = describe_fields(field.fields) }
  elseif field.long then
    description = { doc = field.doc, type = field.type, shorthand = true }
  else
    description = describe_kind(field.kind)
  end
  description.name, description.key, description.secret = name, field.key, field.secret
  return description
end

function describe_fields(fields)
  local described = {}
  for _, name in ipairs(sorted_keys(fields)) do described[#described + 1] = describe_field(name, fields[name]) end
  described[#described + 1] = EXTRA
  return described
end

local function describe_beam()
  local described = {}
  for _, name in ipairs(sorted_keys(BEAM_ENTRY_POINTS)) do
    described[#described + 1] = { name = name, key = BEAM_ENTRY_POINTS[name], doc = "the entry's settings",
      fields = describe_fields(BEAM_ENTRY) }
  end
  local http_entry = describe_fields(BEAM_ENTRY)
  table.insert(http_entry, 1, { name = "path", doc = 'string, "/..." (the entry point is '
    .. BEAM_HTTP_PREFIX .. '<path>); not in the map form', type = "string" })
  table.insert(described, 1, { name = "http", key = BEAM_HTTP_PREFIX .. "<path>", doc = "an entry with its path, "
    .. "a list of them, or a map of path -> entry (the form config.read gives)", fields = http_entry })
  described[#described + 1] = EXTRA
  return described
end

--- config.describe(name): what a builder accepts (name is a builder or namespace name):
-- {builder =, namespace =, fields = {...}}, each field {name =, key = its API key,
-- doc = the values it takes in words, type = their lua-language-server type when
-- simple, shorthand = true when it stands for other fields, secret = true when its
-- value is a secret (plans never show it), fields = a nested object's, values = a
-- map's values, of = what else a credentials reference may be},
-- sorted by name with extra last. Raises on an unknown name.
function config.describe(name)
  local namespace = config.namespace_of(name)
  if namespace == nil then
    error("soracom.groups.config.describe: " .. spec.unknown_namespace(name, spec.ALL_NAMESPACES), 2)
  end
  return {
    builder = BUILDER_OF[namespace], namespace = namespace,
    fields = namespace == "SoracomBeam" and describe_beam() or describe_fields(FIELDS[namespace]),
  }
end

return config
