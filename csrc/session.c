/* A curl session: one libcurl easy handle per client, reused so that connections stay
 * alive. perform() blocks on the network; it is the only function of the core that
 * does, and the nginx transport does not use it. */
#ifdef SG_LEGACY_CURL
#define CURL_DISABLE_DEPRECATION /* the older options this build uses on purpose */
#endif
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "core.h"
#include "kept_headers.h"

#define EXCHANGE_METATABLE "soracom.groups.exchange"
#define DEFAULT_MAX_BODY (16u * 1024u * 1024u)
#define KEEP_BUFFER_BYTES (1024u * 1024u)
#define MAX_BODY_LIMIT ((size_t)1 << 30)

/* What one perform reads: the body and the kept headers. A perform holds them in a
 * userdata of its own while it pushes its results, because any allocation there may
 * run a __gc finalizer that performs again, on this session or another. */
typedef struct {
    sg_membuf body;
    sg_kept_headers kept;
    size_t max_body;
    int body_too_large;
    int not_sent; /* libcurl refused an option of the request (error says which) */
} sg_exchange;

/* A transfer run by a multi handle, from prepare to finish. */
enum { TRANSFER_NONE, TRANSFER_PREPARED, TRANSFER_RUNNING, TRANSFER_DONE };

struct sg_session {
    CURL *curl;
    struct curl_slist *headers;      /* for requests without a body */
    struct curl_slist *json_headers; /* the same plus the JSON content type */
    int headers_set;
    sg_exchange spare; /* the buffers of the last exchange, reused by the next */
    size_t max_body;
    /* the last response's X-Soracom-Ratelimit-* values; have_* say which parsed */
    lua_Integer rate_limit[3];
    int have_rate_limit[3];
    char error[CURL_ERROR_SIZE];
    int transfer;           /* TRANSFER_*: perform, prepare and set_headers need NONE */
    int transfer_paginated;
    CURLcode transfer_code; /* once DONE */
    int setup_failed;       /* DONE because prepare could not set the request up */
    sg_exchange transfer_ex; /* what the running transfer reads */
    sg_multi *multi;        /* while RUNNING; the session's user value [1] keeps it alive */
    int wakeup_cloexec;     /* perform's own multi handle has its wakeup pair close-on-exec */
    /* What the easy handle holds from the last request, so that the next one sets only
     * what differs (the same group read again and again sets nothing): the URL (when
     * url_known), the method of a request without a body (when method_known; a body
     * is set every time and taken back after), where the response goes. Forgotten
     * whenever libcurl refuses an option (it may have dropped the old value). */
    sg_membuf url;
    int url_known;
    char method[16];
    int method_known;
    void *response_to; /* WRITEDATA and HEADERDATA */
    /* The exchange userdata of the last perform or finish, empty, for the next one
     * (a new one each time costs an allocation and a finalizer per request); the
     * session's user value [2] keeps it alive. NULL while one is in use. */
    sg_exchange *idle_exchange;
    int body_lent;     /* POSTFIELDS points at a body until end_request */
};

static void forget_options(sg_session *s)
{
    s->url_known = 0;
    s->method_known = 0;
    s->response_to = NULL;
}

static void free_headers(sg_session *s)
{
    curl_slist_free_all(s->headers);
    curl_slist_free_all(s->json_headers);
    s->headers = s->json_headers = NULL;
    s->headers_set = 0;
}

static void free_exchange(sg_exchange *ex)
{
    sg_membuf_free(&ex->body);
    sg_kept_free(&ex->kept);
}

static int exchange_gc(lua_State *L)
{
    free_exchange((sg_exchange *)luaL_checkudata(L, 1, EXCHANGE_METATABLE));
    return 0;
}

/* The user value's slots: [1] the multi handle of a transfer, [2] the idle exchange. */
#define UV_MULTI 1
#define UV_EXCHANGE 2

/* Sets the session's user value [1] (see core.h) to the value at the top, popped: the
 * multi handle running its transfer, or nil. The table has that slot from the start:
 * nothing is allocated, so no finalizer runs here. */
static void set_multi_ref(lua_State *L, int session_index, const sg_session *s)
{
    session_index = sg_absindex(L, session_index);
    if (lua_touserdata(L, session_index) != (void *)s) {
        lua_pop(L, 1); /* its session is out of reach (see multi.c's push_session) */
        return;
    }
    sg_getuservalue(L, session_index);
    if (lua_type(L, -1) != LUA_TTABLE) { /* replaced through the debug library */
        lua_pop(L, 2);
        return;
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, UV_MULTI);
    lua_pop(L, 1);
}

static int session_close(lua_State *L)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SG_SESSION_METATABLE);
    lua_settop(L, 1);
    if (s->transfer == TRANSFER_RUNNING) {
        /* the easy handle leaves the multi handle first: the handle is reachable from
         * here (the user value's [1]), so it has not been freed, even if it has been
         * finalized already */
        sg_getuservalue(L, 1);
        if (lua_type(L, 2) == LUA_TTABLE)
            lua_rawgeti(L, 2, UV_MULTI);
        else
            lua_pushnil(L); /* replaced through the debug library */
        sg_multi_forget(L, 3, 1, s);
        lua_settop(L, 1);
    }
    s->transfer = TRANSFER_NONE;
    s->setup_failed = 0;
    free_exchange(&s->transfer_ex);
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
    }
    free_headers(s);
    free_exchange(&s->spare);
    sg_membuf_free(&s->url);
    forget_options(s);
    return 0;
}

