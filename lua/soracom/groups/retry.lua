--- When a failed request is tried again, and how long to wait first.
--
-- Retried: network failures (connection refused or reset, timeouts, a truncated or
-- empty reply, DNS) and HTTP 429, 500, 502, 503, 504. Only idempotent methods (GET,
-- PUT, DELETE) by default: a POST is retried only when it surely never reached the
-- server (no connection was made, or a 429 refused it), unless retry_post is set.
-- Waits: exponential backoff with jitter, or what the server asks on 429 and 503.

local core = require "soracom.groups.core"

local retry = {}

retry.DEFAULTS = {
  retries = 3,              -- tries after the first
  retry_base_delay = 0.5,   -- seconds; the first backoff wait is within [base/2, base]
  retry_max_delay = 20,     -- seconds; no backoff wait is longer
  rate_limit_max_delay = 60, -- seconds; Soracom says to wait at most a minute on 429
  retry_post = false,
}

local RETRIED_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

-- libcurl's codes for failures worth another try, and those where nothing was sent.
local CURLE = {
  COULDNT_RESOLVE_PROXY = 5, COULDNT_RESOLVE_HOST = 6, COULDNT_CONNECT = 7,
  PARTIAL_FILE = 18, OPERATION_TIMEDOUT = 28, GOT_NOTHING = 52, SEND_ERROR = 55,
  RECV_ERROR = 56,
}
local RETRIED_NETWORK = {
  [CURLE.COULDNT_RESOLVE_PROXY] = true, [CURLE.COULDNT_RESOLVE_HOST] = true,
  [CURLE.COULDNT_CONNECT] = true, [CURLE.PARTIAL_FILE] = true,
  [CURLE.OPERATION_TIMEDOUT] = true, [CURLE.GOT_NOTHING] = true,
  [CURLE.SEND_ERROR] = true, [CURLE.RECV_ERROR] = true,
}
local NEVER_SENT = {
  [CURLE.COULDNT_RESOLVE_PROXY] = true, [CURLE.COULDNT_RESOLVE_HOST] = true,
  [CURLE.COULDNT_CONNECT] = true,
}

local IDEMPOTENT = { GET = true, PUT = true, DELETE = true }

--- Whether err (a failed attempt of method) is worth another attempt.
function retry.retryable(err, method, policy)
  local transient, never_reached
  if err.kind == "http" then
    transient = RETRIED_STATUS[err.status]
    never_reached = err.status == 429
  elseif err.kind == "network" then
    transient = RETRIED_NETWORK[err.curl_code]
    never_reached = NEVER_SENT[err.curl_code]
  end
  if not transient then return false end
  return IDEMPOTENT[method] or never_reached or policy.retry_post
end

-- Answers of a gateway that lost track of the request: it may have been done.
local UNKNOWN_OUTCOME_STATUS = { [502] = true, [504] = true }

--- Whether a failed attempt may nevertheless have been carried out: a network
-- failure after the request may have left (a reset, a timeout, no reply), 502, 504.
-- A 401, 429 or 503 surely did nothing.
function retry.outcome_unknown(err)
  if err.kind == "network" then return not NEVER_SENT[err.curl_code] end
  return err.kind == "http" and UNKNOWN_OUTCOME_STATUS[err.status] == true
end

--- Whether err, a 404 after an attempt whose outcome is unknown, means that attempt
-- did what was asked: a DELETE's thing is gone, or an operation whose 404 says it is
-- already done (`op.done_when_absent`: a subscriber in no group) is done.
function retry.already_done(op, err, earlier_outcome_unknown)
  return err.status == 404 and earlier_outcome_unknown and (op.method == "DELETE" or op.done_when_absent == true)
end

--- Seconds to wait before attempt number `attempt` + 1.
function retry.delay(err, attempt, policy)
  if err.retry_after then -- set on 429 and 503 only: the server said how long
    return math.min(err.retry_after, policy.rate_limit_max_delay)
  end
  local ceiling = math.min(policy.retry_max_delay, policy.retry_base_delay * 2 ^ (attempt - 1))
  return ceiling / 2 + core.random() * ceiling / 2
end

return retry
