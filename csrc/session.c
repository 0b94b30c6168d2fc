/* A curl session: one libcurl easy handle per client, reused so that connections stay
 * alive. perform() blocks on the network; it is the only function of the core that
 * does, and the nginx transport does not use it. */
#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "core.h"

#define SESSION_METATABLE "soracom.groups.session"
#define DEFAULT_MAX_BODY (16u * 1024u * 1024u)
#define KEEP_BUFFER_BYTES (1024u * 1024u)
#define MAX_BODY_LIMIT ((size_t)1 << 30)

typedef struct {
    CURL *curl;
    struct curl_slist *headers;      /* for requests without a body */
    struct curl_slist *json_headers; /* the same plus the JSON content type */
    sg_membuf response;
    size_t max_body;
    int body_too_large;
    char error[CURL_ERROR_SIZE];
} sg_session;

static void free_headers(sg_session *s)
{
    curl_slist_free_all(s->headers);
    curl_slist_free_all(s->json_headers);
    s->headers = s->json_headers = NULL;
}

static int session_close(lua_State *L)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SESSION_METATABLE);
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
    }
    free_headers(s);
    sg_membuf_free(&s->response);
    return 0;
}

static sg_session *check_open(lua_State *L)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SESSION_METATABLE);
    if (s->curl == NULL)
        luaL_error(L, "soracom.groups: the client is closed");
    return s;
}

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
    sg_session *s = (sg_session *)userdata;
    size_t n = size * count;
    if (s->response.len + n > s->max_body) {
        s->body_too_large = 1;
        return 0;
    }
    if (!sg_membuf_append(&s->response, data, n))
        return 0;
    return n;
}

static struct curl_slist *append_header(struct curl_slist *list, const char *line, int *ok)
{
    struct curl_slist *grown = curl_slist_append(list, line);
    if (grown == NULL)
        *ok = 0;
    return grown ? grown : list;
}

/* set_headers({"Name: value", ...}): the headers of every request from now on
 * (credentials change rarely, so the lists are built once, not per request). */
static int session_set_headers(lua_State *L)
{
    sg_session *s = check_open(L);
    int i, n, ok = 1;
    luaL_checktype(L, 2, LUA_TTABLE);
    free_headers(s);
    n = (int)sg_rawlen(L, 2);
    for (i = 1; i <= n && ok; i++) {
        const char *line;
        lua_rawgeti(L, 2, i);
        line = lua_tostring(L, -1);
        if (line == NULL) {
            free_headers(s);
            return luaL_error(L, "soracom.groups: header %d is not a string", i);
        }
        s->headers = append_header(s->headers, line, &ok);
        s->json_headers = append_header(s->json_headers, line, &ok);
        lua_pop(L, 1);
    }
    s->json_headers = append_header(s->json_headers, "Content-Type: application/json", &ok);
    /* no "Expect: 100-continue" round trip before small JSON bodies */
    s->json_headers = append_header(s->json_headers, "Expect:", &ok);
    if (!ok) {
        free_headers(s);
        return luaL_error(L, "soracom.groups: out of memory");
    }
    return 0;
}

/* Pushes the next page key: x-soracom-next-key, else the first Link header (of
 * possibly several) with a rel=next URL. */
static void push_next_key(lua_State *L, CURL *curl)
{
    struct curl_header *h;
    size_t i, amount;
    if (curl_easy_header(curl, "x-soracom-next-key", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
        h->value[0] != '\0') {
        lua_pushstring(L, h->value);
        return;
    }
    if (curl_easy_header(curl, "link", 0, CURLH_HEADER, -1, &h) != CURLHE_OK) {
        lua_pushnil(L);
        return;
    }
    amount = h->amount; /* h is overwritten by the next call; keep what we need */
    for (i = 0; i < amount; i++) {
        if (curl_easy_header(curl, "link", i, CURLH_HEADER, -1, &h) == CURLHE_OK &&
            sg_push_key_from_link(L, h->value, strlen(h->value)))
            return;
    }
    lua_pushnil(L);
}

/* Gives the error table at the top its retry_after. Each header is copied onto the
 * stack before the next lookup, which may reuse curl's header struct. */
static void set_retry_after(lua_State *L, CURL *curl)
{
    static const char *const names[] = {
        "retry-after", "x-soracom-ratelimit-seconds-before-refresh"
    };
    struct curl_header *h;
    int i;
    for (i = 0; i < 2; i++) {
        if (curl_easy_header(curl, names[i], 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
            lua_pushstring(L, h->value);
        else
            lua_pushnil(L);
    }
    lua_pushvalue(L, -3);
    {
        const char *retry_after = lua_tostring(L, -3), *refresh = lua_tostring(L, -2);
        sg_set_retry_after(L, retry_after, retry_after ? strlen(retry_after) : 0,
                           refresh, refresh ? strlen(refresh) : 0);
    }
    lua_pop(L, 3);
}

static int push_network_error(lua_State *L, sg_session *s, CURLcode code)
{
    lua_pushnil(L);
    if (s->body_too_large) {
        lua_pushfstring(L, "the response body is larger than max_body_size (%d bytes)",
                        (int)s->max_body); /* at most MAX_BODY_LIMIT: fits an int */
        sg_push_error(L, "network", lua_tostring(L, -1));
        lua_remove(L, -2);
    } else {
        sg_push_error(L, "network", s->error[0] ? s->error : curl_easy_strerror(code));
    }
    lua_pushinteger(L, (lua_Integer)code);
    lua_setfield(L, -2, "curl_code");
    return 2;
}

/* perform(method, url[, body[, paginated]]) -> value, next_key, status | nil, error_table
 * The next-key headers are looked up only for paginated requests. */
static int session_perform(lua_State *L)
{
    sg_session *s = check_open(L);
    const char *method = luaL_checkstring(L, 2);
    const char *url = luaL_checkstring(L, 3);
    size_t body_len = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &body_len);
    int paginated = lua_toboolean(L, 5);
    long status = 0;
    int key_index, results;
    CURLcode code;

    if (s->headers == NULL)
        return luaL_error(L, "soracom.groups: set_headers was not called");
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    if (body != NULL) {
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->json_headers);
    } else {
        curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->headers);
    }
    /* GET needs no custom verb; POST with a body is curl's own. */
    curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, "GET") == 0 || (body && strcmp(method, "POST") == 0)
                         ? NULL : method);
    s->response.len = 0;
    s->body_too_large = 0;
    s->error[0] = '\0';
    code = curl_easy_perform(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, NULL); /* body is only borrowed */
    if (code != CURLE_OK)
        return push_network_error(L, s, code);
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (paginated)
        push_next_key(L, s->curl);
    else
        lua_pushnil(L);
    key_index = lua_gettop(L);
    results = sg_push_response(L, status, s->response.data ? s->response.data : "",
                               s->response.len, NULL, 0, NULL, 0);
    if (results == 3) {
        lua_pushvalue(L, key_index);
        lua_replace(L, -3);
    } else if (status == 429 || status == 503) { /* where a wait is what the server asks */
        set_retry_after(L, s->curl);
    }
    lua_remove(L, key_index);
    /* One huge response should not pin its memory for the client's whole life. */
    if (s->response.cap > KEEP_BUFFER_BYTES)
        sg_membuf_free(&s->response);
    return results;
}

