-- The curl transport against hostile and broken responses, TLS and proxies.
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

describe("the curl transport", function()
  local srv, waits

  setup(function() srv = fake.start { tls = true } end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    waits = {}
  end)

  local function client_with(extra)
    local options = { sleep = function(seconds) waits[#waits + 1] = seconds end }
    for name, value in pairs(extra or {}) do options[name] = value end
    return new_client(srv, options)
  end

  local function call(options)
    local client = client_with(options)
    local value, err = client:list_groups()
    client:close()
    return value, err
  end

  describe("broken responses", function()
    it("retries a connection reset in the middle of the body", function()
      srv:faults { { reset_after_bytes = 100 } }
      assert.are.same({}, (call()))
      assert.are.equal(1, #waits)
      srv:faults { { reset_after_bytes = 100 } }
      local _, err = call { retries = 0 }
      assert.are.equal("network", err.kind)
      assert.are.equal(56, err.curl_code) -- CURLE_RECV_ERROR
    end)

    it("retries a truncated body", function()
      srv:faults { { truncate = true } }
      assert.are.same({}, (call()))
      srv:faults { { truncate = true } }
      local _, err = call { retries = 0 }
      assert.are.equal(18, err.curl_code) -- CURLE_PARTIAL_FILE
    end)

    it("gives up on an endless slow response after the timeout", function()
      srv:faults { { slow_body = true } }
      local started = core.now()
      local _, err = call { timeout = 0.5, retries = 0 }
      assert.are.equal(28, err.curl_code) -- CURLE_OPERATION_TIMEDOUT
      assert.is_true(core.now() - started < 3)
    end)

    it("refuses a huge body without retrying, and reads a large one", function()
      srv:faults { { huge_body_bytes = 3 * 1024 * 1024 } }
      local _, err = call { max_body_size = 1024 * 1024 }
      assert.matches("larger than max_body_size", err.message)
      assert.are.equal(1, err.attempts)
      assert.are.same({}, waits)
      srv:faults { { huge_body_bytes = 3 * 1024 * 1024 } }
      local list = assert(call())
      assert.is_true(#list > 1000)
    end)
  end)

  describe("TLS", function()
    local function tls_call(options)
      options.endpoint = srv.tls_endpoint
      return call(options)
    end

    it("refuses a server whose CA it does not trust, without retrying", function()
      local _, err = tls_call {}
      assert.are.equal("network", err.kind)
      assert.are.equal(60, err.curl_code) -- CURLE_PEER_FAILED_VERIFICATION
      assert.are.equal(1, err.attempts)
    end)

    it("trusts the CA given with ca_file", function()
      assert.are.same({}, (tls_call { ca_file = srv.ca_file }))
      local requests = srv:requests()
      assert.are.equal("https", requests[#requests].scheme)
    end)

    it("refuses the right server behind the wrong CA", function()
      local _, err = tls_call { ca_file = srv.other_ca_file }
      assert.are.equal(60, err.curl_code)
    end)

    it("skips the checks only with insecure = true", function()
      assert.are.same({}, (tls_call { insecure = true }))
    end)
  end)

  describe("proxies", function()
    it("go through the proxy option", function()
      local value = call { endpoint = "http://soracom-groups.invalid/v1", proxy = srv.url }
      assert.are.same({}, value)
      local request = srv:requests()[1]
      assert.is_true(request.proxied)
      assert.are.equal("http://soracom-groups.invalid/v1/groups", request.uri)
    end)

    it("go through http_proxy from the environment (a child process)", function()
      local interpreter = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
      local script = "package.path = 'lua/?.lua;' .. package.path; require 'spec.support.paths'; "
        .. "local c = require('soracom.groups').new{ endpoint = 'http://soracom-groups.invalid/v1', "
        .. "api_key = '" .. srv.api_key .. "', token = '" .. srv.token .. "' }; "
        .. "print(#assert(c:list_groups()))"
      local pipe = assert(io.popen("env -i PATH=\"$PATH\" http_proxy=" .. srv.url .. " "
        .. interpreter .. " -e \"" .. script .. "\" 2>&1"))
      local output = pipe:read("*a")
      pipe:close()
      assert.are.equal("0\n", output)
      assert.is_true(srv:requests()[1].proxied)
    end)
  end)

  it("keeps working after each kind of failure (no state lost)", function()
    local client = client_with()
    local group = assert(client:create_group { tags = { name = "survivor" } })
    srv:faults { { reset_after_bytes = 10 }, { truncate = true }, { status = 503 }, { close = true } }
    for _ = 1, 4 do
      local again = assert(client:get_group(group.groupId))
      assert.are.equal("survivor", again.tags.name)
    end
    client:close()
  end)

  it("does not leave a closed client usable", function()
    local client = groups.new { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token }
    client:close()
    assert.has_error(function() client:list_groups() end)
  end)
end)
