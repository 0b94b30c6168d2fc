--- soracom-cli profiles: ~/.soracom/<name>.json (or $SORACOM_PROFILE_DIR/<name>.json).
-- Reads the fields soracom-cli writes; refuses a file that group or others can read,
-- as soracom-cli does, and anything but a regular file. Problems come back as nil, message (the message names the
-- file, never a value from it).

local core = require "soracom.groups.core"

local profile = {}

local STRING_FIELDS = {
  "coverageType", "authKeyId", "authKey", "email", "password", "operatorId", "username",
  "userName", "endpoint", "mfaOTPCode", "sourceProfile", "profileCommand",
}

--- The path of a profile, or nil, message.
function profile.path(name, getenv)
  if not name:match("^[%w_%-][%w_%.%-]*$") then
    return nil, "profile name " .. string.format("%q", name)
      .. " may hold only letters, digits, '.', '_' and '-'"
  end
  local dir = getenv("SORACOM_PROFILE_DIR")
  if dir == nil or dir == "" then
    local home = getenv("HOME")
    if home == nil or home == "" then
      return nil, "neither SORACOM_PROFILE_DIR nor HOME is set, so profile "
        .. string.format("%q", name) .. " cannot be found"
    end
    dir = home .. "/.soracom"
  end
  return dir .. "/" .. name .. ".json"
end

local function check_fields(data, path)
  for key, value in pairs(data) do
    if value == core.null then data[key] = nil end -- null reads as absent
  end
  for _, field in ipairs(STRING_FIELDS) do
    if data[field] ~= nil and type(data[field]) ~= "string" then
      return nil, "profile " .. path .. ": " .. field .. " must be a string"
    end
  end
  if data.sandbox ~= nil and type(data.sandbox) ~= "boolean" then
    return nil, "profile " .. path .. ": sandbox must be true or false"
  end
  local timeout = data.tokenTimeoutSeconds
  if timeout ~= nil and (type(timeout) ~= "number" or timeout % 1 ~= 0) then
    return nil, "profile " .. path .. ": tokenTimeoutSeconds must be a whole number"
  end
  local headers = data.headers
  if headers ~= nil and type(headers) ~= "table" then
    return nil, "profile " .. path .. ": headers must be an object or an array of \"Name: value\""
  end
  return data
end

local function cannot_read(path, why) return "cannot read profile " .. path .. ": " .. why end

-- What each refusal of core.read_private_file means, given the path and its detail.
local REFUSED = {
  missing = cannot_read,
  unreadable = cannot_read,
  not_regular = function(path) return "profile " .. path .. " is not a regular file" end,
  shared = function(path, mode)
    return string.format("profile %s can be read by other users (mode %o); run: chmod 600 %s", path, mode, path)
  end,
  too_large = function(path, limit)
    return "profile " .. path .. " is larger than " .. limit .. " bytes: not a profile"
  end,
}

--- Reads and checks a profile file: the decoded table, or nil, message, and
-- whether the file is missing.
function profile.read(path)
  local text, reason, detail = core.read_private_file(path)
  if text == nil then
    return nil, REFUSED[reason](path, detail), reason == "missing"
  end
  local data, json_error = core.decode_json(text or "")
  if type(data) ~= "table" or data[1] ~= nil then
    return nil, "profile " .. path .. " is not a JSON object"
      .. (json_error and " (" .. json_error .. ")" or "")
  end
  return check_fields(data, path)
end

return profile
