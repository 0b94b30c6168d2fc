/* A multi handle: runs the requests of many curl sessions at once, for the scheduler
 * of client:map (lua/soracom/groups/scheduler.lua). Sessions share its connection
 * cache, and HTTP/2 multiplexing where the server offers it. It never calls back into
 * Lua: poll() runs the transfers for at most a timeout and returns the sessions whose
 * transfers ended; each then gives its results through session:finish().
 *
 * For an application's own event loop, wait_hint() tells what poll() would wait for
 * (the sockets and libcurl's timeout), and poll(timeout, others) waits for several
 * multi handles at once. The sockets are recorded in C by libcurl's socket callback. */
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
    int ref; /* in the handle's user value: keeps the session's userdata alive while it runs */
} running_transfer;

/* A socket libcurl wants watched, and for what (CURL_POLL_IN, _OUT or _INOUT). */
typedef struct {
    curl_socket_t fd;
    int what;
} watched_socket;

struct sg_multi {
    CURLM *handle;
    running_transfer *running;
    int count, capacity;
    watched_socket *sockets; /* kept by on_socket; freed by close */
    int socket_count, socket_capacity;
    int sockets_lost; /* on_socket could not grow the list: it is incomplete */
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

/* Takes transfer i off the handle and releases its reference in the handle's user
 * value, the table at index refs (whose free list exists from the start: releasing
 * writes existing keys only, and allocates nothing). refs is 0, or not a table, when
 * the user value was replaced through the debug library: the reference is then lost,
 * and with it only the session's memory until the table that holds it goes. */
static void take_off(lua_State *L, int refs, sg_multi *m, int i)
{
    int ref = m->running[i].ref;
    curl_multi_remove_handle(m->handle, m->running[i].easy);
    m->running[i] = m->running[m->count - 1];
    m->count--;
    if (refs != 0 && lua_type(L, refs) == LUA_TTABLE)
        luaL_unref(L, refs, ref);
}

static int uservalue_is_table(lua_State *L, int index)
{
    int is_table;
    sg_getuservalue(L, index);
    is_table = lua_type(L, -1) == LUA_TTABLE;
    lua_pop(L, 1);
    return is_table;
}

/* Pushes the session of transfer i, from the table of references at index refs; nil
 * when what is there is not that session (the debug library replaced the table). */
static void push_session(lua_State *L, int refs, const sg_multi *m, int i)
{
    if (lua_type(L, refs) != LUA_TTABLE) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, refs, m->running[i].ref);
    if (lua_touserdata(L, -1) != (void *)m->running[i].session) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

static int reserve_sockets(sg_multi *m, int want)
{
    watched_socket *grown;
    int capacity = m->socket_capacity ? m->socket_capacity : 16;
    if (want <= m->socket_capacity)
        return 1;
    while (capacity < want && capacity < INT_MAX / 4)
        capacity *= 2;
    if (capacity < want)
        return 0;
    grown = (watched_socket *)realloc(m->sockets, (size_t)capacity * sizeof *grown);
    if (grown == NULL)
        return 0;
    m->sockets = grown;
    m->socket_capacity = capacity;
    return 1;
}

/* CURLMOPT_SOCKETFUNCTION: records which sockets libcurl wants watched and for what.
 * libcurl calls it only from within curl_multi_socket_all (see run), remove_handle and
 * cleanup, so the list is the state after the last poll(). No Lua runs here. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sg_multi *m = (sg_multi *)userp;
    int i;
    (void)easy;
    (void)socketp;
    for (i = 0; i < m->socket_count && m->sockets[i].fd != fd; i++) {
    }
    if (what == CURL_POLL_REMOVE) {
        if (i < m->socket_count)
            m->sockets[i] = m->sockets[--m->socket_count];
        return 0;
    }
    if (i == m->socket_count) {
        if (!reserve_sockets(m, m->socket_count + 1)) {
            m->sockets_lost = 1; /* wait_hint says so; poll waits on the others */
            return 0;
        }
        m->socket_count++;
        m->sockets[i].fd = fd;
        /* connections are close-on-exec from the start (session.c); this catches the
         * threaded resolver's socketpair, which libcurl before 8.8 opens inheritable */
        sg_set_cloexec((int)fd);
    }
    m->sockets[i].what = what;
    return 0;
}

/* Runs the transfers. curl_multi_perform would, but libcurl 7.88's never calls the
 * socket callback (only curl_multi_socket_action and curl_multi_socket_all do):
 * curl_multi_socket_all is curl_multi_perform followed by the socket callback for every
 * transfer whose sockets changed. Deprecated since 7.19.5 in favour of
 * curl_multi_socket_action, which needs the caller to say which socket is ready, and
 * still in libcurl 8.x. */
