/* JSON encoding of request bodies. Unlike cjson it keeps arrays arrays: a table whose
 * keys are 1..n is an array, an empty table is an object unless it carries the
 * soracom.groups.array metatable (groups.array{}), and anything JSON cannot hold is
 * an error that names where it sits in the body. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

#define MAX_ENCODE_DEPTH 100

/* One step of the path from the root to the value being written, for error messages;
 * key points into a string that stays on the Lua stack while the step is live. */
typedef struct {
    const char *key;
    long index;
} path_step;

typedef struct {
    lua_State *L;
    sg_membuf *buf;
    const char *root;
    path_step path[MAX_ENCODE_DEPTH + 1];
} json_writer;

static void encode_error(json_writer *w, int depth, const char *what)
{
    lua_State *L = w->L;
    luaL_Buffer b;
    int i;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, w->root);
    for (i = 0; i < depth; i++) {
        if (w->path[i].key != NULL) {
            luaL_addchar(&b, '.');
            luaL_addstring(&b, w->path[i].key);
        } else {
            char index[32];
            snprintf(index, sizeof index, "[%ld]", w->path[i].index);
            luaL_addstring(&b, index);
        }
    }
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, what);
    luaL_pushresult(&b);
    lua_error(L);
}

/* Well-formed UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static int is_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t extra, k;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { extra = 1; cp = c & 0x1Fu; }
        else if (c >= 0xE0 && c <= 0xEF) { extra = 2; cp = c & 0x0Fu; }
        else if (c >= 0xF0 && c <= 0xF4) { extra = 3; cp = c & 0x07u; }
        else return 0;
        if (n - i <= extra)
            return 0;
        for (k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += extra + 1;
    }
    return 1;
}

static void add_string(json_writer *w, const char *s, size_t n, int depth)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    if (!is_utf8((const unsigned char *)s, n))
        encode_error(w, depth, "a string is not valid UTF-8");
    sg_membuf_addchar(w->L, w->buf, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char u[6];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        sg_membuf_add(w->L, w->buf, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': sg_membuf_add(w->L, w->buf, "\\\"", 2); break;
        case '\\': sg_membuf_add(w->L, w->buf, "\\\\", 2); break;
        case '\n': sg_membuf_add(w->L, w->buf, "\\n", 2); break;
        case '\r': sg_membuf_add(w->L, w->buf, "\\r", 2); break;
        case '\t': sg_membuf_add(w->L, w->buf, "\\t", 2); break;
        default:
            u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
            u[4] = hex[c >> 4]; u[5] = hex[c & 15];
            sg_membuf_add(w->L, w->buf, u, 6);
        }
    }
    sg_membuf_add(w->L, w->buf, s + run, n - run);
    sg_membuf_addchar(w->L, w->buf, '"');
}

static void add_number(json_writer *w, int index, int depth)
{
    char text[64];
    int n;
    double d;
#if SG_HAS_INTEGERS
    if (lua_isinteger(w->L, index)) {
        n = snprintf(text, sizeof text, LUA_INTEGER_FMT,
                     (LUAI_UACINT)lua_tointeger(w->L, index));
        sg_membuf_add(w->L, w->buf, text, (size_t)n);
        return;
    }
#endif
    d = (double)lua_tonumber(w->L, index);
    if (d != d || d == HUGE_VAL || d == -HUGE_VAL)
        encode_error(w, depth, "NaN and infinity cannot be sent as JSON");
    if (d == 0 && signbit(d)) { /* "-0" would read back as the integer 0 */
        n = snprintf(text, sizeof text, "-0.0");
    } else if (d == floor(d) && fabs(d) < 9007199254740992.0) { /* below 2^53: exact */
        n = snprintf(text, sizeof text, "%.0f", d);
    } else {
        /* the shortest text that reads back as the same double */
        int precision;
        char *comma;
        for (precision = 15; precision < 17; precision++) {
            n = snprintf(text, sizeof text, "%.*g", precision, d);
            if (strtod(text, NULL) == d)
                break;
        }
        if (precision == 17)
            n = snprintf(text, sizeof text, "%.17g", d);
        comma = strchr(text, ','); /* the C locale's decimal point is not JSON's */
        if (comma != NULL)
            *comma = '.';
    }
    sg_membuf_add(w->L, w->buf, text, (size_t)n);
}