static void check_not_closed(lua_State *L, const sg_session *s, const char *method)
{
    if (s->curl == NULL)
        luaL_error(L, "soracom.groups: session:%s: the client is closed", method);
}

static sg_session *check_open(lua_State *L, const char *method)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SG_SESSION_METATABLE);
    check_not_closed(L, s, method);
    return s;
}

/* The methods' upvalues: the session and exchange metatables, which the registry
 * holds too; comparing with an upvalue costs less than luaL_checkudata's look-up by
 * name (perform and finish run once a request). */
#define UP_SESSION_MT lua_upvalueindex(1)
#define UP_EXCHANGE_MT lua_upvalueindex(2)

/* Whether the value at index is a userdata with the metatable at mt_index. */
static int has_metatable(lua_State *L, int index, int mt_index)
{
    int same;
    if (lua_touserdata(L, index) == NULL || !lua_getmetatable(L, index))
        return 0;
    same = lua_rawequal(L, -1, mt_index);
    lua_pop(L, 1);
    return same;
}

/* self of a method, a session; raises as luaL_checkudata otherwise. */
static sg_session *self_session(lua_State *L)
{
    if (has_metatable(L, 1, UP_SESSION_MT))
        return (sg_session *)lua_touserdata(L, 1);
    return (sg_session *)luaL_checkudata(L, 1, SG_SESSION_METATABLE);
}

/* perform, prepare and set_headers change what a running transfer uses. */
static void check_no_transfer(lua_State *L, const sg_session *s, const char *method)
{
    if (s->transfer != TRANSFER_NONE)
        luaL_error(L, "soracom.groups: session:%s: the session has a transfer under way "
                   "(prepare ... finish)", method);
}

/* Raises "soracom.groups: <where>: <name> must be <what> (got <type>)". */
static int arg_error(lua_State *L, const char *where, const char *name, const char *what,
                     int index)
{
    return luaL_error(L, "soracom.groups: %s: %s must be %s (got %s)", where, name, what,
                      luaL_typename(L, index));
}

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
    sg_exchange *ex = (sg_exchange *)userdata;
    size_t n = size * count;
    if (ex->body.len + n > ex->max_body) {
        ex->body_too_large = 1;
        return 0;
    }
    if (!sg_membuf_append(&ex->body, data, n))
        return 0;
    return n;
}

static size_t on_header(char *data, size_t size, size_t count, void *userdata)
{
    sg_exchange *ex = (sg_exchange *)userdata;
    size_t n = size * count;
    return sg_kept_line(&ex->kept, data, n) ? n : 0;
}

static struct curl_slist *append_header(struct curl_slist *list, const char *line, int *ok)
{
    struct curl_slist *grown = curl_slist_append(list, line);
    if (grown == NULL)
        *ok = 0;
    return grown ? grown : list;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Checks a set_headers line as the nginx transport does: "Name: value", one line.
 * Returns 1 to send it, 0 for a framing header, which is the transport's business. */
static int check_header_line(lua_State *L, int i, const char *line, size_t len)
{
    static const char *const framing[] = {"content-length", "transfer-encoding", "connection"};
    const char *colon = memchr(line, ':', len);
    size_t name_len, k;
    if (memchr(line, '\r', len) || memchr(line, '\n', len))
        luaL_error(L, "soracom.groups: session:set_headers: header %d contains a line break", i);
    if (memchr(line, '\0', len))
        luaL_error(L, "soracom.groups: session:set_headers: header %d contains a NUL byte", i);
    name_len = colon ? (size_t)(colon - line) : 0;
    for (k = 0; k < name_len; k++)
        if (is_space(line[k]))
            name_len = 0;
    if (name_len == 0)
        luaL_error(L, "soracom.groups: session:set_headers: header %d is not \"Name: value\"", i);
    for (k = 0; k < sizeof framing / sizeof framing[0]; k++)
        if (strlen(framing[k]) == name_len && strncasecmp(line, framing[k], name_len) == 0)
            return 0;
    return 1;
}

/* set_headers({"Name: value", ...}): the headers of every request from now on
 * (credentials change rarely, so the lists are built once, not per request). The
 * lines are all checked before the old lists go. */
static int session_set_headers(lua_State *L)
{
    sg_session *s = check_open(L, "set_headers");
    int i, n, ok = 1;
    check_no_transfer(L, s, "set_headers");
    if (lua_type(L, 2) != LUA_TTABLE)
        return arg_error(L, "session:set_headers", "lines", "a table of header lines", 2);
    n = (int)sg_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        size_t len;
        const char *line;
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "soracom.groups: session:set_headers: header %d is not a "
                              "string (got %s)", i, luaL_typename(L, -1));
        line = lua_tolstring(L, -1, &len);
        check_header_line(L, i, line, len);
        lua_pop(L, 1);
    }
    /* libcurl holds the old list until the next request sets one: it goes first */
    s->method_known = 0;
    if (curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, NULL) != CURLE_OK) {
        /* (a pointer: never refused; if it were, the handle would keep a freed list) */
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
        free_headers(s);
        return luaL_error(L, "soracom.groups: session:set_headers: libcurl refused "
                          "CURLOPT_HTTPHEADER; the session is closed");
    }
    free_headers(s);
    for (i = 1; i <= n && ok; i++) {
        size_t len;
        const char *line;
        lua_rawgeti(L, 2, i);
        line = lua_tolstring(L, -1, &len);
        if (check_header_line(L, i, line, len)) {
            s->headers = append_header(s->headers, line, &ok);
            s->json_headers = append_header(s->json_headers, line, &ok);
        }
        lua_pop(L, 1);
    }
    s->json_headers = append_header(s->json_headers, "Content-Type: application/json", &ok);
    /* no "Expect: 100-continue" round trip before small JSON bodies */
    s->json_headers = append_header(s->json_headers, "Expect:", &ok);
    if (!ok) {
        free_headers(s);
        return luaL_error(L, "soracom.groups: out of memory");
    }
    s->headers_set = 1; /* an empty list is a setting too */
    return 0;
}

