-- A "host" for spec/redis_shared_spec.lua: a plain Lua process of its own with one
-- client, which makes `calls` get_group calls (map, `concurrency` at a time) and says
-- what happened, one line each:
--   pid <n>                     first, before anything else
--   debug <line>                each debug line that mentions redis
--   progress                    once `progress_after` calls have answered
--   result <ok> <failed> <err>  last: the calls that answered with the group, those
--                               that failed, the first failure's message (or "-")
-- Usage (from the repository root; credentials from SORACOM_AUTH_KEY_ID and
-- SORACOM_AUTH_KEY, the endpoint from SORACOM_ENDPOINT; REDIS_HOST_CLOCK_SKEW below):
--   lua spec/support/redis_host.lua REDIS GROUP_ID CALLS CONCURRENCY GO_FILE
--     [PROGRESS_AFTER [TIMEOUT [ON_REDIS_ERROR [RETRIES [TOKEN_SECONDS [HOLD_FILE]]]]]]   ("-" for a default)
-- With HOLD_FILE, the host stops after "progress" until that file is gone (so that the
-- spec can change Redis while every host is mid-run, whatever the machine's load).
-- REDIS is a redis:// URL, or "none" for a client without the option. The calls start
-- once GO_FILE exists (so that every host starts together).
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
require "spec.support.paths"
local core = require "soracom.groups.core"
-- REDIS_HOST_CLOCK_SKEW (seconds): this process's clock reads that much more, as the
-- monotonic clock of a host that started that much earlier does (set before the
-- library loads, which keeps core.now).
local skew = tonumber(os.getenv("REDIS_HOST_CLOCK_SKEW") or "")
if skew then
  local real_now = core.now
  core.now = function() return real_now() + skew end
end
local groups = require "soracom.groups"

local redis_url, group_id, calls, concurrency, go_file = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5]
local progress_after, timeout, on_redis_error, retries = tonumber(arg[6]), tonumber(arg[7]), arg[8], tonumber(arg[9])
local token_seconds = tonumber(arg[10])
local hold_file = arg[11] ~= "-" and arg[11] or nil

io.stdout:setvbuf("line")
local function say(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
end

local stat = assert(io.open("/proc/self/stat"))
say("pid", stat:read("*l"):match("^(%d+)"))
stat:close()

local options = {
  transport = "curl",
  retry_base_delay = 0.05,
  retries = retries or 8,
  token_timeout_seconds = token_seconds,
  debug = function(line)
    if line:find("redis", 1, true) then say("debug", (line:gsub("\n", " "))) end
  end,
}
if redis_url ~= "none" then
  options.redis = timeout and { url = redis_url, timeout = timeout } or redis_url
  options.on_redis_error = on_redis_error ~= "-" and on_redis_error or nil -- (nil too)
end
local client = assert(groups.new(options))

-- (a file that appears: polled, as the spec starts every host before it makes it; a
-- spec that never makes it is a failure, not a hang)
local give_up = core.now() + 30
while not io.open(go_file) do
  if core.now() > give_up then error("redis_host: " .. go_file .. " never appeared") end
  core.sleep(0.005)
end

local items = {}
for i = 1, calls do items[i] = i end
local answered, ok, failed, first_error = 0, 0, 0, nil
client:map(items, function()
  local group, err = client:get_group(group_id)
  answered = answered + 1
  if answered == progress_after then
    say("progress")
    -- (polled, blocking the whole process: no call of it goes on meanwhile)
    local held_until = core.now() + 30
    while hold_file and io.open(hold_file) do
      if core.now() > held_until then error("redis_host: " .. hold_file .. " was never removed") end
      core.sleep(0.005)
    end
  end
  if group and group.groupId == group_id then
    ok = ok + 1
  else
    failed = failed + 1
    first_error = first_error or tostring(err)
  end
  return true
end, { concurrency = concurrency })
client:close()
say("result", ok, failed, ((first_error or "-"):gsub("\n", " ")))
