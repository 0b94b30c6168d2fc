-- soracom-cli's profiles in full, over real HTTP to the fake server: switch-user
-- profiles (sourceProfile + operatorId + username, through /auth/switch_user), profile
-- commands (profileCommand, the profile_command option, --profile-command), and the
-- command's --raw-output.
local fake = require "spec.support.fake_server"
local tempdir = require "spec.support.tempdir"
local reachable = require "spec.support.reachable"
local command = require "spec.support.command"
local profile = require "soracom.groups.profile"
local groups = require "soracom.groups"
local core = require "soracom.groups.core"
local cjson = require "cjson"

local quote = command.quote

describe("soracom-cli profiles", function()
  local srv, dir

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    dir = tempdir.new()
  end)
  after_each(function() tempdir.remove(dir) end)

  local function write_profile(name, data)
    tempdir.write(dir .. "/" .. name .. ".json", cjson.encode(data))
    return dir .. "/" .. name .. ".json"
  end

  -- groups.new with SORACOM_PROFILE_DIR naming this spec's folder (Lua cannot set a
  -- variable of its own process: os.getenv, which groups.new reads it with, says it).
  local function new_client(options)
    local getenv = os.getenv
    os.getenv = function(name) -- luacheck: ignore 122
      if name == "SORACOM_PROFILE_DIR" then return dir end
      return getenv(name)
    end
    local ok, client, err = pcall(groups.new, options)
    os.getenv = getenv -- luacheck: ignore 122
    if not ok then error(client, 0) end
    return client, err
  end

  local function trail() return srv:trail { query = false } end

  -- A source profile (an auth key) and a profile switching from it to the fake's
  -- switch user; extra fields go into the switching profile.
  local function switch_profiles(extra)
    write_profile("source", { authKeyId = srv.auth_key_id, authKey = srv.auth_key })
    local target = { endpoint = srv.endpoint, sourceProfile = "source",
      operatorId = srv.switch_operator_id, username = srv.switch_user_name }
    for key, value in pairs(extra or {}) do target[key] = value end
    return write_profile("switched", target)
  end

  describe("a switch-user profile", function()
    it("logs in as the source, switches with the source's token, and calls as the switched user", function()
      switch_profiles()
      local client = assert(new_client { profile = "switched" })
      assert.are.same({}, trail()) -- lazily, as every login
      assert.are.same({}, assert(client:list_groups()))
      assert.are.same({ "POST /v1/auth", "POST /v1/auth/switch_user", "GET /v1/groups" }, trail())
      local requests, tokens = srv:requests(), srv:tokens()
      assert.are.same({ authKeyId = srv.auth_key_id, authKey = srv.auth_key, tokenTimeoutSeconds = 86400 },
        cjson.decode(requests[1].body))
      assert.are.equal("authKey", tokens[1].kind)
      assert.are.equal("switch", tokens[2].kind)
      -- the switch carries the source's pair, and asks for /auth/switch_user's default lifetime
      assert.are.equal(tokens[1].apiKey, requests[2].headers["x-soracom-api-key"])
      assert.are.equal(tokens[1].token, requests[2].headers["x-soracom-token"])
      assert.are.same({ operatorId = srv.switch_operator_id, userName = srv.switch_user_name,
        tokenTimeoutSeconds = 3600 }, cjson.decode(requests[2].body))
      -- the API is called with the switched user's pair
      assert.are.equal(tokens[2].apiKey, requests[3].headers["x-soracom-api-key"])
      assert.are.equal(tokens[2].token, requests[3].headers["x-soracom-token"])
      assert.are.equal(srv.switch_operator_id, client:operator_id())
      assert.are.equal(1, srv:stats().by_api["POST /v1/auth/switch_user"].requests)
      client:close()
    end)

    it("switches again with the kept source token when the switched one is refused", function()
      switch_profiles()
      local client = assert(new_client { profile = "switched" })
      assert.is_table(client:list_groups())
      local switched = srv:tokens()[2]
      local status = srv:http("POST", "/v1/auth/logout", { headers = {
        ["X-Soracom-API-Key"] = switched.apiKey, ["X-Soracom-Token"] = switched.token } })
      assert.are.equal(204, status)
      srv:clear_requests()
      assert.is_table(client:list_groups())
      assert.are.same({ "GET /v1/groups", "POST /v1/auth/switch_user", "GET /v1/groups" }, trail())
      local tokens = srv:tokens()
      assert.are.equal(3, #tokens) -- no new source login
      assert.are.equal(tokens[1].token, srv:requests()[2].headers["x-soracom-token"])
      client:close()
    end)

    it("logs in to the source again when its token is refused too", function()
      switch_profiles()
      local client = assert(new_client { profile = "switched" })
      assert.is_table(client:list_groups())
      srv:revoke_tokens()
      srv:clear_requests()
      assert.is_table(client:list_groups())
      assert.are.same({ "GET /v1/groups", "POST /v1/auth/switch_user", "POST /v1/auth",
        "POST /v1/auth/switch_user", "GET /v1/groups" }, trail())
      local tokens = srv:tokens()
      assert.are.equal(tokens[3].token, srv:requests()[4].headers["x-soracom-token"])
      assert.are.equal(tokens[4].token, srv:requests()[5].headers["x-soracom-token"])
      client:close()
    end)

    it("takes the switched token's lifetime from the profile or the option, within the API's limits", function()
      switch_profiles { tokenTimeoutSeconds = 600 }
      local client = assert(new_client { profile = "switched" })
      assert.is_table(client:list_groups())
      assert.are.equal(600, cjson.decode(srv:requests()[2].body).tokenTimeoutSeconds)
      client:close()
      local _, err = new_client { profile = "switched", token_timeout_seconds = 7200 }
      assert.are.equal("config", err.kind)
      assert.matches("token_timeout_seconds must be from 180 to 3600 for a switched user", err.message, 1, true)
      switch_profiles { tokenTimeoutSeconds = 86400 }
      _, err = new_client { profile = "switched" }
      assert.matches(dir .. "/switched.json: tokenTimeoutSeconds must be from 180 to 3600", err.message, 1, true)
    end)

    it("reports a refused switch as the API's error, once, naming /auth/switch_user", function()
      switch_profiles { username = "nobody" }
      local client = assert(new_client { profile = "switched" })
      local list, err = client:list_groups()
      assert.is_nil(list)
      assert.are.equal(400, err.status)
      assert.are.equal("/auth/switch_user", err.path)
      assert.are.equal("AUM0010", err.code)
      assert.are.same({ "POST /v1/auth", "POST /v1/auth/switch_user" }, trail())
      client:close()
    end)

    it("refuses a profile without the user to switch to, and a source that switches too", function()
      write_profile("source", { authKeyId = "k", authKey = "s" })
      write_profile("half", { sourceProfile = "source", operatorId = "OP1" })
      local _, err = new_client { profile = "half" }
      assert.matches("switches user (sourceProfile) without operatorId and username", err.message, 1, true)
      write_profile("chain", { sourceProfile = "half", operatorId = "OP1", username = "u" })
      _, err = new_client { profile = "chain" }
      assert.matches("a switched user cannot switch again", err.message, 1, true)
      write_profile("lost", { sourceProfile = "missing", operatorId = "OP1", username = "u" })
      _, err = new_client { profile = "lost" }
      assert.matches("cannot read profile " .. dir .. "/missing.json", err.message, 1, true)
    end)

    it("keeps every secret out of debug lines, errors, tostring and the client's fields", function()
      switch_profiles()
      local lines = {}
      local client = assert(new_client { profile = "switched", debug = function(line) lines[#lines + 1] = line end })
      assert.is_table(client:list_groups())
      srv:revoke_tokens()
      srv:settings { switch_user_name = "someone-else" }
      local _, err = client:list_groups()
      assert.are.equal(400, err.status)
      local secrets = { srv.auth_key }
      for _, token in ipairs(srv:tokens()) do
        secrets[#secrets + 1] = token.apiKey
        secrets[#secrets + 1] = token.token
      end
      local texts = reachable(client)
      texts[#texts + 1] = tostring(client)
      texts[#texts + 1] = tostring(err)
      for _, line in ipairs(lines) do texts[#texts + 1] = line end
      for _, text in ipairs(reachable(err)) do texts[#texts + 1] = text end
      for _, text in ipairs(texts) do
        for _, secret in ipairs(secrets) do
          assert.is_nil(text:find(secret, 1, true), "a secret in: " .. text)
        end
      end
      assert.matches("/auth/switch_user (switch to SAM user SWITCHED of OP0087654321) -> 200",
        table.concat(lines, "\n"), 1, true)
      client:close()
    end)

    it("logs out both the switched user's token and the source's", function()
      switch_profiles()
      local client = assert(new_client { profile = "switched" })
      assert.is_table(client:list_groups())
      assert(client:logout())
      local tokens = srv:tokens()
      assert.are.equal(2, #tokens)
      assert.is_true(tokens[1].revoked)
      assert.is_true(tokens[2].revoked)
      client:close()
    end)
  end)

  describe("a profile command", function()
    local good -- a command printing the fake's auth key as a profile
    before_each(function()
      good = "printf '%s' " .. quote(cjson.encode { authKeyId = srv.auth_key_id, authKey = srv.auth_key })
    end)

    it("gives a profile's credentials, replacing the file's, which keeps the endpoint", function()
      write_profile("cmd", { endpoint = srv.endpoint, authKeyId = "keyId-stale", authKey = "secret-stale",
        profileCommand = good })
      local client = assert(new_client { profile = "cmd" })
      assert.is_table(client:list_groups())
      assert.are.same({ authKeyId = srv.auth_key_id, authKey = srv.auth_key, tokenTimeoutSeconds = 86400 },
        cjson.decode(srv:requests()[1].body))
      client:close()
    end)

    it("is the profile with the profile_command option, and may switch user", function()
      local client = assert(new_client { profile_command = good, endpoint = srv.endpoint })
      assert.is_table(client:list_groups())
      assert.are.same({ "POST /v1/auth", "GET /v1/groups" }, trail())
      client:close()
      write_profile("source", { authKeyId = srv.auth_key_id, authKey = srv.auth_key })
      srv:reset()
      client = assert(new_client { endpoint = srv.endpoint, profile_command = "printf '%s' " .. quote(cjson.encode {
        sourceProfile = "source", operatorId = srv.switch_operator_id, username = srv.switch_user_name }) })
      assert.is_table(client:list_groups())
      assert.are.same({ "POST /v1/auth", "POST /v1/auth/switch_user", "GET /v1/groups" }, trail())
      client:close()
    end)

    it("says only the exit status of a failing command, never its output or messages", function()
      local _, err = new_client { profile_command = "echo secret-out-1; echo secret-err-2 >&2; exit 3" }
      assert.are.equal("config", err.kind)
      assert.matches("the profile_command option failed (exit status 3", err.message, 1, true)
      write_profile("bad", { profileCommand = "echo '{\"authKey\": \"secret-out-3\"'" })
      _, err = new_client { profile = "bad" }
      assert.matches("the output of the profileCommand of profile " .. dir .. "/bad.json is not a JSON object",
        err.message, 1, true)
      for _, text in ipairs { tostring(err), err.message } do
        assert.is_nil(text:find("secret", 1, true), text)
      end
      assert.are.same({}, trail())
    end)

    it("is stopped after its timeout, even with a pipeline left running", function()
      local started = core.now()
      local data, why = profile.run_command("sleep 10 | cat", "the test's command", 1)
      assert.is_nil(data)
      assert.are.equal("the test's command did not finish within 1 s: it was stopped", why)
      assert.is_true(core.now() - started < 5)
      -- a command that leaves a helper behind, holding its stdout, is read when it ends
      started = core.now()
      data = assert(profile.run_command([[printf '{"email": "e"}'; (sleep 10) &]], "a command", 10))
      assert.are.equal("e", data.email)
      assert.is_true(core.now() - started < 5)
    end)

    it("goes with neither a profile nor credentials given as options", function()
      assert.has_error(function() groups.new { profile = "p", profile_command = "true" } end,
        "soracom.groups.new: profile and profile_command do not go together: each names where the profile comes from")
      assert.has_error(function() groups.new { auth_key_id = "k", auth_key = "s", profile_command = "true" } end,
        "soracom.groups.new: profile_command gives the credentials: it does not go with auth key options")
    end)

    it("runs from the command's --profile-command, whose output never shows", function()
      local code, stdout, stderr = command.run({ "--endpoint", srv.endpoint, "--profile-command", good, "list" })
      assert.are.equal(0, code, stderr)
      assert.are.same({}, cjson.decode(stdout))
      assert.are.same({ "POST /v1/auth", "GET /v1/groups" }, trail())
      code, stdout, stderr = command.run({ "--endpoint", srv.endpoint, "--debug", "--profile-command",
        "printf '%s' '{\"authKeyId\": \"keyId-test\", \"authKey\": \"secret-wrong\"}'", "list" })
      assert.are.equal(1, code)
      assert.are.equal("", stdout)
      assert.matches("401", stderr, 1, true)
      assert.is_nil(stderr:find("secret-wrong", 1, true), stderr)
    end)
  end)

  describe("--raw-output", function()
    local function run(args)
      return command.against(srv, args)
    end

    it("prints the response compact, without a final newline, as soracom-cli", function()
      local id = srv:seed_groups(1, { name = "a" })[1]
      local code, stdout = run { "--raw-output", "get", "--group-id", id }
      assert.are.equal(0, code)
      assert.are.equal("{", stdout:sub(1, 1))
      assert.is_nil(stdout:find("\n", 1, true))
      assert.are.equal(id, cjson.decode(stdout).groupId)
      code, stdout = run { "--raw-output", "delete", "--group-id", id }
      assert.are.equal(0, code)
      assert.are.equal("", stdout)
    end)

    it("prints every page as one compact array with --fetch-all, --jsonl or not", function()
      local ids = srv:seed_groups(3, { env = "raw" })
      for _, jsonl in ipairs { false, true } do
        local args = { "--raw-output", "list", "--limit", "1", "--fetch-all" }
        if jsonl then args[#args + 1] = "--jsonl" end
        local code, stdout = run(args)
        assert.are.equal(0, code)
        assert.are.equal("[", stdout:sub(1, 1))
        assert.are.equal("]", stdout:sub(-1))
        assert.is_nil(stdout:find("[\n ]"))
        local list = cjson.decode(stdout)
        assert.are.same(ids, { list[1].groupId, list[2].groupId, list[3].groupId })
      end
      srv:reset()
      local code, stdout = run { "--raw-output", "list", "--fetch-all" }
      assert.are.equal(0, code)
      assert.are.equal("[]", stdout)
      code, stdout = run { "--raw-output", "list" }
      assert.are.equal(0, code)
      assert.are.equal("[]", stdout)
    end)
  end)
end)
