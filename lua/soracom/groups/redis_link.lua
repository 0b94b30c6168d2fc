--- How a client reaches Redis (the redis option): one command at a time, answered in
-- lua-resty-redis's shapes, whichever way it goes:
--   reply (a status as its text, a string, an integer, ngx.null or core.null for nil,
--   an array); false, message for Redis's error reply; nil, message when the
--   connection failed or no reply came within the timeout (and "phase" third when
--   the call cannot be made where it is: nginx offers no cosockets there, Redis is
--   not at fault).
--
-- Three ways, chosen once:
-- * a `command` function the program gives (its own pool, TLS, Sentinel...);
-- * inside nginx, lua-resty-redis over cosockets, which never block the worker, with
--   nginx's keep-alive pool (OpenResty's resty.redis, or Debian's nginx.redis);
-- * elsewhere, the C core's hiredis connection (redis_conn), one per link, whose wait
--   blocks the process for at most the timeout (a loopback or LAN round trip is a
--   fraction of a millisecond; the HTTP requests of a map go on once it returns).
--
-- The password is kept in the closure of the link's connect, never in a field, an
-- error or a debug line.

local redis_conn = require "soracom.groups.redis_conn"

local redis_link = {}

local DEFAULT_PORT = 6379

-- Idle connections inside nginx: kept this long (ms), this many per worker.
local NGINX_KEEPALIVE_MS, NGINX_POOL_SIZE = 60000, 32

local function url_decode(text)
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

--- redis_link.parse_url(url): {host, port, db, username, password} of
-- "redis://[[username]:password@]host[:port][/db]", or nil and why (naming no part of
-- the password).
function redis_link.parse_url(url)
  local rest = url:match("^redis://(.*)$")
  if rest == nil then
    if url:match("^rediss://") then
      return nil, "rediss:// (TLS) is not built in: give a command function of your own (see the README)"
    end
    return nil, "the URL must start with redis://"
  end
  local target = { port = DEFAULT_PORT, db = 0 }
  local userinfo, hostpart = rest:match("^(.*)@([^@]*)$")
  if userinfo then
    local user, password = userinfo:match("^([^:]*):(.*)$")
    if user == nil then
      return nil, "the part before @ must be [username]:password"
    end
    target.username = user ~= "" and url_decode(user) or nil
    target.password = url_decode(password)
  else
    hostpart = rest
  end
  local hostport, db = hostpart:match("^([^/]*)/?(.*)$")
  if db ~= "" then
    if not db:match("^%d+$") then return nil, "the database after / must be a number" end
    target.db = tonumber(db)
  end
  local host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$") -- [::1]:6379
  if host == nil then host, port = hostport:match("^([^:]*):?(%d*)$") end
  if host == nil or host == "" then return nil, "the URL names no host" end
  target.host = host
  if port ~= "" then
    target.port = tonumber(port)
    if target.port < 1 or target.port > 65535 then return nil, "the port must be within 1-65535" end
  end
  return target
end

