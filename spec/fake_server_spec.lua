-- luacheck: std +busted
-- Self-test of the fake Soracom API (spec/fake) over real HTTP with luasocket.
local fake = require "spec.support.fake_server"
local cjson = require "cjson"
local socket = require "socket"

local decode = fake.decode

describe("fake Soracom API", function()
  local srv

  setup(function()
    srv = fake.start()
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
  end)

  before_each(function()
    srv:reset()
  end)

  -- Authenticated JSON call; returns status, decoded body (or nil), raw body, headers.
  local function call(method, path, value)
    local body = value
    if type(value) == "table" then
      body = cjson.encode(value)
    end
    local status, text, headers = srv:http(method, path, { auth = true, body = body })
    local decoded
    if text ~= "" then
      decoded = decode(text)
    end
    return status, decoded, text, headers
  end

  -- Raw HTTP/1.1 over luasocket, in two halves so that many requests can be in flight
  -- at once: send_request connects (from opts.source, a loopback address, when given),
  -- sends and returns the connection; read_response reads one response from it.
  -- opts: auth (the static pair), headers, body, source.
  local function send_request(method, path, opts)
    opts = opts or {}
    local host, port = srv.url:match("^http://([^:/]+):(%d+)$")
    local conn = assert(socket.tcp())
    conn:settimeout(10)
    if opts.source then
      assert(conn:bind(opts.source, 0))
    end
    assert(conn:connect(host, tonumber(port)))
    local lines = { ("%s %s HTTP/1.1"):format(method, path), "Host: 127.0.0.1" }
    if opts.auth then
      lines[#lines + 1] = "X-Soracom-API-Key: " .. srv.api_key
      lines[#lines + 1] = "X-Soracom-Token: " .. srv.token
    end
    for name, value in pairs(opts.headers or {}) do
      lines[#lines + 1] = name .. ": " .. value
    end
    local body = opts.body or ""
    lines[#lines + 1] = "Content-Length: " .. #body
    assert(conn:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
    return conn
  end

  -- Returns status, headers (lower-case names), body of the next response on conn.
  local function read_response(conn)
    local status_line = assert(conn:receive("*l"))
    local headers = {}
    while true do
      local line = assert(conn:receive("*l"))
      if line == "" then
        break
      end
      local name, value = line:match("^([^:]+):%s*(.*)$")
      headers[name:lower()] = value
    end
    local length = tonumber(headers["content-length"] or 0)
    local body = length > 0 and assert(conn:receive(length)) or ""
    return tonumber(status_line:match("^HTTP/1%.1 (%d+)")), headers, body
  end

  local function create_group(value)
    local status, group = call("POST", "/v1/groups", value or {})
    assert.are.equal(201, status)
    return group
  end

  local function ids_of(groups)
    local ids = {}
    for i, group in ipairs(groups) do
      ids[i] = group.groupId
    end
    return ids
  end

  describe("server lifecycle", function()
    it("exposes its URLs and credentials", function()
      assert.matches("^http://127%.0%.0%.1:%d+$", srv.url)
      assert.are.equal(srv.url .. "/v1", srv.endpoint)
      assert.are.equal("test-api-key", srv.api_key)
      assert.are.equal("test-token", srv.token)
    end)

    it("stops idempotently and leaves no nginx behind", function()
      local other = fake.start()
      local pid_file = other.state_dir .. "/nginx.pid"
      local f = assert(io.open(pid_file))
      local pid = f:read("*l")
      f:close()
      other:stop()
      other:stop()
      assert.is_nil(io.open(pid_file))
      -- Gone, or a zombie waiting for PID 1 to reap it.
      local stat = io.open("/proc/" .. pid .. "/stat")
      local state = stat and stat:read("*a"):match("%) (%a)")
      if stat then
        stat:close()
      end
      assert.is_true(state == nil or state == "Z" or state == "X")
    end)
  end)

  describe("groups", function()
    it("creates and gets a group with tags and configuration", function()
      local created = create_group({
        tags = { name = "fleet/1" },
        configuration = { SoracomAir = { metadata = { enabled = true } } },
      })
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", created.groupId)
      assert.are.equal(36, #created.groupId)
      assert.are.equal("OP0012345678", created.operatorId)
      assert.are.same({ name = "fleet/1" }, created.tags)
      assert.are.same({ SoracomAir = { metadata = { enabled = true } } }, created.configuration)
      assert.are.equal(created.createdTime, created.lastModifiedTime)

      local status, fetched = call("GET", "/v1/groups/" .. created.groupId)
      assert.are.equal(200, status)
      assert.are.same(created, fetched)
    end)

    it("writes timestamps as 13-digit integers and empty objects as {}", function()
      local _, _, text = call("POST", "/v1/groups", "")
      assert.matches('"createdTime":%d%d%d%d%d%d%d%d%d%d%d%d%d[,}]', text)
      assert.matches('"lastModifiedTime":%d%d%d%d%d%d%d%d%d%d%d%d%d[,}]', text)
      assert.is_nil(text:find("e+", 1, true))
      assert.matches('"configuration":{}', text, 1, true)
      assert.matches('"tags":{}', text, 1, true)
    end)

    it("keeps empty arrays, big integers and slashes in configuration values", function()
      local group = create_group()
      local _, _, text = call("PUT", "/v1/groups/" .. group.groupId .. "/configuration/SoracomAir",
        '[{"key":"dnsServers","value":[]},{"key":"big","value":9007199254740991},{"key":"u","value":"a/b"}]')
      assert.matches('"dnsServers":[]', text, 1, true)
      assert.matches('"big":9007199254740991', text, 1, true)
      assert.matches('"u":"a/b"', text, 1, true)
    end)

    it("deletes a group (204, empty body), then 404s it", function()
      local group = create_group()
      local status, _, text = call("DELETE", "/v1/groups/" .. group.groupId)
      assert.are.equal(204, status)
      assert.are.equal("", text)
      local status2, err, _, headers = call("GET", "/v1/groups/" .. group.groupId)
      assert.are.equal(404, status2)
      assert.are.equal("COM0004", err.code)
      assert.matches("application/json", headers["content-type"], 1, true)
    end)

    it("rejects invalid bodies with 400", function()
      assert.are.equal(400, (call("POST", "/v1/groups", "{not json")))
      assert.are.equal(400, (call("POST", "/v1/groups", '{"tags":{"a":1}}')))
      assert.are.equal(400, (call("POST", "/v1/groups", '{"configuration":{"Nope":{}}}')))
      assert.are.equal(400, (call("POST", "/v1/groups", "[]")))
    end)

    it("bumps lastModifiedTime on every change", function()
      local group = create_group()
      local _, updated = call("PUT", "/v1/groups/" .. group.groupId .. "/tags", { { tagName = "a", tagValue = "b" } })
      assert.is_true(updated.lastModifiedTime > group.lastModifiedTime)
      assert.are.equal(group.createdTime, updated.createdTime)
    end)
  end)

  describe("listing and paging", function()
    local function fetch_all(path)
      local seen, pages = {}, 0
      while path do
        local status, page, _, headers = call("GET", path)
        assert.are.equal(200, status)
        pages = pages + 1
        for _, group in ipairs(page) do
          seen[#seen + 1] = group.groupId
        end
        local link = headers["link"]
        path = link and link:match("^<(.-)>; rel=next$")
      end
      return seen, pages
    end

    it("lists in creation order with limit, X-Soracom-Next-Key and Link", function()
      local ids = srv:seed_groups(5)
      local status, page, _, headers = call("GET", "/v1/groups?limit=2")
      assert.are.equal(200, status)
      assert.are.same({ ids[1], ids[2] }, ids_of(page))
      assert.are.equal(ids[2], headers["x-soracom-next-key"])
      assert.are.equal("</v1/groups?last_evaluated_key=" .. ids[2] .. "&limit=2>; rel=next", headers["link"])

      local _, last_page, _, last_headers = call("GET", "/v1/groups?limit=2&last_evaluated_key=" .. ids[4])
      assert.are.same({ ids[5] }, ids_of(last_page))
      assert.is_nil(last_headers["x-soracom-next-key"])
      assert.is_nil(last_headers["link"])

      local seen, pages = fetch_all("/v1/groups?limit=2")
      assert.are.same(ids, seen)
      assert.are.equal(3, pages)
    end)

    it("sends no next headers when the page holds the rest exactly", function()
      local ids = srv:seed_groups(2)
      local _, page, _, headers = call("GET", "/v1/groups?limit=2")
      assert.are.same(ids, ids_of(page))
      assert.is_nil(headers["x-soracom-next-key"])
    end)

    it("lists an empty set as []", function()
      local _, _, text = call("GET", "/v1/groups")
      assert.are.equal("[]", text)
    end)

    it("can switch off either paging header", function()
      srv:seed_groups(3)
      srv:settings({ next_key_header = false })
      local _, _, _, headers = call("GET", "/v1/groups?limit=1")
      assert.is_nil(headers["x-soracom-next-key"])
      assert.is_string(headers["link"])
      srv:settings({ next_key_header = true, link_header = false })
      _, _, _, headers = call("GET", "/v1/groups?limit=1")
      assert.is_string(headers["x-soracom-next-key"])
      assert.is_nil(headers["link"])
    end)

    it("filters by tag, exact and prefix, and keeps the filter in Link", function()
      local prod = srv:seed_groups(3, { env = "prod eu" })
      local other = srv:seed_groups(1, { env = "prod-us" })
      srv:seed_groups(2, { env = "dev" })

      local _, exact = call("GET", "/v1/groups?tag_name=env&tag_value=prod%20eu")
      assert.are.same(prod, ids_of(exact))

      local _, prefix, _, headers =
        call("GET", "/v1/groups?tag_name=env&tag_value=prod&tag_value_match_mode=prefix&limit=3")
      assert.are.same(prod, ids_of(prefix))
      assert.are.equal("</v1/groups?last_evaluated_key=" .. prod[3]
        .. "&limit=3&tag_name=env&tag_value=prod&tag_value_match_mode=prefix>; rel=next", headers["link"])
      local all = fetch_all("/v1/groups?tag_name=env&tag_value=prod&tag_value_match_mode=prefix&limit=3")
      assert.are.same({ prod[1], prod[2], prod[3], other[1] }, all)

      local _, none = call("GET", "/v1/groups?tag_name=env&tag_value=prod")
      assert.are.same({}, none)
    end)

    it("does not treat + as a space in query values", function()
      local plus = srv:seed_groups(1, { t = "a+b" })
      srv:seed_groups(1, { t = "a b" })
      local _, page = call("GET", "/v1/groups?tag_name=t&tag_value=a+b")
      assert.are.same(plus, ids_of(page))
    end)

    it("rejects a bad limit, match mode or paging key", function()
      assert.are.equal(400, (call("GET", "/v1/groups?limit=0")))
      assert.are.equal(400, (call("GET", "/v1/groups?limit=x")))
      assert.are.equal(400, (call("GET", "/v1/groups?tag_name=a&tag_value=b&tag_value_match_mode=suffix")))
      assert.are.equal(400, (call("GET", "/v1/groups?last_evaluated_key=nope")))
    end)

    it("pages subscribers by IMSI", function()
      local group = srv:seed_groups(1)[1]
      local imsis = srv:seed_subscribers(group, 3)
      assert.are.equal(3, #imsis)
      local status, page, _, headers = call("GET", "/v1/groups/" .. group .. "/subscribers?limit=2")
      assert.are.equal(200, status)
      assert.are.equal(2, #page)
      assert.are.equal(imsis[1], page[1].imsi)
      assert.matches("^%d+$", page[1].imsi)
      assert.are.equal(15, #page[1].imsi)
      assert.are.equal(group, page[1].groupId)
      assert.are.equal("OP0012345678", page[1].operatorId)
      assert.is_string(page[1].msisdn)
      assert.is_string(page[1].status)
      assert.is_string(page[1].speedClass)
      assert.is_table(page[1].tags)
      assert.are.equal(imsis[2], headers["x-soracom-next-key"])
      assert.are.equal("</v1/groups/" .. group .. "/subscribers?last_evaluated_key=" .. imsis[2]
        .. "&limit=2>; rel=next", headers["link"])
      local _, rest, _, rest_headers =
        call("GET", "/v1/groups/" .. group .. "/subscribers?limit=2&last_evaluated_key=" .. imsis[2])
      assert.are.equal(imsis[3], rest[1].imsi)
      assert.is_nil(rest_headers["link"])
      assert.are.equal(404, (call("GET", "/v1/groups/missing/subscribers")))
    end)
  end)

  describe("raw path segments", function()
    it("keeps ..%2Fx as one group id", function()
      local status, err = call("GET", "/v1/groups/..%2Fx")
      assert.are.equal(404, status)
      assert.are.equal("COM0004", err.code)
      assert.matches("../x", err.message, 1, true)
      local log = srv:requests()
      assert.are.equal("/v1/groups/..%2Fx", log[#log].uri)
    end)

    it("deletes the tag 'a b/c%d' sent as a%20b%2Fc%25d", function()
      local group = create_group({ tags = { ["a b/c%d"] = "v", keep = "k" } })
      local path = "/v1/groups/" .. group.groupId .. "/tags/a%20b%2Fc%25d"
      assert.are.equal(204, (call("DELETE", path)))
      local _, fetched = call("GET", "/v1/groups/" .. group.groupId)
      assert.are.same({ keep = "k" }, fetched.tags)
      local status, err = call("DELETE", path)
      assert.are.equal(404, status)
      assert.are.equal("COM0004", err.code)
    end)

    it("keeps + in a path segment", function()
      local group = create_group({ tags = { ["a+b"] = "1", ["a b"] = "2" } })
      assert.are.equal(204, (call("DELETE", "/v1/groups/" .. group.groupId .. "/tags/a+b")))
      local _, fetched = call("GET", "/v1/groups/" .. group.groupId)
      assert.are.same({ ["a b"] = "2" }, fetched.tags)
    end)

    it("rejects malformed percent-encoding with 400", function()
      -- nginx itself answers (HTML) before Lua runs: its URI parser rejects it.
      assert.are.equal(400, (srv:http("GET", "/v1/groups/%zz", { auth = true })))
      local status, err = call("GET", "/v1/groups?tag_name=%zz&tag_value=x")
      assert.are.equal(400, status)
      assert.are.equal("COM0001", err.code)
    end)
  end)

  describe("configuration", function()
    it("PUT replaces the whole namespace", function()
      local group = create_group({
        configuration = { SoracomAir = { a = 1, b = 2 }, SoracomHarvest = { enabled = true } },
      })
      local path = "/v1/groups/" .. group.groupId .. "/configuration/SoracomAir"
      local status, updated = call("PUT", path, { { key = "c", value = { x = "y" } } })
      assert.are.equal(200, status)
      assert.are.same({ SoracomAir = { c = { x = "y" } }, SoracomHarvest = { enabled = true } }, updated.configuration)
    end)

    it("deletes one parameter and a namespace", function()
      local group = create_group({ configuration = { SoracomAir = { a = 1, b = 2 }, SoracomOrbit = { x = 1 } } })
      local base = "/v1/groups/" .. group.groupId .. "/configuration/"
      assert.are.equal(204, (call("DELETE", base .. "SoracomAir/a")))
      assert.are.equal(204, (call("DELETE", base .. "SoracomOrbit")))
      local _, fetched = call("GET", "/v1/groups/" .. group.groupId)
      assert.are.same({ SoracomAir = { b = 2 } }, fetched.configuration)
      assert.is_true(fetched.lastModifiedTime > group.lastModifiedTime)
    end)

    it("rejects unknown namespaces, and SoracomOrbit for one parameter, with 400", function()
      local group = create_group()
      local base = "/v1/groups/" .. group.groupId .. "/configuration/"
      local status, err = call("PUT", base .. "SoracomNope", {})
      assert.are.equal(400, status)
      assert.are.equal("COM0001", err.code)
      assert.are.equal(400, (call("DELETE", base .. "SoracomNope")))
      assert.are.equal(400, (call("DELETE", base .. "SoracomOrbit/x")))
      assert.are.equal(204, (call("DELETE", base .. "SoracomFlux/x")))
    end)

    it("404s a missing group", function()
      assert.are.equal(404, (call("DELETE", "/v1/groups/missing/configuration/SoracomAir/a")))
      assert.are.equal(404, (call("PUT", "/v1/groups/missing/configuration/SoracomAir", {})))
    end)

    it("rejects a body that is not an array of {key, value}", function()
      local group = create_group()
      local path = "/v1/groups/" .. group.groupId .. "/configuration/SoracomAir"
      assert.are.equal(400, (call("PUT", path, '{"key":"a","value":1}')))
      assert.are.equal(400, (call("PUT", path, '[{"value":1}]')))
      assert.are.equal(400, (call("PUT", path, "")))
    end)
  end)

  describe("tags", function()
    it("PUT merges tags", function()
      local group = create_group({ tags = { a = "1", b = "2" } })
      local status, updated = call("PUT", "/v1/groups/" .. group.groupId .. "/tags",
        { { tagName = "b", tagValue = "x" }, { tagName = "c", tagValue = "3" } })
      assert.are.equal(200, status)
      assert.are.same({ a = "1", b = "x", c = "3" }, updated.tags)
    end)
  end)

  describe("auth and routing", function()
    it("401s without or with wrong credentials", function()
      local status, text = srv:http("GET", "/v1/groups")
      assert.are.equal(401, status)
      assert.are.equal("AUM0001", decode(text).code)
      status = srv:http("GET", "/v1/groups", { headers = { ["X-Soracom-API-Key"] = "test-api-key" } })
      assert.are.equal(401, status)
      status = srv:http("GET", "/v1/groups", { auth = true, headers = { ["X-Soracom-Token"] = "old" } })
      assert.are.equal(401, status)
    end)

    it("accepts credentials set through settings", function()
      srv:settings({ api_key = "k2", token = "t2" })
      local status = srv:http("GET", "/v1/groups",
        { headers = { ["X-Soracom-API-Key"] = "k2", ["X-Soracom-Token"] = "t2" } })
      assert.are.equal(200, status)
      assert.are.equal(401, (call("GET", "/v1/groups")))
    end)

    it("404s unknown routes and 405s wrong methods", function()
      assert.are.equal(404, (call("GET", "/v1/nothing")))
      assert.are.equal(404, (call("GET", "/v1/groups/x/unknown")))
      local status, err, _, headers = call("PATCH", "/v1/groups")
      assert.are.equal(405, status)
      assert.are.equal("AGW0002", err.code)
      assert.are.equal("GET, POST", headers["allow"])
    end)
  end)

  describe("control API", function()
    it("records requests with raw uri, headers, body and connection", function()
      call("POST", "/v1/groups?x=%2F", '{"tags":{}}')
      call("GET", "/v1/groups")
      local log = srv:requests()
      assert.are.equal(2, #log)
      assert.are.equal("POST", log[1].method)
      assert.are.equal("/v1/groups?x=%2F", log[1].uri)
      assert.are.equal('{"tags":{}}', log[1].body)
      assert.are.equal("test-api-key", log[1].headers["x-soracom-api-key"])
      assert.is_nil(log[2].body)
      assert.are.equal("number", type(log[1].connection))
      assert.are.equal(1, log[1].connection_requests)
    end)

    it("stops recording when asked", function()
      srv:settings({ record_requests = false })
      call("GET", "/v1/groups")
      assert.are.same({}, srv:requests())
    end)

    it("reset clears groups, requests and settings", function()
      srv:seed_groups(2)
      srv:settings({ link_header = false })
      srv:reset()
      local _, list = call("GET", "/v1/groups")
      assert.are.same({}, list)
      assert.are.equal(1, #srv:requests())
      assert.is_true(srv:settings().link_header)
    end)

    it("injects faults for the next requests", function()
      srv:faults({ { status = 429, headers = { ["Retry-After"] = "1" }, times = 2 } })
      local status, err, _, headers = call("GET", "/v1/groups")
      assert.are.equal(429, status)
      assert.are.equal("FAK0429", err.code)
      assert.are.equal("1", headers["retry-after"])
      assert.are.equal(429, (call("GET", "/v1/groups")))
      assert.are.equal(200, (call("GET", "/v1/groups")))
    end)

    it("raises clear errors from the helper", function()
      assert.has_error(function()
        srv:settings({ no_such_setting = true })
      end)
      assert.has_error(function()
        srv:seed_subscribers("missing", 1)
      end)
    end)
  end)

  describe("latency and traffic stats", function()
    it("delays every recorded response by latency, without blocking other requests", function()
      -- With latencies from 0.5 s up, until the 200 requests went out within half of one
      -- (a slow client, valgrind's, needs more): then all are in flight at once.
      local count = 200 -- 100 s at 0.5 s if the sleeps were served one after another
      for _, latency in ipairs { 0.5, 2, 8 } do
        srv:reset()
        srv:settings({ latency = latency })
        local started = socket.gettime()
        local conns = {}
        for i = 1, count do
          conns[i] = send_request("GET", "/v1/groups", { auth = true })
        end
        local sent = socket.gettime() - started
        for i = 1, count do
          assert.are.equal(200, (read_response(conns[i])))
          conns[i]:close()
        end
        local elapsed = socket.gettime() - started
        if sent < latency / 2 then
          assert.is_true(elapsed >= latency, "took " .. elapsed)
          -- a fifth of the serial time: room for a slow client, none for a queue
          assert.is_true(elapsed < count * latency / 5, "took " .. elapsed)
          local stats = srv:stats()
          assert.are.equal(count, stats.requests)
          assert.are.equal(count, stats.max_in_flight)
          assert.are.equal(0, stats.in_flight)
          return
        end
      end
      error("too slow to check: sending 200 requests took longer than 4 s")
    end)

    it("delays faults, 401s and unrouted paths too, but not the control API", function()
      srv:settings({ latency = 0.3 })
      srv:faults({ { status = 503 } })
      for _, case in ipairs({
        { 503, "/v1/groups", true }, { 401, "/v1/groups", false }, { 404, "/elsewhere", true },
      }) do
        local started = socket.gettime()
        assert.are.equal(case[1], (srv:http("GET", case[2], { auth = case[3] })))
        local elapsed = socket.gettime() - started
        assert.is_true(elapsed >= 0.3, case[2] .. " took " .. elapsed)
      end
      srv:settings({ latency = 2 })
      local started = socket.gettime()
      srv:stats()
      assert.is_true(socket.gettime() - started < 1, "the control API waited") -- not the 2 s
    end)

    it("adds up to latency_jitter at random", function()
      srv:settings({ latency = 0.1, latency_jitter = 0.4 })
      local shortest, longest = math.huge, 0
      for _ = 1, 8 do
        local started = socket.gettime()
        srv:http("GET", "/v1/groups", { auth = true })
        local elapsed = socket.gettime() - started
        shortest, longest = math.min(shortest, elapsed), math.max(longest, elapsed)
      end
      assert.is_true(shortest >= 0.1, "shortest " .. shortest)
      assert.is_true(longest < 1.5, "longest " .. longest)
      -- 8 uniform draws from [0, 0.4) all within 0.05 s of each other: odds below 1e-5.
      assert.is_true(longest - shortest > 0.05, "spread " .. (longest - shortest))
    end)

    it("keeps connections alive across delayed responses", function()
      srv:settings({ latency = 0.2 })
      local conn = send_request("GET", "/v1/groups", { auth = true })
      assert.are.equal(200, (read_response(conn)))
      assert(conn:send("GET /v1/groups HTTP/1.1\r\nHost: x\r\nX-Soracom-API-Key: test-api-key\r\n"
        .. "X-Soracom-Token: test-token\r\n\r\n"))
      assert.are.equal(200, (read_response(conn)))
      conn:close()
      local log = srv:requests()
      assert.are.equal(log[1].connection, log[2].connection)
      assert.are.same({ 1, 2 }, { log[1].connection_requests, log[2].connection_requests })
    end)

    it("rejects a negative latency", function()
      assert.has_error(function()
        srv:settings({ latency = -0.1 })
      end)
      assert.has_error(function()
        srv:settings({ latency_jitter = -1 })
      end)
    end)

    it("counts requests per operation by method and path template", function()
      local id = srv:seed_groups(1)[1]
      call("GET", "/v1/groups")
      call("GET", "/v1/groups/" .. id)
      call("GET", "/v1/groups/missing")
      call("PUT", "/v1/groups/" .. id .. "/tags", { { tagName = "a", tagValue = "b" } })
      call("DELETE", "/v1/groups/" .. id .. "/tags/a")
      call("DELETE", "/v1/groups/" .. id .. "/configuration/SoracomAir/x")
      srv:http("POST", "/v1/auth", { body = "{}" })
      -- Not routed to an operation: no route, wrong method, bad credentials.
      call("GET", "/v1/nothing")
      call("PATCH", "/v1/groups")
      srv:http("GET", "/v1/groups")
      srv:faults({ { status = 429 } })
      call("GET", "/v1/groups")
      local stats = srv:stats()
      local function counted(n) return { requests = n, status_429 = 0, windows = 0, most_429_in_a_window = 0 } end
      assert.are.same({
        ["GET /v1/groups"] = counted(1),
        ["GET /v1/groups/{group_id}"] = counted(2),
        ["PUT /v1/groups/{group_id}/tags"] = counted(1),
        ["DELETE /v1/groups/{group_id}/tags/{tag_name}"] = counted(1),
        ["DELETE /v1/groups/{group_id}/configuration/{namespace}/{name}"] = counted(1),
        ["POST /v1/auth"] = counted(1),
      }, stats.by_api)
      assert.are.equal(11, stats.requests)
      assert.are.equal(1, stats.status_429) -- the injected one
      assert.are.equal(1, stats.max_in_flight)
    end)

    it("clears the counters on DELETE /_fake/stats and on reset", function()
      call("GET", "/v1/groups")
      srv:clear_stats()
      assert.are.same({ requests = 0, in_flight = 0, max_in_flight = 0, status_429 = 0, by_api = {} },
        srv:stats())
      call("GET", "/v1/groups")
      srv:reset()
      assert.are.equal(0, srv:stats().requests)
    end)
  end)

  describe("rate limits", function()
    local LIMIT = "x-soracom-ratelimit-limit"
    local REMAINING = "x-soracom-ratelimit-remaining"
    local REFRESH = "x-soracom-ratelimit-seconds-before-refresh"

    -- The three rate-limit headers and Retry-After of a response, as numbers.
    local function limits(headers)
      return {
        limit = tonumber(headers[LIMIT]),
        remaining = tonumber(headers[REMAINING]),
        refresh = tonumber(headers[REFRESH]),
        retry_after = tonumber(headers["retry-after"]),
      }
    end

    -- An authenticated request with the given pair; returns status, headers, decoded body.
    local function as(pair, method, path)
      local status, text, headers = srv:http(method, path, {
        headers = { ["X-Soracom-API-Key"] = pair.apiKey, ["X-Soracom-Token"] = pair.token },
      })
      return status, headers, text ~= "" and decode(text) or nil
    end

    local function login(value)
      local status, text, headers = srv:http("POST", "/v1/auth", { body = cjson.encode(value) })
      return status, headers, decode(text)
    end

    local KEY_LOGIN = { authKeyId = "keyId-test", authKey = "secret-test" }

    it("sends no rate-limit headers and never 429s by default", function()
      srv:seed_groups(1)
      for _ = 1, 30 do
        local status, _, _, headers = call("GET", "/v1/groups")
        assert.are.equal(200, status)
        assert.are.same({}, limits(headers))
      end
      local status, headers = login(KEY_LOGIN)
      assert.are.equal(200, status)
      assert.are.same({}, limits(headers))
      assert.are.same({}, srv:rate_limit_windows())
    end)

    it("counts Remaining down, then answers 429 with the headers, Retry-After and an error body", function()
      srv:settings({ rate_limit = { limit = 3, window = 60 } })
      local _, _, _, headers = call("GET", "/v1/groups")
      -- The window starts with this request: a whole minute left.
      assert.are.same({ limit = 3, remaining = 2, refresh = 60 }, limits(headers))
      assert.is_true(srv:rate_limit_windows()[1].resets_in > 59)
      for remaining = 1, 0, -1 do
        local status
        status, _, _, headers = call("GET", "/v1/groups")
        assert.are.equal(200, status)
        assert.are.equal(remaining, limits(headers).remaining)
      end
      for _ = 1, 2 do
        local status, err
        status, err, _, headers = call("GET", "/v1/groups")
        assert.are.equal(429, status)
        assert.are.equal("AGW0003", err.code)
        assert.matches("GET /v1/groups", err.message, 1, true)
        local got = limits(headers)
        assert.are.same({ 3, 0 }, { got.limit, got.remaining })
        assert.is_true(got.refresh == 59 or got.refresh == 60, "refresh " .. tostring(got.refresh))
        assert.are.equal(got.refresh, got.retry_after)
      end
      local windows = srv:rate_limit_windows()
      assert.are.equal(1, #windows)
      local w = windows[1]
      assert.are.same({ "operator", "OP0012345678", "GET /v1/groups", 3, 60, 3, 0, 2 },
        { w.scope, w.subject, w.api, w.limit, w.window, w.used, w.remaining, w.status_429 })
      local stats = srv:stats()
      assert.are.same({ requests = 5, status_429 = 2, windows = 1, most_429_in_a_window = 2 },
        stats.by_api["GET /v1/groups"])
      assert.are.equal(2, stats.status_429)
    end)

    it("puts the headers on every answer of an operation, errors too, but not on 401s or unrouted paths", function()
      srv:settings({ rate_limit = { limit = 10, window = 60 } })
      local _, _, _, headers = call("GET", "/v1/groups/missing")
      assert.are.equal(9, limits(headers).remaining)
      local status
      status, _, _, headers = call("GET", "/v1/groups/other?limit=0") -- same operation, other id
      assert.are.equal(404, status)
      assert.are.equal(8, limits(headers).remaining)
      status, _, _, headers = call("GET", "/v1/groups?limit=x")
      assert.are.equal(400, status)
      assert.are.equal(9, limits(headers).remaining)
      -- Neither counted nor marked: no operator known, or no operation.
      for _, case in ipairs({
        { 401, "GET", "/v1/groups", false }, { 404, "GET", "/v1/nothing", true },
        { 405, "PATCH", "/v1/groups", true }, { 404, "GET", "/v1/groups/", true },
      }) do
        local text
        status, text, headers = srv:http(case[2], case[3], { auth = case[4] })
        assert.are.equal(case[1], status, text)
        assert.are.same({}, limits(headers))
      end
      _, _, _, headers = call("GET", "/v1/groups")
      assert.are.equal(8, limits(headers).remaining)
    end)

    it("counts each operation's windows and the most 429s one of them sent", function()
      srv:settings({ rate_limit = { limit = 1, window = 60 } })
      local statuses = {}
      for _ = 1, 3 do statuses[#statuses + 1] = call("GET", "/v1/groups") end
      srv:clear_rate_limit_windows() -- the next request opens a second window
      for _ = 1, 2 do statuses[#statuses + 1] = call("GET", "/v1/groups") end
      assert.are.same({ 200, 429, 429, 200, 429 }, statuses)
      assert.are.same({ requests = 5, status_429 = 3, windows = 2, most_429_in_a_window = 2 },
        srv:stats().by_api["GET /v1/groups"])
    end)

    it("starts a new window once the window has passed (whole seconds, rounded up)", function()
      srv:settings({ rate_limit = { limit = 2, window = 0.6 } })
      local _, _, _, headers = call("GET", "/v1/groups")
      assert.are.same({ limit = 2, remaining = 1, refresh = 1 }, limits(headers))
      call("GET", "/v1/groups")
      local status = call("GET", "/v1/groups")
      assert.are.equal(429, status)
      socket.sleep(0.7)
      status, _, _, headers = call("GET", "/v1/groups")
      assert.are.equal(200, status)
      assert.are.same({ limit = 2, remaining = 1, refresh = 1 }, limits(headers))
      assert.are.same({ 1, 0 }, { srv:rate_limit_windows()[1].used, srv:rate_limit_windows()[1].status_429 })
    end)

    it("rounds Seconds-Before-Refresh up to whole seconds", function()
      srv:settings({ rate_limit = { limit = 5, window = 2.5 } })
      local _, _, _, headers = call("GET", "/v1/groups")
      assert.are.equal(3, limits(headers).refresh)
      socket.sleep(0.6) -- 1.9 s left: 2 rounded up, 1 rounded down
      _, _, _, headers = call("GET", "/v1/groups")
      assert.are.equal(2, limits(headers).refresh)
      local window = srv:rate_limit_windows()[1]
      -- nginx's clock counts whole milliseconds: 0.6 s measured exactly leaves 1.9 s.
      assert.is_true(window.resets_in > 1 and window.resets_in <= 1.9 + 1e-6, "resets_in " .. window.resets_in)
      assert.are.equal(2, window.seconds_before_refresh)
    end)

    it("keeps one window per operation: a path template, whatever the ids", function()
      local ids = srv:seed_groups(2)
      srv:settings({ rate_limit = { limit = 2, window = 60,
        apis = { ["GET /v1/groups/{group_id}/subscribers"] = { limit = 5, window = 30 } } } })
      call("GET", "/v1/groups")
      call("GET", "/v1/groups")
      assert.are.equal(429, (call("GET", "/v1/groups")))
      local status, _, _, headers = call("GET", "/v1/groups/" .. ids[1])
      assert.are.equal(200, status)
      assert.are.equal(1, limits(headers).remaining)
      status, _, _, headers = call("GET", "/v1/groups/" .. ids[2])
      assert.are.equal(200, status)
      assert.are.equal(0, limits(headers).remaining)
      assert.are.equal(429, (call("GET", "/v1/groups/missing")))
      -- Another method on the same path is another operation; the override has its own numbers.
      status, _, _, headers = call("DELETE", "/v1/groups/" .. ids[2])
      assert.are.same({ 204, 1 }, { status, limits(headers).remaining })
      _, _, _, headers = call("GET", "/v1/groups/" .. ids[1] .. "/subscribers")
      assert.are.same({ limit = 5, remaining = 4, refresh = 30 }, limits(headers))
      local apis = {}
      for _, w in ipairs(srv:rate_limit_windows()) do
        apis[#apis + 1] = w.api
      end
      assert.are.same({ "DELETE /v1/groups/{group_id}", "GET /v1/groups", "GET /v1/groups/{group_id}",
        "GET /v1/groups/{group_id}/subscribers" }, apis)
    end)

    it("keeps one window per operator: each token's operator at login; the static pair's is operator_id", function()
      local first = select(3, login(KEY_LOGIN))
      srv:settings({ operator_id = "OP0099999999" })
      local second = select(3, login(KEY_LOGIN))
      assert.are.same({ "OP0012345678", "OP0099999999" }, { first.operatorId, second.operatorId })
      assert.are.same({ "OP0012345678", "OP0099999999" }, { srv:tokens()[1].operatorId, srv:tokens()[2].operatorId })
      srv:settings({ rate_limit = { limit = 1, window = 60 } })
      assert.are.equal(200, (as(first, "GET", "/v1/groups")))
      assert.are.equal(429, (as(first, "GET", "/v1/groups")))
      assert.are.equal(200, (as(second, "GET", "/v1/groups")))
      assert.are.equal(429, (as({ apiKey = srv.api_key, token = srv.token }, "GET", "/v1/groups")))
      local subjects = {}
      for _, w in ipairs(srv:rate_limit_windows()) do
        subjects[#subjects + 1] = w.subject .. " " .. w.used .. " " .. w.status_429
      end
      assert.are.same({ "OP0012345678 1 1", "OP0099999999 1 1" }, subjects)
    end)

    it("limits logins per caller address, counting failed ones; logout is an operator's operation", function()
      srv:settings({ auth_rate_limit = { limit = 2, window = 60 }, rate_limit = { limit = 0, window = 60 } })
      local status, headers = login({ authKeyId = "keyId-test", authKey = "wrong" })
      assert.are.equal(401, status)
      assert.are.same({ limit = 2, remaining = 1, refresh = 60 }, limits(headers))
      local pair
      status, headers, pair = login(KEY_LOGIN)
      assert.are.equal(200, status)
      assert.are.equal(0, limits(headers).remaining)
      local err
      status, headers, err = login(KEY_LOGIN)
      assert.are.equal(429, status)
      assert.are.equal("AGW0003", err.code)
      assert.are.same({ 2, 0 }, { limits(headers).limit, limits(headers).remaining })
      assert.are.equal(limits(headers).refresh, limits(headers).retry_after)
      -- Another loopback address has its own window.
      local conn = send_request("POST", "/v1/auth", { source = "127.0.0.2", body = cjson.encode(KEY_LOGIN) })
      status, headers = read_response(conn)
      conn:close()
      assert.are.equal(200, status)
      assert.are.equal(1, limits(headers).remaining)
      -- rate_limit (0 here) governs the operator's operations, logout included, not logins.
      status, headers = as(pair, "POST", "/v1/auth/logout")
      assert.are.same({ 429, 0, 0 }, { status, limits(headers).limit, limits(headers).remaining })
      local windows = srv:rate_limit_windows()
      local seen = {}
      for i, w in ipairs(windows) do
        seen[i] = w.scope .. " " .. w.subject .. " " .. w.api .. " " .. w.used
      end
      assert.are.same({ "address 127.0.0.1 POST /v1/auth 2", "address 127.0.0.2 POST /v1/auth 1",
        "operator OP0012345678 POST /v1/auth/logout 0" }, seen)
      assert.are.same({ requests = 4, status_429 = 1, windows = 2, most_429_in_a_window = 1 }, -- two addresses
        srv:stats().by_api["POST /v1/auth"])
    end)

    it("leaves Retry-After out when retry_after is false", function()
      srv:settings({ rate_limit = { limit = 0, window = 5, retry_after = false },
        auth_rate_limit = { limit = 0, window = 5, retry_after = false } })
      local status, _, _, headers = call("GET", "/v1/groups")
      assert.are.equal(429, status)
      assert.are.same({ limit = 0, remaining = 0, refresh = 5 }, limits(headers))
      status, headers = login(KEY_LOGIN)
      assert.are.equal(429, status)
      assert.are.same({ limit = 0, remaining = 0, refresh = 5 }, limits(headers))
    end)

    it("admits exactly limit requests of many arriving at once", function()
      srv:settings({ latency = 0.3, rate_limit = { limit = 20, window = 60 } })
      local conns, counts = {}, {}
      for i = 1, 50 do
        conns[i] = send_request("GET", "/v1/groups", { auth = true })
      end
      for i = 1, 50 do
        local status = read_response(conns[i])
        conns[i]:close()
        counts[status] = (counts[status] or 0) + 1
      end
      assert.are.same({ [200] = 20, [429] = 30 }, counts)
      assert.are.same({ requests = 50, status_429 = 30, windows = 1, most_429_in_a_window = 30 },
        srv:stats().by_api["GET /v1/groups"])
    end)

    it("starts windows afresh when a limit is written, on DELETE /_fake/ratelimit and on reset", function()
      srv:settings({ rate_limit = { limit = 1, window = 60 }, auth_rate_limit = { limit = 1, window = 60 } })
      call("GET", "/v1/groups")
      login(KEY_LOGIN)
      assert.are.equal(2, #srv:rate_limit_windows())
      srv:settings({ rate_limit = { limit = 1, window = 60 } }) -- the same value still restarts
      assert.are.equal(200, (call("GET", "/v1/groups")))
      assert.are.equal(429, (login(KEY_LOGIN)))
      srv:clear_rate_limit_windows()
      assert.are.same({}, srv:rate_limit_windows())
      assert.are.equal(200, (login(KEY_LOGIN)))
      srv:settings({ rate_limit = cjson.null })
      local _, _, _, headers = call("GET", "/v1/groups")
      assert.are.same({}, limits(headers))
      srv:reset()
      assert.are.same({}, srv:rate_limit_windows())
      assert.is_nil(srv:settings().auth_rate_limit)
    end)

    it("rejects malformed limits with 400", function()
      for _, bad in ipairs({
        { rate_limit = 5 },
        { rate_limit = { window = 1 } },
        { rate_limit = { limit = 1 } },
        { rate_limit = { limit = -1, window = 1 } },
        { rate_limit = { limit = 1.5, window = 1 } },
        { rate_limit = { limit = 1, window = 0 } },
        { rate_limit = { limit = 1, window = 1, retry_after = "no" } },
        { rate_limit = { limit = 1, window = 1, per_minute = true } },
        { rate_limit = { limit = 1, window = 1, apis = { ["GET /v1/groups/{id}"] = { limit = 1 } } } },
        { rate_limit = { limit = 1, window = 1, apis = { ["POST /v1/auth"] = { limit = 1 } } } },
        { rate_limit = { limit = 1, window = 1, apis = { ["GET /v1/groups"] = { limit = 1, burst = 2 } } } },
        { rate_limit = { limit = 1, window = 1, apis = { ["GET /v1/groups"] = { window = -1 } } } },
        { auth_rate_limit = { limit = 1, window = 1, apis = {} } },
      }) do
        assert.has_error(function()
          srv:settings(bad)
        end, nil, cjson.encode(bad))
      end
      assert.is_nil(srv:settings().rate_limit)
    end)
  end)

  -- Runs curl; returns HTTP status (number, 0 when none), curl's exit code, the body and
  -- the HTTP version ("1.1", "2"; "0" when there was no response).
  local function curl(args)
    local out = os.tmpname()
    local pipe = assert(io.popen("curl -sS -o '" .. out .. "' -w '%{http_code} %{http_version}' " .. args
      .. " 2>/dev/null; echo \" exit=$?\""))
    local result = pipe:read("*a")
    pipe:close()
    local f = assert(io.open(out, "rb"))
    local body = f:read("*a")
    f:close()
    os.remove(out)
    local code, version, exit = result:match("^(%d*) (%S*) exit=(%d+)")
    return tonumber(code) or 0, tonumber(exit), body, version
  end
  local CURL_AUTH = "-H 'X-Soracom-API-Key: test-api-key' -H 'X-Soracom-Token: test-token' "

  describe("resilience faults", function()
    local AUTH = "X-Soracom-API-Key: test-api-key\r\nX-Soracom-Token: test-token\r\n"

    -- One request over a fresh raw connection; reads until the server closes.
    -- Returns status, headers (lower-case names), body bytes received, receive error
    -- (nil after a clean close, "closed" after a reset: luasocket's name for
    -- ECONNRESET, "timeout").
    local function raw(method, path, body, timeout, base_url)
      local host, port = (base_url or srv.url):match("^http://([^:/]+):(%d+)$")
      local conn = assert(socket.connect(host, tonumber(port)))
      conn:settimeout(timeout or 5)
      body = body or ""
      assert(conn:send(("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s")
        :format(method, path, AUTH, #body, body)))
      local data, err, partial = conn:receive("*a")
      conn:close()
      local text = data or partial
      local head, rest = text:match("^(.-)\r\n\r\n(.*)$")
      assert(head, "no response head in: " .. text)
      local headers = {}
      for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
        headers[name:lower()] = value
      end
      return tonumber(head:match("^HTTP/1%.1 (%d+)")), headers, rest, err
    end

    it("reset_after_bytes sends N bytes of a longer body, then resets (for /v1/auth too)", function()
      srv:faults({ { reset_after_bytes = 100, times = 2 } })
      local status, headers, body, err = raw("GET", "/v1/groups")
      assert.are.equal(200, status)
      assert.are.equal("4096", headers["content-length"])
      assert.are.equal(100, #body)
      assert.are.equal("[{", body:sub(1, 2))
      assert.are.equal("closed", err)
      status, headers, body, err = raw("POST", "/v1/auth", "{}")
      assert.are.equal("4096", headers["content-length"])
      assert.are.equal(200, status)
      assert.are.equal(100, #body)
      assert.are.equal("closed", err)
      assert.are.equal(200, (call("GET", "/v1/groups")))
      assert.are.equal(3, #srv:requests())
    end)

    it("reset_after_bytes cuts a given body and a given status", function()
      srv:faults({ { status = 503, body = string.rep("x", 50), reset_after_bytes = 0 } })
      local status, headers, body, err = raw("GET", "/v1/groups")
      assert.are.equal(503, status)
      assert.are.equal("50", headers["content-length"])
      assert.are.equal("", body)
      assert.are.equal("closed", err)
    end)

    it("truncate declares the whole body, sends part of it and closes cleanly", function()
      srv:faults({ { truncate = true }, { truncate = 3, body = { 1, 2, 3 } } })
      local status, headers, body, err = raw("GET", "/v1/groups")
      assert.are.equal(200, status)
      assert.are.equal("4096", headers["content-length"])
      assert.are.equal(2048, #body)
      assert.is_nil(err)
      status, headers, body, err = raw("GET", "/v1/groups")
      assert.are.equal(200, status)
      assert.are.equal("7", headers["content-length"])
      assert.are.equal("[1,", body)
      assert.is_nil(err)
    end)

    it("huge_body_bytes streams a valid JSON array of exactly N bytes", function()
      srv:faults({ { huge_body_bytes = 3000000 }, { huge_body_bytes = 5 } })
      local status, text, headers = srv:http("GET", "/v1/groups", { auth = true })
      assert.are.equal(200, status)
      assert.are.equal("3000000", headers["content-length"])
      assert.are.equal(3000000, #text)
      local list = decode(text)
      assert.is_true(#list > 2900)
      assert.are.equal("huge-0000000001", list[1].groupId)
      assert.are.equal("OP0012345678", list[#list].operatorId)
      local _, small = call("GET", "/v1/groups")
      assert.are.same({}, small)
      assert.are.equal(200, (call("GET", "/v1/groups")))
    end)

    it("trickle sends the body slowly, without blocking other requests", function()
      srv:faults({ { trickle = { bytes_per_second = 50, seconds = 0.4 } } })
      local started = socket.gettime()
      local status, text = srv:http("GET", "/v1/groups", { auth = true })
      local elapsed = socket.gettime() - started
      assert.are.equal(200, status)
      assert.are.equal(20, #text)
      assert.are.same({}, decode(text))
      assert.is_true(elapsed >= 0.3, "took " .. elapsed)
    end)

    it("slow_body outlasts a client's timeout and stops once the client is gone", function()
      srv:faults({ { slow_body = true } })
      local started = socket.gettime()
      local status, headers, body, err = raw("GET", "/v1/groups", nil, 0.6)
      assert.is_true(socket.gettime() - started < 1.5)
      assert.are.equal("timeout", err)
      assert.are.equal(200, status)
      assert.are.equal("600", headers["content-length"])
      assert.is_true(#body >= 1 and #body <= 3, "got " .. #body .. " bytes")
      -- Another slow response in flight does not hold up other requests.
      srv:faults({ { slow_body = true } })
      local host, port = srv.url:match("^http://([^:/]+):(%d+)$")
      local conn = assert(socket.connect(host, tonumber(port)))
      conn:settimeout(5)
      conn:send("GET /v1/groups HTTP/1.1\r\nHost: x\r\n" .. AUTH .. "\r\n")
      assert.matches("^HTTP/1%.1 200", conn:receive("*l"))
      started = socket.gettime()
      assert.are.equal(200, (call("GET", "/v1/groups")))
      assert.is_true(socket.gettime() - started < 2) -- the slow one never ends by itself
      assert.are.equal(2, srv:active_streams())
      conn:close()
      local deadline = socket.gettime() + 3
      while srv:active_streams() > 0 and socket.gettime() < deadline do
        socket.sleep(0.1)
      end
      assert.are.equal(0, srv:active_streams())
    end)

    it("keeps delay, invalid JSON bodies and text/plain errors", function()
      srv:faults({
        { delay = 0.2, truncate = 10 },
        { status = 200, body = "{nope" },
        { status = 500, body = "oops", headers = { ["Content-Type"] = "text/plain" } },
      })
      local started = socket.gettime()
      local _, _, body = raw("GET", "/v1/groups")
      assert.is_true(socket.gettime() - started >= 0.2)
      assert.are.equal(10, #body)
      local status, text = srv:http("GET", "/v1/groups", { auth = true })
      assert.are.equal(200, status)
      assert.are.equal("{nope", text)
      local headers
      status, text, headers = srv:http("GET", "/v1/groups", { auth = true })
      assert.are.equal(500, status)
      assert.are.equal("oops", text)
      assert.are.equal("text/plain", headers["content-type"])
    end)

    it("a reset and a truncation look different to curl", function()
      srv:faults({ { reset_after_bytes = 10 }, { truncate = 10 }, { close = true } })
      local status, exit, body = curl(CURL_AUTH .. srv.endpoint .. "/groups")
      assert.are.same({ 200, 56, 10 }, { status, exit, #body }) -- CURLE_RECV_ERROR (reset)
      status, exit, body = curl(CURL_AUTH .. srv.endpoint .. "/groups")
      assert.are.same({ 200, 18, 10 }, { status, exit, #body }) -- CURLE_PARTIAL_FILE
      status, exit = curl(CURL_AUTH .. srv.endpoint .. "/groups")
      assert.are.same({ 0, 52 }, { status, exit }) -- CURLE_GOT_NOTHING
    end)

    it("rejects malformed streamed faults with 400", function()
      for _, fault in ipairs({
        { reset_after_bytes = -1 },
        { reset_after_bytes = 1.5 },
        { truncate = "yes" },
        { huge_body_bytes = 1 },
        { trickle = { seconds = 1 } },
        { trickle = { bytes_per_second = 0 } },
        { trickle = { bytes_per_second = 1, speed = 2 } },
        { reset_after_bytes = 1, truncate = true },
        { close = true, huge_body_bytes = 10 },
        { body = "short", reset_after_bytes = 5 },
      }) do
        assert.has_error(function()
          srv:faults({ fault })
        end)
      end
      local _, text = srv:http("GET", "/_fake/faults")
      assert.are.equal("[]", text)
    end)
  end)

  describe("forward proxy requests", function()
    it("routes an absolute-form target by its path and records it as proxied", function()
      local ids = srv:seed_groups(1)
      local status, exit, body = curl(CURL_AUTH .. "--proxy " .. srv.url
        .. " 'http://api.example.test:1234/v1/groups?limit=5'")
      assert.are.equal(0, exit)
      assert.are.equal(200, status)
      assert.are.same(ids, ids_of(decode(body)))
      local text
      status, text = srv:http("GET", "/v1/groups/" .. ids[1],
        { auth = true, proxy_origin = "http://other.example:80" })
      assert.are.equal(200, status)
      assert.are.equal(ids[1], decode(text).groupId)
      call("GET", "/v1/groups")
      local log = srv:requests()
      assert.are.equal(3, #log)
      assert.are.equal("http://api.example.test:1234/v1/groups?limit=5", log[1].uri)
      assert.is_true(log[1].proxied)
      assert.are.equal("api.example.test:1234", log[1].headers.host)
      assert.are.equal("http://other.example:80/v1/groups/" .. ids[1], log[2].uri)
      assert.is_true(log[2].proxied)
      assert.are.equal("/v1/groups", log[3].uri)
      assert.is_false(log[3].proxied)
      assert.are.equal("http", log[3].scheme)
    end)

    it("applies faults to proxied requests", function()
      srv:faults({ { status = 502 } })
      local status = curl(CURL_AUTH .. "--proxy " .. srv.url .. " http://api.example.test/v1/groups")
      assert.are.equal(502, status)
    end)
  end)

  describe("HTTPS listener", function()
    local tls

    setup(function()
      tls = fake.start({ tls = true })
    end)

    teardown(function()
      if tls then
        tls:stop()
      end
    end)

    before_each(function()
      tls:reset()
    end)

    it("exposes its URLs and CA files", function()
      assert.matches("^https://127%.0%.0%.1:%d+$", tls.tls_url)
      assert.are.equal(tls.tls_url .. "/v1", tls.tls_endpoint)
      assert.matches("^http://127%.0%.0%.1:%d+$", tls.url)
      assert.are_not.equal(tls.url:match("%d+$"), tls.tls_url:match("%d+$"))
      for _, file in ipairs({ tls.ca_file, tls.other_ca_file }) do
        local f = assert(io.open(file))
        assert.matches("BEGIN CERTIFICATE", f:read("*a"))
        f:close()
      end
      assert.is_nil(srv.tls_url)
    end)

    it("serves the same state over HTTPS, verified with the CA, for 127.0.0.1 and localhost", function()
      local ids = tls:seed_groups(2)
      local status, exit, body = curl(CURL_AUTH .. "--cacert '" .. tls.ca_file .. "' " .. tls.tls_endpoint .. "/groups")
      assert.are.equal(0, exit)
      assert.are.equal(200, status)
      assert.are.same(ids, ids_of(decode(body)))
      local port = tls.tls_url:match("%d+$")
      status, exit = curl("--cacert '" .. tls.ca_file .. "' https://localhost:" .. port .. "/_fake/health")
      assert.are.equal(0, exit)
      assert.are.equal(200, status)
      local log = tls:requests()
      assert.are.equal(1, #log)
      assert.are.equal("https", log[1].scheme)
      assert.are.equal("/v1/groups", log[1].uri)
    end)

    it("offers HTTP/1.1 only unless started with http2", function()
      assert.is_nil(tls.http2)
      local status, exit, _, version = curl(CURL_AUTH .. "--http2 --cacert '" .. tls.ca_file .. "' "
        .. tls.tls_endpoint .. "/groups")
      assert.are.same({ 200, 0, "1.1" }, { status, exit, version })
    end)

    it("fails verification with the wrong CA or none", function()
      local _, exit = curl("--cacert '" .. tls.other_ca_file .. "' " .. tls.tls_url .. "/_fake/health")
      assert.are.equal(60, exit) -- CURLE_PEER_FAILED_VERIFICATION
      _, exit = curl("--capath /nonexistent --cacert /dev/null " .. tls.tls_url .. "/_fake/health")
      assert.are_not.equal(0, exit)
    end)

    it("applies streamed faults over TLS", function()
      tls:faults({ { reset_after_bytes = 100 }, { truncate = 50 }, { huge_body_bytes = 200000 } })
      local ca = "--cacert '" .. tls.ca_file .. "' "
      local status, exit, body = curl(CURL_AUTH .. ca .. tls.tls_endpoint .. "/groups")
      assert.are.equal(200, status)
      assert.are.equal(56, exit) -- CURLE_RECV_ERROR: connection reset
      assert.are.equal(100, #body)
      status, exit, body = curl(CURL_AUTH .. ca .. tls.tls_endpoint .. "/groups")
      assert.are.equal(200, status)
      assert.are.equal(18, exit) -- CURLE_PARTIAL_FILE
      assert.are.equal(50, #body)
      status, exit, body = curl(CURL_AUTH .. ca .. tls.tls_endpoint .. "/groups")
      assert.are.same({ 200, 0, 200000 }, { status, exit, #body })
    end)
  end)

  describe("HTTP/2 on the TLS listener", function()
    local h2

    setup(function()
      h2 = fake.start({ http2 = true })
    end)

    teardown(function()
      if h2 then
        h2:stop()
      end
    end)

    before_each(function()
      h2:reset()
    end)

    -- One curl process running the URLs at once over one multiplexed connection; returns
    -- per transfer {status, exit, connects, version}, in the order curl finishes them.
    local function curl_parallel(urls, extra)
      local outputs = string.rep("-o /dev/null ", #urls)
      local pipe = assert(io.popen("curl -s --http2 --parallel --parallel-max 100 " .. CURL_AUTH
        .. "--cacert '" .. h2.ca_file .. "' " .. (extra or "") .. outputs
        .. "-w '%{http_code} %{exitcode} %{num_connects} %{http_version}\\n' " .. table.concat(urls, " ")
        .. " 2>/dev/null"))
      local results = {}
      for line in pipe:lines() do
        local status, exit, connects, version = line:match("^(%d+) (%d+) (%d+) (%S+)$")
        results[#results + 1] = { tonumber(status), tonumber(exit), tonumber(connects), version }
      end
      pipe:close()
      return results
    end

    it("negotiates HTTP/2 or HTTP/1.1 by ALPN on the TLS port; the plain port stays HTTP/1.1", function()
      assert.is_true(h2.http2)
      local ca = "--cacert '" .. h2.ca_file .. "' "
      local status, exit, _, version = curl(CURL_AUTH .. ca .. "--http2 " .. h2.tls_endpoint .. "/groups")
      assert.are.same({ 200, 0, "2" }, { status, exit, version })
      status, exit, _, version = curl(CURL_AUTH .. ca .. "--http1.1 " .. h2.tls_endpoint .. "/groups")
      assert.are.same({ 200, 0, "1.1" }, { status, exit, version })
      status, exit, _, version = curl(CURL_AUTH .. "--http2 " .. h2.endpoint .. "/groups")
      assert.are.same({ 200, 0, "1.1" }, { status, exit, version })
    end)

    it("reads request bodies, with or without Content-Length", function()
      local ca = "--cacert '" .. h2.ca_file .. "' --http2 -H 'Content-Type: application/json' "
      local status, exit, body, version = curl(CURL_AUTH .. ca .. "-d '{\"tags\":{\"a\":\"b\"}}' "
        .. h2.tls_endpoint .. "/groups")
      assert.are.same({ 201, 0, "2" }, { status, exit, version })
      assert.are.same({ a = "b" }, decode(body).tags)
      -- curl sends this body as DATA frames with no content-length (h2 has no chunking).
      status, exit, body, version = curl(CURL_AUTH .. ca .. "-H 'Transfer-Encoding: chunked' "
        .. "--data-binary '{\"tags\":{\"c\":\"d\"}}' " .. h2.tls_endpoint .. "/groups")
      assert.are.same({ 201, 0, "2" }, { status, exit, version })
      assert.are.same({ c = "d" }, decode(body).tags)
      local log = h2:requests()
      assert.are.equal('{"tags":{"c":"d"}}', log[2].body)
      assert.is_nil(log[2].headers["content-length"])
    end)

    it("multiplexes delayed requests on one connection, rate limits and all", function()
      h2:settings({ latency = 0.5, rate_limit = { limit = 30, window = 60 } })
      local urls = {}
      for i = 1, 50 do
        urls[i] = h2.tls_endpoint .. "/groups"
      end
      local started = socket.gettime()
      local results = curl_parallel(urls)
      local elapsed = socket.gettime() - started
      assert.is_true(elapsed < 5, "took " .. elapsed) -- 25 s one after another
      local counts, connects = {}, 0
      for _, r in ipairs(results) do
        assert.are.equal("2", r[4])
        counts[r[1]] = (counts[r[1]] or 0) + 1
        connects = connects + r[3]
      end
      assert.are.same({ [200] = 30, [429] = 20 }, counts)
      assert.are.equal(1, connects)
      local stats = h2:stats()
      assert.are.equal(50, stats.max_in_flight)
      local log = h2:requests()
      assert.are.equal(log[1].connection, log[50].connection)
    end)

    it("turns close, reset_after_bytes and truncate into a reset of that stream only", function()
      for _, fault in ipairs({ { close = true }, { reset_after_bytes = 10 }, { truncate = 10 } }) do
        fault.delay = 0.3 -- so the other request is under way on the same connection
        h2:faults({ fault })
        local results = curl_parallel({ h2.tls_endpoint .. "/groups", h2.tls_endpoint .. "/groups" })
        table.sort(results, function(a, b) return a[2] < b[2] end)
        -- CURLE_HTTP2_STREAM (92): "stream was not closed cleanly: PROTOCOL_ERROR".
        assert.are.same({ 0, 92 }, { results[1][2], results[2][2] }, cjson.encode(fault))
        assert.are.equal(200, results[1][1])
        assert.are.equal(1, results[1][3] + results[2][3])
      end
    end)

    it("ends a trickle whose client has gone", function()
      h2:faults({ { slow_body = true } })
      local _, exit = curl(CURL_AUTH .. "--http2 --max-time 0.5 --cacert '" .. h2.ca_file .. "' "
        .. h2.tls_endpoint .. "/groups")
      assert.are.equal(28, exit) -- CURLE_OPERATION_TIMEDOUT
      local deadline = socket.gettime() + 3
      while h2:active_streams() > 0 and socket.gettime() < deadline do
        socket.sleep(0.1)
      end
      assert.are.equal(0, h2:active_streams())
      assert.are.equal(0, h2:stats().in_flight)
    end)
  end)

  describe("auth API", function()
    -- POST /v1/auth with a table (JSON-encoded) or raw string; returns status, decoded body.
    local function login(value)
      local body = type(value) == "table" and cjson.encode(value) or value
      local status, text = srv:http("POST", "/v1/auth", { body = body })
      return status, text ~= "" and decode(text) or nil
    end

    local function with_pair(method, path, pair)
      local status, text = srv:http(method, path, {
        headers = { ["X-Soracom-API-Key"] = pair.apiKey, ["X-Soracom-Token"] = pair.token },
      })
      return status, text ~= "" and decode(text) or nil
    end

    local function logins()
      return {
        authKey = { authKeyId = srv.auth_key_id, authKey = srv.auth_key },
        root = { email = srv.email, password = srv.password },
        sam = { operatorId = srv.operator_id, userName = srv.user_name, password = srv.sam_password },
      }
    end

    local function issue(kind)
      local status, pair = login(logins()[kind or "authKey"])
      assert.are.equal(200, status)
      return pair
    end

    local static = { apiKey = "test-api-key", token = "test-token" }

    it("exposes the default credentials", function()
      assert.are.same({ "keyId-test", "secret-test", "root@example.com", "root-password",
        "OP0012345678", "SORACOMAPI", "sam-password" },
        { srv.auth_key_id, srv.auth_key, srv.email, srv.password,
          srv.operator_id, srv.user_name, srv.sam_password })
    end)

    it("logs in with an AuthKey, as root and as a SAM user; each pair authorizes /v1/groups", function()
      local seen = {}
      for _, kind in ipairs({ "authKey", "root", "sam" }) do
        local status, pair = login(logins()[kind])
        assert.are.equal(200, status)
        assert.matches("^api%-%x+%-%x+%-%x+%-%x+%-%x+$", pair.apiKey)
        assert.is_true(#pair.token >= 100)
        assert.are.equal("OP0012345678", pair.operatorId)
        assert.are.equal(kind == "sam" and "SORACOMAPI" or nil, pair.userName)
        assert.is_nil(seen[pair.apiKey])
        assert.is_nil(seen[pair.token])
        seen[pair.apiKey], seen[pair.token] = true, true
        local groups_status, list = with_pair("GET", "/v1/groups", pair)
        assert.are.equal(200, groups_status)
        assert.are.same({}, list)
      end
      local tokens = srv:tokens()
      assert.are.equal(3, #tokens)
      assert.are.same({ "authKey", "root", "sam" }, { tokens[1].kind, tokens[2].kind, tokens[3].kind })
      assert.are.equal(86400, tokens[1].tokenTimeoutSeconds)
      assert.is_true(tokens[1].expires_in > 86390 and tokens[1].expires_in <= 86400)
      assert.is_false(tokens[1].revoked)
      -- The static pair keeps working alongside.
      assert.are.equal(200, (with_pair("GET", "/v1/groups", static)))
    end)

    it("honours tokenTimeoutSeconds and rejects invalid ones with 400", function()
      local body = logins().root
      body.tokenTimeoutSeconds = 172800
      assert.are.equal(200, (login(body)))
      assert.are.equal(172800, srv:tokens()[1].tokenTimeoutSeconds)
      for _, bad in ipairs({ 0, 172801, 1.5, "60" }) do
        body.tokenTimeoutSeconds = bad
        local status, err = login(body)
        assert.are.equal(400, status)
        assert.are.equal("COM0001", err.code)
      end
    end)

    it("401s wrong or incomplete credentials with AUM0002", function()
      local bad = {
        { authKeyId = srv.auth_key_id, authKey = "wrong" },
        { email = srv.email, password = srv.sam_password },
        { operatorId = srv.operator_id, userName = srv.user_name, password = srv.password },
        { email = srv.email },
        { operatorId = srv.operator_id, password = srv.sam_password },
        { authKeyId = srv.auth_key_id, authKey = srv.auth_key, email = srv.email, password = srv.password },
        {},
      }
      for _, body in ipairs(bad) do
        local status, err = login(body)
        assert.are.equal(401, status)
        assert.are.same({ code = "AUM0002", message = "Invalid username/password supplied." }, err)
      end
      assert.are.same({}, srv:tokens())
    end)

    it("400s an empty, malformed or mistyped body with COM0001", function()
      for _, body in ipairs({ "", "{nope", "[]", '{"email":1,"password":"x"}' }) do
        local status, err = login(body)
        assert.are.equal(400, status)
        assert.are.equal("COM0001", err.code)
      end
      assert.are.equal(405, (srv:http("GET", "/v1/auth")))
      assert.are.equal(404, (srv:http("POST", "/v1/auth/nothing", { body = "{}" })))
    end)

    it("requires mfaOTPCode when mfa_otp_code is set", function()
      srv:settings({ mfa_otp_code = "123456" })
      local body = logins().sam
      local status, err = login(body)
      assert.are.equal(401, status)
      assert.are.equal("AUM0002", err.code)
      body.mfaOTPCode = "000000"
      assert.are.equal(401, (login(body)))
      body.mfaOTPCode = "123456"
      assert.are.equal(200, (login(body)))
    end)

    it("accepts credentials changed through settings until reset", function()
      srv:settings({ auth_key = "rotated" })
      assert.are.equal(401, (login(logins().authKey)))
      assert.are.equal(200, (login({ authKeyId = srv.auth_key_id, authKey = "rotated" })))
      srv:reset()
      assert.are.equal(200, (login(logins().authKey)))
    end)

    it("expires tokens after token_lifetime seconds", function()
      srv:settings({ token_lifetime = 0.3 })
      local pair = issue("root")
      assert.are.equal(200, (with_pair("GET", "/v1/groups", pair)))
      socket.sleep(0.4)
      local status, err = with_pair("GET", "/v1/groups", pair)
      assert.are.equal(401, status)
      assert.are.equal("AUM0001", err.code)
      assert.matches("expired", err.message)
      assert.is_true(srv:tokens()[1].expires_in < 0)
      assert.are.equal(401, (with_pair("POST", "/v1/auth/logout", pair)))
    end)

    it("expires and revokes all issued tokens through the control paths", function()
      local a, b = issue("authKey"), issue("sam")
      srv:expire_tokens()
      for _, pair in ipairs({ a, b }) do
        local status, err = with_pair("GET", "/v1/groups", pair)
        assert.are.equal(401, status)
        assert.matches("expired", err.message)
      end
      local c = issue("root")
      srv:revoke_tokens()
      local status, err = with_pair("GET", "/v1/groups", c)
      assert.are.equal(401, status)
      assert.are.equal("AUM0001", err.code)
      assert.matches("revoked", err.message)
      local tokens = srv:tokens()
      assert.are.equal(3, #tokens)
      assert.is_true(tokens[1].expires_in <= 0 and tokens[1].revoked)
      assert.is_true(tokens[3].expires_in > 0 and tokens[3].revoked)
      -- The static pair is not an issued token.
      assert.are.equal(200, (with_pair("GET", "/v1/groups", static)))
      assert.are.equal(200, (with_pair("GET", "/v1/groups", issue())))
    end)

    it("logout revokes only the pair it is called with", function()
      local a, b = issue(), issue()
      assert.are.equal(204, (with_pair("POST", "/v1/auth/logout", a)))
      local status, err = with_pair("GET", "/v1/groups", a)
      assert.are.equal(401, status)
      assert.matches("revoked", err.message)
      assert.are.equal(401, (with_pair("POST", "/v1/auth/logout", a)))
      assert.are.equal(401, (srv:http("POST", "/v1/auth/logout")))
      assert.are.equal(200, (with_pair("GET", "/v1/groups", b)))
      assert.are.same({ true, false }, { srv:tokens()[1].revoked, srv:tokens()[2].revoked })
    end)

    it("logs out the static pair until reset, which also forgets issued tokens", function()
      local pair = issue()
      assert.are.equal(204, (with_pair("POST", "/v1/auth/logout", static)))
      assert.are.equal(401, (with_pair("GET", "/v1/groups", static)))
      srv:reset()
      assert.are.equal(200, (with_pair("GET", "/v1/groups", static)))
      assert.are.equal(401, (with_pair("GET", "/v1/groups", pair)))
      assert.are.same({}, srv:tokens())
    end)

    it("records logins and logouts in the request log", function()
      local pair = issue("root")
      with_pair("POST", "/v1/auth/logout", pair)
      local log = srv:requests()
      assert.are.equal(2, #log)
      assert.are.equal("POST", log[1].method)
      assert.are.equal("/v1/auth", log[1].uri)
      assert.are.same(logins().root, decode(log[1].body))
      assert.are.equal("/v1/auth/logout", log[2].uri)
      assert.are.equal(pair.apiKey, log[2].headers["x-soracom-api-key"])
    end)
  end)
end)
