-- The C core's pure functions: URL building, JSON both ways, next-page keys and the
-- meaning of a response. No network here; the HTTP path is in the other specs.
local core = require "soracom.groups.core"
local cjson = require "cjson"

local has_integers = math.type ~= nil

describe("core.build_url", function()
  it("percent-encodes every path segment as one segment", function()
    local url, path = core.build_url("http://h/v1", "/groups/{group_id}/tags/{tag_name}",
      nil, nil, "../x", "a b/c%d")
    assert.are.equal("http://h/v1/groups/..%2Fx/tags/a%20b%2Fc%25d", url)
    assert.are.equal("/groups/..%2Fx/tags/a%20b%2Fc%25d", path)
  end)

  it("keeps RFC 3986 unreserved characters and escapes UTF-8 bytes", function()
    local url = core.build_url("http://h/v1", "/groups/{id}", nil, nil, "AZaz09-._~é?#&+")
    assert.are.equal("http://h/v1/groups/AZaz09-._~%C3%A9%3F%23%26%2B", url)
  end)

  it("adds the query parameters in the operation's order, escaped, skipping nil", function()
    local url = core.build_url("http://h/v1", "/groups", { "tag_name", "tag_value", "limit" },
      { limit = 10, tag_value = "a&b=c d+e", tag_name = "name" })
    assert.are.equal("http://h/v1/groups?tag_name=name&tag_value=a%26b%3Dc%20d%2Be&limit=10", url)
    assert.are.equal("http://h/v1/groups?limit=3",
      core.build_url("http://h/v1", "/groups", { "tag_name", "limit" }, { limit = 3 }))
  end)

  it("writes integral numbers without a fraction and refuses others", function()
    assert.are.equal("http://h/v1/groups?limit=100",
      core.build_url("http://h/v1", "/groups", { "limit" }, { limit = 100.0 }))
    assert.has_error(function()
      core.build_url("http://h/v1", "/groups", { "limit" }, { limit = 1.5 })
    end, "bad argument #4 to 'build_url' (query parameter limit must be an integer)")
  end)

  it("raises when a path parameter is missing or of the wrong type", function()
    assert.has_error(function() core.build_url("http://h/v1", "/groups/{group_id}", nil, nil) end)
    assert.has_error(function()
      core.build_url("http://h/v1", "/groups/{group_id}", nil, nil, {})
    end, "bad argument #5 to 'build_url' (path parameter group_id must be a string, a number or "
      .. "a boolean, got table)")
  end)
end)

describe("core.escape", function()
  it("escapes all but the unreserved set", function()
    assert.are.equal("a%20b%2Fc%25d~-._", core.escape("a b/c%d~-._"))
    assert.are.equal("", core.escape(""))
  end)
end)

describe("core.encode_json", function()
  local function decode(text) return cjson.decode(text) end

  it("keeps sequences as arrays and string-keyed tables as objects", function()
    local text = core.encode_json({ { key = "a", value = { 1, 2, 3 } } })
    assert.are.equal("[{", text:sub(1, 2))
    assert.matches('"value":[1,2,3]', text, 1, true)
    assert.are.same({ { key = "a", value = { 1, 2, 3 } } }, decode(text))
    assert.are.same({ tags = { name = "x" } }, decode(core.encode_json({ tags = { name = "x" } })))
  end)

  it("writes an empty table as {} and a marked one as []", function()
    assert.are.equal("{}", core.encode_json({}))
    assert.are.equal("[]", core.encode_json(setmetatable({}, core.array_mt)))
    assert.are.equal('{"a":[]}', core.encode_json({ a = setmetatable({}, core.array_mt) }))
  end)

  it("writes integers without exponent or fraction, and floats exactly", function()
    assert.are.equal("[1698796800000,-5,0,1.5,0.1]", core.encode_json({ 1698796800000, -5, 0, 1.5, 0.1 }))
    if has_integers then
      assert.are.equal("[9007199254740993]", core.encode_json({ math.tointeger(9007199254740993) }))
    end
  end)

  it("refuses strings that are not UTF-8", function()
    assert.has_error(function() core.encode_json({ name = "\255" }) end,
      "body.name: a string is not valid UTF-8")
    assert.has_error(function() core.encode_json("\237\160\128") end) -- a surrogate
    assert.has_error(function() core.encode_json("\192\175") end) -- overlong "/"
    assert.are.equal('"\240\159\152\128"', core.encode_json("\240\159\152\128"))
  end)

  it("keeps the sign of a negative zero", function()
    local text = core.encode_json({ -0.0 })
    assert.are.equal("[-0.0]", text)
    assert.are.equal("[-0.0]", core.encode_json(core.decode_json(text)))
  end)

  it("escapes strings for JSON and keeps UTF-8 as it is", function()
    assert.are.equal('"q\\"b\\\\n\\nt\\tc\\u0001é"', core.encode_json('q"b\\n\nt\tc\1é'))
  end)

  it("writes null, booleans and nested values", function()
    assert.are.equal('[null,true,false,{"a":{"b":[null]}}]',
      core.encode_json({ core.null, true, false, { a = { b = { cjson.null } } } }))
  end)

  it("names where an unencodable value sits", function()
    assert.has_error(function() core.encode_json({ a = { b = { 1, print } } }) end,
      "body.a.b[2]: a function cannot be sent as JSON")
    assert.has_error(function() core.encode_json({ x = 0 / 0 }) end,
      "body.x: NaN and infinity cannot be sent as JSON")
    assert.has_error(function() core.encode_json({ 1, 2, x = 3 }) end,
      "body: a table mixes array and other keys, or has holes")
    assert.has_error(function() core.encode_json({ [1] = 1, [3] = 3 }) end,
      "body: a table mixes array and other keys, or has holes")
  end)

  it("refuses a cycle instead of looping", function()
    local t = {}
    t.self = t
    local ok, err = pcall(core.encode_json, t)
    assert.is_false(ok)
    assert.matches("nested too deeply", err)
  end)
end)

