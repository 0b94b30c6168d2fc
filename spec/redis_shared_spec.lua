-- The redis option outside nginx (issue 26): plain Lua processes, each with its own
-- client, share one token and one budget per operator through a redis-server of the
-- spec's own, over the C core's hiredis link; and each goes on alone, saying so once,
-- when Redis fails (killed, stopped, flushed, full). Over real HTTP to the fake server;
-- the "hosts" are child processes (spec/support/redis_host.lua).
local fake = require "spec.support.fake_server"
local redis_server = require "spec.support.redis_server"
local reachable = require "spec.support.reachable"
local command = require "spec.support.command"
local core = require "soracom.groups.core"
local groups = require "soracom.groups"
local redis_conn = require "soracom.groups.redis_conn"

local quote = command.quote

local API = "GET /v1/groups/{group_id}"
local LIMIT, WINDOW = 50, 1 -- the fake's limit of API: 50 requests a second
local CALLS, CONCURRENCY = 100, 10 -- per host
local HOSTS = 3
local TIMEOUT = 2 -- seconds: a bound on a working Redis's answer, never waited out
-- A host still running after this long (seconds) is killed: a bug that holds its
-- requests for days fails the spec (no result) rather than hangs it. Never waited out
-- otherwise: a host takes a few seconds.
local HOST_MOST = 90

-- Whether `text` holds `needle` (plain).
local function holds(text, needle)
  return text:find(needle, 1, true) ~= nil
end

