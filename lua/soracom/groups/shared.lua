--- What the workers of one nginx instance share through a lua_shared_dict (the
-- shared_dict option): for one identity and endpoint, the token and a lock under which
-- one worker logs in while the others wait, and the rate-limit accounts.
--
-- Every key starts with a digest of the endpoint and of who logs in: the kind of
-- credentials and its non-secret names (the auth key's ID, the root user's email, the
-- operator and SAM user name; for an issued API key and token, only the operator ID
-- given with them). Never of a secret: a key derived from a password or an auth key,
-- even through an HMAC whose salt sits in the same dict, would let any Lua code of the
-- instance test guesses of it offline. So two clients of one identity in one instance
-- share a token, whatever password each was given (see the README). The token's entry
-- does hold the API key and token: any Lua code of the instance can read the dict (see
-- the README), which is why share_token = false keeps them per worker.
--
-- A login writes under the lock "login", an account changes under a lock of its own;
-- a lock's expiry frees it if its worker dies. A token's entry is written once, by the
-- login that got it, never rewritten from what was read of it: what happens to the
-- token later (a refusal, a deferred renewal) is an entry of its generation.

-- luacheck: read globals ngx

local core = require "soracom.groups.core"
local rate = require "soracom.groups.rate"
local account_changes = require "soracom.groups.rate_account"

local shared = {}

local Shared = {}
Shared.__index = Shared

-- Shared state -> its dict, out of the object's fields: the dict holds the token.
local dict_of = setmetatable({}, { __mode = "k" })

-- Waiting for a lock: the first pause, and the longest (seconds).
local LOCK_STEP_FIRST, LOCK_STEP_MAX = 0.002, 0.05

-- A rate-limit account is changed under its own lock, held for no more than a few
-- shared-dict calls: this long is far more than enough, and frees it if the worker
-- dies in between.
local ACCOUNT_LOCK_HOLD = 1
-- An account unused this long is forgotten.
local ACCOUNT_KEPT = 3600


-- The names of each kind of credentials that say who logs in (none is a secret).
local WHO = {
  auth_key = { "authKeyId" },
  root = { "email" },
  sam = { "operatorId", "userName" },
}

