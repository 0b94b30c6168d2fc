-- Configures a group for a fleet of sensors: Air metadata, Harvest Data and a Beam
-- TCP entry, built with soracom.groups.config, then changes one setting with
-- update_config and prints the result.
--
-- Credentials as in examples/quickstart.lua: SORACOM_* variables or SORACOM_PROFILE for
-- the real API, otherwise the fake Soracom server from spec/.

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"
local config = groups.config

local server
local options = {}
if not (os.getenv("SORACOM_PROFILE") or os.getenv("SORACOM_AUTH_KEY_ID") or os.getenv("SORACOM_EMAIL")
  or os.getenv("SORACOM_USER_NAME")) then
  server = require("spec.support.fake_server").start()
  options = { endpoint = server.endpoint, auth_key_id = server.auth_key_id, auth_key = server.auth_key }
end

local function check(value, err)
  if value == nil then
    if server then server:stop() end
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  return value
end

local client = check(groups.new(options))
local group = check(client:create_group { name = "fleet-sensors", tags = { env = "demo" } })
print("group " .. group.groupId .. " (" .. group.tags.name .. ")")

check(client:put_config(group.groupId, config.air {
  metadata = { enabled = true, readonly = true, allow_origin = "https://dashboard.example.com" },
  custom_dns = { "8.8.8.8", "8.8.4.4" },
}))
check(client:put_config(group.groupId, config.harvest { enabled = true }))
check(client:put_config(group.groupId, config.beam {
  tcp = { name = "telemetry", destination = "tcps://ingest.example.com:8883", enabled = true,
    add_subscriber_header = true },
}))

-- Read-modify-write: let devices change their own tags, keep every other Air setting.
group = check(client:update_config(group.groupId, "air", { metadata = { readonly = false } }))

for _, namespace in ipairs({ "SoracomAir", "SoracomHarvest", "SoracomBeam" }) do
  print(namespace .. ":")
  local settings = group.configuration[namespace]
  local keys = {}
  for key in pairs(settings) do keys[#keys + 1] = key end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local value = settings[key]
    print("  " .. key .. " = " .. (type(value) == "table" and require("soracom.groups.core").encode_json(value)
      or tostring(value)))
  end
end
print("Air metadata, read back: readonly = " .. tostring(config.read(group, "air").metadata.readonly))

check(client:delete_group(group.groupId))
print("deleted the group")
client:close()
if server then server:stop() end
