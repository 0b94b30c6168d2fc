-- The library's side of the keep-alive benchmark: client:get_group(id) in a loop for
-- SECONDS seconds over one client (one curl handle, one connection), the same loop as
-- bench/reference.c but through the whole Lua API: argument checks, URL building,
-- the request, and decoding the JSON into tables.
--
--   lua5.4 bench/get_group.lua ENDPOINT GROUP_ID SECONDS
--   lua5.4 bench/get_group.lua ENDPOINT GROUP_ID -N
--
-- A negative last argument (-N) makes exactly N calls, with no clock read in the loop
-- (as bench/reference.c does; bench/instructions counts instructions per call with it).
--
-- ENDPOINT is the API base (http://127.0.0.1:PORT/v1). Run from the repository root
-- (bench/run sets LUA_PATH/LUA_CPATH; without them lua/ and build/<version>/ are used).
-- Prints one line: "get_group requests=N seconds=S rps=R"; exits 1 on any failure.

local version = _VERSION:match("%d+%.%d+")
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local groups = require "soracom.groups"
local gettime = require("socket").gettime -- wall clock with microseconds

local endpoint, id, seconds = arg[1], arg[2], tonumber(arg[3])
if not (endpoint and id and seconds and seconds ~= 0) then
  io.stderr:write("usage: lua bench/get_group.lua ENDPOINT GROUP_ID SECONDS|-REQUESTS\n")
  os.exit(2)
end
local count = seconds < 0 and -seconds or nil

local client = groups.new { endpoint = endpoint, api_key = "test-api-key", token = "test-token" }

local requests = 0
local elapsed
local start = gettime()
repeat
  local group, err = client:get_group(id)
  if group == nil or group.groupId ~= id then
    io.stderr:write(("get_group: request %d: %s\n"):format(requests + 1,
      tostring(err or "wrong group returned")))
    os.exit(1)
  end
  requests = requests + 1
  if not count then elapsed = gettime() - start end
until requests == count or (not count and elapsed >= seconds)
elapsed = gettime() - start

client:close()
print(("get_group requests=%d seconds=%.3f rps=%.1f"):format(requests, elapsed, requests / elapsed))
