-- The rate-limit budget's accounting, on a clock the spec moves by hand.
local rate = require "soracom.groups.rate"

describe("the rate-limit budget", function()
  local clock, budget
  before_each(function()
    clock = 100
    budget = rate.new(function() return clock end)
  end)

  local API = "GET /groups/{group_id}"

  it("admits anything for an API it knows nothing of", function()
    for i = 1, 50 do assert.are.equal(i, budget:admit(API)) end
  end)

  it("counts the requests in flight against what the answers say is left", function()
    local first = budget:admit(API)
    budget:settle(API, first, { limit = 5, remaining = 4, refresh = 10 }, 200)
    -- tickets 2..5 fit (1 + 4); the sixth waits for the window's end, 10 s on
    for ticket = 2, 5 do assert.are.equal(ticket, budget:admit(API)) end
    local ticket, wait = budget:admit(API)
    assert.is_nil(ticket)
    assert.are.equal(10, wait)
  end)

  it("keeps the tightest bounds from answers that arrive out of order", function()
    for _ = 1, 3 do budget:admit(API) end
    budget:settle(API, 3, { limit = 10, remaining = 7, refresh = 10 }, 200) -- ceiling 10
    clock = 100.5
    budget:settle(API, 1, { limit = 10, remaining = 8, refresh = 9 }, 200) -- ceiling 9, ends 109.5
    for ticket = 4, 9 do assert.are.equal(ticket, budget:admit(API)) end
    local ticket, wait = budget:admit(API)
    assert.is_nil(ticket)
    assert.are.equal(9, wait)
  end)

  it("opens the next window when the known one has ended", function()
    budget:settle(API, budget:admit(API), { limit = 2, remaining = 0, refresh = 5 }, 200)
    assert.is_nil((budget:admit(API)))
    clock = 105
    assert.are.equal(2, budget:admit(API))
    assert.are.equal(3, budget:admit(API))
    -- used up again before any answer of the new window: ask again shortly
    local held, soon = budget:admit(API)
    assert.is_nil(held)
    assert.is_true(soon > 0 and soon <= 1)
    -- an answer from the new window (its end a window later) sets the account anew
    budget:settle(API, 2, { limit = 2, remaining = 1, refresh = 5 }, 200)
    local ticket, wait = budget:admit(API)
    assert.is_nil(ticket)
    assert.are.equal(5, wait)
  end)

  it("pauses an API after a 429 for the time the server asked", function()
    local ticket = budget:admit(API)
    budget:settle(API, ticket, nil, 429, 3)
    local held, wait = budget:admit(API)
    assert.is_nil(held)
    assert.are.equal(3, wait)
    assert.truthy(budget:describe(API, wait):find("paused after a 429", 1, true))
    clock = 103
    assert.are.equal(2, budget:admit(API))
  end)

  it("stops holding an API once a success comes without limit headers", function()
    budget:settle(API, budget:admit(API), { limit = 2, remaining = 0, refresh = 5 }, 200)
    assert.is_nil((budget:admit(API)))
    clock = 105 -- the next window: room for 2
    local slow, failed = budget:admit(API), budget:admit(API)
    -- an error without the headers (a proxy's 502) says nothing of the limit
    budget:settle(API, failed, nil, 502)
    assert.is_nil((budget:admit(API)))
    -- a success without them: the API is no longer limited
    budget:settle(API, slow, nil, 200)
    for _ = 1, 50 do assert.is_number((budget:admit(API))) end
  end)

  it("keeps one account per API", function()
    budget:settle(API, budget:admit(API), { limit = 1, remaining = 0, refresh = 60 }, 200)
    assert.is_nil((budget:admit(API)))
    assert.is_number(budget:admit("PUT /groups/{group_id}/tags"))
  end)
end)

describe("the rate-limit budget after a window rolls over", function()
  local API = "GET /groups"

  it("stops awaiting answers that never come (an aborted request) after a while", function()
    local clock = 100
    local budget = rate.new(function() return clock end)
    budget:settle(API, budget:admit(API), { limit = 2, remaining = 0, refresh = 5 }, 200)
    clock = 105
    assert.are.equal(2, budget:admit(API))
    assert.are.equal(3, budget:admit(API)) -- both in flight; their answers never come
    clock = 110
    local held, soon = budget:admit(API)
    assert.is_nil(held)
    assert.is_true(soon <= 1)
    clock = 105 + 31 -- past the time in-flight requests are taken for lost
    assert.are.equal(4, budget:admit(API))
    assert.are.equal(5, budget:admit(API))
    assert.is_nil((budget:admit(API)))
  end)
end)
