-- Handlers of spec/nginx_redis/nginx.conf.in. Each worker keeps one client per set, as
-- an application would, with the fake's auth key:
--   redis  the redis option (SORACOM_TEST_REDIS): one token and one budget with every
--          process that uses that Redis
--   alone  without it: a token and a budget of the worker's own
-- luacheck: globals ngx
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local handlers = {}

local function options_of(set)
  local options = { endpoint = os.getenv("SORACOM_TEST_ENDPOINT"), auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
    auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"), rate_limit_max_delay = 60 }
  if set == "redis" then options.redis = os.getenv("SORACOM_TEST_REDIS") end
  return options
end

local clients = {}

local function client_of(set)
  if clients[set] == nil then clients[set] = assert(groups.new(options_of(set))) end
  return clients[set]
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(core.encode_json(value))
end

-- One get_group: {worker, pid, group (its id), err (its text)}.
function handlers.get()
  local args = ngx.req.get_uri_args()
  local client = client_of(args.set or "redis")
  local group, err = client:get_group(args.id)
  reply { worker = ngx.worker.id(), pid = ngx.worker.pid(), group = group and group.groupId or nil,
    err = err and tostring(err) or nil }
end

-- In init_by_lua (no cosockets; the curl transport): list_groups through a client with
-- the redis option, and what its debug hook said of Redis, into the results dict.
function handlers.init()
  local said = {}
  local options = options_of("redis")
  options.debug = function(line)
    if line:find("redis", 1, true) then said[#said + 1] = line end
  end
  local client = assert(groups.new(options))
  local list, err = client:list_groups()
  client:close()
  local results = ngx.shared.results
  results:set("listed", list ~= nil)
  results:set("err", err and tostring(err) or "")
  results:set("said", table.concat(said, "\n"))
end

function handlers.init_result()
  local results = ngx.shared.results
  reply { listed = results:get("listed"), err = results:get("err"), said = results:get("said") }
end

return handlers