/* session:sleep(seconds): the transport's wait between retries (blocking). */
static int sg_sleep_method(lua_State *L)
{
    lua_remove(L, 1);
    return sg_sleep(L);
}

static int session_tostring(lua_State *L)
{
    sg_session *s = (sg_session *)luaL_checkudata(L, 1, SESSION_METATABLE);
    lua_pushfstring(L, "soracom.groups.session (%s)", s->curl ? "open" : "closed");
    return 1;
}

/* Milliseconds, rounded up so that a tiny timeout never becomes 0 (no timeout). The
 * Lua layer has checked the value is positive and finite. */
static long option_ms(lua_State *L, const char *name, double fallback_seconds)
{
    double seconds, ms;
    lua_getfield(L, 1, name);
    seconds = lua_isnil(L, -1) ? fallback_seconds : (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    ms = ceil(seconds * 1000.0);
    if (!(ms >= 1.0))
        ms = 1.0;
    if (ms > (double)LONG_MAX)
        ms = (double)LONG_MAX;
    return (long)ms;
}

static void set_string_option(lua_State *L, CURL *curl, const char *name, CURLoption option)
{
    lua_getfield(L, 1, name);
    if (lua_type(L, -1) == LUA_TSTRING)
        curl_easy_setopt(curl, option, lua_tostring(L, -1)); /* curl copies it */
    lua_pop(L, 1);
}

/* TLS verification stays on unless the caller says insecure = true. Without a proxy
 * option, curl reads http_proxy, https_proxy and no_proxy from the environment. */
static void set_tls_and_proxy(lua_State *L, CURL *curl)
{
    int insecure;
    lua_getfield(L, 1, "insecure");
    insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
    set_string_option(L, curl, "ca_file", CURLOPT_CAINFO);
    set_string_option(L, curl, "ca_path", CURLOPT_CAPATH);
    set_string_option(L, curl, "proxy", CURLOPT_PROXY);
}

/* session{user_agent=, connect_timeout=, timeout=, max_body_size=, insecure=, ca_file=,
 * ca_path=, proxy=} */
int sg_session_new(lua_State *L)
{
    sg_session *s;
    const char *user_agent;
    luaL_checktype(L, 1, LUA_TTABLE);
    s = (sg_session *)lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    luaL_getmetatable(L, SESSION_METATABLE);
    lua_setmetatable(L, -2);
    s->curl = curl_easy_init();
    if (s->curl == NULL)
        return luaL_error(L, "soracom.groups: curl_easy_init failed");

    lua_getfield(L, 1, "max_body_size");
    if (lua_isnil(L, -1)) {
        s->max_body = DEFAULT_MAX_BODY;
    } else {
        double max_body = (double)lua_tonumber(L, -1);
        s->max_body = max_body >= (double)MAX_BODY_LIMIT ? MAX_BODY_LIMIT
                      : max_body >= 1.0 ? (size_t)max_body : 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "user_agent");
    user_agent = lua_tostring(L, -1);
    curl_easy_setopt(s->curl, CURLOPT_USERAGENT,
                     user_agent ? user_agent : "soracom-groups/" SG_VERSION);
    lua_pop(L, 1); /* curl copies string options */

    curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, option_ms(L, "connect_timeout", 10));
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, option_ms(L, "timeout", 60));
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM inside a host process */
    set_tls_and_proxy(L, s->curl);
    curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Segments are escaped by build_url; curl must not merge "." or ".." away. */
    curl_easy_setopt(s->curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(s->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(s->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->error);
    return 1;
}

void sg_session_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"perform", session_perform},
        {"set_headers", session_set_headers},
        {"close", session_close},
        {"sleep", sg_sleep_method},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, SESSION_METATABLE)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
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
