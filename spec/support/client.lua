-- A client pointed at a running fake server, with its credentials.
local groups = require "soracom.groups"

return function(srv, extra)
  local options = { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token }
  for name, value in pairs(extra or {}) do options[name] = value end
  return groups.new(options)
end