describe("core.decode_json", function()
  it("decodes integral numbers as integers, 13-digit timestamps included", function()
    local v = core.decode_json('{"createdTime":1698796800000,"n":-42,"f":1.5,"e":1e3}')
    assert.are.equal(1698796800000, v.createdTime)
    assert.are.equal(-42, v.n)
    assert.are.equal(1.5, v.f)
    assert.are.equal(1000, v.e)
    if has_integers then
      assert.are.equal("integer", math.type(v.createdTime))
      assert.are.equal("integer", math.type(v.n))
      assert.are.equal("float", math.type(v.e))
      assert.are.equal("1698796800000", tostring(v.createdTime))
    end
  end)

  it("reads numbers of any length", function()
    assert.are.equal(0.5, core.decode_json("0.5" .. string.rep("0", 500)))
  end)

  it("keeps numbers too large for an integer as floats", function()
    local v = core.decode_json("[123456789012345678901234567890]")
    assert.are.equal(1.2345678901234568e29, v[1])
  end)

  it("decodes null as a value equal to cjson.null, without holes in arrays", function()
    local v = core.decode_json('{"a":null,"b":[1,null,3]}')
    assert.are.equal(cjson.null, v.a)
    assert.are.equal(core.null, v.a)
    assert.are.equal(3, #v.b)
    assert.are.equal(cjson.null, v.b[2])
  end)

  it("decodes escapes, unicode escapes and surrogate pairs to UTF-8", function()
    local v = core.decode_json('["a\\"b\\\\c\\/d\\n\\t", "\\u00e9\\u4e2d", "\\ud83d\\ude00", "\\u0000x"]')
    assert.are.equal('a"b\\c/d\n\t', v[1])
    assert.are.equal("é中", v[2])
    assert.are.equal("\240\159\152\128", v[3])
    assert.are.equal("\0x", v[4])
  end)

  it("refuses lone or broken surrogates", function()
    assert.is_nil((core.decode_json('["\\ud83d"]')))
    assert.is_nil((core.decode_json('["\\ude00"]')))
    assert.is_nil((core.decode_json('["\\ud83dx\\ude00"]')))
  end)

  it("bounds nesting depth", function()
    local ok_text = string.rep("[", 1000) .. string.rep("]", 1000)
    assert.is_table(core.decode_json(ok_text))
    local deep = string.rep("[", 1001) .. string.rep("]", 1001)
    local value, err = core.decode_json(deep)
    assert.is_nil(value)
    assert.matches("nesting too deep", err)
    local very_deep = string.rep('{"a":', 100000)
    assert.is_nil((core.decode_json(very_deep)))
  end)

  it("reports malformed JSON with its position", function()
    for _, text in ipairs({ "", "[1,2", "{\"a\" 1}", "[1,]", "tru", "01", "1.", "[1] x", "\"\1\"",
      "{'a':1}", "-", "[1e]", "\"abc" }) do
      local value, err = core.decode_json(text)
      assert.is_nil(value, text)
      assert.is_truthy(err:match("^line 1, column %d+: %a"), text)
    end
  end)

  it("marks empty arrays so that they are sent back as []", function()
    local v = core.decode_json('{"servers":[],"meta":{}}')
    assert.are.equal('[]', core.encode_json(v.servers))
    assert.are.equal('{}', core.encode_json(v.meta))
  end)
end)

describe("core.parse_next_key", function()
  it("prefers x-soracom-next-key", function()
    assert.are.equal("k1", core.parse_next_key("k1", "</v1/groups?last_evaluated_key=k2>; rel=next"))
  end)

  it("falls back to the Link header's rel=next URL, percent-decoded", function()
    assert.are.equal("a/b c", core.parse_next_key(nil,
      "</v1/groups?limit=2&last_evaluated_key=a%2Fb%20c>; rel=next"))
    assert.are.equal("k", core.parse_next_key("", '</v1/groups?last_evaluated_key=k>; rel="next"'))
    assert.are.equal("n", core.parse_next_key(nil,
      '</v1/x?last_evaluated_key=p>; rel=prev, </v1/x?last_evaluated_key=n>; rel="next"'))
  end)

  it("keeps a + as a +, reads rel case-insensitively and skips commas in quotes", function()
    assert.are.equal("a+b", core.parse_next_key(nil, "</v1/x?last_evaluated_key=a+b>; rel=next"))
    assert.are.equal("k", core.parse_next_key(nil, "</v1/x?last_evaluated_key=k>; REL=NEXT"))
    assert.are.equal("k", core.parse_next_key(nil,
      '</v1/x?last_evaluated_key=k>; title="a, b"; rel="next"'))
    assert.is_nil(core.parse_next_key(nil, "</v1/x?last_evaluated_key=k>; related=next"))
  end)

  it("gives nil when there is no next page", function()
    assert.is_nil(core.parse_next_key(nil, nil))
    assert.is_nil(core.parse_next_key(nil, "</v1/groups?last_evaluated_key=p>; rel=prev"))
    assert.is_nil(core.parse_next_key(nil, "</v1/groups?limit=2>; rel=next"))
    assert.is_nil(core.parse_next_key(nil, "garbage"))
  end)
end)

describe("core.decode_response", function()
  it("decodes a 2xx body, its next key and status", function()
    local value, key, status = core.decode_response(200, '[{"a":1}]', "next")
    assert.are.same({ { a = 1 } }, value)
    assert.are.equal("next", key)
    assert.are.equal(200, status)
  end)

  it("gives true for an empty 2xx body", function()
    assert.is_true((core.decode_response(204, "")))
  end)

  it("reads code and message from a Soracom error body", function()
    local value, err = core.decode_response(404, '{"code":"GRP0001","message":"No such group"}')
    assert.is_nil(value)
    assert.are.same({ kind = "http", status = 404, code = "GRP0001", message = "No such group" }, err)
  end)

  it("makes a readable message from a non-JSON error body", function()
    local _, err = core.decode_response(502, "<html>\r\n<body>\tBad gateway</body>\n</html>\n")
    assert.are.equal("<html> <body> Bad gateway</body> </html>", err.message)
    assert.is_nil(err.code)
    local _, empty = core.decode_response(503, "")
    assert.are.equal("HTTP 503 Service Unavailable", empty.message)
    local _, long = core.decode_response(500, string.rep("x", 1000))
    assert.are.equal(303, #long.message)
  end)

  it("reports an invalid 2xx body as a decode error", function()
    local value, err = core.decode_response(200, "{not json")
    assert.is_nil(value)
    assert.are.equal("decode", err.kind)
    assert.are.equal(200, err.status)
    assert.matches("invalid JSON in the response", err.message)
  end)
end)

describe("core.sha256", function()
  -- The expected digests come from sha256sum, not from this function:
  --   printf '' | sha256sum; printf 'abc' | sha256sum
  --   printf 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq' | sha256sum
  --   head -c 1000000 /dev/zero | tr '\0' a | sha256sum
  --   bytes 0..255 (printf "\\$(printf %03o $i)" for i in 0..255), 4096 times | sha256sum
  it("gives the known digests, as 64 lowercase hex digits", function()
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256(""))
    assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", core.sha256("abc"))
    assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      core.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
  end)

  it("hashes a megabyte, every byte value included", function()
    assert.are.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      core.sha256(string.rep("a", 1000000)))
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local mebibyte = string.rep(table.concat(bytes), 4096)
    assert.are.equal(1048576, #mebibyte)
    assert.are.equal("fbbab289f7f94b25736c58be46a994c441fd02552cc6022352e3d86d2fab7c83", core.sha256(mebibyte))
  end)
end)
