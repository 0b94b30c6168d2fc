-- Retries: which failures are tried again, how long the client waits (captured
-- through the sleep option, so no spec sleeps for real except one), and what is left
-- when they run out.
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

describe("retries", function()
  local srv, client, waits

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)

  local function patient_client(extra)
    local options = { sleep = function(seconds) waits[#waits + 1] = seconds end }
    for name, value in pairs(extra or {}) do options[name] = value end
    return new_client(srv, options)
  end

  before_each(function()
    srv:reset()
    waits = {}
    client = patient_client()
  end)
  after_each(function() client:close() end)

  local function count(method)
    local n = 0
    for _, request in ipairs(srv:requests()) do
      if request.method == method then n = n + 1 end
    end
    return n
  end

  local function within(low, high, value)
    assert.is_true(value >= low and value <= high, ("%s not within [%s, %s]"):format(value, low, high))
  end

  describe("on 429", function()
    it("waits as Retry-After says", function()
      srv:faults { { status = 429, headers = { ["Retry-After"] = "2" } } }
      assert.are.same({}, client:list_groups())
      assert.are.same({ 2 }, waits)
      assert.are.equal(2, count("GET"))
    end)

    it("waits as X-Soracom-Ratelimit-Seconds-Before-Refresh says when there is no Retry-After", function()
      srv:faults { { status = 429, headers = { ["X-Soracom-Ratelimit-Limit"] = "1000",
        ["X-Soracom-Ratelimit-Remaining"] = "0", ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "7" } } }
      assert.are.same({}, client:list_groups())
      assert.are.same({ 7 }, waits)
    end)

    it("waits as Retry-After says on a 503 too, within rate_limit_max_delay", function()
      srv:faults { { status = 503, headers = { ["Retry-After"] = "4" } },
        { status = 503, headers = { ["Retry-After"] = "3600" } } }
      assert.are.same({}, client:list_groups())
      assert.are.same({ 4, 60 }, waits)
    end)

    it("reads Retry-After given as an HTTP date", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30)
      srv:faults { { status = 429, headers = { ["Retry-After"] = date } } }
      assert.are.same({}, client:list_groups())
      within(28, 31, waits[1])
    end)

    it("waits at most a minute, or rate_limit_max_delay", function()
      srv:faults { { status = 429, headers = { ["Retry-After"] = "3600" } } }
      client:list_groups()
      assert.are.same({ 60 }, waits)
      local hasty = patient_client { rate_limit_max_delay = 5 }
      srv:faults { { status = 429, headers = { ["Retry-After"] = "3600" } } }
      hasty:list_groups()
      hasty:close()
      assert.are.same({ 60, 5 }, waits)
    end)

    it("backs off when the server says nothing", function()
      srv:faults { { status = 429 } }
      client:list_groups()
      within(0.25, 0.5, waits[1])
    end)

    it("keeps retry_after on the error when retries run out", function()
      local strict = patient_client { retries = 0 }
      srv:faults { { status = 429, headers = { ["Retry-After"] = "12" } } }
      local list, err = strict:list_groups()
      strict:close()
      assert.is_nil(list)
      assert.are.equal(12, err.retry_after)
      assert.are.equal(1, err.attempts)
    end)

    it("retries a POST too: the server refused it without doing it", function()
      srv:faults { { status = 429, headers = { ["Retry-After"] = "1" } } }
      local group = client:create_group { tags = { name = "once" } }
      assert.is_string(group.groupId)
      assert.are.equal(2, count("POST"))
      assert.are.equal(1, #client:list_groups())
    end)
  end)

  describe("on 5xx", function()
    for _, status in ipairs({ 500, 502, 503, 504 }) do
      it("retries a GET after " .. status .. " with growing, jittered waits", function()
        srv:faults { { status = status, times = 3 } }
        assert.are.same({}, client:list_groups())
        assert.are.equal(4, count("GET"))
        assert.are.equal(3, #waits)
        within(0.25, 0.5, waits[1])
        within(0.5, 1, waits[2])
        within(1, 2, waits[3])
      end)
    end

    it("caps each wait at retry_max_delay", function()
      local slow = patient_client { retry_base_delay = 10, retry_max_delay = 12 }
      srv:faults { { status = 503, times = 3 } }
      slow:list_groups()
      slow:close()
      within(5, 10, waits[1])
      within(6, 12, waits[2])
      within(6, 12, waits[3])
    end)

    it("does not retry a POST: it may have been done", function()
      srv:faults { { status = 503 } }
      local group, err = client:create_group()
      assert.is_nil(group)
      assert.are.equal(503, err.status)
      assert.are.equal(1, err.attempts)
      assert.are.same({}, waits)
    end)

    it("retries a POST when retry_post says so", function()
      local bold = patient_client { retry_post = true }
      srv:faults { { status = 503 } }
      assert.is_string(bold:create_group().groupId)
      bold:close()
      assert.are.equal(2, count("POST"))
    end)

    it("keeps the last response's status, code and message when retries run out", function()
      local few = patient_client { retries = 2 }
      srv:faults { { status = 503, times = 5, body = { code = "SVC0001", message = "busy, try later" } } }
      local list, err = few:list_groups()
      few:close()
      assert.is_nil(list)
      assert.are.equal(503, err.status)
      assert.are.equal("SVC0001", err.code)
      assert.are.equal("busy, try later", err.message)
      assert.are.equal(3, err.attempts)
      assert.are.equal("soracom-groups: GET /groups: HTTP 503 (SVC0001): busy, try later (after 3 attempts)",
        tostring(err))
      assert.are.equal(3, count("GET"))
    end)

    it("keeps a plain-text 500's message", function()
      local few = patient_client { retries = 1 }
      srv:faults { { status = 500, times = 2, headers = { ["Content-Type"] = "text/plain" },
        body = "upstream exploded" } }
      local _, err = few:list_groups()
      few:close()
      assert.are.equal("upstream exploded", err.message)
      assert.are.equal(2, err.attempts)
    end)
  end)

  describe("what is not retried", function()
    for _, status in ipairs({ 400, 403, 404, 409 }) do
      it("HTTP " .. status, function()
        srv:faults { { status = status } }
        local _, err = client:list_groups()
        assert.are.equal(status, err.status)
        assert.are.equal(1, err.attempts)
        assert.are.same({}, waits)
      end)
    end

    it("a response that is not JSON", function()
      srv:faults { { status = 200, body = "{oops" } }
      local _, err = client:list_groups()
      assert.are.equal("decode", err.kind)
      assert.are.same({}, waits)
    end)

    it("anything, with retries = 0", function()
      local strict = patient_client { retries = 0 }
      srv:faults { { status = 503 } }
      local _, err = strict:list_groups()
      strict:close()
      assert.are.equal(1, err.attempts)
      assert.are.same({}, waits)
    end)
  end)

  describe("on network failures", function()
    it("retries a GET whose connection was dropped", function()
      srv:faults { { close = true } }
      assert.are.same({}, client:list_groups())
      assert.are.equal(1, #waits)
    end)

    it("does not retry a POST whose connection was dropped after sending", function()
      srv:faults { { close = true, times = 2 } }
      local group, err = client:create_group()
      assert.is_nil(group)
      assert.are.equal("network", err.kind)
      assert.are.same({}, waits)
    end)

    it("retries even a POST when the connection is refused, as nothing was sent", function()
      local down = groups.new { endpoint = "http://127.0.0.1:9/v1", api_key = "k", token = "t", retries = 2,
        sleep = function(seconds) waits[#waits + 1] = seconds end }
      local group, err = down:create_group()
      down:close()
      assert.is_nil(group)
      assert.are.equal(7, err.curl_code)
      assert.are.equal(3, err.attempts)
      assert.are.equal(2, #waits)
      assert.matches("(after 3 attempts)", tostring(err), 1, true)
    end)

    it("retries a request that timed out", function()
      local quick = patient_client { timeout = 0.3 }
      srv:faults { { delay = 1, status = 200, body = "[]" } }
      assert.are.same({}, quick:list_groups())
      quick:close()
      assert.are.equal(1, #waits)
    end)
  end)

  describe("a DELETE whose retry finds the thing gone", function()
    local function deleted_elsewhere()
      local group = client:create_group()
      local other = new_client(srv)
      assert.is_true(other:delete_group(group.groupId)) -- as if the first attempt was done...
      other:close()
      return group.groupId
    end

    -- ...and its answer lost: the outcome of the first attempt is unknown.
    for _, case in ipairs {
      { "a 502", { status = 502 } }, { "a 504", { status = 504 } },
      -- (twice: libcurl sends again by itself when a kept-alive connection gives nothing)
      { "an empty reply", { close = true, times = 2 } }, { "a reset", { reset_after_bytes = 10 } },
    } do
      it("is done after " .. case[1], function()
        local id = deleted_elsewhere()
        srv:faults { case[2] }
        assert.is_true(client:delete_group(id))
      end)
    end

    -- An answer that surely did nothing leaves the 404 an error.
    for _, case in ipairs {
      { "a 503", { status = 503 } }, { "a 429", { status = 429, headers = { ["Retry-After"] = "0" } } },
      { "a 500", { status = 500 } },
    } do
      it("is still an error after " .. case[1], function()
        local id = deleted_elsewhere()
        srv:faults { case[2] }
        local gone, err = client:delete_group(id)
        assert.is_nil(gone)
        assert.are.equal(404, err.status)
        assert.are.equal(2, err.attempts)
      end)
    end

    it("is an error at the first attempt, and after a 401 and a new login", function()
      local id = deleted_elsewhere()
      local gone, err = client:delete_group(id)
      assert.is_nil(gone)
      assert.are.equal(404, err.status)
      local relogging = assert(groups.new { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id,
        auth_key = srv.auth_key })
      assert.is_table(relogging:list_groups())
      srv:revoke_tokens()
      gone, err = relogging:delete_group(id)
      relogging:close()
      assert.is_nil(gone)
      assert.are.equal(404, err.status)
    end)
  end)

  it("sets retry_after only where a wait is asked (429, 503)", function()
    srv:faults { { status = 404, headers = { ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "37" } } }
    local _, err = client:get_group("missing")
    assert.is_nil(err.retry_after)
  end)

  it("retries a login that met a 503", function()
    local auth_client = assert(groups.new { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id,
      auth_key = srv.auth_key, sleep = function(seconds) waits[#waits + 1] = seconds end })
    srv:faults { { status = 503 } }
    assert.are.same({}, auth_client:list_groups())
    auth_client:close()
    assert.are.equal(1, #waits)
    assert.are.equal(2, count("POST"))
  end)

  it("waits through the transport by default", function()
    local real = new_client(srv, { retry_base_delay = 0.1 })
    srv:faults { { status = 503 } }
    local started = core.now()
    assert.are.same({}, real:list_groups())
    real:close()
    assert.is_true(core.now() - started >= 0.05)
  end)

  it("tells the debug hook about each retry", function()
    local lines = {}
    local chatty = patient_client { debug = function(line) lines[#lines + 1] = line end }
    srv:faults { { status = 502 } }
    chatty:list_groups()
    chatty:close()
    assert.matches("retrying GET " .. srv.endpoint .. "/groups in %d%.%d%d s %(HTTP 502, retry 1 of 3%)",
      table.concat(lines, "\n"))
  end)
end)