/* libcurl refuses some responses itself, before the header callback sees the line;
 * these give the messages the nginx transport gives for the same bytes. */
static const char *curl_refusal(lua_State *L, const sg_exchange *ex, CURLcode code,
                                const char *error)
{
    sg_kept_headers why = ex->kept;
    if (code == CURLE_OUT_OF_MEMORY && ex->kept.phase != SG_PHASE_AFTER_HEAD)
        why.refusal = SG_KEPT_LINE_TOO_LONG; /* the only "out of memory" of a head */
    else if (code == CURLE_RECV_ERROR && ex->kept.phase == SG_PHASE_AFTER_HEAD &&
             strncmp(error, "Out of memory in chunked-encoding", 33) == 0)
        why.refusal = SG_KEPT_TRAILER_TOO_LONG;
    else if (code == CURLE_RECV_ERROR && strncmp(error, "Too large response headers", 26) == 0)
        why.refusal = SG_KEPT_HEAD_TOO_LARGE;
    else
        return NULL;
    sg_kept_push_refusal(L, &why);
    return lua_tostring(L, -1);
}

/* Pushes nil, error_table. `error` is a copy of curl's message, made before any
 * allocation could run a finalizer that performs again (and rewrites it). */
static int push_network_error(lua_State *L, const sg_exchange *ex, CURLcode code,
                              const char *error)
{
    int curl_code = (int)code;
    const char *message;
    lua_pushnil(L);
    if (ex->not_sent) {
        lua_pushstring(L, error);
    } else if (ex->kept.refusal != SG_KEPT_OK) {
        curl_code = sg_kept_push_refusal(L, &ex->kept);
    } else if (ex->body_too_large) {
        lua_pushfstring(L, "the response body is larger than max_body_size (%d bytes)",
                        (int)ex->max_body); /* at most MAX_BODY_LIMIT: fits an int */
    } else if ((message = curl_refusal(L, ex, code, error)) == NULL) {
        lua_pushstring(L, error[0] ? error : curl_easy_strerror(code));
    }
    sg_push_error(L, "network", lua_tostring(L, -1));
    lua_remove(L, -2);
    lua_pushinteger(L, (lua_Integer)curl_code);
    lua_setfield(L, -2, "curl_code");
    return 2;
}

/* RFC 9110 tchar: the method goes on the request line as it is. */
static int is_method(const char *m, size_t n)
{
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL)))
            return 0;
    }
    return 1;
}

/* Every curl_easy_setopt is checked: libcurl refuses some values at run time (out of
 * memory for the copy of a string or a body, a string over its 8 MB limit such as a
 * huge URL), and a transfer run after a refusal would go without the option (libcurl
 * drops a string option's old value first: no URL at all, or no body but the
 * POSTFIELDSIZE given, which libcurl then reads from its default read callback,
 * stdin). A series of them records the first refusal, and its option's name. */
typedef struct {
    CURLcode code;
    const char *option;
} setopt_result;

static void check_setopt(setopt_result *r, const char *option, CURLcode code)
{
    if (code != CURLE_OK && r->code == CURLE_OK) {
        r->code = code;
        r->option = option;
    }
}

#define SETOPT(r, curl, option, value) check_setopt((r), #option, curl_easy_setopt((curl), option, value))

/* The request's method line is exactly `method`: libcurl's own GET and POST where they
 * are the method, CURLOPT_CUSTOMREQUEST for anything else (a GET with a body too). */
