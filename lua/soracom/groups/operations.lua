--- The ten operations of the Soracom Group API, described once.
-- Every client method, both iterators and the documentation derive from this table.
-- `params` are the path parameters, in the order a method takes them; `query` the
-- query parameters its last argument may hold; `body` how its last argument becomes
-- the request body; `items` marks the paginated lists.

local NAMESPACES = {
  "SoracomAir", "SoracomBeam", "SoracomEndorse", "SoracomFlux", "SoracomFunk",
  "SoracomFunnel", "SoracomHarvest", "SoracomHarvestFiles", "SoracomKrypton",
  "SoracomOrbit", "UnifiedEndpoint",
}

-- The builder of each namespace (groups.config.air, ...); every method that takes a
-- namespace takes the builder's name as well.
local BUILDERS = {
  air = "SoracomAir", beam = "SoracomBeam", endorse = "SoracomEndorse", flux = "SoracomFlux",
  funk = "SoracomFunk", funnel = "SoracomFunnel", harvest = "SoracomHarvest",
  harvest_files = "SoracomHarvestFiles", krypton = "SoracomKrypton", orbit = "SoracomOrbit",
  unified_endpoint = "UnifiedEndpoint",
}

-- A namespace or builder name -> the namespace.
local NAMESPACE_OF = {}
for builder, namespace in pairs(BUILDERS) do
  NAMESPACE_OF[builder] = namespace
  NAMESPACE_OF[namespace] = namespace
end

--- Why `name` is refused as a namespace, where `allowed` (a set) are the namespaces
-- the caller takes: the same words for every method and config.read.
local function unknown_namespace(name, allowed)
  local namespaces, builders = {}, {}
  for _, namespace in ipairs(NAMESPACES) do
    if allowed[namespace] then namespaces[#namespaces + 1] = namespace end
  end
  for builder, namespace in pairs(BUILDERS) do
    if allowed[namespace] then builders[#builders + 1] = builder end
  end
  table.sort(builders)
  return "namespace " .. string.format("%q", tostring(name)) .. " is not one of " .. table.concat(namespaces, ", ")
    .. " (or their builder names: " .. table.concat(builders, ", ") .. ")"
end

local function set_of(list, except)
  local set = {}
  for _, value in ipairs(list) do
    if value ~= except then set[value] = true end
  end
  return set
end

local all_namespaces = set_of(NAMESPACES)
-- The spec's enum for deleting one parameter leaves SoracomOrbit out.
local deletable_namespaces = set_of(NAMESPACES, "SoracomOrbit")

local operations = {
  list_groups = {
    method = "GET", path = "/groups", params = {},
    query = { "tag_name", "tag_value", "tag_value_match_mode", "limit", "last_evaluated_key" },
    items = "groups", operation_id = "listGroups", cli = "groups list",
  },
  create_group = {
    method = "POST", path = "/groups", params = {}, body = "group",
    operation_id = "createGroup", cli = "groups create",
  },
  get_group = {
    method = "GET", path = "/groups/{group_id}", params = { "group_id" },
    operation_id = "getGroup", cli = "groups get",
  },
  delete_group = {
    method = "DELETE", path = "/groups/{group_id}", params = { "group_id" },
    operation_id = "deleteGroup", cli = "groups delete",
  },
  put_config = {
    method = "PUT", path = "/groups/{group_id}/configuration/{namespace}",
    params = { "group_id", "namespace" }, body = "config",
    operation_id = "putConfigurationParameters", cli = "groups put-config",
  },
  delete_config_namespace = {
    method = "DELETE", path = "/groups/{group_id}/configuration/{namespace}",
    params = { "group_id", "namespace" },
    operation_id = "deleteConfigurationNamespace", cli = "groups delete-config-namespace",
  },
  delete_config = {
    method = "DELETE", path = "/groups/{group_id}/configuration/{namespace}/{name}",
    params = { "group_id", "namespace", "name" },
    namespaces = deletable_namespaces,
    operation_id = "deleteConfigurationParameter", cli = "groups delete-config",
  },
  list_subscribers = {
    method = "GET", path = "/groups/{group_id}/subscribers", params = { "group_id" },
    query = { "limit", "last_evaluated_key" },
    items = "subscribers", operation_id = "listSubscribersInGroup", cli = "groups list-subscribers",
  },
  put_tags = {
    method = "PUT", path = "/groups/{group_id}/tags", params = { "group_id" }, body = "tags",
    operation_id = "putGroupTags", cli = "groups put-tags",
  },
  delete_tag = {
    method = "DELETE", path = "/groups/{group_id}/tags/{tag_name}",
    params = { "group_id", "tag_name" },
    operation_id = "deleteGroupTag", cli = "groups delete-tag",
  },
}

for name, op in pairs(operations) do
  op.name = name
  op.namespaces = op.namespaces or all_namespaces
end

return {
  operations = operations,
  NAMESPACES = NAMESPACES,
  BUILDERS = BUILDERS,
  NAMESPACE_OF = NAMESPACE_OF,
  ALL_NAMESPACES = all_namespaces,
  unknown_namespace = unknown_namespace,
}
