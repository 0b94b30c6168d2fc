-- Issue 9, item 3 (item 8 of the review): query values and names are written exactly
-- and escaped without a size cap.
local core = require "soracom.groups.core"

local has_integers = math.type ~= nil

-- RFC 3986's unreserved set, spelled out.
local UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

describe("escaping (issue 9, item 3)", function()
  it("keeps the unreserved set and writes every other byte as uppercase %XX", function()
    assert.are.equal(UNRESERVED, core.escape(UNRESERVED))
    assert.are.equal("%00%01%1F%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D%3E%3F%40",
      core.escape("\0\1\31 !\"#$%&'()*+,/:;<=>?@"))
    assert.are.equal("%5B%5C%5D%5E%60%7B%7C%7D%7F%80%C3%A9%FE%FF",
      core.escape("[\\]^`{|}\127\128\195\169\254\255"))
  end)

  it("escapes every byte value as the rule says", function()
    for byte = 0, 255 do
      local c = string.char(byte)
      local expected = UNRESERVED:find(c, 1, true) and c or string.format("%%%02X", byte)
      assert.are.equal(expected, core.escape(c), "byte " .. byte)
      assert.are.equal("http://h/v1/g/" .. expected, core.build_url("http://h/v1", "/g/{x}", nil, nil, c))
    end
  end)

  it("escapes a 9 MB value to 27 MB, beyond what curl_easy_escape would write", function()
    local value = string.rep("\195\169", 9 * 1024 * 1024 / 2) -- 9 MiB of "é"
    local escaped = string.rep("%C3%A9", 9 * 1024 * 1024 / 2)
    assert.are.equal(escaped, core.escape(value))
    assert.are.equal("http://h/v1/groups?q=" .. escaped,
      core.build_url("http://h/v1", "/groups", { "q" }, { q = value }))
  end)

  it("escapes query parameter names too", function()
    assert.are.equal("http://h/v1/g?a%20b=1&c%26d=x%3Dy&%C3%A9=%2B",
      core.build_url("http://h/v1", "/g", { "a b", "c&d", "é" },
        { ["a b"] = 1, ["c&d"] = "x=y", ["é"] = "+" }))
  end)
end)

describe("numbers as query and path values (issue 9, item 3)", function()
  local function query(value)
    return (core.build_url("http://h/v1", "/g", { "n" }, { n = value }))
  end

  it("writes integral floats below 2^53 without a fraction, and -0.0 as 0", function()
    assert.are.equal("http://h/v1/g?n=100", query(100.0))
    assert.are.equal("http://h/v1/g?n=-7", query(-7.0))
    assert.are.equal("http://h/v1/g?n=0", query(-0.0))
    assert.are.equal("http://h/v1/g?n=9007199254740991", query(2 ^ 53 - 1))
    assert.are.equal("http://h/v1/g/4503599627370496",
      core.build_url("http://h/v1", "/g/{x}", nil, nil, 2 ^ 52))
  end)

  it("refuses floats of 2^53 and more, which may not be the integer meant", function()
    local ok, err = pcall(query, 2 ^ 53)
    assert.is_false(ok)
    assert.matches("query parameter n is a float of 2^53 or more", err, 1, true)
    assert.is_false((pcall(query, -2 ^ 60)))
    assert.is_false((pcall(query, math.huge)))
    assert.is_false((pcall(query, 0 / 0)))
  end)

  if has_integers then
    it("writes every integer exactly on 5.3+, 2^53 and beyond included", function()
      local int = math.tointeger
      assert.are.equal("http://h/v1/g?n=9223372036854775807", query(math.maxinteger))
      assert.are.equal("http://h/v1/g?n=-9223372036854775808", query(math.mininteger))
      assert.are.equal("http://h/v1/g?n=9007199254740992", query(int(2 ^ 53)))
      assert.are.equal("http://h/v1/g?n=9007199254740993", query(int(2 ^ 53) + 1))
      assert.are.equal("http://h/v1/g/1698796800000123",
        core.build_url("http://h/v1", "/g/{x}", nil, nil, int(1698796800000123)))
    end)
  end
end)
