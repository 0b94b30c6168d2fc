-- The JSON decoder and encoder agree (issue 9, items 3, 6 and 8): whatever the decoder
-- accepts, the encoder writes back as the same JSON value, and what it refuses it says
-- why, at which line and column.
local core = require "soracom.groups.core"

local has_integers = math.type ~= nil

local function decode_error(text)
  local value, err = core.decode_json(text)
  assert.is_nil(value, text)
  return err
end

-- Well-formed UTF-8 by RFC 3629's table (section 4), written out here independently
-- of the C validator.
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local length
    local low, high = 0x80, 0xBF
    if c < 0x80 then
      length = 1
    elseif c >= 0xC2 and c <= 0xDF then
      length = 2
    elseif c >= 0xE0 and c <= 0xEF then
      length = 3
      if c == 0xE0 then low = 0xA0 elseif c == 0xED then high = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      length = 4
      if c == 0xF0 then low = 0x90 elseif c == 0xF4 then high = 0x8F end
    else
      return false
    end
    if length > 1 then
      local b = s:byte(i + 1)
      if not b or b < low or b > high then return false end
      for k = i + 2, i + length - 1 do
        local x = s:byte(k)
        if not x or x < 0x80 or x > 0xBF then return false end
      end
    end
    i = i + length
  end
  return true
end

