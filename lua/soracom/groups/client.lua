--- The client object: construction, the request path shared by every method, and
-- the methods themselves, derived from the operation table.

local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local iterate = require "soracom.groups.iterate"
local spec = require "soracom.groups.operations"
local validate = require "soracom.groups.validate"

local build_url, encode_json = core.build_url, core.encode_json
local operations = spec.operations

local COVERAGE_ENDPOINTS = {
  jp = "https://api.soracom.io/v1",
  g = "https://g.api.soracom.io/v1",
}

local OPTIONS = {
  endpoint = "string", coverage = "string", api_key = "string", token = "string",
  connect_timeout = "number", timeout = "number", max_body_size = "number",
}

local Client = {}
Client.__index = Client

-- Raised from the helpers of Client.new: level 4 is new's caller.
local function new_error(message)
  error("soracom.groups.new: " .. message, 4)
end

local function check_options(options)
  if type(options) ~= "table" then
    new_error("options must be a table (got " .. type(options) .. ")")
  end
  for name, value in pairs(options) do
    local expected = OPTIONS[name]
    if expected == nil then
      local names = {}
      for known in pairs(OPTIONS) do names[#names + 1] = known end
      table.sort(names)
      new_error("unknown option " .. tostring(name) .. " (expected one of "
        .. table.concat(names, ", ") .. ")")
    end
    if type(value) ~= expected then
      new_error(name .. " must be a " .. expected .. " (got " .. type(value) .. ")")
    end
    if expected == "number" and not (value > 0 and value < math.huge) then
      new_error(name .. " must be a positive, finite number")
    end
  end
  if options.max_body_size and options.max_body_size % 1 ~= 0 then
    new_error("max_body_size must be a whole number of bytes")
  end
end

local function resolve_endpoint(options)
  local endpoint = options.endpoint
  if endpoint == nil then
    local coverage = options.coverage or "jp"
    endpoint = COVERAGE_ENDPOINTS[coverage]
    if endpoint == nil then new_error('coverage must be "jp" or "g"') end
    return endpoint
  end
  if not endpoint:match("^https?://[^/%s]+") or endpoint:match("[%s%c]") then
    new_error("endpoint must be an http:// or https:// URL")
  end
  -- Credentials in the URL would show in tostring(client); a query would end up
  -- in front of every path.
  if endpoint:match("^https?://[^/]*@") or endpoint:match("[?#]") then
    new_error("endpoint must be a plain base URL, without user info, query or fragment")
  end
  endpoint = endpoint:gsub("/+$", "")
  if not endpoint:match("/v1$") then endpoint = endpoint .. "/v1" end
  return endpoint
end

-- A header value with a control character could smuggle another header in.
local function credential(options, name, other)
  local value = options[name]
  if value == nil then
    new_error(name .. " is required" .. (options[other] and " with " .. other or
      " (api_key and token)"))
  end
  if value == "" or value:match("%c") then
    new_error(name .. " must be a non-empty string without control characters")
  end
  return value
end

--- groups.new{endpoint=, coverage=, api_key=, token=, connect_timeout=, timeout=,
-- max_body_size=}
function Client.new(options)
  check_options(options)
  local endpoint = resolve_endpoint(options)
  local api_key = credential(options, "api_key", "token")
  local token = credential(options, "token", "api_key")
  local session = core.session {
    connect_timeout = options.connect_timeout,
    timeout = options.timeout,
    max_body_size = options.max_body_size,
  }
  session:set_headers {
    "Accept: application/json",
    "X-Soracom-API-Key: " .. api_key,
    "X-Soracom-Token: " .. token,
  }
  return setmetatable({ _endpoint = endpoint, _transport = session }, Client)
end

--- Sends one request of an operation; the shared path of every method.
-- `level` is where a closed client is blamed, counted from request's caller.
-- Returns value, next_key, status or nil, err.
local function request(self, op, level, query, body_text, ...)
  local transport = self._transport
  if transport == nil then
    error("soracom.groups: " .. op.name .. ": the client is closed", level + 1)
  end
  local url, path = build_url(self._endpoint, op.path, op.query, query, ...)
  local value, next_key, status = transport:perform(op.method, url, body_text, op.items ~= nil)
  if value == nil then
    return nil, Error.wrap(next_key, op.method, path)
  end
  if op.items and type(value) ~= "table" then
    return nil, Error.wrap({ kind = "decode", status = status,
      message = "expected a JSON array of " .. op.items }, op.method, path)
  end
  return value, next_key, status
end

local function check_self(self, method)
  if getmetatable(self) ~= Client then
    error("soracom.groups: " .. method .. ": call it as client:" .. method .. "(...)", 3)
  end
end

-- Each turns a method's last argument into the request body, checking it. (No
-- tail calls: they would shift the error levels.)
local prepare_body = {
  group = function(op, options, level)
    local body = validate.group(op.name, options, op.namespaces, level + 1)
    return body
  end,
  config = function(op, params, level)
    local body = validate.config_params(op.name, params, level + 1)
    return body
  end,
  tags = function(op, tags, level)
    local body = validate.tag_array(op.name, tags, level + 1)
    return body
  end,
}

