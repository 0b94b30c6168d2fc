-- What a map holds of the process (issue 23, item 13): its concurrency must fit the
-- file limit, or it fails at its start saying so; at the documented maximum every item
-- is done; a client's connections go with close(). Run in child processes under
-- `ulimit -n`, against the fake over real HTTP.
local fake = require "spec.support.fake_server"
local groups = require "soracom.groups"
local descriptors = require "spec.support.descriptors"
local under_limit = require "spec.support.under_limit"

-- Lua 5.1 cannot yield across pcall: a map called there runs on its own, to its end.
local YIELDS_EVERYWHERE = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

-- The child's preamble: a client of the fake (its endpoint and credentials given).
local function client_code(srv)
  return string.format([[
local groups = require "soracom.groups"
local function new_client()
  return assert(groups.new { endpoint = %q, auth_key_id = %q, auth_key = %q, transport = "curl" })
end
]], srv.endpoint, srv.auth_key_id, srv.auth_key)
end

-- The socket descriptors this process has open.
local function sockets_open()
  local _, n = descriptors.sockets_in(descriptors.of(descriptors.own_pid()))
  return n
end

describe("a map's resources", function()
  local srv, ids

  setup(function()
    srv = fake.start()
    ids = srv:seed_groups(40)
  end)
  teardown(function() if srv then srv:stop() end end)

  it("fails at its start, saying so, when its concurrency cannot fit the file limit", function()
    local out = under_limit(1024, client_code(srv) .. [[
local client = new_client()
local list = {}
for i = 1, 2000 do list[i] = i end
local ok, why = pcall(client.map, client, list, function() return client:list_groups() end, { concurrency = 1024 })
print(ok, why)
]])
    assert.truthy(out:find("false", 1, true), out)
    assert.truthy(out:find("map: options.concurrency 1024 needs up to 1040 more file descriptors", 1, true), out)
    assert.truthy(out:find("(ulimit -n 1024, ", 1, true), out)
  end)

  it("counts the maps already running: nested maps fail clearly instead of running out", function()
    local out = under_limit(64, client_code(srv) .. string.format([[
local id = %q
local client = new_client()
local outer = {}
for i = 1, 10 do outer[i] = i end
local started = os.time()
local results, summary = client:map(outer, function()
  local inner = {}
  for i = 1, 10 do inner[i] = id end
  local ok, why = pcall(client.map, client, inner, function(g) return client:get_group(g) end, { concurrency = 10 })
  if not ok then return nil, why end
  return true
end, { concurrency = 10 })
local refused
for _, r in ipairs(results) do
  if not r.ok and tostring(r.err):find("kept for the maps running", 1, true) then refused = true end
end
print("done", summary.ok + summary.failed, refused, os.time() - started)
]], ids[1]))
    local count, refused, seconds = out:match("done\t(%d+)\t(%S+)\t(%d+)")
    assert.are.equal("10", count, out)
    if YIELDS_EVERYWHERE then
      assert.are.equal("true", refused, out)
    end -- (Lua 5.1 runs a map inside pcall to its end, blocking: one inner map at a time)
    assert.is_true(tonumber(seconds) < 10, out)
  end)

  it("does every item at concurrency 1024 where the limit allows, and a second client after it", function()
    local out = under_limit(1200, client_code(srv) .. string.format([[
local id = %q
local function run(client)
  local list = {}
  for i = 1, 1024 do list[i] = id end
  local _, summary = client:map(list, function(group_id) return client:get_group(group_id) end,
    { concurrency = 1024 })
  return summary
end
local first, second = new_client(), new_client()
local a = run(first)
local b = run(second)
print("first", a.ok, a.failed, "second", b.ok, b.failed)
]], ids[1]))
    assert.truthy(out:find("first\t1024\t0\tsecond\t1024\t0", 1, true), out)
  end)

  it("keeps a bounded number of connections, and releases them on close()", function()
    local before = sockets_open()
    local client = assert(groups.new { endpoint = srv.endpoint, auth_key_id = srv.auth_key_id,
      auth_key = srv.auth_key, transport = "curl" })
    local _, summary = client:map(ids, function(id) return client:get_group(id) end, { concurrency = 40 })
    assert.are.equal(40, summary.ok)
    local kept = sockets_open() - before
    assert.is_true(kept >= 1, "sockets kept: " .. kept)
    client:close()
    assert.are.equal(before, sockets_open())
  end)
end)