static void run(sg_multi *m)
{
    int still_running;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    curl_multi_socket_all(m->handle, &still_running);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

void sg_multi_forget(lua_State *L, int multi_index, int session_index, sg_session *s)
{
    /* The handle running the session's transfer: its memory lasts as long as the
     * transfer does, since closing or collecting a handle ends its transfers first.
     * The value at multi_index (from the session's user value) is used for its table
     * of references only when it is that handle. */
    sg_multi *m = sg_session_multi(s);
    multi_index = sg_absindex(L, multi_index);
    session_index = sg_absindex(L, session_index);
    if (m != NULL && m->handle != NULL) {
        int i = find(m, s);
        if (i >= 0) {
            if (lua_touserdata(L, multi_index) == (void *)m) {
                sg_getuservalue(L, multi_index);
                take_off(L, lua_gettop(L), m, i);
                lua_pop(L, 1);
            } else {
                take_off(L, 0, m, i);
            }
        }
    }
    sg_session_cancelled(L, session_index, s);
}

/* add(session): starts the prepared session's transfer. Returns true, or nil and a
 * message when libcurl refuses it (or refused the request's options at prepare).
 * Nothing here runs Lua code between the checks and the end (no finalizer can close
 * the handle or the session meanwhile): the arrays grow with realloc, and luaL_ref
 * only stores into a table (lua_rawseti), which never runs a collector step. */
static int multi_add(lua_State *L)
{
    sg_multi *m = check_multi(L, "add");
    sg_session *s = sg_session_check_prepared(L, 2, "multi:add");
    CURLMcode code;
    int ref;
    lua_settop(L, 2);
    if (sg_session_setup_error(L, s)) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    /* The user values keep a running transfer's objects alive (see core.h); the debug
     * library can replace them with anything. */
    if (!uservalue_is_table(L, 1) || !uservalue_is_table(L, 2))
        return luaL_error(L, "soracom.groups: multi:add: the user value of the handle or of the session "
                             "is no longer its table (debug.setuservalue)");
    if (m->count == m->capacity) {
        int capacity = m->capacity ? m->capacity * 2 : 16;
        running_transfer *grown = NULL;
        if (capacity < INT_MAX / 2)
            grown = (running_transfer *)realloc(m->running, (size_t)capacity * sizeof *grown);
        if (grown == NULL)
            return luaL_error(L, "soracom.groups: out of memory");
        m->running = grown;
        m->capacity = capacity;
    }
    /* Room for two sockets a transfer (a connection, and a resolver's or a second
     * address family's while connecting) made here, where running out of memory can
     * raise; on_socket grows the list further if it must. */
    if (!reserve_sockets(m, m->count < INT_MAX / 4 ? 2 * (m->count + 1) : INT_MAX))
        return luaL_error(L, "soracom.groups: out of memory");
    sg_getuservalue(L, 1); /* 3: the references to the sessions of the transfers */
    lua_pushvalue(L, 2);
    ref = luaL_ref(L, 3);
    code = curl_multi_add_handle(m->handle, sg_session_easy(s));
    if (code != CURLM_OK) {
        luaL_unref(L, 3, ref);
        lua_pushnil(L);
        lua_pushstring(L, curl_multi_strerror(code));
        return 2;
    }
    m->running[m->count].session = s;
    m->running[m->count].easy = sg_session_easy(s);
    m->running[m->count].ref = ref;
    m->count++;
    sg_session_running(L, 2, s, 1, m);
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
    lua_settop(L, 2);
    if (find(m, s) >= 0)
        sg_multi_forget(L, 1, 2, s);
    return 0;
}

/* Moves every transfer libcurl reports as ended into the table at index ended, from
 * slot done + 1 on (slots made beforehand: nothing here allocates); refs is the
 * handle's user value. Returns the new count. */
static int collect(lua_State *L, sg_multi *m, int refs, int ended, int done)
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
        push_session(L, refs, m, i);
        take_off(L, refs, m, i);
        sg_session_ended(L, -1, s, result);
        if (lua_isnil(L, -1))
            lua_pop(L, 1); /* its session is out of reach (see push_session) */
        else
            lua_rawseti(L, ended, ++done);
    }
    return done;
}

/* The multi handles of poll's `others` (index 3), checked after poll's last allocation:
 * no Lua code (a finalizer) can run between this check and their use. Counts their
 * sockets into *sockets and lowers *ms to the soonest of their libcurl timeouts;
 * returns whether any has a transfer. */
