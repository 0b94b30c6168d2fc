/* Reading a file that holds credentials (a soracom-cli profile): opened first, then
 * checked through the open descriptor, so that what is checked is what is read (no
 * window between a stat and an open), and opened without blocking, so that a FIFO or
 * a device in its place cannot hang the program. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core.h"

#define FD_METATABLE "soracom.groups.fd"
/* A profile is a few hundred bytes; anything this large is not one. */
#define MAX_PRIVATE_FILE_BYTES (1024 * 1024)

/* The descriptor lives in a userdata, so that a Lua error raised while it is open
 * (memory runs out) closes it through __gc. */
typedef struct {
    int fd;
} fd_holder;

static int fd_holder_gc(lua_State *L)
{
    fd_holder *h = (fd_holder *)luaL_checkudata(L, 1, FD_METATABLE);
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    return 0;
}

static fd_holder *push_fd_holder(lua_State *L)
{
    fd_holder *h = (fd_holder *)lua_newuserdata(L, sizeof *h);
    h->fd = -1;
    if (luaL_newmetatable(L, FD_METATABLE)) {
        lua_pushcfunction(L, fd_holder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return h;
}

/* nil, reason, detail: reason is "missing" or "unreadable" (detail: the system's
 * message), "not_regular" or "shared" (group or others may read or write it; detail:
 * the mode), "too_large" (detail: the limit in bytes). */
static int refuse(lua_State *L, fd_holder *h, const char *reason, int err, int number)
{
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    lua_pushnil(L);
    lua_pushstring(L, reason);
    if (number >= 0)
        lua_pushinteger(L, number);
    else
        lua_pushstring(L, strerror(err));
    return 3;
}

/* read_private_file(path) -> text | nil, reason, detail
 * Only a regular file that neither group nor others can read or write is read. */
int sg_read_private_file(lua_State *L)
{
    size_t path_len;
    const char *path = luaL_checklstring(L, 1, &path_len);
    fd_holder *h;
    struct stat info;
    luaL_Buffer b;
    char *chunk;
    ssize_t got;
    size_t total = 0;

    if (strlen(path) != path_len) /* open() would read another name: the part before */
        return luaL_argerror(L, 1, "the path holds a NUL byte");
    h = push_fd_holder(L);
    h->fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (h->fd < 0) {
        int err = errno;
        return refuse(L, h, err == ENOENT ? "missing" : "unreadable", err, -1);
    }
    if (fstat(h->fd, &info) != 0)
        return refuse(L, h, "unreadable", errno, -1);
    if (!S_ISREG(info.st_mode))
        return refuse(L, h, "not_regular", 0, (int)(info.st_mode & 07777));
    if ((info.st_mode & 077) != 0)
        return refuse(L, h, "shared", 0, (int)(info.st_mode & 07777));

    luaL_buffinit(L, &b);
    for (;;) {
        chunk = luaL_prepbuffer(&b);
        got = read(h->fd, chunk, LUAL_BUFFERSIZE);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno;
            luaL_pushresult(&b);
            lua_pop(L, 1);
            return refuse(L, h, "unreadable", err, -1);
        }
        if (got == 0)
            break;
        total += (size_t)got;
        if (total > MAX_PRIVATE_FILE_BYTES) {
            luaL_pushresult(&b);
            lua_pop(L, 1);
            return refuse(L, h, "too_large", 0, MAX_PRIVATE_FILE_BYTES);
        }
        luaL_addsize(&b, (size_t)got);
    }
    close(h->fd);
    h->fd = -1;
    luaL_pushresult(&b);
    return 1;
}
