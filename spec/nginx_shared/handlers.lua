-- Handlers of spec/nginx_shared/nginx.conf.in. Each worker keeps one client per
-- credential set, as an application would, all with shared_dict = "soracom":
--   a      the auth key (SORACOM_TEST_AUTH_KEY_ID / _KEY)
--   b      the root user (SORACOM_TEST_EMAIL / _PASSWORD), retries = 0
--   local  the auth key again, with share_token = false (only the budget is shared)
--   wrong  the root user with a wrong password, retries = 0
--   alone  the auth key, without shared_dict: a client per worker (bench/workers.lua)
--   sam    the SAM user, with a 0.5 s timeout and quick retries
--   mfa    the root user with another wrong password and an MFA code, retries = 0
-- luacheck: globals ngx
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local handlers = {}

local SETS = {
  a = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY") } end,
  b = function() return { email = os.getenv("SORACOM_TEST_EMAIL"),
    password = os.getenv("SORACOM_TEST_PASSWORD"), retries = 0 } end,
  wrong = function() return { email = os.getenv("SORACOM_TEST_EMAIL"),
    password = "not-" .. os.getenv("SORACOM_TEST_PASSWORD"), retries = 0 } end,
  sam = function() return { operator_id = os.getenv("SORACOM_TEST_OPERATOR_ID"),
    user_name = os.getenv("SORACOM_TEST_USER_NAME"), password = os.getenv("SORACOM_TEST_SAM_PASSWORD"),
    timeout = 0.5, retry_base_delay = 0.05 } end,
  mfa = function() return { email = os.getenv("SORACOM_TEST_EMAIL"),
    password = "other-" .. os.getenv("SORACOM_TEST_PASSWORD"), mfa_otp_code = "000000", retries = 0 } end,
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

-- One get_group: {worker, pid, group (its id), err (its text)}.
function handlers.get()
  local args = ngx.req.get_uri_args()
  local group, err = client_of(args.set or "a"):get_group(args.id)
  reply { worker = ngx.worker.id(), pid = ngx.worker.pid(), group = group and group.groupId or nil,
    err = err and tostring(err) or nil }
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

-- Every key of the soracom dict.
function handlers.keys()
  reply(groups.array(ngx.shared.soracom:get_keys(0)))
end

-- groups.new with a dict nginx.conf does not declare: the error it raises.
function handlers.undeclared()
  local ok, err = pcall(groups.new, { api_key = "k", token = "t", shared_dict = "undeclared" })
  reply { raised = not ok, message = tostring(err) }
end

return handlers
