/* Differences between Lua 5.1 (and LuaJIT 2.1), 5.2, 5.3 and 5.4 that the core uses. */
#ifndef SORACOM_GROUPS_COMPAT_H
#define SORACOM_GROUPS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define sg_rawlen(L, i) lua_objlen((L), (i))
#else
#define sg_rawlen(L, i) lua_rawlen((L), (i))
#endif

/* LuaJIT 2.1 already provides luaL_setfuncs and luaL_testudata; plain 5.1 lacks them. */
#if LUA_VERSION_NUM < 502 && !defined(LUAJIT_VERSION_NUM)
void sg_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
void *sg_testudata(lua_State *L, int index, const char *tname);
#define luaL_setfuncs sg_setfuncs
#define luaL_testudata sg_testudata
#endif

/* lua_absindex, which 5.1 lacks. */
#define sg_absindex(L, i) \
    ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)

/* The one user value of a full userdata (5.1 and LuaJIT: its environment, which must
 * be a table; so the core always gives its objects a table there). get pushes it, set
 * pops it into the userdata at index. */
#if LUA_VERSION_NUM >= 504
#define sg_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#define sg_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define sg_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define sg_setuservalue(L, i) lua_setuservalue((L), (i))
#else
#define sg_getuservalue(L, i) lua_getfenv((L), (i))
#define sg_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#endif

/* True integers exist from 5.3 on; before that every number is a lua_Number. */
#if LUA_VERSION_NUM >= 503
#define SG_HAS_INTEGERS 1
#else
#define SG_HAS_INTEGERS 0
#endif

#endif
