-- Who owns a login and a map outside nginx (issue 23): a map belongs to its caller and
-- runs only when driven; a login belongs to no caller and whoever waits carries it.
-- Each case was a hang, a crash or lost work before; all go over real HTTP to the fake.
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"
local scheduler = require "soracom.groups.scheduler"
local core = require "soracom.groups.core"

-- Lua 5.1 cannot yield across pcall, nor from an iterator called by a for loop.
local YIELDS_EVERYWHERE = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

describe("ownership of logins and maps", function()
  local srv

  setup(function() srv = fake.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function new_client(extra)
    local options = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
      transport = "curl", retry_base_delay = 0.02 }
    for name, value in pairs(extra or {}) do options[name] = value end
    return assert(groups.new(options))
  end

  local function requests_to(api)
    local counted = srv:stats().by_api[api]
    return counted and counted.requests or 0
  end

  local function logins() return srv:logins() end

  local function range(n)
    local list = {}
    for i = 1, n do list[i] = i end
    return list
  end

  describe("a map its caller abandons", function()
    it("runs none of its items inside a later, unrelated map", function()
      local ids = srv:seed_groups(20)
      srv:settings { latency = 0.05 }
      local options = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
        transport = "curl" }
      local client = assert(groups.new(setmetatable({ sleep = function() coroutine.yield("slept") end },
        { __index = options })))
      local co = coroutine.create(function()
        return client:map(ids, function(id) return client:delete_group(id) end, { concurrency = 2 })
      end)
      for _ = 1, 3 do assert(coroutine.resume(co)) end
      assert.are.equal("suspended", coroutine.status(co))
      co = nil -- luacheck: ignore 311 (given up)
      local deleted_when_abandoned = requests_to("DELETE /v1/groups/{group_id}")
      assert.is_true(deleted_when_abandoned < 20)

      local other = new_client()
      local _, summary = other:map(range(10), function() return other:list_groups() end, { concurrency = 4 })
      assert.are.equal(10, summary.ok)
      -- At most the two transfers in flight when it was abandoned may still have ended.
      assert.is_true(requests_to("DELETE /v1/groups/{group_id}") <= deleted_when_abandoned + 2)
      other:close()
      client:close()
    end)

    it("during its login leaves the client's plain calls free", function()
      local id = srv:seed_groups(1)[1]
      srv:faults { { delay = 0.3 } } -- the /auth of the abandoned map's login
      local options = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
        transport = "curl" }
      local client = assert(groups.new(setmetatable({ sleep = function() coroutine.yield("slept") end },
        { __index = options })))
      local co = coroutine.create(function()
        return client:map(range(4), function() return client:get_group(id) end, { concurrency = 4 })
      end)
      assert(coroutine.resume(co))
      assert.are.equal("suspended", coroutine.status(co))
      co = nil -- luacheck: ignore 311
      local started = core.now()
      local group, err = client:get_group(id)
      assert.is_nil(err)
      assert.are.equal(id, group.groupId)
      assert.is_true(core.now() - started < 5) -- the login it waited for was 0.3 s away
      assert.are.equal(1, logins())
      client:close()
    end)
  end)

  it("maps client:groups{} while a task logs in: the iterator and on_result wait for that login", function()
    local ids = srv:seed_groups(4)
    local slow = fake.start()
    finally(function() slow:stop() end)
    local slow_id = slow:seed_groups(1)[1]
    slow:settings { latency = 0.2 }
    local elsewhere = assert(groups.new { endpoint = slow.endpoint, auth_key_id = slow.auth_key_id,
      auth_key = slow.auth_key, transport = "curl" })
    assert(elsewhere:get_group(slow_id))
    local client = new_client()
    local read_in_on_result = {}
    local _, summary, err = client:map(client:groups { limit = 1 }, function(group, i)
      if i == 1 then
        -- This item's answer says 401: it logs in again, and that login takes 0.5 s.
        srv:faults { { status = 401 }, { delay = 0.5 } }
        return client:get_group(group.groupId)
      elseif i == 2 then
        return elsewhere:get_group(slow_id) -- ends at 0.2 s, while that login is under way
      end
      return client:get_group(group.groupId)
    end, {
      concurrency = 2,
      on_result = function(i)
        if i == 2 then read_in_on_result[#read_in_on_result + 1] = client:get_group(ids[1]) end
      end,
    })
    assert.is_nil(err)
    assert.are.same({ 4, 0 }, { summary.ok, summary.failed })
    assert.are.equal(ids[1], read_in_on_result[1].groupId)
    assert.are.equal(2, logins())
    client:close()
    elsewhere:close()
  end)

  it("runs a map started from on_result 300 times without nesting the outer loop", function()
    local client = new_client()
    local inner_ok = 0
    local _, summary = client:map(range(300), function(i) return i end, {
      concurrency = 1,
      on_result = function()
        local _, inner = client:map({ 1 }, function() return true end)
        inner_ok = inner_ok + inner.ok
      end,
    })
    assert.are.same({ 300, 300 }, { summary.ok, inner_ok })
    client:close()
  end)

  it("runs a map started from the items iterator 300 times", function()
    local client = new_client()
    local n = 0
    local _, summary = client:map(function()
      n = n + 1
      if n > 300 then return nil end
      local _, inner = client:map({ n }, function(x) return x end)
      return inner.ok
    end, function(x) return x end, { concurrency = 1 })
    assert.are.same({ 300, 0 }, { summary.ok, summary.failed })
    client:close()
  end)

  it("calls on_result once per item when fn calls the client inside pcall and a for loop", function()
    local ids = srv:seed_groups(4)
    local client = new_client()
    local calls = {}
    local results, summary = client:map(ids, function(id)
      local ok, group = pcall(client.get_group, client, id)
      local first = client:groups { limit = 10 }()
      return ok and first and group.groupId
    end, { concurrency = 2, on_result = function(i) calls[i] = (calls[i] or 0) + 1 end })
    assert.are.equal(4, summary.ok + summary.failed)
    for i = 1, 4 do
      assert.are.equal(1, calls[i])
      assert.is_table(results[i])
    end
    if YIELDS_EVERYWHERE then
      assert.are.equal(4, summary.ok)
      for i, id in ipairs(ids) do assert.are.equal(id, results[i].value) end
    end
    collectgarbage()
    collectgarbage() -- (what earlier cases abandoned)
    client:map({ 1 }, function() return true end)
    local transfers, tasks = scheduler.counts()
    assert.are.same({ 0, 0 }, { transfers, tasks })
    client:close()
  end)

  describe("an items iterator that fails", function()
    it("returns the results of the items before it, with its error", function()
      local client = new_client()
      local n = 0
      local results, summary, err = client:map(function()
        n = n + 1
        if n == 4 then error("no more items here", 0) end
        return n
      end, function(x) return x * 10 end)
      assert.are.equal("no more items here", err)
      assert.are.equal(err, summary.items_error)
      assert.are.equal(3, summary.ok)
      assert.are.same({ 10, 20, 30 }, { results[1].value, results[2].value, results[3].value })
    end)

    it("gives the page key to resume from when a page fails", function()
      srv:seed_groups(5)
      local client = new_client { retries = 0 }
      local seen = 0
      local iterator = client:groups { limit = 2 }
      local results, summary, err = client:map(function()
        local group = iterator()
        seen = seen + 1
        if seen == 2 then srv:faults { { status = 500 } } end
        return group
      end, function(group) return group.groupId end, { concurrency = 1 })
      assert.are.equal(500, err.status)
      assert.is_string(summary.resume_key)
      assert.are.equal(err.resume_key, summary.resume_key)
      assert.are.equal(2, summary.ok)
      assert.are.equal(2, #results)
      -- Resuming from the key gives the rest, none twice.
      local rest = 0
      for _ in client:groups { limit = 2, last_evaluated_key = summary.resume_key } do rest = rest + 1 end
      assert.are.equal(3, rest)
      client:close()
    end)
  end)

  describe("a login", function()
    it("whose mfa_otp_code yields fails that login clearly, and nobody waits for it", function()
      local client = assert(groups.new { endpoint = srv.endpoint, email = srv.email, password = srv.password,
        transport = "curl", mfa_otp_code = function() coroutine.yield() return "123456" end })
      local started = core.now()
      local results, summary = client:map(range(10), function() return client:list_groups() end,
        { concurrency = 10 })
      assert.are.equal(10, summary.failed)
      assert.are.equal("auth", results[1].err.kind)
      assert.truthy(tostring(results[1].err):find("yield", 1, true))
      local _, err = client:list_groups()
      assert.are.equal("auth", err.kind)
      assert.is_true(core.now() - started < 10) -- (was 180 s per login)
      client:close()
    end)

    it("during an /auth outage is tried once per backoff step for every caller", function()
      local outage = {}
      for k = 1, 200 do outage[k] = { status = 503 } end
      srv:faults(outage)
      -- (the base sets how long the outage's answer stands: the fourth step's wait, from
      -- 1 s to 2 s here, time enough for a slow machine's next call)
      local client = new_client { retries = 3, retry_base_delay = 0.25 }
      local _, summary = client:map(range(50), function() return client:list_groups() end,
        { concurrency = 50 })
      assert.are.equal(50, summary.failed)
      assert.are.equal(4, logins()) -- one login's tries (was 149)
      -- A call right after the outage's answer gets it without another /auth.
      local _, err = client:list_groups()
      assert.are.equal(503, err.status)
      assert.are.equal(4, logins())
      client:close()
    end)
  end)

  describe("close() during a login", function()
    it("ends the map's items waiting for it with kind \"closed\", and raises nothing", function()
      srv:faults { { delay = 4 } } -- the login
      local client = new_client()
      local run = client:start_map(range(4), function() return client:list_groups() end, { concurrency = 4 })
      run:step(0.1)
      assert.is_false(run:done())
      local started = core.now()
      client:close()
      while not run:step(0.05) do end
      local results, summary = run:results()
      assert.are.equal(4, summary.failed)
      for i = 1, 4 do assert.are.equal("closed", results[i].err.kind, tostring(results[i].err)) end
      assert.is_true(core.now() - started < 3) -- not the login's answer (4 s away)
    end)

    it("ends a plain call waiting for it, from another coroutine of a loop", function()
      local cqueues = require "cqueues"
      srv:faults { { delay = 4 } } -- the login
      local client = new_client { wait = require("soracom.groups.loops").cqueues(cqueues) }
      local loop = cqueues.new()
      local value, err
      loop:wrap(function() value, err = client:list_groups() end)
      loop:wrap(function()
        cqueues.sleep(0.1)
        client:close()
      end)
      local started = core.now()
      assert(loop:loop())
      assert.is_nil(value)
      assert.are.equal("closed", err.kind)
      assert.is_true(core.now() - started < 3) -- (the login's answer is 4 s away)
    end)
  end)

  describe("the rate-limit budget, when a request's task goes away", function()
    local function limited()
      srv:settings { rate_limit = { limit = 100, window = 60 } }
    end

    it("lets the next request go at once after a map is cancelled during its probe", function()
      srv:seed_groups(2)
      limited()
      local client = new_client()
      assert(client:operator_id())
      srv:settings { latency = 0.5 }
      local run = client:start_map(range(4), function() return client:list_groups() end, { concurrency = 4 })
      for _ = 1, 5 do run:step(0.02) end
      run:cancel()
      srv:settings { latency = 0 }
      local started = core.now()
      assert(client:list_groups())
      assert.is_true(core.now() - started < 10) -- (was 30 s: the lost probe's answer awaited)
      client:close()
    end)

    it("lets the next request go at once after a map is dropped and collected", function()
      local ids = srv:seed_groups(8)
      limited()
      local client = new_client()
      assert(client:operator_id())
      srv:settings { latency = 1 }
      local run = client:start_map(ids, function(id) return client:get_group(id) end, { concurrency = 8 })
      for _ = 1, 3 do run:step(0.05) end
      run = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      srv:settings { latency = 0 }
      local started = core.now()
      assert(client:get_group(ids[1]))
      assert.is_true(core.now() - started < 10) -- (was 30 s)
      client:close()
    end)

    it("lets the next request go at once after the debug hook raised on an answer", function()
      srv:seed_groups(2)
      limited()
      local boom = false
      local client = new_client { debug = function(line)
        if boom and line:find("GET .* %-> ") then
          boom = false
          error("hook failed", 0)
        end
      end }
      assert(client:operator_id())
      boom = true
      assert.has_error(function() client:list_groups() end, "hook failed")
      local started = core.now()
      assert(client:list_groups())
      assert.is_true(core.now() - started < 10) -- (was 30 s)
      client:close()
    end)

    it("ends a request held for the rate limit with kind closed when the debug hook closes the client", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = 1, window = 2 } }
      local client
      client = new_client { debug = function(line) if line:find("holding", 1, true) then client:close() end end }
      assert(client:get_group(id)) -- the window's one request
      local group, err = client:get_group(id)
      assert.is_nil(group)
      assert.are.equal("closed", err.kind)
    end)
  end)

  it("reports each item once when fn cancels its own run", function()
    local ids = srv:seed_groups(4)
    local client = new_client()
    local run
    local calls = {}
    run = client:start_map(ids, function(id, i)
      if i == 2 then run:cancel() end
      return client:get_group(id)
    end, { concurrency = 4,
      on_result = function(i, _, err) calls[#calls + 1] = i .. ":" .. tostring(err and err.kind) end })
    local steps = 0
    while not run:step(1) do
      steps = steps + 1
      assert.is_true(steps < 50)
    end
    local _, summary = run:results()
    table.sort(calls)
    assert.are.same({ "1:cancelled", "2:cancelled", "3:cancelled", "4:cancelled" }, calls)
    assert.are.same({ 0, 4, 0 }, { summary.ok, summary.failed, summary.running })
    assert.are.same({ 0, 0 }, { scheduler.counts() })
    client:close()
  end)

  describe("client:start_map", function()
    it("makes progress only when stepped, and gives what to wait for", function()
      local ids = srv:seed_groups(12)
      srv:settings { latency = 0.02 }
      local client = new_client()
      local run = client:start_map(ids, function(id) return client:get_group(id) end, { concurrency = 4 })
      core.sleep(0.1)
      assert.are.equal(0, requests_to("GET /v1/groups/{group_id}")) -- nothing before a step
      local hints = 0
      while not run:step(0) do
        local timeout, sockets = run:wait_hint()
        assert.is_number(timeout)
        assert.is_table(sockets)
        hints = hints + 1
        core.sleep(math.min(timeout, 0.005))
      end
      assert.is_true(hints > 0)
      assert.is_nil((run:wait_hint()))
      local results, summary = run:results()
      assert.are.equal(12, summary.ok)
      assert.are.equal(ids[12], results[12].value.groupId)
      client:close()
    end)

    it("cancels: running items end as cancelled, the rest are skipped, nothing more is sent", function()
      local ids = srv:seed_groups(20)
      local client = new_client()
      assert(client:get_group(ids[1])) -- logged in, and the API's limit known: no probe
      srv:clear_stats()
      srv:settings { latency = 0.2 }
      local ended = 0
      local run = client:start_map(ids, function(id) return client:get_group(id) end,
        { concurrency = 4, on_result = function() ended = ended + 1 end })
      run:step(0.05)
      run:cancel()
      assert.is_true(run:done())
      core.sleep(0.4)
      local results, summary = run:results()
      assert.are.equal(4, requests_to("GET /v1/groups/{group_id}"))
      assert.are.same({ 0, 4, 16 }, { summary.ok, summary.failed, summary.skipped })
      assert.are.equal("cancelled", results[1].err.kind)
      assert.is_true(results[20].skipped)
      assert.are.equal(4, ended)
      assert.are.same({ 0, 0 }, { scheduler.counts() })
      client:close()
    end)

    it("removes the transfers of a run dropped unfinished once it is collected", function()
      local ids = srv:seed_groups(8)
      local client = new_client()
      assert(client:get_group(ids[1])) -- logged in, and the API's limit known: no probe
      srv:settings { latency = 0.5 }
      local run = client:start_map(ids, function(id) return client:get_group(id) end, { concurrency = 8 })
      run:step(0.05)
      assert.are.equal(8, (scheduler.counts()))
      run = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      -- Any later driving (here another map) cancels what the collected one left.
      local _, summary = client:map({ 1 }, function() return true end)
      assert.are.equal(1, summary.ok)
      assert.are.equal(0, (scheduler.counts()))
      client:close()
    end)
  end)
end)
