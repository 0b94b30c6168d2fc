-- scripts/sanitize's stand-in for spec/support/paths.lua, run by every Lua interpreter
-- of the job: busted's process (its --helper, in place of the one .busted names) and the
-- Lua children that specs start (through LUA_INIT, which they inherit). It puts the
-- sanitizer build of the C core (SORACOM_SANITIZE_BUILD, an absolute path such as
-- <root>/build/asan-5.4) ahead of build/<version>/, and marks spec.support.paths as
-- loaded, so that a child's `require "spec.support.paths"` does not put the plain build
-- back in front: the sequences that specs run in children (a crash there fails a spec
-- instead of ending busted) run on the sanitized core too. A child started with `env -i`
-- has neither this nor the sanitizers' runtime, and loads build/<version>/ as usual.
local dir = os.getenv("SORACOM_SANITIZE_BUILD")
assert(dir and dir:sub(1, 1) == "/", "SORACOM_SANITIZE_BUILD is not an absolute path (run scripts/sanitize)")
assert(io.open(dir .. "/soracom/groups/core.so"), "no soracom/groups/core.so in " .. dir):close()
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
local paths = dir .. "/?.so;build/" .. version .. "/?.so;"
if package.cpath:sub(1, #paths) ~= paths then
  package.cpath = paths .. package.cpath
end
package.loaded["spec.support.paths"] = true
