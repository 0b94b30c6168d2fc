/* What a finished HTTP exchange means to the caller, the same for every transport:
 * 2xx -> decoded body (true when empty), next page key, status;
 * otherwise -> nil, {kind="http", status=, code=, message=}. */
#include <curl/curl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core.h"
#include "utf8.h"

#define MAX_TEXT_MESSAGE 300

void sg_push_error(lua_State *L, const char *kind, const char *message)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
}

static int is_blank(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

static const char *reason_phrase(long status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "unexpected HTTP status";
    }
}

/* A body that is not Soracom's {"code","message"} (a proxy's HTML page, plain text)
 * still gives a readable one-line message: its start, with control bytes as spaces,
 * cut between characters, and bytes that are not UTF-8 shown as U+FFFD, so that the
 * message is text any logger or JSON encoder takes. */
static void set_text_message(lua_State *L, long status, const char *body, size_t n)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *s = (const unsigned char *)body;
    char text[MAX_TEXT_MESSAGE + 4];
    size_t i = 0, len = 0;
    int space = 1;
    while (i < n) {
        unsigned char c = s[i];
        size_t width = 1;
        if (c < 0x20 || c == 0x7f) {
            if (!space && len < MAX_TEXT_MESSAGE)
                text[len++] = ' ';
            space = 1;
            i++;
            continue;
        }
        if (c >= 0x80)
            width = sg_utf8_sequence_length(s + i, n - i);
        if (len + (width ? width : 3) > MAX_TEXT_MESSAGE)
            break;
        if (width == 0) {
            memcpy(text + len, replacement, 3);
            len += 3;
            i++;
        } else {
            memcpy(text + len, s + i, width);
            len += width;
            i += width;
        }
        space = (c == ' ');
    }
    while (len > 0 && text[len - 1] == ' ')
        len--;
    if (i < n && len > 0) {
        memcpy(text + len, "...", 3);
        len += 3;
    }
    if (len == 0)
        lua_pushfstring(L, "HTTP %d %s", (int)status, reason_phrase(status));
    else
        lua_pushlstring(L, text, len);
    lua_setfield(L, -2, "message");
}

/* Copies code and message from a Soracom error body; returns 0 if it is not one. */
static int set_soracom_fields(lua_State *L, const char *body, size_t n)
{
    sg_json_error error;
    int found = 0;
    if (!sg_json_decode(L, body, n, 0, &error))
        return 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
        /* raw: a decoded array's metatable is core.array_mt, which callers can reach */
        lua_pushliteral(L, "message");
        lua_rawget(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_setfield(L, -3, "message");
            found = 1;
        } else {
            lua_pop(L, 1);
        }
        lua_pushliteral(L, "code");
        lua_rawget(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_setfield(L, -3, "code");
            found = 1;
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return found;
}

static int push_http_error(lua_State *L, long status, const char *body, size_t n)
{
    size_t message_len;
    lua_pushnil(L);
    sg_push_error(L, "http", "");
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, -2, "status");
    if (!set_soracom_fields(L, body, n)) {
        set_text_message(L, status, body, n);
        return 2;
    }
    lua_getfield(L, -1, "message");
    lua_tolstring(L, -1, &message_len);
    lua_pop(L, 1);
    if (message_len == 0)
        set_text_message(L, status, "", 0);
    return 2;
}

int sg_push_response(lua_State *L, long status, const char *body, size_t body_len,
                     const char *next_key, size_t next_key_len,
                     const char *link, size_t link_len)
{
    sg_json_error error;
    if (status < 200 || status > 299)
        return push_http_error(L, status, body, body_len);
    if (is_blank(body, body_len)) {
        lua_pushboolean(L, 1);
    } else if (!sg_json_decode(L, body, body_len, 0, &error)) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid JSON in the response: %s", sg_push_json_error(L, &error));
        sg_push_error(L, "decode", lua_tostring(L, -1));
        lua_remove(L, -2);
        lua_remove(L, -2);
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
        return 2;
    }
    sg_push_next_key(L, next_key, next_key_len, link, link_len);
    lua_pushinteger(L, (lua_Integer)status);
    return 3;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims optional whitespace (RFC 9110, 5.6.3) off both ends of s[0..*n). */
static const char *trim_ows(const char *s, size_t *n)
{
    while (*n > 0 && is_ows(*s)) {
        s++;
        (*n)--;
    }
    while (*n > 0 && is_ows(s[*n - 1]))
        (*n)--;
    return s;
}

/* delay-seconds = 1*DIGIT (RFC 9110, 10.2.3): digits only, no sign, point, exponent
 * or "inf". Longer waits than SG_MAX_RETRY_AFTER are cut to it. Returns 0 when the
 * text is not delay-seconds. */
static int parse_delay_seconds(const char *s, size_t n, double *seconds)
{
    double value = 0;
    size_t i;
    s = trim_ows(s, &n);
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (value < SG_MAX_RETRY_AFTER)
            value = value * 10 + (s[i] - '0');
    }
    *seconds = value < SG_MAX_RETRY_AFTER ? value : SG_MAX_RETRY_AFTER;
    return 1;
}

