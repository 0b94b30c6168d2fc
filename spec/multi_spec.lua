-- The C core's multi handle (core.multi) with curl sessions, over real HTTP to the
-- fake: transfers that run at once, their results through session:finish(), and every
-- misuse refused before anything is sent.
local fake = require "spec.support.fake_server"
local core = require "soracom.groups.core"

describe("the multi handle", function()
  local srv, auth

  setup(function()
    srv = fake.start()
    auth = { "X-Soracom-API-Key: " .. srv.api_key, "X-Soracom-Token: " .. srv.token }
  end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function session()
    local s = core.session {}
    s:set_headers(auth)
    return s
  end

  local function raises(text, fn)
    local ok, err = pcall(fn)
    assert.is_false(ok, text)
    assert.truthy(tostring(err):find(text, 1, true), tostring(err))
  end

  -- Polls until every session given has ended; returns them in the order they ended.
  local function poll_all(multi, n)
    local ended = {}
    while #ended < n do
      for _, s in ipairs(multi:poll(1)) do ended[#ended + 1] = s end
    end
    return ended
  end

  it("runs transfers at once and gives each its own results", function()
    local ids = srv:seed_groups(3)
    srv:settings { latency = 0.2 }
    local multi = core.multi()
    local sessions = {}
    for i, id in ipairs(ids) do
      sessions[i] = session()
      sessions[i]:prepare("GET", srv.endpoint .. "/groups/" .. id)
      assert.is_true(multi:add(sessions[i]))
    end
    assert.are.equal(3, multi:count())
    local ended = poll_all(multi, 3)
    assert.are.equal(3, srv:stats().max_in_flight) -- the three waited at once
    assert.are.equal(0, multi:count())
    for i, s in ipairs(sessions) do
      local value, next_key, status = s:finish()
      assert.are.same({ ids[i], nil, 200 }, { value.groupId, next_key, status })
    end
    assert.are.equal(3, #ended)
    multi:close()
  end)

  it("sends the body and method given to prepare, and reads the next key when asked", function()
    local s = session()
    local multi = core.multi()
    s:prepare("POST", srv.endpoint .. "/groups", '{"tags":{"name":"made"}}')
    multi:add(s)
    poll_all(multi, 1)
    local group, _, status = s:finish()
    assert.are.equal(201, status)
    assert.are.equal("made", group.tags.name)
    srv:seed_groups(2)
    s:prepare("GET", srv.endpoint .. "/groups?limit=1", nil, true)
    multi:add(s)
    poll_all(multi, 1)
    local page, next_key = s:finish()
    assert.are.equal(1, #page)
    assert.is_string(next_key)
    multi:close()
    s:close()
  end)

  it("keeps a session busy between prepare and finish", function()
    local s = session()
    local multi = core.multi()
    raises("session:finish: no transfer has ended", function() s:finish() end)
    raises("multi:add: the session is not prepared", function() multi:add(s) end)
    s:prepare("GET", srv.endpoint .. "/groups")
    raises("session:perform: the session has a transfer under way", function()
      s:perform("GET", srv.endpoint .. "/groups")
    end)
    raises("session:prepare: the session has a transfer under way", function()
      s:prepare("GET", srv.endpoint .. "/groups")
    end)
    multi:add(s)
    raises("session:set_headers: the session has a transfer under way", function() s:set_headers(auth) end)
    raises("multi:add: the session is not prepared", function() multi:add(s) end)
    poll_all(multi, 1)
    assert.are.equal(200, select(3, s:finish()))
    -- free again
    assert.are.equal(200, select(3, s:perform("GET", srv.endpoint .. "/groups")))
    multi:close()
  end)

  it("stops a transfer on remove, leaving the session free", function()
    srv:settings { latency = 1 }
    local s = session()
    local multi = core.multi()
    s:prepare("GET", srv.endpoint .. "/groups")
    multi:add(s)
    multi:poll(0)
    multi:remove(s)
    assert.are.equal(0, multi:count())
    raises("session:finish: no transfer has ended", function() s:finish() end)
    srv:settings { latency = 0 }
    assert.are.equal(200, select(3, s:perform("GET", srv.endpoint .. "/groups")))
    multi:close()
    s:close()
  end)

  it("lets a session close while its transfer runs, and a multi close with transfers in it", function()
    srv:settings { latency = 1 }
    local multi = core.multi()
    local a, b = session(), session()
    for _, s in ipairs { a, b } do
      s:prepare("GET", srv.endpoint .. "/groups")
      multi:add(s)
    end
    multi:poll(0)
    a:close()
    assert.are.equal(1, multi:count())
    multi:close()
    raises("multi:poll: the multi handle is closed", function() multi:poll(0) end)
    raises("session:finish: no transfer has ended", function() b:finish() end)
    b:close()
  end)

  it("is collected with its transfers running, without harm", function()
    srv:settings { latency = 1 }
    for _ = 1, 3 do
      local multi = core.multi()
      local s = session()
      s:prepare("GET", srv.endpoint .. "/groups")
      multi:add(s)
      multi:poll(0)
    end
    collectgarbage()
    collectgarbage()
  end)

  it("checks its arguments", function()
    local multi = core.multi()
    raises("soracom.groups.session expected, got string", function() multi:add("session") end)
    raises("soracom.groups.session expected, got table", function() multi:remove({}) end)
    raises("number expected, got string", function() multi:poll("soon") end)
    raises("multi:poll: timeout must be 0 or more seconds", function() multi:poll(-1) end)
    raises("bad argument #1", function() multi.poll(io.stdout, 1) end)
    raises("session:prepare: method must be an HTTP method token", function()
      session():prepare("G E T", srv.endpoint)
    end)
    raises("multi:poll: others must be an array of multi handles or nil (got string)", function()
      multi:poll(0, "others")
    end)
    local other = core.multi()
    raises("multi:poll: others[2] must be a multi handle (got table)", function()
      multi:poll(0, { other, {} })
    end)
    raises("multi:poll: others[1] must be a multi handle (got userdata)", function()
      multi:poll(0, { session() })
    end)
    raises("multi:poll: others[2] must be a multi handle (got nil)", function()
      multi:poll(0, { other, nil, other })
    end)
    other:close()
    raises("multi:poll: others[1]: the multi handle is closed", function() multi:poll(0, { other }) end)
    multi:close()
    multi:close()
  end)

  it("takes max_connects as its one option, and checks it", function()
    core.multi({}):close()
    core.multi({ max_connects = 1 }):close()
    core.multi({ max_connects = 2.0 }):close()
    for _, bad in ipairs { 0, -3, 1.5, "2", true, 0 / 0, math.huge, 2 ^ 31 } do
      raises("multi: max_connects must be a whole number from 1 to 2147483647", function()
        core.multi { max_connects = bad }
      end)
    end
    raises("(got 0)", function() core.multi { max_connects = 0 } end)
    raises("(got string)", function() core.multi { max_connects = "2" } end)
    raises('multi: unknown option "max_connections"', function()
      core.multi { max_connections = 2 }
    end)
    raises("multi: unknown option (a number key)", function() core.multi { 2 } end)
    raises("multi: options must be a table or nil (got string)", function() core.multi "fast" end)
  end)

  -- Polls the multi handle until its one transfer has sent its request and waits for
  -- the answer (its one socket is watched for reading only).
  local function until_waiting(multi)
    for _ = 1, 200 do
      multi:poll(0.01)
      local _, sockets = multi:wait_hint()
      if #sockets == 1 and sockets[1].read and not sockets[1].write then return end
    end
    error("the transfer never came to wait for its answer")
  end

  it("waits in poll on the other multi handles given too, until one of them has news", function()
    local latency, timeout = 0.4, 2
    -- the requests of earlier specs, cancelled, may still be served: one waking from its
    -- latency now would take the fault below
    for _ = 1, 100 do
      if srv:stats().in_flight == 0 then break end
      core.sleep(0.05)
    end
    srv:settings { latency = latency }
    srv:faults { { delay = 30 } } -- the first request: silent throughout (valgrind too)
    local a, b = core.multi(), core.multi()
    local slow, fast = session(), session()
    slow:prepare("GET", srv.endpoint .. "/groups")
    a:add(slow)
    until_waiting(a)

    -- An event loop over a and b: one blocking wait, on a and covering b, then b polled
    -- with 0. Returns what b's poll gave, the seconds it took and the rounds it made.
    local function loop(waiter, others)
      local start, rounds, ended = core.now(), 0, {}
      while #ended == 0 and core.now() - start < 2 * timeout do
        rounds = rounds + 1
        assert.are.same({}, waiter:poll(timeout, others)) -- the waiter's own goes on
        ended = b:poll(0)
      end
      return ended, core.now() - start, rounds
    end

    fast:prepare("GET", srv.endpoint .. "/groups")
    b:add(fast)
    until_waiting(b)
    local ended, waited, rounds = loop(a, { b })
    assert.are.same({ fast }, ended)
    assert.are.equal(200, select(3, fast:finish()))
    -- it waited for b's answer, and returned with it, well before the timeout
    assert.is_true(waited >= latency / 2, "b answered at once? " .. waited)
    assert.is_true(waited / timeout < 0.5, "waited " .. waited .. " s of " .. timeout)
    assert.is_true(rounds <= 5, rounds .. " rounds: the wait did not block")

    -- without others, a's wait lasts its whole timeout
    local start = core.now()
    assert.are.same({}, a:poll(latency))
    assert.is_true((core.now() - start) / latency > 0.8, "a:poll ended early")

    -- a handle without transfers waits on the others' sockets too (itself among them
    -- changes nothing)
    local idle = core.multi()
    fast:prepare("GET", srv.endpoint .. "/groups")
    b:add(fast)
    until_waiting(b)
    ended, waited, rounds = loop(idle, { b, idle })
    assert.are.same({ fast }, ended)
    assert.are.equal(200, select(3, fast:finish()))
    assert.is_true(waited >= latency / 2, "b answered at once? " .. waited)
    assert.is_true(waited / timeout < 0.5, "waited " .. waited .. " s of " .. timeout)
    assert.is_true(rounds <= 5, rounds .. " rounds: the wait did not block")

    -- and returns at once when nothing runs anywhere
    start = core.now()
    assert.are.same({}, idle:poll(timeout, { b, core.multi() }))
    assert.is_true((core.now() - start) / timeout < 0.25, "idle:poll waited with nothing to wait on")
    for _, m in ipairs { a, b, idle } do
      m:close()
    end
    slow:close()
    fast:close()
  end)
end)
