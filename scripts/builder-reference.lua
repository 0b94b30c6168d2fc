-- Writes the builders' reference (an LDoc topic, markdown) from config.describe, the
-- tables the builders check with, so that the reference cannot drift from them.
-- Usage: lua5.4 scripts/builder-reference.lua > docs-src/builders.md   (scripts/docs runs it)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local config = require "soracom.groups.config"
local spec = require "soracom.groups.operations"

local lines = {}
local function add(text) lines[#lines + 1] = text end

local function cell(text)
  return (tostring(text or ""):gsub("|", "\\|"))
end

-- One row per field, nested objects' fields after theirs with a dotted name.
local function rows(fields, prefix)
  for _, field in ipairs(fields) do
    local name = prefix .. field.name
    local accepts = field.doc
    if field.values then accepts = accepts .. "; each: " .. (field.values.doc or "") end
    if field.shorthand then accepts = "shorthand: " .. accepts end
    if field.secret then accepts = accepts .. "; **secret**" end
    local key = field.key and "`" .. cell(field.key) .. "`" or ""
    add("| `" .. cell(name) .. "` | " .. key .. " | " .. cell(accepts) .. " |")
    if field.fields then rows(field.fields, name .. ".") end
    local values = field.values
    if values and values.of then values = values.of end
    if values and values.fields then rows(values.fields, name .. "[name].") end
  end
end

add("# Configuration builders")
add("")
add("`groups.config.<builder>{...}` takes a namespace's settings as idiomatic Lua fields and")
add("gives what `client:put_config(group_id, built)` sends; `groups.config.read(group, builder)`")
add("gives them back in the same form. A field the builder does not know is refused (a typo")
add("must not vanish); `extra` passes API keys through as they are; a field set to")
add("`groups.null` is removed by `update_config`. These tables are written by")
add("`scripts/builder-reference.lua` from `config.describe`, the tables the builders check with.")
add("A field marked **secret** holds a secret: `plan` never shows its value, but shows a")
add("Credentials Store reference (`{credentials_id = ...}`) given in its place.")
local builders = {}
for builder in pairs(spec.BUILDERS) do builders[#builders + 1] = builder end
table.sort(builders)
for _, builder in ipairs(builders) do
  local described = config.describe(builder)
  add("")
  add("## " .. builder .. " (" .. described.namespace .. ")")
  add("")
  add("| field | API key | accepts |")
  add("|---|---|---|")
  rows(described.fields, "")
end
io.write(table.concat(lines, "\n"), "\n")