static void set_method(setopt_result *r, sg_session *s, const char *method, const char *body,
                       size_t body_len, int copy_body)
{
    int head = strcmp(method, "HEAD") == 0;
    SETOPT(r, s->curl, CURLOPT_NOBODY, head ? 1L : 0L);
    if (body != NULL) {
        /* the size first: COPYPOSTFIELDS copies that many bytes (a body may hold NULs) */
        SETOPT(r, s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (copy_body)
            SETOPT(r, s->curl, CURLOPT_COPYPOSTFIELDS, body);
        else
            SETOPT(r, s->curl, CURLOPT_POSTFIELDS, body);
        SETOPT(r, s->curl, CURLOPT_HTTPHEADER, s->json_headers);
        SETOPT(r, s->curl, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ? NULL : method);
    } else {
        if (!head)
            SETOPT(r, s->curl, CURLOPT_HTTPGET, 1L);
        SETOPT(r, s->curl, CURLOPT_HTTPHEADER, s->headers);
        SETOPT(r, s->curl, CURLOPT_CUSTOMREQUEST,
               head || strcmp(method, "GET") == 0 ? NULL : method);
    }
}

/* Moves an exchange's buffers from *from to *to (which holds none). */
static void move_exchange(sg_exchange *to, sg_exchange *from)
{
    *to = *from;
    memset(from, 0, sizeof *from);
}

static int exchange_empty(const sg_exchange *ex)
{
    int i;
    for (i = 0; i < SG_KEPT_COUNT; i++)
        if (ex->kept.values[i].data != NULL)
            return 0;
    return ex->body.data == NULL;
}

static void keep_rate_limit(sg_session *s, const sg_kept_headers *kept)
{
    static const int which[3] = {SG_KEPT_RATELIMIT_LIMIT, SG_KEPT_RATELIMIT_REMAINING,
                                 SG_KEPT_RATELIMIT_REFRESH};
    int i;
    for (i = 0; i < 3; i++)
        s->have_rate_limit[i] = sg_kept_integer(kept, which[i], &s->rate_limit[i]);
}

/* The arguments of perform and prepare: (method, url[, body[, paginated]]). */
typedef struct {
    const char *method, *url, *body;
    size_t method_len, url_len, body_len;
    int paginated;
} request_args;

/* Each type is checked before the value is read: lua_tolstring would turn a number into
 * a string in place (and method = 404 would then pass as "404"). */
static void check_request(lua_State *L, const char *where, request_args *r)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        arg_error(L, where, "method", "an HTTP method token", 2);
    if (lua_type(L, 3) != LUA_TSTRING)
        arg_error(L, where, "url", "a string without NUL bytes", 3);
    r->method = lua_tolstring(L, 2, &r->method_len);
    r->url = lua_tolstring(L, 3, &r->url_len);
    r->body = NULL;
    r->body_len = 0;
    if (!is_method(r->method, r->method_len))
        arg_error(L, where, "method", "an HTTP method token", 2);
    if (strlen(r->url) != r->url_len)
        arg_error(L, where, "url", "a string without NUL bytes", 3);
    if (lua_type(L, 4) == LUA_TSTRING)
        r->body = lua_tolstring(L, 4, &r->body_len);
    else if (!lua_isnoneornil(L, 4))
        arg_error(L, where, "body", "a string or nil", 4);
    if (!lua_isnoneornil(L, 5) && lua_type(L, 5) != LUA_TBOOLEAN)
        arg_error(L, where, "paginated", "a boolean or nil", 5);
    r->paginated = lua_toboolean(L, 5);
    lua_settop(L, 5);
}

/* Pushes a userdata that will own one exchange's buffers while results are pushed.
 * Made before the checks: a finalizer run by this allocation may perform, set_headers
 * or close, and nothing of the session may change between the checks and the end of
 * the transfer. */
static sg_exchange *new_exchange(lua_State *L)
{
    sg_exchange *ex = (sg_exchange *)lua_newuserdata(L, sizeof *ex);
    memset(ex, 0, sizeof *ex);
    luaL_getmetatable(L, EXCHANGE_METATABLE);
    lua_setmetatable(L, -2);
    return ex;
}

/* The session's idle exchange, pushed, or a new one (see new_exchange). The user value
 * is reachable through the debug library: what is found there is used only when it is
 * an exchange at the address the session left. A method's (see UP_EXCHANGE_MT). */
