-- Five "hosts" of one operator against the fake, for spec/nginx_redis_spec.lua and
-- bench/hosts.lua: two nginx instances of two workers each (spec/nginx_redis/) and one
-- plain Lua process (plain_host.lua), with a redis-server of their own.
--
--   local fleet = require "spec.nginx_redis.fleet"
--   local f = fleet.start()               -- f.srv (the fake), f.redis, f.nginx[1], [2]
--   local run = f:run(true, 600)          -- 600 get_group calls over the five hosts,
--                                         -- with the redis option (false: without)
--   f:stop()                              -- safe twice
--
-- run: {got (calls that returned the group), calls, first_error, seconds, and the fake's
-- counts for GET /v1/groups/{group_id}: answers_429, windows (its rate-limit windows
-- opened during the run), most_429_in_a_window; logins (POST /v1/auth); seen_windows
-- (the windows as polled every POLL seconds, oldest first: {used, status_429}, for a
-- report: a busy machine may poll a window after its last request or not at all)}.
local core = require "soracom.groups.core"
local command = require "spec.support.command"
local fake_server = require "spec.support.fake_server"
local harness = require "spec.nginx.harness"
local redis_server = require "spec.support.redis_server"
local socket = require "socket"

local quote = command.quote

local fleet = {}

fleet.API = "GET /v1/groups/{group_id}"
fleet.LIMIT, fleet.WINDOW = 100, 2 -- the fake's limit of API: LIMIT per WINDOW seconds
fleet.NGINX, fleet.PLAIN_SHARE = 2, 1 / 5 -- nginx instances; the plain process's share of the calls

local TEMPLATE = "spec/nginx_redis/nginx.conf.in"
local PARALLEL = 40 -- requests at once to each nginx, as many as the plain process's tasks
local POLL = 0.2 -- seconds between looks at the fake's windows
local RUN_BOUND = 120 -- seconds: a run not done by then is a failure (never waited out when it works)

local Fleet = {}
Fleet.__index = Fleet

function fleet.start()
  local self = setmetatable({ nginx = {} }, Fleet)
  local ok, err = pcall(function()
    self.redis = redis_server.start()
    self.redis_url = "redis://127.0.0.1:" .. self.redis.port
    self.srv = fake_server.start()
    for i = 1, fleet.NGINX do
      self.nginx[i] = harness.start(self.srv, TEMPLATE, { REDIS_URL = self.redis_url })
    end
    self.group_id = self.srv:seed_groups(1)[1]
    self.dir = command.output('mktemp -d "${TMPDIR:-/tmp}/soracom-fleet.XXXXXX"'):match("^%s*(.-)%s*$")
  end)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

function Fleet:stop()
  for _, nginx in ipairs(self.nginx) do nginx:stop() end
  if self.srv then self.srv:stop() end
  if self.redis then self.redis:stop() end
  if self.dir then os.execute("rm -rf " .. quote(self.dir)) end
  self.dir = nil
end

-- Runs `shell` in the background, its output into the file `name`; `name`.done
-- appears when it has ended.
local function background(self, name, shell)
  local out = self.dir .. "/" .. name
  os.remove(out .. ".done")
  os.execute("( " .. shell .. " > " .. quote(out) .. " 2>&1; touch " .. quote(out .. ".done") .. " ) &")
  return out
end

local function done(out)
  local file = io.open(out .. ".done", "rb")
  if file then file:close() end
  return file ~= nil
end

local function lines_of(out)
  local lines = {}
  for line in io.lines(out) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  return lines
end

-- Records the fake's windows of the API as they are now into `seen` (oldest first),
-- telling one from the next by its end.
local function look(srv, seen)
  local now = socket.gettime()
  for _, window in ipairs(srv:rate_limit_windows()) do
    if window.api == fleet.API then
      local ends = now + window.resets_in
      local last = seen[#seen]
      if last == nil or ends > last.ends + fleet.WINDOW / 2 then
        last = { ends = ends }
        seen[#seen + 1] = last
      end
      last.used, last.status_429 = window.used, window.status_429
    end
  end
end

--- `calls` get_group calls at once from the five hosts, with the redis option or
-- without; see the top of this file for what it returns.
function Fleet:run(with_redis, calls)
  local srv, id = self.srv, self.group_id
  local set = with_redis and "redis" or "alone"
  local plain = math.floor(calls * fleet.PLAIN_SHARE)
  local per_nginx = (calls - plain) / fleet.NGINX
  assert(per_nginx % 1 == 0, "calls must split evenly over the hosts")
  srv:settings { rate_limit = { limit = fleet.LIMIT, window = fleet.WINDOW } } -- (fresh windows)
  srv:clear_stats()
  local started = socket.gettime()
  local outs = {}
  for i, nginx in ipairs(self.nginx) do
    local urls = {}
    for j = 1, per_nginx do urls[j] = quote(nginx.url .. "/get?set=" .. set .. "&id=" .. id) end
    outs[#outs + 1] = background(self, "nginx" .. i, "curl -sS --no-progress-meter -m " .. RUN_BOUND
      .. " --parallel --parallel-immediate --parallel-max " .. PARALLEL .. " -w '\\n' " .. table.concat(urls, " "))
  end
  local env = {
    "SORACOM_TEST_ENDPOINT=" .. quote(srv.endpoint), "SORACOM_TEST_AUTH_KEY_ID=" .. quote(srv.auth_key_id),
    "SORACOM_TEST_AUTH_KEY=" .. quote(srv.auth_key),
    "SORACOM_TEST_REDIS=" .. (with_redis and quote(self.redis_url) or "''"),
    "GROUP_ID=" .. quote(id), "COUNT=" .. plain,
  }
  outs[#outs + 1] = background(self, "plain", "env " .. table.concat(env, " ") .. " " .. command.LUA
    .. " spec/nginx_redis/plain_host.lua")
  local seen_windows = {}
  local deadline = started + RUN_BOUND + 5
  local pending = true
  while pending do
    look(srv, seen_windows)
    pending = false
    for _, out in ipairs(outs) do
      if not done(out) then pending = true end
    end
    if pending then
      assert(socket.gettime() < deadline, "the hosts did not finish within " .. RUN_BOUND .. " s")
      socket.sleep(POLL)
    end
  end
  local seconds = socket.gettime() - started
  look(srv, seen_windows)
  local result = { got = 0, calls = calls, seconds = seconds, seen_windows = seen_windows }
  for _, out in ipairs(outs) do
    for _, line in ipairs(lines_of(out)) do
      local answer = core.decode_json(line)
      if type(answer) ~= "table" then
        result.first_error = result.first_error or line
      elseif answer.got then -- the plain process's summary
        result.got = result.got + answer.got
        result.first_error = result.first_error or answer.first_error
      elseif answer.group == id then
        result.got = result.got + 1
      else
        result.first_error = result.first_error or tostring(answer.err)
      end
    end
  end
  local stats = srv:stats().by_api
  local api = stats[fleet.API] or { status_429 = 0, windows = 0, most_429_in_a_window = 0 }
  result.answers_429, result.windows, result.most_429_in_a_window = api.status_429, api.windows,
    api.most_429_in_a_window
  result.logins = stats["POST /v1/auth"] and stats["POST /v1/auth"].requests or 0
  srv:settings { rate_limit = core.null }
  return result
end

return fleet
