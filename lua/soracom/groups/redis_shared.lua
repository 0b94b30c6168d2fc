--- What every process that uses one Redis shares (the redis option): for one identity
-- and endpoint, the token and a lock under which one process logs in while the others
-- wait; for one operator, the rate-limit accounts. The same methods as shared.lua's
-- state (the workers of one nginx), so that auth.lua and rate.lua serve both.
--
-- Keys (<prefix> is "soracom-groups:" unless given; <id> 32 hex digits of a SHA-256 of
-- the identity's text, shared.identity, or of the operator's: never of a secret):
--   <prefix><id>:token            the token's entry (shared.encode_token)
--   <prefix><id>:generation       the counter of token generations
--   <prefix><id>:lock:login       the login lock: its holder's mark
--   <prefix><id>:renew:<gen>      a later renewal time after a renewal failed
--   <prefix><id>:refused:<gen>    the token of <gen> was refused (401)
--   <prefix><id>:failed           the last failed login, for those that waited for it
--   <prefix><op>:rate:<api>       the account of an API (rate_account.encode)
-- Every key expires (PX): a token with its lifetime, a lock after its lease, an account
-- a minute after its window ends.
--
-- The account changes run inside Redis, as one script made of rate_account.lua's own
-- source: atomic, whatever the number of processes. Every time in Redis (an account's
-- window, a token's lifetime, a failed login's end) is on Redis's clock (TIME): each
-- process's clock is its own (core.now is monotonic, the seconds since its host
-- started), so each measures how far its clock is from Redis's and converts both ways.
-- The hosts need agree on no clock.
--
-- When Redis fails (down, slow past its timeout, refusing writes when full), the
-- process goes on alone: its own accounts and its own logins (on_error "local"), or
-- its requests fail (on_error "fail"). It says so once through the debug hook, asks
-- Redis again after a pause that grows from 1 to 8 s, and says when it is back.

local account_changes = require "soracom.groups.rate_account"
local core = require "soracom.groups.core"
local shared = require "soracom.groups.shared"

local redis_shared = {}

local State = {}
State.__index = State

-- A lock in Redis frees itself after this lease at most (seconds), however long the
-- login it guards may take: a holder whose host died holds up the others no longer.
-- A login slower than that may be joined by another (two tokens, both good).
local LOCK_LEASE = 5
local LOCK_STEP_FIRST, LOCK_STEP_MAX = 0.005, 0.1

-- After a failure, Redis is asked again after this pause (seconds), doubled each
-- failure up to the most.
local RETRY_FIRST, RETRY_MOST = 1, 8

-- The offset from this process's clock to Redis's is measured again this often
-- (seconds), and after each failure (Redis may be another server when it answers).
local CLOCK_CHECK_EVERY = 60
-- A measure is off by at most half its round trip. One whose round trip is longer than
-- this (a busy host, a slow Redis) stands only until a shorter one replaces it: TIME is
-- asked again this often (seconds) meanwhile.
local CLOCK_GOOD_ROUND_TRIP, CLOCK_CHECK_BUSY = 0.01, 1

local function milliseconds(seconds)
  return string.format("%d", math.max(1, math.ceil(seconds * 1000)))
end

---------------------------------------------------------------------------------------
-- Scripts.

-- The source of rate_account.lua, as loaded: the file this process runs.
local function account_source()
  local source = debug.getinfo(account_changes.encode, "S").source
  local path = source:match("^@(.+)$")
  local file = path and io.open(path, "rb")
  if file == nil then error("soracom.groups: cannot read the source of rate_account.lua (" .. source .. ")") end
  local text = file:read("*a")
  file:close()
  return text
end

