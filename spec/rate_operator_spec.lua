-- One rate-limit budget per operator in a process (issue 23, item 6): Soracom counts
-- each operator's requests per API, whichever credentials send them, so two clients of
-- one operator (its auth key and its root user) must share one budget. Against the fake
-- over real HTTP, whose tokens all name its one operator.
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"

describe("two clients of one operator in one process", function()
  local srv

  setup(function() srv = fake.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function new_client(credentials)
    local options = { endpoint = srv.endpoint, transport = "curl", retry_base_delay = 0.05 }
    for name, value in pairs(credentials) do options[name] = value end
    return assert(groups.new(options))
  end

  it("share one budget: a burst past the limit through both gets no answer 429", function()
    local id = srv:seed_groups(1)[1]
    srv:settings { rate_limit = { limit = 10, window = 1 } }
    local by_key = new_client { auth_key_id = srv.auth_key_id, auth_key = srv.auth_key }
    local by_root = new_client { email = srv.email, password = srv.password }
    assert.are.equal(by_key:operator_id(), by_root:operator_id())
    local items = {}
    for i = 1, 40 do items[i] = i end
    local _, summary = by_key:map(items, function(i)
      local client = i % 2 == 0 and by_key or by_root
      local group, err = client:get_group(id)
      return group and group.groupId, err
    end, { concurrency = 16 })
    assert.are.equal(40, summary.ok)
    local stats = srv:stats()
    assert.are.equal(0, stats.status_429)
    assert.are.equal(40, stats.by_api["GET /v1/groups/{group_id}"].requests) -- none sent twice
    -- 40 at 10 a window: the fourth window at the earliest
    assert.is_true(summary.seconds >= 2.5, summary.seconds)
    by_key:close()
    by_root:close()
  end)
end)
