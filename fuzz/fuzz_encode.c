/* libFuzzer target: the encoder through the module's own encode_json, on Lua values
 * built from the input (not only values the decoder made).
 *
 * The input is a little program (see build_value) that builds a value: nested arrays
 * and objects, mixed and sparse tables, strings of any bytes (invalid UTF-8, NUL, long
 * ones), integers and floats of every kind (-0, NaN, infinities, subnormals, 2^53,
 * 2^63, huge), booleans, null, cjson.empty_array, values JSON cannot hold (functions,
 * userdata, other light userdata), tables marked as arrays (groups.array's metatable,
 * cjson's array_mt and empty_array_mt), tables with metatables whose metamethods raise
 * (the encoder must read raw and run no Lua code), shared tables, cycles and chains of
 * about 1000 levels. Then encode_json(value[, root_name]) is called from Lua, from the
 * table that luaopen_soracom_groups_core returns.
 *
 * An independent model says whether JSON can hold the value (finite numbers, valid
 * UTF-8, keys all strings or exactly 1..n, at most SG_JSON_MAX_DEPTH levels with
 * cjson.empty_array's [] counted as one, no cycle, only JSON's types). When it can,
 * encode_json must return a text that sg_json_decode reads back to the same value: the
 * same types (on 5.3+ integers stay integers and floats floats), the same numbers with
 * the same sign of zero, the same strings, arrays as arrays (marked) and objects as
 * objects. When it cannot, encode_json must raise a message of at most MAX_MESSAGE
 * bytes that starts with the root name (its first 16 bytes: a long one may be cut).
 * Anything else aborts. Values too big to encode in a fuzzer's time are skipped (see
 * MAX_BYTES). Then the whole thing runs again with Lua's allocator failing part-way
 * (see fuzz_common.h).
 *
 * Built for Lua 5.4 (fuzz_encode) and Lua 5.1 (fuzz_encode_5.1) by scripts/fuzz.
 * Reproduce: build/fuzz/fuzz_encode CRASH_FILE */
#include <math.h>
#include <string.h>
#include "fuzz_common.h"

int luaopen_soracom_groups_core(lua_State *L);

/* The model does not tell refusals apart: any message will do, as long as it names
 * where (the root name first) and is no longer than this (issue 24, item 2: paths in
 * messages are cut). */
#define MAX_MESSAGE (1u << 20)
#define MAX_NODES 4000
#define MAX_BUILD_DEPTH 1100
#define MAX_LONG_STRING (256u * 1024u)

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

typedef struct {
    const uint8_t *data;
    size_t size;
} encode_job;

/* Stack slots of what build_value needs, set by run(). */
typedef struct {
    lua_State *L;
    reader r;
    int nodes;
    int pool;           /* a table of every table built so far, for shared refs/cycles */
    int pool_count;
    int array_mt;       /* groups.array's metatable */
    int cjson;          /* the fake cjson module: array_mt, empty_array_mt, empty_array */
    int raising_mt;     /* a metatable whose every metamethod raises */
} builder;

static uint8_t next_byte(reader *r)
{
    uint8_t b;
    if (r->n == 0)
        return 0;
    b = *r->p++;
    r->n--;
    return b;
}

/* Two bytes, the first the high one (read in order: not two calls in one expression). */
static unsigned next_u16(reader *r)
{
    unsigned high = next_byte(r);
    return high << 8 | next_byte(r);
}

static uint64_t next_u64(reader *r)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v = (v << 8) | next_byte(r);
    return v;
}

static const char *const interesting_strings[] = {
    "", "body", "a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
    "\xEF\xBF\xBE",             /* U+FFFE: a noncharacter, still valid UTF-8 */
    "\xF4\x90\x80\x80",         /* above U+10FFFF */
    "\xED\xA0\x80",             /* a surrogate */
    "\xC0\x80", "\xE0\x80\x80", /* overlong */
    "\xE2\x82",                 /* cut short */
    "\x80", "\xFF", "\xFE\xFF",
    "\"", "\\", "/", "\x7F", "\x01\x1F", "\t\r\n\b\f", "\xC2\x80",
    "\xEF\xBB\xBF",             /* a BOM, valid inside a string */
    "1", "-0", "1e999", "null", "true", "{}", "[]",
};

