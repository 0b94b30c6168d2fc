-- SIM membership (issue 25): the four methods and client:move_sims, both ways, over
-- real HTTP to the fake server.
local groups = require "soracom.groups"
local cjson = require "cjson"
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local sims = require "soracom.groups.sims"
local sims_batch = require "soracom.groups.sims_batch"
local under_limit = require "spec.support.under_limit"

-- Lua 5.1 cannot yield across pcall (map's on_result call); LuaJIT and 5.2+ can.
local YIELDS_THROUGH_PCALL = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

-- Calls fn with module[key] set to value for the time of the call (restored even when
-- fn raises); returns what fn returned.
local function with_value(module, key, value, fn)
  local before = module[key]
  module[key] = value
  local results = { pcall(fn) }
  module[key] = before
  assert(results[1], results[2])
  return (table.unpack or unpack)(results, 2, #results)
end

-- Fast Batch API jobs: the fake runs them from its clock.
local QUICK_JOBS = { batch_start_delay = 0.02, batch_task_seconds = 0.001 }

describe("SIM membership", function()
  local srv, client

  setup(function()
    srv = fake.start()
  end)

  teardown(function()
    if client then client:close() end
    srv:stop()
  end)

  before_each(function()
    srv:reset()
    srv:settings(QUICK_JOBS)
    client = new_client(srv)
  end)

  after_each(function()
    client:close()
  end)

  local function new_group(name)
    return assert(client:create_group { tags = { name = name } }).groupId
  end

  -- The simIds of a group's members, sorted.
  local function members(group_id)
    local ids = {}
    for sim in client:subscribers(group_id) do ids[#ids + 1] = sim.simId end
    table.sort(ids)
    return ids
  end

  local function sorted(list)
    local copy = {}
    for i, v in ipairs(list) do copy[i] = v end
    table.sort(copy)
    return copy
  end

  -- The recorded requests whose URI matches pattern.
  local function requests_matching(pattern)
    local found = {}
    for _, request in ipairs(srv:requests()) do
      if request.uri:find(pattern) then found[#found + 1] = request end
    end
    return found
  end

  describe("the four methods", function()
    it("set_sim_group moves a SIM from its group into another and returns it", function()
      local from, to = new_group("from"), new_group("to")
      local sim_id = srv:add_sims { count = 1, group_id = from }[1]
      local sim, err = client:set_sim_group(sim_id, to)
      assert.is_nil(err)
      assert.are.equal(sim_id, sim.simId)
      assert.are.equal(to, sim.groupId)
      assert.are.same({}, members(from))
      assert.are.same({ sim_id }, members(to))
      local sent = requests_matching("/set_group$")
      assert.are.equal(1, #sent)
      assert.are.equal("POST", sent[1].method)
      assert.are.equal("/v1/sims/" .. sim_id .. "/set_group", sent[1].uri)
      assert.are.same({ groupId = to }, cjson.decode(sent[1].body))
      assert.are.equal(to, srv:sim(sim_id).groupId)
    end)

    it("unset_sim_group takes a SIM out of its group, and again is no error", function()
      local group = new_group("g")
      local sim_id = srv:add_sims { count = 1, group_id = group }[1]
      local sim, err = client:unset_sim_group(sim_id)
      assert.is_nil(err)
      assert.is_nil(sim.groupId)
      assert.are.same({}, members(group))
      sim, err = client:unset_sim_group(sim_id)
      assert.is_nil(err)
      assert.are.equal(sim_id, sim.simId)
      local sent = requests_matching("/unset_group$")
      assert.are.equal(2, #sent)
      assert.are.equal("POST", sent[1].method)
    end)

    it("set_subscriber_group and unset_subscriber_group move the SIM holding any of its IMSIs", function()
      local group = new_group("g")
      local sim_ids, _, all_imsis = srv:add_sims { count = 1, imsis = 2 }
      local second_imsi = all_imsis[1][2]
      local subscriber, err = client:set_subscriber_group(second_imsi, group)
      assert.is_nil(err)
      assert.are.equal(group, subscriber.groupId)
      assert.are.same({ sim_ids[1] }, members(group))
      assert.are.equal("/v1/subscribers/" .. second_imsi .. "/set_group", requests_matching("set_group$")[1].uri)
      subscriber, err = client:unset_subscriber_group(all_imsis[1][1])
      assert.is_nil(err)
      assert.is_nil(subscriber.groupId)
      assert.are.same({}, members(group))
    end)

    it("get_sim reads a SIM and its group", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 2, group_id = group }
      local sim, err = client:get_sim(ids[2])
      assert.is_nil(err)
      assert.are.equal(ids[2], sim.simId)
      assert.are.equal(group, sim.groupId)
      assert.are.equal("/v1/sims/" .. ids[2], srv:requests()[#srv:requests()].uri)
      sim, err = client:get_sim("8900000000000000000")
      assert.is_nil(sim)
      assert.are.equal(404, err.status)
    end)

    it("unset_subscriber_group: the API's 404 for a subscriber in no group is success only after a lost answer",
        function()
      local _, imsis = srv:add_sims { count = 1 }
      -- in no group, asked plainly: the API's 404 is the answer
      local subscriber, err = client:unset_subscriber_group(imsis[1])
      assert.is_nil(subscriber)
      assert.are.equal(404, err.status)
      -- the same after an attempt whose outcome is unknown (a gateway's 502): that attempt may have done it
      srv:faults { { status = 502, body = "{}" } }
      subscriber, err = client:unset_subscriber_group(imsis[1])
      assert.is_nil(err)
      assert.is_true(subscriber)
      assert.are.equal(3, #requests_matching("/unset_group$"))
    end)

    it("returns nil, err for a SIM or a group that does not exist", function()
      local group = new_group("g")
      local sim, err = client:set_sim_group("8900000000000000000", group)
      assert.is_nil(sim)
      assert.are.equal(404, err.status)
      assert.are.equal("/sims/8900000000000000000/set_group", err.path)
      local sim_id = srv:add_sims { count = 1 }[1]
      sim, err = client:set_sim_group(sim_id, "no-such-group")
      assert.is_nil(sim)
      assert.are.equal(404, err.status)
      assert.is_nil(srv:sim(sim_id).groupId)
    end)

    it("raises for bad arguments, naming them, before anything is sent", function()
      assert.has_error(function() client:set_sim_group("", "g") end,
        "soracom.groups: set_sim_group: sim_id must be a non-empty string (got \"\")")
      for _, group_id in ipairs { 5, "" } do
        assert.error_matches(function() client:set_sim_group("s", group_id) end,
          "set_sim_group: group_id must be a non%-empty string")
      end
      assert.error_matches(function() client:unset_sim_group("..") end, "unset_sim_group: sim_id")
      assert.error_matches(function() client:set_subscriber_group(nil, "g") end, "set_subscriber_group: imsi")
      assert.error_matches(function() client.set_sim_group({}, "s", "g") end, "call it as client:set_sim_group")
      assert.are.same({}, srv:requests())
    end)

    it("is retried like a PUT: an answer lost on the way is asked again", function()
      local group = new_group("g")
      local sim_id = srv:add_sims { count = 1 }[1]
      srv:faults { { status = 502, body = "{}" }, { close = true } }
      local sim, err = client:set_sim_group(sim_id, group)
      assert.is_nil(err)
      assert.are.equal(group, sim.groupId)
      assert.are.equal(3, #requests_matching("/set_group$"))
      -- a POST that is not idempotent is not retried after a 502
      srv:faults { { status = 502, body = "{}" } }
      local created
      created, err = client:create_group { tags = { name = "x" } }
      assert.is_nil(created)
      assert.are.equal(502, err.status)
    end)

    it("is counted in the rate budget under its own API, held there rather than refused", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 9 }
      srv:settings { rate_limit = { limit = 4, window = 0.5, retry_after = false } }
      local results, summary = client:move_sims(ids, group, { batch = false, concurrency = 9 })
      assert.are.equal(9, summary.moved, tostring(results[1].err))
      local stats = srv:stats().by_api
      assert.are.equal(9, stats["POST /v1/sims/{sim_id}/set_group"].requests)
      -- the first request, a probe, learns the limit; none of the others is refused
      assert.are.equal(0, stats["POST /v1/sims/{sim_id}/set_group"].status_429)
    end)
  end)

  describe("move_sims, one call per SIM", function()
    it("moves a list of ids, giving each SIM's result in order and a summary", function()
      local from, to = new_group("from"), new_group("to")
      local ids = srv:add_sims { count = 5, group_id = from }
      local seen = {}
      local results, summary = client:move_sims(ids, to, { batch = false, on_progress = function(p)
        seen[#seen + 1] = { done = p.done, moved = p.moved, total = p.total, mode = p.mode }
      end })
      assert.are.same({ mode = "calls", total = 5, moved = 5, skipped = 0, failed = 0, unknown = 0 }, summary)
      for i, result in ipairs(results) do
        assert.are.equal(ids[i], result.sim_id)
        assert.is_true(result.ok)
        assert.are.equal(to, result.sim.groupId)
      end
      assert.are.same(sorted(ids), members(to))
      assert.are.same({}, members(from))
      assert.are.equal(5, #seen)
      assert.are.same({ done = 5, moved = 5, total = 5, mode = "calls" }, seen[5])
    end)

    it("takes SIMs out with group_id nil or groups.null", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 4, group_id = group }
      local _, summary = client:move_sims({ ids[1], ids[2] }, nil, { batch = false })
      assert.are.equal(2, summary.moved)
      _, summary = client:move_sims({ ids[3] }, groups.null, { batch = false })
      assert.are.equal(1, summary.moved)
      assert.are.same({ ids[4] }, members(group))
      assert.are.equal(3, #requests_matching("/unset_group$"))
    end)

    it("with skip_current, leaves SIMs read from the API that are already there", function()
      local a, b = new_group("a"), new_group("b")
      local in_a = srv:add_sims { count = 3, group_id = a }
      local in_b = srv:add_sims { count = 2, group_id = b }
      srv:clear_requests()
      local everyone = {}
      for sim in client:subscribers(a) do everyone[#everyone + 1] = sim end
      for sim in client:subscribers(b) do everyone[#everyone + 1] = sim end
      local results, summary = client:move_sims(everyone, b, { batch = false, skip_current = true })
      assert.are.equal(3, summary.moved)
      assert.are.equal(2, summary.skipped)
      local skipped = {}
      for _, result in ipairs(results) do
        if result.skipped then skipped[#skipped + 1] = result.sim_id end
        assert.is_true(result.ok)
      end
      assert.are.same(sorted(in_b), sorted(skipped))
      assert.are.equal(3, #requests_matching("/set_group$"))
      assert.are.same(sorted { in_a[1], in_a[2], in_a[3], in_b[1], in_b[2] }, members(b))
      -- ids alone carry no current group: every one is sent
      local _, again = client:move_sims(in_b, b, { batch = false, skip_current = true })
      assert.are.equal(2, again.moved)
    end)

    it("reads an iterator to its end first; when it raises, nothing is moved", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 3 }
      local i = 0
      local results, summary, items_error = client:move_sims(function()
        i = i + 1
        if i == 3 then error("the source broke") end
        return ids[i]
      end, group)
      assert.are.same({}, results)
      assert.matches("the source broke", tostring(items_error))
      assert.are.equal(items_error, summary.items_error)
      assert.are.same({}, requests_matching("set_group"))
      assert.are.same({}, members(group))
    end)

    it("takes the SIMs of another group's iterator", function()
      local from, to = new_group("from"), new_group("to")
      local ids = srv:add_sims { count = 7, group_id = from }
      local results, summary = client:move_sims(client:subscribers(from, { limit = 3 }), to, { batch = false })
      assert.are.equal(7, summary.moved)
      assert.are.equal(7, #results)
      assert.are.same(sorted(ids), members(to))
    end)

    it("reports a SIM that fails with its error, and moves the others", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 2 }
      local results, summary = client:move_sims({ ids[1], "8900000000000000000", ids[2] }, group, { batch = false })
      assert.are.same({ mode = "calls", total = 3, moved = 2, skipped = 0, failed = 1, unknown = 0 }, summary)
      assert.is_false(results[2].ok)
      assert.are.equal("8900000000000000000", results[2].sim_id)
      assert.are.equal(404, results[2].err.status)
      assert.is_true(results[1].ok and results[3].ok)
    end)

    it("reads the group once first: a group that does not exist costs one request, not one per SIM", function()
      local ids = srv:add_sims { count = 20 }
      local results, summary = client:move_sims(ids, "no-such-group", { batch = false })
      assert.are.equal(20, summary.failed)
      assert.are.equal(404, results[20].err.status)
      assert.are.equal(1, #srv:requests())
    end)

    it("with fail_fast, its last progress counts the SIMs it did not run, as the summary does", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 4 }
      local last
      local _, summary = client:move_sims({ "8900000000000000000", ids[1], ids[2], ids[3], ids[4] }, group,
        { batch = false, fail_fast = true, concurrency = 1, on_progress = function(p)
          last = { done = p.done, moved = p.moved, failed = p.failed }
        end })
      assert.are.equal(5, summary.failed)
      assert.are.same({ done = 5, moved = summary.moved, failed = summary.failed }, last)
    end)

    it("lets an iterator yield to the caller's coroutine, on every Lua", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 3 }
      local i = 0
      local co = coroutine.create(function()
        return client:move_sims(function()
          i = i + 1
          coroutine.yield("reading " .. i)
          return ids[i]
        end, group, { batch = false })
      end)
      local yielded = {}
      local ok, first, second
      repeat
        ok, first, second = coroutine.resume(co, "resumed")
        assert.is_true(ok, tostring(first))
        if coroutine.status(co) == "suspended" then yielded[#yielded + 1] = first end
      until coroutine.status(co) == "dead"
      assert.are.same({ "reading 1", "reading 2", "reading 3", "reading 4" }, yielded)
      assert.are.equal(3, second.moved)
      assert.are.same(sorted(ids), members(group))
    end)

    it("raises for bad arguments before anything is sent", function()
      local cases = {
        { { "a", "a" }, "g", nil, "sims%[2%] repeats sims%[1%] %(a%)" },
        { { "a", 7 }, "g", nil, "sims%[2%] must be a SIM id" },
        { { { groupId = "g" } }, "g", nil, "sims%[1%] must be a SIM id or a SIM with its simId" },
        { { "a" }, 5, nil, "group_id must be a non%-empty string" },
        { { "a" }, "g", { concurrency = 0 }, "options.concurrency must be a whole number from 1 to 1024" },
        { { "a" }, "g", { batch = "yes" }, "options.batch must be a boolean" },
        { { "a" }, "g", { colour = 1 }, 'unknown option "colour"' },
        { { "a" }, "g", { batch_group_name = ("x"):rep(101) }, "options.batch_group_name must be 1 to 100 characters" },
        { { "a" }, "g", { job_name = ("é"):rep(101) }, "options.job_name must be 1 to 100 characters" },
        { { "a" }, "g", { job_timeout = -1 }, "options.job_timeout must be a positive number" },
        { { "a" }, "g", { poll_max_delay = 0 }, "options.poll_max_delay must be a positive number" },
        { "a", "g", nil, "sims must be a list" },
      }
      for _, case in ipairs(cases) do
        assert.error_matches(function() client:move_sims(case[1], case[2], case[3]) end,
          "move_sims: " .. case[4])
      end
      assert.are.same({}, srv:requests())
    end)
  end)

  describe("move_sims through the Batch API", function()
    it("moves the SIMs as one job, in a batch group it makes once and then reuses", function()
      local from, to = new_group("from"), new_group("to")
      local ids = srv:add_sims { count = 30, group_id = from }
      local last
      local results, summary = client:move_sims(ids, to, { batch = true, on_progress = function(p)
        last = { done = p.done, moved = p.moved, total = p.total, mode = p.mode, job = p.job_id }
      end })
      assert.are.equal("batch", summary.mode)
      assert.are.equal(30, summary.moved)
      assert.are.equal(0, summary.failed)
      assert.are.equal(1, #summary.jobs)
      assert.are.same({ done = 30, moved = 30, total = 30, mode = "batch", job = summary.jobs[1] }, last)
      for i, result in ipairs(results) do
        assert.are.equal(ids[i], result.sim_id)
        assert.is_true(result.ok)
      end
      assert.are.same(sorted(ids), members(to))
      -- no call per SIM: a job holding them all
      assert.are.same({}, requests_matching("^/v1/sims/"))
      local created = requests_matching("^/v1/batch_groups/[^/]+/jobs$")
      assert.are.equal(1, #created)
      local job = cjson.decode(created[1].body)
      assert.are.equal(30, #job.tasks)
      assert.are.same({ method = "POST", path = "/v1/sims/" .. ids[1] .. "/set_group", body = { groupId = to } },
        job.tasks[1].request)
      assert.are.equal(1, #requests_matching("^/v1/batch_groups$")) -- a list, then a create (POST)
      -- the next move finds the batch group by name (another client) and makes none
      local other = new_client(srv)
      srv:clear_requests()
      local _, again = other:move_sims(ids, nil, { batch = true })
      other:close()
      assert.are.equal(30, again.moved)
      assert.are.same({}, members(to))
      local posts = 0
      for _, request in ipairs(requests_matching("^/v1/batch_groups")) do
        if request.method == "POST" and request.uri == "/v1/batch_groups" then posts = posts + 1 end
      end
      assert.are.equal(0, posts)
      assert.are.equal("/v1/sims/" .. ids[1] .. "/unset_group",
        cjson.decode(requests_matching("/jobs$")[1].body).tasks[1].request.path)
    end)

    it("reports each failed task with its SIM id and error", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 6 }
      srv:batch_task_faults { sim_ids = { ids[2] }, status = 500, code = "SEM0500", message = "injected" }
      local results, summary = client:move_sims({ ids[1], ids[2], ids[3], "8900000000000000000", ids[4] }, group,
        { batch = true })
      assert.are.equal(3, summary.moved)
      assert.are.equal(2, summary.failed)
      assert.is_false(results[2].ok)
      assert.are.equal(500, results[2].err.status)
      assert.are.equal("SEM0500", results[2].err.code)
      assert.are.equal("injected", results[2].err.message)
      assert.are.equal("/sims/" .. ids[2] .. "/set_group", results[2].err.path) -- as a call's error has it
      assert.is_false(results[4].ok)
      assert.are.equal(404, results[4].err.status)
      assert.is_true(results[1].ok and results[3].ok and results[5].ok)
      assert.are.same(sorted { ids[1], ids[3], ids[4] }, members(group))
    end)

    it("splits more SIMs than a job holds into jobs run one after the other", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 25 }
      local _, summary = with_value(sims_batch, "MAX_TASKS", 10, function()
        return client:move_sims(ids, group, { batch = true })
      end)
      assert.are.equal(25, summary.moved)
      assert.are.equal(3, #summary.jobs)
      local sizes = {}
      for _, request in ipairs(requests_matching("/jobs$")) do
        if request.method == "POST" then sizes[#sizes + 1] = #cjson.decode(request.body).tasks end
      end
      assert.are.same({ 10, 10, 5 }, sizes)
      assert.are.same(sorted(ids), members(group))
    end)

    it("waits for a job of the same action already running, then runs its own", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 4 }
      -- someone else's job of the same action, in a batch group of their own, slow
      srv:settings { batch_start_delay = 0.02, batch_task_seconds = 0.4 }
      local status, body = srv:http("POST", "/v1/batch_groups", { auth = true,
        body = cjson.encode { batchGroupName = "theirs" } })
      assert.are.equal(200, status)
      local theirs = cjson.decode(body).batchGroupId
      status, body = srv:http("POST", "/v1/batch_groups/" .. theirs .. "/jobs", { auth = true, body = cjson.encode {
        tasks = { { request = { method = "POST", path = "/v1/sims/" .. ids[4] .. "/set_group",
          body = { groupId = group } } } } } })
      assert.are.equal(200, status)
      local their_job = cjson.decode(body).jobId
      srv:settings(QUICK_JOBS)
      local waited_for
      local _, summary = client:move_sims({ ids[1], ids[2], ids[3] }, group, { batch = true, on_progress = function(p)
        waited_for = waited_for or p.waiting_for
      end })
      assert.are.equal(their_job, waited_for)
      assert.are.equal(3, summary.moved)
      assert.are.same(sorted(ids), members(group))
    end)

    it("chooses the Batch API by itself above the threshold", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 4 }
      local at_threshold, above = with_value(sims, "BATCH_THRESHOLD", 3, function()
        local _, three = client:move_sims({ ids[1], ids[2], ids[3] }, group)
        local _, four = client:move_sims(ids, nil)
        return three, four
      end)
      assert.are.equal("calls", at_threshold.mode)
      assert.are.equal("batch", above.mode)
      assert.are.equal(4, above.moved)
      assert.are.equal(groups.MOVE_SIMS_BATCH_THRESHOLD, sims.BATCH_THRESHOLD)
    end)

    it("names SIMs whose ids need escaping in the tasks' paths, and matches their failures back", function()
      local group = new_group("g")
      local odd = "89 81/00%1"
      local results, summary = client:move_sims({ odd }, group, { batch = true })
      assert.are.equal(1, summary.failed)
      assert.are.equal(404, results[1].err.status)
      assert.are.equal(odd, results[1].sim_id)
      local job = cjson.decode(requests_matching("/jobs$")[1].body)
      assert.are.equal("/v1/sims/89%2081%2F00%251/set_group", job.tasks[1].request.path)
    end)

    it("falls back to calls when it chose the Batch API by itself and the Batch API is refused", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 3 }
      -- (the first request reads the group: it goes through)
      srv:faults { { delay = 0 }, { status = 403, body = { code = "AUM0005", message = "no Batch API for you" } } }
      local _, summary = with_value(sims, "BATCH_THRESHOLD", 1, function() return client:move_sims(ids, group) end)
      assert.are.equal("calls", summary.mode)
      assert.are.equal(3, summary.moved)
      assert.are.equal(403, summary.batch_error.status)
      assert.are.same(sorted(ids), members(group))
    end)

    it("finds or makes the batch group again when the one it knew was deleted", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 2 }
      local _, first = client:move_sims({ ids[1] }, group, { batch = true })
      assert.are.equal(1, first.moved)
      local batch_groups = srv:batch_jobs()
      local status = srv:http("DELETE", "/v1/batch_groups/" .. batch_groups[1].batchGroupId, { auth = true })
      assert.are.equal(204, status)
      local _, second = client:move_sims({ ids[2] }, group, { batch = true })
      assert.are.equal(1, second.moved)
      assert.is_nil(second.batch_error)
      local refused, made = 0, 0
      for _, request in ipairs(srv:requests()) do
        if request.method == "POST" and request.uri == "/v1/batch_groups" then made = made + 1 end
        if request.method == "POST" and request.uri:find("/jobs$") then refused = refused + 1 end
      end
      assert.are.equal(2, made) -- made, deleted, made again
      assert.are.equal(3, refused) -- a job, one refused (404), the job again
    end)

    it("polls through answers that fail for a while: the job's SIMs are not given up, progress never goes back",
        function()
      local quick = new_client(srv, { retry_base_delay = 0.01, retry_max_delay = 0.02 })
      local group = assert(quick:create_group { tags = { name = "g" } }).groupId
      local ids = srv:add_sims { count = 40 }
      srv:settings { batch_start_delay = 0.02, batch_task_seconds = 0.03 }
      local seen, injected = {}, false
      local _, summary = quick:move_sims(ids, group, { batch = true, on_progress = function(p)
        seen[#seen + 1] = { done = p.done, moved = p.moved, failed = p.failed }
        if p.job_id and not injected then -- the job runs: its next reads fail, more than a request's retries
          injected = true
          srv:faults { { status = 503, body = "{}", times = 6 } }
        end
      end })
      quick:close()
      assert.is_true(injected)
      assert.are.equal(40, summary.moved)
      assert.are.equal(0, summary.failed)
      for i = 2, #seen do
        for _, field in ipairs { "done", "moved", "failed" } do
          assert.is_true(seen[i][field] >= seen[i - 1][field], field .. " went back at progress " .. i)
        end
      end
      local _, pending_faults = srv:http("GET", "/_fake/faults")
      assert.are.same({}, cjson.decode(pending_faults)) -- every injected failure was met
    end)

    it("gives the SIMs of a job that does not end within job_timeout as unknown, naming the job", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 3 }
      srv:settings { batch_start_delay = 1000 } -- it stays pending
      local results, summary = client:move_sims(ids, group, { batch = true, job_timeout = 1 })
      assert.are.equal(3, summary.failed)
      assert.are.equal(3, summary.unknown)
      assert.are.equal(1, #summary.jobs)
      for _, result in ipairs(results) do
        assert.is_true(result.unknown)
        assert.truthy(tostring(result.err):find("job " .. summary.jobs[1] .. " has not ended within job_timeout (1 s)",
          1, true), tostring(result.err))
      end
    end)

    it("matches failed tasks back to SIMs however their paths are written, and gives unmatched ones as unknown",
        function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 3 }
      srv:batch_task_faults { sim_ids = { ids[2], ids[3] }, status = 500, code = "SEM0500", message = "injected" }
      -- When the job has ended, the list of its failed tasks is answered by hand: one task,
      -- with its path written otherwise (an escape where none is needed, a trailing slash).
      local function listing(path, body)
        return { { taskId = "1", status = "error", request = { method = "POST", path = path, body = body },
          response = { statusCode = 500, body = { code = "SEM0500", message = "injected" } } } }
      end
      local odd = ids[2]:sub(1, 3) .. "%31" .. ids[2]:sub(5) -- an escape where the id has none
      local answered = false
      local results, summary = client:move_sims(ids, group, { batch = true, on_progress = function(p)
        if p.done == p.total and not answered then
          answered = true
          srv:faults { { status = 200, body = listing("/v1/sims/" .. odd .. "/set_group/", { groupId = group }) } }
        end
      end })
      assert.is_true(answered)
      assert.are.equal(ids[2]:sub(4, 4), "1") -- (the escape above stands for this digit)
      assert.is_false(results[2].ok)
      assert.are.equal(500, results[2].err.status)
      assert.is_nil(results[2].unknown)
      -- the job counts two failures and one was named: the others may be the second
      for _, i in ipairs { 1, 3 } do
        assert.is_false(results[i].ok)
        assert.is_true(results[i].unknown)
        assert.matches("counts 2 failed or unrun tasks, of which 1 named a SIM of it", tostring(results[i].err))
      end
      assert.are.equal(2, summary.unknown)
    end)

    it("runs the job with abortOnFailure when fail_fast is set", function()
      local group = new_group("g")
      local ids = srv:add_sims { count = 3 }
      srv:batch_task_faults { sim_ids = { ids[1] }, status = 500 }
      local results, summary = client:move_sims(ids, group, { batch = true, fail_fast = true })
      assert.is_true(cjson.decode(requests_matching("/jobs$")[1].body).abortOnFailure)
      assert.are.equal(3, summary.failed)
      assert.are.equal(500, results[1].err.status)
      assert.matches("not run: job .* ended aborted before this task", tostring(results[3].err))
    end)

    it("marks every SIM failed when the batch group cannot be had", function()
      local ids = srv:add_sims { count = 2 }
      srv:faults { { status = 403, body = { code = "AUM0005", message = "denied" } } }
      local results, summary = client:move_sims(ids, nil, { batch = true })
      assert.are.equal(2, summary.failed)
      assert.are.equal(403, results[1].err.status)
      assert.are.equal(403, results[2].err.status)
    end)
  end)

  describe("attacked", function()
    for _, batch in ipairs { false, true } do
      local way = batch and "a job" or "calls"
      it("(" .. way .. ") an on_progress that raises: the error comes out, the client still works", function()
        local group = new_group("g")
        local ids = srv:add_sims { count = 3 }
        assert.has_error(function()
          client:move_sims(ids, group, { batch = batch, on_progress = function() error("progress broke", 0) end })
        end, "progress broke")
        local _, summary = client:move_sims(ids, group, { batch = batch })
        assert.are.equal(3, summary.moved)
        assert.are.same(sorted(ids), members(group))
      end)

      it("(" .. way .. ") an on_progress that yields suspends the caller's coroutine; resumed, the move ends",
          function()
        local group = new_group("g")
        local ids = srv:add_sims { count = 3 }
        local co = coroutine.create(function()
          return client:move_sims(ids, group, { batch = batch, on_progress = function(p)
            coroutine.yield(p.done)
          end })
        end)
        local yields, ok, first, second = 0
        repeat
          ok, first, second = coroutine.resume(co)
          if coroutine.status(co) == "suspended" then yields = yields + 1 end
        until coroutine.status(co) == "dead" or yields > 100
        if not batch and not YIELDS_THROUGH_PCALL then
          assert.is_false(ok) -- Lua 5.1: the map's call of on_progress cannot yield; it says so
          assert.matches("attempt to yield across", tostring(first))
          return
        end
        assert.is_true(ok, tostring(first))
        assert.is_true(yields >= 1)
        assert.are.equal(3, second.moved)
        assert.are.same(sorted(ids), members(group))
      end)
    end

    it("refuses, before anything is sent, more calls at once than the file limit allows", function()
      local out = under_limit(128, string.format([[
local groups = require "soracom.groups"
local client = assert(groups.new { endpoint = %q, api_key = %q, token = %q, transport = "curl" })
local ids = {}
for i = 1, 300 do ids[i] = string.format("89811%%014d", i) end
print(pcall(client.move_sims, client, ids, "g", { batch = false, concurrency = 1024 }))
-- as many tasks as SIMs at most: 5 SIMs at concurrency 1024 fit
local _, summary = client:move_sims({ ids[1], ids[2], ids[3], ids[4], ids[5] }, "g",
  { batch = false, concurrency = 1024 })
print(summary.total)
]], srv.endpoint, srv.api_key, srv.token))
      -- (no more tasks than SIMs: the 300 SIMs would need 300 sockets)
      assert.truthy(out:find("false\tsoracom.groups: move_sims: options.concurrency 300 needs up to 316 more file "
        .. "descriptors", 1, true), out)
      assert.truthy(out:find("\n5\n", 1, true), out)
      -- the refused move sent nothing; the other read its group first (none: nothing more)
      local sent = srv:requests()
      assert.are.equal(1, #sent)
      assert.are.equal("GET /v1/groups/g", sent[1].method .. " " .. sent[1].uri)
    end)

    it("keeps the token out of everything it returns and logs", function()
      local lines = {}
      local logged = new_client(srv, { debug = function(line) lines[#lines + 1] = line end })
      local group = assert(logged:create_group { tags = { name = "g" } }).groupId
      local ids = srv:add_sims { count = 2 }
      srv:batch_task_faults { sim_ids = { ids[2] }, status = 500 }
      local results, summary = logged:move_sims(ids, group, { batch = true })
      local calls_results = logged:move_sims({ "8900000000000000000" }, group, { batch = false })
      logged:close()
      local text = table.concat(lines, "\n") .. tostring(results[2].err) .. tostring(calls_results[1].err)
        .. cjson.encode(summary)
      assert.are.equal(1, summary.failed)
      assert.is_nil(text:find(srv.token, 1, true))
      assert.is_nil(text:find(srv.api_key, 1, true))
      for _, result in ipairs(results) do
        for _, value in pairs(result) do assert.is_nil(tostring(value):find(srv.token, 1, true)) end
      end
    end)
  end)
end)