local ACCOUNT_SCRIPT -- made at first use
local function account_script()
  if ACCOUNT_SCRIPT == nil then
    ACCOUNT_SCRIPT = "local account_changes = (function()\n" .. account_source() .. "\nend)()\n" .. [[
local key, name, at = KEYS[1], ARGV[1], tonumber(ARGV[2])
local text = redis.pcall("GET", key) -- (an error table when the key is of another type)
local account = account_changes.decode(type(text) == "string" and text or nil)
local changed, results = pcall(account_changes.wire_call, name, account, ARGV, 2)
if not changed then
  -- An account no change can read (written by hand, or by another version): afresh.
  account = {}
  results = account_changes.wire_call(name, account, ARGV, 2)
end
redis.call("SET", key, account_changes.encode(account), "PX", account_changes.keep_ms(account, at))
return results
]]
  end
  return ACCOUNT_SCRIPT
end

-- KEYS: lock. ARGV: mark. Deletes the lock only while the mark holds it.
local UNLOCK_SCRIPT = [[
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
]]

-- KEYS: token, prefix of refused, prefix of renew. Returns {entry text or "",
-- "refused" or "", deferred renewal time or ""}.
local TOKEN_SCRIPT = [[
local text = redis.pcall("GET", KEYS[1])
if type(text) ~= "string" then
  -- (none, or a key of another type, which a login then replaces: SET overwrites any type)
  return { "", "", "" }
end
local generation = string.match(text, "^([^\n]*)\n")
if generation == nil then return { "", "", "" } end
if redis.call("EXISTS", KEYS[2] .. generation) == 1 then return { "", "refused", "" } end
local renew = redis.pcall("GET", KEYS[3] .. generation)
return { text, "", type(renew) == "string" and renew or "" }
]]

