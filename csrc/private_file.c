/* Files that hold credentials or secrets.
 * Reading (a soracom-cli profile): see sg_read_private_file.
 * Writing (an exported document, a saved plan): see sg_write_private_file.
 * The folder of such files (the command's token cache): see sg_private_dir. */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (sg_new_metatable(L, FD_METATABLE)) {
        lua_pushcfunction(L, fd_holder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return h;
}

/* nil, reason, detail: reason is "missing" or "unreadable" (detail: the system's
 * message, or why the file is not read), "not_regular" or "shared" (group or others
 * may read or write it; detail: the mode), "too_large" (detail: the limit in bytes).
 * detail is text when given, else the number when it is 0 or more, else strerror(err). */
static int refuse(lua_State *L, fd_holder *h, const char *reason, int err, int number,
                  const char *text)
{
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    lua_pushnil(L);
    lua_pushstring(L, reason);
    if (text != NULL)
        lua_pushstring(L, text);
    else if (number >= 0)
        lua_pushinteger(L, number);
    else
        lua_pushstring(L, strerror(err));
    return 3;
}

/* read_private_file(path) -> text | nil, reason, detail
 * As ssh reads its keys: only a regular file that the effective user (or root) owns and
 * that neither group nor others can read or write. What the path names (through
 * symbolic links) is looked at before anything is opened, so that a device node or a
 * FIFO is never opened at all (opening one may act on the device, or wait for a
 * writer); the file then opened, without blocking, must be that same file (device and
 * inode), and the checks are made on the open descriptor, so that what is checked is
 * what is read. */
int sg_read_private_file(lua_State *L)
{
    size_t path_len;
    const char *path = sg_check_string(L, 1, &path_len);
    fd_holder *h;
    struct stat named, info;
    luaL_Buffer b;
    char *chunk;
    ssize_t got;
    size_t total = 0;

    if (strlen(path) != path_len) /* open() would read another name: the part before */
        return luaL_argerror(L, 1, "the path holds a NUL byte");
    h = push_fd_holder(L);
    if (stat(path, &named) != 0) {
        int err = errno;
        return refuse(L, h, err == ENOENT ? "missing" : "unreadable", err, -1, NULL);
    }
    if (!S_ISREG(named.st_mode))
        return refuse(L, h, "not_regular", 0, (int)(named.st_mode & 07777), NULL);
    h->fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (h->fd < 0) {
        int err = errno;
        return refuse(L, h, err == ENOENT ? "missing" : "unreadable", err, -1, NULL);
    }
    if (fstat(h->fd, &info) != 0)
        return refuse(L, h, "unreadable", errno, -1, NULL);
    if (info.st_dev != named.st_dev || info.st_ino != named.st_ino)
        return refuse(L, h, "unreadable", 0, -1, "it was replaced while it was being opened");
    if (!S_ISREG(info.st_mode))
        return refuse(L, h, "not_regular", 0, (int)(info.st_mode & 07777), NULL);
    if (info.st_uid != geteuid() && info.st_uid != 0) {
        char why[128];
        snprintf(why, sizeof why, "it belongs to another user (uid %lu), not to this one "
                 "(uid %lu) or root", (unsigned long)info.st_uid, (unsigned long)geteuid());
        return refuse(L, h, "unreadable", 0, -1, why);
    }
    if ((info.st_mode & 077) != 0)
        return refuse(L, h, "shared", 0, (int)(info.st_mode & 07777), NULL);

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
            return refuse(L, h, "unreadable", err, -1, NULL);
        }
        if (got == 0)
            break;
        total += (size_t)got;
        if (total > MAX_PRIVATE_FILE_BYTES) {
            luaL_pushresult(&b);
            lua_pop(L, 1);
            return refuse(L, h, "too_large", 0, MAX_PRIVATE_FILE_BYTES, NULL);
        }
        luaL_addsize(&b, (size_t)got);
    }
    close(h->fd);
    h->fd = -1;
    luaL_pushresult(&b);
    return 1;
}

/* Writes all of text to fd; 0, or an errno value. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t put = write(fd, text, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return errno;
        if (put == 0) /* nothing written and no error: it would never end */
            return EIO;
        text += put;
        len -= (size_t)put;
    }
    return 0;
}

/* nil, message (the step and the system's message), with fd closed and the temporary
 * file (when named) removed. */
static int write_failed(lua_State *L, fd_holder *h, const char *temp, const char *step, int err)
{
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    if (temp != NULL)
        unlink(temp);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", step, strerror(err));
    return 2;
}

/* write_private_file(path, text) -> true | nil, message
 * A file that may hold secrets: written to a new file beside its target that only its
 * owner can read (mode 0600), flushed to disk, then renamed over the target, so that a
 * failed write leaves no partial file and the target never holds a readable half. The
 * target is the file path names, through symlinks (a link stays a link); a dangling
 * link is refused. A path that exists and is not a regular file (a device, a FIFO,
 * /dev/stdout on a pipe) is written in place: renaming over it would replace the device
 * itself; a FIFO without a reader is refused rather than waited for. */
