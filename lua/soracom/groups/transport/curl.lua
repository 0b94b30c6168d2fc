--- The libcurl transport: a curl session from the C core. It blocks while a request
-- is on the wire, so it is for plain Lua and for nginx phases without cosockets.
-- A transport has perform(method, url, body, paginated), set_headers(lines),
-- sleep(seconds) and close(); see lua/soracom/groups/transport/README.md.

local core = require "soracom.groups.core"

local curl = {}

function curl.new(settings)
  return core.session {
    connect_timeout = settings.connect_timeout,
    timeout = settings.timeout,
    max_body_size = settings.max_body_size,
    insecure = settings.insecure,
    ca_file = settings.ca_file,
    ca_path = settings.ca_path,
    proxy = settings.proxy,
  }
end

return curl
