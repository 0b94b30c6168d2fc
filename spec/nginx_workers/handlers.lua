-- Handlers of spec/nginx_workers/nginx.conf.in. Each worker keeps one client per set of
-- options, as an application would; the query of GET /get chooses them:
--   set=key|root   the fake's auth key (SORACOM_TEST_AUTH_KEY_ID / _KEY), or its root
--                  user (SORACOM_TEST_EMAIL / _PASSWORD): two identities of one operator
--   dict=1         with shared_dict = "soracom"
--   retries=n, base=s, timeout=s   the retries, retry_base_delay and timeout options
-- luacheck: globals ngx
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local handlers = {}

local CREDENTIALS = {
  key = function() return { auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY") } end,
  root = function() return { email = os.getenv("SORACOM_TEST_EMAIL"),
    password = os.getenv("SORACOM_TEST_PASSWORD") } end,
}

local clients = {}

local function options_of(args)
  local options = assert(CREDENTIALS[args.set or "key"], "no such set")()
  options.endpoint = os.getenv("SORACOM_TEST_ENDPOINT")
  if args.dict == "1" then options.shared_dict = "soracom" end
  options.retries = tonumber(args.retries)
  options.retry_base_delay = tonumber(args.base)
  options.timeout = tonumber(args.timeout)
  options.rate_limit_max_delay = 60
  return options
end

local function client_of(args)
  local name = table.concat({ args.set or "key", args.dict or "", args.retries or "", args.base or "",
    args.timeout or "" }, ":")
  if clients[name] == nil then clients[name] = assert(groups.new(options_of(args))) end
  return clients[name]
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(core.encode_json(value))
end

-- One get_group: {pid, group (its id), err (its text), kind (err.kind), raised (what it
-- raised), elapsed (seconds)}.
function handlers.get()
  local args = ngx.req.get_uri_args()
  local client = client_of(args)
  ngx.update_time()
  local started = ngx.now()
  local called, group, err = pcall(client.get_group, client, args.id)
  ngx.update_time()
  local answer = { pid = ngx.worker.pid(), elapsed = ngx.now() - started }
  if not called then
    answer.raised = tostring(group)
  else
    answer.group, answer.err = group and group.groupId or nil, err and tostring(err) or nil
    answer.kind = err and err.kind
  end
  reply(answer)
end

-- The mark of the lock under which a worker logs in (shared.lua: it starts with the
-- holder's pid), or {} when none is held.
function handlers.lock_holder()
  local dict = ngx.shared.soracom
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(-#":lock:login") == ":lock:login" then return reply { mark = dict:get(key) } end
  end
  reply {}
end

-- Two clients of the auth key in this request, with shared_dict: the first logs in (the
-- fake slows its /auth down); the second, made for this request alone, needs a token
-- meanwhile, so its login waits for the dict's lock, and is closed from a light thread
-- 0.3 s later. Answers {first = {group, kind}, second = {group, kind, raised, elapsed}}.
function handlers.close_during_login()
  local args = ngx.req.get_uri_args()
  local options = options_of { set = "key", dict = "1" }
  local first = assert(groups.new(options))
  local second = assert(groups.new(options))
  local function get(client)
    ngx.update_time()
    local started = ngx.now()
    local called, group, err = pcall(client.get_group, client, args.id)
    ngx.update_time()
    local outcome = { elapsed = ngx.now() - started }
    if not called then
      outcome.raised = tostring(group)
    else
      outcome.group, outcome.kind = group and group.groupId, err and err.kind
    end
    return outcome
  end
  local first_thread = ngx.thread.spawn(get, first)
  ngx.sleep(0.1)
  local second_thread = ngx.thread.spawn(get, second)
  ngx.sleep(0.3)
  second:close()
  local _, second_outcome = ngx.thread.wait(second_thread)
  local _, first_outcome = ngx.thread.wait(first_thread)
  first:close()
  reply { first = first_outcome, second = second_outcome }
end

return handlers
