/* Request URLs: the endpoint, the operation's path template with every segment
 * percent-encoded, and the query string. */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core.h"

/* libcurl's escaping keeps exactly RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~);
 * text made only of those is copied without asking it. Its result is copied at once,
 * so a Lua error cannot strand curl's allocation. */
void sg_add_escaped(lua_State *L, sg_membuf *buf, const char *s, size_t len)
{
    char *escaped;
    int ok;
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            break;
    }
    if (i == len) { /* the common case, ids and names: nothing to escape */
        sg_membuf_add(L, buf, s, len);
        return;
    }
    escaped = curl_easy_escape(NULL, s, (int)len);
    if (escaped == NULL)
        luaL_error(L, "soracom.groups: out of memory");
    ok = sg_membuf_append(buf, escaped, strlen(escaped));
    curl_free(escaped);
    if (!ok)
        luaL_error(L, "soracom.groups: out of memory");
}

/* The text of a path or query value: strings as they are, integral numbers without a
 * fraction, booleans as true/false. */
static const char *value_text(lua_State *L, int index, const char *name, char *scratch,
                              size_t scratch_size, size_t *len)
{
    switch (lua_type(L, index)) {
    case LUA_TSTRING:
        return lua_tolstring(L, index, len);
    case LUA_TBOOLEAN: {
        const char *text = lua_toboolean(L, index) ? "true" : "false";
        *len = strlen(text);
        return text;
    }
    case LUA_TNUMBER: {
        lua_Number n = lua_tonumber(L, index);
        if (n != floor(n) || fabs(n) >= 9007199254740992.0)
            luaL_error(L, "soracom.groups: %s must be an integer", name);
        *len = (size_t)snprintf(scratch, scratch_size, "%.0f", (double)n);
        return scratch;
    }
    default:
        luaL_error(L, "soracom.groups: %s must be a string or a number, got %s", name,
                   luaL_typename(L, index));
        return NULL;
    }
}

/* build_url(endpoint, template, query_names, query, ...) -> url, path
 * Each {name} in the template takes the next extra argument. query_names lists the
 * operation's query parameters in order; query holds their values (nil ones are left
 * out). path is the part after the endpoint, without the query, for error messages. */
int sg_build_url(lua_State *L)
{
    size_t endpoint_len, template_len;
    const char *endpoint = luaL_checklstring(L, 1, &endpoint_len);
    const char *tpl = luaL_checklstring(L, 2, &template_len);
    const char *p = tpl, *end = tpl + template_len;
    int next_arg = 5, nargs = lua_gettop(L);
    size_t path_start, path_end;
    sg_membuf *buf = sg_scratch(L);
    char scratch[64];

    sg_membuf_add(L, buf, endpoint, endpoint_len);
    path_start = buf->len;
    while (p < end) {
        const char *open = memchr(p, '{', (size_t)(end - p));
        const char *close;
        const char *text;
        size_t len;
        if (open == NULL) {
            sg_membuf_add(L, buf, p, (size_t)(end - p));
            break;
        }
        close = memchr(open, '}', (size_t)(end - open));
        if (close == NULL)
            return luaL_error(L, "soracom.groups: bad path template %s", tpl);
        sg_membuf_add(L, buf, p, (size_t)(open - p));
        if (next_arg > nargs)
            return luaL_error(L, "soracom.groups: no value for path parameter in %s", tpl);
        lua_pushlstring(L, open + 1, (size_t)(close - open - 1));
        text = value_text(L, next_arg++, lua_tostring(L, -1), scratch, sizeof scratch, &len);
        lua_pop(L, 1);
        sg_add_escaped(L, buf, text, len);
        p = close + 1;
    }
    path_end = buf->len;

    if (lua_type(L, 3) == LUA_TTABLE && lua_type(L, 4) == LUA_TTABLE) {
        int i, n = (int)sg_rawlen(L, 3);
        char separator = '?';
        for (i = 1; i <= n; i++) {
            const char *name, *text;
            size_t name_len, len;
            lua_rawgeti(L, 3, i);
            name = lua_tolstring(L, -1, &name_len);
            lua_getfield(L, 4, name);
            if (!lua_isnil(L, -1)) {
                text = value_text(L, -1, name, scratch, sizeof scratch, &len);
                sg_membuf_addchar(L, buf, separator);
                sg_membuf_add(L, buf, name, name_len);
                sg_membuf_addchar(L, buf, '=');
                sg_add_escaped(L, buf, text, len);
                separator = '&';
            }
            lua_pop(L, 2);
        }
    }
    lua_pushlstring(L, buf->data, buf->len);
    lua_pushlstring(L, buf->data + path_start, path_end - path_start);
    sg_scratch_done(buf);
    return 2;
}

int sg_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    sg_membuf *buf = sg_scratch(L);
    sg_add_escaped(L, buf, s, len);
    lua_pushlstring(L, buf->data ? buf->data : "", buf->len);
    sg_scratch_done(buf);
    return 1;
}