static sg_exchange *take_exchange(lua_State *L, sg_session *s)
{
    sg_exchange *ex = s->idle_exchange;
    if (ex != NULL) {
        s->idle_exchange = NULL;
        sg_getuservalue(L, 1);
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_rawgeti(L, -1, UV_EXCHANGE);
            if (lua_touserdata(L, -1) == (void *)ex && has_metatable(L, -1, UP_EXCHANGE_MT)) {
                lua_remove(L, -2);
                return ex;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return new_exchange(L);
}

/* Keeps the exchange at index (empty now) for the next perform or finish, unless
 * another one is kept already (one a finalizer's perform left meanwhile). Runs when
 * every result is pushed: the slot exists from the start, so that nothing is
 * allocated here (a table put there through the debug library may allocate: then
 * the exchange is kept once it is stored). */
static void keep_exchange(lua_State *L, sg_session *s, int index, sg_exchange *ex)
{
    if (s->idle_exchange != NULL || s->curl == NULL)
        return;
    index = sg_absindex(L, index);
    sg_getuservalue(L, 1);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushvalue(L, index);
        lua_rawseti(L, -2, UV_EXCHANGE);
        s->idle_exchange = ex;
    }
    lua_pop(L, 1);
}

/* Pushes {limit =, remaining =, refresh =} from the last response's rate-limit
 * headers (each field present when its header holds digits only), or nothing:
 * returns whether it pushed. */
static int push_rate_limit(lua_State *L, const sg_session *s)
{
    static const char *const names[3] = {"limit", "remaining", "refresh"};
    int i;
    if (!s->have_rate_limit[0] && !s->have_rate_limit[1] && !s->have_rate_limit[2])
        return 0;
    lua_createtable(L, 0, 3);
    for (i = 0; i < 3; i++) {
        if (s->have_rate_limit[i]) {
            lua_pushinteger(L, s->rate_limit[i]);
            lua_setfield(L, -2, names[i]);
        }
    }
    return 1;
}

/* Sets the easy handle up for one request whose response goes to *ex (which takes
 * the spare buffers). No Lua code runs here. Returns CURLE_OK, or the code of the
 * option libcurl refused, with s->error saying which: the request must not be sent
 * (end_request and push_results then give the error). */
static CURLcode start_request(sg_session *s, sg_exchange *ex, const request_args *r,
                              int copy_body)
{
    setopt_result result = {CURLE_OK, NULL};
    move_exchange(ex, &s->spare);
    ex->body.len = 0;
    ex->body_too_large = 0;
    ex->not_sent = 0;
    ex->max_body = s->max_body;
    sg_kept_reset(&ex->kept, strcmp(r->method, "HEAD") == 0);
    if (!s->url_known || s->url.len != r->url_len || memcmp(s->url.data, r->url, r->url_len) != 0) {
        SETOPT(&result, s->curl, CURLOPT_URL, r->url);
        s->url.len = 0;
        s->url_known = sg_membuf_append(&s->url, r->url, r->url_len);
    }
    if (r->body != NULL || !s->method_known || strcmp(s->method, r->method) != 0) {
        set_method(&result, s, r->method, r->body, r->body_len, copy_body);
        s->method_known = r->body == NULL && r->method_len < sizeof s->method;
        if (s->method_known)
            memcpy(s->method, r->method, r->method_len + 1);
    }
    s->body_lent = r->body != NULL;
    if (s->response_to != ex) {
        SETOPT(&result, s->curl, CURLOPT_WRITEDATA, ex);
        SETOPT(&result, s->curl, CURLOPT_HEADERDATA, ex);
        s->response_to = ex;
    }
    s->error[0] = '\0';
    ex->not_sent = result.code != CURLE_OK;
    if (result.code != CURLE_OK)
        forget_options(s);
    if (result.code != CURLE_OK)
        snprintf(s->error, sizeof s->error, "the request could not be set up: libcurl refused "
                 "%s (%s)", result.option, curl_easy_strerror(result.code));
    return result.code;
}

/* After the transfer: the body and header lists were only lent to libcurl; curl's
 * message is copied (an allocation may run a finalizer that performs again and
 * rewrites it); the status and rate-limit headers are read. */
static long end_request(sg_session *s, const sg_exchange *ex, CURLcode code,
                        char error[CURL_ERROR_SIZE])
{
    long status = 0;
    memcpy(error, s->error, CURL_ERROR_SIZE);
    error[CURL_ERROR_SIZE - 1] = '\0';
    if (code == CURLE_OK && curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        keep_rate_limit(s, &ex->kept);
    else /* no response, or one cut short: nothing to go by */
        memset(s->have_rate_limit, 0, sizeof s->have_rate_limit);
    if (s->body_lent) {
        /* (this also makes libcurl's method POST: the next request sets its own) */
        s->body_lent = 0;
        s->method_known = 0;
        if (curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, NULL) != CURLE_OK) {
            /* libcurl only stores this pointer and never refuses it; if it ever did, the
             * handle would still point at a body about to be freed: it goes, and the
             * session is closed */
            curl_easy_cleanup(s->curl);
            s->curl = NULL;
        }
    }
    return status;
}

/* Pushes what perform returns for the exchange *ex, the userdata at the top, and
 * removes that userdata. The buffers go back for the next request, unless one huge
 * response made them large, or another perform meanwhile (from a finalizer) left its
 * own. */
static int push_results(lua_State *L, sg_session *s, sg_exchange *ex, CURLcode code,
                        long status, const char *error, int paginated)
{
    int results;
    if (code != CURLE_OK) {
        results = push_network_error(L, ex, code, error);
    } else {
        size_t key_len = 0, link_len = 0;
        const char *key = NULL, *link = NULL;
        if (paginated) {
            key = sg_kept_first(&ex->kept, SG_KEPT_NEXT_KEY, &key_len);
            link = sg_kept_all(&ex->kept, SG_KEPT_LINK, &link_len);
        }
        results = sg_push_response(L, status, ex->body.data ? ex->body.data : "",
                                   ex->body.len, key, key_len, link, link_len);
        if (results == 2 && (status == 429 || status == 503)) {
            /* where a wait is what the server asks */
            size_t retry_len, refresh_len;
            const char *retry = sg_kept_first(&ex->kept, SG_KEPT_RETRY_AFTER, &retry_len);
            const char *refresh =
                sg_kept_first(&ex->kept, SG_KEPT_RATELIMIT_REFRESH, &refresh_len);
            sg_set_retry_after(L, retry, retry_len, refresh, refresh_len);
        }
    }
    if (results == 3) {
        if (!push_rate_limit(L, s))
            lua_pushnil(L);
        results = 4;
    } else if (lua_istable(L, -1) && push_rate_limit(L, s)) {
        lua_setfield(L, -2, "rate_limit");
    }
    if (ex->body.cap > KEEP_BUFFER_BYTES)
        sg_membuf_free(&ex->body);
    if (s->curl != NULL && exchange_empty(&s->spare)) {
        move_exchange(&s->spare, ex);
    } else {
        free_exchange(ex);
    }
    keep_exchange(L, s, -results - 1, ex);
    lua_remove(L, -results - 1); /* the exchange */
    return results;
}

static void check_ready(lua_State *L, sg_session *s, const char *method)
{
    check_not_closed(L, s, method);
    check_no_transfer(L, s, method);
    if (!s->headers_set)
        luaL_error(L, "soracom.groups: session:%s: set_headers was not called", method);
}

/* perform(method, url[, body[, paginated]]) -> value, next_key, status, rate_limit |
 * nil, error_table (with rate_limit when the answer had any): rate_limit is what
 * last_rate_limit() then returns. The next-key headers are read only for paginated
 * requests. Blocks until done. */
static int session_perform(lua_State *L)
{
    sg_session *s = self_session(L);
    request_args r;
    sg_exchange *ex;
    CURLcode code;
    long status;
    char error[CURL_ERROR_SIZE];
    check_request(L, "session:perform", &r);
    ex = take_exchange(L, s);
    check_ready(L, s, "perform");
    code = start_request(s, ex, &r, 0); /* the body string stays on the stack meanwhile */
    if (code != CURLE_OK) {
        /* not sent: the error is the option libcurl refused */
    } else if (!s->wakeup_cloexec) {
        /* The first curl_easy_perform of an easy handle makes the multi handle it
         * keeps for it (until curl_easy_cleanup), whose first act is to open its wakeup
         * socketpair without close-on-exec (libcurl before 8.8; see multi.c): those two
         * take the lowest free descriptors. */
        int fds[2];
        sg_lowest_free_fds(fds);
        code = curl_easy_perform(s->curl);
        s->wakeup_cloexec = sg_cloexec_new_fds(fds) == 2;
    } else {
        code = curl_easy_perform(s->curl);
    }
    status = end_request(s, ex, code, error);
    return push_results(L, s, ex, code, status, error, r.paginated);
}

/* prepare(method, url[, body[, paginated]]) -> true | nil, message: sets up the
 * request for a multi handle (multi:add runs it); finish() then returns what perform
 * would have. When libcurl refuses the request's options (see start_request), the
 * transfer has ended at once with that error: multi:add returns nil and the message
 * (it adds nothing) and finish() returns the error as perform would. */
static int session_prepare(lua_State *L)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SG_SESSION_METATABLE);
    request_args r;
    CURLcode code;
    check_request(L, "session:prepare", &r);
    check_ready(L, s, "prepare");
    /* the body is copied: it must outlive this call */
    code = start_request(s, &s->transfer_ex, &r, 1);
    s->transfer_paginated = r.paginated;
    if (code != CURLE_OK) {
        s->transfer = TRANSFER_DONE;
        s->transfer_code = code;
        s->setup_failed = 1;
        lua_pushnil(L);
        lua_pushstring(L, s->error);
        return 2;
    }
    s->transfer = TRANSFER_PREPARED;
    lua_pushboolean(L, 1);
    return 1;
}

