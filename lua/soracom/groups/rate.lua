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

-- While a probe's answer is awaited, the others ask again this often (seconds).
local RECHECK = 0.05

-- A probe, or requests carried into a window, whose answers have not come this long
-- are taken for lost (their nginx request was aborted, their worker died): the
-- account goes on without them.
local LOST_AFTER = 30

-- A waiter that has not come back this long after the time it was told to is gone
-- (its coroutine was dropped): the queue goes on without it.
local WAITER_LOST_AFTER = 2

-- Limits beyond these are no limits a server means: taken for a lie.
local ABSURD_LIMIT = 1e7
local LONGEST_WINDOW = 24 * 3600

-- Waits end this much after the time computed, so that the window has surely turned.
local MARGIN = 0.01

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

-- An account's fields, all numbers or booleans so that a shared store can write them
-- as text: gen (the window generation), window_end, prev_end (the end of the window
-- before), limit, window (its length: the most seconds-before-refresh seen), longest
-- (the most seen in this window, the next one's length), used, others, seen (what
-- this window's answers showed of the others), opened_count (the count of the answer
-- that first told the limit), in_flight (admitted in this window, unanswered), carried (of the window
-- before, unanswered), carried_at, provisional (the window's end is assumed, not yet
-- told), unlimited (answers carry no limit headers),
-- paused_until, probe (a probe must go before the others), probe_at (one is out).
rate.ACCOUNT_FIELDS = { "gen", "window_end", "prev_end", "limit", "window", "longest", "used", "others", "seen",
  "opened_count", "in_flight",
  "carried", "carried_at", "provisional", "unlimited", "paused_until", "probe", "probe_at" }

---------------------------------------------------------------------------------------
-- The account.

local function max0(n) return n > 0 and n or 0 end

-- Moves the account to the window `at` falls in; requests still in flight from the
-- window just ended are counted in the new one until their answers say where they
-- landed.
local function roll(account, at)
  local ends = account.window_end
  if ends == nil or at < ends then return end
  local passed = math.floor((at - ends) / account.window) + 1
  account.prev_end = ends + (passed - 1) * account.window
  account.window_end = ends + passed * account.window
  account.gen = account.gen + passed
  account.carried = passed == 1 and account.in_flight or 0
  account.carried_at = at
  account.in_flight = 0
  account.used = account.carried
  -- The operator's other clients are assumed to go on as they went in the window just
  -- ended (what its answers showed of them), until this one's first answer tells.
  account.others, account.seen = passed == 1 and account.seen or 0, 0
  -- A window's length is what its answers showed, when they showed any: a server that
  -- shortens its window is followed.
  account.window, account.longest = math.max(1, account.longest or account.window), nil
  -- A server may start the next window only with the next request: the first answer
  -- of this one tells its end.
  account.provisional = true
end

local function drop_lost(account, at)
  if account.probe_at and at >= account.probe_at + LOST_AFTER then account.probe_at = nil end
  if (account.carried or 0) > 0 and at >= account.carried_at + LOST_AFTER then
    account.used = max0(account.used - account.carried)
    account.carried = 0
  end
end

-- What an account holds for a request with `ahead` others queued before it here:
-- "go" (with whether it is a probe), or "wait" and the seconds until it may go.
local function state(account, at, ahead)
  -- (the calls only where they may have something to do)
  if account.probe_at or account.carried then drop_lost(account, at) end
  if account.window_end then roll(account, at) end
  if account.paused_until then
    if at < account.paused_until then
      -- The head of the queue goes first, as the probe; the others after it, a
      -- window's limit at a time when the limit is known.
      local windows = account.limit and math.floor(ahead / account.limit) or 0
      return "wait", account.paused_until - at + windows * (account.window or 0) + (ahead > 0 and RECHECK or 0)
    end
    account.paused_until = nil
    account.probe = true
  end
  if account.unlimited then return "go" end
  if account.probe or account.limit == nil then
    if account.probe_at or ahead > 0 then return "wait", RECHECK end
    return "go", true
  end
  local left = account.limit - account.used - account.others
  if ahead < left then return "go" end
  -- The ones ahead take what is left, then `limit` a window.
  local windows = math.floor((ahead - max0(left)) / account.limit)
  return "wait", account.window_end + windows * account.window - at + MARGIN
end

-- Tickets are only read: the ones of a generation that are no probe are one table.
local plain_tickets = setmetatable({}, { __mode = "v" })

local function admit(account, at, ahead)
  local verdict, detail = state(account, at, ahead)
  if verdict == "wait" then return nil, detail end
  local gen = account.gen or 0
  account.gen = gen
  if detail then account.probe_at = at end
  if not account.unlimited and account.limit then
    account.used = (account.used or 0) + 1
  end
  account.in_flight = (account.in_flight or 0) + 1
  if detail then return { gen = gen, probe = true } end
  local ticket = plain_tickets[gen]
  if ticket == nil then
    ticket = { gen = gen }
    plain_tickets[gen] = ticket
  end
  return ticket
end

local function projected(account, at, ahead)
  local verdict, seconds = state(account, at, ahead)
  return verdict == "wait" and seconds or 0
end

-- The first answer with limits: the window it tells, what the server counted in it
-- and the requests still in flight, which may land in it.
local function open(account, at, ends, limits)
  account.gen = (account.gen or 0) + 1
  account.window_end, account.prev_end, account.provisional = ends, nil, nil
  account.window = math.max(1, math.ceil(limits.refresh))
  -- Requests sent before a limit was known are answered as the window before's: their
  -- answers then free what they hold here.
  account.carried, account.carried_at = account.in_flight or 0, at
  account.in_flight = 0
  account.opened_count = limits.limit - limits.remaining
  account.used = account.opened_count + account.carried
  account.others, account.seen = 0, 0
