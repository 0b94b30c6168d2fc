-- The nginx transport: soracom.groups inside ngx_lua, over cosockets. A second nginx
-- (spec/nginx/) runs handlers that call the library against the fake Soracom server;
-- this spec drives it with luasocket from whatever Lua runs busted (nginx runs its own
-- LuaJIT, with the core from `scripts/build jit`).
local harness = require "spec.nginx.harness"
local groups = require "soracom.groups"
local core = require "soracom.groups.core"
local socket = require "socket"

local unpack = table.unpack or unpack

-- A result as the handlers report it: {value=, next_key=} or {err = fields + text},
-- through JSON as the nginx side's, so both are compared the same way.
local function as_reported(value, err_or_key)
  local result
  if value == nil then
    local fields = {}
    for name, field in pairs(err_or_key) do fields[name] = field end
    fields.text = tostring(err_or_key)
    result = { err = fields }
  else
    result = { value = value, next_key = err_or_key }
  end
  return assert(core.decode_json(core.encode_json(result)))
end

-- Replaces what differs between two groups made the same way: ids and times.
local function normalized(value, ids)
  if type(value) == "string" then
    for _, id in ipairs(ids) do value = value:gsub(id:gsub("%p", "%%%0"), "<id>") end
    return value
  end
  if type(value) ~= "table" then return value end
  local copy = {}
  for key, field in pairs(value) do
    if key == "createdTime" or key == "lastModifiedTime" or key == "createdAt"
      or key == "lastModifiedAt" then
      copy[key] = "<time>"
    elseif key == "groupId" then
      copy[key] = "<id>"
    else
      copy[key] = normalized(field, ids)
    end
  end
  return copy
end

