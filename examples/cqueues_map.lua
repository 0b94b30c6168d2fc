-- client:map inside a cqueues program (the loop lua-http runs on): the client waits
-- through the loop (the wait option), so the program's other coroutines go on while
-- requests are on the wire. One coroutine prints a heartbeat every 100 ms; another
-- reads every group tagged env=prod, 16 at a time, then drives a map of its own
-- (start_map: step, then wait for what wait_hint names).
--
-- Credentials as in examples/quickstart.lua: SORACOM_* variables or SORACOM_PROFILE for
-- the real API, otherwise the fake Soracom server from spec/ (seeded with 60 groups,
-- 50 ms of latency per request).

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local cqueues = require "cqueues"
local groups = require "soracom.groups"
local loops = require "soracom.groups.loops"

local server
local options = { wait = loops.cqueues(cqueues) }
if not (os.getenv("SORACOM_PROFILE") or os.getenv("SORACOM_AUTH_KEY_ID") or os.getenv("SORACOM_EMAIL")
  or os.getenv("SORACOM_USER_NAME")) then
  server = require("spec.support.fake_server").start()
  server:seed_groups(60, { env = "prod" })
  server:settings { latency = 0.05 }
  options.endpoint, options.auth_key_id, options.auth_key = server.endpoint, server.auth_key_id, server.auth_key
end

local client = assert(groups.new(options))
local loop = cqueues.new()
local working, beats, failed = true, 0, 0

loop:wrap(function()
  while working do
    cqueues.sleep(0.1)
    beats = beats + 1
  end
end)

loop:wrap(function()
  local fleet = {}
  for group in client:groups { tag_name = "env", tag_value = "prod" } do fleet[#fleet + 1] = group.groupId end
  local _, summary = client:map(fleet, function(id) return client:get_group(id) end, { concurrency = 16 })
  print(("map: %d groups read, %d failed, in %.2f s"):format(summary.ok, summary.failed, summary.seconds))
  failed = failed + summary.failed

  local run = client:start_map(fleet, function(id) return client:list_subscribers(id) end, { concurrency = 16 })
  while not run:step(0) do
    local timeout, sockets = run:wait_hint()
    options.wait(timeout, sockets)
  end
  local _, listed = run:results()
  print(("start_map: the SIMs of %d groups listed, %d failed"):format(listed.ok, listed.failed))
  failed = failed + listed.failed
  working = false
end)

assert(loop:loop())
print(("heartbeats meanwhile: %d"):format(beats))
client:close()
if server then server:stop() end
os.exit((failed == 0 and beats > 0) and 0 or 1)
