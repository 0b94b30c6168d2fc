-- What the C core does with this process's descriptors, and what it tells of them and
-- of other processes, over real HTTP to the fake: the sockets multi:wait_hint names are
-- this process's own, max_connects caps the connections a multi handle keeps, no
-- socket libcurl opened for us reaches a child process, file_limit and process_alive
-- agree with the shell. Linux: the descriptors are read from /proc.
local fake = require "spec.support.fake_server"
local core = require "soracom.groups.core"

local descriptors = require "spec.support.descriptors"
local own_pid, fds_of, sockets_in = descriptors.own_pid, descriptors.of, descriptors.sockets_in

local function raises(text, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, text)
  assert.truthy(tostring(err):find(text, 1, true), tostring(err))
end

describe("the descriptors the core holds", function()
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

  -- Waits until the fake serves no request: those of a cancelled transfer go on there.
  local function drained()
    for _ = 1, 100 do
      if srv:stats().in_flight == 0 then return end
      core.sleep(0.05)
    end
  end

  it("are named by wait_hint while a transfer runs: this process's own sockets", function()
    srv:settings { latency = 0.5 }
    local multi = core.multi()
    local s = session()
    s:prepare("GET", srv.endpoint .. "/groups")
    multi:add(s)
    -- nothing is known of the sockets before a poll; libcurl wants one at once
    local timeout, sockets = multi:wait_hint()
    assert.are.same({ 0, {} }, { timeout, sockets })
    for _ = 1, 100 do -- until the request is sent and the answer awaited
      multi:poll(0.01)
      timeout, sockets = multi:wait_hint()
      if #sockets == 1 and not sockets[1].write then break end
    end
    assert.are.equal(1, #sockets)
    assert.are.same({ true, false }, { sockets[1].read, sockets[1].write })
    assert.is_number(timeout)
    assert.is_true(timeout > 0 and timeout <= 60, tostring(timeout)) -- the session's 60 s
    local mine = fds_of(own_pid())
    assert.truthy((mine[sockets[1].fd] or ""):match("^socket:"),
      ("fd %d is %s"):format(sockets[1].fd, tostring(mine[sockets[1].fd])))
    while multi:count() > 0 do
      multi:poll(1)
    end
    assert.are.equal(200, select(3, s:finish()))
    timeout, sockets = multi:wait_hint()
    assert.are.same({ nil, {} }, { timeout, sockets }) -- nothing pending: no timeout
    multi:close()
    raises("multi:wait_hint: the multi handle is closed", function() multi:wait_hint() end)
    s:close()
  end)

  it("are capped by max_connects: eight transfers at once leave at most two connections", function()
    srv:settings { latency = 0.3 }
    -- Runs eight transfers at once on a new multi handle; returns how many sockets of
    -- this process they left open.
    local function left_open(options)
      local multi = core.multi(options)
      local sessions = {}
      for i = 1, 8 do
        sessions[i] = session()
      end
      drained()
      srv:clear_stats()
      local _, before = sockets_in(fds_of(own_pid()))
      for i = 1, 8 do
        sessions[i]:prepare("GET", srv.endpoint .. "/groups")
        multi:add(sessions[i])
      end
      local ended = 0
      while ended < 8 do
        ended = ended + #multi:poll(1)
      end
      local _, after = sockets_in(fds_of(own_pid()))
      assert.are.equal(8, srv:stats().max_in_flight) -- eight connections at once
      for i = 1, 8 do
        assert.are.equal(200, select(3, sessions[i]:finish()))
        sessions[i]:close()
      end
      multi:close()
      return after - before
    end
    local capped = left_open { max_connects = 2 }
    assert.is_true(capped <= 2, capped .. " connections left open")
    assert.are.equal(8, left_open()) -- the default keeps them all for reuse
  end)

  it("do not reach a child process: every socket libcurl opened for us is close-on-exec", function()
    -- session:perform leaves a kept-alive connection and the wakeup socketpair of the
    -- multi handle libcurl keeps for it; a multi handle with a transfer done leaves its
    -- own wakeup socketpair and a kept-alive connection
    local s = session()
    assert.are.equal(200, select(3, s:perform("GET", srv.endpoint .. "/groups")))
    local multi = core.multi()
    local t = session()
    t:prepare("GET", srv.endpoint .. "/groups")
    multi:add(t)
    while multi:count() > 0 do
      multi:poll(1)
    end
    assert.are.equal(200, select(3, t:finish()))
    local parent, n = sockets_in(fds_of(own_pid()))
    assert.is_true(n >= 6, "the parent holds " .. n .. " sockets")
    local inherited = {}
    for fd, target in pairs(fds_of("self")) do
      if parent[target] then
        inherited[#inherited + 1] = fd .. " -> " .. target
      end
    end
    table.sort(inherited)
    assert.are.same({}, inherited)
    multi:close()
    s:close()
    t:close()
  end)

  it("are named by wait_hint from a copy, while finalizers poll and close the handle", function()
    -- (last of this server's specs: its four requests are left waiting a minute)
    drained()
    srv:faults { { delay = 60, times = 4 } } -- the four stay silent throughout
    local finalizable = require "spec.support.finalizable"
    -- Leaves a finalizer pending: its object is garbage at once (made in a coroutine,
    -- so that no stale register of a live frame still holds it).
    local function leave_pending(fn)
      coroutine.wrap(function() finalizable(fn) end)()
    end
    -- Runs fn with the collector making a whole cycle at every allocation, so that a
    -- finalizer left pending runs at the very next allocation, wherever it is.
    local function collecting_at_every_allocation(fn)
      local pause = collectgarbage("setpause", 0)
      local stepmul
      if _VERSION == "Lua 5.4" then -- a step's size beyond any heap: a whole cycle
        stepmul = collectgarbage("setstepmul", 100)
        collectgarbage("incremental", 0, stepmul, 64)
      else -- no bound on a step's work: 0 on 5.1 and LuaJIT, which 5.2 and 5.3 refuse
        stepmul = collectgarbage("setstepmul", _VERSION == "Lua 5.1" and 0 or 1e9)
      end
      collectgarbage() -- the pause takes effect at the end of a cycle
      local ok, err = pcall(fn)
      if _VERSION == "Lua 5.4" then
        collectgarbage("incremental", pause, stepmul, 13)
      else
        collectgarbage("setpause", pause)
        collectgarbage("setstepmul", stepmul)
      end
      collectgarbage()
      assert(ok, err)
    end

    local multi = core.multi()
    local sessions = {}
    for i = 1, 4 do
      sessions[i] = session()
      sessions[i]:prepare("GET", srv.endpoint .. "/groups")
      multi:add(sessions[i])
    end
    local before
    for _ = 1, 100 do -- until the four wait for their answers
      multi:poll(0.01)
      before = select(2, multi:wait_hint())
      if #before == 4 and not before[1].write then break end
    end
    assert.are.equal(4, #before)

    -- A chain of finalizers, each run at the next allocation inside wait_hint (which
    -- makes six: the copy, the array and the four sockets' tables) and leaving the next
    -- link pending: three poll the handle, the fourth closes it, freeing its socket list
    -- partway through the sockets' tables.
    local inside, links = false, 0
    local function link()
      if not inside then return end
      links = links + 1
      if links < 4 then
        multi:poll(0)
        leave_pending(link)
      else
        multi:close()
      end
    end
    local timeout, sockets
    collecting_at_every_allocation(function()
      leave_pending(link)
      inside = true
      timeout, sockets = multi:wait_hint()
      inside = false
    end)
    if links < 4 and _VERSION == "Lua 5.2" then -- which steps only every kilobyte or so
      pending("Lua 5.2 ran " .. links .. " of the 4 finalizers inside wait_hint")
      return
    end
    assert.are.equal(4, links)
    assert.is_number(timeout)
    local function fds(list)
      local set = {}
      for _, socket in ipairs(list) do
        set[#set + 1] = ("%d %s %s"):format(socket.fd, tostring(socket.read), tostring(socket.write))
      end
      table.sort(set)
      return set
    end
    assert.are.same(fds(before), fds(sockets)) -- as they were when wait_hint began
    raises("multi:wait_hint: the multi handle is closed", function() multi:wait_hint() end)
    for _, s in ipairs(sessions) do
      s:close()
    end
  end)
end)

describe("core.file_limit", function()
  it("gives the shell's ulimit -n and how many descriptors are open now", function()
    collectgarbage() -- (files and clients earlier specs dropped close now, not in the middle)
    collectgarbage()
    local p = assert(io.popen("sh -c 'ulimit -n'"))
    local shell = p:read("*l")
    p:close()
    local limit, open = core.file_limit()
    if shell == "unlimited" then
      assert.are.equal(math.huge, limit)
    elseif (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) then
      -- under valgrind (scripts/memcheck), which keeps a few at the top for itself
      assert.is_true(limit <= tonumber(shell) and limit > tonumber(shell) - 64, limit)
    else
      assert.are.equal(tonumber(shell), limit)
      if math.type then
        assert.are.equal("integer", math.type(limit))
      end
    end
    local f = assert(io.open("/dev/null", "rb"))
    local limit2, open2 = core.file_limit()
    assert.are.same({ limit, open + 1 }, { limit2, open2 })
    f:close()
    assert.are.equal(open, select(2, core.file_limit()))
    -- as seen from outside
    local seen = {}
    for fd, target in pairs(fds_of(own_pid())) do
      seen[#seen + 1] = fd .. " -> " .. target
    end
    assert.are.equal(open, #seen, table.concat(seen, "\n"))
  end)
end)

describe("core.process_alive", function()
  it("is true for this process and false for a child that has exited and been reaped", function()
    assert.is_true(core.process_alive(own_pid()))
    assert.is_true(core.process_alive(1)) -- whoever's it is
    local p = assert(io.popen("sh -c 'echo $$'"))
    local pid = tonumber(p:read("*l"))
    p:close() -- waits for it: exited and reaped
    assert.is_number(pid)
    assert.is_false(core.process_alive(pid))
  end)

  it("checks its argument", function()
    local bad = { 0, -1, 1.5, "1", 2 ^ 31, 0 / 0, math.huge, true }
    for _, pid in ipairs(bad) do
      raises("process_alive: pid must be a positive whole number", function()
        core.process_alive(pid)
      end)
    end
    raises("(got string)", function() core.process_alive("1") end)
    raises("(got -1)", function() core.process_alive(-1) end)
    raises("(got no value)", function() core.process_alive() end)
  end)
end)
