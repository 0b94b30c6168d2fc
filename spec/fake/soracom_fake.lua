-- luacheck: std ngx_lua
-- A fake Soracom Group Configuration API (/v1/groups, ten operations) for tests
-- and benchmarks, run inside nginx by spec/fake/ctl. State lives in this module's
-- tables, so nginx must run exactly one worker.
--
-- Routing uses the raw request line (ngx.var.request_uri), never $uri: nginx
-- decodes %2F and resolves "..", and the tests need ids like "..%2Fx" and tag names
-- like "a%20b%2Fc%25d" to arrive as one segment.
--
-- Error codes. Soracom documents the format {"code","message"} but no code for the
-- group API (see shared/spec/NAMESPACES.md), so all but AUM0001, AUM0002 and COM0003
-- are invented here:
--   401 AUM0001  missing or wrong X-Soracom-API-Key / X-Soracom-Token (documented code);
--                also, with other messages, an expired or revoked pair (code chosen here)
--   401 AUM0002  POST /v1/auth with wrong or incomplete credentials (documented code),
--                or, with another message, a missing or wrong mfaOTPCode
--   400 AUM0010  POST /v1/auth/switch_user to a user other than the settings'
--                switch_operator_id / switch_user_name ("Switch user not allowed"; invented)
--   400 COM0001  invalid request: body, namespace, query parameter, paging key (invented)
--   404 COM0004  group (or tag on DELETE .../tags/{name}) does not exist (invented)
--   500 COM0003  "Internal server error. message:..." (documented code)
--   404 AGW0001  no such route; 405 AGW0002 method not allowed on a route (invented)
--   429 AGW0003  beyond a rate limit (settings rate_limit, auth_rate_limit; invented)
--   404 SIM0004  SIM id or IMSI does not exist (invented)
--   404 BAT0004  batch group does not exist; 404 BAT0005 batch job does not exist in it (invented)
--   400 BAT0002  a batch job of the same action is already pending or running (invented)
--   400 BAT0003  DELETE of a batch group that has a pending or running job (invented)
--   injected faults without a body: FAKnnnn where nnnn is the HTTP status
local codec = require "fake_codec"

local concat, insert, remove, sort = table.concat, table.insert, table.remove, table.sort
local ceil, floor, max, min, random = math.ceil, math.floor, math.max, math.min, math.random
local format = string.format

local M = {}

local OPERATOR_ID = "OP0012345678"
local REQUEST_LOG_CAP = 10000 -- oldest entries are dropped past this, so a benchmark cannot exhaust memory
local SEED_MAX = 100000

-- Namespace enums of the from-soracom-cli spec. DELETE of one parameter does not
-- list SoracomOrbit.
local NAMESPACES = {
  SoracomAir = true, SoracomBeam = true, SoracomEndorse = true, SoracomFlux = true,
  SoracomFunk = true, SoracomFunnel = true, SoracomHarvest = true, SoracomHarvestFiles = true,
  SoracomKrypton = true, SoracomOrbit = true, UnifiedEndpoint = true,
}
local PARAMETER_NAMESPACES = {}
for name in pairs(NAMESPACES) do
  PARAMETER_NAMESPACES[name] = name ~= "SoracomOrbit" or nil
end

local DEFAULT_SETTINGS = {
  api_key = "test-api-key",
  token = "test-token",
  next_key_header = true, -- send X-Soracom-Next-Key when more pages remain
  link_header = true,     -- send Link: <...>; rel=next when more pages remain
  record_requests = true,
  default_limit = nil,    -- page size when the request has no limit (nil: no cap)
  max_limit = nil,        -- larger limits are clamped to this (nil: no clamp)
  -- Credentials POST /v1/auth accepts.
  auth_key_id = "keyId-test", auth_key = "secret-test",                         -- AuthKey
  email = "root@example.com", password = "root-password",                       -- root
  operator_id = OPERATOR_ID, user_name = "SORACOMAPI", sam_password = "sam-password", -- SAM user
  mfa_otp_code = nil,     -- when set, every login must carry this mfaOTPCode
  -- The one user POST /v1/auth/switch_user switches to (any valid pair may switch).
  switch_operator_id = "OP0087654321", switch_user_name = "SWITCHED",
  token_lifetime = nil,   -- seconds (may be fractional): overrides tokenTimeoutSeconds of new tokens
  latency = nil,          -- seconds slept (ngx.sleep, non-blocking) before answering any recorded request
  latency_jitter = nil,   -- up to this many seconds more, uniformly at random, per request
  rate_limit = nil,       -- {limit, window, retry_after, apis}: per operator and operation (nil: none)
  auth_rate_limit = nil,  -- {limit, window, retry_after}: POST /v1/auth per caller address (nil: none)
  -- Batch jobs (read when a job is created): pending this long, then one task per
  -- batch_task_seconds, so a 2000-task job is done in about 1.2 s.
  batch_start_delay = 0.2,
  batch_task_seconds = 0.0005,
}
local SETTING_TYPES = {
  api_key = "string", token = "string", next_key_header = "boolean", link_header = "boolean",
  record_requests = "boolean", default_limit = "number", max_limit = "number",
  auth_key_id = "string", auth_key = "string", email = "string", password = "string",
  operator_id = "string", user_name = "string", sam_password = "string",
  switch_operator_id = "string", switch_user_name = "string",
  mfa_otp_code = "string", token_lifetime = "number", latency = "number", latency_jitter = "number",
  rate_limit = "table", auth_rate_limit = "table",
  batch_start_delay = "number", batch_task_seconds = "number",
}
-- Further checks of a setting's value beyond its type; return a message when invalid
-- (rate_limit and auth_rate_limit are added with the rate limiter, below).
local function non_negative(name)
  return function(value)
    if value < 0 then
      return name .. " must be >= 0 (seconds)"
    end
  end
end
local SETTING_CHECKS = {
  latency = non_negative("latency"),
  latency_jitter = non_negative("latency_jitter"),
  batch_start_delay = non_negative("batch_start_delay"),
  batch_task_seconds = non_negative("batch_task_seconds"),
}

local state
local in_flight = 0 -- recorded requests being handled right now (a gauge: a reset leaves it alone)

-- Traffic counters of GET /_fake/stats; cleared by DELETE /_fake/stats and by a reset.
local function new_stats()
  return {
    requests = 0,              -- recorded (non-/_fake) requests received
    max_in_flight = in_flight, -- most requests in the handler at once
    status_429 = 0,            -- 429 responses, from the rate limiter or injected faults
    by_api = {},               -- "METHOD /v1/template" -> {requests, status_429, windows,
                               -- most_429_in_a_window}, routed requests only
  }
end

-- Binary search: index of the first item of sorted (ascending by key_of(item)) whose
-- key is greater than key; key itself need not be present.
local function first_after(sorted, key, key_of)
  local lo, hi = 1, #sorted + 1
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if key_of(sorted[mid]) <= key then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return lo
end

-- Ids by creation, as groups and batch groups list and page: order (live ids, oldest
-- first) and seq_of (id -> creation sequence, kept after removal so that an old paging
-- key still works and the id is never given again).
local function new_sequence()
  return { order = {}, seq_of = {}, next_seq = 1 }
end

