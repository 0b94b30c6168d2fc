--- Showing a plan: plan_view.render (text lines for a person) and plan_view.to_json
-- (for a machine). Both hide secrets the same way (secrets.lua: the builders' schema,
-- URL userinfo, secret query parameters); the text escapes whatever could forge a
-- line or steer a terminal (control characters, newlines, bidi overrides).

local core = require "soracom.groups.core"
local desired = require "soracom.groups.desired"
local plan = require "soracom.groups.plan"
local secrets = require "soracom.groups.secrets"

local plan_view = {}

local encode_compact, sorted_keys = desired.encode_compact, desired.sorted_keys
local unpack = table.unpack or unpack

-- Characters a terminal acts on, as escapes: C0 controls and DEL, C1 controls (in
-- UTF-8), and the bidirectional overrides that reorder what is shown.
local C0 = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape_byte(byte)
  return C0[byte] or string.format("\\x%02x", byte:byte())
end

--- text with what could forge a line or steer a terminal escaped; a backslash is
-- doubled unless the text is JSON already (its backslashes are its own escapes).
function plan_view.printable(text, is_json)
  text = tostring(text)
  if not is_json then text = text:gsub("\\", "\\\\") end
  text = text:gsub("[%z\1-\31\127]", escape_byte)
  text = text:gsub("\194([\128-\159])", function(byte) return string.format("\\u%04x", byte:byte()) end)
  -- U+202A..U+202E are E2 80 AA..AE; U+2066..U+2069 are E2 81 A6..A9.
  text = text:gsub("\226\128([\170-\174])", function(byte)
    return string.format("\\u%04x", 0x2000 + byte:byte() - 128)
  end)
  text = text:gsub("\226\129([\166-\169])", function(byte)
    return string.format("\\u%04x", 0x2040 + byte:byte() - 128)
  end)
  -- Marks and separators that reorder or hide text: U+200B..U+200F, U+2028, U+2029,
  -- U+061C, U+FEFF.
  text = text:gsub("\226\128([\139-\143\168\169])", function(byte)
    return string.format("\\u%04x", 0x2000 + byte:byte() - 128)
  end)
  text = text:gsub("\216\156", "\\u061c"):gsub("\239\187\191", "\\ufeff")
  return text
end
local printable = plan_view.printable

---------------------------------------------------------------------------------------
-- Values, as shown.

-- The shown form of a diff's value (side "from" or "to"): hidden when sensitive (the
-- new value of a reference names its variable), else masked by the schema and the
-- string rules.
local function shown_value(d, side)
  if d.ref and side == "to" then return "(from $" .. d.ref .. ")" end
  if d.sensitive then return secrets.SENSITIVE end
  return secrets.masked(d.keys[1], { unpack(d.keys, 2) }, d[side])
end

local function shown_text(d, side)
  local shown = shown_value(d, side)
  if d.sensitive then return shown end
  return printable(encode_compact(shown), true)
end

-- A tag's value as shown: hidden when its name names a secret, else masked.
local function tag_value(tag, value)
  if secrets.is_secret_name(tag.name) then return secrets.SENSITIVE end
  return printable((secrets.mask_string(value)))
end

local function tag_line(tag)
  local name = printable(tag.name)
  if tag.op == "add" then return "  + tag " .. name .. " = " .. tag_value(tag, tag.to) end
  if tag.op == "remove" then return "  - tag " .. name .. " (was " .. tag_value(tag, tag.from) .. ")" end
  local from, to = tag_value(tag, tag.from), tag_value(tag, tag.to)
  return "  ~ tag " .. name .. ": " .. from .. " -> " .. to
    .. ((from == to and from ~= secrets.SENSITIVE) and " (a hidden part changes)" or "")
end

local function diff_line(d)
  local path = printable(d.path)
  if d.op == "add" then return "  + " .. path .. " = " .. shown_text(d, "to") end
  if d.op == "remove" then return "  - " .. path .. " (was " .. shown_text(d, "from") .. ")" end
  local from, to = shown_text(d, "from"), shown_text(d, "to")
  -- Masking can make both sides look alike: say that something unseen differs.
  return "  ~ " .. path .. ": " .. from .. " -> " .. to .. (from == to and not d.sensitive
    and " (a hidden part changes)" or "")
