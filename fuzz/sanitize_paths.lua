-- busted helper of scripts/sanitize: what spec/support/paths.lua does, then the
-- sanitizer build of the C core (SORACOM_SANITIZE_BUILD, e.g. build/asan-5.4) ahead
-- of it, so that `require "soracom.groups.core"` in the specs loads that one.
dofile("spec/support/paths.lua")
local dir = os.getenv("SORACOM_SANITIZE_BUILD")
assert(dir and dir ~= "", "SORACOM_SANITIZE_BUILD is not set (run scripts/sanitize)")
assert(io.open(dir .. "/soracom/groups/core.so"), "no core.so in " .. dir):close()
package.cpath = dir .. "/?.so;" .. package.cpath
