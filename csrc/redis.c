/* core.redis: a connection to Redis through hiredis, for the state that many hosts
 * share (issue 26), and core.wait_fd, the one wait the Lua side needs for it outside
 * nginx.
 *
 * As with the rest of the core (DESIGN.md), nothing here waits on the network: the
 * connection is non-blocking, and send / flush / read / wants_write / fd let a Lua loop
 * drive it and wait on its socket where it likes (core.wait_fd in a plain script,
 * lua/soracom/groups/redis_conn.lua; a scheduler's own wait in a task). No Lua code runs
 * while hiredis state is in use: every Lua allocation (which may run a finalizer, and
 * that finalizer may close this very connection) comes before the connection is looked
 * at, or after hiredis is done with it.
 *
 * Replies take the shapes lua-resty-redis gives in nginx, so that code above both is
 * written once: status -> its text ("OK"), bulk string -> string, integer -> integer,
 * nil -> core.null (the light userdata NULL, equal to ngx.null and cjson.null), array ->
 * a Lua array, nested; an error reply -> false, "ERR ..." at the top, {false, "ERR ..."}
 * inside an array; a connection failure -> nil, message. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include "core.h"
#include "numbers.h"

/* core.wait_fd(fd, want_read, want_write, timeout) -> readable, writable: waits until
 * fd is ready for what is wanted, at most timeout seconds (0: only looks). Both false
 * on timeout. An error or hang-up on fd counts as ready for whatever was wanted, so the
 * next read or write sees it. Returns nil, message when poll fails (fd not open). A
 * signal does not cut the wait short: poll starts again for the time left. */
