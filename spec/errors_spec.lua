-- Failures: HTTP errors, broken responses, the network, wrong arguments, and the
-- client's life (close, __gc, __close).
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local groups = require "soracom.groups"

describe("errors", function()
  local srv, client

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  -- These cases are about what a failure looks like: no retries (see retry_spec.lua).
  before_each(function()
    srv:reset()
    client = new_client(srv, { retries = 0 })
  end)
  after_each(function() client:close() end)

  local function request_count() return #srv:requests() end

  describe("HTTP errors", function()
    it("return nil and an error object with status, code, message, method and path", function()
      local group, err = client:get_group("missing")
      assert.is_nil(group)
      assert.is_true(groups.is_error(err))
      assert.are.equal("http", err.kind)
      assert.are.equal(404, err.status)
      assert.is_string(err.code)
      assert.is_string(err.message)
      assert.are.equal("GET", err.method)
      assert.are.equal("/groups/missing", err.path)
      assert.are.equal("soracom-groups: GET /groups/missing: HTTP 404 (" .. err.code .. "): "
        .. err.message, tostring(err))
    end)

    it("say 401 with Soracom's code when the credentials are wrong, never showing them", function()
      local bad = groups.new { endpoint = srv.endpoint, api_key = "secret-key-123", token = "secret-token-456" }
      local list, err = bad:list_groups()
      bad:close()
      assert.is_nil(list)
      assert.are.equal(401, err.status)
      assert.are.equal("AUM0001", err.code)
      local text = tostring(err)
      assert.is_nil(text:find("secret", 1, true))
      for _, value in pairs(err) do
        assert.is_nil(tostring(value):find("secret", 1, true))
      end
      assert.is_nil(tostring(bad):find("secret", 1, true))
    end)

    it("say 400 when the server refuses a namespace", function()
      local group = client:create_group()
      srv:faults { { status = 400, body = { code = "FAK0400", message = "The specified namespace does not exist" } } }
      local ok, err = client:delete_config_namespace(group.groupId, "SoracomAir")
      assert.is_nil(ok)
      assert.are.equal(400, err.status)
      assert.are.equal("The specified namespace does not exist", err.message)
    end)

    it("give a readable message for a non-JSON body, as a load balancer sends", function()
      srv:faults { { status = 502, headers = { ["Content-Type"] = "text/html" },
        body = "<html><body><h1>502 Bad Gateway</h1></body></html>\n" } }
      local group, err = client:get_group("x")
      assert.is_nil(group)
      assert.are.equal(502, err.status)
      assert.is_nil(err.code)
      assert.are.equal("<html><body><h1>502 Bad Gateway</h1></body></html>", err.message)
      assert.matches("HTTP 502: <html>", tostring(err), 1, true)
    end)

    it("give the status's name when the body is empty", function()
      srv:faults { { status = 503, body = "" } }
      local _, err = client:get_group("x")
      assert.are.equal("HTTP 503 Service Unavailable", err.message)
    end)
  end)

  describe("broken responses", function()
    it("report invalid JSON in a 200 as a decode error", function()
      srv:faults { { status = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"groupId": "x",' } }
      local group, err = client:get_group("x")
      assert.is_nil(group)
      assert.are.equal("decode", err.kind)
      assert.are.equal(200, err.status)
      assert.matches("invalid JSON", err.message)
      assert.matches("^soracom%-groups: GET /groups/x: bad response", tostring(err))
    end)

    it("report a dropped connection as a network error", function()
      srv:faults { { close = true, times = 3 } }
      local group, err = client:get_group("x")
      assert.is_nil(group)
      assert.are.equal("network", err.kind)
      assert.is_number(err.curl_code)
      assert.matches("^soracom%-groups: GET /groups/x: network error: ", tostring(err))
    end)
  end)

  describe("successes", function()
    it("return the value alone, even when the server sends a next key", function()
      local group = client:create_group()
      srv:faults { { status = 200, headers = { ["X-Soracom-Next-Key"] = "k" },
        body = { groupId = group.groupId } } }
      local value, second = client:get_group(group.groupId)
      assert.are.equal(group.groupId, value.groupId)
      assert.is_nil(second)
    end)

    it("of a list must be an array", function()
      srv:faults { { status = 200, body = "" } }
      local list, err = client:list_groups()
      assert.is_nil(list)
      assert.are.equal("decode", err.kind)
      assert.are.equal("expected a JSON array of groups", err.message)
      srv:faults { { status = 200, body = '"text"' } }
      local ok, raised = pcall(function() for _ in client:groups() do end end)
      assert.is_false(ok)
      assert.are.equal("decode", raised.kind)
    end)

    it("follow a rel=next among several Link headers", function()
      srv:faults { { status = 200, body = "[]", headers = { Link = {
        '</v1/groups?last_evaluated_key=p>; rel="prev"',
        '</v1/groups?last_evaluated_key=a%2Bb+c>; title="x, y"; REL=next',
      } } } }
      local _, key = client:list_groups()
      assert.are.equal("a+b+c", key)
    end)
  end)

  describe("the network", function()
    it("returns nil and a network error when nothing listens", function()
      local down = groups.new { endpoint = "http://127.0.0.1:9/v1", api_key = "k", token = "t", retries = 0 }
      local group, err = down:get_group("x")
      down:close()
      assert.is_nil(group)
      assert.are.equal("network", err.kind)
      assert.are.equal(7, err.curl_code) -- CURLE_COULDNT_CONNECT
      assert.is_nil(err.status)
    end)

    it("gives up after the timeout on a stalled server", function()
      local slow = new_client(srv, { timeout = 0.3, retries = 0 })
      srv:faults { { delay = 2, status = 200, body = "{}" } }
      local group, err = slow:get_group("x")
      slow:close()
      assert.is_nil(group)
      assert.are.equal("network", err.kind)
      assert.are.equal(28, err.curl_code) -- CURLE_OPERATION_TIMEDOUT
    end)

    it("rounds a tiny timeout up to a millisecond instead of waiting forever", function()
      local hasty = new_client(srv, { timeout = 0.0004, retries = 0 })
      srv:faults { { delay = 1, status = 200, body = "{}" } }
      local group, err = hasty:get_group("x")
      hasty:close()
      assert.is_nil(group)
      assert.are.equal(28, err.curl_code)
    end)

    it("refuses a response larger than max_body_size", function()
      local small = new_client(srv, { max_body_size = 1000 })
      srv:faults { { status = 200, body = '["' .. string.rep("x", 5000) .. '"]' } }
      local value, err = small:get_group("x")
      small:close()
      assert.is_nil(value)
      assert.matches("larger than max_body_size", err.message)
    end)
  end)

  describe("wrong arguments", function()
    local cases = {
      { "get_group", { nil }, "get_group: group_id must be a non-empty string (got nil)" },
      { "get_group", { "" }, 'get_group: group_id must be a non-empty string (got "")' },
      { "get_group", { 42 }, "get_group: group_id must be a non-empty string (got number)" },
      { "delete_group", { {} }, "delete_group: group_id must be a non-empty string (got table)" },
      { "put_config", { "g", "SoracomAr", { { key = "a", value = 1 } } },
        'put_config: namespace "SoracomAr" is not one of' },
      { "put_config", { "g", nil, { { key = "a", value = 1 } } },
        "put_config: namespace must be a non-empty string (got nil)" },
      { "put_config", { "g", "SoracomAir", nil }, "put_config: params must be a non-empty table (got nil)" },
      { "put_config", { "g", "SoracomAir", {} }, "put_config: params must be a non-empty table (got table)" },
      { "put_config", { "g", "SoracomAir", { { key = "a" } } },
        "put_config: params[1] must be {key = <non-empty string>, value = <any>}" },
      { "put_config", { "g", "SoracomAir", { { key = "a", value = 1 }, x = 2 } },
        'put_config: params mixes an array with the key "x"' },
      { "delete_config", { "g", "SoracomOrbit", "k" }, 'delete_config: namespace "SoracomOrbit" is not one of' },
      { "delete_config", { "g", "SoracomAir", nil }, "delete_config: name must be a non-empty string (got nil)" },
      { "delete_config_namespace", { "g", 1 }, "delete_config_namespace: namespace must be a non-empty string" },
      { "put_tags", { "g", "env=prod" }, 'put_tags: tags must be a non-empty table (got "env=prod")' },
      { "put_tags", { "g", { env = 1 } }, "put_tags: tags.env must be a string (got number)" },
      { "put_tags", { "g", { { tagName = "" } } }, "put_tags: tags[1] must be {tagName = <non-empty string>" },
      { "delete_tag", { "g", nil }, "delete_tag: tag_name must be a non-empty string (got nil)" },
      { "list_groups", { "prod" }, 'list_groups: options must be a table (got "prod")' },
      { "list_groups", { { limit = 0 } }, "list_groups: option limit must be a positive integer (got number)" },
      { "list_groups", { { limit = 2.5 } }, "list_groups: option limit must be a positive integer" },
      { "list_groups", { { limt = 2 } }, 'list_groups: unknown option "limt"' },
      { "list_groups", { { tag_name = "env" } }, "list_groups: option tag_value is required with tag_name" },
      { "list_groups", { { tag_name = "env", tag_value = "x", tag_value_match_mode = "fuzzy" } },
        'list_groups: option tag_value_match_mode must be "exact" or "prefix"' },
      { "list_subscribers", { "g", { limit = -1 } }, "list_subscribers: option limit must be a positive integer" },
      { "list_subscribers", { nil, {} }, "list_subscribers: group_id must be a non-empty string" },
      { "create_group", { { tag = { name = "x" } } }, 'create_group: unknown option "tag"' },
      { "create_group", { { configuration = { Air = {} } } }, 'create_group: namespace "Air" is not one of' },
      { "create_group", { { configuration = { SoracomAir = true } } },
        "create_group: configuration.SoracomAir must be a table (got boolean)" },
      { "create_group", { "x" }, 'create_group: options must be a table (got "x")' },
    }

    for _, case in ipairs(cases) do
      local method, args, message = case[1], case[2], case[3]
      it(method .. " raises '" .. message .. "' and sends nothing", function()
        local unpack = table.unpack or unpack -- luacheck: ignore 143
        local ok, err = pcall(function() return client[method](client, unpack(args, 1, 3)) end)
        assert.is_false(ok)
        assert.is_truthy(err:find("soracom.groups: " .. message, 1, true), err)
        assert.are.equal(0, request_count())
      end)
    end

    it("point at the caller's line", function()
      local function blamed(f)
        local ok, err = pcall(f)
        assert.is_false(ok)
        return err
      end
      assert.matches("errors_spec.lua:%d+: soracom.groups: get_group",
        blamed(function() client:get_group(nil) end))
      assert.matches("errors_spec.lua:%d+: soracom.groups: put_tags",
        blamed(function() client:put_tags("g", {}) end))
      assert.matches("errors_spec.lua:%d+: soracom.groups: create_group",
        blamed(function() client:create_group { configuration = { SoracomAir = 1 } } end))
      assert.matches("errors_spec.lua:%d+: soracom.groups.new: api_key given without token",
        blamed(function() groups.new { api_key = "k" } end))
      assert.matches("errors_spec.lua:%d+: soracom.groups.new: max_body_size must be a whole number",
        blamed(function() groups.new { api_key = "k", token = "t", max_body_size = 1.5 } end))
      client:close()
      assert.matches("errors_spec.lua:%d+: soracom.groups: list_groups: the client is closed",
        blamed(function() for _ in client:groups() do end end))
    end)

    it("name the field of a body value JSON cannot hold", function()
      local err = select(2, pcall(function()
        client:put_config("g", "SoracomAir", { { key = "x", value = { 1, print } } })
      end))
      assert.matches("errors_spec.lua:%d+: soracom.groups: put_config: params%[1%]%.value%[2%]: "
        .. "a function cannot be sent as JSON", err)
      assert.has_error(function() client:put_tags("g", { name = "bad \255 utf8" }) end)
      assert.are.equal(0, request_count())
    end)

    it("refuse . and .. as path segments, which would name another resource", function()
      assert.has_error(function() client:get_group("..") end,
        'soracom.groups: get_group: group_id must not be ".."')
      assert.has_error(function() client:delete_tag("g", ".") end,
        'soracom.groups: delete_tag: tag_name must not be "."')
      assert.has_error(function() client:delete_config("g", "SoracomBeam", "..") end,
        'soracom.groups: delete_config: name must not be ".."')
      assert.are.equal(0, request_count())
    end)

    it("say how to call a method called with . instead of :", function()
      assert.has_error(function() client.get_group("g") end,
        "soracom.groups: get_group: call it as client:get_group(...)")
      assert.has_error(function() client.groups { limit = 1 } end,
        "soracom.groups: groups: call it as client:groups(...)")
      assert.has_error(function() client.list_groups { limit = 1 } end,
        "soracom.groups: list_groups: call it as client:list_groups(...)")
    end)
  end)

  describe("every option of groups.new", function()
    local wrong = { string = 42, number = "1", boolean = "yes", ["function"] = true }
    local expected = {
      endpoint = "string", coverage = "string", sandbox = "boolean", lang = "string", profile = "string",
      api_key = "string", token = "string", auth_key_id = "string", auth_key = "string", email = "string",
      password = "string", operator_id = "string", user_name = "string",
      token_timeout_seconds = "number", connect_timeout = "number", timeout = "number",
      max_body_size = "number", debug = "function", retries = "number", retry_base_delay = "number",
      retry_max_delay = "number", rate_limit_max_delay = "number", retry_post = "boolean",
      sleep = "function", insecure = "boolean", ca_file = "string", ca_path = "string", proxy = "string",
      transport = "string", keepalive_timeout = "number", pool_size = "number",
    }
    for name, kind in pairs(expected) do
      it("raises for a wrong " .. name .. ", naming it", function()
        local options = { api_key = "k", token = "t", [name] = wrong[kind] }
        assert.has_error(function() groups.new(options) end,
          "soracom.groups.new: " .. name .. " must be a " .. kind .. " (got " .. type(wrong[kind]) .. ")")
      end)
      if kind == "string" then
        it("raises for " .. name .. " with a control character", function()
          local options = { api_key = "k", token = "t", [name] = "a\nb" }
          assert.has_error(function() groups.new(options) end,
            "soracom.groups.new: " .. name .. " must be a non-empty string without control characters")
        end)
      end
    end

    it("raises for a wrong mfa_otp_code, which may be a string or a function", function()
      assert.has_error(function() groups.new { email = "e", password = "p", mfa_otp_code = 123456 } end,
        "soracom.groups.new: mfa_otp_code must be a string or a function (got number)")
    end)

    it("raises for negative retries and fractional retries", function()
      assert.has_error(function() groups.new { api_key = "k", token = "t", retries = -1 } end,
        "soracom.groups.new: retries must be a non-negative, finite number")
      assert.has_error(function() groups.new { api_key = "k", token = "t", retries = 1.5 } end,
        "soracom.groups.new: retries must be a whole number")
    end)
  end)

  describe("the other public functions", function()
    it("check their arguments", function()
      assert.has_error(function() groups.array("x") end,
        "soracom.groups.array: expected a table or nothing (got string)")
      assert.are.same({}, groups.array())
      assert.is_false(groups.is_error("x"))
      for _, method in ipairs({ "close", "is_closed", "endpoint", "logout", "operator_id" }) do
        assert.has_error(function() client[method]() end,
          "soracom.groups: " .. method .. ": call it as client:" .. method .. "(...)")
      end
    end)
  end)

  describe("groups.new", function()
    it("checks its options", function()
      assert.has_error(function() groups.new("x") end, "soracom.groups.new: options must be a table (got string)")
      assert.has_error(function() groups.new { api_key = "k" } end,
        "soracom.groups.new: api_key given without token (API key and token credentials)")
      assert.has_error(function() groups.new { token = "t" } end,
        "soracom.groups.new: token given without api_key (API key and token credentials)")
      assert.has_error(function() groups.new { api_key = "k", token = "t", endpoit = "x" } end)
      assert.has_error(function() groups.new { api_key = "k", token = "t", timeout = "1" } end,
        "soracom.groups.new: timeout must be a number (got string)")
      assert.has_error(function() groups.new { api_key = "k", token = "t", timeout = 0 } end,
        "soracom.groups.new: timeout must be a positive, finite number")
      assert.has_error(function() groups.new { api_key = "k", token = "t", timeout = math.huge } end,
        "soracom.groups.new: timeout must be a positive, finite number")
      assert.has_error(function() groups.new { api_key = "k", token = "t", max_body_size = 10.5 } end,
        "soracom.groups.new: max_body_size must be a whole number of bytes")
      assert.has_error(function()
        groups.new { api_key = "k", token = "t", endpoint = "https://user:pw@api.example/v1" }
      end, "soracom.groups.new: endpoint must be a plain base URL, without user info, query or fragment")
      assert.has_error(function() groups.new { api_key = "k", token = "t", endpoint = "https://h/?a=b" } end,
        "soracom.groups.new: endpoint must be a plain base URL, without user info, query or fragment")
      assert.has_error(function() groups.new { api_key = "k\r\nX-Evil: 1", token = "t" } end,
        "soracom.groups.new: api_key must be a non-empty string without control characters")
      assert.has_error(function() groups.new { api_key = "k", token = "t", endpoint = "ftp://x" } end,
        "soracom.groups.new: endpoint must be an http:// or https:// URL")
      assert.has_error(function() groups.new { api_key = "k", token = "t", coverage = "us" } end,
        'soracom.groups.new: coverage must be "jp" or "g" (got "us")')
    end)

    it("picks the endpoint from coverage, and adds /v1 to a bare one", function()
      local function endpoint(options)
        options.api_key, options.token = "k", "t"
        local c = groups.new(options)
        local result = c:endpoint()
        c:close()
        return result
      end
      assert.are.equal("https://api.soracom.io/v1", endpoint {})
      assert.are.equal("https://api.soracom.io/v1", endpoint { coverage = "jp" })
      assert.are.equal("https://g.api.soracom.io/v1", endpoint { coverage = "g" })
      assert.are.equal("http://127.0.0.1:1/v1", endpoint { endpoint = "http://127.0.0.1:1" })
      assert.are.equal("http://127.0.0.1:1/v1", endpoint { endpoint = "http://127.0.0.1:1/v1/" })
    end)
  end)

  describe("closing", function()
    it("is safe twice, and a closed client raises a clear error", function()
      client:close()
      client:close()
      assert.is_true(client:is_closed())
      assert.matches("closed", tostring(client))
      assert.has_error(function() client:get_group("x") end, "soracom.groups: get_group: the client is closed")
      assert.has_error(function() for _ in client:groups() do end end,
        "soracom.groups: list_groups: the client is closed")
    end)

    it("happens when a client is collected", function()
      for _ = 1, 50 do
        local c = new_client(srv)
        c:list_groups()
      end
      collectgarbage()
      collectgarbage()
      assert.is_table(client:list_groups())
    end)

    if _VERSION == "Lua 5.4" then
      it("happens at the end of a <close> scope on Lua 5.4", function()
        local chunk = assert(load([[
          local groups, options = ...
          local kept
          do
            local c <close> = groups.new(options)
            kept = c
          end
          return kept
        ]]))
        local kept = chunk(groups, { endpoint = srv.endpoint, api_key = "k", token = "t" })
        assert.is_true(kept:is_closed())
      end)
    end
  end)
end)
