--- The error object every failed call returns as its second value.
-- Fields: kind ("http", "network" or "decode"), status, code, message, method, path,
-- and for network failures curl_code. It never holds a credential.

local Error = {}
Error.__index = Error

function Error.__tostring(err)
  local parts = { "soracom-groups: ", err.method or "?", " ", err.path or "?", ": " }
  if err.kind == "http" then
    parts[#parts + 1] = "HTTP " .. tostring(err.status)
      .. (err.code and " (" .. err.code .. "): " or ": ")
  elseif err.kind == "network" then
    parts[#parts + 1] = "network error: "
  elseif err.kind == "decode" then
    parts[#parts + 1] = "bad response (HTTP " .. tostring(err.status) .. "): "
  end
  parts[#parts + 1] = err.message or "unknown error"
  return table.concat(parts)
end

--- Gives the core's error table its method, path and metatable.
function Error.wrap(fields, method, path)
  fields.method = method
  fields.path = path
  return setmetatable(fields, Error)
end

function Error.is(value)
  return getmetatable(value) == Error
end

return Error