/* Pushes a string: short ones from the input, interesting ones from the list above,
 * long ones made of a repeated piece of the input. NUL bytes come through. */
static void push_string(builder *b)
{
    lua_State *L = b->L;
    uint8_t h = next_byte(&b->r);
    char piece[256];
    size_t len, i;
    switch (h >> 6) {
    case 0:
    case 1:
        len = h & 127;
        for (i = 0; i < len; i++)
            piece[i] = (char)next_byte(&b->r);
        lua_pushlstring(L, piece, len);
        return;
    case 2:
        lua_pushstring(L, interesting_strings[(h & 63) % (sizeof interesting_strings /
                                                        sizeof interesting_strings[0])]);
        return;
    default: {
        /* long: (h & 7) + 1 bytes repeated up to MAX_LONG_STRING bytes in all */
        size_t unit = (size_t)(h & 7) + 1, total;
        luaL_Buffer buf;
        total = (size_t)next_u16(&b->r) * 4 + 1;
        if (total > MAX_LONG_STRING)
            total = MAX_LONG_STRING;
        for (i = 0; i < unit; i++)
            piece[i] = (char)next_byte(&b->r);
        luaL_buffinit(L, &buf);
        for (i = 0; i < total; i++)
            luaL_addchar(&buf, piece[i % unit]);
        luaL_pushresult(&buf);
        return;
    }
    }
}

static const double interesting_numbers[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 1.5, 100.0, 1e15, 1e16, 1e17, 1e21, 1e22, 1e-7,
    1e308, -1e308, 1.7976931348623157e308, 2.2250738585072014e-308, 4.9e-324,
    9007199254740992.0, 9007199254740993.0, -9007199254740992.0,
    9223372036854775808.0, -9223372036854775808.0, 18446744073709551616.0,
    123456789012345678.0, 3.141592653589793, 2147483647.0, 2147483648.0,
    0.30000000000000004, 5e-324, 1.2345678901234567,
};

static void push_number(builder *b, int kind)
{
    lua_State *L = b->L;
    switch (kind) {
    case 0: { /* any 64-bit integer (a double before 5.3) */
        uint64_t v = next_u64(&b->r);
#if SG_HAS_INTEGERS
        lua_pushinteger(L, (lua_Integer)v);
#else
        lua_pushnumber(L, (lua_Number)(int64_t)v);
#endif
        return;
    }
    case 1: /* a small integer */
        lua_pushinteger(L, (lua_Integer)(int8_t)next_byte(&b->r));
        return;
    case 2: { /* any double, NaNs and infinities included */
        uint64_t bits = next_u64(&b->r);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, (lua_Number)d);
        return;
    }
    case 3: {
        uint8_t i = next_byte(&b->r);
        size_t n = sizeof interesting_numbers / sizeof interesting_numbers[0];
        if (i % (n + 3) < n)
            lua_pushnumber(L, (lua_Number)interesting_numbers[i % (n + 3)]);
        else if (i % (n + 3) == n)
            lua_pushnumber(L, (lua_Number)NAN);
        else if (i % (n + 3) == n + 1)
            lua_pushnumber(L, (lua_Number)HUGE_VAL);
        else
            lua_pushnumber(L, (lua_Number)-HUGE_VAL);
        return;
    }
    default: { /* the extremes of lua_Integer */
#if SG_HAS_INTEGERS
        static const lua_Integer ints[] = {LUA_MININTEGER, LUA_MAXINTEGER, LUA_MININTEGER + 1,
                                           0, -1, 9007199254740993LL};
        lua_pushinteger(L, ints[next_byte(&b->r) % 6]);
#else
        lua_pushnumber(L, (lua_Number)(next_byte(&b->r) % 2 ? 9007199254740992.0 : -0.0));
#endif
        return;
    }
    }
}

