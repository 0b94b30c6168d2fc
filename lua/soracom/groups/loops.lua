--- The `wait` option for the event loops Lua programs use: a client made with one
-- waits through the loop wherever it would block (a plain call on the wire, a login,
-- a retry's pause, a rate-limit hold, a blocking `map`), so that the loop's other
-- coroutines go on meanwhile. Each function returns wait(timeout, sockets): wait up
-- to `timeout` seconds or until one of `sockets` ({fd =, read =, write =}, the ones
-- libcurl watches) is ready. Call the client from a coroutine the loop runs.
--
--   local loops = require "soracom.groups.loops"
--   local client = groups.new { wait = loops.cqueues() }       -- cqueues (lua-http's loop)
--   local client = groups.new { wait = loops.luv(require "luv") } -- libuv (luvit)
--
-- The loop libraries are not dependencies: each is required only when its function
-- is called.
-- @module soracom.groups.loops

local unpack = table.unpack or unpack -- luacheck: ignore 143

local loops = {}

local function events(socket)
  return (socket.read and "r" or "") .. (socket.write and "w" or "")
end

-- wait function -> what to call with descriptors a wait watches, before they close.
local forget_of = setmetatable({}, { __mode = "k" })

--- The function to call with the descriptors a wait is watching before they close
-- (the client calls it): nil for a loop that needs no telling.
-- @tparam function wait a function from this module
-- @treturn function|nil forget(fds)
function loops.forget(wait)
  return forget_of[wait]
end

--- For cqueues: cqueues.poll on the sockets, with the timeout; cqueues.cancel on the
-- descriptors a wait watches before the client closes them.
-- @tparam[opt] table cqueues the cqueues module (required when left out)
-- @treturn function wait(timeout, sockets)
function loops.cqueues(cqueues)
  cqueues = cqueues or require "cqueues"
  local function wait(timeout, sockets)
    local waited = {}
    for _, socket in ipairs(sockets) do
      local wanted = events(socket)
      if wanted ~= "" then waited[#waited + 1] = { pollfd = socket.fd, events = wanted } end
    end
    waited[#waited + 1] = timeout
    cqueues.poll(unpack(waited))
  end
  forget_of[wait] = function(fds) cqueues.cancel(unpack(fds)) end
  return wait
end

--- For luv: the calling coroutine yields; a poll handle on each socket and a timer
-- resume it (from the loop's callbacks) at the first of them.
-- @tparam[opt] table uv the luv module (required when left out)
-- @treturn function wait(timeout, sockets)
function loops.luv(uv)
  uv = uv or require "luv"
  return function(timeout, sockets)
    local co, main = coroutine.running()
    if co == nil or main then
      error("soracom.groups.loops.luv: call the client from a coroutine (one the luv loop's callbacks "
        .. "resume), not from the main chunk", 2)
    end
    local handles, woken = {}, false
    local function wake()
      if woken then return end
      woken = true
      for _, handle in ipairs(handles) do
        if not handle:is_closing() then handle:close() end
      end
      local resumed, why = coroutine.resume(co)
      if not resumed then error(why, 0) end
    end
    for _, socket in ipairs(sockets) do
      local wanted = events(socket)
      if wanted ~= "" then
        local poll = uv.new_socket_poll(socket.fd)
        handles[#handles + 1] = poll
        poll:start(wanted, wake)
      end
    end
    local timer = uv.new_timer()
    handles[#handles + 1] = timer
    timer:start(math.max(0, math.ceil(timeout * 1000)), 0, wake)
    coroutine.yield()
  end
end

return loops
