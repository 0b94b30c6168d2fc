-- bin/soracom-groups run as a subprocess, with the interpreter running busted,
-- against the fake server: every subcommand and flag, output, exit codes, streaming.
local fake = require "spec.support.fake_server"
local tempdir = require "spec.support.tempdir"

local command = require "spec.support.command"

local LUA, quote, slurp, write_file = command.LUA, command.quote, command.slurp, command.write_file
local unpack = table.unpack or unpack

describe("soracom-groups command", function()
  local srv

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  -- The command line, with the fake's endpoint and static credentials first unless
  -- opts.bare, or an AuthKey (so that a login would be recorded) with opts.login;
  -- opts.env is a shell prefix ("HOME=/x"), opts.stdin text for stdin.
  local function command_line(args, opts)
    opts = opts or {}
    local words = {}
    if opts.login then
      words = { "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id, "--auth-key", srv.auth_key }
    elseif not opts.bare then
      words = { "--endpoint", srv.endpoint, "--api-key", srv.api_key, "--api-token", srv.token }
    end
    for _, word in ipairs(args) do words[#words + 1] = word end
    local quoted = {}
    for i, word in ipairs(words) do quoted[i] = quote(word) end
    return (opts.env or "") .. " " .. LUA .. " bin/soracom-groups " .. table.concat(quoted, " ")
  end

  -- Runs the command to its end: exit code, stdout, stderr.
  local function run(args, opts)
    opts = opts or {}
    local out, err, input = os.tmpname(), os.tmpname(), os.tmpname()
    write_file(input, opts.stdin or "")
    local pipe = assert(io.popen(command.OWN_CACHE .. command_line(args, opts) .. " <" .. quote(input) .. " >"
      .. quote(out) .. " 2>" .. quote(err) .. "; code=$?" .. command.DROP_CACHE .. "; echo $code"))
    local code = tonumber(pipe:read("*a"):match("(%d+)%s*$"))
    pipe:close()
    local stdout, stderr = slurp(out), slurp(err)
    os.remove(out) os.remove(err) os.remove(input)
    return code, stdout, stderr
  end

  local function lines(text)
    local list = {}
    for line in text:gmatch("[^\n]+") do list[#list + 1] = line end
    return list
  end

  local function ids_of(jsonl_text)
    local ids = {}
    for _, line in ipairs(lines(jsonl_text)) do ids[#ids + 1] = fake.decode(line).groupId end
    return ids
  end

  local function last_request()
    local list = srv:requests()
    return list[#list]
  end

  describe("--help", function()
    local examples = {
      list = "soracom-groups list --tag-name env --tag-value prod --fetch-all --jsonl",
      get = "soracom-groups get --group-id 0b4f2077-0000-4000-8000-000000000000",
      create = [[soracom-groups create --body '{"tags":{"name":"sensors-tokyo"}}']],
      delete = "soracom-groups delete --group-id 0b4f2077-0000-4000-8000-000000000000",
      ["put-config"] = "soracom-groups put-config --group-id ID --namespace SoracomAir "
        .. [[--body '[{"key":"useCustomDns","value":true}]']],
      ["delete-config"] = "soracom-groups delete-config --group-id ID --namespace SoracomAir --name useCustomDns",
      ["delete-config-namespace"] = "soracom-groups delete-config-namespace --group-id ID --namespace SoracomAir",
      ["list-subscribers"] = "soracom-groups list-subscribers --group-id ID --fetch-all --jsonl",
      ["put-tags"] = [[soracom-groups put-tags --group-id ID --body '[{"tagName":"env","tagValue":"prod"}]']],
      ["delete-tag"] = "soracom-groups delete-tag --group-id ID --tag-name env",
    }
    for name, example in pairs(examples) do
      it("of " .. name .. " shows its usage and an example, exit 0", function()
        local code, out, err = run({ name, "--help" }, { bare = true })
        assert.are.equal(0, code)
        assert.are.equal("", err)
        assert.are.equal("Usage: soracom-groups " .. name .. " ", out:sub(1, #name + 23))
        assert.is_truthy(out:find("\nExample:\n  " .. example .. "\n", 1, true))
      end)
    end

    it("runs from any folder, finding lua/ and build/ next to bin/", function()
      local pipe = assert(io.popen("cd / && " .. LUA .. " \"$OLDPWD/bin/soracom-groups\" get --help 2>&1; "
        .. "echo \"exit=$?\""))
      local text = pipe:read("*a")
      pipe:close()
      local usage = "Usage: soracom-groups get "
      assert.are.equal(usage, text:sub(1, #usage))
      assert.are.equal("exit=0\n", text:sub(-7))
    end)

    it("of the command lists the ten subcommands and the exit codes", function()
      local code, out = run({ "--help" }, { bare = true })
      assert.are.equal(0, code)
      for _, name in ipairs { "list", "get", "create", "delete", "put-config", "delete-config",
        "delete-config-namespace", "list-subscribers", "put-tags", "delete-tag" } do
        assert.is_truthy(out:find("\n   " .. name:gsub("%-", "%%-") .. "%s"), name)
      end
      assert.is_truthy(out:find("Exit codes: 0 ok, 1 an API or network error, 2 a usage error;", 1, true))
    end)
  end)

  describe("output", function()
    it("is pretty JSON with 2-space indents and sorted keys, integers exact", function()
      local id = srv:seed_groups(1, { name = "a", env = "ci" })[1]
      local code, out, err = run { "get", "--group-id", id }
      assert.are.equal(0, code)
      assert.are.equal("", err)
      local group = fake.decode(out)
      local t = tostring(group.createdTime)
      assert.are.equal(13, #t)
      assert.are.equal(table.concat({
        '{',
        '  "configuration": {},',
        '  "createdAt": ' .. t .. ',',
        '  "createdTime": ' .. t .. ',',
        '  "groupId": "' .. id .. '",',
        '  "lastModifiedAt": ' .. t .. ',',
        '  "lastModifiedTime": ' .. t .. ',',
        '  "operatorId": "OP0012345678",',
        '  "tags": {',
        '    "env": "ci",',
        '    "name": "a"',
        '  }',
        '}',
        '' }, "\n"), out)
    end)

    it("keeps arrays, empty ones too, and escapes strings", function()
      local code, out = run { "create", "--body",
        [[{"tags":{"name":"q\"uote"},"configuration":{"SoracomAir":[{"key":"dnsServers","value":[]},]]
        .. [[{"key":"list","value":["x",1]}]}}]] }
      assert.are.equal(0, code)
      assert.is_truthy(out:find('\n  "configuration": {\n    "SoracomAir": {\n'
        .. '      "dnsServers": [],\n      "list": [\n        "x",\n        1\n      ]\n    }\n  },\n', 1, true))
      assert.is_truthy(out:find('"name": "q\\"uote"', 1, true))
    end)
  end)

  describe("list", function()
    it("prints one page as a pretty array, the next key on stderr", function()
      local ids = srv:seed_groups(3)
      local code, out, err = run { "list", "--limit", "2" }
      assert.are.equal(0, code)
      local page = fake.decode(out)
      assert.are.same({ ids[1], ids[2] }, { page[1].groupId, page[2].groupId })
      assert.are.equal(2, #page)
      local start = "[\n  {\n    \"configuration\": {},"
      assert.are.equal(start, out:sub(1, #start))
      assert.are.equal("}\n]\n", out:sub(-4))
      assert.are.equal("soracom-groups: more items follow: --last-evaluated-key " .. ids[2] .. "\n", err)
      assert.are.equal("/v1/groups?limit=2", last_request().uri)
    end)

    it("passes the tag filters and the page key", function()
      local ids = srv:seed_groups(3, { env = "prod-1" })
      srv:seed_groups(2, { env = "dev" })
      local code, out, err = run { "list", "--tag-name", "env", "--tag-value", "prod",
        "--tag-value-match-mode", "prefix", "--last-evaluated-key", ids[1], "--jsonl" }
      assert.are.equal(0, code)
      assert.are.equal("", err)
      assert.are.same({ ids[2], ids[3] }, ids_of(out))
      assert.are.equal("/v1/groups?tag_name=env&tag_value=prod&tag_value_match_mode=prefix&last_evaluated_key="
        .. ids[1], last_request().uri)
    end)

    it("prints [] for no groups", function()
      local code, out = run { "list" }
      assert.are.equal(0, code)
      assert.are.equal("[]\n", out)
      code, out = run { "list", "--fetch-all" }
      assert.are.equal(0, code)
      assert.are.equal("[]\n", out)
      code, out = run { "list", "--fetch-all", "--jsonl" }
      assert.are.equal(0, code)
      assert.are.equal("", out)
    end)

    it("--jsonl prints one compact object per line, keys sorted", function()
      local id = srv:seed_groups(1, { name = "one" })[1]
      local code, out = run { "list", "--jsonl" }
      assert.are.equal(0, code)
      local t = tostring(fake.decode(out).createdTime)
      assert.are.equal('{"configuration":{},"createdAt":' .. t .. ',"createdTime":' .. t .. ',"groupId":"' .. id
        .. '","lastModifiedAt":' .. t .. ',"lastModifiedTime":' .. t
        .. ',"operatorId":"OP0012345678","tags":{"name":"one"}}\n', out)
    end)

    it("--fetch-all prints every page as one array, the same bytes as one page", function()
      local ids = srv:seed_groups(7)
      local code, all = run { "list", "--fetch-all", "--limit", "3" }
      assert.are.equal(0, code)
      local _, one_page = run { "list" }
      assert.are.equal(one_page, all)
      local got = {}
      for i, group in ipairs(fake.decode(all)) do got[i] = group.groupId end
      assert.are.same(ids, got)
      assert.are.equal(3, srv:stats().by_api["GET /v1/groups"].requests - 1) -- 3 pages, then 1
    end)
  end)

  describe("get, create, delete", function()
    it("create takes JSON text, @file and - (stdin)", function()
      local code, out = run { "create", "--body", '{"tags":{"name":"text"}}' }
      assert.are.equal(0, code)
      assert.are.equal("text", fake.decode(out).tags.name)
      local file = os.tmpname()
      write_file(file, '{"tags":{"name":"file"},"configuration":{"SoracomAir":{"useCustomDns":true}}}')
      code, out = run { "create", "--body", "@" .. file }
      os.remove(file)
      assert.are.equal(0, code)
      local group = fake.decode(out)
      assert.are.equal("file", group.tags.name)
      assert.are.equal(true, group.configuration.SoracomAir.useCustomDns)
      code, out = run({ "create", "--body", "-" }, { stdin = '{"tags":{"name":"stdin"}}' })
      assert.are.equal(0, code)
      assert.are.equal("stdin", fake.decode(out).tags.name)
      local request = last_request()
      assert.are.equal("POST", request.method)
      assert.are.same({ tags = { name = "stdin" } }, fake.decode(request.body))
    end)

    it("delete prints nothing; a later get exits 1 with the library's error text", function()
      local id = srv:seed_groups(1)[1]
      local code, out, err = run { "delete", "--group-id", id }
      assert.are.same({ 0, "", "" }, { code, out, err })
      code, out, err = run { "get", "--group-id", id }
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.are.equal("soracom-groups: GET /groups/" .. id .. ": HTTP 404 (COM0004): "
        .. "The specified group does not exist: " .. id .. "\n", err)
    end)

    it("percent-encodes the group id", function()
      run { "get", "--group-id", "a b/c" }
      assert.are.equal("/v1/groups/a%20b%2Fc", last_request().uri)
    end)
  end)

  describe("configuration and tags", function()
    it("put-config, delete-config and delete-config-namespace", function()
      local id = srv:seed_groups(1)[1]
      local code, out = run { "put-config", "--group-id", id, "--namespace", "SoracomAir", "--body",
        '[{"key":"useCustomDns","value":true},{"key":"dnsServers","value":["8.8.8.8"]}]' }
      assert.are.equal(0, code)
      assert.are.same({ useCustomDns = true, dnsServers = { "8.8.8.8" } }, fake.decode(out).configuration.SoracomAir)
      local sent = last_request()
      assert.are.equal("PUT", sent.method)
      assert.are.equal("/v1/groups/" .. id .. "/configuration/SoracomAir", sent.uri)
      assert.are.same({ { key = "useCustomDns", value = true }, { key = "dnsServers", value = { "8.8.8.8" } } },
        fake.decode(sent.body))
      code, out = run { "put-config", "--group-id", id, "--namespace", "beam", "--body", '[{"key":"a","value":1}]' }
      assert.are.equal(0, code)
      assert.are.same({ a = 1 }, fake.decode(out).configuration.SoracomBeam)
      assert.are.equal("/v1/groups/" .. id .. "/configuration/SoracomBeam", last_request().uri)
      code, out = run { "delete-config", "--group-id", id, "--namespace", "SoracomAir", "--name", "dnsServers" }
      assert.are.same({ 0, "" }, { code, out })
      assert.are.equal("DELETE", last_request().method)
      assert.are.equal("/v1/groups/" .. id .. "/configuration/SoracomAir/dnsServers", last_request().uri)
      code = run { "delete-config-namespace", "--group-id", id, "--namespace", "SoracomBeam" }
      assert.are.equal(0, code)
      local _, got = run { "get", "--group-id", id }
      assert.are.same({ SoracomAir = { useCustomDns = true } }, fake.decode(got).configuration)
    end)

    it("put-tags and delete-tag", function()
      local id = srv:seed_groups(1, { name = "t" })[1]
      local code, out = run { "put-tags", "--group-id", id, "--body", '[{"tagName":"env","tagValue":"prod"}]' }
      assert.are.equal(0, code)
      assert.are.same({ name = "t", env = "prod" }, fake.decode(out).tags)
      assert.are.same({ { tagName = "env", tagValue = "prod" } }, fake.decode(last_request().body))
      code, out = run { "delete-tag", "--group-id", id, "--tag-name", "env" }
      assert.are.same({ 0, "" }, { code, out })
      assert.are.equal("/v1/groups/" .. id .. "/tags/env", last_request().uri)
      local err
      code, out, err = run { "delete-tag", "--group-id", id, "--tag-name", "env" }
      assert.are.same({ 1, "" }, { code, out })
      assert.are.equal("soracom-groups: DELETE /groups/" .. id .. "/tags/env: HTTP 404 (COM0004): "
        .. "The specified tag does not exist: env\n", err)
    end)
  end)

  -- put-config and put-tags take --body in the API's form only: anything else is refused
  -- before a client is made, so not even a login is sent.
  describe("--body of put-config and put-tags", function()
    local CONFIG = '; expected [{"key": "useCustomDns", "value": true}, ...]\n'
    local TAGS = '; expected [{"tagName": "env", "tagValue": "prod"}, ...]\n'
    local put_config = { "put-config", "--group-id", "g", "--namespace", "SoracomAir", "--body" }
    local put_tags = { "put-tags", "--group-id", "g", "--body" }
    local cases = {
      { put_config, '{"key":"useCustomDns","value":true}', "--body: got an object, not an array" .. CONFIG },
      { put_config, '{"useCustomDns":true}', "--body: got an object, not an array" .. CONFIG },
      { put_config, "[]", "--body: got an empty array" .. CONFIG },
      { put_config, '"useCustomDns"', "--body: got a string, not an array" .. CONFIG },
      { put_config, "null", "--body: got null, not an array" .. CONFIG },
      { put_config, '[{"key":"a","value":1},"b"]', "--body[2]: got a string, not an object" .. CONFIG },
      { put_config, '[[{"key":"a","value":1}]]', "--body[1]: got an array, not an object" .. CONFIG },
      { put_config, '[{"key":"a"}]', '--body[1]: missing "value"' .. CONFIG },
      { put_config, '[{"value":1}]', '--body[1]: missing "key"' .. CONFIG },
      { put_config, '[{"key":"a","value":1},{"key":"b","value":2,"type":"x"}]',
        '--body[2]: unexpected key "type"' .. CONFIG },
      { put_config, '[{"name":"a","value":1}]', '--body[1]: unexpected key "name"' .. CONFIG },
      { put_config, '[{"key":5,"value":1}]', "--body[1].key: got a number, not a string" .. CONFIG },
      { put_config, '[{"key":"","value":1}]', "--body[1].key: is an empty string" .. CONFIG },
      { put_tags, '{"env":"prod"}', "--body: got an object, not an array" .. TAGS },
      { put_tags, '{"tagName":"env","tagValue":"prod"}', "--body: got an object, not an array" .. TAGS },
      { put_tags, "[]", "--body: got an empty array" .. TAGS },
      { put_tags, '[{"tagName":"env","tagValue":"prod"},{"tagName":"x","tagValue":1}]',
        "--body[2].tagValue: got a number, not a string" .. TAGS },
      { put_tags, '[{"tagName":"env","tagValue":null}]', "--body[1].tagValue: got null, not a string" .. TAGS },
      { put_tags, '[{"tagName":true,"tagValue":"x"}]', "--body[1].tagName: got a boolean, not a string" .. TAGS },
      { put_tags, '[{"key":"env","value":"prod"}]', '--body[1]: unexpected key "key"' .. TAGS },
      { put_tags, '[{"tagName":"env"}]', '--body[1]: missing "tagValue"' .. TAGS },
    }
    for _, case in ipairs(cases) do
      local args = { unpack(case[1]) }
      args[#args + 1] = case[2]
      it(args[1] .. " --body " .. case[2], function()
        local code, out, err = run(args, { login = true })
        assert.are.same({ 2, "" }, { code, out })
        assert.are.equal("soracom-groups: " .. case[3], err)
        assert.are.same({}, srv:requests()) -- no PUT, no login
      end)
    end

    it("the API's form is sent as it is, any JSON value in value", function()
      local id = srv:seed_groups(1)[1]
      local body = '[{"key":"a","value":null},{"key":"b","value":{"c":[1,"d"]}},{"key":"e","value":""}]'
      local code = run { "put-config", "--group-id", id, "--namespace", "air", "--body", body }
      assert.are.equal(0, code)
      assert.are.same(fake.decode(body), fake.decode(last_request().body))
      code = run { "put-tags", "--group-id", id, "--body", '[{"tagName":"env","tagValue":""}]' }
      assert.are.equal(0, code)
      assert.are.same({ { tagName = "env", tagValue = "" } }, fake.decode(last_request().body))
    end)
  end)

  describe("list-subscribers", function()
    it("one page, --limit, --last-evaluated-key, --fetch-all --jsonl", function()
      local id = srv:seed_groups(1)[1]
      local imsis = srv:seed_subscribers(id, 5)
      local code, out, err = run { "list-subscribers", "--group-id", id, "--limit", "2" }
      assert.are.equal(0, code)
      local page = fake.decode(out)
      assert.are.same({ imsis[1], imsis[2] }, { page[1].imsi, page[2].imsi })
      assert.are.equal("soracom-groups: more items follow: --last-evaluated-key " .. imsis[2] .. "\n", err)
      code, out = run { "list-subscribers", "--group-id", id, "--limit", "2", "--fetch-all", "--jsonl",
        "--last-evaluated-key", imsis[1] }
      assert.are.equal(0, code)
      local got = {}
      for i, line in ipairs(lines(out)) do got[i] = fake.decode(line).imsi end
      assert.are.same({ imsis[2], imsis[3], imsis[4], imsis[5] }, got)
    end)
  end)

  describe("usage errors exit 2", function()
    local cases = {
      { { "get" }, "soracom-groups: missing option '--group-id'\nTry 'soracom-groups get --help'.\n" },
      { { "frobnicate" }, "soracom-groups: unknown command 'frobnicate'\nTry 'soracom-groups --help'.\n" },
      { { "list", "--limit", "0" }, "soracom-groups: --limit expects a whole number from 1 to 2147483647 "
        .. "(got '0')\nTry 'soracom-groups list --help'.\n" },
      { { "list", "--tag-value-match-mode", "fuzzy" },
        "soracom-groups: argument for option '--tag-value-match-mode' must be one of 'exact', 'prefix'\n"
          .. "Try 'soracom-groups list --help'.\n" },
      { { "create", "--body", "{nope" },
        "soracom-groups: --body: expected JSON text, @FILE or - (stdin); not valid JSON: "
          .. "line 1, column 2: expected a string key in object\n" },
      { { "create", "--body", "@/nonexistent/body.json" },
        "soracom-groups: --body @/nonexistent/body.json: cannot read the file: "
          .. "/nonexistent/body.json: No such file or directory\n" },
      { { "put-config", "--group-id", "g", "--namespace", "SoracomAr", "--body", '[{"key":"a","value":1}]' },
        "soracom-groups: --namespace: put_config: namespace \"SoracomAr\" is not one of SoracomAir, " },
      { { "put-config", "--group-id", "g", "--namespace", "air", "--body", '[{"x":1}]' },
        'soracom-groups: --body[1]: unexpected key "x"; expected [{"key": "useCustomDns", "value": true}, ...]\n' },
      { { "put-tags", "--group-id", "g", "--body", "5" },
        "soracom-groups: --body: got a number, not an array; "
          .. 'expected [{"tagName": "env", "tagValue": "prod"}, ...]\n' },
      { { "put-tags", "--group-id", "", "--body", '[{"tagName":"env","tagValue":"prod"}]' },
        "soracom-groups: --group-id: put_tags: group_id must be a non-empty string (got \"\")\n" },
      { { "create", "--body", '{"tagz":{}}' },
        "soracom-groups: --body: create_group: unknown option \"tagz\" (expected name, tags, configuration); "
          .. "did you mean \"tags\"?\n" },
      { { "delete-tag", "--group-id", "g", "--tag-name", "" },
        "soracom-groups: --tag-name: delete_tag: tag_name must be a non-empty string (got \"\")\n" },
      { { "list", "--tag-value", "x" },
        "soracom-groups: list_groups: options tag_value and tag_value_match_mode need tag_name\n" },
    }
    for _, case in ipairs(cases) do
      it(table.concat(case[1], " "), function()
        local code, out, err = run(case[1])
        assert.are.equal(2, code)
        assert.are.equal("", out)
        assert.are.equal(case[2], err:sub(1, #case[2]))
        assert.are.equal(0, srv:stats().requests) -- refused before anything was sent
      end)
    end

    it("a bad global flag value, before anything is sent", function()
      local code, _, err = run({ "--coverage-type", "eu", "list" }, { bare = true })
      assert.are.equal(2, code)
      assert.are.equal("soracom-groups: argument for option '--coverage-type' must be one of 'jp', 'g'\n"
        .. "Try 'soracom-groups list --help'.\n", err)
      code, _, err = run({ "--endpoint", "ftp://x", "--api-key", "k", "--api-token", "t", "list" }, { bare = true })
      assert.are.equal(2, code)
      assert.are.equal("soracom-groups: soracom.groups.new: endpoint must be an http:// or https:// URL\n", err)
      code, _, err = run { "--timeout", "0", "list" }
      assert.are.equal(2, code)
      assert.is_truthy(err:find("--timeout expects a positive number of seconds (got '0')", 1, true))
      assert.are.equal(0, srv:stats().requests)
    end)
  end)

  -- Hostile input to the raw subcommands: each is a usage error on one line (and the
  -- help hint when argparse refused it), exit 2, no traceback, nothing sent.
  describe("hostile input", function()
    local big_file = os.tmpname()
    local big_body = '[{"tagName":"big","tagValue":"' .. ("x"):rep(10 * 1024 * 1024) .. '"}]'
    setup(function() write_file(big_file, big_body) end)
    teardown(function() os.remove(big_file) end)

    local TAGS = '; expected [{"tagName": "env", "tagValue": "prod"}, ...]'
    local CONFIG = '; expected [{"key": "useCustomDns", "value": true}, ...]'
    local LIMIT = "--limit expects a whole number from 1 to 2147483647 (got '"
    -- args (@BIG: the 10 MB body's file), the message (a prefix when it ends in "..."),
    -- opts for run (stdin, env), whether argparse refused it (a help hint follows)
    local cases = {
      { { "list", "--limit", "0" }, LIMIT .. "0')", nil, true },
      { { "list", "--limit", "1e309" }, LIMIT .. "1e309')", nil, true },
      { { "list", "--limit", "99999999999999999999" }, LIMIT .. "99999999999999999999')", nil, true },
      { { "list", "--limit", "2147483648" }, LIMIT .. "2147483648')", nil, true },
      { { "list", "--limit", "nan" }, LIMIT .. "nan')", nil, true },
      { { "list", "--limit", "1\n2" }, LIMIT .. "1\\n2')", nil, true },
      { { "--timeout", "nan", "list" }, "--timeout expects a positive number of seconds (got 'nan')", nil, true },
      { { "--timeout=-nan", "list" }, "--timeout expects a positive number of seconds (got '-nan')", nil, true },
      { { "--timeout", "inf", "list" }, "--timeout expects a positive number of seconds (got 'inf')", nil, true },
      { { "list", "--bo\ngus" }, "unknown option '--bo\\ngus'", nil, true },
      { { "fro\nb" }, "unknown command 'fro\\nb'", nil, true },
      { { "get", "--group-id", "" }, '--group-id: get_group: group_id must be a non-empty string (got "")' },
      { { "get", "--group-id", ".." }, '--group-id: get_group: group_id must not be ".."' },
      { { "get", "--group-id", "g\r" }, '--group-id: "g\\r" holds a control character' },
      { { "list-subscribers", "--group-id", "g\n" }, '--group-id: "g\\n" holds a control character' },
      { { "put-config", "--group-id", "g", "--namespace", "NoSuch", "--body", '[{"key":"a","value":1}]' },
        '--namespace: put_config: namespace "NoSuch" is not one of SoracomAir, ...' },
      { { "put-config", "--group-id", "g", "--namespace", "Soracom\nAir", "--body", '[{"key":"a","value":1}]' },
        '--namespace: "Soracom\\nAir" holds a control character' },
      { { "delete-config-namespace", "--group-id", "g", "--namespace", "air\n" },
        '--namespace: "air\\n" holds a control character' },
      { { "delete-config", "--group-id", "g", "--namespace", "air", "--name", "a\tb" },
        '--name: "a\\tb" holds a control character' },
      { { "delete-tag", "--group-id", "g", "--tag-name", "env\nx" },
        '--tag-name: "env\\nx" holds a control character' },
      { { "list", "--tag-name", "env\nx", "--tag-value", "prod" }, '--tag-name: "env\\nx" holds a control character' },
      { { "list", "--last-evaluated-key", "a\nb" }, '--last-evaluated-key: "a\\nb" holds a control character' },
      { { "put-tags", "--group-id", "g", "--body", '[{"tagName":"env\\nx","tagValue":"prod"}]' },
        '--body[1].tagName: "env\\nx" holds a control character' .. TAGS },
      { { "put-config", "--group-id", "g", "--namespace", "air", "--body", '[{"key":"a\\u0000","value":1}]' },
        '--body[1].key: "a\\000" holds a control character' .. CONFIG },
      { { "put-config", "--group-id", "g", "--namespace", "air", "--body", '[{"key":"a","value":1,"x\\ny":2}]' },
        '--body[1]: unexpected key "x\\ny"' .. CONFIG },
      { { "put-tags", "--group-id", "g", "--body", "@/nonexistent" },
        "--body @/nonexistent: cannot read the file: /nonexistent: No such file or directory" },
      { { "put-tags", "--group-id", "g", "--body", "@/" }, "--body @/: cannot read it: Is a directory" },
      { { "put-tags", "--group-id", "g", "--body", "-" }, "--body - (stdin): empty; expected JSON text, "
        .. "@FILE or - (stdin)", { stdin = "" } },
      { { "put-tags", "--group-id", "g", "--body", "" }, "--body: empty; expected JSON text, @FILE or - (stdin)" },
      { { "put-tags", "--group-id", "g", "--body", "-" }, "--body - (stdin): larger than 1048576 bytes, the most "
        .. "the command reads", { stdin = big_body } },
      { { "put-tags", "--group-id", "g", "--body", "@BIG" }, "--body @BIG: larger than 1048576 bytes, the most "
        .. "the command reads" },
      -- never read whole (the limit only guards the test against a regression)
      { { "put-tags", "--group-id", "g", "--body", "@/dev/zero" }, "--body @/dev/zero: larger than 1048576 bytes, "
        .. "the most the command reads", { env = "ulimit -v 4000000;" } },
      { { "put-tags", "--group-id", "g", "--body", ("["):rep(5000) }, "--body: expected JSON text, @FILE or - "
        .. "(stdin); not valid JSON: line 1, column 1001: nesting too deep" },
      { { "put-tags", "--group-id", "g", "--body", '[{"tagName":"\255","tagValue":"x"}]' }, "--body: expected "
        .. "JSON text, @FILE or - (stdin); not valid JSON: line 1, column 14: invalid UTF-8 in a string" },
    }
    for _, case in ipairs(cases) do
      local args, message, opts, hinted = {}, case[2], case[3] or {}, case[4]
      for i, word in ipairs(case[1]) do args[i] = word == "@BIG" and "@" .. big_file or word end
      message = message:gsub("@BIG", function() return "@" .. big_file end)
      it((table.concat(case[1], " "):sub(1, 100):gsub("[%c\128-\255]", "?")), function()
        opts.login = true
        local code, out, err = run(args, opts)
        assert.are.same({ 2, "" }, { code, out })
        local first, rest = err:match("^([^\n]*)\n(.*)$")
        local expected = "soracom-groups: " .. message
        if expected:sub(-3) == "..." then
          assert.are.equal(expected:sub(1, -4), first:sub(1, #expected - 3))
        else
          assert.are.equal(expected, first)
        end
        if hinted then
          assert.is_truthy(rest:find("^Try 'soracom%-groups [%w%- ]*%-%-help'%.\n$"), rest)
        else
          assert.are.equal("", rest)
        end
        assert.are.same({}, srv:requests())
      end)
    end

    it("a secret is never in the message", function()
      for _, flags in ipairs {
        { "--api-key", "key-secret\n", "--api-token", "token-secret" },
        { "--api-key", "key-secret", "--api-token", "token-secret\n" },
        { "--auth-key-id", "id-secret\n", "--auth-key", "auth-secret" },
        { "--auth-key-id", "id-secret", "--auth-key", "auth-secret\n" },
      } do
        local args = { "--endpoint", srv.endpoint }
        for _, word in ipairs(flags) do args[#args + 1] = word end
        args[#args + 1] = "list"
        local code, _, err = run(args, { bare = true })
        assert.is_true(code == 1 or code == 2, err)
        assert.is_falsy(err:find("secret", 1, true), err)
        assert.are.equal(1, #lines(err))
      end
    end)
  end)

  describe("global flags", function()
    it("--api-key/--api-token that the server refuses: exit 1, the 401 on stderr", function()
      local code, _, err = run({ "--endpoint", srv.endpoint, "--api-key", "k", "--api-token", "bad", "list" },
        { bare = true })
      assert.are.equal(1, code)
      assert.are.equal("soracom-groups: GET /groups: HTTP 401 (AUM0001): Invalid API key or token\n", err)
    end)

    it("--auth-key-id/--auth-key log in", function()
      srv:seed_groups(1)
      local code, out = run({ "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id,
        "--auth-key", srv.auth_key, "list", "--jsonl" }, { bare = true })
      assert.are.equal(0, code)
      assert.are.equal(1, #lines(out))
      assert.are.equal(1, #srv:tokens())
    end)

    it("--profile reads ~/.soracom/NAME.json as the library does", function()
      local home = tempdir.new()
      assert(os.execute("mkdir " .. quote(home .. "/.soracom")))
      tempdir.write(home .. "/.soracom/ci.json", '{"authKeyId":"' .. srv.auth_key_id .. '","authKey":"'
        .. srv.auth_key .. '","endpoint":"' .. srv.url .. '"}')
      local code, out, err = run({ "--profile", "ci", "list" }, { bare = true, env = "HOME=" .. quote(home) })
      os.execute("rm -rf " .. quote(home))
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("[]\n", out)
      assert.are.equal(1, #srv:tokens())
    end)

    it("SORACOM_* variables, as the library reads them", function()
      local code, out = run({ "list" }, { bare = true, env = "SORACOM_ENDPOINT=" .. quote(srv.url)
        .. " SORACOM_AUTH_KEY_ID=" .. srv.auth_key_id .. " SORACOM_AUTH_KEY=" .. srv.auth_key })
      assert.are.equal(0, code)
      assert.are.equal("[]\n", out)
    end)

    it("no credentials anywhere: exit 1 and why", function()
      local code, _, err = run({ "list" }, { bare = true, env = "env -u SORACOM_AUTH_KEY_ID -u SORACOM_EMAIL "
        .. "-u SORACOM_PROFILE HOME=/nonexistent" })
      assert.are.equal(1, code)
      assert.are.equal("soracom-groups: no credentials: none in the options, none in SORACOM_* variables, "
        .. "and no profile at /nonexistent/.soracom/default.json\n", err)
    end)

    it("--coverage-type picks the Japan or global endpoint (seen offline, through a refused proxy)", function()
      local offline = "env -u SORACOM_ENDPOINT -u no_proxy -u NO_PROXY https_proxy=http://127.0.0.1:1"
      for coverage, host in pairs { jp = "api.soracom.io", g = "g.api.soracom.io" } do
        local code, out, err = run({ "--coverage-type", coverage, "--api-key", "k", "--api-token", "t",
          "--no-retry-on-error", "--debug", "list" }, { bare = true, env = offline })
        assert.are.same({ 1, "" }, { code, out })
        local line = "soracom-groups: GET https://" .. host .. "/v1/groups -> network ("
        assert.are.equal(line, err:sub(1, #line))
        assert.is_truthy(err:find("\nsoracom%-groups: GET /groups: network error: "))
      end
    end)

    it("global flags may follow the subcommand", function()
      srv:seed_groups(1)
      local code, out = run({ "list", "--jsonl", "--endpoint", srv.endpoint, "--api-key", srv.api_key,
        "--api-token", srv.token }, { bare = true })
      assert.are.equal(0, code)
      assert.are.equal(1, #lines(out))
    end)

    it("retries a 500 by default; --no-retry-on-error does not", function()
      local id = srv:seed_groups(1)[1]
      srv:faults { { status = 500 } }
      local code = run { "get", "--group-id", id }
      assert.are.equal(0, code)
      srv:faults { { status = 500 } }
      local out, err
      code, out, err = run { "--no-retry-on-error", "get", "--group-id", id }
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.are.equal("soracom-groups: GET /groups/" .. id .. ": HTTP 500 (FAK0500): Injected fault\n", err)
    end)

    it("--timeout ends a slow request: exit 1, a network error", function()
      srv:faults { { delay = 3 } }
      local started = os.time()
      local code, _, err = run { "--timeout", "0.5", "--no-retry-on-error", "list" }
      assert.are.equal(1, code)
      assert.is_truthy(err:find("^soracom%-groups: GET /groups: network error: "))
      assert.is_true(os.time() - started <= 2)
    end)

    it("--debug prints the library's lines on stderr, never the token", function()
      local id = srv:seed_groups(1)[1]
      local code, out, err = run { "--debug", "get", "--group-id", id }
      assert.are.equal(0, code)
      assert.are.equal(id, fake.decode(out).groupId)
      assert.is_truthy(err:find("soracom-groups: GET " .. srv.endpoint .. "/groups/" .. id .. " -> 200", 1, true))
      assert.is_falsy(err:find(srv.token, 1, true))
      assert.is_falsy(err:find(srv.api_key, 1, true))
    end)
  end)

  describe("--fetch-all streaming", function()
    it("prints the first line before the last page is served", function()
      local ids = srv:seed_groups(3000)
      srv:settings { latency = 0.02 }
      srv:clear_stats()
      local err = os.tmpname()
      local pipe = assert(io.popen(command_line { "list", "--fetch-all", "--jsonl", "--limit", "100" }
        .. " 2>" .. quote(err)))
      local first = pipe:read("*l")
      local pages_when_first = srv:stats().by_api["GET /v1/groups"].requests
      assert.are.equal(ids[1], fake.decode(first).groupId)
      local count, last = 1, first
      for line in pipe:lines() do count, last = count + 1, line end
      pipe:close()
      assert.are.equal("", slurp(err))
      os.remove(err)
      assert.are.equal(3000, count)
      assert.are.equal(ids[3000], fake.decode(last).groupId)
      assert.is_true(pages_when_first <= 10, "of 30 pages, served before the first line: " .. pages_when_first)
      assert.are.equal(30, srv:stats().by_api["GET /v1/groups"].requests)
    end)

    it("flushes each item: with pages smaller than stdio's buffer the first line still comes first", function()
      local ids = srv:seed_groups(40)
      srv:settings { latency = 0.1 }
      srv:clear_stats()
      local pipe = assert(io.popen(command_line { "list", "--fetch-all", "--jsonl", "--limit", "2" }))
      local first = pipe:read("*l")
      local pages_when_first = srv:stats().by_api["GET /v1/groups"].requests
      local rest = pipe:read("*a")
      pipe:close()
      assert.are.equal(ids[1], fake.decode(first).groupId)
      assert.are.equal(39, #lines(rest))
      -- unflushed, 4 KiB of output (16 groups, 8 pages) would have to pile up first
      assert.is_true(pages_when_first <= 3, "pages served before the first line: " .. pages_when_first)
    end)

    -- The peak resident memory of a whole run, sampled from /proc (VmHWM only grows).
    local function peak_kb(args)
      local script = os.tmpname()
      write_file(script, command_line(args) .. [=[ >/dev/null 2>&1 &
pid=$!
peak=0
while kill -0 $pid 2>/dev/null; do
  hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pid/status 2>/dev/null)
  [ -n "$hwm" ] && peak=$hwm
  sleep 0.01
done
wait $pid
echo "$? $peak"
]=])
      local pipe = assert(io.popen("sh " .. quote(script)))
      local code, peak = pipe:read("*a"):match("(%d+) (%d+)")
      pipe:close()
      os.remove(script)
      assert.are.equal("0", code)
      return tonumber(peak)
    end

    it("keeps memory flat: 10 times the groups, about the same peak", function()
      srv:seed_groups(2000)
      local small = peak_kb { "list", "--fetch-all", "--jsonl", "--limit", "250" }
      srv:seed_groups(18000)
      local big = peak_kb { "list", "--fetch-all", "--jsonl", "--limit", "250" }
      local big_array = peak_kb { "list", "--fetch-all", "--limit", "250" }
      assert.is_true(small > 0)
      -- 20,000 groups held at once take 25 MB more; the collector's lag a few
      assert.is_true(big < small + 8000, ("peak %d kB for 2000 groups, %d kB for 20000"):format(small, big))
      assert.is_true(big_array < small + 8000, ("array form: %d kB for 20000"):format(big_array))
    end)

    it("stops fetching when stdout is closed and SIGPIPE ignored: exit 1", function()
      srv:seed_groups(5000)
      srv:settings { latency = 0.05 } -- head is gone long before the last pages
      srv:clear_stats()
      local err, status = os.tmpname(), os.tmpname()
      local pipe = assert(io.popen("trap '' PIPE; { " .. command_line { "list", "--fetch-all", "--jsonl",
        "--limit", "100" } .. " 2>" .. quote(err) .. "; echo $? >" .. quote(status) .. "; } | head -n 1"))
      assert.are.equal("{", pipe:read("*a"):sub(1, 1))
      pipe:close()
      assert.are.equal("1\n", slurp(status))
      assert.are.equal("soracom-groups: cannot write the output: Broken pipe\n", slurp(err))
      os.remove(err) os.remove(status)
      local pages = srv:stats().by_api["GET /v1/groups"].requests
      -- the pipe's buffer and how soon head runs decide the exact number
      assert.is_true(pages <= 10, pages .. " of 50 pages fetched")
    end)

    -- LuaJIT 2.1's compiled file:flush checks fflush's result by a guard whose exit runs
    -- the flush again, on the buffer the failed one emptied: the second succeeds and the
    -- error was lost, so the command went on fetching.
    it("reports the first failed write to a closed pipe, in a loop LuaJIT has compiled too", function()
      local dir = tempdir.new()
      local script, done, err = dir .. "/writer.lua", dir .. "/reader-gone", dir .. "/stderr"
      write_file(script, [[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. (rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")) .. "/?.so;"
  .. package.cpath
local printer = require("soracom.groups.cli.output").list(io.stdout, true)
local item = { name = ("x"):rep(88) } -- {"name":"x...x"} and a newline: 100 bytes
for i = 1, 3000 do
  local ok, why = printer.item(item)
  if not ok then io.stderr:write(i, " ", why, "\n") os.exit(1) end
  if i == 1000 then -- the reader took all 1000 lines and closed the pipe
    repeat os.execute("sleep 0.05") until io.open("]] .. done .. [[")
  end
end
]])
      -- the reader's shell closes its copy of the pipe too before saying it is gone
      assert(os.execute("trap '' PIPE; " .. LUA .. " " .. quote(script) .. " 2>" .. quote(err)
        .. " | { head -c 100000 >/dev/null; exec 0<&-; touch " .. quote(done) .. "; }"))
      local text = slurp(err)
      os.execute("rm -rf " .. quote(dir))
      assert.are.equal("1001 cannot write the output: Broken pipe\n", text)
    end)

    it("the array form streams too", function()
      srv:seed_groups(500)
      srv:settings { latency = 0.05 }
      srv:clear_stats()
      local pipe = assert(io.popen(command_line { "list", "--fetch-all", "--limit", "50" }))
      assert.are.equal("[", pipe:read("*l"))
      assert.are.equal("  {", pipe:read("*l"))
      local pages_when_first = srv:stats().by_api["GET /v1/groups"].requests
      local rest = pipe:read("*a")
      pipe:close()
      assert.is_true(pages_when_first <= 5, "of 10 pages, served before the first line: " .. pages_when_first)
      assert.are.equal(500, #fake.decode("[\n  {" .. rest))
    end)

    it("a page failing mid-stream: the pages before are printed, exit 1, the resume key", function()
      local ids = srv:seed_groups(10)
      srv:faults { { delay = 0.001, times = 2 }, { status = 503 } }
      local code, out, err = run { "--no-retry-on-error", "list", "--fetch-all", "--jsonl", "--limit", "3" }
      assert.are.equal(1, code)
      assert.are.same({ ids[1], ids[2], ids[3], ids[4], ids[5], ids[6] }, ids_of(out))
      assert.are.equal("soracom-groups: GET /groups: HTTP 503 (FAK0503): Injected fault\n"
        .. "soracom-groups: resume with --last-evaluated-key " .. ids[6] .. "\n", err)
      code, out, err = run { "list", "--fetch-all", "--jsonl", "--limit", "3", "--last-evaluated-key", ids[6] }
      assert.are.same({ 0, "" }, { code, err })
      assert.are.same({ ids[7], ids[8], ids[9], ids[10] }, ids_of(out))
    end)

    it("a failing page in the array form leaves the array unclosed", function()
      local ids = srv:seed_groups(4)
      srv:faults { { delay = 0.001 }, { status = 500 } }
      local code, out, err = run { "--no-retry-on-error", "list", "--fetch-all", "--limit", "2" }
      assert.are.equal(1, code)
      assert.are.equal("[\n  {", out:sub(1, 5))
      assert.are.equal("\n  }", out:sub(-4))
      assert.is_truthy(err:find("resume with --last-evaluated-key " .. ids[2] .. "\n", 1, true))
    end)

    it("the first page failing: no resume key, nothing on stdout", function()
      srv:faults { { status = 500 } }
      local code, out, err = run { "--no-retry-on-error", "list", "--fetch-all", "--jsonl" }
      assert.are.same({ 1, "", "soracom-groups: GET /groups: HTTP 500 (FAK0500): Injected fault\n" },
        { code, out, err })
    end)
  end)
end)
