-- Run by spec/core_safety_spec.lua as a child process: sequences that read freed
-- memory, or crash, in a core that lets them (issue 24, items 1, 3 and 11), so that a
-- crash fails the spec instead of ending busted. Usage:
--   lua spec/support/core_safety_child.lua MODE [ARG]
-- Prints "ok MODE" (and, for some modes, what it saw) when the sequence ran through.
package.path = "lua/?.lua;./?.lua;" .. package.path
require "spec.support.paths"
local core = require "soracom.groups.core"

local mode, arg1 = arg[1], arg[2]

-- A session whose transfer is prepared (to a port nobody listens on: it never ends
-- while these run, and nothing is sent anywhere).
local function prepared()
  local s = core.session {}
  s:set_headers {}
  s:prepare("GET", "http://127.0.0.1:9/never")
  return s
end

-- Allocations of the sizes of the core's objects, so that memory freed too early is
-- handed out again and overwritten before anything reads it.
local function churn()
  local keep = {}
  for i = 1, 20000 do keep[i] = string.rep(string.char(65 + i % 26), 64 + i % 200) .. i end
  for _ = 1, 3 do collectgarbage() end
  return keep
end

local gc_object = require "spec.support.finalizable"

local modes = {}

-- The issue's sequence: the multi's finalizer taken away through its metatable, the
-- multi collected while a session's transfer runs on it, then the session closed.
function modes.metatable()
  local s = prepared()
  local m = core.multi()
  assert(m:add(s))
  local mt = getmetatable(m)
  if type(mt) == "table" then mt.__gc = nil end
  local session_mt = getmetatable(s)
  if type(session_mt) == "table" then session_mt.__gc = nil end
  m = nil -- luacheck: ignore 311
  local _ = churn()
  s:close()
  print("metatables: " .. type(mt) .. " " .. type(session_mt))
end

-- The same with the debug library, which reaches any metatable: the session keeps its
-- multi handle alive, so the handle's memory is still there when the session leaves it.
function modes.debug_metatable()
  local s = prepared()
  local m = core.multi()
  assert(m:add(s))
  debug.getmetatable(m).__gc = nil
  m = nil -- luacheck: ignore 311
  local _ = churn()
  s:close()
end

