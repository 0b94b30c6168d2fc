--- The operations the client sends, described once: the ten of the Soracom Group
-- API, the five of SIM membership (a SIM read, put into a group or taken out), and
-- (apart, with no method of their own) the Batch API's, which client:move_sims uses.
-- Every client method, both iterators and the documentation derive from this table.
-- `params` are the path parameters, in the order a method takes them; `query` the
-- query parameters its last argument may hold; `body` how its last argument becomes
-- the request body; `items` marks the paginated lists; `idempotent` a POST whose
-- repetition does no more than the first (retried as a PUT: an unknown outcome is safe
-- to try again); `done_when_absent` an operation whose 404 after a lost answer means
-- the lost attempt did it (as a DELETE's).

local suggest = require "soracom.groups.suggest"

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
  local candidates = {}
  for _, list in ipairs { namespaces, builders } do
    for _, candidate in ipairs(list) do candidates[#candidates + 1] = candidate end
  end
  return "namespace " .. string.format("%q", tostring(name)) .. " is not one of " .. table.concat(namespaces, ", ")
    .. " (or their builder names: " .. table.concat(builders, ", ") .. ")"
    .. suggest.hint(name, candidates, function(closest) return BUILDERS[closest] end)
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
  -- Membership: a group exists to hold SIMs. Setting the group a SIM already has,
  -- or taking out one in no group, changes nothing.
  set_sim_group = {
    method = "POST", path = "/sims/{sim_id}/set_group", params = { "sim_id" }, body = "group_id",
    idempotent = true, operation_id = "setSimGroup", cli = "sims set-group",
  },
  unset_sim_group = {
    method = "POST", path = "/sims/{sim_id}/unset_group", params = { "sim_id" },
    idempotent = true, operation_id = "unsetSimGroup", cli = "sims unset-group",
  },
  set_subscriber_group = {
    method = "POST", path = "/subscribers/{imsi}/set_group", params = { "imsi" }, body = "group_id",
    idempotent = true, operation_id = "setGroup", cli = "subscribers set-group",
  },
  -- (its 404 also says "in no group": after a lost answer, the retry's 404 is success)
  unset_subscriber_group = {
    method = "POST", path = "/subscribers/{imsi}/unset_group", params = { "imsi" },
    idempotent = true, done_when_absent = true, operation_id = "unsetGroup", cli = "subscribers unset-group",
  },
  get_sim = {
    method = "GET", path = "/sims/{sim_id}", params = { "sim_id" }, operation_id = "getSim", cli = "sims get",
  },
}

-- The Batch API, as client:move_sims uses it (no client method of its own). Creating a
-- job is not idempotent: a second one would run the tasks again.
local batch_operations = {
  list_batch_groups = {
    method = "GET", path = "/batch_groups", params = {}, query = { "limit", "last_evaluated_key" },
    items = "batch groups", operation_id = "listBatchGroups",
  },
  create_batch_group = {
    method = "POST", path = "/batch_groups", params = {}, body = "json", operation_id = "createBatchGroup",
  },
  list_batch_jobs = {
    method = "GET", path = "/batch_groups/{batch_group_id}/jobs", params = { "batch_group_id" },
    query = { "limit", "last_evaluated_key" }, items = "batch jobs", operation_id = "listBatchJobs",
  },
  create_batch_job = {
    method = "POST", path = "/batch_groups/{batch_group_id}/jobs", params = { "batch_group_id" },
    body = "json", operation_id = "createBatchJob",
  },
  get_batch_job = {
    method = "GET", path = "/batch_groups/{batch_group_id}/jobs/{job_id}",
    params = { "batch_group_id", "job_id" }, operation_id = "getBatchJob",
  },
  list_batch_tasks = {
    method = "GET", path = "/batch_groups/{batch_group_id}/jobs/{job_id}/tasks",
    params = { "batch_group_id", "job_id" }, query = { "status", "limit", "last_evaluated_key" },
    items = "batch tasks", operation_id = "listTasksOfBatchJob",
  },
}

for _, table_of in ipairs { operations, batch_operations } do
  for name, op in pairs(table_of) do
    op.name = name
    op.namespaces = op.namespaces or all_namespaces
  end
end

return {
  operations = operations,
  batch_operations = batch_operations,
  NAMESPACES = NAMESPACES,
  BUILDERS = BUILDERS,
  NAMESPACE_OF = NAMESPACE_OF,
  ALL_NAMESPACES = all_namespaces,
  unknown_namespace = unknown_namespace,
}
