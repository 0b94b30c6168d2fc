--- The libcurl transport: a curl session from the C core. It blocks while a request
-- is on the wire, so it is for plain Lua and for nginx phases without cosockets.
-- A transport has perform(method, url, body, paginated), set_headers(lines),
-- sleep(seconds) and close(); see lua/soracom/groups/transport/README.md.

local core = require "soracom.groups.core"

local curl = {}

-- The session reads connect_timeout, timeout, max_body_size, insecure, ca_file,
-- ca_path and proxy from the settings, and keeps none of the rest.
function curl.new(settings)
  return core.session(settings)
end

return curl
