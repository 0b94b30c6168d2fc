-- Many hosts sharing one token and one rate-limit budget through Redis (the redis
-- option): two nginx instances of two workers each and one plain Lua process
-- (spec/nginx_redis/fleet.lua), one operator, a redis-server of the spec's own, the
-- fake limiting GET /v1/groups/{group_id} to 100 per 2 s. The time such a run takes
-- against the ideal is bench/hosts.lua's.
local fleet = require "spec.nginx_redis.fleet"

local CALLS = 600

describe("hosts sharing one Redis", function()
  local f

  setup(function() f = fleet.start() end)
  teardown(function() if f then f:stop() end end)

  local function assert_every_call_served(run)
    assert.are.equal(run.calls, run.got, "calls served; a failure: " .. tostring(run.first_error))
  end

  it("serve 600 calls from five hosts with at most one 429 a window and one /auth", function()
    local run = f:run(true, CALLS)
    assert_every_call_served(run)
    assert.is_true(run.windows >= CALLS / fleet.LIMIT, "windows: " .. run.windows)
    assert.is_true(run.most_429_in_a_window <= 1, "429s in a window: " .. run.most_429_in_a_window)
    assert.are.equal(1, run.logins)
  end)

  it("keep no credential in Redis, and let every key expire", function()
    local keys = {}
    for key in f.redis:cli("KEYS", "*"):gmatch("[^\n]+") do keys[#keys + 1] = key end
    local tokens, accounts = 0, 0
    for _, key in ipairs(keys) do
      assert.is_nil(key:find(f.srv.auth_key_id, 1, true), key)
      assert.is_nil(key:find(f.srv.auth_key, 1, true), key)
      assert.is_nil(f.redis:cli("GET", key):find(f.srv.auth_key, 1, true), "the value of " .. key)
      assert.is_true(tonumber(f.redis:cli("PTTL", key)) > 0, "no expiry: " .. key)
      if key:match(":token$") then tokens = tokens + 1 end
      if key:match(":rate:GET /groups/{group_id}$") then accounts = accounts + 1 end
    end
    assert.are.equal(1, tokens, "token entries")
    assert.are.equal(1, accounts, "accounts of get_group")
  end)

  it("without the redis option, each host spends the budget and logs in on its own", function()
    local run = f:run(false, CALLS)
    assert.is_true(run.answers_429 > run.windows,
      ("%d answers 429 in %d windows"):format(run.answers_429, run.windows))
    assert.is_true(run.logins > 1, "logins: " .. run.logins)
  end)

  it("go on alone where nginx has no cosockets (init_by_lua), saying why", function()
    local status, body = f.nginx[1]:get("/init")
    assert.are.equal(200, status)
    local answer = require("soracom.groups.core").decode_json(body)
    assert.is_true(answer.listed, answer.err)
    assert.truthy(answer.said:find("redis: nginx offers no cosockets in the init phase", 1, true), answer.said)
    assert.truthy(answer.said:find("calls from there go on alone", 1, true), answer.said)
  end)
end)
