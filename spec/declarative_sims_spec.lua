-- Declarative SIM membership (issue 25, item 4): a group entry's "sims", export
-- --with-sims, plan's SIM moves, saved plans and apply, against the fake over real
-- HTTP. Every expected line and document here is written by hand.
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local command = require "spec.support.command"
local tempdir = require "spec.support.tempdir"
local core = require "soracom.groups.core"
local soracom_groups = require "soracom.groups"
local desired = require "soracom.groups.desired"
local plan = require "soracom.groups.plan"
local account = require "soracom.groups.account"
local apply = require "soracom.groups.apply"

local slurp, write_file = command.slurp, command.write_file
local unpack = table.unpack or unpack

-- A SIM id as the fake's are shaped (ICCID-like, 19 digits).
local function sim(n) return string.format("89811000000%08d", n) end

local function has(text, piece)
  assert.truthy(text:find(piece, 1, true), "expected to find:\n" .. piece .. "\nin:\n" .. text)
end

local function lacks(text, piece)
  assert.falsy(text:find(piece, 1, true), "did not expect:\n" .. piece .. "\nin:\n" .. text)
end

describe("declarative SIM membership", function()
  local srv, client, dir

  setup(function()
    srv = fake.start()
    dir = tempdir.new()
  end)
  teardown(function()
    srv:stop()
    tempdir.remove(dir)
  end)
  before_each(function()
    srv:reset()
    client = assert(new_client(srv))
  end)
  after_each(function() client:close() end)

  local function run(args, opts) return command.against(srv, args, opts) end

  local function create(name, tags)
    local all = { name = name }
    for key, value in pairs(tags or {}) do all[key] = value end
    return assert(client:create_group { tags = all }).groupId
  end

  -- Puts SIMs with the given numbers into a group (as the fake seeds them).
  local function seed(group_id, numbers)
    local list = {}
    for i, n in ipairs(numbers) do list[i] = { iccid = sim(n) } end
    srv:seed_subscribers(group_id, list)
  end

  -- Makes SIMs with the given numbers, in no group.
  local function add_loose(numbers)
    local list = {}
    for i, n in ipairs(numbers) do list[i] = { iccid = sim(n) } end
    return srv:add_sims { sims = list }
  end

  -- The requests of a method whose path matches pattern, in the order received.
  local function requests_of(method, pattern)
    local found = {}
    for _, request in ipairs(srv:requests()) do
      if request.method == method and request.uri:find(pattern) then found[#found + 1] = request.uri end
    end
    return found
  end

  local function members(group_id)
    local ids = assert(account.list_members(client, group_id))
    table.sort(ids)
    return ids
  end

  -- The plan of a document against the account, read as the command reads it; or
  -- nil, err.
  local function try_plan(document, options)
    options = options or {}
    local doc = assert(desired.check(document))
    local groups = assert(account.read(client, doc))
    options.members = assert(account.read_members(client, assert(plan.member_groups(doc, groups))))
    options.sims = assert(account.read_sims(client, assert(plan.sims_to_locate(doc, groups, options.members))))
    return plan.compare(doc, groups, options)
  end

  local function plan_of(document, options)
    return assert(try_plan(document, options))
  end

  describe("the document", function()
    it("takes a list of distinct simIds, [] for none, and leaves a group without sims unmanaged", function()
      local doc = assert(desired.check { groups = { { name = "a", sims = { sim(2), sim(1) } },
        { name = "b", sims = core.decode_json('{"sims": []}').sims }, { name = "c" } } })
      assert.are.same({ sim(2), sim(1) }, doc.groups[1].sims)
      assert.are.same({}, doc.groups[2].sims)
      assert.is_nil(doc.groups[3].sims)
    end)

    it("names the place of each mistake in a group's sims", function()
      local cases = {
        { { groups = { { name = "a", sims = sim(1) } } }, "groups[1].sims must be a list of simIds (got a string)" },
        { { groups = { { name = "a", sims = { one = sim(1) } } } },
          "groups[1].sims must be a list of simIds (got an object)" },
        { { groups = { { name = "a", sims = { sim(1), 7 } } } },
          "groups[1].sims[2] must be a non-empty string (got number)" },
        { { groups = { { name = "a", sims = { "" } } } },
          "groups[1].sims[1] must be a non-empty string (got a string)" },
        { { groups = { { name = "a", sims = { ".." } } } }, 'groups[1].sims[1] must be a simId (got "..")' },
        { { groups = { { name = "a", sims = { sim(1), sim(2), sim(1) } } } },
          'groups[1].sims[3] repeats "' .. sim(1) .. '" (groups[1].sims[1])' },
        { { groups = { { name = "fleet-a", sims = { sim(1), sim(5) } }, { name = "fleet-b" },
          { name = "fleet-c", sims = { sim(5) } } } },
          'groups[3] ("fleet-c") lists the SIM "' .. sim(5) .. '", which groups[1] ("fleet-a") lists too: '
            .. "a SIM is in one group at a time" },
      }
      for _, case in ipairs(cases) do
        local document, err = desired.check(case[1])
        assert.is_nil(document)
        assert.are.equal(case[2], err.message)
      end
    end)

    it("refuses from a file a SIM listed in two groups, before any request, exit 1", function()
      local file = dir .. "/twice.json"
      write_file(file, core.encode_json { scope = "account", groups = {
        { name = "fleet-a", sims = { sim(1) } }, { name = "fleet-b", sims = { sim(1) } } } })
      srv:clear_requests()
      local code, out, err = run { "plan", file }
      assert.are.equal(1, code, out)
      has(err, 'groups[2] ("fleet-b") lists the SIM "' .. sim(1) .. '", which groups[1] ("fleet-a") lists too')
      assert.are.equal(0, #srv:requests())
    end)
  end)

  describe("export --with-sims", function()
    it("writes each group's SIMs sorted, and the file plans to nothing, --prune-sims too", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      create("lab", { env = "lab" })
      seed(a, { 3, 1, 2 })
      local file = dir .. "/with-sims.json"
      local code, _, err = run { "export", "--tag-name", "env", "--tag-value", "prod", "--with-sims", "-o", file }
      assert.are.equal(0, code, err)
      local text = slurp(file)
      has(text, '      "name": "fleet-a",\n      "sims": [\n        "' .. sim(1) .. '",\n        "' .. sim(2)
        .. '",\n        "' .. sim(3) .. '"\n      ],\n')
      has(text, '      "name": "fleet-b",\n      "sims": [],\n')
      local document = fake.decode(text)
      assert.are.equal(b, document.groups[2].groupId)
      for _, args in ipairs { { "plan", file }, { "plan", "--prune-sims", file } } do
        local out
        code, out, err = run(args)
        assert.are.equal(0, code, out .. err)
        has(out, "No changes.")
      end
      -- without the flag, no group says which SIMs it holds, and none is read
      srv:clear_requests()
      code, _, err = run { "export", "--tag-name", "env", "--tag-value", "prod", "-o", file }
      assert.are.equal(0, code, err)
      lacks(slurp(file), '"sims"')
      for _, request in ipairs(srv:requests()) do lacks(request.uri, "/subscribers") end
    end)

    it("reads every page of a big group", function()
      local big = create("big")
      local numbers = {}
      for i = 1, 230 do numbers[i] = 1000 + i end
      seed(big, numbers)
      srv:settings { default_limit = 100 }
      srv:clear_requests()
      local document = assert(desired.export(client, { with_sims = true }))
      assert.are.equal(3, #requests_of("GET", "/subscribers")) -- 100, 100, 30
      assert.are.equal(230, #document.groups[1].sims)
      assert.are.equal(sim(1001), document.groups[1].sims[1])
      assert.are.equal(sim(1230), document.groups[1].sims[230])
      assert.is_true(plan.empty(plan_of(document, { prune_sims = true })))
    end)
  end)

  describe("plan", function()
    it("shows SIMs moving in, from a listed group, another of the scope or none, and out only with --prune-sims",
        function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      local other = create("other", { env = "prod" })
      seed(a, { 1, 2, 3 })
      seed(b, { 4, 5 })
      seed(other, { 6 })
      add_loose { 9 }
      local document = { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1) } },
        { groupId = b, name = "fleet-b", tags = { env = "prod" }, sims = { sim(4), sim(2), sim(6), sim(9) } },
      } }
      assert.are.same({
        "# scope: groups whose tag \"env\" is \"prod\"",
        "~ group fleet-b",
        "  + sim " .. sim(2) .. " (from group fleet-a)",
        "  + sim " .. sim(6) .. " (from group other)",
        "  + sim " .. sim(9) .. " (from no group)",
        "# 1 group outside this file, unchanged (--prune deletes those within the scope); --show-unmanaged lists them",
        "# 2 SIMs of listed groups outside this file, kept (--prune-sims moves them out to no group); "
          .. "--show-unmanaged counts them by group",
        "Plan: 0 to create, 1 to change, 0 to delete; 3 SIMs to move in, 0 to move out.",
      }, plan.render(plan_of(document)))
      assert.are.same({
        "# scope: groups whose tag \"env\" is \"prod\"",
        "~ group fleet-a",
        "  - sim " .. sim(3) .. " (to no group)",
        "~ group fleet-b",
        "  + sim " .. sim(2) .. " (from group fleet-a)",
        "  + sim " .. sim(6) .. " (from group other)",
        "  + sim " .. sim(9) .. " (from no group)",
        "  - sim " .. sim(5) .. " (to no group)",
        "# unmanaged group other (" .. other .. ")",
        "Plan: 0 to create, 2 to change, 0 to delete; 3 SIMs to move in, 2 to move out.",
      }, plan.render(plan_of(document, { prune_sims = true }), { show_unmanaged = true }))
      local kept = plan.render(plan_of(document), { show_unmanaged = true })
      assert.are.same({ "# 1 SIM of group fleet-a outside this file, kept", "# 1 SIM of group fleet-b outside "
        .. "this file, kept" }, { kept[7], kept[8] })
    end)

    it("reads the SIMs of the groups that list theirs, and no others", function()
      local a = create("fleet-a", { env = "prod" })
      local quiet = create("quiet", { env = "prod" })
      seed(quiet, { 7 })
      srv:clear_requests()
      local code, out, err = run { "plan", "--prune-sims", (function()
        local file = dir .. "/read.json"
        write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
          { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(7) } },
          { groupId = quiet, name = "quiet", tags = { env = "prod" } } } })
        return file
      end)() }
      assert.are.equal(2, code, out .. err)
      has(out, "  + sim " .. sim(7) .. " (from group quiet)")
      lacks(out, "- sim")
      local read = {}
      for _, request in ipairs(srv:requests()) do
        local id = request.uri:match("^/v1/groups/([^/?]+)/subscribers")
        if id then read[id] = true end
      end
      assert.are.same({ [a] = true }, read)
      -- the SIM moving in that no listing holds is read alone
      assert.are.same({ "/v1/sims/" .. sim(7) }, requests_of("GET", "^/v1/sims/"))
    end)

    it("refuses --prune-sims on a file without a scope", function()
      local a = create("fleet-a")
      local p, err = plan.compare({ groups = { { groupId = a, name = "fleet-a", sims = {} } } },
        assert(desired.list(client)), { prune_sims = true, members = { [a] = {} } })
      assert.is_nil(p)
      assert.matches("the document has no scope, so --prune-sims could reach", err.message, 1, true)
    end)

    it("moves SIMs into a group it creates", function()
      local a = create("fleet-a")
      seed(a, { 1 })
      add_loose { 2 }
      local p = plan_of { scope = "account", groups = {
        { groupId = a, name = "fleet-a", sims = {} },
        { name = "fleet-new", tags = { env = "prod" }, sims = { sim(1), sim(2) } } } }
      assert.are.same({
        "# scope: the whole account",
        "+ create group fleet-new",
        "  + tag env = prod",
        "  + sim " .. sim(1) .. " (from group fleet-a)",
        "  + sim " .. sim(2) .. " (from no group)",
        "Plan: 1 to create, 0 to change, 0 to delete; 2 SIMs to move in, 0 to move out.",
      }, plan.render(p))
    end)

    it("counts many SIMs moving one way, and shows the first five", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      local numbers, wanted = {}, {}
      for i = 1, 40 do numbers[i] = 100 + i end
      seed(a, numbers)
      for i = 1, 25 do wanted[i] = sim(100 + i) end -- 25 from fleet-a
      local none = {}
      for i = 1, 12 do
        wanted[#wanted + 1] = sim(500 + i) -- 12 from no group
        none[i] = 500 + i
      end
      add_loose(none)
      local p = plan_of({ scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = {} },
        { groupId = b, name = "fleet-b", tags = { env = "prod" }, sims = wanted } } }, { prune_sims = true })
      local lines = plan.render(p)
      assert.are.same({
        "# scope: groups whose tag \"env\" is \"prod\"",
        "~ group fleet-a",
        "  - 15 SIMs move out (to no group); the first 5:",
        "  - sim " .. sim(126) .. " (to no group)",
        "  - sim " .. sim(127) .. " (to no group)",
        "  - sim " .. sim(128) .. " (to no group)",
        "  - sim " .. sim(129) .. " (to no group)",
        "  - sim " .. sim(130) .. " (to no group)",
        "~ group fleet-b",
        "  + 37 SIMs move in (25 from group fleet-a, 12 from no group); the first 5:",
        "  + sim " .. sim(101) .. " (from group fleet-a)",
        "  + sim " .. sim(102) .. " (from group fleet-a)",
        "  + sim " .. sim(103) .. " (from group fleet-a)",
        "  + sim " .. sim(104) .. " (from group fleet-a)",
        "  + sim " .. sim(105) .. " (from group fleet-a)",
        "Plan: 0 to create, 2 to change, 0 to delete; 37 SIMs to move in, 15 to move out.",
      }, lines)
      -- JSON lists every one
      local json = fake.decode(plan.to_json(p))
      assert.are.equal(37, #json.changes[2].sims.moveIn)
      assert.are.same({ simId = sim(501) }, json.changes[2].sims.moveIn[26])
      assert.are.same({ simId = sim(101), fromGroupId = a, fromName = "fleet-a" }, json.changes[2].sims.moveIn[1])
      assert.are.equal(15, #json.changes[1].sims.moveOut)
      assert.are.same({ 37, 15, true }, { json.summary.simsIn, json.summary.simsOut, json.summary.pruneSims })
    end)

    it("escapes what a SIM id or an origin holds that could forge a line", function()
      local a = create("fleet-a")
      local forged = "x\nPlan: 0 to create\27[2J"
      local p = assert(plan.compare({ groups = { { groupId = a, name = "fleet-a", sims = { forged, sim(1) } } } },
        assert(desired.list(client)), { members = { [a] = {} }, sims = { [forged] = { simId = forged },
          [sim(1)] = { simId = sim(1), groupId = "g\r1" } }, allow_sims_from_outside_scope = true }))
      assert.are.same({ "  + sim " .. sim(1) .. " (from group g\\r1, outside the scope)",
        "  + sim x\\nPlan: 0 to create\\x1b[2J (from no group)" }, { plan.render(p)[2], plan.render(p)[3] })
    end)
  end)

  describe("where a SIM moving in comes from", function()
    -- A document file of the groups (scope env=dev unless given), and its path.
    local function doc_file(name, groups, scope)
      local file = dir .. "/" .. name
      if scope == nil then scope = { tagName = "env", tagValue = "dev" } end
      write_file(file, core.encode_json { scope = scope or nil, groups = groups })
      return file
    end

    it("refuses a SIM in a group outside the scope, naming the SIM and the group: nothing moves, exit 1; "
        .. "--allow-sims-from-outside-scope moves it, shown as such", function()
      local prod = create("prod-fleet", { env = "prod" })
      local dev = create("dev-a", { env = "dev" })
      seed(prod, { 1, 2 })
      seed(dev, { 5, 6 })
      local file = doc_file("outside.json", { { groupId = dev, name = "dev-a", tags = { env = "dev" },
        sims = { sim(5), sim(1) } } })
      local refusal = 'soracom-groups: groups[1] ("dev-a") lists the SIM "' .. sim(1) .. '", which is in the group '
        .. prod .. ', outside the document\'s scope (groups whose tag "env" is "dev"): the document does not own '
        .. "that group, so it takes no SIM out of it (--allow-sims-from-outside-scope allows it)\n"
      for _, args in ipairs { { "plan", "--prune-sims", file }, { "apply", "--prune-sims", "--yes", file } } do
        srv:clear_requests()
        local code, out, err = run(args)
        assert.are.same({ 1, "", refusal }, { code, out, err })
        assert.are.same({}, requests_of("POST", "/"))
        assert.are.same({}, requests_of("PUT", "/"))
      end
      assert.are.same({ prod, dev }, { srv:sim(sim(1)).groupId, srv:sim(sim(6)).groupId })

      local code, out, err = run { "plan", "--prune-sims", "--allow-sims-from-outside-scope", file }
      assert.are.equal(2, code, out .. err)
      assert.are.equal("# scope: groups whose tag \"env\" is \"dev\"\n~ group dev-a\n"
        .. "  + sim " .. sim(1) .. " (from group " .. prod .. ", outside the scope)\n"
        .. "  - sim " .. sim(6) .. " (to no group)\n"
        .. "Plan: 0 to create, 1 to change, 0 to delete; 1 SIM to move in, 1 to move out.\n", out)
      code, out = run { "plan", "--json", "--allow-sims-from-outside-scope", file }
      assert.are.equal(2, code, out)
      local json = fake.decode(out)
      assert.are.same({ { simId = sim(1), fromGroupId = prod, outsideScope = true } }, json.changes[1].sims.moveIn)
      assert.is_true(json.summary.allowSimsFromOutsideScope)
      code, out, err = run { "apply", "--allow-sims-from-outside-scope", "--yes", file }
      assert.are.equal(0, code, out .. err)
      has(out, "SIMs: 1 moved in, 0 moved out, 0 failed.")
      assert.are.same({ dev, prod }, { srv:sim(sim(1)).groupId, srv:sim(sim(2)).groupId })
    end)

    it("takes SIMs from the groups a document lists or its scope holds, and from none; a document without a scope "
        .. "owns only the groups it lists", function()
      local a = create("fleet-a", { env = "dev" })
      local quiet = create("quiet", { env = "dev" })
      local other = create("other", { env = "lab" })
      seed(quiet, { 1 })
      seed(other, { 2 })
      add_loose { 3 }
      local p = plan_of { scope = { tagName = "env", tagValue = "dev" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "dev" }, sims = { sim(1), sim(3) } } } }
      assert.are.same({ "~ group fleet-a", "  + sim " .. sim(1) .. " (from group quiet)",
        "  + sim " .. sim(3) .. " (from no group)" }, { unpack(plan.render(p), 2, 4) })
      -- listed by id though outside the scope: the document owns it
      p = plan_of { scope = { tagName = "env", tagValue = "dev" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "dev" }, sims = { sim(2) } },
        { groupId = other, name = "other", tags = { env = "dev" } } } }
      assert.are.same({ "~ group fleet-a", "  + sim " .. sim(2) .. " (from group other)" },
        { unpack(plan.render(p), 2, 3) })
      local refused, err = try_plan { groups = { { groupId = a, name = "fleet-a", tags = { env = "dev" },
        sims = { sim(3), sim(2) } } } }
      assert.is_nil(refused)
      assert.are.equal('groups[1] ("fleet-a") lists the SIM "' .. sim(2) .. '", which is in the group other ('
        .. other .. "), which the document does not list (it has no scope, so it owns only the groups it lists): "
        .. "the document does not own that group, so it takes no SIM out of it (--allow-sims-from-outside-scope "
        .. "allows it)", err.message)
      p = plan_of { groups = { { groupId = a, name = "fleet-a", tags = { env = "dev" }, sims = { sim(3), sim(2) } },
        { groupId = other, name = "other", tags = { env = "lab" } } } }
      assert.are.same({ "  + sim " .. sim(2) .. " (from group other)", "  + sim " .. sim(3) .. " (from no group)" },
        { unpack(plan.render(p), 2, 3) })
    end)

    it("refuses a SIM that does not exist, naming it and counting the others, before anything is written", function()
      local a = create("fleet-a", { env = "dev" })
      add_loose { 1 }
      local file = doc_file("missing.json", { { groupId = a, name = "fleet-a", tags = { env = "dev", owner = "ops" },
        sims = { sim(1), sim(98), sim(99) } } })
      srv:clear_requests()
      local code, out, err = run { "apply", "--yes", file }
      assert.are.same({ 1, "", 'soracom-groups: groups[1] ("fleet-a") lists the SIM "' .. sim(98) .. '", which '
        .. "does not exist (GET /sims/{sim_id} answered 404) (and 1 more SIM that does not exist)\n" },
        { code, out, err })
      assert.are.same({}, requests_of("PUT", "/"))
      assert.are.same({}, requests_of("POST", "^/v1/sims/"))
      assert.is_nil(srv:sim(sim(1)).groupId)
    end)

    it("reads alone only the SIMs moving in that no listing holds, once each", function()
      local a = create("fleet-a", { env = "dev" })
      local b = create("fleet-b", { env = "dev" })
      local quiet = create("quiet", { env = "dev" })
      seed(a, { 1, 2, 3 })
      seed(b, { 4 })
      seed(quiet, { 5 })
      add_loose { 6, 7 }
      local file = doc_file("cost.json", {
        { groupId = a, name = "fleet-a", tags = { env = "dev" }, sims = { sim(1), sim(2) } },
        { groupId = b, name = "fleet-b", tags = { env = "dev" }, sims = { sim(3), sim(4), sim(5), sim(6), sim(7) } },
        { groupId = quiet, name = "quiet", tags = { env = "dev" } } })
      srv:clear_requests()
      local code, out, err = run { "plan", file }
      assert.are.equal(2, code, out .. err)
      has(out, "~ group fleet-b\n  + sim " .. sim(3) .. " (from group fleet-a)\n  + sim " .. sim(5)
        .. " (from group quiet)\n  + sim " .. sim(6) .. " (from no group)\n  + sim " .. sim(7) .. " (from no group)\n")
      local read = requests_of("GET", "^/v1/sims/")
      table.sort(read)
      assert.are.same({ "/v1/sims/" .. sim(5), "/v1/sims/" .. sim(6), "/v1/sims/" .. sim(7) }, read)
    end)
  end)

  describe("saved plans", function()
    it("carry the SIM moves, and one whose group's SIMs changed since is skipped, writing nothing", function()
      local a = create("fleet-a", { env = "prod" })
      seed(a, { 1, 2 })
      add_loose { 3 }
      local file, saved = dir .. "/stale.json", dir .. "/stale.plan"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod", owner = "ops" }, sims = { sim(1), sim(3) } } } })
      local code, out, err = run { "plan", "--prune-sims", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      local text = slurp(saved)
      has(text, '"version": 3')
      has(text, '"prune_sims": true')
      has(text, '"from_group_id": null,\n            "sim_id": "' .. sim(3) .. '"') -- from no group, said
      local change = fake.decode(text).changes[1]
      assert.are.equal(1, #change.members.moves_in)
      assert.are.equal(sim(3), change.members.moves_in[1].sim_id)
      assert.are.same({ sim(2) }, change.members.moves_out)
      assert.are.equal(1, change.members.staying.count) -- sim(1) stays

      seed(a, { 4 }) -- someone puts a SIM into the group after the plan
      srv:clear_requests()
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out .. err)
      has(out, "skipped fleet-a: its SIMs changed since the plan was made (it kept 1 then, 2 now); "
        .. "nothing was written to it")
      assert.is_nil(assert(client:get_group(a)).tags.owner)
      for _, request in ipairs(srv:requests()) do
        assert.are.equal("GET", request.method, request.uri)
      end
    end)

    it("record where each SIM moving in comes from; a group whose SIM has moved since is skipped, writing nothing",
        function()
      local a = create("fleet-a", { env = "dev" })
      local b = create("fleet-b", { env = "dev" })
      local c = create("fleet-c", { env = "dev" })
      local d = create("fleet-d", { env = "dev" })
      local prod = create("prod", { env = "prod" })
      seed(a, { 1, 2, 3 })
      add_loose { 4, 5 }
      local file, saved = dir .. "/origin.json", dir .. "/origin.plan"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "dev" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "dev" }, sims = { sim(2), sim(3) } },
        { groupId = b, name = "fleet-b", tags = { env = "dev", owner = "ops" }, sims = { sim(1) } },
        { groupId = c, name = "fleet-c", tags = { env = "dev", owner = "ops" }, sims = { sim(4) } },
        { groupId = d, name = "fleet-d", tags = { env = "dev", owner = "ops" }, sims = { sim(5) } } } })
      local code, out, err = run { "plan", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      has(out, "~ group fleet-b\n  + tag owner = ops\n  + sim " .. sim(1) .. " (from group fleet-a)\n")
      local changes = fake.decode(slurp(saved)).changes
      assert.are.same({ a, "fleet-a", sim(1) }, { changes[1].members.moves_in[1].from_group_id,
        changes[1].members.moves_in[1].from_name, changes[1].members.moves_in[1].sim_id })
      local listed = { a, b, c, d } -- the groups whose SIMs the plan read
      table.sort(listed)
      assert.are.same(listed, fake.decode(slurp(saved)).member_groups)

      -- after the plan, someone puts the SIM of fleet-a and one of the loose ones into prod
      assert(client:set_sim_group(sim(1), prod))
      assert(client:set_sim_group(sim(4), prod))
      srv:clear_requests()
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out .. err)
      has(out, "skipped fleet-b: its SIMs to move in changed since the plan was made (1 of 1 not where the plan "
        .. "saw them: " .. sim(1) .. " was in group fleet-a (" .. a .. "), no longer in it); nothing was written to it")
      has(out, "skipped fleet-c: its SIMs to move in changed since the plan was made (1 of 1 not where the plan "
        .. "saw them: " .. sim(4) .. " was in no group, now in group " .. prod .. "); nothing was written to it")
      has(out, "Applied 1, skipped 2, failed 0.\nSIMs: 1 moved in, 0 moved out, 0 failed.")
      assert.are.same({ prod, prod, d }, { srv:sim(sim(1)).groupId, srv:sim(sim(4)).groupId, srv:sim(sim(5)).groupId })
      assert.are.same({ nil, nil, "ops" }, { assert(client:get_group(b)).tags.owner,
        assert(client:get_group(c)).tags.owner, assert(client:get_group(d)).tags.owner })
      assert.are.same({ "/v1/sims/" .. sim(5) .. "/set_group" }, requests_of("POST", "^/v1/sims/"))
      -- fleet-a, read by the plan, is listed once again; the loose SIMs are read alone
      assert.are.equal(1, #requests_of("GET", "^/v1/groups/" .. a:gsub("%-", "%%-") .. "/subscribers"))
      local read = requests_of("GET", "^/v1/sims/")
      table.sort(read)
      assert.are.same({ "/v1/sims/" .. sim(4), "/v1/sims/" .. sim(5) }, read)
    end)

    it("refuse a plan file that does not say where a SIM moving in comes from, or takes one from outside the scope "
        .. "unallowed", function()
      local a = create("fleet-a", { env = "prod" })
      local lab = create("lab", { env = "lab" })
      seed(lab, { 1 })
      local file, saved = dir .. "/edited.json", dir .. "/edited.plan"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1) } } } })
      local code, out, err = run { "plan", "--allow-sims-from-outside-scope", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      code, out, err = run { "apply", "--allow-sims-from-outside-scope", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "a saved plan is applied as it was made: --prune, --prune-namespaces, --prune-sims and "
        .. "--allow-sims-from-outside-scope belong to the plan command")
      local text = slurp(saved)
      has(text, '"allow_sims_from_outside_scope": true')
      local edited = fake.decode(text)
      edited.allow_sims_from_outside_scope = false
      write_file(saved, core.encode_json(edited))
      srv:clear_requests()
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "changes[1] takes the SIM " .. sim(1) .. " from a group outside the scope, which only a plan made "
        .. "with --allow-sims-from-outside-scope does")
      -- as a plan file of version 2 wrote it: no origin
      edited.allow_sims_from_outside_scope, edited.version = nil, 2
      edited.changes[1].members.moves_in[1] = { sim_id = sim(1) }
      write_file(saved, core.encode_json(edited))
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "changes[1] does not say which group the SIM " .. sim(1) .. " leaves (a plan file made before "
        .. "soracom-groups recorded it: plan again)")
      assert.are.same({}, srv:requests())
      assert.are.equal(lab, srv:sim(sim(1)).groupId)
    end)

    it("refuses --prune-sims beside a saved plan, and a plan file edited to move SIMs out", function()
      local a = create("fleet-a", { env = "prod" })
      seed(a, { 1, 2 })
      add_loose { 3 }
      local file, saved = dir .. "/edit.json", dir .. "/edit.plan"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1), sim(2), sim(3) } } } })
      local code, out, err = run { "plan", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      srv:clear_requests()
      code, out, err = run { "apply", "--prune-sims", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "a saved plan is applied as it was made")
      local edited = fake.decode(slurp(saved))
      edited.changes[1].members.moves_out = { sim(1) }
      write_file(saved, core.encode_json(edited))
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "changes[1] moves SIMs out, which only a plan made with --prune-sims does")
      edited.changes[1].members.moves_out = {}
      edited.changes[1].members.moves_in[2] = { sim_id = sim(3) }
      write_file(saved, core.encode_json(edited))
      code, out, err = run { "apply", "--yes", saved }
      assert.are.equal(1, code, out)
      has(err, "changes[1] moves the SIM " .. sim(3) .. " that the plan moves already")
      assert.are.equal(0, #srv:requests())
    end)
  end)

  describe("apply", function()
    -- The group a SIM is in now (as the fake holds it), or false for none.
    local function group_of(id)
      local state = assert(srv:sim(id), "no SIM " .. id)
      return state.groupId or false
    end

    it("moves SIMs in and, with --prune-sims only, out; then plans nothing", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      seed(a, { 1, 2, 3 })
      seed(b, { 4, 5 })
      local loose = srv:add_sims { count = 1 }[1] -- in no group
      local file = dir .. "/move.json"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1) } },
        { groupId = b, name = "fleet-b", tags = { env = "prod" }, sims = { sim(4), sim(2), loose } } } })
      srv:clear_requests()
      local code, out, err = run { "apply", "--yes", file }
      assert.are.equal(0, code, out .. err)
      has(out, "  + sim " .. sim(2) .. " (from group fleet-a)")
      has(out, "  + sim " .. loose .. " (from no group)")
      has(out, "Applied 1, skipped 0, failed 0.\nSIMs: 2 moved in, 0 moved out, 0 failed.")
      assert.are.same({ b, b, a, b }, { group_of(sim(2)), group_of(loose), group_of(sim(3)), group_of(sim(5)) })
      assert.are.equal(2, #requests_of("POST", "^/v1/sims/[^/]+/set_group$"))
      assert.are.equal(0, #requests_of("POST", "/unset_group$"))
      code, out = run { "plan", file }
      assert.are.equal(0, code, out)
      has(out, "# 2 SIMs of listed groups outside this file, kept")
      has(out, "No changes.")

      code, out, err = run { "apply", "--prune-sims", "--yes", file }
      assert.are.equal(0, code, out .. err)
      has(out, "  - sim " .. sim(3) .. " (to no group)")
      has(out, "SIMs: 0 moved in, 2 moved out, 0 failed.")
      assert.are.same({ false, false, a, b },
        { group_of(sim(3)), group_of(sim(5)), group_of(sim(1)), group_of(sim(4)) })
      assert.are.same({ sim(1) }, members(a))
      code, out = run { "plan", "--prune-sims", file }
      assert.are.equal(0, code, out)
      has(out, "No changes.")
    end)

    it("applies a saved plan's SIM moves, and moves SIMs into a group once it is created", function()
      local a = create("fleet-a", { env = "prod" })
      seed(a, { 1, 2 })
      local file, saved = dir .. "/saved.json", dir .. "/saved.plan"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = {} },
        { name = "fleet-new", tags = { env = "prod" }, sims = { sim(2), sim(1) } } } })
      local code, out, err = run { "plan", "--prune-sims", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      srv:clear_requests()
      code, out, err = run { "apply", "--json", "--yes", saved }
      assert.are.equal(0, code, out .. err)
      local result = fake.decode(out)
      local created = result.created[1].groupId
      assert.are.same({ movedIn = 2, movedOut = 0, failed = 0 }, result.sims)
      assert.are.same({ sim(1), sim(2) }, members(created))
      assert.are.same({}, members(a))
      code, out = run { "plan", "--prune-sims", file }
      assert.are.equal(0, code, out) -- fleet-new, matched by its name, holds its SIMs
      has(out, "No changes.")
    end)

    it("moves through Batch API jobs when asked, and reports a failed task as its group's", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      seed(a, { 1, 2, 3, 4 })
      srv:batch_task_faults { sim_ids = { sim(2) }, status = 500, code = "FAK0500", message = "not today" }
      local p = plan_of({ scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = {} },
        { groupId = b, name = "fleet-b", tags = { env = "prod" }, sims = { sim(1), sim(2) } } } },
        { prune_sims = true })
      local summary = assert(apply.run(client, p, { sims_batch = true }))
      assert.are.same({ moved_in = 1, moved_out = 2, failed = 1 }, summary.sims)
      assert.are.same({ { name = "fleet-a", group_id = a } }, summary.changed)
      assert.are.equal(1, #summary.failed)
      assert.are.equal("fleet-b", summary.failed[1].name)
      assert.are.equal(sim(2), summary.failed[1].err.sims[1].sim_id)
      assert.matches("not today", summary.failed[1].err.message, 1, true)
      assert.are.same({ b, a, false, false }, { group_of(sim(1)), group_of(sim(2)), group_of(sim(3)),
        group_of(sim(4)) })
      assert.are.equal(2, #srv:batch_jobs()) -- one job in, one out
      assert.are.equal(0, #requests_of("POST", "^/v1/sims/"))
    end)

    it("moves more SIMs than move_sims' threshold through one Batch API job, showing a count; a SIM that does not "
        .. "move is its group's failure, its other changes made, exit 1", function()
      local a = create("fleet-a", { env = "prod" })
      create("fleet-b", { env = "prod" })
      local many = soracom_groups.MOVE_SIMS_BATCH_THRESHOLD + 1
      local numbers = {}
      for i = 1, many do numbers[i] = 2000 + i end
      seed(a, numbers)
      local document = assert(desired.export(client, { with_sims = true }))
      document.groups[2].sims, document.groups[1].sims = document.groups[1].sims, {}
      document.groups[2].tags.owner = "ops"
      local file = dir .. "/many.json"
      write_file(file, core.encode_json(document))
      local b = document.groups[2].groupId
      srv:batch_task_faults { sim_ids = { sim(2002) }, status = 500, code = "FAK0500", message = "not today" }
      srv:clear_requests()
      -- --json: the result on stdout, the plan on stderr
      local code, out, err = run { "apply", "--json", "--yes", file }
      assert.are.equal(1, code, out .. err)
      has(err, "~ group fleet-b\n  + tag owner = ops\n  + " .. many .. " SIMs move in (" .. many
        .. " from group fleet-a); the first 5:\n  + sim " .. sim(2001) .. " (from group fleet-a)\n")
      local lines = select(2, err:gsub("\n", "\n"))
      assert.is_true(lines < 20, err)
      local result = fake.decode(out)
      assert.are.same({ movedIn = many - 1, movedOut = 0, failed = 1 }, result.sims)
      assert.are.same({}, result.changed)
      local failure = result.failed[1]
      assert.are.same({ 1, "fleet-b", b }, { #result.failed, failure.name, failure.groupId })
      assert.are.equal("1 of " .. many .. " SIM(s) were not moved in (its other changes were made): " .. sim(2002)
        .. " (HTTP 500 FAK0500: not today)", failure.error.message)
      assert.are.same({ { simId = sim(2002), error = { kind = "http", status = 500,
        code = "FAK0500", message = "not today" } } }, failure.error.sims)
      assert.are.equal("ops", assert(client:get_group(b)).tags.owner) -- its other changes were made
      assert.are.equal(1, #srv:batch_jobs())
      assert.are.same({}, requests_of("POST", "^/v1/sims/"))
      assert.are.same({}, requests_of("GET", "^/v1/sims/")) -- every SIM was in a listing the plan read
      assert.are.equal(many - 1, #members(b))
      assert.are.same({ sim(2002) }, members(a))
    end)

    it("moves SIMs only within the scope, and only of the groups that list theirs", function()
      local a = create("fleet-a", { env = "prod" })
      local quiet = create("quiet", { env = "prod" })
      local lab = create("lab", { env = "lab" })
      seed(a, { 1, 2 })
      seed(quiet, { 3 })
      seed(lab, { 4 })
      local file = dir .. "/scope.json"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1) } },
        { groupId = quiet, name = "quiet", tags = { env = "prod" } } } })
      srv:clear_requests()
      local code, out, err = run { "apply", "--prune", "--prune-sims", "--yes", file }
      assert.are.equal(0, code, out .. err)
      assert.are.same({ a, false, quiet, lab }, { group_of(sim(1)), group_of(sim(2)), group_of(sim(3)),
        group_of(sim(4)) })
      assert.are.same({ "/v1/sims/" .. sim(2) .. "/unset_group" }, requests_of("POST", "^/v1/sims/"))
      assert.are.same({}, requests_of("GET", "^/v1/groups/" .. lab:gsub("%-", "%%-")))
      assert.are.same({}, requests_of("GET", "^/v1/groups/" .. quiet:gsub("%-", "%%-") .. "/subscribers"))
    end)

    it("counts the SIMs of a group to delete even when they move, and moves them before deleting", function()
      local old = create("old-fleet", { env = "prod" })
      local new = create("new-fleet", { env = "prod" })
      seed(old, { 1 })
      local file = dir .. "/migrate.json"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = new, name = "new-fleet", tags = { env = "prod" }, sims = { sim(1) } } } })
      srv:clear_requests()
      local code, out, err = run { "apply", "--prune", "--yes", file }
      assert.are.equal(1, code, out .. err)
      has(err, "the plan deletes groups that hold SIMs (old-fleet (" .. old .. "): 1 SIM(s)")
      assert.are.equal(old, group_of(sim(1)))
      assert.are.same({}, requests_of("POST", "^/v1/sims/"))
      code, out, err = run { "apply", "--prune", "--allow-delete-with-sims", "--yes", file }
      assert.are.equal(0, code, out .. err)
      assert.are.equal(new, group_of(sim(1)))
      assert.is_nil((client:get_group(old)))
      local order = {}
      for _, request in ipairs(srv:requests()) do
        if request.method == "POST" and request.uri:find("^/v1/sims/") then order[#order + 1] = "move" end
        if request.method == "DELETE" then order[#order + 1] = "delete" end
      end
      assert.are.same({ "move", "delete" }, order)
    end)

    it("draws the SIM moves' progress when stderr is a terminal (script(1) runs apply on one)", function()
      local b = create("fleet-b")
      local loose = srv:add_sims { count = 1 }[1]
      local file = dir .. "/terminal.json"
      write_file(file, core.encode_json { groups = { { groupId = b, name = "fleet-b", sims = { loose } } } })
      local words = { command.LUA, "bin/soracom-groups", "--endpoint", srv.endpoint, "--api-key", srv.api_key,
        "--api-token", srv.token, "apply", "--yes", file }
      for i, word in ipairs(words) do words[i] = command.quote(word) end
      local pipe = assert(io.popen("script -qec " .. command.quote(table.concat(words, " ")) .. " /dev/null"
        .. " </dev/null"))
      local text = pipe:read("*a")
      pipe:close()
      -- the terminal writes each newline as \r\n
      has(text, "\rSIMs into fleet-b: 1/1 moved, 0 failed\027[K\r[1/1] fleet-b: applied\027[K\r\n")
      has(text, "SIMs: 1 moved in, 0 moved out, 0 failed.\r\n")
      assert.are.equal(b, srv:sim(loose).groupId)
    end)

    it("raises on a wrong option before any request", function()
      assert.has_error(function() apply.run(client, { changes = {} }, { sims_batch = "yes" }) end,
        "soracom.groups.apply: options.sims_batch must be a boolean (got string)")
    end)
  end)
end)
