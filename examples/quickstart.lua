-- A tour of soracom.groups: create a group, configure Air metadata, tag it, list
-- groups, read it back and delete it.
--
-- Against the real API: SORACOM_API_KEY=... SORACOM_TOKEN=... lua5.4 examples/quickstart.lua
-- (SORACOM_ENDPOINT or SORACOM_COVERAGE_TYPE=g picks the endpoint). With no
-- credentials it starts the fake Soracom server from spec/ and runs against that.

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"

local options, server
if os.getenv("SORACOM_API_KEY") and os.getenv("SORACOM_TOKEN") then
  options = {
    endpoint = os.getenv("SORACOM_ENDPOINT"),
    coverage = os.getenv("SORACOM_COVERAGE_TYPE"),
    api_key = os.getenv("SORACOM_API_KEY"),
    token = os.getenv("SORACOM_TOKEN"),
  }
else
  server = require("spec.support.fake_server").start()
  options = { endpoint = server.endpoint, api_key = server.api_key, token = server.token }
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

local client = groups.new(options)
print("client: " .. tostring(client))

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

client:close()
if server then server:stop() end
