--- The client object: construction, the request path shared by every method, and
-- the methods themselves, derived from the operation table.
--
-- Every method checks its arguments before anything is sent: a wrong one raises at
-- once, naming it. What depends on the network or the server's data returns nil and
-- an `Error` (see soracom.groups.error).
-- @classmod soracom.groups.Client

local auth = require "soracom.groups.auth"
local batch = require "soracom.groups.batch"
local config = require "soracom.groups.config_core"
local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local hook = require "soracom.groups.hook"
local redis_link = require "soracom.groups.redis_link"
local redis_shared = require "soracom.groups.redis_shared"
local request = require "soracom.groups.request"
local iterate = require "soracom.groups.iterate"
local loops = require "soracom.groups.loops"
local spec = require "soracom.groups.operations"
local settings = require "soracom.groups.settings"
local shared = require "soracom.groups.shared"
local sims = require "soracom.groups.sims"
local token_cache = require "soracom.groups.token_cache"
local validate = require "soracom.groups.validate"

local build_url, encode_json = core.build_url, core.encode_json
local getmetatable = getmetatable
local operations = spec.operations

local Client = {}
Client.__index = Client

-- Every client Client.new made (weak): an operation's method checks its self there,
-- at the cost of an index where getmetatable costs a call (see define_method).
local made = setmetatable({}, { __mode = "k" })

