--- The client object: construction, the request path shared by every method, and
-- the methods themselves, derived from the operation table.

local auth = require "soracom.groups.auth"
local retry = require "soracom.groups.retry"
local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local iterate = require "soracom.groups.iterate"
local spec = require "soracom.groups.operations"
local settings = require "soracom.groups.settings"
local validate = require "soracom.groups.validate"

local build_url, encode_json, now = core.build_url, core.encode_json, core.now
local operations = spec.operations

local Client = {}
Client.__index = Client

--- groups.new(options) -> client, or nil, err when the environment or a profile
-- lacks what it needs. Wrong options raise.
function Client.new(options)
  if options == nil then options = {} end
  local resolved, why = settings.resolve(options, os.getenv)
  if resolved == nil then return nil, Error.new("config", why) end
  local headers = { "Accept: application/json" }
  if resolved.lang then headers[#headers + 1] = "X-Soracom-Lang: " .. resolved.lang end
  for _, line in ipairs(resolved.headers) do headers[#headers + 1] = line end
  local client = setmetatable({
    _endpoint = resolved.endpoint,
    _headers = headers,
    _operator_id = resolved.operator_id,
    _debug = resolved.debug,
    _retry = resolved.retry,
    _sleep = resolved.sleep,
    _transport = require("soracom.groups.transport." .. resolved.transport).new(resolved),
  }, Client)
  auth.attach(client, resolved.credentials)
  return client
end

local function send(self, transport, op, url, body_text)
  if self._debug == nil then
    return transport:perform(op.method, url, body_text, op.items ~= nil)
  end
  local started = now()
  local value, next_key, status = transport:perform(op.method, url, body_text, op.items ~= nil)
  self._debug(string.format("soracom-groups: %s %s -> %s (%.1f ms)", op.method, url,
    value ~= nil and tostring(status) or tostring(next_key.status or next_key.kind),
    (now() - started) * 1000))
  return value, next_key, status
end

local function wait(self, seconds)
  if self._sleep then self._sleep(seconds) else self._transport:sleep(seconds) end
end

-- Waits before the next try of a failed attempt, if the policy allows one.
-- Returns true when the caller should try again.
local function backoff(self, err, method, url, failures)
  local policy = self._retry
  if failures > policy.retries or not retry.retryable(err, method, policy) then return false end
  local seconds = retry.delay(err, failures, policy)
  if self._debug then
    self._debug(string.format("soracom-groups: retrying %s %s in %.2f s (%s, retry %d of %d)",
      method, url, seconds, err.status and "HTTP " .. err.status or err.kind, failures, policy.retries))
  end
  wait(self, seconds)
  return true
end

--- Sends one request of an operation; the shared path of every method. Logs in
-- first when the token is missing or about to expire, once more on a 401, and tries
-- again after transient failures (see retry.lua).
-- `level` is where a closed client is blamed, counted from request's caller.
-- Returns value, next_key, status or nil, err.
local function request(self, op, level, query, body_text, ...)
  local transport = self._transport
  if transport == nil then
    error("soracom.groups: " .. op.name .. ": the client is closed", level + 1)
  end
  local url, path = build_url(self._endpoint, op.path, op.query, query, ...)
  local attempts, failures, relogged = 0, 0, false
  while true do
    if self._needs_login or now() >= self._expires_at then
      local ok, err = auth.login(self)
      if not ok then
        failures = failures + 1
        -- A login can be repeated whatever the operation's method.
        if not backoff(self, err, "PUT", url, failures) then
          err.attempts = failures
          return nil, err
        end
      end
    end
    if not self._needs_login then
      attempts = attempts + 1
      local value, next_key, status = send(self, transport, op, url, body_text)
      if value ~= nil then
        if op.items and type(value) ~= "table" then
          return nil, Error.wrap({ kind = "decode", status = status, attempts = attempts,
            message = "expected a JSON array of " .. op.items }, op.method, path)
        end
        return value, next_key, status
      end
      local err = next_key
      if err.status == 401 and not relogged and auth.can_login(self) then
        relogged = true
        self._needs_login = true
      else
        failures = failures + 1
        if not backoff(self, err, op.method, url, failures) then
          err.attempts = attempts
          return nil, Error.wrap(err, op.method, path)
        end
      end
    end
  end
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

--- The operator ID: from the login (logging in first if need be), or the
-- operator_id option given with an API key and token. Returns it or nil, err.
function Client:operator_id()
  check_self(self, "operator_id")
  if self._transport == nil then error("soracom.groups: operator_id: the client is closed", 2) end
  if self._operator_id == nil and self._needs_login then
    local ok, err = auth.login(self)
    if not ok then return nil, err end
  end
  if self._operator_id == nil then
    return nil, Error.new("auth", "the operator ID is unknown: give operator_id with api_key and token")
  end
  return self._operator_id
end

--- Revokes the API key and token (POST /auth/logout) and forgets them; a later call
-- logs in again when the client has credentials to. Returns true or nil, err.
function Client:logout()
  check_self(self, "logout")
  if self._transport == nil then error("soracom.groups: logout: the client is closed", 2) end
  local ok, err = auth.logout(self)
  return ok, err
end

--- Releases the connection; safe to call twice. Any later call raises.
function Client:close()
  check_self(self, "close")
  local transport = self._transport
  self._transport = nil
  if transport ~= nil then transport:close() end
end

function Client:is_closed()
  check_self(self, "is_closed")
  return self._transport == nil
end

function Client:endpoint()
  check_self(self, "endpoint")
  return self._endpoint
end

Client.__gc = Client.close
Client.__close = Client.close

function Client:__tostring()
  return "soracom.groups client (" .. self._endpoint .. ", " .. auth.describe(self)
    .. (self._transport == nil and ", closed)" or ")")
end

return Client
