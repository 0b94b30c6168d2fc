/* Shared by the libFuzzer targets: a Lua state whose allocator can be told to fail, so
 * that each input also runs once with Lua running out of memory part-way through (the
 * core's functions may raise a memory error there, and must neither crash nor leak). */
#ifndef SORACOM_GROUPS_FUZZ_COMMON_H
#define SORACOM_GROUPS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core.h"

#ifndef LUA_OK /* Lua 5.1 */
#define LUA_OK 0
#endif

typedef struct {
    unsigned long count; /* allocations (and growths) so far */
    unsigned long limit; /* from this allocation on every one fails; 0: never */
} fuzz_alloc_state;

static void *fuzz_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    fuzz_alloc_state *s = (fuzz_alloc_state *)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    /* Shrinking never fails (Lua relies on that). */
    if (ptr == NULL || nsize > osize) {
        s->count++;
        if (s->limit != 0 && s->count >= s->limit)
            return NULL;
    }
    return realloc(ptr, nsize);
}

static lua_State *fuzz_new_state(fuzz_alloc_state *s)
{
    lua_State *L;
    s->count = 0;
    s->limit = 0;
    L = lua_newstate(fuzz_alloc, s);
    if (L == NULL)
        abort();
    /* What the module's luaopen does that the functions under test rely on: the
     * membuf metatable (frees a buffer's memory from __gc) and the array metatable. */
    sg_membuf_register(L);
    luaL_newmetatable(L, SG_ARRAY_METATABLE);
    lua_pop(L, 1);
    return L;
}

static void fuzz_close_state(lua_State *L, fuzz_alloc_state *s)
{
    s->limit = 0; /* lua_close runs __gc metamethods, which may allocate */
    lua_close(L);
}

/* FNV-1a, to pick where the out-of-memory run fails from the input itself. */
static uint32_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < size; i++) {
        h ^= data[i];
        h *= 16777619u;
    }
    return h;
}

#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Runs fn(job) under lua_pcall twice: with memory to spare (where a Lua error is a
 * bug, unless allow_errors), then in a fresh state whose allocator starts failing at
 * an allocation picked from the input's hash, where a memory error is expected.
 * around (may be NULL) is called with 1 before each run (the state made, nothing
 * counted yet) and with 0 after it (the state closed): fuzz_session starts and stops
 * its server there. */
static void fuzz_run_twice_around(lua_CFunction fn, void *job, const uint8_t *data,
                                  size_t size, int allow_errors,
                                  void (*around)(void *job, int before))
{
    fuzz_alloc_state s;
    unsigned long setup, used;
    int status;
    lua_State *L = fuzz_new_state(&s);

    if (around)
        around(job, 1);
    lua_pushcfunction(L, fn); /* on 5.1 a closure: allocated before counting starts */
    lua_pushlightuserdata(L, job);
    lua_pushboolean(L, 1); /* checks on */
    setup = s.count;
    status = lua_pcall(L, 2, 0, 0);
    if (status != LUA_OK && !allow_errors) {
        fprintf(stderr, "unexpected Lua error %d: %s\n", status,
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)");
        abort();
    }
    used = s.count - setup;
    fuzz_close_state(L, &s);
    if (around)
        around(job, 0);

    if (used == 0)
        return;
    L = fuzz_new_state(&s);
    if (around)
        around(job, 1);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, job);
    lua_pushboolean(L, 0); /* results may differ: only memory safety matters */
    s.limit = s.count + 1 + fuzz_hash(data, size) % used;
    status = lua_pcall(L, 2, 0, 0);
    if (status != LUA_OK && status != LUA_ERRMEM && !allow_errors) {
        fprintf(stderr, "unexpected Lua error %d with a memory limit: %s\n", status,
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)");
        abort();
    }
    fuzz_close_state(L, &s);
    if (around)
        around(job, 0);
}

static inline void fuzz_run_twice(lua_CFunction fn, void *job, const uint8_t *data, size_t size,
                           int allow_errors)
{
    fuzz_run_twice_around(fn, job, data, size, allow_errors, NULL);
}

#endif