-- What to send after connecting: AUTH (when a password was given), SELECT (db > 0).
local function greetings(target)
  local commands = {}
  if target.password then
    commands[#commands + 1] = target.username and { "AUTH", target.username, target.password }
      or { "AUTH", target.password }
  end
  if target.db ~= 0 then commands[#commands + 1] = { "SELECT", tostring(target.db) } end
  return commands
end

-- A Redis error reply to AUTH or SELECT, without anything the command carried.
local function greeting_failed(command, message)
  return nil, "redis: " .. command[1] .. " was refused: " .. tostring(message)
end

local Link = {}
Link.__index = Link

-- Links made in this process, each with its own number: a store of accounts is its
-- link's alone (its database, login and failures are its own).
local links_made = 0

function Link:__tostring()
  return "soracom.groups redis link (" .. self.where .. ")"
end

--- Runs one command; see the top of this file for the results.
function Link:call(...)
  return self._call(...)
end

--- Closes the link's connection, if it keeps one (its client closed); safe twice.
-- A later call still goes (see core_caller), and keeps nothing open.
function Link:close()
  self.closed = true
  if self._close then self._close() end
end

-- The C core's way: one connection, made again after any failure. Returns the call
-- and the close. After the close, a call (the answer of a request still in flight
-- when its client closed) has a connection of its own, closed once it returns.
local function core_caller(target, timeout)
  local conn, closed
  local greeting = greetings(target)
  local function close()
    if conn then
      conn:close()
      conn = nil
    end
  end
  local function connected()
    local made, err = redis_conn.connect(target.host, target.port, timeout)
    if made == nil then return nil, err end
    for _, command in ipairs(greeting) do
      local ok, refused = made:call(timeout, (table.unpack or unpack)(command))
      if not ok then
        made:close()
        if ok == nil then return nil, refused end
        return greeting_failed(command, refused)
      end
    end
    return made
  end
  local function call(...)
    if conn == nil then
      local made, err = connected()
      if made == nil then return nil, err end
      conn = made
    end
    local reply, err = conn:call(timeout, ...)
    if reply == nil or closed then close() end
    return reply, err
  end
  return call, function()
    closed = true
    close()
  end
end

-- lua-resty-redis, as OpenResty (resty.redis) or Debian (nginx.redis) installs it.
local function resty_redis()
  for _, name in ipairs { "resty.redis", "nginx.redis" } do
    local found, module = pcall(require, name)
    if found then return module end
  end
  return nil
end

-- Keep-alive pools inside nginx are named by host, port, database and who logs in,
-- so that a connection AUTHed or SELECTed for one link never serves another. Who logs
-- in is a number given to each (username, password) pair met in this worker, never a
-- digest of the password (a pool's name may reach nginx's debug log).
local login_numbers, logins_met = {}, 0

local function pool_name(target)
  local login = "-"
  if target.password then
    local pair = (target.username or "") .. "\0" .. target.password
    if login_numbers[pair] == nil then
      logins_met = logins_met + 1
      login_numbers[pair] = logins_met
    end
    login = "#" .. login_numbers[pair]
  end
  return ("soracom-groups redis %s:%d/%d %s"):format(target.host, target.port, target.db, login)
end

-- nginx's way: a cosocket per command, from and back to the worker's pool. A phase
-- without cosockets (init, init_worker, log, header filter...) is a failure like any
-- other: the client goes on alone (or fails, on_redis_error = "fail").
local function nginx_caller(module, target, timeout)
  local phases = require "soracom.groups.transport.phases"
  local ngx = rawget(_G, "ngx")
  local greeting = greetings(target)
  local pool = { pool = pool_name(target) }
  local timeout_ms = math.max(1, math.floor(timeout * 1000))
  local function run(command_name, ...)
    local red = module:new()
    red:set_timeout(timeout_ms)
    local ok, err = red:connect(target.host, target.port, pool)
    if not ok then return nil, "redis: " .. tostring(err) end
    if (red:get_reused_times() or 0) == 0 then
      for _, command in ipairs(greeting) do
        local done, refused = red[command[1]:lower()](red, select(2, (table.unpack or unpack)(command)))
        if not done then
          red:close()
          if done == nil then return nil, "redis: " .. tostring(refused) end
          return greeting_failed(command, refused)
        end
      end
    end
    local reply, failure = red[command_name:lower()](red, ...)
    if reply == nil then
      red:close()
      return nil, "redis: " .. tostring(failure)
    end
    red:set_keepalive(NGINX_KEEPALIVE_MS, NGINX_POOL_SIZE)
    return reply, failure
  end
  return function(...)
    local phase = ngx.get_phase()
    if not phases.cosockets[phase] then
      return nil, "redis: nginx offers no cosockets in the " .. phase .. " phase", "phase"
    end
    local done, reply, err = pcall(run, ...)
    if not done then return nil, "redis: " .. tostring(reply) end
    return reply, err
  end
end

local function in_nginx()
  local ngx_table = rawget(_G, "ngx")
  return type(ngx_table) == "table" and ngx_table.socket ~= nil and ngx_table.worker ~= nil
end

--- redis_link.new(settings): a link, or nil and why (the way it would take is not
-- there: no hiredis in this build, no lua-resty-redis in this nginx). settings: the
-- resolved redis option ({command} or {target, timeout}).
function redis_link.new(settings)
  links_made = links_made + 1
  local link = setmetatable({ id = links_made }, Link)
  if settings.command then
    local command = settings.command
    link.where = "the program's command function"
    link._call = function(...)
      local done, reply, err = pcall(command, ...)
      if not done then return nil, "redis: the command function raised: " .. tostring(reply) end
      return reply, err
    end
  elseif in_nginx() then
    local module = resty_redis()
    if module == nil then
      return nil, "redis inside nginx needs lua-resty-redis (OpenResty's resty.redis, or Debian's "
        .. "lua-nginx-redis package)"
    end
    link.where = settings.target.host .. ":" .. settings.target.port
    link._call = nginx_caller(module, settings.target, settings.timeout)
  else
    local available, missing = redis_conn.available()
    if not available then
      return nil, "redis outside nginx needs the core built with hiredis: " .. tostring(missing)
    end
    link.where = settings.target.host .. ":" .. settings.target.port
    link._call, link._close = core_caller(settings.target, settings.timeout)
  end
  return link
end

return redis_link
