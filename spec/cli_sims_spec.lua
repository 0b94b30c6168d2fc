-- soracom-groups' SIM membership subcommands against the fake server: sims and
-- subscribers set-group / unset-group, and move-sims (its input, calls and Batch API
-- jobs, --json, the progress line, exit codes).
local fake = require "spec.support.fake_server"
local command = require "spec.support.command"
local tempdir = require "spec.support.tempdir"

local unpack = table.unpack or unpack

describe("soracom-groups SIM membership", function()
  local srv, dir, login

  setup(function()
    srv, dir = fake.start(), tempdir.new()
    -- an AuthKey, so that anything sent (a login included) is recorded
    login = { "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id, "--auth-key", srv.auth_key }
  end)
  teardown(function() srv:stop() tempdir.remove(dir) end)
  before_each(function() srv:reset() end)

  local function run(args, opts)
    opts = opts or {}
    opts.prefix = login
    return command.run(args, opts)
  end

  local function file_with(name, text)
    local path = dir .. "/" .. name
    command.write_file(path, text)
    return path
  end

  describe("--help", function()
    local examples = {
      ["sims get"] = "soracom-groups sims get --sim-id 8981100000000000001",
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
      { { "move-sims", "--group-id", "g", "--no-batch", "--job-timeout", "5", "--sim-id", "s1" }, nil,
        "soracom-groups: --job-timeout bounds a Batch API job, and --no-batch makes none: one call moves each SIM\n" },
      { { "move-sims", "--group-id", "g", "--job-timeout", "0", "--sim-id", "s1" }, nil,
        "soracom-groups: --job-timeout expects a whole number from 1 to 2147483647 (got '0')\n"
        .. "Try 'soracom-groups move-sims --help'.\n" },
      { { "move-sims", "--group-id", "g", "--concurrency", "0", "--sim-id", "s1" }, nil,
        "soracom-groups: --concurrency expects a whole number from 1 to 1024 (got '0')\n"
        .. "Try 'soracom-groups move-sims --help'.\n" },
      { { "move-sims", "--group-id", "g", "--skip-current", "--sim-id", "s1" }, nil,
        "soracom-groups: --skip-current needs each SIM's current group: give SIM objects (with simId and "
        .. "groupId, as list-subscribers prints them), not SIM ids alone (--sim-id #1)\n" },
      { { "move-sims", "--group-id", "g", "--skip-current", "-" }, '[{"simId": "s1"}, "s2"]',
        "soracom-groups: --skip-current needs each SIM's current group: give SIM objects (with simId and "
        .. "groupId, as list-subscribers prints them), not SIM ids alone (item 2)\n" },
      -- without "groupId", a SIM in a group would pass for one in none: --unset would leave it
      { { "move-sims", "--unset", "--skip-current", "-" }, '{"simId": "8981100000000000006"}\n',
        "soracom-groups: --skip-current needs each SIM's current group: the SIM object at line 1 "
        .. '(8981100000000000006) has no "groupId" (give null for a SIM in no group)\n' },
      { { "move-sims", "--group-id", "g", "--skip-current", "-" },
        '[{"simId": "s1", "groupId": null}, {"simId": "s2", "groupId": "g"}, {"simId": "s3"}]',
        "soracom-groups: --skip-current needs each SIM's current group: the SIM object at item 3 (s3) has no "
        .. '"groupId" (give null for a SIM in no group)\n' },
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

  -- The request the fake recorded for method and path (the first), or nil.
  local function request_to(method, path)
    for _, request in ipairs(srv:requests()) do
      if request.method == method and request.uri == path then return request end
    end
  end

  -- Requests the fake counted for an API ("POST /v1/sims/{sim_id}/set_group"), 0 for none.
  local function count(api)
    local counted = srv:stats().by_api[api]
    return counted and counted.requests or 0
  end

  local SET_GROUP, UNSET_GROUP = "POST /v1/sims/{sim_id}/set_group", "POST /v1/sims/{sim_id}/unset_group"
  local CREATE_JOB = "POST /v1/batch_groups/{batch_group_id}/jobs"

  describe("sims and subscribers", function()
    it("sims get prints the SIM, pretty, with the group it is in; --jsonl on one line", function()
      local group = srv:seed_groups(1, { name = "fleet-a" })[1]
      local ids, imsis = srv:add_sims { count = 2, group_id = group }
      local code, out, err = run { "sims", "get", "--sim-id", ids[2] }
      assert.are.same({ 0, "" }, { code, err })
      assert.are.equal("{\n  ", out:sub(1, 4))
      local sim = fake.decode(out)
      assert.are.same({ ids[2], group, imsis[2] }, { sim.simId, sim.groupId, sim.imsi })
      assert.is_truthy(request_to("GET", "/v1/sims/" .. ids[2]))
      local loose = srv:add_sims { count = 1 }[1]
      code, out, err = run { "sims", "get", "--sim-id", loose, "--jsonl" }
      assert.are.same({ 0, "" }, { code, err })
      assert.matches("^{[^\n]+}\n$", out)
      sim = fake.decode(out)
      assert.are.same({ loose, nil }, { sim.simId, sim.groupId })
    end)

    it("sims get of an unknown SIM: exit 1, the API's error on stderr, nothing on stdout", function()
      local code, out, err = run { "sims", "get", "--sim-id", "8981199999999999999" }
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^soracom%-groups: GET /sims/8981199999999999999: HTTP 404 %(SIM0004%): [^\n]+\n$", err)
    end)

    it("sims set-group puts the SIM into the group and prints the SIM, pretty", function()
      local group = srv:seed_groups(1, { name = "fleet-b" })[1]
      local ids = srv:add_sims { count = 2 }
      local code, out, err = run { "sims", "set-group", "--sim-id", ids[1], "--group-id", group }
      assert.are.same({ 0, "" }, { code, err })
      assert.are.equal("{\n  ", out:sub(1, 4))
      local sim = fake.decode(out)
      assert.are.same({ ids[1], group }, { sim.simId, sim.groupId })
      assert.are.equal(group, srv:sim(ids[1]).groupId)
      assert.is_nil(srv:sim(ids[2]).groupId)
      local request = request_to("POST", "/v1/sims/" .. ids[1] .. "/set_group")
      assert.are.same({ groupId = group }, fake.decode(request.body))
    end)

    it("sims set-group --jsonl prints the SIM on one line", function()
      local group = srv:seed_groups(1, { name = "fleet-b" })[1]
      local ids = srv:add_sims { count = 1 }
      local code, out = run { "sims", "set-group", "--sim-id", ids[1], "--group-id", group, "--jsonl" }
      assert.are.equal(0, code)
      assert.matches("^{[^\n]+}\n$", out)
      assert.are.equal(group, fake.decode(out).groupId)
    end)

    it("sims unset-group takes the SIM out of its group", function()
      local group = srv:seed_groups(1, { name = "fleet-a" })[1]
      local ids = srv:add_sims { count = 2, group_id = group }
      local code, out, err = run { "sims", "unset-group", "--sim-id", ids[2] }
      assert.are.same({ 0, "" }, { code, err })
      local sim = fake.decode(out)
      assert.are.same({ ids[2], nil }, { sim.simId, sim.groupId })
      assert.is_nil(srv:sim(ids[2]).groupId)
      assert.are.equal(group, srv:sim(ids[1]).groupId)
      assert.is_truthy(request_to("POST", "/v1/sims/" .. ids[2] .. "/unset_group"))
    end)

    it("subscribers set-group and unset-group move the SIM holding an IMSI, any of its IMSIs", function()
      local group = srv:seed_groups(1, { name = "fleet-b" })[1]
      local ids, _, all_imsis = srv:add_sims { count = 1, imsis = 2 }
      local second = all_imsis[1][2]
      local code, out, err = run { "subscribers", "set-group", "--imsi", second, "--group-id", group }
      assert.are.same({ 0, "" }, { code, err })
      assert.are.equal(group, fake.decode(out).groupId)
      assert.are.equal(group, srv:sim(ids[1]).groupId)
      assert.is_truthy(request_to("POST", "/v1/subscribers/" .. second .. "/set_group"))

      code, out, err = run { "subscribers", "unset-group", "--imsi", second, "--jsonl" }
      assert.are.same({ 0, "" }, { code, err })
      assert.matches("^{[^\n]+}\n$", out)
      assert.is_nil(fake.decode(out).groupId)
      assert.is_nil(srv:sim(ids[1]).groupId)
    end)

    it("an unknown SIM or group: exit 1, the API's error on stderr, nothing on stdout", function()
      local group = srv:seed_groups(1, { name = "fleet-b" })[1]
      local ids = srv:add_sims { count = 1 }
      local code, out, err = run { "sims", "set-group", "--sim-id", "8981199999999999999", "--group-id", group }
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^soracom%-groups: POST /sims/8981199999999999999/set_group: HTTP 404 %(SIM0004%): [^\n]+\n$",
        err)
      code, out, err = run { "sims", "set-group", "--sim-id", ids[1], "--group-id", "no-such-group" }
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^soracom%-groups: POST /sims/" .. ids[1] .. "/set_group: HTTP 404 %(COM0004%): [^\n]+\n$", err)
      assert.is_nil(srv:sim(ids[1]).groupId)
    end)
  end)

  describe("move-sims", function()
    local from, to

    before_each(function()
      local ids = srv:seed_groups(2, { env = "ci" })
      from, to = ids[1], ids[2]
    end)

    -- args, followed by --sim-id ID for each of ids.
    local function with_sims(args, ids)
      for _, id in ipairs(ids) do
        args[#args + 1] = "--sim-id"
        args[#args + 1] = id
      end
      return args
    end

    -- Whether every SIM of ids is in group (nil: in none).
    local function all_in(ids, group)
      for _, id in ipairs(ids) do
        if srv:sim(id).groupId ~= group then return false end
      end
      return true
    end

    -- Runs the command and checks that it moved every SIM of ids into `to`, one call
    -- each, and said so on stdout alone (no progress line off a terminal).
    local function moves_all_to(ids, args, opts)
      local code, out, err = run(args, opts)
      assert.are.same({ 0, "" }, { code, err })
      assert.are.equal("Moved " .. #ids .. " of " .. #ids .. " SIMs into group " .. to .. ", skipped 0, failed 0 "
        .. "(one call each).\n", out)
      assert.is_true(all_in(ids, to))
    end

    it("moves the SIMs of --sim-id one call each, prints a summary line, no progress off a terminal", function()
      local ids = srv:add_sims { count = 3, group_id = from }
      local others = srv:add_sims { count = 1, group_id = from }
      moves_all_to(ids, with_sims({ "move-sims", "--group-id", to }, ids))
      assert.is_true(all_in(others, from))
      assert.are.same({ 3, 0 }, { count(SET_GROUP), count(CREATE_JOB) })
    end)

    it("--unset takes them out of their groups", function()
      local ids = srv:add_sims { count = 2, group_id = from }
      local code, out = run { "move-sims", "--unset", "--sim-id", ids[1], "--sim-id", ids[2] }
      assert.are.equal(0, code)
      assert.are.equal("Moved 2 of 2 SIMs out of their groups, skipped 0, failed 0 (one call each).\n", out)
      assert.is_true(all_in(ids, nil))
      assert.are.same({ 2, 0 }, { count(UNSET_GROUP), count(SET_GROUP) })
    end)

    it("--from-file reads one SIM a line, comments and blank lines skipped", function()
      local ids = srv:add_sims { count = 3 }
      local path = file_with("sims.txt", "# fleet b\n" .. ids[1] .. "\n\n  " .. ids[2] .. "\t\r\n"
        .. '{"simId": "' .. ids[3] .. '", "groupId": null}\n')
      moves_all_to(ids, { "move-sims", "--group-id", to, "--from-file", path })
    end)

    it("- reads list-subscribers --fetch-all's JSON array from stdin", function()
      local ids = srv:add_sims { count = 3, group_id = from }
      local _, listed = run { "list-subscribers", "--group-id", from, "--fetch-all" }
      assert.are.equal("[", listed:sub(1, 1))
      moves_all_to(ids, { "move-sims", "--group-id", to, "-" }, { stdin = listed })
    end)

    it("--unset --skip-current takes out a SIM whose groupId names its group, and leaves one with null", function()
      local placed = srv:add_sims { count = 1, group_id = from }[1]
      local loose = srv:add_sims { count = 1 }[1]
      local code, out, err = run({ "move-sims", "--unset", "--skip-current", "-" }, { stdin = '{"simId": "'
        .. placed .. '", "groupId": "' .. from .. '"}\n{"simId": "' .. loose .. '", "groupId": null}\n' })
      assert.are.same({ 0, "" }, { code, err })
      assert.are.equal("Moved 1 of 2 SIMs out of their groups, skipped 1, failed 0 (one call each).\n", out)
      assert.is_nil(srv:sim(placed).groupId)
      assert.are.same({ 1, "/v1/sims/" .. placed .. "/unset_group" }, { count(UNSET_GROUP),
        request_to("POST", "/v1/sims/" .. placed .. "/unset_group").uri })
    end)

    it("--skip-current leaves alone the SIMs of list-subscribers --jsonl already in place", function()
      local staying = srv:add_sims { count = 2, group_id = to }
      local moving = srv:add_sims { count = 1, group_id = from }
      local _, in_to = run { "list-subscribers", "--group-id", to, "--fetch-all", "--jsonl" }
      local _, in_from = run { "list-subscribers", "--group-id", from, "--fetch-all", "--jsonl" }
      srv:clear_stats()
      local code, out = run({ "move-sims", "--group-id", to, "--skip-current", "--from-file", "-" },
        { stdin = in_to .. in_from })
      assert.are.equal(0, code)
      assert.are.equal("Moved 1 of 3 SIMs into group " .. to .. ", skipped 2, failed 0 (one call each).\n", out)
      assert.is_true(all_in(staying, to))
      assert.is_true(all_in(moving, to))
      assert.are.equal(1, count(SET_GROUP))
      assert.is_truthy(request_to("POST", "/v1/sims/" .. moving[1] .. "/set_group"))

      -- the same input again (moving's groupId in it is still the old one), in JSON
      code, out = run({ "move-sims", "--group-id", to, "--skip-current", "--json", "-" },
        { stdin = in_to .. in_from })
      assert.are.equal(0, code)
      local printed = fake.decode(out)
      assert.are.same({ { simId = staying[1], ok = true, skipped = true }, { simId = staying[2], ok = true,
        skipped = true }, { simId = moving[1], ok = true } }, printed.results)
      assert.are.same({ mode = "calls", groupId = to, total = 3, moved = 1, skipped = 2, failed = 0,
        unknown = 0 }, printed.summary)
    end)

    it("--concurrency sets the calls made at once (8 by default)", function()
      -- the first call of an API goes alone (the rate budget learns its limit), then
      -- the other eight overlap as far as the concurrency lets them
      local ids = srv:add_sims { count = 9 }
      srv:settings { latency = 0.15 }
      assert.are.equal(0, (run(with_sims({ "move-sims", "--group-id", to, "--concurrency", "4" }, ids))))
      assert.are.equal(4, srv:stats().max_in_flight)
      srv:clear_stats()
      assert.are.equal(0, (run(with_sims({ "move-sims", "--unset" }, ids))))
      assert.are.equal(require("soracom.groups.batch").DEFAULTS.concurrency, srv:stats().max_in_flight)
      assert.is_true(all_in(ids, nil))
    end)

    it("a SIM not moved: the others move, its error on stderr, exit 1", function()
      local ids = srv:add_sims { count = 2 }
      local missing = "8981199999999999999"
      local code, out, err = run { "move-sims", "--group-id", to, "--sim-id", ids[1], "--sim-id", missing,
        "--sim-id", ids[2] }
      assert.are.equal(1, code)
      assert.are.equal("Moved 2 of 3 SIMs into group " .. to .. ", skipped 0, failed 1 (one call each).\n", out)
      assert.matches("^soracom%-groups: SIM " .. missing .. ": POST /sims/" .. missing .. "/set_group: "
        .. "HTTP 404 %(SIM0004%): [^\n]+\n$", err)
      assert.is_true(all_in(ids, to))
    end)

    it("--json prints each SIM's result and the summary, and no secret", function()
      local ids = srv:add_sims { count = 2, group_id = from }
      local missing = "8981199999999999999"
      local code, out, err = run { "move-sims", "--group-id", to, "--json", "--sim-id", ids[1], "--sim-id",
        missing, "--sim-id", ids[2] }
      assert.are.equal(1, code)
      assert.matches("^soracom%-groups: SIM " .. missing .. ": ", err)
      local printed = fake.decode(out)
      assert.are.same({ mode = "calls", groupId = to, total = 3, moved = 2, skipped = 0, failed = 1,
        unknown = 0 }, printed.summary)
      assert.are.same({ simId = ids[1], ok = true }, printed.results[1])
      assert.are.same({ simId = ids[2], ok = true }, printed.results[3])
      local failure = printed.results[2]
      assert.are.same({ missing, false }, { failure.simId, failure.ok })
      assert.are.same({ kind = "http", status = 404, code = "SIM0004", method = "POST",
        path = "/sims/" .. missing .. "/set_group" },
        { kind = failure.error.kind, status = failure.error.status, code = failure.error.code,
          method = failure.error.method, path = failure.error.path })
      assert.are.equal("string", type(failure.error.message))
      assert.are.equal(3, #printed.results)
      for _, secret in ipairs { srv.auth_key, srv.auth_key_id } do
        assert.is_nil(out:find(secret, 1, true))
        assert.is_nil(err:find(secret, 1, true))
      end
    end)

    it("--batch moves them as one Batch API job, a failed task reported with its SIM id", function()
      local ids = srv:add_sims { count = 3, group_id = from }
      srv:batch_task_faults { sim_ids = { ids[2] }, status = 500, code = "FAK0500", message = "Injected task fault" }
      local code, out, err = run { "move-sims", "--group-id", to, "--batch", "--json", "--sim-id", ids[1],
        "--sim-id", ids[2], "--sim-id", ids[3] }
      assert.are.equal(1, code)
      local jobs = srv:batch_jobs()
      assert.are.equal(1, #jobs)
      local job = jobs[1].jobId
      local printed = fake.decode(out)
      assert.are.same({ mode = "batch", groupId = to, total = 3, moved = 2, skipped = 0, failed = 1, unknown = 0,
        jobs = { job } }, printed.summary)
      assert.are.same({ { simId = ids[1], ok = true }, { simId = ids[3], ok = true } },
        { printed.results[1], printed.results[3] })
      local failure = printed.results[2]
      assert.are.same({ ids[2], false, 500, "FAK0500", "Injected task fault" }, { failure.simId, failure.ok,
        failure.error.status, failure.error.code, failure.error.message })
      -- (the task's path: the job's request, /v1 and all)
      assert.matches("^soracom%-groups: SIM " .. ids[2] .. ": POST [/%w]*/sims/" .. ids[2] .. "/set_group: HTTP 500 "
        .. "%(FAK0500%): Injected task fault\n$", err)
      assert.is_true(all_in({ ids[1], ids[3] }, to))
      assert.are.equal(from, srv:sim(ids[2]).groupId)
      assert.are.same({ 0, 1 }, { count(SET_GROUP), count(CREATE_JOB) })
    end)

    it("--job-timeout: a job that does not end in time gives its SIMs as unknown, exit 1", function()
      local ids = srv:add_sims { count = 2, group_id = from }
      srv:settings { batch_start_delay = 1000 } -- it stays pending
      local code, out, err = run { "move-sims", "--group-id", to, "--batch", "--job-timeout", "1", "--sim-id", ids[1],
        "--sim-id", ids[2] }
      assert.are.equal(1, code)
      local job = srv:batch_jobs()[1].jobId
      assert.are.equal("Moved 0 of 2 SIMs into group " .. to .. ", skipped 0, failed 2 (2 of them unknown: their "
        .. "job may still move them) (Batch API job " .. job .. ").\n", out)
      assert.truthy(err:find("job " .. job .. " has not ended within job_timeout (1 s)", 1, true), err)
      assert.is_true(all_in(ids, from))
    end)

    it("--unset --batch takes them out as a job, and the summary line names it", function()
      local ids = srv:add_sims { count = 2, group_id = from }
      local code, out = run { "move-sims", "--unset", "--batch", "--sim-id", ids[1], "--sim-id", ids[2] }
      assert.are.equal(0, code)
      local job = srv:batch_jobs()[1].jobId
      assert.are.equal("Moved 2 of 2 SIMs out of their groups, skipped 0, failed 0 (Batch API job " .. job .. ").\n",
        out)
      assert.is_true(all_in(ids, nil))
      assert.are.equal(0, count(UNSET_GROUP))
    end)

    it("goes through the Batch API for more than groups.MOVE_SIMS_BATCH_THRESHOLD SIMs, unless --no-batch", function()
      local threshold = require("soracom.groups").MOVE_SIMS_BATCH_THRESHOLD
      local ids = srv:add_sims { count = threshold + 1, group_id = from }
      local path = file_with("many.txt", table.concat(ids, "\n") .. "\n")
      local code, out = run { "move-sims", "--group-id", to, "--from-file", path }
      assert.are.equal(0, code)
      local jobs = srv:batch_jobs()
      assert.are.equal(1, #jobs)
      assert.are.equal("Moved " .. #ids .. " of " .. #ids .. " SIMs into group " .. to .. ", skipped 0, failed 0 "
        .. "(Batch API job " .. jobs[1].jobId .. ").\n", out)
      assert.are.equal(#ids, jobs[1].summary.success)
      assert.are.same({ 0, 1 }, { count(SET_GROUP), count(CREATE_JOB) })

      srv:clear_stats()
      code, out = run { "move-sims", "--unset", "--no-batch", "--from-file", path }
      assert.are.equal(0, code)
      assert.are.equal("Moved " .. #ids .. " of " .. #ids .. " SIMs out of their groups, skipped 0, failed 0 "
        .. "(one call each).\n", out)
      assert.are.same({ #ids, 0 }, { count(UNSET_GROUP), count(CREATE_JOB) })
      assert.is_true(all_in({ ids[1], ids[#ids] }, nil))
    end)

    describe("progress line", function()
      local cli = require "soracom.groups.cli"

      -- cli.main in this process, with files for streams and stderr_is_terminal as
      -- given: exit code, stdout, stderr.
      local function main(args, terminal)
        local paths = { out = os.tmpname(), err = os.tmpname(), input = os.tmpname() }
        local stdout, stderr = assert(io.open(paths.out, "wb")), assert(io.open(paths.err, "wb"))
        local stdin = assert(io.open(paths.input, "rb"))
        local argv = { "--no-token-cache", unpack(login) } -- (nothing written under ~/.cache)
        for _, word in ipairs(args) do argv[#argv + 1] = word end
        local code = cli.main(argv, { stdout = stdout, stderr = stderr, stdin = stdin, stderr_is_terminal = terminal })
        stdout:close() stderr:close() stdin:close()
        local out, err = command.slurp(paths.out), command.slurp(paths.err)
        for _, path in pairs(paths) do os.remove(path) end
        return code, out, err
      end

      it("is rewritten in place on a terminal, one call each, and ends with a newline", function()
        local ids = srv:add_sims { count = 2 }
        local code, out, err = main({ "move-sims", "--group-id", to, "--concurrency", "1", "--sim-id", ids[1],
          "--sim-id", ids[2] }, true)
        assert.are.equal(0, code)
        assert.are.equal("\rmoved 1/2, failed 0\027[K\rmoved 2/2, failed 0\027[K\n", err)
        assert.are.equal("Moved 2 of 2 SIMs into group " .. to .. ", skipped 0, failed 0 (one call each).\n", out)
      end)

      it("counts the failed and the skipped", function()
        local staying = srv:add_sims { count = 1, group_id = to }
        local ids = srv:add_sims { count = 1 }
        local path = file_with("mixed.json", '[{"simId": "' .. staying[1] .. '", "groupId": "' .. to .. '"}, '
          .. '{"simId": "8981199999999999999", "groupId": null}, {"simId": "' .. ids[1] .. '", "groupId": null}]')
        local code, _, err = main({ "move-sims", "--group-id", to, "--concurrency", "1", "--skip-current",
          "--from-file", path }, true)
        assert.are.equal(1, code)
        local progress = err:match("^(.-\n)")
        assert.are.equal("\rmoved 0/3, skipped 1, failed 1\027[K\rmoved 1/3, skipped 1, failed 1\027[K\n", progress)
        assert.matches("^soracom%-groups: SIM 8981199999999999999: ", err:sub(#progress + 1))
      end)

      it("names the Batch API job while it runs", function()
        local ids = srv:add_sims { count = 2 }
        local code, _, err = main({ "move-sims", "--group-id", to, "--batch", "--sim-id", ids[1], "--sim-id",
          ids[2] }, true)
        assert.are.equal(0, code)
        local job = srv:batch_jobs()[1].jobId
        local lines = {}
        for line in err:gmatch("\r([^\r\n]*)\027%[K") do lines[#lines + 1] = line end
        assert.are.equal("\n", err:sub(-1))
        assert.are.equal("moved 0/2, failed 0, job " .. job .. " running", lines[1])
        assert.are.equal("moved 2/2, failed 0, job " .. job .. " done", lines[#lines])
        for _, line in ipairs(lines) do
          assert.matches("^moved [012]/2, failed 0, job " .. job:gsub("%p", "%%%0") .. " [a-z]+$", line)
        end
      end)

      it("is drawn when the command's stderr is a terminal (script(1) runs it on one)", function()
        local ids = srv:add_sims { count = 1 }
        local words = { command.LUA, "bin/soracom-groups" }
        for _, word in ipairs(login) do words[#words + 1] = command.quote(word) end
        for _, word in ipairs { "move-sims", "--group-id", to, "--sim-id", ids[1] } do
          words[#words + 1] = command.quote(word)
        end
        local pipe = assert(io.popen(command.OWN_CACHE .. "script -qec " .. command.quote(table.concat(words, " "))
          .. " /dev/null </dev/null" .. command.DROP_CACHE))
        local text = pipe:read("*a")
        pipe:close()
        -- the terminal writes each newline as \r\n
        assert.are.equal("\rmoved 1/1, failed 0\027[K\r\nMoved 1 of 1 SIM into group " .. to .. ", skipped 0, "
          .. "failed 0 (one call each).\r\n", text)
      end)

      it("is not drawn when stderr is no terminal", function()
        local ids = srv:add_sims { count = 2 }
        local code, out, err = main({ "move-sims", "--group-id", to, "--sim-id", ids[1], "--sim-id", ids[2] }, false)
        assert.are.same({ 0, "" }, { code, err })
        assert.are.equal("Moved 2 of 2 SIMs into group " .. to .. ", skipped 0, failed 0 (one call each).\n", out)
        -- a stream of the caller's, not told: no terminal either
        code, out, err = main({ "move-sims", "--unset", "--sim-id", ids[1] }, nil)
        assert.are.same({ 0, "" }, { code, err })
        assert.are.equal("Moved 1 of 1 SIM out of their groups, skipped 0, failed 0 (one call each).\n", out)
      end)
    end)
  end)
end)
