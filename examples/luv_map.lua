-- client:map inside a luv (libuv, luvit) program: the client waits through the loop
-- (the wait option) from a coroutine the loop's callbacks resume, so timers and other
-- handles keep running while requests are on the wire. A timer prints a heartbeat
-- every 100 ms while every group tagged env=prod is read, 16 at a time.
--
-- Credentials as in examples/quickstart.lua: SORACOM_* variables or SORACOM_PROFILE for
-- the real API, otherwise the fake Soracom server from spec/ (seeded with 60 groups,
-- 50 ms of latency per request).

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local uv = require "luv"
local groups = require "soracom.groups"
local loops = require "soracom.groups.loops"

local server
local options = { wait = loops.luv(uv) }
if not (os.getenv("SORACOM_PROFILE") or os.getenv("SORACOM_AUTH_KEY_ID") or os.getenv("SORACOM_EMAIL")
  or os.getenv("SORACOM_USER_NAME")) then
  server = require("spec.support.fake_server").start()
  server:seed_groups(60, { env = "prod" })
  server:settings { latency = 0.05 }
  options.endpoint, options.auth_key_id, options.auth_key = server.endpoint, server.auth_key_id, server.auth_key
end

local client = assert(groups.new(options))
local beats, failed = 0, 1

local heartbeat = uv.new_timer()
heartbeat:start(100, 100, function() beats = beats + 1 end)

local work = coroutine.create(function()
  local fleet = {}
  for group in client:groups { tag_name = "env", tag_value = "prod" } do fleet[#fleet + 1] = group.groupId end
  local _, summary = client:map(fleet, function(id) return client:get_group(id) end, { concurrency = 16 })
  print(("map: %d groups read, %d failed, in %.2f s"):format(summary.ok, summary.failed, summary.seconds))
  failed = summary.failed
  heartbeat:close()
end)

-- Start the work from the loop, so that its waits resume from the loop's callbacks.
local start = uv.new_timer()
start:start(0, 0, function()
  start:close()
  assert(coroutine.resume(work))
end)
uv.run()
print(("heartbeats meanwhile: %d"):format(beats))
client:close()
if server then server:stop() end
os.exit((failed == 0 and beats > 0) and 0 or 1)
