-- Issue 21: groups as code trusted with a real account. Each case is an attack an
-- operator of a real account could make by mistake (a tag-scoped file, a rename, a
-- delete of a group with SIMs, a secret in a setting, a stale saved plan, hostile tag
-- values), run through bin/soracom-groups against the fake over real HTTP.
local fake = require "spec.support.fake_server"
local command = require "spec.support.command"
local tempdir = require "spec.support.tempdir"
local core = require "soracom.groups.core"

local slurp, write_file, quote = command.slurp, command.write_file, command.quote

describe("groups as code", function()
  local srv, dir

  setup(function()
    srv = fake.start()
    dir = tempdir.new()
  end)
  teardown(function()
    srv:stop()
    tempdir.remove(dir)
  end)
  before_each(function() srv:reset() end)

  local function run(args, opts) return command.against(srv, args, opts) end

  local function create(body)
    local code, out, err = run({ "create", "--body", core.encode_json(body) })
    assert(code == 0, err)
    return fake.decode(out).groupId
  end

  local function get(id)
    local code, out = run { "get", "--group-id", id }
    if code ~= 0 then return nil end
    return fake.decode(out)
  end

  -- The recorded requests of a method whose path matches pattern, each with its path
  -- and query apart.
  local function requests_of(method, pattern)
    local found = {}
    for _, request in ipairs(srv:requests()) do
      request.path, request.query = request.uri:match("^([^?]*)%??(.*)$")
      if request.method == method and request.path:find(pattern) then found[#found + 1] = request end
    end
    return found
  end

  local function has(text, piece)
    assert.truthy(text:find(piece, 1, true), "expected to find:\n" .. piece .. "\nin:\n" .. text)
  end

  local function lacks(text, piece)
    assert.falsy(text:find(piece, 1, true), "did not expect:\n" .. piece .. "\nin:\n" .. text)
  end

  local function document(value) return core.encode_json(value) end

  -- A prod fleet and a staging fleet, each group named.
  local function two_fleets(n)
    local ids = { prod = {}, staging = {} }
    for i = 1, n do
      ids.prod[i] = create { tags = { name = "prod-" .. i, env = "prod" } }
      ids.staging[i] = create { tags = { name = "staging-" .. i, env = "staging" } }
    end
    return ids
  end

  describe("scope (item 1)", function()
    it("exports the selector as the scope, and --prune never reaches outside it", function()
      two_fleets(3)
      local file = dir .. "/prod.json"
      local code, _, err = run { "export", "--tag-name", "env", "--tag-value", "prod", "-o", file }
      assert.are.equal(0, code, err)
      local doc = fake.decode(slurp(file))
      assert.are.same({ tagName = "env", tagValue = "prod", tagValueMatchMode = "exact" }, doc.scope)
      assert.are.equal(3, #doc.groups)

      srv:clear_requests()
      local out
      code, out, err = run { "plan", "--prune", file }
      assert.are.equal(0, code, out .. err)
      has(out, "No changes.")
      lacks(out, "staging")
      -- listed with the server's filter, not the whole account
      local lists = requests_of("GET", "^/v1/groups$")
      assert.is_true(#lists >= 1)
      for _, request in ipairs(lists) do has(request.query or "", "tag_name=env") end

      table.remove(doc.groups, 2)
      write_file(file, document(doc))
      code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code, out)
      has(out, "- delete group prod-2 (")
      has(out, "Plan: 0 to create, 0 to change, 1 to delete.")
      lacks(out, "staging")
    end)

    it("refuses --prune on a file without a scope, saying how to add one", function()
      two_fleets(2)
      local file = dir .. "/hand.json"
      write_file(file, document { groups = { { name = "prod-1", tags = { env = "prod" } } } })
      local code, out, err = run { "plan", "--prune", file }
      assert.are.equal(1, code, out)
      has(err, '"scope"')
      has(err, "export writes one")
      lacks(out, "delete")
      code = run { "plan", file } -- without --prune a scope-less file still plans
      assert.are.equal(0, code)
    end)

    it("refuses an entry whose tags put it outside the document's scope", function()
      local file = dir .. "/outside.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { name = "lab-1", tags = { env = "lab" } } } })
      local code, _, err = run { "plan", file }
      assert.are.equal(1, code)
      has(err, "groups[1]")
      has(err, "outside the document's scope")
    end)

    it("covers the groups a prefix selects, and only those", function()
      create { tags = { name = "sensors-a", env = "prod" } }
      create { tags = { name = "sensors-b", env = "prod" } }
      create { tags = { name = "other-c", env = "prod" } }
      local file = dir .. "/sensors.json"
      local code, _, err = run { "export", "--tag-name", "name", "--tag-value", "sensors-",
        "--tag-value-match-mode", "prefix", "-o", file }
      assert.are.equal(0, code, err)
      local doc = fake.decode(slurp(file))
      assert.are.equal(2, #doc.groups)
      doc.groups = { doc.groups[1] }
      write_file(file, document(doc))
      local out
      code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code, out)
      has(out, "- delete group sensors-b")
      lacks(out, "other-c")
    end)
  end)

  describe("identity (item 3)", function()
    it("plans a rename as a tag change of the same group, keeping its id and SIMs", function()
      local id = create { tags = { name = "old-name", env = "prod" } }
      srv:seed_subscribers(id, 2)
      local file = dir .. "/rename.json"
      assert.are.equal(0, (run { "export", "--tag-name", "env", "--tag-value", "prod", "-o", file }))
      local doc = fake.decode(slurp(file))
      assert.are.equal(id, doc.groups[1].groupId)
      doc.groups[1].name = "new-name"
      write_file(file, document(doc))
      local code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code, out)
      has(out, "~ group new-name (renamed from old-name, " .. id .. ")")
      has(out, "  ~ tag name: old-name -> new-name")
      has(out, "Plan: 0 to create, 1 to change, 0 to delete.")
      code, out = run { "apply", "--prune", "--yes", file }
      assert.are.equal(0, code, out)
      assert.are.equal("new-name", get(id).tags.name)
      local _, sims = run { "list-subscribers", "--group-id", id }
      assert.are.equal(2, #fake.decode(sims))
    end)

    it("finds by id a group whose tags left the scope, and brings it back", function()
      local id = create { tags = { name = "wanderer", env = "prod" } }
      local file = dir .. "/wander.json"
      assert.are.equal(0, (run { "export", "--tag-name", "env", "--tag-value", "prod", "-o", file }))
      assert.are.equal(0, (run { "put-tags", "--group-id", id, "--body", '[{"tagName":"env","tagValue":"lab"}]' }))
      local code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code, out)
      has(out, "~ group wanderer")
      has(out, "  ~ tag env: lab -> prod")
      has(out, "Plan: 0 to create, 1 to change, 0 to delete.")
      code, out = run { "apply", "--prune", "--yes", file }
      assert.are.equal(0, code, out)
      assert.are.equal("prod", get(id).tags.env)
    end)

    it("makes anew a group whose id the account no longer knows, and says so", function()
      local file = dir .. "/gone.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { {
        groupId = "00000000-0000-4000-8000-00000000dead", name = "gone", tags = { env = "prod" } } } })
      local code, out = run { "plan", file }
      assert.are.equal(2, code, out)
      has(out, "+ create group gone (its groupId 00000000-0000-4000-8000-00000000dead is not in the account")
    end)

    it("is not blocked by duplicate names outside the scope or among groups matched by id", function()
      create { tags = { name = "twin", env = "staging" } }
      create { tags = { name = "twin", env = "staging" } }
      create { tags = { name = "same", env = "prod" } }
      create { tags = { name = "same", env = "prod" } }
      local file = dir .. "/ids.json"
      local code, _, err = run { "export", "--tag-name", "env", "--tag-value", "prod", "-o", file }
      assert.are.equal(0, code, err)
      local out
      code, out, err = run { "plan", "--prune", file }
      assert.are.equal(0, code, out .. err)
      has(out, "No changes.")
    end)

    it("refuses a name-matched entry that two groups answer to, naming both ids", function()
      local a = create { tags = { name = "twin", env = "prod" } }
      local b = create { tags = { name = "twin", env = "prod" } }
      local file = dir .. "/ambiguous.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { name = "twin", tags = { env = "prod", owner = "ops" } } } })
      local code, out, err = run { "plan", file }
      assert.are.equal(1, code, out)
      has(err, a)
      has(err, b)
      has(err, "groupId")
    end)
  end)

  describe("guarded deletes (item 4)", function()
    it("shows what a delete destroys, and refuses a group holding SIMs unless allowed", function()
      local keep = create { tags = { name = "keep", env = "prod" } }
      local doomed = create { tags = { name = "doomed", env = "prod", owner = "ops" },
        configuration = { SoracomAir = { { key = "useCustomDns", value = true } },
          SoracomHarvest = { { key = "enabled", value = true } } } }
      srv:seed_subscribers(doomed, 3)
      local file = dir .. "/keep.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = keep, name = "keep", tags = { env = "prod" } } } })
      local code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code, out)
      has(out, "- delete group doomed (" .. doomed .. ")")
      has(out, "    tags: env = prod, name = doomed, owner = ops")
      has(out, "    namespaces: SoracomAir, SoracomHarvest")
      has(out, "    SIMs: 3")

      local err
      code, out, err = run { "apply", "--prune", "--yes", file }
      assert.are.equal(1, code, out)
      has(err, "hold SIMs")
      has(err, "--allow-delete-with-sims")
      assert.is_table(get(doomed))
      assert.are.equal(0, #requests_of("DELETE", "^/v1/groups/"))

      code, out = run { "apply", "--prune", "--yes", "--allow-delete-with-sims", file }
      assert.are.equal(0, code, out)
      assert.is_nil(get(doomed))
    end)

    it("counts SIMs past a page or two as 'at least'", function()
      local keep = create { tags = { name = "keep", env = "prod" } }
      local big = create { tags = { name = "big", env = "prod" } }
      srv:seed_subscribers(big, 250)
      local file = dir .. "/big.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = keep, name = "keep", tags = { env = "prod" } } } })
      local code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code, out)
      assert.truthy(out:match("    SIMs: at least %d+") or out:find("    SIMs: 250", 1, true), out)
    end)

    it("skips a delete when the group gained SIMs after the plan was saved", function()
      local keep = create { tags = { name = "keep", env = "prod" } }
      local empty = create { tags = { name = "empty", env = "prod" } }
      local file, saved = dir .. "/gain.json", dir .. "/gain.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = keep, name = "keep", tags = { env = "prod" } } } })
      local code, out = run { "plan", "--prune", file, "-o", saved }
      assert.are.equal(2, code, out)
      has(out, "    SIMs: none")
      srv:seed_subscribers(empty, 1)
      code, out = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(out, "skipped empty: it holds 1 SIM(s)")
      assert.is_table(get(empty))
    end)

    it("refuses more deletes than --max-deletes (10 by default), before anything changes", function()
      local ids = srv:seed_groups(12, { env = "prod" })
      for i, id in ipairs(ids) do
        assert.are.equal(0, (run { "put-tags", "--group-id", id, "--body",
          core.encode_json { { tagName = "name", tagValue = "bulk-" .. i } } }))
      end
      local file = dir .. "/none.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = {} })
      local code, out, err = run { "apply", "--prune", "--yes", file }
      assert.are.equal(1, code, out)
      has(err, "deletes 12 groups, more than max_deletes (10")
      assert.are.equal(0, #requests_of("DELETE", "^/v1/groups/"))
      code, out = run { "apply", "--prune", "--yes", "--max-deletes", "12", file }
      assert.are.equal(0, code, out)
      assert.are.equal(12, #requests_of("DELETE", "^/v1/groups/"))
    end)

    it("prunes namespaces only with --prune-namespaces, showing what they held", function()
      local id = create { tags = { name = "ns", env = "prod" }, configuration = {
        SoracomAir = { { key = "useCustomDns", value = true } },
        SoracomHarvest = { { key = "enabled", value = true } } } }
      local file = dir .. "/ns.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { { groupId = id,
        name = "ns", tags = { env = "prod" }, configuration = { SoracomAir = { useCustomDns = true } } } } })
      local code, out = run { "plan", "--prune", file }
      assert.are.equal(0, code, out)
      has(out, "1 namespace of listed groups outside this file, unchanged")
      code, out = run { "plan", "--prune-namespaces", file }
      assert.are.equal(2, code, out)
      has(out, "  - namespace SoracomHarvest")
      has(out, "  - SoracomHarvest.enabled (was true)")
    end)
  end)

  describe("export's file (item 5)", function()
    it("exits 1 when the file or stdout cannot be written, and leaves no partial file", function()
      create { tags = { name = "a" } }
      local code, _, err = run { "export", "-o", "/dev/full" }
      assert.are.equal(1, code)
      has(err, "/dev/full")
      local status = os.execute(command.LUA .. " bin/soracom-groups --endpoint " .. quote(srv.endpoint)
        .. " --api-key " .. quote(srv.api_key) .. " --api-token " .. quote(srv.token)
        .. " export > /dev/full 2>/dev/null")
      assert.is_true(status ~= true and status ~= 0)
      local target = dir .. "/a-directory"
      os.execute("mkdir -p " .. quote(target))
      code = run { "export", "-o", target }
      assert.are.equal(1, code)
      local pipe = io.popen("ls -a " .. quote(dir) .. " | grep -c '^a-directory\\.' ")
      assert.are.equal("0", pipe:read("*a"):match("%d+"))
      pipe:close()
    end)

    it("creates the file 0600, even over a file others could read", function()
      create { tags = { name = "a" } }
      local file = dir .. "/private.json"
      write_file(file, "old")
      os.execute("chmod 644 " .. quote(file))
      assert.are.equal(0, (run { "export", "-o", file }))
      local pipe = io.popen("stat -c %a " .. quote(file))
      assert.are.equal("600", pipe:read("*a"):match("%d+"))
      pipe:close()
      has(slurp(file), '"name": "a"')
    end)
  end)


  describe("secrets (items 6 and 7)", function()
    local SECRETS = { "Bearer tok-secret-1", "air-pass-secret-2", "url-pass-secret-3", "sas-key-secret-4",
      "psk-secret-5" }

    -- A group holding a secret in every place the issue names, and a document changing
    -- each of them.
    local function secret_group()
      local beam = { ["tcp://beam.soracom.io:8023"] = { enabled = true, destination = "https://u:old@example.com/x",
        psk = "old-psk", customHeaders = { auth = { action = "append", headerKey = "Authorization",
          headerValue = "Bearer old" } } } }
      local id = create { tags = { name = "secretive", env = "prod" }, configuration = {
        SoracomAir = { { key = "password", value = "old-pass" }, { key = "username", value = "dev" } },
        SoracomBeam = { { key = "tcp://beam.soracom.io:8023", value = beam["tcp://beam.soracom.io:8023"] } },
        SoracomFunnel = { { key = "credentialsId", value = "my-cred" }, { key = "destination", value = {
          provider = "azure", service = "eventhubs", resourceUrl = "sb://old.example.net/hub;SharedAccessKey=old" } } },
      } }
      local wanted = { scope = { tagName = "env", tagValue = "prod" }, groups = { { groupId = id,
        name = "secretive", tags = { env = "prod" }, configuration = {
          SoracomAir = { password = SECRETS[2], username = "dev" },
          SoracomBeam = { ["tcp://beam.soracom.io:8023"] = { enabled = true,
            destination = "https://u:" .. SECRETS[3] .. "@example.com/x", psk = SECRETS[5],
            customHeaders = { auth = { action = "append", headerKey = "X-Authorization",
              headerValue = SECRETS[1] } } } },
          SoracomFunnel = { credentialsId = "new-cred", destination = { provider = "azure", service = "eventhubs",
            resourceUrl = "sb://new.example.net/hub;SharedAccessKey=" .. SECRETS[4] } },
        } } } }
      return id, wanted
    end

    local function assert_no_secret(text, where)
      for _, secret in ipairs(SECRETS) do
        assert.falsy(text:find(secret, 1, true), secret .. " appears in " .. where .. ":\n" .. text)
      end
    end

    it("prints no secret in plan, plan --json, a saved plan or apply, and shows what is not one", function()
      local _, wanted = secret_group()
      local file, saved = dir .. "/secret.json", dir .. "/secret.plan"
      write_file(file, document(wanted))
      local code, out, err = run { "plan", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      assert_no_secret(out .. err, "plan")
      has(out, '.headerKey: "Authorization" -> "X-Authorization"') -- a header's name is no secret
      has(out, 'SoracomFunnel.credentialsId: "my-cred" -> "new-cred"') -- a reference is none either
      has(out, '.destination: "https://u:***@example.com/x" -> "https://u:***@example.com/x" (a hidden part changes)')
      has(out, "sb://new.example.net/hub") -- the host of a masked URL stays readable
      has(out, "https://u:***@example.com/x")
      assert_no_secret(slurp(saved), "the saved plan")
      code, out, err = run { "plan", "--json", file }
      assert.are.equal(2, code)
      assert_no_secret(out .. err, "plan --json")
      code, out, err = run { "apply", "--yes", file }
      assert.are.equal(0, code, out .. err)
      assert_no_secret(out .. err, "apply")
      code, out, err = run { "apply", "--json", "--yes", file }
      assert.are.equal(0, code, out .. err)
      assert_no_secret(out .. err, "apply --json")
    end)

    it("reads a secret reference from the environment, compares it unseen, and names a missing one", function()
      local id = create { tags = { name = "ref", env = "prod" }, configuration = {
        SoracomAir = { { key = "password", value = "current-pass" } } } }
      local file = dir .. "/ref.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { { groupId = id,
        name = "ref", tags = { env = "prod" },
        configuration = { SoracomAir = { password = { ["$env"] = "AIR_PW" } } } } } })
      local code, out, err = run({ "plan", file }, { env = "env -u AIR_PW" })
      assert.are.equal(1, code, out)
      has(err, "AIR_PW")
      has(err, "groups[1].configuration.SoracomAir.password")
      code, out = run({ "plan", file }, { env = "AIR_PW=current-pass" })
      assert.are.equal(0, code, out)
      code, out = run({ "plan", file }, { env = "AIR_PW=rotated-pass" })
      assert.are.equal(2, code, out)
      has(out, "~ SoracomAir.password: (sensitive) -> (from $AIR_PW)")
      lacks(out, "rotated-pass")
      code, out = run({ "apply", "--yes", file }, { env = "AIR_PW=rotated-pass" })
      assert.are.equal(0, code, out)
      assert.are.equal("rotated-pass", get(id).configuration.SoracomAir.password)
    end)

    it("exports secrets as references and lists the variables to set", function()
      secret_group()
      local file = dir .. "/refs.json"
      local code, out, err = run { "export", "--secrets-as-env", "SG", "-o", file }
      assert.are.equal(0, code, out .. err)
      local text = slurp(file)
      for _, old in ipairs { "old-pass", "old-psk", "Bearer old" } do lacks(text, old) end
      local doc = fake.decode(text)
      local air = doc.groups[1].configuration.SoracomAir
      assert.are.equal("SG_SECRETIVE_SORACOMAIR_PASSWORD", air.password["$env"])
      assert.are.equal("dev", air.username)
      has(err, "SG_SECRETIVE_SORACOMAIR_PASSWORD")
      assert.are.equal("my-cred", doc.groups[1].configuration.SoracomFunnel.credentialsId)
      assert.are.equal("SG_SECRETIVE_SORACOMFUNNEL_DESTINATION_RESOURCEURL",
        doc.groups[1].configuration.SoracomFunnel.destination.resourceUrl["$env"])
      assert.are.equal("SG_SECRETIVE_SORACOMBEAM_TCP_BEAM_SORACOM_IO_8023_PSK",
        doc.groups[1].configuration.SoracomBeam["tcp://beam.soracom.io:8023"].psk["$env"])
    end)
  end)

  describe("saved plans (item 8)", function()
    it("applies exactly the saved plan, without planning again", function()
      local id = create { tags = { name = "saved", env = "prod" } }
      local file, saved = dir .. "/saved.json", dir .. "/saved.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = id, name = "saved", tags = { env = "prod", owner = "ops" } } } })
      local code, out = run { "plan", file, "-o", saved }
      assert.are.equal(2, code, out)
      -- the document changes after the plan: the saved plan is still what applies
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = id, name = "saved", tags = { env = "prod", owner = "someone-else" } } } })
      srv:clear_requests()
      code, out = run { "apply", "--yes", saved }
      assert.are.equal(0, code, out)
      has(out, "+ tag owner = ops")
      assert.are.equal("ops", get(id).tags.owner)
      assert.are.equal(0, #requests_of("GET", "^/v1/groups$")) -- no listing: no new plan
    end)

    it("keeps a tag whose name says secret out of the plan file, and applies it from the document", function()
      local id = create { tags = { name = "tagged", env = "prod" } }
      local file, saved = dir .. "/tagged.json", dir .. "/tagged.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = id, name = "tagged", tags = { env = "prod", api_token = "tag-secret-77" } },
        { name = "fresh-tagged", tags = { env = "prod", api_token = "tag-secret-78", team = "iot" } } } })
      local code, out = run { "plan", file, "-o", saved }
      assert.are.equal(2, code, out)
      lacks(out, "tag-secret-7")
      lacks(slurp(saved), "tag-secret-7")
      code, out = run { "apply", "--yes", saved }
      assert.are.equal(0, code, out)
      lacks(out, "tag-secret-7")
      assert.are.equal("tag-secret-77", get(id).tags.api_token)
      code, out = run { "plan", file }
      assert.are.equal(0, code, out)
    end)

    it("refuses a plan file edited into something else, and prune flags beside one, sending nothing", function()
      local id = create { tags = { name = "edited", env = "prod" } }
      local file, saved = dir .. "/edited.json", dir .. "/edited.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = id, name = "edited", tags = { env = "prod", owner = "ops" } } } })
      assert.are.equal(2, (run { "plan", file, "-o", saved }))
      local plan_text = slurp(saved)
      local broken = fake.decode(plan_text)
      broken.changes[1].namespaces = { { op = "put", namespace = "SoracomAir", diffs = { { op = "add" } } } }
      write_file(saved, document(broken))
      srv:clear_requests()
      local code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "has a difference that is not one")
      lacks(err, "traceback")
      write_file(saved, plan_text)
      code, out, err = run { "apply", "--prune", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "a saved plan is applied as it was made")
      assert.are.equal(0, #requests_of("PUT", "^/v1/groups/"))
    end)

    it("refuses a group changed since the plan", function()
      local id = create { tags = { name = "moving", env = "prod" } }
      local file, saved = dir .. "/moving.json", dir .. "/moving.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = id, name = "moving", tags = { env = "prod", owner = "ops" } } } })
      assert.are.equal(2, (run { "plan", file, "-o", saved }))
      os.execute("sleep 0.01")
      assert.are.equal(0, (run { "put-tags", "--group-id", id, "--body", '[{"tagName":"x","tagValue":"y"}]' }))
      local code, out = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(out, "skipped moving: changed since the plan was made")
      assert.is_nil(get(id).tags.owner)
    end)

    it("takes a literal secret from the document it names, and refuses one changed since", function()
      local id = create { tags = { name = "lit", env = "prod" } }
      local file, saved = dir .. "/lit.json", dir .. "/lit.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { { groupId = id,
        name = "lit", tags = { env = "prod" }, configuration = { SoracomAir = { password = "lit-secret-9" } } } } })
      assert.are.equal(2, (run { "plan", file, "-o", saved }))
      lacks(slurp(saved), "lit-secret-9")
      local document_text = slurp(file)
      write_file(file, document_text .. " ")
      local code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "changed since the plan was made")
      write_file(file, document_text)
      code, out = run { "apply", "--yes", saved }
      assert.are.equal(0, code, out .. err)
      assert.are.equal("lit-secret-9", get(id).configuration.SoracomAir.password)
    end)
  end)

  describe("exit codes and usage (items 9 and 14)", function()
    it("exits 1 for usage errors of export, plan and apply, before anything is sent", function()
      srv:clear_requests()
      local code, _, err = run { "export", "--tag-name", "name" }
      assert.are.equal(1, code)
      local out
      has(err, "--tag-name needs --tag-value")
      lacks(err, "traceback")
      code, out, err = run { "apply", "--concurrency", "5000", "--yes", dir .. "/whatever.json" }
      assert.are.equal(1, code)
      assert.are.equal("", out)
      has(err, "--concurrency")
      lacks(err, "traceback")
      code = run { "plan", "--no-such-flag", dir .. "/x.json" }
      assert.are.equal(1, code)
      code = run { "apply", "--max-deletes", "-1", dir .. "/x.json" }
      assert.are.equal(1, code)
      assert.are.equal(0, #srv:requests())
      code = run { "apply", dir .. "/x.json" } -- no such file: an error, 1
      assert.are.equal(1, code)
    end)
  end)

  describe("a plan a person can read (items 10 and 11)", function()
    it("escapes control characters, newlines and ESC in tags and settings", function()
      local file = dir .. "/forge.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { {
        name = "forge", tags = { env = "prod", note = "x\nNo changes.\n\27[2Jhidden" },
        configuration = { SoracomAir = { userdata = "a\27]0;title\7b" } } } } })
      local code, out = run { "plan", file }
      assert.are.equal(2, code, out)
      lacks(out, "\27")
      lacks(out, "\nNo changes.")
      has(out, "  + tag note = x\\nNo changes.\\n\\x1b[2Jhidden")
    end)

    it("summarises groups outside the file and unnamed groups in a line each", function()
      srv:seed_groups(40, { env = "prod" }) -- no name tag
      for i = 1, 30 do create { tags = { name = "other-" .. i, env = "prod" } } end
      local id = create { tags = { name = "mine", env = "prod" } }
      local file = dir .. "/one.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" },
        groups = { { groupId = id, name = "mine", tags = { env = "prod", owner = "me" } } } })
      local code, out = run { "plan", file }
      assert.are.equal(2, code, out)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.is_true(#lines <= 8, out)
      has(out, "# 30 groups outside this file, unchanged")
      has(out, "# 40 groups without a name tag, left alone")
      code, out = run { "plan", "--show-unmanaged", file }
      assert.are.equal(2, code)
      has(out, "# unmanaged group other-17")
    end)

    it("sums up identical changes across the fleet, and apply --json gives ids and outcomes", function()
      local file = dir .. "/fleet.json"
      local doc = { scope = { tagName = "env", tagValue = "prod" }, groups = {} }
      for i = 1, 5 do
        local id = create { tags = { name = "fleet-" .. i, env = "prod", owner = "ops" } }
        doc.groups[i] = { groupId = id, name = "fleet-" .. i, tags = { env = "prod", team = "iot" } }
      end
      doc.groups[6] = { name = "fresh", tags = { env = "prod" } }
      write_file(file, document(doc))
      local code, out = run { "plan", file }
      assert.are.equal(2, code, out)
      has(out, "  5 groups: - tag owner (was ops), + tag team = iot")
      local err
      code, out, err = run { "apply", "--json", "--yes", file }
      assert.are.equal(0, code, out .. err)
      local result = fake.decode(out)
      assert.are.equal(1, #result.created)
      assert.are.equal("fresh", result.created[1].name)
      assert.are.equal("fresh", get(result.created[1].groupId).tags.name)
      assert.are.equal(5, #result.changed)
      assert.are.same({ applied = 6, skipped = 0, failed = 0 }, result.summary)
      has(err, "+ create group fresh") -- the plan went to stderr
    end)
  end)

  describe("documents checked like the builders check Lua (items 12 and 13)", function()
    local function plan_of(text, name)
      local file = dir .. "/" .. (name or "doc.json")
      write_file(file, text)
      return run { "plan", file }
    end

    it("refuses a wrong type and a near-miss key, and passes an unknown key with a warning", function()
      local code, _, err = plan_of(document { groups = { { name = "a", configuration = {
        SoracomAir = { useCustomDns = "yes" } } } } })
      assert.are.equal(1, code)
      has(err, "groups[1].configuration.SoracomAir")
      has(err, "useCustomDns")
      code, _, err = plan_of(document { groups = { { name = "a", configuration = {
        SoracomAir = { useCustomDNS = true } } } } })
      assert.are.equal(1, code)
      has(err, 'did you mean "useCustomDns"')
      local out
      code, out, err = plan_of(document { groups = { { name = "a", configuration = {
        SoracomAir = { brandNewSetting = 1 } } } } })
      assert.are.equal(2, code, err)
      has(err, "warning")
      has(err, "brandNewSetting")
      has(out, "+ SoracomAir.brandNewSetting = 1")
    end)

    it("says line and column of a syntax error, refuses duplicate keys and inexact integers", function()
      local code, _, err = plan_of('{"groups": [\n  {"name": "a",,}\n]}')
      assert.are.equal(1, code)
      has(err, "line 2")
      code, _, err = plan_of('{"groups": [{"name": "a", "name": "b"}]}')
      assert.are.equal(1, code)
      has(err, '"name"')
      code, _, err = plan_of('{"groups": [{"name": "a", "configuration": {"SoracomAir": '
        .. '{"ipLinkMtu": 123456789012345678901234567890}}}]}')
      assert.are.equal(1, code)
      has(err, "line 1")
    end)

    it("runs a .lua document in a sandbox: builders yes, os, io and require of others no", function()
      local code, out, err = plan_of([[
return { groups = { { name = "lua-a", configuration = { config.air { use_custom_dns = true } } },
  { name = "lua-b", configuration = { require("soracom.groups").config.harvest { enabled = true } } } } }
]], "ok.lua")
      assert.are.equal(2, code, err)
      has(out, "+ create group lua-a")
      has(out, "+ create group lua-b")
      local marker = dir .. "/pwned"
      for _, body in ipairs {
        "os.execute('touch " .. marker .. "') return { groups = {} }",
        "io.open('" .. marker .. "', 'w') return { groups = {} }",
        "require('os').execute('touch " .. marker .. "') return { groups = {} }",
        "load('x = 1') return { groups = {} }",
        "string.dump(print) return { groups = {} }",
        "getmetatable('').__index = nil return { groups = {} }",
        "while true do end",
      } do
        code, _, err = plan_of(body, "evil.lua")
        assert.are.equal(1, code, body)
        lacks(err, "traceback")
      end
      assert.is_nil(io.open(marker, "r"))
    end)
  end)

  describe("what a review broke", function()
    it("keeps the account's secrets hidden when a .lua document reaches for the host's tables", function()
      create { tags = { name = "web", env = "prod", apiToken = "tag-secret-31" },
        configuration = { SoracomAir = { { key = "password", value = "air-secret-32" } } } }
      local file = dir .. "/reach.lua"
      write_file(file, [[
pcall(function() config.REFERENCE_KEYS.password = true end)
pcall(function() config.api_key_names().apiToken = false end)
pcall(function() rawset(config.Built, "__tostring", print) end)
return { scope = "account", groups = { { name = "web", tags = { env = "prod", apiToken = "x" },
  configuration = { SoracomAir = { password = "x" } } } } }
]])
      local code, out, err = run { "plan", file }
      assert.are.equal(2, code, out .. err)
      lacks(out .. err, "secret-3")
      code, out, err = run { "plan", "--json", file }
      assert.are.equal(2, code)
      lacks(out .. err, "secret-3")
    end)

    it("stops a .lua document's pcall loops, raised builders, pattern bombs and allocations at once", function()
      for _, body in ipairs {
        "while true do pcall(function() while true do end end) end",
        "error(config.air { metadata = { enabled = true } })",
        "return { groups = {}, x = ('a'):rep(200000):match('.-.-.-.-b') }",
        "local t = {} for i = 1, 8 do t[i] = ('x'):rep(2^30 - i) end",
        "local t = {} for i = 1, 1e8 do t[i] = { i } end",
        "local t = {} local n = t for _ = 1, 300000 do n.next = {} n = n.next end "
          .. "return { groups = { { name = 'a', configuration = { SoracomFlux = { deep = t } } } } }",
        "local t = {} t.t = t return { groups = { { name = 'a', configuration = { SoracomFlux = { loop = t } } } } }",
      } do
        local file = dir .. "/bomb.lua"
        write_file(file, body)
        local code, out, err = run { "plan", file }
        assert.are.equal(1, code, body .. "\n" .. out .. err)
        lacks(err, "traceback")
      end
    end)

    it("creates a group anew beside the one it deletes, and despite a namesake outside the scope", function()
      local old = create { tags = { name = "web", env = "prod" } }
      create { tags = { name = "api", env = "staging" } }
      local file = dir .. "/anew.json"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = "00000000-0000-4000-8000-0000000000aa", name = "web", tags = { env = "prod" } },
        { name = "api", tags = { env = "prod" } } } })
      local code, out = run { "apply", "--prune", "--yes", file }
      assert.are.equal(0, code, out)
      has(out, "Applied 3, skipped 0, failed 0.")
      assert.is_nil(get(old))
      code, out = run { "plan", "--prune", file }
      assert.are.equal(2, code) -- the file still names the old id: web would be made again
      has(out, "+ create group web")
      local _, listed = run { "list", "--tag-name", "env", "--tag-value", "prod" }
      local names = {}
      for _, group in ipairs(fake.decode(listed)) do names[#names + 1] = group.tags.name end
      table.sort(names)
      assert.are.same({ "api", "web" }, names)
    end)

    it("writes through a symlink, and refuses a FIFO nobody reads instead of hanging", function()
      create { tags = { name = "a" } }
      local target, link, fifo = dir .. "/target.json", dir .. "/link.json", dir .. "/fifo"
      write_file(target, "old")
      os.execute("ln -sf target.json " .. quote(link) .. " && mkfifo " .. quote(fifo))
      assert.are.equal(0, (run { "export", "-o", link }))
      has(slurp(target), '"name": "a"')
      local pipe = io.popen("test -L " .. quote(link) .. " && echo link")
      assert.are.equal("link", pipe:read("*l"))
      pipe:close()
      local code, _, err = run { "export", "-o", fifo }
      assert.are.equal(1, code)
      has(err, "no reader")
    end)

    it("keeps out of a plan file what the views hide: deleted groups' tags, URL passwords in tags", function()
      create { tags = { name = "old", env = "prod", apiToken = "tag-secret-41" } }
      local id = create { tags = { name = "web", env = "prod", hook = "https://u:url-secret-42@h/x" } }
      local file, saved = dir .. "/hidden.json", dir .. "/hidden.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { { groupId = id,
        name = "web", tags = { env = "prod", hook = "https://u:url-secret-43@h/x" } } } })
      local code, out = run { "plan", "--prune", file, "-o", saved }
      assert.are.equal(2, code, out)
      lacks(out, "secret-4")
      lacks(slurp(saved), "secret-4")
      has(out, "  ~ tag hook: https://u:***@h/x -> https://u:***@h/x (a hidden part changes)")
      code, out = run { "apply", "--yes", saved }
      assert.are.equal(0, code, out)
      assert.are.equal("https://u:url-secret-43@h/x", get(id).tags.hook)
    end)

    it("refuses a reference standing for a whole namespace, and an empty variable", function()
      local file = dir .. "/whole.json"
      write_file(file, document { groups = { { name = "web",
        configuration = { SoracomAir = { ["$env"] = "WHOLE" } } } } })
      local code, _, err = run({ "plan", file }, { env = "WHOLE=abc" })
      assert.are.equal(1, code)
      has(err, "cannot be one secret reference")
      lacks(err, "abc")
      write_file(file, document { groups = { { name = "web",
        configuration = { SoracomAir = { password = { ["$env"] = "EMPTY_ONE" } } } } } })
      code, _, err = run({ "plan", file }, { env = "EMPTY_ONE=" })
      assert.are.equal(1, code)
      has(err, "EMPTY_ONE, which is empty")
    end)

    it("applies a saved plan only as it shows it, and only against the endpoint it was made for", function()
      local id = create { tags = { name = "shown", env = "prod" } }
      local file, saved = dir .. "/shown.json", dir .. "/shown.plan"
      write_file(file, document { scope = { tagName = "env", tagValue = "prod" }, groups = { { groupId = id,
        name = "shown", tags = { env = "prod" },
        configuration = { SoracomAir = { metadata = { enabled = true } } } } } })
      assert.are.equal(2, (run { "plan", file, "-o", saved }))
      local plan_text = slurp(saved)
      local edited = fake.decode(plan_text)
      edited.changes[1].namespaces[1].source.userdata = "INJECTED"
      write_file(saved, document(edited))
      local code, out = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(out, "are not the changes it shows")
      assert.is_nil((get(id).configuration or {}).SoracomAir)
      edited = fake.decode(plan_text)
      edited.endpoint = "https://api.example.invalid"
      write_file(saved, document(edited))
      local err
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "was planned against https://api.example.invalid")
      write_file(saved, plan_text)
      code, out = run { "apply", "--yes", saved }
      assert.are.equal(0, code, out)
    end)

    it("warns that export --secrets-as-env writes a secret-looking tag as it is", function()
      create { tags = { name = "t", apiToken = "tag-secret-51" } }
      local code, _, err = run { "export", "--secrets-as-env", "SG", "-o", dir .. "/t.json" }
      assert.are.equal(0, code)
      has(err, "t tag apiToken looks like a secret")
    end)
  end)
end)