static int check_others(lua_State *L, sg_multi *m, int *sockets, long *ms)
{
    int i, n, busy = 0;
    *sockets = 0;
    if (lua_isnoneornil(L, 3))
        return 0;
    n = (int)sg_rawlen(L, 3);
    for (i = 1; i <= n; i++) {
        sg_multi *other;
        long t = -1;
        lua_rawgeti(L, 3, i);
        other = (sg_multi *)luaL_testudata(L, -1, MULTI_METATABLE);
        if (other == NULL)
            return luaL_error(L, "soracom.groups: multi:poll: others[%d] must be a multi "
                              "handle (got %s)", i, luaL_typename(L, -1));
        if (other->handle == NULL)
            return luaL_error(L, "soracom.groups: multi:poll: others[%d]: the multi handle "
                              "is closed", i);
        lua_pop(L, 1);
        if (other == m || other->count == 0)
            continue;
        busy = 1;
        if (other->socket_count > INT_MAX - *sockets)
            return luaL_error(L, "soracom.groups: out of memory");
        *sockets += other->socket_count;
        curl_multi_timeout(other->handle, &t);
        if (t >= 0 && t < *ms)
            *ms = t;
    }
    return busy;
}

/* Waits up to ms on this handle's transfers and the sockets of the others (at index 3),
 * which hold `sockets` sockets in all; raises when out of memory, before waiting. No
 * Lua code runs here: the others stay as check_others found them. */
static void wait_for(lua_State *L, sg_multi *m, int sockets, long ms)
{
    struct curl_waitfd *extra = NULL;
    int i, j, n = 0;
    if (sockets > 0) {
        extra = (struct curl_waitfd *)malloc((size_t)sockets * sizeof *extra);
        if (extra == NULL) {
            luaL_error(L, "soracom.groups: out of memory");
            return;
        }
        for (i = 1; i <= (int)sg_rawlen(L, 3); i++) {
            sg_multi *other;
            lua_rawgeti(L, 3, i);
            other = (sg_multi *)lua_touserdata(L, -1);
            lua_pop(L, 1);
            if (other == m || other->count == 0)
                continue;
            for (j = 0; j < other->socket_count && n < sockets; j++, n++) {
                int what = other->sockets[j].what;
                extra[n].fd = other->sockets[j].fd;
                extra[n].events = (short)(((what & CURL_POLL_IN) ? CURL_WAIT_POLLIN : 0) |
                                          ((what & CURL_POLL_OUT) ? CURL_WAIT_POLLOUT : 0));
                extra[n].revents = 0;
            }
        }
    }
    curl_multi_poll(m->handle, extra, (unsigned int)n, (int)ms, NULL);
    free(extra);
}

/* poll(timeout[, others]) -> {session, ...}: runs the transfers, waiting up to timeout
 * seconds for one to end, and returns the sessions whose transfers ended (each then
 * answers session:finish()).
 * others: an array of other multi handles whose sockets (as their last poll left them,
 * see wait_hint) this wait watches too, so that one blocking wait covers them all: it
 * ends as soon as any of them has activity or one of their libcurl timeouts is due,
 * and the caller then polls each of them with 0. It returns at once only when nothing
 * at all is running, here or in the others. */
static int multi_poll(lua_State *L)
{
    sg_multi *m = check_multi(L, "poll");
    lua_Number timeout = sg_check_number(L, 2);
    int done, sockets, others_busy;
    long ms;
    if (!(timeout >= 0))
        return luaL_error(L, "soracom.groups: multi:poll: timeout must be 0 or more seconds");
    if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TTABLE)
        return sg_arg_error(L, "multi:poll", "others", "an array of multi handles or nil", 3);
    if (timeout > 3600)
        timeout = 3600;
    ms = (long)ceil(timeout * 1000);
    lua_settop(L, 3);
    sg_getuservalue(L, 1); /* 4 */
    /* 5: a slot for every transfer, made before libcurl reports any end: no allocation
     * (so no finalizer) happens while ended transfers are being taken off. */
    lua_createtable(L, m->count, 0);
    /* after the allocation: checking raises before anything has changed */
    others_busy = check_others(L, m, &sockets, &ms);
    if (m->handle == NULL) /* a finalizer closed it */
        return 1;
    run(m);
    done = collect(L, m, 4, 5, 0);
    if (done == 0 && (m->count > 0 || others_busy)) {
        wait_for(L, m, sockets, ms);
        run(m);
        collect(L, m, 4, 5, done);
    }
    return 1;
}

/* wait_hint() -> timeout, sockets: what poll() would wait for, for an application that
 * waits in its own event loop (and calls poll(0) when something is ready or the
 * timeout is due). timeout: seconds until libcurl needs poll() called whatever the
 * sockets do (a number, 0 for now), or nil when it has none pending. sockets: an array
 * of {fd = integer, read = boolean, write = boolean}. libcurl tells the sockets only
 * while poll() runs the transfers, so the list is the state after the last poll(): call
 * poll(0), then wait_hint(). */
