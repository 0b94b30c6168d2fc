-- nginx workers whose requests outlive or lose one another (issue 23): a worker killed
-- while it holds the login's lock, an operator whose two identities share one budget,
-- a client closed while its login waits, a client that gives up during its worker's
-- login, an /auth outage. A real nginx (spec/nginx_workers/nginx.conf.in, two workers,
-- or one) against the fake, hit from curl; a fresh pair for each case.
local harness = require "spec.nginx.harness"
local socket = require "socket"
local core = require "soracom.groups.core"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read("*a")
  file:close()
  return text
end

-- The cases of one nginx with `workers` workers, each given a fresh fake and nginx.
local function with_nginx(workers, cases)
  return function()
    local env = {}
    before_each(function()
      env.srv, env.nginx = harness.start_with_fake({}, "spec/nginx_workers/nginx.conf.in", nil,
        { WORKERS = workers })
    end)
    after_each(function()
      harness.stop_both(env.srv, env.nginx)
      env.srv, env.nginx = nil, nil
    end)
    cases(env)
  end
end

local function get_json(nginx, path)
  local status, body = nginx:get(path)
  assert.are.equal(200, status, body)
  return assert(core.decode_json(body))
end

local function burst(nginx, path, count, parallel) return nginx:burst(path, count, parallel) end

