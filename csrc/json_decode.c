/* A JSON decoder that reads straight from the response buffer into Lua values: no
 * intermediate Lua string, integral numbers as Lua integers (5.3+), null as the
 * light userdata NULL (which is what cjson.null is). */
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

typedef struct {
    lua_State *L;
    const char *start;
    const char *p;
    const char *end;
    int depth;
    const char *error;
} json_reader;

static int fail(json_reader *r, const char *message)
{
    if (r->error == NULL)
        r->error = message;
    return 0;
}

static void skip_space(json_reader *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int parse_value(json_reader *r);

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    if (cp < 0x80) {
        luaL_addchar(b, (char)cp);
    } else if (cp < 0x800) {
        luaL_addchar(b, (char)(0xC0 | (cp >> 6)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        luaL_addchar(b, (char)(0xE0 | (cp >> 12)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        luaL_addchar(b, (char)(0xF0 | (cp >> 18)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* Reads the \uXXXX escape at r->p (just after the backslash-u), joining a surrogate
 * pair into one code point. */
static int read_unicode_escape(json_reader *r, unsigned *cp)
{
    unsigned hi, lo;
    if (r->end - r->p < 4 || !hex4(r->p, &hi))
        return fail(r, "invalid \\u escape");
    r->p += 4;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(r, "lone low surrogate in \\u escape");
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 1;
    }
    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || !hex4(r->p + 2, &lo) ||
        lo < 0xDC00 || lo > 0xDFFF)
        return fail(r, "high surrogate not followed by a low surrogate");
    r->p += 6;
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 1;
}

/* The slow path, for strings with escapes: the luaL_Buffer is the only thing pushed
 * while it is open. */
static int parse_escaped_string(json_reader *r, const char *from)
{
    luaL_Buffer b;
    /* Lua 5.1's luaL_Buffer keeps up to about ten pieces on the stack. */
    if (!lua_checkstack(r->L, 12))
        return fail(r, "string too deep for the Lua stack");
    luaL_buffinit(r->L, &b);
    luaL_addlstring(&b, from, (size_t)(r->p - from));
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            luaL_pushresult(&b);
            return 1;
        }
        if (c < 0x20) {
            luaL_pushresult(&b);
            lua_pop(r->L, 1);
            return fail(r, "control character in string");
        }
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            r->p++;
            continue;
        }
        if (++r->p >= r->end)
            break;
        c = (unsigned char)*r->p++;
        switch (c) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp;
            if (!read_unicode_escape(r, &cp)) {
                luaL_pushresult(&b);
                lua_pop(r->L, 1);
                return 0;
            }
            add_utf8(&b, cp);
            break;
        }
        default:
            luaL_pushresult(&b);
            lua_pop(r->L, 1);
            return fail(r, "invalid escape in string");
        }
    }
    luaL_pushresult(&b);
    lua_pop(r->L, 1);
    return fail(r, "unterminated string");
}

/* r->p is just past the opening quote. */
static int parse_string(json_reader *r)
{
    const char *from = r->p;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            lua_pushlstring(r->L, from, (size_t)(r->p - from));
            r->p++;
            return 1;
        }
        if (c == '\\')
            return parse_escaped_string(r, from);
        if (c < 0x20)
            return fail(r, "control character in string");
        r->p++;
    }
    return fail(r, "unterminated string");
}