local function lines_matching(lines, pattern)
  local found = {}
  for _, line in ipairs(lines) do
    if line:match(pattern) then found[#found + 1] = line end
  end
  return found
end

local function count_matching(lines, pattern)
  local n = 0
  for _, line in ipairs(lines) do
    if line:match(pattern) then n = n + 1 end
  end
  return n
end

-- The debug lines of the fall-back, and of Redis's return.
local FALL_BACK = "^soracom%-groups: redis: .*; this process uses its own budget and logins until it answers$"
local BACK = "^soracom%-groups: redis answers again: the budget and the token are shared again$"

describe("the redis option outside nginx", function()
  local srv, rs

  setup(function()
    assert(core.redis, "core.redis is missing: " .. tostring(core.redis_missing))
    srv = fake.start()
    rs = redis_server.start()
  end)

  teardown(function()
    if rs then rs:stop() end
    if srv then srv:stop() end
  end)


  local function redis_url() return "redis://127.0.0.1:" .. rs.port end

  before_each(function()
    if rs.pid == nil then rs:start() end
    srv:reset()
    assert.are.equal("OK", rs:call("FLUSHALL"))
    assert.are.equal("OK", rs:call("SCRIPT", "FLUSH"))
  end)

  -- A client of this process, with the fake's auth key; its debug lines in `lines`.
  local function new_client(options, lines)
    local all = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
      transport = "curl", retry_base_delay = 0.05 }
    if options.email then all.auth_key_id, all.auth_key = nil, nil end
    for name, value in pairs(options) do all[name] = value end
    if lines then all.debug = function(line) lines[#lines + 1] = line end end
    return assert(groups.new(all))
  end

  -- Every key in Redis (SCAN).
  local function all_keys()
    local keys, cursor = {}, "0"
    repeat
      local reply = assert(rs:call("SCAN", cursor, "COUNT", "100"))
      cursor = reply[1]
      for _, key in ipairs(reply[2]) do keys[#keys + 1] = key end
    until cursor == "0"
    table.sort(keys)
    return keys
  end

  -------------------------------------------------------------------------------------
  -- Hosts: child processes, each with a client of its own.

  -- Starts a host (see spec/support/redis_host.lua for the arguments); it waits for
  -- `go` to exist before its calls.
  local function spawn(go, args, skew)
    local words = {}
    for i, word in ipairs(args) do words[i] = quote(word) end
    local line = "REDIS_HOST_CLOCK_SKEW=" .. (skew or 0) .. " SORACOM_ENDPOINT=" .. quote(srv.endpoint)
      .. " SORACOM_AUTH_KEY_ID=" .. quote(srv.auth_key_id) .. " SORACOM_AUTH_KEY=" .. quote(srv.auth_key)
      .. " exec timeout -s KILL " .. HOST_MOST .. " " .. command.LUA .. " spec/support/redis_host.lua "
      .. table.concat(words, " ", 1, 4) .. " " .. quote(go) .. " " .. table.concat(words, " ", 5) .. " 2>&1"
    local host = { pipe = assert(io.popen(line)), lines = {}, debug = {} }
    host.pid = assert(host.pipe:read("*l"):match("^pid (%d+)$"))
    return host
  end

  -- Reads the host's lines until one matches `pattern` (true), or its end (false).
  local function read_until(host, pattern)
    while true do
      local line = host.pipe:read("*l")
      if line == nil then return false end
      host.lines[#host.lines + 1] = line
      local debug_line = line:match("^debug (.*)$")
      if debug_line then host.debug[#host.debug + 1] = debug_line end
      local ok, failed, why = line:match("^result (%d+) (%d+) (.*)$")
      if ok then host.ok, host.failed, host.why = tonumber(ok), tonumber(failed), why end
      if pattern and line:match(pattern) then return true end
    end
  end

  -- Reads the host to its end; returns it.
  local function finish(host)
    read_until(host, nil)
    host.pipe:close()
    assert(host.ok, "the host printed no result: " .. table.concat(host.lines, "\n"))
    return host
  end

  local function go_file()
    local path = os.tmpname()
    os.remove(path)
    return path
  end

  -- The hosts' clocks: each process's is its own (the library's clock is monotonic:
  -- the seconds since its host started), so these are days apart.
  local SKEWS = { 0, 3 * 86400, 40 * 86400 }

  -- HOSTS hosts making `calls` (CALLS) calls each, started together; `extra` arguments
  -- after the concurrency.
  local function start_hosts(redis_arg, id, extra, calls)
    local go = go_file()
    local hosts = {}
    for i = 1, HOSTS do
      local args = { redis_arg, id, tostring(calls or CALLS), tostring(CONCURRENCY) }
      for _, word in ipairs(extra or {}) do args[#args + 1] = word end
      hosts[i] = spawn(go, args, SKEWS[i])
    end
    command.write_file(go, "")
    return hosts, go
  end

  local function answers_429()
    local by_api = srv:stats().by_api[API]
    return by_api and by_api.status_429 or 0
  end

  -------------------------------------------------------------------------------------

  describe("its checks", function()
    local PASSWORD = "pa:ss@w/rd-7f3a"

    local function raises(options, pattern, secret)
      local base = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key }
      for name, value in pairs(options) do base[name] = value end
      local ok, err = pcall(groups.new, base)
      assert.is_false(ok)
      assert.matches("^soracom%.groups%.new: " .. pattern, err)
      for _, part in ipairs { PASSWORD, "pa:ss", secret } do assert.is_false(holds(err, part), err) end
      return err
    end

    it("raise naming the field, before any request", function()
      local at = "redis://:" .. PASSWORD .. "@127.0.0.1:" .. rs.port
      raises({ redis = "http://127.0.0.1:6379" }, "redis%.url: the URL must start with redis://")
      raises({ redis = "rediss://:" .. PASSWORD .. "@127.0.0.1:1" }, "redis%.url: rediss:// %(TLS%) is not built in")
      raises({ redis = "redis://" }, "redis%.url: the URL names no host")
      raises({ redis = "redis://:" .. PASSWORD .. "@127.0.0.1:99999" }, "redis%.url: the port must be within 1%-65535")
      raises({ redis = "redis://:" .. PASSWORD .. "@127.0.0.1:x" }, "redis%.url: the URL names no host")
      raises({ redis = "redis://:" .. PASSWORD .. "@127.0.0.1/zero" }, "redis%.url: the database after / must be")
      raises({ redis = "redis://colonless-secret@127.0.0.1" }, "redis%.url: the part before @ must be",
        "colonless-secret")
      raises({ redis = {} }, "redis: give either url .* or command")
      raises({ redis = { url = at, command = function() end } }, "redis: give either url .* or command")
      raises({ redis = { url = at, timeout = 0 } }, "redis%.timeout must be a number of seconds above 0 and at most 60")
      raises({ redis = { url = at, timeout = 61 } }, "redis%.timeout must be")
      raises({ redis = { url = at, timeout = 0 / 0 } }, "redis%.timeout must be")
      raises({ redis = { url = at, timeout = "1" } }, "redis%.timeout must be a number")
      raises({ redis = { url = at, prefix = "" } }, "redis%.prefix must be a non%-empty string")
      raises({ redis = { url = at, prefix = "a b" } }, "redis%.prefix must be a non%-empty string without spaces")
      raises({ redis = { url = at, prefix = "a\nb" } }, "redis%.prefix must be")
      raises({ redis = { url = at, password = PASSWORD } }, "redis: unknown field password")
      raises({ redis = { url = at, [1] = "x" } }, "redis: unknown field 1")
      raises({ redis = true }, "redis must be a string or a table")
      raises({ on_redis_error = "local" }, "on_redis_error says what to do when redis fails: give redis too")
      raises({ redis = at, on_redis_error = "ignore" }, 'on_redis_error must be "local" or "fail"')
      raises({ redis = at, on_redis_error = 1 }, "on_redis_error must be a string")
      raises({ redis = at, shared_dict = "soracom" }, "redis and shared_dict do not go together")
      raises({ redis = at, token_cache = true }, "token_cache and redis do not go together")
      assert.are.equal(0, #srv:requests()) -- none was sent
      for _, share in ipairs { true, false } do
        local client = new_client { redis = at, share_token = share }
        client:close()
      end
    end)

    it("never show the password: not in the client, its fields, its debug lines or its errors", function()
      local rs_auth = redis_server.start()
      local ok, err = pcall(function()
        assert.are.equal("OK", rs_auth:call("CONFIG", "SET", "requirepass", PASSWORD))
        local encoded = PASSWORD:gsub("[:@/]", function(c) return string.format("%%%02X", c:byte()) end)
        local lines = {}
        local good = new_client({ redis = { url = "redis://:" .. encoded .. "@127.0.0.1:" .. rs_auth.port .. "/2" },
          on_redis_error = "fail" }, lines)
        local id = srv:seed_groups(1)[1]
        local group, call_err = good:get_group(id)
        assert.are.equal(id, group and group.groupId, tostring(call_err))
        -- It went through that Redis, to its database 2 (AUTH and SELECT worked).
        local looker = assert(redis_conn.connect(rs_auth.host, rs_auth.port, TIMEOUT))
        assert.are.equal("OK", looker:call(TIMEOUT, "AUTH", PASSWORD))
        assert.are.equal("OK", looker:call(TIMEOUT, "SELECT", "2"))
        assert.is_true(looker:call(TIMEOUT, "DBSIZE") >= 3)
        looker:close()
        -- A wrong password: a failure that names AUTH, not what was sent.
        local wrong = new_client({ redis = "redis://:not-" .. encoded .. "@127.0.0.1:" .. rs_auth.port,
          on_redis_error = "fail" }, lines)
        local none, refused = wrong:get_group(id)
        assert.is_nil(none)
        assert.are.equal("redis", refused.kind)
        assert.matches("AUTH was refused", tostring(refused))
        local texts = { tostring(good), tostring(wrong), tostring(refused), tostring(call_err) }
        for _, line in ipairs(lines) do texts[#texts + 1] = line end
        for _, client in ipairs { good, wrong } do
          for _, text in ipairs(reachable(client)) do texts[#texts + 1] = text end
        end
        for _, text in ipairs(reachable(refused)) do texts[#texts + 1] = text end
        assert.is_true(#texts > 10)
        for _, text in ipairs(texts) do
          assert.is_nil(text:find(PASSWORD, 1, true), text)
          assert.is_nil(text:find(encoded, 1, true), text)
          assert.is_nil(text:find("pa:ss", 1, true), text)
        end
        good:close()
        wrong:close()
      end)
      rs_auth:stop()
      assert(ok, err)
    end)
  end)

  -------------------------------------------------------------------------------------

  describe("across processes", function()
    it("gives three hosts, their clocks days apart, one budget and one token: no answer 429 beyond one a window, "
      .. "one /auth", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
      local started = core.now()
      local hosts, go = start_hosts(redis_url(), id)
      for _, host in ipairs(hosts) do
        finish(host)
        assert.are.same({ CALLS, 0, "-" }, { host.ok, host.failed, host.why })
        assert.are.same({}, host.debug) -- Redis never failed
      end
      os.remove(go)
      local seconds = core.now() - started
      local windows = math.ceil(seconds / WINDOW) + 1
      local stats = srv:stats()
      assert.are.equal(HOSTS * CALLS, stats.by_api[API].requests - stats.by_api[API].status_429)
      assert.is_true(answers_429() <= windows, answers_429() .. " answers 429 in " .. windows .. " windows")
      assert.are.equal(1, srv:logins())
    end)

    it("renews the token once for all, ahead of its expiry", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
      local lifetime, calls = 2, 60 -- renewed 1.8 s after each login (a tenth before its end)
      local started = core.now()
      local hosts, go = start_hosts(redis_url(), id, { "-", "-", "-", "-", tostring(lifetime) }, calls)
      for _, host in ipairs(hosts) do
        finish(host)
        assert.are.same({ calls, 0, "-" }, { host.ok, host.failed, host.why })
      end
      os.remove(go)
      local seconds = core.now() - started
      local logins = srv:logins()
      assert.is_true(logins >= 2, logins) -- it was renewed
      -- one login, then one renewal each 1.8 s at most, whichever host made it
      assert.is_true(logins <= 1 + math.ceil(seconds / (0.9 * lifetime)), logins .. " in " .. seconds .. " s")
      local stats = srv:stats()
      assert.are.equal(HOSTS * calls, stats.by_api[API].requests) -- none refused, none sent twice
    end)

    it("(the same without it: each host spends the whole budget, and many answers are 429)", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
      local hosts, go = start_hosts("none", id)
      for _, host in ipairs(hosts) do
        finish(host)
        assert.are.same({ CALLS, 0, "-" }, { host.ok, host.failed, host.why })
      end
      os.remove(go)
      assert.is_true(answers_429() > 10, answers_429())
      assert.are.equal(HOSTS, srv:logins())
    end)

    it("goes on when Redis is killed mid-run: no call fails, one line each when it fails and when it is back",
      function()
        local id = srv:seed_groups(1)[1]
        srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
        local hold = go_file()
        command.write_file(hold, "")
        local hosts, go = start_hosts(redis_url(), id, { "20", "-", "-", "-", "-", hold })
        for _, host in ipairs(hosts) do assert.is_true(read_until(host, "^progress$")) end
        -- Started again at once: each host's connection died with it, so each fails at
        -- its next command all the same, and finds it back at its first try after that.
        rs:kill()
        rs:start()
        os.remove(hold) -- (every host is held after its progress line until now)
        for _, host in ipairs(hosts) do assert.is_true(read_until(host, "^debug soracom%-groups: redis: ")) end
        for _, host in ipairs(hosts) do
          finish(host)
          assert.are.same({ CALLS, 0, "-" }, { host.ok, host.failed, host.why })
          assert.are.equal(1, count_matching(host.debug, FALL_BACK), table.concat(host.debug, "\n"))
          assert.are.equal(1, count_matching(host.debug, BACK), table.concat(host.lines, "\n"))
          assert.are.equal(2, #host.debug, table.concat(host.debug, "\n"))
        end
        os.remove(go)
        assert.are.equal(1, srv:logins()) -- each kept the token it had
      end)

    it("goes on when Redis stops answering (SIGSTOP), within its timeout: no call fails", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
      local hold = go_file()
      command.write_file(hold, "")
      local hosts, go = start_hosts(redis_url(), id, { "30", "0.2", "-", "-", "-", hold })
      for _, host in ipairs(hosts) do assert.is_true(read_until(host, "^progress$")) end
      rs:pause()
      os.remove(hold) -- (every host is held after its progress line until now)
      local fell_back = {}
      for i, host in ipairs(hosts) do fell_back[i] = read_until(host, "^debug soracom%-groups: redis: ") end
      rs:resume()
      for i, host in ipairs(hosts) do
        finish(host)
        assert.is_true(fell_back[i], table.concat(host.lines, "\n"))
        assert.are.same({ CALLS, 0, "-" }, { host.ok, host.failed, host.why })
        assert.are.equal(1, count_matching(host.debug, FALL_BACK), table.concat(host.debug, "\n"))
        assert.matches("no answer within 0.2 s", host.debug[1])
      end
      os.remove(go)
    end)

    it("lets another process log in soon after the holder of the login lock was killed", function()
      local id = srv:seed_groups(1)[1]
      srv:faults { { delay = 10 } } -- the holder's /auth: slow
      local go = go_file()
      command.write_file(go, "")
      local holder = spawn(go, { redis_url(), id, "1", "1" })
      -- (polled: the holder takes the lock as soon as it starts)
      local lock_key
      local deadline = core.now() + 10
      while lock_key == nil do
        local keys = assert(rs:call("KEYS", "*:lock:login"))
        lock_key = keys[1]
        assert.is_true(core.now() < deadline, "the holder never took the login lock")
        if lock_key == nil then core.sleep(0.01) end
      end
      local ttl = rs:call("PTTL", lock_key)
      assert.is_true(ttl > 0 and ttl <= 5000, ttl) -- a lease of seconds, not the login's 70 s
      assert(os.execute("kill -KILL " .. holder.pid))
      holder.pipe:read("*a")
      holder.pipe:close()
      os.remove(go)
      local lines = {}
      local other = new_client({ redis = redis_url() }, lines)
      local started = core.now()
      local group, err = other:get_group(id)
      local seconds = core.now() - started
      assert.are.equal(id, group and group.groupId, tostring(err))
      -- well before a login's hold (connect_timeout + timeout, 70 s), which a lease of
      -- the login's length would have made it wait
      assert.is_true(seconds < 35, seconds)
      other:close()
    end)
  end)

  -------------------------------------------------------------------------------------

  describe("in Redis", function()
    it("keeps no credential in a key, no secret in a value, and every key expires", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
      local by_key = new_client { redis = redis_url() }
      local by_root = new_client { redis = redis_url(),
        email = srv.email, password = srv.password }
      for _ = 1, 5 do
        assert(by_key:get_group(id))
        assert(by_root:get_group(id))
      end
      local tokens = srv:tokens()
      assert.are.equal(2, #tokens) -- one for each identity
      local keys = all_keys()
      local in_key = { srv.auth_key_id, srv.auth_key, srv.email, srv.password }
      for _, token in ipairs(tokens) do
        in_key[#in_key + 1] = token.apiKey
        in_key[#in_key + 1] = token.token
      end
      local token_entries, accounts = 0, 0
      for _, key in ipairs(keys) do
        for _, secret in ipairs(in_key) do assert.is_false(holds(key, secret), key) end
        local value = rs:call("GET", key)
        assert.are.equal("string", type(value), key)
        for _, secret in ipairs { srv.auth_key, srv.password } do assert.is_false(holds(value, secret), key) end
        local ttl = rs:call("PTTL", key)
        assert.is_true(ttl > 0, key .. ": " .. ttl)
        if key:match(":rate:") then
          accounts = accounts + 1
          assert.is_true(ttl <= (WINDOW + 60) * 1000, key .. ": " .. ttl)
        end
        if key:match(":token$") then token_entries = token_entries + 1 end
        assert.matches("^soracom%-groups:%x+:", key)
      end
      assert.are.equal(2, token_entries)
      assert.are.equal(1, accounts) -- one operator, one API
      by_key:close()
      by_root:close()
    end)
  end)

  -------------------------------------------------------------------------------------

  describe("with the README's ACL user", function()
    -- The ACL SETUSER command the README's Security part gives, as its words.
    local function readme_acl()
      local file = assert(io.open("README.md", "rb"))
      local text = file:read("*a")
      file:close()
      local acl = assert(text:match("`(ACL SETUSER soracom[^`]*)`"), "the README gives no ACL SETUSER soracom")
      local words = {}
      for word in acl:gmatch("%S+") do words[#words + 1] = word end
      return words
    end

    it("shares the budget and the token with no more than those rights", function()
      local words = readme_acl()
      -- (the password the README shows is a placeholder: this user's is the spec's own)
      for i, word in ipairs(words) do
        if word:match("^>") then words[i] = ">acl-spec-secret" end
      end
      assert.are.equal("OK", rs:call((table.unpack or unpack)(words)))
      local id = srv:seed_groups(1)[1]
      local lines = {}
      local url = "redis://soracom:acl-spec-secret@127.0.0.1:" .. rs.port
      local first, second = new_client({ redis = url }, lines), new_client({ redis = url }, lines)
      for _ = 1, 3 do
        assert(first:get_group(id))
        assert(second:get_group(id))
      end
      assert.are.same({}, lines_matching(lines, "redis"))
      assert.are.equal(1, srv:logins())
      first:close()
      second:close()
      assert.are.equal(1, rs:call("ACL", "DELUSER", "soracom"))
    end)
  end)

  describe("when Redis fails", function()
    -- A loopback port nothing listens on.
    local function closed_port()
      local port = rs.port
      rs:kill()
      return port
    end

    it('with on_redis_error = "fail", a call returns an error of kind "redis", with no secret', function()
      local id = srv:seed_groups(1)[1]
      local url = "redis://:the-pass@127.0.0.1:" .. closed_port()
      local lines = {}
      local client = new_client({ redis = url, on_redis_error = "fail" }, lines)
      local group, err = client:get_group(id)
      assert.is_nil(group)
      assert.are.equal("redis", err.kind)
      local text = tostring(err)
      assert.matches("^soracom%-groups: POST /auth: redis: ", text)
      for _, secret in ipairs { srv.auth_key, "the-pass" } do assert.is_false(holds(text, secret), text) end
      assert.are.equal(0, srv:logins()) -- not logged in without the lock
      assert.are.equal(1, count_matching(lines, "^soracom%-groups: redis: .*; requests fail until it answers$"))
      client:close()
    end)

    it('with on_redis_error = "local" (the default), a call succeeds on its own', function()
      local id = srv:seed_groups(1)[1]
      local url = "redis://127.0.0.1:" .. closed_port()
      for _, on_error in ipairs { "local", "-" } do
        local lines = {}
        local client = new_client({ redis = url, on_redis_error = on_error ~= "-" and on_error or nil }, lines)
        local group, err = client:get_group(id)
        assert.are.equal(id, group and group.groupId, tostring(err))
        assert.are.equal(1, count_matching(lines, FALL_BACK))
        client:close()
      end
    end)

    -- Counts of EVAL and EVALSHA calls Redis made.
    local function script_calls()
      local info = rs:call("INFO", "commandstats")
      return tonumber(info:match("cmdstat_eval:calls=(%d+)") or 0),
        tonumber(info:match("cmdstat_evalsha:calls=(%d+)") or 0)
    end

    it("sends a script whole again when Redis forgot it (SCRIPT FLUSH, FLUSHALL): no fall-back", function()
      local id = srv:seed_groups(1)[1]
      local lines = {}
      local client = new_client({ redis = redis_url() }, lines)
      assert(client:get_group(id))
      assert(client:get_group(id))
      -- (FLUSHALL forgets the keys, SCRIPT FLUSH the scripts)
      for _, forget in ipairs { { "SCRIPT", "FLUSH" }, { "FLUSHALL" }, { "SCRIPT", "FLUSH" } } do
        local evals = script_calls()
        assert.are.equal("OK", rs:call((table.unpack or unpack)(forget)))
        local group, err = client:get_group(id)
        assert.are.equal(id, group and group.groupId, tostring(err))
        if forget[1] == "SCRIPT" then
          assert.is_true(script_calls() > evals, evals) -- EVALSHA met NOSCRIPT, then EVAL
        end
        assert.are.equal(1, count_matching(all_keys(), ":rate:")) -- its account is in Redis again
      end
      assert.are.equal(0, count_matching(lines, "redis"), table.concat(lines, "\n"))
      assert.are.equal(1, srv:logins())
      client:close()
    end)

    it("goes on alone while Redis is full (OOM replies), and back once it has room", function()
      local id = srv:seed_groups(1)[1]
      local lines = {}
      local client = new_client({ redis = redis_url() }, lines)
      assert(client:get_group(id))
      finally(function() rs:call("CONFIG", "SET", "maxmemory", "0") end)
      assert.are.equal("OK", rs:call("CONFIG", "SET", "maxmemory-policy", "noeviction"))
      assert.are.equal("OK", rs:call("CONFIG", "SET", "maxmemory", "1"))
      local full = rs:call("SET", "probe", "x")
      assert.is_false(full) -- Redis refuses writes now
      for _ = 1, 5 do
        local group, err = client:get_group(id)
        assert.are.equal(id, group and group.groupId, tostring(err))
      end
      assert.are.equal(1, count_matching(lines, FALL_BACK), table.concat(lines, "\n"))
      assert.matches("OOM", table.concat(lines, "\n"))
      assert.are.equal("OK", rs:call("CONFIG", "SET", "maxmemory", "0"))
      -- (polled: it asks Redis again a second after the failure)
      local deadline = core.now() + 10
      while count_matching(lines, BACK) == 0 do
        assert.is_true(core.now() < deadline, "never back: " .. table.concat(lines, "\n"))
        local group, err = client:get_group(id)
        assert.are.equal(id, group and group.groupId, tostring(err))
        core.sleep(0.05)
      end
      assert.are.equal(1, srv:logins())
      client:close()
    end)
  end)

  -------------------------------------------------------------------------------------

  describe("through a command function", function()
    it("shares as the URL does: two clients, one /auth", function()
      local id = srv:seed_groups(1)[1]
      local own = assert(redis_conn.connect(rs.host, rs.port, TIMEOUT))
      local commands = 0
      local function run(name, ...)
        commands = commands + 1
        return own:call(TIMEOUT, name, ...)
      end
      local first = new_client { redis = { command = run, prefix = "mine:" } }
      local second = new_client { redis = { command = run, prefix = "mine:" } }
      assert(first:get_group(id))
      assert(second:get_group(id))
      assert.are.equal(1, srv:logins())
      assert.is_true(commands > 4)
      for _, key in ipairs(all_keys()) do assert.matches("^mine:", key) end
      first:close()
      second:close()
      own:close()
    end)

    it("measures Redis's clock again after a slow TIME, and keeps the shortest round trip", function()
      -- Redis reads its clock, then its answer comes 0.4 s late (a busy host): the middle
      -- of that round trip is 0.2 s after Redis's reading, and the offset 0.2 s off.
      local id = srv:seed_groups(1)[1]
      local own = assert(redis_conn.connect(rs.host, rs.port, TIMEOUT))
      local late = { 0.4 }
      local off = {} -- for each change of an account: its time less Redis's time then
      local function redis_time()
        local reply = own:call(TIMEOUT, "TIME")
        return tonumber(reply[1]) + tonumber(reply[2]) / 1e6
      end
      local function run(name, ...)
        if name == "TIME" then
          local reply = own:call(TIMEOUT, "TIME")
          local delay = table.remove(late, 1)
          if delay then core.sleep(delay) end
          return reply
        end
        local argv = { ... }
        local keys = tonumber(argv[2])
        if (name == "EVALSHA" or name == "EVAL") and tostring(argv[3]):find(":rate:", 1, true) then
          -- argv: the script, how many keys, the keys, the change's name, its time
          off[#off + 1] = tonumber(argv[3 + keys + 1]) - redis_time()
        end
        return own:call(TIMEOUT, name, ...)
      end
      local client = new_client { redis = { command = run } }
      assert(client:get_group(id))
      assert.is_true(#off > 0 and math.abs(off[1]) > 0.15, "the slow measure: " .. table.concat(off, ", "))
      core.sleep(1.05) -- (a measure from a slow round trip stands a second at most)
      local before = #off
      assert(client:get_group(id))
      assert.is_true(#off > before)
      for i = before + 1, #off do
        assert.is_true(math.abs(off[i]) < 0.05, "after measuring again: " .. table.concat(off, ", ", before + 1))
      end
      client:close()
      own:close()
    end)

    it("that raises is a failure of Redis (the client falls back), not a crash", function()
      local id = srv:seed_groups(1)[1]
      local lines = {}
      local client = new_client({ redis = { command = function() error("the pool is gone") end } }, lines)
      local group, err = client:get_group(id)
      assert.are.equal(id, group and group.groupId, tostring(err))
      assert.are.equal(1, count_matching(lines, FALL_BACK), table.concat(lines, "\n"))
      assert.matches("the command function raised: .*the pool is gone", table.concat(lines, "\n"))
      client:close()
      local failing = new_client({ redis = { command = function() error("the pool is gone") end },
        on_redis_error = "fail" })
      local none, failure = failing:get_group(id)
      assert.is_nil(none)
      assert.are.equal("redis", failure.kind)
      failing:close()
    end)
  end)
end)
