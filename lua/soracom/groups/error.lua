--- The error object every failed call returns as its second value.
-- `tostring(err)` gives one line; it never holds a credential.
-- @classmod soracom.groups.Error

--- The fields of an error.
-- @field kind "http", "network", "decode", "auth", "config", "rate_limit" (held past
-- rate_limit_max_delay), "closed" (the client closed while it waited), "map" (from
-- client:map), "batch" (a Batch API job of client:move_sims), "redis" (Redis failed, with
-- on_redis_error = "fail"), or from update_config
-- "conflict" and "unsupported"
-- @field status the HTTP status, when there was an answer
-- @field code the API's error code ("COM0004", ...), when it gave one
-- @field message what went wrong, in words
-- @field method the request's method
-- @field path the request's path, without the endpoint
-- @field attempts how many requests were sent
-- @field retry_after seconds the server asked to wait (429, 503), or the rate limit's wait
-- @field curl_code libcurl's error number, for network failures (the nginx transport uses the same numbers)
-- @field resume_key from a failed page of an iterator (client:groups, client:subscribers):
-- the last_evaluated_key to start again from, so that nothing is lost or repeated
-- @table Error

local Error = {}
Error.__index = Error

--- One line: method, path, status or kind, code, message and attempts.
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
-- @local
function Error.wrap(fields, method, path)
  fields.method = method
  fields.path = path
  return setmetatable(fields, Error)
end

--- A new error of the given kind that is not about one request.
-- @local
function Error.new(kind, message)
  return setmetatable({ kind = kind, message = message }, Error)
end

--- Whether `value` is an error of this library.
function Error.is(value)
  return getmetatable(value) == Error
end

return Error
