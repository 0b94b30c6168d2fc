-- A fleet job: turn Air metadata on in every group tagged env=prod, 16 groups at a
-- time, printing progress as each one finishes. One login serves every task, and
-- requests wait for the rate limit's next window instead of running into 429s.
--
-- Credentials as in examples/quickstart.lua: SORACOM_* variables or SORACOM_PROFILE for
-- the real API, otherwise the fake Soracom server from spec/ (seeded with 40 groups,
-- 50 ms of latency per request).

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"

local server
local options = {}
if not (os.getenv("SORACOM_PROFILE") or os.getenv("SORACOM_AUTH_KEY_ID") or os.getenv("SORACOM_EMAIL")
  or os.getenv("SORACOM_USER_NAME")) then
  server = require("spec.support.fake_server").start()
  server:seed_groups(40, { env = "prod" })
  server:settings { latency = 0.05 }
  options = { endpoint = server.endpoint, auth_key_id = server.auth_key_id, auth_key = server.auth_key }
end

local client = assert(groups.new(options))

-- Read the groups first (the iterator pages through them), then change them at once:
-- update_config takes each group as read, which saves one GET per group.
local fleet = {}
for group in client:groups { tag_name = "env", tag_value = "prod" } do fleet[#fleet + 1] = group end

local results, summary = client:map(fleet, function(group)
  return client:update_config(group, "air", { metadata = { enabled = true } })
end, {
  concurrency = 16,
  on_result = function(i, _, err)
    if err then io.stderr:write(("group %s: %s\n"):format(fleet[i].groupId, tostring(err))) end
  end,
})

print(("%d groups updated, %d failed, in %.1f s"):format(summary.ok, summary.failed, summary.seconds))
for i, result in ipairs(results) do
  local air = result.ok and groups.config.read(result.value, "air")
  if result.ok and not (air.metadata and air.metadata.enabled) then
    print("group " .. fleet[i].groupId .. " did not take the change")
    summary.failed = summary.failed + 1
  end
end
client:close()
if server then server:stop() end
os.exit(summary.failed == 0 and 0 or 1)
