-- A child for spec/redis_attacks_spec.lua: makes CLIENTS clients one after the other,
-- each with the redis option, one get_group each, then close(); keeps every closed
-- client (a program may hold closed clients in its objects). Run under a low
-- `ulimit -n`. Prints one line: "result <failed> <clients> <first error or ->".
-- Usage (from the repository root):
--   lua spec/support/redis_many_clients.lua ENDPOINT AUTH_KEY_ID AUTH_KEY REDIS_URL GROUP_ID CLIENTS
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
require "spec.support.paths"
local groups = require "soracom.groups"

local endpoint, key_id, key, url, id, count = arg[1], arg[2], arg[3], arg[4], arg[5], tonumber(arg[6])
local kept, failed, first = {}, 0, nil
for i = 1, count do
  local client = assert(groups.new { endpoint = endpoint, auth_key_id = key_id, auth_key = key,
    transport = "curl", redis = url, retries = 0 })
  local group, err = client:get_group(id)
  if not (group and group.groupId == id) then
    failed = failed + 1
    first = first or tostring(err)
  end
  client:close()
  kept[i] = client
end
io.stdout:write("result ", failed, " ", #kept, " ", ((first or "-"):gsub("\n", " ")), "\n")
