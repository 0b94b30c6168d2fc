-- A "host" that is no nginx, for spec/nginx_redis_spec.lua and bench/hosts.lua: a plain
-- Lua process (the curl transport, the C core's Redis link) making COUNT get_group calls
-- of GROUP_ID through client:map, with the redis option when SORACOM_TEST_REDIS is set.
-- Run from the repository root; the endpoint and the auth key come as the nginx hosts
-- get them (SORACOM_TEST_*), never on the command line. Prints one JSON line:
-- {got = calls that returned the group, first_error = text, seconds = s}.
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
require "spec.support.paths" -- the core scripts/build made for this Lua

local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local GROUP_ID = assert(os.getenv("GROUP_ID"), "GROUP_ID")
local COUNT = tonumber((assert(os.getenv("COUNT"), "COUNT")))
local CONCURRENCY = 40 -- as many at once as a burst of curl sends to an nginx

local redis = os.getenv("SORACOM_TEST_REDIS")
local client = assert(groups.new { endpoint = os.getenv("SORACOM_TEST_ENDPOINT"),
  auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"), auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"),
  redis = redis ~= "" and redis or nil })

local ids = {}
for i = 1, COUNT do ids[i] = GROUP_ID end
local started = core.now()
local results = client:map(ids, function(id)
  local group, err = client:get_group(id)
  return group and group.groupId, err
end, { concurrency = CONCURRENCY })
local got, first_error = 0, nil
for _, result in ipairs(results) do
  if result.ok and result.value == GROUP_ID then
    got = got + 1
  else
    first_error = first_error or tostring(result.err or result.value)
  end
end
client:close()
io.write(core.encode_json { got = got, first_error = first_error, seconds = core.now() - started }, "\n")
