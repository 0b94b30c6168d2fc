-- Many requests at once outside nginx: client:map's tasks over the curl multi
-- scheduler, one login for all, one rate-limit budget, against the fake over real HTTP.
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"
local scheduler = require "soracom.groups.scheduler"
local core = require "soracom.groups.core"

-- Lua 5.1 cannot yield from an iterator called by a for loop, nor across pcall.
local YIELDS_EVERYWHERE = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

describe("client:map over curl multi", function()
  local srv

  setup(function() srv = fake.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function new_client(extra)
    local options = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
      transport = "curl", retry_base_delay = 0.05 }
    for name, value in pairs(extra or {}) do options[name] = value end
    return assert(groups.new(options))
  end

  local function requests_to(api)
    local counted = srv:stats().by_api[api]
    return counted and counted.requests or 0
  end

  local function range(n)
    local list = {}
    for i = 1, n do list[i] = i end
    return list
  end

  it("returns results in input order, whatever order the tasks end in", function()
    local ids = srv:seed_groups(12)
    srv:settings { latency = 0.01, latency_jitter = 0.08 }
    local client = new_client()
    local ended = {}
    local results, summary = client:map(ids, function(id, i)
      local group, err = client:get_group(id)
      ended[#ended + 1] = i
      return group and group.groupId, err
    end, { concurrency = 6 })
    for i, id in ipairs(ids) do assert.are.same({ ok = true, value = id }, results[i]) end
    assert.are.same({ 12, 0, 0 }, { summary.ok, summary.failed, summary.skipped })
    assert.are.equal(12, #ended)
    assert.is_number(summary.seconds)
    client:close()
  end)

  it("keeps each item's failure, returned or raised, without stopping the others", function()
    local id = srv:seed_groups(1)[1]
    local client = new_client()
    local results, summary = client:map({ id, "no-such-group", "raise", id }, function(item)
      if item == "raise" then error({ mine = true }) end
      return client:get_group(item)
    end, { concurrency = 2 })
    assert.is_true(results[1].ok and results[4].ok)
    assert.are.equal(id, results[4].value.groupId)
    assert.are.same({ false, "http", 404 }, { results[2].ok, results[2].err.kind, results[2].err.status })
    assert.is_false(results[3].ok)
    assert.are.same({ mine = true }, results[3].err)
    assert.truthy(results[3].traceback:find("stack traceback", 1, true))
    assert.are.same({ 2, 2 }, { summary.ok, summary.failed })
    client:close()
  end)

  it("counts a function that returns nothing as failed, saying so", function()
    local client = new_client()
    local results = client:map({ 1 }, function() end)
    assert.is_false(results[1].ok)
    assert.truthy(tostring(results[1].err):find("returned nothing", 1, true))
    client:close()
  end)

  it("stops starting items after the first failure with fail_fast", function()
    local client = new_client()
    local results, summary = client:map(range(8), function(i)
      if i == 3 then return nil, "third" end
      return i
    end, { concurrency = 1, fail_fast = true })
    assert.are.same({ 2, 1, 5 }, { summary.ok, summary.failed, summary.skipped })
    assert.are.equal("third", results[3].err)
    assert.is_true(results[8].skipped)
    client:close()
  end)

  it("calls on_result as each item ends, and keeps nothing with keep_results = false", function()
    local client = new_client()
    local seen = {}
    local results, summary = client:map(range(5), function(i)
      if i == 2 then return nil, "two" end
      return i * 10
    end, { keep_results = false, on_result = function(i, value, err)
      seen[i] = { value = value, err = err }
    end })
    assert.are.same({}, results)
    assert.are.same({ 4, 1 }, { summary.ok, summary.failed })
    assert.are.same({ { value = 10 }, { err = "two" }, { value = 30 }, { value = 40 }, { value = 50 } }, seen)
    client:close()
  end)

  it("takes an iterator as items", function()
    local client = new_client()
    local n = 0
    local results = client:map(function()
      n = n + 1
      if n <= 3 then return "item" .. n end
    end, function(item) return item:upper() end)
    assert.are.same({ "ITEM1", "ITEM2", "ITEM3" }, { results[1].value, results[2].value, results[3].value })
    client:close()
  end)

  it("raises at once on wrong arguments, naming them", function()
    local client = new_client()
    local fn = function() return true end
    assert.has_error(function() client:map("ids", fn) end,
      "soracom.groups: map: items must be a list (a table) or an iterator function (got string)")
    assert.has_error(function() client:map({}, nil) end, "soracom.groups: map: fn must be a function (got nil)")
    assert.has_error(function() client:map({}, fn, { concurrency = 0 }) end,
      "soracom.groups: map: options.concurrency must be a whole number from 1 to 1024 (got 0)")
    assert.has_error(function() client:map({}, fn, { concurency = 2 }) end,
      'soracom.groups: map: unknown option "concurency"')
    assert.has_error(function() client:map({}, fn, { fail_fast = 1 }) end,
      "soracom.groups: map: options.fail_fast must be a boolean (got number)")
    client:close()
  end)

  it("overlaps requests, at most `concurrency` at once", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { latency = 0.1 }
    local client = new_client()
    assert(client:get_group(id)) -- logged in
    srv:clear_stats()
    local _, summary = client:map(range(24), function() return client:get_group(id) end, { concurrency = 6 })
    assert.are.equal(24, summary.ok)
    local stats = srv:stats()
    assert.are.equal(6, stats.max_in_flight)
    assert.are.equal(24, stats.requests)
    client:close()
  end)

  describe("one login at a time", function()
    it("logs in once for 50 tasks on a cold start, and calls an mfa_otp_code function once", function()
      srv:settings { mfa_otp_code = "424242", latency = 0.05 }
      local id = srv:seed_groups(1)[1]
      local calls = 0
      local client = new_client { mfa_otp_code = function()
        calls = calls + 1
        return "424242"
      end }
      local _, summary = client:map(range(50), function() return client:get_group(id) end,
        { concurrency = 50 })
      assert.are.equal(50, summary.ok)
      assert.are.equal(1, requests_to("POST /v1/auth"))
      assert.are.equal(1, calls)
      client:close()
    end)

    it("logs in once more when every task gets a 401 for a revoked token", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { latency = 0.05 }
      local client = new_client()
      assert(client:get_group(id))
      srv:revoke_tokens()
      srv:clear_stats()
      local _, summary = client:map(range(30), function() return client:get_group(id) end,
        { concurrency = 30 })
      assert.are.equal(30, summary.ok)
      assert.are.equal(1, requests_to("POST /v1/auth"))
      assert.is_true(requests_to("GET /v1/groups/{group_id}") <= 60)
      client:close()
    end)

    it("shares a failed login with its waiters instead of each retrying it", function()
      srv:settings { auth_key = "rotated", latency = 0.05 }
      local client = new_client { retries = 2 }
      local results, summary = client:map(range(20), function() return client:list_groups() end,
        { concurrency = 20 })
      assert.are.equal(20, summary.failed)
      for i = 1, 20 do assert.are.equal(401, results[i].err.status) end
      assert.are.equal(1, requests_to("POST /v1/auth"))
      client:close()
    end)

    it("heals a transient login failure for all its waiters with one more login", function()
      srv:settings { latency = 0.05 }
      srv:faults { { status = 500, times = 1 } } -- the first login
      local client = new_client { retries = 2 }
      local _, summary = client:map(range(20), function() return client:list_groups() end,
        { concurrency = 20 })
      assert.are.equal(20, summary.ok)
      -- Each task retries after its own jittered pause; the first to wake logs in and
      -- the others find its token (or wait for its login).
      assert.are.equal(1, requests_to("POST /v1/auth")) -- the second login (a fault is not counted by API)
      assert.are.equal(20, requests_to("GET /v1/groups"))
      assert.are.equal(22, srv:stats().requests) -- and the one that failed
      client:close()
    end)
  end)

  it("holds requests at the rate limit instead of sending them into 429s", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { rate_limit = { limit = 10, window = 1 } }
    local held = 0
    local client = new_client { debug = function(line)
      if line:find("holding GET /groups/" .. id .. " for about", 1, true)
        and line:find("its window (10 requests per 1 s) is used up", 1, true) then
        held = held + 1
      end
    end }
    local _, summary = client:map(range(30), function() return client:get_group(id) end,
      { concurrency = 8 })
    assert.are.equal(30, summary.ok)
    assert.is_true(held > 0, "a debug line says a request was held, and why")
    local stats = srv:stats()
    assert.are.equal(0, stats.status_429)
    assert.are.equal(30, requests_to("GET /v1/groups/{group_id}"))
    -- 30 at 10 a window: the third window at the earliest
    assert.is_true(summary.seconds >= 1.5, summary.seconds)
    client:close()
  end)

  it("fails a call at once whose wait would pass rate_limit_max_delay, saying why", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { rate_limit = { limit = 2, window = 30 } }
    local client = new_client { rate_limit_max_delay = 1 }
    assert(client:get_group(id))
    assert(client:get_group(id))
    local started = core.now()
    local group, err = client:get_group(id)
    assert.is_nil(group)
    assert.is_true(core.now() - started < 0.5, "decided at once, not after waiting")
    assert.are.equal("rate_limit", err.kind)
    assert.is_true(err.retry_after > 1)
    assert.matches("would hold this request about %d+%.%d s %(0 queued before it; its window %(2 requests per "
      .. "30 s%) is used up%), more than rate_limit_max_delay %(1 s%)", err.message)
    assert.are.equal(0, srv:stats().status_429)
    client:close()
  end)

  it("caps a map's waits with the map's rate_limit_max_delay, not the client's", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { rate_limit = { limit = 2, window = 30 } }
    local client = new_client { rate_limit_max_delay = 1000 }
    local results, summary = client:map(range(4), function() return client:get_group(id) end,
      { concurrency = 1, rate_limit_max_delay = 1 })
    assert.are.same({ 2, 2 }, { summary.ok, summary.failed })
    assert.are.equal("rate_limit", results[3].err.kind)
    assert.are.equal(0, srv:stats().status_429)
    client:close()
  end)

  it("holds a queued call no longer than the cap in all, though its wait grew after it came", function()
    local id = srv:seed_groups(1)[1]
    local client = new_client()
    assert(client:list_groups()) -- logged in; GET /groups/{group_id}'s limit still unknown
    -- The first get_group is the probe of that API, answered after 2 s; the second waits
    -- for it, expecting a moment (RECHECK), and must give up once 0.5 s have passed.
    srv:faults { { delay = 2, times = 1 } }
    local results, summary = client:map(range(2), function() return client:get_group(id) end,
      { concurrency = 2, rate_limit_max_delay = 0.5 })
    assert.are.same({ 1, 1 }, { summary.ok, summary.failed })
    assert.truthy(results[1].ok, tostring(results[1].err))
    assert.are.equal("rate_limit", results[2].err.kind)
    assert.matches("its wait grew while it was queued", results[2].err.message)
    assert.matches("more than rate_limit_max_delay %(0%.5 s%)", results[2].err.message)
    assert.are.equal(1, requests_to("GET /v1/groups/{group_id}"), "the second was never sent")
    client:close()
  end)

  it("lets a map's queued work wait as long as the queue needs, past the client's cap", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { rate_limit = { limit = 3, window = 1 } }
    local client = new_client { rate_limit_max_delay = 0.5 }
    local results, summary = client:map(range(12), function() return client:get_group(id) end,
      { concurrency = 12 })
    assert.are.equal(12, summary.ok, tostring(results[12].err))
    assert.are.equal(0, srv:stats().status_429)
    -- a single call outside the map keeps the client's cap
    local group, err = client:get_group(id)
    if group == nil then assert.are.equal("rate_limit", err.kind) end
    client:close()
  end)

  it("sends one probe on a cold start, not a burst into a limit it does not know yet", function()
    local ids = srv:seed_groups(150)
    srv:settings { rate_limit = { limit = 50, window = 1 } }
    local client = new_client()
    local _, summary = client:map(ids, function(id) return client:get_group(id) end, { concurrency = 128 })
    assert.are.equal(150, summary.ok)
    assert.are.equal(0, srv:stats().status_429) -- the old budget let 78 of the 128 go at once
    client:close()
  end)

  it("never locks an API out after a limit of 0: a probe after the refresh time finds it lifted", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { rate_limit = { limit = 0, window = 1 } }
    local client = new_client { retries = 0 }
    local group, err = client:get_group(id)
    assert.is_nil(group)
    assert.are.equal(429, err.status)
    srv:settings { rate_limit = { limit = 100, window = 1 } } -- lifted
    local started = core.now()
    local _, summary = client:map(range(5), function() return client:get_group(id) end, { concurrency = 5 })
    assert.are.equal(5, summary.ok)
    assert.is_true(core.now() - started < 2.5, "resumed after the refresh time (1 s), not never")
    client:close()
  end)

  it("pauses an API for every task after a 429", function()
    local id = srv:seed_groups(1)[1]
    local client = new_client()
    assert(client:operator_id()) -- logged in: the fault is for the next request
    srv:faults { { status = 429, headers = { ["Retry-After"] = "1" } } }
    local results, summary = client:map(range(4), function() return client:get_group(id) end,
      { concurrency = 4 })
    assert.are.equal(4, summary.ok)
    assert.is_true(results[1].ok)
    -- the three sent with the refused one were answered, the retry waited a second
    assert.is_true(summary.seconds >= 0.9, summary.seconds)
    assert.are.equal(1, srv:stats().status_429)
    client:close()
  end)

  it("waits between retries in a timer: other tasks go on meanwhile", function()
    local id = srv:seed_groups(1)[1]
    local client = new_client { retry_base_delay = 0.8 }
    assert(client:operator_id())
    srv:faults { { status = 503 } } -- for item 1's request: the others start later
    local ended = {}
    local _, summary = client:map(range(6), function(i)
      if i > 1 then scheduler.sleep(0.05) end
      local group, err = client:get_group(id)
      ended[#ended + 1] = i
      return group, err
    end, { concurrency = 6 })
    assert.are.equal(6, summary.ok)
    -- item 1 waited at least 0.4 s before its retry; the others ran meanwhile
    assert.are.same({ 6, 1 }, { #ended, ended[6] })
    client:close()
  end)

  it("applies the timeout to each request", function()
    local id = srv:seed_groups(1)[1]
    local client = new_client { timeout = 0.3, retries = 0 }
    assert(client:operator_id())
    srv:faults { { delay = 2 } }
    local results = client:map({ 1, 2, 3 }, function() return client:get_group(id) end, { concurrency = 3 })
    local timed_out, ok = 0, 0
    for i = 1, 3 do
      if results[i].ok then ok = ok + 1
      elseif results[i].err.curl_code == 28 then timed_out = timed_out + 1 end
    end
    assert.are.same({ 2, 1 }, { ok, timed_out })
    client:close()
  end)

  it("ends the tasks in flight with a closed error when the client is closed", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { latency = 0.3 }
    local client = new_client()
    assert(client:operator_id())
    local results = client:map(range(4), function(i)
      if i == 4 then
        scheduler.sleep(0.1)
        client:close()
        return true
      end
      return client:get_group(id)
    end, { concurrency = 4 })
    for i = 1, 3 do
      assert.is_false(results[i].ok, "item " .. i)
      assert.are.equal("closed", results[i].err.kind)
    end
    assert.is_true(results[4].ok)
    assert.are.same({ 0, 0 }, { scheduler.counts() })
  end)

  it("lets an application's own loop run while map waits, through the sleep option", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { latency = 0.1 }
    -- The application's loop: it resumes the coroutine running map whenever that one
    -- yields a wait through the sleep option, and does its own work in between.
    local client = new_client { sleep = function(seconds) coroutine.yield(seconds) end }
    local summary
    local mapper = coroutine.create(function()
      local _
      _, summary = client:map(range(8), function() return client:get_group(id) end, { concurrency = 8 })
    end)
    local turns = 0
    while coroutine.status(mapper) ~= "dead" do
      local ok, seconds = coroutine.resume(mapper)
      assert(ok, seconds)
      turns = turns + 1
      if seconds then core.sleep(seconds) end
    end
    assert.are.equal(8, summary.ok)
    assert.is_true(turns > 2, "the loop had its turns while the requests waited")
    assert.are.equal(8, requests_to("GET /v1/groups/{group_id}"))
    client:close()
  end)

  it("runs a map inside a map on the same scheduler", function()
    local ids = srv:seed_groups(3)
    local client = new_client()
    local results = client:map(ids, function(id)
      local inner, summary = client:map({ id, id }, function(x) return client:get_group(x) end)
      return summary.ok == 2 and inner[2].value.groupId
    end, { concurrency = 2 })
    for i = 1, 3 do assert.are.equal(ids[i], results[i].value) end
    client:close()
  end)

  it("reports a function that yields to the task as a failure of its item", function()
    local client = new_client()
    local results = client:map({ 1, 2 }, function(i)
      if i == 1 then coroutine.yield("mine") end
      return i
    end)
    assert.is_false(results[1].ok)
    assert.truthy(results[1].err:find("yielded", 1, true))
    assert.are.equal(2, results[2].value)
    client:close()
  end)

  it("update_config takes a group already read, saving its first GET", function()
    local id = srv:seed_groups(1, {}, { SoracomAir = { metadata = { enabled = false } } })[1]
    local client = new_client()
    local group = assert(client:get_group(id))
    srv:clear_stats()
    local updated = assert(client:update_config(group, "air", { metadata = { enabled = true } }))
    assert.are.equal(id, updated.groupId)
    -- only the conflict check's GET before the PUT; given the id, it reads twice
    assert.are.equal(1, requests_to("GET /v1/groups/{group_id}"))
    assert(client:update_config(id, "air", { metadata = { enabled = false } }))
    assert.are.equal(3, requests_to("GET /v1/groups/{group_id}"))
    assert.has_error(function() client:update_config({ name = "x" }, "air", {}) end,
      "soracom.groups: update_config: a group given in place of group_id must be one read from the API "
      .. "(get_group, or an iterator), with its groupId (got no groupId)")
    client:close()
  end)

  if YIELDS_EVERYWHERE then
    it("lets iterators run inside a task", function()
      local ids = srv:seed_groups(5, { env = "it" })
      local client = new_client()
      local results = client:map({ 2, 3 }, function(limit)
        local n = 0
        for _ in client:groups { tag_name = "env", tag_value = "it", limit = limit } do n = n + 1 end
        return n
      end)
      assert.are.equal(#ids, results[1].value)
      assert.are.equal(#ids, results[2].value)
      client:close()
    end)
  else
    it("runs an iterator and pcall inside a task on Lua 5.1, their requests blocking", function()
      local ids = srv:seed_groups(3)
      local client = new_client()
      local results = client:map({ 1, 2 }, function()
        local n = 0
        for _ in client:groups() do n = n + 1 end
        local ok, group = pcall(client.get_group, client, ids[1])
        return ok and group.groupId == ids[1] and n
      end)
      assert.are.same({ true, 3 }, { results[1].ok, results[1].value })
      assert.are.same({ true, 3 }, { results[2].ok, results[2].value })
      client:close()
    end)
  end
end)
