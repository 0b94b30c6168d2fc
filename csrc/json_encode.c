/* JSON encoding of request bodies. Unlike cjson it keeps arrays arrays: a table whose
 * keys are 1..n is an array, an empty table is an object unless it carries the
 * soracom.groups.array metatable (groups.array{}, every decoded array) or, when
 * lua-cjson is loaded, cjson.array_mt or cjson.empty_array_mt; cjson.empty_array is
 * []. Anything JSON cannot hold is an error that names where it sits in the body.
 * No Lua code runs: tables are read with raw access only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"
#include "numbers.h"
#include "utf8.h"

/* One step of the path from the root to the value being written, for error messages;
 * key points into a string that stays on the Lua stack while the step is live. */
typedef struct {
    const char *key;
    size_t key_len;
    long index;
} path_step;

typedef struct {
    lua_State *L;
    sg_membuf *buf;
    const char *root;
    size_t root_len;
    int array_mt;          /* stack indices of the array marks, fetched once per call; */
    int cjson_array_mt;    /* nil when absent */
    int cjson_empty_array_mt;
    int cjson_empty_array;
    path_step path[SG_JSON_MAX_DEPTH + 1];
} json_writer;

/* The most of a path an error message shows, the one place that says it: a step (a
 * key, or the root's name) is cut after PATH_STEP_SHOWN bytes, and a path longer than
 * PATH_SHOWN keeps its start and its end around an ellipsis. A message stays small
 * whatever the keys (a cycle through a megabyte key is a thousand of them), and is
 * built in C: no luaL_Buffer on a stack the encoder has filled. */
#define PATH_STEP_SHOWN 200
#define PATH_SHOWN 1024
#define ELLIPSIS "\xE2\x80\xA6" /* U+2026, unlike the '.' before a key */
#define ELLIPSIS_LEN 3

/* Writes step i of the path (0: the root's name, then each key or index) into out,
 * the key cut between characters, and returns its length (at most
 * PATH_STEP_SHOWN + 1 + ELLIPSIS_LEN). */
static size_t path_step_text(const json_writer *w, int i, char *out)
{
    const char *text;
    size_t n, o = 0;
    if (i == 0) {
        text = w->root;
        n = w->root_len;
    } else if (w->path[i - 1].key != NULL) {
        text = w->path[i - 1].key;
        n = w->path[i - 1].key_len;
        out[o++] = '.';
    } else {
        return (size_t)snprintf(out, PATH_STEP_SHOWN, "[%ld]", w->path[i - 1].index);
    }
    if (n > PATH_STEP_SHOWN) {
        size_t shown = PATH_STEP_SHOWN;
        /* text[n] continues a character: cut before that character, which starts at
         * most 3 bytes back (a text that is not UTF-8 is cut where it is) */
        for (n = shown; n > shown - 3 && ((unsigned char)text[n] & 0xC0) == 0x80; n--) {
        }
        if (((unsigned char)text[n] & 0xC0) == 0x80)
            n = shown;
        memcpy(out + o, text, n);
        memcpy(out + o + n, ELLIPSIS, ELLIPSIS_LEN);
        return o + n + ELLIPSIS_LEN;
    }
    memcpy(out + o, text, n);
    return o + n;
}

/* Raises "<path>: <what>", the path from the root to the value at depth. */
static void encode_error(json_writer *w, int depth, const char *what)
{
    char message[PATH_SHOWN + ELLIPSIS_LEN + 128];
    char step[PATH_STEP_SHOWN + 1 + ELLIPSIS_LEN + 1];
    size_t total = 0, tail = 0, o = 0, n;
    int i, head_end, tail_start = depth + 1;
    for (i = 0; i <= depth; i++)
        total += path_step_text(w, i, step);
    if (total <= PATH_SHOWN) {
        head_end = depth + 1;
    } else {
        /* the last steps (where the value is) in up to half, the first in the rest */
        while (tail_start > 1 &&
               tail + (n = path_step_text(w, tail_start - 1, step)) <= PATH_SHOWN / 2) {
            tail += n;
            tail_start--;
        }
        for (head_end = 0; head_end < tail_start; head_end++) {
            n = path_step_text(w, head_end, step);
            if (o + n > PATH_SHOWN - tail - ELLIPSIS_LEN)
                break;
            o += n;
        }
        o = 0;
    }
    for (i = 0; i < head_end; i++)
        o += path_step_text(w, i, message + o);
    if (head_end < tail_start) {
        memcpy(message + o, ELLIPSIS, ELLIPSIS_LEN);
        o += ELLIPSIS_LEN;
        for (i = tail_start; i <= depth; i++)
            o += path_step_text(w, i, message + o);
    }
    n = (size_t)snprintf(message + o, sizeof message - o, ": %s", what);
    o += n < sizeof message - o ? n : sizeof message - o - 1;
    luaL_checkstack(w->L, 2, "no room on the Lua stack for an encoding error");
    lua_pushlstring(w->L, message, o); /* a key may hold a NUL */
    lua_error(w->L);
}