static int not_json(lua_State *L)
{
    lua_pushliteral(L, "a metamethod ran");
    return lua_error(L);
}

/* Records the table at the top in the pool (for later references). */
static void remember(builder *b)
{
    lua_pushvalue(b->L, -1);
    lua_rawseti(b->L, b->pool, ++b->pool_count);
}

/* Sets a metatable on the table at the top, chosen by the input. */
static void mark(builder *b, uint8_t how)
{
    lua_State *L = b->L;
    switch (how % 8) {
    case 1:
        lua_pushvalue(L, b->array_mt);
        break;
    case 2:
        lua_getfield(L, b->cjson, "array_mt");
        break;
    case 3:
        lua_getfield(L, b->cjson, "empty_array_mt");
        break;
    case 4:
        lua_pushvalue(L, b->raising_mt);
        break;
    default:
        return;
    }
    lua_setmetatable(L, -2);
}

static void build_value(builder *b, int depth, int in_table);

/* Sets t[k] = v for the key and value built next; t at the top. A nil key or value, or
 * a NaN key, is skipped (Lua cannot hold them). */
static void set_built_pair(builder *b, int depth)
{
    lua_State *L = b->L;
    int t = lua_gettop(L);
    build_value(b, depth + 1, 1); /* key */
    build_value(b, depth + 1, 1); /* value */
    if (lua_isnil(L, -2) || lua_isnil(L, -1) ||
        (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2))) {
        lua_settop(L, t);
        return;
    }
    lua_rawset(L, t);
}

/* Pushes one value built from the input. in_table: the value goes into a table, where
 * nil is not stored (a nil element is a hole). */
