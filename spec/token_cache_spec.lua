-- The token cache (the token_cache option; on by default in the command): a loop of
-- commands logs in once; a cache folder or file that others may use, or that belongs
-- to another user, is neither read nor written; expired and refused tokens are
-- replaced; no secret names the file, and none shows in the output. Over real HTTP to
-- the fake server, with bin/soracom-groups as a subprocess.
local fake = require "spec.support.fake_server"
local tempdir = require "spec.support.tempdir"
local command = require "spec.support.command"
local core = require "soracom.groups.core"
local groups = require "soracom.groups"
local settings = require "soracom.groups.settings"

local quote = command.quote

local shell = command.output

local function mode_of(path)
  return (shell("stat -c %a " .. quote(path) .. " 2>/dev/null"):gsub("%s+$", ""))
end

local IS_ROOT = shell("id -u"):match("^0%s") ~= nil
-- A user that is not this one, for files and folders made to belong to another
-- (nobody's uid on Debian).
local OTHER_UID = 65534

-- The names in a folder (none when it does not exist).
local function names_in(dir)
  local names = {}
  for name in shell("ls -A " .. quote(dir) .. " 2>/dev/null"):gmatch("[^\n]+") do names[#names + 1] = name end
  return names
end

local function count(haystack, needle)
  local n, at = 0, 1
  while true do
    local found = haystack:find(needle, at, true)
    if found == nil then return n end
    n, at = n + 1, found + #needle
  end
end

describe("the token cache", function()
  local srv, home, group_id

  setup(function() srv = fake.start() end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    home = tempdir.new()
    group_id = srv:seed_groups(1)[1]
  end)
  after_each(function() tempdir.remove(home) end)

  local function cache_dir() return home .. "/cache/soracom-groups" end

  -- The one cache file, its path and content; raises unless there is exactly one.
  local function cache_file()
    local names = names_in(cache_dir())
    assert.are.equal(1, #names, table.concat(names, " "))
    local path = cache_dir() .. "/" .. names[1]
    return path, command.slurp(path)
  end

  local function logins() return srv:logins() end

  -- The command with an AuthKey, its cache under home/cache.
  local function run(args, env)
    return command.run(args, { env = "XDG_CACHE_HOME=" .. quote(home .. "/cache") .. " " .. (env or ""),
      prefix = { "--endpoint", srv.endpoint, "--auth-key-id", srv.auth_key_id, "--auth-key", srv.auth_key } })
  end

  describe("in the command", function()
    it("makes a shell loop of 100 commands log in once", function()
      local out = os.tmpname()
      local line = "XDG_CACHE_HOME=" .. quote(home .. "/cache") .. " SORACOM_ENDPOINT=" .. quote(srv.endpoint)
        .. " SORACOM_AUTH_KEY_ID=" .. quote(srv.auth_key_id) .. " SORACOM_AUTH_KEY=" .. quote(srv.auth_key)
        .. " sh -c " .. quote("failed=0; i=0; while [ $i -lt 100 ]; do " .. command.LUA
          .. " bin/soracom-groups get --group-id " .. quote(group_id) .. " || failed=$((failed+1)); i=$((i+1)); "
          .. "done; echo $failed >&2") .. " >" .. quote(out) .. " 2>&1"
      os.execute(line)
      local text = command.slurp(out)
      os.remove(out)
      assert.are.equal("0", text:match("(%d+)%s*$"), text) -- no command failed
      assert.are.equal(100, count(text, '"groupId": "' .. group_id .. '"'))
      assert.are.equal(1, logins())
      assert.are.equal(1, #srv:tokens())
      assert.are.equal(100, srv:stats().by_api["GET /v1/groups/{group_id}"].requests)
    end)

    it("keeps the token in a 0600 file of a 0700 folder, named by a digest, never by a secret", function()
      assert.are.same({ 0, 0 }, { (run { "get", "--group-id", group_id }), (run { "get", "--group-id", group_id }) })
      assert.are.equal(1, #srv:tokens())
      local path, text = cache_file()
      local name = path:match("[^/]+$")
      assert.matches("^%x+%.token$", name)
      assert.is_true(#name >= 32 + #".token")
      for _, secret in ipairs { srv.auth_key, srv.auth_key_id } do assert.is_nil(name:find(secret, 1, true)) end
      assert.is_nil(text:find(srv.auth_key, 1, true)) -- the token, not the key that got it
      assert.is_truthy(text:find(srv:tokens()[1].token, 1, true))
      assert.are.equal("600", mode_of(path))
      assert.are.equal("700", mode_of(cache_dir()))
    end)

    it("says in its debug lines that it took the cached token, without the token", function()
      run { "get", "--group-id", group_id }
      local code, out, err = run { "--debug", "get", "--group-id", group_id }
      assert.are.equal(0, code)
      local token = srv:tokens()[1]
      assert.matches("using the token cached in " .. cache_dir():gsub("%p", "%%%0"), err)
      for _, secret in ipairs { token.token, token.apiKey, srv.auth_key } do
        assert.is_nil(err:find(secret, 1, true))
        assert.is_nil(out:find(secret, 1, true))
      end
      assert.is_nil(err:find("/auth", 1, true)) -- no login
    end)

    it("refuses a cache file that group or others may read: logs in, says why, leaves it", function()
      run { "get", "--group-id", group_id }
      local path, before = cache_file()
      assert(os.execute("chmod 644 " .. quote(path)))
      local code, out, err = run { "--debug", "get", "--group-id", group_id }
      assert.are.equal(0, code)
      assert.are.equal(2, logins())
      assert.matches("the token cache is not used: file " .. path:gsub("%p", "%%%0")
        .. ": group or others may read or write it %(mode 644%)", err)
      assert.are.equal(1, count(err, "token cache is not used")) -- said once
      local cached = srv:tokens()[1]
      for _, secret in ipairs { cached.token, cached.apiKey, srv:tokens()[2].token } do
        assert.is_nil(err:find(secret, 1, true))
        assert.is_nil(out:find(secret, 1, true))
      end
      -- not written either: the file and its mode are as they were
      assert.are.equal(before, command.slurp(path))
      assert.are.equal("644", mode_of(path))
    end)

    it("refuses a cache folder that group or others may use", function()
      run { "get", "--group-id", group_id }
      local path, before = cache_file()
      assert(os.execute("chmod 755 " .. quote(cache_dir())))
      local code, _, err = run { "--debug", "get", "--group-id", group_id }
      assert.are.equal(0, code)
      assert.are.equal(2, logins())
      assert.matches("group or others may use it %(mode 755%); run: chmod 700 ", err)
      assert.are.equal(before, command.slurp(path))
    end)

    it("refuses a cache folder that is a symbolic link", function()
      assert(os.execute("mkdir -m 700 " .. quote(home .. "/cache") .. " " .. quote(home .. "/elsewhere")
        .. " && ln -s " .. quote(home .. "/elsewhere") .. " " .. quote(cache_dir())))
      local code, _, err = run { "--debug", "get", "--group-id", group_id }
      assert.are.equal(0, code)
      assert.are.equal(1, logins())
      assert.matches("it is a symbolic link, not a folder", err)
      assert.are.same({}, names_in(home .. "/elsewhere"))
    end)

    it("does not use a token whose renewal time has come, or that has expired: it logs in and replaces it", function()
      for _, times in ipairs { { renew = -10, valid = 200 }, { renew = -200, valid = -100 } } do
        srv:reset()
        group_id = srv:seed_groups(1)[1]
        tempdir.remove(home .. "/cache")
        run { "get", "--group-id", group_id }
        local path, text = cache_file()
        local now = os.time()
        text = text:gsub("\nvalid_until %d+", "\nvalid_until " .. (now + times.valid))
          :gsub("\nrenew_at %d+", "\nrenew_at " .. (now + times.renew))
        tempdir.write(path, text, "600")
        local code, _, err = run { "--debug", "get", "--group-id", group_id }
        assert.are.equal(0, code)
        assert.matches("the cached token's renewal time has come", err)
        assert.are.equal(2, logins())
        local tokens = srv:tokens()
        local _, again = cache_file()
        assert.is_truthy(again:find(tokens[2].token, 1, true))
        assert.is_nil(again:find(tokens[1].token, 1, true))
      end
    end)

    it("logs in again once when the cached token is refused (401), and caches the new one", function()
      run { "get", "--group-id", group_id }
      srv:revoke_tokens()
      srv:clear_requests()
      local code, out = run { "get", "--group-id", group_id }
      assert.are.equal(0, code)
      assert.are.equal(group_id, fake.decode(out).groupId)
      local sent = {}
      for _, request in ipairs(srv:requests()) do sent[#sent + 1] = request.method .. " " .. request.uri end
      local get = "GET /v1/groups/" .. group_id
      assert.are.same({ get, "POST /v1/auth", get }, sent)
      local tokens = srv:tokens()
      assert.are.equal(2, #tokens)
      local _, text = cache_file()
      assert.is_truthy(text:find(tokens[2].token, 1, true))
      assert.is_nil(text:find(tokens[1].token, 1, true))
      -- and the next command takes the new one
      assert.are.equal(0, (run { "get", "--group-id", group_id }))
      assert.are.equal(2, #srv:tokens())
    end)

    it("does not read a file it did not write: logs in and replaces it", function()
      assert(os.execute("mkdir -p -m 700 " .. quote(cache_dir())))
      run { "get", "--group-id", group_id }
      local path = cache_file()
      tempdir.write(path, "api_key k\ntoken t\n", "600")
      local code, _, err = run { "--debug", "get", "--group-id", group_id }
      assert.are.equal(0, code)
      assert.matches("is not one this version writes", err)
      assert.are.equal(2, #srv:tokens())
      local _, text = cache_file()
      assert.is_truthy(text:find(srv:tokens()[2].token, 1, true))
    end)

    it("--no-token-cache logs in every time, and neither reads nor writes the cache", function()
      for _ = 1, 3 do assert.are.equal(0, (run { "--no-token-cache", "get", "--group-id", group_id })) end
      assert.are.equal(3, logins())
      assert.are.same({}, names_in(home .. "/cache"))
      run { "get", "--group-id", group_id }
      local _, before = cache_file()
      assert.are.equal(0, (run { "get", "--group-id", group_id, "--no-token-cache" }))
      assert.are.equal(5, logins())
      assert.are.equal(before, select(2, cache_file()))
    end)

    it("caches nothing for an API key and token given (no login to spare)", function()
      local code = command.run({ "get", "--group-id", group_id }, { env = "XDG_CACHE_HOME=" .. quote(home .. "/cache"),
        prefix = { "--endpoint", srv.endpoint, "--api-key", srv.api_key, "--api-token", srv.token } })
      assert.are.equal(0, code)
      assert.are.same({}, names_in(home .. "/cache"))
    end)

    it("needs no lock: two loops at once log in at most once each, and every command succeeds", function()
      local loop = "i=0; while [ $i -lt 15 ]; do " .. command.LUA .. " bin/soracom-groups get --group-id "
        .. quote(group_id) .. " >/dev/null || echo failed; i=$((i+1)); done"
      local text = shell("XDG_CACHE_HOME=" .. quote(home .. "/cache") .. " SORACOM_ENDPOINT=" .. quote(srv.endpoint)
        .. " SORACOM_AUTH_KEY_ID=" .. quote(srv.auth_key_id) .. " SORACOM_AUTH_KEY=" .. quote(srv.auth_key)
        .. " sh -c " .. quote("(" .. loop .. ") & (" .. loop .. "); wait") .. " 2>&1")
      assert.are.equal("", text)
      local n = logins()
      assert.is_true(n >= 1 and n <= 2, n)
      assert.are.equal(30, srv:stats().by_api["GET /v1/groups/{group_id}"].requests)
    end)
  end)

  describe("as the library's option", function()
    local function client_with(options)
      options.endpoint, options.auth_key_id, options.auth_key = srv.endpoint, srv.auth_key_id, srv.auth_key
      return assert(groups.new(options))
    end

    it("lets a later client of the same credentials take the token", function()
      local dir = home .. "/tokens"
      for _ = 1, 3 do
        local client = client_with { token_cache = dir }
        assert.are.equal(group_id, assert(client:get_group(group_id)).groupId)
        assert.are.equal(srv.operator_id, client:operator_id())
        client:close()
      end
      assert.are.equal(1, #srv:tokens())
      assert.are.equal(1, #names_in(dir))
      assert.are.equal("700", mode_of(dir))
    end)

    it("is off by default", function()
      local client = client_with {}
      assert(client:get_group(group_id))
      client:close()
      client = client_with {}
      assert(client:get_group(group_id))
      client:close()
      assert.are.equal(2, #srv:tokens())
    end)

    it("keeps the token out of tostring, errors and debug lines", function()
      local lines = {}
      local function debug(line) lines[#lines + 1] = line end
      local client = client_with { token_cache = home .. "/tokens", debug = debug }
      assert(client:get_group(group_id))
      client:close()
      client = client_with { token_cache = home .. "/tokens", debug = debug }
      local _, err = client:get_group("no-such-group")
      local token = srv:tokens()[1]
      local text = table.concat(lines, "\n") .. tostring(client) .. tostring(err)
      assert.is_truthy(text:find("using the token cached in", 1, true))
      for _, secret in ipairs { token.token, token.apiKey, srv.auth_key } do
        assert.is_nil(text:find(secret, 1, true))
      end
      client:close()
    end)

    it("logout revokes the token and removes its file, even before a call took it", function()
      local dir = home .. "/tokens"
      local client = client_with { token_cache = dir }
      assert(client:get_group(group_id))
      client:close()
      assert.are.equal(1, #names_in(dir))
      client = client_with { token_cache = dir }
      assert.is_true(client:logout())
      client:close()
      assert.are.same({}, names_in(dir))
      local tokens = srv:tokens()
      assert.are.equal(1, #tokens)
      assert.is_true(tokens[1].revoked)
      -- the next client logs in
      client = client_with { token_cache = dir }
      assert(client:get_group(group_id))
      client:close()
      assert.are.equal(2, #srv:tokens())
    end)

    it("refuses a folder or a file that belongs to another user", function()
      local lines = {}
      local function debug(line) lines[#lines + 1] = line end
      -- As root, a folder and a file given to another user; else a folder root owns.
      local dir = IS_ROOT and home .. "/theirs" or "/"
      if IS_ROOT then
        assert(os.execute("mkdir -m 700 " .. quote(dir) .. " && chown " .. OTHER_UID .. " " .. quote(dir)))
      end
      local client = client_with { token_cache = dir, debug = debug }
      assert(client:get_group(group_id))
      client:close()
      assert.matches("the token cache is not used: folder " .. dir:gsub("%p", "%%%0") .. ": it belongs to another "
        .. "user %(uid %d+%)", table.concat(lines, "\n"))
      assert.are.equal(1, #srv:tokens())
      if IS_ROOT then
        assert.are.same({}, names_in(dir))
        -- a file of another user's in a folder of ours
        local mine = home .. "/mine"
        client = client_with { token_cache = mine }
        assert(client:get_group(group_id))
        client:close()
        local path = mine .. "/" .. names_in(mine)[1]
        local before = command.slurp(path)
        assert(os.execute("chown " .. OTHER_UID .. " " .. quote(path)))
        lines = {}
        client = client_with { token_cache = mine, debug = debug }
        assert(client:get_group(group_id))
        client:close()
        assert.matches("it belongs to another user %(uid " .. OTHER_UID .. "%)", table.concat(lines, "\n"))
        assert.are.equal(3, #srv:tokens())
        assert.are.equal(before, command.slurp(path))
      end
    end)

    it("takes true as $XDG_CACHE_HOME/soracom-groups, else ~/.cache/soracom-groups", function()
      local function place(env)
        local resolved = assert(settings.resolve({ auth_key_id = "id", auth_key = "key", token_cache = true },
          function(name) return env[name] end))
        return resolved.token_cache
      end
      assert.are.same({ directory = "/x/cache/soracom-groups" }, place { XDG_CACHE_HOME = "/x/cache/", HOME = "/h" })
      assert.are.same({ directory = "/h/.cache/soracom-groups" }, place { HOME = "/h" })
      -- (the XDG spec: a relative path is ignored)
      assert.are.same({ directory = "/h/.cache/soracom-groups" }, place { XDG_CACHE_HOME = "rel", HOME = "/h" })
      assert.matches("neither XDG_CACHE_HOME", place({}).unavailable)
      -- an issued key and token need no cache
      local resolved = assert(settings.resolve({ api_key = "k", token = "t", token_cache = true },
        function() return nil end))
      assert.is_nil(resolved.token_cache)
    end)

    it("raises for a value that is not a boolean or a folder, and beside shared_dict", function()
      assert.has_error(function() groups.new { api_key = "k", token = "t", token_cache = 1 } end,
        "soracom.groups.new: token_cache must be a boolean or a string (got number)")
      assert.has_error(function() groups.new { api_key = "k", token = "t", token_cache = "" } end,
        "soracom.groups.new: token_cache must be a non-empty string without control characters")
      assert.has_error(function()
        groups.new { api_key = "k", token = "t", token_cache = true, shared_dict = "soracom" }
      end, "soracom.groups.new: token_cache and shared_dict do not go together: the shared dict keeps the token "
        .. "already")
    end)
  end)

  describe("core.private_dir", function()
    it("makes the folder and its missing parents with mode 0700", function()
      local dir = home .. "/a/b/c"
      assert.is_true(core.private_dir(dir))
      for _, path in ipairs { home .. "/a", home .. "/a/b", dir } do assert.are.equal("700", mode_of(path)) end
      assert.is_true(core.private_dir(dir)) -- and takes it as it is
    end)

    it("refuses a folder group or others may use, a link, a file, and one it cannot make", function()
      local dir = home .. "/open"
      assert(os.execute("mkdir -m 750 " .. quote(dir) .. " && ln -s " .. quote(dir) .. " " .. quote(home .. "/link")))
      assert.are.same({ nil, "shared", "750" }, { core.private_dir(dir) })
      assert.are.same({ nil, "not_directory", "a symbolic link" }, { core.private_dir(home .. "/link") })
      tempdir.write(home .. "/file", "")
      assert.are.same({ nil, "not_directory", "not a folder" }, { core.private_dir(home .. "/file") })
      local ok, reason, detail = core.private_dir(home .. "/file/under")
      assert.are.same({ nil, "unusable" }, { ok, reason })
      assert.matches("^" .. (home .. "/file/under"):gsub("%p", "%%%0") .. ": ", detail)
      assert.has_error(function() core.private_dir("a\0b") end)
    end)
  end)
end)
