-- secrets: what a plan may show of settings in the API's form (issue 21). Each case of
-- the issue both ways; expected values written by hand.
local secrets = require "soracom.groups.secrets"
local core = require "soracom.groups.core"

local TCP = "tcp://beam.soracom.io:8023"
local HTTP = "http://beam.soracom.io:8888/path"
local S = "(sensitive)"

describe("secrets.is_secret", function()
  it("takes secrets from the schema: a header's value, not its name", function()
    assert.is_true(secrets.is_secret("SoracomBeam", { TCP, "customHeaders", "X-A", "headerValue" }))
    assert.is_true(secrets.is_secret("SoracomBeam", { HTTP, "customHeaders", "X-A", "headerValue" }))
    assert.is_false(secrets.is_secret("SoracomBeam", { TCP, "customHeaders", "X-A", "headerKey" }))
    assert.is_false(secrets.is_secret("SoracomBeam", { TCP, "customHeaders", "X-A", "action" }))
  end)

  it("marks Air's and Beam's passwords, Beam's psk and a client certificate's key", function()
    assert.is_true(secrets.is_secret("SoracomAir", { "password" }))
    assert.is_false(secrets.is_secret("SoracomAir", { "username" }))
    assert.is_true(secrets.is_secret("SoracomBeam", { TCP, "password" }))
    assert.is_true(secrets.is_secret("SoracomBeam", { TCP, "psk" }))
    assert.is_true(secrets.is_secret("SoracomBeam", { TCP, "clientCerts", "default", "key" }))
    assert.is_false(secrets.is_secret("SoracomBeam", { TCP, "clientCerts", "default", "cert" }))
    assert.is_false(secrets.is_secret("SoracomBeam", { TCP, "destination" }))
    assert.is_false(secrets.is_secret("SoracomAir", { "metadata", "enabled" }))
  end)

  it("shows references: credentialsId everywhere, and the key of a reference at a secret field", function()
    assert.is_false(secrets.is_secret("SoracomFunk", { "credentialsId", "$credentialsId" }))
    assert.is_false(secrets.is_secret("SoracomFunnel", { "credentialsId" }))
    assert.is_false(secrets.is_secret("SoracomKrypton", { "AwsIot", "credentialsId" }))
    assert.is_false(secrets.is_secret("SoracomBeam", { TCP, "psk", "$credentialsId" }))
    assert.is_false(secrets.is_secret("SoracomAir", { "password", "$env" }))
    assert.is_false(secrets.is_secret("SoracomHarvestFiles", { "assumedRoleId" }))
  end)

  it("shows tokenTimeoutSeconds, which names a time", function()
    assert.is_false(secrets.is_secret("SoracomEndorse", { "tokenTimeoutSeconds" }))
  end)

  it("hides everything under a secret field", function()
    assert.is_true(secrets.is_secret("SoracomBeam", { TCP, "psk", "value" }))
    assert.is_true(secrets.is_secret("SoracomAir", { "password", 1 }))
  end)

  it("falls back to names for keys the schema does not know", function()
    assert.is_true(secrets.is_secret("SoracomFlux", { "apiToken" }))
    assert.is_true(secrets.is_secret("SoracomFlux", { "auth", "client_secret" }))
    assert.is_true(secrets.is_secret("SoracomFlux", { "privateKey" }))
    assert.is_true(secrets.is_secret("SoracomFlux", { "key" }))
    assert.is_true(secrets.is_secret("SoracomFlux", { "api-key" }))
    assert.is_false(secrets.is_secret("SoracomFlux", { "enabled" }))
    assert.is_false(secrets.is_secret("SoracomFlux", { "monkey" }))
    assert.is_true(secrets.is_secret("SoracomAir", { "sharedSecret" }))
    assert.is_true(secrets.is_secret("SoracomAir", { "newThing", "password" }))
    assert.is_true(secrets.is_secret("Unknown", { "passphrase" }))
    -- an unknown Beam entry point: its keys by name, its address names nothing
    assert.is_true(secrets.is_secret("SoracomBeam", { "https://beam.soracom.io:18080", "password" }))
    assert.is_false(secrets.is_secret("SoracomBeam", { "https://beam.soracom.io:18080/token" }))
  end)

  it("never takes a name the schema knows as no secret for one, wherever it is", function()
    assert.is_false(secrets.is_secret("SoracomFlux", { "headerKey" }))
    assert.is_false(secrets.is_secret("SoracomFlux", { "credentialsId" }))
    assert.is_false(secrets.is_secret("SoracomFlux", { "tokenTimeoutSeconds" }))
    -- and a name it knows as one is one
    assert.is_true(secrets.is_secret("SoracomBeam", { "https://beam.soracom.io:18080", "customHeaders", "X",
      "headerValue" }))
  end)
end)

