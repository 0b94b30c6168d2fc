-- The editor types (types/soracom/groups.lua) against the code: every module field,
-- client method, option and builder is annotated, nothing annotated is missing from
-- the code, and the generated part is up to date.

local groups = require "soracom.groups"
local settings = require "soracom.groups.settings"
local operations = require "soracom.groups.operations"
local config = require "soracom.groups.config"
local types = dofile("scripts/types.lua")

--- The annotations of `text`: classes[class][field] = true, functions[table][name] = true.
local function parse(text)
  local classes, functions, class = {}, {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local name = line:match("^%-%-%-@class%s+([%w_%.]+)")
    if name then
      class = name
      classes[class] = classes[class] or {}
    else
      local field = line:match("^%-%-%-@field%s+([%a_][%w_]*)")
      if field and class then classes[class][field] = true end
      local owner, sep, fn = line:match("^function%s+([%a_][%w_]*)([%.:])([%a_][%w_]*)%s*%(")
      if owner then
        local key = owner .. sep
        functions[key] = functions[key] or {}
        functions[key][fn] = true
      end
      if not line:match("^%-%-%-") then class = nil end
    end
  end
  return { classes = classes, functions = functions }
end

local function union(...)
  local set = {}
  for _, part in ipairs({ ... }) do
    for name in pairs(part or {}) do set[name] = true end
  end
  return set
end

local function names_of(parsed)
  return {
    module = union(parsed.classes["soracom.groups"], parsed.functions["groups."]),
    client = union(parsed.classes["soracom.groups.Client"], parsed.functions["Client:"]),
    options = union(parsed.classes["soracom.groups.Options"]),
    config = union(parsed.classes["soracom.groups.Config"]),
  }
end

--- Names in `want` (a list) that `set` lacks.
local function missing(want, set)
  local out = {}
  for _, name in ipairs(want) do
    if not set[name] then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

local function keys(t)
  local out = {}
  for name in pairs(t) do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function read(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

local function client_methods()
  local client = assert(groups.new { api_key = "k", token = "t", endpoint = "http://127.0.0.1:1/v1" })
  local methods = {}
  for name, value in pairs(getmetatable(client).__index) do
    -- new is the constructor (Client.new is groups.new, annotated there), not a method
    if type(value) == "function" and not name:match("^_") and name ~= "new" then methods[name] = true end
  end
  assert(getmetatable(client).__index.new == groups.new)
  client:close()
  return methods
end

local function builder_names()
  return keys(operations.BUILDERS)
end

describe("types/soracom/groups.lua", function()
  local annotated = names_of(parse(read(types.PATH)))

  it("annotates every field and function of the module, and nothing else", function()
    assert.same({}, missing(keys(groups), annotated.module))
    assert.same({}, missing(keys(annotated.module), groups))
  end)

  it("annotates every method of a client, and nothing else", function()
    local methods = client_methods()
    assert.same({}, missing(keys(methods), annotated.client))
    assert.same({}, missing(keys(annotated.client), methods))
    for name in pairs(operations.operations) do assert.is_true(annotated.client[name], name) end
  end)

  it("annotates every option of groups.new, and nothing else", function()
    local options = {}
    for _, name in ipairs(settings.OPTION_NAMES) do options[name] = true end
    assert.is_true(#settings.OPTION_NAMES > 0)
    assert.same({}, missing(settings.OPTION_NAMES, annotated.options))
    assert.same({}, missing(keys(annotated.options), options))
  end)

  it("annotates every builder, with a settings class of every described field", function()
    local parsed = parse(read(types.PATH))
    assert.same({}, missing(builder_names(), annotated.config))
    for _, builder in ipairs(builder_names()) do
      assert.is_function(config[builder])
      local class = parsed.classes["soracom.groups.config."
        .. (builder:gsub("^%l", string.upper):gsub("_(%w)", string.upper)) .. "Settings"]
      assert.is_table(class, builder)
      local described = {}
      for _, field in ipairs(config.describe(builder).fields) do described[#described + 1] = field.name end
      assert.same({}, missing(described, class))
    end
    for name in pairs(annotated.config) do assert.is_function(config[name], name) end
  end)

  it("types update_config's changes by namespace with every builder and its settings class", function()
    local text = read(types.PATH)
    local changes = parse(text).classes["soracom.groups.ConfigChanges"]
    assert.is_table(changes)
    assert.same({}, missing(builder_names(), changes))
    assert.same({}, missing(keys(changes), operations.BUILDERS))
    for _, builder in ipairs(builder_names()) do
      local class = "soracom.groups.config." .. (builder:gsub("^%l", string.upper):gsub("_(%w)", string.upper))
        .. "Settings"
      local line = text:match("\n(%-%-%-@field " .. builder .. "%? [^\n]*)")
      assert.are.equal("---@field " .. builder .. "? " .. class .. "|fun(current: " .. class .. "): " .. class,
        line)
    end
  end)

  it("has its generated part up to date (scripts/types.lua --check)", function()
    local ok, why = types.check()
    assert.is_true(ok, why)
  end)

  it("catches a made-up name", function()
    local text = table.concat({
      "---@class soracom.groups",
      "---@field VERSION string",
      "---@field no_such_field string",
      "local groups = {}",
      "function groups.no_such_function() end",
      "---@class soracom.groups.Client",
      "local Client = {}",
      "function Client:no_such_method() end",
      "---@class soracom.groups.Options",
      "---@field no_such_option? string",
    }, "\n")
    local made_up = names_of(parse(text))
    assert.same({ "no_such_field", "no_such_function" }, missing(keys(made_up.module), groups))
    assert.same({ "no_such_method" }, missing(keys(made_up.client), client_methods()))
    local options = {}
    for _, name in ipairs(settings.OPTION_NAMES) do options[name] = true end
    assert.same({ "no_such_option" }, missing(keys(made_up.options), options))
    assert.is_true(#missing(keys(groups), made_up.module) > 0) -- and what it lacks
  end)

  it("writes a list of a union in parentheses, as lua-language-server reads it", function()
    -- `"a"|"b"[]` is `"a" | ("b"[])` to lua-language-server: a list must be `("a"|"b")[]`.
    local wrong = {}
    for line in read(types.PATH):gmatch("[^\n]+") do
      if line:match('^%-%-%-@') and line:match('"|"[^%s%)]*"%[%]') then wrong[#wrong + 1] = line end
    end
    assert.are.same({}, wrong)
    assert.truthy(read(types.PATH):find('("uplink"|"downlink")[]', 1, true))
  end)

  it("annotates every field of groups.config, which has nothing else (its helpers are config_core's)", function()
    local text = read(types.PATH)
    local config_fields = {}
    for name in text:gmatch("%-%-%-@class soracom%.groups%.Config\n(.-)\n[^%-]") do
      for field in name:gmatch("%-%-%-@field ([%w_]+)") do config_fields[field] = true end
    end
    for field in text:gmatch("\n%-%-%-@field ([%w_]+) fun%(settings%?: soracom%.groups%.config%.") do
      config_fields[field] = true
    end
    local names = {}
    for name in pairs(groups.config) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do assert.is_true(config_fields[name] == true, "groups.config." .. name) end
    assert.is_nil(groups.config.merge)
    assert.is_nil(groups.config.to_api)
    assert.are.equal(require("soracom.groups.config"), groups.config)
  end)

  it("annotates the Error class's is, and config.is_built", function()
    local text = read(types.PATH)
    assert.truthy(text:find("\nfunction Error.is(value) end", 1, true))
    assert.truthy(text:find("---@field is_built fun(value: any): boolean", 1, true))
    assert.is_function(require("soracom.groups.error").is)
    assert.is_function(groups.config.is_built)
  end)

  it("sees a stale generated part", function()
    local text = read(types.PATH)
    local stale = text:gsub("(%-%-%-@field air )", "%1x", 1)
    assert.are_not.equal(text, stale)
    assert.are_not.equal(stale, types.render(stale))
    assert.equal(text, types.render(text))
  end)
end)
