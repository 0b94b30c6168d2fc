-- The closest valid name, suggested by every message that lists the valid names
-- (namespaces, options, builder fields and entries, enum values). No request is sent
-- for any of these.
local groups = require "soracom.groups"
local config = require "soracom.groups.config"
local suggest = require "soracom.groups.suggest"

-- The message fn raised, without the position.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  return (tostring(type(err) == "table" and err.config_error or err):gsub("^[^:]*:%d+: ", ""))
end

local function ends_with(suffix, text)
  assert.are.equal(suffix, text:sub(-#suffix), text)
end

local function no_hint(text)
  assert.is_nil(text:find("did you mean", 1, true), text)
end

describe("suggest.closest", function()
  it("prefers a difference of case alone", function()
    assert.are.equal("air", suggest.closest("Air", { "SoracomAir", "air" }))
    assert.are.equal("SoracomAir", suggest.closest("soracomair", { "air", "SoracomAir" }))
  end)

  it("then the fewest edits, a swap of neighbours counting one, case ignored", function()
    assert.are.equal("limit", suggest.closest("limt", { "tag_name", "limit" }))
    assert.are.equal("tcp", suggest.closest("tpc", { "extra", "http", "mqtt", "tcp", "udp" }))
    assert.are.equal("use_custom_dns", suggest.closest("Use_Custom_DN", { "use_custom_dns", "use_vpg" }))
    assert.are.equal("timeout", suggest.closest("timout", { "connect_timeout", "timeout" }))
    -- on a tie, the earlier candidate
    assert.are.equal("cat", suggest.closest("bat", { "cat", "hat" }))
  end)

  it("suggests nothing when no candidate is within a third of the name's length, or 2 edits", function()
    assert.is_nil(suggest.closest("x", { "y", "xy" })) -- a name of 1 or 2 characters: no edit at all
    assert.is_nil(suggest.closest("abc", { "axy" })) -- 2 edits for 3 characters
    assert.are.equal("abcd", suggest.closest("abc", { "abcd" })) -- 1 for 3
    assert.is_nil(suggest.closest("abcdefghij", { "abcdefgxyz" })) -- 3 edits, even for 10 characters
    assert.is_nil(suggest.closest("NoSuch", { "SoracomAir", "air" }))
  end)

  it("suggests nothing for the name itself, an empty name or what is no string", function()
    assert.is_nil(suggest.closest("air", { "air" }))
    assert.is_nil(suggest.closest("", { "a" }))
    assert.is_nil(suggest.closest(1, { "1" }))
    assert.is_nil(suggest.closest(nil, { "a" }))
  end)

  it("with a minimum length, suggests for shorter names only a difference of case", function()
    assert.is_nil(suggest.closest("imie", { "imei" }, 5))
    assert.are.equal("imei", suggest.closest("IMEI", { "imei" }, 5))
    assert.are.equal("enabled", suggest.closest("enabeld", { "enabled" }, 5))
  end)

  it("hint words the suggestion, with what describe adds", function()
    assert.are.equal('; did you mean "air" (SoracomAir)?',
      suggest.hint("Air", { "air" }, function(name) return name == "air" and "SoracomAir" or nil end))
    assert.are.equal('; did you mean "limit"?', suggest.hint("limt", { "limit" }))
    assert.are.equal("", suggest.hint("zzzz", { "limit" }))
  end)
end)

describe("messages that list the valid names", function()
  local client, sent

  setup(function()
    -- Nothing may be sent: the endpoint is a closed port, and the debug hook counts.
    sent = 0
    client = assert(groups.new { api_key = "k", token = "t", endpoint = "http://127.0.0.1:9/v1",
      debug = function() sent = sent + 1 end })
  end)
  teardown(function()
    client:close()
    assert.are.equal(0, sent)
  end)

  local NAMESPACE_LIST = "is not one of SoracomAir, SoracomBeam, SoracomEndorse, SoracomFlux, SoracomFunk, "
    .. "SoracomFunnel, SoracomHarvest, SoracomHarvestFiles, SoracomKrypton, SoracomOrbit, UnifiedEndpoint (or "
    .. "their builder names: air, beam, endorse, flux, funk, funnel, harvest, harvest_files, krypton, orbit, "
    .. "unified_endpoint)"

  describe("a namespace", function()
    it("suggests the builder name of another case, with its namespace", function()
      ends_with('put_config: namespace "Air" ' .. NAMESPACE_LIST .. '; did you mean "air" (SoracomAir)?',
        raised(function() client:put_config("g", "Air", { a = 1 }) end))
    end)

    it("suggests a namespace a typo away, alone", function()
      ends_with(NAMESPACE_LIST .. '; did you mean "SoracomAir"?',
        raised(function() client:put_config("g", "SoracomAr", { a = 1 }) end))
      ends_with('; did you mean "harvest_files" (SoracomHarvestFiles)?',
        raised(function() client:delete_config_namespace("g", "harvestfiles") end))
    end)

    it("suggests nothing when nothing is close, and only namespaces the method takes", function()
      ends_with('namespace "NoSuch" ' .. NAMESPACE_LIST,
        raised(function() client:put_config("g", "NoSuch", { a = 1 }) end))
      local text = raised(function() client:delete_config("g", "SoracomOrbit", "k") end)
      ends_with("harvest_files, krypton, unified_endpoint)", text)
      no_hint(text)
    end)

    it("suggests in every place that takes one", function()
      local hint = '; did you mean "SoracomHarvest"?'
      ends_with(hint, raised(function() client:update_config("g", "SoracomHarvst", {}) end))
      ends_with(hint, raised(function() client:update_config("g", { SoracomHarvst = {} }) end))
      ends_with(hint, raised(function() client:create_group { configuration = { SoracomHarvst = {} } } end))
      ends_with(hint, raised(function() config.read({}, "SoracomHarvst") end))
      ends_with(hint, raised(function() config.describe("SoracomHarvst") end))
      ends_with(hint, raised(function() config.check_api("SoracomHarvst", {}) end))
    end)
  end)

  describe("an option", function()
    it("of groups.new", function()
      ends_with('; did you mean "timeout"?', raised(function() groups.new { timout = 5 } end))
      ends_with('; did you mean "endpoint"?', raised(function() groups.new { Endpoint = "https://x/v1" } end))
      local text = raised(function() groups.new { no_such_option = true } end)
      ends_with("token_timeout_seconds, transport, user_name, wait)", text)
      no_hint(text)
    end)

    it("of the list methods and iterators", function()
      ends_with('list_groups: unknown option "limt" (expected one of tag_name, tag_value, tag_value_match_mode, '
        .. 'limit, last_evaluated_key); did you mean "limit"?', raised(function() client:list_groups { limt = 2 } end))
      ends_with('; did you mean "limit"?', raised(function() client:subscribers("g", { limits = 1 }) end))
      ends_with('; did you mean "tag_value"?', raised(function() client:groups { tag_valeu = "x" } end))
      no_hint(raised(function() client:list_groups { colour = 1 } end))
    end)

    it("of create_group", function()
      ends_with('create_group: unknown option "tag" (expected name, tags, configuration); did you mean "tags"?',
        raised(function() client:create_group { tag = { env = "x" } } end))
      ends_with('; did you mean "name"?', raised(function() client:create_group { Name = "x" } end))
    end)
  end)

  describe("a builder's field, entry or value", function()
    it("a field, at any level", function()
      ends_with('; did you mean "use_custom_dns"?', raised(function() config.air { use_custom_dn = true } end))
      ends_with('air.metadata has no field "allowOrigin" (fields: allow_origin, enabled, extra, '
        .. 'minimize_response_body, readonly); did you mean "allow_origin"?',
        raised(function() config.air { metadata = { allowOrigin = "*" } } end))
      ends_with('; did you mean "enabled"?',
        raised(function() client:update_config("g", "harvest", { enabeld = true }) end))
      no_hint(raised(function() config.harvest { colour = true } end))
    end)

    it("Air's chap fields", function()
      ends_with('air.chap has no field "pasword"; did you mean "password"?',
        raised(function() config.air { chap = { username = "u", password = "p", pasword = "p" } } end))
    end)

    it("a Beam entry", function()
      ends_with('beam has no entry "tpc" (entries: extra, http, mqtt, tcp, udp); did you mean "tcp"?',
        raised(function() config.beam { tpc = {} } end))
      no_hint(raised(function() config.beam { ftp = {} } end))
    end)

    it("an enum's value", function()
      ends_with('funnel.content_type must be one of json, text, unspecified, binary, application/x-soracom-bf-v1 '
        .. '(got "JSON"); did you mean "json"?', raised(function() config.funnel { content_type = "JSON" } end))
      ends_with('; did you mean "azure"?',
        raised(function() config.funk { destination = { provider = "Azure" } } end))
      no_hint(raised(function() config.funk { destination = { provider = "ibm" } } end))
    end)
  end)
end)
