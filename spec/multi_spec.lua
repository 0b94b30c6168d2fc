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
    multi:close()
    multi:close()
  end)
end)
