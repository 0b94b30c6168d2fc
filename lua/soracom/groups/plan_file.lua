--- Saved plans: `plan -o PLANFILE` writes one, `apply PLANFILE` carries out exactly
-- it. A plan file holds what to do (the SIMs to move among it, each with the group it
-- leaves) and each group's lastModifiedTime and SIMs kept (their count and digest) as
-- the plan saw them, never a
-- secret value: a setting is kept as the document wrote it when that holds
-- no secret (secret references {"$env": NAME} included, read again at apply time);
-- otherwise the file names the document (its path and SHA-256) and apply reads the
-- setting from it, refusing a document that changed since the plan.

local core = require "soracom.groups.core"
local desired = require "soracom.groups.desired"
local Error = require "soracom.groups.error"
local plan = require "soracom.groups.plan"
local secrets = require "soracom.groups.secrets"

local plan_file = {}

plan_file.FORMAT = "soracom-groups-plan"
-- Version 2 added SIM moves: a reader of version 1 would not make them, so it refuses
-- them. Version 3 records where every SIM moving in comes from (apply checks it is
-- still there); this one reads all three, and refuses a version 2 move whose origin it
-- does not record.
plan_file.VERSION = 3
plan_file.OLDEST_VERSION = 1

local array_mt = core.array_mt
local unpack = table.unpack or unpack

local function array(t) return setmetatable(t, array_mt) end

-- Whether a setting of the document shows anything secret (its references aside).
-- (secrets.masked shows references as they are.)
local function holds_secret(namespace, source)
  if source == nil then return false end
  return not desired.equal(secrets.masked(namespace, {}, source), source)
end

local function saved_diffs(diffs)
  local saved = array {}
  for i, d in ipairs(diffs or {}) do
    local shown = { op = d.op, path = d.path, keys = array(desired.copy(d.keys)), sensitive = d.sensitive,
      ref = d.ref }
    local function show(value)
      if value == nil then return nil end
      if d.sensitive then return secrets.SENSITIVE end
      return secrets.masked(d.keys[1], { unpack(d.keys, 2) }, value)
    end
    shown.from, shown.to = show(d.from), show(d.to)
    saved[i] = shown
  end
  return saved
end

local function saved_namespace(namespace)
  local saved = { op = namespace.op, namespace = namespace.namespace, diffs = saved_diffs(namespace.diffs) }
  if namespace.op == "put" then
    if holds_secret(namespace.namespace, namespace.source) then
      saved.from_document = true
    else
      saved.source = namespace.source
    end
  end
  return saved
end

local function saved_change(change)
  local namespaces = array {}
  for i, namespace in ipairs(change.namespaces) do namespaces[i] = saved_namespace(namespace) end
  local tags = array {}
  for i, tag in ipairs(change.tags) do
    -- What the views hide of a tag is not written here either: the old value is only
    -- shown (masked), the new one is read from the document at apply time.
    local hidden = secrets.is_secret_name(tag.name)
    local to = tag.to
    if to ~= nil and (hidden or select(2, secrets.mask_string(to))) then to = nil end
    local from = tag.from
    if from ~= nil then from = hidden and secrets.SENSITIVE or (secrets.mask_string(from)) end
    tags[i] = { op = tag.op, name = tag.name, to = to, from = from,
      from_document = (tag.to ~= nil and to == nil) or nil }
  end
  local holds
  if change.holds then
    local held = {}
    for name, value in pairs(change.holds.tags) do
      held[name] = secrets.is_secret_name(name) and secrets.SENSITIVE or (secrets.mask_string(value))
    end
    holds = { tags = held, namespaces = change.holds.namespaces }
  end
  local members
  if change.members then
    local moves_in = array {}
    for i, move in ipairs(change.members.moves_in) do
      -- null, not absent, for no group: a file that does not say is refused
      moves_in[i] = { sim_id = move.sim_id, from_group_id = move.from_group_id or core.null,
        from_name = move.from_name, outside = move.outside or nil }
    end
    members = { moves_in = moves_in, moves_out = array(desired.copy(change.members.moves_out)),
      unlisted = change.members.unlisted, staying = change.members.staying }
  end
  return {
    action = change.action, name = change.name, group_id = change.group_id, was = change.was,
    missing_id = change.missing_id, entry = change.entry, known = change.known,
    last_modified_time = change.last_modified_time,
    tags = tags, namespaces = namespaces, holds = holds, sims = change.sims, members = members,
    create = change.create and { name = change.create.name } or nil,
  }
