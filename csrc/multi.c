/* A multi handle: runs the requests of many curl sessions at once, for the scheduler
 * of client:map (lua/soracom/groups/scheduler.lua). Sessions share its connection
 * cache, and HTTP/2 multiplexing where the server offers it. It never calls back into
 * Lua: poll() runs the transfers for at most a timeout and returns the sessions whose
 * transfers ended; each then gives its results through session:finish(). */
#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

#define MULTI_METATABLE "soracom.groups.multi"

/* The cap of cached (idle) connections when the caller sets none. libcurl's own
 * default (7.88, conncache.c) is 4 per easy handle in the multi handle when a
 * connection is returned to the cache: 4096 at a concurrency of 1024, and as only the
 * oldest one is closed when the cache is over its cap, a burst of transfers leaves
 * about as many idle connections (descriptors) as it ran at once. 64 keeps a pool
 * worth reusing against one API host and bounds the descriptors it holds. */
#define DEFAULT_MAX_CONNECTS 64L

typedef struct {
    sg_session *session;
    CURL *easy;
    int ref; /* in the registry: keeps the session's userdata alive while it runs */
} running_transfer;

struct sg_multi {
    CURLM *handle;
    running_transfer *running;
    int count, capacity;
};

static sg_multi *check_multi(lua_State *L, const char *method)
{
    sg_multi *m = (sg_multi *)luaL_checkudata(L, 1, MULTI_METATABLE);
    if (m->handle == NULL)
        luaL_error(L, "soracom.groups: multi:%s: the multi handle is closed", method);
    return m;
}

static int find(const sg_multi *m, const sg_session *s)
{
    int i;
    for (i = 0; i < m->count; i++)
        if (m->running[i].session == s)
            return i;
    return -1;
}

/* Takes transfer i off the handle; returns its registry reference, which the caller
 * releases. */
static int take_off(sg_multi *m, int i)
{
    int ref = m->running[i].ref;
    curl_multi_remove_handle(m->handle, m->running[i].easy);
    m->running[i] = m->running[m->count - 1];
    m->count--;
    return ref;
}

void sg_multi_forget(lua_State *L, sg_multi *m, sg_session *s)
{
    int i = find(m, s);
    if (i >= 0)
        luaL_unref(L, LUA_REGISTRYINDEX, take_off(m, i));
    sg_session_cancelled(s);
}

/* add(session): starts the prepared session's transfer. Returns true, or nil and a
 * message when libcurl refuses it. */
static int multi_add(lua_State *L)
{
    sg_multi *m = check_multi(L, "add");
    sg_session *s;
    CURLMcode code;
    int ref;
    sg_session_check_prepared(L, 2, "multi:add");
    lua_settop(L, 2);
    /* luaL_ref may allocate, and so run a finalizer: check again after it */
    lua_pushvalue(L, 2);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (m->handle == NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        return luaL_error(L, "soracom.groups: multi:add: the multi handle is closed");
    }
    s = sg_session_check_prepared(L, 2, "multi:add");
    if (m->count == m->capacity) {
        int capacity = m->capacity ? m->capacity * 2 : 16;
        running_transfer *grown = NULL;
        if (capacity < INT_MAX / 2)
            grown = (running_transfer *)realloc(m->running, (size_t)capacity * sizeof *grown);
        if (grown == NULL) {
            luaL_unref(L, LUA_REGISTRYINDEX, ref);
            return luaL_error(L, "soracom.groups: out of memory");
        }
        m->running = grown;
        m->capacity = capacity;
    }
    code = curl_multi_add_handle(m->handle, sg_session_easy(s));
    if (code != CURLM_OK) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(code));
        return 2;
    }
    m->running[m->count].session = s;
    m->running[m->count].easy = sg_session_easy(s);
    m->running[m->count].ref = ref;
    m->count++;
    sg_session_running(s, m);
    lua_pushboolean(L, 1);
    return 1;
}

/* remove(session): stops its transfer, if this handle runs it; the session is free for
 * another request (its transfer gives no results). */
static int multi_remove(lua_State *L)
{
    sg_multi *m = check_multi(L, "remove");
    sg_session *s;
    luaL_checkany(L, 2);
    s = (sg_session *)luaL_checkudata(L, 2, SG_SESSION_METATABLE);
    if (find(m, s) >= 0)
        sg_multi_forget(L, m, s);
    return 0;
}

/* Moves every transfer libcurl reports as ended into the table at the top, from slot
 * done + 1 on (slots made beforehand: nothing here allocates). Returns the new count. */
static int collect(lua_State *L, sg_multi *m, int done)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->handle, &left)) != NULL) {
        sg_session *s;
        CURLcode result;
        int i;
        if (msg->msg != CURLMSG_DONE)
            continue;
        for (i = 0; i < m->count && m->running[i].easy != msg->easy_handle; i++) {
        }
        if (i == m->count)
            continue;
        result = msg->data.result; /* msg is gone once the handle is removed */
        s = m->running[i].session;
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->running[i].ref);
        luaL_unref(L, LUA_REGISTRYINDEX, take_off(m, i));
        sg_session_ended(s, result);
        lua_rawseti(L, -2, ++done);
    }
    return done;
}

