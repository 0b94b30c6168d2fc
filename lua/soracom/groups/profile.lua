--- soracom-cli profiles: ~/.soracom/<name>.json (or $SORACOM_PROFILE_DIR/<name>.json).
-- Reads the fields soracom-cli writes; refuses a file that group or others can read,
-- as soracom-cli does, and anything but a regular file. Problems come back as nil, message (the message names the
-- file, never a value from it).
--
-- A profile command (profileCommand, or the profile_command option) prints a profile's
-- JSON on its stdout, as soracom-cli's: what it prints and what it says on stderr may
-- hold secrets, so neither is ever shown; a failure says only its exit status.

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

-- A profile's JSON text decoded and checked: the table, or nil, message (naming
-- `what`, never a value of the text: it holds secrets).
local function decode(text, what)
  local ok, data = pcall(core.decode_json, text)
  if not ok or type(data) ~= "table" or data[1] ~= nil then
    return nil, what .. " is not a JSON object"
  end
  return check_fields(data, what)
end

--- Reads and checks a profile file: the decoded table, or nil, message, and
-- whether the file is missing.
function profile.read(path)
  local text, reason, detail = core.read_private_file(path)
  if text == nil then
    return nil, REFUSED[reason](path, detail), reason == "missing"
  end
  return decode(text or "", "profile " .. path)
end

--- The seconds a profile command may run before it is stopped.
profile.COMMAND_TIMEOUT = 60

-- The most a profile command's output may hold (a profile is a few hundred bytes).
local COMMAND_OUTPUT_MAX = 1024 * 1024

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- Runs $1 by sh with stdin from /dev/null, stdout into the file $2, stderr dropped,
-- and stops it (SIGKILL) after $3 seconds; prints its exit status, or "timeout". The
-- output goes to a file, not to the pipe this script's status comes back on: what the
-- command leaves running (a pipeline's other end, a helper) could hold a pipe open
-- and the wait would never end. The watchdog exits 3 when it fired, 0 when stopped
-- first (its trap stops its sleep too).
local RUNNER = [[
umask 077
sh -c "$1" </dev/null >"$2" 2>/dev/null &
p=$!
(trap 'kill $s 2>/dev/null; exit ${fired:-0}' TERM; sleep "$3" & s=$!; wait $s; fired=3; kill -KILL $p; exit 3) \
  </dev/null >/dev/null 2>&1 &
w=$!
wait $p; status=$?
kill $w 2>/dev/null; wait $w
if [ $? = 3 ]; then echo timeout; else echo "$status"; fi
]]

--- profile.run_command(command, what, timeout): runs a profile command (by /bin/sh)
-- and decodes the profile it prints: the table, or nil, message. `what` names it in
-- messages ("the profileCommand of profile P"); the output and stderr never appear.
-- Its output is kept, while it runs, in a file only the user can read (mode 0600),
-- removed at once.
function profile.run_command(command, what, timeout)
  timeout = timeout or profile.COMMAND_TIMEOUT
  local path = os.tmpname()
  local pipe = io.popen("sh -c " .. shell_quote(RUNNER) .. " soracom-groups " .. shell_quote(command) .. " "
    .. shell_quote(path) .. " " .. string.format("%d", math.ceil(timeout)) .. " 2>/dev/null")
  local status = pipe and pipe:read("*a") or ""
  if pipe then pipe:close() end
  local file = io.open(path, "rb")
  local text = file and file:read(COMMAND_OUTPUT_MAX + 1)
  if file then file:close() end
  os.remove(path)
  status = status:match("^(%w+)\n$")
  if status == "timeout" then
    return nil, what .. " did not finish within " .. math.ceil(timeout) .. " s: it was stopped"
  end
  if status ~= "0" then
    return nil, what .. " failed (exit status " .. tostring(status or "unknown") .. "; its output and "
      .. "messages are not shown: they may hold secrets)"
  end
  if text and #text > COMMAND_OUTPUT_MAX then
    return nil, what .. " printed more than " .. COMMAND_OUTPUT_MAX .. " bytes: not a profile"
  end
  return decode(text or "", "the output of " .. what)
end

return profile
