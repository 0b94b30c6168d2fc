-- Decoding speed: core.decode_json against cjson.decode on the same text in the same
-- run (see bench/README.md, section 3). Run through bench/decode, or:
--
--   LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/decode.lua [TARGET [ROUNDS]]
--
-- The text is bench/subscribers_page.lua's page of 500 subscribers. Each round times
-- both decoders (the order alternating between rounds) over enough repetitions to
-- take about DECODE_SECONDS (default 0.3 s) of CPU time each; the verdict is the
-- median of the per-round ratios core/cjson in MB/s, against TARGET. Exits 1 below it.
package.path = "./?.lua;" .. package.path
local core = require "soracom.groups.core"
local cjson = require "cjson"
local page = require "bench.subscribers_page"

local target = tonumber(arg[1]) or 1.0
local rounds = tonumber(arg[2]) or 9
local seconds = tonumber(os.getenv("DECODE_SECONDS")) or 0.3
local lua_name = rawget(_G, "jit") and jit.version or _VERSION
local has_integers = math.type ~= nil

local text = page(500)
local megabytes = #text / 1e6

-- Both decoders read the same values: the check that the race is fair.
local function same(a, b)
  if type(a) == "number" and type(b) == "number" then return a == b end
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local ours, theirs = assert(core.decode_json(text)), cjson.decode(text)
assert(#ours == 500 and same(ours, theirs), "core and cjson decode the page differently")
if has_integers then
  assert(math.type(ours[1].createdAt) == "integer", "core: timestamps must stay integers")
end
ours, theirs = nil, nil -- luacheck: ignore (collectable before timing)

local function time(decode, repetitions)
  collectgarbage()
  collectgarbage()
  local start = os.clock()
  for _ = 1, repetitions do decode(text) end
  return os.clock() - start
end

-- repetitions per side: about `seconds` of CPU time for the slower one
local repetitions = 1
while time(cjson.decode, repetitions) < seconds / 4 do repetitions = repetitions * 2 end
repetitions = math.max(1, math.floor(repetitions * seconds / math.max(time(cjson.decode, repetitions), 1e-3)))

local function median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  return n % 2 == 1 and sorted[(n + 1) / 2] or (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

print(("decode: %s; %.0f KB page of 500 subscribers; %d rounds x %d decodes per side, alternating")
  :format(lua_name, #text / 1024, rounds, repetitions))
local core_rates, cjson_rates, ratios = {}, {}, {}
for round = 1, rounds do
  local core_time, cjson_time
  if round % 2 == 1 then
    core_time = time(core.decode_json, repetitions)
    cjson_time = time(cjson.decode, repetitions)
  else
    cjson_time = time(cjson.decode, repetitions)
    core_time = time(core.decode_json, repetitions)
  end
  core_rates[round] = megabytes * repetitions / core_time
  cjson_rates[round] = megabytes * repetitions / cjson_time
  ratios[round] = core_rates[round] / cjson_rates[round]
  print(("round %d: core %7.1f MB/s   cjson %7.1f MB/s   ratio %.3f")
    :format(round, core_rates[round], cjson_rates[round], ratios[round]))
end
local ratio = median(ratios)
print(("median:  core %7.1f MB/s   cjson %7.1f MB/s   ratio %.3f (median of the per-round ratios)")
  :format(median(core_rates), median(cjson_rates), ratio))
if ratio >= target then
  print(("PASS decode on %s: core reaches %.2fx cjson (>= %.2f)"):format(lua_name, ratio, target))
else
  print(("FAIL decode on %s: core reaches %.2fx cjson (< %.2f)"):format(lua_name, ratio, target))
  os.exit(1)
end
