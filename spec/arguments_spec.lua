-- Issue 9, item 2: every function the C core exports checks its arguments, and a wrong
-- one is a Lua error naming it ("bad argument #3 to 'build_url' (...)"), never a crash.
-- (The curl session's constructor and methods are session.c's, checked elsewhere.)
local core = require "soracom.groups.core"

-- fn must raise; its message must end with expected. fn calls the core function as
-- core.name(...) and not as a tail call, so that the message can name it.
local function assert_error(expected, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error: " .. expected)
  err = tostring(err)
  assert.are.equal(expected, err:sub(-#expected), err)
end

describe("the C core's argument checks (issue 9, item 2)", function()
  it("build_url refuses query names that are not strings, instead of crashing", function()
    assert_error("bad argument #3 to 'build_url' (query name 1 is a boolean, not a string)",
      function() local _ = core.build_url("http://h/v1", "/g", { true }, {}) end)
    assert_error("bad argument #3 to 'build_url' (query name 2 is a table, not a string)",
      function() local _ = core.build_url("http://h/v1", "/g", { "limit", {} }, { x = 1 }) end)
    assert_error("bad argument #3 to 'build_url' (query name 1 is a number, not a string)",
      function() local _ = core.build_url("http://h/v1", "/g", { 1 }, nil) end)
  end)

  it("build_url checks the endpoint, the template and both tables", function()
    assert_error("bad argument #1 to 'build_url' (string expected, got nil)",
      function() local _ = core.build_url(nil, "/g") end)
    assert_error("bad argument #2 to 'build_url' (string expected, got table)",
      function() local _ = core.build_url("http://h/v1", {}) end)
    assert_error("bad argument #2 to 'build_url' (a { without its } in the path template)",
      function() local _ = core.build_url("http://h/v1", "/groups/{group_id", nil, nil, "g") end)
    assert_error("bad argument #3 to 'build_url' (table or nil expected, got string)",
      function() local _ = core.build_url("http://h/v1", "/g", "limit", { limit = 1 }) end)
    assert_error("bad argument #4 to 'build_url' (table or nil expected, got boolean)",
      function() local _ = core.build_url("http://h/v1", "/g", { "limit" }, true) end)
  end)

  it("build_url names the path parameter and the query value it refuses", function()
    assert_error("bad argument #5 to 'build_url' (path parameter group_id has no value)",
      function() local _ = core.build_url("http://h/v1", "/groups/{group_id}", nil, nil) end)
    assert_error("bad argument #6 to 'build_url' (path parameter tag_name must be a string, "
      .. "a number or a boolean, got table)",
      function()
        local _ = core.build_url("http://h/v1", "/groups/{group_id}/tags/{tag_name}", nil, nil,
          "g", {})
      end)
    assert_error("bad argument #4 to 'build_url' (query parameter limit must be a string, "
      .. "a number or a boolean, got function)",
      function() local _ = core.build_url("http://h/v1", "/g", { "limit" }, { limit = print }) end)
    assert_error("bad argument #4 to 'build_url' (query parameter limit must be an integer)",
      function() local _ = core.build_url("http://h/v1", "/g", { "limit" }, { limit = 1.5 }) end)
  end)

  it("the other functions refuse wrong types with a Lua error", function()
    assert_error("bad argument #1 to 'escape' (string expected, got table)",
      function() local _ = core.escape({}) end)
    assert_error("bad argument #1 to 'escape' (string expected, got no value)",
      function() local _ = core.escape() end)
    assert_error("bad argument #1 to 'encode_json' (value expected)",
      function() local _ = core.encode_json() end)
    assert_error("bad argument #2 to 'encode_json' (string expected, got table)",
      function() local _ = core.encode_json({}, {}) end)
    assert_error("bad argument #1 to 'decode_json' (string expected, got nil)",
      function() local _ = core.decode_json(nil) end)
    assert_error("bad argument #2 to 'decode_json' (table or nil expected, got boolean)",
      function() local _ = core.decode_json("1", true) end)
    assert_error("bad argument #2 to 'decode_json' (unknown option 'strcit')",
      function() local _ = core.decode_json("1", { strcit = true }) end)
    assert_error("bad argument #2 to 'decode_json' (option names must be strings, got number)",
      function() local _ = core.decode_json("1", { true }) end)
    assert_error("bad argument #2 to 'decode_json' (option strict must be a boolean, got string)",
      function() local _ = core.decode_json("1", { strict = "yes" }) end)
    assert_error("bad argument #1 to 'decode_response' (number expected, got string)",
      function() local _ = core.decode_response("x") end)
    assert_error("bad argument #2 to 'decode_response' (string expected, got table)",
      function() local _ = core.decode_response(200, {}) end)
    assert_error("bad argument #6 to 'decode_response' (string expected, got boolean)",
      function() local _ = core.decode_response(429, "", nil, nil, nil, true) end)
    assert_error("bad argument #1 to 'parse_next_key' (string expected, got table)",
      function() local _ = core.parse_next_key({}) end)
    assert_error("bad argument #2 to 'parse_next_key' (string expected, got boolean)",
      function() local _ = core.parse_next_key(nil, false) end)
    assert_error("bad argument #1 to 'read_private_file' (string expected, got nil)",
      function() local _ = core.read_private_file(nil) end)
    assert_error("bad argument #1 to 'sha256' (string expected, got no value)",
      function() local _ = core.sha256() end)
    assert_error("bad argument #1 to 'sha256' (string expected, got number)",
      function() local _ = core.sha256(42) end)
    assert_error("bad argument #1 to 'sha256' (string expected, got table)",
      function() local _ = core.sha256({}) end)
    assert_error("bad argument #1 to 'sleep' (number expected, got string)",
      function() local _ = core.sleep("x") end)
  end)

  it("read_private_file refuses a path holding a NUL byte rather than open its start", function()
    assert_error("bad argument #1 to 'read_private_file' (the path holds a NUL byte)",
      function() local _ = core.read_private_file("/etc/hostname\0.json") end)
  end)
end)
