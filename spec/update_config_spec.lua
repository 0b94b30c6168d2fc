-- update_config with several namespaces in one call (one read, one conflict check, one
-- write each), its conflict error, and what it says when a write fails after others,
-- over HTTP against the fake server.
local groups = require "soracom.groups"
local config = require "soracom.groups.config"
local fake = require "spec.support.fake_server"
local new_client = require "spec.support.client"

local function raises(message, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(message, 1, true), err)
end

-- Lets the next `n` requests through untouched (a fault that only delays, by nothing).
local function pass(n) return { delay = 0, times = n } end

local REFUSED = { status = 400, body = { code = "GRP0005", message = "refused by the test" } }

describe("update_config", function()
  local srv, client

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    client = new_client(srv)
  end)
  after_each(function() client:close() end)

  local function trail() return srv:trail() end

  local function new_group(configuration)
    local group = assert(client:create_group { configuration = configuration })
    srv:clear_requests()
    return group, "/v1/groups/" .. group.groupId
  end

  describe("with changes by namespace", function()
    it("reads once, checks once and writes each namespace once, keeping the others", function()
      local group, path = new_group { SoracomAir = { useVpg = true, metadata = { enabled = false } },
        SoracomOrbit = { enabled = true } }
      local updated = assert(client:update_config(group.groupId, {
        air = { metadata = { enabled = true } },
        SoracomHarvest = { enabled = true },
      }))
      assert.are.same({ useVpg = true, metadata = { enabled = true } }, updated.configuration.SoracomAir)
      assert.are.same({ enabled = true }, updated.configuration.SoracomHarvest)
      assert.are.same({ enabled = true }, updated.configuration.SoracomOrbit)
      assert.are.same({ "GET " .. path, "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir",
        "PUT " .. path .. "/configuration/SoracomHarvest" }, trail())
      assert.are.same(updated, assert(client:get_group(group.groupId)))
    end)

    it("given a group already read, sends one GET in all before its writes", function()
      local group, path = new_group()
      local updated = assert(client:update_config(group, { harvest = { enabled = true }, air = { use_vpg = true } }))
      assert.are.same({ SoracomAir = { useVpg = true }, SoracomHarvest = { enabled = true } }, updated.configuration)
      assert.are.same({ "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir",
        "PUT " .. path .. "/configuration/SoracomHarvest" }, trail())
    end)

    it("takes removals and a namespace emptied, then reads the group, which no answer holds in full", function()
      local group, path = new_group { SoracomAir = { useVpg = true, vpgId = "v1" },
        SoracomHarvest = { enabled = true } }
      local updated = assert(client:update_config(group, {
        air = { vpg_id = groups.null },
        harvest = { enabled = groups.null },
      }))
      assert.are.same({ SoracomAir = { useVpg = true } }, updated.configuration)
      assert.are.same({ "GET " .. path,
        "PUT " .. path .. "/configuration/SoracomAir", "DELETE " .. path .. "/configuration/SoracomAir/vpgId",
        "DELETE " .. path .. "/configuration/SoracomHarvest",
        "GET " .. path }, trail())
    end)

    it("returns the last PUT's answer, which holds every write before it, and takes functions", function()
      local group, path = new_group { SoracomHarvest = { enabled = true } }
      local seen
      local updated = assert(client:update_config(group, {
        harvest = { enabled = groups.null },
        orbit = function(current)
          seen = next(current) -- SoracomOrbit has no settings yet
          current.enabled = true
          return current
        end,
      }))
      assert.is_nil(seen)
      assert.are.same({ SoracomOrbit = { enabled = true } }, updated.configuration)
      assert.are.same({ "GET " .. path, "DELETE " .. path .. "/configuration/SoracomHarvest",
        "PUT " .. path .. "/configuration/SoracomOrbit" }, trail())
      assert.are.same(assert(client:get_group(group.groupId)), updated)
    end)

    it("sends only the reads when no namespace has anything to write", function()
      local group, path = new_group()
      local same = assert(client:update_config(group.groupId, { air = { vpg_id = groups.null },
        harvest = { enabled = groups.null } }))
      assert.are.same(group.lastModifiedTime, same.lastModifiedTime)
      assert.are.same({ "GET " .. path, "GET " .. path }, trail())
    end)

    it("checks every namespace and its changes before sending anything", function()
      raises('update_config: namespace "Air" is not one of SoracomAir,',
        function() client:update_config("g", { Air = { use_vpg = true } }) end)
      raises('did you mean "air" (SoracomAir)?', function() client:update_config("g", { Air = { use_vpg = true } }) end)
      raises("update_config: the changes name SoracomAir twice",
        function() client:update_config("g", { air = {}, SoracomAir = {} }) end)
      raises("update_config: changes.harvest must be a table or a function (got string)",
        function() client:update_config("g", { air = {}, harvest = "on" }) end)
      raises("air.use_vpg must be a boolean", function() client:update_config("g", { air = { use_vpg = 1 } }) end)
      raises("update_config: SoracomOrbit settings cannot be removed one by one",
        function() client:update_config("g", { orbit = { use_location = groups.null } }) end)
      raises("update_config: changes by namespace ({air = ..., harvest = ...}) take no third argument (got table)",
        function() client:update_config("g", { air = {} }, {}) end)
      raises("update_config: the changes by namespace are empty", function() client:update_config("g", {}) end)
      raises("update_config: takes changes in the builder's form ({air = {...}}), not a built configuration",
        function() client:update_config("g", config.air { use_vpg = true }) end)
      assert.are.same({}, trail())
    end)

    it("raises at the caller's line", function()
      local ok, err = pcall(function()
        client:update_config("g", { Air = {} }) -- this line
      end)
      assert.is_false(ok)
      assert.matches("update_config_spec.lua:%d+: soracom.groups: update_config: namespace", err)
    end)
  end)

  describe("a conflict", function()
    it("after the caller's own write to the group it passed says to pass on the group that call returned, "
      .. "and shows no PUT", function()
      local group, path = new_group()
      local after_air = assert(client:update_config(group, "air", { use_vpg = true }))
      srv:clear_requests()
      local updated, err = client:update_config(group, "harvest", { enabled = true }) -- the stale group
      assert.is_nil(updated)
      assert.are.equal("conflict", err.kind)
      assert.are.equal("GET", err.method)
      assert.are.equal("/groups/" .. group.groupId, err.path)
      local text = tostring(err)
      assert.is_nil(text:find("PUT", 1, true), text)
      assert.truthy(text:find("; nothing was written: when your own earlier update_config (or other write) "
        .. "changed it, pass on the group that call returned, not the one it was given", 1, true), text)
      assert.are.same({ "GET " .. path }, trail())
      -- as it says: the group that call returned goes through
      local updated_again = assert(client:update_config(after_air, "harvest", { enabled = true }))
      assert.are.same({ SoracomAir = { useVpg = true }, SoracomHarvest = { enabled = true } },
        updated_again.configuration)
    end)

    it("caused by another writer between the two reads shows no PUT either", function()
      local group = new_group()
      local other = new_client(srv)
      local updated, err = client:update_config(group.groupId, { air = function(current)
        other:set_tag(group.groupId, "touched", "yes")
        current.use_vpg = true
        return current
      end, harvest = { enabled = true } })
      other:close()
      assert.is_nil(updated)
      assert.are.equal("conflict", err.kind)
      assert.is_nil(tostring(err):find("PUT", 1, true), tostring(err))
      assert.is_nil(tostring(err):find("pass on", 1, true), tostring(err)) -- no group was given
      assert.are.same({}, assert(client:get_group(group.groupId)).configuration)
    end)

    it("is not the error of a change the API cannot make, which shows no PUT either", function()
      local group = new_group { SoracomOrbit = { enabled = true, useLocation = true } }
      local updated, err = client:update_config(group, { air = { use_vpg = true }, orbit = function(current)
        current.use_location = nil
        return current
      end })
      assert.is_nil(updated)
      assert.are.equal("unsupported", err.kind)
      assert.is_nil(tostring(err):find("PUT", 1, true), tostring(err))
      for _, line in ipairs(trail()) do assert.matches("^GET ", line) end
    end)
  end)

  describe("a write that fails after another", function()
    it("returns nil and an error naming the namespaces written and not, with the group as it is now", function()
      local group, path = new_group { SoracomOrbit = { enabled = true } }
      srv:faults { pass(2), REFUSED } -- the check and Air's PUT pass; Harvest's PUT is refused
      local updated, err = client:update_config(group, { air = { use_vpg = true }, harvest = { enabled = true } })
      assert.is_nil(updated)
      assert.are.equal(400, err.status)
      assert.are.equal("PUT", err.method)
      assert.are.same({ "SoracomAir" }, err.written)
      assert.is_nil(err.written_in_part)
      assert.truthy(tostring(err):find("refused by the test; update_config wrote SoracomAir; not SoracomHarvest",
        1, true), tostring(err))
      assert.are.same({ "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir",
        "PUT " .. path .. "/configuration/SoracomHarvest" }, trail())
      local now = assert(client:get_group(group.groupId))
      assert.are.same({ SoracomAir = { useVpg = true }, SoracomOrbit = { enabled = true } }, now.configuration)
      assert.are.same(now, err.group)
      -- err.group is the one to pass on for the rest
      local updated_rest = assert(client:update_config(err.group, "harvest", { enabled = true }))
      assert.are.same({ enabled = true }, updated_rest.configuration.SoracomHarvest)
    end)

    it("says when the failed namespace was written in part: its PUT, not a removal after it", function()
      local group, path = new_group { SoracomAir = { useVpg = true, vpgId = "v1" } }
      srv:faults { pass(2), REFUSED } -- the check and Air's PUT pass; the DELETE of vpgId is refused
      local updated, err = client:update_config(group, { air = { vpg_id = groups.null, use_vpg = false },
        harvest = { enabled = true } })
      assert.is_nil(updated)
      assert.are.equal("DELETE", err.method)
      assert.are.same({}, err.written)
      assert.are.equal("SoracomAir", err.written_in_part)
      assert.truthy(tostring(err):find("update_config wrote SoracomAir in part (its PUT, not every removal); "
        .. "not SoracomHarvest", 1, true), tostring(err))
      assert.are.same({ "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir",
        "DELETE " .. path .. "/configuration/SoracomAir/vpgId" }, trail())
      -- the group as the PUT answered: this fake resets what a PUT leaves out, so vpgId is gone
      assert.are.same(assert(client:get_group(group.groupId)), err.group)
    end)

    it("on a connection reset, leaves err.group as the last answer showed it, safe to pass on", function()
      local once = new_client(srv, { retries = 0 })
      local group, path = new_group()
      srv:faults { pass(2), { reset_after_bytes = 10 } } -- a connection reset amid the answer
      local updated, err = once:update_config(group, { air = { use_vpg = true }, funk = { enabled = true } })
      assert.is_nil(updated)
      assert.are.equal("network", err.kind)
      assert.are.same({ "SoracomAir" }, err.written)
      assert.are.equal("PUT", err.method)
      assert.are.equal("/groups/" .. group.groupId .. "/configuration/SoracomFunk", err.path)
      assert.are.same({ SoracomAir = { useVpg = true } }, err.group.configuration)
      assert.are.same({ "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir",
        "PUT " .. path .. "/configuration/SoracomFunk" }, trail())
      local done = assert(once:update_config(err.group, "funk", { enabled = true }))
      assert.are.same({ SoracomAir = { useVpg = true }, SoracomFunk = { enabled = true } }, done.configuration)
      once:close()
    end)

    it("the first write failing: nothing written, the error as it was", function()
      local group = new_group()
      srv:faults { pass(1), REFUSED }
      local updated, err = client:update_config(group, { air = { use_vpg = true }, harvest = { enabled = true } })
      assert.is_nil(updated)
      assert.are.same({}, err.written)
      assert.are.equal("refused by the test", err.message)
      assert.are.same({}, assert(client:get_group(group.groupId)).configuration)
    end)
  end)

  it("keeps the one-namespace form", function()
    local group, path = new_group { SoracomAir = { useVpg = true } }
    local updated = assert(client:update_config(group.groupId, "air", { userdata = "u" }))
    assert.are.same({ useVpg = true, userdata = "u" }, updated.configuration.SoracomAir)
    assert.are.same({ "GET " .. path, "GET " .. path, "PUT " .. path .. "/configuration/SoracomAir" }, trail())
    raises("update_config: changes must be a table or a function (got nil)",
      function() client:update_config("g", "air") end)
  end)
end)
