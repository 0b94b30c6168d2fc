/* libFuzzer target: the JSON decoder, both modes, and the encoder on what it decodes.
 *
 * Each input is decoded with sg_json_decode, leniently then strictly. A refusal's line
 * and column must be where its offset is. The strict mode must accept only what the
 * lenient one does, to the same value, and refuse the rest for a repeated key or an
 * integer out of range, or else for the lenient one's reason at the same place. When
 * the input decodes, the value is encoded
 * with sg_json_encode, which must take it (the decoder accepts only what the encoder
 * writes back: UTF-8, finite numbers, one depth limit), the text is decoded again, and
 * the two values must be equal, their
 * encodings the same text (up to the order of object members, which follows the Lua
 * tables' iteration order) -- anything else aborts. Then the whole thing runs again with
 * Lua's allocator failing part-way (see fuzz_common.h).
 *
 * Build and run: scripts/fuzz. Reproduce: build/fuzz/fuzz_json CRASH_FILE */
#include <string.h>
#include "fuzz_common.h"

typedef struct {
    const char *data;
    size_t size;
} json_job;

/* encode(value, membuf) -> text, raising as sg_json_encode does */
static int encode(lua_State *L)
{
    sg_membuf *buf = (sg_membuf *)lua_touserdata(L, 2);
    buf->len = 0;
    sg_json_encode(L, 1, buf, "body");
    lua_pushlstring(L, buf->data ? buf->data : "", buf->len);
    return 1;
}

/* Pushes the JSON text of the value at index, or returns 0 (pushing nothing) when the
 * encoder refuses it. Memory errors go on up. */
