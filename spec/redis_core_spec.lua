-- core.redis (hiredis, non-blocking) and soracom.groups.redis_conn (a blocking call with
-- a deadline) against a redis-server of the spec's own. A development build has hiredis
-- (scripts/install-deps installs libhiredis-dev): core.redis missing is a failure here.
local core = require "soracom.groups.core"
local redis_conn = require "soracom.groups.redis_conn"
local redis_server = require "spec.support.redis_server"

local has_integers = math.type ~= nil
local TIMEOUT = 2 -- seconds: a bound on a working server's answer, never waited out

-- Drives a raw connection until n replies came; returns them as {value, err} pairs.
local function read_replies(c, n)
  local replies = {}
  local deadline = core.now() + TIMEOUT
  while #replies < n do
    local value, err = c:read()
    if value ~= nil or err ~= nil then
      replies[#replies + 1] = { value, err }
      if value == nil then break end -- a failed connection gives nothing more
    else
      assert(core.now() < deadline, "no reply within " .. TIMEOUT .. " s")
      assert(core.wait_fd(c:fd(), true, false, deadline - core.now()) ~= nil)
    end
  end
  return replies
end

local function flush_all(c)
  local deadline = core.now() + TIMEOUT
  while true do
    local done, err = c:flush()
    if done == nil then return nil, err end
    if done then return true end
    assert(core.now() < deadline, "could not write within " .. TIMEOUT .. " s")
    core.wait_fd(c:fd(), false, true, deadline - core.now())
  end
end

describe("core.redis", function()
  local srv

  setup(function()
    assert(core.redis, "core.redis is missing: " .. tostring(core.redis_missing))
    srv = redis_server.start()
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    if srv.pid == nil then srv:start() end
    assert.are.equal("OK\n", srv:cli("FLUSHALL"))
  end)

  it("is there, and names its hiredis", function()
    assert.is_table(core.redis)
    assert.is_nil(core.redis_missing)
    assert.matches("^%d+%.%d+%.%d+$", core.redis.hiredis_version)
  end)

  it("answers PING through redis_conn, with a status reply as its text", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    assert.are.equal("PONG", conn:call(TIMEOUT, "PING"))
    assert.are.equal("OK", conn:call(TIMEOUT, "SET", "k", "v"))
    conn:close()
  end)

  it("keeps binary strings whole, NULs included", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    local value = "a\0b\255\0\r\n$3\r\n"
    assert.are.equal("OK", conn:call(TIMEOUT, "SET", "bin\0key", value))
    assert.are.equal(value, conn:call(TIMEOUT, "GET", "bin\0key"))
    assert.are.equal(#value, conn:call(TIMEOUT, "STRLEN", "bin\0key"))
    assert.are.equal(core.null, conn:call(TIMEOUT, "GET", "bin")) -- not the key cut at its NUL
    assert.are.equal("OK", conn:call(TIMEOUT, "SET", "binval", value))
    assert.are.equal(#value .. "\n", srv:cli("STRLEN", "binval")) -- seen from outside
    conn:close()
  end)

  it("sends numbers as their exact text and reads integers back exactly", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    assert.are.equal(1, conn:call(TIMEOUT, "INCR", "n"))
    assert.are.equal(2 ^ 40 + 1, conn:call(TIMEOUT, "INCRBY", "n", 2 ^ 40))
    assert.are.equal("1099511627777\n", srv:cli("GET", "n"))
    assert.are.equal("OK", conn:call(TIMEOUT, "SET", "f", 1.5))
    assert.are.equal("1.5\n", srv:cli("GET", "f"))
    assert.are.equal("OK", conn:call(TIMEOUT, "SET", "g", 0.1))
    assert.are.equal(0.1, tonumber(srv:cli("GET", "g")))
    assert.are.equal("OK", conn:call(TIMEOUT, "SET", "big", "9007199254740993"))
    if has_integers then
      local v = conn:call(TIMEOUT, "INCR", "big")
      assert.are.equal("integer", math.type(v))
      assert.are.equal(9007199254740994, v)
      assert.are.equal(math.maxinteger, conn:call(TIMEOUT, "INCRBY", "max", math.maxinteger))
      assert.are.equal("9223372036854775807\n", srv:cli("GET", "max"))
    else
      -- before 5.3 an integer reply is a double: exact up to 2^53
      assert.are.equal(2 ^ 53, conn:call(TIMEOUT, "INCRBY", "m", 2 ^ 53))
      assert.are.equal("9007199254740992\n", srv:cli("GET", "m"))
    end
    conn:close()
  end)

  it("gives core.null for a nil reply, arrays as arrays, nested ones too", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    assert.are.equal(core.null, conn:call(TIMEOUT, "GET", "missing"))
    assert.are.equal(3, conn:call(TIMEOUT, "RPUSH", "list", "a", "", "c\0"))
    assert.are.same({ "a", "", "c\0" }, conn:call(TIMEOUT, "LRANGE", "list", 0, -1))
    assert.are.same({}, conn:call(TIMEOUT, "LRANGE", "nothing", 0, -1))
    local nested = conn:call(TIMEOUT, "EVAL",
      "return {1, {2, 'x', {KEYS[1], ARGV[1]}}, redis.call('GET', 'missing'), 'after'}",
      1, "key1", "arg1")
    -- (redis.call gives a script false for a nil reply, which Redis returns as nil)
    assert.are.same({ 1, { 2, "x", { "key1", "arg1" } }, core.null, "after" }, nested)
    local with_null = conn:call(TIMEOUT, "MGET", "missing", "list2")
    assert.are.equal(2, #with_null)
    assert.are.equal(core.null, with_null[1])
    assert.are.equal(core.null, with_null[2])
    conn:close()
  end)

  it("returns false and Redis's error for an error reply; NOSCRIPT is recognisable", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    local value, err = conn:call(TIMEOUT, "NO-SUCH-COMMAND", "x")
    assert.is_false(value)
    assert.matches("^ERR unknown command", err)
    value, err = conn:call(TIMEOUT, "EVALSHA", string.rep("0", 40), 0)
    assert.is_false(value)
    assert.matches("^NOSCRIPT ", err)
    value, err = conn:call(TIMEOUT, "INCR", "list-or-not")
    assert.are.equal(1, value)
    assert.is_nil(err)
    -- an error inside an array (a script's error_reply) is {false, message}
    local replies = conn:call(TIMEOUT, "EVAL", "return {1, redis.error_reply('MINE went wrong')}", 0)
    assert.are.same({ 1, { false, "MINE went wrong" } }, replies)
    -- the connection is still good
    assert.are.equal("PONG", conn:call(TIMEOUT, "PING"))
    conn:close()
  end)

  it("runs a script that sets a key with a millisecond expiry (EVAL, PEXPIRE, PTTL)", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    local script = [[
      local n = redis.call('INCR', KEYS[1])
      if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
      return {n, redis.call('PTTL', KEYS[1])}
    ]]
    local first = conn:call(TIMEOUT, "EVAL", script, 1, "window", 1500)
    assert.are.equal(1, first[1])
    assert.is_true(first[2] > 1000 and first[2] <= 1500)
    local second = conn:call(TIMEOUT, "EVAL", script, 1, "window", 1500)
    assert.are.equal(2, second[1])
    assert.is_true(second[2] <= first[2])
    local pttl = tonumber(srv:cli("PTTL", "window"))
    assert.is_true(pttl > 0 and pttl <= 1500)
    -- EVALSHA after SCRIPT LOAD: the same script by its digest
    local sha = conn:call(TIMEOUT, "SCRIPT", "LOAD", script)
    assert.matches("^%x+$", sha)
    assert.are.equal(3, conn:call(TIMEOUT, "EVALSHA", sha, 1, "window", 1500)[1])
    conn:close()
  end)

  it("pipelines: several commands sent at once, their replies in order", function()
    local c = assert(core.redis.connect(srv.host, srv.port))
    assert.is_true(c:send("SET", "p", "1"))
    assert.is_true(c:send("INCR", "p"))
    assert.is_true(c:send("BAD-COMMAND"))
    assert.is_true(c:send("GET", "p"))
    assert.is_true(c:wants_write())
    assert(flush_all(c))
    assert.is_false(c:wants_write())
    local replies = read_replies(c, 4)
    assert.are.same({ "OK" }, replies[1])
    assert.are.same({ 2 }, replies[2])
    assert.is_false(replies[3][1])
    assert.matches("^ERR unknown command", replies[3][2])
    assert.are.same({ "2" }, replies[4])
    local value, err = c:read()
    assert.is_nil(value)
    assert.is_nil(err) -- nothing more: no reply is waiting
    c:close()
  end)

  it("pipelines 1000 commands", function()
    local c = assert(core.redis.connect(srv.host, srv.port))
    for i = 1, 1000 do
      assert.is_true(c:send("RPUSH", "many", i))
    end
    assert(flush_all(c))
    local replies = read_replies(c, 1000)
    assert.are.equal(1000, #replies)
    for i = 1, 1000 do
      assert.are.equal(i, replies[i][1])
    end
    assert.are.equal("1000\n", srv:cli("LLEN", "many"))
    c:close()
  end)

  it("returns within its timeout when the server answers nothing, then stays failed", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    srv:pause()
    local started = core.now()
    local value, err = conn:call(0.2, "PING")
    local took = core.now() - started
    srv:resume()
    assert.is_nil(value)
    assert.matches("no answer within 0%.2 s", err)
    assert.is_true(took >= 0.2 and took < 0.2 + 1, "took " .. took)
    -- the late PONG must not answer a later command: the connection was closed
    local again, again_err = conn:call(TIMEOUT, "GET", "x")
    assert.is_nil(again)
    assert.are.equal(err, again_err)
    conn:close()
    local fresh = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    assert.are.equal("PONG", fresh:call(TIMEOUT, "PING"))
    fresh:close()
  end)

  it("fails, without a crash or a SIGPIPE, when the server is killed mid-connection", function()
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    local c = assert(core.redis.connect(srv.host, srv.port))
    assert.are.equal("PONG", conn:call(TIMEOUT, "PING"))
    assert.is_true(c:send("PING"))
    assert(flush_all(c))
    assert.are.same({ { "PONG" } }, read_replies(c, 1))
    srv:kill()
    local value, err = conn:call(TIMEOUT, "PING")
    assert.is_nil(value)
    assert.matches("^redis: ", err)
    -- the raw connection: reading sees the closed connection, writing fails (EPIPE)
    local replies = read_replies(c, 1)
    assert.is_nil(replies[1][1])
    assert.matches("^redis: ", replies[1][2])
    local sent, send_err = c:send("PING")
    assert.is_nil(sent)
    assert.are.equal(replies[1][2], send_err)
    c:close()
    conn:close()
  end)

  it("writes to a connection the server closed: an error, not SIGPIPE", function()
    local c = assert(core.redis.connect(srv.host, srv.port))
    assert.is_true(c:send("PING"))
    assert(flush_all(c))
    assert.are.same({ { "PONG" } }, read_replies(c, 1))
    srv:kill()
    local payload = string.rep("x", 1024 * 1024)
    local failed
    for _ = 1, 4 do -- the first write may still land in the socket's buffer
      assert.is_true(c:send("SET", "k", payload))
      local done, err = c:flush()
      if done == nil then
        failed = err
        break
      end
      core.wait_fd(c:fd(), false, true, 0.2)
    end
    assert.is_string(failed)
    assert.matches("^redis: ", failed)
    c:close()
  end)

  it("reports a refused connection", function()
    srv:kill()
    local conn, err = redis_conn.connect(srv.host, srv.port, TIMEOUT)
    assert.is_nil(conn)
    assert.matches("^redis: .*[Rr]efused", err)
    local c = core.redis.connect(srv.host, srv.port)
    if c then -- the refusal came later than connect(): the first write or read says so
      assert.is_true(c:send("PING"))
      local done, flush_err = c:flush()
      if done ~= nil then
        local replies = read_replies(c, 1)
        flush_err = replies[1][2]
      end
      assert.matches("^redis: .*[Rr]efused", flush_err)
      c:close()
    end
  end)

  it("raises on wrong arguments, naming them, before sending anything", function()
    local c = assert(core.redis.connect(srv.host, srv.port))
    assert.has_error(function() c:send() end,
      "soracom.groups: redis:send: a command needs at least one argument")
    assert.has_error(function() c:send("SET", "k", true) end,
      "soracom.groups: redis:send: argument #3 must be a string or a finite number (got boolean)")
    assert.has_error(function() c:send("SET", {}, "v") end,
      "soracom.groups: redis:send: argument #2 must be a string or a finite number (got table)")
    assert.has_error(function() c:send("SET", "k", 0 / 0) end)
    assert.has_error(function() c:send("SET", "k", math.huge) end,
      "soracom.groups: redis:send: argument #3 must be a string or a finite number (got inf)")
    assert.is_false(c:wants_write()) -- none of them was appended
    assert.has_error(function() core.redis.connect(1, 2) end)
    assert.has_error(function() core.redis.connect("127.0.0.1", 0) end,
      "soracom.groups: redis.connect: port must be an integer from 1 to 65535 (got 0)")
    assert.has_error(function() core.redis.connect("127.0.0.1", 1.5) end,
      "soracom.groups: redis.connect: port must be an integer from 1 to 65535 (got 1.5)")
    assert.has_error(function() core.redis.connect("127.0.0.1\0x", 1) end,
      "soracom.groups: redis.connect: host must be a non-empty string without NUL (got string)")
    assert.has_error(function() core.wait_fd(-1, true, false, 1) end)
    assert.has_error(function() core.wait_fd(c:fd(), true, false, -1) end)
    assert.has_error(function() core.wait_fd(c:fd(), false, false, 1) end,
      "soracom.groups: wait_fd: want_read or want_write must be true")
    assert.has_error(function() redis_conn.connect(srv.host, srv.port, 0) end)
    assert.has_error(function() redis_conn.connect(srv.host, srv.port, core.MAX_TIMEOUT_SECONDS + 1) end)
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    assert.has_error(function() conn:call(nil, "PING") end)
    assert.has_error(function() conn:call(TIMEOUT, "SET", "k", nil, "v") end,
      "soracom.groups: redis:send: argument #3 must be a string or a finite number (got nil)")
    assert.are.equal("PONG", conn:call(TIMEOUT, "PING")) -- still in step
    conn:close()
    c:close()
  end)

  it("closes twice without harm and refuses use after close", function()
    local c = assert(core.redis.connect(srv.host, srv.port))
    assert.are.equal("soracom.groups.redis (open)", tostring(c))
    c:close()
    c:close()
    assert.are.equal("soracom.groups.redis (closed)", tostring(c))
    for _, method in ipairs({ "fd", "flush", "read", "wants_write" }) do
      assert.has_error(function() c[method](c) end,
        "soracom.groups: redis:" .. method .. ": the connection is closed")
    end
    assert.has_error(function() c:send("PING") end, "soracom.groups: redis:send: the connection is closed")
    assert.are.equal("soracom.groups.redis", getmetatable(c))
    assert.has_error(function() setmetatable(c, nil) end)
    local conn = assert(redis_conn.connect(srv.host, srv.port, TIMEOUT))
    conn:close()
    conn:close()
    assert.has_error(function() conn:call(TIMEOUT, "PING") end,
      "soracom.groups: redis_conn:call: the connection is closed")
  end)

  it("frees a connection with replies pending when collected", function()
    local before = tonumber(srv:cli("INFO", "clients"):match("connected_clients:(%d+)"))
    do
      local c = assert(core.redis.connect(srv.host, srv.port))
      for i = 1, 100 do c:send("SET", "k" .. i, i) end
      assert(flush_all(c))
      assert.are.same({ { "OK" } }, read_replies(c, 1)) -- 99 replies left unread
      assert.are.equal(before + 1, tonumber(srv:cli("INFO", "clients"):match("connected_clients:(%d+)")))
    end
    collectgarbage()
    collectgarbage()
    local deadline = core.now() + TIMEOUT
    local now_connected
    repeat -- the server sees the close a moment later
      now_connected = tonumber(srv:cli("INFO", "clients"):match("connected_clients:(%d+)"))
    until now_connected == before or core.now() > deadline
    assert.are.equal(before, now_connected)
  end)

  it("waits on a descriptor with core.wait_fd", function()
    local c = assert(core.redis.connect(srv.host, srv.port))
    assert.are.same({ false, true }, { core.wait_fd(c:fd(), false, true, TIMEOUT) })
    -- nothing to read: the timeout ends the wait
    local started = core.now()
    assert.are.same({ false, false }, { core.wait_fd(c:fd(), true, false, 0.05) })
    assert.is_true(core.now() - started >= 0.05)
    c:send("PING")
    assert(flush_all(c))
    assert.are.same({ true, false }, { core.wait_fd(c:fd(), true, false, TIMEOUT) })
    c:close()
  end)
end)

describe("core.redis_missing", function()
  it("is nil when core.redis is there (README: Redis (optional), for a build without)", function()
    assert.is_true(core.redis ~= nil)
    assert.is_nil(core.redis_missing)
    assert.are.same({ true, nil }, { redis_conn.available() })
  end)
end)
