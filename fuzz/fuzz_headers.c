/* libFuzzer target: the pagination headers and the response decoding.
 *
 * The input is read three ways:
 *   1. the whole of it as a Link header: sg_push_key_from_link;
 *   2. line 1 (up to the first '\n' or NUL) as the x-soracom-next-key header and
 *      line 2 (up to the next '\n' or NUL, or the end) as the Link header:
 *      sg_push_next_key, with and without the key;
 *   3. what follows line 2 as a response: a status from its first three bytes when
 *      they are digits (else 200), the rest as the body, with the two headers above:
 *      sg_push_response; when it gives an error, lines 1 and 2 are also read as the
 *      Retry-After and X-Soracom-Ratelimit-Seconds-Before-Refresh headers:
 *      sg_set_retry_after (neither is NUL-terminated: ASan sees any overread).
 * So a seed holding a bare Link header exercises 1 and 2, and
 * "KEY\n<LINK>\n404{...}" all three. Results are checked for their shape (number of
 * values, types, the key given back as is); anything else aborts.
 *
 * Build and run: scripts/fuzz. Reproduce: build/fuzz/fuzz_headers CRASH_FILE */
#include <string.h>
#include "fuzz_common.h"
#include "utf8.h"

typedef struct {
    const char *data;
    size_t size;
} headers_job;

static const char *line_end(const char *p, const char *end)
{
    while (p < end && *p != '\n' && *p != '\0')
        p++;
    return p;
}

/* The key is nil or a string no longer than max_len: the key header given back, or
 * a percent-decoded query value, never longer than the Link header. */
static void check_key_result(lua_State *L, size_t max_len)
{
    int t = lua_type(L, -1);
    FUZZ_CHECK(t == LUA_TSTRING || t == LUA_TNIL);
    if (t == LUA_TSTRING)
        FUZZ_CHECK(sg_rawlen(L, -1) <= max_len);
}

/* run(job, checks) */
static int run(lua_State *L)
{
    const headers_job *job = (const headers_job *)lua_touserdata(L, 1);
    int checks = lua_toboolean(L, 2);
    const char *p = job->data, *end = p + job->size;
    const char *key, *link, *rest, *body;
    size_t key_len, link_len, body_len;
    long status = 200;
    int n, i;

    lua_settop(L, 0);

    /* 1 */
    n = sg_push_key_from_link(L, p, job->size);
    if (checks) {
        FUZZ_CHECK(n == 0 || n == 1);
        FUZZ_CHECK(lua_gettop(L) == n);
        if (n == 1) {
            FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
            FUZZ_CHECK(sg_rawlen(L, -1) <= job->size);
        }
    }
    lua_settop(L, 0);

    /* 2 */
    key = p;
    key_len = (size_t)(line_end(p, end) - p);
    link = key + key_len < end ? key + key_len + 1 : end;
    link_len = (size_t)(line_end(link, end) - link);
    rest = link + link_len < end ? link + link_len + 1 : end;

    sg_push_next_key(L, key, key_len, link, link_len);
    if (checks) {
        FUZZ_CHECK(lua_gettop(L) == 1);
        check_key_result(L, key_len > 0 ? key_len : link_len);
        if (key_len > 0) {
            size_t got_len;
            const char *got = lua_tolstring(L, -1, &got_len);
            FUZZ_CHECK(got_len == key_len && memcmp(got, key, key_len) == 0);
        }
    }
    lua_settop(L, 0);
    sg_push_next_key(L, NULL, 0, link, link_len);
    if (checks) {
        FUZZ_CHECK(lua_gettop(L) == 1);
        check_key_result(L, link_len);
    }
    lua_settop(L, 0);

    /* 3 */
    body = rest;
    if (end - rest >= 3 && rest[0] >= '0' && rest[0] <= '9' && rest[1] >= '0' &&
        rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9') {
        status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
        body = rest + 3;
    }
    body_len = (size_t)(end - body);
    n = sg_push_response(L, status, body, body_len, key, key_len, link, link_len);
    if (!checks)
        return 0;
    FUZZ_CHECK(lua_gettop(L) == n);
    if (status >= 200 && status <= 299 && n == 3) {
        /* value, next key or nil, status */
        FUZZ_CHECK(lua_type(L, 1) != LUA_TNONE && lua_type(L, 1) != LUA_TNIL);
        FUZZ_CHECK(lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNIL);
        FUZZ_CHECK(lua_tointeger(L, 3) == status);
    } else {
        /* nil, {kind=..., message=..., status=...} */
        FUZZ_CHECK(n == 2);
        FUZZ_CHECK(lua_isnil(L, 1));
        FUZZ_CHECK(lua_type(L, 2) == LUA_TTABLE);
        lua_getfield(L, 2, "kind");
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
        if (status >= 200 && status <= 299)
            FUZZ_CHECK(strcmp(lua_tostring(L, -1), "decode") == 0);
        else
            FUZZ_CHECK(strcmp(lua_tostring(L, -1), "http") == 0);
        lua_getfield(L, 2, "message");
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING);
        /* never an empty message: a text or "HTTP <status> <reason>", and always
         * UTF-8, however the body was cut */
        FUZZ_CHECK(sg_rawlen(L, -1) > 0);
        {
            size_t message_len;
            const char *message = lua_tolstring(L, -1, &message_len);
            FUZZ_CHECK(sg_utf8_valid_prefix((const unsigned char *)message, message_len) ==
                       message_len);
        }
        lua_getfield(L, 2, "status");
        FUZZ_CHECK(lua_tointeger(L, -1) == status);
        lua_pop(L, 3);
        /* a wait is a number of seconds from 0 to a day, never inf or NaN */
        lua_pushvalue(L, 2);
        sg_set_retry_after(L, key_len > 0 ? key : NULL, key_len, link, link_len);
        lua_getfield(L, -1, "retry_after");
        if (!lua_isnil(L, -1)) {
            lua_Number wait = lua_tonumber(L, -1);
            FUZZ_CHECK(lua_type(L, -1) == LUA_TNUMBER);
            FUZZ_CHECK(wait >= 0 && wait <= SG_MAX_RETRY_AFTER);
        }
        lua_pop(L, 2);
    }
    for (i = 1; i <= n; i++)
        lua_tostring(L, i); /* touch the strings */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    headers_job job;
    job.data = (const char *)data;
    job.size = size;
    fuzz_run_twice(run, &job, data, size, 0);
    return 0;
}
