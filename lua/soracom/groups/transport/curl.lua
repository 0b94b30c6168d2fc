--- The libcurl transport: curl sessions from the C core. Called from plain code, a
-- request blocks while it is on the wire (the one session every such call shares);
-- called from a task (of client:map, or the login's), it goes through the transport's
-- own multi handle on a session of the transport's pool, and only that task waits.
-- The multi handle holds the transport's connections: close() releases them.
-- A transport has perform, set_headers, sleep, event, run_tasks and close; see
-- lua/soracom/groups/transport/README.md.

local core = require "soracom.groups.core"
local scheduler = require "soracom.groups.scheduler"

local unpack = table.unpack or unpack -- luacheck: ignore 143

local curl = {}

local Transport = {}
Transport.__index = Transport

-- transport -> what it holds: the settings (a proxy URL may hold a password), the
-- header lines (the API key and token), its sessions. Out of the transport table so
-- that no dump of the client reaches them.
local held = setmetatable({}, { __mode = "k" })

-- The session reads connect_timeout, timeout, max_body_size, insecure, ca_file,
-- ca_path and proxy from the settings, and keeps none of the rest.
function curl.new(settings)
  local transport = setmetatable({}, Transport)
  local plain = core.session(settings)
  held[transport] = {
    settings = settings,
    plain = plain,                  -- for calls outside tasks
    perform = plain.perform,        -- its method, looked up once
    idle = {},                      -- sessions for tasks, between two transfers
    in_flight = setmetatable({}, { __mode = "k" }), -- session -> true while its transfer runs
    multi = nil,                    -- made at the first transfer of a task
    lines = nil, version = 0,       -- the header lines, and how often they changed
    versions = setmetatable({}, { __mode = "k" }), -- session -> the version it holds
  }
  return transport
end

local function state(self)
  local own = held[self]
  if own == nil or own.closed then error("soracom.groups: the client is closed", 3) end
  return own
end

-- A session with the current header lines, or with `lines` for one request (then
-- marked as holding none of the versions, so that its next request sets them again).
local function current_lines(own, session, lines)
  if lines then
    session:set_headers(lines)
    own.versions[session] = nil
  elseif own.lines and own.versions[session] ~= own.version then
    session:set_headers(own.lines)
    own.versions[session] = own.version
  end
  return session
end

local function closed_in_flight()
  return nil, { kind = "closed", message = "the client was closed while the request was in flight" }
end

-- One exchange of a task, through the scheduler.
local function perform_in_task(own, method, url, body, paginated, lines)
  local session = table.remove(own.idle) or core.session(own.settings)
  current_lines(own, session, lines)
  session:prepare(method, url, body, paginated)
  own.in_flight[session] = true
  own.multi = own.multi or core.multi()
  local finished, why = scheduler.transfer(session, own.multi)
  own.in_flight[session] = nil
  if own.closed then
    session:close()
    return closed_in_flight()
  end
  if finished == nil then
    session:close()
    return nil, { kind = "network", message = "libcurl refused the transfer: " .. tostring(why) }
  end
  -- (the answer's rate-limit headers: the fourth value, or the error's rate_limit)
  local value, next_key, status, limits = session:finish()
  own.idle[#own.idle + 1] = session
  return value, next_key, status, limits
end

-- One exchange outside any task, through an application loop's wait: a run of its
-- own, so that the loop goes on while it is on the wire.
local function perform_through(own, waiter, method, url, body, paginated, lines)
  local outcome = { n = 0 }
  local function keep(...) outcome = { n = select("#", ...), ... } end
  local source_given = false
  local run = scheduler.start(function()
    if source_given then return nil end
    source_given = true
    return {
      run = function() keep(perform_in_task(own, method, url, body, paginated, lines)) return true end,
      finish = function(ok, raised) if not ok then outcome.raised = raised end end,
    }
  end, 1)
  while not run:step(math.huge, waiter) do end
  if outcome.raised ~= nil then error(outcome.raised, 0) end
  return unpack(outcome, 1, outcome.n)
end

--- perform(method, url, body, paginated, lines) -> value, next_key, status, limits | nil, err
-- lines: header lines for this request alone, instead of set_headers' (optional).
function Transport:perform(method, url, body, paginated, lines)
  local own = held[self]
  if own == nil or own.closed then state(self) end -- (raises)
  if scheduler.live > 0 and scheduler.current() then
    return perform_in_task(own, method, url, body, paginated, lines)
  end
  local waiter = own.waiter
  if waiter and waiter.wait then
    return perform_through(own, waiter, method, url, body, paginated, lines)
  end
  local session = own.plain
  if lines or own.versions[session] ~= own.version then current_lines(own, session, lines) end
  return own.perform(session, method, url, body, paginated)
end

--- set_waiter(waiter): how a call outside any task waits ({ wait = fn }: through an
-- application's loop; else it blocks).
function Transport:set_waiter(waiter)
  state(self).waiter = waiter
end

function Transport:set_headers(lines)
  local own = state(self)
  own.lines, own.version = lines, own.version + 1
end

--- sleep(seconds): a timer inside a task, a blocking sleep elsewhere.
function Transport.sleep(_, seconds)
  if scheduler.current() then scheduler.sleep(seconds) else core.sleep(seconds) end
end

function Transport.event()
  return scheduler.event()
end

function Transport.run_tasks(_, source, concurrency, waiter)
  scheduler.run(source, concurrency, waiter)
end

--- tidy(): cancels the maps collected unfinished (see scheduler.tidy), so that what
-- they held (transfers, the budget's places) is released before a plain call.
Transport.tidy = scheduler.tidy

-- Descriptors kept free beside a map's sockets (the process's own files, the ones a
-- login or a plain call opens meanwhile).
local SPARE_DESCRIPTORS = 16

--- capacity_error(concurrency) -> nil, or why `concurrency` transfers at once cannot
-- fit the process's file limit (each may need a socket of its own).
function Transport.capacity_error(_, concurrency)
  local limit, open = core.file_limit()
  local reserved = scheduler.reserved() -- sockets the maps running now may still open
  local free = limit - open - reserved - SPARE_DESCRIPTORS
  if concurrency <= free then return nil end
  return string.format("options.concurrency %d needs up to %d more file descriptors (one socket each, and "
    .. "%d spare), and this process may open %d more (ulimit -n %s, %d open, %d kept for the maps running): "
    .. "lower concurrency or raise the limit", concurrency, concurrency + SPARE_DESCRIPTORS, SPARE_DESCRIPTORS,
    math.max(0, limit - open - reserved), tostring(limit), open, reserved)
end

--- start_tasks(source, concurrency) -> a run the caller drives (see scheduler.start).
function Transport.start_tasks(_, source, concurrency)
  return scheduler.start(source, concurrency)
end

--- spawn(job): runs the job in a task no caller owns (a login), carried by whoever
-- waits; see scheduler.spawn.
function Transport.spawn(_, job)
  scheduler.spawn(job)
end

--- Whether the caller runs in a task of the scheduler.
function Transport.in_task()
  return scheduler.current() ~= nil
end

--- Releases every session; the transfers in flight end, their tasks get a "closed"
-- error. Safe twice.
function Transport:close()
  local own = held[self]
  if own == nil or own.closed then return end
  own.closed = true
  scheduler.tidy()
  for session in pairs(own.in_flight) do scheduler.cancel(session) end
  if own.multi then
    scheduler.cancel_transfers(own.multi)
    own.multi:close()
  end
  for _, session in ipairs(own.idle) do session:close() end
  own.idle = {}
  own.plain:close()
end

function Transport:__tostring()
  local own = held[self]
  return "soracom.groups.curl_transport (" .. ((own == nil or own.closed) and "closed" or "open") .. ")"
end

return curl