-- What the method calls the argument that becomes the body, for error messages.
local BODY_ARGUMENT = { group = "options", config = "params", tags = "tags" }

-- The JSON text of a body; a value JSON cannot hold is the caller's mistake.
local function body_text(op, body, level)
  local ok, text = pcall(encode_json, body,
    "soracom.groups: " .. op.name .. ": " .. BODY_ARGUMENT[op.body])
  if not ok then error(text, level + 1) end
  return text
end

local function define_method(op)
  local param_count = #op.params
  if op.query then
    return function(self, ...)
      check_self(self, op.name)
      validate.params(op, 2, ...)
      local options = select(param_count + 1, ...)
      validate.query(op, options, 2)
      local items, next_key = request(self, op, 2, options, nil, ...)
      return items, next_key
    end
  end
  local prepare = op.body and prepare_body[op.body]
  local deletes = op.method == "DELETE"
  return function(self, ...)
    check_self(self, op.name)
    validate.params(op, 2, ...)
    local text
    if prepare then
      local body = prepare(op, (select(param_count + 1, ...)), 2)
      text = body_text(op, body, 2)
    end
    local value, err = request(self, op, 2, nil, text, ...)
    if value == nil then return nil, err end
    if deletes then return true end
    return value
  end
end

for name, op in pairs(operations) do
  Client[name] = define_method(op)
end

-- The iterator's fetch runs inside the for loop's call of the iterator, so a closed
-- client is blamed on the loop: request <- fetch <- iterator <- loop.
local FETCH_LEVEL = 3

--- for group in client:groups{tag_name=, tag_value=, tag_value_match_mode=, limit=} do
function Client:groups(options)
  local op = operations.list_groups
  check_self(self, "groups")
  validate.query(op, options, 2)
  local iterator = iterate.pages(op, options, function(query)
    local items, next_key = request(self, op, FETCH_LEVEL, query, nil)
    return items, next_key
  end)
  return iterator
end

--- for sim in client:subscribers(group_id, {limit=}) do
function Client:subscribers(group_id, options)
  local op = operations.list_subscribers
  check_self(self, "subscribers")
  validate.params(op, 2, group_id)
  validate.query(op, options, 2)
  local iterator = iterate.pages(op, options, function(query)
    local items, next_key = request(self, op, FETCH_LEVEL, query, nil, group_id)
    return items, next_key
  end)
  return iterator
end

--- Releases the connection; safe to call twice. Any later call raises.
function Client:close()
  local transport = self._transport
  self._transport = nil
  if transport ~= nil then transport:close() end
end

function Client:is_closed()
  return self._transport == nil
end

function Client:endpoint()
  return self._endpoint
end

Client.__gc = Client.close
Client.__close = Client.close

function Client:__tostring()
  return "soracom.groups client (" .. self._endpoint
    .. (self._transport == nil and ", closed)" or ")")
end

return Client