end

--- plan_file.encode(plan, source, endpoint) -> the plan file's text. source: {path,
-- sha256} of the desired document the plan was made from; endpoint: the API's.
function plan_file.encode(p, source, endpoint)
  local changes = array {}
  for i, change in ipairs(p.changes) do changes[i] = saved_change(change) end
  local scope
  if p.scope then scope = p.scope.account and { account = true } or p.scope end
  return desired.encode {
    format = plan_file.FORMAT, version = plan_file.VERSION, endpoint = endpoint,
    document = { path = source.path, sha256 = source.sha256 },
    scope = scope, prune = p.prune, prune_namespaces = p.prune_namespaces, prune_sims = p.prune_sims or false,
    allow_sims_from_outside_scope = p.allow_sims_from_outside_scope or false,
    member_groups = array(desired.copy(p.member_groups or {})),
    changes = changes,
    unmanaged = { groups = array(desired.copy(p.unmanaged.groups)),
      namespaces = array(desired.copy(p.unmanaged.namespaces)), sims = array(desired.copy(p.unmanaged.sims or {})) },
    unnamed = array(desired.copy(p.unnamed)),
  }
end

--- Whether JSON text is a plan file (its format key), rather than a document.
function plan_file.is_plan(value)
  return type(value) == "table" and value.format == plan_file.FORMAT
end

---------------------------------------------------------------------------------------
-- Reading one back.

local function bad(message)
  error({ plan_file_error = message }, 0)
end

local ACTIONS = { create = true, update = true, delete = true }

local NAMESPACE_OPS = { put = true, delete = true }
local DIFF_OPS = { add = true, change = true, remove = true }

-- A saved change has every field apply and plan_view read, of the right type: a plan
-- file edited by hand is refused, never half carried out.
local function check_change(change, i)
  local where = "changes[" .. i .. "]"
  if type(change) ~= "table" or not ACTIONS[change.action] then bad(where .. " has no known action") end
  if type(change.name) ~= "string" then bad(where .. " has no name") end
  if change.action ~= "create" and type(change.group_id) ~= "string" then bad(where .. " has no group_id") end
  if type(change.tags) ~= "table" or type(change.namespaces) ~= "table" then bad(where .. " is incomplete") end
  if change.action == "create" and type(change.create) ~= "table" then bad(where .. " has no create") end
  for _, tag in ipairs(change.tags) do
    if type(tag) ~= "table" or not DIFF_OPS[tag.op] or type(tag.name) ~= "string"
        or (tag.op ~= "remove" and type(tag.to) ~= "string" and tag.from_document ~= true) then
      bad(where .. " has a tag change that is not one")
    end
  end
  for _, namespace in ipairs(change.namespaces) do
    if type(namespace) ~= "table" or not NAMESPACE_OPS[namespace.op] or type(namespace.namespace) ~= "string"
        or type(namespace.diffs) ~= "table" then
      bad(where .. " has a namespace change that is not one")
    end
    for _, d in ipairs(namespace.diffs) do
      if type(d) ~= "table" or not DIFF_OPS[d.op] or type(d.path) ~= "string" or type(d.keys) ~= "table"
          or d.keys[1] ~= namespace.namespace then
        bad(where .. " has a difference that is not one")
      end
    end
  end
end

