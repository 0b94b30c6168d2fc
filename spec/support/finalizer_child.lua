-- Run by spec/session_spec.lua as a child process, so that the collector works on a
-- small heap and calls finalizers where the spec needs them (in busted's large heap a
-- cycle may not end within one perform). Usage:
--   lua spec/support/finalizer_child.lua same|other|close URL API_KEY TOKEN
-- The fake at URL has a 429 fault queued (Retry-After: 5, a large JSON body) for the
-- next requests. Performs GET URL/v1/groups with a finalizer pending that, once the
-- body is being decoded, performs on the same session, on another one, or closes the
-- session; prints the outer results and the inner ones on one line, or "never" when
-- the finalizer never ran during perform.
package.path = "lua/?.lua;./?.lua;" .. package.path
require "spec.support.paths"
local core = require "soracom.groups.core"

local mode, url, api_key, token = arg[1], arg[2], arg[3], arg[4]
local headers = { "X-Soracom-API-Key: " .. api_key, "X-Soracom-Token: " .. token }

local function session()
  local s = core.session {}
  s:set_headers(headers)
  return s
end

local gc_object = require "spec.support.finalizable"

collectgarbage("setpause", 0)
collectgarbage("setstepmul", 1000)
for _ = 1, 20 do
  local s = session()
  local other = mode == "other" and session() or s
  local inside, inner, baseline = true, nil, nil
  -- Garbage whose finalizer acts once Lua's heap has grown by 8 KiB (only the decoding
  -- of the body allocates that much in perform), and leaves more such garbage until then.
  local function arm()
    gc_object(function()
      if not inside or inner then return end
      if collectgarbage("count") > baseline + 8 then
        if mode == "close" then
          inner = { pcall(s.close, s) }
        else
          inner = { pcall(other.perform, other, "GET", url .. "/_fake/health") }
        end
      else
        arm()
      end
    end)
  end
  collectgarbage()
  baseline = collectgarbage("count")
  arm()
  local ok, value, err = pcall(s.perform, s, "GET", url .. "/v1/groups")
  inside = false
  if inner and ok then
    local after = mode == "close" and tostring(pcall(s.perform, s, "GET", url)) or "-"
    print(string.format("%s %s %s %s %s | %s %s %s | %s", tostring(value), tostring(err.status),
      tostring(err.code), tostring(err.message), string.format("%g", err.retry_after), tostring(inner[1]),
      type(inner[2]) == "table" and tostring(inner[2].ok) or tostring(inner[2]),
      tostring(inner[4]), after))
    os.exit(0)
  end
  s:close()
  other:close()
end
print("never")
