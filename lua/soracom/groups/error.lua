--- The error object every failed call returns as its second value.
-- Fields: kind ("http", "network", "decode", "auth", "config", "rate_limit" (held
-- past rate_limit_max_delay), "closed" (the client closed while it waited), "map"
-- (from client:map), or from update_config "conflict" and "unsupported"), status, code,
-- message, method, path, attempts (requests sent), retry_after (seconds the server
-- asked to wait), and for network failures curl_code. It never holds a credential.

local Error = {}
Error.__index = Error

function Error.__tostring(err)
  local parts = { "soracom-groups: " }
  if err.method then
    parts[#parts + 1] = err.method .. " " .. (err.path or "?") .. ": "
  end
  if err.kind == "http" then
    parts[#parts + 1] = "HTTP " .. tostring(err.status)
      .. (err.code and " (" .. err.code .. "): " or ": ")
  elseif err.kind == "network" then
    parts[#parts + 1] = "network error: "
  elseif err.kind == "decode" then
    parts[#parts + 1] = "bad response (HTTP " .. tostring(err.status) .. "): "
  end
  parts[#parts + 1] = err.message or "unknown error"
  if err.attempts and err.attempts > 1 then
    parts[#parts + 1] = " (after " .. err.attempts .. " attempts)"
  end
  return table.concat(parts)
end

--- Gives an error table (the core's, or a new one) its method, path and metatable.
function Error.wrap(fields, method, path)
  fields.method = method
  fields.path = path
  return setmetatable(fields, Error)
end

--- A new error of the given kind that is not about one request.
function Error.new(kind, message)
  return setmetatable({ kind = kind, message = message }, Error)
end

function Error.is(value)
  return getmetatable(value) == Error
end

return Error
