--- What a plan may show of settings in the API's form (namespace -> {apiKey = value}).
-- Pure: no I/O.
--
-- Which values are secrets comes from the builders' schema (config.lua marks such
-- fields `secret`): Air's and Beam's password, Beam's psk, a client certificate's key
-- and a custom header's headerValue. Everything under a secret field is secret too.
-- A reference, {"$credentialsId": id} or {"$env": "NAME"}, names a secret and holds
-- none: it is shown, at a secret field too.
--
-- Keys the schema does not know (an unknown namespace, SoracomFlux's, keys passed
-- through extra, an unknown Beam entry point's) fall back to a rule on their names:
-- a name the schema knows is secret exactly when the schema marks it so (headerKey,
-- credentialsId, tokenTimeoutSeconds never are; headerValue always is); any other
-- name is secret when, lower-cased without _ - . and spaces, it contains password,
-- passwd, passphrase, secret, psk, privatekey, token, apikey, accesskey, accountkey
-- or authkey, or is key or pwd. An address (a key with / or :) names nothing.
--
-- Any other string is shown through mask_string, which hides the secret parts of
-- URLs, connection strings and Authorization credentials but keeps the rest.

local config = require "soracom.groups.config_core"
local core = require "soracom.groups.core"

local secrets = {}

--- What a secret value is shown as.
secrets.SENSITIVE = "(sensitive)"

--- What mask_string puts in place of a secret part.
local MASK = "***"

-- The fallback rule on names (see the module comment).
local SECRET_WORDS = { "password", "passwd", "passphrase", "secret", "psk", "privatekey", "token", "apikey",
  "accesskey", "accountkey", "authkey" }
local SECRET_NAMES = { key = true, pwd = true }

local function name_is_secret(name)
  if type(name) ~= "string" then return false end
  local known = config.api_key_names()[name]
  if known ~= nil then return known end
  if name:find("[/:]") then return false end
  local word = name:lower():gsub("[%s_%-%.]", "")
  if SECRET_NAMES[word] then return true end
  for _, secret_word in ipairs(SECRET_WORDS) do
    if word:find(secret_word, 1, true) then return true end
  end
  return false
end

--- Whether a name alone (a tag's, which no schema describes) names a secret, by the
-- rule for keys the schema does not know.
secrets.is_secret_name = name_is_secret

--- secrets.is_secret(namespace, keys): whether the value at keys (API keys from the
-- namespace's settings object down to a leaf) is a secret. The key of a reference
-- ("$credentialsId", "$env") is last in a path to a name, never to a secret.
function secrets.is_secret(namespace, keys)
  local last = keys[#keys]
  if last ~= nil and config.REFERENCE_KEYS[last] then return false end
  local status, first_unknown = config.api_lookup(namespace, keys)
  if status then return status == "secret" end
  for i = first_unknown, #keys do
    if name_is_secret(keys[i]) then return true end
  end
  return false
end

-- Query parameters and connection-string parts whose values are secrets, lower-case:
-- signatures and credentials of signed URLs (Azure SAS sig, AWS and Google
-- X-*-Signature, -Credential, -Security-Token), OAuth tokens and client secrets, API
-- keys, passwords, Azure Functions' code and Azure's SharedAccessKey, AccountKey.
local SECRET_PARAMETERS = {}
for _, name in ipairs({ "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
  "x-goog-signature", "x-goog-credential", "access_token", "refresh_token", "id_token", "token", "api_key",
  "apikey", "key", "password", "passwd", "pwd", "secret", "client_secret", "code", "sharedaccesskey",
  "sharedaccesssignature", "accountkey", "subscription-key", "ocp-apim-subscription-key" }) do
  SECRET_PARAMETERS[name] = true
end

-- A Lua pattern matching word in any case.
local function any_case(word)
  return (word:gsub("%a", function(c) return "[" .. c:upper() .. c:lower() .. "]" end))
end

-- An Authorization header's name and separator, then its value up to a line's end or
-- a quote; the value's scheme word, when it is one of AUTHORIZATION_SCHEMES, is kept.
local AUTHORIZATION = "(" .. any_case("authorization") .. "[\"']?%s*[:=]%s*[\"']?)([^\r\n\"']*)"
local AUTHORIZATION_SCHEMES = { basic = true, bearer = true, digest = true, token = true }
-- Bearer or Basic with its credentials (RFC 7235's token68) anywhere.
local CREDENTIALS = {}
for i, scheme in ipairs({ "bearer", "basic" }) do
  CREDENTIALS[i] = "()%f[%a](" .. any_case(scheme) .. "%s+)([%w%-%._~%+/]+=*)()"
end

-- scheme://user:password@host -> scheme://user:***@host (a user alone is kept).
local function mask_userinfo(scheme, authority)
  local at = authority:find("@[^@]*$")
  if not at then return nil end
  local colon = authority:find(":", 1, true)
  if not colon or colon >= at - 1 then return nil end
  return scheme .. authority:sub(1, colon) .. MASK .. authority:sub(at)
end

local function mask_authorization(head, value)
  local scheme, credentials = value:match("^(%a+%s+)(.*)$")
  if scheme and AUTHORIZATION_SCHEMES[scheme:match("%a+"):lower()] then
    if credentials == "" then return nil end
    return head .. scheme .. MASK
  end
  if value == "" then return nil end
  return head .. MASK
end

-- A parameter named by the rule for keys, unless it names or numbers one
-- (SharedAccessKeyName, key_id).
local function secret_parameter(name)
  local lower = name:lower()
  if SECRET_PARAMETERS[lower] then return true end
  return name_is_secret(name) and not (lower:find("name$") or lower:find("id$"))
end

local function mask_parameter(separator, name, equals, value)
  if value == "" or not secret_parameter(name) then return nil end
  return separator .. name .. equals .. MASK
end

-- Whether a word after Bearer or Basic looks like a credential rather than English:
-- a digit, a symbol or a capital after its first letter.
local function looks_like_credential(word)
  return word:find("[%d%-%._~%+/=]") ~= nil or word:find("%u", 2) ~= nil
end

--- secrets.mask_string(text) -> text with its secret parts as ***, and whether any
-- was. Masked: the password of a URL's userinfo; the values of the query parameters
-- (after ? & or #) and of connection-string parts (at the start or after ;) named in
-- SECRET_PARAMETERS, case ignored, or whose name the rule for unknown keys takes for a
-- secret's (auth_token, x-api-key, access_key); an Authorization header's value (after
-- Authorization: or =, to the line's end or a quote; a Basic, Bearer, Digest or Token
-- scheme word is kept); and the word after Bearer or Basic anywhere, when it looks
-- like a credential or the text is just the two words. The host, the path and other
-- parameters stay for the reviewer.
function secrets.mask_string(text)
  if type(text) ~= "string" then return text, false end
  local masked = text:gsub("(%a[%w+%.%-]*://)([^/?#%s;,\"'<>]*)", mask_userinfo)
  masked = masked:gsub("([?&#])([%w_%.%-]+)(=)([^&#%s;\"']*)", mask_parameter)
  masked = (";" .. masked):gsub("(;%s*)([%w_]+)(%s*=%s*)([^;]*)", mask_parameter):sub(2)
  masked = masked:gsub(AUTHORIZATION, mask_authorization)
  for _, pattern in ipairs(CREDENTIALS) do
    local first, last = masked:match("^%s*()"), masked:match("()%s*$")
    masked = masked:gsub(pattern, function(start, head, word, finish)
      if looks_like_credential(word) or (start == first and finish == last) then return head .. MASK end
      return nil
    end)
  end
  return masked, masked ~= text
end

local with_key = config.with_key

--- secrets.masked(namespace, keys, value): a deep copy of value (found at keys below
-- the namespace's settings object) fit to show: each leaf at a secret path is
-- SENSITIVE (null, a removal, stays null), each other string goes through
-- mask_string, references are kept as they are. Array marks are kept.
function secrets.masked(namespace, keys, value)
  local function walk(item, path)
    if config.is_reference(item) then return config.copy(item) end
    if type(item) == "table" then
      local result = {}
      for key, inner in pairs(item) do result[key] = walk(inner, with_key(path, key)) end
      if getmetatable(item) == core.array_mt then setmetatable(result, core.array_mt) end
      return result
    end
    if item ~= core.null and secrets.is_secret(namespace, path) then return secrets.SENSITIVE end
    if type(item) == "string" then return (secrets.mask_string(item)) end
    return item
  end
  return walk(value, keys or {})
end

return secrets