int sg_wait_fd(lua_State *L)
{
    lua_Number fd_number = sg_check_number(L, 1);
    int want_read = lua_toboolean(L, 2);
    int want_write = lua_toboolean(L, 3);
    double timeout = (double)sg_check_number(L, 4);
    struct pollfd p;
    struct timespec now;
    double deadline;
    int rc;
    if (!(fd_number >= 0 && fd_number <= 2147483647.0) || fd_number != floor(fd_number))
        return sg_arg_error(L, "wait_fd", "fd", "a descriptor (an integer, 0 or more)", 1);
    if (!(timeout >= 0 && timeout <= SG_MAX_TIMEOUT_SECONDS))
        return sg_arg_error(L, "wait_fd", "timeout", "0 to 86400 seconds", 4);
    if (!want_read && !want_write)
        return luaL_error(L, "soracom.groups: wait_fd: want_read or want_write must be true");
    p.fd = (int)fd_number;
    p.events = (short)((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
    clock_gettime(CLOCK_MONOTONIC, &now);
    deadline = (double)now.tv_sec + (double)now.tv_nsec / 1e9 + timeout;
    for (;;) {
        double left;
        p.revents = 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = deadline - ((double)now.tv_sec + (double)now.tv_nsec / 1e9);
        /* rounded up: a wait of 0.0004 s must not become a busy poll(0) loop */
        rc = poll(&p, 1, left > 0 ? (int)ceil(left * 1000) : 0);
        if (rc >= 0 || errno != EINTR)
            break;
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "wait_fd: poll failed (%s)", strerror(errno));
        return 2;
    }
    if (p.revents & POLLNVAL) {
        lua_pushnil(L);
        lua_pushfstring(L, "wait_fd: descriptor %d is not open", p.fd);
        return 2;
    }
    {
        int failed = (p.revents & (POLLERR | POLLHUP)) != 0;
        lua_pushboolean(L, want_read && (failed || (p.revents & POLLIN)));
        lua_pushboolean(L, want_write && (failed || (p.revents & POLLOUT)));
    }
    return 2;
}

#ifdef SG_HAVE_HIREDIS
#include <hiredis.h>
#include <signal.h>
#include <pthread.h>

#define REDIS_METATABLE "soracom.groups.redis"
/* send's arguments up to this count go in arrays on the C stack; more in a userdata */
#define STACK_ARGS 16

#define REPLY_METATABLE "soracom.groups.redis_reply"

typedef struct {
    redisContext *context; /* NULL once closed */
} sg_redis;

/* A reply being turned into Lua values, owned by a userdata of read's own frame: a Lua
 * error there (out of memory) leaves it to the collector, and a finalizer that closes
 * or reads the connection meanwhile cannot touch it (a reply is apart from its
 * context). */
typedef struct {
    redisReply *reply;
} sg_redis_reply;

static int reply_gc(lua_State *L)
{
    sg_redis_reply *holder = (sg_redis_reply *)luaL_checkudata(L, 1, REPLY_METATABLE);
    if (holder->reply != NULL) {
        freeReplyObject(holder->reply);
        holder->reply = NULL;
    }
    return 0;
}

static int redis_close(lua_State *L)
{
    sg_redis *r = (sg_redis *)luaL_checkudata(L, 1, REDIS_METATABLE);
    if (r->context != NULL) {
        redisFree(r->context); /* closes the socket; pending replies are dropped */
        r->context = NULL;
    }
    return 0;
}

static sg_redis *check_redis(lua_State *L, const char *method)
{
    sg_redis *r = (sg_redis *)luaL_checkudata(L, 1, REDIS_METATABLE);
    if (r->context == NULL)
        luaL_error(L, "soracom.groups: redis:%s: the connection is closed", method);
    return r;
}

/* Pushes nil and the connection's error (copied first: pushing may run a finalizer
 * that closes the connection and frees the context). */
static int push_failure(lua_State *L, const redisContext *c)
{
    char message[sizeof c->errstr + 1];
    memcpy(message, c->errstr, sizeof c->errstr);
    message[sizeof c->errstr] = '\0';
    if (message[0] == '\0')
        strcpy(message, "connection failed");
    lua_pushnil(L);
    lua_pushfstring(L, "redis: %s", message);
    return 2;
}

/* core.redis.connect(host, port) -> conn, or nil, message. Starts a non-blocking
 * connect: a refused or unreachable server usually shows at the first flush or read.
 * host is an address, or a name resolved here (a blocking look-up: give an address
 * where that matters). */
static int redis_connect(lua_State *L)
{
    size_t host_len;
    const char *host = sg_check_string(L, 1, &host_len);
    lua_Number port = sg_check_number(L, 2);
    sg_redis *r;
    redisContext *c;
    int self;
    if (host_len == 0 || strlen(host) != host_len)
        return sg_arg_error(L, "redis.connect", "host", "a non-empty string without NUL", 1);
    if (!(port >= 1 && port <= 65535) || port != floor(port))
        return sg_arg_error(L, "redis.connect", "port", "an integer from 1 to 65535", 2);
    r = (sg_redis *)lua_newuserdata(L, sizeof *r);
    r->context = NULL;
    self = lua_gettop(L);
    luaL_getmetatable(L, REDIS_METATABLE);
    lua_setmetatable(L, -2);
    /* From here the userdata owns the context: its __gc frees it whatever happens. */
    c = redisConnectNonBlock(host, (int)port);
    if (c == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "redis: out of memory");
        return 2;
    }
    r->context = c;
    if (c->err) {
        int n = push_failure(L, c);
        redisFree(c); /* closed now, not when the collector gets to it */
        r->context = NULL;
        return n;
    }
    sg_set_cloexec(c->fd);
    lua_settop(L, self);
    return 1;
}

static int redis_fd(lua_State *L)
{
    sg_redis *r = check_redis(L, "fd");
    lua_pushinteger(L, r->context->fd);
    return 1;
}

/* The text of send's number argument at index, in out: an integral value as an
 * integer, any other finite one as the shortest decimal that reads back the same. */
static size_t number_text(lua_State *L, int index, char *out)
{
    lua_Number d;
#if SG_HAS_INTEGERS
    if (lua_isinteger(L, index))
        return sg_format_integer((int64_t)lua_tointeger(L, index), out);
#endif
    d = lua_tonumber(L, index);
    if (isnan(d) || isinf(d)) {
        lua_pushfstring(L, "argument #%d", index - 1);
        sg_arg_error(L, "redis:send", lua_tostring(L, -1), "a string or a finite number", index);
    }
    /* -2^63 <= d < 2^63: an int64 holds it exactly */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        return sg_format_integer((int64_t)d, out);
    return sg_format_double((double)d, out);
}

/* conn:send(arg1, ...) -> true, or nil, message: appends one command (binary-safe
 * strings; numbers as their text) to the output buffer; flush writes it. */
