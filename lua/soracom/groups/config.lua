-- soracom.groups.config (groups.config): what the API offers of the configuration
-- builders, and nothing else. The builders and their helpers live in config_core.lua,
-- whose other functions serve the library's own modules and are not part of the API
-- (documented there, with the functions below, as soracom.groups.config).

local core = require "soracom.groups.config_core"
local operations = require "soracom.groups.operations"

local config = {
  read = core.read,
  describe = core.describe,
  check_api = core.check_api,
  is_built = core.is_built,
}
for builder in pairs(operations.BUILDERS) do config[builder] = core[builder] end

return config