-- KEYS: generation, token. ARGV: the least generation (the clock's ms), the entry's
-- text with "%GENERATION%" for its first line's number, its ttl (ms), the counter's.
local STORE_TOKEN_SCRIPT = [[
local generation = redis.pcall("INCR", KEYS[1])
if type(generation) ~= "number" then -- (not a counter: written by hand)
  redis.call("DEL", KEYS[1])
  generation = redis.call("INCR", KEYS[1])
end
local least = tonumber(ARGV[1])
if generation < least then
  generation = least
  redis.call("SET", KEYS[1], ARGV[1])
end
redis.call("PEXPIRE", KEYS[1], ARGV[4])
local text = string.gsub(ARGV[2], "^%%GENERATION%%", string.format("%d", generation))
redis.call("SET", KEYS[2], text, "PX", ARGV[3])
return generation
]]

---------------------------------------------------------------------------------------
-- Calls, and what happens when Redis fails.

-- The health of a link, which every state of it shares: down_until, the next pause,
-- whether the failure was told, and the failures so far (an offset to Redis's clock
-- measured before the last one is measured again).
local health_of = setmetatable({}, { __mode = "k" })

local function health(link)
  local h = health_of[link]
  if h == nil then
    h = { pause = RETRY_FIRST, failures = 0 }
    health_of[link] = h
  end
  return h
end

-- A Redis failure, as an error of the client's (kind "redis").
local function failure_error(message)
  return { kind = "redis", message = message }
end

-- Redis failed (err says how): nobody asks it again for a pause; said once.
-- Returns nil and why.
local function fail(state, err)
  local h = health(state._link)
  local why = "redis: " .. tostring(err):gsub("^redis: ", "")
  h.down_until, h.why, h.failures = core.now() + h.pause, why, h.failures + 1
  h.pause = math.min(h.pause * 2, RETRY_MOST)
  if not h.told then
    h.told = true
    state._say(why .. (state._on_error == "fail" and "; requests fail until it answers"
      or "; this process uses its own budget and logins until it answers"))
  end
  return nil, why
end

-- One command through the state's link, unless Redis failed a moment ago. Returns
-- the reply, or nil and why. An error reply (full, read-only, wrong type) is a
-- failure too, except NOSCRIPT, which comes back as false, message.
local function call(state, ...)
  local h, at = health(state._link), core.now()
  if h.down_until and at < h.down_until then return nil, h.why end
  local reply, err, where = state._link:call(...)
  if reply == false and tostring(err):match("^NOSCRIPT") then return false, err end
  -- A key of another type (written by hand): that key's read fails, not Redis.
  if reply == false and tostring(err):match("^WRONGTYPE") then return nil, "redis: " .. err end
  if reply == nil and where == "phase" then
    -- (this call only: the link stays up for the calls of other phases)
    if not state._told_phase then
      state._told_phase = true
      state._say(err .. "; calls from there go on alone")
    end
    return nil, err
  end
  if reply == nil or reply == false then return fail(state, err) end
  if h.told then
    h.told = false
    state._say("redis answers again: the budget and the token are shared again")
  end
  h.down_until, h.pause = nil, RETRY_FIRST
  return reply
end

-- Script SHA1s, as SCRIPT LOAD gave them, per link (Redis keeps them until it
-- restarts or is flushed: then NOSCRIPT, and the script is sent whole).
local loaded_of = setmetatable({}, { __mode = "k" })

local function evaluate(state, script, keys, args)
  local loaded = loaded_of[state._link]
  if loaded == nil then
    loaded = {}
    loaded_of[state._link] = loaded
  end
  local argv = { #keys }
  for _, key in ipairs(keys) do argv[#argv + 1] = key end
  for _, arg in ipairs(args) do argv[#argv + 1] = arg end
  local unpack = table.unpack or unpack
  local sha = loaded[script]
  if sha then
    local reply, err = call(state, "EVALSHA", sha, unpack(argv))
    if reply ~= false then return reply, err end
    loaded[script] = nil
  end
  local reply, err = call(state, "EVAL", script, unpack(argv))
  if reply == nil or reply == false then return nil, err end
  -- (loaded by EVAL; its SHA1 comes once, from SCRIPT LOAD, for the next call)
  local sha_reply = call(state, "SCRIPT", "LOAD", script)
  if type(sha_reply) == "string" then loaded[script] = sha_reply end
  return reply
end

-- How far Redis's clock is ahead of the state's (seconds; Redis's time = the state's
-- + offset), measured by TIME at the middle of its round trip (the shortest round trip
-- seen until the measure is due again); or nil and why when Redis fails.
local function clock_offset(state)
  local h, at = health(state._link), state._now()
  local current = state._offset ~= nil and state._offset_failures == h.failures
  if current and at < state._offset_until then
    return state._offset
  end
  local reply, why = call(state, "TIME")
  if reply == nil then return nil, why end
  local after = state._now()
  local seconds = type(reply) == "table" and tonumber(reply[1])
  local micro = type(reply) == "table" and tonumber(reply[2])
  if not (seconds and micro) then return fail(state, "TIME gave no time") end
  local round_trip = after - at
  if not current or at >= state._offset_due or round_trip < state._offset_round_trip then
    state._offset, state._offset_round_trip = seconds + micro / 1e6 - (at + after) / 2, round_trip
    state._offset_due, state._offset_failures = after + CLOCK_CHECK_EVERY, h.failures
  end
  state._offset_until = state._offset_round_trip <= CLOCK_GOOD_ROUND_TRIP and state._offset_due
    or math.min(state._offset_due, after + CLOCK_CHECK_BUSY)
  return state._offset
end

---------------------------------------------------------------------------------------
-- The state of one identity.

--- redis_shared.open(link, endpoint, credentials, options): the state every process
-- using this Redis shares for these credentials' identity. options: now, sleep (waits
-- without blocking others), login_hold (the longest a login may take), operator_id,
-- prefix, on_error ("local" or "fail"), say (tells one line through the debug hook).
function redis_shared.open(link, endpoint, credentials, options)
  local prefix = options.prefix or "soracom-groups:"
  return setmetatable({
    _link = link,
    _key_prefix = prefix,
    _prefix = shared.prefix_of(shared.identity(endpoint, credentials, options.operator_id), prefix),
    _now = options.now,
    _sleep = options.sleep,
    _login_hold = options.login_hold,
    _on_error = options.on_error or "local",
    _say = options.say,
    _owner = core.sha256(tostring({}) .. tostring(core.now()) .. tostring(math.random())):sub(1, 16),
    _locks = 0,
  }, State)
end

function State:__tostring()
  return "soracom.groups redis state (" .. self._prefix .. "...)"
end

-- What a method answers when Redis failed: in "fail" mode, an error; else nothing.
local function failed(state, why)
  if state._on_error == "fail" then return failure_error(why) end
  return nil
end

--- Takes the lock `name` (waiting up to `wait` seconds), held LOCK_LEASE seconds at
-- most. Returns its mark; nil, "timeout"; when Redis fails, a mark of this process
-- alone ("local" mode: it goes on without the lock) or nil and an error ("fail").
function State:lock(name, wait, hold)
  local key = self._prefix .. "lock:" .. name
  self._locks = self._locks + 1
  local mark = self._owner .. ":" .. self._locks
  local deadline, step = self._now() + wait, LOCK_STEP_FIRST
  while true do
    local reply, why = call(self, "SET", key, mark, "NX", "PX", milliseconds(math.min(hold, LOCK_LEASE)))
    if reply == "OK" then return mark end
    if reply == nil then
      local err = failed(self, why)
      if err then return nil, err end
      return "local:" .. mark
    end
    local left = deadline - self._now()
    if left <= 0 then return nil, "timeout" end
    self._sleep(math.min(step, left))
    step = math.min(step * 2, LOCK_STEP_MAX)
  end
end

--- Frees the lock `name` if `mark` still holds it.
function State:unlock(name, mark)
  if mark == nil or mark:match("^local:") then return end
  evaluate(self, UNLOCK_SCRIPT, { self._prefix .. "lock:" .. name }, { mark })
end

function State:login_hold()
  return self._login_hold
end

-- The last token this process stored or read, for when Redis fails or forgot it.
local function usable(state, entry)
  return entry ~= nil and state._now() < entry.valid_until and not entry.refused
end

--- The current token (see shared.lua's Shared:token). When Redis fails, or restarted
-- empty, the one this process last had, while it lives.
function State:token()
  local offset = clock_offset(self)
  local reply = offset and evaluate(self, TOKEN_SCRIPT, { self._prefix .. "token", self._prefix .. "refused:",
    self._prefix .. "renew:" }, {})
  local last = self._last
  if type(reply) ~= "table" then
    if self._on_error == "fail" then return nil end
    return usable(self, last) and last or nil
  end
  if reply[2] == "refused" then
    if last then last.refused = true end
    return nil
  end
  local entry = shared.decode_token(reply[1])
  if entry == nil then return usable(self, last) and last or nil end
  entry.valid_until = entry.valid_until - offset
  if self._now() >= entry.valid_until then return nil end
  entry.renew_at = (tonumber(reply[3]) or entry.renew_at) - offset
  self._last = entry
  return entry
end

--- Stores a token a login gave: its generation. When Redis fails, the token is this
-- process's alone, under a generation of its own (negative: never one of Redis's).
function State:store_token(api_key, token, valid_until, renew_at, operator_id)
  local at, offset = self._now(), clock_offset(self)
  local generation
  if offset then
    local text = shared.encode_token(0, valid_until + offset, renew_at + offset, operator_id, api_key, token)
      :gsub("^0\n", "%%GENERATION%%\n")
    -- (the least generation: Redis's clock in ms, above any given before a restart)
    generation = evaluate(self, STORE_TOKEN_SCRIPT, { self._prefix .. "generation", self._prefix .. "token" },
      { string.format("%d", math.floor((at + offset) * 1000)), text, milliseconds(valid_until - at),
        milliseconds(shared.REFUSED_KEPT) })
  end
  if type(generation) ~= "number" then
    self._locks = self._locks + 1
    generation = -self._locks
  end
  self._last = { generation = generation, valid_until = valid_until, renew_at = renew_at,
    operator_id = operator_id, api_key = api_key, token = token }
  return generation
end

function State:defer_renewal(generation, renew_at, valid_until)
  if self._last and self._last.generation == generation then self._last.renew_at = renew_at end
  if generation < 0 then return end
  local offset = clock_offset(self)
  if offset == nil then return end
  call(self, "SET", self._prefix .. "renew:" .. generation, string.format("%.17g", renew_at + offset),
    "PX", milliseconds(valid_until - self._now()))
end

function State:refuse(generation)
  if self._last and self._last.generation == generation then self._last.refused = true end
  if generation < 0 then return end
  call(self, "SET", self._prefix .. "refused:" .. generation, "1", "PX", milliseconds(shared.REFUSED_KEPT))
end

function State:store_failure(err, quiet_for)
  local offset = clock_offset(self)
  if offset == nil then return end
  call(self, "SET", self._prefix .. "failed", shared.encode_failure(err, self._now() + offset, quiet_for),
    "PX", milliseconds(2 * self._login_hold + 1))
end

function State:failure_since(since)
  local offset = clock_offset(self)
  if offset == nil then return nil end
  local text = call(self, "GET", self._prefix .. "failed")
  return shared.decode_failure(text, since + offset, self._now() + offset)
end

---------------------------------------------------------------------------------------
-- The rate-limit accounts.

local AccountStore = {}
AccountStore.__index = AccountStore

--- The store of the budget of `who` (see shared.lua's Shared:accounts): its accounts
-- in Redis, and this process's own for when Redis fails. One store per link (each
-- client has its own: its database, login and on_error are its own).
function State:accounts(who)
  return setmetatable({ scope = "redis link " .. self._link.id, _prefix = shared.prefix_of(who, self._key_prefix),
    _state = self, _own = {}, _unsettled = {} }, AccountStore)
end

-- Answers heard while Redis failed, for requests Redis admitted, kept to tell it once
-- it answers again (else their places stay held in the shared account until taken
-- for lost, LOST_AFTER). Beyond this many, the oldest are left to that.
local UNSETTLED_MOST = 10000

local function own_account(store, api)
  local account = store._own[api]
  if account == nil then
    account = {}
    store._own[api] = account
  end
  return account
end

-- Makes change `name` on the account of `api` in Redis (at on this process's clock):
-- the script's reply, or nil and why.
local function remote(store, api, name, at, ...)
  local state = store._state
  local offset, why = clock_offset(state)
  if offset == nil then return nil, why end
  local args = account_changes.wire_args(name, at + offset, ...)
  table.insert(args, 1, name)
  local reply
  reply, why = evaluate(state, account_script(), { store._prefix .. "rate:" .. api }, args)
  if type(reply) ~= "table" then return nil, why end
  return reply
end

-- Tells Redis the answers it missed, oldest first, while it answers.
local function settle_missed(store)
  local unsettled = store._unsettled
  while unsettled[1] do
    local missed = unsettled[1]
    if remote(store, missed.api, "settle", missed.at, missed.ticket, missed.limits, missed.status,
      missed.retry_after) == nil then
      return
    end
    table.remove(unsettled, 1)
  end
end

--- Makes change(account, at, ...) on the account of `api`, in Redis (at on Redis's
-- clock); returns what it returned. When Redis fails: on this process's own account
-- ("local"), or nil, nil and an error ("fail"). An answer goes where its request was
-- admitted: Redis's tickets (shared) to Redis, later if it fails meanwhile; the own
-- account's to it.
function AccountStore:update(api, change, at, ...)
  local name = account_changes.name_of[change]
  if name == "settle" then
    local ticket, limits, status, retry_after = ...
    if not ticket.shared then return change(own_account(self, api), at, ...) end
    if self._unsettled[1] then settle_missed(self) end
    if self._unsettled[1] or remote(self, api, name, at, ...) == nil then
      local unsettled = self._unsettled
      if #unsettled >= UNSETTLED_MOST then table.remove(unsettled, 1) end
      unsettled[#unsettled + 1] = { api = api, at = at, ticket = ticket, limits = limits, status = status,
        retry_after = retry_after }
    end
    return
  end
  if self._unsettled[1] then settle_missed(self) end
  local reply, why = remote(self, api, name, at, ...)
  if reply then return account_changes.wire_results(name, reply) end
  local err = failed(self._state, why)
  if err then return nil, nil, err end
  return change(own_account(self, api), at, ...)
end

return redis_shared
