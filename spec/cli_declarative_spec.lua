-- soracom-groups export, plan and apply as subprocesses against the fake: a whole
-- session (export -> plan -> edit -> plan -> apply -> plan), exit codes, --json,
-- --prune, confirmation.
local fake = require "spec.support.fake_server"
local command = require "spec.support.command"
local core = require "soracom.groups.core"

describe("soracom-groups export / plan / apply", function()
  local srv, dir

  setup(function()
    srv = fake.start()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. command.quote(dir)))
  end)
  teardown(function()
    srv:stop()
    os.execute("rm -rf " .. command.quote(dir))
  end)
  before_each(function() srv:reset() end)

  local function run(args, opts) return command.against(srv, args, opts) end

  local function seed()
    local create = function(body)
      local code, out, err = run({ "create", "--body", core.encode_json(body) })
      assert(code == 0, err)
      return fake.decode(out).groupId
    end
    return {
      tokyo = create { tags = { name = "sensors-tokyo", env = "prod" },
        configuration = { SoracomAir = { { key = "useCustomDns", value = false } } } },
      old = create { tags = { name = "old-fleet" } },
    }
  end

  it("goes from export to a plan with nothing to do, then applies an edit exactly", function()
    local ids = seed()
    local file = dir .. "/fleet.json"
    local code, _, err = run { "export", "-o", file }
    assert.are.equal(0, code, err)
    local document = fake.decode(command.slurp(file))
    assert.are.same({ "old-fleet", "sensors-tokyo" }, { document.groups[1].name, document.groups[2].name })
    assert.is_nil(document.groups[1].tags.name) -- the name is the group's key, not a tag

    code = run { "plan", file }
    assert.are.equal(0, code)

    -- edit: a tag changed, one added, a setting changed, a new group
    local tokyo = document.groups[2]
    tokyo.tags.env = "staging"
    tokyo.tags.owner = "ops"
    assert.is_false(tokyo.configuration.SoracomAir.useCustomDns)
    tokyo.configuration.SoracomAir.useCustomDns = true
    document.groups[3] = { name = "sensors-osaka", tags = { env = "prod" } }
    command.write_file(file, core.encode_json(document))

    local out
    code, out, err = run { "plan", file }
    assert.are.equal(2, code, err)
    assert.truthy(out:find("+ create group sensors-osaka", 1, true), out)
    assert.truthy(out:find("~ group sensors-tokyo", 1, true), out)
    for _, line in ipairs { "  ~ tag env: prod -> staging", "  + tag owner = ops",
      "  ~ SoracomAir.useCustomDns: false -> true", "Plan: 1 to create, 1 to change, 0 to delete." } do
      assert.truthy(out:find(line, 1, true), line .. "\n" .. out)
    end

    code, out = run({ "plan", "--json", file })
    assert.are.equal(2, code)
    local as_json = fake.decode(out)
    assert.are.same({ create = 1, change = 1, delete = 0 },
      { create = as_json.summary.create, change = as_json.summary.change, delete = as_json.summary.delete })

    -- not on a terminal: nothing changes without --yes
    local stderr
    code, _, stderr = run { "apply", file }
    assert.are.equal(1, code) -- an error, never 2: a CI job reads 2 as "changes to make"
    assert.truthy(stderr:find("pass --yes", 1, true), stderr)
    local _, before = run { "get", "--group-id", ids.tokyo }
    assert.are.equal("prod", fake.decode(before).tags.env)

    code, out = run { "apply", "--yes", file }
    assert.are.equal(0, code, out)
    assert.truthy(out:find("Applied 2, skipped 0, failed 0.", 1, true), out)

    code, out = run { "plan", file }
    assert.are.equal(0, code, out)
  end)

  it("deletes what the document leaves out only with --prune", function()
    seed()
    local file = dir .. "/only-tokyo.json"
    command.write_file(file, core.encode_json { scope = "account", groups = { { name = "sensors-tokyo",
      tags = { env = "prod" } } } })
    local code, out = run { "plan", file }
    assert.are.equal(0, code, out)
    code, out = run { "plan", "--prune", file }
    assert.are.equal(2, code)
    assert.truthy(out:find("- delete group old-fleet", 1, true), out)
    code, out = run { "apply", "--prune", "--yes", file }
    assert.are.equal(0, code, out)
    code = run { "plan", "--prune", file }
    assert.are.equal(0, code)
  end)

  it("reports a document error with its place, exit 1", function()
    local file = dir .. "/bad.json"
    command.write_file(file, '{"groups":[{"name":"a","tags":{"env":1}}]}')
    local code, _, err = run { "plan", file }
    assert.are.equal(1, code)
    assert.truthy(err:find("groups[1].tags.env must be a string", 1, true), err)
  end)

  it("shows the plan with --dry-run and changes nothing", function()
    seed()
    local file = dir .. "/new.json"
    command.write_file(file, core.encode_json { groups = { { name = "brand-new" } } })
    local code, out = run { "apply", "--dry-run", file }
    assert.are.equal(2, code)
    assert.truthy(out:find("+ create group brand-new", 1, true), out)
    code = run { "plan", file }
    assert.are.equal(2, code) -- still to do
  end)
end)