static int redis_send(lua_State *L)
{
    int argc = lua_gettop(L) - 1, i;
    const char *stack_argv[STACK_ARGS];
    size_t stack_lens[STACK_ARGS];
    const char **argv = stack_argv;
    size_t *lens = stack_lens;
    sg_redis *r;
    luaL_checkudata(L, 1, REDIS_METATABLE);
    if (argc < 1)
        return luaL_error(L, "soracom.groups: redis:send: a command needs at least one argument");
    /* Numbers become strings in their stack slots, before any pointer is taken. */
    for (i = 2; i <= argc + 1; i++) {
        int type = lua_type(L, i);
        if (type == LUA_TNUMBER) {
            char text[SG_NUMBER_TEXT_MAX];
            size_t n = number_text(L, i, text);
            lua_pushlstring(L, text, n);
            lua_replace(L, i);
        } else if (type != LUA_TSTRING) {
            lua_pushfstring(L, "argument #%d", i - 1);
            return sg_arg_error(L, "redis:send", lua_tostring(L, -1),
                                "a string or a finite number", i);
        }
    }
    if (argc > STACK_ARGS) {
        /* collected with the call's stack frame, a Lua error included */
        argv = (const char **)lua_newuserdata(L, (size_t)argc * sizeof *argv);
        lens = (size_t *)lua_newuserdata(L, (size_t)argc * sizeof *lens);
    }
    r = check_redis(L, "send"); /* after the allocations above: they may close it */
    if (r->context->err)
        return push_failure(L, r->context);
    for (i = 0; i < argc; i++)
        argv[i] = lua_tolstring(L, i + 2, &lens[i]); /* strings anchored on the stack */
    if (redisAppendCommandArgv(r->context, argc, argv, lens) != REDIS_OK)
        return push_failure(L, r->context);
    lua_pushboolean(L, 1);
    return 1;
}

/* redisBufferWrite with SIGPIPE held back: hiredis writes with write(), and a write to
 * a connection the server has closed would raise SIGPIPE, whose default action ends
 * the process; the write then fails with EPIPE instead. A SIGPIPE that this write
 * raises is taken off the thread's pending set before the mask is restored; one that
 * was pending before is left alone. */
static int buffer_write(redisContext *c, int *done)
{
    sigset_t pipe_only, old, pending;
    int was_pending, rc;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &pipe_only, &old) != 0)
        return redisBufferWrite(c, done);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    rc = redisBufferWrite(c, done);
    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            static const struct timespec no_wait = {0, 0};
            int saved = errno;
            while (sigtimedwait(&pipe_only, NULL, &no_wait) < 0 && errno == EINTR) {
            }
            errno = saved;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* conn:flush() -> done, or nil, message: writes what the socket takes now; done is
 * true when nothing is left to write (else wait until fd is writable and flush again). */
static int redis_flush(lua_State *L)
{
    sg_redis *r = check_redis(L, "flush");
    int done = 0;
    if (buffer_write(r->context, &done) != REDIS_OK)
        return push_failure(L, r->context);
    lua_pushboolean(L, done);
    return 1;
}

static int redis_wants_write(lua_State *L)
{
    sg_redis *r = check_redis(L, "wants_write");
    lua_pushboolean(L, r->context->obuf != NULL && sdslen(r->context->obuf) > 0);
    return 1;
}

/* Pushes the Lua value of reply (see the top of this file). The reader bounds the
 * nesting (7 levels in hiredis 0.14), and with it this recursion. */