-- A saved change's SIM moves: each SIM moved once in the whole plan, in with the group
-- it leaves (null: none; one the document does not own only when the plan was made
-- allowing it), out only when the plan was made with prune_sims, and an update's SIMs
-- kept as the plan saw them. A move's null origin becomes nil.
local function check_members(change, where, saved, moved)
  local prune_sims = saved.prune_sims == true
  local members = change.members
  if members == nil then return end
  if type(members) ~= "table" or type(members.moves_in) ~= "table" or type(members.moves_out) ~= "table" then
    bad(where .. " has SIM moves that are not any")
  end
  local function once(sim)
    if moved[sim] then bad(where .. " moves the SIM " .. sim .. " that the plan moves already") end
    moved[sim] = true
  end
  for _, move in ipairs(members.moves_in) do
    if type(move) ~= "table" or not desired.is_sim_id(move.sim_id) then
      bad(where .. " has a SIM to move in that is not one")
    end
    once(move.sim_id)
    local from = move.from_group_id
    if from == core.null then
      move.from_group_id = nil
    elseif type(from) ~= "string" or from == "" then
      bad(where .. " does not say which group the SIM " .. move.sim_id .. " leaves (a plan file made before "
        .. "soracom-groups recorded it: plan again)")
    end
    if move.outside ~= nil and (move.outside ~= true or move.from_group_id == nil) then
      bad(where .. " has a SIM to move in whose origin is not one")
    end
    if move.outside and saved.allow_sims_from_outside_scope ~= true then
      bad(where .. " takes the SIM " .. move.sim_id .. " from a group outside the scope, which only a plan made "
        .. "with --allow-sims-from-outside-scope does")
    end
  end
  for _, sim in ipairs(members.moves_out) do
    if not desired.is_sim_id(sim) then bad(where .. " has a SIM to move out that is not one") end
    once(sim)
  end
  if #members.moves_out > 0 and (not prune_sims or change.action ~= "update") then
    bad(where .. " moves SIMs out, which only a plan made with --prune-sims does to a group it changes")
  end
  if change.action == "update" then
    local staying = members.staying
    if type(staying) ~= "table" or type(staying.count) ~= "number" or type(staying.sha256) ~= "string" then
      bad(where .. " does not say which SIMs the group keeps")
    end
  end
end

-- The document a plan file names, when a setting must come from it; checked against
-- the digest the plan recorded.
local function load_document(saved)
  local source = saved.document
  if type(source) ~= "table" or type(source.path) ~= "string" then bad("it names no desired document") end
  local document, err = desired.load(source.path)
  if document == nil then bad("its settings come from the desired document, which does not load: " .. err.message) end
  if document.source.sha256 ~= source.sha256 then
    bad(source.path .. " changed since the plan was made (SHA-256 " .. tostring(source.sha256) .. ", now "
      .. document.source.sha256 .. "): its settings are not the plan's; plan again")
  end
  return document
end

-- The document's entry of a change whose values it holds.
local function entry_of(saved, change, document)
  document = document or load_document(saved)
  local entry = document.groups[change.entry or 0]
  if entry == nil or entry.name ~= change.name then bad("the document has no entry for " .. change.name) end
  return entry, document
end

-- Each put's settings, from its saved form or from the document, secret references
-- read through getenv; a create's tags and configuration from them.
local function restore_settings(saved, getenv)
  local document
  for _, change in ipairs(saved.changes) do
    local tags = {}
    for _, tag in ipairs(change.tags) do
      if tag.from_document then
        local entry
        entry, document = entry_of(saved, change, document)
        tag.to = tag.name == "name" and entry.name or entry.tags[tag.name]
        if type(tag.to) ~= "string" then bad("the document has no tag " .. tag.name .. " for " .. change.name) end
      end
      if tag.to ~= nil and tag.name ~= "name" then tags[tag.name] = tag.to end
    end
    if change.action == "create" and next(tags) then change.create.tags = tags end
    local configuration = {}
    for _, namespace in ipairs(change.namespaces) do
      if namespace.op == "put" then
        local source = namespace.source
        if namespace.from_document then
          local entry
          entry, document = entry_of(saved, change, document)
          source = entry.configuration[namespace.namespace]
        end
        if type(source) ~= "table" then bad("a setting of " .. tostring(change.name) .. " is missing") end
        local settings, err = desired.resolve(source, getenv, tostring(change.name) .. "." .. namespace.namespace)
        if settings == nil then bad(err) end
        namespace.settings = settings
        configuration[namespace.namespace] = settings
      end
    end
    if change.action == "create" and next(configuration) then change.create.configuration = configuration end
  end