/* poll(timeout) -> {session, ...}: runs the transfers, waiting up to timeout seconds
 * for one to end, and returns the sessions whose transfers ended (each then answers
 * session:finish()). */
static int multi_poll(lua_State *L)
{
    sg_multi *m = check_multi(L, "poll");
    lua_Number timeout = luaL_checknumber(L, 2);
    int still_running, done;
    if (!(timeout >= 0))
        return luaL_error(L, "soracom.groups: multi:poll: timeout must be 0 or more seconds");
    if (timeout > 3600)
        timeout = 3600;
    /* A slot for every transfer, made before libcurl reports any end: no allocation
     * (so no finalizer) happens while ended transfers are being taken off. */
    lua_createtable(L, m->count, 0);
    if (m->handle == NULL) /* a finalizer closed it */
        return 1;
    curl_multi_perform(m->handle, &still_running);
    done = collect(L, m, 0);
    if (done == 0 && m->count > 0) {
        curl_multi_poll(m->handle, NULL, 0, (int)ceil(timeout * 1000), NULL);
        curl_multi_perform(m->handle, &still_running);
        collect(L, m, done);
    }
    return 1;
}

static int multi_count(lua_State *L)
{
    sg_multi *m = (sg_multi *)luaL_checkudata(L, 1, MULTI_METATABLE);
    lua_pushinteger(L, m->count);
    return 1;
}

/* close(): stops every transfer (their sessions are free again); safe twice. */
static int multi_close(lua_State *L)
{
    sg_multi *m = (sg_multi *)luaL_checkudata(L, 1, MULTI_METATABLE);
    while (m->count > 0) {
        sg_session *s = m->running[m->count - 1].session;
        luaL_unref(L, LUA_REGISTRYINDEX, take_off(m, m->count - 1));
        sg_session_cancelled(s);
    }
    if (m->handle != NULL) {
        curl_multi_cleanup(m->handle);
        m->handle = NULL;
    }
    free(m->running);
    m->running = NULL;
    m->capacity = 0;
    return 0;
}

static int multi_tostring(lua_State *L)
{
    sg_multi *m = (sg_multi *)luaL_checkudata(L, 1, MULTI_METATABLE);
    lua_pushfstring(L, "soracom.groups.multi (%d transfers%s)", m->count,
                    m->handle ? "" : ", closed");
    return 1;
}

/* Reads multi's options table (index 1) raw, raising on an unknown key or a bad value
 * before anything is made. */
static void read_options(lua_State *L, long *max_connects)
{
    if (lua_isnoneornil(L, 1))
        return;
    if (lua_type(L, 1) != LUA_TTABLE)
        sg_arg_error(L, "multi", "options", "a table or nil", 1);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (key != NULL && strcmp(key, "max_connects") == 0) {
            double n = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : 0;
            if (!(n >= 1 && n <= INT_MAX && floor(n) == n))
                sg_arg_error(L, "multi", "max_connects",
                             "a whole number from 1 to 2147483647", -1);
            *max_connects = (long)n;
        } else if (key != NULL) {
            luaL_error(L, "soracom.groups: multi: unknown option \"%s\"", key);
        } else {
            luaL_error(L, "soracom.groups: multi: unknown option (a %s key)",
                       luaL_typename(L, -2));
        }
        lua_pop(L, 1);
    }
}

/* core.multi([options]) -> a multi handle. options.max_connects: the cap of cached
 * connections (CURLMOPT_MAXCONNECTS; default DEFAULT_MAX_CONNECTS). */
int sg_multi_new(lua_State *L)
{
    sg_multi *m;
    long max_connects = DEFAULT_MAX_CONNECTS;
    int fds[2];
    read_options(L, &max_connects);
    m = (sg_multi *)lua_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    luaL_getmetatable(L, MULTI_METATABLE);
    lua_setmetatable(L, -2);
    /* libcurl before 8.8 opens the multi handle's wakeup socketpair (what
     * curl_multi_poll waits on besides the transfers, for curl_multi_wakeup) without
     * close-on-exec, and neither tells its descriptors nor lets a callback open them
     * (CURLOPT_OPENSOCKETFUNCTION is per easy handle). They are the first descriptors
     * curl_multi_init opens, so they take the two lowest free ones. (A thread of the
     * host opening a socket at that very moment could be given close-on-exec in their
     * place.) */
    sg_lowest_free_fds(fds);
    m->handle = curl_multi_init();
    if (m->handle == NULL)
        return luaL_error(L, "soracom.groups: curl_multi_init failed");
    sg_cloexec_new_fds(fds);
    curl_multi_setopt(m->handle, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(m->handle, CURLMOPT_MAXCONNECTS, max_connects);
    return 1;
}

void sg_multi_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", multi_add},
        {"remove", multi_remove},
        {"poll", multi_poll},
        {"count", multi_count},
        {"close", multi_close},
        {NULL, NULL}
    };
    if (luaL_newmetatable(L, MULTI_METATABLE)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, multi_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, multi_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, multi_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
