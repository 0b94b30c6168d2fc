-- Memory benchmark: iterating 10,000 groups with client:groups{} must keep the
-- process's memory flat -- it must not grow with the number of groups seen.
--
--   lua5.4 bench/memory.lua [BASE_URL]
--
-- BASE_URL is a running fake (http://127.0.0.1:PORT, as spec/fake/ctl prints it);
-- without one, a fake is started for this run (spec/support/fake_server.lua). The fake
-- is reset (all its groups are deleted) and then seeded with exactly 10,000 groups.
-- Run from the repository root.
--
-- The groups are iterated three times with `for g in client:groups{limit = 100}`; every
-- 1,000 groups we sample the Lua heap (collectgarbage "count") and the RSS (VmRSS in
-- /proc/self/status):
--   pass "cold":    the first iteration, shown for information only. Its RSS climbs
--     for a few thousand groups while the incremental collector lets garbage pile up to
--     its first peaks (about twice the live heap, GC pause 200%) and malloc grows its
--     arena to that high-water mark -- a one-off level set by the GC, not by the
--     number of groups (it stops climbing once the sawtooth has peaked);
--   pass "natural": the same loop again, no help from us: heap as it is (uncollected
--     garbage included), RSS as it is;
--   pass "live":    before each sample a full collection, so the heap figure is exactly
--     what is still reachable.
--
-- Criterion (exit 1 if any fails) on the natural and live passes, comparing the samples
-- from 2,000 to 10,000 groups with the sample at 2,000:
--   * live Lua heap:   max - at 2,000 <= 16 KiB.  One leaked byte per group would be
--     8 KB over those 8,000 groups, one leaked group table hundreds of KB; a loop that
--     keeps nothing stays within a few hundred bytes.
--   * natural Lua heap: max <= 2 x (max of the live heap) + 256 KiB. The collector lets
--     garbage pile up to about twice the live size between cycles, so a sawtooth is
--     expected; a heap that climbs with the groups breaks through this ceiling.
--   * RSS (each pass): max - at 2,000 <= 256 KiB (64 pages). A leak in C (a response
--     buffer or header list per page) or a Lua leak of 32 bytes per group would exceed it.
--   * RSS across passes: the last sample of the live pass - the natural pass's sample at
--     2,000 <= 256 KiB: 18,000 groups apart, so a slow leak has twice the room to show.
-- It also checks that each pass saw exactly the 10,000 seeded groups, each once.
-- The bookkeeping cannot skew the figures: the set of expected ids is built before the
-- first sample and only has existing keys flipped between true and false, and the
-- sample tables are allocated before each pass.

local version = _VERSION:match("%d+%.%d+")
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

local GROUPS = 10000
local EVERY = 1000
local PAGE_LIMIT = 100
local BASELINE = 2000
local LIVE_HEAP_SLACK = 16        -- KiB
local NATURAL_HEAP_SLACK = 256    -- KiB
local RSS_SLACK = 256             -- KiB

local base_url = arg[1]
local server
if base_url == nil then
  server = require("spec.support.fake_server").start()
  base_url = server.url
end

local function finish(code)
  if server then server:stop() end
  os.exit(code)
end

-- A control call of the fake (no auth); returns the decoded body, raises otherwise.
local function control(path, value, expected)
  local body = value and cjson.encode(value) or ""
  local chunks = {}
  local ok, status = http.request {
    url = base_url .. path, method = "POST",
    headers = { ["Content-Type"] = "application/json", ["Content-Length"] = tostring(#body) },
    source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
  }
  if not ok or status ~= expected then
    error(("memory: POST %s: %s %s"):format(path, tostring(status), table.concat(chunks)))
  end
  local text = table.concat(chunks)
  return text ~= "" and cjson.decode(text) or nil
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status", "r"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)%s*kB"))
end

control("/_fake/reset", nil, 204)
control("/_fake/settings", { record_requests = false }, 200)
local ids = control("/_fake/groups", { count = GROUPS }, 201).groupIds
assert(#ids == GROUPS, "the fake created " .. #ids .. " groups")
local expected = {}
for i = 1, GROUPS do expected[ids[i]] = true end
ids = nil -- luacheck: ignore

local client = groups.new { endpoint = base_url .. "/v1", api_key = "test-api-key", token = "test-token" }

local function pass(name, collect)
  local samples = {}
  for i = 1, GROUPS // EVERY do samples[i] = { groups = 0, heap = 0, rss = 0 } end
  local taken = 0
  local seen, problems = 0, 0
  for id in pairs(expected) do expected[id] = true end -- reset marks, no new keys
  collectgarbage("collect")
  collectgarbage("collect")
  for g in client:groups { limit = PAGE_LIMIT } do
    local id = g.groupId
    local mark = expected[id]
    if mark == true then
      expected[id] = false
      seen = seen + 1
    else
      problems = problems + 1
      if problems <= 5 then
        io.stderr:write(("memory: %s group %s\n"):format(mark == false and "duplicate" or "unexpected",
          tostring(id)))
      end
    end
    local count = seen + problems
    if count % EVERY == 0 then
      if collect then collectgarbage("collect") end
      taken = taken + 1
      local sample = samples[taken]
      if sample then
        sample.groups, sample.heap, sample.rss = count, collectgarbage("count"), rss_kib()
      end
    end
  end
  return { name = name, samples = samples, taken = taken, seen = seen, problems = problems }
end

local started = os.clock()
local cold = pass("cold", false)
local natural = pass("natural", false)
local live = pass("live", true)
local cpu = os.clock() - started
client:close()

local failures = {}
local function fail(fmt, ...) failures[#failures + 1] = fmt:format(...) end

-- max over samples from BASELINE on of field, and the value at BASELINE
local function span(result, field)
  local at, max
  for _, s in ipairs(result.samples) do
    if s.groups == BASELINE then at = s[field] end
    if s.groups >= BASELINE then max = math.max(max or s[field], s[field]) end
  end
  return at, max
end

for _, result in ipairs { cold, natural, live } do
  print(("pass %-7s   groups   lua heap KiB   RSS KiB"):format(result.name))
  for _, s in ipairs(result.samples) do
    print(("               %6d   %12.1f   %7d"):format(s.groups, s.heap, s.rss))
  end
  if result.seen ~= GROUPS or result.problems ~= 0 then
    fail("%s pass: saw %d distinct seeded groups (expected %d) and %d duplicate/unexpected ones",
      result.name, result.seen, GROUPS, result.problems)
  end
  if result.taken ~= GROUPS // EVERY then
    fail("%s pass: %d samples, expected %d", result.name, result.taken, GROUPS // EVERY)
  end
  local rss_at, rss_max = span(result, "rss")
  if result ~= cold and rss_at and rss_max - rss_at > RSS_SLACK then
    fail("%s pass: RSS grew by %d KiB after %d groups (limit %d KiB)",
      result.name, rss_max - rss_at, BASELINE, RSS_SLACK)
  end
end

local live_at, live_max = span(live, "heap")
if live_at and live_max - live_at > LIVE_HEAP_SLACK then
  fail("live Lua heap grew by %.1f KiB after %d groups (limit %d KiB)",
    live_max - live_at, BASELINE, LIVE_HEAP_SLACK)
end
local _, natural_max = span(natural, "heap")
if live_max and natural_max > 2 * live_max + NATURAL_HEAP_SLACK then
  fail("natural Lua heap reached %.1f KiB, above 2 x live (%.1f KiB) + %d KiB",
    natural_max, live_max, NATURAL_HEAP_SLACK)
end
local natural_rss_at, natural_rss_max = span(natural, "rss")
local live_rss_at, live_rss_max = span(live, "rss")
local live_rss_end = live.samples[#live.samples].rss
if natural_rss_at and live_rss_end - natural_rss_at > RSS_SLACK then
  fail("RSS grew by %d KiB from the natural pass's %d groups to the end of the live pass (limit %d KiB)",
    live_rss_end - natural_rss_at, BASELINE, RSS_SLACK)
end

print(("memory: %d groups per pass in pages of %d; from %d to %d groups: live heap %+.1f KiB, "
  .. "RSS %+d KiB (natural), %+d KiB (live), %+d KiB across both; %.2f s CPU for 3 passes")
  :format(live.seen, PAGE_LIMIT, BASELINE, GROUPS, (live_max or 0) - (live_at or 0),
    (natural_rss_max or 0) - (natural_rss_at or 0), (live_rss_max or 0) - (live_rss_at or 0),
    live_rss_end - (natural_rss_at or 0), cpu))
if #failures > 0 then
  for _, message in ipairs(failures) do print("FAIL memory: " .. message) end
  finish(1)
end
print("PASS memory: flat while iterating " .. GROUPS .. " groups")
finish(0)
