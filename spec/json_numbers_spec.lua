-- JSON numbers keep their value, their subtype (integer or float, Lua 5.3+) and the
-- sign of zero through decode -> encode -> decode, in every locale and at any length
-- (issue 24, items 4 to 7); the encoder's error messages stay small (item 2).
local core = require "soracom.groups.core"

local has_integers = math.type ~= nil
local negative_zero = -1 / math.huge -- computed: Lua 5.1 merges a -0.0 constant with 0
local load_string = rawget(_G, "loadstring") or load

local function subtype(x)
  return has_integers and math.type(x) or "number"
end

-- The same number: value, subtype and the sign of a zero.
local function same_number(a, b)
  return type(a) == "number" and type(b) == "number" and a == b and
    subtype(a) == subtype(b) and 1 / a == 1 / b
end

local function describe_number(x)
  if type(x) ~= "number" then return tostring(x) end
  return string.format("%.17g (%s%s)", x, subtype(x), x == 0 and 1 / x < 0 and ", negative" or "")
end

local function assert_same(expected, got, context)
  assert(same_number(expected, got), string.format("%s: expected %s, got %s", context,
    describe_number(expected), describe_number(got)))
end

-- Well-formed UTF-8 (RFC 3629), checked here with Lua patterns of its own.
local function is_utf8(s)
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 1 or c >= 0xC2 and c <= 0xDF and 2 or c >= 0xE0 and c <= 0xEF and 3 or
      c >= 0xF0 and c <= 0xF4 and 4 or nil
    if not n then return false end
    for k = i + 1, i + n - 1 do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    i = i + n
  end
  return true
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs a shell command; returns its output (stderr too) and whether it exited 0.
local function run(command)
  local pipe = assert(io.popen(command .. " 2>&1; echo \"exit=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local text, status = out:match("^(.-)exit=(%d+)%s*$")
  return text or out, status == "0"
end

-- The interpreter running this spec, for a child process.
local interpreter = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

describe("-0 (item 4)", function()
  it("decodes to a negative zero, a float, as cjson and Lua 5.1 read it", function()
    for _, text in ipairs({ "-0", "-0.0", "-0e0", "-0E+5" }) do
      assert_same(negative_zero, core.decode_json(text), text)
      assert_same(negative_zero, core.decode_json("[" .. text .. "]")[1], "[" .. text .. "]")
      assert_same(negative_zero, core.decode_json('{"a":' .. text .. "}", { strict = true }).a, text)
    end
    assert_same(0, core.decode_json("0"), "0") -- an integer on 5.3+, positive
    assert_same(0.0, core.decode_json("0.0"), "0.0")
  end)

  it("is written as -0.0 and read back the same", function()
    assert.are.equal(has_integers and "[-0.0,0.0]" or "[-0.0,0]", core.encode_json({ negative_zero, 0.0 }))
    local again = core.decode_json(core.encode_json({ core.decode_json("-0") }))
    assert_same(negative_zero, again[1], "-0 after a round trip")
  end)
end)

describe("floats keep a fraction or an exponent, integers stay integers (item 5)", function()
  if has_integers then
    it("writes whole floats with .0 or an exponent, integers without (5.3+)", function()
      assert.are.equal("[1.0,-1.0,100.0,1000000000000000.0,10000000000000000.0,1e+100]",
        core.encode_json({ 1.0, -1.0, 100.0, 1e15, 1e16, 1e100 }))
      assert.are.equal("[9007199254740992.0,9.223372036854776e+18,1e+17]",
        core.encode_json({ 2.0 ^ 53, 2.0 ^ 63, 1e17 }))
      assert.are.equal("[1,-1,0,9223372036854775807,-9223372036854775808]",
        core.encode_json({ 1, -1, 0, math.maxinteger, math.mininteger }))
    end)
  else
    it("writes whole numbers up to 2^53 as integers, the others as floats (5.1, LuaJIT)", function()
      assert.are.equal("[1,-1,100,1000000000000000,9007199254740992,-9007199254740992,0]",
        core.encode_json({ 1, -1, 100, 1e15, 2 ^ 53, -2 ^ 53, 0 }))
      assert.are.equal("[9007199254740994.0,1e+100,-0.0]",
        core.encode_json({ 2 ^ 53 + 2, 1e100, negative_zero }))
    end)
  end

  it("gives back a float read from a group as a float, and an integer as an integer", function()
    local text = '{"ratio":1.0,"big":1e2,"neg":-0.0,"count":1,"half":2.5,"tiny":5e-324}'
    local first = assert(core.decode_json(text))
    local second = assert(core.decode_json(core.encode_json(first)))
    for key, value in pairs(first) do
      assert_same(value, second[key], key)
    end
    assert.are.equal(has_integers and "float" or "number", subtype(second.ratio))
    assert.are.equal(has_integers and "integer" or "number", subtype(second.count))
  end)

  it("writes the shortest decimal that reads back", function()
    local cases = {
      { 0.1, "0.1" }, { 1 / 3, "0.3333333333333333" }, { 0.1 + 0.2, "0.30000000000000004" },
      { 123456.789, "123456.789" }, { 1e-5, "1e-05" }, { 0.0001, "0.0001" },
      { 1.7976931348623157e308, "1.7976931348623157e+308" }, { 5e-324, "5e-324" },
      { 2.2250738585072014e-308, "2.2250738585072014e-308" }, { -1.5e-300, "-1.5e-300" },
      { 1.2345678901234567, "1.2345678901234567" }, { 3.141592653589793, "3.141592653589793" },
    }
    for _, case in ipairs(cases) do
      assert.are.equal("[" .. case[2] .. "]", core.encode_json({ case[1] }))
    end
  end)

  -- Random doubles over the whole range: each is written with no more digits than
  -- the fewest %.<n>g needs to read back with Lua's tonumber, and reads back as itself.
  it("writes every double so that it reads back identical, in as few digits as it takes", function()
    math.randomseed(24)
    local checked = 0
    for _ = 1, 20000 do
      local d = (math.random() + math.random(0, 2 ^ 20)) * 2.0 ^ math.random(-1074, 1003)
      if math.random(2) == 1 then d = -d end
      if d ~= 0 and d > -math.huge and d < math.huge then
        local text = core.encode_json({ d }):sub(2, -2)
        assert_same(d, core.decode_json(text), text)
        local fewest = 1
        while tonumber(string.format("%." .. fewest .. "g", d)) ~= d do fewest = fewest + 1 end
        local significant = text:gsub("[eE].*", ""):gsub("[-.]", ""):gsub("^0+", ""):gsub("0+$", "")
        assert(#significant <= fewest, text .. " could be " .. string.format("%." .. fewest .. "g", d))
        checked = checked + 1
      end
    end
    assert(checked > 19000)
  end)
end)

describe("numbers of any length (item 7)", function()
  it("reads a megabyte of digits exactly", function()
    local zeros = string.rep("0", 2 ^ 20)
    assert_same(1.0, core.decode_json("1" .. zeros .. "e-1048576"), "1 and 2^20 zeros, e-2^20")
    assert_same(1.5, core.decode_json("0." .. zeros .. "15e1048577"), "0.<2^20 zeros>15e(2^20+1)")
    assert_same(0.5, core.decode_json("0.5" .. zeros), "0.5 and 2^20 zeros")
    assert_same(negative_zero, core.decode_json("-0." .. zeros .. "1e-400"), "underflow keeps the sign")
    assert.are.equal("line 1, column 2: number out of range", select(2, core.decode_json("[1" .. zeros .. "]")))
    -- exponents of any length
    assert_same(0.0, core.decode_json("1.5e-" .. string.rep("9", 40)), "1.5e-999...")
    assert_same(1.5, core.decode_json("0." .. zeros .. "15e+" .. string.rep("0", 40) .. "1048577"),
      "an exponent with 40 leading zeros")
    assert.are.equal("line 1, column 2: number out of range",
      select(2, core.decode_json("[1e" .. string.rep("9", 40) .. "]")))
  end)

  it("rounds a halfway number by the digits far past where a double stops", function()
    -- 2^53 + 1 is halfway between the doubles 2^53 and 2^53 + 2: ties go to the even
    -- one, any non-zero digit after it goes up
    local halfway = "9007199254740993." .. string.rep("0", 5000)
    assert_same(2.0 ^ 53, core.decode_json(halfway), "exactly halfway")
    assert_same(2.0 ^ 53 + 2, core.decode_json(halfway .. "1"), "a hair above halfway")
    assert_same(-(2.0 ^ 53 + 2), core.decode_json("-" .. halfway .. "1"), "negative")
  end)
end)

-- The checks a locale must not change, run in this process (the C locale) and in a
-- child under another locale: each returns what it encoded, which must not differ.
-- Its literals are read by Lua's own lexer when the chunk is compiled, before the
-- locale changes.
local locale_checks = [[
  local core = require "soracom.groups.core"
  local has_integers = math.type ~= nil
  local negative_zero = -1 / math.huge
  local function same(a, b)
    return a == b and (not has_integers or math.type(a) == math.type(b)) and 1 / a == 1 / b
  end
  local cases = { -- a JSON text and its value as Lua reads it
    { "0.1", 0.1 }, { "1.5", 1.5 }, { "-0.25e1", -2.5 }, { "-2.5e-7", -2.5e-7 },
    { "1.7976931348623157e308", 1.7976931348623157e308 }, { "2.5e-308", 2.5e-308 },
    { "4.9406564584124654e-324", 4.9406564584124654e-324 }, { "123.456", 123.456 },
    { "1.23456789012345678901234567890", 1.2345678901234568 }, { "1e23", 1e23 },
    { "0.5" .. string.rep("0", 300), 0.5 }, { "1.0", 1.0 }, { "1", 1 }, { "-0", negative_zero },
  }
  local values = {}
  for i, case in ipairs(cases) do
    local got = core.decode_json(case[1])
    assert(got ~= nil and same(got, case[2]), "decoding " .. case[1])
    values[i] = got
  end
  assert(core.encode_json({ 1.5, 0.1, 1.2345678901234567 }) == "[1.5,0.1,1.2345678901234567]",
    "encoding decimals")
  local encoded = core.encode_json(values)
  local again = core.decode_json(encoded)
  for i, value in ipairs(values) do
    assert(same(again[i], value), "a round trip of " .. cases[i][1])
  end
  return encoded
]]

describe("numbers read and written the same in every locale (item 6)", function()

  local dir
  setup(function()
    dir = (run('mktemp -d "${TMPDIR:-/tmp}/soracom-locale.XXXXXX"')):match("^%s*(.-)%s*$")
  end)
  teardown(function()
    if dir and dir:match("soracom%-locale") then run("rm -rf " .. quote(dir)) end
  end)

  -- Runs the checks in a child under the locale: installed, or else built with
  -- glibc's localedef from its sources (no network) into a folder put on LOCPATH.
  local function check_in(locale, source)
    local previous = os.setlocale(nil, "numeric")
    local installed = os.setlocale(locale, "numeric")
    os.setlocale(previous, "numeric")
    local environment = ""
    if not installed then
      local out, built = run("localedef -i " .. source .. " -f UTF-8 " .. quote(dir .. "/" .. locale))
      assert(built, locale .. " is not installed and localedef could not build it: " .. out)
      environment = "LOCPATH=" .. quote(dir) .. " "
    end
    local script = dir .. "/checks.lua"
    local file = assert(io.open(script, "w"))
    file:write("package.cpath = ", string.format("%q", package.cpath), "\n",
      "local checks = assert((rawget(_G, \"loadstring\") or load)(",
      string.format("%q", locale_checks), "))\n",
      "assert(os.setlocale(", string.format("%q", locale), ', "numeric"), "locale not found")\n',
      -- PUC Lua's string.format follows the locale, which shows it is in effect
      -- (LuaJIT formats numbers its own way)
      'assert(rawget(_G, "jit") or string.format("%.1f", 0.5) ~= "0.5", "the locale has a dot")\n',
      'io.write("encoded: ", checks(), "\\n")\n')
    file:close()
    local out, ok = run(environment .. interpreter .. " " .. quote(script))
    assert(ok, locale .. ": " .. out)
    return out:match("encoded: (.-)\n")
  end

  it("under ps_AF, whose decimal point is two bytes (U+066B)", function()
    local expected = assert(load_string(locale_checks))()
    assert.are.equal(expected, check_in("ps_AF.UTF-8", "ps_AF"))
  end)

  it("under de_DE, whose decimal point is a comma", function()
    local expected = assert(load_string(locale_checks))()
    assert.are.equal(expected, check_in("de_DE.UTF-8", "de_DE"))
  end)
end)

describe("encoding errors stay small whatever the keys (item 2)", function()
  local function encode_error(value, root)
    local ok, err = pcall(core.encode_json, value, root)
    assert.is_false(ok)
    return err
  end

  it("cuts a long key between characters, with an ellipsis", function()
    local key = "a" .. string.rep("\195\169", 5000) -- 'a' then 5000 x 'é'
    local err = encode_error({ [key] = { f = print } })
    assert.is_true(is_utf8(err))
    assert.is_true(#err < 2048, "a message of " .. #err .. " bytes")
    assert.are.equal(1, select(2, err:gsub("\226\128\166", "")), err) -- one ellipsis
    assert.matches("^body%.a" .. string.rep("\195\169", 50), err)
    assert.matches("\226\128\166%.f: a function cannot be sent as JSON$", err)
  end)

  it("cuts a long name that is not UTF-8 where it is: the message starts with it", function()
    local root = string.rep("\189", 300) -- continuation bytes only
    local err = encode_error({ f = print }, root)
    assert.are.equal(string.rep("\189", 200) .. "\226\128\166.f: a function cannot be sent as JSON", err)
  end)

  it("keeps the start and the end of a long path", function()
    local t = {}
    local node = t
    for i = 1, 600 do
      node["level" .. i] = {}
      node = node["level" .. i]
    end
    node.f = print
    local err = encode_error(t, "config")
    assert.is_true(#err < 2048, "a message of " .. #err .. " bytes")
    assert.matches("^config%.level1%.level2%.level3%.", err)
    assert.matches("%.level599%.level600%.f: a function cannot be sent as JSON$", err)
    assert.matches("\226\128\166", err)
  end)

  it("says a self-cycle through a long key in a short message", function()
    local t = {}
    t[string.rep("k", 2 ^ 18)] = t
    local err = encode_error(t)
    assert.is_true(#err < 2048, "a message of " .. #err .. " bytes")
    assert.matches("nested too deeply %(is there a cycle%?%)$", err)
  end)

  -- Lua 5.1's string buffers keep up to ten pieces on the Lua stack: a message
  -- gathered at the bottom of a deep body, with a long root name and long keys,
  -- wrote past the stack (realloc(): invalid next size). In a fresh interpreter, whose
  -- stack is the same on every run, the value that cannot be sent is put at every
  -- depth in turn, under a few more call frames each time, so that one of them meets
  -- a full stack.
  it("raises from any depth with a long root name and long keys", function()
    local script = os.tmpname()
    local file = assert(io.open(script, "w"))
    file:write("package.cpath = ", string.format("%q", package.cpath), "\n", [[
      local core = require "soracom.groups.core"
      local root, key = string.rep("r", 81000), string.rep("k", 9000)
      local function padded(frames, ...)
        if frames == 0 then return pcall(core.encode_json, ...) end
        local ok, err = padded(frames - 1, ...) -- not a tail call: one more frame
        return ok, err
      end
      local wrong = {}
      for frames = 0, 3 do
        for depth = 0, 120 do
          local t = {}
          local node = t
          for i = 1, depth do
            node[i .. key] = {}
            node = node[i .. key]
          end
          node.f = print
          local ok, err = padded(frames, t, root)
          if ok or #err >= 2048 or not err:find("%.f: a function cannot be sent as JSON$") then
            wrong[#wrong + 1] = depth .. ": " .. #tostring(err) .. " bytes"
          end
        end
      end
      assert(#wrong == 0, #wrong .. " wrong messages, the first at depth " .. tostring(wrong[1]))
      print("all raised")
    ]])
    file:close()
    local out, ok = run(interpreter .. " " .. quote(script))
    os.remove(script)
    assert(ok, out)
    assert.matches("all raised", out)
  end)
end)
