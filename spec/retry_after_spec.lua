-- How long a 429 or 503 asks to wait (issue 9, item 5): Retry-After is delay-seconds
-- (RFC 9110 10.2.3: 1*DIGIT) or an HTTP-date (5.6.7); Soracom's
-- X-Soracom-Ratelimit-Seconds-Before-Refresh is whole seconds. Anything else says
-- nothing, and no wait is longer than a day.
local core = require "soracom.groups.core"

local DAY = 86400

local function retry_after(header, refresh, status)
  local value, err = core.decode_response(status or 429, '{"code":"SEM0049","message":"slow down"}',
    nil, nil, header, refresh)
  assert.is_nil(value)
  return err.retry_after
end

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

describe("Retry-After", function()
  it("reads delay-seconds: digits, with optional whitespace around", function()
    assert.are.equal(0, retry_after("0"))
    assert.are.equal(12, retry_after("12"))
    assert.are.equal(12, retry_after(" 12\t"))
    assert.are.equal(120, retry_after("0120"))
    assert.are.equal(7, retry_after("7", nil, 503))
  end)

  it("refuses what is not 1*DIGIT and not a date", function()
    for _, text in ipairs({ "inf", "INF", "nan", "infinity", "0x10", "1e9", "-1", "+5", "1.5", " 12 abc",
      "12abc", "", "   ", "1 2", "Thursday soon" }) do
      assert.is_nil(retry_after(text), text)
    end
  end)

  it("caps a long wait at one day, digits of any length included", function()
    assert.are.equal(DAY, retry_after("86400"))
    assert.are.equal(DAY, retry_after("86401"))
    assert.are.equal(DAY, retry_after("1000000000"))
    assert.are.equal(DAY, retry_after(string.rep("9", 400)))
  end)

  it("reads an HTTP-date in each of its three forms", function()
    local now = os.time()
    local wait = retry_after(http_date(now + 120))
    assert.is_true(wait >= 115 and wait <= 121, tostring(wait))
    -- a date in the past asks for no wait
    assert.are.equal(0, retry_after("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.are.equal(0, retry_after("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.are.equal(0, retry_after("Sun Nov  6 08:49:37 1994"))
    -- far in the future: a day at most
    assert.are.equal(DAY, retry_after(http_date(now + 10 * DAY)))
  end)

  it("never gives inf or NaN", function()
    for _, text in ipairs({ "inf", "1e999", "nan", string.rep("9", 500), "Fri, 31 Dec 9999 23:59:59 GMT" }) do
      local wait = retry_after(text)
      assert.is_true(wait == nil or (wait == wait and wait <= DAY), text)
    end
  end)

  it("is only read for 429 and 503", function()
    assert.is_nil(retry_after("5", nil, 500))
  end)
end)

describe("X-Soracom-Ratelimit-Seconds-Before-Refresh", function()
  it("is the wait when Retry-After says nothing usable", function()
    assert.are.equal(30, retry_after(nil, "30"))
    assert.are.equal(30, retry_after("inf", "30"))
    assert.are.equal(5, retry_after("5", "30"))
    assert.are.equal(30, retry_after(nil, " 30 "))
  end)

  it("is whole seconds, capped at a day", function()
    for _, text in ipairs({ "inf", "0x10", "1e9", "-1", "1.5", " 12 abc", "" }) do
      assert.is_nil(retry_after(nil, text), text)
    end
    assert.are.equal(DAY, retry_after(nil, "9999999"))
  end)
end)
