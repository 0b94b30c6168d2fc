/* libFuzzer target: percent-encoding and build_url.
 *
 * The input is read two ways:
 *   1. the whole of it as one value: sg_add_escaped into a buffer and the Lua escape
 *      function must give the same text; that text holds only RFC 3986 unreserved
 *      bytes and %XX with uppercase hex digits, and decoding it gives the input back;
 *   2. line 1 (up to the first '\n') as a path template, the next two lines as the
 *      values of the query parameters "a" and "b c", the lines after as path values:
 *      build_url, which may refuse (a template without its }, a missing value: a
 *      "bad argument" error) and otherwise must give endpoint .. path .. query, with
 *      the query "?a=" .. escape(line 2) .. "&b%20c=" .. escape(line 3).
 * Then the whole thing runs again with Lua's allocator failing part-way.
 *
 * Build and run: scripts/fuzz. Reproduce: build/fuzz/fuzz_url CRASH_FILE */
#include <string.h>
#include "fuzz_common.h"

#define ENDPOINT "http://h/v1"

typedef struct {
    const char *data;
    size_t size;
} url_job;

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int upper_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Checks that e is a valid escaping of s: unreserved bytes as they are, anything else
 * as %XX (uppercase), and that decoding e gives s. */
static void check_escaped(const char *s, size_t n, const char *e, size_t en)
{
    size_t i = 0, j = 0;
    while (j < en) {
        unsigned char c = (unsigned char)e[j];
        FUZZ_CHECK(i < n);
        if (c == '%') {
            int hi, lo;
            FUZZ_CHECK(j + 2 < en);
            hi = upper_hex((unsigned char)e[j + 1]);
            lo = upper_hex((unsigned char)e[j + 2]);
            FUZZ_CHECK(hi >= 0 && lo >= 0);
            FUZZ_CHECK((unsigned char)s[i] == (unsigned char)(hi * 16 + lo));
            FUZZ_CHECK(!is_unreserved((unsigned char)s[i])); /* nothing escaped needlessly */
            j += 3;
        } else {
            FUZZ_CHECK(is_unreserved(c));
            FUZZ_CHECK((unsigned char)s[i] == c);
            j++;
        }
        i++;
    }
    FUZZ_CHECK(i == n);
}

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

/* escape(buf, s): appends s escaped to the membuf; raises on memory errors only. */
static int add_escaped(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, 2, &n);
    sg_add_escaped(L, (sg_membuf *)lua_touserdata(L, 1), s, n);
    return 0;
}

/* Pushes the escaping of the string at index, made by sg_add_escaped. */
static void push_escaped(lua_State *L, int index)
{
    sg_membuf *buf;
    int status;
    index = lua_absindex(L, index);
    buf = sg_membuf_new(L);
    lua_pushcfunction(L, add_escaped);
    lua_pushlightuserdata(L, buf);
    lua_pushvalue(L, index);
    status = lua_pcall(L, 2, 0, 0);
    if (status != LUA_OK)
        lua_error(L); /* only memory errors: go on up */
    lua_pushlstring(L, buf->data ? buf->data : "", buf->len);
    sg_membuf_free(buf); /* as the core's functions do: not left to __gc */
    lua_remove(L, -2);
}

