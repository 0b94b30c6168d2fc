-- The README as a newcomer reads it: its contents list names every section in order,
-- every link to a heading of it lands on one, and each "How do I..." recipe runs as
-- written (a child Lua process, credentials from the SORACOM_* variables) against the
-- fake server, doing what its heading says.
local command = require "spec.support.command"
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"

local quote = command.quote

local function readme()
  local file = assert(io.open("README.md", "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

-- The headings outside code blocks: { level, title }, in order.
local function headings(text)
  local found, in_code = {}, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^```") then
      in_code = not in_code
    elseif not in_code then
      local hashes, title = line:match("^(#+) (.+)$")
      if hashes then found[#found + 1] = { level = #hashes, title = title } end
    end
  end
  return found
end

-- GitHub's anchor of a heading: lower case, punctuation dropped (hyphens and
-- underscores kept), each space a hyphen.
local function anchor(title)
  local text = title:lower():gsub("`", "")
  text = text:gsub("[^%w%s%-_]", ""):gsub(" ", "-")
  return text
end

local function section(text, title)
  local start = assert(text:find("\n## " .. title .. "\n", 1, true), "README has no section " .. title)
  local finish = text:find("\n## ", start + 4, true) or #text
  return text:sub(start, finish)
end

describe("the README", function()
  local text = readme()

  it("lists every section in its contents, in order, each link landing on it", function()
    local contents = section(text, "Contents")
    local listed = {}
    for title, target in contents:gmatch("%- %[([^%]]+)%]%(#([^%)]+)%)") do
      listed[#listed + 1] = { title = title, target = target }
    end
    local expected = {}
    for _, heading in ipairs(headings(text)) do
      if heading.level == 2 and heading.title ~= "Contents" then expected[#expected + 1] = heading.title end
    end
    local top = {}
    for _, entry in ipairs(listed) do
      if not contents:find("\n  %- %[" .. entry.title:gsub("%p", "%%%0") .. "%]") then top[#top + 1] = entry end
    end
    assert.are.equal(#expected, #top, "sections listed: " .. #top .. ", in the README: " .. #expected)
    for i, title in ipairs(expected) do
      assert.are.equal(title, top[i].title)
      assert.are.equal(anchor(title), top[i].target)
    end
  end)

  it("links only to headings it has", function()
    local anchors = {}
    for _, heading in ipairs(headings(text)) do anchors[anchor(heading.title)] = true end
    local broken = {}
    for target in text:gmatch("%]%(#([^%)]+)%)") do
      if not anchors[target] then broken[#broken + 1] = target end
    end
    assert.are.same({}, broken)
  end)

  it("has Lua blocks that are all Lua: each one compiles, on this Lua", function()
    local compile = loadstring or load -- luacheck: ignore 113 (5.1's loadstring)
    local count, broken = 0, {}
    for code in text:gmatch("```lua\n(.-)```") do
      count = count + 1
      local chunk, err = compile(code, "=README block " .. count)
      if not chunk then broken[#broken + 1] = err end
    end
    assert.is_true(count >= 20, "Lua blocks: " .. count)
    assert.are.same({}, broken)
  end)

  describe("recipes", function()
    local srv, client
    local recipes = {}
    do
      local part = section(text, "How do I...")
      for title, code in part:gmatch("\n### %.%.%.([^\n]+)\n.-```lua\n(.-)```") do recipes[title] = code end
    end

    setup(function() srv = fake.start() end)
    teardown(function() if srv then srv:stop() end end)
    before_each(function()
      srv:reset()
      client = assert(groups.new { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token })
    end)
    after_each(function() client:close() end)

    -- Runs the recipe under `title` as a program of its own; its output, or raises
    -- with it when it fails.
    local function run(title, env)
      local code = assert(recipes[title], "no recipe " .. title)
      local path = os.tmpname()
      command.write_file(path, code)
      local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
      local line = "SORACOM_ENDPOINT=" .. quote(srv.endpoint) .. " SORACOM_AUTH_KEY_ID=" .. quote(srv.auth_key_id)
        .. " SORACOM_AUTH_KEY=" .. quote(srv.auth_key) .. " LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="
        .. quote("build/" .. version .. "/?.so;;") .. " " .. (env or "") .. " " .. command.LUA .. " " .. quote(path)
        .. " 2>&1; echo \"exit=$?\""
      local out = command.output(line)
      os.remove(path)
      assert.truthy(out:find("exit=0\n", 1, true), title .. ":\n" .. out)
      return out
    end

    local function all_groups()
      local list = {}
      for group in client:groups {} do list[#list + 1] = group end
      return list
    end

    it("create many groups at once", function()
      local out = run("create many groups at once?")
      local names = {}
      for _, group in ipairs(all_groups()) do
        assert.are.equal("prod", group.tags.env)
        names[#names + 1] = group.tags.name
      end
      table.sort(names)
      assert.are.same({ "sensors-nagoya", "sensors-osaka", "sensors-tokyo" }, names)
      assert.truthy(out:find("3 created, 0 failed", 1, true), out)
    end)

    it("turn a setting on for every group with a tag, leaving the others and the rest as they were", function()
      local prod = srv:seed_groups(3, { env = "prod" }, { SoracomAir = { useCustomDns = true } })
      local dev = srv:seed_groups(1, { env = "dev" })[1]
      local out = run("turn a setting on for every group with a tag?")
      assert.truthy(out:find("3 groups now serve metadata, 0 failed", 1, true), out)
      for _, id in ipairs(prod) do
        local air = assert(client:get_group(id)).configuration.SoracomAir
        assert.are.equal(true, air.metadata.enabled)
        assert.are.equal(true, air.useCustomDns)
      end
      local untouched = assert(client:get_group(dev)).configuration
      assert.is_nil(untouched.SoracomAir and untouched.SoracomAir.metadata)
    end)

    it("page through a group's SIMs", function()
      local id = srv:seed_groups(1)[1]
      srv:seed_subscribers(id, 250)
      srv:clear_stats()
      local out = run("page through a group's SIMs?", "GROUP_ID=" .. quote(id))
      assert.truthy(out:find("\n250 SIMs\n", 1, true), out)
      assert.are.equal(3, srv:stats().by_api["GET /v1/groups/{group_id}/subscribers"].requests)
    end)

    it("copy one group's configuration to others", function()
      local source = srv:seed_groups(1, { env = "source" }, {
        SoracomAir = { useCustomDns = true, dnsServers = { "8.8.8.8" } },
        SoracomHarvest = { enabled = true },
      })[1]
      local targets = srv:seed_groups(2, { env = "staging" })
      local other = srv:seed_groups(1, { env = "prod" })[1]
      local out = run("copy one group's configuration to others?", "SOURCE_GROUP_ID=" .. quote(source))
      assert.truthy(out:find("2 groups now configured as " .. source, 1, true), out)
      local wanted = assert(client:get_group(source)).configuration
      for _, id in ipairs(targets) do
        assert.are.same(wanted, assert(client:get_group(id)).configuration)
      end
      assert.is_nil(next(assert(client:get_group(other)).configuration or {}))
    end)

    it("delete every group with a tag, showing each, and no other", function()
      local doomed = srv:seed_groups(3, { env = "scratch" })
      local kept = srv:seed_groups(1, { env = "prod" })[1]
      local out = run("delete every group with a tag?")
      for _, id in ipairs(doomed) do
        assert.truthy(out:find("deleting " .. id, 1, true), out)
      end
      assert.truthy(out:find("3 deleted, 0 failed", 1, true), out)
      local left = all_groups()
      assert.are.equal(1, #left)
      assert.are.equal(kept, left[1].groupId)
    end)
  end)
end)
