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

  -- The plan of a document against the account, read as the command reads it.
  local function plan_of(document, options)
    options = options or {}
    local doc = assert(desired.check(document))
    local groups = assert(account.read(client, doc))
    options.members = assert(account.read_members(client, assert(plan.member_groups(doc, groups))))
    return assert(plan.compare(doc, groups, options))
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
    it("shows SIMs moving in, from a listed group or from elsewhere, and out only with --prune-sims", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      local other = create("other", { env = "prod" })
      seed(a, { 1, 2, 3 })
      seed(b, { 4, 5 })
      seed(other, { 6 })
      local document = { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1) } },
        { groupId = b, name = "fleet-b", tags = { env = "prod" }, sims = { sim(4), sim(2), sim(6), sim(9) } },
      } }
      assert.are.same({
        "# scope: groups whose tag \"env\" is \"prod\"",
        "~ group fleet-b",
        "  + sim " .. sim(2) .. " (from group fleet-a)",
        "  + sim " .. sim(6) .. " (not in a group this file lists SIMs for)",
        "  + sim " .. sim(9) .. " (not in a group this file lists SIMs for)",
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
        "  + sim " .. sim(6) .. " (not in a group this file lists SIMs for)",
        "  + sim " .. sim(9) .. " (not in a group this file lists SIMs for)",
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
      has(out, "  + sim " .. sim(7) .. " (not in a group this file lists SIMs for)")
      lacks(out, "- sim")
      local read = {}
      for _, request in ipairs(srv:requests()) do
        local id = request.uri:match("^/v1/groups/([^/?]+)/subscribers")
        if id then read[id] = true end
      end
      assert.are.same({ [a] = true }, read)
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
      local p = plan_of { scope = "account", groups = {
        { groupId = a, name = "fleet-a", sims = {} },
        { name = "fleet-new", tags = { env = "prod" }, sims = { sim(1), sim(2) } } } }
      assert.are.same({
        "# scope: the whole account",
        "+ create group fleet-new",
        "  + tag env = prod",
        "  + sim " .. sim(1) .. " (from group fleet-a)",
        "  + sim " .. sim(2) .. " (not in a group this file lists SIMs for)",
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
      for i = 1, 12 do wanted[#wanted + 1] = sim(500 + i) end -- 12 from elsewhere
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
        "  + 37 SIMs move in (25 from group fleet-a, 12 not in a group this file lists SIMs for); the first 5:",
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

    it("escapes what a SIM id holds that could forge a line", function()
      local a = create("fleet-a")
      local p = plan_of { groups = { { groupId = a, name = "fleet-a", sims = { "x\nPlan: 0 to create\27[2J" } } } }
      assert.are.equal("  + sim x\\nPlan: 0 to create\\x1b[2J (not in a group this file lists SIMs for)",
        plan.render(p)[2])
    end)
  end)

  describe("saved plans", function()
    it("carry the SIM moves, and one whose group's SIMs changed since is skipped, writing nothing", function()
      local a = create("fleet-a", { env = "prod" })
      seed(a, { 1, 2 })
      local file, saved = dir .. "/stale.json", dir .. "/stale.plan"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod", owner = "ops" }, sims = { sim(1), sim(3) } } } })
      local code, out, err = run { "plan", "--prune-sims", file, "-o", saved }
      assert.are.equal(2, code, out .. err)
      local text = slurp(saved)
      has(text, '"version": 2')
      has(text, '"prune_sims": true')
      local change = fake.decode(text).changes[1]
      assert.are.same({ { sim_id = sim(3) } }, change.members.moves_in)
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

    it("refuses --prune-sims beside a saved plan, and a plan file edited to move SIMs out", function()
      local a = create("fleet-a", { env = "prod" })
      seed(a, { 1, 2 })
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
      has(out, "  + sim " .. loose .. " (not in a group this file lists SIMs for)")
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

    it("reports a SIM that does not move as its group's failure, applies the others, exit 1", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      seed(a, { 1, 2 })
      local missing = sim(99999)
      local file = dir .. "/fail.json"
      write_file(file, core.encode_json { scope = { tagName = "env", tagValue = "prod" }, groups = {
        { groupId = a, name = "fleet-a", tags = { env = "prod" }, sims = { sim(1) } },
        { groupId = b, name = "fleet-b", tags = { env = "prod", owner = "ops" }, sims = { missing, sim(2) } } } })
      local code, out, err = run { "apply", "--json", "--yes", file }
      assert.are.equal(1, code, out .. err)
      local result = fake.decode(out)
      assert.are.same({}, result.changed)
      assert.are.equal(1, #result.failed)
      local failure = result.failed[1]
      assert.are.equal("fleet-b", failure.name)
      assert.matches("^1 of 2 SIM%(s%) were not moved in %(its other changes were made%): " .. missing
        .. " %(HTTP 404 ", failure.error.message)
      assert.are.equal(1, #failure.error.sims)
      assert.are.equal(missing, failure.error.sims[1].simId)
      assert.are.equal(404, failure.error.sims[1].error.status)
      assert.are.same({ movedIn = 1, movedOut = 0, failed = 1 }, result.sims)
      assert.are.equal(b, group_of(sim(2)))
      assert.are.equal("ops", assert(client:get_group(b)).tags.owner) -- its other changes were made
      code, out = run { "plan", file }
      assert.are.equal(2, code, out)
      has(out, "  + sim " .. missing .. " (not in a group this file lists SIMs for)")
      has(out, "Plan: 0 to create, 1 to change, 0 to delete; 1 SIM to move in, 0 to move out.")
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

    it("moves more SIMs than move_sims' threshold through one Batch API job, showing a count", function()
      local a = create("fleet-a", { env = "prod" })
      local b = create("fleet-b", { env = "prod" })
      local many = soracom_groups.MOVE_SIMS_BATCH_THRESHOLD + 1
      local numbers = {}
      for i = 1, many do numbers[i] = 2000 + i end
      seed(a, numbers)
      local document = assert(desired.export(client, { with_sims = true }))
      document.groups[2].sims, document.groups[1].sims = document.groups[1].sims, {}
      local file = dir .. "/many.json"
      write_file(file, core.encode_json(document))
      srv:clear_requests()
      local code, out, err = run { "apply", "--yes", file }
      assert.are.equal(0, code, out .. err)
      has(out, "~ group fleet-b\n  + " .. many .. " SIMs move in (" .. many .. " from group fleet-a); the first 5:\n"
        .. "  + sim " .. sim(2001) .. " (from group fleet-a)\n")
      has(out, "SIMs: " .. many .. " moved in, 0 moved out, 0 failed.")
      local lines = select(2, out:gsub("\n", "\n"))
      assert.is_true(lines < 20, out)
      assert.are.equal(1, #srv:batch_jobs())
      assert.are.same({}, requests_of("POST", "^/v1/sims/"))
      assert.are.equal(many, #members(b))
      assert.are.same({}, members(a))
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
      assert.are.same({}, requests_of("GET", "^/v1/groups/" .. lab))
      assert.are.same({}, requests_of("GET", "^/v1/groups/" .. quiet .. "/subscribers"))
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
