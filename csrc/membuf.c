#include <stdlib.h>
#include <string.h>
#include "core.h"

#define MEMBUF_METATABLE "soracom.groups.membuf"

int sg_membuf_reserve(sg_membuf *buf, size_t extra)
{
    size_t need, cap;
    char *data;
    if (buf->cap - buf->len > extra)
        return 1;
    need = buf->len + extra + 1; /* room for a terminating NUL */
    if (need < buf->len)
        return 0;
    cap = buf->cap ? buf->cap : 256;
    while (cap < need) {
        if (cap > ((size_t)-1) / 2)
            return 0;
        cap *= 2;
    }
    data = realloc(buf->data, cap);
    if (data == NULL)
        return 0;
    buf->data = data;
    buf->cap = cap;
    return 1;
}

int sg_membuf_append(sg_membuf *buf, const char *bytes, size_t n)
{
    if (!sg_membuf_reserve(buf, n))
        return 0;
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return 1;
}

void sg_membuf_add(lua_State *L, sg_membuf *buf, const char *bytes, size_t n)
{
    if (!sg_membuf_append(buf, bytes, n))
        luaL_error(L, "soracom.groups: out of memory");
}

void sg_membuf_addchar(lua_State *L, sg_membuf *buf, char c)
{
    sg_membuf_add(L, buf, &c, 1);
}

void sg_membuf_addstring(lua_State *L, sg_membuf *buf, const char *s)
{
    sg_membuf_add(L, buf, s, strlen(s));
}

void sg_membuf_free(sg_membuf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

static int membuf_gc(lua_State *L)
{
    sg_membuf_free((sg_membuf *)luaL_checkudata(L, 1, MEMBUF_METATABLE));
    return 0;
}

sg_membuf *sg_membuf_new(lua_State *L)
{
    sg_membuf *buf = (sg_membuf *)lua_newuserdata(L, sizeof *buf);
    buf->data = NULL;
    buf->len = buf->cap = 0;
    luaL_getmetatable(L, MEMBUF_METATABLE);
    lua_setmetatable(L, -2);
    return buf;
}

void sg_membuf_register(lua_State *L)
{
    if (sg_new_metatable(L, MEMBUF_METATABLE)) {
        lua_pushcfunction(L, membuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
