/* The key of the next page: the x-soracom-next-key header, else the
 * last_evaluated_key parameter of the Link header's rel=next URL (Soracom documents
 * that some APIs send only one of the two). */
#include <string.h>
#include <strings.h>
#include "core.h"
#include "luabuffer.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Pushes the query value, percent-decoded. A '+' stays a '+' (RFC 3986); only
 * HTML forms read it as a space. */
static void push_decoded(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    size_t i;
    luaL_checkstack(L, SG_BUFFER_SLOTS, "no room on the Lua stack for the next page key");
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n &&
            (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0) {
            luaL_addchar(&b, (char)(hi * 16 + lo));
            i += 2;
        } else {
            luaL_addchar(&b, s[i]);
        }
    }
    luaL_pushresult(&b);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Does a rel value (the inside of its quotes, or a token) hold the relation type
 * "next"? It may list several, separated by spaces (RFC 8288, 3.3). */
static int lists_next(const char *v, const char *end)
{
    while (v < end) {
        const char *word;
        while (v < end && is_ows(*v))
            v++;
        word = v;
        while (v < end && !is_ows(*v))
            v++;
        if (v - word == 4 && strncasecmp(word, "next", 4) == 0)
            return 1;
    }
    return 0;
}

/* Does the parameter text of one link-value (after its '>') say rel=next? Parameters
 * are split at ';' outside quoted strings, so title="a;rel=next" is one parameter;
 * only the first rel counts (RFC 8288, 3.3). */
static int is_rel_next(const char *p, size_t n)
{
    const char *end = p + n;
    for (;;) {
        const char *name, *name_end, *value = NULL, *value_end = NULL;
        while (p < end && *p != ';') /* whatever precedes the next parameter */
            p++;
        if (p >= end)
            return 0;
        p++;
        while (p < end && is_ows(*p))
            p++;
        name = p;
        while (p < end && *p != '=' && *p != ';' && !is_ows(*p))
            p++;
        name_end = p;
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_ows(*p))
                p++;
            if (p < end && *p == '"') {
                value = ++p;
                while (p < end && *p != '"') {
                    if (*p == '\\' && p + 1 < end)
                        p++;
                    p++;
                }
                value_end = p;
                if (p < end)
                    p++; /* the closing quote */
            } else {
                value = p;
                while (p < end && *p != ';' && !is_ows(*p))
                    p++;
                value_end = p;
            }
        }
        if (name_end - name == 3 && strncasecmp(name, "rel", 3) == 0)
            return value != NULL && lists_next(value, value_end);
    }
}

static int push_key_from_url(lua_State *L, const char *url, size_t n)
{
    static const char name[] = "last_evaluated_key=";
    const size_t name_len = sizeof name - 1;
    const char *fragment = memchr(url, '#', n);
    const char *end = fragment ? fragment : url + n; /* a #fragment is not the query's */
    const char *q = memchr(url, '?', (size_t)(end - url));
    if (q == NULL)
        return 0;
    q++;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) >= name_len && memcmp(q, name, name_len) == 0 &&
            stop > q + name_len) {
            push_decoded(L, q + name_len, (size_t)(stop - q - name_len));
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

/* The end of one link-value: the next comma outside quotes, or the end. */
static const char *link_value_end(const char *p, const char *end)
{
    int quoted = 0;
    for (; p < end; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == '\\' && quoted && p + 1 < end)
            p++;
        else if (*p == ',' && !quoted)
            return p;
    }
    return end;
}

int sg_push_key_from_link(lua_State *L, const char *link, size_t n)
{
    const char *p = link, *end = link + n;
    while (p < end) {
        const char *open = memchr(p, '<', (size_t)(end - p));
        const char *close, *value_end;
        if (open == NULL)
            return 0;
        close = memchr(open, '>', (size_t)(end - open));
        if (close == NULL)
            return 0;
        value_end = link_value_end(close + 1, end);
        if (is_rel_next(close + 1, (size_t)(value_end - close - 1)))
            return push_key_from_url(L, open + 1, (size_t)(close - open - 1));
        p = value_end < end ? value_end + 1 : end;
    }
    return 0;
}

void sg_push_next_key(lua_State *L, const char *next_key, size_t next_key_len,
                      const char *link, size_t link_len)
{
    if (next_key != NULL && next_key_len > 0) {
        lua_pushlstring(L, next_key, next_key_len);
        return;
    }
    if (link != NULL && link_len > 0 && sg_push_key_from_link(L, link, link_len))
        return;
    lua_pushnil(L);
}

/* parse_next_key(x_soracom_next_key_or_nil, link_or_nil) -> key or nil */
int sg_parse_next_key(lua_State *L)
{
    size_t key_len = 0, link_len = 0;
    const char *key = sg_opt_string(L, 1, NULL, &key_len);
    const char *link = sg_opt_string(L, 2, NULL, &link_len);
    sg_push_next_key(L, key, key_len, link, link_len);
    return 1;
}
