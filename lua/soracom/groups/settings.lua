--- Everything a client is built from, resolved from its options, the environment
-- and a soracom-cli profile: the endpoint, the credentials, extra headers.
--
-- Wrong options are programming errors and raise (naming the option). What comes
-- from outside the program -- environment variables, profile files -- is checked
-- too, and a problem there returns nil, message.

local profiles = require "soracom.groups.profile"
local redis_link = require "soracom.groups.redis_link"
local retry = require "soracom.groups.retry"
local suggest = require "soracom.groups.suggest"

local settings = {}

local OPTIONS = {
  endpoint = "string", coverage = "string", sandbox = "boolean", lang = "string",
  profile = "string", profile_command = "string",
  api_key = "string", token = "string",
  auth_key_id = "string", auth_key = "string",
  email = "string", password = "string",
  operator_id = "string", user_name = "string",
  mfa_otp_code = { "string", "function" }, token_timeout_seconds = "number",
  connect_timeout = "number", timeout = "number", max_body_size = "number",
  debug = "function",
  retries = "number", retry_base_delay = "number", retry_max_delay = "number",
  rate_limit_max_delay = "number", retry_post = "boolean", sleep = "function", wait = "function",
  insecure = "boolean", ca_file = "string", ca_path = "string", proxy = "string",
  transport = "string", keepalive_timeout = "number", pool_size = "number",
  shared_dict = "string", share_token = "boolean",
  token_cache = { "boolean", "string" },
  redis = { "string", "table" }, on_redis_error = "string",
}

local TRANSPORTS = { auto = true, curl = true, nginx = true }

-- The options a transport is made with: nothing else (no credentials) reaches it.
local TRANSPORT_SETTINGS = {
  "connect_timeout", "timeout", "max_body_size", "insecure", "ca_file", "ca_path", "proxy",
  "keepalive_timeout", "pool_size",
}

-- Numbers that may be zero.
local ZERO_ALLOWED = { retries = true, retry_max_delay = true, rate_limit_max_delay = true }

