/* Preloaded (LD_PRELOAD) into a child of spec/core_safety_spec.lua: malloc of exactly
 * SORACOM_FAIL_MALLOC bytes fails, as when memory runs out, and every other malloc is
 * glibc's. The spec sizes a request body so that only libcurl's copy of it
 * (CURLOPT_COPYPOSTFIELDS) has that size: Lua's own allocations go through realloc
 * (LuaJIT's through its own allocator). */
#include <errno.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);

static size_t fail_size;

void *malloc(size_t size)
{
    if (fail_size == 0) { /* environ may not be set up at the very first calls */
        const char *text = getenv("SORACOM_FAIL_MALLOC");
        if (text != NULL)
            fail_size = (size_t)strtoul(text, NULL, 10);
    }
    if (size != 0 && size == fail_size) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(size);
}
