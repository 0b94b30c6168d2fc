-- config.check_api: settings in the API's form (as a desired-state document and a
-- group hold them) against the builders' schema. Expected messages written by hand.
local config = require "soracom.groups.config"
local core = require "soracom.groups.core"
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"

local TCP = "tcp://beam.soracom.io:8023"
local HTTP = "http://beam.soracom.io:8888/hook"

local function check(namespace, settings)
  local errors, warnings = config.check_api(namespace, settings)
  return { errors = errors, warnings = warnings }
end

local function clean() return { errors = {}, warnings = {} } end

-- The API map of a built configuration.
local function api_map(built)
  local map = {}
  for _, param in ipairs(built.params) do map[param.key] = param.value end
  return map
end

-- One configuration per builder, every field it has set (read from config_spec's cases).
local BUILT = {
  air = { use_custom_dns = true, dns_servers = { "8.8.8.8", "1.1.1.1" },
    metadata = { enabled = true, readonly = false, allow_origin = "*", minimize_response_body = true },
    userdata = "hello", chap = { username = "u", password = "p" }, location_enabled = true,
    ip_link_mtu = 1400, session_event_enabled = true, use_vpg = true, vpg_id = "vpg-1",
    binary_parser = "@button" },
  beam = {
    tcp = { name = "to tcps", destination = "tcps://tcp.example.com:1234", enabled = true,
      add_subscriber_header = true, add_signature = true, psk = { credentials_id = "psk-1" } },
    udp = { destination = "https://udp.example.com/in", enabled = false, skip_status_code = true, psk = "plain" },
    mqtt = { destination = "mqtts://broker.example.com:8883", username = "m", password = "secret",
      use_client_cert = true, client_certs = { default = { credentials_id = "cert-1" },
        other = { ca = "ca", cert = "cert", key = "key" } }, version = "201912" },
    http = { path = "/hook", destination = "https://api.example.com/hook", add_sim_id_header = true,
      add_msisdn_header = true, add_equipment_header = true,
      custom_headers = { ["X-Env"] = { action = "append", header_key = "X-Env", header_value = "prod" } } },
  },
  endorse = { enabled = true, parameters_to_endorse = { sim_id = true, imsi = true, imei = false, msisdn = true,
    request_parameters = true }, token_timeout_seconds = 600, allow_origin = "",
    authorized_redirect_urls = { "https://app.example.com/cb" } },
  flux = { extra = { someFluxKey = "x" } },
  funk = { enabled = true, destination = { provider = "aws", service = "lambda",
    resource_url = "arn:aws:lambda:ap-northeast-1:123456789012:function:hello" }, credentials_id = "aws-cred",
    content_type = "json" },
  funnel = { enabled = true, credentials_id = "kinesis-cred", content_type = "json", add_sim_id = true,
    destination = { provider = "aws", service = "kinesis", resource_url = "https://kinesis.example.com/stream",
      randomize_partition_key = true, send_payloads_as_binary = false, payloads_only = false } },
  harvest = { enabled = true, custom_timestamp = { format = "iso-8601", type = "jsonpointer", value = "/time" } },
  harvest_files = { enabled = true, default_path = "/test/", assumed_role_id = "role01" },
  krypton = { enabled = true, aws_iot = { region = "ap-northeast-1", credentials_id = "iot-cred",
    policy_name = "p", thing_name_pattern = "prefix-$imsi", host = "abc-ats.iot.ap-northeast-1.amazonaws.com" } },
  orbit = { enabled = true, code_srn = "srn:soracom:OP0012345678:jp:Soralet:s1/$LATEST",
    direction = { "uplink", "downlink" }, content_type = "application/json", use_location = true,
    use_metadata = false },
  unified_endpoint = { enabled = true, response = { format = "SoracomHarvest" } },
}

describe("config.check_api", function()
  it("passes what every builder writes, with no error and no warning", function()
    for builder, settings in pairs(BUILT) do
      local built = config[builder](settings)
      assert.are.same(clean(), check(built.namespace, api_map(built)), builder)
    end
  end)

  it("passes the examples' desired document", function()
    local file = assert(io.open("examples/desired.json", "rb"))
    local document = core.decode_json(file:read("*a"))
    file:close()
    for _, group in ipairs(document.groups) do
      for namespace, settings in pairs(group.configuration) do
        assert.are.same(clean(), check(namespace, settings), group.name .. " " .. namespace)
      end
    end
  end)

  it("errs on a wrong type for a known key, naming its path below the namespace", function()
    assert.are.same({ errors = {
      "dnsServers[2] must be IPv4 addresses (got string)",
      "ipLinkMtu must be a whole number from 1 to 65535 (got number 0)",
      "metadata.enabled must be a boolean (got string)",
      "useCustomDns must be a boolean (got string)",
    }, warnings = {} }, check("SoracomAir", { useCustomDns = "yes", dnsServers = { "8.8.8.8", "x" },
      metadata = { enabled = "true", readonly = true }, ipLinkMtu = 0 }))
    assert.are.same({ errors = { 'destination.provider must be one of aws, azure, google (got "ibm")' },
      warnings = {} }, check("SoracomFunk", { destination = { provider = "ibm" } }))
    assert.are.same({ errors = { "customTimestamp must be an object (got string)" }, warnings = {} },
      check("SoracomHarvest", { customTimestamp = "x" }))
  end)

  it("takes a builder name too, and raises only for an unknown namespace", function()
    assert.are.same(clean(), check("air", { useCustomDns = true }))
    local ok, err = pcall(config.check_api, "Air", {})
    assert.is_false(ok)
    assert.truthy(tostring(err):find('check_api: namespace "Air" is not one of SoracomAir', 1, true), err)
  end)

  it("says when the settings are no object", function()
    assert.are.same({ errors = { "must be an object of API keys (got string)" }, warnings = {} },
      check("SoracomAir", "x"))
    assert.are.same({ errors = { "must be an object of API keys (got list)" }, warnings = {} },
      check("SoracomAir", setmetatable({ 1 }, core.array_mt)))
  end)

  it("errs on an unknown key that is likely a typo of a known one, with the known one", function()
    assert.are.same({ errors = {
      'metadata.enabeld is an unknown key; did you mean "enabled"?',
      'useCustmDns is an unknown key; did you mean "useCustomDns"?',
      'useCustomDNS is an unknown key; did you mean "useCustomDns"?',
    }, warnings = {} }, check("SoracomAir", { useCustomDNS = true, useCustmDns = true, metadata = { enabeld = true } }))
    -- case alone, however short; edits only for keys of 5 characters or more
    assert.are.same({ errors = { 'parametersToEndorse.IMEI is an unknown key; did you mean "imei"?' },
      warnings = { "parametersToEndorse.imsi2 is an unknown key, passed through unchanged" } },
      check("SoracomEndorse", { parametersToEndorse = { IMEI = true, imsi2 = true } }))
  end)

  it("warns of any other unknown key: Soracom adds keys", function()
    assert.are.same({ errors = {}, warnings = { "metadata.newer is an unknown key, passed through unchanged",
      "newThing is an unknown key, passed through unchanged" } },
      check("SoracomAir", { newThing = 1, metadata = { newer = { deep = true } } }))
  end)

  it("warns, and never errs, on keys NAMESPACES.md records that the builders do not model", function()
    assert.are.same({ errors = {}, warnings = {
      '["mqtt://beam.soracom.io:1883"].azureIoTCentral is an unknown key, passed through unchanged',
      '["mqtt://beam.soracom.io:1883"].replaceTopic is an unknown key, passed through unchanged',
      '["mqtt://beam.soracom.io:1883"].useAzureIoT is an unknown key, passed through unchanged',
      '["mqtt://beam.soracom.io:1883"].useClientCredentials is an unknown key, passed through unchanged',
    } }, check("SoracomBeam", { ["mqtt://beam.soracom.io:1883"] = { useClientCredentials = true,
      replaceTopic = true, useAzureIoT = false, azureIoTCentral = { ["$credentialsId"] = "c" } } }))
  end)

  it("accepts null anywhere (a removal)", function()
    assert.are.same(clean(), check("SoracomAir", { useCustomDns = core.null, metadata = { enabled = core.null } }))
    assert.are.same(clean(), check("SoracomBeam", { [TCP] = core.null, [HTTP] = { psk = core.null } }))
    assert.are.same(clean(), check("SoracomAir", core.null))
  end)

  it("accepts {\"$env\": NAME} wherever the schema takes a string, and nowhere else", function()
    local env = { ["$env"] = "BEAM_PSK" }
    assert.are.same(clean(), check("SoracomAir", { password = env, username = { ["$env"] = "CHAP_USER" } }))
    assert.are.same(clean(), check("SoracomBeam", { [TCP] = { psk = env,
      customHeaders = { ["X-A"] = { action = "append", headerKey = "Authorization", headerValue = env } } } }))
    assert.are.same(clean(), check("SoracomFunnel", { contentType = { ["$env"] = "TYPE" } })) -- an enum of strings
    assert.are.same({ errors = {
      'useCustomDns cannot be {"$env": ...}, which stands for a string: it takes boolean',
    }, warnings = {} }, check("SoracomAir", { useCustomDns = env }))
    assert.are.same({ errors = {
      'password must be {"$env": "<NAME>"}: a non-empty name and no other key',
      'username must be {"$env": "<NAME>"}: a non-empty name and no other key',
    }, warnings = {} }, check("SoracomAir", { password = { ["$env"] = "" }, username = { ["$env"] = "U", x = 1 } }))
  end)

  it("accepts {\"$credentialsId\": id} where the schema takes a reference, and nowhere else", function()
    local ref = { ["$credentialsId"] = "cred-1" }
    assert.are.same(clean(), check("SoracomBeam", { [TCP] = { psk = ref, clientCerts = { default = ref } } }))
    assert.are.same(clean(), check("SoracomFunk", { credentialsId = ref }))
    assert.are.same({ errors = {
      '["tcp://beam.soracom.io:8023"].clientCerts.default must be {ca, cert, key} or {"$credentialsId": <id>} '
        .. "(got string)",
      '["tcp://beam.soracom.io:8023"].password must be a string (got table)',
      '["tcp://beam.soracom.io:8023"].psk must be a string or {"$credentialsId": <id>} (got number)',
    }, warnings = {} }, check("SoracomBeam", { [TCP] = { psk = 5, password = ref, clientCerts = { default = "x" } } }))
    assert.are.same({ errors = { 'credentialsId must be {"$credentialsId": <id>} (got number 5)' }, warnings = {} },
      check("SoracomFunk", { credentialsId = 5 }))
  end)

  it("checks Beam entries by entry point, and warns of unknown entry points", function()
    assert.are.same({ errors = {
      '["http://beam.soracom.io:8888/hook"].customHeaders["X-A"].headervalue is an unknown key; '
        .. 'did you mean "headerValue"?',
      '["udp://beam.soracom.io:23080"] must be an object (got string)',
    }, warnings = {
      '["https://beam.soracom.io:18080"] is an unknown key, passed through unchanged',
      '["tcp://beam.soracom.io:8024"] is an unknown key, passed through unchanged',
    } }, check("SoracomBeam", {
      [HTTP] = { customHeaders = { ["X-A"] = { headervalue = "v" } } },
      ["udp://beam.soracom.io:23080"] = "x",
      ["https://beam.soracom.io:18080"] = { destination = "https://site" },
      ["tcp://beam.soracom.io:8024"] = {},
    }))
  end)

  it("gives nothing for SoracomFlux, whose keys are undocumented", function()
    assert.are.same(clean(), check("SoracomFlux", { apiToken = "x", anything = { at = "all" } }))
    assert.are.same({ errors = { "must be an object of API keys (got number 1)" }, warnings = {} },
      check("SoracomFlux", 1))
  end)
end)

describe("config.check_api on what the fake server returns", function()
  local srv, client

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function() client = new_client(srv) end)
  after_each(function() client:close() end)

  it("passes every namespace of a group written by the builders and read back", function()
    local group = assert(client:create_group())
    for builder, settings in pairs(BUILT) do
      assert(client:put_config(group.groupId, config[builder](settings)))
    end
    local read = assert(client:get_group(group.groupId))
    local count = 0
    for namespace, settings in pairs(read.configuration) do
      assert.are.same(clean(), check(namespace, settings), namespace)
      count = count + 1
    end
    assert.are.equal(11, count)
  end)
end)