describe("secrets.mask_string", function()
  local function masks(text, expected)
    local masked, changed = secrets.mask_string(text)
    assert.are.equal(expected, masked)
    assert.are.equal(expected ~= text, changed)
  end

  it("masks a URL's password and keeps the user and the host", function()
    masks("https://user:pass@example.com/path?x=1", "https://user:***@example.com/path?x=1")
    masks("mqtts://broker-user:p%40ss@broker.example.com:8883", "mqtts://broker-user:***@broker.example.com:8883")
    masks("send to https://u:p@h.example.com and wait", "send to https://u:***@h.example.com and wait")
    masks("https://user@example.com:8080/path", "https://user@example.com:8080/path")
    masks("https://example.com:8080/path", "https://example.com:8080/path")
  end)

  it("masks the values of secret query parameters, case ignored, and keeps the others", function()
    masks("https://fn.azurewebsites.net/api/hello?code=abc123&name=x",
      "https://fn.azurewebsites.net/api/hello?code=***&name=x")
    masks("https://acct.blob.core.windows.net/c/b?sv=2020-08-04&se=2030&sig=ZZZ%3D",
      "https://acct.blob.core.windows.net/c/b?sv=2020-08-04&se=2030&sig=***")
    masks("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F2020&X-Amz-Date=20200101&X-Amz-Signature=dead",
      "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Date=20200101&X-Amz-Signature=***")
    masks("https://api.example.com/in?API_KEY=k1&access_token=t1",
      "https://api.example.com/in?API_KEY=***&access_token=***")
    masks("https://app.example.com/cb#access_token=t1&state=s", "https://app.example.com/cb#access_token=***&state=s")
    masks("https://api.example.com/in?token=&page=2", "https://api.example.com/in?token=&page=2")
  end)

  it("masks SharedAccessKey in a Funnel resourceUrl (a connection string), and keeps its other parts", function()
    masks("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc+def/ghi=;"
        .. "EntityPath=hub",
      "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=***;EntityPath=hub")
    masks("https://ns.servicebus.windows.net/hub?SharedAccessKeyName=send&SharedAccessKey=abc%2B",
      "https://ns.servicebus.windows.net/hub?SharedAccessKeyName=send&SharedAccessKey=***")
    masks("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=xyz==;EndpointSuffix=core.windows.net",
      "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net")
    masks("Server=tcp:db.example.com; Password=pw; Database=d", "Server=tcp:db.example.com; Password=***; Database=d")
  end)

  it("masks Authorization credentials, Bearer and Basic ones, and keeps the scheme", function()
    masks("Authorization: Bearer abc", "Authorization: Bearer ***")
    masks('{"Authorization": "Basic dXNlcjpwYXNz", "X": 1}', '{"Authorization": "Basic ***", "X": 1}')
    masks("authorization=sk-live-123", "authorization=***")
    masks("Bearer abc", "Bearer ***")
    masks("send Bearer eyJhbGciOi.e30.sig with it", "send Bearer *** with it")
    masks("Basic dXNlcjpwYXNz", "Basic ***")
    -- English after the words is not a credential
    masks("Basic configuration for sensors", "Basic configuration for sensors")
  end)

  it("leaves other text, and what is masked already, as it is", function()
    masks("plain text: 8.8.8.8, /path?x=1", "plain text: 8.8.8.8, /path?x=1")
    masks("https://user:***@example.com?sig=***", "https://user:***@example.com?sig=***")
    assert.are.same({ 5, false }, { secrets.mask_string(5) })
  end)
end)

