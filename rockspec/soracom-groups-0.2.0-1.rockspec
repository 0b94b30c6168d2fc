rockspec_format = "3.0"
package = "soracom-groups"
version = "0.2.0-1"

-- The release tarball (git archive of the tag v0.2.0, folder soracom-groups-0.2.0/).
-- From a checkout, scripts/release (or scripts/pack-rock) packs the .src.rock offline:
-- it makes that tarball from the checkout and runs luarocks pack on a copy of this file
-- pointing at it, then puts this file back into the rock. Install the rock offline with
--   luarocks install ./soracom-groups-0.2.0-1.src.rock --deps-mode=none
source = {
  url = "https://github.com/soracom-groups/soracom-groups/archive/refs/tags/v0.2.0.tar.gz",
  file = "soracom-groups-0.2.0.tar.gz",
  dir = "soracom-groups-0.2.0",
  tag = "v0.2.0",
}

description = {
  summary = "Client for the Soracom Group Configuration API, with a C core over libcurl",
  detailed = [[
Creates, reads, configures, tags, pages through and deletes Soracom SIM groups (the ten
operations under /v1/groups) from scripts and from Lua code inside nginx/OpenResty.
Requests are built and responses decoded in C over libcurl (one keep-alive handle per
client, TLS always verified); the client, its lazy iterators, soracom-cli compatible
credentials, configuration builders, retries that respect the rate-limit headers and
client:map (many requests at once, one login in flight) are Lua. Inside nginx it uses
cosockets and never blocks a worker. Includes the soracom-groups command: the ten
operations as subcommands, and export, plan and apply for declarative groups.
Also soracom-groups-fake, the fake Soracom API the specs use (nginx + ngx_http_lua),
to test code that uses the library. Runs on Lua 5.1 to 5.4 and LuaJIT; needs libcurl and its headers, CMake and a C compiler.
]],
  homepage = "https://github.com/soracom-groups/soracom-groups",
  license = "MIT",
  labels = { "soracom", "iot", "api-client", "libcurl" },
}

dependencies = {
  "lua >= 5.1, < 5.5",
  -- Only the soracom-groups command needs argparse (it says so when argparse is missing);
  -- the library and soracom-groups-fake do not. LuaRocks has no optional dependencies,
  -- and `luarocks install soracom-groups` should give a command that runs.
  "argparse",
}

-- libcurl (with its headers) is found by CMake: on Debian the headers sit in a
-- multiarch folder that LuaRocks' own external_dependencies search misses.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    -- the editor types, in the rock's own folder (luarocks show --rock-dir soracom-groups)
    TYPESDIR = "$(PREFIX)/types",
    -- the fake Soracom API, run by soracom-groups-fake (which looks for it there)
    FAKEDIR = "$(PREFIX)/fake",
  },
  -- LuaRocks installs build.install files after any backend, cmake included, and wraps
  -- the script so that it finds the tree's modules.
  install = {
    bin = {
      ["soracom-groups"] = "bin/soracom-groups",
      ["soracom-groups-fake"] = "bin/soracom-groups-fake",
    },
  },
}

-- luarocks test, from a checkout: the specs with the system's busted (Debian's
-- lua-busted is not a rock) on Lua 5.4, after building the C core for it and for LuaJIT
-- (the nginx specs load the LuaJIT build).
test = {
  type = "command",
  command = "scripts/build 5.4 jit && lua5.4 /usr/bin/busted --no-auto-insulate",
}