end

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

---------------------------------------------------------------------------------------
-- SIMs moving.

-- A group's moves one way are listed one a line up to SIMS_LISTED; past it, a count
-- (by origin) and the first SIMS_SAMPLE (plan --json lists every one).
plan_view.SIMS_LISTED = 10
plan_view.SIMS_SAMPLE = 5

-- Where a SIM moving in comes from, in words.
local function origin(move)
  if move.from_group_id == nil then return "from no group" end
  return "from group " .. printable(move.from_name or move.from_group_id)
    .. (move.outside and ", outside the scope" or "")
end

local function sims_word(n)
  return n .. (n == 1 and " SIM" or " SIMs")
end

-- The count line of many SIMs moving in: how many come from where, most first.
local function moves_in_count(moves)
  local by_origin, order = {}, {}
  for _, move in ipairs(moves) do
    local from = origin(move)
    if by_origin[from] == nil then
      by_origin[from] = 0
      order[#order + 1] = from
    end
    by_origin[from] = by_origin[from] + 1
  end
  table.sort(order, function(a, b)
    if by_origin[a] ~= by_origin[b] then return by_origin[a] > by_origin[b] end
    return a < b
  end)
  local parts = {}
  for i, from in ipairs(order) do parts[i] = by_origin[from] .. " " .. from end
  return "  + " .. sims_word(#moves) .. " move in (" .. table.concat(parts, ", ") .. "); the first "
    .. plan_view.SIMS_SAMPLE .. ":"
end

local function sim_lines(members, lines)
  local moves_in, moves_out = members.moves_in, members.moves_out
  local shown_in, shown_out = #moves_in, #moves_out
  if #moves_in > plan_view.SIMS_LISTED then
    lines[#lines + 1] = moves_in_count(moves_in)
    shown_in = plan_view.SIMS_SAMPLE
  end
  for i = 1, shown_in do
    lines[#lines + 1] = "  + sim " .. printable(moves_in[i].sim_id) .. " (" .. origin(moves_in[i]) .. ")"
  end
  if #moves_out > plan_view.SIMS_LISTED then
    lines[#lines + 1] = "  - " .. sims_word(#moves_out) .. " move out (to no group); the first "
      .. plan_view.SIMS_SAMPLE .. ":"
    shown_out = plan_view.SIMS_SAMPLE
  end
  for i = 1, shown_out do
    lines[#lines + 1] = "  - sim " .. printable(moves_out[i]) .. " (to no group)"
  end
end

-- The lines of one group's tag, namespace and SIM changes (not its heading).
local function change_lines(change)
  local lines = {}
  for _, tag in ipairs(change.tags) do lines[#lines + 1] = tag_line(tag) end
  for _, namespace in ipairs(change.namespaces) do
    if namespace.op == "delete" then lines[#lines + 1] = "  - namespace " .. namespace.namespace end
    for _, d in ipairs(namespace.diffs or {}) do lines[#lines + 1] = diff_line(d) end
  end
  if change.members then sim_lines(change.members, lines) end
  return lines
end

local function sims_text(sims)
  if sims == nil then return "not counted" end
  if sims.count == 0 then return "none" end
  return (sims.at_least and "at least " or "") .. sims.count
end

local function tags_text(tags)
  local parts = {}
  for _, name in ipairs(sorted_keys(tags)) do
    parts[#parts + 1] = printable(name) .. " = " .. tag_value({ name = name }, tags[name])
  end
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

local function heading(change)
  local name, id = printable(change.name or "(no name tag)"), printable(tostring(change.group_id))
  if change.action == "delete" then return "- delete group " .. name .. " (" .. id .. ")" end
  if change.action == "create" then
    return "+ create group " .. name .. (change.missing_id and " (its groupId " .. printable(change.missing_id)
      .. " is not in the account: made anew)" or "")
  end
  if change.was and change.was ~= change.name then
    return "~ group " .. name .. " (renamed from " .. printable(change.was) .. ", " .. id .. ")"
  end
  return "~ group " .. name
end

-- The updates that change several groups the same way: {count, lines}, most first.
local function fleet_groups(p)
  local by_lines, order = {}, {}
  for _, change in ipairs(p.changes) do
    if change.action == "update" then
      local lines = change_lines(change)
      local key = table.concat(lines, "\n")
      if by_lines[key] == nil then
        by_lines[key] = { count = 0, lines = lines }
        order[#order + 1] = key
      end
      by_lines[key].count = by_lines[key].count + 1
    end
  end
  local groups = {}
  for _, key in ipairs(order) do
    if by_lines[key].count > 1 then groups[#groups + 1] = by_lines[key] end
  end
  table.sort(groups, function(a, b) return a.count > b.count end)
  return groups
end

--- plan_view.render(plan, {show_unmanaged = bool}) -> a list of text lines (no
-- newlines): the changes (a delete with what the group holds), the unmanaged groups
-- summarised (listed with show_unmanaged), a fleet summary of identical changes, and
-- the totals last.
function plan_view.render(p, options)
  options = options or {}
  local lines = {}
  if p.scope then lines[#lines + 1] = "# scope: " .. printable(desired.describe_scope(p.scope)) end
  for _, change in ipairs(p.changes) do
    lines[#lines + 1] = heading(change)
    if change.action == "delete" then
      local holds = change.holds or { tags = {}, namespaces = {} }
      lines[#lines + 1] = "    tags: " .. tags_text(holds.tags)
      local namespaces = #holds.namespaces > 0 and table.concat(holds.namespaces, ", ") or "none"
      lines[#lines + 1] = "    namespaces: " .. namespaces
      lines[#lines + 1] = "    SIMs: " .. sims_text(change.sims)
    end
    for _, line in ipairs(change_lines(change)) do lines[#lines + 1] = line end
  end
  local unmanaged = p.unmanaged
  if options.show_unmanaged then
    for _, group in ipairs(unmanaged.groups) do
      lines[#lines + 1] = "# unmanaged group " .. printable(group.name) .. " (" .. printable(group.group_id) .. ")"
    end
    for _, left in ipairs(unmanaged.namespaces) do
      lines[#lines + 1] = "# unmanaged namespace " .. left.namespace .. " of group " .. printable(left.name)
    end
    for _, kept in ipairs(unmanaged.sims or {}) do
      lines[#lines + 1] = "# " .. sims_word(kept.count) .. " of group " .. printable(kept.name)
        .. " outside this file, kept"
    end
  else
    if #unmanaged.groups > 0 then
      lines[#lines + 1] = "# " .. plural(#unmanaged.groups, "group") .. " outside this file, unchanged"
        .. (p.prune and "" or " (--prune deletes those within the scope)") .. "; --show-unmanaged lists them"
    end
    if #unmanaged.namespaces > 0 then
      lines[#lines + 1] = "# " .. plural(#unmanaged.namespaces, "namespace") .. " of listed groups outside "
        .. "this file, unchanged (--prune-namespaces deletes them); --show-unmanaged lists them"
    end
    local kept = 0
    for _, group in ipairs(unmanaged.sims or {}) do kept = kept + group.count end
    if kept > 0 then
      lines[#lines + 1] = "# " .. sims_word(kept) .. " of listed groups outside this file, kept "
        .. "(--prune-sims moves them out to no group); --show-unmanaged counts them by group"
    end
  end
  if #p.unnamed > 0 then
    lines[#lines + 1] = "# " .. plural(#p.unnamed, "group") .. " without a name tag, left alone "
      .. "(a document lists groups by name)"
  end
  local fleet = fleet_groups(p)
  if #fleet > 0 then
    lines[#lines + 1] = "Same change in several groups:"
    for _, same in ipairs(fleet) do
      local parts = {}
      for i, line in ipairs(same.lines) do parts[i] = line:gsub("^%s+", "") end
      lines[#lines + 1] = "  " .. same.count .. " groups: " .. table.concat(parts, ", ")
    end
  end
  if plan.empty(p) then
    lines[#lines + 1] = "No changes."
  else
    local counts = plan.counts(p)
    local sims = ""
    if counts.sims_in + counts.sims_out > 0 then
      sims = "; " .. sims_word(counts.sims_in) .. " to move in, " .. counts.sims_out .. " to move out"
    end
    lines[#lines + 1] = "Plan: " .. counts.create .. " to create, " .. counts.update .. " to change, "
      .. counts.delete .. " to delete" .. sims .. "."
  end
  return lines
end

---------------------------------------------------------------------------------------
-- JSON.

local function array(t) return setmetatable(t, core.array_mt) end

local function diff_json(d)
  local shown = { op = d.op, path = d.path, sensitive = d.sensitive or nil, ref = d.ref }
  if d.from ~= nil then shown.from = shown_value(d, "from") end
  if d.to ~= nil then shown.to = shown_value(d, "to") end
  return shown
end

local function json_tag_value(tag, value)
  if secrets.is_secret_name(tag.name) then return secrets.SENSITIVE end
  return (secrets.mask_string(value))
end

--- plan_view.json_value(plan) -> the plan as a JSON-ready table, secrets hidden.
function plan_view.json_value(p)
  local changes = array {}
  for _, change in ipairs(p.changes) do
    local tags, namespaces = array {}, array {}
    for _, tag in ipairs(change.tags) do
      tags[#tags + 1] = { op = tag.op, name = tag.name, from = tag.from and json_tag_value(tag, tag.from),
        to = tag.to and json_tag_value(tag, tag.to) }
    end
    for _, namespace in ipairs(change.namespaces) do
      local diffs = array {}
      for _, d in ipairs(namespace.diffs or {}) do diffs[#diffs + 1] = diff_json(d) end
      namespaces[#namespaces + 1] = { op = namespace.op, namespace = namespace.namespace, diffs = diffs }
    end
    local shown = { action = change.action, name = change.name, groupId = change.group_id,
      renamedFrom = change.was ~= change.name and change.was or nil, missingGroupId = change.missing_id,
      tags = tags, namespaces = namespaces }
    if change.members then
      local moves_in = array {}
      for i, move in ipairs(change.members.moves_in) do
        moves_in[i] = { simId = move.sim_id, fromGroupId = move.from_group_id, fromName = move.from_name,
          outsideScope = move.outside or nil }
      end
      shown.sims = { moveIn = moves_in, moveOut = array(desired.copy(change.members.moves_out)) }
    end
    if change.holds then
      local held = {}
      for name, value in pairs(change.holds.tags) do held[name] = json_tag_value({ name = name }, value) end
      shown.holds = { tags = held, namespaces = array(desired.copy(change.holds.namespaces)),
        sims = change.sims and { count = change.sims.count, atLeast = change.sims.at_least } or nil }
    end
    changes[#changes + 1] = shown
  end
  local groups, namespaces = array {}, array {}
  for _, group in ipairs(p.unmanaged.groups) do
    groups[#groups + 1] = { name = group.name, groupId = group.group_id }
  end
  for _, left in ipairs(p.unmanaged.namespaces) do
    namespaces[#namespaces + 1] = { name = left.name, groupId = left.group_id, namespace = left.namespace }
  end
  local kept = array {}
  for i, group in ipairs(p.unmanaged.sims or {}) do
    kept[i] = { name = group.name, groupId = group.group_id, count = group.count }
  end
  local fleet = array {}
  for _, same in ipairs(fleet_groups(p)) do
    local parts = array {}
    for i, line in ipairs(same.lines) do parts[i] = line:gsub("^%s+", "") end
    fleet[#fleet + 1] = { groups = same.count, changes = parts }
  end
  local counts = plan.counts(p)
  return {
    scope = p.scope and desired.describe_scope(p.scope) or nil,
    changes = changes,
    unmanaged = { groups = groups, namespaces = namespaces, sims = kept },
    unnamed = array(desired.copy(p.unnamed)),
    fleet = fleet,
    warnings = array(desired.copy(p.warnings or {})),
    summary = { create = counts.create, change = counts.update, delete = counts.delete, prune = p.prune,
      pruneNamespaces = p.prune_namespaces, pruneSims = p.prune_sims or false,
      allowSimsFromOutsideScope = p.allow_sims_from_outside_scope or false, simsIn = counts.sims_in,
      simsOut = counts.sims_out },
  }
end

--- plan_view.to_json(plan) -> JSON text (sorted keys, indented), secrets hidden, no
-- full settings (the per-key differences say what changes).
function plan_view.to_json(p)
  return desired.encode(plan_view.json_value(p))
end

return plan_view
