-- A deterministic listSubscribersInGroup page for bench/decode.lua: COUNT subscribers
-- (default 500, about 860 KB) with the fields of the Subscriber schema in Soracom's
-- API spec (soracom-api.en.yaml): identifiers as strings, 13-digit millisecond
-- timestamps, nulls, booleans, nested session objects, arrays of strings and objects.
-- The same text every run and on every Lua: the Park-Miller generator (products stay
-- below 2^53, exact in a double too) stands in for randomness.
--
--   local page = require("bench.subscribers_page")(500)   -- the JSON text
--   lua5.4 bench/subscribers_page.lua [COUNT] > page.json
local function generator(seed)
  local state = seed
  return function(n) -- an integer in [0, n)
    state = state * 48271 % 2147483647
    return state % n
  end
end

local function quoted(s) return '"' .. s .. '"' end

local function digits(random, n)
  local out = {}
  for i = 1, n do out[i] = tostring(random(10)) end
  return table.concat(out)
end

local function members(list) -- list of {name, json text} in order
  local out = {}
  for i, pair in ipairs(list) do out[i] = quoted(pair[1]) .. ":" .. pair[2] end
  return "{" .. table.concat(out, ",") .. "}"
end

local function array(items) return "[" .. table.concat(items, ",") .. "]" end

local STATUSES = { "active", "active", "active", "inactive", "ready", "suspended" }
local SPEEDS = { "s1.minimum", "s1.slow", "s1.standard", "s1.fast", "s1.4xfast" }
local SUBSCRIPTIONS = { "plan01s", "plan-D", "plan-K", "planX3", "plan-US" }
local MODULES = { "nano", "micro", "mini", "trio", "embedded" }
local SITES = { "tokyo-1", "osaka-2", "nagoya", "fukuoka-dc", "sapporo-edge", "sendai" }
local DEVICES = { "gateway", "sensor", "camera", "vending-machine", "tracker" }
local RADIO = { "lte", "lte-m", "3g", "nb-iot" }

local function timestamp(random)
  return tostring(1690000000000 + random(40000000) * 1000 + random(1000))
end

local function ip(random, prefix)
  return quoted(prefix .. "." .. random(256) .. "." .. random(256))
end

local function cell(random)
  return members({
    { "radioType", quoted(RADIO[random(#RADIO) + 1]) },
    { "mcc", "440" }, { "mnc", tostring(10 + random(3)) },
    { "tac", tostring(random(65536)) }, { "eci", tostring(random(268435456)) },
  })
end

local function session(random, imsi, online, previous)
  local list = {
    { "cell", cell(random) },
    { "dnsServers", array({ quoted("100.127.0.53"), quoted("100.127.1.53") }) },
    { "gatewayPrivateIpAddress", ip(random, "100.64") },
    { "gatewayPublicIpAddress", ip(random, "54.250") },
    { "imei", quoted(digits(random, 15)) },
    { "imsi", quoted(imsi) },
    { "sessionId", quoted(string.format("%08x-%04x-%04x-%04x-%012x", random(2147483647),
      random(65536), random(65536), random(65536), random(2147483647))) },
    { "subscription", quoted(SUBSCRIPTIONS[random(#SUBSCRIPTIONS) + 1]) },
    { "ueIpAddress", ip(random, "10.128") },
    { "vpgId", random(4) == 0 and quoted(string.format("%08x-vpg", random(2147483647))) or "null" },
  }
  if previous then
    table.insert(list, 2, { "createdTime", timestamp(random) })
    table.insert(list, 3, { "deletedTime", timestamp(random) })
  else
    list[#list + 1] = { "lastUpdatedAt", timestamp(random) }
    list[#list + 1] = { "location", "null" }
    list[#list + 1] = { "online", online and "true" or "false" }
    list[#list + 1] = { "placement", members({ { "provider", quoted("aws") },
      { "region", quoted("ap-northeast-1") } }) }
  end
  return members(list)
end

local function registration(random)
  local function one()
    return members({ { "status", quoted(random(5) == 0 and "Deregistered" or "Registered") },
      { "lastUpdatedAt", timestamp(random) } })
  end
  return members({ { "cs", one() }, { "eps", one() }, { "ps", one() } })
end

local function subscriber(random, i, group_id)
  local imsi = "44010" .. string.format("%010d", 3000000000 + i * 7919 % 1000000000)
  local online = random(3) > 0
  local status = STATUSES[random(#STATUSES) + 1]
  local tags = members({
    { "name", quoted(string.format("%s-%s-%04d", SITES[random(#SITES) + 1], DEVICES[random(#DEVICES) + 1], i)) },
    { "site", quoted(SITES[random(#SITES) + 1]) },
    { "deviceType", quoted(DEVICES[random(#DEVICES) + 1]) },
    { "owner", quoted("team-" .. random(20)) },
    { "note", quoted(random(4) == 0 and "moved \\u2192 rack " .. random(40) or "rack " .. random(40)) },
  })
  return members({
    { "apn", quoted("soracom.io") },
    { "bundles", random(3) == 0 and array({ quoted("X3-5MB") }) or "[]" },
    { "createdAt", timestamp(random) },
    { "createdTime", timestamp(random) },
    { "expiredAt", "null" },
    { "expiryAction", random(5) == 0 and quoted("doNothing") or "null" },
    { "expiryTime", "null" },
    { "groupId", quoted(group_id) },
    { "iccid", quoted("898110" .. digits(random, 13)) },
    { "imeiLock", random(4) == 0 and members({ { "imei", quoted(digits(random, 15)) } }) or "null" },
    { "imsi", quoted(imsi) },
    { "ipAddress", ip(random, "10.200") },
    { "lastModifiedAt", timestamp(random) },
    { "lastModifiedTime", timestamp(random) },
    { "lastPortMappingCreatedTime", random(3) == 0 and timestamp(random) or "null" },
    { "locationRegistrationStatus", registration(random) },
    { "moduleType", quoted(MODULES[random(#MODULES) + 1]) },
    { "msisdn", quoted("8180" .. digits(random, 8)) },
    { "operatorId", quoted("OP0012345678") },
    { "packetCaptureSessions", "[]" },
    { "plan", tostring(random(2)) },
    { "previousSession", random(4) == 0 and session(random, imsi, false, true) or "null" },
    { "registeredTime", timestamp(random) },
    { "renewalFeeStatusSetTime", "null" },
    { "serialNumber", quoted("AX" .. digits(random, 10)) },
    { "sessionStatus", session(random, imsi, online, false) },
    { "simId", quoted("898110" .. digits(random, 13)) },
    { "speedClass", quoted(SPEEDS[random(#SPEEDS) + 1]) },
    { "status", quoted(status) },
    { "subscription", quoted(SUBSCRIPTIONS[random(#SUBSCRIPTIONS) + 1]) },
    { "tags", tags },
    { "terminationEnabled", random(2) == 0 and "true" or "false" },
    { "type", quoted(SPEEDS[random(#SPEEDS) + 1]) },
  })
end

local function page(count)
  local random = generator(20231101)
  local group_id = "0f3a8c52-5b1e-4d7a-9c1e-2b6f4a9d8e71"
  local list = {}
  for i = 1, count or 500 do list[i] = subscriber(random, i, group_id) end
  return array(list)
end

if arg and arg[0] and arg[0]:match("subscribers_page%.lua$") and not ... then
  io.write(page(tonumber(arg[1]) or 500))
end

return page
