--- Running a desired document written in Lua without handing it the machine: a
-- pull request that adds one to a repository runs it in CI with the account's
-- credentials. The chunk sees the builders (`config`, `groups.config`, `groups.null`)
-- and the standard functions that reach nothing outside it; `require` gives only
-- soracom.groups and soracom.groups.config (as those two tables). No os, io, load,
-- debug, metatables of other values, or bytecode; and a budget of instructions, so a
-- loop cannot hold plan forever.

local core = require "soracom.groups.core"
local config = require "soracom.groups.config"

local sandbox = {}

-- Instructions a document may run: far more than any fleet's document needs.
sandbox.INSTRUCTION_BUDGET = 100000000
local HOOK_EVERY = 100000

local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "rawset", "select", "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION" }
local SAFE_LIBRARIES = {
  string = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
    "reverse", "sub", "upper" },
  table = { "concat", "insert", "remove", "sort", "unpack" },
  math = { "abs", "ceil", "floor", "fmod", "huge", "max", "maxinteger", "min", "mininteger", "pi",
    "sqrt", "tointeger", "type", "ult" },
  utf8 = { "char", "charpattern", "codepoint", "codes", "len", "offset" },
}

local function environment()
  local builders = {}
  for key, value in pairs(config) do builders[key] = value end
  local module = { config = builders, null = core.null, array = function(t)
    return setmetatable(t or {}, core.array_mt)
  end }
  local env = { config = builders, groups = module }
  for _, name in ipairs(SAFE_GLOBALS) do env[name] = _G[name] end
  for library, names in pairs(SAFE_LIBRARIES) do
    if _G[library] then
      local copy = {}
      for _, name in ipairs(names) do copy[name] = _G[library][name] end
      env[library] = copy
    end
  end
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

--- sandbox.run_document(text, chunk_name) -> the value the chunk returns, or nil, why
-- (a syntax error, what it raised, or the budget spent).
function sandbox.run_document(text, chunk_name)
  local chunk, why = compile(text, chunk_name, environment())
  if chunk == nil then return nil, tostring(why) end
  -- LuaJIT runs no hook inside compiled code: the chunk stays interpreted.
  if rawget(_G, "jit") then jit.off(chunk, true) end -- luacheck: ignore 113
  local spent = 0
  local hooked = coroutine.create(function()
    debug.sethook(function()
      spent = spent + HOOK_EVERY
      if spent > sandbox.INSTRUCTION_BUDGET then
        error("ran more than " .. sandbox.INSTRUCTION_BUDGET .. " instructions: stopped", 0)
      end
    end, "", HOOK_EVERY)
    return chunk()
  end)
  -- LuaJIT's hook is global, not the coroutine's: put back whatever the host had.
  local host_hook, host_mask, host_count = debug.gethook()
  local ok, value = coroutine.resume(hooked)
  if host_hook then debug.sethook(host_hook, host_mask, host_count) else debug.sethook() end
  if not ok then return nil, tostring(value) end
  if coroutine.status(hooked) ~= "dead" then return nil, "yielded instead of returning the document" end
  return value
end

return sandbox