static void push_reply(lua_State *L, const redisReply *reply, int nested)
{
    luaL_checkstack(L, 4, "soracom.groups: redis: reply nested too deeply");
    switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
#ifdef REDIS_REPLY_VERB
    case REDIS_REPLY_VERB:
#endif
#ifdef REDIS_REPLY_BIGNUM
    case REDIS_REPLY_BIGNUM:
#endif
#ifdef REDIS_REPLY_DOUBLE
    case REDIS_REPLY_DOUBLE:
#endif
        lua_pushlstring(L, reply->str != NULL ? reply->str : "", reply->len);
        break;
    case REDIS_REPLY_INTEGER:
#if SG_HAS_INTEGERS
        lua_pushinteger(L, (lua_Integer)reply->integer);
#else
        lua_pushnumber(L, (lua_Number)reply->integer); /* exact up to 2^53 */
#endif
        break;
#ifdef REDIS_REPLY_BOOL
    case REDIS_REPLY_BOOL:
        lua_pushboolean(L, reply->integer != 0);
        break;
#endif
    case REDIS_REPLY_ERROR:
        if (nested) {
            lua_createtable(L, 2, 0);
            lua_pushboolean(L, 0);
            lua_rawseti(L, -2, 1);
            lua_pushlstring(L, reply->str != NULL ? reply->str : "", reply->len);
            lua_rawseti(L, -2, 2);
        } else {
            lua_pushlstring(L, reply->str != NULL ? reply->str : "", reply->len);
        }
        break;
    case REDIS_REPLY_ARRAY:
#ifdef REDIS_REPLY_SET
    case REDIS_REPLY_SET:
#endif
#ifdef REDIS_REPLY_MAP
    case REDIS_REPLY_MAP: /* its keys and values in turn, as RESP2 sends a map */
#endif
#ifdef REDIS_REPLY_PUSH
    case REDIS_REPLY_PUSH:
#endif
    {
        size_t i;
        lua_createtable(L, reply->elements < 1000000 ? (int)reply->elements : 0, 0);
        for (i = 0; i < reply->elements; i++) {
            push_reply(L, reply->element[i], 1);
            lua_rawseti(L, -2, (int)(i + 1));
        }
        break;
    }
    default: /* REDIS_REPLY_NIL, and what a newer hiredis may add */
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

/* conn:read() -> a reply; or false, "ERR ..." for an error reply; or nil, message when
 * the connection failed; or nil (no message) when no whole reply has come yet (wait
 * until fd is readable and read again). Replies come in the order of the commands. */
static int redis_read(lua_State *L)
{
    sg_redis_reply *holder;
    redisContext *c;
    void *reply = NULL;
    int is_error;
    luaL_checkudata(L, 1, REDIS_METATABLE);
    holder = (sg_redis_reply *)lua_newuserdata(L, sizeof *holder);
    holder->reply = NULL;
    luaL_getmetatable(L, REPLY_METATABLE);
    lua_setmetatable(L, -2);
    c = check_redis(L, "read")->context; /* after the allocation: it may close it */
    if (c->err)
        return push_failure(L, c);
    /* what was read before first, then the socket */
    if (redisGetReply(c, &reply) != REDIS_OK)
        return push_failure(L, c);
    if (reply == NULL) {
        if (redisBufferRead(c) != REDIS_OK || redisGetReply(c, &reply) != REDIS_OK)
            return push_failure(L, c);
        if (reply == NULL) {
            lua_pushnil(L);
            return 1;
        }
    }
    holder->reply = (redisReply *)reply;
    is_error = holder->reply->type == REDIS_REPLY_ERROR;
    if (is_error)
        lua_pushboolean(L, 0);
    push_reply(L, holder->reply, 0);
    freeReplyObject(holder->reply); /* now, rather than when the collector gets to it */
    holder->reply = NULL;
    return is_error ? 2 : 1;
}

static int redis_tostring(lua_State *L)
{
    sg_redis *r = (sg_redis *)luaL_checkudata(L, 1, REDIS_METATABLE);
    lua_pushfstring(L, "soracom.groups.redis (%s)", r->context != NULL ? "open" : "closed");
    return 1;
}

static void register_redis(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"fd", redis_fd},
        {"send", redis_send},
        {"flush", redis_flush},
        {"read", redis_read},
        {"wants_write", redis_wants_write},
        {"close", redis_close},
        {NULL, NULL}
    };
    if (sg_new_metatable(L, REPLY_METATABLE)) {
        lua_pushcfunction(L, reply_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (sg_new_metatable(L, REDIS_METATABLE)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, redis_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, redis_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, redis_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

void sg_redis_open(lua_State *L)
{
    register_redis(L);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, redis_connect);
    lua_setfield(L, -2, "connect");
    lua_pushfstring(L, "%d.%d.%d", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    lua_setfield(L, -2, "hiredis_version");
    lua_setfield(L, -2, "redis");
}

#else /* built without hiredis: core.redis is nil, and core.redis_missing says why */

void sg_redis_open(lua_State *L)
{
#if defined(SG_HIREDIS_DISABLED)
    lua_pushliteral(L, "the core was built without hiredis (SORACOM_GROUPS_WITH_HIREDIS=OFF)");
#else
    lua_pushliteral(L, "the core was built without hiredis (pkg-config found no hiredis: "
                       "install libhiredis-dev, or your system's hiredis development "
                       "package, and pkg-config, then build the core again)");
#endif
    lua_setfield(L, -2, "redis_missing");
}

#endif