static void add_string(json_writer *w, const char *s, size_t n, int depth)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    if (sg_utf8_valid_prefix((const unsigned char *)s, n) != n)
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

/* An integer as an integer; a float with a fraction or an exponent, so that it reads
 * back as a float (5.3+). Before 5.3 every number is a float, and a whole one up to
 * 2^53 (the decoder's limit for integers there) is written as the integer it stands
 * for. */
static void add_number(json_writer *w, int index, int depth)
{
    char text[SG_NUMBER_TEXT_MAX];
    size_t n;
    double d;
#if SG_HAS_INTEGERS
    if (lua_isinteger(w->L, index)) {
        n = sg_format_integer((int64_t)lua_tointeger(w->L, index), text);
        sg_membuf_add(w->L, w->buf, text, n);
        return;
    }
#endif
    d = (double)lua_tonumber(w->L, index);
    if (d != d || d == HUGE_VAL || d == -HUGE_VAL)
        encode_error(w, depth, "NaN and infinity cannot be sent as JSON");
#if !SG_HAS_INTEGERS
    if (d == floor(d) && fabs(d) <= 9007199254740992.0 && !(d == 0 && signbit(d))) {
        n = sg_format_integer((int64_t)d, text);
        sg_membuf_add(w->L, w->buf, text, n);
        return;
    }
#endif
    n = sg_format_double(d, text);
    if (n == 0)
        encode_error(w, depth, "a number could not be formatted");
    sg_membuf_add(w->L, w->buf, text, n);
}

static void add_value(json_writer *w, int index, int depth);

/* The array length when the table's keys are exactly 1..n, -1 for an object, -2 for
 * a mix. An empty table is an array only with the array metatable. */
static long array_length(const json_writer *w, int index)
{
    lua_State *L = w->L;
    long count = 0, max = 0;
    int marked = 0;
    if (lua_getmetatable(L, index)) {
        marked = lua_rawequal(L, -1, w->array_mt) || lua_rawequal(L, -1, w->cjson_array_mt) ||
                 lua_rawequal(L, -1, w->cjson_empty_array_mt);
        lua_pop(L, 1);
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
        w->path[depth].key_len = klen;
        add_value(w, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    sg_membuf_addchar(L, w->buf, '}');
}

static void add_table(json_writer *w, int index, int depth)
{
    long n;
    if (depth >= SG_JSON_MAX_DEPTH)
        encode_error(w, depth, "nested too deeply (is there a cycle?)");
    luaL_checkstack(w->L, 4, "body nested too deeply");
    n = array_length(w, index);
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
        if (lua_rawequal(L, index, w->cjson_empty_array)) {
            /* a level like any array: as deep as the decoder reads, no deeper */
            if (depth >= SG_JSON_MAX_DEPTH)
                encode_error(w, depth, "nested too deeply (is there a cycle?)");
            sg_membuf_add(L, w->buf, "[]", 2);
            return;
        }
        break;
    default:
        break;
    }
    {
        char what[64];
        snprintf(what, sizeof what, "a %s cannot be sent as JSON", luaL_typename(L, index));
        encode_error(w, depth, what);
    }
}

/* Pushes the field called name of the table at the (absolute) index, read raw; nil
 * when there is no table there. */
static void push_raw_field(lua_State *L, int index, const char *name)
{
    if (lua_type(L, index) != LUA_TTABLE) {
        lua_pushnil(L);
        return;
    }
    lua_pushstring(L, name);
    lua_rawget(L, index);
}

void sg_json_encode(lua_State *L, int index, sg_membuf *buf, const char *root_name)
{
    json_writer w;
    int base, cjson;
    if (index < 0)
        index = lua_gettop(L) + index + 1;
    base = lua_gettop(L);
    luaL_checkstack(L, 8, "encoding JSON");
    w.L = L;
    w.buf = buf;
    w.root = root_name;
    w.root_len = strlen(root_name);
    luaL_getmetatable(L, SG_ARRAY_METATABLE);
    w.array_mt = lua_gettop(L);
    /* package.loaded.cjson, if some code loaded it: what cjson.encode writes as [] */
    lua_pushliteral(L, "_LOADED");
    lua_rawget(L, LUA_REGISTRYINDEX);
    push_raw_field(L, lua_gettop(L), "cjson");
    cjson = lua_gettop(L);
    push_raw_field(L, cjson, "array_mt");
    w.cjson_array_mt = lua_gettop(L);
    push_raw_field(L, cjson, "empty_array_mt");
    w.cjson_empty_array_mt = lua_gettop(L);
    push_raw_field(L, cjson, "empty_array");
    w.cjson_empty_array = lua_gettop(L);
    if (lua_type(L, w.cjson_empty_array) != LUA_TLIGHTUSERDATA ||
        lua_touserdata(L, w.cjson_empty_array) == NULL) {
        lua_pushnil(L); /* never null: that is cjson.null */
        lua_replace(L, w.cjson_empty_array);
    }
    add_value(&w, index, 0);
    lua_settop(L, base);
}