static int is_digit(const json_reader *r)
{
    return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* strtod follows the C locale's decimal point; JSON always uses '.'. The text is
 * copied to swap it, on the stack, or in a scratch userdata when it is long. */
static double text_to_double(lua_State *L, const char *s, size_t n, int *ok)
{
    char small[64];
    char *local = small;
    char point = localeconv()->decimal_point[0];
    char *endp;
    double d;
    size_t i;
    if (n >= sizeof small)
        local = (char *)lua_newuserdata(L, n + 1);
    memcpy(local, s, n);
    local[n] = '\0';
    if (point != '.')
        for (i = 0; i < n; i++)
            if (local[i] == '.')
                local[i] = point;
    d = strtod(local, &endp);
    *ok = (endp == local + n);
    if (local != small)
        lua_pop(L, 1);
    return d;
}

static int parse_number(json_reader *r)
{
    const char *from = r->p;
    int integral = 1, ok;
    double d;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (!is_digit(r))
        return fail(r, "invalid number");
    if (*r->p == '0') {
        r->p++;
        if (is_digit(r))
            return fail(r, "leading zero in number");
    } else {
        while (is_digit(r))
            r->p++;
    }
    if (r->p < r->end && *r->p == '.') {
        integral = 0;
        r->p++;
        if (!is_digit(r))
            return fail(r, "invalid number");
        while (is_digit(r))
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        integral = 0;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!is_digit(r))
            return fail(r, "invalid number");
        while (is_digit(r))
            r->p++;
    }
#if SG_HAS_INTEGERS
    if (integral) {
        const char *q = from;
        int negative = (*q == '-');
        lua_Unsigned limit = negative ? (lua_Unsigned)LUA_MAXINTEGER + 1u
                                      : (lua_Unsigned)LUA_MAXINTEGER;
        lua_Unsigned v = 0;
        int overflow = 0;
        if (negative)
            q++;
        for (; q < r->p; q++) {
            unsigned digit = (unsigned)(*q - '0');
            if (v > (limit - digit) / 10) {
                overflow = 1;
                break;
            }
            v = v * 10 + digit;
        }
        if (!overflow) {
            lua_pushinteger(r->L, negative ? (lua_Integer)(0u - v) : (lua_Integer)v);
            return 1;
        }
        /* Too large for an integer: keep it as a float, as Lua's own tonumber does. */
    }
#else
    (void)integral;
#endif
    d = text_to_double(r->L, from, (size_t)(r->p - from), &ok);
    if (!ok)
        return fail(r, "invalid number");
    lua_pushnumber(r->L, (lua_Number)d);
    return 1;
}

static int parse_literal(json_reader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return fail(r, "invalid literal");
    r->p += n;
    return 1;
}

static int enter(json_reader *r)
{
    if (++r->depth > SG_JSON_MAX_DEPTH)
        return fail(r, "nesting too deep");
    if (!lua_checkstack(r->L, 3))
        return fail(r, "nesting too deep for the Lua stack");
    r->p++;
    return 1;
}

static int parse_array(json_reader *r)
{
    int n = 0;
    if (!enter(r))
        return 0;
    lua_newtable(r->L);
    skip_space(r);
    if (r->p < r->end && *r->p == ']') {
        /* Marked, so that encoding it again gives [] and not {}. */
        luaL_getmetatable(r->L, SG_ARRAY_METATABLE);
        lua_setmetatable(r->L, -2);
        r->p++;
        r->depth--;
        return 1;
    }
    for (;;) {
        if (!parse_value(r))
            return 0;
        lua_rawseti(r->L, -2, ++n);
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unterminated array");
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p == ']') {
            r->p++;
            r->depth--;
            return 1;
        }
        return fail(r, "expected ',' or ']' in array");
    }
}

static int parse_object(json_reader *r)
{
    if (!enter(r))
        return 0;
    lua_newtable(r->L);
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        r->depth--;
        return 1;
    }
    for (;;) {
        skip_space(r);
        if (r->p >= r->end || *r->p != '"')
            return fail(r, "expected a string key in object");
        r->p++;
        if (!parse_string(r))
            return 0;
        skip_space(r);
        if (r->p >= r->end || *r->p != ':')
            return fail(r, "expected ':' in object");
        r->p++;
        if (!parse_value(r))
            return 0;
        lua_rawset(r->L, -3);
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unterminated object");
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p == '}') {
            r->p++;
            r->depth--;
            return 1;
        }
        return fail(r, "expected ',' or '}' in object");
    }
}

static int parse_value(json_reader *r)
{
    skip_space(r);
    if (r->p >= r->end)
        return fail(r, "unexpected end of text");
    switch (*r->p) {
    case '{': return parse_object(r);
    case '[': return parse_array(r);
    case '"': r->p++; return parse_string(r);
    case 't':
        if (!parse_literal(r, "true", 4)) return 0;
        lua_pushboolean(r->L, 1);
        return 1;
    case 'f':
        if (!parse_literal(r, "false", 5)) return 0;
        lua_pushboolean(r->L, 0);
        return 1;
    case 'n':
        if (!parse_literal(r, "null", 4)) return 0;
        lua_pushlightuserdata(r->L, NULL);
        return 1;
    default:
        return parse_number(r);
    }
}

int sg_json_decode(lua_State *L, const char *text, size_t len, const char **error,
                   size_t *error_offset)
{
    json_reader r;
    int top = lua_gettop(L);
    r.L = L;
    r.start = r.p = text;
    r.end = text + len;
    r.depth = 0;
    r.error = NULL;
    if (parse_value(&r)) {
        skip_space(&r);
        if (r.p == r.end)
            return 1;
        fail(&r, "unexpected text after the value");
    }
    lua_settop(L, top);
    *error = r.error;
    *error_offset = (size_t)(r.p - r.start);
    return 0;
}
