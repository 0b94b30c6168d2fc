-- Many requests at once inside nginx: light threads sharing one client, and
-- client:map over ngx.thread, against the fake over real HTTP (see spec/nginx/).
local harness = require "spec.nginx.harness"

describe("many requests at once inside nginx", function()
  local srv, nginx

  setup(function() srv, nginx = harness.start_with_fake { tls = true } end)
  teardown(function() harness.stop_both(srv, nginx) end)
  before_each(function() srv:reset() end)

  local function login_options(extra)
    local options = { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key }
    for name, value in pairs(extra or {}) do options[name] = value end
    return options
  end

  local function logins()
    local by_api = srv:stats().by_api["POST /v1/auth"]
    return by_api and by_api.requests or 0
  end

  local function many(request)
    request.options = request.options or login_options()
    return nginx:call(request, "/many")
  end

  describe("50 light threads sharing one client", function()
    it("log in once on a cold start, and call an mfa_otp_code function once", function()
      srv:settings { mfa_otp_code = "123456", latency = 0.05 }
      local id = srv:seed_groups(1)[1]
      local answer = many { mode = "threads", count = 50, mfa_code = "123456",
        call = { op = "get_group", args = { id } } }
      for i = 1, 50 do assert.are.equal(id, answer.results[i].value.groupId, "thread " .. i) end
      assert.are.equal(1, logins())
      assert.are.equal(1, answer.mfa_calls)
    end)

    it("log in once more after the tokens are revoked, and send each call twice at most", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { latency = 0.05 }
      local first = many { mode = "threads", count = 50, client = "revoked",
        call = { op = "get_group", args = { id } } }
      assert.are.equal(id, first.results[50].value.groupId)
      srv:revoke_tokens()
      srv:clear_stats()
      local answer = many { mode = "threads", count = 50, client = "revoked",
        call = { op = "get_group", args = { id } } }
      for i = 1, 50 do assert.are.equal(id, answer.results[i].value.groupId, "thread " .. i) end
      local stats = srv:stats()
      assert.are.equal(1, stats.by_api["POST /v1/auth"].requests)
      assert.is_true(stats.by_api["GET /v1/groups/{group_id}"].requests <= 100)
    end)

    it("share one failed login: each thread gets its error, and /auth is called once", function()
      srv:settings { auth_key = "rotated", latency = 0.05 }
      local answer = many { mode = "threads", count = 20, options = login_options { retries = 2 },
        call = { op = "list_groups" } }
      for i = 1, 20 do
        assert.is_false(answer.results[i].ok, "thread " .. i)
        assert.are.equal(401, answer.results[i].err.status, "thread " .. i)
      end
      assert.are.equal(1, logins())
    end)
  end)

  describe("client:map over light threads", function()
    it("returns every result in input order, with failures and raised errors per item", function()
      local ids = srv:seed_groups(6)
      srv:settings { latency = 0.02, latency_jitter = 0.05 }
      local answer = many { mode = "map", count = 6, concurrency = 3, raise_at = { 2 }, fail_at = { 4 },
        call = { op = "get_group", args = { ids[1] } } }
      local results = answer.results
      assert.are.equal(6, #results)
      for _, i in ipairs { 1, 3, 5, 6 } do
        assert.is_true(results[i].ok, "item " .. i)
        assert.are.equal(ids[1], results[i].value.groupId)
      end
      assert.is_false(results[2].ok)
      assert.truthy(tostring(results[2].err):find("raised by 2", 1, true))
      assert.truthy(results[2].traceback:find("stack traceback", 1, true))
      assert.is_false(results[4].ok)
      assert.are.equal("failed 4", results[4].err)
      assert.are.same({ ok = 4, failed = 2, skipped = 0 },
        { ok = answer.summary.ok, failed = answer.summary.failed, skipped = answer.summary.skipped })
    end)

    it("runs as start_map, stepped by the request, to the same results", function()
      local ids = srv:seed_groups(1)
      srv:settings { latency = 0.05 }
      local answer = many { mode = "start_map", count = 12, concurrency = 4, fail_at = { 5 },
        call = { op = "get_group", args = { ids[1] } } }
      assert.are.same({ 11, 1, 0 }, { answer.summary.ok, answer.summary.failed, answer.summary.skipped })
      assert.are.equal(ids[1], answer.results[12].value.groupId)
      assert.is_true(answer.steps >= 2, "steps: " .. answer.steps)
    end)

    it("cancels a start_map: its running items end as cancelled, the rest are skipped", function()
      local ids = srv:seed_groups(1)
      srv:settings { latency = 0.5 }
      local answer = many { mode = "start_map", count = 12, concurrency = 4, cancel_after = 0.2,
        call = { op = "get_group", args = { ids[1] } } }
      -- (the fake still serves the cancelled requests: let them end before the next case)
      while srv:stats().in_flight > 0 do require("socket").sleep(0.05) end
      srv:settings { latency = 0 }
      assert.are.same({ 0, 4, 8 }, { answer.summary.ok, answer.summary.failed, answer.summary.skipped })
      assert.are.equal("cancelled", answer.results[1].err.kind)
      assert.is_true(answer.results[12].skipped)
      assert.is_true(answer.elapsed_ms < 450, "elapsed: " .. answer.elapsed_ms)
    end)

    it("runs at most `concurrency` calls at once, and overlaps them", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { latency = 0.1 }
      srv:clear_stats()
      many { mode = "map", count = 24, concurrency = 6, options = login_options(),
        call = { op = "get_group", args = { id } } }
      local stats = srv:stats()
      assert.are.equal(6, stats.max_in_flight)
      assert.are.equal(25, stats.requests) -- and one login
    end)

    it("stops starting items after a failure with fail_fast", function()
      local answer = many { mode = "map", count = 10, concurrency = 1, fail_fast = true, fail_at = { 3 },
        options = login_options(), call = { op = "list_groups" } }
      assert.are.same({ 2, 1, 7 }, { answer.summary.ok, answer.summary.failed, answer.summary.skipped })
      assert.is_true(answer.results[10].skipped)
    end)

    it("holds requests at the rate limit instead of sending them into 429s", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { rate_limit = { limit = 10, window = 1 } }
      local answer = many { mode = "map", count = 30, concurrency = 8, options = login_options(),
        call = { op = "get_group", args = { id } } }
      assert.are.equal(30, answer.summary.ok)
      local stats = srv:stats()
      assert.are.equal(0, stats.status_429)
      assert.are.equal(30, stats.by_api["GET /v1/groups/{group_id}"].requests)
      -- 30 at 10 a window: the third window at the earliest
      assert.is_true(answer.elapsed_ms >= 1500, answer.elapsed_ms)
    end)
  end)

  -- Issue 23, item 14: close() under nginx let the requests in flight finish as if
  -- nothing had happened.
  describe("close()", function()
    local socket = require "socket"
    local core = require "soracom.groups.core"
    local LATENCY = 3

    -- A client kept under `name`, logged in, then every answer of the fake slowed down.
    -- (Its first get_group lets the operator's budget in this worker learn that the fake
    -- has no limit now: an earlier case's limit would hold the next ones.)
    local function logged_in(name, id)
      local answer = nginx:call { options = login_options(), client = name,
        calls = { { op = "get_group", args = { id } } } }
      assert.is_table(answer.results[1].value, core.encode_json(answer.results[1]))
      srv:settings { latency = LATENCY }
    end

    local function assert_all_closed(answer, count)
      for i = 1, count do
        local result = answer.results[i]
        assert.is_false(result.ok, "item " .. i)
        assert.are.equal("closed", type(result.err) == "table" and result.err.kind or result.err,
          "item " .. i .. ": " .. core.encode_json(result))
      end
      assert.is_true(answer.elapsed_ms < LATENCY * 1000 / 3, "ended after " .. answer.elapsed_ms .. " ms")
    end

    it("ends the requests of a map in flight with kind closed, from a light thread of the same request", function()
      local id = srv:seed_groups(1)[1]
      logged_in("closed-in-map", id)
      local answer = many { mode = "map", count = 6, concurrency = 6, client = "closed-in-map", close_after = 0.3,
        call = { op = "get_group", args = { id } } }
      assert_all_closed(answer, 6)
      assert.are.same({ 0, 6 }, { answer.summary.ok, answer.summary.failed })
    end)

    it("ends the requests of light threads in flight with kind closed", function()
      local id = srv:seed_groups(1)[1]
      logged_in("closed-in-threads", id)
      local answer = many { mode = "threads", count = 6, client = "closed-in-threads", close_after = 0.3,
        call = { op = "get_group", args = { id } } }
      assert_all_closed(answer, 6)
    end)

    it("ends a login on the wire with kind closed, and the requests that waited for it", function()
      local id = srv:seed_groups(1)[1]
      srv:settings { latency = LATENCY } -- the login's /auth too
      local answer = many { mode = "threads", count = 4, client = "closed-in-login", close_after = 0.3,
        call = { op = "get_group", args = { id } } }
      assert_all_closed(answer, 4)
    end)

    it("ends the requests another nginx request has in flight with kind closed", function()
      local id = srv:seed_groups(1)[1]
      logged_in("closed-elsewhere", id)
      local body = core.encode_json { mode = "threads", count = 6, client = "closed-elsewhere",
        options = login_options(), call = { op = "get_group", args = { id } } }
      local request, out, done = os.tmpname(), os.tmpname(), os.tmpname()
      os.remove(done)
      local file = assert(io.open(request, "wb"))
      file:write(body)
      file:close()
      os.execute("(curl -s -m 20 -o '" .. out .. "' -H 'Content-Type: application/json' --data-binary @'" .. request
        .. "' " .. nginx.url .. "/many; touch '" .. done .. "') >/dev/null 2>&1 &")
      socket.sleep(0.3)
      local status = nginx:get("/close?client=closed-elsewhere")
      assert.are.equal(200, status)
      local deadline = socket.gettime() + 25
      while not io.open(done) and socket.gettime() < deadline do socket.sleep(0.05) end
      file = assert(io.open(out, "rb"))
      local answer = assert(core.decode_json(file:read("*a")))
      file:close()
      for _, path in ipairs { request, out, done } do os.remove(path) end
      assert_all_closed(answer, 6)
    end)
  end)
end)

