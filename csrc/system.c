/* What the Lua layer needs from the OS and plain Lua lacks: a monotonic clock (token
 * expiry must not jump with the wall clock), a sleep for the waits between retries
 * outside nginx, and random jitter that does not touch the program's math.random. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
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
    double seconds = (double)luaL_checknumber(L, 1);
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
