-- Declarative groups as a library: export -> plan -> apply -> plan, against the fake
-- over real HTTP. Every expected line and document here is written by hand.
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local tempdir = require "spec.support.tempdir"
local groups = require "soracom.groups"
local desired = require "soracom.groups.desired"
local plan = require "soracom.groups.plan"
local apply = require "soracom.groups.apply"

local function read(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

local function write(path, text)
  local file = assert(io.open(path, "wb"))
  file:write(text)
  file:close()
end

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

describe("desired state: export, plan, apply", function()
  local srv, client

  setup(function() srv = fake.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function()
    srv:reset()
    client = assert(new_client(srv))
  end)
  after_each(function() client:close() end)

  -- The account the specs start from; returns the ids by name.
  local function seed()
    local ids = {}
    ids["sensors-tokyo"] = assert(client:create_group {
      name = "sensors-tokyo", tags = { env = "prod", owner = "ops" },
      configuration = {
        SoracomAir = { metadata = { enabled = true, readonly = true }, useCustomDns = false },
        SoracomHarvest = { enabled = true },
      },
    }).groupId
    ids["sensors-osaka"] = assert(client:create_group {
      name = "sensors-osaka", tags = { env = "dev" },
      configuration = { SoracomAir = { metadata = { enabled = false } } },
    }).groupId
    ids["old-fleet"] = assert(client:create_group { name = "old-fleet" }).groupId
    return ids
  end

  local function account()
    return assert(desired.list(client))
  end

  local function compare(document, options)
    return assert(plan.compare(document, account(), options))
  end

  local function by_name(name)
    for _, group in ipairs(account()) do
      if group.tags.name == name then return group end
    end
  end

  it("exports the account as a sorted document that plans to nothing", function()
    seed()
    local document = assert(desired.export(client))
    assert.are.equal([[
{
  "groups": [
    {
      "configuration": {},
      "name": "old-fleet",
      "tags": {}
    },
    {
      "configuration": {
        "SoracomAir": {
          "metadata": {
            "enabled": false
          }
        }
      },
      "name": "sensors-osaka",
      "tags": {
        "env": "dev"
      }
    },
    {
      "configuration": {
        "SoracomAir": {
          "metadata": {
            "enabled": true,
            "readonly": true
          },
          "useCustomDns": false
        },
        "SoracomHarvest": {
          "enabled": true
        }
      },
      "name": "sensors-tokyo",
      "tags": {
        "env": "prod",
        "owner": "ops"
      }
    }
  ]
}
]], desired.encode(document))
    local p = compare(document)
    assert.is_true(plan.empty(p))
    assert.are.same({ "No changes." }, plan.render(p))
  end)

  it("exports the groups a tag selects", function()
    seed()
    local document = assert(desired.export(client, { tag_name = "env", tag_value = "dev" }))
    assert.are.same({ "sensors-osaka" }, { document.groups[1].name, document.groups[2] })
  end)

  it("keeps settings it has no builder field for, and the API's value shapes", function()
    assert(client:create_group { name = "raw", configuration = {
      SoracomBeam = { ["tcp://beam.soracom.io:8023"] = { enabled = true, futureKey = { 1, 2 } } },
    } })
    local document = assert(desired.export(client))
    assert.are.equal('{"SoracomBeam":{"tcp://beam.soracom.io:8023":{"enabled":true,"futureKey":[1,2]}}}',
      desired.encode_compact(document.groups[1].configuration))
    assert.is_true(plan.empty(compare(document)))
  end)

  it("plans each kind of change, applies exactly those, and then plans nothing", function()
    local ids = seed()
    local document = assert(desired.export(client))
    local tokyo, osaka = document.groups[3], document.groups[2]
    table.remove(document.groups, 1) -- old-fleet: unmanaged without prune
    tokyo.tags.env, tokyo.tags.owner, tokyo.tags.team = "staging", nil, "iot"
    tokyo.configuration.SoracomAir.metadata.readonly = false
    tokyo.configuration.SoracomAir.useCustomDns = true
    tokyo.configuration.SoracomAir.dnsServers = { "8.8.8.8" }
    tokyo.configuration.SoracomHarvest = nil -- unmanaged without prune
    osaka.configuration.SoracomAir = groups.null
    osaka.configuration.SoracomHarvest = { enabled = true }
    document.groups[3] = { name = "sensors-nagoya", tags = { env = "prod" },
      configuration = { SoracomAir = { metadata = { enabled = true, readonly = true } } } }

    local p = compare(document)
    assert.is_false(plan.empty(p))
    local golden = read("spec/golden/plan.txt"):gsub("<old%-fleet id>", ids["old-fleet"])
    assert.are.same(lines_of(golden), plan.render(p))

    srv:clear_stats()
    local progress = {}
    local summary = apply.run(client, p, { concurrency = 4, on_progress = function(done, total, name, outcome)
      progress[#progress + 1] = done .. "/" .. total
      progress[name] = outcome
    end })
    assert.are.same({ applied = 3, skipped = {}, failed = {} }, summary)
    assert.are.same({ "1/3", "2/3", "3/3", ["sensors-nagoya"] = "applied", ["sensors-osaka"] = "applied",
      ["sensors-tokyo"] = "applied" }, progress)
    -- Exactly those requests: a re-read before writing to each existing group, a look
    -- for the name before the create, one create, one PUT of tags, the removed tag
    -- deleted, two namespaces put, one deleted.
    local counts = {}
    for api, counted in pairs(srv:stats().by_api) do counts[api] = counted.requests end
    assert.are.same({
      ["GET /v1/groups/{group_id}"] = 2,
      ["GET /v1/groups"] = 1,
      ["POST /v1/groups"] = 1,
      ["PUT /v1/groups/{group_id}/tags"] = 1,
      ["DELETE /v1/groups/{group_id}/tags/{tag_name}"] = 1,
      ["PUT /v1/groups/{group_id}/configuration/{namespace}"] = 2,
      ["DELETE /v1/groups/{group_id}/configuration/{namespace}"] = 1,
    }, counts)

    local group = by_name("sensors-tokyo")
    assert.are.same({ name = "sensors-tokyo", env = "staging", team = "iot" }, group.tags)
    assert.are.same({ enabled = true }, group.configuration.SoracomHarvest) -- unmanaged: left alone
    assert.is_nil(by_name("sensors-osaka").configuration.SoracomAir)
    assert.are.same({ SoracomAir = { metadata = { enabled = true, readonly = true } } },
      by_name("sensors-nagoya").configuration)

    p = compare(document)
    assert.is_true(plan.empty(p))
    assert.are.same({
      "# unmanaged group old-fleet (" .. ids["old-fleet"] .. ")",
      "# unmanaged namespace SoracomHarvest of group sensors-tokyo",
      "No changes.",
      "Unmanaged (left alone; --prune deletes named ones): 1 group, 1 namespace.",
    }, plan.render(p))
  end)

  it("with prune, deletes the groups and namespaces the document leaves out", function()
    seed()
    local document = assert(desired.export(client))
    table.remove(document.groups, 1) -- old-fleet
    document.groups[2].configuration.SoracomHarvest = nil
    local p = compare(document, { prune = true })
    assert.are.same({
      "- group old-fleet",
      "~ group sensors-tokyo",
      "  - namespace SoracomHarvest",
      "Plan: 0 to create, 1 to change, 1 to delete.",
    }, plan.render(p))
    assert.are.same({ applied = 2, skipped = {}, failed = {} }, apply.run(client, p))
    assert.is_nil(by_name("old-fleet"))
    assert.are.same({ "SoracomAir" }, (function()
      local names = {}
      for namespace in pairs(by_name("sensors-tokyo").configuration) do names[#names + 1] = namespace end
      return names
    end)())
    assert.is_true(plan.empty(compare(document, { prune = true })))
  end)

  it("never deletes a group without a name tag, even with prune", function()
    local id = assert(client:create_group { tags = { env = "lab" } }).groupId
    local document, unnamed = assert(desired.export(client))
    assert.are.same({ id }, unnamed)
    assert.are.same({}, document.groups)
    local p = compare(document, { prune = true })
    assert.are.same({ "# unmanaged group (no name tag) (" .. id .. ")", "No changes.",
      "Unmanaged (left alone): 1 group, 0 namespaces." }, plan.render(p))
  end)

  it("refuses two groups with one name in the document, naming where they are", function()
    local document, err = desired.check { groups = { { name = "a" }, { name = "b" }, { name = "a" },
      { name = "b" }, { name = "c" } } }
    assert.is_nil(document)
    assert.are.equal("several groups share one name in the document, so the name does not identify a group: "
      .. "a (groups[1], groups[3]); b (groups[2], groups[4])", err.message)
    local p
    p, err = plan.compare({ groups = { { name = "a" }, { name = "a" } } }, {})
    assert.is_nil(p)
    assert.are.equal("several groups share one name in the document, so the name does not identify a group: "
      .. "a (groups[1], groups[2])", err.message)
  end)

  it("refuses two groups with one name in the account, listing their ids", function()
    local first = assert(client:create_group { name = "twin" }).groupId
    local second = assert(client:create_group { name = "twin" }).groupId
    assert(client:create_group { name = "single" })
    local expected = "several groups share one name in the account, so the name does not identify a group: "
      .. "twin (" .. first .. ", " .. second .. ")"
    local document, err = desired.export(client)
    assert.is_nil(document)
    assert.are.equal(expected, err.message)
    local p
    p, err = plan.compare({ groups = { { name = "single" } } }, account())
    assert.is_nil(p)
    assert.are.equal(expected, err.message)
  end)

  it("names the place of each mistake in a document", function()
    local cases = {
      { { groups = { { name = "a" }, { name = "b" }, { name = "c", tags = { env = 1 } } } },
        "groups[3].tags.env must be a string (got number)" },
      { { groups = { { name = "" } } }, "groups[1].name must be a non-empty string (got a string)" },
      { { groups = { { tags = {} } } }, "groups[1].name must be a non-empty string (got nil)" },
      { { groups = { { name = "a", tags = { name = "b" } } } },
        "groups[1].tags.name is the group's name: give it as name, beside tags" },
      { { groups = { { name = "a", owner = "x" } } },
        'groups[1] has an unknown key "owner" (expected name, tags, configuration)' },
      { { groups = { { name = "a", configuration = { SoracomAir = true } } } },
        "groups[1].configuration.SoracomAir must be an object of settings, a built configuration or null "
          .. "(got boolean)" },
      { { groups = { { name = "a", configuration = { air = groups.config.harvest { enabled = true } } } } },
        "groups[1].configuration.SoracomAir was built for SoracomHarvest, not SoracomAir" },
      { { groups = { "a" } }, "groups[1] must be an object (got a string)" },
      { { groups = { { name = "a", configuration = { {} } } } },
        "groups[1].configuration must be an object of namespace -> settings or a list of built configurations "
          .. "(got a list)" },
      { { groups = { { name = "a", configuration = { groups.config.air {}, {} } } } },
        "groups[1].configuration[2] is not a built configuration" },
      { { groups = { name = "a" } }, "groups must be a list (got an object)" },
      { { groups = { { name = "a" }, x = 1 } }, "groups must be a list without other keys" },
      { { group = {} }, 'the document has an unknown key "group" (expected groups)' },
    }
    for _, case in ipairs(cases) do
      local document, err = desired.check(case[1])
      assert.is_nil(document)
      assert.are.equal(case[2], err.message)
    end
    local _, err = desired.check { groups = { { name = "a", configuration = { Air = {} } } } }
    assert.matches('^groups%[1%]%.configuration has an unknown namespace "Air" is not one of SoracomAir, ',
      err.message)
  end)

  it("loads JSON documents and says where a bad one is wrong", function()
    local dir = tempdir.new()
    local good, bad, broken = dir .. "/good.json", dir .. "/bad.json", dir .. "/broken.json"
    write(good, '{"groups": [{"name": "a", "tags": {"env": "prod"}, "configuration": '
      .. '{"SoracomAir": {"dnsServers": [], "metadata": {"enabled": true}}, "SoracomBeam": null}}]}')
    write(bad, '{"groups": [{"name": "a"}, {"name": "b", "tags": {"env": true}}]}')
    write(broken, '{"groups": [')
    local document = assert(desired.load(good))
    assert.are.equal('{"groups":[{"configuration":{"SoracomAir":{"dnsServers":[],"metadata":{"enabled":true}},'
      .. '"SoracomBeam":null},"name":"a","tags":{"env":"prod"}}]}', desired.encode_compact(document))
    local _, err = desired.load(bad)
    assert.are.equal(bad .. ": groups[2].tags.env must be a string (got boolean)", err.message)
    _, err = desired.load(broken)
    assert.matches("^" .. broken:gsub("%p", "%%%0") .. ": invalid JSON: ", err.message)
    _, err = desired.load(dir .. "/missing.json")
    assert.matches("missing%.json", err.message)
    tempdir.remove(dir)
  end)

  it("loads a Lua document written with the builders, and applies it", function()
    local dir = tempdir.new()
    local path = dir .. "/fleet.lua"
    write(path, [[
local groups = require "soracom.groups"
local config = groups.config
return { groups = {
  { name = "lua-built", tags = { env = "lab" },
    configuration = { config.air { metadata = { enabled = true }, custom_dns = { "1.1.1.1" } },
      config.harvest { enabled = true } } },
  { name = "lua-keyed", configuration = { air = config.air { userdata = "hello" }, SoracomFunk = groups.null } },
} }
]])
    local document = assert(desired.load(path))
    assert.are.equal('{"groups":[{"configuration":{"SoracomAir":{"dnsServers":["1.1.1.1"],'
      .. '"metadata":{"enabled":true},"useCustomDns":true},"SoracomHarvest":{"enabled":true}},'
      .. '"name":"lua-built","tags":{"env":"lab"}},{"configuration":{"SoracomAir":{"userdata":"hello"},'
      .. '"SoracomFunk":null},"name":"lua-keyed","tags":{}}]}', desired.encode_compact(document))
    local p = compare(document)
    assert.are.same({
      "+ create group lua-built",
      "  + tag env = lab",
      '  + SoracomAir.dnsServers = ["1.1.1.1"]',
      "  + SoracomAir.metadata.enabled = true",
      "  + SoracomAir.useCustomDns = true",
      "  + SoracomHarvest.enabled = true",
      "+ create group lua-keyed",
      '  + SoracomAir.userdata = "hello"',
      "Plan: 2 to create, 0 to change, 0 to delete.",
    }, plan.render(p))
    assert.are.same({ applied = 2, skipped = {}, failed = {} }, plan.apply(client, p))
    assert.is_true(plan.empty(compare(document)))
    local _, err = desired.load(dir .. "/missing.lua")
    assert.matches("missing%.lua", err.message)
    write(dir .. "/raises.lua", 'error("no fleet today", 0)')
    _, err = desired.load(dir .. "/raises.lua")
    assert.are.equal(dir .. "/raises.lua: no fleet today", err.message)
    tempdir.remove(dir)
  end)

  it("prints sensitive values as (sensitive), in text and in JSON", function()
    assert(client:create_group { name = "chap", tags = { api_token = "tag-secret-1" }, configuration = {
      SoracomAir = { authenticationRequired = true, username = "dev", password = "old-password-1" },
      SoracomEndorse = { enabled = true, tokenTimeoutSeconds = 60 },
    } })
    local document = assert(desired.export(client))
    local group = document.groups[1]
    group.tags.api_token = "tag-secret-2"
    group.configuration.SoracomAir.password = "new-password-2"
    group.configuration.SoracomEndorse.tokenTimeoutSeconds = 120
    group.configuration.SoracomBeam = { ["tcp://beam.soracom.io:8023"] = { enabled = true, psk = "psk-3",
      clientCerts = { default = { key = "key-4", cert = "cert" } } } }
    group.configuration.SoracomFlux = { targets = { { name = "t", password = "list-secret-5" } } }
    local p = compare(document)
    assert.are.same({
      "~ group chap",
      "  ~ tag api_token: (sensitive) -> (sensitive)",
      "  ~ SoracomAir.password: (sensitive) -> (sensitive)",
      '  + SoracomBeam["tcp://beam.soracom.io:8023"].clientCerts.default.cert = "cert"',
      '  + SoracomBeam["tcp://beam.soracom.io:8023"].clientCerts.default.key = (sensitive)',
      '  + SoracomBeam["tcp://beam.soracom.io:8023"].enabled = true',
      '  + SoracomBeam["tcp://beam.soracom.io:8023"].psk = (sensitive)',
      "  ~ SoracomEndorse.tokenTimeoutSeconds: 60 -> 120",
      '  + SoracomFlux.targets = [{"name":"t","password":"(sensitive)"}]',
      "Plan: 0 to create, 1 to change, 0 to delete.",
    }, plan.render(p))
    local json = plan.to_json(p)
    for _, secret in ipairs({ "tag-secret", "password-", "psk-3", "key-4", "list-secret" }) do
      assert.is_nil(json:find(secret, 1, true), secret)
    end
    assert.matches('"path": "SoracomAir.password",\n%s*"to": "%(sensitive%)"', json)
    assert.are.same({ applied = 1, skipped = {}, failed = {} }, apply.run(client, p))
    assert.are.equal("new-password-2", by_name("chap").configuration.SoracomAir.password)
  end)

  it("gives the plan as JSON", function()
    local id = assert(client:create_group { name = "a", tags = { env = "dev" } }).groupId
    local p = compare { groups = { { name = "a", tags = { env = "prod" },
      configuration = { SoracomHarvest = { enabled = true } } } } }
    assert.are.equal([[
{
  "changes": [
    {
      "action": "update",
      "groupId": "]] .. id .. [[",
      "name": "a",
      "namespaces": [
        {
          "diffs": [
            {
              "op": "add",
              "path": "SoracomHarvest.enabled",
              "to": true
            }
          ],
          "namespace": "SoracomHarvest",
          "op": "put"
        }
      ],
      "tags": [
        {
          "from": "dev",
          "name": "env",
          "op": "change",
          "to": "prod"
        }
      ]
    }
  ],
  "summary": {
    "change": 1,
    "create": 0,
    "delete": 0,
    "prune": false
  },
  "unmanaged": {
    "groups": [],
    "namespaces": []
  }
}
]], plan.to_json(p))
  end)

  it("skips a group changed between plan and apply, and applies the others", function()
    local ids = seed()
    local document = assert(desired.export(client))
    document.groups[2].tags.env = "staging" -- sensors-osaka
    document.groups[3].tags.env = "staging" -- sensors-tokyo
    local p = compare(document)
    assert(client:set_tag(ids["sensors-tokyo"], "owner", "someone-else"))
    local summary = apply.run(client, p)
    assert.are.equal(1, summary.applied)
    assert.are.same({}, summary.failed)
    assert.are.equal(1, #summary.skipped)
    assert.are.equal("sensors-tokyo", summary.skipped[1].name)
    assert.matches("^changed since the plan was made %(lastModifiedTime %d+ %-> %d+%); nothing was written to it$",
      summary.skipped[1].reason)
    assert.are.equal("prod", by_name("sensors-tokyo").tags.env)
    assert.are.equal("staging", by_name("sensors-osaka").tags.env)
    assert.are.same({
      "~ group sensors-tokyo",
      "  ~ tag env: prod -> staging",
      "  ~ tag owner: someone-else -> ops",
      "Plan: 0 to create, 1 to change, 0 to delete.",
    }, plan.render(compare(document)))
  end)

  it("skips a create when a group of that name was made since the plan", function()
    seed()
    local document = assert(desired.export(client))
    document.groups[4] = { name = "sensors-nagoya", tags = { env = "prod" } }
    document.groups[5] = { name = "sensors-sendai" }
    local p = compare(document)
    local other = assert(client:create_group { name = "sensors-nagoya", tags = { env = "dev" } }).groupId
    local summary = apply.run(client, p)
    assert.are.equal(1, summary.applied)
    assert.are.same({ { name = "sensors-nagoya", reason = "a group of that name (" .. other
      .. ") was created since the plan was made; nothing was written" } }, summary.skipped)
    assert.are.same({ "~ group sensors-nagoya", "  ~ tag env: dev -> prod",
      "Plan: 0 to create, 1 to change, 0 to delete." }, plan.render(compare(document)))
  end)

  it("reports a group that fails and applies the others", function()
    seed()
    local document = assert(desired.export(client))
    for _, group in ipairs(document.groups) do group.tags.batch = "b1" end
    local p = compare(document)
    -- One task, so the injected 400 answers the first group's re-read.
    srv:faults { { status = 400, body = { code = "FAK0400", message = "no writes today" } } }
    local summary = apply.run(client, p, { concurrency = 1 })
    assert.are.equal(2, summary.applied)
    assert.are.same({}, summary.skipped)
    assert.are.equal(1, #summary.failed)
    assert.are.equal("old-fleet", summary.failed[1].name)
    assert.are.equal(400, summary.failed[1].err.status)
    assert.matches("no writes today", tostring(summary.failed[1].err))
    assert.are.same({ "~ group old-fleet", "  + tag batch = b1", "Plan: 0 to create, 1 to change, 0 to delete." },
      plan.render(compare(document)))
    assert.are.same({ applied = 1, skipped = {}, failed = {} }, apply.run(client, compare(document)))
    assert.is_true(plan.empty(compare(document)))
  end)

  it("raises on wrong arguments before any request", function()
    assert.has_error(function() plan.compare({ groups = {} }, nil) end,
      "soracom.groups.plan: compare: account_groups must be a list of groups (got nil)")
    assert.has_error(function() plan.compare({ groups = {} }, {}, true) end,
      "soracom.groups.plan: compare: options must be a table (got boolean)")
    assert.has_error(function() apply.run(client, nil) end,
      "soracom.groups.apply: plan must be a plan from plan.compare (got nil)")
    assert.has_error(function() apply.run(client, { changes = {} }, { concurency = 2 }) end,
      'soracom.groups.apply: unknown option "concurency"')
  end)
end)
