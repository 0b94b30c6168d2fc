/* What the Lua layer needs from the OS and plain Lua lacks: a monotonic clock (token
 * expiry must not jump with the wall clock), a sleep for the waits between retries
 * outside nginx, random jitter that does not touch the program's math.random, the
 * descriptor budget and whether a process still lives (for the Lua layer's resource
 * checks), and close-on-exec for the descriptors libcurl opens for us. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include "core.h"

/* now() -> seconds on a monotonic clock, with sub-second precision */
int sg_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* sleep(seconds): blocks the thread; nginx's transport uses ngx.sleep instead. */
int sg_sleep(lua_State *L)
{
    double seconds = (double)sg_check_number(L, 1); /* nan: no wait; inf: a day */
    struct timespec wait, left;
    if (!(seconds > 0))
        return 0;
    if (seconds > 86400)
        seconds = 86400;
    wait.tv_sec = (time_t)seconds;
    wait.tv_nsec = (long)((seconds - (double)wait.tv_sec) * 1e9);
    while (nanosleep(&wait, &left) != 0 && errno == EINTR)
        wait = left;
    return 0;
}

/* xorshift64*: plenty for retry jitter, seeded per process so that a fleet of
 * clients that failed together does not retry together. A forked child (every nginx
 * worker, forked from the master that required the module in init_by_lua) inherits
 * the parent's state, so the generator reseeds whenever the pid is not the one that
 * seeded it. */
static uint64_t random_state;
static pid_t seeded_by;

static void reseed(pid_t pid)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* the old state too: two forks within one clock tick still differ by pid */
    random_state ^= ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)pid << 32) ^ (uint64_t)(uintptr_t)&ts;
    if (random_state == 0)
        random_state = 0x9E3779B97F4A7C15u;
    seeded_by = pid;
}

void sg_seed_random(void)
{
    pid_t pid = getpid();
    if (random_state == 0 || seeded_by != pid)
        reseed(pid);
}

/* random() -> a number in [0, 1) */
int sg_random(lua_State *L)
{
    uint64_t x;
    sg_seed_random();
    x = random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    random_state = x;
    lua_pushnumber(L, (lua_Number)((x * 0x2545F4914F6CDD1Du) >> 11) / 9007199254740992.0);
    return 1;
}

/* file_limit() -> limit, open: the soft RLIMIT_NOFILE (math.huge when unlimited) and
 * how many descriptors the process has open now. */
static int count_proc_fds(lua_Integer *open)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *entry;
    int own;
    lua_Integer n = 0;
    if (dir == NULL)
        return 0;
    own = dirfd(dir); /* the listing's own descriptor is not one of the process's */
    while ((entry = readdir(dir)) != NULL) {
        char *end;
        long fd;
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue; /* "." and ".." */
        fd = strtol(entry->d_name, &end, 10);
        if (*end == '\0' && fd != own)
            n++;
    }
    closedir(dir);
    *open = n;
    return 1;
}

int sg_file_limit(lua_State *L)
{
    struct rlimit limit;
    lua_Integer open = 0;
    int infinite;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return luaL_error(L, "soracom.groups: file_limit: getrlimit failed (errno %d)", errno);
    infinite = limit.rlim_cur == RLIM_INFINITY;
    if (!count_proc_fds(&open)) {
        /* no /proc: ask about each descriptor below the limit, up to 65536 of them */
        int fd, top = infinite || limit.rlim_cur > 65536 ? 65536 : (int)limit.rlim_cur;
        for (fd = 0; fd < top; fd++)
            if (fcntl(fd, F_GETFD) != -1)
                open++;
    }
    if (infinite || limit.rlim_cur > ((rlim_t)1 << 53))
        lua_pushnumber(L, infinite ? (lua_Number)HUGE_VAL : (lua_Number)limit.rlim_cur);
    else
        lua_pushinteger(L, (lua_Integer)limit.rlim_cur);
    lua_pushinteger(L, open);
    return 2;
}

/* process_alive(pid) -> boolean: whether a process with that id exists (kill(pid, 0)):
 * false only when there is none (ESRCH); true as well when it exists but is another
 * user's (EPERM). A zombie, exited but not yet reaped by its parent, still exists. */
int sg_process_alive(lua_State *L)
{
    /* pid_t is a signed integer type of 32 or 64 bits */
    const double max_pid = sizeof(pid_t) >= 8 ? 9007199254740992.0 : 2147483647.0;
    double pid = lua_type(L, 1) == LUA_TNUMBER ? (double)lua_tonumber(L, 1) : 0;
    if (!(pid >= 1 && pid <= max_pid && floor(pid) == pid))
        return sg_arg_error(L, "process_alive", "pid", "a positive whole number (a pid_t)", 1);
    lua_pushboolean(L, kill((pid_t)pid, 0) == 0 || errno != ESRCH);
    return 1;
}

/* Close-on-exec, for the descriptors libcurl opens for us: a child the host starts
 * (os.execute, io.popen, a CGI, nginx's own) must not keep our connections open. */
void sg_set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags != -1 && !(flags & FD_CLOEXEC))
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int sg_cloexec_socket(int family, int type, int protocol)
{
    int fd;
#ifdef SOCK_CLOEXEC
    /* atomic: no other thread's fork can come between socket() and fcntl() */
    fd = socket(family, type | SOCK_CLOEXEC, protocol);
    if (fd != -1 || errno != EINVAL) /* EINVAL: a kernel older than the flag */
        return fd;
#endif
    fd = socket(family, type, protocol);
    if (fd != -1)
        sg_set_cloexec(fd);
    return fd;
}

/* A descriptor is always the lowest one free (POSIX; Linux and the BSDs do so), so the
 * next two a thread opens take these numbers. */
void sg_lowest_free_fds(int fds[2])
{
    int p[2];
    fds[0] = fds[1] = -1;
    if (pipe(p) == 0) {
        fds[0] = p[0];
        fds[1] = p[1];
        close(p[0]);
        close(p[1]);
    }
}

int sg_cloexec_new_fds(const int fds[2])
{
    int i, found = 0;
    for (i = 0; i < 2; i++) {
        struct stat st;
        if (fds[i] < 0 || fstat(fds[i], &st) != 0 || !(S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)))
            continue;
        sg_set_cloexec(fds[i]);
        found++;
    }
    return found;
}
