/* Stack room for a luaL_Buffer. Lua 5.1 and LuaJIT keep up to LUA_MINSTACK / 2 pieces
 * of the string being built on the Lua stack (lauxlib's LIMIT), plus the piece being
 * added and the one luaL_pushresult adds; 5.2 and later use at most one slot. Code that
 * may run with the stack in use (deep in the JSON encoder or decoder) reserves this
 * before luaL_buffinit. */
#ifndef SORACOM_GROUPS_LUABUFFER_H
#define SORACOM_GROUPS_LUABUFFER_H

#include <lua.h>

#define SG_BUFFER_SLOTS (LUA_MINSTACK / 2 + 2)

#endif
