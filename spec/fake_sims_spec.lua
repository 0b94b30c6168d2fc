-- luacheck: std +busted
-- The fake Soracom API's SIMs and Batch API (spec/fake), over real HTTP with luasocket:
-- set/unset a SIM's group by SIM id and by IMSI, membership as list_subscribers shows
-- it, batch groups, jobs running over (fake) time, their tasks, injected task failures
-- and the Batch API's limits.
local fake = require "spec.support.fake_server"
local cjson = require "cjson"
local socket = require "socket"

local decode = fake.decode
local unpack = table.unpack or unpack

local SET_GROUP = "POST /v1/sims/{sim_id}/set_group"

describe("fake Soracom API: SIMs and the Batch API", function()
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

  -- Authenticated call; value is a table (sent as JSON), a string (sent as is) or nil.
  -- Returns status, decoded body (or nil), headers.
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
    return status, decoded, headers
  end

  local function set_group(sim_id, group_id)
    return call("POST", "/v1/sims/" .. sim_id .. "/set_group", { groupId = group_id })
  end

  local function unset_group(sim_id)
    return call("POST", "/v1/sims/" .. sim_id .. "/unset_group")
  end

  -- SIM ids of a group's members, in the order list_subscribers gives them.
  local function member_ids(group_id)
    local status, list = call("GET", "/v1/groups/" .. group_id .. "/subscribers")
    assert.are.equal(200, status)
    local ids = {}
    for i, sim in ipairs(list) do
      ids[i] = sim.simId
    end
    return ids
  end

  local function new_batch_group(name)
    local status, bg = call("POST", "/v1/batch_groups", { batchGroupName = name or "fleet" })
    assert.are.equal(200, status)
    return bg.batchGroupId
  end

  local function set_group_tasks(sim_ids, group_id)
    local tasks = {}
    for i, id in ipairs(sim_ids) do
      local path = "/v1/sims/" .. id .. "/set_group"
      tasks[i] = { request = { method = "POST", path = path, body = { groupId = group_id } } }
    end
    return tasks
  end

  local function unset_group_tasks(sim_ids)
    local tasks = {}
    for i, id in ipairs(sim_ids) do
      tasks[i] = { request = { method = "POST", path = "/v1/sims/" .. id .. "/unset_group" } }
    end
    return tasks
  end

  local function jobs_path(bg)
    return "/v1/batch_groups/" .. bg .. "/jobs"
  end

  local function submit(bg, tasks, extra)
    local request = { tasks = tasks }
    for k, v in pairs(extra or {}) do
      request[k] = v
    end
    return call("POST", jobs_path(bg), request)
  end

  local function get_job(bg, job_id)
    local status, job = call("GET", jobs_path(bg) .. "/" .. job_id)
    assert.are.equal(200, status)
    return job
  end

  -- Polls the job every 10 ms until done(job) holds; fails after 5 s.
  local function poll_job(bg, job_id, done)
    local deadline = socket.gettime() + 5
    while true do
      local job = get_job(bg, job_id)
      if done(job) then
        return job
      end
      assert(socket.gettime() < deadline, "job " .. job_id .. " still " .. job.status)
      socket.sleep(0.01)
    end
  end

  local function over(job)
    return job.status ~= "pending" and job.status ~= "running"
  end

  local function tasks_of(bg, job_id, query)
    local status, list, headers = call("GET", jobs_path(bg) .. "/" .. job_id .. "/tasks" .. (query or ""))
    assert.are.equal(200, status)
    return list, headers
  end

  describe("SIM membership", function()
    it("sets, moves and unsets a SIM's group by SIM id, idempotently", function()
      local a, b = unpack(srv:seed_groups(2))
      local ids = srv:add_sims { count = 2 }
      assert.is_nil(srv:sim(ids[1]).groupId)

      local status, sim = set_group(ids[1], a)
      assert.are.equal(200, status)
      assert.are.equal(ids[1], sim.simId)
      assert.are.equal(a, sim.groupId)
      assert.are.same({ ids[1] }, member_ids(a))
      assert.are.equal(a, srv:sim(ids[1]).groupId)

      -- The same group again: 200 and nothing changes, lastModifiedTime included.
      local again_status, again = set_group(ids[1], a)
      assert.are.equal(200, again_status)
      assert.are.equal(sim.lastModifiedTime, again.lastModifiedTime)

      status, sim = set_group(ids[1], b)
      assert.are.equal(200, status)
      assert.are.equal(b, sim.groupId)
      assert.is_true(sim.lastModifiedTime > again.lastModifiedTime)
      assert.are.same({}, member_ids(a))
      assert.are.same({ ids[1] }, member_ids(b))

      status, sim = unset_group(ids[1])
      assert.are.equal(200, status)
      assert.are.equal(ids[1], sim.simId)
      assert.is_nil(sim.groupId)
      assert.are.same({}, member_ids(b))
      assert.is_nil(srv:sim(ids[1]).groupId)
      -- In no group already: 200, unchanged.
      local none_status, none = unset_group(ids[1])
      assert.are.equal(200, none_status)
      assert.is_nil(none.groupId)
      assert.are.equal(sim.lastModifiedTime, none.lastModifiedTime)
      -- The other SIM never moved.
      assert.is_nil(srv:sim(ids[2]).groupId)
    end)

    it("sets and unsets by any IMSI of a multi-IMSI SIM, answering the Subscriber", function()
      local group = srv:seed_groups(1)[1]
      local ids, primaries, all = srv:add_sims { count = 2, imsis = 3 }
      assert.are.equal(3, #all[1])
      assert.are.equal(primaries[1], all[1][1])
      local sim = srv:sim(ids[1])
      local profile = sim.profiles[sim.iccid]
      assert.are.equal(primaries[1], profile.primaryImsi)
      for _, imsi in ipairs(all[1]) do
        assert.are.equal(imsi, profile.subscribers[imsi].imsi)
      end

      local secondary = all[1][3]
      local status, subscriber = call("POST", "/v1/subscribers/" .. secondary .. "/set_group", { groupId = group })
      assert.are.equal(200, status)
      assert.are.equal(secondary, subscriber.imsi)
      assert.are.equal(ids[1], subscriber.simId)
      assert.are.equal(group, subscriber.groupId)
      assert.are.equal(profile.subscribers[secondary].msisdn, subscriber.msisdn)
      assert.is_nil(subscriber.profiles)
      -- The group lists the SIM once, by its primary IMSI.
      local _, list = call("GET", "/v1/groups/" .. group .. "/subscribers")
      assert.are.equal(1, #list)
      assert.are.equal(primaries[1], list[1].imsi)
      assert.are.equal(group, srv:sim(ids[1]).groupId)

      status, subscriber = call("POST", "/v1/subscribers/" .. all[1][2] .. "/unset_group")
      assert.are.equal(200, status)
      assert.are.equal(all[1][2], subscriber.imsi)
      assert.is_nil(subscriber.groupId)
      assert.is_nil(srv:sim(ids[1]).groupId)
      assert.are.same({}, member_ids(group))
      -- as the spec says: a subscriber in no group is a 404 (a SIM id's unset is not)
      local err
      status, err = call("POST", "/v1/subscribers/" .. all[1][2] .. "/unset_group")
      assert.are.equal(404, status)
      assert.are.equal("SIM0005", err.code)
      assert.are.equal(200, (call("POST", "/v1/sims/" .. ids[1] .. "/unset_group")))
      local read
      status, read = call("GET", "/v1/sims/" .. ids[1])
      assert.are.equal(200, status)
      assert.are.equal(ids[1], read.simId)
      assert.are.equal(404, (call("GET", "/v1/sims/8981199999999999999")))
    end)

    it("keeps list_subscribers sorted and paged by primary IMSI as SIMs move", function()
      local a, b = unpack(srv:seed_groups(2))
      local ids, imsis = srv:add_sims { count = 5, group_id = a }
      assert.are.same(ids, member_ids(a))
      assert.are.equal(200, (set_group(ids[4], b)))
      assert.are.equal(200, (set_group(ids[2], b)))
      assert.are.same({ ids[2], ids[4] }, member_ids(b))

      local status, page, headers = call("GET", "/v1/groups/" .. a .. "/subscribers?limit=2")
      assert.are.equal(200, status)
      assert.are.same({ imsis[1], imsis[3] }, { page[1].imsi, page[2].imsi })
      assert.are.equal(imsis[3], headers["x-soracom-next-key"])
      local _, rest, rest_headers =
        call("GET", "/v1/groups/" .. a .. "/subscribers?limit=2&last_evaluated_key=" .. imsis[3])
      assert.are.equal(1, #rest)
      assert.are.equal(imsis[5], rest[1].imsi)
      assert.is_nil(rest_headers["x-soracom-next-key"])

      -- Back into a: between the others again.
      assert.are.equal(200, (set_group(ids[2], a)))
      assert.are.same({ ids[1], ids[2], ids[3], ids[5] }, member_ids(a))
    end)

    it("seeds subscribers into a group as SIMs that can move out", function()
      local a, b = unpack(srv:seed_groups(2))
      local imsis, ids = srv:seed_subscribers(a, 2)
      assert.are.equal(2, #ids)
      assert.are.equal(imsis[1], srv:sim(ids[1]).imsi)
      assert.are.equal(200, (set_group(ids[1], b)))
      local _, list = call("GET", "/v1/groups/" .. a .. "/subscribers")
      assert.are.same({ imsis[2] }, { list[1].imsi })
    end)

    it("answers 404 for an unknown SIM, IMSI or group and 400 without a string groupId", function()
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 1 }
      local status, err = set_group("8981199999999999999", group)
      assert.are.equal(404, status)
      assert.are.equal("SIM0004", err.code)
      status, err = unset_group("8981199999999999999")
      assert.are.equal(404, status)
      assert.are.equal("SIM0004", err.code)
      status, err = call("POST", "/v1/subscribers/999999999999999/set_group", { groupId = group })
      assert.are.equal(404, status)
      assert.are.equal("SIM0004", err.code)
      status, err = call("POST", "/v1/subscribers/999999999999999/unset_group")
      assert.are.equal(404, status)
      assert.are.equal("SIM0004", err.code)

      status, err = set_group(ids[1], "no-such-group")
      assert.are.equal(404, status)
      assert.are.equal("COM0004", err.code)
      assert.truthy(err.message:find("no-such-group", 1, true))
      for _, body in ipairs { "", "{}", '{"groupId":1}', '{"groupId":null}', "[]", "{nope", "false" } do
        status, err = call("POST", "/v1/sims/" .. ids[1] .. "/set_group", body)
        assert.are.equal(400, status, body)
        assert.are.equal("COM0001", err.code, body)
        assert.is_string(err.message, body) -- what was wrong, said (a JSON false too)
      end
      assert.is_nil(srv:sim(ids[1]).groupId)
      assert.are.equal(405, (call("GET", "/v1/sims/" .. ids[1] .. "/set_group")))
    end)

    it("leaves a deleted group's SIMs in no group", function()
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 2, group_id = group }
      assert.are.equal(204, (call("DELETE", "/v1/groups/" .. group)))
      assert.is_nil(srv:sim(ids[1]).groupId)
      assert.is_nil(srv:sim(ids[2]).groupId)
      local other = srv:seed_groups(1)[1]
      assert.are.equal(200, (set_group(ids[1], other)))
      assert.are.same({ ids[1] }, member_ids(other))
    end)

    it("controls: add_sims refuses an unknown group or a taken id, sim() gives nil for none", function()
      assert.is_nil(srv:sim("nope"))
      assert.has_error(function() srv:add_sims { count = 1, group_id = "missing" } end)
      local ids = srv:add_sims { sims = { { simId = "sim-a", imsi = "001010000000001" } } }
      assert.are.same({ "sim-a" }, ids)
      assert.are.equal("001010000000001", srv:sim("sim-a").imsi)
      assert.has_error(function() srv:add_sims { sims = { { simId = "sim-a" } } } end)
      assert.has_error(function() srv:add_sims { sims = { { imsi = "001010000000001" } } } end)
      assert.has_error(function() srv:add_sims { count = 1, imsis = 0 } end)
      -- A generated SIM skips the IMSI taken explicitly.
      local _, imsis = srv:add_sims { count = 1 }
      assert.are_not.equal("001010000000001", imsis[1])
    end)

    it("counts, rate-limits and faults the new routes like every other", function()
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 2 }
      srv:settings { rate_limit = { limit = 100, window = 60, apis = { [SET_GROUP] = { limit = 1 } } } }
      assert.are.equal(200, (set_group(ids[1], group)))
      local status, err, headers = set_group(ids[2], group)
      assert.are.equal(429, status)
      assert.are.equal("AGW0003", err.code)
      assert.are.equal("0", headers["x-soracom-ratelimit-remaining"])
      assert.is_nil(srv:sim(ids[2]).groupId)
      -- unset_group has its own window.
      assert.are.equal(200, (unset_group(ids[1])))
      local by_api = srv:stats().by_api
      assert.are.same({ requests = 2, status_429 = 1, windows = 1, most_429_in_a_window = 1 }, by_api[SET_GROUP])
      assert.are.same({ requests = 1, status_429 = 0, windows = 1, most_429_in_a_window = 0 },
        by_api["POST /v1/sims/{sim_id}/unset_group"])

      srv:settings { rate_limit = cjson.null }
      srv:faults { { status = 503 } }
      status, err = set_group(ids[2], group)
      assert.are.equal(503, status)
      assert.are.equal("FAK0503", err.code)
      assert.is_nil(srv:sim(ids[2]).groupId)
      local bg_status = call("POST", "/v1/batch_groups", { batchGroupName = "x" })
      assert.are.equal(200, bg_status)
      srv:faults { { status = 500 } }
      assert.are.equal(500, (call("GET", "/v1/batch_groups")))
      assert.are.equal(1, srv:stats().by_api["POST /v1/batch_groups"].requests)
    end)
  end)

  describe("batch groups", function()
    it("creates, lists (paged), gets and deletes batch groups", function()
      local status, bg = call("POST", "/v1/batch_groups", { batchGroupName = "Monthly", description = "d" })
      assert.are.equal(200, status)
      assert.is_string(bg.batchGroupId)
      assert.are.equal("Monthly", bg.batchGroupName)
      assert.are.equal("d", bg.description)
      -- Whole seconds, as in the spec's examples.
      assert.is_true(math.abs(bg.createdTime - os.time()) <= 2, tostring(bg.createdTime))
      assert.are.equal(bg.createdTime, bg.updatedTime)
      local second, third = new_batch_group("two"), new_batch_group(("x"):rep(100))

      local _, page, headers = call("GET", "/v1/batch_groups?limit=2")
      assert.are.same({ bg.batchGroupId, second }, { page[1].batchGroupId, page[2].batchGroupId })
      assert.are.equal(second, headers["x-soracom-next-key"])
      local _, rest, rest_headers = call("GET", "/v1/batch_groups?limit=2&last_evaluated_key=" .. second)
      assert.are.equal(1, #rest)
      assert.are.equal(third, rest[1].batchGroupId)
      assert.is_nil(rest_headers["x-soracom-next-key"])

      local _, got = call("GET", "/v1/batch_groups/" .. second)
      assert.are.equal("two", got.batchGroupName)
      assert.are.equal(204, (call("DELETE", "/v1/batch_groups/" .. second)))
      local err
      status, err = call("GET", "/v1/batch_groups/" .. second)
      assert.are.equal(404, status)
      assert.are.equal("BAT0004", err.code)
      assert.are.equal(404, (call("DELETE", "/v1/batch_groups/" .. second)))
      local _, all = call("GET", "/v1/batch_groups")
      assert.are.equal(2, #all)
    end)

    it("refuses a batch group without a name of 1 to 100 characters", function()
      for _, request in ipairs {
        {}, { batchGroupName = "" }, { batchGroupName = ("x"):rep(101) }, { batchGroupName = 5 },
        { batchGroupName = "ok", description = ("d"):rep(501) },
      } do
        local status, err = call("POST", "/v1/batch_groups", request)
        assert.are.equal(400, status)
        assert.are.equal("COM0001", err.code)
      end
      local _, all = call("GET", "/v1/batch_groups")
      assert.are.same({}, all)
    end)

    it("refuses to delete a batch group while its job is pending or running", function()
      srv:settings { batch_start_delay = 0.2, batch_task_seconds = 0.01 }
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 2 }
      local bg = new_batch_group()
      local _, job = submit(bg, set_group_tasks(ids, group))
      local status, err = call("DELETE", "/v1/batch_groups/" .. bg)
      assert.are.equal(400, status)
      assert.are.equal("BAT0003", err.code)
      assert.truthy(err.message:find(job.jobId, 1, true))
      poll_job(bg, job.jobId, over)
      assert.are.equal(204, (call("DELETE", "/v1/batch_groups/" .. bg)))
      assert.are.same({}, srv:batch_jobs())
    end)
  end)

  describe("batch jobs", function()
    it("goes pending, running, completed, moving each SIM as its task runs", function()
      srv:settings { batch_start_delay = 0.3, batch_task_seconds = 0.15 }
      local a, b = unpack(srv:seed_groups(2))
      local ids = srv:add_sims { count = 4, group_id = a }
      local bg = new_batch_group()
      local status, job = submit(bg, set_group_tasks(ids, b), { jobName = "move", description = "to b" })
      assert.are.equal(200, status)
      assert.are.equal("pending", job.status)
      assert.are.equal(bg, job.batchGroupId)
      assert.are.equal("move", job.jobName)
      assert.are.equal("to b", job.description)
      assert.is_false(job.abortOnFailure)
      assert.are.same({ pending = 4, success = 0, error = 0 }, job.summary)
      assert.is_true(math.abs(job.createdTime - os.time()) <= 2)
      assert.is_nil(job.finishedTime)
      assert.are.same(ids, member_ids(a))

      local running = poll_job(bg, job.jobId, function(j) return j.status ~= "pending" end)
      assert.are.equal("running", running.status)
      assert.is_true(running.summary.pending >= 1)
      assert.are.equal(4, running.summary.pending + running.summary.success)
      -- What has run shows in the SIMs already (tasks may run between the reads).
      local moved = #member_ids(b)
      local later = get_job(bg, job.jobId)
      assert.is_true(running.summary.success <= moved and moved <= later.summary.success,
        ("%d <= %d <= %d"):format(running.summary.success, moved, later.summary.success))

      local done = poll_job(bg, job.jobId, over)
      assert.are.equal("completed", done.status)
      assert.are.same({ pending = 0, success = 4, error = 0 }, done.summary)
      assert.is_number(done.finishedTime)
      assert.is_nil(done.errorMessage)
      assert.are.same({}, member_ids(a))
      assert.are.same(ids, member_ids(b))
      local listed = srv:batch_jobs()
      assert.are.equal(1, #listed)
      assert.are.equal(job.jobId, listed[1].jobId)
      assert.are.equal("completed", listed[1].status)
      local _, jobs = call("GET", jobs_path(bg))
      assert.are.equal("completed", jobs[1].status)

      local tasks = tasks_of(bg, job.jobId)
      assert.are.equal(4, #tasks)
      for i, task in ipairs(tasks) do
        assert.are.equal(i, task.taskId)
        assert.are.equal("success", task.status)
        assert.are.same({ method = "POST", path = "/v1/sims/" .. ids[i] .. "/set_group", body = { groupId = b } },
          task.request)
        assert.are.equal(200, task.response.statusCode)
        assert.are.equal(ids[i], task.response.body.simId)
        assert.are.equal(b, task.response.body.groupId)
        assert.is_true(task.startedTime <= task.finishedTime)
      end
    end)

    it("lists a job's tasks filtered by status and paged", function()
      srv:settings { batch_start_delay = 0, batch_task_seconds = 0 }
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 5 }
      srv:batch_task_faults { sim_ids = { ids[2], ids[4] } }
      local bg = new_batch_group()
      local _, job = submit(bg, set_group_tasks(ids, group))
      poll_job(bg, job.jobId, over)

      local errors = tasks_of(bg, job.jobId, "?status=error")
      assert.are.same({ 2, 4 }, { errors[1].taskId, errors[2].taskId })
      local page, headers = tasks_of(bg, job.jobId, "?status=success&limit=2")
      assert.are.same({ 1, 3 }, { page[1].taskId, page[2].taskId })
      assert.are.equal("3", headers["x-soracom-next-key"])
      assert.are.equal("</v1/batch_groups/" .. bg .. "/jobs/" .. job.jobId
        .. "/tasks?last_evaluated_key=3&limit=2&status=success>; rel=next", headers["link"])
      local rest, rest_headers = tasks_of(bg, job.jobId, "?status=success&limit=2&last_evaluated_key=3")
      assert.are.same({ 5 }, { rest[1].taskId })
      assert.is_nil(rest_headers["x-soracom-next-key"])
      local first = tasks_of(bg, job.jobId, "?limit=1")
      assert.are.equal(1, first[1].taskId)
      assert.are.same({}, (tasks_of(bg, job.jobId, "?status=pending")))
      local status, err = call("GET", jobs_path(bg) .. "/" .. job.jobId .. "/tasks?status=done")
      assert.are.equal(400, status)
      assert.are.equal("COM0001", err.code)
      status, err = call("GET", jobs_path(bg) .. "/nope/tasks")
      assert.are.equal(404, status)
      assert.are.equal("BAT0005", err.code)
    end)

    it("fails when a task fails, reporting that task's response and leaving its SIM", function()
      srv:settings { batch_start_delay = 0.02, batch_task_seconds = 0.005 }
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 3 }
      local faults = srv:batch_task_faults { sim_ids = { ids[2] }, status = 500, code = "SIM9999", message = "boom" }
      assert.are.same({ { simId = ids[2], status = 500, code = "SIM9999", message = "boom" } }, faults)
      local bg = new_batch_group()
      local _, job = submit(bg, set_group_tasks(ids, group))
      local done = poll_job(bg, job.jobId, over)
      assert.are.equal("failed", done.status)
      assert.are.same({ pending = 0, success = 2, error = 1 }, done.summary)
      assert.is_string(done.errorMessage)
      local failed = tasks_of(bg, job.jobId, "?status=error")
      assert.are.equal(1, #failed)
      assert.are.equal(ids[2], failed[1].request.path:match("^/v1/sims/([^/]+)/"))
      assert.are.same({ statusCode = 500, body = { code = "SIM9999", message = "boom" } }, failed[1].response)
      assert.is_nil(srv:sim(ids[2]).groupId)
      assert.are.same({ ids[1], ids[3] }, member_ids(group))
      -- Only tasks fail: a direct call for that SIM works.
      assert.are.equal(200, (set_group(ids[2], group)))
      srv:clear_batch_task_faults()
      local _, now = srv:http("GET", "/_fake/batch/task_faults")
      assert.are.same({}, decode(now))
    end)

    it("gives a task exactly the answer of the direct call, an unknown SIM included", function()
      srv:settings { batch_start_delay = 0, batch_task_seconds = 0 }
      local ids = srv:add_sims { count = 1 }
      local direct_status, direct = set_group(ids[1], "no-such-group")
      local _, missing = set_group("8981199999999999999", "no-such-group")
      local bg = new_batch_group()
      local tasks = set_group_tasks({ ids[1], "8981199999999999999" }, "no-such-group")
      tasks[3] = { request = { method = "POST", path = "/v1/sims/" .. ids[1] .. "/set_group" } }
      local _, job = submit(bg, tasks)
      assert.are.equal("failed", poll_job(bg, job.jobId, over).status)
      local list = tasks_of(bg, job.jobId)
      assert.are.same({ statusCode = direct_status, body = direct }, list[1].response)
      assert.are.same({ statusCode = 404, body = missing }, list[2].response)
      local _, no_body = call("POST", "/v1/sims/" .. ids[1] .. "/set_group")
      assert.are.same({ statusCode = 400, body = no_body }, list[3].response)
    end)

    it("aborts at the first failure with abortOnFailure, the rest left pending", function()
      srv:settings { batch_start_delay = 0.02, batch_task_seconds = 0.005 }
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 4 }
      srv:batch_task_faults { sim_ids = { ids[2] }, times = 1 }
      local bg = new_batch_group()
      local _, job = submit(bg, set_group_tasks(ids, group), { abortOnFailure = true })
      assert.is_true(job.abortOnFailure)
      local done = poll_job(bg, job.jobId, over)
      assert.are.equal("aborted", done.status)
      assert.are.same({ pending = 2, success = 1, error = 1 }, done.summary)
      assert.is_number(done.finishedTime)
      local pending = tasks_of(bg, job.jobId, "?status=pending")
      assert.are.same({ 3, 4 }, { pending[1].taskId, pending[2].taskId })
      assert.is_nil(pending[1].response)
      assert.are.same({ ids[1] }, member_ids(group))
      local failed = tasks_of(bg, job.jobId, "?status=error")
      assert.are.equal("FAK0500", failed[1].response.body.code)
      -- times = 1: that fault is spent.
      local _, faults = srv:http("GET", "/_fake/batch/task_faults")
      assert.are.same({}, decode(faults))
    end)

    it("runs one job per action at a time, in any batch group; another action meanwhile", function()
      srv:settings { batch_start_delay = 0.2, batch_task_seconds = 0.01 }
      local group = srv:seed_groups(1)[1]
      local ids = srv:add_sims { count = 2, group_id = group }
      local first_bg, second_bg = new_batch_group("one"), new_batch_group("two")
      local _, job = submit(first_bg, set_group_tasks({ ids[1] }, group))
      local status, err = submit(second_bg, set_group_tasks({ ids[2] }, group))
      assert.are.equal(400, status)
      assert.are.equal("BAT0002", err.code)
      assert.truthy(err.message:find(job.jobId, 1, true), err.message)
      local unset_status, unset_job = submit(second_bg, unset_group_tasks({ ids[2] }))
      assert.are.equal(200, unset_status)
      local _, refused = call("GET", jobs_path(second_bg))
      assert.are.equal(1, #refused)

      poll_job(first_bg, job.jobId, over)
      status = submit(second_bg, set_group_tasks({ ids[2] }, group))
      assert.are.equal(200, status)
      assert.are.equal("completed", poll_job(second_bg, unset_job.jobId, over).status)
      assert.are.same({ ids[1] }, member_ids(group))

      -- Jobs of a batch group page like the other lists.
      local _, page, headers = call("GET", jobs_path(second_bg) .. "?limit=1")
      assert.are.equal(unset_job.jobId, page[1].jobId)
      assert.are.equal(unset_job.jobId, headers["x-soracom-next-key"])
      assert.are.equal(3, #srv:batch_jobs())
    end)

    it("refuses an empty, oversized, mixed or unsupported job and creates nothing", function()
      local bg = new_batch_group()
      local ids = srv:add_sims { count = 2 }
      local too_many = {}
      local task = { request = { method = "POST", path = "/v1/sims/" .. ids[1] .. "/unset_group" } }
      for i = 1, 10001 do
        too_many[i] = task
      end
      local mixed = set_group_tasks({ ids[1] }, "g")
      mixed[2] = unset_group_tasks({ ids[2] })[1]
      for _, body in ipairs {
        '{"tasks":[]}', "{}", cjson.encode { tasks = too_many }, cjson.encode { tasks = mixed },
        cjson.encode { tasks = { { request = { method = "GET", path = "/v1/sims/" .. ids[1] .. "/set_group" } } } },
        cjson.encode { tasks = { { request = { method = "POST", path = "/v1/sims/" .. ids[1] .. "/activate" } } } },
        cjson.encode { tasks = { { request = { method = "POST", path = "/v1/subscribers/1/set_group" } } } },
        cjson.encode { tasks = { { method = "POST", path = "/v1/sims/" .. ids[1] .. "/unset_group" } } },
      } do
        local status, err = call("POST", jobs_path(bg), body)
        assert.are.equal(400, status, body:sub(1, 200))
        assert.are.equal("COM0001", err.code)
      end
      assert.are.same({}, srv:batch_jobs())
      local status, err = call("POST", jobs_path("nope"), cjson.encode { tasks = { task } })
      assert.are.equal(404, status)
      assert.are.equal("BAT0004", err.code)
      -- 10,000 is the limit, not beyond it.
      too_many[10001] = nil
      local ok_status, job = submit(bg, too_many)
      assert.are.equal(200, ok_status)
      assert.are.same({ pending = 10000, success = 0, error = 0 }, job.summary)
    end)
  end)
end)
