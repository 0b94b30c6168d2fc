-- The configuration builders, config.read and update_config. The API forms expected
-- here are written from NAMESPACES.md (key names and value shapes per namespace).
local groups = require "soracom.groups"
local config = require "soracom.groups.config"
local cjson = require "cjson"
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"

-- The API form of a built configuration as a {key = value} map, for comparison.
local function api_map(built)
  local map = {}
  for _, param in ipairs(built.params) do map[param.key] = param.value end
  return cjson.decode(require("soracom.groups.core").encode_json(map))
end

local function raises(message, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(message, 1, true), err)
end

describe("config builders", function()
  it("are groups.config too", function()
    assert.are.equal(config, groups.config)
  end)

  describe("air", function()
    it("maps every known field to the API's key and shape", function()
      local built = config.air {
        use_custom_dns = true,
        dns_servers = { "8.8.8.8", "1.1.1.1" },
        metadata = { enabled = true, readonly = false, allow_origin = "https://example.com",
          minimize_response_body = true },
        userdata = "hello",
        authentication_required = true, username = "chap-user", password = "chap-pass",
        location_enabled = true,
        ip_link_mtu = 1400,
        session_event_enabled = true,
        use_vpg = true, vpg_id = "f7b8a1c2",
        binary_parser_enabled = true, binary_parser_format = "@button",
      }
      assert.are.equal("SoracomAir", built.namespace)
      assert.are.same({
        useCustomDns = true, dnsServers = { "8.8.8.8", "1.1.1.1" },
        metadata = { enabled = true, readonly = false, allowOrigin = "https://example.com",
          minimizeResponseBody = true },
        userdata = "hello", authenticationRequired = true, username = "chap-user", password = "chap-pass",
        locationEnabled = true, ipLinkMtu = 1400, sessionEventEnabled = true, useVpg = true,
        vpgId = "f7b8a1c2", binaryParserEnabled = true, binaryParserFormat = "@button",
      }, api_map(built))
    end)

    it("has shorthands: custom_dns, chap and binary_parser", function()
      assert.are.same({ useCustomDns = true, dnsServers = { "8.8.8.8" } },
        api_map(config.air { custom_dns = { "8.8.8.8" } }))
      assert.are.same({ authenticationRequired = true, username = "u", password = "p" },
        api_map(config.air { chap = { username = "u", password = "p" } }))
      assert.are.same({ binaryParserEnabled = true, binaryParserFormat = "@button" },
        api_map(config.air { binary_parser = "@button" }))
    end)

    it("sends a whole number given as a float as an integer", function()
      local core = require "soracom.groups.core"
      local built = config.air { ip_link_mtu = 2800 / 2 }
      local text = core.encode_json(built.params)
      assert.truthy(text:find('"value":1400[,}]'), text) -- not 1400.0
    end)

    it("gives the params sorted by key, as the API's array", function()
      local built = config.air { use_vpg = true, metadata = { enabled = true } }
      assert.are.same({ { key = "metadata", value = { enabled = true } }, { key = "useVpg", value = true } },
        built.params)
      assert.are.equal("[]", require("soracom.groups.core").encode_json(config.air({ dns_servers = {} })
        .params[1].value))
    end)

    it("checks types and allowed values, naming the field and the namespace", function()
      raises("soracom.groups.config: air.use_vpg must be a boolean (got string)",
        function() config.air { use_vpg = "true" } end)
      raises("air.dns_servers[2] must be IPv4 addresses (got string)",
        function() config.air { dns_servers = { "8.8.8.8", "8.8.8" } } end)
      raises("air.ip_link_mtu must be a whole number from 1 to 65535 (got number 70000)",
        function() config.air { ip_link_mtu = 70000 } end)
      raises("air.metadata.readonly must be a boolean (got string)",
        function() config.air { metadata = { readonly = "no" } } end)
      raises("air.chap must be {username = <string>, password = <string>}",
        function() config.air { chap = { username = "u" } } end)
      raises('air has no field "use_custom_dn"', function() config.air { use_custom_dn = true } end)
      raises('air.metadata has no field "allowOrigin"',
        function() config.air { metadata = { allowOrigin = "*" } } end)
      raises("air.chap sets username, which is given too",
        function() config.air { chap = { username = "u", password = "p" }, username = "v" } end)
      raises("air must be a table (got string)", function() config.air "x" end)
    end)

    it("points errors at the caller", function()
      local ok, err = pcall(function() config.air { use_vpg = 1 } end)
      assert.is_false(ok)
      assert.matches("config_spec.lua:%d+: soracom.groups.config: air.use_vpg", err)
    end)

    it("passes keys the docs do not list through extra, unchanged", function()
      assert.are.same({ useVpg = true, someNewKey = { deep = { 1, 2 } } },
        api_map(config.air { use_vpg = true, extra = { someNewKey = { deep = { 1, 2 } } } }))
      raises("air.extra.useVpg is set by a field already",
        function() config.air { use_vpg = true, extra = { useVpg = false } } end)
    end)
  end)

  describe("beam", function()
    it("keys entries by entry point, with each entry's fields", function()
      local built = config.beam {
        tcp = { name = "to tcps", destination = "tcps://tcp.example.com:1234", enabled = true,
          add_subscriber_header = true, add_signature = true, psk = { credentials_id = "psk-1" } },
        udp = { destination = "https://udp.example.com/in", enabled = false, skip_status_code = true },
        mqtt = { destination = "mqtts://broker.example.com:8883", username = "m", password = "secret",
          use_client_cert = true, client_certs = { default = { credentials_id = "cert-1" } }, version = "201912" },
        http = { path = "/hook", destination = "https://api.example.com/hook", add_sim_id_header = true,
          add_msisdn_header = true, add_equipment_header = true,
          custom_headers = { ["X-Env"] = { action = "append", header_key = "X-Env", header_value = "prod" } } },
      }
      assert.are.equal("SoracomBeam", built.namespace)
      assert.are.same({
        ["tcp://beam.soracom.io:8023"] = { name = "to tcps", destination = "tcps://tcp.example.com:1234",
          enabled = true, addSubscriberHeader = true, addSignature = true, psk = { ["$credentialsId"] = "psk-1" } },
        ["udp://beam.soracom.io:23080"] = { destination = "https://udp.example.com/in", enabled = false,
          skipStatusCode = true },
        ["mqtt://beam.soracom.io:1883"] = { destination = "mqtts://broker.example.com:8883", username = "m",
          password = "secret", useClientCert = true, clientCerts = { default = { ["$credentialsId"] = "cert-1" } },
          version = "201912" },
        ["http://beam.soracom.io:8888/hook"] = { destination = "https://api.example.com/hook",
          addSimIdHeader = true, addMsisdnHeader = true, addEquipmentHeader = true,
          customHeaders = { ["X-Env"] = { action = "append", headerKey = "X-Env", headerValue = "prod" } } },
      }, api_map(built))
    end)

    it("takes several http entries, a plain psk, and unknown entry points through extra", function()
      local built = config.beam {
        http = { { path = "/a", destination = "https://a" }, { path = "/b", destination = "https://b" } },
        tcp = { psk = "plain-key" },
        extra = { ["https://beam.soracom.io:18080"] = { destination = "https://site" } },
      }
      assert.are.same({
        ["http://beam.soracom.io:8888/a"] = { destination = "https://a" },
        ["http://beam.soracom.io:8888/b"] = { destination = "https://b" },
        ["tcp://beam.soracom.io:8023"] = { psk = "plain-key" },
        ["https://beam.soracom.io:18080"] = { destination = "https://site" },
      }, api_map(built))
    end)

    it("checks entries", function()
      raises('beam has no entry "tpc"', function() config.beam { tpc = {} } end)
      raises('needs path = "/..."', function() config.beam { http = { destination = "x" } } end)
      raises('beam.http[2] needs path = "/..."', function() config.beam { http = { { path = "/a" }, {} } } end)
      raises("beam.tcp.enabled must be a boolean", function() config.beam { tcp = { enabled = 1 } } end)
      raises("beam.tcp.psk must be a string or {credentials_id = <id>} (got number)",
        function() config.beam { tcp = { psk = 5 } } end)
    end)
  end)

  describe("the other namespaces", function()
    it("endorse", function()
      assert.are.same({
        enabled = true,
        parametersToEndorse = { simId = true, imsi = true, imei = false, msisdn = true, requestParameters = true },
        tokenTimeoutSeconds = 600, allowOrigin = "", authorizedRedirectUrls = { "https://app.example.com/cb" },
      }, api_map(config.endorse {
        enabled = true,
        parameters_to_endorse = { sim_id = true, imsi = true, imei = false, msisdn = true, request_parameters = true },
        token_timeout_seconds = 600, allow_origin = "", authorized_redirect_urls = { "https://app.example.com/cb" },
      }))
    end)

    it("flux, whose keys are undocumented, through extra only", function()
      assert.are.same({ someFluxKey = "x" }, api_map(config.flux { extra = { someFluxKey = "x" } }))
      raises('flux has no field "enabled"', function() config.flux { enabled = true } end)
    end)

    it("funk, whose credentialsId is a reference object", function()
      assert.are.same({
        enabled = true,
        destination = { provider = "aws", service = "lambda",
          resourceUrl = "arn:aws:lambda:ap-northeast-1:123456789012:function:hello" },
        credentialsId = { ["$credentialsId"] = "aws-cred" },
        contentType = "json",
      }, api_map(config.funk {
        enabled = true,
        destination = { provider = "aws", service = "lambda",
          resource_url = "arn:aws:lambda:ap-northeast-1:123456789012:function:hello" },
        credentials_id = "aws-cred",
        content_type = "json",
      }))
      raises('funk.destination.provider must be one of aws, azure, google (got "ibm")',
        function() config.funk { destination = { provider = "ibm" } } end)
    end)

    it("funnel, whose credentialsId is a plain string", function()
      assert.are.same({
        enabled = true, credentialsId = "kinesis-cred", contentType = "json", addSimId = true,
        destination = { provider = "aws", service = "kinesis",
          resourceUrl = "https://kinesis.ap-northeast-1.amazonaws.com/stream", randomizePartitionKey = true,
          payloadsOnly = false },
      }, api_map(config.funnel {
        enabled = true, credentials_id = "kinesis-cred", content_type = "json", add_sim_id = true,
        destination = { provider = "aws", service = "kinesis",
          resource_url = "https://kinesis.ap-northeast-1.amazonaws.com/stream", randomize_partition_key = true,
          payloads_only = false },
      }))
      raises("funnel.content_type must be one of json, text, unspecified, binary, application/x-soracom-bf-v1",
        function() config.funnel { content_type = "xml" } end)
    end)

    it("harvest and harvest_files", function()
      assert.are.same({ enabled = true,
        customTimestamp = { format = "iso-8601", type = "jsonpointer", value = "/time" } },
        api_map(config.harvest { enabled = true,
          custom_timestamp = { format = "iso-8601", type = "jsonpointer", value = "/time" } }))
      assert.are.same({ enabled = true, defaultPath = "/test/", assumedRoleId = "role01" },
        api_map(config.harvest_files { enabled = true, default_path = "/test/", assumed_role_id = "role01" }))
    end)

    it("krypton, orbit and unified_endpoint", function()
      assert.are.same({ enabled = true, AwsIot = { region = "ap-northeast-1", credentialsId = "iot-cred",
        policyName = "p", thingNamePattern = "prefix-$imsi", host = "abc-ats.iot.ap-northeast-1.amazonaws.com" } },
        api_map(config.krypton { enabled = true, aws_iot = { region = "ap-northeast-1", credentials_id = "iot-cred",
          policy_name = "p", thing_name_pattern = "prefix-$imsi",
          host = "abc-ats.iot.ap-northeast-1.amazonaws.com" } }))
      assert.are.same({ enabled = true, codeSrn = "srn:soracom:OP0012345678:jp:Soralet:s1/$LATEST",
        direction = { "uplink", "downlink" }, contentType = "application/json", useLocation = true,
        useMetadata = false },
        api_map(config.orbit { enabled = true, code_srn = "srn:soracom:OP0012345678:jp:Soralet:s1/$LATEST",
          direction = { "uplink", "downlink" }, content_type = "application/json", use_location = true,
          use_metadata = false }))
      raises('orbit.direction[1] must be "uplink" or "downlink" (got string)',
        function() config.orbit { direction = { "up" } } end)
      assert.are.same({ enabled = true, response = { format = "SoracomHarvest" } },
        api_map(config.unified_endpoint { enabled = true, response = { format = "SoracomHarvest" } }))
    end)
  end)

  it("marks the fields whose values are secrets in config.describe, and no other", function()
    -- Every secret field's dotted name (map values as [name], a reference's other form as .of).
    local function secret_names(fields, prefix, out)
      for _, field in ipairs(fields) do
        local name = prefix .. field.name
        if field.secret then out[#out + 1] = name end
        if field.fields then secret_names(field.fields, name .. ".", out) end
        local values = field.values
        if values and values.of then values = values.of end
        if values and values.fields then secret_names(values.fields, name .. "[name].", out) end
      end
      return out
    end
    local found = {}
    for builder in pairs(require("soracom.groups.operations").BUILDERS) do
      for _, name in ipairs(secret_names(config.describe(builder).fields, builder .. ".", {})) do
        found[#found + 1] = name
      end
    end
    table.sort(found)
    local beam = {}
    for _, entry in ipairs({ "http", "mqtt", "tcp", "udp" }) do
      for _, name in ipairs({ "client_certs[name].key", "custom_headers[name].header_value", "password", "psk" }) do
        beam[#beam + 1] = "beam." .. entry .. "." .. name
      end
    end
    local expected = { "air.password" }
    for _, name in ipairs(beam) do expected[#expected + 1] = name end
    -- Funk's, Funnel's and Krypton's credentials_id name a secret in the Credentials
    -- Store, Harvest Files' assumed_role_id a role: references, not secrets.
    assert.are.same(expected, found)
  end)

  describe("config.read", function()
    it("turns a group's namespace back into the builder's form", function()
      local group = { configuration = { SoracomAir = { useCustomDns = true, dnsServers = { "8.8.8.8" },
        metadata = { enabled = true, allowOrigin = "*" }, someNewKey = 3 } } }
      assert.are.same({ use_custom_dns = true, dns_servers = { "8.8.8.8" },
        metadata = { enabled = true, allow_origin = "*" }, extra = { someNewKey = 3 } },
        config.read(group, "SoracomAir"))
      assert.are.same(config.read(group, "SoracomAir"), config.read(group, "air"))
      assert.are.same({}, config.read(group, "harvest"))
      raises('soracom.groups.config.read: namespace "Air" is not one of SoracomAir, SoracomBeam,',
        function() config.read(group, "Air") end)
    end)
  end)
end)

describe("configuration over HTTP", function()
  local srv, client

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    client = new_client(srv)
  end)
  after_each(function() client:close() end)

  local function trail() return srv:trail() end

  it("create_group takes a built configuration, or a list of them", function()
    local group = assert(client:create_group { name = "built", configuration = config.air { use_vpg = true } })
    assert.are.same({ SoracomAir = { useVpg = true } }, group.configuration)
    group = assert(client:create_group { configuration = { config.air { use_vpg = true },
      config.harvest { enabled = true } } })
    assert.are.same({ SoracomAir = { useVpg = true }, SoracomHarvest = { enabled = true } }, group.configuration)
    srv:clear_requests()
    raises("create_group: configuration builds SoracomAir twice",
      function() client:create_group { configuration = { config.air {}, config.air {} } } end)
    raises("create_group: configuration[2] is not a built configuration, as the others are",
      function() client:create_group { configuration = { config.air {}, { SoracomHarvest = {} } } } end)
    assert.are.same({}, trail())
  end)

  it("create_group refuses what is not plain API data, such as a built value under a namespace", function()
    raises("create_group: configuration.SoracomAir is a built configuration; give it as configuration = "
      .. "config.<builder>{...}",
      function() client:create_group { configuration = { SoracomAir = config.air { use_vpg = true } } } end)
    local classy = setmetatable({ enabled = true }, { __index = {} })
    raises("create_group: configuration.SoracomHarvest is a table with a metatable, not plain JSON data",
      function() client:create_group { configuration = { SoracomHarvest = classy } } end)
    raises("put_config: params.metadata is a built configuration",
      function() client:put_config("g", "SoracomAir", { metadata = config.air {} }) end)
    assert.are.same({}, trail())
    -- arrays marked as arrays are plain data
    local group = assert(client:create_group { configuration = { air = { dnsServers = groups.array {} } } })
    assert.are.same({ SoracomAir = { dnsServers = {} } }, group.configuration)
  end)

  it("takes builder names wherever a namespace goes", function()
    local group = client:create_group()
    assert.is_true(assert(client:put_config(group.groupId, "air", { useVpg = true })).configuration.SoracomAir.useVpg)
    assert.is_true(assert(client:put_config(group.groupId, "harvest", config.harvest { enabled = true }))
      .configuration.SoracomHarvest.enabled)
    assert.is_true(client:delete_config(group.groupId, "air", "useVpg"))
    assert.is_true(client:delete_config_namespace(group.groupId, "harvest"))
    local path = "/v1/groups/" .. group.groupId .. "/configuration/"
    local lines = trail()
    assert.are.same({ "PUT " .. path .. "SoracomAir", "PUT " .. path .. "SoracomHarvest",
      "DELETE " .. path .. "SoracomAir/useVpg", "DELETE " .. path .. "SoracomHarvest" },
      { lines[2], lines[3], lines[4], lines[5] })
  end)

  it("words a bad namespace the same way everywhere", function()
    local expected = 'namespace "Air" is not one of SoracomAir, SoracomBeam, SoracomEndorse, SoracomFlux, '
      .. "SoracomFunk, SoracomFunnel, SoracomHarvest, SoracomHarvestFiles, SoracomKrypton, SoracomOrbit, "
      .. "UnifiedEndpoint (or their builder names: air, beam, endorse, flux, funk, funnel, harvest, "
      .. "harvest_files, krypton, orbit, unified_endpoint)"
    raises("put_config: " .. expected, function() client:put_config("g", "Air", { a = 1 }) end)
    raises("update_config: " .. expected, function() client:update_config("g", "Air", {}) end)
    raises("create_group: " .. expected, function() client:create_group { configuration = { Air = {} } } end)
    raises("config.read: " .. expected, function() config.read({}, "Air") end)
    -- where Orbit is not taken, it is not offered
    raises('delete_config: namespace "orbit" is not one of SoracomAir, SoracomBeam, SoracomEndorse, '
      .. "SoracomFlux, SoracomFunk, SoracomFunnel, SoracomHarvest, SoracomHarvestFiles, SoracomKrypton, "
      .. "UnifiedEndpoint (or their builder names: air, beam, endorse, flux, funk, funnel, harvest, "
      .. "harvest_files, krypton, unified_endpoint)", function() client:delete_config("g", "orbit", "x") end)
  end)

  it("put_config takes a built configuration with or without the namespace", function()
    local group = client:create_group()
    local updated = assert(client:put_config(group.groupId, config.harvest { enabled = true }))
    assert.is_true(updated.configuration.SoracomHarvest.enabled)
    updated = assert(client:put_config(group.groupId, "SoracomHarvest", config.harvest { enabled = false }))
    assert.is_false(updated.configuration.SoracomHarvest.enabled)
    raises("put_config: params were built for SoracomHarvest, not SoracomAir",
      function() client:put_config(group.groupId, "SoracomAir", config.harvest { enabled = true }) end)
  end)

  it("round-trips every builder through the API and config.read", function()
    local cases = {
      air = { custom_dns = { "8.8.8.8" }, metadata = { enabled = true, readonly = true }, use_vpg = false },
      beam = { tcp = { destination = "tcps://t.example.com:1", enabled = true, psk = { credentials_id = "c" } },
        http = { { path = "/h", destination = "https://h.example.com" } } },
      endorse = { enabled = true, parameters_to_endorse = { imsi = true }, authorized_redirect_urls = {} },
      flux = { extra = { k = 1 } },
      funk = { enabled = true, credentials_id = "c", destination = { provider = "azure", service = "function-app",
        resource_url = "https://f.example.com" } },
      funnel = { enabled = true, credentials_id = "c", content_type = "text" },
      harvest = { enabled = true },
      harvest_files = { enabled = true, default_path = "/d/" },
      krypton = { enabled = true, aws_iot = { region = "us-west-2" } },
      orbit = { enabled = true, direction = { "uplink" } },
      unified_endpoint = { enabled = true, response = { format = "SoracomHarvest" } },
    }
    for builder, settings in pairs(cases) do
      local group = client:create_group()
      local built = config[builder](settings)
      local updated = assert(client:put_config(group.groupId, built))
      local read = config.read(updated, builder)
      assert.are.same(built.params, config[builder](read).params, builder)
    end
  end)

  describe("update_config", function()
    it("deep-merges changes and writes every key back", function()
      local group = client:create_group()
      client:put_config(group.groupId, config.air { metadata = { enabled = true, readonly = true,
        allow_origin = "*" }, use_vpg = true, extra = { someNewKey = "kept" } })
      local updated = assert(client:update_config(group.groupId, "air", { metadata = { readonly = false } }))
      assert.are.same({ metadata = { enabled = true, readonly = false, allowOrigin = "*" }, useVpg = true,
        someNewKey = "kept" }, updated.configuration.SoracomAir)
      local requests = srv:requests()
      local put = requests[#requests]
      assert.are.equal("PUT", put.method)
      assert.are.equal(3, #cjson.decode(put.body))
    end)

    it("takes a function of the current settings", function()
      local group = client:create_group()
      client:put_config(group.groupId, config.harvest { enabled = false })
      local seen
      local updated = assert(client:update_config(group.groupId, "SoracomHarvest", function(current)
        seen = { enabled = current.enabled, count = 0 }
        for _ in pairs(current) do seen.count = seen.count + 1 end
        current.enabled = true
        current.custom_timestamp = { format = "iso-8601", type = "jsonpointer", value = "/t" }
        return current
      end))
      assert.are.same({ enabled = false, count = 1 }, seen)
      assert.are.same({ enabled = true, customTimestamp = { format = "iso-8601", type = "jsonpointer", value = "/t" } },
        updated.configuration.SoracomHarvest)
    end)

    it("removes settings set to groups.null with delete_config", function()
      local group = client:create_group()
      client:put_config(group.groupId, config.air { use_vpg = true, vpg_id = "v1", userdata = "u" })
      srv:clear_requests()
      local updated = assert(client:update_config(group.groupId, "air", { vpg_id = groups.null, use_vpg = false }))
      assert.are.same({ useVpg = false, userdata = "u" }, updated.configuration.SoracomAir)
      local path = "/v1/groups/" .. group.groupId
      assert.are.same({ "GET " .. path, "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir",
        "DELETE " .. path .. "/configuration/SoracomAir/vpgId", "GET " .. path }, trail())
    end)

    it("removes the namespace when nothing is left", function()
      local group = client:create_group { configuration = { SoracomHarvest = { enabled = true } } }
      local updated = assert(client:update_config(group.groupId, "harvest", { enabled = groups.null }))
      assert.is_nil(updated.configuration.SoracomHarvest)
    end)

    it("refuses to remove one Orbit setting, which the API cannot, before sending anything", function()
      local group = client:create_group { configuration = { SoracomOrbit = { enabled = true, useLocation = true } } }
      srv:clear_requests()
      raises("update_config: SoracomOrbit settings cannot be removed one by one", function()
        client:update_config(group.groupId, "orbit", { use_location = groups.null })
      end)
      assert.are.same({}, trail())
    end)

    it("returns an error, and writes nothing, when a function drops one Orbit setting", function()
      local group = client:create_group { configuration = { SoracomOrbit = { enabled = true, useLocation = true } } }
      srv:clear_requests()
      local updated, err = client:update_config(group.groupId, "orbit", function(current)
        current.use_location = nil
        return current
      end)
      assert.is_nil(updated)
      assert.are.equal("unsupported", err.kind)
      assert.matches("useLocation; nothing was written", tostring(err), 1, true)
      for _, line in ipairs(trail()) do assert.matches("^GET ", line) end
    end)

    it("lets a change replace a value the builder would refuse", function()
      local group = client:create_group { configuration = { SoracomAir = { ipLinkMtu = "1500", useVpg = true,
        metadata = "odd" } } }
      local updated, err = client:update_config(group.groupId, "air", { ip_link_mtu = 1400,
        metadata = { enabled = true } })
      assert.is_nil(err)
      assert.are.same({ ipLinkMtu = 1400, useVpg = true, metadata = { enabled = true } },
        updated.configuration.SoracomAir)
      -- and an extra key replaces the field that reads the same API key
      updated = assert(client:update_config(group.groupId, "air", { extra = { useVpg = "maybe" } }))
      assert.are.equal("maybe", updated.configuration.SoracomAir.useVpg)
    end)

    it("lets a Beam entry replace a raw value kept under its entry point", function()
      local group = client:create_group { configuration = { SoracomBeam = {
        ["tcp://beam.soracom.io:8023"] = "garbage", ["http://beam.soracom.io:8888/a"] = 7 } } }
      local updated = assert(client:update_config(group.groupId, "beam", { tcp = { enabled = true },
        http = { path = "/a", destination = "https://a.example.com" } }))
      assert.are.same({ ["tcp://beam.soracom.io:8023"] = { enabled = true },
        ["http://beam.soracom.io:8888/a"] = { destination = "https://a.example.com" } },
        updated.configuration.SoracomBeam)
    end)

    it("treats a namespace that is JSON null as empty", function()
      local group = client:create_group()
      local as_read = cjson.encode { groupId = group.groupId, lastModifiedTime = group.lastModifiedTime,
        tags = {}, configuration = { SoracomAir = cjson.null } }
      srv:faults { { status = 200, body = as_read, times = 2 } } -- both reads see the null
      local updated = assert(client:update_config(group.groupId, "air", { use_vpg = true }))
      assert.are.same({ useVpg = true }, updated.configuration.SoracomAir)
    end)

    it("returns a decode error when the group read is not an object", function()
      local group = client:create_group()
      srv:faults { { status = 200, body = "true" } }
      local updated, err = client:update_config(group.groupId, "air", { use_vpg = true })
      assert.is_nil(updated)
      assert.are.equal("decode", err.kind)
    end)

    it("says so instead of overwriting when the group changed between the read and the write", function()
      local group = client:create_group()
      client:put_config(group.groupId, config.air { use_vpg = true })
      local other = new_client(srv)
      local updated, err = client:update_config(group.groupId, "air", function(current)
        other:set_tag(group.groupId, "touched", "yes") -- someone else changes the group meanwhile
        current.use_vpg = false
        return current
      end)
      other:close()
      assert.is_nil(updated)
      assert.are.equal("conflict", err.kind)
      assert.matches("nothing was written", tostring(err), 1, true)
      assert.is_true(client:get_group(group.groupId).configuration.SoracomAir.useVpg)
    end)

    it("merges Beam HTTP entries by path, keeping the others", function()
      local group = client:create_group()
      client:put_config(group.groupId, config.beam { http = {
        { path = "/a", name = "a", destination = "https://a.example.com", enabled = true },
        { path = "/b", destination = "https://b.example.com" } } })
      local updated = assert(client:update_config(group.groupId, "beam", { http = { path = "/a", enabled = false } }))
      assert.are.same({
        ["http://beam.soracom.io:8888/a"] = { name = "a", destination = "https://a.example.com", enabled = false },
        ["http://beam.soracom.io:8888/b"] = { destination = "https://b.example.com" },
      }, updated.configuration.SoracomBeam)
      updated = assert(client:update_config(group.groupId, "beam", { http = { ["/b"] = groups.null } }))
      assert.is_nil(updated.configuration.SoracomBeam["http://beam.soracom.io:8888/b"])
    end)

    it("takes Air's shorthands on a group that has the long form", function()
      local group = client:create_group()
      client:put_config(group.groupId, config.air { use_custom_dns = false, dns_servers = { "1.1.1.1" } })
      local updated = assert(client:update_config(group.groupId, "air", { custom_dns = { "8.8.8.8" } }))
      assert.are.same({ useCustomDns = true, dnsServers = { "8.8.8.8" } }, updated.configuration.SoracomAir)
    end)

    it("sends nothing but reads when the namespace is absent and stays so", function()
      local group = client:create_group()
      srv:clear_requests()
      local same = assert(client:update_config(group.groupId, "harvest", { enabled = groups.null }))
      assert.is_nil(same.configuration.SoracomHarvest)
      for _, line in ipairs(trail()) do assert.matches("^GET ", line) end
    end)

    it("keeps values a builder would refuse, and writes them back unchanged", function()
      local group = client:create_group { configuration = {
        SoracomOrbit = { enabled = "true", codeSrn = "srn:x" },
        SoracomAir = { metadata = groups.null, useVpg = true } } }
      local read = config.read(group, "orbit")
      assert.are.same({ code_srn = "srn:x", extra = { enabled = "true" } }, read)
      local updated = assert(client:update_config(group.groupId, "orbit", { code_srn = "srn:y" }))
      assert.are.same({ enabled = "true", codeSrn = "srn:y" }, updated.configuration.SoracomOrbit)
      assert.are.same({ use_vpg = true, extra = { metadata = groups.null } }, config.read(group, "air"))
    end)

    it("removes an extra key set to groups.null", function()
      local group = client:create_group { configuration = { SoracomAir = { useVpg = true, oldKey = 1 } } }
      local updated = assert(client:update_config(group.groupId, "air", { extra = { oldKey = groups.null } }))
      assert.are.same({ useVpg = true }, updated.configuration.SoracomAir)
    end)

    it("checks its arguments before sending anything", function()
      raises('update_config: namespace "Air" is not one of SoracomAir, SoracomBeam,',
        function() client:update_config("g", "Air", {}) end)
      raises("update_config: changes must be a table or a function (got string)",
        function() client:update_config("g", "air", "x") end)
      raises("air.use_vpg must be a boolean", function() client:update_config("g", "air", { use_vpg = 1 }) end)
      assert.are.same({}, trail())
    end)

    it("returns the server's error for a missing group", function()
      local updated, err = client:update_config("missing", "air", { use_vpg = true })
      assert.is_nil(updated)
      assert.are.equal(404, err.status)
    end)
  end)

  it("does not echo a bad value that may be a secret", function()
    local ok, err = pcall(config.air, { chap = "user:hunter2" })
    assert.is_false(ok)
    assert.is_nil(err:find("hunter2", 1, true))
    ok, err = pcall(config.beam, { mqtt = { password = { "s3cret" } } })
    assert.is_false(ok)
    assert.is_nil(err:find("s3cret", 1, true))
  end)

  it("refuses a configuration over 8 KB with the server's 400", function()
    local group = client:create_group()
    local updated, err = client:put_config(group.groupId, config.air { userdata = string.rep("x", 9000) })
    assert.is_nil(updated)
    assert.are.equal(400, err.status)
  end)

  describe("tags", function()
    it("set_tag adds or changes one tag", function()
      local group = client:create_group { name = "fleet" }
      assert.are.same({ name = "fleet" }, group.tags)
      local updated = assert(client:set_tag(group.groupId, "env", "prod"))
      assert.are.same({ name = "fleet", env = "prod" }, updated.tags)
      raises("set_tag: value must be a string (got number)", function() client:set_tag(group.groupId, "n", 1) end)
    end)

    it("create_group takes the name directly, which is the name tag", function()
      local group = client:create_group { name = "fleet", tags = { env = "dev" } }
      assert.are.same({ name = "fleet", env = "dev" }, group.tags)
      raises("create_group: name and tags.name differ",
        function() client:create_group { name = "a", tags = { name = "b" } } end)
    end)
  end)
end)
