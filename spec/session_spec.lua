-- The C core's curl session (core.session) used directly, over real HTTP to the fake
-- server: its arguments, the request line it sends, what it reads from the response
-- headers, and finalizers that run while it pushes its results.
local fake = require "spec.support.fake_server"
local core = require "soracom.groups.core"

describe("the curl session", function()
  local srv, auth

  setup(function()
    srv = fake.start()
    auth = { "X-Soracom-API-Key: " .. srv.api_key, "X-Soracom-Token: " .. srv.token,
      "Accept: application/json" }
  end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function session(headers)
    local s = core.session {}
    s:set_headers(headers or auth)
    return s
  end

  describe("set_headers", function()
    it("takes an empty list: requests go out with libcurl's headers only", function()
      local s = session {}
      local value, key, status = s:perform("GET", srv.url .. "/_fake/health")
      assert.are.same({ ok = true }, value)
      assert.is_nil(key)
      assert.are.equal(200, status)
      s:close()
    end)
  end)

  describe("protocols", function()
    it("are http and https only, whichever libcurl option set them", function()
      local s = session()
      for _, url in ipairs { "file:///etc/hostname", "ftp://127.0.0.1/x", "dict://127.0.0.1/x" } do
        local value, err = s:perform("GET", url)
        assert.is_nil(value, url)
        assert.are.same({ "network", 1 }, { err.kind, err.curl_code }, url) -- CURLE_UNSUPPORTED_PROTOCOL
      end
      s:close()
    end)
  end)

  describe("the method line", function()
    it("is the method given, whether or not there is a body", function()
      local s = session()
      for _, method in ipairs { "GET", "DELETE", "PUT", "POST" } do
        s:perform(method, srv.endpoint .. "/groups", '{"a":1}')
        s:perform(method, srv.endpoint .. "/groups")
      end
      s:close()
      local seen = {}
      for _, request in ipairs(srv:requests()) do
        seen[#seen + 1] = request.method .. " " .. tostring(request.body)
      end
      assert.are.same({
        'GET {"a":1}', "GET nil", 'DELETE {"a":1}', "DELETE nil",
        'PUT {"a":1}', "PUT nil", 'POST {"a":1}', "POST nil",
      }, seen)
    end)

    -- A session sets only the options that differ from its last request's: every
    -- change of method, body, URL, header list or way (perform, or prepare and a multi
    -- handle) must still reach the wire, in any order.
    it("stays right through any sequence of methods, bodies, URLs, header lists and ways", function()
      local s = session()
      local multi = core.multi()
      local other = { "X-Soracom-API-Key: " .. srv.api_key, "X-Soracom-Token: " .. srv.token,
        "X-Other: 1" }
      local groups, health = srv.endpoint .. "/groups", srv.endpoint .. "/groups/none"
      local steps = {
        { "GET", groups }, { "GET", groups }, { "HEAD", groups }, { "HEAD", groups },
        { "GET", groups }, { "POST", groups, '{"a":1}' }, { "GET", groups },
        { "DELETE", groups }, { "DELETE", groups }, { "PUT", groups, '{"b":2}' },
        { "PUT", groups, '{"b":2}' }, { "HEAD", groups }, { "POST", groups, "" },
        { "GET", health }, { "GET", groups, nil, "multi" }, { "GET", groups },
        { "GET", groups, nil, "headers" }, { "GET", groups }, { "HEAD", health, nil, "multi" },
        { "DELETE", groups, '{"c":3}' }, { "HEAD", groups }, { "GET", groups, nil, "headers" },
        { "POST", groups, '{"d":4}', "multi" }, { "GET", health }, { "OPTIONS", groups },
        { "OPTIONS", groups }, { "GET", groups },
      }
      local lines = auth
      local expected = {}
      for i, step in ipairs(steps) do
        local method, url, body, how = step[1], step[2], step[3], step[4]
        if how == "headers" then
          lines = lines == auth and other or auth
          s:set_headers(lines)
        end
        local value, err
        if how == "multi" then
          assert(s:prepare(method, url, body))
          assert(multi:add(s))
          while #multi:poll(1) == 0 do end
          value, err = s:finish()
        else
          value, err = s:perform(method, url, body)
        end
        assert(value ~= nil or (err and err.kind == "http"), "step " .. i .. ": " .. tostring(err))
        -- (the fake records an empty body as none)
        expected[i] = { method = method, path = url:match("^https?://[^/]+(.*)$"),
          body = body ~= "" and body or nil, json = body ~= nil, other = lines == other }
      end
      s:close()
      multi:close()
      local seen = {}
      for i, request in ipairs(srv:requests()) do
        local h = request.headers
        seen[i] = { method = request.method, path = request.uri, body = request.body,
          json = h["content-type"] == "application/json", other = h["x-other"] == "1" }
        assert.are.equal(srv.token, h["x-soracom-token"], "request " .. i)
        assert.are.same(expected[i], seen[i], "request " .. i)
      end
      assert.are.equal(#expected, #seen)
    end)
  end)

  describe("arguments", function()
    local function raises(pattern, fn)
      local ok, err = pcall(fn)
      assert.is_false(ok, pattern)
      assert.matches(pattern, tostring(err), 1, true)
    end

    it("of perform and set_headers are checked before any request", function()
      local s = session()
      local url = srv.endpoint .. "/groups"
      raises("session:perform: method must be an HTTP method token (got nil)",
        function() s:perform(nil, url) end)
      raises("session:perform: method must be an HTTP method token (got string)",
        function() s:perform("GET /x HTTP/1.1\r\nX:", url) end)
      raises("session:perform: url must be a string without NUL bytes (got no value)",
        function() s:perform("GET") end)
      raises("session:perform: url must be a string without NUL bytes (got string)",
        function() s:perform("GET", url .. "\0/x") end)
      raises("session:perform: body must be a string or nil (got number)",
        function() s:perform("PUT", url, 5) end)
      raises("session:perform: paginated must be a boolean or nil (got string)",
        function() s:perform("GET", url, nil, "yes") end)
      raises("session:set_headers: lines must be a table of header lines (got string)",
        function() s:set_headers("Accept: x") end)
      raises("session:set_headers: header 2 is not a string (got number)",
        function() s:set_headers { "Accept: x", 5 } end)
      raises("session:set_headers: header 1 contains a line break",
        function() s:set_headers { "Accept: x\r\nX-Evil: 1" } end)
      raises('session:set_headers: header 1 is not "Name: value"',
        function() s:set_headers { "no colon here" } end)
      raises("bad argument #1", function() s.perform({}, "GET", url) end)
      raises("bad argument #1", function() s.last_rate_limit(io.stdout) end)
      -- a refused set_headers keeps the previous headers
      assert.are.same({}, (s:perform("GET", url)))
      s:close()
      raises("session:perform: the client is closed", function() s:perform("GET", url) end)
      raises("session:last_rate_limit: the client is closed", function() s:last_rate_limit() end)
      assert.are.equal(1, #srv:requests())
    end)

    it("of core.session are checked, and read without running the table's metamethods", function()
      raises("session: settings must be a table (got no value)", function() core.session() end)
      raises("session: timeout must be a positive number of seconds (got string)",
        function() core.session { timeout = "1" } end)
      raises("session: connect_timeout must be a positive number of seconds (got number)",
        function() core.session { connect_timeout = 0 / 0 } end)
      raises("session: timeout must be a positive number of seconds (got number)",
        function() core.session { timeout = math.huge } end)
      raises("session: max_body_size must be a positive number of bytes (got number)",
        function() core.session { max_body_size = -1 } end)
      raises("session: insecure must be a boolean or nil (got string)",
        function() core.session { insecure = "no" } end)
      raises("session: ca_file must be a string without NUL bytes (got number)",
        function() core.session { ca_file = 1 } end)
      raises("session: proxy must be a string without NUL bytes (got string)",
        function() core.session { proxy = "http://h\0:1" } end)
      raises("session: user_agent must be one line (got string)",
        function() core.session { user_agent = "a\r\nX-Evil: 1" } end)
      local options = setmetatable({ timeout = 5 }, {
        __index = function(_, name) error("__index ran for " .. name) end,
      })
      local s = core.session(options)
      s:set_headers(auth)
      assert.are.same({ ok = true }, (s:perform("GET", srv.url .. "/_fake/health")))
      s:close()
    end)
  end)

  describe("the exchange a perform reads into", function()
    -- A session keeps the userdata of its last exchange in its user value, for the next
    -- perform; the debug library reaches that table.
    it("is its own, whatever the debug library puts in the session's user value", function()
      local s = session()
      local url = srv.endpoint .. "/groups"
      local get_uv = debug.getuservalue or debug.getfenv
      local set_uv = debug.setuservalue or debug.setfenv
      assert.are.same({}, (s:perform("GET", url)))
      local uv = get_uv(s)
      assert.are.equal("table", type(uv))
      local other = core.session {}
      other:set_headers(auth)
      assert.are.same({}, (other:perform("GET", url)))
      -- another session's exchange, a file, a session, a string
      for _, intruder in ipairs { get_uv(other)[2], io.stdout, other, "x" } do
        uv[2] = intruder
        local value, key, status = s:perform("GET", url, nil, true)
        assert.are.same({ {}, nil, 200 }, { value, key, status })
        assert.are.equal("userdata", type(uv[2]))
        assert.are_not.equal(intruder, uv[2])
      end
      set_uv(s, {})
      assert.are.same({}, (s:perform("GET", url)))
      assert.are.same({}, (other:perform("GET", url)))
      s:close()
      other:close()
      assert.are.equal(8, #srv:requests())
    end)
  end)

  describe("last_rate_limit", function()
    it("gives the last response's X-Soracom-Ratelimit-* values, nil when it has none", function()
      srv:settings { rate_limit = { limit = 2, window = 60 } }
      local s = session()
      assert.is_nil(s:last_rate_limit())
      local url = srv.endpoint .. "/groups"
      assert.are.same({}, (s:perform("GET", url, nil, true)))
      assert.are.same({ limit = 2, remaining = 1, refresh = 60 }, s:last_rate_limit())
      assert.are.same({}, (s:perform("GET", url, nil, true)))
      assert.are.same({ limit = 2, remaining = 0, refresh = 60 }, s:last_rate_limit())
      local _, err = s:perform("GET", url, nil, true)
      assert.are.equal(429, err.status)
      assert.are.same({ limit = 2, remaining = 0, refresh = 60 }, s:last_rate_limit())
      assert.are.same({ ok = true }, (s:perform("GET", srv.url .. "/_fake/health")))
      assert.is_nil(s:last_rate_limit())
      s:close()
    end)

    it("reads digits only: a value with a sign, an exponent or a point is left out", function()
      srv:faults {
        { status = 200, body = "[]", headers = {
          ["X-Soracom-Ratelimit-Limit"] = "1e3",
          ["X-Soracom-Ratelimit-Remaining"] = "+5",
          ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = " 12 ",
        } },
        { status = 200, body = "[]", headers = {
          ["X-Soracom-Ratelimit-Limit"] = "1000.0",
          ["X-Soracom-Ratelimit-Remaining"] = "-1",
          ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "0x10",
        } },
        { status = 200, body = "[]", headers = {
          ["X-Soracom-Ratelimit-Limit"] = "999999999999999",
          ["X-Soracom-Ratelimit-Remaining"] = "1000000000000000",
          ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "007",
        } },
      }
      local s = session()
      local url = srv.endpoint .. "/groups"
      s:perform("GET", url)
      assert.are.same({ refresh = 12 }, s:last_rate_limit())
      s:perform("GET", url)
      assert.is_nil(s:last_rate_limit())
      s:perform("GET", url)
      assert.are.same({ limit = 999999999999999, refresh = 7 }, s:last_rate_limit())
      s:close()
    end)

    it("comes with perform's and finish's results too: a fourth value, or the error's rate_limit", function()
      srv:settings { rate_limit = { limit = 2, window = 60 } }
      local s = session()
      local multi = core.multi()
      local url = srv.endpoint .. "/groups"
      local value, key, status, limits = s:perform("GET", url, nil, true)
      assert.are.same({ {}, nil, 200, { limit = 2, remaining = 1, refresh = 60 } },
        { value, key, status, limits })
      assert(s:prepare("GET", url, nil, true))
      assert(multi:add(s))
      while #multi:poll(1) == 0 do end
      value, key, status, limits = s:finish()
      assert.are.same({ {}, nil, 200, { limit = 2, remaining = 0, refresh = 60 } },
        { value, key, status, limits })
      local nothing, err = s:perform("GET", url, nil, true)
      assert.is_nil(nothing)
      assert.are.same({ 429, { limit = 2, remaining = 0, refresh = 60 } }, { err.status, err.rate_limit })
      assert.are.same(err.rate_limit, s:last_rate_limit())
      -- none: nil, and no rate_limit on an error
      value, key, status, limits = s:perform("GET", srv.url .. "/_fake/health")
      assert.are.same({ { ok = true }, nil, 200 }, { value, key, status })
      assert.is_nil(limits)
      assert.are.equal(4, select("#", s:perform("GET", srv.url .. "/_fake/health")))
      nothing, err = s:perform("GET", srv.url .. "/_fake/no-such-thing")
      assert.is_nil(nothing)
      assert.are.equal("http", err.kind)
      assert.is_nil(err.rate_limit)
      s:close()
      multi:close()
    end)
  end)

  -- Lua 5.4 calls no finalizer left by another finalizer within one C call (checked
  -- by hand: the decoding of a big body runs one, first), so there these cases cannot
  -- be set up and are left pending.
  local it_finalizing = _VERSION == "Lua 5.4" and pending or it

  describe("a finalizer that runs while perform pushes its results", function()
    -- A 429 whose error body takes many allocations to decode.
    local function big_429()
      local pad = {}
      for i = 1, 4000 do pad[i] = '{"i":' .. i .. "}" end
      return { status = 429, headers = { ["Retry-After"] = "5" }, times = 20,
        body = '{"code":"FAK0429","message":"slow down","pad":[' .. table.concat(pad, ",") .. "]}" }
    end

    -- spec/support/finalizer_child.lua's line for `mode`.
    local function child(mode)
      local interpreter = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
      srv:faults { big_429() }
      local pipe = assert(io.popen(interpreter .. " spec/support/finalizer_child.lua " .. mode .. " "
        .. srv.url .. " " .. srv.api_key .. " " .. srv.token .. " 2>&1"))
      local output = pipe:read("*a")
      pipe:close()
      return output
    end

    -- outer: nil, then the 429's status, code, message and retry_after, all intact
    local OUTER = "nil 429 FAK0429 slow down 5"

    it_finalizing("and performs on the same session changes nothing in the results", function()
      assert.are.equal(OUTER .. " | true true 200 | -\n", child("same"))
    end)

    it_finalizing("and performs on another session changes nothing in the results", function()
      assert.are.equal(OUTER .. " | true true 200 | -\n", child("other"))
    end)

    it_finalizing("and closes the session changes nothing in the results, and it stays closed", function()
      assert.are.equal(OUTER .. " | true nil nil | false\n", child("close"))
    end)
  end)
end)
