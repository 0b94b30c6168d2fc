/* Keeps the few response headers the library reads, from the raw lines of a
 * CURLOPT_HEADERFUNCTION callback. Written by hand because libcurl's own reader,
 * curl_easy_header, needs libcurl 7.83+ built with the headers API. The rules are the
 * nginx transport's (nginx.lua, read_fields): names in any case, values trimmed,
 * repeated headers kept apart, an obsolete folded line joined to the previous value
 * with one space. No Lua code runs here except in sg_kept_push_refusal. */
#include <curl/curl.h>
#include <string.h>
#include <strings.h>
#include "kept_headers.h"

static const struct {
    const char *name;
    size_t len;
} kept_names[SG_KEPT_COUNT] = {
    {"x-soracom-next-key", 18},
    {"link", 4},
    {"retry-after", 11},
    {"x-soracom-ratelimit-limit", 25},
    {"x-soracom-ratelimit-remaining", 29},
    {"x-soracom-ratelimit-seconds-before-refresh", 42},
    {"transfer-encoding", 17},
};

#define LAST_OTHER (-1)
#define LAST_NONE (-2)

/* Lua's %s, which the nginx transport trims with. */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static const char *trim(const char *s, size_t *n)
{
    while (*n > 0 && is_space(*s)) {
        s++;
        (*n)--;
    }
    while (*n > 0 && is_space(s[*n - 1]))
        (*n)--;
    return s;
}

void sg_kept_reset(sg_kept_headers *k, int no_body)
{
    int i;
    for (i = 0; i < SG_KEPT_COUNT; i++) {
        k->values[i].len = 0;
        k->first_len[i] = 0;
        k->count[i] = 0;
    }
    k->last = LAST_NONE;
    k->phase = SG_PHASE_START;
    k->status = 0;
    k->no_body = no_body;
    k->head_bytes = k->trailer_bytes = 0;
    k->refusal = SG_KEPT_OK;
}

void sg_kept_free(sg_kept_headers *k)
{
    int i;
    for (i = 0; i < SG_KEPT_COUNT; i++)
        sg_membuf_free(&k->values[i]);
}

static int refuse(sg_kept_headers *k, sg_kept_refusal why)
{
    k->refusal = why;
    return 0;
}

