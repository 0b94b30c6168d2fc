-- The rate-limit budget: one queue per API in front of the account of its window, on a
-- clock the spec moves by hand. Every expected number is worked out from the limits
-- the spec's answers give.
local rate = require "soracom.groups.rate"

local API = "GET /groups/{group_id}"

describe("the rate-limit budget", function()
  local clock, budget
  before_each(function()
    clock = 100
    budget = rate.new(function() return clock end)
  end)

  -- Queues a request and admits it at once: its ticket, or nil and the wait.
  local function take()
    local place = assert(budget:enqueue(API))
    local ticket, wait = budget:admit(place)
    if ticket == nil then budget:leave(place) end
    return ticket, wait
  end

  local function limits(limit, remaining, refresh)
    return { limit = limit, remaining = remaining, refresh = refresh }
  end

  -- A window known: limit 10, 10 s, the probe answered with 9 left, ending at 110.
  local function known_window(limit)
    local probe = assert(take())
    budget:settle(API, probe, limits(limit or 10, (limit or 10) - 1, 10), 200)
  end

  describe("a cold start", function()
    it("sends one probe while the limit is unknown, and opens up when its answer tells it", function()
      local probe = assert(take())
      assert.is_true(probe.probe)
      local held, wait = take()
      assert.is_nil(held)
      assert.is_true(wait > 0 and wait < 0.2)
      budget:settle(API, probe, limits(5, 4, 10), 200)
      for _ = 1, 4 do assert.is_table((take())) end
      assert.is_nil((take()))
    end)

    it("admits everything at once for an API whose answers carry no limit headers", function()
      budget:settle(API, assert(take()), nil, 200)
      for _ = 1, 50 do assert.is_table((take())) end
    end)

    it("takes a probe's own error without limit headers (a 404) for no limit, not a gateway's 502", function()
      budget:settle(API, assert(take()), nil, 502)
      local probe = assert(take()) -- still unknown: another probe
      assert.is_true(probe.probe)
      assert.is_nil((take()))
      budget:settle(API, probe, nil, 404)
      for _ = 1, 20 do assert.is_table((take())) end
    end)

    it("sends another probe when the first one's answer never comes", function()
      assert(take())
      assert.is_nil((take()))
      clock = clock + 31
      assert.is_true(assert(take()).probe)
    end)
  end)

  describe("the window", function()
    it("counts the requests admitted against the limit, and holds the next to the window's end", function()
      known_window()
      for _ = 1, 9 do assert.is_table((take())) end
      local held, wait = take()
      assert.is_nil(held)
      assert.is_true(math.abs(wait - 10) < 0.05, wait)
    end)

    it("keeps what answers that overtake each other say, never less than what was sent", function()
      known_window(100)
      local tickets = {}
      for i = 1, 20 do tickets[i] = assert(take()) end -- 21 sent in all
      -- The server counted the 20th first (count 2), the 3rd last (count 21).
      budget:settle(API, tickets[20], limits(100, 98, 10), 200)
      budget:settle(API, tickets[3], limits(100, 79, 10), 200)
      -- The old bound, min(ticket + remaining) = 3 + 79, would hold from the 83rd on:
      -- 79 more fit.
      for _ = 1, 79 do assert.is_table((take())) end
      assert.is_nil((take()))
    end)

    it("counts what other clients of the operator used, as the server's count says", function()
      known_window(10)
      local ticket = assert(take())
      budget:settle(API, ticket, limits(10, 2, 9), 200) -- 8 counted, 2 of them ours
      assert.is_table((take()))
      assert.is_table((take()))
      assert.is_nil((take()))
    end)

    it("counts requests still in flight at a rollover against the new window until they land", function()
      known_window(10)
      local late = {}
      for i = 1, 9 do late[i] = assert(take()) end
      clock = 110 -- the window ends with nine unanswered
      for _ = 1, 1 do assert.is_table((take())) end
      assert.is_nil((take()))
      -- Six of them landed in the old window (their answers end at 110): their places free.
      clock = 110.2
      for i = 1, 6 do budget:settle(API, late[i], limits(10, 0, 0), 200) end
      for _ = 1, 6 do assert.is_table((take())) end
      assert.is_nil((take()))
      -- The other three landed in the new one (their answers end at 120): they stay counted.
      for i = 7, 9 do budget:settle(API, late[i], limits(10, 2, 10), 200) end
      assert.is_nil((take()))
    end)

    it("skips windows nobody used, with all of the limit in the next", function()
      known_window(3)
      clock = 135.5 -- windows ending at 110, 120, 130 passed; this one ends at 140
      for _ = 1, 3 do assert.is_table((take())) end
      local held, wait = take()
      assert.is_nil(held)
      assert.is_true(math.abs(wait - 4.5) < 0.05, wait)
    end)

    it("keeps one account per API", function()
      known_window(1)
      assert.is_nil((take()))
      local place = assert(budget:enqueue("PUT /groups/{group_id}/tags"))
      assert.is_table((budget:admit(place)))
    end)
  end)

  describe("the queue", function()
    it("admits in arrival order: a later request never overtakes a waiter", function()
      known_window(2)
      budget:settle(API, assert(take()), limits(2, 0, 10), 200)
      local first = assert(budget:enqueue(API))
      local second = assert(budget:enqueue(API))
      assert.is_nil((budget:admit(first))) -- first waits for the window's end (110)...
      clock = 110
      -- ... and the second, asking first when it ends, does not take the one place left
      -- ahead of it: both fit in the new window, the first's place is kept.
      assert.is_table((budget:admit(second)))
      assert.is_table((budget:admit(first)))
      local third = assert(budget:enqueue(API))
      local fourth = assert(budget:enqueue(API))
      assert.is_nil((budget:admit(fourth)))
      assert.are.equal(2, budget:queued(API))
      budget:leave(third)
      budget:leave(fourth)
    end)

    it("knows each waiter's wait when it arrives: its place, then the limit a window", function()
      known_window(10)
      for _ = 1, 9 do assert(take()) end
      local waits = {}
      for i = 1, 25 do
        local place, wait = budget:enqueue(API)
        assert.is_table(place)
        waits[i] = wait
      end
      -- 1..10 in the window ending at 110, 11..20 at 120, 21..25 at 130
      assert.is_true(math.abs(waits[1] - 10) < 0.05 and math.abs(waits[10] - 10) < 0.05)
      assert.is_true(math.abs(waits[11] - 20) < 0.05 and math.abs(waits[20] - 20) < 0.05)
      assert.is_true(math.abs(waits[25] - 30) < 0.05)
    end)

    it("refuses at once, without taking a place, a request whose wait would pass the cap", function()
      known_window(10)
      for _ = 1, 9 do assert(take()) end
      for _ = 1, 10 do assert(budget:enqueue(API, 15)) end
      local place, wait, ahead, why = budget:enqueue(API, 15)
      assert.is_nil(place)
      assert.is_true(math.abs(wait - 20) < 0.05, wait)
      assert.are.equal(10, ahead)
      assert.matches("10 requests per 10 s", why, 1, true)
      assert.are.equal(10, budget:queued(API))
    end)

    it("goes on without a waiter that never comes back", function()
      known_window(2)
      budget:settle(API, assert(take()), limits(2, 0, 10), 200)
      local gone = assert(budget:enqueue(API))
      local next_one = assert(budget:enqueue(API))
      assert.is_nil((budget:admit(gone))) -- told to come back at 110; it never does
      clock = 110
      assert.is_table((budget:admit(next_one))) -- the second place of the new window
      local last = assert(budget:enqueue(API))
      assert.is_nil((budget:admit(last))) -- one place left, `gone` may still come
      clock = 112.5 -- `gone` is 2.5 s late: taken for gone
      assert.is_table((budget:admit(last)))
    end)
  end)

  describe("pauses and lies", function()
    it("pauses an API for everyone after a 429, then sends one probe before the others", function()
      known_window(10)
      local ticket = assert(take())
      budget:settle(API, ticket, nil, 429, 3)
      local held, wait = take()
      assert.is_nil(held)
      assert.is_true(math.abs(wait - 3) < 0.05, wait)
      assert.matches("paused", budget:describe(API))
      clock = 103
      local probe = assert(take())
      assert.is_true(probe.probe)
      assert.is_nil((take())) -- no stampede: the probe's answer first
      budget:settle(API, probe, limits(10, 9, 7), 200)
      assert.is_table((take()))
    end)

    it("never locks an API out after a limit of 0: one probe after the refresh time", function()
      known_window(10)
      local ticket = assert(take())
      budget:settle(API, ticket, limits(0, 0, 5), 200)
      local held, wait = take()
      assert.is_nil(held)
      assert.is_true(math.abs(wait - 5) < 0.05, wait)
      clock = 105
      local probe = assert(take())
      assert.is_true(probe.probe)
      -- the server lifted the limit: answers carry no headers any more
      budget:settle(API, probe, nil, 200)
      for _ = 1, 30 do assert.is_table((take())) end
    end)

    it("takes negative and absurd limits for lies, as a limit of 0", function()
      for _, lie in ipairs { limits(-1, 5, 2), limits(1e12, 1e12, 2), limits(10, -3, 2) } do
        clock = clock + 100
        budget = rate.new(function() return clock end)
        local ticket = assert(take())
        budget:settle(API, ticket, lie, 200)
        assert.is_nil((take()))
        clock = clock + 2
        assert.is_true(assert(take()).probe)
      end
    end)

    it("forgets the window once a success comes without limit headers", function()
      known_window(2)
      local slow = assert(take())
      assert.is_nil((take()))
      clock = 110
      local failed = assert(take())
      budget:settle(API, failed, nil, 502) -- an error without the headers says nothing
      budget:settle(API, slow, nil, 200) -- a success without them: not limited any more
      for _ = 1, 50 do assert.is_table((take())) end
    end)
  end)

  describe("what a review broke", function()
    it("opens the next window with a pause's probe when the pause crossed the window's end", function()
      known_window(100) -- window ends at 110
      local tickets = {}
      for i = 1, 50 do tickets[i] = assert(take()) end
      for i = 1, 49 do budget:settle(API, tickets[i], limits(100, 99 - i, 10), 200) end
      clock = 109
      budget:settle(API, tickets[50], limits(100, 0, 1), 429, 10)
      clock = 119.5
      local probe = assert(take())
      assert.is_true(probe.probe)
      clock = 119.6
      budget:settle(API, probe, limits(100, 99, 10), 200)
      for _ = 1, 99 do assert.is_table((take())) end
      assert.is_nil((take()))
    end)

    it("recovers from a cold start whose first answer is a 429", function()
      local first = assert(take())
      budget:settle(API, first, limits(100, 0, 10), 429, 10)
      clock = 110.01
      local probe = assert(take())
      clock = 110.05
      budget:settle(API, probe, limits(100, 99, 60), 200)
      for _ = 1, 99 do assert.is_table((take())) end
    end)

    it("forgets waiters that are gone for every newcomer, not only for those already queued", function()
      known_window(10)
      for _ = 1, 9 do assert(take()) end
      for _ = 1, 100 do
        local place = assert(budget:enqueue(API))
        assert.is_nil((budget:admit(place))) -- told to come back; its coroutine is dropped
      end
      clock = clock + 3600
      local place, wait = budget:enqueue(API, 60)
      assert.is_table(place)
      assert.is_true(wait < 1, wait)
    end)

    it("decides the cap from the place in the queue during a pause too", function()
      known_window(10)
      budget:settle(API, assert(take()), nil, 429, 2)
      for _ = 1, 30 do assert(budget:enqueue(API)) end
      local place, wait = budget:enqueue(API, 20)
      assert.is_nil(place)
      assert.is_true(wait > 20, wait) -- 30 ahead at 10 a window: three windows after the pause
    end)

    it("takes a probe's 401 without limit headers for nothing learned, not for no limit", function()
      local probe = assert(take())
      budget:settle(API, probe, nil, 401)
      local next_probe = assert(take())
      assert.is_true(next_probe.probe)
      assert.is_nil((take()))
    end)

    it("lets a late answer of the window before change neither this window's end nor the others' use", function()
      known_window(10)
      local late = {}
      for i = 1, 9 do late[i] = assert(take()) end
      for i = 1, 8 do budget:settle(API, late[i], limits(10, 9 - i, 9), 200) end
      clock = 110.5 -- the next window; one request answered in it
      local fresh = assert(take())
      budget:settle(API, fresh, limits(10, 9, 10), 200)
      clock = 111.2
      budget:settle(API, late[9], limits(10, 0, 1), 200) -- answered late: it counted 10 in the old one
      local admitted = 0
      while take() do admitted = admitted + 1 end
      assert.are.equal(8, admitted) -- 10 - fresh - late[9] (which may have landed here): not 0
      local _, wait = take()
      assert.is_true(wait > 8, wait) -- and the window still ends about 120.5, not 112.2
    end)

    it("does not count twice the requests in flight when an API's answers start carrying limits", function()
      budget:settle(API, assert(take()), nil, 200) -- not limited
      local tickets = {}
      for i = 1, 50 do tickets[i] = assert(take()) end
      for i = 1, 50 do budget:settle(API, tickets[i], limits(100, 50, 10), 200) end
      local admitted = {}
      while true do
        local ticket = take()
        if not ticket then break end
        admitted[#admitted + 1] = ticket
      end
      assert.are.equal(50, #admitted)
      for _, ticket in ipairs(admitted) do budget:settle(API, ticket, limits(100, 0, 9), 200) end
      clock = 110.5
      local next_window = 0
      while take() do next_window = next_window + 1 end
      assert.are.equal(100, next_window) -- the next window whole: no ghosts carried into it
    end)

    it("takes an absurd refresh for a lie, and follows a window that gets shorter", function()
      local ticket = assert(take())
      budget:settle(API, ticket, limits(10, 9, 999999999), 200)
      local held, wait = take()
      assert.is_nil(held)
      assert.is_true(wait <= 24 * 3600, wait)
      budget = rate.new(function() return clock end)
      known_window(10) -- 10 s windows
      -- the server's windows are now 2 s long: each answer says so
      local function fill(at)
        clock = at
        for i = 1, 10 do budget:settle(API, assert(take()), limits(10, 10 - i, 2), 200) end
      end
      fill(110.1)
      fill(112.2)
      local _, next_wait = take()
      assert.is_true(next_wait < 3, next_wait) -- not 10 s: the window got shorter
    end)

    it("ends the pause of a limit of 0 with one probe even after the API had no limit", function()
      budget:settle(API, assert(take()), nil, 200)
      budget:settle(API, assert(take()), limits(0, 0, 5), 200)
      clock = 105.1
      assert.is_true(assert(take()).probe)
      assert.is_nil((take()))
    end)
  end)

  describe("one budget per operator (issue 23, item 6)", function()
    local function now() return clock end

    it("gives every client of an operator one queue and one account, and others their own", function()
      local one = rate.for_operator("https://e/v1", "OP1", now)
      local other = rate.for_operator("https://e/v1", "OP1", function() return clock end)
      local elsewhere = rate.for_operator("https://g/v1", "OP1", now)
      local stranger = rate.for_operator("https://e/v1", "OP2", now)
      local probe = assert(one:admit(assert(one:enqueue(API))))
      one:settle(API, probe, limits(3, 2, 10), 200)
      assert.is_table((other:admit(assert(other:enqueue(API)))))
      assert.is_table((one:admit(assert(one:enqueue(API)))))
      local place = assert(other:enqueue(API))
      assert.is_nil((other:admit(place))) -- the window's 3 are used, by the two of them
      assert.are.equal(1, one:queued(API))
      other:leave(place)
      for _, apart in ipairs { elsewhere, stranger } do
        assert.is_true(assert(apart:admit(assert(apart:enqueue(API)))).probe) -- a cold start
      end
    end)

    it("forgets an operator's budget once no client holds one", function()
      local held = rate.for_operator("https://e/v1", "OP-gone", now)
      assert(held:enqueue(API))
      assert.are.equal(1, rate.for_operator("https://e/v1", "OP-gone", now):queued(API))
      held = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, rate.for_operator("https://e/v1", "OP-gone", now):queued(API))
    end)

    it("starts afresh once every client of the operator has released its budget", function()
      -- what a client made now would find queued (it releases its budget at once)
      local function queued_for_a_newcomer()
        local newcomer = rate.for_operator("https://e/v1", "OP-released", now)
        local n = newcomer:queued(API)
        newcomer:release()
        return n
      end
      local first = rate.for_operator("https://e/v1", "OP-released", now)
      local second = rate.deferred(function() return rate.for_operator("https://e/v1", "OP-released", now) end)
      assert(first:enqueue(API))
      assert.are.equal(1, second:queued(API))
      first:release()
      first:release() -- safe twice: the second client still holds it
      assert.are.equal(1, queued_for_a_newcomer())
      second:release()
      assert.are.equal(0, queued_for_a_newcomer())
      assert.is_table((first:enqueue(API))) -- a released budget still serves its client's requests
    end)

    it("shares no operator's budget with a clock of its own", function()
      local function own_clock() return clock end
      local real = rate.for_operator("https://e/v1", "OP-clocks", now)
      assert(real:enqueue(API))
      assert.are.equal(0, rate.for_operator("https://e/v1", "OP-clocks", own_clock, nil, true):queued(API))
      assert.are.equal(1, rate.for_operator("https://e/v1", "OP-clocks", function() return clock end):queued(API))
    end)

    it("chooses a deferred budget at its first use, once", function()
      local calls = 0
      local deferred = rate.deferred(function()
        calls = calls + 1
        return rate.for_operator("https://e/v1", "OP-deferred", now)
      end)
      assert.are.equal(0, calls)
      local place = assert(deferred:enqueue(API))
      assert.are.equal(1, deferred:queued(API))
      deferred:leave(place)
      assert.are.equal(0, deferred:queued(API))
      assert.are.equal(1, calls)
    end)
  end)
end)