local function sequence_add(sequence, id)
  sequence.seq_of[id] = sequence.next_seq
  sequence.next_seq = sequence.next_seq + 1
  sequence.order[#sequence.order + 1] = id
end

local function sequence_remove(sequence, id)
  for i, other in ipairs(sequence.order) do
    if other == id then
      remove(sequence.order, i)
      break
    end
  end
end

-- Index in sequence.order of the first live id created after key; nil when key was
-- never added.
local function sequence_index_after(sequence, key)
  local seq_of = sequence.seq_of
  local seq = seq_of[key]
  return seq and first_after(sequence.order, seq, function(id) return seq_of[id] end)
end

local function new_state()
  local settings = {}
  for k, v in pairs(DEFAULT_SETTINGS) do
    settings[k] = v
  end
  return {
    settings = settings,
    groups = {},         -- group id -> group record
    group_ids = new_sequence(), -- group ids by creation (see new_sequence)
    sims = {},           -- SIM id -> SIM record (see "SIMs")
    sim_of_imsi = {},    -- IMSI (any of a SIM's) -> SIM record
    sims_of = {},        -- group id -> the SIM records in that group, sorted by primary IMSI
    next_sim = 1,        -- number of the next generated SIM (its IMSI, ICCID, MSISDN, serial)
    next_extra_imsi = 1, -- number of the next generated secondary IMSI
    batch_groups = {},   -- batch group id -> batch group record (see "Batch API")
    batch_group_ids = new_sequence(), -- batch group ids by creation
    job_order = {},      -- job records of live batch groups, oldest first (GET /_fake/batch/jobs)
    active_jobs = {},    -- "operator action" -> the job of that action still pending or running
    task_faults = {},    -- SIM id -> injected task failure {status, code, message, times}
    requests = {},       -- ring buffer of recorded requests
    request_total = 0,
    faults = {},         -- injected responses, consumed in order by /v1 requests
    tokens = {},         -- issued API key -> {apiKey, token, kind, tokenTimeoutSeconds, expires_at, revoked}
    token_order = {},    -- issued API keys, oldest first
    revoked_static = {}, -- "api_key\ntoken" of logged-out static pairs
    stats = new_stats(),
    windows = {},        -- "scope subject api" -> rate-limit window (see the rate limiter)
  }
end

state = new_state()

function M.init_worker()
  -- Distinct ids across restarts of the fake.
  math.randomseed(floor(ngx.now() * 1000) + ngx.worker.pid())
end

---------------------------------------------------------------------------
-- Responses

local Reply = {}

-- Sends a complete response. Content-Length is set so that keep-alive clients never
-- see chunked encoding.
local function send(status, body, headers)
  ngx.status = status
  if headers then
    for name, value in pairs(headers) do
      ngx.header[name] = value
    end
  end
  if body then
    ngx.header["Content-Type"] = ngx.header["Content-Type"] or "application/json"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
  end
end

local function send_json(status, value, headers)
  send(status, codec.encode(value), headers)
end

local function send_error(status, code, message, headers)
  send_json(status, { code = code, message = message }, headers)
end

function Reply.bad_request(message)
  send_error(400, "COM0001", message)
end

-- The error of a missing record: status, code, message (for send_error or a task's response).
local function group_not_found(group_id)
  return 404, "COM0004", "The specified group does not exist: " .. group_id
end

local function sim_not_found(what, id) -- what: "SIM" or "subscriber"
  return 404, "SIM0004", "The specified " .. what .. " does not exist: " .. id
end

local function batch_group_not_found(id)
  return 404, "BAT0004", "The specified batch group does not exist: " .. id
end

local function batch_job_not_found(id)
  return 404, "BAT0005", "The specified batch job does not exist: " .. id
end

function Reply.group_not_found(group_id)
  send_error(group_not_found(group_id))
end

---------------------------------------------------------------------------
-- Time and ids

local function now_s()
  ngx.update_time() -- ngx.now() is cached per event-loop turn
  return ngx.now()
end

local function now_ms()
  return floor(now_s() * 1000)
end

-- A random UUID-looking string (8-4-4-4-12 hex digits).
local function random_uuid()
  return format("%08x-%04x-%04x-%04x-%04x%08x", random(0, 0x7fffffff), random(0, 0xffff),
    random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0x7fffffff))
end

-- A random id that is not a key of taken.
local function new_id(taken)
  local id
  repeat id = random_uuid() until taken[id] == nil
  return id
end

---------------------------------------------------------------------------
-- Groups

local function group_json(group)
  -- Cached: listing 10,000 groups must not re-encode each of them.
  if not group.json then
    group.json = codec.encode({
      operatorId = OPERATOR_ID,
      groupId = group.id,
      configuration = group.configuration,
      tags = group.tags,
      createdTime = group.created,
      lastModifiedTime = group.modified,
      -- The spec's example response carries these aliases too.
      createdAt = group.created,
      lastModifiedAt = group.modified,
    })
  end
  return group.json
end

-- Every change of a group or SIM moves lastModifiedTime forward, even within one
-- millisecond, and drops its cached JSON.
local function touch(record)
  record.modified = max(now_ms(), record.modified + 1)
  record.json = nil
end

local function create_group(tags, configuration)
  local id = new_id(state.group_ids.seq_of)
  local now = now_ms()
  local group = {
    id = id,
    tags = tags or {},
    configuration = configuration or {},
    created = now,
    modified = now,
  }
  state.groups[id] = group
  sequence_add(state.group_ids, id)
  state.sims_of[id] = {}
  return group
end

---------------------------------------------------------------------------
-- SIMs. A SIM record: id (simId), imsi (the primary IMSI), imsis and msisdns (primary
-- first), iccid, n (number of its generated serial), fields (the seeding request's
-- overrides of the JSON), group_id (nil: in no group), created, modified (ms) and json
-- (the Sim JSON, cached; nil once stale, so only a SIM that changed is encoded again).
-- The spec lists Sim objects for list_subscribers; the legacy Subscriber fields imsi,
-- msisdn, iccid, createdAt are included too, as the real API returns them.

local MAX_IMSIS_PER_SIM = 10

-- The Sim object of a SIM as a Lua table.
local function sim_doc(sim)
  local imsi, iccid = sim.imsi, sim.iccid
  local subscribers = {}
  for k, other in ipairs(sim.imsis) do
    subscribers[other] = { imsi = other, msisdn = sim.msisdns[k], status = "active", subscription = "plan01s" }
  end
  local doc = {
    simId = sim.id,
    imsi = imsi,
    msisdn = sim.msisdns[1],
    iccid = iccid,
    serialNumber = format("SN%013d", sim.n),
    groupId = sim.group_id,
    operatorId = OPERATOR_ID,
    status = "active",
    speedClass = "s1.standard",
    moduleType = "nano",
    type = "uicc",
    subscription = "plan01s",
    tags = { name = "" },
    terminationEnabled = false,
    capabilities = { data = true, sms = true },
    sessionStatus = { online = false },
    expiryAction = codec.null,
    createdTime = sim.created,
    lastModifiedTime = sim.modified,
    createdAt = sim.created,
    lastModifiedAt = sim.modified,
    profiles = {
      [iccid] = { iccid = iccid, primaryImsi = imsi, otaSupported = false, subscribers = subscribers },
    },
  }
  for k, v in pairs(sim.fields) do
    doc[k] = v -- seeding refuses a groupId field: membership alone sets it
  end
  return doc
end

local function sim_json(sim)
  if not sim.json then
    sim.json = codec.encode(sim_doc(sim))
  end
  return sim.json
end

-- The Subscriber object of one of a SIM's IMSIs (not cached: only the
-- /v1/subscribers/{imsi} routes answer it).
local function subscriber_json(sim, imsi)
  local doc = sim_doc(sim)
  doc.profiles, doc.capabilities = nil, nil
  for k, other in ipairs(sim.imsis) do
    if other == imsi then
      doc.imsi, doc.msisdn = imsi, sim.msisdns[k]
    end
  end
  return codec.encode(doc)
end

local function primary_imsi(sim)
  return sim.imsi
end

-- Index of the first SIM whose primary IMSI sorts after key (key need not exist).
local function first_sim_after(sims, key)
  return first_after(sims, key, primary_imsi)
end

-- Puts a SIM into group_id (nil: into no group). A binary search finds its place in
-- each group's sorted list, so a move costs O(log n) comparisons and one shift of the
-- list, never a scan of all SIMs. Returns true when the SIM's group changed.
local function place_sim(sim, group_id)
  if sim.group_id == group_id then
    return false
  end
  if sim.group_id then
    local members = state.sims_of[sim.group_id]
    local at = first_sim_after(members, sim.imsi) - 1
    assert(members[at] == sim, "SIM missing from its group's list")
    remove(members, at)
  end
  if group_id then
    local members = state.sims_of[group_id]
    insert(members, first_sim_after(members, sim.imsi), sim)
  end
  sim.group_id = group_id
  touch(sim)
  return true
end

-- Creates SIMs from a list of field tables (checked: objects, imsi 15 digits, simId or
-- iccid non-empty strings, no groupId), each with imsi_count IMSIs, in group_id (nil:
-- in no group). Returns the new records, or nil and a message (nothing added).
local function add_sims(list, group_id, imsi_count)
  -- Check explicit IMSIs and ids first so that a rejected request adds nothing.
  local chosen_imsi, chosen_id = {}, {}
  -- Marks value (nil: none) chosen; a message when existing or chosen has it already.
  local function claim(value, existing, chosen, name)
    if value == nil then
      return nil
    end
    if existing[value] or chosen[value] then
      return name .. " already exists: " .. value
    end
    chosen[value] = true
  end
  for _, fields in ipairs(list) do
    local err = claim(fields.imsi, state.sim_of_imsi, chosen_imsi, "imsi")
      or claim(fields.simId or fields.iccid, state.sims, chosen_id, "simId")
    if err then
      return nil, err
    end
  end
  local function imsi_free(imsi)
    return not state.sim_of_imsi[imsi] and not chosen_imsi[imsi]
  end

  local now = now_ms()
  local added = {}
  for i, fields in ipairs(list) do
    -- Skip generated values that a caller chose explicitly (now or earlier).
    local n, imsi, iccid, id
    repeat
      n = state.next_sim
      state.next_sim = n + 1
      imsi = fields.imsi or format("44010%010d", n)
      iccid = fields.iccid or format("89811%014d", n)
      id = fields.simId or iccid
    until (fields.imsi or imsi_free(imsi))
      and (fields.simId or fields.iccid or not (state.sims[id] or chosen_id[id]))
    local sim = {
      id = id, n = n, imsi = imsi, imsis = { imsi }, msisdns = { fields.msisdn or format("8180%08d", n) },
      iccid = iccid, fields = fields, created = now, modified = now,
    }
    for k = 2, imsi_count do
      local extra
      repeat
        extra = format("29505%010d", state.next_extra_imsi)
        state.next_extra_imsi = state.next_extra_imsi + 1
      until imsi_free(extra)
      sim.imsis[k] = extra
      sim.msisdns[k] = format("8190%08d", state.next_extra_imsi - 1)
    end
    state.sims[id] = sim
    for _, each in ipairs(sim.imsis) do
      state.sim_of_imsi[each] = sim
    end
    if group_id then
      sim.group_id = group_id
      local members = state.sims_of[group_id]
      members[#members + 1] = sim
    end
    added[i] = sim
  end
  if group_id and #added > 0 then
    sort(state.sims_of[group_id], function(a, b) return a.imsi < b.imsi end) -- once, not per SIM
  end
  return added
end

-- Deleting a group leaves its SIMs in no group (a SIM outlives its group).
local function delete_group(id)
  state.groups[id] = nil
  for _, sim in ipairs(state.sims_of[id]) do
    sim.group_id = nil
    touch(sim)
  end
  state.sims_of[id] = nil
  sequence_remove(state.group_ids, id)
end

---------------------------------------------------------------------------
-- Validation helpers

local function is_array(v)
  if type(v) ~= "table" then
    return false
  end
  if getmetatable(v) == codec.array_mt then
    return true
  end
  if v[1] == nil then
    return false
  end
  local count = 0
  for _ in pairs(v) do
    count = count + 1
  end
  return count == #v
end

local function is_object(v)
  return type(v) == "table" and getmetatable(v) ~= codec.array_mt and v[1] == nil
end

-- The decoded body of a request where it is optional: nil when there is none, false
-- and a message when it is not JSON.
local function optional_body(body)
  if not body or not body:find("%S") then
    return nil
  end
  local value, err = codec.decode(body)
  if value == nil then
    return false, "request body is not valid JSON: " .. tostring(err)
  end
  return value
end

-- Decodes a request body that what names; returns value or nil, message.
local function decode_body(body, what)
  local value, err = optional_body(body)
  if value == nil then
    return nil, "request body is required (" .. what .. ")"
  end
  if err then
    return nil, err
  end
  return value
end

-- Decodes a request body that must be a JSON object; returns it or nil, message
-- (not_object when it is JSON but no object; by default one that names what).
local function decode_object(body, what, not_object)
  local value, err = decode_body(body, what)
  if value == nil then
    return nil, err
  end
  if not is_object(value) then
    return nil, not_object or "request body must be a JSON object (" .. what .. ")"
  end
  return value
end

local function check_tags(tags)
  if not is_object(tags) then
    return "tags must be an object of strings"
  end
  for name, value in pairs(tags) do
    if type(value) ~= "string" then
      return "tag '" .. tostring(name) .. "' must have a string value"
    end
  end
end

-- Soracom limits a group's whole configuration (every namespace) to 8 KB.
local MAX_CONFIGURATION_BYTES = 8192

local function configuration_too_large(configuration)
  local size = #codec.encode(configuration)
  if size > MAX_CONFIGURATION_BYTES then
    return format("the group's configuration would be %d bytes, over the limit of %d",
      size, MAX_CONFIGURATION_BYTES)
  end
end

local function check_configuration(configuration)
  if not is_object(configuration) then
    return "configuration must be an object of namespace objects"
  end
  for ns, settings in pairs(configuration) do
    if not NAMESPACES[ns] then
      return "invalid namespace: " .. tostring(ns)
    end
    if not is_object(settings) then
      return "configuration." .. ns .. " must be an object"
    end
  end
end

-- Parses limit; returns the page size (nil: unlimited) or nil, message.
local function page_limit(args)
  local settings = state.settings
  local limit = settings.default_limit
  if args.limit ~= nil then
    limit = tonumber(args.limit)
    if not args.limit:find("^%d+$") or limit < 1 then
      return nil, "limit must be a positive integer: " .. args.limit
    end
  end
  if limit and settings.max_limit and limit > settings.max_limit then
    limit = settings.max_limit
  end
  return limit or false
end

-- Adds the "more pages" headers: X-Soracom-Next-Key and a path-relative Link that
-- repeats the other query parameters.
local function next_page_headers(path, last_key, limit, extra_params)
  local headers = {}
  if state.settings.next_key_header then
    headers["X-Soracom-Next-Key"] = last_key
  end
  if state.settings.link_header then
    local query = { "last_evaluated_key=" .. codec.percent_encode(last_key), "limit=" .. format("%d", limit) }
    for _, param in ipairs(extra_params) do
      query[#query + 1] = param[1] .. "=" .. codec.percent_encode(param[2])
    end
    headers["Link"] = "<" .. path .. "?" .. concat(query, "&") .. ">; rel=next"
  end
  return headers
end

local function send_page(items, headers)
  send(200, "[" .. concat(items, ",") .. "]", headers)
end

-- Answers a GET of a listing with one page: the items of listing.list (in paging
-- order) after the query's last_evaluated_key that its filter keeps, at most limit of
-- them, and the next-page headers when more remain. listing:
--   path         the listing's path, for Link
--   list         the items, in paging order
--   index_after  function(key): index in list of the first item after key, or nil
--                when key is unknown (400)
--   key_of       function(item): its paging key (X-Soracom-Next-Key)
--   json_of      function(item): its JSON
--   filter       (optional) function(args): matches(item) -> boolean (or true: every
--                item) and the query parameters Link repeats as {name, value} pairs;
--                or nil, message (400)
-- Parameters are checked in this order: limit, the filter's, last_evaluated_key.
local function send_listing(args, listing)
  local limit, err = page_limit(args)
  if limit == nil then
    return Reply.bad_request(err)
  end
  local matches, link_params = true, {}
  if listing.filter then
    matches, link_params = listing.filter(args)
    if matches == nil then
      return Reply.bad_request(link_params)
    end
  end
  local start = 1
  local key = args.last_evaluated_key
  if key ~= nil then
    start = listing.index_after(key)
    if not start then
      return Reply.bad_request("invalid last_evaluated_key: " .. key)
    end
  end
  local list, json_of = listing.list, listing.json_of
  local page, last, more = {}, nil, false
  for i = start, #list do
    local item = list[i]
    if matches == true or matches(item) then
      if limit and #page == limit then
        more = true
        break
      end
      page[#page + 1] = json_of(item)
      last = item
    end
  end
  local headers
  if more then
    headers = next_page_headers(listing.path, listing.key_of(last), limit, link_params)
  end
  send_page(page, headers)
end

-- The listing (for send_listing) of the records of a sequence's live ids, by creation;
-- records maps ids to records, json_of a record to its JSON.
local function sequence_listing(path, sequence, records, json_of)
  return {
    path = path,
    list = sequence.order,
    index_after = function(key) return sequence_index_after(sequence, key) end,
    key_of = function(id) return id end,
    json_of = function(id) return json_of(records[id]) end,
  }
end

---------------------------------------------------------------------------
-- The ten operations

local api = {}

-- The tag filter of GET /v1/groups (see send_listing's filter).
local function group_tag_filter(args)
  local tag_name, tag_value, mode = args.tag_name, args.tag_value, args.tag_value_match_mode
  if (tag_name == nil) ~= (tag_value == nil) then
    return nil, "tag_name and tag_value must be given together"
  end
  if mode ~= nil and mode ~= "exact" and mode ~= "prefix" then
    return nil, "tag_value_match_mode must be exact or prefix: " .. mode
  end
  if not tag_name then
    return true, {}
  end
  local prefix, groups = mode == "prefix", state.groups
  local function matches(id)
    local value = groups[id].tags[tag_name]
    return value ~= nil and (value == tag_value or (prefix and value:sub(1, #tag_value) == tag_value))
  end
  local link_params = { { "tag_name", tag_name }, { "tag_value", tag_value } }
  if mode then
    link_params[3] = { "tag_value_match_mode", mode }
  end
  return matches, link_params
end

function api.list_groups(_, _, args)
  local listing = sequence_listing("/v1/groups", state.group_ids, state.groups, group_json)
  listing.filter = group_tag_filter
  send_listing(args, listing)
end

function api.create_group(_, _, _, body)
  local doc = {}
  if body and body:find("%S") then
    local err
    doc, err = decode_object(body, "CreateGroupRequest", "request body must be a JSON object")
    if doc == nil then
      return Reply.bad_request(err)
    end
  end
  local err = (doc.tags ~= nil and check_tags(doc.tags))
    or (doc.configuration ~= nil and check_configuration(doc.configuration))
    or (doc.configuration ~= nil and configuration_too_large(doc.configuration))
  if err then
    return Reply.bad_request(err)
  end
  send(201, group_json(create_group(doc.tags, doc.configuration)))
end

function api.get_group(group)
  send(200, group_json(group))
end

function api.delete_group(group)
  delete_group(group.id)
  send(204)
end

function api.put_config(group, params, _, body)
  local items, err = decode_body(body, "array of {key, value}")
  if items == nil then
    return Reply.bad_request(err)
  end
  if not is_array(items) then
    return Reply.bad_request("request body must be an array of {key, value}")
  end
  local settings = {}
  for i, item in ipairs(items) do
    if not is_object(item) or type(item.key) ~= "string" or item.value == nil then
      return Reply.bad_request(format("item %d must be an object with a string key and a value", i))
    end
    settings[item.key] = item.value
  end
  -- PUT replaces the whole namespace: keys left out are reset (the spec's warning).
  local previous = group.configuration[params.namespace]
  group.configuration[params.namespace] = settings
  local too_large = configuration_too_large(group.configuration)
  if too_large then
    group.configuration[params.namespace] = previous
    return Reply.bad_request(too_large)
  end
  touch(group)
  send(200, group_json(group))
end

function api.delete_config_namespace(group, params)
  if group.configuration[params.namespace] ~= nil then
    group.configuration[params.namespace] = nil
    touch(group)
  end
  send(204)
end

function api.delete_config(group, params)
  local settings = group.configuration[params.namespace]
  if settings and settings[params.name] ~= nil then
    settings[params.name] = nil
    touch(group)
  end
  send(204)
end

function api.list_subscribers(group, _, args)
  local sims = state.sims_of[group.id]
  send_listing(args, {
    path = "/v1/groups/" .. codec.percent_encode(group.id) .. "/subscribers",
    list = sims,
    index_after = function(key) return first_sim_after(sims, key) end, -- any key will do
    key_of = primary_imsi,
    json_of = sim_json,
  })
end

function api.put_tags(group, _, _, body)
  local items, err = decode_body(body, "array of {tagName, tagValue}")
  if items == nil then
    return Reply.bad_request(err)
  end
  if not is_array(items) then
    return Reply.bad_request("request body must be an array of {tagName, tagValue}")
  end
  for i, item in ipairs(items) do
    if not is_object(item) or type(item.tagName) ~= "string" or type(item.tagValue) ~= "string" then
      return Reply.bad_request(format("item %d must be an object with string tagName and tagValue", i))
    end
  end
  for _, item in ipairs(items) do
    group.tags[item.tagName] = item.tagValue
  end
  touch(group)
  send(200, group_json(group))
end

function api.delete_tag(group, params)
  if group.tags[params.tag_name] == nil then
    return send_error(404, "COM0004", "The specified tag does not exist: " .. params.tag_name)
  end
  group.tags[params.tag_name] = nil
  touch(group)
  send(204)
end

---------------------------------------------------------------------------
-- SIM membership. A direct call and a batch task share each action, so that a task
-- does exactly what its direct call would. An action returns nothing on success, else
-- the error's status, code, message.

local function error_json(code, message)
  return codec.encode({ code = code, message = message })
end

-- set_group with the decoded request body (nil when there was none).
local function set_group_action(sim, request)
  if request == nil then
    return 400, "COM0001", "request body is required (SetGroupRequest)"
  end
  if not is_object(request) or type(request.groupId) ~= "string" then
    return 400, "COM0001", "groupId must be a string (SetGroupRequest)"
  end
  if not state.groups[request.groupId] then
    return group_not_found(request.groupId)
  end
  place_sim(sim, request.groupId) -- the group it already has: unchanged
end

local function unset_group_action(sim)
  place_sim(sim, nil) -- in no group already: unchanged
end

-- POST /v1/sims/{sim_id}/set_group and /v1/subscribers/{imsi}/set_group (sim looked up
-- by handle_v1); answer_json(sim) gives the 200 body.
local function set_group_call(sim, body, answer_json)
  local request, err = optional_body(body)
  if err then -- (not `request == false`: that is also the JSON body `false`)
    return Reply.bad_request(err)
  end
  local status, code, message = set_group_action(sim, request)
  if status then
    return send_error(status, code, message)
  end
  send(200, answer_json(sim))
end

function api.set_sim_group(sim, _, _, body)
  set_group_call(sim, body, sim_json)
end

function api.unset_sim_group(sim)
  unset_group_action(sim)
  send(200, sim_json(sim))
end

function api.set_subscriber_group(sim, params, _, body)
  set_group_call(sim, body, function() return subscriber_json(sim, params.imsi) end)
end

-- As the spec says: 404 for a subscriber in no group (unlike a SIM id's unset_group).
function api.unset_subscriber_group(sim, params)
  if not sim.group_id then
    return send_error(404, "SIM0005", "The subscriber does not belong to a group: " .. params.imsi)
  end
  unset_group_action(sim)
  send(200, subscriber_json(sim, params.imsi))
end

function api.get_sim(sim)
  send(200, sim_json(sim))
end

---------------------------------------------------------------------------
-- Batch API. A batch group record: id, name, description, created (s), jobs (its job
-- records, oldest first), job_index (job id -> index in jobs). A job record: id, group
-- (its batch group record), name, description, abort_on_failure, verb (a key of
-- BATCH_ACTIONS), key ("operator action": at most one such job pending or running),
-- tasks, created, start_at, task_seconds (the settings when it was created), done
-- (tasks run), successes, errors, updated, and once over: status (completed, failed or
-- aborted), finished, error_message. A task: id, sim_id, request (as submitted), status
-- (pending, success, error), and once run: response_status, response_body (JSON
-- text), started, finished, json (cached: a run task never changes).
--
-- Nothing runs in the background: before any request is handled, advance_active_jobs
-- runs the tasks whose time has come. Task i (from 1) runs from
-- start_at + (i - 1) * task_seconds to start_at + i * task_seconds. Times in the JSON
-- are whole seconds, as in the spec's examples.

local BATCH_MAX_TASKS = 10000
local BATCH_NAME_MAX, BATCH_DESCRIPTION_MAX = 100, 500 -- characters
local TASK_STATUSES = { pending = true, success = true, error = true }
-- The actions a task may call, by the last segment of /v1/sims/{sim_id}/VERB (the real
-- Batch API supports a few more). Checked against the routes below.
local BATCH_ACTIONS = {
  set_group = "POST /v1/sims/{sim_id}/set_group",
  unset_group = "POST /v1/sims/{sim_id}/unset_group",
}

-- UTF-8 characters in s (continuation bytes not counted).
local function char_count(s)
  return #s - select(2, s:gsub("[\128-\191]", ""))
end

local function check_text(value, name, min_chars, max_chars)
  if value == nil and min_chars == 0 then
    return nil
  end
  if type(value) ~= "string" then
    return name .. " must be a string"
  end
  local chars = char_count(value)
  if chars < min_chars or chars > max_chars then
    return format("%s must be %d to %d characters long", name, min_chars, max_chars)
  end
end

local function batch_group_json(bg)
  return codec.encode({
    batchGroupId = bg.id,
    batchGroupName = bg.name,
    description = bg.description,
    createdTime = floor(bg.created),
    updatedTime = floor(bg.created), -- the fake has no update route
  })
end

local function job_status(job, now)
  return job.status or (now < job.start_at and "pending" or "running")
end

local function job_json(job, now)
  return codec.encode({
    jobId = job.id,
    batchGroupId = job.group.id,
    jobName = job.name,
    description = job.description,
    abortOnFailure = job.abort_on_failure,
    status = job_status(job, now),
    summary = { pending = #job.tasks - job.done, success = job.successes, error = job.errors },
    createdTime = floor(job.created),
    updatedTime = floor(job.updated),
    finishedTime = job.finished and floor(job.finished),
    errorMessage = job.error_message,
  })
end

local function task_json(task)
  if task.json then
    return task.json
  end
  local doc = { taskId = task.id, status = task.status, request = task.request }
  if task.status == "pending" then
    return codec.encode(doc)
  end
  doc.response = { statusCode = task.response_status, body = codec.raw(task.response_body) }
  doc.startedTime, doc.finishedTime = floor(task.started), floor(task.finished)
  task.json = codec.encode(doc)
  return task.json
end

-- Runs one task now: an injected task fault for its SIM, or the action.
local function run_task(job, task)
  local status, code, message
  local fault = state.task_faults[task.sim_id]
  local sim = state.sims[task.sim_id]
  if fault then
    if fault.times then
      fault.times = fault.times - 1
      if fault.times <= 0 then
        state.task_faults[task.sim_id] = nil
      end
    end
    status, code, message = fault.status, fault.code, fault.message
  elseif not sim then
    status, code, message = sim_not_found("SIM", task.sim_id)
  elseif job.verb == "set_group" then
    status, code, message = set_group_action(sim, task.request.body)
  else
    status, code, message = unset_group_action(sim)
  end
  if status then
    task.status, task.response_status, task.response_body = "error", status, error_json(code, message)
  else
    task.status, task.response_status, task.response_body = "success", 200, sim_json(sim)
  end
  return message
end

local function finish_job(job, status, at)
  job.status, job.finished, job.updated = status, at, at
  if state.active_jobs[job.key] == job then
    state.active_jobs[job.key] = nil
  end
end

-- Runs the tasks of job due by now; ends the job after its last task (or, with
-- abortOnFailure, its first failure: the rest stay pending).
local function advance(job, now)
  if job.status or now < job.start_at then
    return
  end
  local tasks, seconds = job.tasks, job.task_seconds
  local due = #tasks
  if seconds > 0 then
    due = min(due, floor((now - job.start_at) / seconds))
  end
  for i = job.done + 1, due do
    local task = tasks[i]
    task.started = job.start_at + (i - 1) * seconds
    task.finished = task.started + seconds
    local failure = run_task(job, task)
    job.done, job.updated = i, task.finished
    if failure then
      job.errors = job.errors + 1
      if job.abort_on_failure then
        job.error_message = format("aborted at task %d (SIM %s): %s", i, task.sim_id, failure)
        return finish_job(job, "aborted", task.finished)
      end
    else
      job.successes = job.successes + 1
    end
  end
  if job.done == #tasks then
    if job.errors > 0 then
      job.error_message = format("%d of %d tasks failed", job.errors, #tasks)
    end
    finish_job(job, job.errors > 0 and "failed" or "completed", job.start_at + #tasks * seconds)
  end
end

-- Every job not over is the active one of its action (create_job refuses a second), so
-- this brings every job up to date.
local function advance_active_jobs()
  if next(state.active_jobs) == nil then
    return
  end
  local now = now_s()
  for _, job in pairs(state.active_jobs) do
    advance(job, now)
  end
end

local batch = {}

function batch.list_groups(_, _, args)
  send_listing(args, sequence_listing("/v1/batch_groups", state.batch_group_ids, state.batch_groups,
    batch_group_json))
end

function batch.create_group(_, _, _, body)
  local doc, err = decode_object(body, "CreateBatchGroupRequest")
  if doc == nil then
    return Reply.bad_request(err)
  end
  err = check_text(doc.batchGroupName, "batchGroupName", 1, BATCH_NAME_MAX)
    or check_text(doc.description, "description", 0, BATCH_DESCRIPTION_MAX)
  if err then
    return Reply.bad_request(err)
  end
  local bg = {
    id = new_id(state.batch_group_ids.seq_of),
    name = doc.batchGroupName,
    description = doc.description,
    created = now_s(),
    jobs = {},
    job_index = {},
  }
  state.batch_groups[bg.id] = bg
  sequence_add(state.batch_group_ids, bg.id)
  send(200, batch_group_json(bg))
end

function batch.get_group(bg)
  send(200, batch_group_json(bg))
end

function batch.delete_group(bg)
  for _, job in ipairs(bg.jobs) do
    if not job.status then
      return send_error(400, "BAT0003", "The batch group has a pending or running batch job: " .. job.id)
    end
  end
  state.batch_groups[bg.id] = nil
  sequence_remove(state.batch_group_ids, bg.id)
  local kept = {}
  for _, job in ipairs(state.job_order) do
    if job.group ~= bg then
      kept[#kept + 1] = job
    end
  end
  state.job_order = kept
  send(204)
end

function batch.list_jobs(bg, _, args)
  local now = now_s()
  send_listing(args, {
    path = "/v1/batch_groups/" .. codec.percent_encode(bg.id) .. "/jobs",
    list = bg.jobs,
    index_after = function(key)
      local index = bg.job_index[key]
      return index and index + 1
    end,
    key_of = function(job) return job.id end,
    json_of = function(job) return job_json(job, now) end,
  })
end

-- The task list of a CreateBatchJobRequest: tasks (sim_id, request), verb, or nil, message.
local function parse_tasks(list)
  if not is_array(list) or #list == 0 then
    return nil, "tasks must be a non-empty array of {request = {method, path, body?}}"
  end
  if #list > BATCH_MAX_TASKS then
    return nil, format("a batch job takes at most %d tasks, not %d", BATCH_MAX_TASKS, #list)
  end
  local tasks, verb, first_action = {}, nil, nil
  for i, item in ipairs(list) do
    local request = is_object(item) and item.request
    if not is_object(request) or type(request.method) ~= "string" or type(request.path) ~= "string" then
      return nil, format("tasks[%d] must be {request = {method, path, body?}} with string method and path", i)
    end
    local raw_id, this_verb = request.path:match("^/v1/sims/([^/?#]+)/([%w_]+)$")
    local sim_id = raw_id and codec.percent_decode(raw_id)
    local action = BATCH_ACTIONS[this_verb]
    if request.method ~= "POST" or not sim_id or not action then
      return nil, format("tasks[%d]: %s %s is not an action the fake's Batch API runs (%s, %s)",
        i, request.method, request.path, BATCH_ACTIONS.set_group, BATCH_ACTIONS.unset_group)
    end
    if verb and this_verb ~= verb then
      return nil, format("a batch job runs one action: tasks[1] is %s, tasks[%d] %s", first_action, i, action)
    end
    verb, first_action = this_verb, action
    tasks[i] = { id = i, sim_id = sim_id, request = request, status = "pending" }
  end
  return tasks, verb
end

function batch.create_job(bg, _, _, body, credentials)
  local doc, err = decode_object(body, "CreateBatchJobRequest")
  if doc == nil then
    return Reply.bad_request(err)
  end
  err = check_text(doc.jobName, "jobName", 0, BATCH_NAME_MAX)
    or check_text(doc.description, "description", 0, BATCH_DESCRIPTION_MAX)
    or (doc.abortOnFailure ~= nil and type(doc.abortOnFailure) ~= "boolean" and "abortOnFailure must be a boolean")
  if err then
    return Reply.bad_request(err)
  end
  local tasks, verb = parse_tasks(doc.tasks)
  if not tasks then
    return Reply.bad_request(verb)
  end
  local action = BATCH_ACTIONS[verb]
  local key = credentials.operatorId .. " " .. action
  local running = state.active_jobs[key]
  if running then
    return send_error(400, "BAT0002", format("A batch job of %s is already %s for this operator: %s",
      action, job_status(running, now_s()), running.id))
  end
  local now, settings = now_s(), state.settings
  local job = {
    id = new_id(bg.job_index),
    group = bg,
    name = doc.jobName,
    description = doc.description,
    abort_on_failure = doc.abortOnFailure or false,
    verb = verb,
    key = key,
    tasks = tasks,
    created = now,
    updated = now,
    start_at = now + settings.batch_start_delay,
    task_seconds = settings.batch_task_seconds,
    done = 0,
    successes = 0,
    errors = 0,
  }
  bg.jobs[#bg.jobs + 1] = job
  bg.job_index[job.id] = #bg.jobs
  state.job_order[#state.job_order + 1] = job
  state.active_jobs[key] = job
  send(200, job_json(job, now))
end

function batch.get_job(job)
  send(200, job_json(job, now_s()))
end

-- The status filter of a job's task list (see send_listing's filter).
local function task_status_filter(args)
  local wanted = args.status
  if wanted == nil then
    return true, {}
  end
  if not TASK_STATUSES[wanted] then
    return nil, "status must be pending, success or error: " .. wanted
  end
  return function(task) return task.status == wanted end, { { "status", wanted } }
end

function batch.list_tasks(job, _, args)
  local tasks = job.tasks
  send_listing(args, {
    path = "/v1/batch_groups/" .. codec.percent_encode(job.group.id) .. "/jobs/"
      .. codec.percent_encode(job.id) .. "/tasks",
    list = tasks,
    index_after = function(key) -- task ids are 1..#tasks, their indexes
      local after = key:find("^%d+$") and tonumber(key)
      return after and after <= #tasks and after + 1 or nil
    end,
    key_of = function(task) return format("%d", task.id) end,
    json_of = task_json,
    filter = task_status_filter,
  })
end

local function allowed_methods(handlers)
  local names = {}
  for name in pairs(handlers) do
    names[#names + 1] = name
  end
  sort(names)
  return concat(names, ", ")
end

---------------------------------------------------------------------------
-- Authentication: the static pair of the settings api_key/token, and the pairs
-- POST /v1/auth issues. A pair is valid while not revoked (logout, control path)
-- and, for issued pairs, not expired.

local TOKEN_TIMEOUT_DEFAULT, TOKEN_TIMEOUT_MAX = 86400, 172800
local TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local TOKEN_LENGTH = 160
local AUTH_STRING_FIELDS = { "authKeyId", "authKey", "email", "password", "operatorId", "userName", "mfaOTPCode" }

local function new_api_key()
  local key
  repeat key = "api-" .. random_uuid() until state.tokens[key] == nil
  return key
end

local function new_token()
  local chars = {}
  for i = 1, TOKEN_LENGTH do
    local n = random(1, #TOKEN_CHARS)
    chars[i] = TOKEN_CHARS:sub(n, n)
  end
  return concat(chars)
end

local function static_pair_id(api_key, token)
  return api_key .. "\n" .. token
end

-- Checks X-Soracom-API-Key / X-Soracom-Token. Returns the issued token record, or
-- {static = true, id, operatorId} for the settings' pair (its operator is the setting
-- operator_id); otherwise sends a 401 and returns nil. operatorId is the pair's operator.
local function authenticate()
  local api_key = ngx.var.http_x_soracom_api_key
  local token = ngx.var.http_x_soracom_token
  if not api_key or not token then
    send_error(401, "AUM0001", "Token is required in the request header")
    return nil
  end
  local settings = state.settings
  if api_key == settings.api_key and token == settings.token then
    local id = static_pair_id(api_key, token)
    if state.revoked_static[id] then
      send_error(401, "AUM0001", "The API key and token have been revoked")
      return nil
    end
    return { static = true, id = id, operatorId = settings.operator_id }
  end
  local issued = state.tokens[api_key]
  if not issued or issued.token ~= token then
    send_error(401, "AUM0001", "Invalid API key or token")
    return nil
  end
  if issued.revoked then
    send_error(401, "AUM0001", "The API key and token have been revoked")
    return nil
  end
  if now_s() >= issued.expires_at then
    send_error(401, "AUM0001", "The token has expired")
    return nil
  end
  return issued
end

-- The kind of login the present fields ask for: exactly one kind's fields, all of
-- them; nil when they are incomplete or mixed.
local function login_kind(req)
  local key = req.authKeyId ~= nil or req.authKey ~= nil
  local root = req.email ~= nil
  local sam = req.operatorId ~= nil or req.userName ~= nil
  if key and not root and not sam and req.password == nil
      and req.authKeyId ~= nil and req.authKey ~= nil then
    return "authKey"
  elseif root and not key and not sam and req.password ~= nil then
    return "root"
  elseif sam and not key and not root and req.password ~= nil
      and req.operatorId ~= nil and req.userName ~= nil then
    return "sam"
  end
  return nil
end

local function credentials_match(kind, req, settings)
  if kind == "authKey" then
    return req.authKeyId == settings.auth_key_id and req.authKey == settings.auth_key
  elseif kind == "root" then
    return req.email == settings.email and req.password == settings.password
  end
  return req.operatorId == settings.operator_id and req.userName == settings.user_name
    and req.password == settings.sam_password
end

local auth = {}

-- POST /v1/auth (AuthRequest) -> 200 AuthResponse
function auth.login(_, _, _, body)
  local req, err = decode_object(body, "AuthRequest")
  if req == nil then
    return Reply.bad_request(err)
  end
  for name, value in pairs(req) do
    if value == codec.null then
      req[name] = nil -- null counts as absent
    end
  end
  for _, name in ipairs(AUTH_STRING_FIELDS) do
    if req[name] ~= nil and type(req[name]) ~= "string" then
      return Reply.bad_request(name .. " must be a string")
    end
  end
  local timeout = req.tokenTimeoutSeconds
  if timeout == nil then
    timeout = TOKEN_TIMEOUT_DEFAULT
  elseif type(timeout) ~= "number" or timeout ~= floor(timeout)
      or timeout < 1 or timeout > TOKEN_TIMEOUT_MAX then
    return Reply.bad_request("tokenTimeoutSeconds must be an integer between 1 and " .. TOKEN_TIMEOUT_MAX)
  end

  local settings = state.settings
  local kind = login_kind(req)
  if not kind or not credentials_match(kind, req, settings) then
    return send_error(401, "AUM0002", "Invalid username/password supplied.")
  end
  if settings.mfa_otp_code ~= nil and req.mfaOTPCode ~= settings.mfa_otp_code then
    local message = req.mfaOTPCode == nil and "MFA OTP code is required." or "Invalid MFA OTP code supplied."
    return send_error(401, "AUM0002", message)
  end

  local record = {
    apiKey = new_api_key(),
    token = new_token(),
    kind = kind,
    userName = kind == "sam" and req.userName or nil,
    operatorId = settings.operator_id, -- as at login: a later change of the setting keeps it
    tokenTimeoutSeconds = timeout,
    expires_at = now_s() + (settings.token_lifetime or timeout),
    revoked = false,
  }
  state.tokens[record.apiKey] = record
  state.token_order[#state.token_order + 1] = record.apiKey
  send_json(200, {
    apiKey = record.apiKey,
    token = record.token,
    operatorId = record.operatorId,
    userName = record.userName,
  })
end

local SWITCH_TIMEOUT_DEFAULT, SWITCH_TIMEOUT_MIN, SWITCH_TIMEOUT_MAX = 3600, 180, 3600

-- POST /v1/auth/switch_user (SwitchUserRequest) with a valid pair -> 200 AuthResponse
-- of the switched user: a new pair of the settings' switch_operator_id.
function auth.switch_user(_, _, _, body)
  local req, err = decode_object(body, "SwitchUserRequest")
  if req == nil then
    return Reply.bad_request(err)
  end
  local timeout = req.tokenTimeoutSeconds
  if timeout == nil or timeout == codec.null then
    timeout = SWITCH_TIMEOUT_DEFAULT
  elseif type(timeout) ~= "number" or timeout ~= floor(timeout)
      or timeout < SWITCH_TIMEOUT_MIN or timeout > SWITCH_TIMEOUT_MAX then
    return Reply.bad_request("tokenTimeoutSeconds must be an integer between " .. SWITCH_TIMEOUT_MIN
      .. " and " .. SWITCH_TIMEOUT_MAX)
  end
  local settings = state.settings
  if req.operatorId ~= settings.switch_operator_id or req.userName ~= settings.switch_user_name then
    return send_error(400, "AUM0010", "Switch user not allowed.")
  end
  local record = {
    apiKey = new_api_key(),
    token = new_token(),
    kind = "switch",
    userName = req.userName,
    operatorId = req.operatorId,
    tokenTimeoutSeconds = timeout,
    expires_at = now_s() + (settings.token_lifetime or timeout),
    revoked = false,
  }
  state.tokens[record.apiKey] = record
  state.token_order[#state.token_order + 1] = record.apiKey
  send_json(200, { apiKey = record.apiKey, token = record.token, operatorId = record.operatorId,
    userName = record.userName })
end

-- POST /v1/auth/logout -> 204; revokes the pair it was called with.
function auth.logout(_, _, _, _, pair)
  if pair.static then
    state.revoked_static[pair.id] = true
  else
    pair.revoked = true
  end
  send(204)
end

---------------------------------------------------------------------------
-- Routes. Each operation is its method and path template ("GET /v1/groups/{group_id}"):
-- the name stats and rate limits use. A {param} matches one non-empty decoded segment.
-- Handlers receive (record, path params, query args, body, credentials): record is what
-- the template names, looked up (404 first): the group of {group_id}, the SIM of {sim_id}
-- or {imsi}, the batch group of {batch_group_id} or its job of {job_id}; credentials as
-- authenticate returns them.

local ROUTES = {
  { path = "/v1/auth", login = true, POST = auth.login },
  { path = "/v1/auth/logout", POST = auth.logout },
  { path = "/v1/auth/switch_user", POST = auth.switch_user },
  { path = "/v1/groups", GET = api.list_groups, POST = api.create_group },
  { path = "/v1/groups/{group_id}", GET = api.get_group, DELETE = api.delete_group },
  { path = "/v1/groups/{group_id}/configuration/{namespace}",
    PUT = api.put_config, DELETE = api.delete_config_namespace },
  { path = "/v1/groups/{group_id}/configuration/{namespace}/{name}", DELETE = api.delete_config },
  { path = "/v1/groups/{group_id}/subscribers", GET = api.list_subscribers },
  { path = "/v1/groups/{group_id}/tags", PUT = api.put_tags },
  { path = "/v1/groups/{group_id}/tags/{tag_name}", DELETE = api.delete_tag },
  { path = "/v1/sims/{sim_id}", GET = api.get_sim },
  { path = "/v1/sims/{sim_id}/set_group", POST = api.set_sim_group },
  { path = "/v1/sims/{sim_id}/unset_group", POST = api.unset_sim_group },
  { path = "/v1/subscribers/{imsi}/set_group", POST = api.set_subscriber_group },
  { path = "/v1/subscribers/{imsi}/unset_group", POST = api.unset_subscriber_group },
  { path = "/v1/batch_groups", GET = batch.list_groups, POST = batch.create_group },
  { path = "/v1/batch_groups/{batch_group_id}", GET = batch.get_group, DELETE = batch.delete_group },
  { path = "/v1/batch_groups/{batch_group_id}/jobs", GET = batch.list_jobs, POST = batch.create_job },
  { path = "/v1/batch_groups/{batch_group_id}/jobs/{job_id}", GET = batch.get_job },
  { path = "/v1/batch_groups/{batch_group_id}/jobs/{job_id}/tasks", GET = batch.list_tasks },
}
local HTTP_METHODS = { "DELETE", "GET", "POST", "PUT" }

local routes_by_length = {} -- segment count -> routes
for _, route in ipairs(ROUTES) do
  route.segments = assert(codec.split_path(route.path))
  route.params = {} -- segment index -> parameter name, or false for a literal
  for i, pattern in ipairs(route.segments) do
    route.params[i] = pattern:match("^{(.+)}$") or false
  end
  route.handlers, route.apis = {}, {}
  for _, method in ipairs(HTTP_METHODS) do
    if route[method] then
      route.handlers[method] = route[method]
      route.apis[method] = method .. " " .. route.path
    end
  end
  local n = #route.segments
  routes_by_length[n] = routes_by_length[n] or {}
  insert(routes_by_length[n], route)
end

-- The route of decoded path segments and its path parameters, or nil.
local function find_route(segments)
  for _, route in ipairs(routes_by_length[#segments] or {}) do
    local params, names = {}, route.params
    for i, pattern in ipairs(route.segments) do
      local name = names[i]
      local segment = segments[i]
      if name and segment ~= "" then
        params[name] = segment
      elseif pattern ~= segment then
        params = nil
        break
      end
    end
    if params then
      return route, params
    end
  end
end

---------------------------------------------------------------------------
-- Rate limits: rate_limit per operator and operation, auth_rate_limit per caller
-- address for POST /v1/auth. Fixed windows: one starts at the first request after the
-- previous one ended and lasts `window` seconds; each admits `limit` requests.

local API_NAMES = {} -- "METHOD /v1/template" -> true for every routed operation
for _, route in ipairs(ROUTES) do
  for _, name in pairs(route.apis) do
    API_NAMES[name] = true
  end
end
for _, action in pairs(BATCH_ACTIONS) do
  assert(API_NAMES[action], "batch action without a route: " .. action)
end
local LOGIN_API = "POST /v1/auth"
local RATE_LIMIT_CODE = "AGW0003" -- invented, like the other AGW (gateway) codes

local function is_count_limit(v)
  return type(v) == "number" and v >= 0 and v == floor(v)
end

-- Message for a bad limit/window pair of a setting (where), or nil. required: both present.
local function check_limit_fields(value, where, required)
  if (value.limit ~= nil or required) and not is_count_limit(value.limit) then
    return where .. ".limit must be an integer >= 0"
  end
  if (value.window ~= nil or required) and not (type(value.window) == "number" and value.window > 0) then
    return where .. ".window must be a number of seconds > 0"
  end
end

local function rate_limit_check(name, fields)
  return function(value)
    if not is_object(value) then
      return name .. " must be an object {limit, window, ...} or null"
    end
    for field in pairs(value) do
      if not fields[field] then
        return "unknown field " .. name .. "." .. tostring(field)
      end
    end
    local err = check_limit_fields(value, name, true)
    if err then
      return err
    end
    if value.retry_after ~= nil and type(value.retry_after) ~= "boolean" then
      return name .. ".retry_after must be a boolean"
    end
    if value.apis == nil then
      return nil
    end
    if not is_object(value.apis) then
      return name .. ".apis must be an object {[\"METHOD /v1/template\"] = {limit, window}}"
    end
    for api_name, override in pairs(value.apis) do
      local where = name .. ".apis[\"" .. tostring(api_name) .. "\"]"
      if not API_NAMES[api_name] or api_name == LOGIN_API then
        return where .. ": no such operation (POST /v1/auth has auth_rate_limit)"
      end
      if not is_object(override) then
        return where .. " must be an object {limit, window}"
      end
      for field in pairs(override) do
        if field ~= "limit" and field ~= "window" then
          return "unknown field " .. where .. "." .. tostring(field)
        end
      end
      err = check_limit_fields(override, where, false)
      if err then
        return err
      end
    end
  end
end
SETTING_CHECKS.rate_limit = rate_limit_check("rate_limit",
  { limit = true, window = true, retry_after = true, apis = true })
SETTING_CHECKS.auth_rate_limit = rate_limit_check("auth_rate_limit",
  { limit = true, window = true, retry_after = true })

-- Forgets the windows of one scope ("operator" or "address"), or of all when nil.
local function clear_windows(scope)
  for key, window in pairs(state.windows) do
    if scope == nil or window.scope == scope then
      state.windows[key] = nil
    end
  end
end

-- Whole seconds until a window ends, rounded up (so that waiting that long always finds
-- the next window), at least 1.
local function seconds_before_refresh(window, now)
  return max(1, ceil(window.ends_at - now))
end

-- Counts one request of subject (operator id or caller address) to the operation
-- api_name against its window under config (the rate_limit or auth_rate_limit
-- setting), and sets the three X-Soracom-Ratelimit-* headers. Beyond the limit it
-- sends the 429 instead and returns false; counters are the operation's stats.
local function admit(config, scope, subject, api_name, counters)
  local now = now_s()
  local key = scope .. " " .. subject .. " " .. api_name
  local window = state.windows[key]
  if not window or now >= window.ends_at then
    local override = config.apis and config.apis[api_name] or {}
    local length = override.window or config.window
    window = {
      scope = scope, subject = subject, api = api_name,
      limit = override.limit or config.limit, length = length,
      ends_at = now + length, used = 0, status_429 = 0,
    }
    state.windows[key] = window
    counters.windows = counters.windows + 1
  end
  local admitted = window.used < window.limit
  if admitted then
    window.used = window.used + 1
  end
  local refresh = seconds_before_refresh(window, now)
  local header = ngx.header
  header["X-Soracom-Ratelimit-Limit"] = window.limit
  header["X-Soracom-Ratelimit-Remaining"] = window.limit - window.used
  header["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = refresh
  if admitted then
    return true
  end
  window.status_429 = window.status_429 + 1
  counters.status_429 = counters.status_429 + 1
  counters.most_429_in_a_window = max(counters.most_429_in_a_window, window.status_429)
  if config.retry_after ~= false then
    header["Retry-After"] = refresh
  end
  send_error(429, RATE_LIMIT_CODE, format("Rate limit exceeded for %s (limit %d per %g s). Retry in %d s.",
    api_name, window.limit, window.length, refresh))
  return false
end

-- Counts a routed request in the stats; returns its counters.
local function count_api(api_name)
  local by_api = state.stats.by_api
  local counters = by_api[api_name]
  if not counters then
    counters = { requests = 0, status_429 = 0, windows = 0, most_429_in_a_window = 0 }
    by_api[api_name] = counters
  end
  counters.requests = counters.requests + 1
  return counters
end

local function handle_v1(method, segments, query, body)
  -- /v1/auth* is routed before any credential check (a login carries none); every
  -- other path needs valid credentials first, even to learn that it has no route.
  local auth_path = segments[2] == "auth"
  local credentials
  if not auth_path then
    credentials = authenticate()
    if not credentials then
      return
    end
  end
  local route, params = find_route(segments)
  if not route then
    return send_error(404, "AGW0001", "Not found")
  end
  local handler = route.handlers[method]
  if not handler then
    return send_error(405, "AGW0002", "Method not allowed", { Allow = allowed_methods(route.handlers) })
  end
  if auth_path and not route.login then
    credentials = authenticate()
    if not credentials then
      return
    end
  end
  local api_name = route.apis[method]
  local counters = count_api(api_name)
  local settings = state.settings
  if route.login then
    if settings.auth_rate_limit
        and not admit(settings.auth_rate_limit, "address", ngx.var.remote_addr, api_name, counters) then
      return
    end
  elseif settings.rate_limit
      and not admit(settings.rate_limit, "operator", credentials.operatorId, api_name, counters) then
    return
  end

  local args, err = codec.parse_query(query)
  if not args then
    return Reply.bad_request(err)
  end
  -- Path parameters are validated before the group is looked up.
  if params.namespace then
    local valid = params.name and PARAMETER_NAMESPACES or NAMESPACES
    if not valid[params.namespace] then
      return Reply.bad_request("invalid namespace: " .. params.namespace)
    end
  end
  advance_active_jobs() -- what the handler reads or changes is as the jobs left it by now
  local record
  if params.group_id then
    record = state.groups[params.group_id]
    if not record then
      return Reply.group_not_found(params.group_id)
    end
  elseif params.sim_id then
    record = state.sims[params.sim_id]
    if not record then
      return send_error(sim_not_found("SIM", params.sim_id))
    end
  elseif params.imsi then
    record = state.sim_of_imsi[params.imsi]
    if not record then
      return send_error(sim_not_found("subscriber", params.imsi))
    end
  elseif params.batch_group_id then
    record = state.batch_groups[params.batch_group_id]
    if not record then
      return send_error(batch_group_not_found(params.batch_group_id))
    end
    if params.job_id then
      local index = record.job_index[params.job_id]
      if not index then
        return send_error(batch_job_not_found(params.job_id))
      end
      record = record.jobs[index]
    end
  end
  return handler(record, params, args, body, credentials)
end

---------------------------------------------------------------------------
-- Request log

local function record_request(method, uri, body, proxied)
  local headers = {}
  for name, value in pairs(ngx.req.get_headers(100)) do
    headers[name] = value
  end
  local total = state.request_total + 1
  state.request_total = total
  state.requests[(total - 1) % REQUEST_LOG_CAP + 1] = {
    method = method,
    uri = uri,
    headers = headers,
    body = body or codec.null,
    connection = tonumber(ngx.var.connection),
    connection_requests = tonumber(ngx.var.connection_requests),
    scheme = ngx.var.scheme,   -- "https" on the TLS listener
    proxied = proxied,         -- absolute-form request target, as sent through a forward proxy
  }
end

local function recorded_requests()
  local log, total = state.requests, state.request_total
  local list = codec.array()
  local first = total > REQUEST_LOG_CAP and total - REQUEST_LOG_CAP + 1 or 1
  for n = first, total do
    list[#list + 1] = log[(n - 1) % REQUEST_LOG_CAP + 1]
  end
  return list
end

---------------------------------------------------------------------------
-- Injected faults: POST /_fake/faults [{status, body, headers, delay, close, times,
-- reset_after_bytes, truncate, trickle, slow_body, huge_body_bytes}]
--
-- The last five stream a body with a Content-Length for the whole of it:
--   huge_body_bytes = N   a valid JSON array of group-like objects, exactly N bytes (N >= 2)
--   reset_after_bytes = N only the first N bytes of the body, then a TCP reset (RST)
--   truncate = true | N   only the first half (or N bytes) of the body, then a clean close (FIN)
--   trickle = {bytes_per_second, seconds}  the body slowly, for at most 300 s
--   slow_body = true      trickle = {bytes_per_second = 2, seconds = 300}
-- Their body is `body` when given, else a generated JSON array of group-like objects:
-- huge_body_bytes bytes, or bytes_per_second * seconds for a trickle, or 4096 bytes (at
-- least 2 * reset_after_bytes or truncate). Status defaults to 200.

local STREAM_CHUNK = 65536          -- bytes per ngx.print for an unpaced body
local DEFAULT_STREAM_BYTES = 4096   -- generated body of reset_after_bytes / truncate
local TRICKLE_MAX_SECONDS = 300     -- no slow response outlives this
local SLOW_BODY = { bytes_per_second = 2, seconds = TRICKLE_MAX_SECONDS }
local HUGE_BODY_MAX = 2 ^ 40

local FAULT_FIELDS = {
  status = "number", headers = "table", delay = "number", close = "boolean", times = "number",
  body = true, -- any JSON value; a string is sent as is
  reset_after_bytes = "number", truncate = true, trickle = "table", slow_body = "boolean",
  huge_body_bytes = "number",
}

local function is_count(v)
  return type(v) == "number" and v >= 0 and v == floor(v) and v <= HUGE_BODY_MAX
end

local function streams(fault)
  return fault.reset_after_bytes ~= nil or (fault.truncate ~= nil and fault.truncate ~= false)
    or fault.trickle ~= nil or fault.slow_body or fault.huge_body_bytes ~= nil
end

local function check_fault(fault)
  if not is_object(fault) then
    return "each fault must be an object"
  end
  for name, value in pairs(fault) do
    local expected = FAULT_FIELDS[name]
    if expected == nil then
      return "unknown fault field: " .. tostring(name)
    end
    if expected ~= true and type(value) ~= expected then
      return "fault field " .. name .. " must be a " .. expected
    end
  end
  if fault.reset_after_bytes ~= nil and not is_count(fault.reset_after_bytes) then
    return "reset_after_bytes must be a non-negative integer"
  end
  local truncate = fault.truncate
  if truncate ~= nil and type(truncate) ~= "boolean" and not is_count(truncate) then
    return "truncate must be true or a non-negative integer"
  end
  if fault.huge_body_bytes ~= nil and not (is_count(fault.huge_body_bytes) and fault.huge_body_bytes >= 2) then
    return "huge_body_bytes must be an integer >= 2"
  end
  local trickle = fault.trickle
  if trickle ~= nil then
    if not is_object(trickle) then
      return "trickle must be an object {bytes_per_second, seconds}"
    end
    for name, value in pairs(trickle) do
      if (name ~= "bytes_per_second" and name ~= "seconds") or type(value) ~= "number" or value <= 0 then
        return "trickle takes bytes_per_second and seconds, positive numbers"
      end
    end
    if trickle.bytes_per_second == nil then
      return "trickle needs bytes_per_second"
    end
  end
  if fault.reset_after_bytes ~= nil and truncate ~= nil and truncate ~= false then
    return "reset_after_bytes and truncate exclude each other"
  end
  if fault.trickle ~= nil and fault.slow_body then
    return "trickle and slow_body exclude each other"
  end
  local streamed = streams(fault)
  if streamed and fault.close then
    return "close cannot be combined with a streamed body"
  end
  if streamed and fault.body ~= nil then
    local body = fault.body
    local length = #(type(body) == "string" and body or codec.encode(body))
    local cut = fault.reset_after_bytes or (type(truncate) == "number" and truncate)
    if cut and cut >= length then
      return "reset_after_bytes/truncate must be less than the body's length (" .. length .. ")"
    end
  end
  if fault.status == nil and not fault.close and not fault.delay and not streamed then
    return "a fault needs status, close, delay or a streamed body"
  end
end

-- Reader over a string: read(n) returns up to n bytes, nil at the end.
local function string_reader(s)
  local pos = 1
  return function(n)
    if pos > #s then
      return nil
    end
    local piece = s:sub(pos, pos + n - 1)
    pos = pos + #piece
    return piece
  end
end

-- Reader over a generated JSON array of exactly total (>= 2) bytes: "[" elements
-- of fixed size, then spaces up to the closing "]". Produced in ~64 KiB pieces.
local function array_reader(total)
  local element_format = '{"groupId":"huge-%010d","operatorId":"' .. OPERATOR_ID
    .. '","configuration":{},"createdTime":1700000000000,"lastModifiedTime":1700000000000,'
    .. '"tags":{"pad":"%s"}}'
  local pad = string.rep("x", 1000 - #format(element_format, 0, ""))
  local size = #format(element_format, 0, pad) -- 1000 bytes
  local room = total - 2
  local count = room >= size and 1 + floor((room - size) / (size + 1)) or 0
  local spaces = room - (count > 0 and count * (size + 1) - 1 or 0)
  local index, stage = 0, "open"
  local function next_piece()
    if stage == "open" then
      stage = "elements"
      return "["
    elseif stage == "elements" then
      if index >= count then
        stage = "close"
        return string.rep(" ", spaces)
      end
      local parts = {}
      while index < count and #parts * size < STREAM_CHUNK do
        index = index + 1
        parts[#parts + 1] = (index > 1 and "," or "") .. format(element_format, index, pad)
      end
      return concat(parts)
    elseif stage == "close" then
      stage = "done"
      return "]"
    end
  end
  local buffer, pos = "", 1
  return function(n)
    while #buffer - pos + 1 < n do
      local more = next_piece()
      if not more then
        break
      end
      buffer = buffer:sub(pos) .. more
      pos = 1
    end
    if pos > #buffer then
      return nil
    end
    local piece = buffer:sub(pos, pos + n - 1)
    pos = pos + #piece
    return piece
  end
end

-- Body of a streamed fault: length, reader.
local function stream_body(fault, trickle)
  local body = fault.body
  if body ~= nil then
    if type(body) ~= "string" then
      body = codec.encode(body)
    end
    return #body, string_reader(body)
  end
  local total = fault.huge_body_bytes
  if not total and trickle then
    total = max(2, floor(trickle.bytes_per_second * min(trickle.seconds or TRICKLE_MAX_SECONDS, TRICKLE_MAX_SECONDS)))
  end
  if not total then
    local cut = fault.reset_after_bytes or (type(fault.truncate) == "number" and fault.truncate) or 0
    total = max(DEFAULT_STREAM_BYTES, 2 * cut)
  end
  return total, array_reader(total)
end

local active_streams = 0 -- handlers currently streaming a fault body (GET /_fake/streams)

-- Sends a streamed fault. Returns "reset" or "close" when the connection must end that
-- way, "gone" when the client went away, or true when the response is complete.
local function send_stream(fault)
  local trickle = fault.trickle or (fault.slow_body and SLOW_BODY) or nil
  local total, read = stream_body(fault, trickle)
  local limit = total
  if fault.reset_after_bytes then
    limit = min(fault.reset_after_bytes, total)
  elseif fault.truncate == true then
    limit = floor(total / 2)
  elseif fault.truncate then
    limit = min(fault.truncate, total)
  end

  ngx.status = fault.status or 200
  for name, value in pairs(fault.headers or {}) do
    ngx.header[name] = value
  end
  ngx.header["Content-Type"] = ngx.header["Content-Type"] or "application/json"
  ngx.header["Content-Length"] = total

  local chunk, interval = STREAM_CHUNK, nil
  if trickle then
    local rate = trickle.bytes_per_second
    if rate <= 10 then
      chunk, interval = 1, 1 / rate
    else
      chunk, interval = max(1, floor(rate / 10)), 0.1
    end
  end
  ngx.update_time()
  local deadline = ngx.now() + TRICKLE_MAX_SECONDS
  active_streams = active_streams + 1
  local ok, result = pcall(function()
    local sent = 0
    if not ngx.send_headers() or not ngx.flush(true) then
      return "gone"
    end
    while sent < limit do
      local piece = read(min(chunk, limit - sent))
      if not piece then
        break
      end
      -- ngx.flush(true) fails once the client has gone: stop then.
      if not ngx.print(piece) or not ngx.flush(true) then
        return "gone"
      end
      sent = sent + #piece
      if interval and sent < limit then
        ngx.update_time()
        if ngx.now() >= deadline then
          return "gone"
        end
        ngx.sleep(interval)
      end
    end
    if fault.reset_after_bytes then
      return "reset"
    elseif limit < total then
      return "close"
    end
    return true
  end)
  active_streams = active_streams - 1
  if not ok then
    error(result, 0)
  end
  return result
end

local pending_resets = {} -- "connection:request" -> fault, for the @soracom_fake_reset location

local function request_key()
  return ngx.var.connection .. ":" .. ngx.var.connection_requests
end

-- Consumes the next fault, if any. Returns true when it produced the response,
-- "close" when the connection must be dropped, "reset" when the response must be
-- sent from the reset location, or nil to continue normally.
local function apply_fault()
  local fault = state.faults[1]
  if not fault then
    return nil
  end
  fault.times = (fault.times or 1) - 1
  if fault.times <= 0 then
    remove(state.faults, 1)
  end
  if fault.delay then
    ngx.sleep(fault.delay)
  end
  if fault.close then
    return "close"
  end
  if fault.reset_after_bytes then
    pending_resets[request_key()] = fault
    return "reset"
  end
  if streams(fault) then
    local result = send_stream(fault)
    if result == "gone" then
      return "close"
    end
    return result
  end
  if not fault.status then
    return nil
  end
  local body = fault.body
  if body == nil then
    body = { code = format("FAK%04d", fault.status), message = "Injected fault" }
  end
  if type(body) ~= "string" then
    body = codec.encode(body)
  end
  send(fault.status, body, fault.headers)
  return true
end

---------------------------------------------------------------------------
-- Control API under /_fake (no auth, not recorded)

local control = {}

function control.reset()
  state = new_state()
  send(204)
end

-- GET /_fake/stats -> traffic counters and the in-flight gauge; DELETE clears the counters.
function control.stats(method)
  if method == "DELETE" then
    state.stats = new_stats()
    return send(204)
  end
  local stats = state.stats
  send_json(200, {
    requests = stats.requests,
    in_flight = in_flight,
    max_in_flight = stats.max_in_flight,
    status_429 = stats.status_429,
    by_api = stats.by_api,
  })
end

-- GET /_fake/ratelimit -> {"windows": [...]}, the windows not yet ended; DELETE forgets
-- them all (every budget full again).
function control.ratelimit(method)
  if method == "DELETE" then
    clear_windows(nil)
    return send(204)
  end
  local now = now_s()
  local list = codec.array()
  for key, window in pairs(state.windows) do
    if now < window.ends_at then
      list[#list + 1] = {
        scope = window.scope,
        subject = window.subject,
        api = window.api,
        limit = window.limit,
        window = window.length,
        used = window.used,
        remaining = window.limit - window.used,
        status_429 = window.status_429,
        resets_in = window.ends_at - now,
        seconds_before_refresh = seconds_before_refresh(window, now),
      }
    else
      state.windows[key] = nil
    end
  end
  sort(list, function(a, b)
    if a.scope ~= b.scope then
      return a.scope < b.scope
    elseif a.subject ~= b.subject then
      return a.subject < b.subject
    end
    return a.api < b.api
  end)
  send_json(200, { windows = list })
end

-- GET /_fake/streams -> {"active": handlers still streaming a fault body}
function control.streams()
  send_json(200, { active = active_streams })
end

function control.health()
  send_json(200, { ok = true })
end

function control.requests(method)
  if method == "DELETE" then
    state.requests, state.request_total = {}, 0
    return send(204)
  end
  send_json(200, recorded_requests())
end

function control.settings(method, _, body)
  if method == "POST" then
    local changes, err = decode_object(body, "settings object", "settings must be an object")
    if changes == nil then
      return Reply.bad_request(err)
    end
    for name, value in pairs(changes) do
      local kind = SETTING_TYPES[name]
      if not kind then
        return Reply.bad_request("unknown setting: " .. tostring(name))
      end
      if value ~= codec.null and type(value) ~= kind then
        return Reply.bad_request("setting " .. name .. " must be a " .. kind .. " or null")
      end
      local check = SETTING_CHECKS[name]
      local invalid = value ~= codec.null and check and check(value)
      if invalid then
        return Reply.bad_request(invalid)
      end
    end
    for name, value in pairs(changes) do
      if value == codec.null then
        state.settings[name] = DEFAULT_SETTINGS[name]
      else
        state.settings[name] = value
      end
    end
    -- A limit written (even unchanged, or null) starts its windows afresh.
    if changes.rate_limit ~= nil then
      clear_windows("operator")
    end
    if changes.auth_rate_limit ~= nil then
      clear_windows("address")
    end
  end
  send_json(200, state.settings)
end

-- GET /_fake/tokens; POST /_fake/tokens/expire; POST /_fake/tokens/revoke
function control.tokens(_, action)
  local now = now_s()
  if action then
    for _, record in pairs(state.tokens) do
      if action == "revoke" then
        record.revoked = true
      elseif record.expires_at > now then
        record.expires_at = now
      end
    end
    return send(204)
  end
  local list = codec.array()
  for i, key in ipairs(state.token_order) do
    local record = state.tokens[key]
    list[i] = {
      apiKey = record.apiKey,
      token = record.token,
      kind = record.kind,
      userName = record.userName,
      operatorId = record.operatorId,
      tokenTimeoutSeconds = record.tokenTimeoutSeconds,
      expires_in = record.expires_at - now,
      revoked = record.revoked,
    }
  end
  send_json(200, list)
end

function control.faults(method, _, body)
  if method == "POST" then
    local faults, err = decode_body(body, "array of faults")
    if faults == nil then
      return Reply.bad_request(err)
    end
    if not is_array(faults) then
      faults = { faults }
    end
    for _, fault in ipairs(faults) do
      err = check_fault(fault)
      if err then
        return Reply.bad_request(err)
      end
    end
    for _, fault in ipairs(faults) do
      insert(state.faults, fault)
    end
  end
  send_json(200, codec.array(state.faults))
end

-- POST /_fake/groups {count, tags, configuration} -> 201 {groupIds = [...]}
function control.seed_groups(_, _, body)
  local spec, err = decode_body(body, "{count, tags}")
  if spec == nil then
    return Reply.bad_request(err)
  end
  local count = is_object(spec) and spec.count or nil
  if type(count) ~= "number" or count < 0 or count > SEED_MAX or count ~= floor(count) then
    return Reply.bad_request("count must be an integer between 0 and " .. SEED_MAX)
  end
  err = (spec.tags ~= nil and check_tags(spec.tags))
    or (spec.configuration ~= nil and check_configuration(spec.configuration))
  if err then
    return Reply.bad_request(err)
  end
  local ids = codec.array()
  for i = 1, count do
    -- Each group gets its own tables: later PUTs must not leak between groups.
    local tags, configuration = {}, {}
    for k, v in pairs(spec.tags or {}) do
      tags[k] = v
    end
    for ns, settings in pairs(spec.configuration or {}) do
      configuration[ns] = codec.decode(codec.encode(settings))
    end
    ids[i] = create_group(tags, configuration).id
  end
  send_json(201, { groupIds = ids })
end

local SEED_SIMS_SHAPE = "body must be {count = 0.." .. SEED_MAX .. "} or {sims = [...]}"

-- The SIMs a seeding request asks for: {count} or {sims = [{field = value}]}, and
-- imsis (IMSIs per SIM, default 1). Returns the list of field tables, the IMSI count
-- and the decoded request, or nil and a message.
local function seed_request(body)
  local spec, err = decode_object(body, "{count} or {sims}", SEED_SIMS_SHAPE)
  if spec == nil then
    return nil, err
  end
  local imsi_count = spec.imsis or 1
  if type(imsi_count) ~= "number" or imsi_count < 1 or imsi_count > MAX_IMSIS_PER_SIM
      or imsi_count ~= floor(imsi_count) then
    return nil, "imsis (IMSIs per SIM) must be an integer between 1 and " .. MAX_IMSIS_PER_SIM
  end
  local list = {}
  if spec.sims ~= nil then
    if not is_array(spec.sims) then
      return nil, "sims must be an array of objects"
    end
    for i, fields in ipairs(spec.sims) do
      local id = is_object(fields) and (fields.simId or fields.iccid)
      if not is_object(fields) or (fields.imsi ~= nil and not (type(fields.imsi) == "string"
          and fields.imsi:find("^%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d$")))
          or (id ~= nil and not (type(id) == "string" and id ~= "")) or fields.groupId ~= nil then
        return nil, format("sims[%d] must be an object; imsi, if given, 15 digits; simId or iccid, "
          .. "if given, a non-empty string; no groupId (the request's group sets it)", i)
      end
      list[i] = fields
    end
  elseif type(spec.count) == "number" and spec.count >= 0 and spec.count <= SEED_MAX
      and spec.count == floor(spec.count) then
    local none = {} -- shared: a generated SIM overrides nothing
    for i = 1, spec.count do
      list[i] = none
    end
  else
    return nil, SEED_SIMS_SHAPE
  end
  return list, imsi_count, spec
end

-- Adds the SIMs of a parsed seeding request to group_id (nil: no group) and answers
-- 201 {simIds, imsis (primary, in the same order), allImsis (each SIM's, primary first)}.
local function seed_sims(list, group_id, imsi_count)
  local sims, err = add_sims(list, group_id, imsi_count)
  if not sims then
    return Reply.bad_request(err)
  end
  local ids, imsis, all = codec.array(), codec.array(), codec.array()
  for i, sim in ipairs(sims) do
    ids[i], imsis[i], all[i] = sim.id, sim.imsi, codec.array(sim.imsis)
  end
  send_json(201, { simIds = ids, imsis = imsis, allImsis = all })
end

-- POST /_fake/groups/{id}/subscribers {count} or {sims = [{field = value}]}, imsis?
function control.seed_subscribers(_, group_id, body)
  if not state.groups[group_id] then
    return Reply.group_not_found(group_id)
  end
  local list, imsi_count = seed_request(body)
  if not list then
    return Reply.bad_request(imsi_count)
  end
  seed_sims(list, group_id, imsi_count)
end

-- POST /_fake/sims {count} or {sims}, group_id?, imsis?
function control.add_sims(_, _, body)
  local list, imsi_count, spec = seed_request(body)
  if not list then
    return Reply.bad_request(imsi_count)
  end
  local group_id = spec.group_id
  if group_id ~= nil then
    if type(group_id) ~= "string" then
      return Reply.bad_request("group_id must be a string")
    end
    if not state.groups[group_id] then
      return Reply.group_not_found(group_id)
    end
  end
  seed_sims(list, group_id, imsi_count)
end

-- GET /_fake/sims/{sim_id} -> the Sim JSON
function control.sim(_, sim_id)
  local sim = state.sims[sim_id]
  if not sim then
    return send_error(sim_not_found("SIM", sim_id))
  end
  send(200, sim_json(sim))
end

-- GET /_fake/batch/jobs -> every job of the live batch groups, oldest first
function control.batch_jobs()
  local now, list = now_s(), {}
  for i, job in ipairs(state.job_order) do
    list[i] = job_json(job, now)
  end
  send_page(list)
end

local TASK_FAULT_FIELDS = { sim_ids = true, status = true, code = true, message = true, times = true }

-- GET, POST, DELETE /_fake/batch/task_faults
function control.task_faults(method, _, body)
  if method == "DELETE" then
    state.task_faults = {}
    return send(204)
  end
  if method == "POST" then
    local spec, err = decode_object(body, "{sim_ids, status?, code?, message?, times?}",
      "body must be an object {sim_ids, status?, code?, message?, times?}")
    if spec == nil then
      return Reply.bad_request(err)
    end
    for name in pairs(spec) do
      if not TASK_FAULT_FIELDS[name] then
        return Reply.bad_request("unknown task fault field: " .. tostring(name))
      end
    end
    local ids, status, times = spec.sim_ids, spec.status or 500, spec.times
    if not is_array(ids) then
      return Reply.bad_request("sim_ids must be a non-empty array of SIM ids")
    end
    for i, id in ipairs(ids) do
      if type(id) ~= "string" then
        return Reply.bad_request(format("sim_ids[%d] must be a string", i))
      end
    end
    if type(status) ~= "number" or status < 300 or status > 599 or status ~= floor(status) then
      return Reply.bad_request("status must be an integer between 300 and 599")
    end
    if times ~= nil and not (type(times) == "number" and times >= 1 and times == floor(times)) then
      return Reply.bad_request("times must be a positive integer")
    end
    if (spec.code ~= nil and type(spec.code) ~= "string")
        or (spec.message ~= nil and type(spec.message) ~= "string") then
      return Reply.bad_request("code and message must be strings")
    end
    for _, id in ipairs(ids) do
      state.task_faults[id] = {
        status = status,
        code = spec.code or format("FAK%04d", status),
        message = spec.message or "Injected task fault",
        times = times,
      }
    end
  end
  local ids = {}
  for id in pairs(state.task_faults) do
    ids[#ids + 1] = id
  end
  sort(ids)
  local list = codec.array()
  for i, id in ipairs(ids) do
    local fault = state.task_faults[id]
    list[i] = { simId = id, status = fault.status, code = fault.code, message = fault.message, times = fault.times }
  end
  send_json(200, list)
end

local function handle_control(method, segments, body)
  local name, n = segments[2], #segments
  local routes
  if n == 2 and name == "reset" then
    routes = { POST = control.reset }
  elseif n == 2 and name == "health" then
    routes = { GET = control.health }
  elseif n == 2 and name == "ratelimit" then
    routes = { GET = control.ratelimit, DELETE = control.ratelimit }
  elseif n == 2 and name == "stats" then
    routes = { GET = control.stats, DELETE = control.stats }
  elseif n == 2 and name == "streams" then
    routes = { GET = control.streams }
  elseif n == 2 and name == "requests" then
    routes = { GET = control.requests, DELETE = control.requests }
  elseif n == 2 and name == "settings" then
    routes = { GET = control.settings, POST = control.settings }
  elseif n == 2 and name == "faults" then
    routes = { GET = control.faults, POST = control.faults }
  elseif n == 2 and name == "tokens" then
    routes = { GET = control.tokens }
  elseif n == 3 and name == "tokens" and (segments[3] == "expire" or segments[3] == "revoke") then
    routes = { POST = control.tokens }
  elseif n == 2 and name == "groups" then
    routes = { POST = control.seed_groups }
  elseif n == 4 and name == "groups" and segments[4] == "subscribers" then
    routes = { POST = control.seed_subscribers }
  elseif n == 2 and name == "sims" then
    routes = { POST = control.add_sims }
  elseif n == 3 and name == "sims" and segments[3] ~= "" then
    routes = { GET = control.sim }
  elseif n == 3 and name == "batch" and segments[3] == "jobs" then
    routes = { GET = control.batch_jobs }
  elseif n == 3 and name == "batch" and segments[3] == "task_faults" then
    routes = { GET = control.task_faults, POST = control.task_faults, DELETE = control.task_faults }
  end
  if not routes then
    return send_error(404, "AGW0001", "Not found")
  end
  local handler = routes[method]
  if not handler then
    return send_error(405, "AGW0002", "Method not allowed", { Allow = allowed_methods(routes) })
  end
  advance_active_jobs() -- controls read SIMs and jobs as the jobs left them by now
  return handler(method, segments[3], body)
end

---------------------------------------------------------------------------
-- Entry point

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then
    return body
  end
  local file = ngx.req.get_body_file() -- bodies larger than client_body_buffer_size
  if file then
    local f = assert(io.open(file, "rb"))
    body = f:read("*a")
    f:close()
  end
  return body
end

-- The request target: the raw request_uri, or for an absolute-form target
-- ("GET http://host:port/v1/groups HTTP/1.1", as a client sends to a forward proxy)
-- the target itself. Returns target, origin-form path and query, proxied.
local function request_target()
  local uri = ngx.var.request_uri
  local target = (ngx.var.request or ""):match("^%S+%s+(%S+)")
  local proxied = false
  if target and target:find("^%a[%w+.-]*://") then
    proxied = true
  else
    target = uri
  end
  -- nginx already strips scheme://authority from request_uri; strip it if not.
  local origin_form = uri:gsub("^%a[%w+.-]*://[^/?]*", "")
  if origin_form == "" or origin_form:sub(1, 1) == "?" then
    origin_form = "/" .. origin_form
  end
  local path, query = origin_form:match("^([^?]*)%??(.*)$")
  return target, path, query, proxied
end

-- Every recorded (non-/_fake) request: log, latency, fault, then the API.
local function serve(method, uri, segments, err, query, body, proxied)
  local settings = state.settings
  if settings.record_requests then
    record_request(method, uri, body, proxied)
  end
  local latency = (settings.latency or 0) + (settings.latency_jitter or 0) * random()
  if latency > 0 then
    ngx.sleep(latency) -- yields to nginx: other requests go on meanwhile
  end
  local fault = apply_fault()
  if fault then
    return fault
  end
  if not segments then
    return Reply.bad_request(err)
  end
  if segments[1] ~= "v1" then
    return send_error(404, "AGW0001", "Not found")
  end
  return handle_v1(method, segments, query, body)
end

local function dispatch()
  local uri, path, query, proxied = request_target()
  local method = ngx.req.get_method()
  local body = read_body()
  local segments, err = codec.split_path(path)

  if segments and segments[1] == "_fake" then
    return handle_control(method, segments, body)
  end
  local stats = state.stats
  stats.requests = stats.requests + 1
  in_flight = in_flight + 1
  if in_flight > stats.max_in_flight then
    stats.max_in_flight = in_flight
  end
  -- Caught here so that the gauge comes down even when the handler raises; M.handle
  -- answers the error (its first line, which the traceback keeps).
  local ok, result = xpcall(serve, debug.traceback, method, uri, segments, err, query, body, proxied)
  in_flight = in_flight - 1
  if ngx.status == 429 then
    state.stats.status_429 = state.stats.status_429 + 1 -- state.stats: a reset may have replaced it
  end
  if not ok then
    error(result, 0)
  end
  return result
end

function M.handle()
  local ok, result = xpcall(dispatch, debug.traceback)
  if not ok then
    ngx.log(ngx.ERR, "fake Soracom server: ", result)
    local message = tostring(result):match("^[^\n]*")
    return send_error(500, "COM0003", "Internal server error. message:" .. message)
  end
  if result == "close" then
    return ngx.exit(444) -- nginx closes the connection (after any partial response)
  end
  if result == "reset" then
    return ngx.exec("@soracom_fake_reset")
  end
end

-- Content handler of the named location @soracom_fake_reset (reset_timedout_connection
-- on), where a reset_after_bytes fault continues: after N bytes of the body, ngx.exit(444)
-- closes the connection with SO_LINGER 0, i.e. a TCP reset.
function M.handle_reset()
  local key = request_key()
  local fault = pending_resets[key]
  pending_resets[key] = nil
  if not fault then
    return send_error(500, "COM0003", "Internal server error. message:no pending reset fault")
  end
  local ok, result = xpcall(function() return send_stream(fault) end, debug.traceback)
  if not ok then
    ngx.log(ngx.ERR, "fake Soracom server: ", result)
    return ngx.exit(ngx.ERROR)
  end
  if result == "reset" then
    ngx.sleep(0.05) -- let the sent bytes reach the client before the reset discards unsent data
  end
  return ngx.exit(444)
end

return M