-- What the workers of the nginx instance (shared_dict), or every process using one
-- Redis (redis), share for this client; or nil, why.
local function open_shared(client, resolved)
  local transport_settings = resolved.transport_settings
  local nginx = require "soracom.groups.transport.nginx"
  local transport = client._transport
  local options = {
    now = core.now,
    operator_id = resolved.operator_id,
    sleep = function(seconds) transport:sleep(seconds) end,
    -- a login's one attempt at most: connecting, then the whole exchange
    login_hold = (transport_settings.connect_timeout or nginx.DEFAULT_CONNECT_TIMEOUT)
      + (transport_settings.timeout or nginx.DEFAULT_TIMEOUT),
  }
  if resolved.redis then
    local link, missing = redis_link.new(resolved.redis)
    if link == nil then return nil, "redis: " .. missing end
    options.prefix, options.on_error = resolved.redis.prefix, resolved.on_redis_error
    options.say = function(line) hook.debug(client, line) end
    client._redis_link = link -- (closed with the client)
    return redis_shared.open(link, resolved.endpoint, resolved.credentials, options)
  end
  local state, why = shared.open(resolved.shared_dict, resolved.endpoint, resolved.credentials, options, 3)
  return state, why -- (not a tail call, which would shift the error's level)
end

--- groups.new(options) -> client, or nil, err when the environment or a profile
-- lacks what it needs. Wrong options raise, naming the option.
-- Credentials: give one kind (auth key, root user, SAM user, or an issued API key and
-- token); without any, the SORACOM_* variables, then the soracom-cli profile.
-- @tparam[opt] table options
-- @tparam[opt] string options.endpoint the API's base URL, e.g. "https://api.soracom.io/v1"
-- @tparam[opt] string options.coverage "jp" (default) or "g": the endpoint of that coverage
-- @tparam[opt] boolean options.sandbox the sandbox endpoint of the coverage
-- @tparam[opt] string options.lang "en" or "ja": the language of the API's messages
-- @tparam[opt] string options.profile a soracom-cli profile (~/.soracom/NAME.json)
-- @tparam[opt] string options.profile_command a command (run by sh) printing a profile's JSON, as
-- soracom-cli's --profile-command (a password manager's); its output and messages are never shown
-- @tparam[opt] string options.api_key an issued API key (with token; no login)
-- @tparam[opt] string options.token the token issued with api_key
-- @tparam[opt] string options.auth_key_id an auth key's ID (with auth_key)
-- @tparam[opt] string options.auth_key the auth key's secret
-- @tparam[opt] string options.email the root user's email (with password)
-- @tparam[opt] string options.password the root or SAM user's password
-- @tparam[opt] string options.operator_id the operator (SAM login, or with api_key and token)
-- @tparam[opt] string options.user_name the SAM user's name (with operator_id and password)
-- @tparam[opt] string|function options.mfa_otp_code a one-time code, or a function giving one at each login
-- @tparam[opt] number options.token_timeout_seconds the token's lifetime asked at login (86400; at most 172800;
-- a switched user's: 3600, from 180 to 3600)
-- @tparam[opt] number options.connect_timeout seconds to connect (10)
-- @tparam[opt] number options.timeout seconds for a whole request (60)
-- @tparam[opt] number options.max_body_size the largest response body, bytes (16 MiB)
-- @tparam[opt] function options.debug called with one line per request, wait and login (never a secret)
-- @tparam[opt] number options.retries tries after the first (3)
-- @tparam[opt] number options.retry_base_delay seconds; the first backoff wait is within [base/2, base] (0.5)
-- @tparam[opt] number options.retry_max_delay seconds; no backoff wait is longer (20)
-- @tparam[opt] number options.rate_limit_max_delay seconds a request may be held for the rate limit in all (60)
-- @tparam[opt] boolean options.retry_post retry POST too (false: its outcome may be unknown)
-- @tparam[opt] function options.sleep waits `seconds` instead of blocking (an event loop's)
-- @tparam[opt] function options.wait wait(timeout, sockets): waits up to timeout seconds or until one of
-- the sockets ({fd =, read =, write =}) is ready, through an event loop (see soracom.groups.loops)
-- @tparam[opt] boolean options.insecure do not verify TLS (never in production)
-- @tparam[opt] string options.ca_file a CA bundle to trust (curl transport)
-- @tparam[opt] string options.ca_path a folder of CAs to trust (curl transport)
-- @tparam[opt] string options.proxy an HTTP(S) proxy URL (curl transport)
-- @tparam[opt] string options.transport "auto" (default), "curl" or "nginx"
-- @tparam[opt] number options.keepalive_timeout seconds an idle nginx connection is kept (60)
-- @tparam[opt] number options.pool_size idle nginx connections kept per worker (30)
-- @tparam[opt] string options.shared_dict inside nginx: a lua_shared_dict through which every
-- worker shares the token and the rate-limit budget
-- @tparam[opt] boolean options.share_token with shared_dict or redis: false shares only the budget (true)
-- @tparam[opt] string|table options.redis every process using this Redis shares the token and the
-- budget: "redis://[[user]:password@]host[:port][/db]", or {url =, prefix =, timeout =} (seconds, 1),
-- or {command = function(name, ...)} running one command on a connection of the program's
-- @tparam[opt] string options.on_redis_error with redis: "local" (default) goes on alone when Redis
-- fails, "fail" makes requests fail (kind "redis")
-- @tparam[opt] boolean|string options.token_cache keep the token in a file (mode 0600) for the next
-- process of the same credentials: true for $XDG_CACHE_HOME/soracom-groups (else ~/.cache/soracom-groups),
-- or a folder (false; the command's default is on)
-- @treturn Client|nil the client
-- @treturn Error|nil why not (kind "config")
-- @static
function Client.new(options)
  if options == nil then options = {} end
  local resolved, why = settings.resolve(options, os.getenv)
  if resolved == nil then return nil, Error.new("config", why) end
  local headers = { "Accept: application/json" }
  if resolved.lang then headers[#headers + 1] = "X-Soracom-Lang: " .. resolved.lang end
  for _, line in ipairs(resolved.headers) do headers[#headers + 1] = line end
  local client = setmetatable({
    _endpoint = resolved.endpoint,
    _debug = resolved.debug,
    _retry = resolved.retry,
    _unslept = 0,
    _batch_group_ids = {}, -- batch group name -> id, for move_sims
    -- how a call waits where it would block: an application loop's wait or sleep
    _waiter = (resolved.wait and { wait = resolved.wait, forget = loops.forget(resolved.wait) })
      or (resolved.sleep and { sleep = resolved.sleep }) or nil,
    _transport = require("soracom.groups.transport." .. resolved.transport).new(resolved.transport_settings),
  }, Client)
  made[client] = true
  request.attach(client)
  local sharing, unshared
  if resolved.shared_dict or resolved.redis then
    sharing, unshared = open_shared(client, resolved)
    if sharing == nil then
      client:close()
      return nil, Error.new("config", unshared)
    end
  end
  client._transport:set_waiter(client._waiter)
  -- Soracom counts per operator: the budget is the operator's, chosen once logged in.
  -- (A client whose loop's wait or sleep may return early keeps its own: see shared.budget.)
  client._budget = shared.budget(resolved.endpoint, resolved.credentials, request.clock(client), sharing,
    function() return auth.operator_id(client) end, resolved.sleep or resolved.wait)
  auth.attach(client, resolved.credentials, headers, resolved.operator_id,
    resolved.share_token and sharing or nil,
    resolved.token_cache and token_cache.open(resolved.token_cache, resolved.endpoint, resolved.credentials))
  return client
end

local function check_self(self, method)
  if getmetatable(self) ~= Client then
    error("soracom.groups: " .. method .. ": call it as client:" .. method .. "(...)", 3)
  end
end

-- Each turns a method's last argument into the request body, checking it. (No
-- tail calls: they would shift the error levels.)
local prepare_body = {
  group = function(op, options, level)
    local body = validate.group(op.name, options, op.namespaces, level + 1)
    return body
  end,
  config = function(op, params, level)
    local body = validate.config_params(op.name, params, level + 1)
    return body
  end,
  tags = function(op, tags, level)
    local body = validate.tag_array(op.name, tags, level + 1)
    return body
  end,
  group_id = function(op, group_id, level)
    validate.non_empty_string(op.name, "group_id", group_id, level + 1)
    return { groupId = group_id }
  end,
}

-- What the method calls the argument that becomes the body, for error messages.
local BODY_ARGUMENT = { group = "options", config = "params", tags = "tags", group_id = "group_id" }

-- The JSON text of a body; a value JSON cannot hold is the caller's mistake.
local function body_text(op, body, level)
  local ok, text = pcall(encode_json, body,
    "soracom.groups: " .. op.name .. ": " .. BODY_ARGUMENT[op.body])
  if not ok then error(text, level + 1) end
  return text
end

-- The function of one call of an operation that is not a list, op's method itself
-- (level 1): checks the arguments, builds the body, sends. Every such operation takes
-- at most three arguments. `level` counts from the function's caller, like request's.
local function caller(op, level)
  local name = op.name
  return function(self, a1, a2, a3)
    if not made[self] then check_self(self, name) end -- (raises for what is no client)
    if name == "put_config" and config.is_built(a2) and a3 == nil then
      a2, a3 = a2.namespace, a2 -- put_config(id, config.air{...})
    end
    validate.params(op, level + 1, a1, a2, a3)
    if op.params[2] == "namespace" then
      a2 = spec.NAMESPACE_OF[a2] -- the namespace of a builder's name: "air" is SoracomAir
    end
    local text
    if op.body then
      local argument = select(#op.params + 1, a1, a2, a3)
      local body
      if config.is_built(argument) then
        if argument.namespace ~= a2 then
          validate.fail(name, "params were built for " .. argument.namespace .. ", not " .. a2, level + 1)
        end
        body = argument.params
      else
        body = prepare_body[op.body](op, argument, level + 1)
      end
      text = body_text(op, body, level + 1)
    end
    local value, err = request.send(self, op, level + 1, nil, text, a1, a2, a3)
    if value == nil then return nil, err end
    if op.method == "DELETE" then return true end -- whatever body the server sent
    return value
  end
end

-- caller(op, level + 1) for the other methods, made once per op and level.
local callers = setmetatable({}, { __index = function(t, level)
  t[level] = {}
  return t[level]
end })

local function call(self, op, level, a1, a2, a3)
  local of_level = callers[level]
  local f = of_level[op]
  if f == nil then
    f = caller(op, level + 1) -- (called from here: one level more)
    of_level[op] = f
  end
  local value, err = f(self, a1, a2, a3)
  return value, err
end

local function define_method(op)
  local param_count = #op.params
  if op.query then
    return function(self, ...)
      check_self(self, op.name)
      validate.params(op, 2, ...)
      local options = select(param_count + 1, ...)
      validate.query(op, options, 2)
      local items, next_key = request.send(self, op, 2, options, nil, ...)
      return items, next_key
    end
  end
  return caller(op, 1)
end

for name, op in pairs(operations) do
  Client[name] = define_method(op)
end

--- The ten operations of the group API.
-- Each returns the API's value, or nil and an `Error`. `namespace` is a namespace
-- ("SoracomAir") or a builder's name ("air").
-- @section operations

--- GET /groups: one page of groups (see `Client:groups` for all of them).
-- @function list_groups
-- @tparam[opt] table options tag_name, tag_value, tag_value_match_mode ("exact" or "prefix"), limit, last_evaluated_key
-- @treturn {Group,...}|nil the page
-- @treturn string|Error|nil the next page's key (nil on the last page), or the error

--- POST /groups: creates a group.
-- @function create_group
-- @tparam[opt] table options name (the "name" tag, shown by the console), tags ({name = value}
-- or the API's list), configuration ({Namespace = {key = value}}, a built configuration or a
-- list of them)
-- @treturn Group|nil the new group
-- @treturn Error|nil

--- GET /groups/{group_id}.
-- @function get_group
-- @tparam string group_id
-- @treturn Group|nil
-- @treturn Error|nil

--- DELETE /groups/{group_id}; a group already gone after a retry counts as deleted.
-- @function delete_group
-- @tparam string group_id
-- @treturn true|nil
-- @treturn Error|nil

--- PUT /groups/{group_id}/configuration/{namespace}: sets parameters of a namespace.
-- @function put_config
-- @tparam string group_id
-- @tparam string|Built namespace, or a builder's result alone (then params is left out)
-- @tparam[opt] table params the API's list of {key =, value =}, a {key = value} map, or a builder's result
-- @treturn Group|nil the updated group
-- @treturn Error|nil

--- DELETE /groups/{group_id}/configuration/{namespace}: removes a namespace's settings.
-- @function delete_config_namespace
-- @tparam string group_id
-- @tparam string namespace
-- @treturn true|nil
-- @treturn Error|nil

--- DELETE /groups/{group_id}/configuration/{namespace}/{name}: removes one parameter (not SoracomOrbit's).
-- @function delete_config
-- @tparam string group_id
-- @tparam string namespace
-- @tparam string name the parameter's API key
-- @treturn true|nil
-- @treturn Error|nil

--- GET /groups/{group_id}/subscribers: one page of a group's SIMs (see `Client:subscribers`).
-- @function list_subscribers
-- @tparam string group_id
-- @tparam[opt] table options limit, last_evaluated_key
-- @treturn {Sim,...}|nil the page
-- @treturn string|Error|nil the next page's key, or the error

--- PUT /groups/{group_id}/tags: adds or changes tags.
-- @function put_tags
-- @tparam string group_id
-- @tparam table tags the API's list of {tagName =, tagValue =}, or a {name = value} map
-- @treturn Group|nil
-- @treturn Error|nil

--- DELETE /groups/{group_id}/tags/{tag_name}.
-- @function delete_tag
-- @tparam string group_id
-- @tparam string tag_name
-- @treturn true|nil
-- @treturn Error|nil

--- SIM membership.
-- A group's configuration applies to the SIMs in it. get_sim reads a SIM (its groupId
-- is its group); the other four put one SIM into a group or take it out, each
-- idempotent (retried like a PUT). Each is counted in the rate budget under its own
-- API. For many SIMs, see `Client:move_sims`.
-- @section membership

--- GET /sims/{sim_id}: a SIM, with its groupId while it is in a group.
-- @function get_sim
-- @tparam string sim_id
-- @treturn Sim|nil
-- @treturn Error|nil

--- POST /sims/{sim_id}/set_group: puts the SIM into the group (from any other).
-- @function set_sim_group
-- @tparam string sim_id
-- @tparam string group_id
-- @treturn Sim|nil the SIM, now in the group
-- @treturn Error|nil

--- POST /sims/{sim_id}/unset_group: takes the SIM out of its group.
-- @function unset_sim_group
-- @tparam string sim_id
-- @treturn Sim|nil the SIM, in no group
-- @treturn Error|nil

--- POST /subscribers/{imsi}/set_group: the same for the SIM holding that IMSI (Soracom
-- recommends the SIM id, which covers every IMSI of a SIM).
-- @function set_subscriber_group
-- @tparam string imsi
-- @tparam string group_id
-- @treturn Subscriber|nil the subscriber, now in the group
-- @treturn Error|nil

--- POST /subscribers/{imsi}/unset_group. The API answers 404 for a subscriber in no
-- group: after an attempt whose answer was lost, that 404 means the attempt did it,
-- and the method returns true (as delete_group does for a group already gone).
-- @function unset_subscriber_group
-- @tparam string imsi
-- @treturn Subscriber|true|nil the subscriber, in no group (true: see above)
-- @treturn Error|nil

--- More than the API.
-- @section more

--- set_tag(group_id, name, value): one tag, added or changed (PUT /groups/{group_id}/tags
-- with that tag alone: the group's other tags stay).
-- @tparam string group_id the group
-- @tparam string name the tag's name ("name" is what the console shows as the group's name)
-- @tparam string value its value
-- @treturn Group|nil the group, with its tags
-- @treturn Error|nil
function Client:set_tag(group_id, name, value)
  check_self(self, "set_tag")
  validate.non_empty_string("set_tag", "name", name, 2)
  if type(value) ~= "string" then
    validate.fail("set_tag", "value must be a string (got " .. type(value) .. ")", 2)
  end
  local group, err = call(self, operations.put_tags, 2, group_id,
    { { tagName = name, tagValue = value } })
  return group, err
end

-- What update_config sends for a namespace after reading `group`: the API settings
-- before and after the change, and the keys to remove. Anything wrong that depends on
-- the group's data comes back as nil, err (the changes were checked before the read);
-- a changes function that returns a wrong value is the caller's mistake and raises.
-- Nothing has been sent for the write yet: an error names the read (GET `path`).
local function planned_change(namespace, group, changes, path, level)
  if type(group) ~= "table" then
    return nil, Error.wrap({ kind = "decode", message = "the group read is not a JSON object" }, "GET", path)
  end
  local configuration = type(group.configuration) == "table" and group.configuration or {}
  local before = type(configuration[namespace]) == "table" and configuration[namespace] or {}
  local current = config.from_api(namespace, before)
  local after
  if type(changes) == "function" then
    current = changes(config.copy(current))
    if type(current) ~= "table" then
      validate.fail("update_config", "the changes function must return the new settings, a table (got "
        .. type(current) .. ")", level + 1)
    end
    after = config.to_api(namespace, config.long_form(namespace, current, level + 1), level + 1)
  else
    local why
    after, why = config.try_to_api(namespace, config.merge(namespace, current, changes))
    if after == nil then
      return nil, Error.wrap({ kind = "decode", message = "the group's " .. namespace .. " settings "
        .. "cannot be merged with the changes: " .. why }, "GET", path)
    end
  end
  local removed = {}
  for key in pairs(before) do
    if after[key] == nil then removed[#removed + 1] = key end
  end
  table.sort(removed)
  if #removed > 0 and next(after) ~= nil and not operations.delete_config.namespaces[namespace] then
    return nil, Error.wrap({ kind = "unsupported", message = namespace .. " settings cannot be removed "
      .. "one by one (the API has no such call): " .. table.concat(removed, ", ") .. "; nothing was written" },
      "GET", path)
  end
  return { namespace = namespace, before = before, after = after, removed = removed }
end

-- A namespace's changes checked before anything is sent (`what` names them in messages):
-- a table in the builder's form, returned in long form, or a function.
local function checked_changes(namespace, changes, what, level)
  if type(changes) == "table" then
    local _, removals = config.to_api(namespace, changes, level + 1) -- a bad field raises here
    if #removals > 0 and not operations.delete_config.namespaces[namespace] then
      validate.fail("update_config", namespace .. " settings cannot be removed one by one (the API has no "
        .. "such call); remove the namespace with delete_config_namespace", level + 1)
    end
    return config.long_form(namespace, changes, level + 1) -- merged the way config.read gives them
  elseif type(changes) ~= "function" then
    validate.fail("update_config", what .. " must be a table or a function (got " .. type(changes) .. ")", level + 1)
  end
  return changes
end

-- update_config's namespaces and their checked changes, sorted by namespace: one, or
-- each of a table of changes by namespace.
local function changes_by_namespace(namespace, changes, level)
  if type(namespace) ~= "table" then
    local resolved = validate.namespace("update_config", namespace, level + 1)
    return { { namespace = resolved, changes = checked_changes(resolved, changes, "changes", level + 1) } }
  end
  if config.is_built(namespace) then
    validate.fail("update_config", "takes changes in the builder's form ({air = {...}}), not a built "
      .. "configuration: give that to put_config", level + 1)
  end
  if changes ~= nil then
    validate.fail("update_config", "changes by namespace ({air = ..., harvest = ...}) take no third argument "
      .. "(got " .. type(changes) .. ")", level + 1)
  end
  if next(namespace) == nil then
    validate.fail("update_config", "the changes by namespace are empty", level + 1)
  end
  local list, seen = {}, {}
  for name, namespace_changes in pairs(namespace) do
    local resolved = validate.namespace("update_config", name, level + 1)
    if seen[resolved] then
      validate.fail("update_config", "the changes name " .. resolved .. " twice", level + 1)
    end
    seen[resolved] = true
    list[#list + 1] = { namespace = resolved,
      changes = checked_changes(resolved, namespace_changes, "changes." .. tostring(name), level + 1) }
  end
  table.sort(list, function(a, b) return a.namespace < b.namespace end)
  return list
end

-- Writes one namespace's plan: the group the last request answered with, and whether
-- that answer holds the whole write (else a read must follow); or nil, err and whether
-- part of the namespace was written (its PUT, not every removal after it).
local function write_plan(self, group_id, plan, level)
  local namespace, after = plan.namespace, plan.after
  if next(after) == nil and next(plan.before) == nil then -- nothing there, nothing asked: done
    return nil, true
  elseif next(after) == nil then -- every setting removed: remove the namespace
    local ok, err = call(self, operations.delete_config_namespace, level + 1, group_id, namespace)
    if not ok then return nil, false, err, false end
    return nil, false
  end
  -- Every key, so that a server that resets what a PUT leaves out loses nothing.
  local group, err = call(self, operations.put_config, level + 1, group_id, namespace, config.params(after))
  if group == nil then return nil, false, err, false end
  -- A server that merges keys on PUT keeps the removed ones: delete them.
  for _, key in ipairs(plan.removed) do
    local ok
    ok, err = call(self, operations.delete_config, level + 1, group_id, namespace, key)
    if not ok then return group, false, err, true end
  end
  return group, #plan.removed == 0
end

-- The error of a failed write, saying which namespaces were written before it
-- (err.written; err.written_in_part the failed one, when its PUT was done but not every
-- removal after it), with the group as the last answer showed it (err.group, when known),
-- to pass on for the rest.
local function write_error(err, plans, failed, in_part, group)
  if not Error.is(err) then return err end
  local written, done, rest = {}, {}, {}
  for i, plan in ipairs(plans) do
    if i < failed then
      written[#written + 1], done[#done + 1] = plan.namespace, plan.namespace
    elseif i == failed and in_part then
      done[#done + 1] = plan.namespace .. " in part (its PUT, not every removal)"
    else
      rest[#rest + 1] = plan.namespace
    end
  end
  err.written, err.written_in_part, err.group = written, in_part and plans[failed].namespace or nil, group
  if #done > 0 then
    err.message = tostring(err.message) .. "; update_config wrote " .. table.concat(done, ", ")
      .. (#rest > 0 and ("; not " .. table.concat(rest, ", ")) or "")
  end
  return err
end

--- update_config(group_id, namespace, changes): read, change, write back every key.
-- group_id may be a group already read (from get_group or an iterator), which saves
-- the first read; the conflict check below still applies.
-- namespace is a namespace ("SoracomAir") or a builder name ("air"); changes is a
-- table of settings in the builder's form, merged into the current ones (a field set
-- to groups.null is removed), or a function given the current settings that returns
-- the new ones. Several namespaces at once: update_config(group_id, {air = ...,
-- harvest = ...}), changes by namespace, with one read and one check for them all and
-- one write each (in the order of their namespaces' names).
-- The group is read again just before writing: when its lastModifiedTime moved,
-- nothing is written and err.kind is "conflict" (a group given is stale once a call
-- wrote to it: pass on the group that call returned). When a write fails, err.written
-- lists the namespaces written before it, and err.group is the group as the last
-- answer showed it (when known).
-- @tparam string|Group group_id the group's ID, or the group as read
-- @tparam string|table namespace a namespace or builder name, or changes by namespace
-- @tparam[opt] table|function changes the changes (with a namespace)
-- @treturn Group|nil the updated group
-- @treturn Error|nil
function Client:update_config(group_id, namespace, changes)
  check_self(self, "update_config")
  local read -- a group already read, given in place of its id
  if type(group_id) == "table" then
    read = group_id
    if type(read.groupId) ~= "string" then
      validate.fail("update_config", "a group given in place of group_id must be one read from the API "
        .. "(get_group, or an iterator), with its groupId (got " .. (read.groupId == nil and "no groupId"
        or "a " .. type(read.groupId) .. " groupId") .. ")", 2)
    end
    group_id = read.groupId
  end
  validate.segment("update_config", "group_id", group_id, 2)
  local wanted = changes_by_namespace(namespace, changes, 2)

  local get = operations.get_group
  local path = "/groups/" .. group_id
  local group, err = read
  if group == nil then
    group, err = call(self, get, 2, group_id)
    if group == nil then return nil, err end
  end
  local plans = {}
  for i, want in ipairs(wanted) do
    plans[i], err = planned_change(want.namespace, group, want.changes, path, 2)
    if plans[i] == nil then return nil, err end
  end

  local again
  again, err = call(self, get, 2, group_id)
  if again == nil then return nil, err end
  if type(again) ~= "table" or again.lastModifiedTime ~= group.lastModifiedTime then
    return nil, Error.wrap({ kind = "conflict", message = "the group changed since it was read "
      .. "(lastModifiedTime " .. tostring(group.lastModifiedTime) .. " -> "
      .. tostring(type(again) == "table" and again.lastModifiedTime) .. "); nothing was written"
      .. (read and ": when your own earlier update_config (or other write) changed it, pass on the group "
        .. "that call returned, not the one it was given; else read the group again" or "") }, "GET", path)
  end

  local latest, current = again, true -- the group last answered, and whether it holds every write
  for i, plan in ipairs(plans) do
    local answer, whole, failure, in_part = write_plan(self, group_id, plan, 2)
    if failure then return nil, write_error(failure, plans, i, in_part, answer or (current and latest) or nil) end
    if answer then latest, current = answer, whole
    elseif not whole then current = false end
  end
  if current then return latest end
  group, err = call(self, get, 2, group_id)
  return group, err
end

-- Checks map's arguments, and that its concurrency fits the process's file limit.
local function check_map(self, method, items, fn, options)
  if self._transport == nil then error("soracom.groups: " .. method .. ": the client is closed", 3) end
  local resolved = batch.check(items, fn, options, 3)
  batch.check_capacity(self._transport, method, resolved.concurrency, 3)
  return resolved
end

--- map(items, fn, options) -> results, summary[, items_error]: fn(item, i) for each
-- item, at most options.concurrency at once, every call inside fn sharing the client's
-- login, retries and rate budget. A failing or raising item never stops the others.
-- When the items iterator raises, the results of the items before it come back with
-- its error (also summary.items_error, and summary.resume_key for a client's iterator).
-- @tparam {any,...}|function items a list, or an iterator function (client:groups{} works)
-- @tparam function fn fn(item, i): returns a value, or nil and an error
-- @tparam[opt] table options
-- @tparam[opt] number options.concurrency items running at once (8)
-- @tparam[opt] boolean options.fail_fast start no new item after the first failure (false)
-- @tparam[opt] function options.on_result on_result(i, value, err) as each item finishes
-- @tparam[opt] boolean options.keep_results false: keep no results (memory stays flat) (true)
-- @tparam[opt] number options.rate_limit_max_delay seconds each request may be held for
-- the rate limit (none: a map waits as long as its queue needs)
-- @treturn {MapResult,...} in input order: {ok = true, value = ...} or {ok = false, err = ...,
-- traceback = ...}, or {skipped = true} after fail_fast
-- @treturn table summary: ok, failed, skipped, seconds (and items_error, resume_key)
-- @treturn[opt] any what the items iterator raised
function Client:map(items, fn, options)
  check_self(self, "map")
  local resolved = check_map(self, "map", items, fn, options)
  local results, summary, items_error = batch.run(self._transport, items, fn, resolved, self._waiter)
  return results, summary, items_error
end

--- start_map(items, fn, options) -> run: the map, as an object its caller drives
-- (from an event loop of its own): run:step(timeout) does the work that is ready and
-- waits up to timeout seconds (0 by default) for more, true once done;
-- run:wait_hint() gives the seconds and sockets to wait for before the next step;
-- run:cancel(); run:results() (as map's). Only a run that is stepped makes progress; a
-- run dropped unfinished is cancelled when collected.
-- @tparam {any,...}|function items as map's
-- @tparam function fn as map's
-- @tparam[opt] table options as map's
-- @treturn table the run
function Client:start_map(items, fn, options)
  check_self(self, "start_map")
  local resolved = check_map(self, "start_map", items, fn, options)
  local run = batch.start(self._transport, items, fn, resolved, self._waiter)
  return run
end

--- move_sims(sims, group_id, options) -> results, summary[, items_error]: puts many
-- SIMs into group_id (nil or groups.null: takes them out of their groups), one call
-- each within the rate budget, or as Batch API jobs when there are more than
-- groups.MOVE_SIMS_BATCH_THRESHOLD (options.batch = true or false decides). An
-- iterator is read to its end before anything is moved; when it raises, nothing is
-- moved and its error comes back third. See the README's "SIM membership".
-- @tparam {string|Sim,...}|function sims_or_iterator SIM ids, or SIMs (tables with simId and
-- groupId), or an iterator of them
-- @tparam string|nil group_id the group, or nil/groups.null
-- @tparam[opt] table options concurrency (8), batch, skip_current, on_progress, fail_fast,
-- rate_limit_max_delay, batch_group_name ("soracom-groups"), job_name, poll_max_delay (10),
-- job_timeout (3600)
-- @treturn {MoveResult,...} one per SIM, in order: sim_id, ok, skipped, sim, err, unknown
-- @treturn table summary: mode ("calls" or "batch"), total, moved, skipped, failed, unknown, jobs
-- @treturn[opt] any what the iterator raised
function Client:move_sims(sims_or_iterator, group_id, options)
  check_self(self, "move_sims")
  local results, summary, items_error = sims.move(self, sims_or_iterator, group_id, options, 2)
  return results, summary, items_error
end

-- The iterator's fetch runs inside the for loop's call of the iterator, so a closed
-- client is blamed on the loop: request <- fetch <- iterator <- loop.
local FETCH_LEVEL = 3

--- for group in client:groups{tag_name=, tag_value=, limit=} do: every group, a page
-- (GET /groups) fetched when the loop needs the next. A page that fails raises its
-- Error out of the loop, with resume_key, the last_evaluated_key to start again from.
-- @tparam[opt] table options
-- @tparam[opt] string options.tag_name only groups with this tag
-- @tparam[opt] string options.tag_value the tag's value (with tag_name)
-- @tparam[opt] string options.tag_value_match_mode "exact" (default) or "prefix"
-- @tparam[opt] number options.limit the page size
-- @tparam[opt] string options.last_evaluated_key start after this key (a resume_key)
-- @treturn function the iterator: each call gives the next Group, nil at the end
function Client:groups(options)
  local op = operations.list_groups
  check_self(self, "groups")
  validate.query(op, options, 2)
  local iterator = iterate.pages(op, options, function(query)
    local items, next_key = request.send(self, op, FETCH_LEVEL, query, nil)
    return items, next_key
  end, op.path)
  return iterator
end

--- for sim in client:subscribers(group_id, {limit=}) do: every SIM of a group, a page
-- (GET /groups/{group_id}/subscribers) fetched when the loop needs the next; a page
-- that fails raises as with groups.
-- @tparam string group_id the group
-- @tparam[opt] table options
-- @tparam[opt] number options.limit the page size
-- @tparam[opt] string options.last_evaluated_key start after this key (a resume_key)
-- @treturn function the iterator: each call gives the next SIM, nil at the end
function Client:subscribers(group_id, options)
  local op = operations.list_subscribers
  check_self(self, "subscribers")
  validate.params(op, 2, group_id)
  validate.query(op, options, 2)
  local _, path = build_url(self._endpoint, op.path, nil, nil, group_id)
  local iterator = iterate.pages(op, options, function(query)
    local items, next_key = request.send(self, op, FETCH_LEVEL, query, nil, group_id)
    return items, next_key
  end, path)
  return iterator
end

--- The operator ID: from the login (logging in first if need be), or the
-- operator_id option given with an API key and token. Returns it or nil, err.
function Client:operator_id()
  check_self(self, "operator_id")
  if self._transport == nil then error("soracom.groups: operator_id: the client is closed", 2) end
  local id, err = auth.operator_id(self)
  if id == nil then return nil, err end
  return id
end

--- Revokes the API key and token (POST /auth/logout) and forgets them; a later call
-- logs in again when the client has credentials to. Returns true or nil, err.
function Client:logout()
  check_self(self, "logout")
  if self._transport == nil then error("soracom.groups: logout: the client is closed", 2) end
  local ok, err = auth.logout(self)
  return ok, err
end

--- Releases the connection; safe to call twice. Any later call raises.
function Client:close()
  check_self(self, "close")
  local transport = self._transport
  self._transport = nil
  if transport ~= nil then
    if self._budget then self._budget:release() end -- the operator's is no longer this client's to hold
    auth.close(self)
    transport:close()
    if self._redis_link then self._redis_link:close() end
  end
end

--- Whether close() was called.
function Client:is_closed()
  check_self(self, "is_closed")
  return self._transport == nil
end

--- The API's base URL the client sends to.
function Client:endpoint()
  check_self(self, "endpoint")
  return self._endpoint
end

Client.__gc = Client.close
Client.__close = Client.close

--- A line naming the endpoint and the kind of credentials, never one of them.
function Client:__tostring()
  return "soracom.groups client (" .. self._endpoint .. ", " .. auth.describe(self)
    .. (self._transport == nil and ", closed)" or ")")
end

return Client
