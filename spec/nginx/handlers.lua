-- Handlers of the spec nginx (spec/nginx/nginx.conf.in): they run soracom.groups inside
-- ngx_lua and answer with JSON, for spec/nginx_spec.lua. Runs on nginx's LuaJIT.
--
-- POST /call with a JSON body:
--   { options = {...},         -- groups.new options (endpoint and credentials of the fake)
--     transport = "nginx",     -- default "nginx"; "curl" to compare, "auto" for the default
--     client = "name",         -- optional: keep this client in the worker and reuse it
--     count_sleeps = true,     -- optional: report the waits that went through ngx.sleep
--     calls = { { op = "get_group", args = { id } }, ... } }
-- answers { results = { {value=, next_key=} | {err = {fields}} | {raised = "..."} },
--           elapsed_ms = n, sleeps = { seconds, ... } }.
-- op is a client method, "groups"/"subscribers" (the iterators: value = every item), or
-- "reachable_strings" (value = every string reachable from the client's fields).
--
-- init_by_lua calls the library through the curl transport (and shows that the nginx
-- transport refuses that phase); GET /init reports what happened.

-- luacheck: globals ngx

local groups = require "soracom.groups"
local core = require "soracom.groups.core"
local reachable = require "spec.support.reachable"

local encode = core.encode_json

local handlers = {}

-- Clients kept in the worker between requests, by the name the spec gives.
local clients = {}

-- An error object as plain fields (it has a metatable and __tostring).
local function plain_error(err)
  if type(err) ~= "table" then return { raised = tostring(err) } end
  local fields = {}
  for name, value in pairs(err) do fields[name] = value end
  fields.text = tostring(err)
  return fields
end

local function run(client, call)
  local args = call.args or {}
  local op = call.op
  if op == "reachable_strings" then -- every string a dump of the client would show
    return { value = groups.array(reachable(client)) }
  end
  if op == "groups" or op == "subscribers" then
    local items = {}
    local ok, err = pcall(function()
      for item in client[op](client, unpack(args)) do items[#items + 1] = item end
    end)
    if not ok then return { err = plain_error(err), value = items } end
    return { value = groups.array(items) }
  end
  local method = client[op]
  if type(method) ~= "function" then return { raised = "no such method: " .. tostring(op) } end
  local ok, value, next_key = pcall(method, client, unpack(args))
  if not ok then return { raised = tostring(value) } end
  if value == nil then return { err = plain_error(next_key) } end
  return { value = value, next_key = next_key }
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(encode(value))
end

-- The client of a /call or /many request: kept in the worker under request.client,
-- or made for this request alone. Returns client, or nil and the reply to send.
local function client_for(request)
  local client = request.client and clients[request.client]
  if client then return client end
  local options = {}
  for name, value in pairs(request.options or {}) do options[name] = value end
  options.transport = request.transport or "nginx"
  if request.mfa_code then -- a function, counted in mfa_calls
    options.mfa_otp_code = function()
      handlers.mfa_calls = (handlers.mfa_calls or 0) + 1
      return request.mfa_code
    end
  end
  local ok, made, err = pcall(groups.new, options)
  if not ok then return nil, { results = { { raised = tostring(made) } } } end
  if made == nil then return nil, { results = { { err = plain_error(err) } } } end
  if request.client then clients[request.client] = made end
  return made
end

function handlers.call()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  local request = body and core.decode_json(body)
  if type(request) ~= "table" then return reply(400, { raised = "expected a JSON object" }) end

  local client, failure = client_for(request)
  if client == nil then return reply(200, failure) end

  local sleeps, real_sleep = {}, ngx.sleep
  if request.count_sleeps then
    ngx.sleep = function(seconds)
      sleeps[#sleeps + 1] = seconds
      return real_sleep(seconds)
    end
  end
  ngx.update_time()
  local started = ngx.now()
  local results = {}
  for i, call in ipairs(request.calls or {}) do results[i] = run(client, call) end
  ngx.update_time()
  local elapsed_ms = (ngx.now() - started) * 1000
  ngx.sleep = real_sleep
  if request.client == nil then client:close() end
  reply(200, { results = results, elapsed_ms = elapsed_ms, sleeps = sleeps })
end

-- POST /many: request.call ({op, args}) made `count` times at once on one client,
-- request.mode saying how: "threads" (a light thread each, as many requests of a
-- worker would), "map" (client:map with request.concurrency, fail_fast) or "start_map"
-- (the same through client:start_map, stepped here; cancelled request.cancel_after
-- seconds in, when given). An item
-- whose number is in request.raise_at raises instead; one in request.fail_at returns
-- nil, "failed i". With request.close_after, a light thread of this request closes the
-- client that many seconds in. Answers { results, summary, elapsed_ms, mfa_calls,
-- finished }: finished lists item numbers in the order they ended.
function handlers.many()
  ngx.req.read_body()
  local request = core.decode_json(ngx.req.get_body_data() or "")
  local client, failure = client_for(request)
  if client == nil then return reply(200, failure) end
  handlers.mfa_calls = 0
  local call, count = request.call, request.count
  local raise_at, fail_at = {}, {}
  for _, i in ipairs(request.raise_at or {}) do raise_at[i] = true end
  for _, i in ipairs(request.fail_at or {}) do fail_at[i] = true end
  local finished = {}
  local function item(i)
    if raise_at[i] then error("raised by " .. i) end
    if fail_at[i] then return nil, "failed " .. i end
    local result = run(client, call)
    finished[#finished + 1] = i
    if result.value ~= nil then return result.value end
    return nil, result.err or result.raised
  end
  ngx.update_time()
  local started = ngx.now()
  local answer = {}
  local closer = request.close_after and ngx.thread.spawn(function()
    ngx.sleep(request.close_after)
    client:close()
  end)
  if request.mode == "threads" then
    local threads = {}
    for i = 1, count do threads[i] = ngx.thread.spawn(item, i) end
    answer.results = {}
    for i = 1, count do
      local _, value, err = ngx.thread.wait(threads[i])
      answer.results[i] = { ok = value ~= nil, value = value, err = err }
    end
  else
    local items = {}
    for i = 1, count do items[i] = i end
    local results, summary
    local options = { concurrency = request.concurrency, fail_fast = request.fail_fast }
    if request.mode == "start_map" then
      -- Driven by this request: steps of 50 ms, cancelled request.cancel_after seconds in.
      local map_run = client:start_map(items, item, options)
      answer.steps = 0
      while not map_run:step(0.05) do
        answer.steps = answer.steps + 1
        ngx.update_time()
        if request.cancel_after and ngx.now() - started >= request.cancel_after then map_run:cancel() end
      end
      results, summary = map_run:results()
    else
      results, summary = client:map(items, item, options)
    end
    for _, result in ipairs(results) do
      if result.traceback then result.traceback = tostring(result.traceback) end
      if type(result.err) == "table" then result.err = plain_error(result.err) end
    end
    answer.results, answer.summary = results, summary
  end
  ngx.update_time()
  answer.elapsed_ms = (ngx.now() - started) * 1000
  if closer then ngx.thread.wait(closer) end
  answer.mfa_calls = handlers.mfa_calls
  answer.finished = groups.array(finished)
  if request.client == nil then client:close() end
  reply(200, answer)
end

-- GET /close?client=<name>: closes the client a /call or /many request kept under that
-- name (its requests in flight may be another request's).
function handlers.close()
  local client = clients[ngx.var.arg_client]
  if client then client:close() end
  reply(200, { closed = client ~= nil })
end

-- GET .../groups answered in three flushed pieces (so without Content-Length): two
-- groups whose ids name the connection, and a next key. Under .../big/ the first
-- piece is padded to 8 KiB.
function handlers.pieces()
  local id = ngx.var.connection
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Soracom-Next-Key"] = "conn-" .. id .. "-b"
  local pad = ngx.var.uri:find("/big/", 1, true) and string.rep(" ", 8192) or ""
  for _, piece in ipairs { '[{"groupId":"conn-' .. id .. '-a"},' .. pad,
    '{"groupId":"conn-' .. id .. '-b",', '"tags":{}}]' } do
    ngx.print(piece)
    ngx.flush(true)
  end
end

-- Canned responses, byte for byte, that nginx itself would never send: GET
-- /raw/<case>/... answers RAW[case] on the raw connection, then files under
-- "raw:<case>" whether the client sent another request on that connection.
local function chunk(text) return string.format("%x\r\n%s\r\n", #text, text) end
local function many(format, count, size)
  local lines = {}
  for i = 1, count do lines[i] = string.format(format, i, string.rep("a", size)) end
  return table.concat(lines)
end
-- Header (or trailer) lines "X-F<i>: aaa...\r\n" of exactly `total` bytes in all.
local function filler(total)
  local lines, left, i = {}, total, 0
  while left > 0 do
    i = i + 1
    local size = math.min(1000, left)
    if left - size > 0 and left - size < 20 then size = left - 20 end -- room for a last one
    local prefix = string.format("X-F%d: ", i)
    lines[i] = prefix .. string.rep("a", size - #prefix - 2) .. "\r\n"
    left = left - size
  end
  return table.concat(lines)
end
local OK_HEAD = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" -- 36 bytes
local CHUNKED_HEAD = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunk("[]") .. "0\r\n"
local LINK = "</v1/groups?last_evaluated_key=%s&limit=1>; rel=%s"
local RAW = {
  upgrade = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n",
  ["comma-key"] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    .. "X-Soracom-Next-Key: a,b\r\nX-Soracom-Next-Key: c\r\n\r\n[]",
  ["two-retry-after"] = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n"
    .. "Retry-After: 1\r\nRetry-After: 2\r\n\r\n",
  ["empty-retry-after"] = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n"
    .. "Retry-After: \r\nRetry-After: 5\r\nX-Soracom-Ratelimit-Seconds-Before-Refresh:  7 \r\n\r\n",
  ["long-header"] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Long: " .. string.rep("a", 150 * 1024)
    .. "\r\n\r\n[]",
  ["many-headers"] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" .. many("X-H%d: %s\r\n", 400, 1000)
    .. "\r\n[]",
  ["long-trailer"] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunk("[]")
    .. "0\r\nX-Trailer: " .. string.rep("a", 200 * 1024) .. "\r\n\r\n",
  ["many-trailers"] = CHUNKED_HEAD .. many("X-T%d: %s\r\n", 400, 1000) .. "\r\n",
  ["gzip-chunked"] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" .. chunk("[]")
    .. "0\r\n\r\n",
  -- at each limit of csrc/kept_headers.h, and one byte over it (CR LF counted)
  ["line-at-limit"] = OK_HEAD .. "X-Long: " .. string.rep("a", 102399 - 10) .. "\r\n\r\n[]",
  ["line-over-limit"] = OK_HEAD .. "X-Long: " .. string.rep("a", 102400 - 10) .. "\r\n\r\n[]",
  ["head-at-limit"] = OK_HEAD .. filler(307200 - 36 - 2) .. "\r\n[]",
  ["head-over-limit"] = OK_HEAD .. filler(307201 - 36 - 2) .. "\r\n[]",
  ["interim-head-over-limit"] = "HTTP/1.1 100 Continue\r\n" .. filler(1000) .. "\r\n" .. OK_HEAD
    .. filler(307201 - 23 - 1000 - 2 - 36 - 2) .. "\r\n[]",
  ["trailer-line-at-limit"] = CHUNKED_HEAD .. "X-T: " .. string.rep("a", 4095 - 7) .. "\r\n\r\n",
  ["trailer-line-over-limit"] = CHUNKED_HEAD .. "X-T: " .. string.rep("a", 4096 - 7) .. "\r\n\r\n",
  ["trailers-at-limit"] = CHUNKED_HEAD .. filler(307200) .. "\r\n", -- the empty line not counted
  ["trailers-over-limit"] = CHUNKED_HEAD .. filler(307201) .. "\r\n",
  -- how header lines are read
  ["two-links"] = OK_HEAD .. "Link: " .. LINK:format("a", "prev") .. "\r\nLink: " .. LINK:format("b", "next")
    .. "\r\n\r\n[]",
  ["odd-case"] = OK_HEAD .. "x-SORACOM-next-KEY: K1\r\nLINK: " .. LINK:format("L", "NEXT") .. "\r\n\r\n[]",
  ["folded"] = OK_HEAD .. "X-Soracom-Next-Key:\t a \t\r\n \t b  \r\n\r\n[]",
  ["folded-link"] = OK_HEAD .. "Link: </v1/groups?last_evaluated_key=x%20y>;\r\n\trel=next\r\n\r\n[]",
  ["empty-key"] = OK_HEAD .. "X-Soracom-Next-Key:\r\nX-Soracom-Next-Key: k\r\nLink: "
    .. LINK:format("L", "next") .. "\r\n\r\n[]",
  ["interim-key"] = "HTTP/1.1 100 Continue\r\nX-Soracom-Next-Key: from100\r\n\r\n" .. OK_HEAD .. "\r\n[]",
  ["space-in-name"] = OK_HEAD .. "X-Soracom-Next-Key : k\r\n\r\n[]",
  ["no-colon"] = OK_HEAD .. "Bad Line\r\nX-Soracom-Next-Key: k\r\n\r\n[]",
  ["lf-only"] = "HTTP/1.1 200 OK\nContent-Length: 2\nX-Soracom-Next-Key: lf\n\n[]",
}

function handlers.raw()
  local case = ngx.var.uri:match("^/raw/([^/]+)")
  ngx.req.read_body()
  local sock = assert(ngx.req.socket(true))
  local bytes = assert(RAW[case], case)
  assert(sock:send(bytes))
  sock:settimeout(300)
  local more = sock:receive(1)
  ngx.shared.soracom_spec:set("raw:" .. case, more and "reused" or "not reused")
end

-- GET /raw-result?case=<case>: what raw() filed.
function handlers.raw_result()
  ngx.say(ngx.shared.soracom_spec:get("raw:" .. tostring(ngx.var.arg_case)) or "nothing")
end

-- Runs in init_by_lua (the master, before the workers fork): cosockets do not exist
-- yet, so the curl transport makes the call.
function handlers.init()
  local endpoint = os.getenv("SORACOM_TEST_ENDPOINT")
  local report = { endpoint = endpoint, phase = ngx.get_phase() }
  if endpoint then
    local options = {
      endpoint = endpoint,
      auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"),
      auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"),
      retries = 0,
    }
    options.transport = "curl"
    local client = assert(groups.new(options))
    report.curl = run(client, { op = "list_groups" })
    report.operator_id = run(client, { op = "operator_id" })
    client:close()
    options.transport = "nginx"
    local nginx_client = assert(groups.new(options))
    report.nginx = run(nginx_client, { op = "list_groups" })
    nginx_client:close()
    options.transport = nil -- the default, "auto"
    local auto_client = assert(groups.new(options))
    report.auto = run(auto_client, { op = "list_groups" })
    auto_client:close()
  end
  ngx.shared.soracom_spec:set("init", encode(report))
end

-- Calls the fake with the default transport from whatever phase runs this (log,
-- header_filter, init_worker...), and files what happened under the phase's name.
function handlers.in_phase()
  local phase = ngx.get_phase()
  local report = { phase = phase }
  local client = assert(groups.new { endpoint = os.getenv("SORACOM_TEST_ENDPOINT"),
    auth_key_id = os.getenv("SORACOM_TEST_AUTH_KEY_ID"), auth_key = os.getenv("SORACOM_TEST_AUTH_KEY"),
    retries = 0 })
  local started = ngx.now()
  report.result = run(client, { op = "list_groups" })
  ngx.update_time()
  report.elapsed_ms = (ngx.now() - started) * 1000
  client:close()
  ngx.shared.soracom_spec:set("phase:" .. phase, encode(report))
end

-- GET /phases?name=log: the report filed by in_phase for that phase, or null.
function handlers.phase_result()
  ngx.header["Content-Type"] = "application/json"
  ngx.print(ngx.shared.soracom_spec:get("phase:" .. tostring(ngx.var.arg_name)) or "null")
end

function handlers.init_result()
  ngx.header["Content-Type"] = "application/json"
  ngx.print(ngx.shared.soracom_spec:get("init") or "null")
end

return handlers