/* run(job, checks) */
static int run(lua_State *L)
{
    const url_job *job = (const url_job *)lua_touserdata(L, 1);
    int checks = lua_toboolean(L, 2);
    const char *p = job->data, *end = job->data + job->size, *e;
    const char *escaped, *url, *path;
    size_t escaped_len, url_len, path_len, len;
    int input, base, nargs, status, i;

    lua_settop(L, 0);
    lua_pushlstring(L, job->data, job->size);
    input = lua_gettop(L);

    /* 1. the whole input as one value */
    push_escaped(L, input);
    escaped = lua_tolstring(L, -1, &escaped_len);
    if (checks)
        check_escaped(job->data, job->size, escaped, escaped_len);
    lua_pushcfunction(L, sg_escape);
    lua_pushvalue(L, input);
    lua_call(L, 1, 1);
    if (checks) {
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
        FUZZ_CHECK(lua_rawequal(L, -1, -2)); /* the same text both ways */
    }
    lua_settop(L, input);

    /* 2. template, two query values, path values (a few: the 20 slots a C function
     * is given are enough, so no stack growth can fail in the memory-limited run) */
    base = lua_gettop(L);
    lua_pushcfunction(L, sg_build_url);
    lua_pushliteral(L, ENDPOINT);
    e = line_end(p, end);
    lua_pushlstring(L, p, (size_t)(e - p));
    p = e < end ? e + 1 : end;
    lua_createtable(L, 2, 0);
    lua_pushliteral(L, "a");
    lua_rawseti(L, -2, 1);
    lua_pushliteral(L, "b c");
    lua_rawseti(L, -2, 2);
    lua_createtable(L, 0, 2);
    e = line_end(p, end);
    lua_pushlstring(L, p, (size_t)(e - p));
    lua_setfield(L, -2, "a");
    p = e < end ? e + 1 : end;
    e = line_end(p, end);
    lua_pushlstring(L, p, (size_t)(e - p));
    lua_setfield(L, -2, "b c");
    p = e < end ? e + 1 : end;
    nargs = 4;
    while (p < end && nargs < 12) {
        e = line_end(p, end);
        lua_pushlstring(L, p, (size_t)(e - p));
        nargs++;
        p = e < end ? e + 1 : end;
    }
    status = lua_pcall(L, nargs, 2, 0);
    if (status == LUA_ERRMEM)
        lua_error(L);
    if (status != LUA_OK) {
        if (checks) {
            FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
            FUZZ_CHECK(strstr(lua_tostring(L, -1), "bad argument #") != NULL);
        }
        return 0;
    }
    if (!checks)
        return 0;
    url = lua_tolstring(L, base + 1, &url_len);
    path = lua_tolstring(L, base + 2, &path_len);
    FUZZ_CHECK(url != NULL && path != NULL);
    len = sizeof ENDPOINT - 1;
    FUZZ_CHECK(url_len >= len + path_len);
    FUZZ_CHECK(memcmp(url, ENDPOINT, len) == 0);
    FUZZ_CHECK(memcmp(url + len, path, path_len) == 0);
    {
        /* a template without parameters is the path as it is */
        const char *tpl_end = line_end(job->data, end);
        size_t tlen = (size_t)(tpl_end - job->data);
        if (memchr(job->data, '{', tlen) == NULL)
            FUZZ_CHECK(path_len == tlen && memcmp(path, job->data, tlen) == 0);
    }
    {
        /* the query: the two values given, escaped */
        const char *q = job->data, *qe = line_end(q, end);
        const char *query[2];
        size_t query_len[2];
        q = qe < end ? qe + 1 : end;
        for (i = 0; i < 2; i++) {
            qe = line_end(q, end);
            lua_pushlstring(L, q, (size_t)(qe - q));
            push_escaped(L, -1);
            query[i] = lua_tolstring(L, -1, &query_len[i]);
            q = qe < end ? qe + 1 : end;
        }
        FUZZ_CHECK(url_len == len + path_len + 3 + query_len[0] + 7 + query_len[1]);
        e = url + len + path_len;
        FUZZ_CHECK(memcmp(e, "?a=", 3) == 0);
        FUZZ_CHECK(memcmp(e + 3, query[0], query_len[0]) == 0);
        FUZZ_CHECK(memcmp(e + 3 + query_len[0], "&b%20c=", 7) == 0);
        FUZZ_CHECK(memcmp(e + 10 + query_len[0], query[1], query_len[1]) == 0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    url_job job;
    job.data = (const char *)data;
    job.size = size;
    fuzz_run_twice(run, &job, data, size, 0);
    return 0;
}