static int multi_wait_hint(lua_State *L)
{
    sg_multi *m = check_multi(L, "wait_hint");
    watched_socket *copy;
    long ms = -1;
    int i, n = m->socket_count;
    if (m->sockets_lost)
        return luaL_error(L, "soracom.groups: multi:wait_hint: out of memory (the socket "
                          "list is incomplete)");
    /* A copy to build the answer from: the allocations below may run a finalizer that
     * polls or closes this handle, changing its list. */
    for (;;) {
        copy = (watched_socket *)lua_newuserdata(L, (size_t)(n > 0 ? n : 1) * sizeof *copy);
        if (m->socket_count <= n)
            break;
        lua_pop(L, 1);
        n = m->socket_count;
    }
    n = m->socket_count;
    if (n > 0)
        memcpy(copy, m->sockets, (size_t)n * sizeof *copy);
    if (m->handle != NULL)
        curl_multi_timeout(m->handle, &ms);
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)copy[i].fd);
        lua_setfield(L, -2, "fd");
        lua_pushboolean(L, (copy[i].what & CURL_POLL_IN) != 0);
        lua_setfield(L, -2, "read");
        lua_pushboolean(L, (copy[i].what & CURL_POLL_OUT) != 0);
        lua_setfield(L, -2, "write");
        lua_rawseti(L, -2, i + 1);
    }
    if (ms < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)ms / 1000);
    lua_insert(L, -2);
    return 2;
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
    lua_settop(L, 1);
    sg_getuservalue(L, 1); /* 2 */
    while (m->count > 0) {
        sg_session *s = m->running[m->count - 1].session;
        push_session(L, 2, m, m->count - 1); /* 3: the session, or nil */
        take_off(L, 2, m, m->count - 1);
        sg_session_cancelled(L, 3, s);
        lua_settop(L, 2);
    }
    if (m->handle != NULL) {
        curl_multi_cleanup(m->handle); /* may still call on_socket */
        m->handle = NULL;
    }
    free(m->running);
    m->running = NULL;
    m->capacity = 0;
    free(m->sockets);
    m->sockets = NULL;
    m->socket_count = m->socket_capacity = 0;
    m->sockets_lost = 0;
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
    CURLMcode code = CURLM_OK;
    const char *option = NULL;
    read_options(L, &max_connects);
    lua_settop(L, 1);
    m = (sg_multi *)lua_newuserdata(L, sizeof *m); /* 2 */
    memset(m, 0, sizeof *m);
    /* The user value: the references to the sessions of the running transfers. One
     * made and released now starts luaL_ref's free list, so that no later release
     * adds a key (see take_off). */
    lua_newtable(L); /* 3 */
    lua_pushboolean(L, 1);
    luaL_unref(L, 3, luaL_ref(L, 3));
    sg_setuservalue(L, 2);
    luaL_getmetatable(L, MULTI_METATABLE);
    lua_setmetatable(L, 2);
    /* libcurl before 8.8 opens the multi handle's wakeup socketpair (what
     * curl_multi_poll waits on besides the transfers, for curl_multi_wakeup) without
     * close-on-exec, and neither tells its descriptors nor lets a callback open them
     * (CURLOPT_OPENSOCKETFUNCTION is per easy handle); the socket callback never sees
     * them either. They are the first descriptors curl_multi_init opens, so they take
     * the two lowest free ones. (A thread of the host opening a socket at that very
     * moment could be given close-on-exec in their place.) */
    sg_lowest_free_fds(fds);
    m->handle = curl_multi_init();
    if (m->handle == NULL)
        return luaL_error(L, "soracom.groups: curl_multi_init failed");
    sg_cloexec_new_fds(fds);
#define MULTI_SETOPT(option_, value)                                                  \
    if (code == CURLM_OK && (code = curl_multi_setopt(m->handle, option_, value)) != CURLM_OK) \
        option = #option_;
    MULTI_SETOPT(CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX)
    MULTI_SETOPT(CURLMOPT_MAXCONNECTS, max_connects)
    MULTI_SETOPT(CURLMOPT_SOCKETFUNCTION, on_socket)
    MULTI_SETOPT(CURLMOPT_SOCKETDATA, (void *)m)
#undef MULTI_SETOPT
    if (code != CURLM_OK) {
        /* closed now, not when the collector gets to it */
        curl_multi_cleanup(m->handle);
        m->handle = NULL;
        return luaL_error(L, "soracom.groups: multi: libcurl refused %s (%s)", option,
                          curl_multi_strerror(code));
    }
    return 1;
}

void sg_multi_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", multi_add},
        {"remove", multi_remove},
        {"poll", multi_poll},
        {"wait_hint", multi_wait_hint},
        {"count", multi_count},
        {"close", multi_close},
        {NULL, NULL}
    };
    if (sg_new_metatable(L, MULTI_METATABLE)) {
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
