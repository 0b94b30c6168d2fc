/* The response headers the library reads, kept from the lines libcurl hands to a
 * CURLOPT_HEADERFUNCTION callback, so that no libcurl headers API (7.83+) is needed.
 * Only the final response's headers are kept (a status line starts afresh: 1xx,
 * a proxy's CONNECT answer), trailers are counted but not kept, and every line is
 * bounded: these limits are the ones of both transports (nginx.lua mirrors them, and
 * spec/nginx_spec.lua checks both at each boundary). They are libcurl 7.88's own, so
 * that what one transport refuses the other refuses too. */
#ifndef SORACOM_GROUPS_KEPT_HEADERS_H
#define SORACOM_GROUPS_KEPT_HEADERS_H

#include <stddef.h>
#include "membuf.h"

/* Bytes of one status or header line, CR LF included (libcurl: CURL_MAX_HTTP_HEADER,
 * which a line must stay under). */
#define SG_HEADER_LINE_MAX (100 * 1024 - 1)
/* Bytes of all status and header lines of a response, 1xx ones and the empty lines
 * included (libcurl: MAX_HTTP_RESP_HEADER_SIZE). */
#define SG_HEADER_BYTES_MAX (300 * 1024)
/* Bytes of one trailer line, CR LF included (libcurl: DYN_H1_TRAILER, a line must stay
 * under it), and of all trailer lines but the closing empty one, which libcurl does not
 * hand to the callback (libcurl has no limit of its own; ours is the headers'). */
#define SG_TRAILER_LINE_MAX (4 * 1024 - 1)
#define SG_TRAILER_BYTES_MAX SG_HEADER_BYTES_MAX

enum {
    SG_KEPT_NEXT_KEY,          /* x-soracom-next-key */
    SG_KEPT_LINK,              /* link */
    SG_KEPT_RETRY_AFTER,       /* retry-after */
    SG_KEPT_RATELIMIT_LIMIT,   /* x-soracom-ratelimit-limit */
    SG_KEPT_RATELIMIT_REMAINING, /* x-soracom-ratelimit-remaining */
    SG_KEPT_RATELIMIT_REFRESH, /* x-soracom-ratelimit-seconds-before-refresh */
    SG_KEPT_TRANSFER_ENCODING, /* transfer-encoding: only chunked is accepted */
    SG_KEPT_COUNT
};

/* Why a response was refused while its lines were read. */
typedef enum {
    SG_KEPT_OK,
    SG_KEPT_NO_MEMORY,
    SG_KEPT_LINE_TOO_LONG,      /* a status or header line */
    SG_KEPT_HEAD_TOO_LARGE,
    SG_KEPT_TRAILER_TOO_LONG,   /* one trailer line */
    SG_KEPT_TRAILERS_TOO_LARGE,
    SG_KEPT_SWITCHED,           /* a 101 nobody asked for */
    SG_KEPT_TRANSFER_CODING     /* a transfer coding other than chunked */
} sg_kept_refusal;

typedef enum { SG_PHASE_START, SG_PHASE_HEAD, SG_PHASE_AFTER_HEAD } sg_kept_phase;

typedef struct {
    /* Each kept header's values in order, trimmed, joined with ", " (RFC 9110 5.3);
     * first_len[i] is the length of the first one. */
    sg_membuf values[SG_KEPT_COUNT];
    size_t first_len[SG_KEPT_COUNT];
    unsigned count[SG_KEPT_COUNT];
    int last;               /* the previous field line's header (index), -1: another, -2: none */
    sg_kept_phase phase;    /* AFTER_HEAD: the empty line after a head was read */
    long status;            /* of the last status line, 0 before any */
    int no_body;            /* a HEAD request: no body, so no transfer coding to check */
    size_t head_bytes, trailer_bytes;
    sg_kept_refusal refusal;
} sg_kept_headers;

/* Empties k for a new exchange, keeping its buffers' memory. */
void sg_kept_reset(sg_kept_headers *k, int no_body);
/* Reads one line as libcurl hands it (CR LF included, NUL bytes possible). Returns 0
 * when the response is refused (k->refusal says why): the transfer must stop. */
int sg_kept_line(sg_kept_headers *k, const char *line, size_t n);
/* A header's first value (NULL when absent or empty), or all its values joined. */
const char *sg_kept_first(const sg_kept_headers *k, int which, size_t *len);
const char *sg_kept_all(const sg_kept_headers *k, int which, size_t *len);
/* The refusal's message (pushed onto the stack) and libcurl error number. */
int sg_kept_push_refusal(lua_State *L, const sg_kept_headers *k);
/* Parses a header's first value as a non-negative integer: digits only, at most 15
 * of them after any leading zeros ("0000000000000001" is 1). Returns 0 when absent or
 * anything else. */
int sg_kept_integer(const sg_kept_headers *k, int which, lua_Integer *value);
void sg_kept_free(sg_kept_headers *k);

#endif
