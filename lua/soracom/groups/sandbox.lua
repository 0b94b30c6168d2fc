--- Running a desired document written in Lua without handing it the machine: a
-- pull request that adds one to a repository runs it in CI with the account's
-- credentials. The chunk sees the builders (`config.air{...}`, `groups.config`,
-- `groups.null`, `groups.array`) and the standard functions that reach nothing outside
-- it; `require` gives only soracom.groups and soracom.groups.config. It sees no table of
-- the host's (only copies, and the builders' functions), no os, io, load, debug,
-- metatables, coroutines or bytecode, and no string pattern function (a pattern can
-- backtrack for hours inside one C call): `find` is plain. It runs under a budget of
-- instructions and of memory that `pcall` cannot catch, so neither a loop nor an
-- allocation can hold plan forever.

local core = require "soracom.groups.core"
local config = require "soracom.groups.config_core"

local sandbox = {}

-- What a document may spend: far more than any fleet's document needs.
sandbox.INSTRUCTION_BUDGET = 100000000
sandbox.MEMORY_BUDGET_KB = 256 * 1024
local HOOK_EVERY = 10000
-- The longest string `rep` makes.
local MAX_REP = 1024 * 1024

local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen", "rawset",
  "select", "tonumber", "tostring", "type", "unpack", "_VERSION" }
local SAFE_LIBRARIES = {
  string = { "byte", "char", "format", "len", "lower", "reverse", "sub", "upper" },
  table = { "concat", "insert", "remove", "sort", "unpack" },
  math = { "abs", "ceil", "floor", "fmod", "huge", "max", "maxinteger", "min", "mininteger", "pi",
    "sqrt", "tointeger", "type", "ult" },
  utf8 = { "char", "charpattern", "codepoint", "codes", "len", "offset" },
}

local unpack = table.unpack or unpack

-- Raised when a budget is spent; passed through every pcall of the document.
local Spent = {}

local function spent(why)
  error(setmetatable({ why = why }, Spent), 0)
end

local function is_spent(value)
  return getmetatable(value) == Spent
end

-- pcall and xpcall for the document: a spent budget is not theirs to catch.
local function guarded_pcall(protected)
  return function(...)
    local results = { n = 0 }
    local function keep(...) results = { n = select("#", ...), ... } end
    keep(protected(...))
    if not results[1] and is_spent(results[2]) then error(results[2], 0) end
    return unpack(results, 1, results.n)
  end
end

-- The string functions a document gets: no patterns (find is plain), rep bounded.
local function string_library()
  local library = {}
  for _, name in ipairs(SAFE_LIBRARIES.string) do library[name] = string[name] end
  library.find = function(text, pattern, init)
    return string.find(text, pattern, init, true)
  end
  library.rep = function(text, n, separator)
    local count = math.max(0, tonumber(n) or 0)
    local size = #tostring(text) * count + #tostring(separator or "") * math.max(0, count - 1)
    if size > MAX_REP then error("string.rep: a document makes strings of at most " .. MAX_REP .. " bytes", 2) end
    return string.rep(text, n, separator)
  end
  return library
end

-- The strings' methods while a document runs: the document's own library when the
-- caller is the document's code, the host's for the builders it calls.
local function string_methods(own, chunk_name)
  local methods = {}
  for name, host in pairs(string) do
    methods[name] = function(...)
      -- No caller frame: a tail call, which the host's code never makes.
      local caller = debug.getinfo(2, "S")
      if caller == nil or caller.what == "tail" or caller.source == chunk_name then
        local mine = own[name]
        if mine == nil then error("string." .. name .. " is not available to a desired document", 2) end
        return mine(...)
      end
      return host(...)
    end
  end
  return methods
end

local function environment()
  local builders = {}
  for builder in pairs(config.NAMESPACES) do builders[builder] = config[builder] end
  builders.read = config.read
  local module = { config = builders, null = core.null, array = function(t)
    if t ~= nil and type(t) ~= "table" then error("groups.array: expected a table", 2) end
    return setmetatable(t or {}, core.array_mt)
  end }
  local env = { config = builders, groups = module, pcall = guarded_pcall(pcall), xpcall = guarded_pcall(xpcall) }
  for _, name in ipairs(SAFE_GLOBALS) do env[name] = _G[name] end
  for library, names in pairs(SAFE_LIBRARIES) do
    if library ~= "string" and _G[library] then
      local copy = {}
      for _, name in ipairs(names) do copy[name] = _G[library][name] end
      env[library] = copy
    end
  end
  env.string = string_library()
  env.require = function(name)
    if name == "soracom.groups" then return module end
    if name == "soracom.groups.config" then return builders end
    error("a desired document runs in a sandbox: it can require soracom.groups and "
      .. "soracom.groups.config, not " .. tostring(name), 2)
  end
  env._G = env
  return env
end

local function compile(text, chunk_name, env)
  if text:sub(1, 1) == "\27" then return nil, "is precompiled Lua: only source is run" end
  if setfenv then
    local chunk, why = loadstring(text, chunk_name) -- luacheck: ignore 113 (Lua 5.1 and LuaJIT)
    if chunk then setfenv(chunk, env) end
    return chunk, why
  end
  return load(text, chunk_name, "t", env)
end

-- What the document raised, in words, without running any of its code: only a string
-- or a number is its own words.
local function reason(value)
  if is_spent(value) then return value.why end
  if type(value) == "string" or type(value) == "number" then return tostring(value) end
  return "it raised a " .. type(value) .. ", not a message"
end

--- sandbox.run_document(text, chunk_name) -> the value the chunk returns, or nil, why
-- (a syntax error, what it raised, or a budget spent).
function sandbox.run_document(text, chunk_name)
  local env = environment()
  local chunk, why = compile(text, chunk_name, env)
  if chunk == nil then return nil, tostring(why) end
  -- LuaJIT runs no hook inside compiled code: the chunk stays interpreted.
  if rawget(_G, "jit") then jit.off(chunk, true) end -- luacheck: ignore 113
  local counted, memory_at_start = 0, collectgarbage("count")
  local function budget()
    counted = counted + HOOK_EVERY
    if counted > sandbox.INSTRUCTION_BUDGET then
      spent("ran more than " .. sandbox.INSTRUCTION_BUDGET .. " instructions: stopped")
    end
    if collectgarbage("count") - memory_at_start > sandbox.MEMORY_BUDGET_KB then
      collectgarbage()
      if collectgarbage("count") - memory_at_start > sandbox.MEMORY_BUDGET_KB then
        spent("used more than " .. math.floor(sandbox.MEMORY_BUDGET_KB / 1024) .. " MiB: stopped")
      end
    end
  end
  -- Method calls on strings go through the strings' shared metatable: while the
  -- document runs, they reach its own string library.
  local string_meta = getmetatable("")
  local host_string_index = string_meta.__index
  local hooked = coroutine.create(function()
    debug.sethook(budget, "", HOOK_EVERY)
    return chunk()
  end)
  -- LuaJIT's hook is global, not the coroutine's: put back whatever the host had.
  local host_hook, host_mask, host_count = debug.gethook()
  string_meta.__index = string_methods(env.string, chunk_name)
  local ok, value = coroutine.resume(hooked)
  string_meta.__index = host_string_index
  if host_hook then debug.sethook(host_hook, host_mask, host_count) else debug.sethook() end
  if not ok then return nil, reason(value) end
  if coroutine.status(hooked) ~= "dead" then return nil, "yielded instead of returning the document" end
  return value
end

return sandbox