describe("secrets.masked", function()
  it("hides the issue's secrets and shows the rest of Beam's settings", function()
    local beam = {
      [TCP] = { psk = "pre-shared", destination = "tcps://user:pw@tcp.example.com:1234", enabled = true,
        customHeaders = { ["X-A"] = { action = "append", headerKey = "Authorization", headerValue = "Bearer abc" } } },
      [HTTP] = { psk = { ["$credentialsId"] = "psk-cred" }, password = { ["$env"] = "BEAM_PASSWORD" },
        username = "u", clientCerts = { default = { ca = "CA", cert = "CERT", key = "KEY" } } },
    }
    assert.are.same({
      [TCP] = { psk = S, destination = "tcps://user:***@tcp.example.com:1234", enabled = true,
        customHeaders = { ["X-A"] = { action = "append", headerKey = "Authorization", headerValue = S } } },
      [HTTP] = { psk = { ["$credentialsId"] = "psk-cred" }, password = { ["$env"] = "BEAM_PASSWORD" },
        username = "u", clientCerts = { default = { ca = "CA", cert = "CERT", key = S } } },
    }, secrets.masked("SoracomBeam", {}, beam))
    assert.are.equal(beam[TCP].psk, "pre-shared") -- a copy: the value is left alone
  end)

  it("masks a value at its path below the namespace", function()
    assert.are.equal(S, secrets.masked("SoracomBeam", { TCP, "customHeaders", "X-A", "headerValue" }, "Bearer abc"))
    assert.are.equal("Authorization", secrets.masked("SoracomBeam", { TCP, "customHeaders", "X-A", "headerKey" },
      "Authorization"))
    assert.are.same({ action = "append", headerKey = "X-Key", headerValue = S },
      secrets.masked("SoracomBeam", { TCP, "customHeaders", "X-A" },
        { action = "append", headerKey = "X-Key", headerValue = "k" }))
    assert.are.equal(S, secrets.masked("SoracomAir", { "password" }, "chap-pass"))
    assert.are.equal(S, secrets.masked("SoracomAir", { "password" }, 1234))
  end)

  it("shows a reference at a secret path as it is: it names a secret, it is none", function()
    assert.are.same({ ["$env"] = "X" }, secrets.masked("SoracomAir", { "password" }, { ["$env"] = "X" }))
    assert.are.same({ ["$credentialsId"] = "c" },
      secrets.masked("SoracomBeam", { TCP, "psk" }, { ["$credentialsId"] = "c" }))
    -- not a reference: another key beside it
    assert.are.same({ ["$env"] = "X", other = S },
      secrets.masked("SoracomAir", { "password" }, { ["$env"] = "X", other = "y" }))
  end)

  it("shows credentialsId, tokenTimeoutSeconds and null; masks strings' secret parts elsewhere", function()
    assert.are.same({ credentialsId = { ["$credentialsId"] = "aws-cred" },
      destination = { provider = "azure", service = "function-app",
        resourceUrl = "https://fn.azurewebsites.net/api/f?code=***" } },
      secrets.masked("SoracomFunk", {}, { credentialsId = { ["$credentialsId"] = "aws-cred" },
        destination = { provider = "azure", service = "function-app",
          resourceUrl = "https://fn.azurewebsites.net/api/f?code=k3y" } }))
    assert.are.same({ credentialsId = "kinesis-cred", destination = { resourceUrl =
      "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=***" } },
      secrets.masked("SoracomFunnel", {}, { credentialsId = "kinesis-cred", destination = { resourceUrl =
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc=" } }))
    assert.are.same({ tokenTimeoutSeconds = 600 }, secrets.masked("SoracomEndorse", {}, { tokenTimeoutSeconds = 600 }))
    assert.are.equal(core.null, secrets.masked("SoracomAir", { "password" }, core.null))
    assert.are.same({ userdata = "Authorization: Bearer ***" },
      secrets.masked("SoracomAir", {}, { userdata = "Authorization: Bearer abc" }))
  end)

  it("hides Flux's unknown apiToken by its name, and shows its other keys", function()
    assert.are.same({ apiToken = S, endpoint = "https://flux.example.com/in" },
      secrets.masked("SoracomFlux", {}, { apiToken = "tok", endpoint = "https://flux.example.com/in" }))
  end)

  it("keeps array marks, also on empty lists", function()
    local masked = secrets.masked("SoracomAir", {}, {
      dnsServers = setmetatable({ "8.8.8.8" }, core.array_mt), none = setmetatable({}, core.array_mt) })
    assert.are.equal(core.array_mt, getmetatable(masked.dnsServers))
    assert.are.equal(core.array_mt, getmetatable(masked.none))
    assert.are.same({ "8.8.8.8" }, masked.dnsServers)
    assert.are.equal("[]", core.encode_json(masked.none))
  end)

  it("says (sensitive)", function()
    assert.are.equal("(sensitive)", secrets.SENSITIVE)
  end)

  it("never quotes a secret field's value in a message, from a builder or from check_api", function()
    local config = require "soracom.groups.config"
    local ok, err = pcall(config.air, { password = 987654321 })
    assert.is_false(ok)
    assert.matches("air%.password must be a string %(got number%)$", err)
    ok, err = pcall(config.beam, { tcp = { psk = 424242 } })
    assert.is_false(ok)
    assert.is_nil(err:find("424242", 1, true), err)
    local errors = config.check_api("SoracomBeam", { ["tcp://beam.soracom.io:8023"] = { psk = 424242,
      password = 31337, customHeaders = { a = { headerValue = 777001 } } } })
    assert.are.equal(3, #errors)
    for _, message in ipairs(errors) do
      for _, secret in ipairs { "424242", "31337", "777001" } do assert.is_nil(message:find(secret, 1, true)) end
    end
    -- a field that is no secret still says what it got
    ok, err = pcall(config.air, { ip_link_mtu = 70000 })
    assert.is_false(ok)
    assert.matches("%(got number 70000%)$", err)
  end)
end)
