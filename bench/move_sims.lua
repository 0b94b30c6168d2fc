-- Moving 2000 SIMs (issue 25): client:move_sims one call per SIM, and through the
-- Batch API, against the fake at 50 ms latency under a limit of 100 requests per 2 s
-- (per operator and API, as Soracom counts; the fake's windows, Retry-After not sent).
--
--   lua5.4 bench/move_sims.lua [--report]      (or luajit; about a minute)
--
-- Run from the repository root, after scripts/build 5.4 (or jit). Starts its own fake
-- (spec/support/fake_server.lua), seeds one group and 2000 SIMs in no group.
--
-- Rows (each with a fresh client, which does not know the limit yet):
--   calls  move_sims(ids, group, {batch = false}) at the default concurrency (8).
--          Ideal: the limit's pace. The fake's windows start with the first request
--          after the last one ended, so call k (from 0) starts no earlier than
--          floor(k / 100) windows after the first: 19 windows, 38 s, plus the last
--          answer's latency; the issue's figure is 40 s (2000 / 100 x 2 s).
--          Goal: every SIM moved, 0 answers 429, at most 1.1 x 40 s = 44 s.
--   batch  move_sims(ids, nil, {batch = true}): the same SIMs out of the group, as one
--          job (the fake runs 2000 tasks in about a second). Goal: every SIM moved, at
--          most 10 requests in all (batch groups listed and one made, the job created,
--          a handful of polls), 0 answers 429.
--
-- Prints one line per row; exits 1 when a goal is missed, unless --report.

local version = _VERSION:match("%d+%.%d+") or "5.1"
if rawget(_G, "jit") then version = "jit" end
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"
local core = require "soracom.groups.core"
local fake = require "spec.support.fake_server"

local SIMS, LIMIT, WINDOW, LATENCY = 2000, 100, 2, 0.05
local CALLS_GOAL_SECONDS = 1.1 * SIMS / LIMIT * WINDOW
local BATCH_GOAL_REQUESTS = 10
local report_only = arg[1] == "--report"

-- "N METHOD /v1/template" for each API the fake counted.
local function requests_by_api(stats)
  local parts = {}
  for api, counts in pairs(stats.by_api) do parts[#parts + 1] = counts.requests .. " " .. api end
  table.sort(parts)
  return table.concat(parts, ", ")
end

local srv = fake.start()
local ok, misses_or_error = pcall(function()
  srv:settings { latency = LATENCY, rate_limit = { limit = LIMIT, window = WINDOW, retry_after = false },
    batch_start_delay = 0.2, batch_task_seconds = 0.0005 }
  local seeding = assert(groups.new { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token })
  local group_id = assert(seeding:create_group { tags = { name = "bench-move-sims" } }).groupId
  seeding:close()
  local ids = srv:add_sims { count = SIMS }
  local misses = 0

  local function row(name, target, options, judge)
    srv:clear_stats()
    srv:clear_rate_limit_windows()
    local client = assert(groups.new { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token,
      transport = "curl" })
    local started = core.now()
    local _, summary = client:move_sims(ids, target, options)
    local seconds = core.now() - started
    client:close()
    local stats = srv:stats()
    local line, missed = judge(summary, seconds, stats)
    print(string.format("%-6s %s: %s", name, missed and "MISS" or "PASS", line))
    if missed then misses = misses + 1 end
  end

  row("calls", group_id, { batch = false }, function(summary, seconds, stats)
    local line = string.format("%d moved, %d failed in %.2f s (%.3f x %d s; goal <= %.0f s), %d answered 429, "
      .. "%d requests", summary.moved, summary.failed, seconds, seconds / (SIMS / LIMIT * WINDOW),
      SIMS / LIMIT * WINDOW, CALLS_GOAL_SECONDS, stats.status_429, stats.requests)
    return line, summary.moved ~= SIMS or stats.status_429 ~= 0 or seconds > CALLS_GOAL_SECONDS
  end)

  row("batch", nil, { batch = true }, function(summary, seconds, stats)
    local line = string.format("%d moved, %d failed in %.2f s, %d requests (goal <= %d: %s), %d answered 429, "
      .. "%d job(s)", summary.moved, summary.failed, seconds, stats.requests, BATCH_GOAL_REQUESTS,
      requests_by_api(stats), stats.status_429, #(summary.jobs or {}))
    return line, summary.moved ~= SIMS or stats.requests > BATCH_GOAL_REQUESTS or stats.status_429 ~= 0
  end)
  return misses
end)
srv:stop()
if not ok then error(misses_or_error, 0) end
if misses_or_error > 0 and not report_only then os.exit(1) end