/* finish() -> what perform returns, once the multi handle has run the transfer. */
static int session_finish(lua_State *L)
{
    sg_session *s = self_session(L);
    sg_exchange *ex;
    CURLcode code;
    long status;
    char error[CURL_ERROR_SIZE];
    lua_settop(L, 1);
    ex = take_exchange(L, s);
    check_not_closed(L, s, "finish");
    if (s->transfer != TRANSFER_DONE)
        return luaL_error(L, "soracom.groups: session:finish: no transfer has ended (prepare, "
                          "then multi:add and multi:poll)");
    move_exchange(ex, &s->transfer_ex);
    code = s->transfer_code;
    s->transfer = TRANSFER_NONE;
    s->setup_failed = 0;
    status = end_request(s, ex, code, error);
    return push_results(L, s, ex, code, status, error, s->transfer_paginated);
}

/* For multi.c: the session at index, open and prepared; raises otherwise. */
sg_session *sg_session_check_prepared(lua_State *L, int index, const char *where)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, index, SG_SESSION_METATABLE);
    if (s->curl == NULL ||
        !(s->transfer == TRANSFER_PREPARED || (s->transfer == TRANSFER_DONE && s->setup_failed)))
        luaL_error(L, "soracom.groups: %s: the session is %s", where,
                   s->curl == NULL ? "closed" : "not prepared (session:prepare first)");
    return s;
}

int sg_session_setup_error(lua_State *L, sg_session *s)
{
    if (s->transfer != TRANSFER_DONE || !s->setup_failed)
        return 0;
    lua_pushstring(L, s->error);
    return 1;
}

sg_multi *sg_session_multi(const sg_session *s)
{
    return s->transfer == TRANSFER_RUNNING ? s->multi : NULL;
}

CURL *sg_session_easy(sg_session *s)
{
    return s->curl;
}

