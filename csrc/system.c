/* What the Lua layer needs from the OS and plain Lua lacks: a file's permission bits
 * (a credentials file must not be readable by others) and a monotonic clock (token
 * expiry must not jump with the wall clock). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "core.h"

/* file_mode(path) -> permission bits (e.g. 384 for 0600), or nil, message */
int sg_file_mode(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat info;
    if (stat(path, &info) != 0) {
        int err = errno;
        lua_pushnil(L);
        lua_pushstring(L, strerror(err));
        lua_pushinteger(L, err);
        return 3;
    }
    lua_pushinteger(L, (lua_Integer)(info.st_mode & 07777));
    return 1;
}

/* now() -> seconds on a monotonic clock, with sub-second precision */
int sg_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}
