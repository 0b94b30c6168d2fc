-- Starts the fake Soracom API (spec/fake/ctl) from busted specs and talks to its
-- control paths. Works on Lua 5.1-5.4 and LuaJIT; uses luasocket and lua-cjson.
--
--   local fake = require "spec.support.fake_server"
--   local srv = fake.start()          -- srv.url, srv.endpoint, srv.api_key, srv.token
--                                     -- and the login credentials below
--   local srv = fake.start{ tls = true } -- also HTTPS: srv.tls_url, srv.tls_endpoint,
--                                     -- srv.ca_file (CA to trust), srv.other_ca_file (a CA
--                                     -- that did not sign the server certificate)
--   local srv = fake.start{ http2 = true } -- the same, and HTTP/2 offered over TLS (ALPN)
--   srv:seed_groups(3, { env = "ci" }) --> { "id1", "id2", "id3" }
--   srv:trail()                       --> { "POST /v1/auth", "GET /v1/groups?limit=1", ... }
--   srv:stop()                        -- idempotent; removes the state directory
--
-- Every failure raises an error naming the operation.
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local M = {}

-- Credentials POST /v1/auth accepts by default (settings of the same names change them):
-- copied into every server object as srv.auth_key_id, srv.auth_key, ...
M.credentials = {
  auth_key_id = "keyId-test",       -- AuthKey login: authKeyId
  auth_key = "secret-test",         --                authKey
  email = "root@example.com",       -- root login:    email
  password = "root-password",       --                password
  operator_id = "OP0012345678",     -- SAM login:     operatorId (also every AuthResponse's operatorId)
  user_name = "SORACOMAPI",         --                userName
  sam_password = "sam-password",    --                password
  switch_operator_id = "OP0087654321", -- POST /v1/auth/switch_user: the one user it switches to
  switch_user_name = "SWITCHED",
}

-- Repository root: this file is <root>/spec/support/fake_server.lua.
local function repo_root()
  local source = debug.getinfo(1, "S").source
  local dir = source:match("^@(.*)spec[/\\]support[/\\]fake_server%.lua$")
  if dir == nil then
    return "."
  end
  if dir == "" then
    return "."
  end
  return (dir:gsub("[/\\]$", ""))
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns its stdout, or raises with its stderr and status.
-- (io.popen():close() gives no exit status on Lua 5.1/LuaJIT, so the command echoes it.)
local function run(command, what)
  local err_file = os.tmpname()
  local pipe = assert(io.popen(command .. " 2>" .. shell_quote(err_file) .. "; echo \"exit=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local f = io.open(err_file, "rb")
  local err_text = f and f:read("*a") or ""
  if f then
    f:close()
  end
  os.remove(err_file)
  local stdout, status = out:match("^(.-)exit=(%d+)%s*$")
  if status ~= "0" then
    error(("fake_server: %s failed (exit %s): %s%s"):format(what, tostring(status), stdout or out, err_text), 3)
  end
  return stdout
end

-- lua-cjson on Lua 5.3+ decodes every number as a float; give integral ones back
-- as integers so that specs can compare ids and counters naturally.
local to_integer = math.tointeger
local function integers(value)
  if type(value) == "table" then
    for k, v in pairs(value) do
      value[k] = integers(v)
    end
  elseif to_integer and type(value) == "number" then
    return to_integer(value) or value
  end
  return value
end

local function decode(text, what)
  local ok, value = pcall(cjson.decode, text)
  if not ok then
    error(("fake_server: %s returned invalid JSON: %s"):format(what, tostring(value)), 3)
  end
  return integers(value)
end

-- JSON text -> Lua value, integral numbers as integers on Lua 5.3+; raises on bad JSON.
function M.decode(text)
  return decode(text, "decode")
end

local Server = {}
Server.__index = Server

-- Percent-encodes one path segment (RFC 3986 unreserved characters kept).
local function segment(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

-- Raw HTTP request to the fake. path is sent byte for byte (luasocket would
-- otherwise re-escape it). opts: headers (table), body (string), auth (true adds
-- the API key and token headers), proxy_origin ("http://any.host:1234": send the
-- request target in absolute form, http://any.host:1234/path, as a client does
-- through a forward proxy). Returns status, body, headers (lower-case names).
function Server:http(method, path, opts)
  opts = opts or {}
  local headers = {}
  for name, value in pairs(opts.headers or {}) do
    headers[name] = value
  end
  if opts.auth then
    headers["X-Soracom-API-Key"] = headers["X-Soracom-API-Key"] or self.api_key
    headers["X-Soracom-Token"] = headers["X-Soracom-Token"] or self.token
  end
  local source
  if opts.body ~= nil then
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
    headers["Content-Length"] = tostring(#opts.body)
    source = ltn12.source.string(opts.body)
  end
  local chunks = {}
  local ok, status, response_headers = http.request({
    url = self.url .. path,
    uri = (opts.proxy_origin or "") .. path,
    method = method,
    headers = headers,
    source = source,
    sink = ltn12.sink.table(chunks),
  })
  if not ok then
    error(("fake_server: %s %s failed: %s"):format(method, path, tostring(status)), 2)
  end
  return status, table.concat(chunks), response_headers
end

-- A control call: JSON in, JSON (or nothing) out; raises unless the status is expected.
function Server:_control(method, path, value, expected_status)
  if self.stopped then
    error("fake_server: server already stopped", 3)
  end
  local body = value ~= nil and cjson.encode(value) or nil
  local status, text = self:http(method, path, { body = body })
  if status ~= expected_status then
    error(("fake_server: %s %s returned %s, expected %d: %s"):format(
      method, path, tostring(status), expected_status, text), 3)
  end
  if text ~= "" then
    return decode(text, method .. " " .. path)
  end
end

-- Clears all groups, SIMs, batch groups and jobs, recorded requests, faults (task faults
-- too), settings (credentials too),
-- issued tokens, stats and rate-limit windows; un-revokes a logged-out static pair.
function Server:reset()
  self:_control("POST", "/_fake/reset", nil, 204)
end

-- Requests recorded since the last reset (oldest first): method, uri (raw; the
-- absolute target for a proxied request), headers (lower-case names), body (string,
-- or nil when there was none), connection, connection_requests, scheme ("http", or
-- "https" on the TLS listener), proxied (true when the request line carried an
-- absolute-form target, as sent through a forward proxy).
function Server:requests()
  local list = self:_control("GET", "/_fake/requests", nil, 200)
  for _, request in ipairs(list) do
    if request.body == cjson.null then
      request.body = nil
    end
  end
  return list
end

-- The requests since the last reset, as "METHOD /uri" lines ("POST /v1/auth", ...);
-- with opts.query = false, the query strings left out.
function Server:trail(opts)
  local lines = {}
  for _, request in ipairs(self:requests()) do
    local uri = request.uri
    if opts and opts.query == false then uri = uri:gsub("%?.*", "") end
    lines[#lines + 1] = request.method .. " " .. uri
  end
  return lines
end

function Server:clear_requests()
  self:_control("DELETE", "/_fake/requests", nil, 204)
end

-- Merges settings (next_key_header, link_header, record_requests, api_key, token,
-- default_limit, max_limit, the login credentials auth_key_id, auth_key, email,
-- password, operator_id, user_name, sam_password, mfa_otp_code, token_lifetime;
-- latency and latency_jitter (seconds slept before answering each recorded request,
-- without blocking others); the rate limits
--   rate_limit = { limit = n, window = s, retry_after = true, apis = {
--     ["GET /v1/groups/{group_id}"] = { limit = n, window = s } } }  per operator and operation
--   auth_rate_limit = { limit = n, window = s, retry_after = true }  POST /v1/auth per caller address
-- (window in seconds, may be fractional; writing either starts its windows afresh);
-- the Batch API's pace, read when a job is created: batch_start_delay (seconds a job
-- stays pending, default 0.2) and batch_task_seconds (seconds per task, default 0.0005);
-- cjson.null restores a default). Returns all settings.
function Server:settings(changes)
  return self:_control("POST", "/_fake/settings", changes or {}, 200)
end

-- How many logins (POST /v1/auth) the request log holds since the last reset.
function Server:logins()
  local n = 0
  for _, request in ipairs(self:requests()) do
    if request.method == "POST" and request.uri == "/v1/auth" then n = n + 1 end
  end
  return n
end

-- Queues injected responses for the next /v1 requests (/v1/auth included), in order;
-- each fault serves `times` requests (default 1). A fault is
--   { status = 429, headers = {...}, body = "..." or table, delay = seconds (before
--     anything is sent; alone it delays a normal response), close = true (drop the
--     connection without a response), times = n }
-- or streams a body with a Content-Length for all of it (status defaults to 200, and
-- the body to `body` or else a generated valid JSON array of group-like objects):
--   huge_body_bytes = N      exactly N (>= 2) bytes of JSON array, sent in 64 KiB chunks
--   reset_after_bytes = N    only the first N bytes, then a TCP reset (curl: "Recv failure:
--                            Connection reset by peer"); default body 4096 bytes or 2 N
--   truncate = true | N      only the first half (or N bytes), then a clean close
--                            (curl: "transfer closed with ... bytes remaining")
--   trickle = { bytes_per_second = r, seconds = s }  headers at once, then the body (r * s
--                            bytes by default) at r bytes/s; never longer than 300 s, and
--                            the handler stops within a tick or two once the client is gone
--   slow_body = true         trickle = { bytes_per_second = 2, seconds = 300 }
-- Combinable: huge_body_bytes or trickle with reset_after_bytes or truncate, delay with any.
-- Invalid JSON: body = "{nope"; a text/plain 500: { status = 500, body = "oops",
-- headers = { ["Content-Type"] = "text/plain" } }.
function Server:faults(list)
  return self:_control("POST", "/_fake/faults", list, 200)
end

-- Traffic since the last reset or clear_stats():
--   { requests = n,        recorded (non-/_fake) requests received
--     in_flight = n,       of them, being handled right now (latency sleeps included)
--     max_in_flight = n,   the most handled at once
--     status_429 = n,      429s sent, by the rate limiter or injected faults
--     by_api = { ["GET /v1/groups/{group_id}"] = { requests = n, status_429 = n } } }
-- by_api counts requests routed to an operation (authenticated ones; every login),
-- keyed by method and path template; status_429 there is the rate limiter's.
function Server:stats()
  return self:_control("GET", "/_fake/stats", nil, 200)
end

-- Zeroes the counters of stats(); max_in_flight restarts from in_flight.
function Server:clear_stats()
  self:_control("DELETE", "/_fake/stats", nil, 204)
end

-- The rate-limit windows not yet ended, sorted by scope, subject, api:
--   { scope = "operator" | "address", subject = "OP0012345678" | "127.0.0.1",
--     api = "GET /v1/groups", limit = n, window = s (length), used = n (requests admitted),
--     remaining = n, status_429 = n (rejected in this window), resets_in = s (fractional),
--     seconds_before_refresh = n (what the header says now) }
function Server:rate_limit_windows()
  return self:_control("GET", "/_fake/ratelimit", nil, 200).windows
end

-- Forgets every rate-limit window: each budget is full again.
function Server:clear_rate_limit_windows()
  self:_control("DELETE", "/_fake/ratelimit", nil, 204)
end

-- Number of handlers still streaming a fault body (a trickle whose client has gone
-- drops to 0 within about a second).
function Server:active_streams()
  return self:_control("GET", "/_fake/streams", nil, 200).active
end

-- Tokens issued by POST /v1/auth since the last reset, oldest first: { apiKey, token,
-- kind ("authKey"|"root"|"sam"), userName (SAM only), operatorId (the setting operator_id
-- at login), tokenTimeoutSeconds, expires_in (seconds left, negative once expired), revoked }.
function Server:tokens()
  return self:_control("GET", "/_fake/tokens", nil, 200)
end

-- Expires every issued token now: their next use gets 401.
function Server:expire_tokens()
  self:_control("POST", "/_fake/tokens/expire", nil, 204)
end

-- Revokes every issued token (the static pair is left alone).
function Server:revoke_tokens()
  self:_control("POST", "/_fake/tokens/revoke", nil, 204)
end

-- Creates n groups with the given tags (and optional configuration); returns their ids in order.
function Server:seed_groups(n, tags, configuration)
  local spec = { count = n, tags = tags, configuration = configuration }
  return self:_control("POST", "/_fake/groups", spec, 201).groupIds
end

-- Adds SIMs to a group: n generated ones, or a list of field tables (imsi, msisdn, ...).
-- Returns their IMSIs and their SIM ids (as add_sims{group_id = group_id} does).
function Server:seed_subscribers(group_id, n_or_sims)
  local spec
  if type(n_or_sims) == "table" then
    spec = { sims = n_or_sims }
  else
    spec = { count = n_or_sims }
  end
  local path = "/_fake/groups/" .. segment(group_id) .. "/subscribers"
  local answer = self:_control("POST", path, spec, 201)
  return answer.imsis, answer.simIds
end

-- Creates SIMs (POST /_fake/sims). spec: count = n generated SIMs, or sims = a list of
-- field tables (imsi, simId or iccid, msisdn, ...); group_id = the group they start in
-- (nil: none); imsis = IMSIs per SIM (default 1; the first is the primary).
-- Returns simIds, imsis (primary IMSIs, same order) and all_imsis (per SIM, primary first).
function Server:add_sims(spec)
  local answer = self:_control("POST", "/_fake/sims", spec or {}, 201)
  return answer.simIds, answer.imsis, answer.allImsis
end

-- One SIM's state (GET /_fake/sims/{sim_id}): its Sim JSON as a table (groupId absent
-- while in no group), or nil when there is no such SIM.
function Server:sim(sim_id)
  if self.stopped then
    error("fake_server: server already stopped", 2)
  end
  local path = "/_fake/sims/" .. segment(sim_id)
  local status, text = self:http("GET", path)
  if status == 404 then
    return nil
  end
  if status ~= 200 then
    error(("fake_server: GET %s returned %s: %s"):format(path, tostring(status), text), 2)
  end
  return decode(text, "GET " .. path)
end

-- Every batch job of the live batch groups, oldest first, as GET .../jobs/{job_id}
-- answers it now (BatchJobResponse: jobId, batchGroupId, status, summary, ...).
function Server:batch_jobs()
  return self:_control("GET", "/_fake/batch/jobs", nil, 200)
end

-- Makes the batch tasks of the given SIMs fail (POST /_fake/batch/task_faults):
--   { sim_ids = {...}, status = 500, code = "FAK0500", message = "Injected task fault",
--     times = n (tasks failed per SIM; nil: every one until cleared) }
-- A failing task changes nothing; its response is {statusCode = status, body = {code,
-- message}}. Direct calls are not affected. Returns the faults now set, sorted by simId:
-- { {simId, status, code, message, times}, ... }.
function Server:batch_task_faults(spec)
  return self:_control("POST", "/_fake/batch/task_faults", spec, 200)
end

-- Removes every injected task failure.
function Server:clear_batch_task_faults()
  self:_control("DELETE", "/_fake/batch/task_faults", nil, 204)
end

-- Stops nginx and removes the state directory; safe to call twice.
function Server:stop()
  if self.stopped then
    return
  end
  self.stopped = true
  run(shell_quote(self.ctl) .. " stop " .. shell_quote(self.state_dir), "ctl stop")
  run("rm -rf " .. shell_quote(self.state_dir), "removing " .. self.state_dir)
end

-- Starts a fresh fake in a new temporary directory. opts.tls: also listen with HTTPS
-- (certificate for 127.0.0.1 and localhost from a CA made now): srv.tls_url
-- ("https://127.0.0.1:PORT"), srv.tls_endpoint, srv.ca_file, srv.other_ca_file.
-- opts.http2 (implies tls): that listener offers HTTP/2 as well as HTTP/1.1; srv.http2 = true.
function M.start(opts)
  opts = opts or {}
  local root = repo_root()
  local ctl = root .. "/spec/fake/ctl"
  local state_dir = run("mktemp -d \"${TMPDIR:-/tmp}/soracom-fake.XXXXXX\"", "mktemp"):match("^%s*(.-)%s*$")
  local tls = opts.tls or opts.http2
  local tls_flag = (opts.http2 and " --http2 ") or (tls and " --tls ") or " "
  local ok, out = pcall(run, shell_quote(ctl) .. " start" .. tls_flag .. shell_quote(state_dir), "ctl start")
  if not ok then
    os.execute("rm -rf " .. shell_quote(state_dir))
    error(out, 2)
  end
  local url = out:match("(http://127%.0%.0%.1:%d+)")
  if not url then
    error("fake_server: ctl start printed no URL: " .. out, 2)
  end
  local srv = {
    url = url,
    endpoint = url .. "/v1",
    api_key = "test-api-key",
    token = "test-token",
    ctl = ctl,
    state_dir = state_dir,
    stopped = false,
    http2 = opts.http2 and true or nil,
  }
  if tls then
    local tls_url = out:match("\n(https://127%.0%.0%.1:%d+)")
    if not tls_url then
      run(shell_quote(ctl) .. " stop " .. shell_quote(state_dir), "ctl stop")
      os.execute("rm -rf " .. shell_quote(state_dir))
      error("fake_server: ctl start --tls printed no HTTPS URL: " .. out, 2)
    end
    srv.tls_url = tls_url
    srv.tls_endpoint = tls_url .. "/v1"
    srv.ca_file = state_dir .. "/ca.pem"
    srv.other_ca_file = state_dir .. "/other_ca.pem"
  end
  for name, value in pairs(M.credentials) do
    srv[name] = value
  end
  return setmetatable(srv, Server)
end

return M
