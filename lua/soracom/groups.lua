--- soracom.groups: a client for the Soracom Group Configuration API.
--
--     local groups = require "soracom.groups"
--     local client = groups.new { api_key = ..., token = ... }
--     local group, err = client:get_group(id)
--
-- The client's methods are in `soracom.groups.Client`, the error object in
-- `soracom.groups.Error`, the builders' fields in the "Configuration builders" topic.
-- @module soracom.groups

local core = require "soracom.groups.core"
local Client = require "soracom.groups.client"
local config = require "soracom.groups.config"
local Error = require "soracom.groups.error"
local spec = require "soracom.groups.operations"

local groups = {
  --- The library's version, "0.2.0".
  VERSION = core.VERSION,
  --- JSON null in responses and request bodies; equal to cjson.null.
  null = core.null,
  --- The configuration namespaces, in the API's names ("SoracomAir", ...).
  NAMESPACES = spec.NAMESPACES,
  --- The operations, by method name (the ten of the group API and the five of SIM
  -- membership): method, path, params, query, operation_id, cli.
  operations = spec.operations,
  --- client:move_sims goes through the Batch API above this many SIMs, unless told.
  MOVE_SIMS_BATCH_THRESHOLD = require("soracom.groups.sims").BATCH_THRESHOLD,
  --- A new client: see `soracom.groups.Client.new` for its options.
  -- @function new
  new = Client.new,
  --- The configuration builders: groups.config.air{...}, groups.config.read(group, ns).
  config = config,
  --- Whether a value is this library's error object.
  -- @function is_error
  is_error = Error.is,
}

--- Marks a table as a JSON array, so that an empty one is sent as [] and not {}.
function groups.array(t)
  if t ~= nil and type(t) ~= "table" then
    error("soracom.groups.array: expected a table or nothing (got " .. type(t) .. ")", 2)
  end
  return setmetatable(t or {}, core.array_mt)
end

return groups
