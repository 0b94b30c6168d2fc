-- Moving a fleet: every SIM of one group into another, with a progress line. Over
-- MOVE_SIMS_BATCH_THRESHOLD SIMs the move runs as Batch API jobs (a few requests in
-- all); below it, one call per SIM within the rate budget.
--
--   lua5.4 examples/move_sims.lua FROM_GROUP_ID TO_GROUP_ID
--
-- Credentials as in examples/quickstart.lua: SORACOM_* variables or SORACOM_PROFILE for
-- the real API; otherwise the fake Soracom server from spec/, seeded with two groups and
-- 1200 SIMs in the first (then no arguments are needed).

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"

local server
local options = {}
local from, to = arg[1], arg[2]
if not (os.getenv("SORACOM_PROFILE") or os.getenv("SORACOM_AUTH_KEY_ID") or os.getenv("SORACOM_EMAIL")
  or os.getenv("SORACOM_USER_NAME")) then
  server = require("spec.support.fake_server").start()
  local ids = server:seed_groups(2)
  from, to = ids[1], ids[2]
  server:seed_subscribers(from, 1200)
  options = { endpoint = server.endpoint, auth_key_id = server.auth_key_id, auth_key = server.auth_key }
end
if not (from and to) then
  io.stderr:write("usage: lua5.4 examples/move_sims.lua FROM_GROUP_ID TO_GROUP_ID\n")
  os.exit(2)
end

local client = assert(groups.new(options))

-- The SIMs as the iterator reads them carry their group: with skip_current, one that is
-- already in the target (a second run, say) is left alone.
local results, summary = client:move_sims(client:subscribers(from), to, {
  skip_current = true,
  on_progress = function(p)
    io.stderr:write(("\r%s: %d/%d done, %d failed%s"):format(p.mode, p.done, p.total, p.failed,
      p.waiting_for and ", waiting for job " .. p.waiting_for or ""))
  end,
})
io.stderr:write("\n")
if summary.items_error then
  io.stderr:write("could not read the SIMs of ", from, ": ", tostring(summary.items_error), "\n")
end
for _, result in ipairs(results) do
  if not result.ok then io.stderr:write(result.sim_id, ": ", tostring(result.err), "\n") end
end
print(("%d SIMs moved (%s), %d already there, %d failed"):format(summary.moved, summary.mode or "-",
  summary.skipped, summary.failed))

-- Check, as a script should: the target group now holds them all.
local count = 0
for _ in client:subscribers(to) do count = count + 1 end
client:close()
if server then server:stop() end
os.exit((summary.failed == 0 and not summary.items_error and count >= summary.total) and 0 or 1)
