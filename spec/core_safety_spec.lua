-- The C core's second pass (issue 24, items 1, 3, 8, 9, 10, 11 and 12): no Lua program
-- reaches freed memory through the core's metatables or finalizers, timeouts and
-- arguments are checked before they are converted, profiles are read only when the
-- effective user owns them (and FIFOs and devices are never opened), every libcurl
-- option is checked, and rate-limit headers with leading zeros are numbers.
-- The sequences that crashed run in a child process (spec/support/core_safety_child.lua),
-- so that a crash fails a spec instead of ending busted.
local fake = require "spec.support.fake_server"
local tempdir = require "spec.support.tempdir"
local command = require "spec.support.command"
local groups = require "soracom.groups"
local core = require "soracom.groups.core"

local q = command.quote

-- Runs spec/support/core_safety_child.lua MODE [ARG] with `env` before it; returns its
-- output and whether it exited with 0.
local function child(mode, arg, env)
  local pipe = assert(io.popen((env or "") .. " " .. command.LUA .. " spec/support/core_safety_child.lua "
    .. mode .. " " .. (arg or "") .. " 2>&1; echo \"exit=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local text, code = out:match("^(.-)exit=(%d+)%s*$")
  return text or out, code == "0"
end

local function is_root()
  local pipe = assert(io.popen("id -u"))
  local uid = pipe:read("*l")
  pipe:close()
  return uid == "0"
end

local function raises(text, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, text)
  assert.truthy(tostring(err):find(text, 1, true), tostring(err))
end

describe("the C core's second pass (issue 24)", function()
  local srv, auth

  setup(function()
    srv = fake.start()
    auth = { "X-Soracom-API-Key: " .. srv.api_key, "X-Soracom-Token: " .. srv.token }
  end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  local function session(options)
    local s = core.session(options or {})
    s:set_headers(auth)
    return s
  end

  local function client(extra)
    local options = { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token, retries = 0 }
    for name, value in pairs(extra or {}) do options[name] = value end
    return assert(groups.new(options))
  end

  describe("item 1: the core's objects and their metatables", function()
    it("keeps every metatable it makes out of reach: getmetatable gives its name", function()
      local s, m = core.session {}, core.multi()
      assert.are.equal("soracom.groups.session", getmetatable(s))
      assert.are.equal("soracom.groups.multi", getmetatable(m))
      -- (setmetatable takes tables only; the debug library's reaches userdata)
      raises("bad argument #1 to 'setmetatable'", function() setmetatable(s, nil) end)
      raises("bad argument #1 to 'setmetatable'", function() setmetatable(m, {}) end)
      -- and those of the objects Lua code never sees (reached here through the registry)
      assert.is_nil(core.read_private_file("/nonexistent/soracom-spec")) -- makes the fd one
      local registry = debug.getregistry()
      for _, name in ipairs { "soracom.groups.session", "soracom.groups.multi", "soracom.groups.exchange",
        "soracom.groups.membuf", "soracom.groups.fd" } do
        assert.are.equal(name, assert(registry[name], name).__metatable, name)
      end
      -- the one left open: the public mark of JSON arrays, which holds no C state
      assert.are.equal(core.array_mt, getmetatable(core.decode_json("[]")))
      s:close()
      m:close()
    end)

    -- Each sequence read freed memory (or crashed) before; each must now run through.
    for _, mode in ipairs {
      "metatable",                -- the issue's: the multi's __gc removed, the multi collected, the session closed
      "debug_metatable",          -- the same through debug.getmetatable
      "session_finalizer_removed", -- a session without its __gc, collected while it runs
      "dropped_together",         -- both unreachable at once, made in either order
      "at_exit",                  -- left running to lua_close
      "resurrected",              -- a finalizer brings both back
      "session_uservalue",        -- the debug library replaces a session's user value
      "multi_uservalue",          -- or a multi handle's
    } do
      it("keeps a multi handle and its sessions valid whatever the collector does: " .. mode, function()
        local out, ok = child(mode)
        assert.is_true(ok, out)
        assert.truthy(out:find("ok " .. mode .. "\n", 1, true), out)
      end)
    end

    it("collects a multi handle and the sessions running on it once nothing else holds them", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local m, s = core.multi(), session()
        s:prepare("GET", srv.endpoint .. "/groups")
        assert(m:add(s))
        weak.m, weak.s = m, s
      end
      for _ = 1, 4 do collectgarbage() end
      assert.is_nil(weak.m)
      assert.is_nil(weak.s)
    end)
  end)

  describe("item 3: the finalizers", function()
    it("refuse what is not their own object (the debug library can call them), never crash", function()
      local out, ok = child("finalizers")
      assert.is_true(ok, out)
      assert.are.equal("refused 15\nok finalizers\n", out)
    end)
  end)

  describe("item 8: timeouts", function()
    it("are refused by core.session beyond a day or when not finite, naming the option", function()
      raises("session: timeout must be at most 86400 seconds (got 1e+16)",
        function() core.session { timeout = 1e16 } end)
      raises("session: connect_timeout must be at most 86400 seconds (got 86401)",
        function() core.session { connect_timeout = 86401 } end)
      raises("session: timeout must be a positive number of seconds (got number)",
        function() core.session { timeout = 0 / 0 } end)
      raises("session: connect_timeout must be a positive number of seconds (got number)",
        function() core.session { connect_timeout = -math.huge } end)
      local s = session { timeout = 86400, connect_timeout = 86400 }
      assert.are.same({ ok = true }, (s:perform("GET", srv.url .. "/_fake/health")))
      s:close()
    end)

    it("and every seconds option of groups.new, with its name", function()
      for _, name in ipairs { "connect_timeout", "timeout", "keepalive_timeout", "retry_base_delay",
        "retry_max_delay", "rate_limit_max_delay" } do
        raises("soracom.groups.new: " .. name .. " must be at most 86400 seconds (a day), got 1e+300",
          function() groups.new { api_key = "k", token = "t", [name] = 1e300 } end)
        raises("soracom.groups.new: " .. name .. " must be a",
          function() groups.new { api_key = "k", token = "t", [name] = 0 / 0 } end)
        raises("soracom.groups.new: " .. name .. " must be a",
          function() groups.new { api_key = "k", token = "t", [name] = math.huge } end)
        groups.new({ api_key = "k", token = "t", [name] = 86400 }):close()
      end
    end)
  end)

  describe("item 9: arguments", function()
    it("a number is no method or URL of session:perform and prepare, and nothing is sent", function()
      local s = session()
      local url = srv.endpoint .. "/groups"
      raises("session:perform: method must be an HTTP method token (got number)",
        function() s:perform(404, url) end)
      raises("session:prepare: method must be an HTTP method token (got number)",
        function() s:prepare(404, url) end)
      raises("session:perform: url must be a string without NUL bytes (got number)",
        function() s:perform("GET", 42) end)
      raises("session:prepare: url must be a string without NUL bytes (got number)",
        function() s:prepare("GET", 42) end)
      assert.are.same({}, (s:perform("GET", url)))
      s:close()
      assert.are.equal(1, #srv:requests())
    end)

    it("the core's other functions take strings and numbers only as such", function()
      local dir = tempdir.new()
      local path = dir .. "/42"
      raises("bad argument #1 to 'decode_json' (string expected, got number)", function() core.decode_json(5) end)
      raises("bad argument #1 to 'read_private_file' (string expected, got number)",
        function() core.read_private_file(42) end)
      raises("bad argument #1 to 'write_private_file' (string expected, got number)",
        function() core.write_private_file(42, "x") end)
      raises("bad argument #2 to 'decode_response' (string expected, got number)",
        function() core.decode_response(200, 5) end)
      raises("bad argument #5 to 'decode_response' (string expected, got number)",
        function() core.decode_response(429, "", nil, nil, 5) end)
      raises("bad argument #1 to 'decode_response' (number expected, got string)",
        function() core.decode_response("200", "") end)
      raises("bad argument #1 to 'decode_response' (an HTTP status",
        function() core.decode_response(1e300, "") end)
      raises("bad argument #2 to 'encode_json' (string expected, got number)",
        function() core.encode_json({}, 5) end)
      raises("bad argument #1 to 'sleep' (number expected, got string)", function() core.sleep("0") end)
      raises("bad argument #1 to 'build_url' (string expected, got number)",
        function() core.build_url(8080, "/groups") end)
      raises("bad argument #2 to 'build_url' (string expected, got number)",
        function() core.build_url("http://127.0.0.1/v1", 404) end)
      raises("bad argument #1 to 'escape' (string expected, got number)", function() core.escape(404) end)
      raises("bad argument #1 to 'parse_next_key' (string expected, got number)",
        function() core.parse_next_key(12) end)
      raises("bad argument #2 to 'parse_next_key' (string expected, got number)",
        function() core.parse_next_key(nil, 12) end)
      local m = core.multi()
      raises("number expected, got string", function() m:poll("0") end)
      m:close()
      assert.is_nil(io.open(path)) -- nothing was written under the number's name
      tempdir.remove(dir)
    end)
  end)

  describe("item 10: read_private_file", function()
    local dir
    before_each(function() dir = tempdir.new() end)
    after_each(function() tempdir.remove(dir) end)

    it("reads only a file of the effective user (or root), as ssh does", function()
      local path = dir .. "/default.json"
      tempdir.write(path, "{}", "600")
      assert.are.equal("{}", core.read_private_file(path))
      local link = dir .. "/link.json" -- through a symbolic link: the file it names
      assert(os.execute("ln -s " .. q(path) .. " " .. q(link)))
      assert.are.equal("{}", core.read_private_file(link))
      if not is_root() then
        pending("giving a file to another user needs root")
        return
      end
      assert(os.execute("chown nobody " .. q(path)))
      local text, reason, detail = core.read_private_file(path)
      assert.is_nil(text)
      assert.are.equal("unreadable", reason)
      assert.truthy(detail:find("belongs to another user", 1, true), detail)
      text, reason = core.read_private_file(link)
      assert.is_nil(text)
      assert.are.equal("unreadable", reason)
      -- and the profile's message says so
      local profile = require "soracom.groups.profile"
      local data, message = profile.read(path)
      assert.is_nil(data)
      assert.truthy(message:find("belongs to another user", 1, true), message)
    end)

    it("never opens a FIFO (a writer waiting for a reader stays waiting) or a device", function()
      local fifo, mark = dir .. "/default.json", dir .. "/opened"
      assert(os.execute("mkfifo " .. q(fifo)))
      -- a writer whose open() returns only once somebody opens the FIFO for reading
      assert(os.execute("(exec 3>" .. q(fifo) .. "; echo yes > " .. q(mark) .. ") >/dev/null 2>&1 &"))
      core.sleep(0.2)
      local text, reason = core.read_private_file(fifo)
      assert.is_nil(text)
      assert.are.equal("not_regular", reason)
      core.sleep(0.3)
      local opened = io.open(mark)
      -- release the writer (cat opens the FIFO, reads to its end)
      os.execute("timeout 5 cat " .. q(fifo) .. " >/dev/null 2>&1")
      if opened then opened:close() end
      assert.is_nil(opened, "read_private_file opened the FIFO")
      text, reason = core.read_private_file("/dev/null")
      assert.is_nil(text)
      assert.are.equal("not_regular", reason)
    end)
  end)

  describe("item 11: every libcurl option is checked", function()
    -- libcurl refuses a URL over 8 MB (CURL_MAX_INPUT_LENGTH), having dropped the previous
    -- one: before, the refusal went unnoticed and the transfer ran without a URL.
    local huge_url

    setup(function() huge_url = "http://127.0.0.1:9/" .. string.rep("a", 9 * 1024 * 1024) end)

    it("perform returns the refusal as a network error, and sends nothing", function()
      local s = session()
      assert.are.same({}, (s:perform("GET", srv.endpoint .. "/groups")))
      local value, err = s:perform("GET", huge_url)
      assert.is_nil(value)
      assert.are.equal("network", err.kind)
      assert.are.equal(43, err.curl_code) -- CURLE_BAD_FUNCTION_ARGUMENT
      assert.are.equal("the request could not be set up: libcurl refused CURLOPT_URL (A libcurl function "
        .. "was given a bad argument)", err.message)
      assert.is_nil(s:last_rate_limit())
      assert.are.same({}, (s:perform("GET", srv.endpoint .. "/groups"))) -- the session goes on
      s:close()
      assert.are.equal(2, #srv:requests())
    end)

    it("prepare returns it, multi:add returns it without adding, finish gives the error", function()
      local s, m = session(), core.multi()
      local ok, message = s:prepare("GET", huge_url)
      assert.is_nil(ok)
      assert.truthy(message:find("libcurl refused CURLOPT_URL", 1, true), message)
      local added, why = m:add(s)
      assert.is_nil(added)
      assert.are.equal(message, why)
      assert.are.equal(0, m:count())
      local value, err = s:finish()
      assert.is_nil(value)
      assert.are.same({ "network", 43, message }, { err.kind, err.curl_code, err.message })
      assert.is_true(s:prepare("GET", srv.endpoint .. "/groups")) -- free again
      assert(m:add(s))
      while #m:poll(1) == 0 do end
      assert.are.same({}, (s:finish()))
      m:close()
      s:close()
    end)

    it("a client's call gives the error naming the option, in a map too", function()
      local c = client()
      local id = srv:seed_groups(1)[1]
      assert.are.equal(id, c:get_group(id).groupId)
      local huge_id = string.rep("a", 9 * 1024 * 1024)
      local value, err = c:get_group(huge_id)
      assert.is_nil(value)
      assert.are.equal("network", err.kind)
      assert.truthy(err.message:find("libcurl refused CURLOPT_URL", 1, true), err.message:sub(1, 300))
      local results = c:map({ huge_id }, function(item) return c:get_group(item) end)
      err = results[1].err
      assert.is_nil(results[1].value)
      assert.are.equal("network", err.kind)
      assert.truthy(err.message:find("libcurl refused CURLOPT_URL", 1, true), err.message:sub(1, 300))
      c:close()
      assert.are.equal(1, #srv:requests())
    end)

    it("a body libcurl cannot copy (out of memory) is an error of prepare, add and finish", function()
      if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
        pending("a preloaded malloc does not go with AddressSanitizer's")
        return
      end
      local dir = tempdir.new()
      local library = dir .. "/fail_malloc.so"
      if not os.execute("cc -shared -fPIC -o " .. q(library) .. " spec/support/fail_malloc.c 2>/dev/null") then
        tempdir.remove(dir)
        pending("no C compiler for spec/support/fail_malloc.c")
        return
      end
      local size = 3333331
      local out, ok = child("copy_fails", tostring(size),
        "SORACOM_FAIL_MALLOC=" .. size .. " LD_PRELOAD=" .. q(library))
      tempdir.remove(dir)
      assert.is_true(ok, out)
      local message = "the request could not be set up: libcurl refused CURLOPT_COPYPOSTFIELDS (Out of memory)"
      assert.are.equal("prepare\tnil\t" .. message .. "\n"
        .. "add\tnil\t" .. message .. "\t0\n"
        .. "finish\tnil\tnetwork\t27\t" .. message .. "\n"
        .. "ok copy_fails\n", out)
    end)
  end)

  describe("item 12: rate-limit headers with leading zeros", function()
    local PADDED = {
      ["X-Soracom-Ratelimit-Limit"] = "0000000000000001",
      ["X-Soracom-Ratelimit-Remaining"] = "0000000000000000",
      ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "0000000000000030",
    }

    it("are numbers: 15 significant digits at most, whatever zeros come first", function()
      srv:faults {
        { status = 200, body = "[]", headers = PADDED },
        { status = 200, body = "[]", headers = {
          ["X-Soracom-Ratelimit-Limit"] = "000000000000000999999999999999",
          ["X-Soracom-Ratelimit-Remaining"] = "0001000000000000000",
          ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "00",
        } },
      }
      local s = session()
      s:perform("GET", srv.endpoint .. "/groups")
      assert.are.same({ limit = 1, remaining = 0, refresh = 30 }, s:last_rate_limit())
      s:perform("GET", srv.endpoint .. "/groups")
      assert.are.same({ limit = 999999999999999, refresh = 0 }, s:last_rate_limit())
      s:close()
    end)

    it("count for the client's budget: a used-up window holds the next request", function()
      srv:faults { { status = 200, body = "[]", headers = PADDED } }
      local c = client { rate_limit_max_delay = 1 }
      assert.are.same({}, (c:list_groups()))
      local value, err = c:list_groups()
      assert.is_nil(value)
      assert.are.equal("rate_limit", err.kind)
      assert.truthy(tostring(err):find("1 requests per 30 s", 1, true), tostring(err))
      c:close()
    end)
  end)
end)

describe("the nginx transport's rate-limit headers with leading zeros (issue 24, item 12)", function()
  local harness = require "spec.nginx.harness"
  local srv, nginx

  setup(function() srv, nginx = harness.start_with_fake({}) end)
  teardown(function() harness.stop_both(srv, nginx) end)

  it("count for the client's budget as the curl transport's", function()
    srv:faults { { status = 200, body = "[]", headers = {
      ["X-Soracom-Ratelimit-Limit"] = "0000000000000001",
      ["X-Soracom-Ratelimit-Remaining"] = "0000000000000000",
      ["X-Soracom-Ratelimit-Seconds-Before-Refresh"] = "0000000000000030",
    } } }
    local answer = nginx:call {
      options = { endpoint = srv.endpoint, api_key = srv.api_key, token = srv.token, retries = 0,
        rate_limit_max_delay = 1 },
      calls = { { op = "list_groups" }, { op = "list_groups" } },
    }
    assert.is_nil(answer.results[1].err)
    local err = answer.results[2].err
    assert.is_table(err, "the second call went through")
    assert.are.equal("rate_limit", err.kind)
    assert.truthy(err.text:find("1 requests per 30 s", 1, true), err.text)
  end)
end)