-- Equal as JSON values: same types, numbers by value, by subtype (integer or float,
-- 5.3+) and by the sign of a zero, tables member by member, and the same metatable
-- (the array mark).
local function same_value(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    return a == b and (not has_integers or math.type(a) == math.type(b)) and 1 / a == 1 / b
  end
  if type(a) ~= "table" then return a == b end
  if getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do
    if not same_value(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

describe("JSON strings hold well-formed UTF-8 only (item 3a)", function()
  it("refuses raw invalid UTF-8 on decode, naming the column of the byte", function()
    local cases = {
      { '"a\255b"', 3 },                 -- a byte that is never UTF-8
      { '"\128"', 2 },                   -- a stray continuation byte
      { '"\192\175"', 2 },               -- overlong '/' (two bytes)
      { '"\224\128\175"', 2 },           -- overlong '/' (three bytes)
      { '"\240\130\130\172"', 2 },       -- overlong U+20AC (four bytes)
      { '"\237\160\128"', 2 },           -- CESU-8: the surrogate U+D800
      { '"\237\191\191"', 2 },           -- the surrogate U+DFFF
      { '"\244\144\128\128"', 2 },       -- U+110000, above U+10FFFF
      { '"\245\128\128\128"', 2 },       -- a lead byte past F4
      { '"x\226\130"', 3 },              -- a sequence cut by the closing quote
      { '"\\n\255"', 4 },                -- after an escape (the slow path)
      { '{"k\255":1}', 4 },              -- in a key
      { '["ok","\237\160\128\237\176\128"]', 8 }, -- a CESU-8 surrogate pair
    }
    for _, case in ipairs(cases) do
      assert.are.equal("line 1, column " .. case[2] .. ": invalid UTF-8 in a string", decode_error(case[1]))
    end
  end)

  it("accepts every well-formed sequence, up to U+10FFFF", function()
    local text = '["\194\128","\223\191","\224\160\128","\237\159\191","\238\128\128",' ..
      '"\239\191\191","\240\144\128\128","\244\143\191\191","caf\195\169 \228\184\173"]'
    local v = assert(core.decode_json(text))
    assert.are.equal(9, #v)
    assert.are.equal("\244\143\191\191", v[8])
    assert.are.equal(text, core.encode_json(v))
  end)

  it("finds every byte that ends a plain run, wherever it sits in a string", function()
    for before = 0, 17 do
      local a, b = string.rep("a", before), string.rep("b", 9)
      assert.are.equal(a .. "\n" .. b, core.decode_json('"' .. a .. '\\n' .. b .. '"'))
      assert.are.equal(a .. "\195\169" .. b, core.decode_json('"' .. a .. "\195\169" .. b .. '"'))
      assert.are.equal(a, core.decode_json('"' .. a .. '"'))
      assert.are.equal("line 1, column " .. (before + 2) .. ": control character in string",
        decode_error('"' .. a .. "\31" .. b .. '"'))
      assert.are.equal("line 1, column " .. (before + 2) .. ": invalid UTF-8 in a string",
        decode_error('"' .. a .. "\255" .. b .. '"'))
      -- where the string that is never closed opens
      assert.are.equal("line 1, column 1: unterminated string", decode_error('"' .. a))
    end
  end)

  it("refuses the same strings on encode", function()
    for _, s in ipairs({ "\255", "\237\160\128", "\244\144\128\128", "\192\175", "ab\226\130" }) do
      assert.has_error(function() core.encode_json({ s }) end, "body[1]: a string is not valid UTF-8")
    end
  end)
end)

describe("JSON numbers are finite (item 3b)", function()
  it("refuses numbers beyond a double's range instead of decoding them to inf", function()
    assert.are.equal("line 1, column 1: number out of range", decode_error("1e400"))
    assert.are.equal("line 1, column 2: number out of range", decode_error("[-1e400]"))
    assert.are.equal("line 1, column 6: number out of range", decode_error('{"a":1.5E+309}'))
    assert.are.equal("line 1, column 1: number out of range", decode_error("1" .. string.rep("0", 400)))
    assert.are.equal("line 1, column 1: number out of range", decode_error("-1" .. string.rep("0", 400) .. ".5"))
  end)

  it("takes the largest finite double and underflow to zero", function()
    assert.are.equal(1.7976931348623157e308, core.decode_json("1.7976931348623157e308"))
    assert.are.equal(0, core.decode_json("1e-400"))
    assert.are.equal(0, core.decode_json("-1e-400"))
    assert.are.equal(5e-324, core.decode_json("4.9406564584124654e-324"))
  end)

  it("reads decimals exactly, short and long", function()
    assert.are.equal(0.1, core.decode_json("0.1"))
    assert.are.equal(-2.5e-7, core.decode_json("-2.5e-7"))
    assert.are.equal(123.456, core.decode_json("123.456"))
    assert.are.equal(1e22, core.decode_json("1e22"))
    assert.are.equal(1e23, core.decode_json("1e23"))
    assert.are.equal(0.30000000000000004, core.decode_json("0.30000000000000004"))
    assert.are.equal(1.2345678901234568, core.decode_json("1.23456789012345678901234567890"))
    assert.are.equal(9007199254740993, core.decode_json("9007199254740993")) -- 2^53 + 1
    if has_integers then
      assert.are.equal("integer", math.type(core.decode_json("9223372036854775807")))
      assert.are.equal(math.mininteger, core.decode_json("-9223372036854775808"))
      assert.are.equal("float", math.type(core.decode_json("9223372036854775808")))
    end
  end)
  -- (the same in every locale: spec/json_numbers_spec.lua)
end)

describe("one depth limit for decoding and encoding (item 3c)", function()
  it("encodes the deepest document the decoder accepts", function()
    local depth = 1000
    local text = string.rep("[", depth) .. string.rep("]", depth)
    local v = assert(core.decode_json(text))
    assert.are.equal(text, core.encode_json(v))
    local objects = string.rep('{"a":', depth - 1) .. "{}" .. string.rep("}", depth - 1)
    assert.are.equal(objects, core.encode_json(assert(core.decode_json(objects))))
  end)

  it("refuses one level more on both sides", function()
    local depth = 1001
    assert.are.equal("line 1, column 1001: nesting too deep",
      decode_error(string.rep("[", depth) .. string.rep("]", depth)))
    local t = {}
    for _ = 2, depth do t = { t } end
    assert.has_error(function() core.encode_json(t) end)
    local ok, err = pcall(core.encode_json, t)
    assert.is_false(ok)
    assert.matches("nested too deeply", err)
  end)
end)

describe("every decoded array carries the array mark (item 3d)", function()
  it("marks non-empty arrays, nested ones too, and not objects", function()
    local v = core.decode_json('{"tags":["a"],"m":[[1],{"x":[]}],"o":{}}')
    assert.are.equal(core.array_mt, getmetatable(v.tags))
    assert.are.equal(core.array_mt, getmetatable(v.m))
    assert.are.equal(core.array_mt, getmetatable(v.m[1]))
    assert.are.equal(core.array_mt, getmetatable(v.m[2].x))
    assert.is_nil(getmetatable(v))
    assert.is_nil(getmetatable(v.o))
    assert.is_nil(getmetatable(v.m[2]))
  end)

  it("sends an array emptied after decoding back as []", function()
    local v = core.decode_json('{"tags":["a"]}')
    table.remove(v.tags)
    assert.are.equal('{"tags":[]}', core.encode_json(v))
    local top = core.decode_json('[1,2]')
    top[1], top[2] = nil, nil
    assert.are.equal("[]", core.encode_json(top))
  end)
end)

describe("lua-cjson's array marks, when cjson is loaded (item 3e)", function()
  local saved
  before_each(function() saved = package.loaded.cjson end)
  after_each(function() package.loaded.cjson = saved end)

  it("writes a table with cjson.array_mt or cjson.empty_array_mt as an array, even empty", function()
    local array_mt, empty_array_mt = {}, {}
    package.loaded.cjson = { array_mt = array_mt, empty_array_mt = empty_array_mt }
    assert.are.equal('{"a":[]}', core.encode_json({ a = setmetatable({}, array_mt) }))
    assert.are.equal("[]", core.encode_json(setmetatable({}, empty_array_mt)))
    assert.are.equal('["x",2]', core.encode_json(setmetatable({ "x", 2 }, array_mt)))
    -- without cjson loaded, the same metatable means nothing
    package.loaded.cjson = nil
    assert.are.equal('{"a":{}}', core.encode_json({ a = setmetatable({}, array_mt) }))
  end)

  it("reads cjson's fields raw: no metamethod of the module table runs", function()
    local ran = false
    package.loaded.cjson = setmetatable({}, { __index = function() ran = true end })
    assert.are.equal('{"a":{}}', core.encode_json({ a = {} }))
    assert.is_false(ran)
  end)

  it("leaves cjson.null as null when a cjson has no empty_array", function()
    package.loaded.cjson = { null = core.null, empty_array = core.null }
    assert.are.equal("[null]", core.encode_json({ core.null }))
  end)

  -- OpenResty's cjson.empty_array is a light userdata that is not NULL. Plain Lua can
  -- only reach one from Lua 5.2 on: the handle package.loadlib keeps in _CLIBS.
  local clibs = debug.getregistry()._CLIBS
  local handle
  for _, v in pairs(type(clibs) == "table" and clibs or {}) do
    if type(v) == "userdata" and getmetatable(v) == nil then handle = v break end
  end
  if handle ~= nil then
    it("writes cjson.empty_array as []", function()
      package.loaded.cjson = { empty_array = handle }
      assert.are.equal('{"list":[]}', core.encode_json({ list = handle }))
      assert.are.equal("[[],null]", core.encode_json({ handle, core.null }))
      -- a level like any array: 999 tables around it make 1000 levels, the most
      local t = handle
      for _ = 1, 999 do t = { t } end
      assert.are.equal(string.rep("[", 1000) .. string.rep("]", 1000), core.encode_json(t))
      local ok, err = pcall(core.encode_json, { t })
      assert.is_false(ok)
      assert.matches("nested too deeply", err)
      package.loaded.cjson = nil
      assert.has_error(function() core.encode_json({ handle }) end,
        "body[1]: a userdata cannot be sent as JSON")
    end)
  end
end)

describe("error messages cut from a body stay UTF-8 (item 3f)", function()
  it("does not split a character at the cut", function()
    local body = "a" .. string.rep("\195\169", 400) -- 'a' then 400 x 'é'
    local _, err = core.decode_response(502, body)
    assert.is_true(is_utf8(err.message))
    assert.are.equal("...", err.message:sub(-3))
    assert.matches("^a\195\169", err.message)
  end)

  it("shows bytes that are not UTF-8 as U+FFFD", function()
    local _, err = core.decode_response(502, "\255\254bad \237\160\128 gateway")
    assert.are.equal("\239\191\189\239\191\189bad \239\191\189\239\191\189\239\191\189 gateway",
      err.message)
    assert.is_true(is_utf8(err.message))
  end)

  it("gives a valid message for any cut of a long multi-byte body", function()
    for pad = 0, 3 do
      local body = string.rep("x", pad) .. string.rep("\240\159\152\128", 200)
      local _, err = core.decode_response(503, body)
      assert.is_true(is_utf8(err.message), "pad " .. pad)
    end
  end)
end)

describe("decode -> encode -> decode gives the same value (item 3)", function()
  local tricky = {
    '{"tags":["a",{"b":[]}],"n":1698796800000,"e":[],"o":{}}',
    '[1E5,-0,0.000001,1e-400,-1.5e300,1e22,1e23,5e-324]',
    '"\\ud83d\\ude00 \\u00e9\\u0000\\u001f\\u007f\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '{"":"","\\u0000":null}',
    '[9223372036854775807,-9223372036854775808,9223372036854775808,123456789012345678901234567890]',
    '[true,false,null,[null],[[[]]],{"a":{"b":{"c":[{}]}}}]',
    '"caf\195\169 \228\184\173\230\150\135 \240\159\152\128 \244\143\191\191"',
    '  {"sp" : [ 1 , 2 ] }  ',
    '0.1',
    '-0.0',
    string.rep("[", 1000) .. "0" .. string.rep("]", 1000),
  }

  it("for every tricky document", function()
    for _, text in ipairs(tricky) do
      local v1 = core.decode_json(text)
      assert.is_not_nil(v1, text)
      local encoded = core.encode_json(v1)
      local v2 = core.decode_json(encoded)
      assert.is_true(same_value(v1, v2), text)
      -- the same text up to the order of object members, which follows the table's
      local again = core.encode_json(v2)
      assert.are.equal(#encoded, #again, text)
      assert.is_true(same_value(v2, core.decode_json(again)), text)
    end
  end)

  it("gives back a canonical text unchanged", function()
    local canonical = {
      '["a",1,-5,0,1.5,0.1,-0.0,1e+300,null,true,false]',
      '{"tags":[]}',
      '[[],{},[[]],{"a":[{}]}]',
      '"\\u0000\\u001f\\u007f\\"\\\\/\\n\\r\\t caf\195\169"',
      '[1698796800000,-9007199254740992]',
    }
    for _, text in ipairs(canonical) do
      assert.are.equal(text, core.encode_json(assert(core.decode_json(text))))
    end
  end)
end)

describe("decode error messages say what is wrong (item 8)", function()
  it("names a trailing comma", function()
    assert.are.equal("line 1, column 6: trailing comma in array", decode_error("[1,2,]"))
    assert.are.equal("line 1, column 7: trailing comma in array", decode_error("[1,2, ]"))
    assert.are.equal("line 1, column 8: trailing comma in object", decode_error('{"a":1,}'))
    assert.are.equal("line 2, column 2: trailing comma in object", decode_error('{"a":1,\n }'))
  end)

  it("refuses a byte order mark, saying so", function()
    assert.are.equal("line 1, column 1: byte order mark before the JSON text", decode_error("\239\187\191{}"))
    assert.are.equal("line 1, column 1: byte order mark before the JSON text", decode_error("\239\187\191"))
  end)

  it("names an unexpected character", function()
    assert.are.equal("line 1, column 1: unexpected character 'x'", decode_error("x"))
    assert.are.equal("line 1, column 4: unexpected character 'x'", decode_error("[1,x]"))
    assert.are.equal("line 1, column 6: unexpected character ']'", decode_error('{"a":]}'))
    assert.are.equal("line 1, column 2: unexpected character '+'", decode_error("[+1]"))
    assert.are.equal("line 1, column 2: unexpected byte 0x01", decode_error("[\1]"))
    assert.are.equal("line 1, column 1: unexpected byte 0xFF", decode_error("\255"))
  end)

  it("says when there is no JSON text", function()
    assert.are.equal("line 1, column 1: no JSON text", decode_error(""))
    assert.are.equal("line 2, column 2: no JSON text", decode_error(" \r\n\t"))
  end)

  it("names the line and the column, counting characters, not bytes", function()
    local document = table.concat({
      "{",
      '  "groups": [',
      '    {"name": "caf\195\169 \228\184\173", "tags": {"a": "b"}}',
      '    {"name": "x"}',
      "  ]",
      "}",
    }, "\n")
    assert.are.equal("line 4, column 5: expected ',' or ']' in array", decode_error(document))
    -- the characters before the problem are counted, whatever their UTF-8 length
    -- (the x is the 10th character, its 13th byte)
    assert.are.equal("line 1, column 10: expected ',' or '}' in object",
      decode_error('{"\195\169\228\184\173": 1 x}'))
    -- a line ends at \n, \r\n or a lone \r; a tab is one column
    assert.are.equal("line 3, column 3: unexpected character 'x'", decode_error("[\r\n1,\r\t x]"))
    assert.are.equal("line 2, column 1: unexpected end of text", decode_error('{"a":\r\n'))
    -- a raw line break in a string: where it breaks
    assert.are.equal("line 1, column 11: unescaped line break in string",
      decode_error('{"a": "abc\n"}'))
    -- a string never closed: where it opens
    assert.are.equal("line 2, column 8: unterminated string", decode_error('{\n  "a": "abc}'))
    assert.are.equal("line 1, column 2: unterminated string", decode_error('["ab\\'))
  end)

  it("reports the same through decode_response", function()
    local value, err = core.decode_response(200, "[1,2,]")
    assert.is_nil(value)
    assert.are.equal("decode", err.kind)
    assert.are.equal("invalid JSON in the response: line 1, column 6: trailing comma in array", err.message)
  end)
end)

describe("strict decoding, for documents people write (issue 21)", function()
  local STRICT = { strict = true }

  local function strict_error(text)
    local value, err = core.decode_json(text, STRICT)
    assert.is_nil(value, text)
    return err
  end

  it("refuses a key repeated in one object, naming it and where it is repeated", function()
    assert.are.equal('line 1, column 8: duplicate key "a" in object', strict_error('{"a":1,"a":2}'))
    assert.are.equal('line 3, column 3: duplicate key "name" in object',
      strict_error('{\n  "name": "x",\n  "name": "y"\n}'))
    -- the same key however it is escaped; null is a value like any other
    assert.are.equal('line 1, column 14: duplicate key "name" in object',
      strict_error('{"name":null,"n\\u0061me":null}'))
    -- deep inside
    assert.are.equal('line 1, column 29: duplicate key "env" in object',
      strict_error('{"groups":[{"tags":{"env":1,"env":2}}]}'))
  end)

  it("shows the key as a JSON string, cut after 40 bytes between characters", function()
    assert.are.equal('line 1, column 20: duplicate key "a\\"\\\\\\u000a\\u0001" in object',
      strict_error('{"a\\"\\\\\\n\\u0001":1,"a\\"\\\\\\n\\u0001":2}'))
    local long = string.rep("\195\169", 30) -- 30 characters, 60 bytes
    assert.are.equal('line 1, column 37: duplicate key "' .. string.rep("\195\169", 20) .. '"... in object',
      strict_error('{"' .. long .. '":1,"' .. long .. '":2}'))
    local ascii = string.rep("k", 41)
    assert.are.equal('line 1, column 48: duplicate key "' .. string.rep("k", 40) .. '"... in object',
      strict_error('{"' .. ascii .. '":1,"' .. ascii .. '":2}'))
    assert.are.equal('line 1, column 47: duplicate key "' .. string.rep("k", 40) .. '" in object',
      strict_error('{"' .. string.rep("k", 40) .. '":1,"' .. string.rep("k", 40) .. '":2}'))
  end)

  it("takes the same key in different objects, and in arrays of objects", function()
    local v = assert(core.decode_json('[{"a":1},{"a":2,"b":{"a":3}}]', STRICT))
    assert.are.equal(3, v[2].b.a)
  end)

  it("checks every key of an object with 100000 of them", function()
    local parts = {}
    for i = 1, 100000 do parts[i] = ('"k%d":%d'):format(i, i) end
    local text = "{" .. table.concat(parts, ",") .. "}"
    local v = assert(core.decode_json(text, STRICT))
    assert.are.equal(100000, v.k100000)
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    assert.are.equal(100000, n)
    parts[#parts + 1] = '"k1":0'
    assert.are.equal(('line 1, column %d: duplicate key "k1" in object'):format(#text + 1),
      strict_error("{" .. table.concat(parts, ",") .. "}"))
  end)

  it("lets the last of a repeated key win when not strict, as before", function()
    assert.are.equal(2, core.decode_json('{"a":1,"a":2}').a)
    assert.are.equal(2, core.decode_json('{"a":1,"a":2}', { strict = false }).a)
    assert.are.equal(2, core.decode_json('{"a":1,"a":2}', {}).a)
  end)

  -- (Small tables are made from their items once all are read, large ones from their
  -- first 32 then one item at a time: the sizes around that boundary, at every depth.)
  it("keeps every item and the last of a repeated key, whatever the size and depth", function()
    for _, size in ipairs({ 0, 1, 2, 31, 32, 33, 64, 65, 200 }) do
      local keys, items = {}, {}
      for i = 1, size do
        keys[i] = ('"k%d":%d'):format(i, i)
        items[i] = tostring(i)
      end
      -- the first key again at the end, and the middle one again after it
      local mid = math.floor(size / 2) + 1
      local object = "{" .. table.concat(keys, ",")
      if size > 0 then
        object = object .. ',"k1":"last","k' .. mid .. '":"again"'
      end
      object = object .. "}"
      local array = "[" .. table.concat(items, ",") .. "]"
      for _, depth in ipairs({ 1, 15, 16, 17, 40 }) do
        local text = string.rep('{"o":[', depth - 1) .. '{"a":' .. array .. ',"b":' .. object .. "}"
          .. string.rep("]}", depth - 1)
        local v = assert(core.decode_json(text))
        for _ = 1, depth - 1 do
          assert.are.equal(core.array_mt, getmetatable(v.o))
          assert.is_nil(getmetatable(v))
          v = v.o[1]
        end
        assert.are.equal(core.array_mt, getmetatable(v.a))
        assert.are.equal(size, #v.a)
        for i = 1, size do assert.are.equal(i, v.a[i]) end
        local n = 0
        for _ in pairs(v.b) do n = n + 1 end
        assert.are.equal(size, n)
        for i = 2, size do
          if i ~= mid then assert.are.equal(i, v.b["k" .. i]) end
        end
        if size > 0 then
          assert.are.equal(mid == 1 and "again" or "last", v.b.k1)
          assert.are.equal("again", v.b["k" .. mid])
        end
      end
    end
  end)

  it("refuses an integer this Lua cannot hold exactly, where it starts", function()
    if has_integers then
      local too_large = "integer too large for a Lua integer (beyond -2^63 .. 2^63-1)"
      assert.are.equal(math.maxinteger, core.decode_json("9223372036854775807", STRICT))
      assert.are.equal(math.mininteger, core.decode_json("-9223372036854775808", STRICT))
      assert.are.equal("integer", math.type(core.decode_json("9007199254740993", STRICT)))
      assert.are.equal("line 1, column 1: " .. too_large, strict_error("9223372036854775808"))
      assert.are.equal("line 1, column 1: " .. too_large, strict_error("-9223372036854775809"))
      assert.are.equal("line 2, column 9: " .. too_large,
        strict_error('{"a":1,\n  "b": [12345678901234567890123]}'))
    else
      local too_large = "integer too large for a Lua number to hold exactly (beyond -2^53 .. 2^53)"
      assert.are.equal(2 ^ 53, core.decode_json("9007199254740992", STRICT))
      assert.are.equal(-2 ^ 53, core.decode_json("-9007199254740992", STRICT))
      assert.are.equal("line 1, column 1: " .. too_large, strict_error("9007199254740993"))
      assert.are.equal("line 1, column 1: " .. too_large, strict_error("-9007199254740993"))
      assert.are.equal("line 1, column 1: " .. too_large, strict_error("9223372036854775807"))
      assert.are.equal("line 2, column 9: " .. too_large,
        strict_error('{"a":1,\n  "b": [12345678901234567890123]}'))
    end
    -- 13-digit millisecond timestamps are exact everywhere
    assert.are.equal(1698796800000, core.decode_json("1698796800000", STRICT))
  end)

  it("keeps numbers with a fraction or an exponent floats, as when not strict", function()
    for _, text in ipairs({ "9223372036854775808.0", "1e30", "12345678901234567890123.5", "1.5" }) do
      assert.are.equal(core.decode_json(text), core.decode_json(text, STRICT), text)
      if has_integers then assert.are.equal("float", math.type(core.decode_json(text, STRICT)), text) end
    end
  end)

  it("rounds those integers to the nearest double when not strict, as tonumber does", function()
    assert.are.equal(tonumber("12345678901234567890123"), core.decode_json("12345678901234567890123"))
    if has_integers then
      assert.are.equal("float", math.type(core.decode_json("9223372036854775808")))
      assert.are.equal("integer", math.type(core.decode_json("9007199254740993")))
    else
      assert.are.equal(2 ^ 53, core.decode_json("9007199254740993"))
    end
  end)

  it("refuses everything else exactly as the lenient mode does", function()
    assert.are.equal("line 1, column 6: trailing comma in array", strict_error("[1,2,]"))
    assert.are.equal("line 1, column 1: unterminated string", strict_error('"abc'))
  end)
end)
