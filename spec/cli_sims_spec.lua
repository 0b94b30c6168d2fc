-- soracom-groups' SIM membership subcommands against the fake server: sims and
-- subscribers set-group / unset-group, and move-sims (its input, calls and Batch API
-- jobs, --json, the progress line, exit codes).
local fake = require "spec.support.fake_server"
local command = require "spec.support.command"
local tempdir = require "spec.support.tempdir"

describe("soracom-groups SIM membership", function()
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

  -- With an AuthKey, so that anything sent (a login included) is recorded.
  local function run(args, opts)
    opts = opts or {}
    opts.prefix = { "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id, "--auth-key", srv.auth_key }
    return command.run(args, opts)
  end

  local function file_with(name, text)
    local path = dir .. "/" .. name
    command.write_file(path, text)
    return path
  end

  describe("--help", function()
    local examples = {
      ["sims set-group"] = "soracom-groups sims set-group --sim-id 8981100000000000001 --group-id ID",
      ["sims unset-group"] = "soracom-groups sims unset-group --sim-id 8981100000000000001",
      ["subscribers set-group"] = "soracom-groups subscribers set-group --imsi 440100000000001 --group-id ID",
      ["subscribers unset-group"] = "soracom-groups subscribers unset-group --imsi 440100000000001",
      ["move-sims"] = "soracom-groups list-subscribers --group-id OLD --fetch-all --jsonl "
        .. "| soracom-groups move-sims --group-id NEW -",
    }
    for name, example in pairs(examples) do
      it("of " .. name .. " shows its usage and an example, exit 0", function()
        local words = {}
        for word in name:gmatch("%S+") do words[#words + 1] = word end
        words[#words + 1] = "--help"
        local code, out, err = command.run(words)
        assert.are.same({ 0, "" }, { code, err })
        assert.are.equal("Usage: soracom-groups " .. name .. " ", out:sub(1, #name + 23))
        assert.is_truthy(out:find("\nExample:\n  " .. example .. "\n", 1, true), out)
      end)
    end

    it("of the command lists sims, subscribers and move-sims", function()
      local code, out = command.run { "--help" }
      assert.are.equal(0, code)
      for _, name in ipairs { "sims", "subscribers", "move-sims" } do
        assert.is_truthy(out:find("\n   " .. name:gsub("%-", "%%-") .. "%s"), name)
      end
    end)

    it("of move-sims says what input it takes and its exit codes", function()
      local _, out = command.run { "move-sims", "--help" }
      assert.is_truthy(out:find("or a JSON array of SIM ids or\nSIM objects", 1, true), out)
      assert.is_truthy(out:find("Exit codes: 0 every SIM moved (or already there), 1 any SIM not moved", 1, true))
    end)
  end)

  describe("a usage error", function()
    local CONTROL = "8981\n100"
    -- args (FILE: a file of the case's text; "-": its text on stdin), the text, the
    -- message (a pattern when it starts with ^)
    local cases = {
      { { "sims", "set-group", "--sim-id", "s1" }, nil,
        "soracom-groups: missing option '--group-id'\nTry 'soracom-groups sims --help'.\n" },
      { { "sims" }, nil, "soracom-groups: a command is required\nTry 'soracom-groups sims --help'.\n" },
      { { "sims", "set-group", "--sim-id", CONTROL, "--group-id", "g" }, nil,
        'soracom-groups: --sim-id: "8981\\n100" holds a control character\n' },
      { { "sims", "unset-group", "--sim-id", "" }, nil,
        'soracom-groups: --sim-id: unset_sim_group: sim_id must be a non-empty string (got "")\n' },
      { { "subscribers", "set-group", "--imsi", "4401\r0", "--group-id", "g" }, nil,
        'soracom-groups: --imsi: "4401\\r0" holds a control character\n' },
      { { "subscribers", "unset-group", "--imsi", ".." }, nil,
        'soracom-groups: --imsi: unset_subscriber_group: imsi must not be ".."\n' },
      { { "subscribers", "set-group", "--imsi", "4401", "--group-id", "a\tb" }, nil,
        'soracom-groups: --group-id: "a\\tb" holds a control character\n' },
      { { "move-sims", "--sim-id", "s1" }, nil, "soracom-groups: give --group-id G to move the SIMs into a "
        .. "group, or --unset to take them out of theirs\n" },
      { { "move-sims", "--group-id", "g", "--unset", "--sim-id", "s1" }, nil,
        "soracom-groups: option '--unset' can not be used together with option '--group-id'\n"
        .. "Try 'soracom-groups move-sims --help'.\n" },
      { { "move-sims", "--group-id", "g", "--batch", "--no-batch", "--sim-id", "s1" }, nil,
        "soracom-groups: option '--no-batch' can not be used together with option '--batch'\n"
        .. "Try 'soracom-groups move-sims --help'.\n" },
      { { "move-sims", "--group-id", "g" }, nil, "soracom-groups: no SIMs given: give them by --sim-id ID "
        .. "(repeated), --from-file FILE or - (stdin)\n" },
      { { "move-sims", "--group-id", "g", "--sim-id", "s1", "-" }, "s2\n", "soracom-groups: SIMs given by "
        .. "both --sim-id and -: give them by --sim-id ID (repeated), --from-file FILE or - (stdin)\n" },
      { { "move-sims", "--unset", "--from-file", "FILE", "-" }, "s2\n", "soracom-groups: SIMs given by "
        .. "both --from-file and -: give them by --sim-id ID (repeated), --from-file FILE or - (stdin)\n" },
      { { "move-sims", "--group-id", "g", "s1" }, nil, "soracom-groups: unexpected argument 's1': the only "
        .. "word move-sims takes is - (read the SIMs from stdin); give each SIM as --sim-id ID\n" },
      { { "move-sims", "--group-id", "g", "--sim-id", "s1", "--sim-id", "s2", "--sim-id", "s1" }, nil,
        "soracom-groups: --sim-id #3 repeats --sim-id #1 (s1)\n" },
      { { "move-sims", "--group-id", "g", "--sim-id", "s 1" }, nil,
        'soracom-groups: --sim-id #1: the SIM id "s 1" holds a space\n' },
      { { "move-sims", "--group-id", "g", "--sim-id", "s1", "--sim-id", CONTROL }, nil,
        'soracom-groups: --sim-id #2: the SIM id "8981\\n100" holds a control character\n' },
      { { "move-sims", "--group-id", "g", "--sim-id", "" }, nil,
        "soracom-groups: --sim-id #1: the SIM id is empty\n" },
      { { "move-sims", "--group-id", CONTROL, "--sim-id", "s1" }, nil,
        'soracom-groups: --group-id: "8981\\n100" holds a control character\n' },
      { { "move-sims", "--group-id", "g", "--batch", "--concurrency", "4", "--sim-id", "s1" }, nil,
        "soracom-groups: --concurrency sets the calls made at once, and --batch makes none: the Batch API "
        .. "moves the SIMs\n" },
      { { "move-sims", "--group-id", "g", "--concurrency", "0", "--sim-id", "s1" }, nil,
        "soracom-groups: --concurrency expects a whole number from 1 to 1024 (got '0')\n"
        .. "Try 'soracom-groups move-sims --help'.\n" },
      { { "move-sims", "--group-id", "g", "--skip-current", "--sim-id", "s1" }, nil,
        "soracom-groups: --skip-current needs each SIM's current group: give SIM objects (with simId and "
        .. "groupId, as list-subscribers prints them), not SIM ids alone (--sim-id #1)\n" },
      { { "move-sims", "--group-id", "g", "--skip-current", "-" }, '[{"simId": "s1"}, "s2"]',
        "soracom-groups: --skip-current needs each SIM's current group: give SIM objects (with simId and "
        .. "groupId, as list-subscribers prints them), not SIM ids alone (item 2)\n" },
      { { "move-sims", "--group-id", "g", "--from-file", "no-such-file.txt" }, nil,
        "^soracom%-groups: %-%-from%-file no%-such%-file%.txt: cannot read the file: no%-such%-file%.txt: "
        .. "No such file or directory\n$" },
      { { "move-sims", "--group-id", "g", "--from-file", "FILE" }, "", "soracom-groups: --from-file FILE: "
        .. "no SIM in it; expected one SIM a line (its id, or its JSON object as list-subscribers --jsonl "
        .. "prints it), or a JSON array of SIM ids or SIM objects\n" },
      { { "move-sims", "--group-id", "g", "-" }, "# nothing yet\n\n   \n", "soracom-groups: stdin: no SIM in "
        .. "it; expected one SIM a line (its id, or its JSON object as list-subscribers --jsonl prints it), "
        .. "or a JSON array of SIM ids or SIM objects\n" },
      { { "move-sims", "--group-id", "g", "--from-file", "-" }, " [ ]\n", "soracom-groups: stdin: no SIM "
        .. "in it; expected one SIM a line (its id, or its JSON object as list-subscribers --jsonl prints it), "
        .. "or a JSON array of SIM ids or SIM objects\n" },
      { { "move-sims", "--group-id", "g", "-" }, "s1\n# a comment\n\ns2\r\n  s3  \ns2\n",
        "soracom-groups: stdin: line 6 repeats line 4 (s2)\n" },
      { { "move-sims", "--group-id", "g", "-" }, "s1\ns2 s3\n",
        'soracom-groups: stdin: line 2: the SIM id "s2 s3" holds a space\n' },
      { { "move-sims", "--group-id", "g", "-" }, 's1\n{"simId": "s2", "groupId": null}\n{"simId": "s1"}\n',
        "soracom-groups: stdin: line 3 repeats line 1 (s1)\n" },
      { { "move-sims", "--group-id", "g", "-" }, '{"simId": "s1"}\n{"simId": 898}\n',
        'soracom-groups: stdin: line 2: a SIM object needs its "simId", a string (got a number)\n' },
      { { "move-sims", "--group-id", "g", "-" }, '{"imsi": "440100000000001"}\n',
        'soracom-groups: stdin: line 1: a SIM object needs its "simId", a string (got none)\n' },
      { { "move-sims", "--group-id", "g", "-" }, 's1\n{"simId": "s2",\n',
        "^soracom%-groups: stdin: line 2: not valid JSON: .+\n$" },
      { { "move-sims", "--group-id", "g", "-" }, '{"simId": "s1", "groupId": 7}\n',
        'soracom-groups: stdin: line 1: "groupId" must be a string or null (got a number)\n' },
      { { "move-sims", "--group-id", "g", "-" }, '["s1", 8981100000000000001]',
        "soracom-groups: stdin: item 2: got a number, not a SIM id (a string) or a SIM object\n" },
      { { "move-sims", "--group-id", "g", "-" }, '[["s1"]]',
        "soracom-groups: stdin: item 1: got an array, not a SIM id (a string) or a SIM object\n" },
      { { "move-sims", "--group-id", "g", "-" }, '["s1", {"simId": "s2"}, "s2"]',
        "soracom-groups: stdin: item 3 repeats item 2 (s2)\n" },
      { { "move-sims", "--group-id", "g", "-" }, '["s1", "s\\u0000"]',
        'soracom-groups: stdin: item 2: the SIM id "s\\000" holds a control character\n' },
      { { "move-sims", "--group-id", "g", "-" }, '["s1", ".."]',
        'soracom-groups: stdin: item 2: the SIM id ".." is no SIM id\n' },
      { { "move-sims", "--group-id", "g", "-" }, '["s1",',
        "^soracom%-groups: stdin: not valid JSON: .+; expected one SIM a line %(its id, or its JSON object as "
        .. "list%-subscribers %-%-jsonl prints it%), or a JSON array of SIM ids or SIM objects\n$" },
    }
    for _, case in ipairs(cases) do
      local name = table.concat(case[1], " "):gsub("%c", "?")
      it(name .. (case[2] and " <<< " .. case[2]:gsub("%c", "?") or "") .. ": exit 2, nothing sent", function()
        local args, path = {}, nil
        for i, word in ipairs(case[1]) do
          if word == "FILE" then
            path = path or file_with("input.txt", case[2])
            word = path
          end
          args[i] = word
        end
        local code, out, err = run(args, { stdin = case[2] })
        assert.are.same({ 2, "" }, { code, out })
        local message = case[3]
        if path then
          message = message:gsub("%-%-from%-file FILE:", function() return "--from-file " .. path .. ":" end)
        end
        if message:sub(1, 1) == "^" then
          assert.matches(message, err)
        else
          assert.are.equal(message, err)
        end
        assert.are.same({}, srv:requests())
      end)
    end

    it("of an input larger than 64 MiB: exit 2, nothing sent", function()
      local path = dir .. "/huge.txt"
      assert(os.execute("head -c 67108865 /dev/zero | tr '\\000' 's' > " .. command.quote(path)))
      local code, out, err = run { "move-sims", "--group-id", "g", "--from-file", path }
      assert.are.same({ 2, "" }, { code, out })
      assert.are.equal("soracom-groups: --from-file " .. path .. ": larger than 67108864 bytes, the most "
        .. "the command reads\n", err)
      assert.are.same({}, srv:requests())
      os.remove(path)
    end)
  end)
end)