-- `count` GETs of `url` started now in the background, each with curl -m `limit`; returns
-- a function that waits for them all (at most limit + 5 s) and gives each one's answer
-- (decoded, or nil when curl got none) and the time it ended (socket.gettime's clock).
local function in_background(url, count, limit)
  local dir = (io.popen("mktemp -d"):read("*l"))
  local script = {}
  for i = 1, count do
    script[#script + 1] = string.format("(curl -s -m %g -o %s %s; date +%%s.%%N > %s) &", limit,
      quote(dir .. "/" .. i .. ".json"), quote(url), quote(dir .. "/" .. i .. ".end"))
  end
  os.execute("(" .. table.concat(script, " ") .. " wait) >/dev/null 2>&1 &")
  return function()
    local deadline = socket.gettime() + limit + 5
    local outcomes = {}
    for i = 1, count do
      local ended
      repeat
        ended = read_file(dir .. "/" .. i .. ".end")
        if ended == nil or ended == "" then socket.sleep(0.05) end
      until (ended and ended ~= "") or socket.gettime() > deadline
      local body = read_file(dir .. "/" .. i .. ".json")
      outcomes[i] = { answer = body and body ~= "" and core.decode_json(body) or nil, ended = tonumber(ended) }
    end
    os.execute("rm -rf " .. quote(dir))
    return outcomes
  end
end

-- The /auth requests the fake received since its requests were cleared.
local function auth_requests(srv)
  local n = 0
  for _, request in ipairs(srv:requests()) do
    if request.method == "POST" and request.uri:match("/v1/auth$") then n = n + 1 end
  end
  return n
end

local function answers_429(srv, api)
  local by_api = srv:stats().by_api[api]
  return by_api and by_api.status_429 or 0
end

-- 40 requests during an /auth outage, with retries = 2: every one fails, and all of
-- them together send no more /auth than one login's tries (3), not one login per
-- request and try.
local function outage(env, dict)
  local srv, nginx = env.srv, env.nginx
  local id = srv:seed_groups(1)[1]
  srv:faults { { status = 503, times = 1000 } } -- only /auth is sent: there is no token
  srv:clear_requests()
  local answers = burst(nginx, "/get?set=key&retries=2&base=0.05&id=" .. id .. (dict and "&dict=1" or ""), 40)
  for i, answer in ipairs(answers) do
    assert.is_nil(answer.group, "answer " .. i)
    assert.truthy(answer.err and answer.err:find("/auth", 1, true), "answer " .. i .. ": " .. tostring(answer.err))
  end
  local sent = auth_requests(srv)
  assert.is_true(sent <= 3, "/auth requests for 40 callers with retries = 2: " .. sent)
end

describe("two nginx workers with shared_dict", with_nginx(2, function(env)
  -- Item 3 of issue 23: nothing checked that the holder of the lock was alive, so every
  -- worker waited for its expiry (a login's hold: connect_timeout + timeout, 70 s).
  it("serves the other worker at once when the worker holding the login's lock is killed", function()
    local srv, nginx = env.srv, env.nginx
    local id = srv:seed_groups(1)[1]
    srv:faults { { delay = 5 } } -- the first login answers late: its worker holds the lock
    local ended = in_background(nginx.url .. "/get?set=key&dict=1&id=" .. id, 16, 10)
    local mark
    local deadline = socket.gettime() + 5
    repeat
      mark = get_json(nginx, "/lock-holder").mark
      if mark == nil then socket.sleep(0.02) end
    until mark or socket.gettime() > deadline
    assert.is_string(mark, "no worker took the login's lock")
    local pid = assert(mark:match("^(%d+):"), mark)
    socket.sleep(0.3) -- the other worker's requests wait for the lock
    assert.is_true(os.execute("kill -KILL " .. pid) ~= false)
    local killed_at = socket.gettime()
    local served = 0
    for i, outcome in ipairs(ended()) do
      local answer = outcome.answer
      if answer then -- (a request of the killed worker gets no answer)
        assert.are.equal(id, answer.group, "request " .. i .. ": " .. tostring(answer.err or answer.raised))
        assert.are_not.equal(tonumber(pid), answer.pid)
        assert.is_true(outcome.ended - killed_at < 2, string.format("request %d answered %.1f s after the kill",
          i, outcome.ended - killed_at))
        served = served + 1
      end
    end
    assert.is_true(served > 0, "no request was served by another worker")
  end)

  -- Item 6: Soracom counts per operator, and an auth key and the root user of one
  -- operator each had a budget of their own.
  it("keeps one budget for the auth key and the root user of one operator: no answer 429", function()
    local srv, nginx = env.srv, env.nginx
    local id = srv:seed_groups(1)[1]
    local function both_sets(i) return "/get?dict=1&set=" .. (i % 2 == 0 and "key" or "root") .. "&id=" .. id end
    -- The budget learns the limit first: answers without limit headers (to any call
    -- before) leave the API taken for unlimited, and until the first answer with them
    -- comes back every request goes at once.
    srv:settings { rate_limit = { limit = 20, window = 2 } }
    burst(nginx, both_sets, 8)
    srv:clear_stats()
    local answers = burst(nginx, both_sets, 100)
    for i, answer in ipairs(answers) do
      assert.are.equal(id, answer.group, "answer " .. i .. ": " .. tostring(answer.err or answer.raised))
    end
    assert.are.equal(0, answers_429(srv, "GET /v1/groups/{group_id}"))
  end)

  -- Item 4.
  it("sends no more /auth during an outage than one login's tries, for 40 requests over the workers", function()
    outage(env, true)
  end)

  -- For auth.lua (issue 23, item 14's other half): close() while the client's login
  -- waited for the dict's lock raised "attempt to index field '_transport'" once the
  -- lock came free, in the request that waited.
  it("ends a login waiting for the dict's lock with kind closed when its client is closed, raising nothing", function()
    local srv, nginx = env.srv, env.nginx
    local id = srv:seed_groups(1)[1]
    srv:faults { { delay = 2 } } -- the first client's login holds the lock 2 s
    local answer = get_json(nginx, "/close-during-login?id=" .. id)
    assert.are.equal(id, answer.first.group, tostring(answer.first.raised or answer.first.kind))
    local second = answer.second
    assert.is_nil(second.raised)
    assert.are.equal("closed", second.kind)
    assert.is_true(second.elapsed < 1.2, "the closed client's call ended " .. second.elapsed .. " s after it began")
    assert.is_nil(nginx:error_log():find("attempt to index", 1, true), nginx:error_log())
  end)
end))

describe("one nginx worker", with_nginx(1, function(env)
  -- Item 1: with lua_check_client_abort on, nginx ends the request whose client went
  -- away, and the coroutine that was logging in with it; the worker's next request
  -- waited for that login until it was taken for lost (180 s).
  it("answers the next request at once after a client gave up during the worker's login", function()
    local srv, nginx = env.srv, env.nginx
    local id = srv:seed_groups(1)[1]
    srv:faults { { delay = 1 } } -- the login answers after 1 s
    local pipe = assert(io.popen("curl -s -m 0.2 " .. quote(nginx.url .. "/get?set=key&id=" .. id) .. " 2>&1; echo"))
    pipe:read("*a")
    pipe:close()
    local started = socket.gettime()
    local ended = in_background(nginx.url .. "/get?set=key&id=" .. id, 1, 10)
    local outcome = ended()[1]
    assert.is_table(outcome.answer, "no answer within 10 s")
    assert.are.equal(id, outcome.answer.group, tostring(outcome.answer.err or outcome.answer.raised))
    assert.is_true(outcome.ended - started < 2, string.format("answered after %.1f s", outcome.ended - started))
  end)

  -- Item 4.
  it("sends no more /auth during an outage than one login's tries, for 40 requests of the worker", function()
    outage(env, false)
  end)
end))