static void build_value(builder *b, int depth, int in_table)
{
    lua_State *L = b->L;
    uint8_t op;
    int i, n;
    luaL_checkstack(L, 8, "fuzz: build_value");
    if (b->r.n == 0 || ++b->nodes > MAX_NODES || depth > MAX_BUILD_DEPTH) {
        lua_pushinteger(L, 7);
        return;
    }
    op = next_byte(&b->r);
    switch (op % 24) {
    case 0:
        if (in_table)
            lua_pushboolean(L, 0);
        else
            lua_pushnil(L);
        return;
    case 1:
        lua_pushboolean(L, op & 32);
        return;
    case 2: case 3: case 4: case 5: case 6:
        push_number(b, op % 24 - 2);
        return;
    case 7: case 8:
        push_string(b);
        return;
    case 9:
        lua_pushlightuserdata(L, NULL); /* null */
        return;
    case 10:
        lua_getfield(L, b->cjson, "empty_array");
        return;
    case 11: /* what JSON cannot hold */
        switch ((op >> 5) % 4) {
        case 0: lua_pushlightuserdata(L, (void *)b); break;
        case 1: lua_pushcfunction(L, not_json); break;
        case 2: lua_newuserdata(L, 8); break;
        default: lua_pushlightuserdata(L, (void *)&b->r); break;
        }
        return;
    case 12: case 13: case 14: { /* an array of n values, maybe marked */
        uint8_t flags = next_byte(&b->r);
        n = next_byte(&b->r) % (op % 24 == 14 ? 64 : 6);
        lua_createtable(L, n, 0);
        mark(b, flags);
        remember(b);
        for (i = 1; i <= n; i++) {
            build_value(b, depth + 1, 1);
            lua_rawseti(L, -2, i);
        }
        return;
    }
    case 15: case 16: case 17: { /* an object of n members, maybe marked */
        uint8_t flags = next_byte(&b->r);
        n = next_byte(&b->r) % 8;
        lua_createtable(L, 0, n);
        mark(b, flags);
        remember(b);
        for (i = 0; i < n; i++) {
            push_string(b);
            build_value(b, depth + 1, 1);
            lua_rawset(L, -3);
        }
        return;
    }
    case 18: { /* any keys: numbers (0, negative, fractions, beyond 2^31), booleans... */
        uint8_t flags = next_byte(&b->r);
        n = next_byte(&b->r) % 8;
        lua_newtable(L);
        mark(b, flags);
        remember(b);
        for (i = 0; i < n; i++)
            set_built_pair(b, depth);
        return;
    }
    case 19: { /* an array with holes or keys around 1..n */
        static const double keys[] = {0, -1, 1.5, 2147483647.0, 2147483648.0, 4294967297.0,
                                      1e300, -0.0};
        uint8_t flags = next_byte(&b->r);
        n = next_byte(&b->r) % 8;
        lua_newtable(L);
        mark(b, flags);
        remember(b);
        for (i = 1; i <= n; i++) {
            lua_pushinteger(L, 1);
            lua_rawseti(L, -2, i);
        }
        i = next_byte(&b->r);
        if (i & 128) {
            lua_pushnil(L);
            lua_rawseti(L, -2, 1 + i % (n + 1)); /* a hole, or nothing */
        } else {
            lua_pushnumber(L, (lua_Number)keys[i % 8]);
            lua_pushinteger(L, 2);
            lua_rawset(L, -3);
        }
        return;
    }
    case 20: { /* a table built before: shared, or a cycle when still being built */
        if (b->pool_count == 0) {
            lua_newtable(L);
            return;
        }
        i = 1 + (int)(next_u16(&b->r) % (unsigned)b->pool_count);
        lua_rawgeti(L, b->pool, i);
        return;
    }
    case 21: { /* a chain of about 1000 levels around one value: the depth limit */
        int levels = 990 + next_byte(&b->r) % 16, object = op & 32;
        build_value(b, depth + 1, 1);
        for (i = 0; i < levels; i++) {
            lua_createtable(L, object ? 0 : 1, object ? 1 : 0);
            lua_insert(L, -2);
            if (object)
                lua_setfield(L, -2, "k");
            else
                lua_rawseti(L, -2, 1);
        }
        return;
    }
    case 22: /* a table whose metamethods raise, with an array and a key in it */
        lua_newtable(L);
        lua_pushvalue(L, b->raising_mt);
        lua_setmetatable(L, -2);
        remember(b);
        build_value(b, depth + 1, 1);
        lua_rawseti(L, -2, 1);
        return;
    default: { /* a self-cycle through a key of the input's choosing */
        lua_newtable(L);
        remember(b);
        push_string(b);
        lua_pushvalue(L, -2);
        lua_rawset(L, -3);
        return;
    }
    }
}

/* ---- the model: can JSON hold the value at index? ---- */

/* RFC 3629, written independently of csrc/utf8.c. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned long cp;
        size_t len, k;
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

typedef struct {
    lua_State *L;
    int array_mt, cjson_array_mt, cjson_empty_array_mt, cjson_empty_array;
    int open; /* a table: the tables on the path from the root, to find cycles */
    long visits;  /* values looked at, shared tables each time they appear */
    size_t bytes; /* about what their text takes */
    int cycle;    /* one was found (the encoder then goes SG_JSON_MAX_DEPTH levels down it) */
} model;

/* Inputs whose value would take more than this to encode (shared tables counted each
 * time they appear; a cycle SG_JSON_MAX_DEPTH times over) are not encoded: a few shared
 * arrays of arrays make a value of 64^k elements, and a cycle through a 256 KiB key
 * makes 256 MiB of text before the encoder finds it too deep. */
#define MAX_VISITS 100000L
#define MAX_BYTES ((size_t)32 << 20)

