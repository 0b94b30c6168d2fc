-- The command's --redis, SORACOM_GROUPS_REDIS and --on-redis-error: runs of
-- bin/soracom-groups (subprocesses) against the fake server over real HTTP share one
-- token through a redis-server of this spec's own; a bad URL is a usage error; an
-- unreachable Redis is gone around, or fails with --on-redis-error fail; the password
-- never shows in any output or file.
local fake = require "spec.support.fake_server"
local redis_server = require "spec.support.redis_server"
local tempdir = require "spec.support.tempdir"
local command = require "spec.support.command"
local core = require "soracom.groups.core"

local quote, slurp = command.quote, command.slurp

-- A distinctive password, written in the URL with an escape (%40 is "@"): neither
-- form may show anywhere. MARK is in both.
local MARK = "redisPW-7731"
local PASSWORD = "Kx9@" .. MARK
local PASSWORD_IN_URL = "Kx9%40" .. MARK

local closed_port = redis_server.free_port

describe("soracom-groups with Redis", function()
  local srv, redis, home, group_id
  local seen -- every output and file of a test, searched for the password after it

  setup(function()
    srv = fake.start()
    redis = redis_server.start()
    assert.are.equal("OK\n", redis:cli("CONFIG", "SET", "requirepass", PASSWORD))
  end)
  teardown(function()
    redis:stop()
    srv:stop()
  end)

  -- redis-cli --raw on database db, authenticated (the password in its environment,
  -- not on its command line).
  local function redis_cli(db, ...)
    local words = {}
    for i = 1, select("#", ...) do words[i] = quote(select(i, ...)) end
    return command.output(("REDISCLI_AUTH=%s redis-cli --raw --no-auth-warning -h 127.0.0.1 -p %d -n %d %s 2>&1")
      :format(quote(PASSWORD), redis.port, db, table.concat(words, " ")))
  end

  local function keys_in(db)
    local keys = {}
    for key in redis_cli(db, "KEYS", "*"):gmatch("[^\n]+") do keys[#keys + 1] = key end
    table.sort(keys)
    return keys
  end

  local function url(db, port)
    return ("redis://:%s@127.0.0.1:%d/%d"):format(PASSWORD_IN_URL, port or redis.port, db or 0)
  end

  before_each(function()
    srv:reset()
    for db = 0, 2 do assert.are.equal("OK\n", redis_cli(db, "FLUSHDB")) end
    home = tempdir.new()
    group_id = srv:seed_groups(1)[1]
    seen = {}
  end)
  after_each(function()
    for _, text in ipairs(seen) do
      assert.is_nil(text:find(MARK, 1, true), text)
      assert.is_nil(text:find(PASSWORD_IN_URL, 1, true), text)
    end
    tempdir.remove(home)
  end)

  -- The shell line of one run: an AuthKey (so that each login shows), the token cache
  -- under home, env a shell prefix ("SORACOM_GROUPS_REDIS=..."; the variable is unset
  -- unless given), out and err the files its output goes to.
  local function line(args, env, out, err)
    local words = { "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id, "--auth-key", srv.auth_key }
    for _, word in ipairs(args) do words[#words + 1] = word end
    for i, word in ipairs(words) do words[i] = quote(word) end
    return "XDG_CACHE_HOME=" .. quote(home .. "/cache") .. " SORACOM_GROUPS_REDIS= " .. (env or "") .. " "
      .. command.LUA .. " bin/soracom-groups " .. table.concat(words, " ") .. " </dev/null >" .. quote(out)
      .. " 2>" .. quote(err)
  end

  -- Runs the argument lists at once, each to its end: a list of {code, stdout, stderr}.
  local function run_together(list, env)
    local jobs, parts = {}, {}
    for i, args in ipairs(list) do
      local job = { out = os.tmpname(), err = os.tmpname(), code = os.tmpname() }
      jobs[i] = job
      parts[i] = "(" .. line(args, env, job.out, job.err) .. "; echo $? >" .. quote(job.code) .. ") &"
    end
    os.execute(table.concat(parts, " ") .. " wait")
    local results = {}
    for i, job in ipairs(jobs) do
      local stdout, stderr = slurp(job.out), slurp(job.err)
      seen[#seen + 1] = stdout
      seen[#seen + 1] = stderr
      results[i] = { tonumber(slurp(job.code):match("%d+")), stdout, stderr }
      os.remove(job.out) os.remove(job.err) os.remove(job.code)
    end
    return results
  end

  -- One run: exit code, stdout, stderr.
  local function run(args, env)
    return (table.unpack or unpack)(run_together({ args }, env)[1])
  end

  local function the_group(out)
    return fake.decode(out).groupId
  end

  it("lets runs at once and runs after them log in once in total, and writes no token cache", function()
    local get = { "--redis", url(), "get", "--group-id", group_id }
    local debug_get = { "--debug", "--redis", url(), "get", "--group-id", group_id }
    local results = run_together { get, get, debug_get }
    for _, result in ipairs(results) do
      assert.are.equal(0, result[1], result[3])
      assert.are.equal(group_id, the_group(result[2]))
    end
    assert.are.equal(1, srv:logins())
    local code, out, err = run(debug_get)
    assert.are.equal(0, code, err)
    assert.are.equal(group_id, the_group(out))
    assert.are.equal(1, srv:logins())
    assert.are.equal(1, #srv:tokens())
    -- the cache is off, and --debug says so
    assert.matches("the token cache is not used: Redis keeps the token", err)
    assert.are.equal("", command.output("ls -A " .. quote(home))) -- no cache folder made
    -- the token and the budget are in database 0, under keys that name no secret
    local keys = keys_in(0)
    assert.is_true(#keys >= 2, table.concat(keys, " "))
    for _, key in ipairs(keys) do
      assert.matches("^soracom%-groups:%x+:", key)
      seen[#seen + 1] = key
      seen[#seen + 1] = redis_cli(0, "GET", key)
    end
  end)

  it("takes the URL from SORACOM_GROUPS_REDIS, with a user name too", function()
    local env = "SORACOM_GROUPS_REDIS=" .. quote(("redis://default:%s@127.0.0.1:%d/1"):format(PASSWORD_IN_URL,
      redis.port))
    for _ = 1, 2 do
      local code, out, err = run({ "get", "--group-id", group_id }, env)
      assert.are.equal(0, code, err)
      assert.are.equal(group_id, the_group(out))
    end
    assert.are.equal(1, srv:logins())
    assert.is_true(#keys_in(1) >= 2)
    assert.are.same({}, keys_in(0))
  end)

  it("takes --redis over SORACOM_GROUPS_REDIS", function()
    local env = "SORACOM_GROUPS_REDIS=" .. quote(url(1))
    local code, out, err = run({ "--redis", url(2), "--on-redis-error", "fail", "get", "--group-id", group_id }, env)
    assert.are.equal(0, code, err)
    assert.are.equal(group_id, the_group(out))
    assert.is_true(#keys_in(2) >= 2)
    assert.are.same({}, keys_in(1))
    -- and over a variable that names a Redis nobody answers on
    env = "SORACOM_GROUPS_REDIS=" .. quote(url(1, closed_port()))
    code, out, err = run({ "--redis", url(2), "--on-redis-error", "fail", "get", "--group-id", group_id }, env)
    assert.are.equal(0, code, err)
    assert.are.equal(group_id, the_group(out))
    assert.are.equal(1, srv:logins()) -- the token of the first run, from database 2
  end)

  it("refuses a bad URL as a usage error, sending nothing and showing no part of the password", function()
    local bad = {
      ["redis://:" .. PASSWORD_IN_URL .. "@127.0.0.1:99999/0"] = "the port must be within 1%-65535",
      ["redis://:" .. PASSWORD_IN_URL .. "@127.0.0.1/zero"] = "the database after / must be a number",
      ["redis://" .. PASSWORD_IN_URL .. "@127.0.0.1"] = "the part before @ must be %[username%]:password",
      ["http://:" .. PASSWORD_IN_URL .. "@127.0.0.1"] = "the URL must start with redis://",
      ["rediss://:" .. PASSWORD_IN_URL .. "@127.0.0.1"] = "rediss:// %(TLS%) is not built in",
      ["redis://:" .. PASSWORD_IN_URL .. "@"] = "the URL names no host",
    }
    for bad_url, why in pairs(bad) do
      local code, out, err = run { "--redis", bad_url, "get", "--group-id", group_id }
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.matches("^soracom%-groups: %-%-redis: " .. why, err)
      code, out, err = run({ "get", "--group-id", group_id }, "SORACOM_GROUPS_REDIS=" .. quote(bad_url))
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.matches("^soracom%-groups: SORACOM_GROUPS_REDIS: " .. why, err)
    end
    -- plan and apply keep their exit codes (2 says "changes to make"): a usage error is 1
    local code, out, err = run { "--redis", "redis://:" .. PASSWORD_IN_URL .. "@127.0.0.1:0", "plan", "none.json" }
    assert.are.equal("", out)
    assert.are.equal(1, code)
    assert.matches("^soracom%-groups: %-%-redis: the port must be within", err)
    -- --on-redis-error says what to do with a Redis: it needs one
    code, out, err = run { "--on-redis-error", "fail", "get", "--group-id", group_id }
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^soracom%-groups: %-%-on%-redis%-error needs %-%-redis %(or SORACOM_GROUPS_REDIS%)", err)
    assert.are.same({}, srv:requests())
  end)

  it("goes on alone when Redis does not answer, and says so once under --debug", function()
    local code, out, err = run { "--debug", "--redis", url(0, closed_port()), "get", "--group-id", group_id }
    assert.are.equal(0, code, err)
    assert.are.equal(group_id, the_group(out))
    local _, said = err:gsub("this process uses its own budget and logins until it answers", "")
    assert.are.equal(1, said, err)
    assert.are.equal(1, srv:logins())
  end)

  it("fails with --on-redis-error fail when Redis does not answer: exit 1, kind redis, nothing sent", function()
    local down = url(0, closed_port())
    local code, out, err = run { "--redis", down, "--on-redis-error", "fail", "get", "--group-id", group_id }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^soracom%-groups: .*redis: ", err)
    assert.are.same({}, srv:requests())
    -- apply --json names the kind: a plan saved through Redis, applied while it is down
    local desired, saved = home .. "/desired.json", home .. "/changes.plan"
    command.write_file(desired, core.encode_json { groups = { { name = "sensors-osaka", tags = { env = "prod" } } } })
    code, out, err = run { "--redis", url(), "plan", "-o", saved, desired }
    assert.are.equal(2, code, err) -- changes to make
    assert.matches("+ create group sensors-osaka", out, 1, true)
    seen[#seen + 1] = slurp(saved)
    srv:clear_requests()
    code, out = run { "--redis", down, "--on-redis-error", "fail", "apply", "--yes", "--json", saved }
    assert.are.equal(1, code)
    local result = fake.decode(out)
    assert.are.equal("sensors-osaka", result.failed[1].name)
    assert.are.equal("redis", result.failed[1].error.kind)
    assert.are.same({}, srv:requests())
  end)

  it("documents --redis, --on-redis-error and SORACOM_GROUPS_REDIS in --help", function()
    local code, out = run { "--help" }
    assert.are.equal(0, code)
    for _, text in ipairs { "--redis <url>", "--on-redis-error {local,fail}", "SORACOM_GROUPS_REDIS" } do
      assert.is_truthy(out:find(text, 1, true), text)
    end
  end)
end)
