--- Sending one request of an operation: the path every method shares, alone or with
-- many others in flight. In order: a token (one login for all who need it, see
-- auth.lua), room in the rate-limit budget (see rate.lua), the request, and on a
-- failure another login (401) or another try (see retry.lua).

local auth = require "soracom.groups.auth"
local batch = require "soracom.groups.batch"
local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local hook = require "soracom.groups.hook"
local retry = require "soracom.groups.retry"
local unwind = require "soracom.groups.unwind"

local build_url, now = core.build_url, core.now
-- Waits end this much after the window turns (rate_account.MARGIN): the cap allows it.
local MARGIN = require("soracom.groups.rate_account").MARGIN

local request = {}

local debug_line = hook.debug

--- The client's clock, which the rate-limit budget reads: real time, plus whatever a
-- `sleep` option claimed to wait without waiting (a spec's, or a loop's that returns
-- early), so that a wait it was asked for counts as waited.
function request.clock(client)
  if client._waiter == nil then return now end -- nothing ever claims a wait: real time
  return function() return now() + client._unslept end
end

-- Waits without blocking other tasks where the transport can; false when the client
-- was closed meanwhile. Inside a task of the curl scheduler the wait is its timer: a
-- `sleep` option that yields to another loop would yield the task away.
function request.wait(client, seconds)
  local waiter, transport = client._waiter, client._transport
  if transport == nil then return false end -- closed (by a debug hook, say)
  if waiter and not transport:in_task() then
    local started = now()
    if waiter.wait then waiter.wait(seconds, {}) else waiter.sleep(seconds) end
    client._unslept = client._unslept + math.max(0, seconds - (now() - started))
  else
    client._transport:sleep(seconds)
  end
  return client._transport ~= nil
end

local function closed_error(op, path)
  return Error.wrap({ kind = "closed", message = "the client was closed before the request was sent" },
    op.method, path)
end

-- Waits before the next try of a failed attempt, if the policy allows one; judged as
-- a `retry_as` request (a login is as safe to repeat as a PUT). Returns true when the
-- caller should try again.
local function backoff(client, err, retry_as, label, failures)
  local policy = client._retry
  if failures > policy.retries or not retry.retryable(err, retry_as, policy) then return false end
  local seconds = retry.delay(err, failures, policy)
  debug_line(client, string.format("retrying %s in %.2f s (%s, retry %d of %d)", label, seconds,
    err.status and "HTTP " .. err.status or err.kind, failures, policy.retries))
  return request.wait(client, seconds)
end

-- The error of a request the rate limit would hold `expected` more seconds, past the
-- cap; logged through the hook.
local function held_too_long(client, api, op, path, expected, queued, why, cap)
  debug_line(client, string.format("giving up %s %s: the rate limit would hold it %.1f s", op.method, path,
    expected))
  return Error.wrap({ kind = "rate_limit", retry_after = expected, message = string.format(
    "the rate limit of %s would hold this request about %.1f s (%s; %s), more than "
      .. "rate_limit_max_delay (%g s)", api, expected, queued, why, cap) }, op.method, path)
end

-- Holds the request, which the budget could not take at once (others are queued, or
-- the window is full), until its turn in the queue of its API has come and the window
-- has room. Its wait is known when it arrives: when that is more than the cap (the
-- client's rate_limit_max_delay; inside client:map, the map's), it fails at once. A
-- shared budget can lengthen it later (other processes take the window): the cap
-- holds for the whole wait. Returns the ticket, or nil, err.
local function admitted(client, api, op, path)
  local budget = client._budget
  local cap = batch.rate_limit_cap() or client._retry.rate_limit_max_delay
  local place, expected, ahead, why, failure = budget:enqueue(api, cap)
  if failure then return nil, Error.wrap(failure, op.method, path) end
  if place == nil then
    return nil, held_too_long(client, api, op, path, expected, ahead .. " queued before it", why, cap)
  end
  -- (a task dropped while it waits leaves its place at once, not when it is missed)
  local undo = unwind.push(function() budget:leave(place) end)
  if expected > 0 and client._debug then -- describe reads the account: only for the hook
    debug_line(client, string.format("holding %s %s for about %.2f s: %s", op.method, path, expected,
      budget:describe(api)))
  end
  local clock = request.clock(client)
  local deadline = clock() + cap + MARGIN
  while true do
    local ticket, seconds, unreadable = budget:admit(place)
    if ticket or unreadable then
      unwind.pop(undo)
      if unreadable then return nil, Error.wrap(unreadable, op.method, path) end
      return ticket
    end
    local at = clock()
    if at + seconds > deadline then
      unwind.pop(undo)
      budget:leave(place)
      return nil, held_too_long(client, api, op, path, seconds + at - deadline + cap + MARGIN,
        "its wait grew while it was queued: a slow probe, or other processes sharing the budget",
        budget:describe(api), cap)
    end
    if not request.wait(client, seconds) then
      unwind.pop(undo)
      budget:leave(place)
      return nil, closed_error(op, path)
    end
  end
