-- Handlers of spec/nginx_shared/nginx.conf.in. Each worker keeps one client per
-- credential set, as an application would, all with shared_dict = "soracom":
--   a      the auth key (SORACOM_TEST_AUTH_KEY_ID / _KEY)
--   b      the root user (SORACOM_TEST_EMAIL / _PASSWORD), retries = 0
--   local  the auth key again, with share_token = false (only the budget is shared)
--   wrong  a root user the fake does not know, retries = 0
--   other  the root user's email with another password (which the fake refuses), retries = 0
--   alone  the auth key, without shared_dict: a client per worker (bench/workers.lua)
--   sam    the SAM user, with a 0.5 s timeout and quick retries
--   mfa    a root user the fake does not know, with an MFA code, retries = 0
--   brief  the auth key, with tokens of 8 s (renewed 0.8 s before they end)
--   raising  the auth key, with a debug hook that raises on the /auth line
-- luacheck: globals ngx
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local handlers = {}

local SETS = {
  a = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY") } end,
  b = function() return { email = os.getenv("SORACOM_TEST_EMAIL"),
    password = os.getenv("SORACOM_TEST_PASSWORD"), retries = 0 } end,
  wrong = function() return { email = "nobody-" .. os.getenv("SORACOM_TEST_EMAIL"),
    password = "not-" .. os.getenv("SORACOM_TEST_PASSWORD"), retries = 0 } end,
  other = function() return { email = os.getenv("SORACOM_TEST_EMAIL"),
    password = "another-" .. os.getenv("SORACOM_TEST_PASSWORD"), retries = 0 } end,
  sam = function() return { operator_id = os.getenv("SORACOM_TEST_OPERATOR_ID"),
    user_name = os.getenv("SORACOM_TEST_USER_NAME"), password = os.getenv("SORACOM_TEST_SAM_PASSWORD"),
    timeout = 0.5, retry_base_delay = 0.05 } end,
  mfa = function() return { email = "mfa-" .. os.getenv("SORACOM_TEST_EMAIL"),
    password = "other-" .. os.getenv("SORACOM_TEST_PASSWORD"), mfa_otp_code = "000000", retries = 0 } end,
  brief = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"), token_timeout_seconds = 8 } end,
  raising = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"),
    debug = function(line) if line:find("/auth (", 1, true) then error("the debug hook raised") end end } end,
  alone = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY") } end,
  ["local"] = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"), share_token = false } end,
}

local clients = {}

local function client_of(set)
  if clients[set] == nil then
    local options = SETS[set]()
    options.endpoint = os.getenv("SORACOM_TEST_ENDPOINT")
    if set ~= "alone" then options.shared_dict = "soracom" end
    options.rate_limit_max_delay = 60
    clients[set] = assert(groups.new(options))
  end
  return clients[set]
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(core.encode_json(value))
end

-- One get_group: {worker, pid, group (its id), err (its text), raised (what it raised)}.
function handlers.get()
  local args = ngx.req.get_uri_args()
  local client = client_of(args.set or "a")
  local called, group, err = pcall(client.get_group, client, args.id)
  local answer = { worker = ngx.worker.id(), pid = ngx.worker.pid() }
  if not called then
    answer.raised = tostring(group)
  else
    answer.group, answer.err = group and group.groupId or nil, err and tostring(err) or nil
  end
  reply(answer)
  if ngx.get_phase() ~= "content" then ngx.exit(ngx.HTTP_OK) end
end

-- The timer each worker starts: list_groups with set a, its outcome in the results dict.
function handlers.start_timer()
  local ok, why = ngx.timer.at(0, function()
    local list, err = client_of("a"):list_groups()
    ngx.shared.results:set("init_worker:" .. ngx.worker.pid(), list and "ok" or tostring(err))
  end)
  if not ok then ngx.log(ngx.ERR, "timer: ", why) end
end

function handlers.results()
  local found = {}
  for _, key in ipairs(ngx.shared.results:get_keys(0)) do found[key] = ngx.shared.results:get(key) end
  reply(found)
end