-- A session whose finalizer was taken away is still held by the multi handle running it.
function modes.session_finalizer_removed()
  local m = core.multi()
  do
    local s = prepared()
    assert(m:add(s))
    debug.getmetatable(s).__gc = nil
  end
  local _ = churn()
  local ended = {}
  for _ = 1, 200 do
    for _, s in ipairs(m:poll(0.05)) do ended[#ended + 1] = s end
    if #ended > 0 then break end
  end
  assert(#ended == 1, "the transfer did not end")
  local value, err = ended[1]:finish() -- (connection refused)
  assert(value == nil and err.kind == "network", tostring(err and err.message))
  ended[1]:close()
  m:close()
end

-- Multi handles and sessions dropped together, made in either order: the collector
-- finalizes them in an order of its own.
function modes.dropped_together()
  for i = 1, 60 do
    local m, s
    if i % 2 == 0 then m = core.multi(); s = prepared() else s = prepared(); m = core.multi() end
    assert(m:add(s))
    m:poll(0)
  end
  local _ = churn()
end

-- Left running to lua_close, which calls every finalizer in an order of its own.
function modes.at_exit()
  local kept = {}
  for i = 1, 30 do
    local m, s
    if i % 2 == 0 then m = core.multi(); s = prepared() else s = prepared(); m = core.multi() end
    assert(m:add(s))
    kept[#kept + 1] = { m, s }
  end
  rawset(_G, "KEPT", kept)
end

-- A finalizer that brings a finalized multi handle and its session back: whichever was
-- finalized first, both answer sanely afterwards.
-- A finalizer that puts m and s in back (its own upvalues, not the caller's locals).
local function bring_back(back, m, s)
  return function() back.m, back.s = m, s end
end

function modes.resurrected()
  local back = {}
  do
    local s = prepared()
    local m = core.multi()
    assert(m:add(s))
    gc_object(bring_back(back, m, s))
    -- No register may keep them: Lua 5.3's collector marks a frame's registers that a
    -- block has left, as long as nothing has overwritten them.
    s, m = nil, nil -- luacheck: ignore 311
  end
  local _ = churn()
  assert(back.m and back.s, "the finalizer did not run")
  -- Whether the handle was finalized in the same cycle (closed: poll raises) depends on
  -- the Lua (5.3 finalizes it later or never); either way nothing reads freed memory.
  pcall(back.m.poll, back.m, 0)
  assert(pcall(back.s.close, back.s))
  assert(pcall(back.m.close, back.m))
end

-- The finalizers of the core's objects, called by hand (the debug library reaches them)
-- with what they are not for: refused, never a crash.
function modes.finalizers()
  local registry = debug.getregistry()
  assert(core.read_private_file("/nonexistent/soracom-spec") == nil) -- makes the fd metatable
  local s, m = core.session {}, core.multi()
  local other = { ["soracom.groups.session"] = m }
  local refused = 0
  for _, name in ipairs { "soracom.groups.exchange", "soracom.groups.membuf", "soracom.groups.fd",
    "soracom.groups.session", "soracom.groups.multi" } do
    local gc = assert(registry[name], name).__gc
    for _, wrong in ipairs { false, io.stdout, other[name] or s } do
      local ok, err = pcall(gc, wrong)
      assert(not ok, name .. " took " .. tostring(wrong))
      assert(tostring(err):find("bad argument", 1, true), err)
      refused = refused + 1
    end
    assert(not pcall(gc), name .. " took no argument")
  end
  s:close()
  m:close()
  print("refused " .. refused)
end

-- session:prepare of a body whose copy libcurl cannot allocate (the spec preloads a
-- malloc that fails for exactly arg1 bytes).
function modes.copy_fails()
  local size = assert(tonumber(arg1))
  local s = core.session {}
  s:set_headers {}
  local ok, message = s:prepare("POST", "http://127.0.0.1:9/never", string.rep("x", size))
  print("prepare", tostring(ok), tostring(message))
  local m = core.multi()
  local added, why = m:add(s)
  print("add", tostring(added), tostring(why), m:count())
  local value, err = s:finish()
  print("finish", tostring(value), err.kind, tostring(err.curl_code), tostring(err.message))
  -- free again, and the same body goes when memory allows
  assert(s:prepare("POST", "http://127.0.0.1:9/never", "{}"))
  assert(m:add(s))
  m:close()
  s:close()
end

-- What the debug library can put in place of an object's user value (its environment
-- on 5.1 and LuaJIT): each of these must leave the core's objects safe. Returns whether
-- the user value is now `value` (Lua 5.2 takes a table or nil only; an environment is a
-- table: another one is put there instead).
local function set_uservalue(object, value)
  if debug.setuservalue then return (pcall(debug.setuservalue, object, value)) end
  debug.setfenv(object, type(value) == "table" and value or {})
  return type(value) == "table"
end
local STRANGERS = { 5, "text", io.stdout, {} }

-- The user value of the session or of its multi handle (`whose`) replaced while the
-- transfer runs; then every way the two part: close either, poll, collect both.
local function replaced_while_running(whose, stranger)
  for _, ending in ipairs { "session", "multi", "poll", "collect" } do
    local m, s = core.multi(), prepared()
    assert(m:add(s))
    set_uservalue(whose == "session" and s or m, stranger)
    local _ = churn()
    if ending == "session" then s:close(); m:close()
    elseif ending == "multi" then m:close(); s:close()
    elseif ending == "poll" then m:poll(0); s:close(); m:close()
    else m, s = nil, nil end -- luacheck: ignore 311
    collectgarbage()
  end
end

-- A session's user value replaced while its transfer runs, or before it is added.
function modes.session_uservalue()
  for _, stranger in ipairs(STRANGERS) do
    replaced_while_running("session", stranger)
    local m, s = core.multi(), prepared()
    local replaced = set_uservalue(s, stranger)
    local added, err = pcall(m.add, m, s)
    if replaced and type(stranger) ~= "table" then
      assert(not added and tostring(err):find("debug.setuservalue", 1, true), tostring(err))
    end
    m:close()
    s:close()
  end
end

-- The same with the multi handle's user value (its references to the sessions).
function modes.multi_uservalue()
  for _, stranger in ipairs(STRANGERS) do replaced_while_running("multi", stranger) end
end

local run = modes[mode]
if run == nil then
  io.stderr:write("unknown mode " .. tostring(mode) .. "\n")
  os.exit(2)
end
run()
for _ = 1, 3 do collectgarbage() end
print("ok " .. mode)
