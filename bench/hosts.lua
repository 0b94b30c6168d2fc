-- Many hosts of one operator against one per-API rate limit, with and without the
-- redis option: two nginx instances of two workers each and one plain Lua process
-- (spec/nginx_redis/fleet.lua), the fake limiting GET /v1/groups/{group_id} to 100
-- requests per 2 s, 600 get_group calls at once over the five hosts (an nginx gets a
-- burst of curl, 40 at a time; the plain process a client:map of 40 tasks), first
-- sharing one Redis, then each host on its own.
--
--   lua5.4 bench/hosts.lua      (needs scripts/build 5.4 jit, redis-server)
--
-- Run from the repository root (about 40 s). Prints, for each: the calls served, the
-- time and its ratio to the ideal time, the answers 429 and in how many of the fake's
-- windows, the most in one window, the /auth requests. The ideal, as bench/budget.lua
-- counts it: the fake's window starts with its first request, so the last call can start
-- floor((600 - 1) / 100) windows of 2 s after the first, 10 s (12 s counting the last
-- window whole). PASS: with Redis every call served within 1.2 times the ideal (10 s), at
-- most one 429 a window, one /auth. Exits 1 when a check fails. Then, for information
-- only, the run with Redis again ("slow") with the fake answering after 50 ms + up to 100 ms
-- (bench/budget.lua's row 2, where one process alone takes about 10.8 s).

package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
require "spec.support.paths" -- the core scripts/build made for this Lua

local fleet = require "spec.nginx_redis.fleet"

local CALLS = 600
local IDEAL = math.floor((CALLS - 1) / fleet.LIMIT) * fleet.WINDOW
local WHOLE_WINDOWS = CALLS / fleet.LIMIT * fleet.WINDOW
local SLACK = 1.2

local failed = false

local function verdict(ok, text)
  print((ok and "PASS " or "FAIL ") .. text)
  if not ok then failed = true end
end

local function report(name, run)
  print(string.format("%-16s %3d of %d served in %5.2f s (x%.2f the ideal); %3d answers 429 in %d windows "
    .. "(at most %d in one); %d /auth", name, run.got, run.calls, run.seconds, run.seconds / IDEAL,
    run.answers_429, run.windows, run.most_429_in_a_window, run.logins))
  if run.first_error then print("  a call that failed: " .. run.first_error) end
end

local f = fleet.start()
local ok, err = pcall(function()
  print(string.format("%d nginx x 2 workers and 1 plain Lua process; %s limited to %d per %d s; %d calls; "
    .. "ideal %g s (%g s counting the last window whole)", fleet.NGINX, fleet.API, fleet.LIMIT, fleet.WINDOW, CALLS,
    IDEAL, WHOLE_WINDOWS))
  local shared = f:run(true, CALLS)
  report("with Redis", shared)
  local alone = f:run(false, CALLS)
  report("without Redis", alone)
  verdict(shared.got == CALLS, "with Redis: every call served")
  verdict(shared.seconds <= SLACK * IDEAL,
    string.format("with Redis: %.2f s <= %.1f x the ideal %g s", shared.seconds, SLACK, IDEAL))
  verdict(shared.most_429_in_a_window <= 1,
    string.format("with Redis: %d answers 429 in %d windows (<= 1 a window)", shared.answers_429, shared.windows))
  verdict(shared.logins == 1, "with Redis: " .. shared.logins .. " /auth (1)")
  verdict(shared.answers_429 < alone.answers_429, string.format(
    "with Redis: fewer 429s than without (%d < %d)", shared.answers_429, alone.answers_429))
  f.srv:settings { latency = 0.05, latency_jitter = 0.1 }
  local late = f:run(true, CALLS)
  f.srv:settings { latency = 0, latency_jitter = 0 }
  report("with Redis, slow", late)
  local used = {}
  for i, window in ipairs(late.seen_windows) do used[i] = window.used end
  print("  admitted per window: " .. table.concat(used, " "))
end)
f:stop()
if not ok then error(err, 0) end
os.exit(failed and 1 or 0)
