-- Every message the README quotes is the one the code gives: each quote below must be
-- in the README (whitespace as it wraps there) and match what the code says, "..."
-- standing for what the README leaves out. A message changed in the code, or in the
-- README, fails here until the other follows.
local command = require "spec.support.command"
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"

-- The README's text with every run of whitespace as one space.
local function readme()
  local file = assert(io.open("README.md", "rb"))
  local text = file:read("*a")
  file:close()
  return (text:gsub("%s+", " "))
end

-- A Lua pattern of a quote: literal, but "..." matches anything.
local function pattern_of(quote)
  local parts = {}
  for piece in (quote .. "..."):gmatch("(.-)%.%.%.") do
    parts[#parts + 1] = (piece:gsub("%p", "%%%0"))
  end
  return table.concat(parts, ".-")
end

local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("the messages the README quotes", function()
  local text = readme()
  local srv, client

  setup(function()
    srv = fake.start()
    client = assert(groups.new { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token })
  end)
  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)

  local QUOTES = {
    { "soracom.groups.config: air.metadata.readonly must be a boolean (got string)", function()
      return raised(groups.config.air, { metadata = { readonly = "no" } })
    end },
    { 'air has no field "use_custom_dn" (fields: ...); did you mean "use_custom_dns"?', function()
      return raised(groups.config.air, { use_custom_dn = true })
    end },
    { "soracom.groups.config(SoracomAir, 3 settings)", function()
      return tostring(groups.config.air { use_vpg = true, vpg_id = "vpg", location_enabled = true })
    end },
    { "soracom-groups: GET /groups/abc: HTTP 404 (COM0004): ...", function()
      local _, err = client:get_group("abc")
      return tostring(err)
    end },
    { 'soracom.groups: put_config: namespace "SoracomAr" is not one of SoracomAir, ...', function()
      return raised(client.put_config, client, "abc", "SoracomAr", {})
    end },
    { 'namespace "Air" is not one of SoracomAir, ... (or their builder names: air, ...); did you mean "air" '
      .. "(SoracomAir)?", function()
      return raised(client.put_config, client, "abc", "Air", {})
    end },
    { 'unknown option "limt" (expected one of tag_name, tag_value, tag_value_match_mode, limit, '
      .. 'last_evaluated_key); did you mean "limit"?', function()
      return raised(client.list_groups, client, { limt = 1 })
    end },
    { 'coverage must be "jp" or "g" (got "us")', function()
      return raised(groups.new, { coverage = "us", api_key = "k", token = "t" })
    end },
    { "the profile_command option failed (exit status 3; its output and messages are not shown: they may hold "
      .. "secrets)", function()
      local made, err = groups.new { profile_command = "echo secret-output; echo secret-stderr >&2; exit 3" }
      assert.is_nil(made)
      assert.is_nil(tostring(err):find("secret-", 1, true))
      return tostring(err)
    end },
    { "soracom-groups: missing option '--group-id'", function()
      local code, _, stderr = command.run({ "get" }, { env = "SORACOM_ENDPOINT=" .. command.quote(srv.endpoint)
        .. " SORACOM_API_KEY=k SORACOM_TOKEN=t" })
      assert.are.equal(2, code)
      return stderr
    end },
  }

  for _, entry in ipairs(QUOTES) do
    local quote, produce = entry[1], entry[2]
    it(quote, function()
      assert.truthy(text:find(quote, 1, true), "the README does not quote: " .. quote)
      local message = produce()
      assert.truthy(message:find(pattern_of(quote)), "the code says: " .. message)
    end)
  end
end)