end

local function lie(limits)
  return limits.limit <= 0 or limits.limit > ABSURD_LIMIT or limits.remaining < 0 or limits.refresh < 0
    or limits.refresh > LONGEST_WINDOW
end

-- What an answer says of its window; `ticket` is the request it answers.
local function record(account, at, ticket, limits)
  local ends = at + limits.refresh
  if lie(limits) then
    -- Nothing to count on until the refresh time: then one probe.
    account.paused_until = math.max(account.paused_until or 0,
      at + math.min(LONGEST_WINDOW, math.max(1, limits.refresh)))
    account.probe, account.unlimited = true, nil
    return
  end
  account.unlimited = nil
  account.limit = limits.limit
  local opened = account.window_end == nil
  if opened then open(account, at, ends, limits) end -- counted there, with this request
  local counted = limits.limit - limits.remaining
  if ticket.gen ~= account.gen and not opened then
    -- An answer to a request of an earlier window: when it ends with that window, it
    -- landed there and frees its place here; otherwise it stays counted. It says
    -- nothing sure of this window's end or of the others' use.
    if ticket.gen == account.gen - 1 then
      if account.prev_end then
        if ends < account.prev_end + 1 then account.used = max0(account.used - 1) end
      elseif counted <= account.opened_count then
        -- Sent before the limit was known and counted before the answer that told it:
        -- it was in that answer's count and in the requests carried, twice.
        account.used = max0(account.used - 1)
      end
    end
    return
  end
  -- (max by comparison, as math.max: the first of equals)
  local refresh = math.ceil(limits.refresh)
  local longest = account.longest or 0
  account.longest = refresh > longest and refresh or longest
  if refresh > account.window then account.window = refresh end
  if account.provisional then
    account.window_end, account.provisional = ends, nil
  elseif ends >= account.window_end + 1 or ends < account.window_end - 1 then
    -- The server's window ends elsewhere than assumed (a window length learned late,
    -- a clock that drifted): its word wins.
    account.window_end = ends
  elseif ends < account.window_end then
    -- Ends are rounded up: the earliest is the closest to the truth.
    account.window_end = ends
  end
  -- Once this window's answers tell the others' use, it replaces the window before's.
  local seen, shown = account.seen or 0, counted - account.used
  if shown > seen then seen = shown end
  account.seen, account.others = seen, seen
end

local function settle(account, at, ticket, limits, status, retry_after)
  if account.window_end then roll(account, at) end
  if ticket.gen == account.gen then
    local in_flight = (account.in_flight or 0) - 1 -- (max0, without a call: every answer)
    account.in_flight = in_flight > 0 and in_flight or 0
  elseif ticket.gen == (account.gen or 0) - 1 then
    account.carried = max0((account.carried or 0) - 1)
  end
  if ticket.probe then account.probe_at = nil end
  local has_limits = limits ~= nil and limits.limit and limits.remaining and limits.refresh
  if has_limits then
    record(account, at, ticket, limits)
  elseif status and ((status >= 200 and status < 300) or (account.limit == nil and status == 404)) then
    -- A success without the headers: not limited (any more). While no limit is known,
    -- the API's own 404 without them says the same; a refused login (401), a gateway's
    -- 5xx say nothing of the limit. The account forgets its window. (Each field is
    -- cleared only when set: storing nil where there is no key costs LuaJIT a trace
    -- exit, 7,800 instructions, and Lua 5.1 a dead key in the table, on every answer of
    -- an API without limits. Here, not in a function: a call on every such answer.)
    account.unlimited = true
    if account.limit ~= nil then account.limit = nil end
    if account.window_end ~= nil then account.window_end = nil end
    if account.prev_end ~= nil then account.prev_end = nil end
    if account.window ~= nil then account.window = nil end
    if account.used ~= nil then account.used = nil end
    if account.others ~= nil then account.others = nil end
    if account.carried ~= nil then account.carried = nil end
    if account.probe ~= nil then account.probe = nil end
    if account.provisional ~= nil then account.provisional = nil end
    if account.seen ~= nil then account.seen = nil end
    if account.longest ~= nil then account.longest = nil end
  end
  if status == 429 then
    -- Everyone waits, then one probe finds out what is left.
    account.unlimited = nil
    account.paused_until = math.max(account.paused_until or 0, at + (retry_after or 1))
    account.probe = true
  elseif ticket.probe and (has_limits or (status and status < 500)) and not account.paused_until then
    account.probe = nil
  end
end

local function describe(account, at)
  if account.paused_until and at < account.paused_until then return "paused after a 429 or a limit of 0" end
  if account.probe or account.limit == nil then return "awaiting the answer of a probe" end
  return string.format("its window (%d requests per %g s) is used up", account.limit, account.window)
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
function Budget:enqueue(api, cap)
  local queue, at = queue_of(self, api), self._now()
  local ahead = ahead_of(queue, nil, at)
  local wait = self._store:update(api, projected, at, ahead)
  if cap and wait - MARGIN > cap then return nil, wait, ahead, self:describe(api) end
  queue.next = queue.next + 1
  local place = { api = api, number = queue.next }
  table.insert(queue.waiting, place)
  return place, wait
end

--- Admits the request at `place` when its turn has come and its window has room:
-- returns the ticket (for settle), or nil and the seconds to wait before asking again.
function Budget:admit(place)
  local queue, at = queue_of(self, place.api), self._now()
  local ahead = ahead_of(queue, place, at)
  local ticket, wait = self._store:update(place.api, admit, at, ahead)
  if ticket then
    leave(queue, place)
    return ticket
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
  return self._store:update(api, describe, at)
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