--- shared.identity(endpoint, credentials, operator_id): the text that tells apart who
-- logs in, and where: the endpoint, the kind of credentials and its names, never a
-- secret. For an issued API key and token (which cannot log in), the operator ID
-- given with them, or else "unknown operator". A switched user's: the user switched
-- to, and the source's kind and names.
function shared.identity(endpoint, credentials, operator_id)
  local parts = { endpoint, credentials.kind }
  local names = WHO[credentials.kind]
  if credentials.switch then -- the user switched to, and who switches (the source's login)
    parts[#parts + 1] = "operatorId=" .. credentials.switch.operatorId
    parts[#parts + 1] = "userName=" .. credentials.switch.userName
    parts[#parts + 1] = credentials.source_kind
    names = WHO[credentials.source_kind]
  end
  if names then
    for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. tostring(credentials.login[name]) end
  elseif operator_id then
    parts[#parts + 1] = "operatorId=" .. operator_id
  else
    parts[#parts + 1] = "unknown operator"
  end
  -- %q: a name holding a line break cannot pass for two parts
  for i, part in ipairs(parts) do parts[i] = string.format("%q", part) end
  return table.concat(parts, "\n")
end

-- The prefix of the keys of an identity's entries: a digest of its text, for a short
-- key of fixed length (128 bits of SHA-256).
local function prefix_of(text, prefix)
  return (prefix or "soracom-groups:") .. core.sha256(text):sub(1, 32) .. ":"
end
shared.prefix_of = prefix_of

-- How long a 401 marks a token's generation refused (seconds): as long as any token lives.
shared.REFUSED_KEPT = 172800

--- shared.open(name, endpoint, credentials, options): the shared state of these
-- credentials' identity in the lua_shared_dict `name`. options: now (the clock),
-- sleep (waits without blocking the worker), login_hold (the longest a login may
-- take), operator_id (given with an issued API key and token). Raises, blaming level,
-- outside nginx or when no such dict is declared.
function shared.open(name, endpoint, credentials, options, level)
  local ngx_table = rawget(_G, "ngx")
  if type(ngx_table) ~= "table" or type(ngx_table.shared) ~= "table" or ngx_table.worker == nil then
    error("soracom.groups.new: shared_dict works only inside nginx (ngx_lua or OpenResty), where "
      .. "the workers share a lua_shared_dict; outside it, leave it out", level + 1)
  end
  local dict = ngx_table.shared[name]
  if dict == nil then
    error("soracom.groups.new: shared_dict " .. string.format("%q", name) .. " is not declared: add "
      .. "`lua_shared_dict " .. name .. " 1m;` to the http block of nginx.conf", level + 1)
  end
  local state = setmetatable({
    _prefix = prefix_of(shared.identity(endpoint, credentials, options.operator_id)),
    _dict_name = name,
    _now = options.now,
    _sleep = options.sleep,
    _login_hold = options.login_hold,
    _owner = tostring(ngx.worker.pid()) .. ":" .. tostring({}):match("0x%x+$"),
    _locks = 0,
  }, Shared)
  dict_of[state] = dict
  return state
end

function Shared:__tostring()
  return "soracom.groups shared state (" .. self._prefix .. "...)"
end

-- A lock this close to its expiry is left to expire rather than freed (seconds):
-- between reading that it is still ours and deleting it, it could expire and be taken
-- by another worker, whose lock the delete would remove.
local UNLOCK_MARGIN = 0.1

-- Whether a process lives (kill(pid, 0)); nil in a core built without it, where a dead
-- holder's lock is left to expire.
local process_alive = core.process_alive

-- A lock's mark: "<pid>:<this state's address>:<count>@<expiry>", the expiry on the
-- dict's clock (ngx.now, to the millisecond).
local function expiry_of(mark)
  return tonumber(mark:match("@([%d.]+)$"))
end

-- The lock at `key` is held by `mark`: when the worker that took it is gone (killed,
-- crashed), frees it at once rather than after its hold, and returns true. Several
-- waiters may see the dead mark at once: only the one that takes the mark's own reap
-- key deletes it, and only while the lock still holds that mark and is not about to
-- expire (then it could be another's by the time of the delete).
local function reap(dict, key, mark)
  local pid = tonumber(mark:match("^(%d+):"))
  if process_alive == nil or pid == nil or pid == ngx.worker.pid() or process_alive(pid) then return false end
  ngx.update_time()
  local left = (expiry_of(mark) or 0) - ngx.now()
  if left <= UNLOCK_MARGIN then return false end
  if not dict:add(key .. ":reap:" .. mark, true, left) then return false end
  if dict:get(key) ~= mark then return false end
  dict:delete(key)
  return true
end

-- Takes the lock at `key` for `state` (see Shared:lock).
local function lock(state, key, wait, hold)
  local dict = dict_of[state]
  state._locks = state._locks + 1
  local deadline, step = state._now() + wait, LOCK_STEP_FIRST
  while true do
    local mark = string.format("%s:%d@%.3f", state._owner, state._locks, ngx.now() + hold)
    local ok, err = dict:add(key, mark, hold)
    if ok then return mark end
    if err ~= "exists" then return nil, err end
    local holder = dict:get(key)
    if not (type(holder) == "string" and reap(dict, key, holder)) then
      local left = deadline - state._now()
      if left <= 0 then return nil, "timeout" end
      state._sleep(math.min(step, left))
      step = math.min(step * 2, LOCK_STEP_MAX)
    end
  end
end

-- Frees the lock at `key` (see Shared:unlock).
local function unlock(state, key, mark)
  if mark == nil then return end
  ngx.update_time()
  if ngx.now() >= expiry_of(mark) - UNLOCK_MARGIN then return end
  local dict = dict_of[state]
  if dict:get(key) == mark then dict:delete(key) end
end

--- lock(name, wait, hold): takes the lock `name`, waiting up to `wait` seconds; it
-- frees itself after `hold`, or as soon as a waiter finds its worker gone. Returns the
-- holder's mark for unlock, or nil, "timeout" (or the dict's error, such as "no
-- memory"). The mark starts with the holder's pid, and ends with the time the lock
-- expires, on the dict's clock (ngx.now, to the millisecond).
function Shared:lock(name, wait, hold)
  local mark, why = lock(self, self._prefix .. "lock:" .. name, wait, hold)
  return mark, why
end

--- Frees the lock `name` if `mark` still holds it (not when it expired, or was
-- evicted, and another took it since), unless it is about to expire anyway.
function Shared:unlock(name, mark)
  unlock(self, self._prefix .. "lock:" .. name, mark)
end

--- The longest a login may take, so the longest anyone waits for one.
function Shared:login_hold()
  return self._login_hold
end

-- How long an entry about a token is kept: as long as the token lives.
local function token_ttl(state, valid_until)
  return math.max(0.001, valid_until - state._now())
end

-- The token entry: generation, valid_until, renew_at, operator_id, api_key, token,
-- one per line (none of them holds a control character).
local TOKEN_FIELDS = 6

--- The text of a token's entry (for a store of text: the dict, Redis).
function shared.encode_token(generation, valid_until, renew_at, operator_id, api_key, token)
  return table.concat({ string.format("%d", generation), string.format("%.17g", valid_until),
    string.format("%.17g", renew_at), operator_id or "", api_key, token }, "\n")
end

--- The entry {generation, valid_until, renew_at, operator_id, api_key, token} of a
-- token's text, or nil when it is none.
function shared.decode_token(text)
  if type(text) ~= "string" then return nil end
  local fields = {}
  for field in (text .. "\n"):gmatch("([^\n]*)\n") do fields[#fields + 1] = field end
  if #fields ~= TOKEN_FIELDS then return nil end
  local entry = {
    generation = tonumber(fields[1]), valid_until = tonumber(fields[2]), renew_at = tonumber(fields[3]),
    operator_id = fields[4] ~= "" and fields[4] or nil, api_key = fields[5], token = fields[6],
  }
  if not (entry.generation and entry.valid_until and entry.renew_at) then return nil end
  return entry
end

--- The token a worker logged in with: {generation, valid_until, renew_at,
-- operator_id, api_key, token}, or nil when there is none, it has expired or it was
-- refused. Its renewal time is a later one when a renewal of it has failed.
function Shared:token()
  local dict = dict_of[self]
  local entry = shared.decode_token(dict:get(self._prefix .. "token"))
  if entry == nil or self._now() >= entry.valid_until or dict:get(self._prefix .. "refused:" .. entry.generation) then
    return nil
  end
  local deferred = dict:get(self._prefix .. "renew:" .. entry.generation)
  if type(deferred) == "number" then entry.renew_at = deferred end
  return entry
end

--- Stores a token a login gave (with the lock "login" held): returns its generation,
-- or nil, why when the dict cannot hold it (then the token stays the worker's own).
-- Generations count from the wall clock's milliseconds, so that when the dict evicts
-- the counter, the next one is still above every generation given before. The entry
-- is written once: a later renewal time is an entry of its own (defer_renewal), which
-- cannot overwrite a newer token.
function Shared:store_token(api_key, token, valid_until, renew_at, operator_id)
  local dict = dict_of[self]
  local generation, why = dict:incr(self._prefix .. "generation", 1, math.floor(ngx.now() * 1000))
  if generation == nil then return nil, why end
  local stored, failed = dict:set(self._prefix .. "token",
    shared.encode_token(generation, valid_until, renew_at, operator_id, api_key, token), token_ttl(self, valid_until))
  if not stored then return nil, failed end
  return generation
end

--- A renewal of the token of `generation` failed: every worker renews it at `renew_at`.
function Shared:defer_renewal(generation, renew_at, valid_until)
  dict_of[self]:set(self._prefix .. "renew:" .. generation, renew_at, token_ttl(self, valid_until))
end

--- The token of `generation` was refused (401): no worker uses it any more.
function Shared:refuse(generation)
  dict_of[self]:set(self._prefix .. "refused:" .. generation, true, shared.REFUSED_KEPT)
end

-- A failed login's entry: ended_at, then the error fields the retry policy and the
-- caller read, then the message (which may hold newlines). Kept a little longer than
-- anyone waits for a login.
local FAILURE_FIELDS = { "kind", "status", "code", "retry_after", "curl_code" }
local FAILURE_NUMBERS = { status = true, retry_after = true, curl_code = true }

local function field_text(value)
  if value == nil then return "" end
  return (tostring(value):gsub("%c", " "))
end

--- The text of a failed login's entry, ended at `at`, for those that wait for it.
function shared.encode_failure(err, at, quiet_for)
  local parts = { string.format("%.17g", at), string.format("%.17g", at + (quiet_for or 0)) }
  for _, name in ipairs(FAILURE_FIELDS) do parts[#parts + 1] = field_text(err[name]) end
  parts[#parts + 1] = tostring(err.message or "")
  return table.concat(parts, "\n")
end

--- The failure in `text` (encode_failure's), if it ended after `since` or its quiet
-- time has not passed at `at`; see Shared:failure_since.
function shared.decode_failure(text, since, at)
  if type(text) ~= "string" then return nil end
  local ended_at, quiet_until, rest = text:match("^([^\n]*)\n([^\n]*)\n(.*)$")
  ended_at, quiet_until = tonumber(ended_at), tonumber(quiet_until)
  if ended_at == nil or quiet_until == nil or (ended_at <= since and at >= quiet_until) then
    return nil
  end
  local failure = {}
  for _, name in ipairs(FAILURE_FIELDS) do
    local field, after = rest:match("^([^\n]*)\n(.*)$")
    if field == nil then return nil end
    if field ~= "" then failure[name] = FAILURE_NUMBERS[name] and tonumber(field) or field end
    rest = after
  end
  if failure.kind == nil then return nil end
  failure.message = rest
  return failure
end

--- Stores the failure of a login (made with the lock "login" held), for the logins that
-- waited for it: they answer with it rather than each send /auth again.
function Shared:store_failure(err, quiet_for)
  dict_of[self]:set(self._prefix .. "failed", shared.encode_failure(err, self._now(), quiet_for),
    2 * self._login_hold + 1)
end

--- The failure of a login that ended after `since` (a time of the clock given to open),
-- or whose quiet time (store_failure's quiet_for: an outage's next backoff step, during
-- which no worker sends /auth) has not passed, as the fields of an error
-- (FAILURE_FIELDS and message); or nil.
function Shared:failure_since(since)
  return shared.decode_failure(dict_of[self]:get(self._prefix .. "failed"), since, self._now())
end

-------------------------------------------------------------------------------------
-- The rate-limit accounts (see rate.lua), one entry per API.

local encode_account, decode_account = account_changes.encode, account_changes.decode

local AccountStore = {}
AccountStore.__index = AccountStore

--- The store of the budget of `who` (a text that names an operator or, while it is
-- unknown, an identity; never a secret), shared by every worker (see
-- rate.for_operator): its keys are a digest of it, apart from the token's. Its `scope`
-- names the dict.
function Shared:accounts(who)
  local store = setmetatable({ scope = "lua_shared_dict " .. self._dict_name, _prefix = prefix_of(who),
    _locks = 0, _now = core.now, _sleep = ngx.sleep }, AccountStore)
  store._owner = tostring(ngx.worker.pid()) .. ":" .. tostring(store):match("0x%x+$")
  dict_of[store] = dict_of[self]
  return store
end

-- Reads the account of `api`, lets change(account, ...) change it, writes it back,
-- all under the account's lock; returns what change returned. When the lock cannot
-- be had within its hold time (the dict full), the change is made without it.
function AccountStore:update(api, change, ...)
  local dict, key = dict_of[self], self._prefix .. "rate:" .. api
  local mark = lock(self, key .. ":lock", ACCOUNT_LOCK_HOLD, ACCOUNT_LOCK_HOLD)
  local account = decode_account(dict:get(key))
  local done, first, second = pcall(change, account, ...)
  if done then dict:set(key, encode_account(account), ACCOUNT_KEPT) end
  unlock(self, key .. ":lock", mark)
  if not done then error(first, 0) end
  return first, second
end

---------------------------------------------------------------------------------------
-- The budget of a client.

--- shared.budget(endpoint, credentials, now, sharing, operator_id, sleep): the client's
-- rate-limit budget (see rate.lua), chosen at its first use, when the client has
-- logged in: its operator's (operator_id() gives the ID), shared with every client of
-- the operator in this process and, with `sharing` (the client's shared state, from
-- shared.open), with every worker. A client given a `sleep` option, whose clock `now`
-- may run ahead of real time, shares it with no other client of the process (see
-- rate.for_operator). While the operator is unknown (an issued API key and token
-- without operator_id), the budget of the credentials' identity.
function shared.budget(endpoint, credentials, now, sharing, operator_id, sleep)
  local unknown = shared.identity(endpoint, credentials) -- (kept rather than the credentials)
  return rate.deferred(function()
    local id = operator_id()
    local who = id and string.format("%q\n%q", endpoint, "operator " .. id) or unknown
    return rate.for_operator(endpoint, who, now, sharing and sharing:accounts(who), sleep ~= nil)
  end)
end

return shared