/* An HTTP-date (RFC 9110, 5.6.7) starts with a day name, in each of its three forms;
 * only such text goes to curl_getdate, which would read much else as a date. */
static int parse_http_date(const char *s, size_t n, double *seconds)
{
    static const char days[] = "Mon Tue Wed Thu Fri Sat Sun ";
    char text[64];
    time_t date;
    double wait;
    int known_day = 0;
    size_t i;
    s = trim_ows(s, &n);
    if (n < 3 || n >= sizeof text)
        return 0;
    for (i = 0; i + 3 < sizeof days; i += 4)
        if (memcmp(s, days + i, 3) == 0)
            known_day = 1;
    if (!known_day)
        return 0;
    memcpy(text, s, n);
    text[n] = '\0';
    date = curl_getdate(text, NULL);
    if (date == (time_t)-1)
        return 0;
    wait = difftime(date, time(NULL));
    *seconds = wait <= 0 ? 0 : wait < SG_MAX_RETRY_AFTER ? wait : SG_MAX_RETRY_AFTER;
    return 1;
}

/* Seconds the server asks to wait: Retry-After (delay-seconds or an HTTP-date),
 * else Soracom's X-Soracom-Ratelimit-Seconds-Before-Refresh, which Soracom documents
 * as a number of seconds and sends as whole seconds: read as delay-seconds too.
 * Negative when neither says. Never more than SG_MAX_RETRY_AFTER, never inf or NaN. */
static double retry_after_seconds(const char *retry_after, size_t retry_after_len,
                                  const char *refresh, size_t refresh_len)
{
    double seconds;
    if (retry_after != NULL &&
        (parse_delay_seconds(retry_after, retry_after_len, &seconds) ||
         parse_http_date(retry_after, retry_after_len, &seconds)))
        return seconds;
    if (refresh != NULL && parse_delay_seconds(refresh, refresh_len, &seconds))
        return seconds;
    return -1;
}

void sg_set_retry_after(lua_State *L, const char *retry_after, size_t retry_after_len,
                        const char *refresh, size_t refresh_len)
{
    double seconds = retry_after_seconds(retry_after, retry_after_len, refresh, refresh_len);
    if (seconds >= 0) {
        lua_pushnumber(L, (lua_Number)seconds);
        lua_setfield(L, -2, "retry_after");
    }
}

/* decode_response(status, body, next_key_header, link_header, retry_after_header,
 * ratelimit_refresh_header): the same results as a curl session's perform, for
 * transports that read the response in Lua. */
int sg_decode_response(lua_State *L)
{
    size_t body_len, key_len = 0, link_len = 0, retry_after_len = 0, refresh_len = 0;
    /* checked as a number before the cast: a huge one is no long */
    lua_Number number = sg_check_number(L, 1);
    const char *body = sg_opt_string(L, 2, "", &body_len);
    const char *key = sg_opt_string(L, 3, NULL, &key_len);
    const char *link = sg_opt_string(L, 4, NULL, &link_len);
    const char *retry_after = sg_opt_string(L, 5, NULL, &retry_after_len);
    const char *refresh = sg_opt_string(L, 6, NULL, &refresh_len);
    long status;
    int results;
    if (!(number >= 0 && number <= 999 && number == (lua_Number)(long)number))
        return luaL_argerror(L, 1, "an HTTP status (a whole number from 0 to 999) expected");
    status = (long)number;
    results = sg_push_response(L, status, body, body_len, key, key_len, link, link_len);
    if (results == 2 && lua_istable(L, -1) && (status == 429 || status == 503))
        sg_set_retry_after(L, retry_after, retry_after_len, refresh, refresh_len);
    return results;
}

/* The options table of decode_json, at index 2: nil, or a table whose only key is
 * strict (a boolean). Returns the flags. */
static int json_options(lua_State *L)
{
    int flags = 0;
    if (lua_isnoneornil(L, 2))
        return 0;
    if (!lua_istable(L, 2))
        return luaL_argerror(L, 2, lua_pushfstring(L, "table or nil expected, got %s",
                                                   luaL_typename(L, 2)));
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "strict") == 0) {
            if (!lua_isboolean(L, -1))
                return luaL_argerror(L, 2, lua_pushfstring(L,
                    "option strict must be a boolean, got %s", luaL_typename(L, -1)));
            if (lua_toboolean(L, -1))
                flags |= SG_JSON_STRICT;
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            return luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s'",
                                                       lua_tostring(L, -2)));
        } else {
            return luaL_argerror(L, 2, lua_pushfstring(L, "option names must be strings, got %s",
                                                       luaL_typename(L, -2)));
        }
        lua_pop(L, 1);
    }
    return flags;
}

/* decode_json(text[, {strict = boolean}]) -> value, or nil, "line L, column C: why" */
int sg_decode_json_text(lua_State *L)
{
    size_t len;
    sg_json_error error;
    const char *text = sg_check_string(L, 1, &len);
    int flags = json_options(L);
    if (sg_json_decode(L, text, len, flags, &error))
        return 1;
    lua_pushnil(L);
    sg_push_json_error(L, &error);
    return 2;
}
