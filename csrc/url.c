/* Request URLs: the endpoint, the operation's path template with every segment
 * percent-encoded, and the query string.
 *
 * Each call builds into its own buffer, owned by a userdata on its stack (a Lua error
 * frees it through __gc), and reads the caller's tables raw, so no metamethod runs.
 * A finalizer may still run at an allocation and call back into the core; nothing it
 * can reach is shared with this call. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core.h"

/* RFC 3986 unreserved: A-Z a-z 0-9 - . _ ~ are kept, every other byte becomes %XX.
 * Written by hand: curl_easy_escape allocates per call and caps its result at 24 MB. */
#define ROW0 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
static const unsigned char unreserved[256] = {
    ROW0, ROW0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, /* - . */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0-9 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* A-O */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, /* P-Z _ */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* a-o */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, /* p-z ~ */
    ROW0, ROW0, ROW0, ROW0, ROW0, ROW0, ROW0, ROW0
};
#undef ROW0
static const char hex_digits[] = "0123456789ABCDEF";

static size_t escaped_length(const char *s, size_t len)
{
    size_t i, n = len;
    for (i = 0; i < len; i++)
        if (!unreserved[(unsigned char)s[i]])
            n += 2;
    return n;
}

static char *write_escaped(char *out, const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved[c]) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex_digits[c >> 4];
            *out++ = hex_digits[c & 15];
        }
    }
    return out;
}

void sg_add_escaped(lua_State *L, sg_membuf *buf, const char *s, size_t len)
{
    size_t n;
    if (len > ((size_t)-1) / 3) /* the escaped length could not be counted */
        luaL_error(L, "soracom.groups: out of memory");
    n = escaped_length(s, len);
    if (!sg_membuf_reserve(buf, n))
        luaL_error(L, "soracom.groups: out of memory");
    write_escaped(buf->data + buf->len, s, len);
    buf->len += n;
    buf->data[buf->len] = '\0';
}

/* Raises "bad argument #arg to 'build_url' (<what> <name> <problem>)"; the name is
 * pushed only here, on the way out. */
static int value_error(lua_State *L, int arg, const char *what, const char *name,
                       size_t name_len, const char *problem)
{
    lua_pushlstring(L, name, name_len);
    return luaL_argerror(L, arg, lua_pushfstring(L, "%s %s %s", what, lua_tostring(L, -1),
                                                 problem));
}

/* The text of the path or query value at index: strings as they are, integers exactly,
 * integral floats below 2^53 (beyond it a float may already be another integer than
 * the one meant) without a fraction, booleans as true/false. text has room for any
 * integer. Runs no Lua code and allocates nothing. */
static const char *value_text(lua_State *L, int index, int arg, const char *what,
                              const char *name, size_t name_len, char text[64], size_t *len)
{
    switch (lua_type(L, index)) {
    case LUA_TSTRING:
        return lua_tolstring(L, index, len);
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, index)) {
            *len = 4;
            return "true";
        }
        *len = 5;
        return "false";
    case LUA_TNUMBER: {
        lua_Number n;
#if SG_HAS_INTEGERS
        if (lua_isinteger(L, index)) {
            *len = (size_t)snprintf(text, 64, LUA_INTEGER_FMT,
                                    (LUAI_UACINT)lua_tointeger(L, index));
            return text;
        }
#endif
        n = lua_tonumber(L, index);
        if (n != floor(n))
            value_error(L, arg, what, name, name_len, "must be an integer");
        if (fabs(n) >= 9007199254740992.0)
            value_error(L, arg, what, name, name_len,
                        "is a float of 2^53 or more, which may not be the integer meant");
        if (n == 0)
            n = 0; /* -0.0 is written 0 */
        *len = (size_t)snprintf(text, 64, "%.0f", (double)n);
        return text;
    }
    default:
        lua_pushfstring(L, "must be a string, a number or a boolean, got %s",
                        luaL_typename(L, index));
        value_error(L, arg, what, name, name_len, lua_tostring(L, -1));
        return NULL;
    }
}