int sg_write_private_file(lua_State *L)
{
    size_t path_len, text_len;
    const char *path, *text, *target;
    fd_holder *h;
    struct stat info;
    char *temp;
    size_t target_len;
    int err, flags;

    path = sg_check_string(L, 1, &path_len);
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_argerror(L, 2, "the text must be a string");
    text = lua_tolstring(L, 2, &text_len);
    if (strlen(path) != path_len)
        return luaL_argerror(L, 1, "the path holds a NUL byte");
    if (path_len == 0)
        return luaL_argerror(L, 1, "the path is empty");
    h = push_fd_holder(L);
    if (stat(path, &info) == 0 && !S_ISREG(info.st_mode)) {
        h->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (h->fd < 0)
            return write_failed(L, h, NULL, errno == ENXIO ? "open (no reader)" : "open", errno);
        flags = fcntl(h->fd, F_GETFL);
        if (flags < 0 || fcntl(h->fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
            return write_failed(L, h, NULL, "open", errno);
        if ((err = write_all(h->fd, text, text_len)) != 0)
            return write_failed(L, h, NULL, "write", err);
        if (close(h->fd) != 0) {
            h->fd = -1;
            return write_failed(L, h, NULL, "close", errno);
        }
        h->fd = -1;
        lua_pushboolean(L, 1);
        return 1;
    }
    target = path;
    if (lstat(path, &info) == 0 && S_ISLNK(info.st_mode)) {
        /* realpath writes into a userdata of PATH_MAX bytes: no malloc to free. */
        char *resolved = (char *)lua_newuserdata(L, PATH_MAX);
        if (realpath(path, resolved) == NULL)
            return write_failed(L, h, NULL, "follow the symbolic link", errno);
        target = resolved;
    }
    target_len = strlen(target);
    /* The temporary name lives in a userdata: freed by the collector whatever happens. */
    temp = (char *)lua_newuserdata(L, target_len + sizeof ".XXXXXX");
    memcpy(temp, target, target_len);
    memcpy(temp + target_len, ".XXXXXX", sizeof ".XXXXXX");
    h->fd = mkstemp(temp); /* mode 0600 */
    if (h->fd < 0)
        return write_failed(L, h, NULL, "create a file beside it", errno);
    if ((err = write_all(h->fd, text, text_len)) != 0)
        return write_failed(L, h, temp, "write", err);
    if (fsync(h->fd) != 0)
        return write_failed(L, h, temp, "write", errno);
    if (close(h->fd) != 0) {
        h->fd = -1;
        return write_failed(L, h, temp, "write", errno);
    }
    h->fd = -1;
    if (rename(temp, target) != 0)
        return write_failed(L, h, temp, "rename", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* nil, reason, detail (see sg_private_dir). */
static int dir_refused(lua_State *L, const char *reason, const char *detail)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    lua_pushstring(L, detail);
    return 3;
}

/* private_dir(path) -> true | nil, reason, detail
 * A folder for files that hold secrets (the command's token cache). What is missing of
 * it, parents included, is made with mode 0700, as the XDG base directory spec asks of
 * the folders it makes. Then, as ssh wants its own folder, the path itself (lstat: not
 * a symbolic link, which another user could turn elsewhere between a check and a
 * write) must be a folder that the effective user owns and that group and others
 * cannot use at all: nobody else can then put a file or a link in it. reason:
 * "unusable" (detail: the folder and the system's message), "not_directory",
 * "owner" (detail: the owner's uid) or "shared" (detail: the mode, in octal). */
int sg_private_dir(lua_State *L)
{
    size_t path_len, i;
    const char *path = sg_check_string(L, 1, &path_len);
    char *part;
    struct stat info;
    char detail[64];

    if (strlen(path) != path_len)
        return luaL_argerror(L, 1, "the path holds a NUL byte");
    if (path_len == 0)
        return luaL_argerror(L, 1, "the path is empty");
    /* Each leading part, then the whole path: made when missing. The copy lives in a
     * userdata, freed by the collector whatever happens. */
    part = (char *)lua_newuserdata(L, path_len + 1);
    for (i = 1; i <= path_len; i++) {
        if (i < path_len && path[i] != '/')
            continue;
        if (i < path_len && path[i - 1] == '/')
            continue; /* "//": the same folder again */
        memcpy(part, path, i);
        part[i] = '\0';
        if (stat(part, &info) == 0)
            continue;
        if (errno != ENOENT || (mkdir(part, 0700) != 0 && errno != EEXIST)) {
            lua_pushnil(L);
            lua_pushliteral(L, "unusable");
            lua_pushfstring(L, "%s: %s", part, strerror(errno));
            return 3;
        }
    }
    if (lstat(path, &info) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "unusable");
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 3;
    }
    if (!S_ISDIR(info.st_mode))
        return dir_refused(L, "not_directory", S_ISLNK(info.st_mode) ? "a symbolic link" : "not a folder");
    if (info.st_uid != geteuid()) {
        snprintf(detail, sizeof detail, "%lu", (unsigned long)info.st_uid);
        return dir_refused(L, "owner", detail);
    }
    if ((info.st_mode & 077) != 0) {
        snprintf(detail, sizeof detail, "%o", (unsigned)(info.st_mode & 07777));
        return dir_refused(L, "shared", detail);
    }
    lua_pushboolean(L, 1);
    return 1;
}
