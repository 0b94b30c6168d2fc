-- Applies examples/desired.json (or the file given as the first argument): loads the
-- document, plans it against the groups of its scope (those tagged fleet=example),
-- prints the plan, applies it with deletes guarded, and checks that a second plan
-- finds nothing to do (exit 1 otherwise).
--
-- Credentials as in examples/quickstart.lua: SORACOM_* variables or SORACOM_PROFILE for
-- the real API, otherwise the fake Soracom server from spec/.

package.path = "lua/?.lua;./?.lua;" .. package.path
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"
local account = require "soracom.groups.account"
local desired = require "soracom.groups.desired"
local plan = require "soracom.groups.plan"
local apply = require "soracom.groups.apply"

local path = arg[1] or "examples/desired.json"

local server
local options = {}
if not (os.getenv("SORACOM_PROFILE") or os.getenv("SORACOM_AUTH_KEY_ID") or os.getenv("SORACOM_EMAIL")
  or os.getenv("SORACOM_USER_NAME")) then
  server = require("spec.support.fake_server").start()
  options = { endpoint = server.endpoint, auth_key_id = server.auth_key_id, auth_key = server.auth_key }
end

local function finish(status, message)
  if message then io.stderr:write(tostring(message), "\n") end
  if server then server:stop() end
  os.exit(status)
end

local function check(value, err)
  if value == nil then finish(1, err) end
  return value
end

local client = check(groups.new(options))
local document = check(desired.load(path))

-- Only the groups of the document's scope are listed (the server filters them). With
-- prune, those the document does not list are deleted: never one outside the scope,
-- never one holding SIMs (allow_delete_with_sims), never more than max_deletes.
local function planned()
  local p = check(plan.compare(document, check(account.read(client, document)), { prune = true }))
  check(account.count_deleted_sims(client, p))
  return p
end

local first = planned()
print(table.concat(plan.render(first), "\n"))
local summary = check(apply.run(client, first, { max_deletes = 2, on_progress = function(done, total, name, outcome)
  print(("[%d/%d] %s: %s"):format(done, total, name, outcome))
end }))
for _, skipped in ipairs(summary.skipped) do print("skipped " .. skipped.name .. ": " .. skipped.reason) end
for _, failed in ipairs(summary.failed) do print("failed " .. failed.name .. ": " .. tostring(failed.err)) end
print(("applied %d, skipped %d, failed %d"):format(summary.applied, #summary.skipped, #summary.failed))
if #summary.skipped + #summary.failed > 0 then finish(1, "apply did not make every change") end

local second = planned()
if not plan.empty(second) then
  finish(1, "a second plan still has changes:\n" .. table.concat(plan.render(second), "\n"))
end
print("second plan: no changes")
client:close()
finish(0)