static void check_optional_table(lua_State *L, int arg)
{
    int type = lua_type(L, arg);
    if (type != LUA_TNONE && type != LUA_TNIL && type != LUA_TTABLE)
        luaL_argerror(L, arg, lua_pushfstring(L, "table or nil expected, got %s",
                                              luaL_typename(L, arg)));
}

/* build_url(endpoint, template, query_names, query, ...) -> url, path
 * Each {name} in the template takes the next extra argument. query_names lists the
 * operation's query parameters in order; query holds their values (nil ones are left
 * out). path is the part after the endpoint, without the query, for error messages. */
int sg_build_url(lua_State *L)
{
    size_t endpoint_len, template_len, path_start, path_end;
    const char *endpoint = sg_check_string(L, 1, &endpoint_len);
    const char *tpl = sg_check_string(L, 2, &template_len);
    const char *p = tpl, *end = tpl + template_len;
    int next_arg = 5, nargs = lua_gettop(L);
    sg_membuf *buf;
    char text[64];

    check_optional_table(L, 3);
    check_optional_table(L, 4);
    buf = sg_membuf_new(L);
    if (!sg_membuf_reserve(buf, endpoint_len + template_len + 64))
        return luaL_error(L, "soracom.groups: out of memory");
    sg_membuf_add(L, buf, endpoint, endpoint_len);
    path_start = buf->len;
    while (p < end) {
        const char *open = memchr(p, '{', (size_t)(end - p));
        const char *close, *name, *value;
        size_t name_len, len;
        if (open == NULL) {
            sg_membuf_add(L, buf, p, (size_t)(end - p));
            break;
        }
        close = memchr(open, '}', (size_t)(end - open));
        if (close == NULL)
            return luaL_argerror(L, 2, "a { without its } in the path template");
        sg_membuf_add(L, buf, p, (size_t)(open - p));
        name = open + 1;
        name_len = (size_t)(close - name);
        if (next_arg > nargs)
            return value_error(L, next_arg, "path parameter", name, name_len, "has no value");
        value = value_text(L, next_arg, next_arg, "path parameter", name, name_len, text, &len);
        sg_add_escaped(L, buf, value, len);
        next_arg++;
        p = close + 1;
    }
    path_end = buf->len;

    if (lua_type(L, 3) == LUA_TTABLE) {
        int i, n = (int)sg_rawlen(L, 3), has_values = lua_type(L, 4) == LUA_TTABLE;
        char separator = '?';
        for (i = 1; i <= n; i++) {
            const char *name, *value;
            size_t name_len, len;
            lua_rawgeti(L, 3, i);
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_argerror(L, 3, lua_pushfstring(L, "query name %d is a %s, not a string",
                                                           i, luaL_typename(L, -1)));
            name = lua_tolstring(L, -1, &name_len);
            if (has_values) {
                lua_pushvalue(L, -1);
                lua_rawget(L, 4);
            } else {
                lua_pushnil(L);
            }
            if (!lua_isnil(L, -1)) {
                value = value_text(L, -1, 4, "query parameter", name, name_len, text, &len);
                sg_membuf_addchar(L, buf, separator);
                sg_add_escaped(L, buf, name, name_len);
                sg_membuf_addchar(L, buf, '=');
                sg_add_escaped(L, buf, value, len);
                separator = '&';
            }
            lua_pop(L, 2);
        }
    }
    lua_pushlstring(L, buf->data, buf->len); /* data is not NULL: reserved above */
    lua_pushlstring(L, buf->data + path_start, path_end - path_start);
    sg_membuf_free(buf); /* now, rather than when the collector gets to it */
    return 2;
}

/* escape(text) -> text percent-encoded; the text itself when nothing needs it. */
int sg_escape(lua_State *L)
{
    size_t len;
    const char *s = sg_check_string(L, 1, &len);
    sg_membuf *buf;
    if (escaped_length(s, len) == len) {
        lua_settop(L, 1);
        return 1;
    }
    buf = sg_membuf_new(L);
    sg_add_escaped(L, buf, s, len);
    lua_pushlstring(L, buf->data, buf->len); /* not NULL: something was escaped */
    sg_membuf_free(buf); /* now, rather than when the collector gets to it */
    return 1;
}
