--- JSON on stdout, as soracom-cli prints it: pretty (2-space indent) by default, one
-- compact object per line with --jsonl, or the response compact without a final newline
-- with --raw-output; object keys sorted every way, so that output diffs are stable.
-- Scalars go through the C core's encoder, so strings and exact
-- integers read back as they were decoded.

local core = require "soracom.groups.core"

local encode_scalar = core.encode_json
local output = {}

local function is_array(t)
  if getmetatable(t) == core.array_mt then return true end
  if t[1] == nil then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == #t
end

-- Appends the JSON of value to parts. indent is the unit ("  ") or nil for compact;
-- prefix is the indentation of the line value starts on.
local function write(parts, value, indent, prefix)
  if type(value) ~= "table" then
    parts[#parts + 1] = encode_scalar(value)
    return
  end
  local inner = indent and prefix .. indent
  local newline = indent and "\n" .. inner or ""
  local colon = indent and ": " or ":"
  if is_array(value) then
    if value[1] == nil then parts[#parts + 1] = "[]" return end
    parts[#parts + 1] = "["
    for i = 1, #value do
      parts[#parts + 1] = (i > 1 and "," or "") .. newline
      write(parts, value[i], indent, inner)
    end
    parts[#parts + 1] = (indent and "\n" .. prefix or "") .. "]"
    return
  end
  local keys = {}
  for key in pairs(value) do keys[#keys + 1] = tostring(key) end
  if #keys == 0 then parts[#parts + 1] = "{}" return end
  table.sort(keys)
  parts[#parts + 1] = "{"
  for i, key in ipairs(keys) do
    parts[#parts + 1] = (i > 1 and "," or "") .. newline .. encode_scalar(key) .. colon
    local item = value[key]
    if item == nil then item = value[tonumber(key)] end
    write(parts, item, indent, inner)
  end
  parts[#parts + 1] = (indent and "\n" .. prefix or "") .. "}"
end

--- The JSON text of value: pretty unless compact is true.
function output.encode(value, compact, prefix)
  local parts = {}
  write(parts, value, not compact and "  " or nil, prefix or "")
  return table.concat(parts)
end

-- Writes and flushes; true, or nil and why (a closed pipe when SIGPIPE is ignored,
-- where the write fails instead of ending the process: stop fetching then).
local function put(stream, ...)
  local ok, why = stream:write(...)
  if ok then ok, why = stream:flush() end
  if not ok then return nil, "cannot write the output: " .. tostring(why) end
  return true
end
-- Compiled by LuaJIT 2.1, a failed flush left its trace and ran again on the buffer
-- the failure had emptied, and that flush succeeded: the error was lost and the
-- command went on fetching into a closed pipe. Interpreted, put sees every failure.
if rawget(_G, "jit") then jit.off(put) end

--- Writes text and flushes: true, or nil, why.
output.write = put

--- Prints one value; with jsonl an array prints as one compact line per element; with
-- raw (--raw-output), compact and without a final newline, as soracom-cli writes the
-- response's body. Returns true, or nil, why.
function output.print(stream, value, jsonl, raw)
  if raw then return put(stream, output.encode(value, true)) end
  if jsonl and type(value) == "table" and is_array(value) then
    local text = {}
    for i, item in ipairs(value) do text[i] = output.encode(item, true) .. "\n" end
    return put(stream, table.concat(text))
  end
  return put(stream, output.encode(value, jsonl), "\n")
end

--- A list printed as its items come: item(value) writes and flushes one, finish()
-- ends the list; both return true, or nil, why. Pretty output is byte for byte what
-- print gives for the whole array, so streaming changes only when the bytes arrive.
-- An unfinished array (a page failed) is left unclosed: invalid JSON, never mistaken
-- for the whole list. With raw, the list is one compact array without a final newline
-- (soracom-cli's --raw-output --fetch-all).
function output.list(stream, jsonl, raw)
  local count = 0
  local list = {}
  function list.item(value)
    count = count + 1
    if raw then return put(stream, count == 1 and "[" or ",", output.encode(value, true)) end
    if jsonl then return put(stream, output.encode(value, true), "\n") end
    return put(stream, count == 1 and "[\n  " or ",\n  ", output.encode(value, false, "  "))
  end
  function list.finish()
    if raw then return put(stream, count == 0 and "[]" or "]") end
    if jsonl then return true end
    return put(stream, count == 0 and "[]\n" or "\n]\n")
  end
  return list
end

return output