static int too_big(const model *m)
{
    return m->visits > MAX_VISITS || m->bytes > MAX_BYTES ||
           (m->cycle && m->bytes > MAX_BYTES / SG_JSON_MAX_DEPTH);
}

static int is_array_mark(const model *m, int index)
{
    int marked = 0;
    if (lua_getmetatable(m->L, index)) {
        marked = lua_rawequal(m->L, -1, m->array_mt) || lua_rawequal(m->L, -1, m->cjson_array_mt) ||
                 lua_rawequal(m->L, -1, m->cjson_empty_array_mt);
        lua_pop(m->L, 1);
    }
    return marked;
}

/* The kind of a table: -1 object, n >= 0 an array of n, -2 no JSON. */
static long table_kind(const model *m, int t)
{
    lua_State *L = m->L;
    long count = 0, max = 0, strings = 0, others = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Number k = lua_tonumber(L, -1);
            if (k >= 1 && k <= 2147483647.0 && k == floor(k)) {
                count++;
                if ((long)k > max)
                    max = (long)k;
            } else {
                others++;
            }
        } else {
            others++;
        }
    }
    if (others > 0 || (strings > 0 && count > 0))
        return -2;
    if (strings > 0)
        return -1;
    if (count == 0)
        return is_array_mark(m, t) ? 0 : -1;
    return count == max ? max : -2;
}

static int json_can_hold(model *m, int index, int depth)
{
    lua_State *L = m->L;
    luaL_checkstack(L, 8, "fuzz: model");
    m->visits++;
    m->bytes += 8;
    if (too_big(m))
        return 0;
    switch (lua_type(L, index)) {
    case LUA_TBOOLEAN:
        return 1;
    case LUA_TNUMBER: {
        lua_Number d = lua_tonumber(L, index);
        return d == d && d != (lua_Number)HUGE_VAL && d != -(lua_Number)HUGE_VAL;
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, index, &n);
        m->bytes += n;
        return valid_utf8((const unsigned char *)s, n);
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, index) == NULL)
            return 1;
        /* cjson.empty_array is written [], a level like any array */
        return lua_rawequal(L, index, m->cjson_empty_array) && depth < SG_JSON_MAX_DEPTH;
    case LUA_TTABLE: {
        long kind;
        int ok = 1;
        if (depth >= SG_JSON_MAX_DEPTH)
            return 0;
        lua_pushvalue(L, index);
        lua_rawget(L, m->open);
        if (!lua_isnil(L, -1)) { /* a cycle: never ends */
            lua_pop(L, 1);
            m->cycle = 1;
            return 0;
        }
        lua_pop(L, 1);
        kind = table_kind(m, index);
        if (kind == -2)
            return 0;
        lua_pushvalue(L, index);
        lua_pushboolean(L, 1);
        lua_rawset(L, m->open);
        lua_pushnil(L);
        while (ok && lua_next(L, index)) {
            int v = lua_gettop(L);
            if (kind == -1) {
                size_t n;
                const char *key = lua_tolstring(L, v - 1, &n); /* a string: no conversion */
                m->bytes += n;
                ok = valid_utf8((const unsigned char *)key, n);
            }
            ok = ok && json_can_hold(m, v, depth + 1);
            lua_pop(L, 1);
        }
        if (!ok)
            lua_pop(L, 1); /* the key lua_next left */
        lua_pushvalue(L, index);
        lua_pushnil(L);
        lua_rawset(L, m->open);
        return ok;
    }
    default:
        return 0;
    }
}

/* ---- the comparison of the value with what its text decodes to ---- */

static int same_number(lua_State *L, int a, int b)
{
    lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
#if SG_HAS_INTEGERS
    if (lua_isinteger(L, a) != lua_isinteger(L, b))
        return 0; /* issue 24, item 5: integers stay integers, floats floats */
    if (lua_isinteger(L, a))
        return lua_tointeger(L, a) == lua_tointeger(L, b);
#endif
    return x == y && signbit(x) == signbit(y);
}

