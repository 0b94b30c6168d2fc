/* Preloaded by scripts/sanitize after the sanitizers' runtime: LeakSanitizer's check at
 * exit runs only in the process whose id is in SORACOM_LSAN_PID, the interpreter running
 * busted (and with it the specs and the sanitized C core); not in a process without that
 * variable (nginx clears its environment). Memory errors and undefined behaviour are
 * still reported in every process: that needs no hook.
 *
 * Why not in the processes the specs start, which inherit LD_PRELOAD and so run with
 * the sanitizer runtime too:
 * - sh (io.popen, os.execute), mktemp, rm, localedef, timeout, the fake server's bash
 *   script and nginx leave memory unfreed at exit on purpose; mktemp even exits with
 *   a leak report it cannot print, having closed stderr. They are not ours.
 * - glibc 2.36's newlocale does not free the list of LOCPATH's folders it builds
 *   (argz_add_sep); spec/json_spec.lua's comma-locale child runs with LOCPATH, and
 *   libp11-kit's constructor calls newlocale there.
 * - Lua children (spec/support/finalizer_child.lua and the like) load build/<version>/,
 *   the plain build that the busted process checks in its sanitized form. One of them
 *   ends in os.exit(0) with sessions still open: on PUC Lua their C memory stays
 *   reachable through the Lua heap (malloc'd), but LuaJIT keeps its heap in chunks it
 *   maps itself, which LeakSanitizer does not scan, so the libcurl handles and buffers
 *   of live sessions would be reported as leaked although nothing freed them wrongly.
 *   busted itself ends with os.exit(code, true), which closes the Lua state (LuaJIT
 *   too) and runs every finalizer first: what is left then is a leak.
 *
 * LeakSanitizer calls __lsan_is_turned_off (a weak hook of the sanitizer interface)
 * just before its check; a nonzero result skips the check.
 *
 * In that process the C core (SORACOM_SANITIZE_KEEP, its path) is also loaded once here
 * with RTLD_NODELETE: lua_close unloads the C modules before the check at exit, and the
 * stacks of a leak report, and the suppressions matched against them, would otherwise
 * name "<unknown module>" where they should name core.so and its functions. (What
 * valgrind's --keep-debuginfo does for scripts/memcheck.) Lua's own dlopen of that file
 * later gets this same handle. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int is_checked_process(void)
{
    const char *pid = getenv("SORACOM_LSAN_PID");
    if (pid == NULL || *pid == '\0')
        return 0; /* not told, or the environment was cleared (nginx does): not this one */
    return strtol(pid, NULL, 10) == (long)getpid();
}

__attribute__((visibility("default"))) int __lsan_is_turned_off(void)
{
    return !is_checked_process();
}

__attribute__((constructor)) static void keep_core_loaded(void)
{
    const char *path = getenv("SORACOM_SANITIZE_KEEP");
    if (path == NULL || *path == '\0' || !is_checked_process())
        return;
    /* lazy: the Lua API it calls is the interpreter's, bound at the first call */
    if (dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE) == NULL)
        fprintf(stderr, "lsan_scope: cannot keep %s loaded: %s\n", path, dlerror());
}
