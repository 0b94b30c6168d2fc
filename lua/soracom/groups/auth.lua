--- The token's life: logging in with /auth, renewing before expiry, the request
-- headers that carry the API key and token, and logging out.
--
-- Everything about it (credentials, the issued pair, the extra headers a profile may
-- give, the times, the operator ID) lives in one private record per client, reachable
-- only from this module, and in the transport's private header block: never in a
-- field of the client, an error, a debug line or tostring.
--
-- With the shared_dict option (inside nginx) the token is also kept in the dict, for
-- every worker of the instance (see shared.lua): one worker logs in under the dict's
-- lock while the others wait, then each takes the token from the dict.
--
-- With the token_cache option (the command's default) the token is also kept in a
-- file between processes (see token_cache.lua): the first login of a client takes a
-- valid cached token instead, and every login writes the token it got there.

local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local hook = require "soracom.groups.hook"
local retry = require "soracom.groups.retry"

local encode_json, now = core.encode_json, core.now

local auth = {}

-- client -> its record; weak, so it never keeps a client alive.
local records = setmetatable({}, { __mode = "k" })

-- Log in again this long before the token's lifetime runs out: a tenth of it, at
-- most five minutes.
local function renewal_margin(lifetime)
  return math.min(300, lifetime / 10)
end

-- After a renewal fails while the token is still valid, the next one waits this many
-- seconds, doubling with each failure up to the cap (and never past the token's end),
-- so that rotated credentials do not cost every call a doomed /auth first.
local RENEWAL_RETRY_FIRST = 10
local RENEWAL_RETRY_MAX = 160

-- What a login in flight says when the code it calls (an mfa_otp_code function, a
-- debug hook) yields past it: the login could never be resumed.
local YIELDED = "the login was abandoned: the mfa_otp_code function or the debug hook yielded "
  .. "(coroutine.yield) inside it; they must return without yielding"

-- The header lines of a request: the client's own, and the API key and token given.
local function header_lines(record, api_key, token)
  local lines = {}
  for i, line in ipairs(record.base_headers) do lines[i] = line end
  if api_key then
    lines[#lines + 1] = "X-Soracom-API-Key: " .. api_key
    lines[#lines + 1] = "X-Soracom-Token: " .. token
  end
  return lines
end

-- Each new token has a new generation, so that a 401 answered to an older token does
-- not cause another login.
local function install(client, record, api_key, token)
  record.generation = record.generation + 1
  if client._transport == nil then return end -- closed meanwhile: nothing will be sent
  client._transport:set_headers(header_lines(record, api_key, token))
end

local debug_line = hook.debug

--- Takes the client's credentials in, with the header lines of every request
-- (Accept, language, a profile's headers) and, for an issued API key and token, the
-- operator ID given with them. An issued pair is used at once. `sharing` is the
-- state the workers share (shared.lua), when the token is to be shared; `cache` the
-- token cache (token_cache.lua), when the token is kept between processes.
function auth.attach(client, credentials, base_headers, operator_id, sharing, cache)
  local record = { credentials = credentials, base_headers = base_headers, renewal_failures = 0, generation = 0 }
  if credentials.login then
    record.shared = sharing
    -- read once, at the first login: later logins replace a token that was refused or
    -- is due for renewal, which is what the file would give again
    record.cache, record.cache_unread = cache, cache ~= nil
  end
  records[client] = record
  if credentials.kind == "token" then
    install(client, record, credentials.api_key, credentials.token)
    record.renew_at, record.valid_until = math.huge, math.huge
    record.needs_login = false
    record.operator_id = operator_id
  else
    install(client, record)
    record.needs_login = true
  end
end

local function can_login(record)
  return record.credentials ~= nil and record.credentials.login ~= nil
end

--- Whether a 401 can be cured by logging in again.
function auth.can_login(client)
  return can_login(records[client])
end

local function login_error(kind, message, status, path)
  local err = Error.wrap({ kind = kind, message = message }, "POST", path or "/auth")
  err.status = status
  return err
end

local function closed_error()
  return login_error("closed", "the client was closed while it logged in")
end

local function valid_secret(value)
  return type(value) == "string" and value ~= "" and not value:match("%c")
end

-- The /auth request body, with a fresh MFA code when a function gives them.
local function login_body(credentials)
  if not credentials.mfa_code then return credentials.login end
  local called, code = pcall(credentials.mfa_code)
  if not called then
    return nil, login_error("auth", "the mfa_otp_code function raised an error: " .. tostring(code))
  end
  if type(code) ~= "string" or code == "" then
    return nil, login_error("auth", "the mfa_otp_code function gave no code (a non-empty string)")
  end
  local body = {}
  for key, value in pairs(credentials.login) do body[key] = value end
  body.mfaOTPCode = code
  return body
end

-- POST path with body (the source user's token in `lines`, for a switch): the
-- issued {apiKey, token, operatorId} and when the request started, or nil, err, sent
-- (whether the request went out: its failure is the API's answer, or the network's).
-- `what` says in the debug line which credentials (never a secret).
local function issue(client, path, body, lines, what)
  local transport = client._transport
  if transport == nil then return nil, closed_error() end -- (an MFA function may close it)
  local started = now()
  local value, err, status = transport:perform("POST", client._endpoint .. path, encode_json(body), nil, lines)
  debug_line(client, string.format("POST %s%s (%s) -> %s (%.1f ms)", client._endpoint, path, what,
    value and tostring(status) or tostring(err.status or err.kind), (now() - started) * 1000))
  if value == nil then
    return nil, Error.wrap(err, "POST", path), true
  end
  if type(value) ~= "table" or not valid_secret(value.apiKey) or not valid_secret(value.token) then
    return nil, login_error("decode", "the " .. path .. " response holds no apiKey and token", status, path), true
  end
  return value, started
end

-- Switch user: the source user's token, from its own login when there is none still
-- good for a while: the pair, whether it was issued now, or nil, err, sent. It stays
-- in the record (never in the transport's headers) for the next switch.
local function source_token(client, record)
  local source = record.source
  if source and now() < source.renew_at then return source, false end
  record.source = nil
  local credentials = record.credentials
  local body, why = login_body(credentials)
  if body == nil then return nil, why end
  local value, started, sent = issue(client, "/auth", body, nil, credentials.source_label .. ", to switch user")
  if value == nil then return nil, started, sent end
  local lifetime = credentials.login.tokenTimeoutSeconds
  record.source = { api_key = value.apiKey, token = value.token,
    renew_at = started + lifetime - renewal_margin(lifetime) }
  return record.source, true
end

-- Switch user: POST /auth/switch_user with the source user's token; a 401 to a token
-- kept from before (revoked, or expired early) costs one more source login. Returns
-- as issue does.
local function switched(client, record)
  local credentials = record.credentials
  while true do
    local source, fresh_or_err, sent = source_token(client, record)
    if source == nil then return nil, fresh_or_err, sent end
    local value, started, switch_sent = issue(client, "/auth/switch_user", credentials.switch,
      header_lines(record, source.api_key, source.token), credentials.label)
    if value or fresh_or_err or started.status ~= 401 then return value, started, switch_sent end
    record.source = nil
  end
end

-- Logs in (POST /auth, or for a switched user the source's login and
-- /auth/switch_user): true, or nil, err, sent (see issue). The current token stays in
-- the headers until a new one arrives: a renewal that fails leaves it in use.
local function login(client, record)
  local credentials = record.credentials
  if not can_login(record) then
    return nil, login_error("auth", "no credentials to log in with (an issued API key and "
      .. "token cannot be renewed, and logout forgets them)")
  end
  local value, started, sent
  if credentials.switch then
    value, started, sent = switched(client, record)
  else
    local body, why = login_body(credentials)
    if body == nil then return nil, why end
    value, started, sent = issue(client, "/auth", body, nil, credentials.label .. " from " .. credentials.source)
  end
  if value == nil then return nil, started, sent end
  install(client, record, value.apiKey, value.token)
  if valid_secret(value.operatorId) then record.operator_id = value.operatorId end
  local lifetime = (credentials.switch or credentials.login).tokenTimeoutSeconds
  record.valid_until = started + lifetime
  record.renew_at = record.valid_until - renewal_margin(lifetime)
  record.renewal_failures = 0
  record.needs_login = false
  if record.cache then
    local at = now()
    local _, not_cached = record.cache:store(value.apiKey, value.token, record.operator_id, record.valid_until - at,
      record.renew_at - at)
    if not_cached then debug_line(client, not_cached) end
  end
  if record.shared then
    local generation, not_kept = record.shared:store_token(value.apiKey, value.token, record.valid_until,
      record.renew_at, record.operator_id)
    record.shared_generation = generation
    if generation == nil then
      debug_line(client, "the shared dict could not keep the token (" .. tostring(not_kept) .. "): this worker "
        .. "uses it alone")
    end
  end
  return true
end

-- Shared token: takes the dict's token in when it is not the one installed.
local function adopt(client, record, entry)
  if entry.generation == record.shared_generation then return end
  install(client, record, entry.api_key, entry.token)
  record.shared_generation = entry.generation
  record.valid_until, record.renew_at = entry.valid_until, entry.renew_at
  record.operator_id = entry.operator_id or record.operator_id
  record.renewal_failures = 0
  record.needs_login = false
  debug_line(client, "using the token another worker or process logged in with (generation "
    .. entry.generation .. ")")
end

-- Shared token: follows the dict (a newer token, a later renewal time, or none left:
-- refused, expired or evicted).
local function follow(client, record)
  local entry = record.shared:token()
  if entry == nil then
    if record.shared_generation then record.needs_login, record.shared_generation = true, nil end
    return
  end
  adopt(client, record, entry)
  record.renew_at = entry.renew_at
end

-- A renewal failed while the token is still good: keep it, and try again later.
local function defer_renewal(client, record, at, err)
  record.renewal_failures = record.renewal_failures + 1
  local wait = math.min(RENEWAL_RETRY_MAX, RENEWAL_RETRY_FIRST * 2 ^ (record.renewal_failures - 1))
  record.renew_at = math.min(at + wait, record.valid_until)
  debug_line(client, string.format("renewing the token failed (%s); the current one stays in use, "
    .. "next renewal in %.0f s", err.status and "HTTP " .. err.status or err.kind, record.renew_at - at))
end

-- The part of a shared login made with the dict's lock held (see shared_login).
local function login_under_lock(client, record, renewing, at, seen, flight)
  local sharing = record.shared
  -- A token newer than the one this login set out to replace (another request of
  -- this worker may have taken it in meanwhile): nothing to do.
  local entry = sharing:token()
  if entry and entry.generation ~= seen then
    adopt(client, record, entry)
    return true
  end
  -- A renewal whose time has moved on meanwhile (another worker's failed, and set the
  -- next one): not due yet.
  if renewing and entry and now() < entry.renew_at then
    record.renew_at = entry.renew_at
    return true
  end
  -- A one-time code is this client's own: a failure with it is nobody else's answer.
  local credentials = record.credentials
  local shares_failures = not (credentials.mfa_code or credentials.login.mfaOTPCode)
  local failure = not renewing and shares_failures and sharing:failure_since(at)
  if failure then
    debug_line(client, "another worker's login failed meanwhile: "
      .. tostring(failure.status and "HTTP " .. failure.status or failure.kind))
    return nil, Error.wrap(failure, "POST", "/auth")
  end
  local ok, err, sent = login(client, record)
  if ok then return true end
  local failed_at = now()
  if renewing and entry and failed_at < record.valid_until then
    -- Every worker waits for the next renewal, not only this one.
    defer_renewal(client, record, failed_at, err)
    sharing:defer_renewal(entry.generation, record.renew_at, entry.valid_until)
    return true
  end
  if sent and shares_failures then
    -- An outage: no worker tries again before this flight's next backoff step.
    local policy = client._retry
    local quiet = retry.retryable(err, "PUT", policy) and retry.delay(err, flight.failures + 1, policy) or 0
    flight.next_delay = quiet -- (this flight's own next try waits as long)
    sharing:store_failure(err, quiet)
  end
  return nil, err
end

-- Shared token: logs in under the dict's lock, unless another worker has meanwhile, or
-- another worker's login failed while this one waited (its failure is the answer, as
-- for the requests of one worker that wait for its login: one /auth, not one per
-- worker). A renewal does not wait for the lock: whoever holds it is renewing, and the
-- current token stays in use. A login that waited longer than a login may take goes
-- ahead without the lock (its holder was lost); the lock frees itself by then anyway.
-- Failures count from when this attempt of the flight began, not from when its timer ran.
-- The lock is freed however the part under it ends, a raise (a debug hook's) included.
local function shared_login(client, record, flight)
  local sharing = record.shared
  local renewing = not record.needs_login
  local at, seen = flight.attempt_started or flight.started, record.shared_generation
  local mark, why = sharing:lock("login", renewing and 0 or sharing:login_hold(), sharing:login_hold())
  if mark == nil and renewing then return true end
  if mark == nil and type(why) == "table" then return nil, Error.wrap(why, "POST", "/auth") end -- Redis failed
  local completed, ok, err = pcall(login_under_lock, client, record, renewing, at, seen, flight)
  sharing:unlock("login", mark)
  if not completed then error(ok, 0) end
  return ok, err
end

-- The login in flight ends: its waiters wake to its outcome.
local function land(record, flight, ok, err)
  if flight.done then return end
  flight.done, flight.ok, flight.err = true, ok, err
  if record.flight == flight then record.flight = nil end
  if ok then
    record.failed = nil
  elseif err and err.kind ~= "closed" and flight.next_try_after then
    -- Its retries are spent: the callers that come meanwhile get its answer, and the
    -- next login goes on with the backoff from there (one try per step, each step
    -- longer), so that /auth sees one attempt per backoff step whoever calls.
    record.failed = { err = err, until_time = now() + flight.next_try_after, failures = flight.failures }
  end
  flight.event:signal()
end

-- A login with its retries, as the client's policy allows for a PUT (a login is as
-- safe to repeat): every caller waits for this one, so an /auth outage costs one
-- attempt per backoff step, not one per caller. A renewal does not retry: the current
-- token stays in use, and the next renewal is deferred.
local function login_with_retries(client, record, flight)
  local log_in = record.shared and shared_login or login
  local failures = flight.earlier_failures
  while true do
    if client._transport == nil then return nil, closed_error() end
    flight.attempt_started, flight.failures, flight.next_delay = now(), failures, nil
    local ok, err = log_in(client, record, flight)
    if ok or flight.renewing then return ok, err end
    failures = failures + 1
    local policy = client._retry
    local seconds = flight.next_delay or retry.delay(err, failures, policy)
    if not retry.retryable(err, "PUT", policy) then return nil, err end
    if failures > policy.retries then
      flight.next_try_after, flight.failures = seconds, failures -- the next login waits one more step
      return nil, err
    end
    debug_line(client, string.format("retrying POST %s/auth in %.2f s (%s, retry %d of %d)", client._endpoint,
      seconds, err.status and "HTTP " .. err.status or err.kind, failures, policy.retries))
    if client._transport == nil then return nil, closed_error() end
    client._transport:sleep(seconds)
  end
end

-- Starts the one login in flight for the client, owned by no caller: a task of its
-- own (carried by whoever waits for it), or inside nginx a timer, which runs to its end
-- even when the request that started it is aborted. Its outcome lands for everyone;
-- what it raised lands as its error and is raised again to those who wait.
local function fly(client, record, renewing)
  -- (an outage's backoff goes on from the last flight's, unless that is long past)
  local failed = record.failed
  local recent = failed and not renewing and now() < failed.until_time + client._retry.retry_max_delay
  local flight = { event = client._transport:event(), started = now(), renewing = renewing,
    earlier_failures = recent and failed.failures or 0 }
  record.flight = flight
  local detached = client._transport:spawn({
    run = function()
      flight.task = coroutine.running()
      local ok, err = login_with_retries(client, record, flight)
      if not ok and renewing and flight.started < (record.valid_until or 0) then
        defer_renewal(client, record, now(), err)
        return true
      end
      return ok, err
    end,
    finish = function(completed, ok, err, how)
      if completed then
        land(record, flight, ok, err)
      elseif how == "yielded" then
        land(record, flight, nil, login_error("auth", YIELDED))
      elseif how == "exiting" then
        land(record, flight, nil, login_error("auth", "nginx is exiting: the login was not made"))
      else
        flight.raised = ok
        land(record, flight, nil, login_error("auth", "the login raised an error"))
      end
    end,
    stray_yield = "soracom.groups: " .. YIELDED,
  })
  flight.detached = detached
  return flight
end

-- Waits for the login in flight to land, and returns its outcome: ok, or nil, err.
local function await(client, flight)
  if flight.task ~= nil and flight.task == coroutine.running() then
    error("soracom.groups: this call needs the login in progress on the same client, and came "
      .. "from inside it (an mfa_otp_code function or debug hook calling the client?)", 0)
  end
  while not flight.done do
    if not flight.event:wait(1, client._waiter) and not flight.done then
      error("soracom.groups: the login in flight has nobody to carry it (a bug: please report it)", 0)
    end
  end
  if flight.raised ~= nil then error(flight.raised, 0) end
  return flight.ok, flight.err
end

-- The client's first login: takes the cached token instead, when the cache holds
-- one that is valid and not due for renewal. Returns whether it did.
local function take_cached(client, record)
  record.cache_unread = false
  local entry, why = record.cache:load()
  if why then debug_line(client, why) end
  if entry == nil then return false end
  install(client, record, entry.api_key, entry.token)
  local at = now()
  record.valid_until, record.renew_at = at + entry.valid_for, at + entry.renew_in
  record.operator_id = entry.operator_id or record.operator_id
  record.renewal_failures = 0
  record.needs_login = false
  debug_line(client, string.format("using the token cached in %s (renewal in %.0f s)", record.cache:path(),
    entry.renew_in))
  return true
end

-- Logs in, or waits for the login in flight and shares its outcome: ok, or nil, err.
local function logged_in(client, record)
  if record.cache_unread and record.flight == nil and take_cached(client, record) then return true end
  local flight = record.flight
  if flight and flight.renewing then
    await(client, flight)
    if not record.needs_login then return true end
    flight = record.flight
  end
  local failed = record.failed
  if flight == nil and failed and now() < failed.until_time then return nil, failed.err end
  return await(client, flight or fly(client, record, false))
end

--- Makes sure the client holds a token to send: logs in when it has none or when it
-- has expired, renews it when its renewal time has come (one login at a time: the
-- others wait for it, or go on with the current token while it is renewed).
-- Returns the token's generation, or nil, err when there is no token to send.
function auth.ready(client)
  local record = records[client]
  if record.shared then follow(client, record) end
  if not record.needs_login then
    -- (an issued API key and token never expire here: no clock to read)
    if record.renew_at == math.huge then return record.generation end
    local at = now()
    if at < record.renew_at or (record.flight and at < record.valid_until) then
      return record.generation
    end
    if at < record.valid_until then
      -- Renewing: the current token stays in use meanwhile. A plain call outside any
      -- task carries a renewal nobody else would (it cannot run by itself).
      local flight = fly(client, record, true)
      local transport = client._transport
      if not flight.detached and transport and not transport:in_task() then await(client, flight) end
      return record.generation
    end
    record.needs_login = true
  end
  local ok, err = logged_in(client, record)
  if not ok then return nil, err end
  return record.generation
end

--- The token of `generation` was refused (401): unless a newer one has been
-- installed since, the next request logs in again.
function auth.invalidate(client, generation)
  local record = records[client]
  if record.generation ~= generation then return end
  record.needs_login = true
  if record.shared and record.shared_generation then record.shared:refuse(record.shared_generation) end
  if record.cache then -- (the next login writes its token; should it fail, none is left to refuse)
    local _, not_removed = record.cache:remove()
    if not_removed then debug_line(client, not_removed) end
  end
end

--- The operator ID: from the login (logging in first if need be), or the one given
-- with an issued API key and token. Returns it or nil, err.
function auth.operator_id(client)
  local record = records[client]
  if record.shared then follow(client, record) end
  if record.operator_id == nil and record.needs_login then
    local ok, err = logged_in(client, record)
    if not ok then return nil, err end
  end
  if record.operator_id == nil then
    return nil, Error.new("auth", "the operator ID is unknown: give operator_id with api_key and token")
  end
  return record.operator_id
end

--- POST /auth/logout, then forget the token: true, or nil, err.
function auth.logout(client)
  local record = records[client]
  -- A cached token is this client's to revoke too, even before any call used it.
  if record.cache_unread then take_cached(client, record) end
  if record.needs_login then return true end -- no token was issued
  local value, err = client._transport:perform("POST", client._endpoint .. "/auth/logout", "")
  debug_line(client, "POST " .. client._endpoint .. "/auth/logout -> "
    .. (value and "ok" or tostring(err.status or err.kind)))
  if value == nil then return nil, Error.wrap(err, "POST", "/auth/logout") end
  -- The token is revoked for every worker, and every later process: none of them may use it.
  if record.shared and record.shared_generation then record.shared:refuse(record.shared_generation) end
  if record.cache then
    local _, not_removed = record.cache:remove()
    if not_removed then debug_line(client, not_removed) end
  end
  install(client, record)
  record.needs_login = true
  if record.credentials.kind == "token" then record.credentials = nil end
  -- A switched user's source token is this client's too: revoked with it.
  local source = record.source
  record.source = nil
  if source then
    value, err = client._transport:perform("POST", client._endpoint .. "/auth/logout", "", nil,
      header_lines(record, source.api_key, source.token))
    debug_line(client, "POST " .. client._endpoint .. "/auth/logout (the switch-user source's token) -> "
      .. (value and "ok" or tostring(err.status or err.kind)))
    if value == nil then return nil, Error.wrap(err, "POST", "/auth/logout") end
  end
  return true
end

--- The client is closing: whoever waits for its login in flight gets a "closed" error
-- now, not when the login (or the shared lock it waits for) ends.
function auth.close(client)
  local record = records[client]
  local flight = record and record.flight
  if flight then land(record, flight, nil, closed_error()) end
end

--- A short description of the credentials for tostring, without any of them.
function auth.describe(client)
  local record = records[client]
  local credentials = record and record.credentials
  if credentials == nil then return "logged out" end
  return credentials.label .. " from " .. credentials.source
end

return auth
