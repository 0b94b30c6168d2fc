-- The README's section on the fake server as a test helper: its shell session runs as
-- written, and its table of credentials is the one the fake accepts.
local command = require "spec.support.command"
local fake = require "spec.support.fake_server"
local core = require "soracom.groups.core"

local SECTION = "## Testing your code against the fake server"

local function section()
  local file = assert(io.open("README.md", "rb"))
  local text = file:read("*a")
  file:close()
  local start = assert(text:find(SECTION, 1, true), "README has no section " .. SECTION)
  local finish = text:find("\n## ", start + #SECTION, true) or #text
  return text:sub(start, finish)
end

describe("the README's fake server section", function()
  it("gives a shell session that runs as written against a fresh fake", function()
    local session = assert(section():match("```sh\n(.-)```"), "no sh block")
    local path = os.tmpname()
    local file = assert(io.open(path, "wb"))
    -- The session's own last line stops the fake; the trap stops it when a line fails.
    -- The installed commands, as the checkout has them (spec/rock_install_spec.lua runs the
    -- installed ones), on Lua 5.4 as the README's install does.
    local commands = "soracom-groups-fake() { lua5.4 bin/soracom-groups-fake \"$@\"; }\n"
      .. "soracom-groups() { lua5.4 bin/soracom-groups \"$@\"; }\n"
    file:write("set -e\ntrap 'spec/fake/ctl stop \"$state\" >/dev/null 2>&1 || true' EXIT\n", commands, session)
    file:close()
    -- (with a token cache of its own: an earlier run's token would cost a 401 and a login)
    local pipe = assert(io.popen(command.OWN_CACHE .. "bash " .. path .. " 2>&1; echo \"exit=$?\""
      .. command.DROP_CACHE))
    local out = pipe:read("*a")
    pipe:close()
    os.remove(path)
    assert.truthy(out:find("exit=0", 1, true), out)
    -- The list the command printed: the three groups the session seeded, tagged env=ci.
    local list = out:match("(%[\n%s*{.-\n%])\n")
    assert.truthy(list, out)
    local groups = assert(core.decode_json(list))
    assert.are.equal(3, #groups)
    for _, group in ipairs(groups) do assert.are.equal("ci", group.tags.env) end
    -- The stats line (after the list's last line; its keys in any order): one login,
    -- and the fault's 503 retried.
    local stats_line = assert(out:match('\n({[^\n]*"by_api"[^\n]*})'), out)
    local stats = assert(core.decode_json(stats_line))
    assert.are.equal(1, stats.by_api["POST /v1/auth"].requests)
    assert.are.equal(3, stats.requests)
  end)

  it("names the credentials the fake accepts", function()
    local text = section()
    local c = fake.credentials
    for _, pair in ipairs {
      { "auth_key_id", c.auth_key_id }, { "auth_key", c.auth_key }, { "email", c.email },
      { "password", c.password }, { "operator_id", c.operator_id }, { "user_name", c.user_name },
      { "password", c.sam_password }, { "api_key", "test-api-key" }, { "token", "test-token" },
    } do
      local written = pair[1] .. ' = "' .. pair[2] .. '"'
      assert.truthy(text:find(written, 1, true), "README lacks " .. written)
    end
    local srv = fake.start()
    local ok, err = pcall(function()
      assert.are.equal("test-api-key", srv.api_key)
      assert.are.equal("test-token", srv.token)
    end)
    srv:stop()
    assert(ok, err)
  end)
end)