void sg_session_running(lua_State *L, int session_index, sg_session *s, int multi_index,
                        sg_multi *m)
{
    session_index = sg_absindex(L, session_index);
    s->transfer = TRANSFER_RUNNING;
    s->multi = m;
    lua_pushvalue(L, multi_index);
    set_multi_ref(L, session_index, s);
}

void sg_session_ended(lua_State *L, int session_index, sg_session *s, CURLcode code)
{
    session_index = sg_absindex(L, session_index);
    s->transfer = TRANSFER_DONE;
    s->transfer_code = code;
    s->multi = NULL;
    lua_pushnil(L);
    set_multi_ref(L, session_index, s);
}

/* The transfer was taken off its multi handle before the end: the session is free
 * for another request. */
void sg_session_cancelled(lua_State *L, int session_index, sg_session *s)
{
    char error[CURL_ERROR_SIZE];
    session_index = sg_absindex(L, session_index);
    s->transfer = TRANSFER_NONE;
    s->multi = NULL;
    lua_pushnil(L);
    set_multi_ref(L, session_index, s);
    end_request(s, &s->transfer_ex, CURLE_ABORTED_BY_CALLBACK, error);
    if (exchange_empty(&s->spare))
        move_exchange(&s->spare, &s->transfer_ex);
    else
        free_exchange(&s->transfer_ex);
}

/* last_rate_limit() -> {limit =, remaining =, refresh =} from the last response's
 * X-Soracom-Ratelimit-Limit, -Remaining and -Seconds-Before-Refresh headers (each
 * field present when its header holds digits only), or nil when none does or the last
 * perform failed on the network. */
static int session_last_rate_limit(lua_State *L)
{
    sg_session *s = check_open(L, "last_rate_limit");
    if (!push_rate_limit(L, s))
        lua_pushnil(L);
    return 1;
}

/* session:sleep(seconds): the transport's wait between retries (blocking). */
static int sg_sleep_method(lua_State *L)
{
    luaL_checkudata(L, 1, SG_SESSION_METATABLE);
    lua_remove(L, 1);
    return sg_sleep(L);
}

static int session_tostring(lua_State *L)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SG_SESSION_METATABLE);
    lua_pushfstring(L, "soracom.groups.session (%s)", s->curl ? "open" : "closed");
    return 1;
}

/* Pushes options[name], read raw: no __index of the caller's runs here. */
static int raw_option(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, 1);
    return lua_type(L, -1);
}

/* CURLOPT_OPENSOCKETFUNCTION: every connection's socket is close-on-exec from the
 * start, so that a child the host process starts (os.execute, io.popen) does not keep
 * our connections open. libcurl itself makes them close-on-exec only from 8.17 on. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *address)
{
    (void)clientp;
    (void)purpose;
    return (curl_socket_t)sg_cloexec_socket(address->family, address->socktype,
                                            address->protocol);
}

#define SG_STRING_(x) #x
#define SG_STRING(x) SG_STRING_(x)

/* A positive, finite number of seconds up to SG_MAX_TIMEOUT_SECONDS, or nil for the
 * default (-1). */
static double seconds_option(lua_State *L, const char *name)
{
    double seconds = -1;
    int type = raw_option(L, name);
    if (type != LUA_TNIL) {
        seconds = type == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
        if (!(seconds > 0) || seconds == HUGE_VAL)
            arg_error(L, "session", name, "a positive number of seconds", -1);
        if (seconds > SG_MAX_TIMEOUT_SECONDS)
            sg_arg_error(L, "session", name,
                         "at most " SG_STRING(SG_MAX_TIMEOUT_SECONDS) " seconds", -1);
    }
    lua_pop(L, 1);
    return seconds;
}

/* Milliseconds, rounded up so that a tiny timeout never becomes 0 (no timeout), and
 * clamped before the cast (a double beyond a long's range is undefined behaviour when
 * cast): 2^31 - 1 ms is over 24 days, more than any timeout seconds_option takes. */
static long to_ms(double seconds)
{
    double ms = ceil(seconds * 1000.0);
    if (!(ms >= 1.0))
        ms = 1.0;
    if (ms > 2147483647.0)
        ms = 2147483647.0;
    return (long)ms;
}

/* A string without NUL bytes (libcurl takes C strings), or nil: NULL. Left on the
 * stack, so that it stays alive while it is in use. */
static const char *string_option(lua_State *L, const char *name)
{
    size_t len;
    const char *value;
    int type = raw_option(L, name);
    if (type == LUA_TNIL)
        return NULL;
    if (type != LUA_TSTRING)
        arg_error(L, "session", name, "a string without NUL bytes", -1);
    value = lua_tolstring(L, -1, &len);
    if (strlen(value) != len)
        arg_error(L, "session", name, "a string without NUL bytes", -1);
    return value;
}

typedef struct {
    double connect_timeout, timeout, max_body;
    int insecure;
    const char *user_agent, *ca_file, *ca_path, *proxy;
} session_options;

/* Reads and checks every option before anything is allocated. The strings stay on the
 * stack above index 1 until the session is made (libcurl copies them). */
