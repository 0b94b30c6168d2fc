-- The API reference (docs/, made by scripts/docs with LDoc) names every public thing:
-- the module's fields, every option of groups.new, every client method, the error's
-- fields and every builder's fields; and it is what scripts/docs makes now.
local groups = require "soracom.groups"
local config = require "soracom.groups.config"
local spec_ops = require "soracom.groups.operations"

local function read(path)
  local file = assert(io.open(path, "rb"), "missing " .. path .. ": run scripts/docs")
  local text = file:read("*a")
  file:close()
  return text
end

local function anchors(html)
  local set = {}
  for name in html:gmatch('<a name = "([^"]+)"') do set[name] = true end
  return set
end

local function parameters(html)
  local set = {}
  for name in html:gmatch('class="parameter">([%w_]+)<') do set[name] = true end
  return set
end

describe("the API reference", function()
  it("documents every field of the module", function()
    local documented = anchors(read("docs/modules/soracom.groups.html"))
    for name in pairs(groups) do
      assert.is_true(documented[name] == true, "soracom.groups." .. name .. " is not documented")
    end
  end)

  it("documents every option of groups.new", function()
    -- The options groups.new knows, as it lists them when given an unknown one.
    local ok, err = pcall(groups.new, { no_such_option = true })
    assert.is_false(ok)
    local list = assert(tostring(err):match("expected one of ([%w_, ]+)%)"), err)
    local documented = parameters(read("docs/classes/soracom.groups.Client.html"))
    local count = 0
    for name in list:gmatch("[%w_]+") do
      assert.is_true(documented[name] == true, "option " .. name .. " is not documented")
      count = count + 1
    end
    assert.is_true(count >= 30, "options read: " .. count)
  end)

  it("documents every method of the client, the ten operations included", function()
    local documented = anchors(read("docs/classes/soracom.groups.Client.html"))
    local client = assert(groups.new { api_key = "k", token = "t", endpoint = "http://127.0.0.1:1/v1" })
    local methods = getmetatable(client).__index
    for name, value in pairs(methods) do
      if type(value) == "function" and not name:match("^_") then
        -- (new is the constructor, groups.new: documented as static, Client.new)
        local anchor = name == "new" and "soracom.groups.Client.new" or "soracom.groups.Client:" .. name
        assert.is_true(documented[anchor] == true, "client:" .. name .. " is not documented")
      end
    end
    for name in pairs(spec_ops.operations) do
      assert.is_true(documented["soracom.groups.Client:" .. name] == true, name .. " is not documented")
    end
    client:close()
  end)

  it("documents the error's fields", function()
    local documented = parameters(read("docs/classes/soracom.groups.Error.html"))
    for _, name in ipairs { "kind", "status", "code", "message", "method", "path", "attempts",
      "retry_after", "curl_code" } do
      assert.is_true(documented[name] == true, "err." .. name .. " is not documented")
    end
  end)

  it("lists every builder's fields, as config.describe gives them", function()
    local topic = read("docs-src/builders.md")
    local html = read("docs/topics/builders.md.html")
    for builder, namespace in pairs(spec_ops.BUILDERS) do
      local heading = "## " .. builder .. " (" .. namespace .. ")"
      local start = assert(topic:find(heading, 1, true), "no table for " .. builder)
      local finish = topic:find("\n## ", start + 1, true) or #topic
      local table_text = topic:sub(start, finish)
      for _, field in ipairs(config.describe(builder).fields) do
        assert.truthy(table_text:find("| `" .. field.name .. "` |", 1, true), builder .. "." .. field.name)
      end
      assert.truthy(html:find(builder .. " (" .. namespace .. ")", 1, true), builder .. " in the HTML")
    end
  end)

  it("is what scripts/docs makes now, and LDoc gives no warning", function()
    local pipe = assert(io.popen("scripts/docs --check 2>&1; echo \"exit=$?\""))
    local out = pipe:read("*a")
    pipe:close()
    assert.truthy(out:find("exit=0", 1, true), out)
  end)
end)
