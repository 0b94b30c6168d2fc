rockspec_format = "3.0"
package = "soracom-groups"
version = "scm-1"

-- Installed from a checkout: luarocks --lua-version=5.4 make --deps-mode=none rockspec/soracom-groups-scm-1.rockspec
source = {
  url = "git+file://.",
}

description = {
  summary = "Client for the Soracom Group Configuration API, with a C core over libcurl",
  detailed = [[
Creates, reads, configures, tags, pages through and deletes Soracom groups.
Requests are built and responses decoded in C; the client, its iterators and its
retry loop are Lua, so the same code runs in scripts and inside nginx/OpenResty.
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

-- libcurl (7.68 or newer) and OpenSSL's libcrypto (for core.sha256), each with its
-- headers, are found by CMake (find_package): on Debian the headers sit in a multiarch
-- folder that LuaRocks' own external_dependencies search misses. Packages:
-- libcurl4-openssl-dev libssl-dev (Debian), libcurl-devel openssl-devel (RHEL).
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
