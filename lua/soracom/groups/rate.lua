--- The client's rate-limit budget, shared by every request it has in flight.
--
-- Soracom counts each operator's requests per API (method and path) in fixed windows,
-- and every answer says how many are left and how many seconds remain before the
-- window ends (rounded up). The budget keeps one account per API and admits a request
-- only while the account says some are left, counting the requests already on their
-- way, so that a batch waits for the next window instead of running into 429s.
--
-- Accounting: every admitted request gets a ticket, a number that only grows. An
-- answer to ticket k saying r are left means the server counted the requests up to k,
-- so at most k + r tickets fit in the window: `ceiling` is the smallest such bound
-- seen, and a new request is admitted while the last ticket is below it. An API
-- whose answers carry no limit headers is never held.

local rate = {}

local Budget = {}
Budget.__index = Budget

--- A new budget; now() gives the time in seconds.
function rate.new(now)
  return setmetatable({ _now = now, _accounts = {}, _ticket = 0 }, Budget)
end

-- Once a window has ended, the next one's answers are awaited this often (seconds)
-- when the requests sent since have used up what it is assumed to hold.
local RECHECK = 0.1

--- Takes a ticket for a request of `api` when its window has room: returns the
-- ticket, or nil and the seconds to wait before asking again.
function Budget:admit(api)
  local account = self._accounts[api]
  if account ~= nil then
    local at = self._now()
    if account.paused_until and at < account.paused_until then
      return nil, account.paused_until - at
    end
    if self._ticket >= account.ceiling then
      if at < account.window_end then return nil, account.window_end - at end
      if account.rolled and account.in_flight > 0 then
        return nil, RECHECK -- the next window's answers are on their way
      end
      -- The window is over: the next one holds `limit` more, from the last ticket on.
      account.ceiling = self._ticket + account.limit
      account.rolled = true
      if self._ticket >= account.ceiling then return nil, RECHECK end
    end
    account.in_flight = account.in_flight + 1
  end
  self._ticket = self._ticket + 1
  return self._ticket
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

--- Takes in what the answer to `ticket` said: `limits` ({limit, remaining, refresh},
-- or nil when the answer had no such headers), and for a 429, `retry_after`: every
-- request of the API then waits that long, not only the one that was refused.
function Budget:settle(api, ticket, limits, status, retry_after)
  local at = self._now()
  local account = self._accounts[api]
  if account ~= nil and account.in_flight > 0 then account.in_flight = account.in_flight - 1 end
  if limits ~= nil and limits.limit and limits.remaining and limits.refresh then
    if account == nil then
      account = { in_flight = 0 }
      self._accounts[api] = account
    end
    record(account, ticket, limits, at + limits.refresh)
  end
  if status == 429 then
    if account == nil then
      account = { ceiling = math.huge, window_end = at, limit = math.huge, in_flight = 0 }
      self._accounts[api] = account
    end
    account.ceiling = math.min(account.ceiling, ticket - 1)
    local pause = at + (retry_after or 1)
    account.paused_until = math.max(account.paused_until or 0, pause)
  end
end

--- A line for the debug hook about a request held back.
function Budget:describe(api, seconds)
  local account = self._accounts[api]
  local why = account and account.paused_until and account.paused_until > self._now()
    and "paused after a 429" or "no requests left in its window"
  return string.format("holding %s for %.2f s: %s", api, seconds, why)
end

return rate
