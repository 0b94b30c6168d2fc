-- A reviewer's attacks on the redis option (issue 26) outside nginx: what a user meets
-- when Redis misbehaves, when one process holds several clients, and when the debug
-- hook raises. Over real HTTP to the fake server and a redis-server of the spec's own.
-- Each attack asserts the behaviour the README and CONTRACT promise, and could fail.
local fake = require "spec.support.fake_server"
local redis_server = require "spec.support.redis_server"
local command = require "spec.support.command"
local core = require "soracom.groups.core"
local groups = require "soracom.groups"
local redis_conn = require "soracom.groups.redis_conn"

local quote = command.quote

local TIMEOUT = 2 -- seconds: a bound on a working Redis's answer (the spec's own connection)

local FALL_BACK = "^soracom%-groups: redis: .*; this process uses its own budget and logins until it answers$"
local BACK = "^soracom%-groups: redis answers again: the budget and the token are shared again$"

local function count_matching(lines, pattern)
  local n = 0
  for _, line in ipairs(lines) do
    if line:match(pattern) then n = n + 1 end
  end
  return n
end

describe("attacks on the redis option", function()
  local srv, rs
  local opened = {}

  setup(function()
    assert(core.redis, "core.redis is missing: " .. tostring(core.redis_missing))
    srv = fake.start()
    rs = redis_server.start()
  end)

  teardown(function()
    if rs then rs:stop() end
    if srv then srv:stop() end
  end)


  local function url(db) return "redis://127.0.0.1:" .. rs.port .. (db and "/" .. db or "") end

  before_each(function()
    if rs.pid == nil then rs:start() end
    srv:reset()
    assert.are.equal("OK", rs:call("FLUSHALL"))
    assert.are.equal("OK", rs:call("SCRIPT", "FLUSH"))
  end)

  local function new_client(options, lines)
    local all = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
      transport = "curl", retry_base_delay = 0.05 }
    for name, value in pairs(options) do all[name] = value end
    if lines then all.debug = function(line) lines[#lines + 1] = line end end
    local client = assert(groups.new(all))
    opened[#opened + 1] = client
    return client
  end

  -- (closed however the test ends: a client left open would keep its operator's budget,
  -- and its link, for the next test's clients)
  after_each(function()
    for _, client in ipairs(opened) do client:close() end
    opened = {}
  end)

  -- The keys of database `db` (the spec's connection is left on database 0).
  local function keys_of(db, pattern)
    assert.are.equal("OK", rs:call("SELECT", tostring(db)))
    local keys = assert(rs:call("KEYS", pattern))
    assert.are.equal("OK", rs:call("SELECT", "0"))
    table.sort(keys)
    return keys
  end

  -------------------------------------------------------------------------------------

  describe("two clients of one operator in one process", function()
    it("each counts its calls in the Redis database its URL names (the README: 'a database of its own')",
      function()
        local id = srv:seed_groups(1)[1]
        srv:settings { rate_limit = { limit = 50, window = 1 } }
        local first = new_client { redis = url(1) }
        local second = new_client { redis = url(2) }
        assert(first:get_group(id))
        assert(second:get_group(id))
        -- The hosts sharing database 2 must see the calls the second client makes: its
        -- account must be in database 2, not only in database 1.
        assert.are.equal(1, #keys_of(1, "*:rate:*"))
        assert.are.equal(1, #keys_of(2, "*:rate:*"), "database 2 holds no account: the second client's calls "
          .. "were counted in database 1 (the first client's)")
        first:close()
        second:close()
      end)

    it("one whose Redis refuses its password does not drag the other's budget off Redis", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = 50, window = 1 } }
      assert.are.equal("OK", rs:call("ACL", "SETUSER", "right", "on", ">right-secret", "~*", "+@all"))
      finally(function() rs:call("ACL", "DELUSER", "right") end)
      local wrong_lines, right_lines = {}, {}
      local wrong = new_client({ redis = "redis://right:wrong-secret@127.0.0.1:" .. rs.port }, wrong_lines)
      local right = new_client({ redis = "redis://right:right-secret@127.0.0.1:" .. rs.port }, right_lines)
      assert(wrong:get_group(id))
      assert.are.equal(1, count_matching(wrong_lines, FALL_BACK)) -- (AUTH refused: it goes on alone)
      for _ = 1, 3 do assert(right:get_group(id)) end
      assert.are.equal(0, count_matching(right_lines, "redis"), table.concat(right_lines, "\n"))
      -- The right client's calls are counted in Redis.
      assert.are.equal(1, #keys_of(0, "*:rate:*"), "no account in Redis: the right client's budget went "
        .. "through the wrong client's link, which is down")
      wrong:close()
      right:close()
    end)
  end)
  -------------------------------------------------------------------------------------

  describe("Redis that fails while a request is on the wire", function()
    it("leaves no probe stranded in the shared account: once Redis answers, the next call goes within seconds",
      function()
        local id = srv:seed_groups(1)[1]
        srv:settings { rate_limit = { limit = 50, window = 1 } }
        -- The program's own connection (a command function, as the README shows for a pool
        -- or TLS), which fails while `down` is set, as a pool does when Redis is unreachable.
        local own = assert(redis_conn.connect(rs.host, rs.port, TIMEOUT))
        local down = false
        local function run_command(name, ...)
          if down then return nil, "redis: the pool's connection timed out" end
          return own:call(TIMEOUT, name, ...)
        end
        local lines = {}
        local client = new_client({ redis = { command = run_command }, rate_limit_max_delay = 5 }, lines)
        assert(client:operator_id()) -- logged in: the next request of the API is its first, a probe
        srv:settings { latency = 0.3 }
        local run = client:start_map({ id }, function(group_id) return client:get_group(group_id) end)
        -- (stepped until the probe is on the wire: admitted in Redis, its answer 0.3 s away)
        local function on_the_wire()
          for _, r in ipairs(srv:requests()) do
            if r.method == "GET" and r.uri:match("^/v1/groups/") then return true end
          end
          return false
        end
        local deadline = core.now() + 5
        while not on_the_wire() do
          assert.is_true(core.now() < deadline, "the probe never reached the server")
          run:step(0.01)
        end
        down = true -- its answer is taken in while Redis cannot be reached
        while not run:step(0.05) do end
        down = false
        local results = run:results()
        assert.is_true(results[1].ok, tostring(results[1].err))
        assert.are.equal(1, count_matching(lines, FALL_BACK), table.concat(lines, "\n"))
        srv:settings { latency = 0 }
        core.sleep(1.1) -- Redis is asked again a second after the failure
        local started = core.now()
        local group, err = client:get_group(id)
        local seconds = core.now() - started
        assert.are.equal(1, count_matching(lines, BACK), table.concat(lines, "\n"))
        -- (a stranded probe holds every process's calls of the API for 30 s, LOST_AFTER:
        -- past rate_limit_max_delay, this call fails with kind rate_limit)
        assert.are.equal(id, group and group.groupId, tostring(err))
        assert.is_true(seconds < 2, seconds .. " s")
        client:close()
        own:close()
      end)
  end)

  -------------------------------------------------------------------------------------

  describe("closed clients", function()
    local function connected_clients()
      return tonumber(rs:call("INFO", "clients"):match("connected_clients:(%d+)"))
    end

    it("hold no connection to Redis once closed", function()
      local id = srv:seed_groups(1)[1]
      local before = connected_clients()
      local kept = {}
      for i = 1, 10 do
        local client = new_client { redis = url() }
        assert(client:get_group(id))
        client:close()
        kept[i] = client -- (a program may keep a closed client in its objects)
      end
      assert.are.equal(before, connected_clients(), #kept .. " closed clients kept")
    end)

    it("leave the process its file descriptors: 80 clients made and closed one after the other under "
      .. "ulimit -n 64, no call fails", function()
      local id = srv:seed_groups(1)[1]
      local line = ("ulimit -n 64; exec timeout -s KILL 60 %s spec/support/redis_many_clients.lua %s %s %s %s %s 80 "
        .. "2>&1")
        :format(command.LUA, quote(srv.endpoint), quote(srv.auth_key_id), quote(srv.auth_key), quote(url()), quote(id))
      local out = command.output(line)
      local failed, why = out:match("result (%d+) 80 (.*)")
      assert(failed, out)
      assert.are.equal(0, tonumber(failed), why)
    end)
  end)

  -------------------------------------------------------------------------------------

  describe("a key changed by hand", function()
    -- Two clients of one identity with links of their own: two hosts, as Redis sees them.
    local function two_hosts(lines)
      return new_client({ redis = url() }, lines), new_client({ redis = url() }, lines)
    end

    it("of the wrong type at the token's key costs one login, not one per host, and is replaced", function()
      local id = srv:seed_groups(1)[1]
      local first, second = two_hosts({})
      assert(first:get_group(id))
      local token_key = assert(rs:call("KEYS", "*:token"))[1]
      assert.are.equal(1, rs:call("DEL", token_key))
      assert.are.equal(1, rs:call("HSET", token_key, "junk", "1")) -- WRONGTYPE for GET
      srv:expire_tokens() -- both must log in again
      assert(first:get_group(id))
      assert(second:get_group(id))
      -- one login for the first call, one for the refused token: not one more per host
      assert.are.equal(2, srv:logins())
      assert.are.equal("string", rs:call("TYPE", token_key))
      first:close()
      second:close()
    end)

    it("unreadable in an account (a window end without a length) is replaced, not a Redis failure "
      .. "for every call of every host", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = 50, window = 1 } }
      local lines = {}
      local client = new_client({ redis = url() }, lines)
      assert(client:get_group(id))
      local account_key = assert(rs:call("KEYS", "*:rate:*"))[1]
      assert(account_key, table.concat(lines, "\n") .. table.concat(rs:call("KEYS", "*"), " "))
      assert.are.equal("OK", rs:call("SET", account_key, "1 2 3")) -- no time to live, as by hand
      for _ = 1, 3 do assert(client:get_group(id)) end
      -- (the link is asked again a second after a failure: a failure each time would
      -- keep every call off Redis for good)
      core.sleep(1.1)
      for _ = 1, 3 do assert(client:get_group(id)) end
      assert.are.equal(0, count_matching(lines, FALL_BACK), table.concat(lines, "\n"))
      assert.is_true(rs:call("PTTL", account_key) > 0)
      client:close()
    end)
  end)

  -------------------------------------------------------------------------------------

  describe("(attacks that found nothing, kept as checks)", function()
    it("a token refused (401) on one host: one new login for both hosts", function()
      local id = srv:seed_groups(1)[1]
      local first, second = new_client { redis = url() }, new_client { redis = url() }
      assert(first:get_group(id))
      assert(second:get_group(id))
      assert.are.equal(1, srv:logins())
      srv:revoke_tokens()
      assert(first:get_group(id))
      assert(second:get_group(id))
      assert(first:get_group(id))
      assert.are.equal(2, srv:logins())
    end)

    it("a read-only replica: each call served, the fall-back said once, no line said for each call", function()
      local replica = redis_server.start()
      local ok, err = pcall(function()
        assert.are.equal("OK", replica:call("REPLICAOF", "127.0.0.1", tostring(rs.port)))
        local id = srv:seed_groups(1)[1]
        local lines = {}
        local client = new_client({ redis = "redis://127.0.0.1:" .. replica.port }, lines)
        for _ = 1, 5 do assert(client:get_group(id)) end
        assert.are.equal(1, count_matching(lines, FALL_BACK), table.concat(lines, "\n"))
        assert.matches("READONLY", table.concat(lines, "\n"))
        assert.are.equal(1, srv:logins())
      end)
      replica:stop()
      assert(ok, err)
    end)

    it("a map cancelled while its calls wait on Redis's account: the next client goes at once", function()
      local ids = srv:seed_groups(4)
      srv:settings { rate_limit = { limit = 100, window = 60 } }
      local client = new_client { redis = url() }
      assert(client:operator_id())
      srv:settings { latency = 0.5 }
      local run = client:start_map(ids, function(id) return client:get_group(id) end, { concurrency = 4 })
      for _ = 1, 5 do run:step(0.02) end
      run:cancel()
      client:close()
      srv:settings { latency = 0 }
      local other = new_client { redis = url() }
      local started = core.now()
      assert(other:get_group(ids[1]))
      assert.is_true(core.now() - started < 2)
    end)
  end)
end)