static void describe(lua_State *L, int index, const char *what)
{
    int type = lua_type(L, index);
    if (type == LUA_TNUMBER)
        fprintf(stderr, "%s: %s %.17g\n", what,
#if SG_HAS_INTEGERS
                lua_isinteger(L, index) ? "integer" : "float",
#else
                "number",
#endif
                (double)lua_tonumber(L, index));
    else
        fprintf(stderr, "%s: a %s\n", what, lua_typename(L, type));
}

/* Does the decoded value at b stand for the value at a? */
static int same_as_sent(model *m, int a, int b)
{
    lua_State *L = m->L;
    int ta = lua_type(L, a), tb = lua_type(L, b);
    luaL_checkstack(L, 8, "fuzz: same_as_sent");
    if (ta == LUA_TLIGHTUSERDATA && lua_touserdata(L, a) != NULL) { /* cjson.empty_array */
        return tb == LUA_TTABLE && is_array_mark(m, b) && table_kind(m, b) == 0;
    }
    if (ta != tb) {
        describe(L, a, "sent");
        describe(L, b, "received");
        return 0;
    }
    switch (ta) {
    case LUA_TNUMBER:
        if (!same_number(L, a, b)) {
            describe(L, a, "sent");
            describe(L, b, "received");
            return 0;
        }
        return 1;
    case LUA_TTABLE: {
        long kind = table_kind(m, a);
        int ok = 1;
        if (kind >= 0) {
            long i;
            if (!is_array_mark(m, b) || table_kind(m, b) != kind) {
                fprintf(stderr, "an array of %ld came back as something else\n", kind);
                return 0;
            }
            for (i = 1; ok && i <= kind; i++) {
                lua_rawgeti(L, a, (int)i);
                lua_rawgeti(L, b, (int)i);
                ok = same_as_sent(m, lua_gettop(L) - 1, lua_gettop(L));
                lua_pop(L, 2);
            }
            return ok;
        }
        if (lua_getmetatable(L, b)) {
            lua_pop(L, 1);
            fprintf(stderr, "an object came back with a metatable\n");
            return 0;
        }
        if (table_kind(m, b) != -1)
            return 0;
        {
            long na = 0, nb = 0;
            lua_pushnil(L);
            while (ok && lua_next(L, a)) {
                na++;
                lua_pushvalue(L, -2);
                lua_rawget(L, b);
                ok = same_as_sent(m, lua_gettop(L) - 1, lua_gettop(L));
                lua_pop(L, 2);
            }
            if (!ok) {
                lua_pop(L, 1);
                return 0;
            }
            lua_pushnil(L);
            while (lua_next(L, b)) {
                nb++;
                lua_pop(L, 1);
            }
            if (na != nb)
                fprintf(stderr, "an object of %ld members came back with %ld\n", na, nb);
            return na == nb;
        }
    }
    default:
        return lua_rawequal(L, a, b);
    }
}

