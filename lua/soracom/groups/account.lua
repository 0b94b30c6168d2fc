--- What a plan needs to know of the account, read through a client: the groups of a
-- document's scope (the server filters them), the groups its entries name by id that
-- the scope no longer selects, the SIMs of the groups whose entries list theirs, the
-- SIMs to move in found in none of those (one by one), and how many SIMs each group to
-- delete holds.

local desired = require "soracom.groups.desired"
local Error = require "soracom.groups.error"

local account = {}

-- Pages of SIMs counted before a count says "at least".
account.SIM_PAGES = 2

--- account.read(client, document) -> the groups plan.compare needs: those of the
-- document's scope (the whole account without one), then each group an entry names by
-- groupId outside it; or nil, err. An id the account does not know is left out (the
-- plan makes that group anew).
function account.read(client, document)
  local groups, err = desired.list(client, desired.scope_query(document.scope))
  if groups == nil then return nil, err end
  local listed = {}
  for _, group in ipairs(groups) do listed[group.groupId] = true end
  for _, entry in ipairs(document.groups) do
    if entry.group_id and not listed[entry.group_id] then
      local group, get_err = client:get_group(entry.group_id)
      if group then
        groups[#groups + 1] = group
        listed[entry.group_id] = true
      elseif get_err.status ~= 404 then
        return nil, get_err
      end
    end
  end
  return groups
end

--- account.list_members(client, group_id) -> the simIds of the group's SIMs (every
-- page, in the API's order), or nil, err. Pages are fetched one by one without an
-- iterator, so that a map's task may call it on Lua 5.1 (which cannot suspend a task
-- inside a for loop's iterator).
function account.list_members(client, group_id)
  local ids, key = {}, nil
  repeat
    local page, next_key = client:list_subscribers(group_id, { last_evaluated_key = key })
    if page == nil then return nil, next_key end
    for _, sim in ipairs(page) do
      local id = type(sim) == "table" and sim.simId
      if type(id) ~= "string" or id == "" then
        return nil, Error.new("account", "a SIM of group " .. tostring(group_id) .. " (IMSI "
          .. tostring(type(sim) == "table" and sim.imsi or "?") .. ") came without a simId")
      end
      ids[#ids + 1] = id
    end
    key = next_key
  until key == nil
  return ids
end

-- key -> what fetch(key) gave, for every key, fetched in parallel through client:map;
-- or nil, the first err.
local function fetch_each(client, keys, fetch, options)
  local values = {}
  if #keys == 0 then return values end
  local results = client:map(keys, fetch, { concurrency = options and options.concurrency })
  for i, key in ipairs(keys) do
    local result = results[i]
    if not result.ok then
      local err = result.err
      return nil, Error.is(err) and err or Error.new("account", tostring(err))
    end
    values[key] = result.value
  end
  return values
end

--- account.read_members(client, group_ids, {concurrency}) -> group id -> its simIds,
-- the groups read in parallel through client:map; or nil, the first err.
function account.read_members(client, group_ids, options)
  local members, err = fetch_each(client, group_ids, function(group_id)
    return account.list_members(client, group_id)
  end, options)
  return members, err
end

--- account.read_sims(client, sim_ids, {concurrency}) -> sim id -> the SIM as
-- client:get_sim answers it (its groupId is its group), or false when there is no such
-- SIM (404); read in parallel through client:map (one GET each); or nil, the first
-- other err.
function account.read_sims(client, sim_ids, options)
  local sims, err = fetch_each(client, sim_ids, function(sim_id)
    local sim, why = client:get_sim(sim_id)
    if sim ~= nil then return sim end
    if why.status == 404 then return false end
    return nil, why
  end, options)
  return sims, err
end

--- account.count_sims(client, group_id) -> {count = n, at_least = bool} (at_least past
-- account.SIM_PAGES pages), or nil, err.
function account.count_sims(client, group_id)
  local count, key = 0, nil
  for _ = 1, account.SIM_PAGES do
    local page, next_key = client:list_subscribers(group_id, { last_evaluated_key = key })
    if page == nil then return nil, next_key end
    count = count + #page
    key = next_key
    if key == nil then return { count = count, at_least = false } end
  end
  return { count = count, at_least = true }
end

--- Counts the SIMs of every group the plan deletes, into each change's `sims`;
-- true, or nil, err.
function account.count_deleted_sims(client, p)
  for _, change in ipairs(p.changes) do
    if change.action == "delete" then
      local sims, err = account.count_sims(client, change.group_id)
      if sims == nil then return nil, err end
      change.sims = sims
    end
  end
  return true
end

return account
