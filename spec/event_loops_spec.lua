-- The library inside the event loops Lua programs use (issue 23): cqueues and luv, both
-- packaged by Debian. A map of 96 items at concurrency 16 against the fake with 250 ms
-- of latency runs while another coroutine of the same loop ticks every 10 ms, and the
-- ticks keep coming; plain calls made in the loop's coroutine wait through it too.
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"
local loops = require "soracom.groups.loops"

-- The latency of each answer, and of the plain call's.
local LATENCY, PLAIN_LATENCY = 0.25, 1
-- The longest a tick may be late. A client that blocked the loop would hold a tick back
-- for a whole answer's latency; a busy machine (the suite side by side) may hold one
-- back for a tenth of a second or so.
local MAX_GAP = 0.8 * LATENCY
local ITEMS = 96

local function range_of(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  return copy
end

describe("event loops", function()
  local srv, ids

  setup(function()
    srv = fake.start()
    ids = srv:seed_groups(ITEMS)
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:settings { latency = LATENCY } end)

  local function new_client(wait)
    return assert(groups.new { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id, auth_key = srv.auth_key,
      transport = "curl", wait = wait })
  end

  -- A ticker's record: ticks, and the longest gap between two while `running`.
  local function new_ticks(clock)
    local ticks = { count = 0, gap = 0, last = clock(), running = true }
    function ticks.tick()
      local at = clock()
      if at - ticks.last > ticks.gap then ticks.gap = at - ticks.last end
      ticks.last, ticks.count = at, ticks.count + 1
    end
    return ticks
  end

  -- What the loop's work coroutine does: a blocking map, a map it drives itself, and a
  -- plain call on a slow answer, counting the ticks during it.
  local function work(client, ticks, wait)
    local report = {}
    local _, summary = client:map(range_of(ids), function(id) return client:get_group(id) end,
      { concurrency = 16 })
    report.map = summary
    local run = client:start_map(range_of(ids), function(id) return client:get_group(id) end,
      { concurrency = 16 })
    while not run:step(0) do
      local timeout, sockets = run:wait_hint()
      wait(timeout, sockets)
    end
    report.start_map = select(2, run:results())
    srv:settings { latency = PLAIN_LATENCY }
    local before = ticks.count
    report.plain = client:get_group(ids[1])
    report.ticks_during_plain = ticks.count - before
    ticks.running = false
    return report
  end

  -- Under valgrind (scripts/memcheck) every step is many times slower: the ticks are
  -- then checked to come, not to come on time.
  local UNDER_VALGRIND = (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) ~= nil

  local function check(report, ticks)
    assert.are.same({ ITEMS, 0 }, { report.map.ok, report.map.failed })
    assert.are.same({ ITEMS, 0 }, { report.start_map.ok, report.start_map.failed })
    assert.are.equal(ids[1], report.plain.groupId)
    assert.is_true(report.ticks_during_plain >= (UNDER_VALGRIND and 1 or 10),
      "ticks during a " .. PLAIN_LATENCY .. " s call: " .. report.ticks_during_plain)
    if not UNDER_VALGRIND then
      assert.is_true(ticks.gap < MAX_GAP, string.format("longest gap between ticks: %.3f s", ticks.gap))
    end
  end

  it("cqueues: the loop goes on while the client waits", function()
    local cqueues = require "cqueues"
    local wait = loops.cqueues(cqueues)
    local client = new_client(wait)
    local ticks = new_ticks(cqueues.monotime)
    local cq = cqueues.new()
    cq:wrap(function()
      ticks.last = cqueues.monotime()
      while ticks.running do
        cqueues.sleep(0.01)
        ticks.tick()
      end
    end)
    local report
    cq:wrap(function() report = work(client, ticks, wait) end)
    assert(cq:loop())
    check(report, ticks)
    client:close()
  end)

  it("luv: the loop goes on while the client waits", function()
    local uv = require "luv"
    local wait = loops.luv(uv)
    local client = new_client(wait)
    local ticks = new_ticks(function() return uv.hrtime() / 1e9 end)
    local ticker = uv.new_timer()
    ticker:start(10, 10, function()
      ticks.tick()
      if not ticks.running then ticker:close() end
    end)
    local report -- (no pcall around work: Lua 5.1 cannot yield across it; a raise ends uv.run)
    local co = coroutine.create(function() report = work(client, ticks, wait) end)
    local start = uv.new_timer()
    start:start(0, 0, function()
      start:close()
      assert(coroutine.resume(co))
    end)
    uv.run()
    check(report, ticks)
    client:close()
  end)

  it("luv: says where the client must be called from", function()
    local wait = loops.luv(require "luv")
    assert.has_error(function() wait(0.01, {}) end,
      "soracom.groups.loops.luv: call the client from a coroutine (one the luv loop's callbacks resume), "
        .. "not from the main chunk")
  end)
end)