local function ids_in(results)
  local ids = {}
  for _, result in ipairs(results) do
    if type(result.value) == "table" and type(result.value.groupId) == "string" then
      ids[#ids + 1] = result.value.groupId
    end
  end
  return ids
end

describe("the nginx transport", function()
  local srv, nginx, init_ids

  setup(function()
    srv, nginx = harness.start_with_fake({ tls = true }, nil, function(fake_srv)
      init_ids = fake_srv:seed_groups(2, { env = "init" }) -- for the init_by_lua call
    end)
  end)
  teardown(function() harness.stop_both(srv, nginx) end)
  before_each(function() srv:reset() end)

  local function options(extra)
    local result = { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token }
    for name, value in pairs(extra or {}) do result[name] = value end
    return result
  end

  -- Calls in one content handler of the spec nginx; returns its results (and answer).
  local function in_nginx(calls, extra, request)
    request = request or {}
    request.options = options(extra)
    request.calls = calls
    local answer = nginx:call(request, request.location)
    return answer.results, answer
  end

  -- The same calls through the curl transport, here in busted's Lua.
  local function through_curl(calls, extra)
    local client = assert(groups.new(options(extra)))
    local results = {}
    for i, call in ipairs(calls) do
      local args = call.args or {}
      results[i] = as_reported(client[call.op](client, unpack(args)))
    end
    client:close()
    return results
  end

  describe("the ten operations", function()
    it("read the same tables, next keys and 404 errors as the curl transport", function()
      local id = srv:seed_groups(3, { env = "ci" }, { SoracomAir = { metadata = { enabled = true } } })[1]
      srv:seed_subscribers(id, 3)
      local calls = {
        { op = "list_groups", args = { { tag_name = "env", tag_value = "ci", limit = 2 } } },
        { op = "get_group", args = { id } },
        { op = "list_subscribers", args = { id, { limit = 2 } } },
        { op = "get_group", args = { "no-such-group" } },
      }
      local from_nginx = in_nginx(calls)
      assert.are.same(through_curl(calls), from_nginx)
      assert.are.equal(2, #from_nginx[1].value)
      assert.is_string(from_nginx[1].next_key)
      assert.are.equal(2, #from_nginx[3].value)
      assert.are.equal(404, from_nginx[4].err.status)
      assert.are.equal("COM0004", from_nginx[4].err.code)
      assert.are.equal("http", from_nginx[4].err.kind)
    end)

    it("change groups as the curl transport does, each on its own group", function()
      local twins = srv:seed_groups(2, { name = "twin" })
      local function script(id)
        return {
          { op = "create_group", args = { { tags = { name = "made" },
            configuration = { SoracomAir = { metadata = { enabled = true } } } } } },
          { op = "put_config", args = { id, "SoracomAir",
            { { key = "useCustomDns", value = true }, { key = "dnsServers", value = { "8.8.8.8" } } } } },
          { op = "put_tags", args = { id, { env = "prod", team = "iot" } } },
          { op = "delete_tag", args = { id, "team" } },
          { op = "delete_config", args = { id, "SoracomAir", "useCustomDns" } },
          { op = "get_group", args = { id } },
          { op = "delete_config_namespace", args = { id, "SoracomAir" } },
          { op = "delete_group", args = { id } },
          { op = "get_group", args = { id } },
          { op = "delete_tag", args = { id, "env" } },
        }
      end
      local from_nginx = in_nginx(script(twins[1]))
      local from_curl = through_curl(script(twins[2]))
      for i, result in ipairs(from_nginx) do
        assert.is_nil(result.raised)
        assert.are.same(normalized(from_curl[i], { twins[2], unpack(ids_in(from_curl)) }),
          normalized(result, { twins[1], unpack(ids_in(from_nginx)) }), "call " .. i)
      end
      assert.are.equal("made", from_nginx[1].value.tags.name)
      assert.are.same({ "8.8.8.8" }, from_nginx[6].value.configuration.SoracomAir.dnsServers)
      assert.are.equal("prod", from_nginx[6].value.tags.env)
      assert.is_nil(from_nginx[6].value.tags.team)
      assert.is_true(from_nginx[8].value)
      assert.are.equal(404, from_nginx[9].err.status)
    end)
  end)

  describe("SIM membership", function()
    it("moves SIMs one by one, one call each and as a Batch API job, polling with ngx.sleep", function()
      srv:settings { batch_start_delay = 0.02, batch_task_seconds = 0.001 }
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 6 }
      local results = in_nginx {
        { op = "set_sim_group", args = { ids[1], group } },
        { op = "unset_sim_group", args = { ids[1] } },
        { op = "move_sims", args = { { ids[1], ids[2], ids[3] }, group, { batch = false, concurrency = 3 } } },
        { op = "move_sims", args = { { ids[4], ids[5], ids[6] }, group, { batch = true } } },
      }
      assert.are.equal(group, results[1].value.groupId)
      assert.is_nil(results[2].value.groupId)
      for i, mode in pairs { [3] = "calls", [4] = "batch" } do
        local summary = results[i].next_key
        assert.are.equal(mode, summary.mode)
        assert.are.equal(3, summary.moved)
        assert.are.equal(0, summary.failed)
      end
      for _, id in ipairs(ids) do assert.are.equal(group, srv:sim(id).groupId) end
    end)
  end)

  describe("inside the worker", function()
    -- A request to the spec nginx left waiting on its socket (HTTP/1.0: the answer
    -- ends when nginx closes).
    local function start_raw(request)
      local body = core.encode_json(request)
      local connection = assert(socket.tcp())
      connection:settimeout(10)
      assert(connection:connect("127.0.0.1", nginx.port))
      assert(connection:send("POST /call HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        .. "Content-Length: " .. #body .. "\r\n\r\n" .. body))
      return connection
    end

    local function finish_raw(connection)
      local text = assert(connection:receive("*a"))
      connection:close()
      assert.matches("^HTTP/1%.1 200", text)
      return assert(core.decode_json(text:match("\r\n\r\n(.*)$")))
    end

    for _, transport in ipairs { "nginx", "auto" } do
      it("does not block with transport " .. transport .. ": another request is served while one waits",
          function()
        srv:reset()
        local id = srv:seed_groups(1)[1]
        srv:faults { { delay = 2 } }
        local started = socket.gettime()
        local slow = start_raw { options = options(), transport = transport, calls = { { op = "list_groups" } } }
        local deadline = started + 1.5
        while #srv:requests() == 0 and socket.gettime() < deadline do socket.sleep(0.01) end
        assert.are.equal(1, #srv:requests()) -- the slow call is waiting on the fake now

        local before = socket.gettime()
        assert.are.equal(200, (nginx:get("/ping")))
        local results = in_nginx { { op = "get_group", args = { id } } }
        local quick = socket.gettime() - before
        assert.are.equal(id, results[1].value.groupId)
        assert.is_true(quick < 0.1, ("answered in %.3f s"):format(quick))

        local answer = finish_raw(slow)
        assert.are.equal(id, answer.results[1].value[1].groupId)
        assert.is_true(answer.elapsed_ms >= 1900, "the slow call took " .. answer.elapsed_ms .. " ms")
        assert.is_true(socket.gettime() - started < 3)
      end)
    end

    it("keeps connections alive across calls and clients, with well-formed requests", function()
      local id = srv:seed_groups(1)[1]
      in_nginx {
        { op = "get_group", args = { id } },
        { op = "put_tags", args = { id, { env = "prod" } } },
        { op = "list_groups" },
        { op = "delete_tag", args = { id, "env" } },
        { op = "get_group", args = { id } },
      }
      in_nginx { { op = "get_group", args = { id } } } -- another client, the same pool
      local requests = srv:requests()
      assert.are.equal(6, #requests)
      local connections, distinct = {}, 0
      for _, request in ipairs(requests) do
        if not connections[request.connection] then
          connections[request.connection] = true
          distinct = distinct + 1
        end
        assert.are.equal("soracom-groups/" .. groups.VERSION, request.headers["user-agent"])
        assert.are.equal(srv.url:match("//(.*)$"), request.headers.host)
        assert.are.equal("application/json", request.headers.accept)
      end
      assert.is_true(distinct < #requests, distinct .. " connections for " .. #requests .. " requests")
      assert.is_true(distinct <= 2)
      local put = requests[2]
      assert.are.equal("PUT", put.method)
      assert.are.equal("application/json", put.headers["content-type"])
      assert.are.equal(tostring(#put.body), put.headers["content-length"])
      assert.is_nil(requests[1].headers["content-length"])
      assert.is_nil(requests[1].headers["content-type"])
    end)
  end)

  describe("response framing", function()
    -- The spec nginx answers GET <prefix>/v1/groups itself, in flushed pieces.
    local function pieces(prefix, extra)
      extra = extra or {}
      extra.endpoint, extra.retries = nginx.url .. prefix .. "/v1", 0
      return in_nginx({ { op = "list_groups" }, { op = "list_groups" } }, extra)
    end

    it("reads a chunked body and keeps the connection", function()
      local results = pieces("/chunked")
      local first = results[1].value[1].groupId:match("^conn%-(%d+)")
      assert.are.same({ { groupId = "conn-" .. first .. "-a" },
        { groupId = "conn-" .. first .. "-b", tags = {} } }, results[1].value)
      assert.are.equal("conn-" .. first .. "-b", results[1].next_key)
      assert.are.same(results[1], results[2]) -- the same connection again
    end)

    it("reads a body delimited by the end of the connection, and does not reuse it", function()
      local results = pieces("/until-close")
      assert.are.equal(2, #results[1].value)
      assert.is_string(results[1].next_key)
      assert.are_not.equal(results[1].next_key, results[2].next_key)
    end)

    it("stops at max_body_size in both", function()
      for _, prefix in ipairs { "/chunked/big", "/until-close/big" } do
        local results = in_nginx({ { op = "list_groups" } },
          { endpoint = nginx.url .. prefix .. "/v1", retries = 0, max_body_size = 4096 })
        assert.are.equal(23, results[1].err.curl_code, prefix)
        assert.matches("larger than max_body_size %(4096 bytes%)", results[1].err.message)
      end
    end)
  end)

  describe("the client's loop on cosockets", function()
    it("retries a 503, waiting through ngx.sleep", function()
      srv:faults { { status = 503 } }
      local results, answer = in_nginx({ { op = "list_groups" } }, { retry_base_delay = 0.2 },
        { count_sleeps = true })
      assert.are.same({}, results[1].value)
      assert.are.equal(1, #answer.sleeps)
      assert.is_true(answer.sleeps[1] >= 0.1 and answer.sleeps[1] <= 0.2)
      assert.are.equal(2, #srv:requests())
    end)

    it("logs in with an auth key, and again after the tokens are revoked", function()
      local id = srv:seed_groups(1)[1]
      local credentials = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id,
        auth_key = srv.auth_key }
      local request = { client = "relogin" } -- the same client, kept in the worker
      local function call()
        request.options = credentials
        request.calls = { { op = "get_group", args = { id } } }
        return nginx:call(request).results[1]
      end
      assert.are.equal(id, call().value.groupId)
      srv:revoke_tokens()
      assert.are.equal(id, call().value.groupId)
      local tokens = srv:tokens()
      assert.are.equal(2, #tokens)
      assert.is_true(tokens[1].revoked)
      local paths = {}
      for i, r in ipairs(srv:requests()) do paths[i] = r.method .. " " .. r.uri end
      local group_path = "GET /v1/groups/" .. id
      assert.are.same({ "POST /v1/auth", group_path, group_path, "POST /v1/auth", group_path }, paths)
    end)

    it("keeps credentials and tokens out of the client's fields with the default transport", function()
      local credentials = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key }
      local answer = nginx:call { options = credentials, transport = "auto",
        calls = { { op = "list_groups" }, { op = "reachable_strings" } } }
      assert.are.same({}, answer.results[1].value)
      local issued = srv:tokens()[1]
      local strings = answer.results[2].value
      assert.is_true(#strings > 10) -- the walk did see the client's tables
      for _, text in ipairs(strings) do
        for _, secret in ipairs { srv.auth_key, issued.apiKey, issued.token } do
          assert.is_nil(text:find(secret, 1, true), text)
        end
      end
    end)

    it("iterates across pages", function()
      local ids = srv:seed_groups(5, { env = "pages" })
      local results = in_nginx { { op = "groups", args = { { limit = 2 } } } }
      local seen = {}
      for i, group in ipairs(results[1].value) do seen[i] = group.groupId end
      assert.are.same(ids, seen)
      assert.are.equal(3, #srv:requests())
    end)

    it("gives the curl transport's error kinds and curl codes for broken responses", function()
      local cases = {
        { name = "refused", extra = { endpoint = "http://127.0.0.1:1/v1" }, code = 7 },
        { name = "empty reply", faults = { { close = true, times = 10 } }, code = 52 },
        { name = "truncated", faults = { { truncate = true } }, code = 18 },
        { name = "reset", faults = { { reset_after_bytes = 100 } }, code = 56 },
        { name = "timeout", faults = { { slow_body = true } }, extra = { timeout = 0.5 }, code = 28 },
        { name = "too large", faults = { { huge_body_bytes = 3 * 1024 * 1024 } },
          extra = { max_body_size = 1024 * 1024 }, code = 23 },
        { name = "not JSON", faults = { { status = 200, body = "{nope" } }, kind = "decode" },
        { name = "text 500", faults = { { status = 500, body = "oops",
          headers = { ["Content-Type"] = "text/plain" } } }, kind = "http" },
      }
      for _, case in ipairs(cases) do
        local extra = { retries = 0 }
        for name, value in pairs(case.extra or {}) do extra[name] = value end
        local errors = {}
        for _, where in ipairs { "nginx", "curl" } do
          srv:reset()
          if case.faults then srv:faults(case.faults) end
          local started = socket.gettime()
          local result = (where == "nginx" and in_nginx or through_curl)({ { op = "list_groups" } }, extra)[1]
          assert.is_true(socket.gettime() - started < 2, case.name .. " took too long")
          errors[where] = assert(result.err, case.name .. ": no error through " .. where)
        end
        local nginx_err, curl_err = errors.nginx, errors.curl
        assert.are.equal(case.kind or "network", nginx_err.kind, case.name)
        assert.are.equal(curl_err.kind, nginx_err.kind, case.name)
        assert.are.equal(curl_err.curl_code, nginx_err.curl_code, case.name)
        assert.are.equal(case.code, nginx_err.curl_code, case.name)
        assert.are.equal(curl_err.status, nginx_err.status, case.name)
        if case.code == 23 or case.kind then
          assert.are.same(curl_err, nginx_err, case.name)
        end
      end
    end)
  end)

  describe("responses nginx itself would not send", function()
    -- One call through each transport to /raw/<case>; returns both results and, when
    -- asked, whether each left its connection for reuse.
    local function both(case, check_reuse)
      local endpoint = nginx.url .. "/raw/" .. case
      local results, reuse = {}, {}
      for _, where in ipairs { "nginx", "curl" } do
        local calls = { { op = "list_groups" } }
        local extra = { endpoint = endpoint, retries = 0 }
        results[where] = (where == "nginx" and in_nginx or through_curl)(calls, extra)[1]
        if check_reuse then
          socket.sleep(0.35) -- raw() waits 0.3 s for a second request on the connection
          reuse[where] = select(2, nginx:get("/raw-result?case=" .. case))
        end
      end
      return results, reuse
    end

    -- Both transports refuse the response with the same error, and drop the connection.
    local function same_error(case, code, message)
      local results, reuse = both(case, true)
      for _, where in ipairs { "nginx", "curl" } do
        local err = assert(results[where].err, case .. ": no error through " .. where)
        assert.are.equal("network", err.kind, where)
        assert.are.equal(code, err.curl_code, where .. ": " .. tostring(err.message))
        assert.are.equal(message, err.message, where)
        assert.are.equal("not reused\n", reuse[where], where)
      end
    end

    -- Both transports read the response as the same page: value and next key.
    local function same_page(case, next_key)
      local results = both(case)
      for _, where in ipairs { "nginx", "curl" } do
        local result = results[where]
        assert.is_nil(result.err, case .. " through " .. where .. ": "
          .. tostring(result.err and result.err.message))
        assert.are.same({}, result.value, where)
        assert.are.equal(next_key, result.next_key, case .. " through " .. where)
      end
    end

    it("a 101 nobody asked for: no response, and the connection is not reused", function()
      same_error("upgrade", 52, "empty reply from server (101 Switching Protocols)")
    end)

    it("a transfer coding other than chunked is refused, not misread", function()
      same_error("gzip-chunked", 61, "unsupported transfer encoding: gzip, chunked")
    end)

    it("a header line over 100 KiB, or headers over 300 KiB, are refused as libcurl does", function()
      same_error("long-header", 27, "a response header line is longer than 102399 bytes")
      same_error("many-headers", 56, "the response headers are larger than 307200 bytes")
    end)

    it("a trailer line over 4 KiB, or trailers over 300 KiB, are refused", function()
      same_error("long-trailer", 56, "a trailer line is longer than 4095 bytes")
      same_error("many-trailers", 56, "the response trailers are larger than 307200 bytes")
    end)

    it("refuse one byte over each limit, and not at it (CR LF and empty lines counted)", function()
      same_page("line-at-limit", nil)
      same_error("line-over-limit", 27, "a response header line is longer than 102399 bytes")
      same_page("head-at-limit", nil)
      same_error("head-over-limit", 56, "the response headers are larger than 307200 bytes")
      same_error("interim-head-over-limit", 56, "the response headers are larger than 307200 bytes")
      same_page("trailer-line-at-limit", nil)
      same_error("trailer-line-over-limit", 56, "a trailer line is longer than 4095 bytes")
      same_page("trailers-at-limit", nil)
      same_error("trailers-over-limit", 56, "the response trailers are larger than 307200 bytes")
    end)

    it("the first of repeated headers counts, commas and all", function()
      same_page("comma-key", "a,b")
      for _, case in ipairs { "two-retry-after", "empty-retry-after" } do
        local results = both(case)
        for _, where in ipairs { "nginx", "curl" } do
          assert.are.equal(429, results[where].err.status, where)
        end
        -- the first Retry-After; when it is empty, Seconds-Before-Refresh
        assert.are.equal(case == "two-retry-after" and 1 or 7, results.nginx.err.retry_after, case)
        assert.are.equal(case == "two-retry-after" and 1 or 7, results.curl.err.retry_after, case)
      end
    end)

    it("read header lines alike: names in any case, every Link, folding, odd whitespace", function()
      same_page("two-links", "b")
      same_page("odd-case", "K1")
      same_page("folded", "a b")
      same_page("folded-link", "x y")
      same_page("empty-key", "L")
      same_page("interim-key", nil) -- the 100 Continue's headers are not the response's
      same_page("space-in-name", nil)
      same_page("lf-only", "lf")
      same_error("no-colon", 8, "Header without colon")
    end)
  end)

  describe("in init_by_lua", function()
    it("calls through curl, and the nginx transport says it needs cosockets", function()
      local status, body = nginx:get("/init")
      assert.are.equal(200, status)
      local report = assert(core.decode_json(body))
      assert.are.equal("init", report.phase)
      assert.is_nil(report.curl.err)
      local seen = {}
      for i, group in ipairs(report.curl.value) do seen[i] = group.groupId end
      assert.are.same(init_ids, seen)
      assert.are.equal(srv.operator_id, report.operator_id.value)
      assert.matches("needs cosockets.*init phase", report.nginx.raised)
      -- the default transport, there, is curl
      assert.is_nil(report.auto.err)
      assert.are.equal(#init_ids, #report.auto.value)
    end)
  end)

  describe("in phases without cosockets", function()
    local function report(phase)
      local deadline = socket.gettime() + 3
      while socket.gettime() < deadline do
        local status, body = nginx:get("/phases?name=" .. phase)
        assert.are.equal(200, status)
        local value = assert(core.decode_json(body))
        if value ~= core.null then return value end
        socket.sleep(0.02)
      end
      error("no report from the " .. phase .. " phase")
    end

    for _, case in ipairs { { "log", "/in-log" }, { "header_filter", "/in-header-filter" },
      { "init_worker" } } do
      it("the default transport refuses to block the worker in " .. case[1] .. ", pointing to ngx.timer.at",
          function()
        srv:reset()
        if case[2] then
          local status, body = nginx:get(case[2])
          assert.are.equal(200, status)
          assert.are.equal("served\n", body)
        end
        local filed = report(case[1])
        assert.matches("no cosockets in the " .. case[1] .. " phase", filed.result.raised, 1, true)
        assert.matches("ngx.timer.at", filed.result.raised, 1, true)
        if case[2] then assert.are.same({}, srv:requests()) end -- nothing was sent
      end)
    end
  end)

  describe("HTTPS", function()
    local function tls_call(location, extra)
      extra = extra or {}
      extra.endpoint, extra.retries = srv.tls_endpoint, 0
      return in_nginx({ { op = "list_groups" } }, extra, { location = location })[1]
    end

    -- Idle connections are pooled per worker, whatever the location: a connection
    -- verified under /call would be reused by /call-other-ca, so that one goes first.
    it("fails with a network error when lua_ssl_trusted_certificate is another CA", function()
      local result = tls_call("/call-other-ca")
      assert.are.equal("network", result.err.kind)
      assert.are.equal(60, result.err.curl_code)
      assert.are.equal(1, result.err.attempts)
      -- insecure = true skips the checks; its connections never serve verified calls
      assert.are.same({}, tls_call("/call-other-ca", { insecure = true }).value)
      assert.are.equal(60, tls_call("/call-other-ca").err.curl_code)
    end)

    it("works when lua_ssl_trusted_certificate is the fake's CA", function()
      assert.are.same({}, tls_call("/call").value)
      local requests = srv:requests()
      assert.are.equal("https", requests[#requests].scheme)
    end)

    it("refuses ca_file, ca_path and proxy, which nginx cannot apply per socket", function()
      for _, name in ipairs { "ca_file", "ca_path", "proxy" } do
        local result = in_nginx({ { op = "list_groups" } }, { [name] = srv.ca_file })[1]
        assert.matches(name .. " is not supported by the nginx transport", result.raised)
      end
      assert.are.same({}, srv:requests())
    end)
  end)
end)
