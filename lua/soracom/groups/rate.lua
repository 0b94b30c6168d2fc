--- An operator's rate-limit budget: one fair queue per API in front of an account of
-- the API's window.
--
-- Soracom counts each operator's requests per API (method and path) in fixed windows,
-- whichever credentials send them, and every answer says the limit, how many are left
-- and how many seconds remain before the window ends (rounded up). So a client's
-- budget is its operator's (rate.for_operator): every client of the operator in the
-- process shares its queues and its account.
--
-- The queue (this process's): a request takes its place when it arrives and is
-- admitted in that order; nobody overtakes a waiter. Its wait is known from its
-- place: the requests ahead of it fill what is left of this window, then `limit` a
-- window. So a cap on the wait (rate_limit_max_delay) is decided once, when it
-- arrives.
--
-- The account (the store's: a table of this process's, or with the shared_dict option
-- an nginx shared dict that every worker changes under a lock, see shared.lua) counts
-- per window generation: `used`, the requests admitted in the current window (and
-- those of the window before still on their way, which may land in this one), and
-- `others`, what the operator's other clients (other processes, other hosts) used in
-- it: the most an answer's count (limit - remaining) ever exceeded what this budget had
-- admitted when it came. What
-- is left is limit - used - others. Answers that overtake each other cannot shrink
-- what is left below the truth: a count never exceeds what was admitted before it.
-- An answer names its window by its end (now + the seconds before refresh): an
-- answer to a request of the window before that ends with that window frees the
-- place it was holding in this one.
--
-- Probes: until the first answer of an API tells its limit, one request goes and the
-- others wait for its answer (a cold start never sends a burst into an unknown limit);
-- the same after a 429 (which pauses the API for everyone) and after an answer whose
-- limit is zero, negative or absurd (the API is paused until the refresh time): one
-- probe, then the others. An answer without limit headers means the API is not
-- limited: its requests go at once.

local rate = {}

local Budget = {}
Budget.__index = Budget

local account_changes = require "soracom.groups.rate_account"
local admit, projected, settle, describe = account_changes.admit, account_changes.projected,
  account_changes.settle, account_changes.describe
local MARGIN = account_changes.MARGIN

-- A waiter that has not come back this long after the time it was told to is gone
-- (its coroutine was dropped): the queue goes on without it.
local WAITER_LOST_AFTER = 2

-- The store of a budget that no other process shares: api -> account.
local LocalStore = {}
LocalStore.__index = LocalStore

function LocalStore:update(api, change, a, b, c, d, e) -- (no change takes more than five)
  local account = self[api]
  if account == nil then
    account = {}
    self[api] = account
  end
  return change(account, a, b, c, d, e)
end

--- A new budget of its own; now() gives the time in seconds. `store` keeps the
-- accounts: a table's by default, or one of shared.lua's. (A client's budget is its
-- operator's: see rate.for_operator.)
function rate.new(now, store)
  return setmetatable({ _now = now, _store = store or setmetatable({}, LocalStore), _queues = {},
    _local = store == nil }, Budget)
end

---------------------------------------------------------------------------------------
-- The queue of one API, here.

local function queue_of(budget, api)
  local queue = budget._queues[api]
  if queue == nil then
    queue = { next = 0, waiting = {} }
    budget._queues[api] = queue
  end
  return queue
end

local function gone(place, at)
  return place.back_by ~= nil and at > place.back_by + WAITER_LOST_AFTER
end

-- The waiters ahead of `place` (of all, without one) that are still there; forgets
-- those that are gone.
local function ahead_of(queue, place, at)
  local ahead, waiting = 0, queue.waiting
  local i = 1
  while waiting[i] and waiting[i] ~= place do
    if gone(waiting[i], at) then
      table.remove(waiting, i)
    else
      ahead = ahead + 1
      i = i + 1
    end
  end
  if place == nil then return ahead end
  if waiting[i] == nil then
    -- This waiter was taken for gone while it was late: back in its place.
    local j = #waiting + 1
    while j > 1 and waiting[j - 1].number > place.number do j = j - 1 end
    table.insert(waiting, j, place)
    return ahead_of(queue, place, at)
  end
  return ahead
end

local function leave(queue, place)
  for i, other in ipairs(queue.waiting) do
    if other == place then
      table.remove(queue.waiting, i)
      return
    end
  end
end

--- Takes a place in the queue of `api`: the place, and the seconds it is expected to
-- wait; or, when that is more than `cap` seconds, nil, the expected wait, the number
-- of requests queued before it and a description of the limit (the place is not taken).
-- A shared store that cannot be read (Redis, on_redis_error "fail"): nil, nil, the
-- number queued, nil and its error.
function Budget:enqueue(api, cap)
  local queue, at = queue_of(self, api), self._now()
  local ahead = ahead_of(queue, nil, at)
  local wait, _, failure = self._store:update(api, projected, at, ahead)
  if wait == nil then return nil, nil, ahead, nil, failure end -- (a shared store that failed)
  if cap and wait - MARGIN > cap then return nil, wait, ahead, self:describe(api) end
  queue.next = queue.next + 1
  local place = { api = api, number = queue.next }
  table.insert(queue.waiting, place)
  return place, wait
end

--- Admits the request at `place` when its turn has come and its window has room:
-- returns the ticket (for settle), or nil and the seconds to wait before asking again;
-- or nil, nil and the error of a shared store that failed (the place is left).
function Budget:admit(place)
  local queue, at = queue_of(self, place.api), self._now()
  local ahead = ahead_of(queue, place, at)
  local ticket, wait, failure = self._store:update(place.api, admit, at, ahead)
  if ticket or failure then
    leave(queue, place)
    return ticket, nil, failure
  end
  place.back_by = at + wait
  return nil, wait
end

--- Admits a request of `api` at once when nobody is queued here and its window has
-- room: the ticket (for settle), as enqueue then admit would give it, without taking
-- a place. Otherwise nil, and the request takes its place in the queue (enqueue).
function Budget:take(api)
  local queue = self._queues[api]
  if queue ~= nil and queue.waiting[1] ~= nil then return nil end
  -- (a store of this process only: its account at once, as LocalStore:update finds it)
  local account = self._local and self._store[api]
  local ticket
  if account then
    ticket = admit(account, self._now(), 0)
  else
    ticket = self._store:update(api, admit, self._now(), 0)
  end
  return ticket
end

--- Gives up a place (the client closed while the request waited).
function Budget:leave(place)
  leave(queue_of(self, place.api), place)
end

--- Takes in what the answer to `ticket` said: `limits` ({limit, remaining, refresh},
-- or nil when the answer had no such headers), and for a 429, `retry_after`: every
-- request of the API then waits that long, not only the one that was refused.
function Budget:settle(api, ticket, limits, status, retry_after)
  local account = self._local and self._store[api] -- (as in take)
  if account then
    settle(account, self._now(), ticket, limits, status, retry_after)
  else
    self._store:update(api, settle, self._now(), ticket, limits, status, retry_after)
  end
end

--- Why requests of `api` are held, for the debug hook and error messages.
function Budget:describe(api)
  local at = self._now()
  return self._store:update(api, describe, at) or "its shared account cannot be read"
end

--- The number of requests of `api` waiting here.
function Budget:queued(api)
  return #queue_of(self, api).waiting
end

---------------------------------------------------------------------------------------
-- One budget per operator.

-- endpoint, operator and store scope -> what every budget of that operator in this
-- process shares: its queues, its store and how many budgets hold it. It goes once the
-- last of them is released (its client closed) or collected (weak). One such registry
-- per kind of clock: real time, and each clock of its own (see rate.for_operator).
local REAL_CLOCK = {}
local registries = setmetatable({}, { __mode = "k" })

--- rate.for_operator(endpoint, who, now, store, own_clock): the budget of the
-- operator `who` at `endpoint`, for a client whose clock is `now`. Soracom counts each
-- operator's requests, whichever credentials send them: every budget this process
-- gives for the same endpoint, operator and store scope shares one queue per API and
-- one account. `who` is the operator's ID, or while it is unknown a text that names the
-- credentials (never a secret). `store` keeps the accounts (shared.lua's, with its
-- `scope`); by default, a table of this process's. `own_clock`: `now` is not real time
-- (a client's `sleep` option may claim to wait without waiting, which moves its clock
-- ahead), so the budget is shared only with budgets given the same `now`. Once every
-- budget of the operator is released (release), the next is a new one.
function rate.for_operator(endpoint, who, now, store, own_clock)
  local domain = own_clock and now or REAL_CLOCK
  local registry = registries[domain]
  if registry == nil then
    registry = setmetatable({}, { __mode = "v" })
    registries[domain] = registry
  end
  local key = string.format("%q\n%q\n%q", endpoint, who, store and store.scope or "process")
  local common = registry[key]
  if common == nil then
    common = { store = store or setmetatable({}, LocalStore), queues = {}, holders = 0 }
    registry[key] = common
  end
  common.holders = common.holders + 1
  return setmetatable({ _now = now, _store = common.store, _queues = common.queues, _common = common,
    _registry = registry, _key = key, _local = getmetatable(common.store) == LocalStore }, Budget)
end

--- Its client is closed: the budget goes on serving the requests still in flight, but
-- holds its operator's no more; when no other client holds it, a client made later
-- starts afresh. Safe twice.
function Budget:release()
  local common = self._common
  if common == nil or self._released then return end
  self._released = true
  common.holders = common.holders - 1
  if common.holders <= 0 and self._registry[self._key] == common then self._registry[self._key] = nil end
end

-- A budget chosen when it is first used (see rate.deferred).
local Deferred = {}
Deferred.__index = Deferred

-- At its first use the deferred becomes the budget it chose, fields and methods, so
-- that every later call is the budget's own. (A method looked up before that use, and
-- called after it, finds it done.)
local function chosen(deferred)
  if deferred._choose == nil then return deferred end
  local budget, released = deferred._choose(), deferred._released
  deferred._choose, deferred._released = nil, nil
  for key, value in pairs(budget) do deferred[key] = value end
  setmetatable(deferred, Budget)
  if released then deferred:release() end
  return deferred
end

function Deferred:release()
  self._released = true
end

for _, name in ipairs { "enqueue", "admit", "take", "leave", "settle", "describe", "queued" } do
  Deferred[name] = function(self, ...)
    local budget = chosen(self)
    return budget[name](budget, ...)
  end
end

--- rate.deferred(choose): a budget that is choose()'s, called at its first use and
-- kept: a client's budget is its operator's, known once it has logged in.
function rate.deferred(choose)
  return setmetatable({ _choose = choose }, Deferred)
end

return rate