/* "HTTP/<version> <3 digits>...": the status, or 0 when the line is not a status line. */
static long status_of(const char *s, size_t n)
{
    size_t i = 5;
    if (n < 5 || memcmp(s, "HTTP/", 5) != 0)
        return 0;
    for (; i < n && s[i] != ' '; i++)
        if (s[i] == ':')
            return 0; /* a field named "HTTP/..." (a trailer, say) */
    if (n - i < 4)
        return 0;
    s += i + 1;
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
        return 0;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

static int add_value(sg_kept_headers *k, int which, const char *v, size_t n)
{
    sg_membuf *buf = &k->values[which];
    if (k->count[which] > 0 && !sg_membuf_append(buf, ", ", 2))
        return refuse(k, SG_KEPT_NO_MEMORY);
    if (!sg_membuf_append(buf, v, n))
        return refuse(k, SG_KEPT_NO_MEMORY);
    if (k->count[which]++ == 0)
        k->first_len[which] = n;
    return 1;
}

/* An obs-fold line continues the previous field's last value. */
static int add_folded(sg_kept_headers *k, const char *v, size_t n)
{
    int which = k->last;
    if (which < 0)
        return 1; /* continues a header that is not kept (or none: ignored, as libcurl does) */
    if (!sg_membuf_append(&k->values[which], " ", 1) ||
        !sg_membuf_append(&k->values[which], v, n))
        return refuse(k, SG_KEPT_NO_MEMORY);
    if (k->count[which] == 1)
        k->first_len[which] = k->values[which].len;
    return 1;
}

static int add_field(sg_kept_headers *k, const char *s, size_t n)
{
    const char *colon;
    size_t name_len;
    int which;
    k->last = LAST_OTHER;
    /* Most lines are of other headers: every kept name starts with one of these
     * letters, in either case. (A name with a space in it, or a line without a colon,
     * is ignored as any other header: no kept name holds a space or a colon.) */
    switch (s[0] | 0x20) {
    case 'x': case 'l': case 'r': case 't':
        break;
    default:
        return 1;
    }
    colon = memchr(s, ':', n);
    if (colon == NULL)
        return 1; /* not "name: value": ignored */
    name_len = (size_t)(colon - s);
    for (which = 0; which < SG_KEPT_COUNT; which++) {
        if (kept_names[which].len == name_len &&
            strncasecmp(s, kept_names[which].name, name_len) == 0) {
            size_t value_len = n - name_len - 1;
            const char *value = trim(colon + 1, &value_len);
            k->last = which;
            return add_value(k, which, value, value_len);
        }
    }
    return 1;
}

/* The end of a final response's head: is the body one both transports can read? */
static int head_done(sg_kept_headers *k)
{
    size_t n;
    const char *coding;
    if (k->status == 101)
        return refuse(k, SG_KEPT_SWITCHED);
    if (k->status < 200 || k->no_body || k->status == 204 || k->status == 304 ||
        k->count[SG_KEPT_TRANSFER_ENCODING] == 0)
        return 1;
    n = k->values[SG_KEPT_TRANSFER_ENCODING].len;
    coding = trim(k->values[SG_KEPT_TRANSFER_ENCODING].data, &n);
    if (n != 7 || strncasecmp(coding, "chunked", 7) != 0)
        return refuse(k, SG_KEPT_TRANSFER_CODING);
    return 1;
}

int sg_kept_line(sg_kept_headers *k, const char *line, size_t n)
{
    size_t len = n; /* without the line end */
    if (k->refusal != SG_KEPT_OK)
        return 0;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (k->phase != SG_PHASE_HEAD) {
        long status = status_of(line, len);
        /* libcurl hands the status line first; after a head, another one starts the
         * next response (after a 1xx, or a proxy's answer to CONNECT) */
        if (status != 0 || k->phase == SG_PHASE_START) {
            int i;
            for (i = 0; i < SG_KEPT_COUNT; i++) {
                k->values[i].len = 0;
                k->first_len[i] = 0;
                k->count[i] = 0;
            }
            k->status = status;
            k->phase = SG_PHASE_HEAD;
            k->last = LAST_NONE;
            k->trailer_bytes = 0;
            k->head_bytes += n;
            if (n > SG_HEADER_LINE_MAX)
                return refuse(k, SG_KEPT_LINE_TOO_LONG);
            if (k->head_bytes > SG_HEADER_BYTES_MAX)
                return refuse(k, SG_KEPT_HEAD_TOO_LARGE);
            return 1;
        }
        k->trailer_bytes += n; /* a trailer: counted, not kept */
        if (n > SG_TRAILER_LINE_MAX)
            return refuse(k, SG_KEPT_TRAILER_TOO_LONG);
        if (k->trailer_bytes > SG_TRAILER_BYTES_MAX)
            return refuse(k, SG_KEPT_TRAILERS_TOO_LARGE);
        return 1;
    }
    k->head_bytes += n;
    if (n > SG_HEADER_LINE_MAX)
        return refuse(k, SG_KEPT_LINE_TOO_LONG);
    if (k->head_bytes > SG_HEADER_BYTES_MAX)
        return refuse(k, SG_KEPT_HEAD_TOO_LARGE);
    if (len == 0) {
        k->phase = SG_PHASE_AFTER_HEAD;
        return head_done(k);
    }
    if (line[0] == ' ' || line[0] == '\t') {
        size_t value_len = len;
        const char *value = trim(line, &value_len);
        return add_folded(k, value, value_len);
    }
    return add_field(k, line, len);
}

const char *sg_kept_first(const sg_kept_headers *k, int which, size_t *len)
{
    *len = k->first_len[which];
    return k->count[which] > 0 && *len > 0 ? k->values[which].data : NULL;
}

const char *sg_kept_all(const sg_kept_headers *k, int which, size_t *len)
{
    *len = k->values[which].len;
    return k->count[which] > 0 ? (k->values[which].data ? k->values[which].data : "") : NULL;
}

int sg_kept_integer(const sg_kept_headers *k, int which, lua_Integer *value)
{
    size_t n, i, digits = 0;
    const char *s = sg_kept_first(k, which, &n);
    lua_Integer v = 0;
    if (s == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (digits > 0 || s[i] != '0')
            digits++; /* leading zeros add nothing, and count for nothing */
        if (digits > 15)
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *value = v;
    return 1;
}

int sg_kept_push_refusal(lua_State *L, const sg_kept_headers *k)
{
    switch (k->refusal) {
    case SG_KEPT_LINE_TOO_LONG:
        lua_pushfstring(L, "a response header line is longer than %d bytes",
                        (int)SG_HEADER_LINE_MAX);
        return CURLE_OUT_OF_MEMORY;
    case SG_KEPT_HEAD_TOO_LARGE:
        lua_pushfstring(L, "the response headers are larger than %d bytes",
                        (int)SG_HEADER_BYTES_MAX);
        return CURLE_RECV_ERROR;
    case SG_KEPT_TRAILER_TOO_LONG:
        lua_pushfstring(L, "a trailer line is longer than %d bytes", (int)SG_TRAILER_LINE_MAX);
        return CURLE_RECV_ERROR;
    case SG_KEPT_TRAILERS_TOO_LARGE:
        lua_pushfstring(L, "the response trailers are larger than %d bytes",
                        (int)SG_TRAILER_BYTES_MAX);
        return CURLE_RECV_ERROR;
    case SG_KEPT_SWITCHED:
        lua_pushliteral(L, "empty reply from server (101 Switching Protocols)");
        return CURLE_GOT_NOTHING;
    case SG_KEPT_TRANSFER_CODING: {
        size_t n;
        const char *coding = sg_kept_all(k, SG_KEPT_TRANSFER_ENCODING, &n);
        lua_pushliteral(L, "unsupported transfer encoding: ");
        lua_pushlstring(L, coding ? coding : "", coding ? n : 0);
        lua_concat(L, 2);
        return CURLE_BAD_CONTENT_ENCODING;
    }
    case SG_KEPT_NO_MEMORY:
    default:
        lua_pushliteral(L, "out of memory while reading the response headers");
        return CURLE_OUT_OF_MEMORY;
    }
}