end

-- The undo of an attempt in a task (see send): the budget hears that no answer will
-- come. (A function of its own, so that send keeps no upvalue: LuaJIT cannot compile
-- closing one.)
local function push_settle(budget, api, ticket)
  return unwind.push(function() budget:settle(api, ticket) end)
end

-- op -> the budget's name of its API, "METHOD /path/{template}".
local api_of = setmetatable({}, { __mode = "k" })

local function api_name(op)
  local api = op.method .. " " .. op.path
  api_of[op] = api
  return api
end

-- Builds the URL and path of op's request; without a query, send keeps them in
-- client._last_url, for the next request of op with the same path arguments (the same
-- group read again and again, say).
local function build(client, op, query, a1, a2, a3)
  local url, path = build_url(client._endpoint, op.path, op.query, query, a1, a2, a3)
  if query == nil then
    local last = client._last_url
    last.op, last[1], last[2], last[3], last.url, last.path = op, a1, a2, a3, url, path
  end
  return url, path
end

--- request.attach(client): gives a new client what send keeps in it between requests.
function request.attach(client)
  client._last_url = {}
end

--- Sends one request of op with its path arguments a1, a2, a3 (every operation has
-- at most three; what is beyond its own is ignored); `level` is where a closed client
-- is blamed, counted from send's caller. Returns value, next_key, status or nil, err.
function request.send(client, op, level, query, body_text, a1, a2, a3)
  local transport = client._transport
  if transport == nil then
    error("soracom.groups: " .. op.name .. ": the client is closed", level + 1)
  end
  local tidy = transport.tidy -- (what maps dropped unfinished still hold; looked up once)
  if tidy then tidy(transport) end
  local url, path
  local last = client._last_url
  if query == nil and last.op == op and last[1] == a1 and last[2] == a2 and last[3] == a3 then
    url, path = last.url, last.path
  else
    url, path = build(client, op, query, a1, a2, a3)
  end
  local api = api_of[op] or api_name(op)
  local attempts, failures, relogged, outcome_unknown = 0, 0, false, false
  while true do
    local generation, login_err = auth.ready(client)
    if client._transport == nil then return nil, closed_error(op, path) end
    if generation == nil then
      -- (the login retried as the policy allows, once for every caller)
      return nil, login_err
    else
      local ticket, hold_err = client._budget:take(api) -- nobody queued and room: no place to hold
      if ticket == nil then ticket, hold_err = admitted(client, api, op, path) end
      if ticket == nil then
        hold_err.attempts = attempts
        return nil, hold_err
      end
      attempts = attempts + 1
      -- One attempt on the wire, admitted with `ticket`. The budget hears the answer
      -- before anything else runs (the debug hook may raise); if the task is dropped
      -- meanwhile, it hears that no answer will come. (Here, not in a function: a call
      -- on every request.)
      local budget = client._budget
      local undo = unwind.tracked > 0 and unwind.tracking() and push_settle(budget, api, ticket)
      local started = client._debug and now()
      local value, next_key, status, limits = client._transport:perform(op.method, url, body_text, op.items ~= nil)
      if value ~= nil then
        budget:settle(api, ticket, limits, status)
      else
        budget:settle(api, ticket, next_key.rate_limit, next_key.status, next_key.retry_after)
      end
      if undo then unwind.pop(undo) end
      if started then
        debug_line(client, string.format("%s %s -> %s (%.1f ms)", op.method, url,
          value ~= nil and tostring(status) or tostring(next_key.status or next_key.kind), (now() - started) * 1000))
      end
      if value ~= nil then
        if op.items and type(value) ~= "table" then
          return nil, Error.wrap({ kind = "decode", status = status, attempts = attempts,
            message = "expected a JSON array of " .. op.items }, op.method, path)
        end
        return value, next_key, status
      end
      local err = next_key
      if retry.already_done(op, err, outcome_unknown) then return true, nil, err.status end
      outcome_unknown = outcome_unknown or retry.outcome_unknown(err)
      if err.kind == "closed" then
        err.attempts = attempts
        return nil, Error.wrap(err, op.method, path)
      elseif err.status == 401 and not relogged and auth.can_login(client) then
        relogged = true
        auth.invalidate(client, generation) -- only if no other request has logged in since
      else
        failures = failures + 1
        if not backoff(client, err, op.idempotent and "PUT" or op.method, op.method .. " " .. url, failures) then
          err.attempts = attempts
          return nil, Error.wrap(err, op.method, path)
        end
      end
    end
  end
end

return request
