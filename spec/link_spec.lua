-- The next page key from a Link header (issue 9, item 6), read as RFC 8288 (3, 3.3)
-- defines it: parameters split at ';' outside quoted strings, only the first rel of a
-- link counts, and the URI's #fragment is not part of its query.
local core = require "soracom.groups.core"

local BASE = "https://api.soracom.io/v1/groups/g1/subscribers"

local function next_key(link)
  return core.parse_next_key(nil, link)
end

describe("Link header: quoted parameters", function()
  it("does not split a parameter at a ';' inside quotes", function()
    assert.is_nil(next_key("<" .. BASE .. '?last_evaluated_key=k>; title="a;rel=next"; rel="prev"'))
    assert.are.equal("k", next_key("<" .. BASE .. '?last_evaluated_key=k>; title="x;y"; rel=next'))
    assert.are.equal("k", next_key("<" .. BASE .. '?last_evaluated_key=k>; title="x;y;"; rel="next"'))
  end)

  it("keeps an escaped quote inside the quoted string", function()
    assert.is_nil(next_key("<" .. BASE .. '?last_evaluated_key=k>; title="say \\"hi\\"; rel=next"; rel=prev'))
    assert.are.equal("k", next_key("<" .. BASE .. '?last_evaluated_key=k>; title="\\"; rel=prev"; rel=next'))
  end)

  it("does not split links at a comma inside quotes", function()
    local link = "<" .. BASE .. '?last_evaluated_key=p>; title="a, <' .. BASE ..
      '?last_evaluated_key=bad>; rel=next"; rel="prev", <' .. BASE .. '?last_evaluated_key=n>; rel="next"'
    assert.are.equal("n", next_key(link))
  end)

  it("counts only the first rel of a link", function()
    assert.is_nil(next_key("<" .. BASE .. "?last_evaluated_key=k>; rel=prev; rel=next"))
    assert.are.equal("k", next_key("<" .. BASE .. "?last_evaluated_key=k>; rel=next; rel=prev"))
  end)

  it("reads the forms RFC 8288 shows", function()
    -- several relation types in one rel, and an extended title* before it
    assert.are.equal("k", next_key("<" .. BASE .. '?last_evaluated_key=k>; rel="start next"'))
    assert.are.equal("k", next_key("<" .. BASE .. "?last_evaluated_key=k>; " ..
      "title*=UTF-8'de'n%c3%a4chstes%20Kapitel; rel=\"next\""))
    assert.are.equal("k", next_key("<" .. BASE .. "?last_evaluated_key=k>;rel=next"))
    assert.are.equal("k", next_key("<" .. BASE .. "?last_evaluated_key=k> ; rel = next"))
    assert.is_nil(next_key("<" .. BASE .. "?last_evaluated_key=k>; rel=nextish"))
    assert.is_nil(next_key("<" .. BASE .. "?last_evaluated_key=k>; xrel=next"))
    assert.is_nil(next_key("<" .. BASE .. "?last_evaluated_key=k>; rel"))
  end)
end)

describe("Link header: the URI", function()
  it("leaves a #fragment out of the key", function()
    assert.are.equal("k", next_key("<" .. BASE .. "?last_evaluated_key=k#page2>; rel=next"))
    assert.are.equal("a#b", next_key("<" .. BASE .. "?last_evaluated_key=a%23b#x>; rel=next"))
    assert.is_nil(next_key("<" .. BASE .. "?limit=2#last_evaluated_key=k>; rel=next"))
    assert.is_nil(next_key("<" .. BASE .. "#x?last_evaluated_key=k>; rel=next"))
  end)

  it("finds the key among other query parameters", function()
    assert.are.equal("k", next_key("<" .. BASE .. "?limit=10&last_evaluated_key=k&x=1>; rel=next"))
  end)
end)
