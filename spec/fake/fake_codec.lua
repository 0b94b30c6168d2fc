-- Codecs for the fake Soracom server: percent-encoding, raw query strings, JSON.
-- Pure Lua (no ngx), so it also loads in plain Lua.
--
-- JSON is decoded with lua-cjson but encoded here, because Debian's cjson 2.1.0
-- prints numbers with at most 14 significant digits (2^53-1 would become
-- 9.007199254741e+15), escapes "/" as "\/", and cannot tell [] from {}.
local cjson = require "cjson"

local byte, char, concat, find, format, gsub, sub =
  string.byte, string.char, table.concat, string.find, string.format, string.gsub, string.sub
local floor, huge = math.floor, math.huge

local M = {}

M.null = cjson.null

-- Tables carrying this metatable encode as JSON arrays even when empty.
M.array_mt = { __name = "fake_codec.array" }

function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

-- A value that encodes as the given JSON text, verbatim (for JSON already encoded).
local raw_mt = { __name = "fake_codec.raw" }

function M.raw(json)
  return setmetatable({ json }, raw_mt)
end

---------------------------------------------------------------------------
-- Percent-encoding (RFC 3986). '+' is left alone: it is not a space in a path,
-- and Soracom clients must escape spaces as %20 in queries too.

local function hex_byte(h)
  return char(tonumber(h, 16))
end

-- Returns the decoded string, or nil when a '%' is not followed by two hex digits.
function M.percent_decode(s)
  if not find(s, "%", 1, true) then
    return s
  end
  local malformed = false
  local out = gsub(s, "%%(.?.?)", function(h)
    if #h == 2 and find(h, "^%x%x$") then
      return hex_byte(h)
    end
    malformed = true
  end)
  if malformed then
    return nil
  end
  return out
end

local function escape_byte(c)
  return format("%%%02X", byte(c))
end

-- Keeps only the RFC 3986 unreserved set; everything else becomes %XX.
function M.percent_encode(s)
  return (gsub(s, "[^%w%-%._~]", escape_byte))
end

-- Splits a raw path into decoded segments: "/v1/groups/a%2Fb" -> {"v1", "groups", "a/b"}.
-- Empty segments are kept (a trailing slash yields ""), so routing can reject them.
-- Returns nil, message on malformed percent-encoding.
function M.split_path(path)
  local segments = {}
  for raw in (sub(path, 2) .. "/"):gmatch("([^/]*)/") do
    local seg = M.percent_decode(raw)
    if not seg then
      return nil, "malformed percent-encoding in path segment '" .. raw .. "'"
    end
    segments[#segments + 1] = seg
  end
  return segments
end

-- Parses a raw query string; the first occurrence of a name wins.
-- Returns nil, message on malformed percent-encoding.
function M.parse_query(query)
  local args = {}
  if not query or query == "" then
    return args
  end
  for pair in query:gmatch("[^&]+") do
    local raw_name, raw_value = pair:match("^([^=]*)=?(.*)$")
    local name, value = M.percent_decode(raw_name), M.percent_decode(raw_value)
    if not name or not value then
      return nil, "malformed percent-encoding in query parameter '" .. pair .. "'"
    end
    if args[name] == nil then
      args[name] = value
    end
  end
  return args
end

---------------------------------------------------------------------------
-- JSON decoding. cjson turns both [] and {} into an empty table; before decoding,
-- every empty array outside a string is replaced by a sentinel string that is then
-- swapped for an array-marked table.

local EMPTY_ARRAY_TEXT = '"\\u0000fake_codec:empty-array"'
local EMPTY_ARRAY_VALUE = "\0fake_codec:empty-array"

local function mark_empty_arrays(text)
  if not find(text, "%[[ \t\r\n]*%]") then
    return text, false
  end
  local parts, copied_to, pos = {}, 1, 1
  while true do
    local at = find(text, '["%[]', pos)
    if not at then
      break
    end
    if sub(text, at, at) == '"' then
      -- Skip the string literal, honouring backslash escapes.
      local scan = at + 1
      while true do
        local q = find(text, '["\\]', scan)
        if not q then
          return text, false -- unterminated string: let cjson report it
        end
        if sub(text, q, q) == "\\" then
          scan = q + 2
        else
          pos = q + 1
          break
        end
      end
    else
      local _, close = find(text, "^%[[ \t\r\n]*%]", at)
      if close then
        parts[#parts + 1] = sub(text, copied_to, at - 1)
        parts[#parts + 1] = EMPTY_ARRAY_TEXT
        copied_to = close + 1
        pos = close + 1
      else
        pos = at + 1
      end
    end
  end
  parts[#parts + 1] = sub(text, copied_to)
  return concat(parts), true
end

local function restore_empty_arrays(value)
  if value == EMPTY_ARRAY_VALUE then
    return M.array()
  end
  if type(value) == "table" then
    for k, v in pairs(value) do
      value[k] = restore_empty_arrays(v)
    end
  end
  return value
end

-- Returns the decoded value, or nil, message.
function M.decode(text)
  local marked, has_empty = mark_empty_arrays(text)
  local ok, value = pcall(cjson.decode, marked)
  if not ok then
    return nil, tostring(value)
  end
  if has_empty then
    value = restore_empty_arrays(value)
  end
  return value
end

---------------------------------------------------------------------------
-- JSON encoding.

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

local function encode_string(s)
  return '"' .. gsub(s, '[%z\1-\31"\\]', escape_char) .. '"'
end

local function encode_number(n)
  if n ~= n or n == huge or n == -huge then
    return "null" -- JSON has no NaN or infinity
  end
  if floor(n) == n and n > -2 ^ 53 and n < 2 ^ 53 then
    return format("%d", n) -- integral: never an exponent, e.g. 1698796800000
  end
  local short = format("%.14g", n)
  if tonumber(short) == n then
    return short
  end
  return format("%.17g", n)
end

-- An array is a table marked with array_mt, or a non-empty table whose keys are 1..n.
local function is_array(t)
  if getmetatable(t) == M.array_mt then
    return true
  end
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(t) do
    count = count + 1
  end
  return count == n
end

local encode_value

local function encode_table(t, buf)
  if getmetatable(t) == raw_mt then
    buf[#buf + 1] = t[1]
    return
  end
  if is_array(t) then
    buf[#buf + 1] = "["
    for i = 1, #t do
      if i > 1 then
        buf[#buf + 1] = ","
      end
      encode_value(t[i], buf)
    end
    buf[#buf + 1] = "]"
    return
  end
  buf[#buf + 1] = "{"
  local first = true
  for k, v in pairs(t) do
    if not first then
      buf[#buf + 1] = ","
    end
    first = false
    buf[#buf + 1] = encode_string(tostring(k))
    buf[#buf + 1] = ":"
    encode_value(v, buf)
  end
  buf[#buf + 1] = "}"
end

encode_value = function(v, buf)
  local kind = type(v)
  if kind == "string" then
    buf[#buf + 1] = encode_string(v)
  elseif kind == "number" then
    buf[#buf + 1] = encode_number(v)
  elseif kind == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif kind == "table" then
    encode_table(v, buf)
  elseif v == nil or v == cjson.null then
    buf[#buf + 1] = "null"
  else
    error("cannot encode a " .. kind .. " as JSON")
  end
end

function M.encode(value)
  local buf = {}
  encode_value(value, buf)
  return concat(buf)
end

return M
