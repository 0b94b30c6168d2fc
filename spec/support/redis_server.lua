-- A redis-server of a spec's own: a free loopback port, a scratch folder, no
-- persistence (--save '' --appendonly no). Needs redis-server (and redis-cli for
-- srv:cli) and luasocket; works on Lua 5.1-5.4 and LuaJIT.
--
--   local redis_server = require "spec.support.redis_server"
--   local srv = redis_server.start()   -- srv.host, srv.port, srv.pid, srv.dir
--   srv:cli("GET", "k")                -- redis-cli --raw's output, for checks from outside
--                                      (arguments without NUL: they go through a shell)
--   srv:call("GET", "k")               -- the reply, over a connection of the spec's own (the C
--                                      core's; made again after a failure or a restart)
--   redis_server.free_port()           -- a loopback port nothing listens on now
--   srv:pause() / srv:resume()         -- SIGSTOP / SIGCONT: a server that answers nothing
--   srv:kill()                         -- SIGKILL, then waits until the port is closed
--   srv:start()                        -- again, on the same port (after stop or kill)
--   srv:stop()                         -- SIGKILL too (nothing to save); idempotent; removes srv.dir
--
-- Every failure raises, naming what failed.
local command = require "spec.support.command"
local socket = require "socket"

local quote = command.quote

local M = {}

-- How long a start or a stop may take before it is a failure (not a wait that ends a
-- spec: both usually take a few milliseconds).
local READY_SECONDS = 5

-- A port nothing listens on now (the kernel's choice for port 0).
local function free_port()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:close()
  return tonumber(port)
end

local function accepts(port)
  local client = socket.tcp()
  client:settimeout(0.2)
  local ok = client:connect("127.0.0.1", port)
  client:close()
  return ok ~= nil
end

local function alive(pid)
  return command.output("kill -0 " .. pid .. " 2>/dev/null && echo yes"):find("yes", 1, true) ~= nil
end

local Server = {}
Server.__index = Server

function Server:start()
  assert(self.pid == nil, "redis_server: already running")
  local out = command.output(("cd %s && exec redis-server --bind 127.0.0.1 --port %d --save '' " ..
    "--appendonly no --dir %s --logfile %s >/dev/null 2>&1 </dev/null & echo $!")
    :format(quote(self.dir), self.port, quote(self.dir), quote(self.dir .. "/redis.log")))
  local pid = tonumber(out:match("%d+"))
  assert(pid, "redis_server: could not start redis-server")
  local deadline = socket.gettime() + READY_SECONDS
  while not accepts(self.port) do
    if not alive(pid) or socket.gettime() > deadline then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      local f = io.open(self.dir .. "/redis.log", "rb")
      local log = f and f:read("*a") or ""
      if f then f:close() end
      error("redis_server: redis-server did not start on port " .. self.port .. ": " .. log, 2)
    end
    socket.sleep(0.01)
  end
  -- What listens there may be another spec's server, started on that port in between
  -- (ours then failed to bind and exits): it must be this one.
  local serving = tonumber(self:cli("INFO", "server"):match("process_id:(%d+)"))
  if serving ~= pid then
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    error("redis_server: port " .. self.port .. " is another server's (pid " .. tostring(serving) .. ")", 2)
  end
  self.pid = pid
  return self
end

function Server:signal(name)
  assert(self.pid, "redis_server: not running")
  assert(os.execute("kill -" .. name .. " " .. self.pid) ~= false, "redis_server: kill -" .. name)
end

function Server:pause() self:signal("STOP") end
function Server:resume() self:signal("CONT") end

-- SIGKILL, then waits until the port refuses connections (the kernel closes the
-- process's sockets when it dies).
function Server:kill()
  if self.pid == nil then return end
  os.execute("kill -CONT " .. self.pid .. " 2>/dev/null; kill -KILL " .. self.pid .. " 2>/dev/null")
  self.pid = nil
  local deadline = socket.gettime() + READY_SECONDS
  while accepts(self.port) do
    assert(socket.gettime() < deadline, "redis_server: the killed server still accepts")
    socket.sleep(0.01)
  end
end

-- How long the spec's own connection waits for a reply before it is a failure (seconds;
-- never waited out by a working server).
local CALL_TIMEOUT = 2

function Server:call(...)
  local redis_conn = require "soracom.groups.redis_conn"
  if self.conn then
    local reply, err = self.conn:call(CALL_TIMEOUT, ...)
    if reply ~= nil then return reply, err end
    self.conn:close()
  end
  self.conn = assert(redis_conn.connect(self.host, self.port, CALL_TIMEOUT))
  return self.conn:call(CALL_TIMEOUT, ...)
end

function Server:stop()
  if self.conn then
    self.conn:close()
    self.conn = nil
  end
  self:kill()
  if self.dir then
    os.execute("rm -rf " .. quote(self.dir))
    self.dir = nil
  end
end

-- Runs redis-cli --raw against the server; returns its output as is.
function Server:cli(...)
  local words = {}
  for i = 1, select("#", ...) do
    words[i] = quote(select(i, ...))
  end
  return command.output(("redis-cli --raw -h 127.0.0.1 -p %d %s"):format(self.port, table.concat(words, " ")))
end

function M.start()
  local dir = command.output('mktemp -d "${TMPDIR:-/tmp}/soracom-redis.XXXXXX"'):match("^%s*(.-)%s*$")
  assert(dir ~= "", "redis_server: mktemp -d failed")
  local last
  for _ = 1, 5 do -- another process may take the port between free_port and the bind
    local srv = setmetatable({ host = "127.0.0.1", port = free_port(), dir = dir }, Server)
    local ok, err = pcall(srv.start, srv)
    if ok then
      return srv
    end
    last = err
  end
  os.execute("rm -rf " .. quote(dir))
  error(last, 2)
end

M.free_port = free_port

return M
