-- soracom-groups' exit codes for usage errors: export, plan and apply give 1 for every
-- error (terraform's -detailed-exitcode, where plan's 2 means "changes to make"); the
-- raw subcommands keep soracom-cli's 2.
local fake = require "spec.support.fake_server"
local command = require "spec.support.command"

-- A stream for cli.main run in this process: what was written, as one string.
local function buffer()
  local parts = {}
  return {
    write = function(self, ...)
      for i = 1, select("#", ...) do parts[#parts + 1] = tostring(select(i, ...)) end
      return self
    end,
    flush = function(self) return self end,
    text = function() return table.concat(parts) end,
  }
end

describe("soracom-groups exit codes", function()
  local srv, file

  setup(function()
    srv = fake.start()
    file = os.tmpname()
    command.write_file(file, '{"groups": []}')
  end)
  teardown(function()
    srv:stop()
    os.remove(file)
  end)
  before_each(function() srv:reset() end)

  -- With an AuthKey, so that anything sent (a login included) is recorded.
  local function run(args, opts)
    opts = opts or {}
    opts.prefix = { "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id, "--auth-key", srv.auth_key }
    return command.run(args, opts)
  end

  describe("a usage error", function()
    -- args, exit code, the subcommand the message's help hint names
    local cases = {
      { { "plan", "--no-such-flag", "FILE" }, 1, "plan" },
      { { "plan" }, 1, "plan" },
      { { "plan", "FILE", "extra" }, 1, "plan" },
      { { "plan", "FILE", "--timeout", "0" }, 1, "plan" },
      { { "--coverage-type", "eu", "plan", "FILE" }, 1, "plan" },
      { { "--bogus", "plan", "FILE" }, 1, "plan" },
      { { "apply" }, 1, "apply" },
      { { "apply", "FILE", "--yes", "--concurrency", "0" }, 1, "apply" },
      { { "export", "--bogus" }, 1, "export" },
      { { "export", "-o" }, 1, "export" },
      { { "list", "--bogus" }, 2, "list" },
      { { "list", "--limit", "0" }, 2, "list" },
      { { "list", "--tag-name", "plan", "--bogus" }, 2, "list" },
      { { "--profile", "plan", "list", "--bogus" }, 2, "list" }, -- plan: --profile's value
      { { "get" }, 2, "get" },
      { { "frobnicate" }, 2, nil },
      { {}, 2, nil },
    }
    for _, case in ipairs(cases) do
      local args, code, subcommand = {}, case[2], case[3]
      for i, word in ipairs(case[1]) do args[i] = word == "FILE" and file or word end
      it(table.concat(case[1], " ") .. ": exit " .. code .. ", nothing sent", function()
        local got, out, err = run(args)
        assert.are.same({ code, "" }, { got, out })
        local hint = "\nTry 'soracom-groups " .. (subcommand and subcommand .. " " or "") .. "--help'.\n"
        assert.are.equal("soracom-groups: ", err:sub(1, 16))
        assert.are.equal(hint, err:sub(-#hint))
        assert.are.same({}, srv:requests())
      end)
    end

    it("of put-config's --body: exit 2, nothing sent", function()
      local code, out, err = run { "put-config", "--group-id", "g", "--namespace", "SoracomAir",
        "--body", '{"key":"useCustomDns","value":true}' }
      assert.are.same({ 2, "" }, { code, out })
      assert.are.equal("soracom-groups: --body: got an object, not an array; "
        .. 'expected [{"key": "useCustomDns", "value": true}, ...]\n', err)
      assert.are.same({}, srv:requests())
    end)
  end)

  describe("--help", function()
    for _, args in ipairs { { "--help" }, { "plan", "--help" }, { "apply", "--help" }, { "list", "--help" } } do
      it(table.concat(args, " ") .. ": exit 0", function()
        local code, out, err = run(args)
        assert.are.same({ 0, "" }, { code, err })
        assert.are.equal("Usage: soracom-groups ", out:sub(1, 22))
      end)
    end

    it("says which subcommands give which codes", function()
      local _, out = run { "--help" }
      assert.is_truthy(out:find("\nExit codes: 0 ok, 1 an API or network error, 2 a usage error;\n"
        .. "export, plan and apply: 0 ok, 1 any error (a usage error too),\n"
        .. "2 (plan, apply --dry-run) changes to make.\n", 1, true), out)
    end)
  end)

  -- The contract of cli.init with the modules of its COMMANDS, whatever the declarative
  -- module returns today: a second value of add_commands names a subcommand's usage code.
  describe("add_commands' usage codes", function()
    local DECLARATIVE = "soracom.groups.cli.declarative"
    local saved

    before_each(function()
      saved = package.loaded[DECLARATIVE]
      package.loaded[DECLARATIVE] = {
        add_commands = function(parser)
          parser:command("strict"):argument("file")
          parser:command("loose"):argument("file")
          local handler = function() return 0 end
          return { strict = handler, loose = handler }, { strict = 7 }
        end,
      }
    end)
    after_each(function() package.loaded[DECLARATIVE] = saved end)

    local function main(argv)
      local stdout, stderr = buffer(), buffer()
      local code = require("soracom.groups.cli").main(argv, { stdout = stdout, stderr = stderr })
      return code, stdout.text(), stderr.text()
    end

    it("a parse error naming a subcommand with a code exits with it", function()
      local code, out, err = main { "strict", "--bogus", "f" }
      assert.are.same({ 7, "" }, { code, out })
      assert.are.equal("soracom-groups: unknown option '--bogus'\nTry 'soracom-groups strict --help'.\n", err)
      assert.are.equal(7, (main { "strict" }))
      assert.are.equal(7, (main { "--timeout", "x", "strict", "f" }))
    end)

    it("others exit with cli.USAGE, 2", function()
      assert.are.equal(2, (main { "loose", "--bogus", "f" }))
      assert.are.equal(2, (main { "list", "--bogus" }))
      assert.are.equal(2, (main { "--endpoint", "strict", "list", "--bogus" }))
      assert.are.equal(2, (main {}))
    end)

    it("a run without a parse error is the handler's", function()
      assert.are.equal(0, (main { "strict", "f" }))
    end)
  end)
end)
