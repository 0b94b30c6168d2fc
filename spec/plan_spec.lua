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

  it("exports the account as a sorted document, with its scope and ids, that plans to nothing", function()
    local ids = seed()
    local document = assert(desired.export(client))
    assert.are.equal([[
{
  "groups": [
    {
      "configuration": {},
      "groupId": "]] .. ids["old-fleet"] .. [[",
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
      "groupId": "]] .. ids["sensors-osaka"] .. [[",
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
      "groupId": "]] .. ids["sensors-tokyo"] .. [[",
      "name": "sensors-tokyo",
      "tags": {
        "env": "prod",
        "owner": "ops"
      }
    }
  ],
  "scope": "account"
}
]], desired.encode(document))
    local p = compare(document)
    assert.is_true(plan.empty(p))
    assert.are.same({ "# scope: the whole account", "No changes." }, plan.render(p))
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
    assert.are.same(lines_of(golden), plan.render(p, { show_unmanaged = true }))

    srv:clear_stats()
    local progress = {}
    local summary = apply.run(client, p, { concurrency = 4, on_progress = function(done, total, name, outcome)
      progress[#progress + 1] = done .. "/" .. total
      progress[name] = outcome
    end })
    assert.are.equal(3, summary.applied)
    assert.are.same({}, summary.skipped)
    assert.are.same({}, summary.failed)
    assert.are.same({ { name = "sensors-osaka", group_id = ids["sensors-osaka"] },
      { name = "sensors-tokyo", group_id = ids["sensors-tokyo"] } }, summary.changed)

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

    assert.are.equal("sensors-nagoya", summary.created[1].name)
    assert.are.equal(by_name("sensors-nagoya").groupId, summary.created[1].group_id)
    local group = by_name("sensors-tokyo")
    assert.are.same({ name = "sensors-tokyo", env = "staging", team = "iot" }, group.tags)
    assert.are.same({ enabled = true }, group.configuration.SoracomHarvest) -- unmanaged: left alone
    assert.is_nil(by_name("sensors-osaka").configuration.SoracomAir)
    assert.are.same({ SoracomAir = { metadata = { enabled = true, readonly = true } } },
      by_name("sensors-nagoya").configuration)

    p = compare(document)
    assert.is_true(plan.empty(p))
    assert.are.same({
      "# scope: the whole account",
      "# 1 group outside this file, unchanged (--prune deletes those within the scope); --show-unmanaged lists them",
      "# 1 namespace of listed groups outside this file, unchanged (--prune-namespaces deletes them); "
        .. "--show-unmanaged lists them",
      "No changes.",
    }, plan.render(p))
  end)

  it("with prune, deletes the groups the document leaves out; with prune_namespaces, its namespaces", function()
    local ids = seed()
    local document = assert(desired.export(client))
    table.remove(document.groups, 1) -- old-fleet
    document.groups[2].configuration.SoracomHarvest = nil
    local p = compare(document, { prune = true, prune_namespaces = true })
    assert.are.same({
      "# scope: the whole account",
      "- delete group old-fleet (" .. ids["old-fleet"] .. ")",
      "    tags: name = old-fleet",
      "    namespaces: none",
      "    SIMs: not counted",
      "~ group sensors-tokyo",
      "  - namespace SoracomHarvest",
      "  - SoracomHarvest.enabled (was true)",
      "Plan: 0 to create, 1 to change, 1 to delete.",
    }, plan.render(p))
    local summary = apply.run(client, p)
    assert.are.equal(2, summary.applied)
    assert.are.same({ { name = "old-fleet", group_id = ids["old-fleet"] } }, summary.deleted)
    assert.is_nil(by_name("old-fleet"))
    assert.are.same({ "SoracomAir" }, (function()
      local names = {}
      for namespace in pairs(by_name("sensors-tokyo").configuration) do names[#names + 1] = namespace end
      return names
    end)())
    assert.is_true(plan.empty(compare(document, { prune = true, prune_namespaces = true })))
  end)

  it("prunes no namespace with prune alone, and no group without a scope", function()
    seed()
    local document = assert(desired.export(client))
    document.groups[3].configuration.SoracomHarvest = nil
    local p = compare(document, { prune = true })
    assert.is_true(plan.empty(p))
    assert.are.same({ { name = "sensors-tokyo", group_id = document.groups[3].groupId,
      namespace = "SoracomHarvest" } }, p.unmanaged.namespaces)
    document.scope = nil
    local refused, err = plan.compare(document, account(), { prune = true })
    assert.is_nil(refused)
    assert.matches('add "scope": "account"', err.message, 1, true)
  end)

  it("never deletes a group without a name tag, even with prune", function()
    local id = assert(client:create_group { tags = { env = "lab" } }).groupId
    local document, unnamed = assert(desired.export(client))
    assert.are.same({ id }, unnamed)
    assert.are.same({}, document.groups)
    local p = compare(document, { prune = true })
    assert.are.same({ "# scope: the whole account",
      "# 1 group without a name tag, left alone (a document lists groups by name)", "No changes." }, plan.render(p))
    assert.are.same({ id }, p.unnamed)
  end)

  it("refuses two groups with one name in the document, naming where they are", function()
    local document, err = desired.check { groups = { { name = "a" }, { name = "b" }, { name = "a" },
      { name = "b" }, { name = "c" } } }
    assert.is_nil(document)
    assert.are.equal('groups[3] has the name of groups[1] ("a"), and neither says its groupId: '
      .. "the name cannot identify both", err.message)
    local p
    p, err = plan.compare({ groups = { { name = "a" }, { name = "a" } } }, {})
    assert.is_nil(p)
    assert.are.equal('groups[2] has the name of groups[1] ("a"), and neither says its groupId: '
      .. "the name cannot identify both", err.message)
    -- with their ids, two entries of one name are two groups
    assert.is_table(desired.check { groups = { { name = "a", groupId = "id-1" }, { name = "a", groupId = "id-2" } } })
    p, err = desired.check { groups = { { name = "a", groupId = "id-1" }, { name = "b", groupId = "id-1" } } }
    assert.is_nil(p)
    assert.are.equal("groups[2] has the groupId of groups[1]: one group, two entries", err.message)
  end)

  it("refuses only an entry matched by a name that two account groups share, listing their ids", function()
    local first = assert(client:create_group { name = "twin" }).groupId
    local second = assert(client:create_group { name = "twin" }).groupId
    assert(client:create_group { name = "single" })
    local document = assert(desired.export(client)) -- each entry has its id: nothing is ambiguous
    assert.is_true(plan.empty(compare(document)))
    assert.is_true(plan.empty(compare { groups = { { name = "single" } } }))
    local ids = { first, second }
    table.sort(ids)
    local p, err = plan.compare({ groups = { { name = "twin", tags = { env = "x" } } } }, account())
    assert.is_nil(p)
    assert.are.equal('groups[1] ("twin") names 2 groups of the account (' .. ids[1] .. ", " .. ids[2]
      .. "): give it the groupId of the one it is", err.message)
    -- the one with the id is claimed, so the name matches the other alone
    p = compare { groups = { { name = "twin", groupId = first }, { name = "twin", tags = { env = "x" } } } }
    assert.are.equal(1, #p.changes)
    assert.are.equal(second, p.changes[1].group_id)
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
        'groups[1] has an unknown key "owner" (expected groupId, name, tags, configuration, sims)' },
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
      { { group = {} }, 'the document has an unknown key "group" (expected scope, groups)' },
      { { scope = "everything", groups = {} },
        'scope must be "account" or {"tagName": ..., "tagValue": ..., "tagValueMatchMode": "exact" | "prefix"} '
          .. "(got a string)" },
      { { scope = { tagName = "env" }, groups = {} }, "scope.tagValue must be a string (got nil)" },
      { { scope = { tagName = "env", tagValue = "prod" }, groups = { { name = "a", tags = { env = "dev" } } } },
        'groups[1] ("a") is outside the document\'s scope, groups whose tag "env" is "prod": give it that tag, '
          .. "or change the scope" },
      { { groups = { { name = "a", groupId = 7 } } }, "groups[1].groupId must be a non-empty string (got number)" },
      { { groups = { { name = "a", configuration = { SoracomAir = { password = { ["$env"] = "A B" } } } } } },
        'groups[1].configuration.SoracomAir.password must be a secret reference {"$env": "NAME"} alone, '
          .. "NAME a variable name" },
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
      .. '"SoracomBeam":null},"name":"a","tags":{"env":"prod"}}]}', desired.encode_compact { groups = document.groups })
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
      .. '"SoracomFunk":null},"name":"lua-keyed","tags":{}}]}', desired.encode_compact { groups = document.groups })
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
    assert.are.equal(2, plan.apply(client, p).applied)
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
      "# scope: the whole account",
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
    assert.matches('"path": "SoracomAir.password",\n%s*"sensitive": true,\n%s*"to": "%(sensitive%)"', json)
    assert.are.equal(1, apply.run(client, p).applied)
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
  "fleet": [],
  "summary": {
    "allowSimsFromOutsideScope": false,
    "change": 1,
    "create": 0,
    "delete": 0,
    "prune": false,
    "pruneNamespaces": false,
    "pruneSims": false,
    "simsIn": 0,
    "simsOut": 0
  },
  "unmanaged": {
    "groups": [],
    "namespaces": [],
    "sims": []
  },
  "unnamed": [],
  "warnings": []
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
      "# scope: the whole account",
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
    assert.are.same({ "# scope: the whole account", "~ group sensors-nagoya", "  ~ tag env: dev -> prod",
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
    assert.are.same({ "# scope: the whole account", "~ group old-fleet", "  + tag batch = b1",
      "Plan: 0 to create, 1 to change, 0 to delete." }, plan.render(compare(document)))
    local again = apply.run(client, compare(document))
    assert.are.same({ 1, 0, 0 }, { again.applied, #again.skipped, #again.failed })
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
