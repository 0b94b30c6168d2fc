-- Many nginx workers against one per-API rate limit, with and without shared_dict:
-- nginx with worker_processes 4 (spec/nginx_shared/), the fake limiting
-- GET /v1/groups/{group_id} to 20 requests per 2 s, and a burst of 100 get_group
-- requests from curl (40 at a time, spread over the workers by reuseport), first
-- through clients that share the budget and the token (shared_dict = "soracom"), then
-- through a client per worker without it.
--
--   lua5.4 bench/workers.lua      (needs scripts/build jit)
--
-- Run from the repository root (about 25 s). Prints, for each: the answers 429, the
-- requests the fake answered, the /auth requests, the time the burst took, and an
-- error of a request that failed. PASS: with shared_dict every request completes with at most 3 answers
-- 429, fewer than without it. Exits 1 when a check fails.

package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
require "spec.support.paths" -- the core scripts/build made for this Lua

local core = require "soracom.groups.core"
local harness = require "spec.nginx.harness"

local LIMIT, WINDOW, REQUESTS, PARALLEL = 20, 2, 100, 40
local API = "GET /v1/groups/{group_id}"

local srv, nginx = harness.start_with_fake({}, "spec/nginx_shared/nginx.conf.in")
local failed = false

local function verdict(ok, text)
  print((ok and "PASS " or "FAIL ") .. text)
  if not ok then failed = true end
end

local function count(api, field)
  local by_api = srv:stats().by_api[api]
  return by_api and by_api[field] or 0
end

-- `total` GETs of `path`, PARALLEL at a time; how many answered with the group, and
-- the first error of the others.
local function burst(path, total, id)
  local pipe = assert(io.popen("seq " .. total .. " | xargs -P " .. PARALLEL .. " -I{} curl -sS -m 120 '"
    .. nginx.url .. path .. "' 2>&1; echo"))
  local got, first_error = 0, nil
  for line in pipe:lines() do
    local answer = line ~= "" and core.decode_json(line)
    if type(answer) == "table" and answer.group == id then
      got = got + 1
    elseif line ~= "" then
      first_error = first_error or (type(answer) == "table" and tostring(answer.err) or line)
    end
  end
  pipe:close()
  return got, first_error
end

local function run(set, id)
  local path = "/get?set=" .. set .. "&id=" .. id
  burst(path, 8, id) -- logged in, and the budget has seen the limit's headers
  srv:settings { rate_limit = { limit = LIMIT, window = WINDOW } }
  srv:clear_stats()
  local started = core.now()
  local got, first_error = burst(path, REQUESTS, id)
  local result = { got = got, seconds = core.now() - started, answers_429 = count(API, "status_429"),
    requests = count(API, "requests"), logins = count("POST /v1/auth", "requests") }
  srv:settings { rate_limit = core.null }
  print(string.format("%-22s %3d of %d served in %5.2f s; %3d answers 429, %3d requests, %d logins",
    set == "a" and "shared_dict" or "a client per worker", got, REQUESTS, result.seconds,
    result.answers_429, result.requests, result.logins))
  if first_error then print("  a request that failed: " .. first_error) end
  return result
end

local ok, err = pcall(function()
  local id = srv:seed_groups(1)[1]
  print(string.format("nginx with 4 workers; %s limited to %d per %d s; %d requests, %d at a time",
    API, LIMIT, WINDOW, REQUESTS, PARALLEL))
  local shared = run("a", id)
  core.sleep(WINDOW + 0.5) -- a fresh window for the second run
  local alone = run("alone", id)
  verdict(shared.got == REQUESTS, "shared_dict: every request completed")
  verdict(shared.answers_429 <= 3, "shared_dict: " .. shared.answers_429 .. " answers 429 (<= 3)")
  verdict(shared.answers_429 < alone.answers_429, string.format(
    "shared_dict: fewer 429s than a client per worker (%d < %d)", shared.answers_429, alone.answers_429))
end)
harness.stop_both(srv, nginx)
if not ok then error(err, 0) end
os.exit(failed and 1 or 0)
