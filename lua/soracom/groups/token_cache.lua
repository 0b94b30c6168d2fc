--- The token cache (the token_cache option, which the command turns on): a token kept
-- in a file between runs, so that a shell loop of commands logs in once, not once per
-- command.
--
-- One file per identity, in a folder of the user's own (mode 0700): its name is a
-- digest of shared.identity (the endpoint, the kind of credentials and its non-secret
-- names), never of a secret; its content is the token, with the operator ID and the
-- wall-clock times it is valid until and renewed at, written as a private file (mode
-- 0600, replaced at once, never half written). A folder or a file that another user
-- owns, or that group or others may use, is neither read nor written: the cache then
-- says why, once, and the client logs in as if there were none.
--
-- No lock: two processes that find no token each log in, and the last to write wins.

local core = require "soracom.groups.core"
local settings = require "soracom.groups.settings"
local shared = require "soracom.groups.shared"

local token_cache = {}

-- The first line of a cache file: a file of another format is not read.
local FORMAT = "soracom-groups token cache 1"

-- No token lives longer than the /auth API allows: a file that says otherwise was not
-- written by this module, or the clock went back.
local MAX_LIFETIME = settings.MAX_TOKEN_TIMEOUT

local Cache = {}
Cache.__index = Cache

-- What each refusal of core.private_dir means, given the folder and its detail.
local DIR_REFUSED = {
  unusable = function(_, detail) return "cannot make or use it (" .. detail .. ")" end,
  not_directory = function(_, detail) return "it is " .. detail .. ", not a folder" end,
  owner = function(_, uid) return "it belongs to another user (uid " .. uid .. ")" end,
  shared = function(dir, mode)
    return "group or others may use it (mode " .. mode .. "); run: chmod 700 " .. dir
  end,
}

-- What each refusal of core.read_private_file means, given the file and its detail.
local FILE_REFUSED = {
  unreadable = function(_, detail) return "cannot read it (" .. detail .. ")" end,
  not_regular = function() return "it is not a regular file" end,
  shared = function(path, mode)
    return string.format("group or others may read or write it (mode %o); remove it, or run: chmod 600 %s",
      mode, path)
  end,
  too_large = function() return "it is too large to be a token" end,
}

--- token_cache.open(place, endpoint, credentials): the cache of these credentials'
-- identity. place: { directory = path } or { unavailable = why }. Nothing is read or
-- made before the first load or store.
function token_cache.open(place, endpoint, credentials)
  local cache = setmetatable({ _unavailable = place.unavailable }, Cache)
  if place.directory then
    cache._directory = place.directory
    cache._path = place.directory .. "/" .. core.sha256(shared.identity(endpoint, credentials)):sub(1, 32)
      .. ".token"
  end
  return cache
end

--- The path of the cache file (nil when no folder is known). Not a secret.
function Cache:path()
  return self._path
end

-- The cache is not used from now on: returns nil and, the first time only, why.
function Cache:_refuse(why)
  if self._refused then return nil end
  self._refused = true
  return nil, "the token cache is not used: " .. why .. "; logging in without it"
end

-- Makes the folder, or checks it, once: true, or nil[, why] (see _refuse).
function Cache:_ready()
  if self._refused then return nil end
  if self._checked then return true end
  if self._unavailable then return self:_refuse(self._unavailable) end
  local ok, reason, detail = core.private_dir(self._directory)
  if not ok then
    return self:_refuse("folder " .. self._directory .. ": " .. DIR_REFUSED[reason](self._directory, detail))
  end
  self._checked = true
  return true
end

-- "<name> <value>" lines of a cache file, in order.
local FIELDS = { "valid_until", "renew_at", "operator_id", "api_key", "token" }

local function usable_text(value)
  return type(value) == "string" and value ~= "" and not value:match("[%c ]")
end

--- load(): the cached token, while it is valid and its renewal time has not come:
-- { api_key, token, operator_id (or nil), valid_for, renew_in } (seconds from now),
-- or nil when there is none to use; and a message (never holding the token) when the
-- cache is refused, or to say why a token found is not used.
function Cache:load()
  local ready, why = self:_ready()
  if not ready then return nil, why end
  local path = self._path
  local text, reason, detail = core.read_private_file(path)
  if text == nil then
    if reason == "missing" then return nil end
    return self:_refuse("file " .. path .. ": " .. FILE_REFUSED[reason](path, detail))
  end
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local entry = {}
  for i, name in ipairs(FIELDS) do
    local line = lines[i + 1] or ""
    local value = line:match("^" .. name .. " (.*)$")
    entry[name] = value ~= "" and value or nil
  end
  local valid_until, renew_at = tonumber(entry.valid_until), tonumber(entry.renew_at)
  local wall = os.time()
  if lines[1] ~= FORMAT or not (usable_text(entry.api_key) and usable_text(entry.token)) or not valid_until
    or not renew_at or renew_at > valid_until or valid_until - wall > MAX_LIFETIME then
    return nil, "the token cache file " .. path .. " is not one this version writes: it is not used (the next "
      .. "login replaces it)"
  end
  -- (os.time counts whole seconds: the second under way may be nearly over)
  local renew_in, valid_for = renew_at - wall - 1, valid_until - wall - 1
  if renew_in <= 0 then
    return nil, "the cached token's renewal time has come (" .. path .. "): logging in"
  end
  return { api_key = entry.api_key, token = entry.token, operator_id = entry.operator_id,
    valid_for = valid_for, renew_in = renew_in }
end

--- store(api_key, token, operator_id, valid_for, renew_in): caches a token a login
-- gave, valid for valid_for seconds from now and to be renewed in renew_in. Returns
-- true, or nil[, why] (see load).
function Cache:store(api_key, token, operator_id, valid_for, renew_in)
  local ready, why = self:_ready()
  if not ready then return nil, why end
  if not (usable_text(api_key) and usable_text(token)) or (operator_id and not usable_text(operator_id)) then
    return nil -- (the login checked them: a token with a space is not one to keep)
  end
  local wall = os.time()
  local values = {
    valid_until = string.format("%d", wall + math.floor(valid_for)),
    renew_at = string.format("%d", wall + math.floor(renew_in)),
    operator_id = operator_id or "", api_key = api_key, token = token,
  }
  local lines = { FORMAT }
  for i, name in ipairs(FIELDS) do lines[i + 1] = name .. " " .. values[name] end
  local ok, failed = core.write_private_file(self._path, table.concat(lines, "\n") .. "\n")
  if not ok then return self:_refuse("file " .. self._path .. ": cannot write it (" .. failed .. ")") end
  return true
end

--- remove(): forgets the cached token (after a logout, or a 401 to it). Returns true,
-- or nil[, why] (see load).
function Cache:remove()
  local ready, why = self:_ready()
  if not ready then return nil, why end
  local ok, failed = os.remove(self._path)
  if not ok and select(2, core.read_private_file(self._path)) ~= "missing" then
    return self:_refuse("file " .. self._path .. ": cannot remove it (" .. tostring(failed) .. ")")
  end
  return true
end

function Cache:__tostring()
  return "soracom.groups token cache (" .. tostring(self._path or self._unavailable) .. ")"
end

return token_cache