static void add_value(json_writer *w, int index, int depth);

/* The array length when the table's keys are exactly 1..n, -1 for an object, -2 for
 * a mix. An empty table is an array only with the array metatable. */
static long array_length(lua_State *L, int index)
{
    long count = 0, max = 0;
    int marked = 0;
    if (lua_getmetatable(L, index)) {
        luaL_getmetatable(L, SG_ARRAY_METATABLE);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_pushnil(L);
    while (lua_next(L, index)) {
        lua_Number k;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return count == 0 ? -1 : -2;
        }
        k = lua_tonumber(L, -1);
        if (k < 1 || k != floor(k) || k > 2147483647.0) {
            lua_pop(L, 1);
            return -2;
        }
        if (k > max)
            max = (long)k;
        count++;
    }
    if (count == 0)
        return marked ? 0 : -1;
    return count == max ? max : -2;
}

static void add_array(json_writer *w, int index, int depth, long n)
{
    lua_State *L = w->L;
    long i;
    sg_membuf_addchar(L, w->buf, '[');
    for (i = 1; i <= n; i++) {
        if (i > 1)
            sg_membuf_addchar(L, w->buf, ',');
        w->path[depth].key = NULL;
        w->path[depth].index = i;
        lua_rawgeti(L, index, (int)i);
        add_value(w, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    sg_membuf_addchar(L, w->buf, ']');
}

static void add_object(json_writer *w, int index, int depth)
{
    lua_State *L = w->L;
    int first = 1;
    sg_membuf_addchar(L, w->buf, '{');
    lua_pushnil(L);
    while (lua_next(L, index)) {
        size_t klen;
        const char *key;
        if (lua_type(L, -2) != LUA_TSTRING)
            encode_error(w, depth, "a table mixes string keys with other keys");
        if (!first)
            sg_membuf_addchar(L, w->buf, ',');
        first = 0;
        key = lua_tolstring(L, -2, &klen);
        add_string(w, key, klen, depth);
        sg_membuf_addchar(L, w->buf, ':');
        w->path[depth].key = key;
        add_value(w, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    sg_membuf_addchar(L, w->buf, '}');
}

static void add_table(json_writer *w, int index, int depth)
{
    long n;
    if (depth >= MAX_ENCODE_DEPTH)
        encode_error(w, depth, "nested too deeply (is there a cycle?)");
    luaL_checkstack(w->L, 4, "body nested too deeply");
    n = array_length(w->L, index);
    if (n == -2)
        encode_error(w, depth, "a table mixes array and other keys, or has holes");
    if (n >= 0)
        add_array(w, index, depth, n);
    else
        add_object(w, index, depth);
}

static void add_value(json_writer *w, int index, int depth)
{
    lua_State *L = w->L;
    switch (lua_type(L, index)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, index, &n);
        add_string(w, s, n, depth);
        return;
    }
    case LUA_TNUMBER:
        add_number(w, index, depth);
        return;
    case LUA_TBOOLEAN:
        sg_membuf_addstring(L, w->buf, lua_toboolean(L, index) ? "true" : "false");
        return;
    case LUA_TTABLE:
        add_table(w, index, depth);
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, index) == NULL) {
            sg_membuf_addstring(L, w->buf, "null");
            return;
        }
        break;
    default:
        break;
    }
    encode_error(w, depth, lua_pushfstring(L, "a %s cannot be sent as JSON",
                                           luaL_typename(L, index)));
}

void sg_json_encode(lua_State *L, int index, sg_membuf *buf, const char *root_name)
{
    json_writer w;
    w.L = L;
    w.buf = buf;
    w.root = root_name;
    if (index < 0)
        index = lua_gettop(L) + index + 1;
    add_value(&w, index, 0);
}