static int try_encode(lua_State *L, int index, int buf_index, int checks)
{
    int status;
    lua_pushcfunction(L, encode);
    lua_pushvalue(L, index);
    lua_pushvalue(L, buf_index);
    status = lua_pcall(L, 2, 1, 0);
    if (status == LUA_OK)
        return 1;
    if (status == LUA_ERRMEM)
        lua_error(L);
    /* a refusal must say where: "body..." */
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
    FUZZ_CHECK(strncmp(lua_tostring(L, -1), "body", 4) == 0);
    if (checks) {
        fprintf(stderr, "the encoder refuses a decoded value: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_pop(L, 1);
    return 0;
}

/* Lua-level equality of two decoded values: same types and, for tables, the same
 * keys with equal values and the same metatable (the array mark of empty arrays).
 * Numbers compare by value: 1.0 (from "1.0") encodes as 1 and reads back as integer. */
static int same_value(lua_State *L, int a, int b, int depth)
{
    int ta = lua_type(L, a), tb = lua_type(L, b), ma, mb, same;
    size_t na = 0, nb = 0;
    if (ta != tb)
        return 0;
    if (ta != LUA_TTABLE)
        return lua_rawequal(L, a, b);
    FUZZ_CHECK(depth < SG_JSON_MAX_DEPTH + 2);
    luaL_checkstack(L, 8, "fuzz: same_value");
    ma = lua_getmetatable(L, a);
    mb = lua_getmetatable(L, b);
    if (ma != mb)
        same = 0;
    else
        same = !ma || lua_rawequal(L, -1, -2);
    lua_pop(L, ma + mb);
    if (!same)
        return 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        int value = lua_gettop(L), key = value - 1;
        na++;
        lua_pushvalue(L, key);
        lua_rawget(L, b);
        if (!same_value(L, value, lua_gettop(L), depth + 1)) {
            lua_pop(L, 3);
            return 0;
        }
        lua_pop(L, 2);
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        nb++;
        lua_pop(L, 1);
    }
    return na == nb;
}


/* Same bytes, in any order (members of an object may come out in another order). */
static int same_bytes(const char *a, const char *b, size_t n)
{
    size_t count[256] = {0};
    size_t i;
    for (i = 0; i < n; i++) {
        count[(unsigned char)a[i]]++;
        count[(unsigned char)b[i]]--;
    }
    for (i = 0; i < 256; i++)
        if (count[i] != 0)
            return 0;
    return 1;
}

static void dump(const char *label, const char *s, size_t n)
{
    fprintf(stderr, "%s (%zu bytes): %.*s\n", label, n, (int)(n > 2000 ? 2000 : n), s);
}

/* A refusal's line and column, counted again from its offset: lines end at \n, \r\n
 * or a lone \r, and columns count the bytes that start a UTF-8 sequence. */
static void check_position(const char *text, size_t len, const sg_json_error *error)
{
    size_t line = 1, column = 1, i;
    FUZZ_CHECK(error->message != NULL);
    FUZZ_CHECK(error->offset <= len);
    for (i = 0; i < error->offset; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\r' && i + 1 < len && text[i + 1] == '\n')
            continue;
        if (c == '\n' || c == '\r') {
            line++;
            column = 1;
        } else if ((c & 0xC0) != 0x80) {
            column++;
        }
    }
    if (error->line != line || error->column != column) {
        fprintf(stderr, "%s at offset %zu: said line %zu, column %zu; it is line %zu, column %zu\n",
                error->message, error->offset, error->line, error->column, line, column);
        abort();
    }
}

static int strict_only(const sg_json_error *error)
{
    return strncmp(error->message, "duplicate key \"", 15) == 0 ||
           strncmp(error->message, "integer too large for a Lua", 27) == 0;
}

/* The strict decoding of the input against the lenient one: lenient says whether
 * that succeeded, its value at the top of the stack if so. Leaves the stack as it was. */
static void check_strict(lua_State *L, const json_job *job, int lenient,
                         const sg_json_error *lenient_error, int checks)
{
    sg_json_error error;
    int top = lua_gettop(L);
    int ok = sg_json_decode(L, job->data, job->size, SG_JSON_STRICT, &error);
    if (!checks) {
        lua_settop(L, top);
        return;
    }
    if (ok) {
        FUZZ_CHECK(lua_gettop(L) == top + 1);
        if (!lenient) {
            fprintf(stderr, "strict accepts what lenient refuses (%s)\n", lenient_error->message);
            abort();
        }
        if (!same_value(L, top, top + 1, 0)) {
            fprintf(stderr, "strict and lenient decode to different values\n");
            abort();
        }
    } else {
        FUZZ_CHECK(lua_gettop(L) == top);
        check_position(job->data, job->size, &error);
        if (!strict_only(&error)) {
            /* then the lenient mode refuses it too, for the same reason, there */
            if (lenient || strcmp(error.message, lenient_error->message) != 0 ||
                error.offset != lenient_error->offset) {
                fprintf(stderr, "strict refuses (%s at %zu), lenient %s (%s at %zu)\n",
                        error.message, error.offset, lenient ? "accepts" : "refuses",
                        lenient ? "" : lenient_error->message,
                        lenient ? (size_t)0 : lenient_error->offset);
                abort();
            }
        } else if (!lenient) {
            /* a strict-only refusal comes before the lenient one's */
            FUZZ_CHECK(error.offset <= lenient_error->offset);
        }
    }
    lua_settop(L, top);
}

/* run(job, checks) */
static int run(lua_State *L)
{
    const json_job *job = (const json_job *)lua_touserdata(L, 1);
    int checks = lua_toboolean(L, 2);
    sg_json_error error;
    const char *text1, *text2;
    size_t len1, len2;
    int v1, v2, buf, ok;

    lua_settop(L, 0);
    ok = sg_json_decode(L, job->data, job->size, 0, &error);
    if (checks) {
        if (ok) {
            FUZZ_CHECK(lua_gettop(L) == 1);
        } else {
            FUZZ_CHECK(lua_gettop(L) == 0);
            check_position(job->data, job->size, &error);
        }
    }
    check_strict(L, job, ok, &error, checks);
    if (!ok)
        return 0;
    v1 = lua_gettop(L);
    sg_membuf_new(L);
    buf = lua_gettop(L);
    if (!try_encode(L, v1, buf, checks))
        return 0;
    text1 = lua_tolstring(L, -1, &len1);

    ok = sg_json_decode(L, text1, len1, 0, &error);
    if (!checks)
        return 0;
    if (!ok) {
        dump("encoded", text1, len1);
        fprintf(stderr, "the encoder's text does not decode: line %zu, column %zu: %s\n",
                error.line, error.column, error.message);
        abort();
    }
    v2 = lua_gettop(L);
    if (!same_value(L, v1, v2, 0)) {
        dump("encoded", text1, len1);
        fprintf(stderr, "decoding the encoded text gives another value\n");
        abort();
    }
    if (!try_encode(L, v2, buf, 1)) {
        dump("encoded", text1, len1);
        fprintf(stderr, "the encoder refuses the value it wrote the text of\n");
        abort();
    }
    text2 = lua_tolstring(L, -1, &len2);
    if (len1 != len2 || (memcmp(text1, text2, len1) != 0 && !same_bytes(text1, text2, len1))) {
        dump("first encoding", text1, len1);
        dump("second encoding", text2, len2);
        fprintf(stderr, "encode(decode(encode(x))) differs from encode(x)\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_job job;
    job.data = (const char *)data;
    job.size = size;
    fuzz_run_twice(run, &job, data, size, 0);
    return 0;
}
