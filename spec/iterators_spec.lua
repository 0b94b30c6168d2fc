-- client:groups{} and client:subscribers(id, {}) over several pages of the fake server.
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"
local groups = require "soracom.groups"

describe("iterators", function()
  local srv, client

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    client = new_client(srv)
  end)
  after_each(function() client:close() end)

  local function list_requests()
    local n = 0
    for _, request in ipairs(srv:requests()) do
      if request.method == "GET" then n = n + 1 end
    end
    return n
  end

  it("visits every group across pages, in order, one request per page", function()
    local ids = srv:seed_groups(25)
    local seen = {}
    for group in client:groups { limit = 10 } do seen[#seen + 1] = group.groupId end
    assert.are.same(ids, seen)
    assert.are.equal(3, list_requests())
  end)

  it("sends nothing until the loop starts", function()
    srv:seed_groups(3)
    local iterator = client:groups { limit = 2 }
    assert.are.equal(0, list_requests())
    assert.is_table(iterator())
    assert.are.equal(1, list_requests())
  end)

  it("stops requesting when the loop breaks", function()
    srv:seed_groups(25)
    local n = 0
    for _ in client:groups { limit = 10 } do
      n = n + 1
      if n == 5 then break end
    end
    assert.are.equal(1, list_requests())
  end)

  it("passes the tag filter to every page", function()
    srv:seed_groups(3, { env = "prod" })
    srv:seed_groups(2, { env = "dev" })
    srv:seed_groups(3, { env = "prod" })
    local n = 0
    for group in client:groups { tag_name = "env", tag_value = "prod", limit = 2 } do
      assert.are.equal("prod", group.tags.env)
      n = n + 1
    end
    assert.are.equal(6, n)
  end)

  it("follows the Link header when x-soracom-next-key is absent", function()
    local ids = srv:seed_groups(5)
    srv:settings { next_key_header = false }
    local seen = {}
    for group in client:groups { limit = 2 } do seen[#seen + 1] = group.groupId end
    assert.are.same(ids, seen)
  end)

  it("follows x-soracom-next-key when the Link header is absent", function()
    local ids = srv:seed_groups(5)
    srv:settings { link_header = false }
    local seen = {}
    for group in client:groups { limit = 2 } do seen[#seen + 1] = group.groupId end
    assert.are.same(ids, seen)
  end)

  it("ends at once on an empty list", function()
    local n = 0
    for _ in client:groups() do n = n + 1 end
    assert.are.equal(0, n)
  end)

  it("raises the error object of a page that fails, with the key to resume from", function()
    local ids = srv:seed_groups(5)
    local seen = {}
    local ok, err = pcall(function()
      for group in client:groups { limit = 2 } do
        seen[#seen + 1] = group.groupId
        if #seen == 2 then srv:settings { token = "rotated" } end
      end
    end)
    assert.is_false(ok)
    assert.is_true(groups.is_error(err))
    assert.are.equal(401, err.status)
    assert.are.equal("GET", err.method)
    assert.are.equal(ids[2], err.resume_key)
    assert.are.same({ ids[1], ids[2] }, seen)
    -- resuming from err.resume_key with a good token finishes the list, losing nothing
    srv:settings { token = srv.token }
    for group in client:groups { limit = 2, last_evaluated_key = err.resume_key } do
      seen[#seen + 1] = group.groupId
    end
    assert.are.same(ids, seen)
  end)

  it("raises an error object when the pages go round in a loop, however long", function()
    local function page(id, key)
      return { status = 200, headers = { ["X-Soracom-Next-Key"] = key }, body = { { groupId = id } } }
    end
    for _, keys in ipairs { { "A", "A" }, { "A", "B", "A" }, { "A", "B", "C", "B" } } do
      local faults = {}
      for i, key in ipairs(keys) do faults[i] = page("g" .. i, key) end
      for _ = 1, 10 do faults[#faults + 1] = page("more", "Z") end -- where an endless loop would go
      srv:reset()
      srv:faults(faults)
      local seen = {}
      local ok, err = pcall(function()
        for group in client:groups() do seen[#seen + 1] = group.groupId end
      end)
      assert.is_false(ok)
      assert.is_true(groups.is_error(err), tostring(err))
      assert.are.equal("decode", err.kind)
      assert.are.equal("GET", err.method)
      assert.are.equal("/groups", err.path)
      assert.matches("page key " .. keys[#keys] .. " again", tostring(err), 1, true)
      assert.are.equal(keys[#keys - 1], err.resume_key)
      assert.are.equal(#keys - 1, #seen)
      assert.are.equal(#keys, #srv:requests())
    end
  end)

  it("raises a network error mid-iteration when retries are off", function()
    srv:seed_groups(4)
    local strict = new_client(srv, { retries = 0 })
    local ok, err = pcall(function()
      for _ in strict:groups { limit = 2 } do
        srv:faults { { close = true } }
      end
    end)
    strict:close()
    assert.is_false(ok)
    assert.are.equal("network", err.kind)
  end)

  it("retries a page that failed for a moment, losing and repeating nothing", function()
    local ids = srv:seed_groups(6)
    local waits = {}
    local patient = new_client(srv, { sleep = function(s) waits[#waits + 1] = s end })
    local seen = {}
    for group in patient:groups { limit = 2 } do
      seen[#seen + 1] = group.groupId
      if #seen == 2 then srv:faults { { status = 503, times = 2 } } end
    end
    patient:close()
    assert.are.same(ids, seen)
    assert.are.equal(2, #waits)
  end)

  it("visits every SIM of a group across pages", function()
    local group = client:create_group()
    local imsis = srv:seed_subscribers(group.groupId, 7)
    local seen = {}
    for sim in client:subscribers(group.groupId, { limit = 3 }) do seen[#seen + 1] = sim.imsi end
    assert.are.same(imsis, seen)
  end)

  it("checks its arguments before the loop starts", function()
    assert.has_error(function() client:groups { limt = 2 } end)
    assert.has_error(function() client:subscribers(nil) end,
      "soracom.groups: list_subscribers: group_id must be a non-empty string (got nil)")
    assert.are.equal(0, list_requests())
  end)
end)