-- Options in seconds, and the most any of them takes: a day. A longer timeout or wait is
-- a mistake (a unit taken for another), and the transports could not honour it exactly
-- (the curl core refuses timeouts beyond it, nginx's timers stop at 2^31 ms).
local SECONDS = {
  connect_timeout = true, timeout = true, keepalive_timeout = true,
  retry_base_delay = true, retry_max_delay = true, rate_limit_max_delay = true,
}
local MAX_SECONDS = 86400

local MAX_TOKEN_TIMEOUT = 172800 -- the /auth API's maximum
settings.MAX_TOKEN_TIMEOUT = MAX_TOKEN_TIMEOUT
local DEFAULT_TOKEN_TIMEOUT = 86400

local ENDPOINTS = {
  production = { jp = "https://api.soracom.io/v1", g = "https://g.api.soracom.io/v1" },
  sandbox = { jp = "https://api-sandbox.soracom.io/v1", g = "https://g.api-sandbox.soracom.io/v1" },
}

-- Raised from the helpers of resolve, which groups.new calls: level 5 is new's caller.
local function option_error(message)
  error("soracom.groups.new: " .. message, 5)
end

local function sorted_names(set)
  local names = {}
  for name in pairs(set) do names[#names + 1] = name end
  table.sort(names)
  return names
end

--- The names of groups.new's options, sorted (a copy: changing it changes nothing).
settings.OPTION_NAMES = sorted_names(OPTIONS)

local function coverage_endpoint(coverage, sandbox, source)
  local endpoint = ENDPOINTS[sandbox and "sandbox" or "production"][coverage]
  if endpoint == nil then
    return false, source .. ' must be "jp" or "g" (got ' .. string.format("%q", coverage) .. ")"
  end
  return endpoint
end

--- An endpoint URL made into the base of every request path: "/v1" added when missing.
local function normalize_endpoint(endpoint, source)
  if not endpoint:match("^https?://[^/%s]+") or endpoint:match("[%s%c]") then
    return false, source .. " must be an http:// or https:// URL"
  end
  -- Credentials in the URL would show in tostring(client); a query would end up in
  -- front of every path.
  if endpoint:match("^https?://[^/]*@") or endpoint:match("[?#]") then
    return false, source .. " must be a plain base URL, without user info, query or fragment"
  end
  endpoint = endpoint:gsub("/+$", "")
  if not endpoint:match("/v1$") then endpoint = endpoint .. "/v1" end
  return endpoint
end

local function check_options(options)
  if type(options) ~= "table" then
    option_error("options must be a table (got " .. type(options) .. ")")
  end
  for name, value in pairs(options) do
    local expected = OPTIONS[name]
    if expected == nil then
      local names = sorted_names(OPTIONS)
      option_error("unknown option " .. tostring(name) .. " (expected one of "
        .. table.concat(names, ", ") .. ")" .. suggest.hint(name, names))
    end
    if type(expected) == "table" then -- one of several types
      if type(value) ~= expected[1] and type(value) ~= expected[2] then
        option_error(name .. " must be a " .. expected[1] .. " or a " .. expected[2] .. " (got " .. type(value) .. ")")
      end
      expected = type(value)
    elseif type(value) ~= expected then
      option_error(name .. " must be a " .. expected .. " (got " .. type(value) .. ")")
    end
    if expected == "number" and not ((value > 0 or (value == 0 and ZERO_ALLOWED[name]))
      and value < math.huge) then
      option_error(name .. " must be a " .. (ZERO_ALLOWED[name] and "non-negative" or "positive")
        .. ", finite number")
    end
    if SECONDS[name] and value > MAX_SECONDS then
      option_error(name .. " must be at most " .. MAX_SECONDS .. " seconds (a day), got " .. tostring(value))
    end
    if expected == "string" and (value == "" or value:match("%c")) then
      option_error(name .. " must be a non-empty string without control characters")
    end
  end
  if options.max_body_size and options.max_body_size % 1 ~= 0 then
    option_error("max_body_size must be a whole number of bytes")
  end
  if options.retries and options.retries % 1 ~= 0 then
    option_error("retries must be a whole number")
  end
  if options.pool_size and options.pool_size % 1 ~= 0 then
    option_error("pool_size must be a whole number")
  end
  local timeout = options.token_timeout_seconds
  if timeout and (timeout % 1 ~= 0 or timeout > MAX_TOKEN_TIMEOUT) then
    option_error("token_timeout_seconds must be a whole number from 1 to " .. MAX_TOKEN_TIMEOUT)
  end
  if options.lang and options.lang ~= "en" and options.lang ~= "ja" then
    option_error('lang must be "en" or "ja"')
  end
  if options.transport and not TRANSPORTS[options.transport] then
    option_error('transport must be "auto", "curl" or "nginx"')
  end
  if options.share_token ~= nil and options.shared_dict == nil and options.redis == nil then
    option_error("share_token says what shared_dict or redis shares: give one of them too")
  end
  if options.redis and options.shared_dict then
    option_error("redis and shared_dict do not go together: redis shares across hosts what shared_dict "
      .. "shares across the workers of one nginx (give redis alone)")
  end
  if options.token_cache and options.redis then
    option_error("token_cache and redis do not go together: redis keeps the token already")
  end
  if options.on_redis_error ~= nil then
    if options.redis == nil then option_error("on_redis_error says what to do when redis fails: give redis too") end
    if options.on_redis_error ~= "local" and options.on_redis_error ~= "fail" then
      option_error('on_redis_error must be "local" or "fail"')
    end
  end
  -- The workers of an instance share their token through the dict: a file besides
  -- would be a second place for it, that no lock of the dict covers.
  if options.token_cache and options.shared_dict then
    option_error("token_cache and shared_dict do not go together: the shared dict keeps the token already")
  end
  -- Checked here, whatever the environment holds: a SORACOM_ENDPOINT that outranks them
  -- must not hide a mistake that shows once it is unset.
  if options.coverage then
    local _, why = coverage_endpoint(options.coverage, false, "coverage")
    if why then option_error(why) end
  end
  if options.endpoint then
    local _, why = normalize_endpoint(options.endpoint, "endpoint")
    if why then option_error(why) end
  end
  if options.profile_command and options.profile then
    option_error("profile and profile_command do not go together: each names where the profile comes from")
  end
end

-- The redis option's fields, and its timeout's default and most (seconds).
local REDIS_FIELDS = { url = "string", prefix = "string", timeout = "number", command = "function" }
local REDIS_DEFAULT_TIMEOUT, REDIS_MAX_TIMEOUT = 1, 60
settings.REDIS_DEFAULT_TIMEOUT = REDIS_DEFAULT_TIMEOUT

--- The redis option resolved: {target (host, port, db, username, password), timeout,
-- prefix} or {command, prefix}. Raises, naming the field (never the password).
local function redis_settings(option)
  if type(option) == "string" then option = { url = option } end
  for name, value in pairs(option) do
    if REDIS_FIELDS[name] == nil then
      option_error("redis: unknown field " .. tostring(name) .. " (expected command, prefix, timeout or url)")
    end
    if type(value) ~= REDIS_FIELDS[name] then
      option_error("redis." .. name .. " must be a " .. REDIS_FIELDS[name] .. " (got " .. type(value) .. ")")
    end
  end
  if (option.url == nil) == (option.command == nil) then
    option_error("redis: give either url (redis://[[user]:password@]host[:port][/db]) or command (a function)")
  end
  if option.command and option.timeout then
    option_error("redis.timeout does not go with command: the command function keeps its own timeouts")
  end
  local timeout = option.timeout or REDIS_DEFAULT_TIMEOUT
  if not (timeout > 0 and timeout <= REDIS_MAX_TIMEOUT) then
    option_error("redis.timeout must be a number of seconds above 0 and at most " .. REDIS_MAX_TIMEOUT)
  end
  local prefix = option.prefix
  if prefix ~= nil and (prefix == "" or prefix:match("[%c%s]")) then
    option_error("redis.prefix must be a non-empty string without spaces or control characters")
  end
  local resolved = { timeout = timeout, prefix = prefix, command = option.command }
  if option.url then
    local target, why = redis_link.parse_url(option.url)
    if target == nil then option_error("redis.url: " .. why) end
    resolved.target = target
  end
  return resolved
end

-- The kinds of credentials, each with the options that make it up and the /auth
-- request fields they become. `token` is an already issued API key and token.
local KINDS = {
  { kind = "auth_key", label = "auth key", options = { "auth_key_id", "auth_key" },
    fields = { auth_key_id = "authKeyId", auth_key = "authKey" } },
  { kind = "root", label = "root user", options = { "email", "password" },
    fields = { email = "email", password = "password" } },
  { kind = "sam", label = "SAM user", options = { "operator_id", "user_name", "password" },
    fields = { operator_id = "operatorId", user_name = "userName", password = "password" } },
  { kind = "token", label = "API key and token", options = { "api_key", "token" } },
}

-- The option that marks each kind (password belongs to two, operator_id may
-- accompany a token to name the operator).
local MARKERS = {
  auth_key_id = "auth_key", auth_key = "auth_key", email = "root",
  user_name = "sam", api_key = "token", token = "token",
}

local function kind_named(name)
  for _, kind in ipairs(KINDS) do
    if kind.kind == name then return kind end
  end
end

local function credentials_of(kind, values, source)
  local credentials = { kind = kind.kind, label = kind.label, source = source }
  if kind.kind == "token" then
    credentials.api_key, credentials.token = values.api_key, values.token
  else
    credentials.login = {}
    for option, field in pairs(kind.fields) do credentials.login[field] = values[option] end
  end
  return credentials
end

--- Credentials given as options, or nil when none are.
local function credentials_from_options(options)
  local chosen
  for option, kind in pairs(MARKERS) do
    if options[option] ~= nil then
      if chosen and chosen ~= kind then
        option_error("give one kind of credentials: auth_key_id + auth_key, email + password, "
          .. "operator_id + user_name + password, or api_key + token")
      end
      chosen = kind
    end
  end
  if chosen == nil and options.password ~= nil then
    option_error("password needs email (root user) or operator_id and user_name (SAM user)")
  end
  -- With other credentials it would name an operator that no login confirms.
  if options.operator_id ~= nil and chosen ~= "token" and chosen ~= "sam" then
    option_error("operator_id goes with api_key + token, or with user_name + password (a SAM user)")
  end
  if chosen == nil then return nil end
  local kind = kind_named(chosen)
  local given, missing = {}, {}
  for _, option in ipairs(kind.options) do
    local list = options[option] == nil and missing or given
    list[#list + 1] = option
  end
  if #missing > 0 then
    option_error(table.concat(given, " and ") .. " given without " .. table.concat(missing, " and ")
      .. " (" .. kind.label .. " credentials)")
  end
  if chosen == "token" and options.password ~= nil then
    option_error("password does not go with api_key + token")
  end
  if options.profile_command then
    option_error("profile_command gives the credentials: it does not go with " .. kind.label .. " options")
  end
  return credentials_of(kind, options, "options")
end

local ENVIRONMENT = {
  { kind = "auth_key", variables = { auth_key_id = "SORACOM_AUTH_KEY_ID", auth_key = "SORACOM_AUTH_KEY" } },
  { kind = "root", variables = { email = "SORACOM_EMAIL", password = "SORACOM_PASSWORD" },
    marker = "SORACOM_EMAIL" },
  { kind = "sam", variables = { operator_id = "SORACOM_OPERATOR_ID", user_name = "SORACOM_USER_NAME",
    password = "SORACOM_PASSWORD" }, marker = "SORACOM_USER_NAME", other_marker = "SORACOM_OPERATOR_ID" },
}

--- Credentials from SORACOM_* variables: credentials, nil (none set), or false, message.
local function credentials_from_environment(getenv)
  for _, source in ipairs(ENVIRONMENT) do
    local values, present, missing = {}, false, nil
    for option, variable in pairs(source.variables) do
      local value = getenv(variable)
      if value == "" then value = nil end
      values[option] = value
      if value ~= nil and (source.marker == nil or variable == source.marker
        or variable == source.other_marker) then
        present = true
      end
      if value == nil then missing = missing or variable end
    end
    if present then
      if missing then
        local names = {}
        for _, variable in pairs(source.variables) do names[#names + 1] = variable end
        table.sort(names)
        return false, missing .. " is not set, but " .. kind_named(source.kind).label
          .. " credentials need " .. table.concat(names, ", ")
      end
      return credentials_of(kind_named(source.kind), values, "environment")
    end
  end
  local password = getenv("SORACOM_PASSWORD")
  if password ~= nil and password ~= "" then
    return false, "SORACOM_PASSWORD is set, but neither SORACOM_EMAIL (root user) nor "
      .. "SORACOM_OPERATOR_ID and SORACOM_USER_NAME (SAM user) are"
  end
  return nil
end

-- A profile's fields that are credentials: a profile command's output replaces them
-- all, so that none of the file's mixes with the command's.
local CREDENTIAL_FIELDS = {
  "authKeyId", "authKey", "email", "password", "operatorId", "username", "userName", "mfaOTPCode",
  "sourceProfile",
}

--- A profile with a profileCommand: the file's fields (endpoint, coverage, headers...)
-- with the credentials the command prints (its other fields win over the file's), or
-- nil, message.
local function run_profile_command(data, where)
  local what = "the profileCommand of " .. where
  local given, why = profiles.run_command(data.profileCommand, what)
  if not given then return nil, why end
  if given.profileCommand then
    return nil, "the output of " .. what .. " holds a profileCommand: a command's profile runs none"
  end
  local merged = {}
  for key, value in pairs(data) do merged[key] = value end
  merged.profileCommand = nil
  for _, field in ipairs(CREDENTIAL_FIELDS) do merged[field] = nil end
  for key, value in pairs(given) do merged[key] = value end
  return merged
end

--- Login credentials from a profile's fields: credentials, or false, message.
local function login_from_profile(data, where)
  local values = {
    auth_key_id = data.authKeyId, auth_key = data.authKey, email = data.email,
    password = data.password, operator_id = data.operatorId,
    user_name = data.username or data.userName,
  }
  local order = data.sandbox and { "root", "auth_key", "sam" } or { "auth_key", "root", "sam" }
  for _, name in ipairs(order) do
    local kind = kind_named(name)
    local complete = true
    for _, option in ipairs(kind.options) do
      if values[option] == nil then complete = false end
    end
    if complete then return credentials_of(kind, values, where) end
  end
  return false, where .. " holds no complete credentials (authKeyId + authKey, "
    .. "email + password, operatorId + username + password, or sourceProfile + operatorId + username)"
end

-- The lifetimes /auth/switch_user allows for the switched user's token, and its default.
local SWITCH_MIN_TIMEOUT, SWITCH_MAX_TIMEOUT, SWITCH_DEFAULT_TIMEOUT = 180, 3600, 3600
settings.SWITCH_MIN_TIMEOUT, settings.SWITCH_MAX_TIMEOUT = SWITCH_MIN_TIMEOUT, SWITCH_MAX_TIMEOUT

--- Switch-user credentials (soracom-cli's sourceProfile + operatorId + username): the
-- source profile's login, then /auth/switch_user to the user named. Credentials (with
-- source_data, the source profile's fields, for resolve to take its lifetime and MFA
-- code from), or false, message.
local function switch_from_profile(data, where, getenv)
  local operator_id, user_name = data.operatorId, data.username or data.userName
  if operator_id == nil or user_name == nil then
    return false, where .. " switches user (sourceProfile) without operatorId and username, which name the "
      .. "user to switch to"
  end
  local path, why = profiles.path(data.sourceProfile, getenv)
  if not path then return false, where .. ": sourceProfile: " .. why end
  local source
  source, why = profiles.read(path)
  if not source then return false, why end
  local source_where = "profile " .. path
  if source.profileCommand then
    source, why = run_profile_command(source, source_where)
    if not source then return false, why end
  end
  if source.sourceProfile then
    return false, source_where .. ", the sourceProfile of " .. where .. ", switches user too: a switched "
      .. "user cannot switch again (as with soracom-cli)"
  end
  local login
  login, why = login_from_profile(source, source_where)
  if not login then return false, why end
  return {
    kind = "switch", label = "switch to SAM user " .. user_name .. " of " .. operator_id, source = where,
    source_kind = login.kind, source_label = login.label .. " from " .. login.source, login_where = source_where,
    login = login.login, -- the source's /auth body
    switch = { operatorId = operator_id, userName = user_name },
    source_data = source,
  }
end

--- Credentials from a profile's fields: credentials, or false, message.
local function credentials_from_profile(data, where, getenv)
  if data.sourceProfile then return switch_from_profile(data, where, getenv) end
  return login_from_profile(data, where)
end

-- Precedence: endpoint option, SORACOM_ENDPOINT, coverage option,
-- SORACOM_COVERAGE_TYPE, the profile's endpoint, the profile's coverageType, jp. A
-- profile named by the profile option is not overridden by the environment: its
-- credentials must not follow a SORACOM_ENDPOINT somebody else set.
-- Returns the endpoint (or false, message) and where it came from: "coverage" when
-- it was chosen by coverage (and sandbox), else the option, variable or profile.
local function resolve_endpoint(options, getenv, data, where)
  if options.profile or options.profile_command then
    getenv = function() return nil end
  end
  local sandbox = options.sandbox
  if sandbox == nil and data then sandbox = data.sandbox end
  local function from_coverage(coverage, name)
    local endpoint, why = coverage_endpoint(coverage, sandbox, name)
    return endpoint, why, "coverage"
  end
  if options.endpoint then
    local endpoint, why = normalize_endpoint(options.endpoint, "endpoint")
    if not endpoint then option_error(why) end
    return endpoint, nil, "the endpoint option"
  end
  local from_env = getenv("SORACOM_ENDPOINT")
  if from_env and from_env ~= "" then
    local endpoint, why = normalize_endpoint(from_env, "SORACOM_ENDPOINT")
    return endpoint, why, "SORACOM_ENDPOINT"
  end
  if options.coverage then
    local endpoint, why = from_coverage(options.coverage, "coverage")
    if not endpoint then option_error(why) end
    return endpoint, nil, "coverage"
  end
  local coverage = getenv("SORACOM_COVERAGE_TYPE")
  if coverage and coverage ~= "" then return from_coverage(coverage, "SORACOM_COVERAGE_TYPE") end
  if data and data.endpoint then
    local endpoint, why = normalize_endpoint(data.endpoint, "the endpoint of " .. where)
    return endpoint, why, where
  end
  if data and data.coverageType then
    return from_coverage(data.coverageType, "the coverageType of " .. where)
  end
  return ENDPOINTS[sandbox and "sandbox" or "production"].jp, nil, "coverage"
end

--- The profile's extra headers as "Name: value" lines, or false, message.
local function profile_headers(data, where)
  local lines = {}
  local headers = data and data.headers
  if headers == nil then return lines end
  local function add(name, value)
    if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+%-.^_`|~]+$")
      or type(value) ~= "string" or value:match("%c") then
      return false
    end
    lines[#lines + 1] = name .. ": " .. value
    return true
  end
  local bad = false
  if headers[1] ~= nil then
    for _, line in ipairs(headers) do
      local name, value = tostring(line):match("^([^:]+):%s*(.*)$")
      if not add(name, value) then bad = true end
    end
  else
    for name, value in pairs(headers) do
      if not add(name, value) then bad = true end
    end
  end
  if bad then
    return false, where .. ": headers must be valid header names with values "
      .. "without control characters"
  end
  table.sort(lines)
  return lines
end

local function retry_policy(options)
  local policy = {}
  for name, default in pairs(retry.DEFAULTS) do
    if options[name] == nil then policy[name] = default else policy[name] = options[name] end
  end
  return policy
end

-- The token cache's folder under $XDG_CACHE_HOME (or ~/.cache).
local CACHE_FOLDER = "soracom-groups"

--- The folder a token_cache option names (a path, or true for
-- $XDG_CACHE_HOME/soracom-groups, else ~/.cache/soracom-groups), or nil, why when the
-- environment names none.
local function cache_directory(option, getenv)
  if type(option) == "string" then return (option:gsub("(.)/+$", "%1")) end
  local base = getenv("XDG_CACHE_HOME")
  -- (the XDG spec: a relative path there is to be ignored)
  if base == nil or base:sub(1, 1) ~= "/" then
    local home = getenv("HOME")
    if home == nil or home == "" then
      return nil, "neither XDG_CACHE_HOME (an absolute path) nor HOME is set"
    end
    base = home .. "/.cache"
  end
  return (base:gsub("/+$", "")) .. "/" .. CACHE_FOLDER
end

-- (a whole float is sent as the integer it is: floats keep a fraction on the wire)
local function whole(seconds)
  return math.tointeger and math.tointeger(seconds) or seconds
end

--- A switch-user profile's lifetimes: the switched token's (the token_timeout_seconds
-- option, else the profile's tokenTimeoutSeconds, within what /auth/switch_user
-- allows) and the source login's (the source profile's own, else the default). Sets
-- both in the credentials; returns the switched token's, or nil, message.
local function switch_lifetimes(credentials, options, data, where)
  local lifetime = options.token_timeout_seconds or data.tokenTimeoutSeconds or SWITCH_DEFAULT_TIMEOUT
  if lifetime < SWITCH_MIN_TIMEOUT or lifetime > SWITCH_MAX_TIMEOUT then
    return nil, (options.token_timeout_seconds and "token_timeout_seconds" or where .. ": tokenTimeoutSeconds")
      .. " must be from " .. SWITCH_MIN_TIMEOUT .. " to " .. SWITCH_MAX_TIMEOUT .. " for a switched user "
      .. "(/auth/switch_user's limits), got " .. tostring(lifetime)
  end
  local source_lifetime = credentials.source_data.tokenTimeoutSeconds or DEFAULT_TOKEN_TIMEOUT
  if source_lifetime < 1 or source_lifetime > MAX_TOKEN_TIMEOUT then
    return nil, credentials.login_where .. ": tokenTimeoutSeconds must be from 1 to " .. MAX_TOKEN_TIMEOUT
  end
  credentials.switch.tokenTimeoutSeconds = whole(lifetime)
  credentials.login.tokenTimeoutSeconds = whole(source_lifetime)
  return lifetime
end

--- resolve(options, getenv) -> settings, or nil, message.
-- getenv is os.getenv outside tests.
function settings.resolve(options, getenv)
  check_options(options)
  local redis = options.redis and redis_settings(options.redis)
  local credentials = credentials_from_options(options)
  local why
  -- A profile named in the options comes before the environment: its credentials go to
  -- its endpoint. Otherwise the environment comes before SORACOM_PROFILE or "default".
  if credentials == nil and options.profile == nil and options.profile_command == nil then
    credentials, why = credentials_from_environment(getenv)
    if credentials == false then return nil, why end
  end

  -- The profile is read when it is the source of the credentials, or when asked for;
  -- the profile_command option's output is a profile too.
  local data, where
  if options.profile_command then
    where = "the profile printed by the profile_command option"
    data, why = profiles.run_command(options.profile_command, "the profile_command option")
    if not data then return nil, why end
  elseif credentials == nil or options.profile then
    local name = options.profile or getenv("SORACOM_PROFILE")
    if name == nil or name == "" then name = "default" end
    local path
    path, why = profiles.path(name, getenv)
    if not path then return nil, why end
    local missing
    data, why, missing = profiles.read(path)
    if not data then
      if missing and credentials == nil and options.profile == nil and getenv("SORACOM_PROFILE") == nil then
        why = "no credentials: none in the options, none in SORACOM_* variables, and no profile at " .. path
      end
      return nil, why
    end
    where = "profile " .. path
    -- (credentials given as options need none of the profile's: its command is not run)
    if credentials == nil and data.profileCommand then
      data, why = run_profile_command(data, where)
      if not data then return nil, why end
    end
  end
  if credentials == nil then
    credentials, why = credentials_from_profile(data, where, getenv)
    if not credentials then return nil, why end
  end

  local endpoint, source
  endpoint, why, source = resolve_endpoint(options, getenv, data, where)
  if not endpoint then return nil, why end
  if options.sandbox and source ~= "coverage" then
    return nil, "sandbox = true, but " .. source .. " gives the endpoint " .. endpoint
      .. "; drop one of them"
  end
  local headers
  headers, why = profile_headers(data, where)
  if not headers then return nil, why end

  local token_timeout, mfa
  if credentials.switch then
    token_timeout, why = switch_lifetimes(credentials, options, data, where)
    if not token_timeout then return nil, why end
    mfa = options.mfa_otp_code or credentials.source_data.mfaOTPCode
    credentials.source_data = nil -- (its secrets are in the login body now; kept nowhere else)
  else
    token_timeout = options.token_timeout_seconds or (data and data.tokenTimeoutSeconds) or DEFAULT_TOKEN_TIMEOUT
    if token_timeout < 1 or token_timeout > MAX_TOKEN_TIMEOUT then
      return nil, where .. ": tokenTimeoutSeconds must be from 1 to " .. MAX_TOKEN_TIMEOUT
    end
    if credentials.login then credentials.login.tokenTimeoutSeconds = whole(token_timeout) end
    mfa = options.mfa_otp_code or (data and data.mfaOTPCode)
  end
  if credentials.login then
    if type(mfa) == "function" then
      credentials.mfa_code = mfa -- called at each login: a one-time code is good once
    else
      credentials.login.mfaOTPCode = mfa
    end
  end
  -- An issued API key and token need no login, so nothing to cache.
  local cache_place
  if options.token_cache and credentials.login then
    local directory, unavailable = cache_directory(options.token_cache, getenv)
    cache_place = { directory = directory, unavailable = unavailable }
  end
  local transport_settings = {}
  for _, name in ipairs(TRANSPORT_SETTINGS) do transport_settings[name] = options[name] end
  return {
    endpoint = endpoint,
    credentials = credentials,
    token_timeout = token_timeout,
    -- confirmed by no login: only an issued API key and token may come with it
    operator_id = credentials.kind == "token" and options.operator_id or nil,
    lang = options.lang,
    headers = headers,
    transport = options.transport or "auto",
    transport_settings = transport_settings,
    retry = retry_policy(options),
    sleep = options.sleep,
    wait = options.wait,
    debug = options.debug,
    shared_dict = options.shared_dict,
    share_token = options.share_token ~= false,
    token_cache = cache_place, -- { directory = } or { unavailable = why }, or nil
    redis = redis,
    on_redis_error = options.on_redis_error or "local",
  }
end

return settings
