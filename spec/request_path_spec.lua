-- Issue 24, the request path's weight: the shortcuts of the lighter path (the budget's
-- take, the URL kept for the same call again) give what the long way gave.
local rate = require "soracom.groups.rate"
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"

local API = "GET /groups/{group_id}"

local function limits(limit, remaining, refresh)
  return { limit = limit, remaining = remaining, refresh = refresh }
end

describe("the budget's take (issue 24)", function()
  local clock, budget
  before_each(function()
    clock = 100
    budget = rate.new(function() return clock end)
  end)

  -- The long way: a place in the queue, admitted at once or left.
  local function queued(b)
    local place = assert(b:enqueue(API))
    local ticket, wait = b:admit(place)
    if ticket == nil then b:leave(place) end
    return ticket, wait
  end

  it("admits as enqueue then admit would: a probe first, nothing more until its answer", function()
    local probe = assert(budget:take(API))
    assert.is_true(probe.probe)
    assert.is_nil(budget:take(API))
    budget:settle(API, probe, limits(3, 2, 10), 200)
    assert.is_table(budget:take(API))
    assert.is_table(budget:take(API))
    assert.is_nil(budget:take(API)) -- 3 in the window: the probe and these two
    clock = clock + 10.5
    assert.is_table(budget:take(API)) -- the next window
  end)

  it("gives every ticket and refusal the long way gives, step by step", function()
    local other = rate.new(function() return clock end)
    local steps = {}
    -- The same script for both: takes, answers with the limit, a 429, time passing.
    local function run(b, take)
      local log, tickets = {}, {}
      local function try()
        local ticket = take(b)
        log[#log + 1] = ticket and ("go" .. (ticket.probe and " probe" or "")) or "wait"
        if ticket then tickets[#tickets + 1] = ticket end
      end
      clock = 100
      try(); try()
      b:settle(API, table.remove(tickets, 1), limits(4, 3, 5), 200)
      for _ = 1, 5 do try() end
      clock = 105.2
      for _ = 1, 3 do try() end
      b:settle(API, table.remove(tickets), nil, 429, 2)
      try()
      clock = 107.5
      try(); try()
      for _, ticket in ipairs(tickets) do b:settle(API, ticket, limits(4, 1, 3), 200) end
      try()
      log[#log + 1] = b:describe(API)
      return log
    end
    steps.take = run(budget, function(b) return b:take(API) or queued(b) end)
    steps.queued = run(other, queued)
    assert.are.same(steps.queued, steps.take)
    assert.is_true(#steps.take > 10)
  end)

  it("never lets a request past one waiting in the queue", function()
    budget:settle(API, assert(budget:take(API)), limits(1, 0, 10), 200) -- the window used up
    local place, wait = budget:enqueue(API)
    assert.is_true(wait > 0)
    assert.is_nil(budget:admit(place))
    clock = clock + 10.5 -- room again, but the waiter is first
    assert.is_nil(budget:take(API))
    assert.is_table(budget:admit(place))
  end)
end)

describe("a deferred budget, which becomes the budget it chose (issue 24)", function()
  local now = function() return 100 end

  it("is the operator's budget from its first use on, even through a method looked up before it", function()
    local deferred = rate.deferred(function() return rate.for_operator("https://e/v1", "OP-become", now) end)
    local other = rate.for_operator("https://e/v1", "OP-become", now)
    -- settle is looked up on the deferred before take, its first use, runs
    deferred:settle(API, deferred:take(API), nil, 200)
    assert(deferred:enqueue(API))
    assert.are.equal(1, other:queued(API))
    deferred:release()
    other:release()
    local newcomer = rate.for_operator("https://e/v1", "OP-become", now)
    assert.are.equal(0, newcomer:queued(API)) -- released by both: afresh
    newcomer:release()
  end)

  it("released before its first use, holds the budget it chooses no more", function()
    local deferred = rate.deferred(function() return rate.for_operator("https://e/v1", "OP-early", now) end)
    deferred:release()
    assert(deferred:enqueue(API)) -- still serves its client's requests
    local newcomer = rate.for_operator("https://e/v1", "OP-early", now)
    assert.are.equal(0, newcomer:queued(API))
    newcomer:release()
  end)
end)

describe("the URL of the same call again (issue 24)", function()
  local srv, client

  setup(function()
    srv = fake.start()
  end)

  teardown(function()
    if client then client:close() end
    srv:stop()
  end)

  it("is the URL of that call: another id, another operation or a query is built anew", function()
    srv:reset()
    client = new_client(srv)
    local ids = srv:seed_groups(2)
    local a, b = ids[1], ids[2]
    assert.are.equal(a, assert(client:get_group(a)).groupId)
    assert.are.equal(a, assert(client:get_group(a)).groupId)
    assert.are.equal(b, assert(client:get_group(b)).groupId)
    assert.is_table((client:list_subscribers(b)))
    assert.is_table((client:list_subscribers(b, { limit = 1 })))
    assert.is_table((client:list_subscribers(b)))
    assert.are.equal(a, assert(client:get_group(a)).groupId)
    assert.is_nil(client:get_group("no such group"))
    local uris = {}
    for _, request in ipairs(srv:requests()) do uris[#uris + 1] = request.uri end
    local v1 = srv.endpoint:match("(/v1)$") or ""
    assert.are.same({
      v1 .. "/groups/" .. a, v1 .. "/groups/" .. a, v1 .. "/groups/" .. b,
      v1 .. "/groups/" .. b .. "/subscribers", v1 .. "/groups/" .. b .. "/subscribers?limit=1",
      v1 .. "/groups/" .. b .. "/subscribers", v1 .. "/groups/" .. a, v1 .. "/groups/no%20such%20group",
    }, uris)
  end)
end)
