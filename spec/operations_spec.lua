-- The ten operations, over real HTTP to the fake Soracom server.
local groups = require "soracom.groups"
local cjson = require "cjson"
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"

local has_integers = math.type ~= nil

describe("operations", function()
  local srv, client

  setup(function()
    srv = fake.start()
  end)

  teardown(function()
    if client then client:close() end
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    client = new_client(srv)
  end)

  after_each(function()
    client:close()
  end)

  local function last_request()
    local requests = srv:requests()
    return requests[#requests], #requests
  end

  describe("create_group", function()
    it("creates a group with tags and configuration and returns it", function()
      local group, err = client:create_group {
        tags = { name = "fleet-a", env = "prod" },
        configuration = { SoracomAir = { metadata = { enabled = true } } },
      }
      assert.is_nil(err)
      assert.is_string(group.groupId)
      assert.matches("^OP%d+$", group.operatorId)
      assert.are.same({ name = "fleet-a", env = "prod" }, group.tags)
      assert.is_true(group.configuration.SoracomAir.metadata.enabled)
      local request = last_request()
      assert.are.equal("POST", request.method)
      assert.are.equal("/v1/groups", request.uri)
      assert.are.equal("application/json", request.headers["content-type"])
      assert.are.same({ tags = { name = "fleet-a", env = "prod" },
        configuration = { SoracomAir = { metadata = { enabled = true } } } },
        cjson.decode(request.body))
    end)

    it("returns millisecond timestamps as integers", function()
      local before = os.time() * 1000
      local group = client:create_group { tags = { name = "t" } }
      assert.is_true(group.createdTime >= before - 2000 and group.createdTime < before + 60000)
      assert.are.equal(group.createdTime, group.lastModifiedTime)
      if has_integers then
        assert.are.equal("integer", math.type(group.createdTime))
        assert.are.equal("integer", math.type(group.lastModifiedTime))
      end
      assert.are.equal(string.format("%d", group.createdTime), tostring(group.createdTime))
    end)

    it("creates a group with no options, sending {}", function()
      local group = client:create_group()
      assert.is_string(group.groupId)
      assert.are.equal("{}", (last_request()).body)
    end)

    it("accepts a namespace's settings as put_config's array, sending an object", function()
      local group = client:create_group { configuration = {
        SoracomAir = { { key = "useVpg", value = true } } } }
      assert.are.same({ useVpg = true }, group.configuration.SoracomAir)
      assert.are.same({ configuration = { SoracomAir = { useVpg = true } } },
        cjson.decode((last_request()).body))
    end)

    it("accepts tags as the API's array of tagName/tagValue", function()
      local group = client:create_group { tags = { { tagName = "name", tagValue = "x" } } }
      assert.are.same({ name = "x" }, group.tags)
    end)
  end)

  describe("get_group", function()
    it("returns the group as created", function()
      local created = client:create_group { tags = { name = "g" } }
      local group, err = client:get_group(created.groupId)
      assert.is_nil(err)
      assert.are.same(created, group)
      local request = last_request()
      assert.are.equal("GET", request.method)
      assert.are.equal("/v1/groups/" .. created.groupId, request.uri)
      assert.is_nil(request.body)
    end)

    it("sends the credentials, Accept and the User-Agent", function()
      local created = client:create_group()
      client:get_group(created.groupId)
      local headers = (last_request()).headers
      assert.are.equal(srv.api_key, headers["x-soracom-api-key"])
      assert.are.equal(srv.token, headers["x-soracom-token"])
      assert.are.equal("application/json", headers["accept"])
      assert.are.equal("soracom-groups/" .. groups.VERSION, headers["user-agent"])
    end)

    it("escapes the group id as one path segment", function()
      local group, err = client:get_group("../x")
      assert.is_nil(group)
      assert.are.equal(404, err.status)
      assert.are.equal("/v1/groups/..%2Fx", (last_request()).uri)
      assert.are.equal("/groups/..%2Fx", err.path)
    end)
  end)

  describe("delete_group", function()
    it("deletes and returns true; the group is gone", function()
      local created = client:create_group()
      assert.is_true(client:delete_group(created.groupId))
      assert.are.equal("DELETE", (last_request()).method)
      local group, err = client:get_group(created.groupId)
      assert.is_nil(group)
      assert.are.equal(404, err.status)
    end)
  end)

  describe("put_config", function()
    it("puts the API's array of key/value and returns the group", function()
      local created = client:create_group()
      local group, err = client:put_config(created.groupId, "SoracomAir", {
        { key = "useCustomDns", value = true },
        { key = "dnsServers", value = { "8.8.8.8", "1.1.1.1" } },
      })
      assert.is_nil(err)
      assert.is_true(group.configuration.SoracomAir.useCustomDns)
      assert.are.same({ "8.8.8.8", "1.1.1.1" }, group.configuration.SoracomAir.dnsServers)
      local request = last_request()
      assert.are.equal("PUT", request.method)
      assert.are.equal("/v1/groups/" .. created.groupId .. "/configuration/SoracomAir", request.uri)
      assert.are.equal("[", request.body:sub(1, 1))
      assert.are.same({ { key = "useCustomDns", value = true },
        { key = "dnsServers", value = { "8.8.8.8", "1.1.1.1" } } }, cjson.decode(request.body))
    end)

    it("turns a plain map into the array, sorted by key", function()
      local created = client:create_group()
      local group = client:put_config(created.groupId, "SoracomHarvest", { enabled = true, b = 1 })
      assert.is_true(group.configuration.SoracomHarvest.enabled)
      assert.are.same({ { key = "b", value = 1 }, { key = "enabled", value = true } },
        cjson.decode((last_request()).body))
    end)

    it("sends empty arrays marked with groups.array as [] and null as null", function()
      local created = client:create_group()
      local group = client:put_config(created.groupId, "SoracomAir", {
        { key = "dnsServers", value = groups.array {} },
        { key = "userdata", value = groups.null },
      })
      assert.matches('"value":[]', (last_request()).body, 1, true)
      assert.are.equal(cjson.null, group.configuration.SoracomAir.userdata)
      assert.are.equal(groups.null, group.configuration.SoracomAir.userdata)
      assert.are.equal(0, #group.configuration.SoracomAir.dnsServers)
    end)

    it("replaces what the namespace held (the fake follows the spec's warning)", function()
      local created = client:create_group()
      client:put_config(created.groupId, "SoracomAir", { { key = "a", value = 1 } })
      local group = client:put_config(created.groupId, "SoracomAir", { { key = "b", value = 2 } })
      assert.are.same({ b = 2 }, group.configuration.SoracomAir)
    end)

    it("accepts SoracomFlux, the namespace the newest spec adds", function()
      local created = client:create_group()
      local group = client:put_config(created.groupId, "SoracomFlux", { { key = "enabled", value = true } })
      assert.is_true(group.configuration.SoracomFlux.enabled)
    end)
  end)

  describe("delete_config and delete_config_namespace", function()
    it("deletes one parameter, escaping its name", function()
      local created = client:create_group()
      client:put_config(created.groupId, "SoracomBeam", {
        { key = "tcp://beam.soracom.io:8023", value = { enabled = true } },
        { key = "keep", value = 1 },
      })
      assert.is_true(client:delete_config(created.groupId, "SoracomBeam", "tcp://beam.soracom.io:8023"))
      assert.are.equal("/v1/groups/" .. created.groupId
        .. "/configuration/SoracomBeam/tcp%3A%2F%2Fbeam.soracom.io%3A8023", (last_request()).uri)
      assert.are.same({ keep = 1 }, client:get_group(created.groupId).configuration.SoracomBeam)
    end)

    it("deletes a whole namespace", function()
      local created = client:create_group {
        configuration = { SoracomAir = { a = 1 }, SoracomHarvest = { enabled = true } } }
      assert.is_true(client:delete_config_namespace(created.groupId, "SoracomAir"))
      local group = client:get_group(created.groupId)
      assert.is_nil(group.configuration.SoracomAir)
      assert.is_true(group.configuration.SoracomHarvest.enabled)
    end)
  end)

  describe("put_tags and delete_tag", function()
    it("puts tags given as the API's array", function()
      local created = client:create_group { tags = { name = "a" } }
      local group = client:put_tags(created.groupId, { { tagName = "env", tagValue = "prod" } })
      assert.are.same({ name = "a", env = "prod" }, group.tags)
      assert.are.same({ { tagName = "env", tagValue = "prod" } }, cjson.decode((last_request()).body))
    end)

    it("puts tags given as a plain map, sorted by name", function()
      local created = client:create_group()
      local group = client:put_tags(created.groupId, { name = "x", env = "prod" })
      assert.are.same({ name = "x", env = "prod" }, group.tags)
      assert.are.same({ { tagName = "env", tagValue = "prod" }, { tagName = "name", tagValue = "x" } },
        cjson.decode((last_request()).body))
    end)

    it("deletes a tag whose name needs escaping, as one segment", function()
      local created = client:create_group { tags = { ["a b/c%d"] = "v", keep = "k" } }
      assert.is_true(client:delete_tag(created.groupId, "a b/c%d"))
      assert.are.equal("/v1/groups/" .. created.groupId .. "/tags/a%20b%2Fc%25d", (last_request()).uri)
      assert.are.same({ keep = "k" }, client:get_group(created.groupId).tags)
    end)

    it("keeps unicode in tag values", function()
      local created = client:create_group { tags = { name = "グループ 😀" } }
      assert.are.equal("グループ 😀", client:get_group(created.groupId).tags.name)
    end)
  end)

  describe("list_groups", function()
    it("lists every group when unpaged", function()
      local ids = srv:seed_groups(3)
      local list, next_key = client:list_groups()
      assert.is_nil(next_key)
      assert.are.equal(3, #list)
      assert.are.same(ids, { list[1].groupId, list[2].groupId, list[3].groupId })
    end)

    it("pages with limit and last_evaluated_key", function()
      local ids = srv:seed_groups(5)
      local page1, key1 = client:list_groups { limit = 2 }
      assert.are.equal(2, #page1)
      assert.are.equal(ids[2], key1)
      local page2, key2 = client:list_groups { limit = 2, last_evaluated_key = key1 }
      assert.are.same({ ids[3], ids[4] }, { page2[1].groupId, page2[2].groupId })
      local page3, key3 = client:list_groups { limit = 2, last_evaluated_key = key2 }
      assert.are.equal(ids[5], page3[1].groupId)
      assert.is_nil(key3)
      assert.are.equal("/v1/groups?limit=2&last_evaluated_key=" .. key2, (last_request()).uri)
    end)

    it("reads the next key from the Link header when x-soracom-next-key is absent", function()
      local ids = srv:seed_groups(3)
      srv:settings { next_key_header = false }
      local _, key = client:list_groups { limit = 2 }
      assert.are.equal(ids[2], key)
    end)

    it("filters by tag with exact and prefix matching, escaping the query", function()
      srv:seed_groups(1, { env = "prod" })
      srv:seed_groups(1, { env = "production" })
      srv:seed_groups(1, { env = "a&b=c d" })
      assert.are.equal(1, #client:list_groups { tag_name = "env", tag_value = "prod" })
      assert.are.equal(2, #client:list_groups { tag_name = "env", tag_value = "prod",
        tag_value_match_mode = "prefix" })
      local odd = client:list_groups { tag_name = "env", tag_value = "a&b=c d" }
      assert.are.equal(1, #odd)
      assert.are.equal("a&b=c d", odd[1].tags.env)
      assert.are.equal("/v1/groups?tag_name=env&tag_value=a%26b%3Dc%20d", (last_request()).uri)
    end)

    it("returns an empty list as an empty table", function()
      local list, key = client:list_groups()
      assert.are.same({}, list)
      assert.is_nil(key)
    end)
  end)

  describe("list_subscribers", function()
    it("lists the group's SIMs, paged", function()
      local group = client:create_group()
      local imsis = srv:seed_subscribers(group.groupId, 3)
      local page, key = client:list_subscribers(group.groupId, { limit = 2 })
      assert.are.same({ imsis[1], imsis[2] }, { page[1].imsi, page[2].imsi })
      assert.are.equal(imsis[2], key)
      assert.are.equal(group.groupId, page[1].groupId)
      local rest, last = client:list_subscribers(group.groupId, { limit = 2, last_evaluated_key = key })
      assert.are.same({ imsis[3] }, { rest[1].imsi })
      assert.is_nil(last)
      local all = client:list_subscribers(group.groupId)
      assert.are.equal(3, #all)
    end)

    it("gives 404 for an unknown group", function()
      local list, err = client:list_subscribers("no-such-group")
      assert.is_nil(list)
      assert.are.equal(404, err.status)
    end)
  end)

  describe("the connection", function()
    it("is kept alive between calls", function()
      local created = client:create_group()
      for _ = 1, 5 do client:get_group(created.groupId) end
      local requests = srv:requests()
      assert.are.equal(6, #requests)
      for i = 2, #requests do
        assert.are.equal(requests[1].connection, requests[i].connection)
      end
      assert.are.equal(6, requests[6].connection_requests)
    end)
  end)
end)
