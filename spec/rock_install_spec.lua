-- The rock as a user installs it: `luarocks --lua-version=5.1 make --deps-mode=none
-- --tree=DIR` of a copy of the checkout (so that no build.luarocks lands in this one),
-- then, from a folder outside the checkout: the installed command whatever LUA_PATH
-- says, the installed fake (soracom-groups-fake) started, asked by the installed
-- library and stopped, and examples/nginx/nginx-rock.conf serving from the tree.
-- Lua 5.1 because nginx's LuaJIT loads that tree; the command's lookup does not depend
-- on the version (scripts/test installs and runs the 5.4 one).
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local command = require "spec.support.command"
local tempdir = require "spec.support.tempdir"
local free_port = require("spec.support.redis_server").free_port

local quote, output, slurp = command.quote, command.output, command.slurp

local ROCKSPEC = "rockspec/soracom-groups-scm-1.rockspec"

-- Runs a shell line; returns its exit code, stdout and stderr.
local function sh(line)
  local err_file = os.tmpname()
  local out = output("(" .. line .. ") 2>" .. quote(err_file) .. "; echo \"exit=$?\"")
  local err = slurp(err_file)
  os.remove(err_file)
  local stdout, code = out:match("^(.-)exit=(%d+)%s*$")
  return tonumber(code), stdout, err
end

local function http_request(method, url, body)
  local chunks = {}
  local _, status = http.request {
    method = method, url = url, sink = ltn12.sink.table(chunks),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["Content-Type"] = "application/json", ["Content-Length"] = #body } or nil,
  }
  return status, table.concat(chunks)
end

