-- Issue 9, item 1: the C core is re-entrant. Lua code that runs in the middle of a
-- core call (a finalizer run by one of its allocations, a metamethod of a table the
-- caller passed) may call the core again; each call still gives its own result.
local core = require "soracom.groups.core"

local finalizable = require "spec.support.finalizable"

-- Which allocation of a core call takes a GC step, so where a finalizer runs, depends
-- on the collector's settings and the Lua version; these (pause, step multiplier) pairs
-- usually make finalizers run inside build_url many times, on each version.
local GC_SETTINGS = { { 0, 1000 }, { 0, 100 }, { 0, 10 }, { 100, 100 }, { 200, 200 } }

-- Runs round() many times under each setting, each time after leaving garbage whose
-- finalizers are finalizer (enough that some are always pending), and restores the
-- collector.
local function under_gc_pressure(finalizer, round)
  local pause = collectgarbage("setpause", 200)
  local stepmul = collectgarbage("setstepmul", 200)
  local ok, err = pcall(function()
    for _, setting in ipairs(GC_SETTINGS) do
      collectgarbage("setpause", setting[1])
      collectgarbage("setstepmul", setting[2])
      for _ = 1, 300 do
        for _ = 1, 10 do finalizable(finalizer) end
        round()
      end
    end
  end)
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  collectgarbage()
  collectgarbage()
  assert(ok, err)
end

local LONG = string.rep("x", 3000)

describe("the C core is re-entrant (issue 9, item 1)", function()
  local inside, ran_inside, inner_failures

  -- What each finalizer does: every core function that builds text, each result
  -- checked against what it must be.
  local function inner()
    if inside then ran_inside = ran_inside + 1 end
    local escaped = core.escape("zz zz/zz")
    local url, path = core.build_url("http://i/v2", "/in/{x}", { "q" }, { q = "1 2" }, "y z")
    local json = core.encode_json({ inner = "yes" })
    if escaped ~= "zz%20zz%2Fzz" then inner_failures[#inner_failures + 1] = escaped end
    if url ~= "http://i/v2/in/y%20z?q=1%202" then inner_failures[#inner_failures + 1] = url end
    if path ~= "/in/y%20z" then inner_failures[#inner_failures + 1] = path end
    if json ~= '{"inner":"yes"}' then inner_failures[#inner_failures + 1] = json end
  end

  before_each(function()
    inside, ran_inside, inner_failures = false, 0, {}
  end)

  it("build_url gives the right URL and path while finalizers call the core", function()
    local expected_path = "/groups/g%201/tags/" .. LONG
    local expected_url = "http://h/v1" .. expected_path .. "?a=x%20y&b=2"
    local names, query = { "a", "b" }, { a = "x y", b = 2 }
    local wrong = {}
    under_gc_pressure(inner, function()
      inside = true
      local url, path = core.build_url("http://h/v1", "/groups/{id}/tags/{t}", names, query,
        "g 1", LONG)
      inside = false
      if url ~= expected_url or path ~= expected_path then wrong[#wrong + 1] = url end
    end)
    assert.are.same({}, inner_failures)
    assert.are.same({}, wrong)
    -- rare, but the collector may have taken every step outside the calls this time
    if ran_inside == 0 then pending("no finalizer ran inside build_url this time") end
  end)

  -- encode_json and escape allocate less, so whether a step, and a finalizer, falls
  -- inside them varies more with the version and what ran before.
  it("encode_json gives the right text and errors while finalizers call the core", function()
    local body = { name = LONG, tags = { "a b", 1, true } }
    local expected = { '{"name":"' .. LONG .. '","tags":["a b",1,true]}',
      '{"tags":["a b",1,true],"name":"' .. LONG .. '"}' }
    local bad_body = { tags = { "a", { LONG, print } } }
    local wrong = {}
    under_gc_pressure(inner, function()
      inside = true
      local text = core.encode_json(body)
      local ok, err = pcall(core.encode_json, bad_body, "config")
      inside = false
      if text ~= expected[1] and text ~= expected[2] then wrong[#wrong + 1] = text end
      if ok or err ~= "config.tags[2][2]: a function cannot be sent as JSON" then
        wrong[#wrong + 1] = tostring(err)
      end
    end)
    assert.are.same({}, inner_failures)
    assert.are.same({}, wrong)
  end)

  it("escape gives the right text while finalizers call the core", function()
    local value = string.rep("a b/", 1000)
    local expected = string.rep("a%20b%2F", 1000)
    local wrong = 0
    under_gc_pressure(inner, function()
      inside = true
      local text = core.escape(value)
      inside = false
      if text ~= expected then wrong = wrong + 1 end
    end)
    assert.are.same({}, inner_failures)
    assert.are.equal(0, wrong)
  end)

  it("reads the query tables raw: no __index runs, and what it would give is not sent", function()
    local calls = 0
    local function index(_, key)
      calls = calls + 1
      inner()
      return key == "tag_name" and "from __index" or nil
    end
    local query = setmetatable({ limit = 5 }, { __index = index })
    local names = setmetatable({}, { __index = function() calls = calls + 1; return "limit" end })
    assert.are.equal("http://h/v1/groups?limit=5",
      core.build_url("http://h/v1", "/groups", { "tag_name", "limit" }, query))
    assert.are.equal("http://h/v1/groups", core.build_url("http://h/v1", "/groups", names, query))
    assert.are.equal(0, calls)
    assert.are.same({}, inner_failures)
  end)

  it("reads a decoded error body raw, whatever the array mark's metatable holds", function()
    local mark = core.array_mt
    rawset(mark, "__index", function() inner(); return "from __index" end)
    local ok, value, err = pcall(core.decode_response, 400, '["not", "an", "error object"]')
    rawset(mark, "__index", nil)
    assert.is_true(ok, value)
    assert.is_nil(value)
    assert.are.equal('["not", "an", "error object"]', err.message)
    assert.is_nil(err.code)
    assert.are.same({}, inner_failures)
  end)
end)
