/* libFuzzer target: the curl session's header keeping (csrc/kept_headers.c), which
 * reads the raw lines libcurl hands to CURLOPT_HEADERFUNCTION.
 *
 * Byte 0 is how many times (1..64) the rest is fed, so that the size limits are
 * reached from short inputs; byte 1 whether the request was a HEAD. The rest is cut
 * into lines after each '\n' and also at points picked from its hash (libcurl hands
 * whole lines, but a line without its end, NUL bytes, or a status line in the middle
 * must be read safely too). After each line the state is checked; at the end the kept
 * values are pushed as a response would push them (next key, Retry-After, rate
 * limits, the refusal's message), in a Lua state that may run out of memory.
 *
 * Build and run: scripts/fuzz. Reproduce: build/fuzz/fuzz_header_lines CRASH_FILE */
#include <string.h>
#include "fuzz_common.h"
#include "kept_headers.h"

typedef struct {
    const uint8_t *data;
    size_t size;
} lines_job;

/* The invariants that hold after every line. */
static void check_state(const sg_kept_headers *k, int accepted, size_t fed)
{
    int i;
    FUZZ_CHECK(accepted == (k->refusal == SG_KEPT_OK));
    if (accepted) {
        FUZZ_CHECK(k->head_bytes <= SG_HEADER_BYTES_MAX);
        FUZZ_CHECK(k->trailer_bytes <= SG_TRAILER_BYTES_MAX);
    }
    for (i = 0; i < SG_KEPT_COUNT; i++) {
        size_t first_len, all_len;
        const char *first = sg_kept_first(k, i, &first_len);
        const char *all = sg_kept_all(k, i, &all_len);
        lua_Integer value;
        FUZZ_CHECK(k->first_len[i] <= k->values[i].len);
        /* values are bytes of the lines fed, plus ", " or " " between them */
        FUZZ_CHECK(k->values[i].len <= 2 * fed);
        FUZZ_CHECK((all == NULL) == (k->count[i] == 0));
        if (first != NULL) {
            FUZZ_CHECK(all != NULL && first == all && first_len <= all_len);
            FUZZ_CHECK(first_len > 0);
        }
        if (sg_kept_integer(k, i, &value))
            FUZZ_CHECK(first != NULL && value >= 0 && value <= 999999999999999);
    }
}

/* Feeds the input; returns whether the last line was accepted. */
static int feed(sg_kept_headers *k, const lines_job *job)
{
    const char *text = (const char *)job->data + 2;
    size_t n = job->size - 2, fed = 0;
    unsigned rounds = 1u + job->data[0] % 64u, r;
    uint32_t h = fuzz_hash(job->data, job->size);
    int accepted = 1;
    sg_kept_reset(k, job->data[1] & 1);
    for (r = 0; r < rounds && accepted; r++) {
        size_t start = 0;
        while (start < n && accepted) {
            const char *lf = memchr(text + start, '\n', n - start);
            size_t end = lf ? (size_t)(lf - text) + 1 : n;
            h = h * 1103515245u + 12345u;
            if ((h >> 16) % 8 == 0 && end - start > 1) /* a cut inside the line */
                end = start + 1 + (h >> 8) % (end - start - 1);
            accepted = sg_kept_line(k, text + start, end - start);
            fed += end - start;
            check_state(k, accepted, fed);
            start = end;
        }
    }
    if (!accepted) /* refused stays refused */
        FUZZ_CHECK(sg_kept_line(k, "X: y\r\n", 6) == 0);
    return accepted;
}

/* run(job, checks) */
static int run(lua_State *L)
{
    const lines_job *job = (const lines_job *)lua_touserdata(L, 1);
    int checks = lua_toboolean(L, 2);
    sg_kept_headers *k;
    size_t key_len, link_len, retry_len, refresh_len;
    const char *key, *link, *retry, *refresh;
    int accepted;

    lua_settop(L, 0);
    /* owned by a userdata, as the session's are, so a memory error frees nothing twice */
    k = (sg_kept_headers *)lua_newuserdata(L, sizeof *k);
    memset(k, 0, sizeof *k);
    luaL_getmetatable(L, "fuzz.kept");
    lua_setmetatable(L, -2);
    feed(k, job);
    accepted = feed(k, job); /* twice: buffers reused after a reset */

    key = sg_kept_first(k, SG_KEPT_NEXT_KEY, &key_len);
    link = sg_kept_all(k, SG_KEPT_LINK, &link_len);
    sg_push_next_key(L, key, key_len, link, link_len);
    if (checks)
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING || lua_isnil(L, -1));
    retry = sg_kept_first(k, SG_KEPT_RETRY_AFTER, &retry_len);
    refresh = sg_kept_first(k, SG_KEPT_RATELIMIT_REFRESH, &refresh_len);
    sg_push_error(L, "http", "x");
    sg_set_retry_after(L, retry, retry_len, refresh, refresh_len);
    lua_getfield(L, -1, "retry_after");
    if (checks && !lua_isnil(L, -1)) {
        lua_Number wait = lua_tonumber(L, -1);
        FUZZ_CHECK(wait >= 0 && wait <= SG_MAX_RETRY_AFTER);
    }
    if (!accepted) {
        int code = sg_kept_push_refusal(L, k);
        if (checks) {
            FUZZ_CHECK(code == 27 || code == 52 || code == 56 || code == 61);
            FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING && sg_rawlen(L, -1) > 0);
        }
    }
    return 0;
}

static int kept_gc(lua_State *L)
{
    sg_kept_free((sg_kept_headers *)lua_touserdata(L, 1));
    return 0;
}

/* run, in a state where the userdata's metatable exists */
static int setup_and_run(lua_State *L)
{
    if (luaL_newmetatable(L, "fuzz.kept")) {
        lua_pushcfunction(L, kept_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    return run(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lines_job job;
    if (size < 2)
        return 0;
    job.data = data;
    job.size = size;
    fuzz_run_twice(setup_and_run, &job, data, size, 0);
    return 0;
}
