--- The client's rate-limit budget, shared by every request it has in flight.
--
-- Soracom counts each operator's requests per API (method and path) in fixed windows,
-- and every answer says how many are left and how many seconds remain before the
-- window ends (rounded up). The budget keeps one account per API and admits a request
-- only while the account says some are left, counting the requests already on their
-- way, so that a batch waits for the next window instead of running into 429s.
--
-- Accounting: every admitted request of an API gets a ticket, a number that only
-- grows. An answer to ticket k saying r are left means the server counted the
-- requests up to k, so at most k + r tickets fit in the window: `ceiling` is the
-- smallest such bound seen, and a new request is admitted while the last ticket is
-- below it. An API whose answers carry no limit headers is never held (a success
-- without them makes the account forget the window it knew).
--
-- The accounts live in a store: the budget's own table, or (the shared_dict option)
-- an nginx shared dict, where every worker of the instance reads and changes them
-- under a lock (see shared.lua). Either way one account changes in one step.

local rate = {}

local Budget = {}
Budget.__index = Budget

-- Once a window has ended, the next one's answers are awaited this often (seconds)
-- when the requests sent since have used up what it is assumed to hold.
local RECHECK = 0.1

-- Requests counted in flight whose answers have not come this long after a window
-- rolled over are taken for lost (their nginx request was aborted, their worker
-- died): the next window is then assumed again instead of awaiting them for ever.
local IN_FLIGHT_LOST_AFTER = 30

-- The store of a budget that no other process shares: api -> account.
local LocalStore = {}
LocalStore.__index = LocalStore

function LocalStore:update(api, change, ...)
  local account = self[api]
  if account == nil then
    account = { ticket = 0, in_flight = 0 }
    self[api] = account
  end
  return change(account, ...)
end

--- A new budget; now() gives the time in seconds. `store` keeps the accounts: a
-- table's by default, or one of shared.lua's.
function rate.new(now, store)
  return setmetatable({ _now = now, _store = store or setmetatable({}, LocalStore) }, Budget)
end

-- An account's fields: ticket (the last one given), in_flight, and once an answer
-- carried limits: ceiling, window_end, limit, rolled (the window ended and the next
-- is assumed), rolled_at; after a 429, paused_until. All numbers or booleans, so that
-- a shared store can write them as text.
rate.ACCOUNT_FIELDS = { "ticket", "in_flight", "ceiling", "window_end", "limit", "rolled", "rolled_at", "paused_until" }

local function admit(account, at)
  if account.paused_until and at < account.paused_until then
    return nil, account.paused_until - at
  end
  if account.ceiling and account.ticket >= account.ceiling then
    if at < account.window_end then return nil, account.window_end - at end
    if account.rolled and account.in_flight > 0 and at < account.rolled_at + IN_FLIGHT_LOST_AFTER then
      return nil, RECHECK -- the next window's answers are on their way
    end
    -- The window is over: the next one holds `limit` more, from the last ticket on.
    if account.rolled then account.in_flight = 0 end -- those answers are not coming
    account.ceiling = account.ticket + account.limit
    account.rolled, account.rolled_at = true, at
    if account.ticket >= account.ceiling then return nil, RECHECK end
  end
  if account.ceiling then account.in_flight = account.in_flight + 1 end
  account.ticket = account.ticket + 1
  return account.ticket
end

--- Takes a ticket for a request of `api` when its window has room: returns the
-- ticket, or nil and the seconds to wait before asking again.
function Budget:admit(api)
  return self._store:update(api, admit, self._now())
end

-- What an answer says of its window: a later window, or the one the account knows.
local function record(account, ticket, limits, ends)
  if account.window_end == nil or ends >= account.window_end + 1 then
    -- Ends of one window, each rounded up, differ by less than a second: this is a
    -- new window.
    account.window_end, account.ceiling, account.rolled = ends, ticket + limits.remaining, false
  elseif not account.rolled then
    -- A late answer from the known window: the tighter bounds win.
    account.window_end = math.min(account.window_end, ends)
    account.ceiling = math.min(account.ceiling, ticket + limits.remaining)
  end
  account.limit = limits.limit
end

-- An answer of the API without limit headers: it is not limited (any more), and the
-- window the account knew must not hold its requests.
local function forget_window(account)
  account.ceiling, account.window_end, account.limit, account.rolled, account.rolled_at = nil, nil, nil, nil, nil
  account.in_flight = 0
end

local function settle(account, at, ticket, limits, status, retry_after)
  if account.in_flight > 0 then account.in_flight = account.in_flight - 1 end
  if limits ~= nil and limits.limit and limits.remaining and limits.refresh then
    record(account, ticket, limits, at + limits.refresh)
  elseif account.ceiling ~= nil and status and status >= 200 and status < 300 then
    forget_window(account)
  end
  if status == 429 then
    if account.ceiling == nil then
      account.ceiling, account.window_end, account.limit = math.huge, at, math.huge
    end
    account.ceiling = math.min(account.ceiling, ticket - 1)
    account.paused_until = math.max(account.paused_until or 0, at + (retry_after or 1))
  end
end

--- Takes in what the answer to `ticket` said: `limits` ({limit, remaining, refresh},
-- or nil when the answer had no such headers), and for a 429, `retry_after`: every
-- request of the API then waits that long, not only the one that was refused.
function Budget:settle(api, ticket, limits, status, retry_after)
  self._store:update(api, settle, self._now(), ticket, limits, status, retry_after)
end

local function why_held(account, at)
  return account.paused_until and account.paused_until > at and "paused after a 429"
    or "no requests left in its window"
end

--- A line for the debug hook about a request held back.
function Budget:describe(api, seconds)
  local why = self._store:update(api, why_held, self._now())
  return string.format("holding %s for %.2f s: %s", api, seconds, why)
end

return rate