static void read_options(lua_State *L, session_options *o)
{
    int type;
    o->connect_timeout = seconds_option(L, "connect_timeout");
    o->timeout = seconds_option(L, "timeout");
    type = raw_option(L, "max_body_size");
    o->max_body = -1;
    if (type != LUA_TNIL) {
        o->max_body = type == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
        if (!(o->max_body > 0))
            arg_error(L, "session", "max_body_size", "a positive number of bytes", -1);
    }
    lua_pop(L, 1);
    type = raw_option(L, "insecure");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        arg_error(L, "session", "insecure", "a boolean or nil", -1);
    o->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    o->user_agent = string_option(L, "user_agent");
    if (o->user_agent != NULL && strpbrk(o->user_agent, "\r\n") != NULL)
        arg_error(L, "session", "user_agent", "one line", -1);
    o->ca_file = string_option(L, "ca_file");
    o->ca_path = string_option(L, "ca_path");
    o->proxy = string_option(L, "proxy");
}

/* session{user_agent=, connect_timeout=, timeout=, max_body_size=, insecure=, ca_file=,
 * ca_path=, proxy=}; other fields are the other transports' and are ignored. TLS
 * verification stays on unless insecure = true. Without a proxy option, libcurl reads
 * http_proxy, https_proxy and no_proxy from the environment. */
int sg_session_new(lua_State *L)
{
    sg_session *s;
    session_options o;
    setopt_result result = {CURLE_OK, NULL};
    if (lua_type(L, 1) != LUA_TTABLE)
        return arg_error(L, "session", "settings", "a table", 1);
    lua_settop(L, 1);
    read_options(L, &o);
    s = (sg_session *)lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    lua_createtable(L, 2, 0); /* the user value: UV_MULTI and UV_EXCHANGE */
    sg_setuservalue(L, -2);
    luaL_getmetatable(L, SG_SESSION_METATABLE);
    lua_setmetatable(L, -2);
    s->curl = curl_easy_init();
    if (s->curl == NULL)
        return luaL_error(L, "soracom.groups: curl_easy_init failed");
    s->max_body = o.max_body < 0 ? DEFAULT_MAX_BODY
                  : o.max_body >= (double)MAX_BODY_LIMIT ? MAX_BODY_LIMIT
                  : o.max_body >= 1.0 ? (size_t)o.max_body : 1;
    SETOPT(&result, s->curl, CURLOPT_USERAGENT,
           o.user_agent ? o.user_agent : "soracom-groups/" SG_VERSION);
    SETOPT(&result, s->curl, CURLOPT_CONNECTTIMEOUT_MS,
           to_ms(o.connect_timeout < 0 ? 10 : o.connect_timeout));
    SETOPT(&result, s->curl, CURLOPT_TIMEOUT_MS, to_ms(o.timeout < 0 ? 60 : o.timeout));
    SETOPT(&result, s->curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM inside a host process */
    SETOPT(&result, s->curl, CURLOPT_SSL_VERIFYPEER, o.insecure ? 0L : 1L);
    SETOPT(&result, s->curl, CURLOPT_SSL_VERIFYHOST, o.insecure ? 0L : 2L);
    if (o.ca_file)
        SETOPT(&result, s->curl, CURLOPT_CAINFO, o.ca_file);
    if (o.ca_path)
        SETOPT(&result, s->curl, CURLOPT_CAPATH, o.ca_path);
    if (o.proxy)
        SETOPT(&result, s->curl, CURLOPT_PROXY, o.proxy);
#if defined(SG_LEGACY_CURL) || LIBCURL_VERSION_NUM < 0x075500
    /* before 7.85 (Ubuntu 22.04 has 7.81, RHEL 9 7.76): the bitmask, deprecated since */
    SETOPT(&result, s->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#else
    SETOPT(&result, s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    /* Segments are escaped by build_url; curl must not merge "." or ".." away. */
    SETOPT(&result, s->curl, CURLOPT_PATH_AS_IS, 1L);
    SETOPT(&result, s->curl, CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(&result, s->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(&result, s->curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SETOPT(&result, s->curl, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(&result, s->curl, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(&result, s->curl, CURLOPT_ERRORBUFFER, s->error);
    SETOPT(&result, s->curl, CURLOPT_PRIVATE, (void *)s);
    if (result.code != CURLE_OK) {
        /* closed now, not when the collector gets to the session */
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
        return luaL_error(L, "soracom.groups: session: libcurl refused %s (%s)", result.option,
                          curl_easy_strerror(result.code));
    }
    return 1;
}

void sg_session_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"perform", session_perform},
        {"prepare", session_prepare},
        {"finish", session_finish},
        {"set_headers", session_set_headers},
        {"last_rate_limit", session_last_rate_limit},
        {"close", session_close},
        {"sleep", sg_sleep_method},
        {NULL, NULL}
    };
    if (sg_new_metatable(L, EXCHANGE_METATABLE)) {
        lua_pushcfunction(L, exchange_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (sg_new_metatable(L, SG_SESSION_METATABLE)) {
        lua_newtable(L);
        lua_pushvalue(L, -2);                      /* UP_SESSION_MT */
        luaL_getmetatable(L, EXCHANGE_METATABLE);  /* UP_EXCHANGE_MT */
        luaL_setfuncs(L, methods, 2);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, session_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, session_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, session_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
