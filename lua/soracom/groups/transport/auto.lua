--- The transport chosen by default. Outside nginx it is the curl transport itself.
-- Inside nginx it asks, at each request, which phase it runs in: cosockets where
-- nginx allows them (rewrite, access, content, timers, ...), so that a wait does not
-- block the worker; curl in init_by_lua, where nothing is being served yet. In the
-- other phases (log, header_filter, init_worker, balancer, ...) it raises rather than
-- block the worker: run the call in ngx.timer.at, or choose transport = "curl".

local curl = require "soracom.groups.transport.curl"
local phases = require "soracom.groups.transport.phases"

local auto = {}

local Both = {}
Both.__index = Both

-- transport -> the header lines, kept for a curl session made later. Out of the
-- transport table: they hold the API key and token.
local lines_of = setmetatable({}, { __mode = "k" })

-- The transport for the running phase; raises where neither may be used.
local function current(self)
  local phase = self._ngx.get_phase()
  if phases.cosockets[phase] then return self._cosockets end
  if not phases.blocking_allowed[phase] then
    error("soracom.groups: nginx offers no cosockets in the " .. phase .. " phase, and a call "
      .. "through libcurl would block every request of the worker: make the call from a timer "
      .. "(ngx.timer.at(0, function() ... end)), or choose transport = \"curl\" knowingly", 3)
  end
  if self._curl == nil then
    self._curl = curl.new(self._settings)
    if lines_of[self] then self._curl:set_headers(lines_of[self]) end
    self._curl:set_waiter(self._waiter)
  end
  return self._curl
end

function Both:perform(method, url, body, paginated, lines)
  return current(self):perform(method, url, body, paginated, lines)
end

function Both:set_headers(lines)
  lines_of[self] = lines
  self._cosockets:set_headers(lines)
  if self._curl then self._curl:set_headers(lines) end
end

function Both:set_waiter(waiter)
  self._waiter = waiter
  if self._curl then self._curl:set_waiter(waiter) end
end

function Both:sleep(seconds)
  return current(self):sleep(seconds)
end

function Both:event()
  return current(self):event()
end

function Both:run_tasks(source, concurrency, waiter)
  return current(self):run_tasks(source, concurrency, waiter)
end

function Both:tidy()
  local transport = current(self)
  if transport.tidy then transport:tidy() end
end

function Both:capacity_error(concurrency)
  local transport = current(self)
  return transport.capacity_error and transport:capacity_error(concurrency)
end

function Both:start_tasks(source, concurrency)
  return current(self):start_tasks(source, concurrency)
end

function Both:spawn(job)
  return current(self):spawn(job)
end

function Both:in_task()
  return current(self):in_task()
end

function Both:close()
  self._cosockets:close()
  if self._curl then self._curl:close() end
end

function Both.__tostring()
  return "soracom.groups transport (nginx cosockets, curl outside them)"
end

function auto.new(settings)
  local ngx = rawget(_G, "ngx")
  if ngx == nil or type(ngx.get_phase) ~= "function" then return curl.new(settings) end
  -- Made now, so that what nginx cannot do (ca_file, proxy) is said at groups.new.
  local cosockets = require("soracom.groups.transport.nginx").new(settings)
  return setmetatable({ _ngx = ngx, _settings = settings, _cosockets = cosockets }, Both)
end

return auto
