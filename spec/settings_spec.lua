-- Where a client's endpoint and credentials come from: options, SORACOM_* variables,
-- soracom-cli profiles, in that order. The resolver is given the environment as a
-- function, so each case states the variables it sets; spec/auth_spec.lua shows the
-- real environment reaching it through groups.new.
local settings = require "soracom.groups.settings"
local tempdir = require "spec.support.tempdir"
local cjson = require "cjson"

local function resolve(options, env)
  return settings.resolve(options, function(name) return (env or {})[name] end)
end

describe("settings", function()
  local dir

  before_each(function() dir = tempdir.new() end)
  after_each(function() tempdir.remove(dir) end)

  local function write_profile(name, data, mode)
    tempdir.write(dir .. "/" .. name .. ".json", type(data) == "string" and data or cjson.encode(data), mode)
    return dir .. "/" .. name .. ".json"
  end

  describe("credentials from options", function()
    it("take each of the four kinds", function()
      local s = assert(resolve { auth_key_id = "keyId-1", auth_key = "secret-1" })
      assert.are.equal("auth_key", s.credentials.kind)
      assert.are.same({ authKeyId = "keyId-1", authKey = "secret-1", tokenTimeoutSeconds = 86400 },
        s.credentials.login)
      s = assert(resolve { email = "a@example.com", password = "pw" })
      assert.are.same({ email = "a@example.com", password = "pw", tokenTimeoutSeconds = 86400 },
        s.credentials.login)
      s = assert(resolve { operator_id = "OP1", user_name = "u", password = "pw", mfa_otp_code = "123456",
        token_timeout_seconds = 600 })
      assert.are.same({ operatorId = "OP1", userName = "u", password = "pw", mfaOTPCode = "123456",
        tokenTimeoutSeconds = 600 }, s.credentials.login)
      s = assert(resolve { api_key = "k", token = "t", operator_id = "OP9" })
      assert.are.equal("token", s.credentials.kind)
      assert.are.equal("OP9", s.operator_id)
      assert.is_nil(s.credentials.login)
    end)

    it("raise for half a pair, naming the missing half", function()
      assert.has_error(function() resolve { auth_key_id = "k" } end,
        "soracom.groups.new: auth_key_id given without auth_key (auth key credentials)")
      assert.has_error(function() resolve { auth_key = "s" } end,
        "soracom.groups.new: auth_key given without auth_key_id (auth key credentials)")
      assert.has_error(function() resolve { email = "e" } end,
        "soracom.groups.new: email given without password (root user credentials)")
      assert.has_error(function() resolve { user_name = "u", password = "p" } end,
        "soracom.groups.new: user_name and password given without operator_id (SAM user credentials)")
      assert.has_error(function() resolve { password = "p" } end,
        "soracom.groups.new: password needs email (root user) or operator_id and user_name (SAM user)")
    end)

    it("take operator_id only where a login or an issued token vouches for it", function()
      local message = "soracom.groups.new: operator_id goes with api_key + token, or with user_name + "
        .. "password (a SAM user)"
      assert.has_error(function() resolve({ operator_id = "OP9" }, { SORACOM_AUTH_KEY_ID = "k",
        SORACOM_AUTH_KEY = "s" }) end, message)
      assert.has_error(function() resolve { operator_id = "OP9", auth_key_id = "k", auth_key = "s" } end, message)
      assert.has_error(function() resolve { operator_id = "OP9", email = "e", password = "p" } end, message)
      -- a SAM user's operator ID is part of its login; the login's answer is what counts
      assert.is_nil(assert(resolve { operator_id = "OP1", user_name = "u", password = "pw" }).operator_id)
    end)

    it("raise for two kinds at once", function()
      assert.has_error(function() resolve { auth_key_id = "k", auth_key = "s", email = "e", password = "p" } end)
      assert.has_error(function() resolve { api_key = "k", token = "t", password = "p" } end)
    end)

    it("check the token's lifetime and lang", function()
      assert.has_error(function() resolve { api_key = "k", token = "t", token_timeout_seconds = 172801 } end,
        "soracom.groups.new: token_timeout_seconds must be a whole number from 1 to 172800")
      assert.has_error(function() resolve { api_key = "k", token = "t", token_timeout_seconds = 1.5 } end)
      assert.has_error(function() resolve { api_key = "k", token = "t", lang = "fr" } end,
        'soracom.groups.new: lang must be "en" or "ja"')
    end)

    it("beat the environment and the profile", function()
      write_profile("default", { authKeyId = "keyId-p", authKey = "secret-p" })
      local s = assert(resolve({ email = "o@example.com", password = "pw" },
        { SORACOM_AUTH_KEY_ID = "keyId-e", SORACOM_AUTH_KEY = "secret-e", SORACOM_PROFILE_DIR = dir }))
      assert.are.equal("root", s.credentials.kind)
      assert.are.equal("options", s.credentials.source)
    end)
  end)

  describe("credentials from the environment", function()
    it("take an auth key first, then email, then a SAM user", function()
      local env = {
        SORACOM_AUTH_KEY_ID = "keyId-e", SORACOM_AUTH_KEY = "secret-e",
        SORACOM_EMAIL = "e@example.com", SORACOM_PASSWORD = "pw",
        SORACOM_OPERATOR_ID = "OP1", SORACOM_USER_NAME = "u",
      }
      local s = assert(resolve({}, env))
      assert.are.equal("auth_key", s.credentials.kind)
      assert.are.equal("environment", s.credentials.source)
      assert.are.equal("keyId-e", s.credentials.login.authKeyId)
      env.SORACOM_AUTH_KEY_ID, env.SORACOM_AUTH_KEY = nil, nil
      s = assert(resolve({}, env))
      assert.are.equal("root", s.credentials.kind)
      assert.are.equal("e@example.com", s.credentials.login.email)
      env.SORACOM_EMAIL = nil
      s = assert(resolve({}, env))
      assert.are.equal("sam", s.credentials.kind)
      assert.are.same({ operatorId = "OP1", userName = "u", password = "pw", tokenTimeoutSeconds = 86400 },
        s.credentials.login)
    end)

    it("refuse half a pair, naming the missing variable", function()
      local s, err = resolve({}, { SORACOM_AUTH_KEY_ID = "keyId-e" })
      assert.is_nil(s)
      assert.matches("SORACOM_AUTH_KEY is not set", err, 1, true)
      s, err = resolve({}, { SORACOM_EMAIL = "e@example.com" })
      assert.is_nil(s)
      assert.matches("SORACOM_PASSWORD is not set", err, 1, true)
      s, err = resolve({}, { SORACOM_USER_NAME = "u", SORACOM_PASSWORD = "pw" })
      assert.is_nil(s)
      assert.matches("SORACOM_OPERATOR_ID is not set", err, 1, true)
    end)

    it("beat the profile", function()
      write_profile("default", { authKeyId = "keyId-p", authKey = "secret-p" })
      local s = assert(resolve({}, { SORACOM_EMAIL = "e", SORACOM_PASSWORD = "p", SORACOM_PROFILE_DIR = dir }))
      assert.are.equal("root", s.credentials.kind)
    end)
  end)

  describe("profiles", function()
    it("read the default profile from SORACOM_PROFILE_DIR", function()
      local path = write_profile("default", { coverageType = "g", authKeyId = "keyId-p", authKey = "secret-p" })
      local s = assert(resolve({}, { SORACOM_PROFILE_DIR = dir }))
      assert.are.equal("auth_key", s.credentials.kind)
      assert.are.equal("profile " .. path, s.credentials.source)
      assert.are.equal("https://g.api.soracom.io/v1", s.endpoint)
    end)

    it("read ~/.soracom when SORACOM_PROFILE_DIR is not set", function()
      assert(os.execute("mkdir -p " .. dir .. "/.soracom"))
      tempdir.write(dir .. "/.soracom/default.json", cjson.encode { email = "h@example.com", password = "p" })
      local s = assert(resolve({}, { HOME = dir }))
      assert.are.equal("h@example.com", s.credentials.login.email)
    end)

    it("pick the profile by option, then SORACOM_PROFILE", function()
      write_profile("default", { email = "d@example.com", password = "p" })
      write_profile("work", { email = "w@example.com", password = "p" })
      write_profile("other", { email = "o@example.com", password = "p" })
      local env = { SORACOM_PROFILE_DIR = dir, SORACOM_PROFILE = "work" }
      assert.are.equal("w@example.com", assert(resolve({}, env)).credentials.login.email)
      assert.are.equal("o@example.com", assert(resolve({ profile = "other" }, env)).credentials.login.email)
    end)

    it("take a SAM user with username or userName, and the other fields soracom-cli writes", function()
      write_profile("sam", { operatorId = "OP1", username = "u1", password = "p", tokenTimeoutSeconds = 3600,
        mfaOTPCode = "654321", endpoint = "http://127.0.0.1:9999", headers = { ["X-Extra"] = "yes" } })
      local s = assert(resolve({ profile = "sam" }, { SORACOM_PROFILE_DIR = dir }))
      assert.are.same({ operatorId = "OP1", userName = "u1", password = "p", tokenTimeoutSeconds = 3600,
        mfaOTPCode = "654321" }, s.credentials.login)
      assert.are.equal(3600, s.token_timeout)
      assert.are.equal("http://127.0.0.1:9999/v1", s.endpoint)
      assert.are.same({ "X-Extra: yes" }, s.headers)
      write_profile("sam2", { operatorId = "OP1", userName = "u2", password = "p", headers = { "X-A: 1", "X-B: 2" } })
      s = assert(resolve({ profile = "sam2" }, { SORACOM_PROFILE_DIR = dir }))
      assert.are.equal("u2", s.credentials.login.userName)
      assert.are.same({ "X-A: 1", "X-B: 2" }, s.headers)
    end)

    it("refuse a file that group or others can read, saying how to fix it", function()
      local path = write_profile("default", { authKeyId = "keyId-p", authKey = "secret-p" }, "644")
      local s, err = resolve({}, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.matches(path, err, 1, true)
      assert.matches("chmod 600 " .. path, err, 1, true)
      assert.matches("mode 644", err, 1, true)
      write_profile("default", { authKeyId = "keyId-p", authKey = "secret-p" }, "640")
      assert.is_nil((resolve({}, { SORACOM_PROFILE_DIR = dir })))
    end)

    it("read only a regular file, and do not hang on a FIFO in a profile's place", function()
      local fifo = dir .. "/default.json"
      assert(os.execute("mkfifo -m 600 '" .. fifo .. "'"))
      -- in a child process with a time limit: reading a FIFO without a writer would block
      local interpreter = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
      local pipe = assert(io.popen("timeout 10 " .. interpreter .. " -e \"package.path = 'lua/?.lua;' .. "
        .. "package.path; require 'spec.support.paths'; local s, err = require('soracom.groups.settings')"
        .. ".resolve({}, function(n) return n == 'SORACOM_PROFILE_DIR' and '" .. dir .. "' or nil end); "
        .. "print(s, err)\" 2>&1; echo \"exit=$?\""))
      local output = pipe:read("*a")
      pipe:close()
      assert.matches("^nil\tprofile " .. fifo:gsub("%p", "%%%0") .. " is not a regular file\nexit=0", output)
      os.remove(fifo)
      assert(os.execute("mkdir -m 700 '" .. fifo .. "'"))
      local settings_of, err = resolve({}, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(settings_of)
      assert.are.equal("profile " .. fifo .. " is not a regular file", err)
    end)

    it("follow a link to a private file, and judge the file, not the link", function()
      local target = write_profile("real", { authKeyId = "keyId-p", authKey = "secret-p" })
      assert(os.execute("ln -s '" .. target .. "' '" .. dir .. "/default.json'"))
      local s = assert(resolve({}, { SORACOM_PROFILE_DIR = dir }))
      assert.are.equal("keyId-p", s.credentials.login.authKeyId)
      assert(os.execute("chmod 644 '" .. target .. "'"))
      local _, err = resolve({}, { SORACOM_PROFILE_DIR = dir })
      assert.matches("can be read by other users (mode 644)", err, 1, true)
    end)

    it("name the file when it is missing or not JSON, and show none of its secrets", function()
      local s, err = resolve({ profile = "nope" }, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.matches(dir .. "/nope.json", err, 1, true)
      assert.matches("No such file", err, 1, true)
      local path = write_profile("broken", '{"authKeyId": "keyId-p", "authKey": "secret-zzz"')
      s, err = resolve({ profile = "broken" }, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.matches("profile " .. path .. " is not a JSON object", err, 1, true)
      assert.is_nil(err:find("secret-zzz", 1, true))
      write_profile("array", "[1]")
      assert.is_nil((resolve({ profile = "array" }, { SORACOM_PROFILE_DIR = dir })))
      write_profile("typed", { authKeyId = 5, authKey = "s" })
      s, err = resolve({ profile = "typed" }, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.matches("authKeyId must be a string", err, 1, true)
    end)

    it("say what is missing when there are no credentials anywhere", function()
      local s, err = resolve({}, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.are.equal("no credentials: none in the options, none in SORACOM_* variables, and no profile at "
        .. dir .. "/default.json", err)
      write_profile("default", { coverageType = "jp" })
      s, err = resolve({}, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.matches("holds no complete credentials", err, 1, true)
    end)

    it("refuse a profile name that is a path", function()
      local s, err = resolve({ profile = "../etc/passwd" }, { SORACOM_PROFILE_DIR = dir })
      assert.is_nil(s)
      assert.matches("may hold only letters", err, 1, true)
    end)
  end)

  describe("the endpoint", function()
    -- The endpoint resolved with a profile (holding credentials) chosen by
    -- SORACOM_PROFILE, or by the profile option when `by_option` is true.
    local function endpoint(options, env, profile, by_option)
      env = env or {}
      if profile then
        profile.authKeyId, profile.authKey = "keyId-p", "secret-p"
        write_profile("p", profile)
        if by_option then options.profile = "p" else env.SORACOM_PROFILE = "p" end
        env.SORACOM_PROFILE_DIR = dir
      else
        options.api_key, options.token = options.api_key or "k", options.token or "t"
      end
      local s, err = resolve(options, env)
      return s and s.endpoint or err
    end

    it("follows the precedence: option, SORACOM_ENDPOINT, coverage, SORACOM_COVERAGE_TYPE, "
      .. "profile endpoint, profile coverageType, jp", function()
      local all_options = { endpoint = "http://opt.example", coverage = "g" }
      local all_env = { SORACOM_ENDPOINT = "http://env.example", SORACOM_COVERAGE_TYPE = "g" }
      local profile = { endpoint = "http://profile.example", coverageType = "g" }
      assert.are.equal("http://opt.example/v1", endpoint({ endpoint = all_options.endpoint,
        coverage = "g" }, all_env, profile))
      assert.are.equal("http://env.example/v1", endpoint({ coverage = "jp" }, all_env, profile))
      assert.are.equal("https://api.soracom.io/v1", endpoint({ coverage = "jp" },
        { SORACOM_COVERAGE_TYPE = "g" }, profile))
      assert.are.equal("https://g.api.soracom.io/v1", endpoint({}, { SORACOM_COVERAGE_TYPE = "g" },
        { endpoint = "http://profile.example" }))
      assert.are.equal("http://profile.example/v1", endpoint({}, {}, profile))
      assert.are.equal("https://g.api.soracom.io/v1", endpoint({}, {}, { coverageType = "g" }))
      assert.are.equal("https://api.soracom.io/v1", endpoint({}, {}, {}))
    end)

    it("sends a profile named by the option to its own endpoint, whatever the environment says", function()
      local hostile = { SORACOM_ENDPOINT = "https://attacker.example", SORACOM_COVERAGE_TYPE = "g" }
      assert.are.equal("https://prod.example/v1",
        endpoint({}, hostile, { endpoint = "https://prod.example" }, true))
      assert.are.equal("https://api.soracom.io/v1", endpoint({}, hostile, { coverageType = "jp" }, true))
      assert.are.equal("https://api.soracom.io/v1", endpoint({}, hostile, {}, true))
      -- the options still come first
      assert.are.equal("https://g.api.soracom.io/v1",
        endpoint({ coverage = "g" }, hostile, { endpoint = "https://prod.example" }, true))
      assert.are.equal("http://mine.example/v1",
        endpoint({ endpoint = "http://mine.example" }, hostile, { endpoint = "https://prod.example" }, true))
      -- chosen by SORACOM_PROFILE, the environment's endpoint applies, as with soracom-cli
      assert.are.equal("https://attacker.example/v1",
        endpoint({}, hostile, { endpoint = "https://prod.example" }))
    end)

    it("uses the sandbox hosts with sandbox = true (option or profile)", function()
      assert.are.equal("https://api-sandbox.soracom.io/v1", endpoint { sandbox = true })
      assert.are.equal("https://g.api-sandbox.soracom.io/v1", endpoint { sandbox = true, coverage = "g" })
      assert.are.equal("https://g.api-sandbox.soracom.io/v1",
        endpoint({}, {}, { sandbox = true, coverageType = "g" }))
    end)

    it("adds /v1 to an endpoint without it", function()
      assert.are.equal("http://127.0.0.1:1/v1", endpoint { endpoint = "http://127.0.0.1:1" })
      assert.are.equal("http://127.0.0.1:1/v1", endpoint { endpoint = "http://127.0.0.1:1/v1/" })
      assert.are.equal("http://h/prefix/v1", endpoint({}, { SORACOM_ENDPOINT = "http://h/prefix" }))
    end)

    it("raises for a bad coverage or endpoint option whatever the environment holds", function()
      write_profile("p", { authKeyId = "keyId-p", authKey = "secret-p", endpoint = "https://p.example" })
      local environments = {
        {},
        { SORACOM_ENDPOINT = "https://api.soracom.io" },
        { SORACOM_COVERAGE_TYPE = "g" },
        { SORACOM_ENDPOINT = "https://api.soracom.io", SORACOM_AUTH_KEY_ID = "half-a-pair" },
        { SORACOM_PROFILE_DIR = dir, SORACOM_PROFILE = "p" },
        { SORACOM_PROFILE_DIR = dir, SORACOM_PROFILE = "missing" },
      }
      for _, env in ipairs(environments) do
        for _, options in ipairs { {}, { api_key = "k", token = "t" }, { profile = "p" } } do
          local bad = { coverage = "us" }
          for name, value in pairs(options) do bad[name] = value end
          assert.has_error(function() resolve(bad, env) end,
            'soracom.groups.new: coverage must be "jp" or "g" (got "us")')
          bad.coverage, bad.endpoint = nil, "ftp://example.com"
          assert.has_error(function() resolve(bad, env) end,
            "soracom.groups.new: endpoint must be an http:// or https:// URL")
        end
      end
      -- a valid coverage still yields to SORACOM_ENDPOINT, as before
      assert.are.equal("http://env.example/v1",
        endpoint({ coverage = "g" }, { SORACOM_ENDPOINT = "http://env.example" }))
    end)

    it("reports a bad coverage from the environment or a profile", function()
      assert.matches('SORACOM_COVERAGE_TYPE must be "jp" or "g"',
        endpoint({}, { SORACOM_COVERAGE_TYPE = "eu" }), 1, true)
      assert.matches("coverageType of profile", endpoint({}, {}, { coverageType = "x" }), 1, true)
      assert.matches("SORACOM_ENDPOINT must be an http", endpoint({}, { SORACOM_ENDPOINT = "ftp://x" }), 1, true)
    end)
  end)
end)

describe("settings, edge cases", function()
  local dir

  before_each(function() dir = tempdir.new() end)
  after_each(function() tempdir.remove(dir) end)

  it("takes the credentials of a profile named in the options before the environment's", function()
    tempdir.write(dir .. "/prod.json", cjson.encode { authKeyId = "keyId-prod", authKey = "secret-prod",
      endpoint = "https://proxy.example" })
    local s = assert(resolve({ profile = "prod" }, { SORACOM_PROFILE_DIR = dir,
      SORACOM_AUTH_KEY_ID = "keyId-env", SORACOM_AUTH_KEY = "secret-env" }))
    assert.are.equal("keyId-prod", s.credentials.login.authKeyId)
    assert.are.equal("https://proxy.example/v1", s.endpoint)
  end)

  it("refuses sandbox = true with an endpoint from elsewhere", function()
    local s, err = resolve({ api_key = "k", token = "t", sandbox = true },
      { SORACOM_ENDPOINT = "https://api.soracom.io" })
    assert.is_nil(s)
    assert.matches("sandbox = true, but SORACOM_ENDPOINT gives the endpoint https://api.soracom.io/v1", err, 1, true)
  end)

  it("refuses SAM variables set in part, and a password alone", function()
    local s, err = resolve({}, { SORACOM_OPERATOR_ID = "OP1", SORACOM_PASSWORD = "pw" })
    assert.is_nil(s)
    assert.matches("SORACOM_USER_NAME is not set", err, 1, true)
    s, err = resolve({}, { SORACOM_PASSWORD = "pw" })
    assert.is_nil(s)
    assert.matches("SORACOM_PASSWORD is set, but neither SORACOM_EMAIL", err, 1, true)
  end)

  it("keeps a function giving MFA codes apart from the login body", function()
    local code = function() return "123456" end
    local s = assert(resolve { email = "e", password = "p", mfa_otp_code = code })
    assert.are.equal(code, s.credentials.mfa_code)
    assert.is_nil(s.credentials.login.mfaOTPCode)
  end)
end)