-- The release of the dict's locks (shared.lua), for a credential set of their own:
-- {freed_at_once, kept_near_expiry, expired_after}.
function handlers.locks()
  local shared = require "soracom.groups.shared"
  local state = assert(shared.open("soracom", "http://locks.invalid", { kind = "token", api_key = "k",
    token = "t" }, { now = core.now, sleep = ngx.sleep, login_hold = 1 }, 1))
  local function held(name)
    for _, key in ipairs(ngx.shared.soracom:get_keys(0)) do
      if key:sub(-#name - 6) == ":lock:" .. name then return true end
    end
    return false
  end
  local early = assert(state:lock("early", 0, 5))
  state:unlock("early", early)
  -- A lock unlocked 0.2 to 0.3 s into its 0.3 s (tried again when a late wake-up
  -- made it later than that).
  local kept
  for _ = 1, 5 do
    local taken_at = ngx.now() -- the clock the dict's expiry is set by
    local late = assert(state:lock("late", 0, 0.3))
    ngx.sleep(0.25)
    state:unlock("late", late)
    kept = held("late")
    ngx.update_time()
    local in_time = ngx.now() - taken_at < 0.29
    ngx.sleep(0.35) -- expired
    if in_time then break end
  end
  reply { freed_at_once = not held("early"), kept_near_expiry = kept, expired_after = not held("late") }
end

-- A lock whose holder's process is gone (a mark naming the pid of a shell that has
-- exited, due to expire in 5 s): {reaped_in (seconds the next lock took), left_to_reaper
-- (when another waiter took the mark's reap key first: the lock, tried 0.3 s, was not
-- taken), reaped_after (then taken once that key is gone)}.
function handlers.dead_holder()
  local shared = require "soracom.groups.shared"
  local state = assert(shared.open("soracom", "http://dead.invalid", { kind = "token", api_key = "k",
    token = "t" }, { now = core.now, sleep = ngx.sleep, login_hold = 1 }, 1))
  local prefix = assert(tostring(state):match("%((soracom%-groups:%x+:)"))
  local dict = ngx.shared.soracom
  local shell = io.popen("sh -c 'echo $$'")
  local pid = shell:read("*l")
  shell:close()
  -- The lock `name` held by the dead process: its key and mark.
  local function dead_lock(name)
    ngx.update_time()
    local key, mark = prefix .. "lock:" .. name, string.format("%s:0x1:1@%.3f", pid, ngx.now() + 5)
    assert(dict:set(key, mark, 5))
    return key, mark
  end
  dead_lock("reaped")
  ngx.update_time()
  local started = ngx.now()
  local mark = state:lock("reaped", 2, 5)
  ngx.update_time()
  local reaped_in = mark and ngx.now() - started
  local key, dead = dead_lock("reaper")
  dict:set(key .. ":reap:" .. dead, true, 5) -- another waiter's
  local taken = state:lock("reaper", 0.3, 5)
  dict:delete(key .. ":reap:" .. dead)
  local after = state:lock("reaper", 0.3, 5)
  reply { reaped_in = reaped_in, left_to_reaper = taken == nil, reaped_after = after ~= nil }
end

-- Every key of the soracom dict.
function handlers.keys()
  reply(groups.array(ngx.shared.soracom:get_keys(0)))
end

-- Every entry of the soracom dict, {key, value} (values as text, binary ones as
-- "hex:" and their hex digits), and for each text
-- POSTed as {texts = {...}} its digests as hex: sha256, sha1, md5, and HMAC-SHA1 keyed
-- by each string value of the dict (a salt would be one of them).
function handlers.dump()
  local function hex(bytes)
    return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
  end
  local dict = ngx.shared.soracom
  local entries, values = {}, {}
  for _, key in ipairs(dict:get_keys(0)) do
    local value = dict:get(key)
    local text = tostring(value)
    if text:find("[^\n\32-\126]") then text = "hex:" .. hex(text) end -- a binary one
    entries[#entries + 1] = { key = key, value = text }
    if type(value) == "string" then values[#values + 1] = value end
  end
  ngx.req.read_body()
  local request = core.decode_json(ngx.req.get_body_data() or "{}") or {}
  local digests = {}
  for _, text in ipairs(request.texts or {}) do
    digests[#digests + 1] = core.sha256(text)
    digests[#digests + 1] = hex(ngx.sha1_bin(text))
    digests[#digests + 1] = ngx.md5(text)
    for _, value in ipairs(values) do digests[#digests + 1] = hex(ngx.hmac_sha1(value, text)) end
  end
  reply { entries = groups.array(entries), digests = groups.array(digests) }
end

-- The key prefixes (shared.lua's tostring) of two clients of one root user that give
-- different passwords, and of its auth key: {same_email_a, same_email_b, auth_key}.
function handlers.prefixes()
  local shared = require "soracom.groups.shared"
  local endpoint = os.getenv("SORACOM_TEST_ENDPOINT")
  local options = { now = core.now, sleep = ngx.sleep, login_hold = 1 }
  local function prefix(credentials)
    return tostring(assert(shared.open("soracom", endpoint, credentials, options, 1)))
  end
  local email = os.getenv("SORACOM_TEST_EMAIL")
  reply {
    same_email_a = prefix { kind = "root", login = { email = email, password = "one-password" } },
    same_email_b = prefix { kind = "root", login = { email = email, password = "another-password" } },
    auth_key = prefix { kind = "auth_key", login = { authKeyId = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
      authKey = os.getenv("SORACOM_TEST_AUTH_KEY") } },
  }
end

-- groups.new with a dict nginx.conf does not declare: the error it raises.
function handlers.undeclared()
  local ok, err = pcall(groups.new, { api_key = "k", token = "t", shared_dict = "undeclared" })
  reply { raised = not ok, message = tostring(err) }
end

return handlers