/* run(job, checks) */
static int run(lua_State *L)
{
    const encode_job *job = (const encode_job *)lua_touserdata(L, 1);
    int checks = lua_toboolean(L, 2);
    builder b;
    model m;
    int value, root_given, can_hold, status, encode;
    uint8_t first;
    const char *root = "body";
    size_t root_len = 4;

    lua_settop(L, 0);
    /* the module, as require would open it */
    lua_pushcfunction(L, luaopen_soracom_groups_core);
    lua_call(L, 0, 1);
    lua_getfield(L, 1, "encode_json");
    encode = lua_gettop(L);

    /* a fake cjson in package.loaded: what the encoder looks for there */
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "_LOADED");
    }
    lua_newtable(L);
    lua_newtable(L);
    lua_setfield(L, -2, "array_mt");
    lua_newtable(L);
    lua_setfield(L, -2, "empty_array_mt");
    lua_pushlightuserdata(L, (void *)&interesting_numbers); /* any address but NULL */
    lua_setfield(L, -2, "empty_array");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "cjson");
    b.cjson = lua_gettop(L);

    luaL_getmetatable(L, SG_ARRAY_METATABLE);
    b.array_mt = lua_gettop(L);
    lua_newtable(L); /* every metamethod the encoder could trip over raises */
    {
        static const char *const events[] = {"__index", "__newindex", "__len", "__pairs",
                                             "__ipairs", "__eq", "__lt", "__le", "__call",
                                             "__tostring", "__concat", "__name"};
        size_t i;
        for (i = 0; i < sizeof events / sizeof events[0]; i++) {
            lua_pushcfunction(L, not_json);
            lua_setfield(L, -2, events[i]);
        }
    }
    b.raising_mt = lua_gettop(L);
    lua_newtable(L);
    b.pool = lua_gettop(L);
    b.pool_count = 0;
    b.nodes = 0;
    b.L = L;
    b.r.p = job->data;
    b.r.n = job->size;

    first = next_byte(&b.r);
    root_given = first & 1;
    if (root_given) {
        push_string(&b);
        root = lua_tolstring(L, -1, &root_len); /* stays on the stack */
    }
    build_value(&b, 0, 0);
    value = lua_gettop(L);

    m.L = L;
    m.array_mt = b.array_mt;
    lua_getfield(L, b.cjson, "array_mt");
    m.cjson_array_mt = lua_gettop(L);
    lua_getfield(L, b.cjson, "empty_array_mt");
    m.cjson_empty_array_mt = lua_gettop(L);
    lua_getfield(L, b.cjson, "empty_array");
    m.cjson_empty_array = lua_gettop(L);
    lua_newtable(L);
    m.open = lua_gettop(L);
    m.visits = 0;
    m.bytes = 0;
    m.cycle = 0;
    can_hold = json_can_hold(&m, value, 0);
    if (too_big(&m))
        return 0; /* too big to encode in a fuzzer's time */

    lua_pushvalue(L, encode);
    lua_pushvalue(L, value);
    if (root_given)
        lua_pushvalue(L, value - 1);
    status = lua_pcall(L, root_given ? 2 : 1, 1, 0);
    if (!checks)
        return 0; /* a memory error, or any result: only memory safety matters */
    FUZZ_CHECK(status != LUA_ERRMEM);
    if (status != LUA_OK) {
        size_t n;
        const char *message = lua_tolstring(L, -1, &n);
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
        if (can_hold) {
            fprintf(stderr, "encode_json refuses a value JSON can hold: %.2000s\n", message);
            abort();
        }
        if (n > MAX_MESSAGE) {
            fprintf(stderr, "encode_json's message is %zu bytes long: %.200s...\n", n, message);
            abort();
        }
        /* the root name's start (a message may cut a long one, and the encoder takes it
         * as a C string) */
        root_len = strlen(root) < 16 ? strlen(root) : 16;
        if (n < root_len || memcmp(message, root, root_len) != 0) {
            fprintf(stderr, "encode_json's message does not start with the root name: %.2000s\n",
                    message);
            abort();
        }
        return 0;
    }
    {
        size_t n;
        const char *text = lua_tolstring(L, -1, &n);
        sg_json_error error;
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
        if (!can_hold) {
            fprintf(stderr, "encode_json accepts a value JSON cannot hold: %.2000s\n", text);
            abort();
        }
        if (!sg_json_decode(L, text, n, 0, &error)) {
            fprintf(stderr, "encode_json wrote a text that does not decode (line %zu, column "
                    "%zu: %s): %.2000s\n", error.line, error.column, error.message, text);
            abort();
        }
        if (!same_as_sent(&m, value, lua_gettop(L))) {
            fprintf(stderr, "the encoded text decodes to another value: %.2000s\n", text);
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    encode_job job;
    job.data = data;
    job.size = size;
    fuzz_run_twice(run, &job, data, size, 0);
    return 0;
}
