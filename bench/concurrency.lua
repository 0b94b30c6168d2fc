-- Concurrency benchmark: client:map against the fake with injected latency, the
-- rate-limit budget against the fake's limits, and map's memory over many items.
--
--   lua5.4 bench/concurrency.lua            (or luajit; about two minutes)
--
-- Starts its own fake (spec/support/fake_server.lua). Run from the repository root.
-- Every figure is a ratio of two runs made here, one after the other.
-- 1. latency (50 ms a request): 400 get_group in a plain loop, then through map at
--    concurrency 1, 4, 16, 64. PASS: 16 is >= 12x the loop, 64 >= 0.8 x 64.
-- 2. update_config on 300 groups: a plain loop, 8 processes splitting the ids by hand
--    (as xargs -P 8 would), map at concurrency 16. PASS: map beats the 8 processes.
-- 3. rate limit (100 requests per 2 s window per API): 600 get_group through map at
--    concurrency 32. PASS: at most 2 answers 429, and the time is within 1.2x of what
--    the limit allows (the last request starts at the sixth window: 5 windows after
--    the first).
-- 4. memory: map over 100,000 items with keep_results = false, every tenth item a
--    get_group; the live heap sampled every 10,000 items. PASS: it grows by at most
--    64 KiB between the samples at 20,000 and 100,000.
-- Exits 1 when a check fails.

local version = _VERSION:match("%d+%.%d+") or "5.1"
if rawget(_G, "jit") then version = "jit" end
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local now = core.now
local LATENCY = 0.05

-- A worker of section 2: update_config on the ids given, one after the other.
if arg[1] == "--worker" then
  local client = assert(groups.new { endpoint = arg[2], api_key = "test-api-key", token = "test-token",
    transport = "curl" })
  for i = 3, #arg do
    assert(client:update_config(arg[i], "air", { metadata = { enabled = true } }))
  end
  client:close()
  os.exit(0)
end

local fake = require "spec.support.fake_server"
local srv = fake.start()
local failed = false

local function client()
  return assert(groups.new { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token,
    transport = "curl" })
end

local function verdict(ok, text)
  print((ok and "PASS " or "FAIL ") .. text)
  if not ok then failed = true end
end

local function range(n)
  local list = {}
  for i = 1, n do list[i] = i end
  return list
end

local function timed(fn)
  local started = now()
  fn()
  return now() - started
end

-- 1. latency --------------------------------------------------------------------
do
  srv:reset()
  srv:settings { latency = LATENCY, record_requests = false }
  local id = srv:seed_groups(1)[1]
  local c = client()
  assert(c:get_group(id))
  local n = 400
  local loop = timed(function()
    for _ = 1, n do assert(c:get_group(id)) end
  end)
  print(string.format("latency: %d get_group at %.0f ms: plain loop %.2f s (%.0f req/s)",
    n, LATENCY * 1000, loop, n / loop))
  local speedups = {}
  for _, concurrency in ipairs { 1, 4, 16, 64 } do
    local _, summary = c:map(range(n), function() return c:get_group(id) end,
      { concurrency = concurrency, keep_results = false })
    assert(summary.ok == n, "map: not every get_group succeeded")
    speedups[concurrency] = loop / summary.seconds
    print(string.format("latency: map at concurrency %2d: %.2f s, %.1fx the loop (ideal %dx)",
      concurrency, summary.seconds, speedups[concurrency], concurrency))
  end
  verdict(speedups[16] >= 12, string.format("concurrency 16 is %.1fx the loop (>= 12x)", speedups[16]))
  verdict(speedups[64] >= 0.8 * 64, string.format("concurrency 64 is %.2f of the ideal 64x (>= 0.8)",
    speedups[64] / 64))
  c:close()
end

-- 2. update_config ----------------------------------------------------------------
do
  srv:reset()
  srv:settings { latency = LATENCY, record_requests = false }
  local n = 300
  local ids = srv:seed_groups(n)
  local c = client()
  local changes = { metadata = { enabled = true } }
  local loop = timed(function()
    for _, id in ipairs(ids) do assert(c:update_config(id, "air", changes)) end
  end)
  local lua = arg[-1] or "lua5.4"
  local shares = {}
  for i, id in ipairs(ids) do
    local k = (i - 1) % 8 + 1
    shares[k] = (shares[k] or "") .. " " .. id
  end
  local commands = {}
  for k = 1, 8 do
    commands[k] = string.format("%s bench/concurrency.lua --worker %s%s &", lua, srv.endpoint, shares[k])
  end
  local processes = timed(function()
    assert(os.execute(table.concat(commands, " ") .. " wait"))
  end)
  local _, summary = c:map(ids, function(id) return c:update_config(id, "air", changes) end,
    { concurrency = 16 })
  assert(summary.ok == n, "map: not every update_config succeeded")
  print(string.format("update_config: %d groups at %.0f ms: plain loop %.2f s, 8 processes %.2f s, "
    .. "map at 16 %.2f s", n, LATENCY * 1000, loop, processes, summary.seconds))
  verdict(summary.seconds < processes, string.format("map at 16 takes %.2f of the 8 processes' time (< 1)",
    summary.seconds / processes))
  c:close()
end

-- 3. rate limit -------------------------------------------------------------------
do
  srv:reset()
  srv:settings { record_requests = false, rate_limit = { limit = 100, window = 2 } }
  local id = srv:seed_groups(1)[1]
  local c = client()
  local n, limit, window = 600, 100, 2
  local _, summary = c:map(range(n), function() return c:get_group(id) end,
    { concurrency = 32, keep_results = false })
  local refused = srv:stats().status_429
  local allowed = (n / limit - 1) * window
  print(string.format("rate limit: %d get_group at %d per %d s, concurrency 32: %.2f s (the limit allows "
    .. "%.1f s), %d ok, %d answers 429", n, limit, window, summary.seconds, allowed, summary.ok, refused))
  verdict(summary.ok == n and refused <= 2, string.format("%d answers 429 (<= 2)", refused))
  verdict(summary.seconds <= 1.2 * allowed, string.format("%.2fx the time the limit allows (<= 1.2)",
    summary.seconds / allowed))
  c:close()
end

-- 4. memory -----------------------------------------------------------------------
do
  srv:reset()
  srv:settings { record_requests = false }
  local id = srv:seed_groups(1)[1]
  local c = client()
  local n, every = 100000, 10000
  local samples = {}
  for k = 1, n / every do samples[k] = 0 end
  local function items()
    local i = 0
    return function()
      i = i + 1
      if i <= n then return i end
    end
  end
  local _, summary = c:map(items(), function(i)
    if i % 10 == 0 then return c:get_group(id) end
    return i
  end, { concurrency = 16, keep_results = false, on_result = function(i)
    if i % every == 0 then
      collectgarbage()
      samples[i / every] = collectgarbage("count")
    end
  end })
  assert(summary.ok == n, "map: not every item succeeded")
  local base, top = samples[2], samples[2]
  for k = 2, #samples do top = math.max(top, samples[k]) end
  print(string.format("memory: %d items in %.2f s, live heap at 20,000 %.0f KiB, highest after %.0f KiB",
    n, summary.seconds, base, top))
  verdict(top - base <= 64, string.format("the live heap grew %.1f KiB over 80,000 items (<= 64)", top - base))
  c:close()
end

srv:stop()
os.exit(failed and 1 or 0)
