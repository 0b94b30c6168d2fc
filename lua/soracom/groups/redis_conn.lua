--- A Redis connection for plain scripts: one command at a time, each with a deadline,
-- over the C core's non-blocking connection (core.redis, hiredis).
--
-- The waiting is here, in Lua, on the connection's socket (core.wait_fd): the core
-- itself never waits (DESIGN.md), so that a task of the scheduler can wait on the same
-- socket by yielding instead.
--
--   local redis_conn = require "soracom.groups.redis_conn"
--   local conn, err = redis_conn.connect("127.0.0.1", 6379, 2)   -- nil, err if it fails
--   local value, err = conn:call(1, "SET", "key", "value", "PX", 2000)
--   conn:close()
--
-- call returns what the core's conn:read() gives: the reply (status -> "OK", string,
-- integer, core.null for a nil reply, array); false, "ERR ..." for an error reply (the
-- connection stays usable); nil, message when the connection failed or the deadline
-- passed. After such a failure the connection is closed (a late reply would otherwise
-- answer the next command) and every later call returns nil and that message.

local core = require "soracom.groups.core"

local redis_conn = {}

local Conn = {}
Conn.__index = Conn

local function check_timeout(where, timeout)
  if type(timeout) ~= "number" or not (timeout > 0 and timeout <= core.MAX_TIMEOUT_SECONDS) then
    error(("soracom.groups: %s: timeout must be a number of seconds above 0 and at most %d (got %s)")
      :format(where, core.MAX_TIMEOUT_SECONDS, tostring(timeout)), 3)
  end
end

-- Waits until the socket is ready (readable or writable as asked) or the deadline.
local function wait(c, want_read, want_write, deadline, timeout)
  local left = deadline - core.now()
  local readable, writable = false, false
  if left > 0 then
    readable, writable = core.wait_fd(c:fd(), want_read, want_write, left)
    if readable == nil then
      return nil, "redis: " .. writable
    end
  end
  if not readable and not writable then
    return nil, ("redis: no answer within %g s"):format(timeout)
  end
  return true
end

--- Whether this build of the core has a Redis connection, and if not, why.
-- @treturn boolean
-- @treturn[opt] string why not (core.redis_missing)
function redis_conn.available()
  return core.redis ~= nil, core.redis_missing
end

--- Connects, waiting at most timeout seconds. Returns a connection, or nil and a message
-- (also when the core was built without hiredis).
function redis_conn.connect(host, port, timeout)
  if type(host) ~= "string" then
    error("soracom.groups: redis_conn.connect: host must be a string (got " .. type(host) .. ")", 2)
  end
  if type(port) ~= "number" then
    error("soracom.groups: redis_conn.connect: port must be a number (got " .. type(port) .. ")", 2)
  end
  check_timeout("redis_conn.connect", timeout)
  if core.redis == nil then
    return nil, "redis: " .. core.redis_missing
  end
  local deadline = core.now() + timeout
  local c, err = core.redis.connect(host, port)
  if not c then
    return nil, err
  end
  local ok
  ok, err = wait(c, false, true, deadline, timeout)
  if ok then
    -- A refused connect shows as an error on the socket, which a read reports; nothing
    -- else is expected before a command but a refusal by the server ("-ERR max number
    -- of clients reached").
    local value
    value, err = c:read()
    if value ~= nil then
      err = err or "redis: the server spoke before any command"
    end
  end
  if err then
    c:close()
    return nil, err
  end
  return setmetatable({ c = c }, Conn)
end

-- Closes the connection after a failure; later calls return the same message.
local function fail(self, err)
  self.failure = err
  self.c:close()
  return nil, err
end

--- Sends one command and waits for its reply, at most timeout seconds for both.
-- Raises on a closed connection, a bad timeout or an argument that is not a string or a
-- finite number (naming it); see the top of this file for the results.
function Conn:call(timeout, ...)
  if self.closed then
    error("soracom.groups: redis_conn:call: the connection is closed", 2)
  end
  check_timeout("redis_conn:call", timeout)
  if self.failure then
    return nil, self.failure
  end
  local c = self.c
  local deadline = core.now() + timeout
  local ok, err = c:send(...)
  if not ok then
    return fail(self, err)
  end
  while true do
    local done
    done, err = c:flush()
    if done == nil then
      return fail(self, err)
    elseif done then
      break
    end
    ok, err = wait(c, false, true, deadline, timeout)
    if not ok then
      return fail(self, err)
    end
  end
  while true do
    local value
    value, err = c:read()
    if value ~= nil then
      return value, err -- a reply, or false and Redis's error
    elseif err then
      return fail(self, err)
    end
    ok, err = wait(c, true, false, deadline, timeout)
    if not ok then
      return fail(self, err)
    end
  end
end

--- Closes the connection; safe to call twice.
function Conn:close()
  self.closed = true
  self.c:close()
end
Conn.__close = Conn.close

return redis_conn
