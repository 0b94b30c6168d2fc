--- soracom.groups: a client for the Soracom Group Configuration API.
--
--     local groups = require "soracom.groups"
--     local client = groups.new { api_key = ..., token = ... }
--     local group, err = client:get_group(id)

local core = require "soracom.groups.core"
local Client = require "soracom.groups.client"
local config = require "soracom.groups.config"
local Error = require "soracom.groups.error"
local spec = require "soracom.groups.operations"

local groups = {
  VERSION = core.VERSION,
  --- JSON null in responses and request bodies; equal to cjson.null.
  null = core.null,
  NAMESPACES = spec.NAMESPACES,
  operations = spec.operations,
  new = Client.new,
  --- The configuration builders: groups.config.air{...}, groups.config.read(group, ns).
  config = config,
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