end

-- The differences as a plan file keeps them, for comparing.
local function comparable(diffs)
  local list = {}
  for i, d in ipairs(diffs) do
    list[i] = { op = d.op, path = d.path, from = d.from, to = d.to, sensitive = d.sensitive or nil, ref = d.ref }
  end
  return list
end

--- plan_file.verify(change, group) -> nil, or why the change must not be made to the
-- group (read just now): a plan file shows each namespace's differences and keeps the
-- settings to send apart, so what would be sent must make exactly the differences
-- shown (a file edited by hand could send what nobody saw).
function plan_file.verify(change, group)
  local configuration = group and type(group.configuration) == "table" and group.configuration or {}
  for _, namespace in ipairs(change.namespaces) do
    if namespace.op == "put" then
      local fresh = saved_diffs(plan.namespace_diffs(namespace.namespace, configuration[namespace.namespace],
        namespace.settings, namespace.source))
      if not desired.equal(comparable(fresh), comparable(namespace.diffs)) then
        return "the plan file's settings of " .. namespace.namespace .. " are not the changes it shows; "
          .. "nothing was written to it"
      end
    end
  end
  return nil
end

--- plan_file.decode(text, {getenv}) -> a plan apply.run carries out (and plan_view
-- shows), its settings restored; or nil, err.
function plan_file.decode(text, options)
  options = options or {}
  local saved, why = core.decode_json(text, { strict = true })
  if saved == nil then return nil, Error.new("plan", "not a plan file: invalid JSON: " .. tostring(why)) end
  local ok, err = pcall(function()
    if not plan_file.is_plan(saved) then bad("not a plan file (no \"format\": \"" .. plan_file.FORMAT .. "\")") end
    if type(saved.version) ~= "number" or saved.version < plan_file.OLDEST_VERSION
        or saved.version > plan_file.VERSION then
      bad("a plan file of version " .. tostring(saved.version) .. ", this soracom-groups reads "
        .. plan_file.OLDEST_VERSION .. " to " .. plan_file.VERSION)
    end
    if type(saved.changes) ~= "table" then bad("it has no changes") end
    if saved.member_groups ~= nil then
      if type(saved.member_groups) ~= "table" then bad("its member_groups is not a list of group ids") end
      for _, id in ipairs(saved.member_groups) do
        if type(id) ~= "string" then bad("its member_groups is not a list of group ids") end
      end
    end
    local moved = {}
    for i, change in ipairs(saved.changes) do
      check_change(change, i)
      check_members(change, "changes[" .. i .. "]", saved, moved)
    end
    restore_settings(saved, options.getenv or os.getenv)
  end)
  if not ok then
    if type(err) == "table" and err.plan_file_error then return nil, Error.new("plan", err.plan_file_error) end
    error(err, 0)
  end
  local scope = saved.scope
  if scope == core.null then scope = nil end
  local endpoint = type(saved.endpoint) == "string" and saved.endpoint or nil
  local unmanaged = type(saved.unmanaged) == "table" and saved.unmanaged or {}
  return {
    scope = scope, prune = saved.prune == true, prune_namespaces = saved.prune_namespaces == true,
    prune_sims = saved.prune_sims == true, allow_sims_from_outside_scope = saved.allow_sims_from_outside_scope == true,
    member_groups = saved.member_groups or {},
    changes = saved.changes, endpoint = endpoint, verify = plan_file.verify,
    unmanaged = { groups = unmanaged.groups or {}, namespaces = unmanaged.namespaces or {},
      sims = unmanaged.sims or {} },
    unnamed = type(saved.unnamed) == "table" and saved.unnamed or {}, warnings = {},
  }
end

return plan_file
