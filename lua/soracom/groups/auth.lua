--- The token's life: logging in with /auth, the request headers that carry the API
-- key and token, and logging out. Credentials and tokens live only in a private
-- table keyed by the client, and in the transport's header list: never in a field
-- of the client, an error, a debug line or tostring.

local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"

local encode_json, now = core.encode_json, core.now

local auth = {}

-- client -> { credentials = ..., api_key = ..., token = ... }; weak, so it never keeps
-- a client alive.
local secrets = setmetatable({}, { __mode = "k" })

-- Log in again this long before the token's lifetime runs out: a tenth of it, at
-- most five minutes.
local function renewal_margin(lifetime)
  return math.min(300, lifetime / 10)
end

local function set_headers(client, api_key, token)
  local lines = {}
  for i, line in ipairs(client._headers) do lines[i] = line end
  if api_key then
    lines[#lines + 1] = "X-Soracom-API-Key: " .. api_key
    lines[#lines + 1] = "X-Soracom-Token: " .. token
  end
  client._transport:set_headers(lines)
end

local function debug_line(client, text)
  if client._debug then client._debug("soracom-groups: " .. text) end
end

--- Takes the client's credentials in; an issued API key and token are used at once.
function auth.attach(client, credentials)
  secrets[client] = { credentials = credentials }
  if credentials.kind == "token" then
    set_headers(client, credentials.api_key, credentials.token)
    client._expires_at = math.huge
    client._needs_login = false
  else
    set_headers(client)
    client._expires_at = 0
    client._needs_login = true
  end
end

--- Whether a 401 can be cured by logging in again.
function auth.can_login(client)
  local credentials = secrets[client].credentials
  return credentials ~= nil and credentials.login ~= nil
end

local function login_error(kind, message, status)
  local err = Error.wrap({ kind = kind, message = message }, "POST", "/auth")
  err.status = status
  return err
end

local function valid_secret(value)
  return type(value) == "string" and value ~= "" and not value:match("%c")
end

--- POST /auth with the client's credentials: true, or nil, err.
function auth.login(client)
  local secret = secrets[client]
  local credentials = secret.credentials
  if credentials == nil or credentials.login == nil then
    return nil, login_error("auth", "no credentials to log in with (an issued API key and "
      .. "token cannot be renewed, and logout forgets them)")
  end
  -- The current token stays in the headers: a renewal that fails leaves it in use for
  -- the rest of its life, and other callers sharing the client keep working meanwhile.
  local body = credentials.login
  if credentials.mfa_code then
    local code = credentials.mfa_code()
    if type(code) ~= "string" or code == "" then
      return nil, login_error("auth", "the mfa_otp_code function gave no code (a non-empty string)")
    end
    body = {}
    for key, value in pairs(credentials.login) do body[key] = value end
    body.mfaOTPCode = code
  end
  local started = now()
  local value, err, status = client._transport:perform("POST", client._endpoint .. "/auth",
    encode_json(body))
  debug_line(client, string.format("POST %s/auth (%s from %s) -> %s (%.1f ms)", client._endpoint,
    credentials.label, credentials.source, value and tostring(status) or tostring(err.status or err.kind),
    (now() - started) * 1000))
  if value == nil then
    return nil, Error.wrap(err, "POST", "/auth")
  end
  if type(value) ~= "table" or not valid_secret(value.apiKey) or not valid_secret(value.token) then
    return nil, login_error("decode", "the /auth response holds no apiKey and token", status)
  end
  set_headers(client, value.apiKey, value.token)
  if type(value.operatorId) == "string" then client._operator_id = value.operatorId end
  local lifetime = credentials.login.tokenTimeoutSeconds
  client._expires_at = started + lifetime - renewal_margin(lifetime)
  client._needs_login = false
  return true
end

--- POST /auth/logout, then forget the token: true, or nil, err.
function auth.logout(client)
  local secret = secrets[client]
  if client._needs_login then return true end -- no token was issued
  local value, err = client._transport:perform("POST", client._endpoint .. "/auth/logout", "")
  debug_line(client, "POST " .. client._endpoint .. "/auth/logout -> "
    .. (value and "ok" or tostring(err.status or err.kind)))
  if value == nil then return nil, Error.wrap(err, "POST", "/auth/logout") end
  set_headers(client)
  client._needs_login = true
  if secret.credentials.kind == "token" then secret.credentials = nil end
  return true
end

--- A short description of the credentials for tostring, without any of them.
function auth.describe(client)
  local secret = secrets[client]
  local credentials = secret and secret.credentials
  if credentials == nil then return "logged out" end
  return credentials.label .. " from " .. credentials.source
end

return auth