local function sorted(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  table.sort(copy)
  return copy
end

describe("the rock installed into a tree of its own (Lua 5.1)", function()
  local scratch, tree, work, rock_dir

  lazy_setup(function()
    scratch = tempdir.new()
    tree = scratch .. "/tree"
    work = scratch .. "/work" -- the user's folder: neither the checkout nor the tree
    local source = scratch .. "/source"
    assert(os.execute("mkdir -p " .. quote(source) .. " " .. quote(work)))
    -- The files a clone has (tracked, and new ones not ignored), as scripts/pack-rock packs.
    local code, _, err = sh("bash -o pipefail -c " .. quote("git ls-files -z --cached --others --exclude-standard | "
      .. "while IFS= read -r -d '' f; do [ -e \"$f\" ] && printf '%s\\0' \"$f\"; done | "
      .. "tar --null -T - -cf - | tar -xf - -C " .. quote(source)))
    assert(code == 0, "copying the checkout: " .. err)
    assert(io.open(source .. "/" .. ROCKSPEC), "copying the checkout: no " .. ROCKSPEC)
    local made, out
    made, out, err = sh("cd " .. quote(source) .. " && luarocks --lua-version=5.1 make --deps-mode=none --tree="
      .. quote(tree) .. " " .. ROCKSPEC)
    assert(made == 0, "luarocks make failed:\n" .. out .. err)
    rock_dir = tree .. "/lib/luarocks/rocks-5.1/soracom-groups/scm-1"
  end)

  lazy_teardown(function()
    if scratch then tempdir.remove(scratch) end
  end)

  describe("soracom-groups (installed)", function()
    local function help(env)
      return sh("cd " .. quote(work) .. " && " .. env .. " " .. quote(tree .. "/bin/soracom-groups") .. " --help")
    end

    it("runs with LUA_PATH naming only the tree's ?.lua (no ?/init.lua)", function()
      local code, out, err = help("env LUA_PATH=" .. quote(tree .. "/share/lua/5.1/?.lua;;") ..
        " LUA_CPATH=" .. quote(tree .. "/lib/lua/5.1/?.so;;"))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("^Usage: soracom%-groups"), out)
    end)

    it("runs with LUA_PATH and LUA_CPATH unset", function()
      local code, out, err = help("env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_1 -u LUA_CPATH_5_1")
      assert.are.equal(0, code, err)
      assert.truthy(out:find("^Usage: soracom%-groups"), out)
    end)

    it("runs with LUA_PATH naming only the tree's ?.lua, without the system folders", function()
      local code, out, err = help("env LUA_PATH=" .. quote(tree .. "/share/lua/5.1/?.lua") ..
        " LUA_CPATH=" .. quote(tree .. "/lib/lua/5.1/?.so"))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("^Usage: soracom%-groups"), out)
    end)

    it("says argparse is what it lacks when argparse cannot load", function()
      -- (argparse is installed here: a preload that fails stands in for its absence)
      local code, out, err = sh("cd " .. quote(work) .. " && lua5.1 -e " ..
        quote("package.preload.argparse = function() error('no argparse here') end") .. " " ..
        quote(rock_dir .. "/bin/soracom-groups") .. " --help")
      assert.are.equal(1, code, out)
      assert.truthy(err:find("the command needs argparse", 1, true), err)
      assert.truthy(err:find("the library does not", 1, true), err)
    end)
  end)

  describe("soracom-groups-fake (installed)", function()
    local fake = function(args)
      return sh("cd " .. quote(work) .. " && " .. quote(tree .. "/bin/soracom-groups-fake") .. " " .. args)
    end
    local state, url

    before_each(function()
      state = work .. "/fake-state"
      local code, out, err = fake("start " .. quote(state))
      assert(code == 0, "soracom-groups-fake start: " .. out .. err)
      url = assert(out:match("^(http://127%.0%.0%.1:%d+)\n"), out)
    end)

    after_each(function()
      fake("stop " .. quote(state))
    end)

    it("runs the fake from the rock's folder, serves the installed library, and stops", function()
      local code, dir = fake("dir")
      assert.are.equal(0, code)
      assert.are.equal(rock_dir .. "/fake\n", dir)

      local status, body = http_request("POST", url .. "/_fake/groups", '{"count":2,"tags":{"env":"ci"}}')
      assert.are.equal(201, status, body)
      local seeded = cjson.decode(body).groupIds
      assert.are.equal(2, #seeded)

      -- The user's script: the tree's library through `luarocks path`, as the README says.
      local script = work .. "/list.lua"
      command.write_file(script, [[
local groups = require "soracom.groups"
print("from " .. debug.getinfo(groups.new, "S").source)
local client = assert(groups.new { endpoint = arg[1] .. "/v1",
  auth_key_id = "keyId-test", auth_key = "secret-test" })
for group in client:groups() do print("group " .. group.groupId .. " " .. group.tags.env) end
]])
      local out, err
      code, out, err = sh("cd " .. quote(work) .. " && eval \"$(luarocks --lua-version=5.1 path --tree=" ..
        quote(tree) .. ")\" && lua5.1 list.lua " .. quote(url))
      assert.are.equal(0, code, out .. err)
      local tree_modules = tree .. "/share/lua/5.1/soracom/groups/"
      local loaded_from = out:match("from @(%S+)") or out
      assert.are.equal(tree_modules, loaded_from:sub(1, #tree_modules))
      local listed = {}
      for id, env in out:gmatch("group (%S+) (%S+)") do
        listed[#listed + 1] = id
        assert.are.equal("ci", env)
      end
      assert.are.same(sorted(seeded), sorted(listed))

      code, out, err = fake("stop " .. quote(state))
      assert.are.equal(0, code, out .. err)
      code = fake("url " .. quote(state))
      assert.are.equal(1, code) -- not running any more
      assert.is_nil((socket.connect("127.0.0.1", tonumber(url:match(":(%d+)$")))))
    end)

    it("serves examples/nginx through nginx-rock.conf, the rock's paths in place of /usr/local", function()
      local status, body = http_request("POST", url .. "/_fake/groups", '{"count":3,"tags":{"name":"demo"}}')
      assert.are.equal(201, status, body)
      local seeded = cjson.decode(body).groupIds

      local prefix = work .. "/nginx"
      assert(os.execute("mkdir -p " .. quote(prefix .. "/logs") .. " " .. quote(prefix .. "/temp")))
      command.write_file(prefix .. "/groups.lua", slurp("examples/nginx/groups.lua"))
      local port = free_port()
      -- The file as the user edits it: the tree in place of /usr/local in the two path
      -- lines; for the spec, a free port, in the background, its log in logs/.
      local conf, n = {}, { paths = 0, listen = 0, daemon = 0, log = 0 }
      for line in (slurp("examples/nginx/nginx-rock.conf") .. "\n"):gmatch("(.-)\n") do
        local count
        if line:find("^%s*lua_package_c?path ") then
          line, count = line:gsub("/usr/local/", tree .. "/")
          n.paths = n.paths + count
        end
        line, count = line:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")
        n.listen = n.listen + count
        line, count = line:gsub("^daemon off;", "daemon on;")
        n.daemon = n.daemon + count
        line, count = line:gsub("^error_log stderr warn;", "error_log logs/error.log warn;")
        n.log = n.log + count
        conf[#conf + 1] = line
      end
      assert.are.same({ paths = 3, listen = 1, daemon = 1, log = 1 }, n)
      command.write_file(prefix .. "/nginx.conf", table.concat(conf, "\n"))

      local as_root = output("id -u"):match("^0") and " -g 'user root root;'" or ""
      local nginx = "/usr/sbin/nginx -p " .. quote(prefix) .. " -c " .. quote(prefix .. "/nginx.conf")
        .. " -e " .. quote(prefix .. "/logs/error.log") .. as_root
      local code, out, err = sh("cd " .. quote(work) .. " && env SORACOM_ENDPOINT=" .. quote(url)
        .. " SORACOM_AUTH_KEY_ID=keyId-test SORACOM_AUTH_KEY=secret-test " .. nginx)
      assert(code == 0, "nginx failed to start: " .. out .. err .. slurp(prefix .. "/logs/error.log"))
      local ok, failure = pcall(function()
        -- nginx has bound its port before it returns: no wait needed.
        local got_status, got = http_request("GET", "http://127.0.0.1:" .. port .. "/groups")
        assert.are.equal(200, got_status, tostring(got) .. slurp(prefix .. "/logs/error.log"))
        local listed, names = {}, {}
        for i, group in ipairs(cjson.decode(got).groups) do
          listed[i], names[i] = group.groupId, group.name
        end
        assert.are.same(sorted(seeded), sorted(listed))
        assert.are.same({ "demo", "demo", "demo" }, names)
        -- The worker that answered loaded the tree's C core (not one from ";;").
        local master = slurp(prefix .. "/logs/nginx.pid"):match("%d+")
        local _, maps = sh("for w in $(pgrep -P " .. master .. "); do cat /proc/$w/maps; done")
        assert.truthy(maps:find(tree .. "/lib/lua/5.1/soracom/groups/core.so", 1, true), maps)
      end)
      sh(nginx .. " -s stop")
      -- -s stop signals the master; wait (bounded) until it has gone, so the tree can go.
      local pid = slurp(prefix .. "/logs/nginx.pid"):match("%d+")
      for _ = 1, 100 do
        if not pid or sh("kill -0 " .. pid) ~= 0 then break end
        socket.sleep(0.05)
      end
      assert(ok, failure)
    end)
  end)
end)
