-- A tour of soracom.groups: log in, create a group, configure Air metadata, tag it,
-- list groups, read it back and delete it.
--
-- With credentials in SORACOM_* variables or SORACOM_PROFILE set, it runs against
-- Soracom (see the README's "Against the real API"). Otherwise it starts the fake
-- Soracom server from spec/ and logs in there with the fake's auth key.

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"

local function uses_real_api()
  for _, name in ipairs({ "SORACOM_PROFILE", "SORACOM_AUTH_KEY_ID", "SORACOM_EMAIL", "SORACOM_USER_NAME" }) do
    if os.getenv(name) then return true end
  end
  return false
end

local options, server = {}, nil
if not uses_real_api() then
  server = require("spec.support.fake_server").start()
  options = { endpoint = server.endpoint, auth_key_id = server.auth_key_id, auth_key = server.auth_key }
  print("using the fake Soracom server at " .. server.endpoint)
end

-- Any failure stops the tour, but the fake server is stopped first.
local function check(value, err)
  if value == nil then
    if server then server:stop() end
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  return value
end

local client = check(groups.new(options))
print("client: " .. tostring(client))
print("logged in as operator " .. check(client:operator_id()))

local group = check(client:create_group { tags = { name = "quickstart" } })
print("created group " .. group.groupId .. " named " .. group.tags.name)

group = check(client:put_config(group.groupId, "SoracomAir", {
  { key = "metadata", value = { enabled = true, readonly = true, allowOrigin = "*" } },
}))
print("Air metadata enabled: " .. tostring(group.configuration.SoracomAir.metadata.enabled))

group = check(client:put_tags(group.groupId, { env = "demo", owner = "quickstart" }))
print("tags now: env=" .. group.tags.env .. ", owner=" .. group.tags.owner)

print("groups named quickstart:")
for g in client:groups { tag_name = "name", tag_value = "quickstart" } do
  print("  " .. g.groupId .. " (created " .. os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(g.createdTime / 1000)) .. ")")
end

local again = check(client:get_group(group.groupId))
print("read back: lastModifiedTime " .. again.lastModifiedTime .. ", SoracomAir.metadata.readonly "
  .. tostring(again.configuration.SoracomAir.metadata.readonly))

check(client:delete_group(group.groupId))
local gone, err = client:get_group(group.groupId)
print("deleted; reading it again gives: " .. (gone and "a group?!" or tostring(err)))

check(client:logout())
print("logged out")
client:close()
if server then server:stop() end
