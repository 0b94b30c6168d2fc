/* Internal interfaces between the C files of soracom.groups.core. */
#ifndef SORACOM_GROUPS_CORE_H
#define SORACOM_GROUPS_CORE_H

#include <stddef.h>
#include <curl/curl.h>
#include "compat.h"
#include "membuf.h"

#define SG_VERSION "0.2.0"
#define SG_ARRAY_METATABLE "soracom.groups.array"
#define SG_SESSION_METATABLE "soracom.groups.session"

/* The one nesting limit of JSON, decoding and encoding alike, so that whatever is
 * decoded can be encoded again (it also bounds the C recursion of both). */
#define SG_JSON_MAX_DEPTH 1000

/* Why a JSON text was refused: message points at a constant or into detail. line and
 * column (both from 1) name the same place as offset: a line ends at "\n", "\r\n" or a
 * lone "\r", and the column counts characters (UTF-8 sequences; a tab is one), not
 * bytes. */
typedef struct {
    const char *message;
    size_t offset; /* of the byte where the problem was found, from 0 */
    size_t line;
    size_t column;
    char detail[96];
} sg_json_error;

/* Flags of sg_json_decode. SG_JSON_STRICT, for documents people write: a key repeated
 * in one object, and an integer (no fraction, no exponent) that this Lua cannot hold
 * exactly (beyond int64 on 5.3+, beyond 2^53 in magnitude before), are refused. */
#define SG_JSON_STRICT 1

/* json_decode.c: pushes the value of the JSON text and returns 1, or returns 0 with
 * *error filled in and the stack as it was. Never raises, except when Lua itself runs
 * out of memory. */
int sg_json_decode(lua_State *L, const char *text, size_t len, int flags,
                   sg_json_error *error);
/* Pushes "line L, column C: message" for a refused text and returns it. */
const char *sg_push_json_error(lua_State *L, const sg_json_error *error);

/* json_encode.c: appends the JSON text of the value at index to buf; raises on a value
 * JSON cannot hold, naming where it sits (for example "body.tags[2]"). */
void sg_json_encode(lua_State *L, int index, sg_membuf *buf, const char *root_name);

/* url.c */
void sg_add_escaped(lua_State *L, sg_membuf *buf, const char *s, size_t len);
int sg_build_url(lua_State *L);
int sg_escape(lua_State *L);

/* pagination.c: the next page key from x-soracom-next-key or a Link header. Pushes the
 * key or nil. */
void sg_push_next_key(lua_State *L, const char *next_key, size_t next_key_len,
                      const char *link, size_t link_len);
int sg_parse_next_key(lua_State *L);
/* Pushes the key of a Link header's rel=next URL and returns 1, or returns 0. */
int sg_push_key_from_link(lua_State *L, const char *link, size_t n);

/* response.c: turns a finished exchange into the results a call returns:
 * value, next_key, status -- or nil, error_table. Returns the number of results. */
int sg_push_response(lua_State *L, long status, const char *body, size_t body_len,
                     const char *next_key, size_t next_key_len,
                     const char *link, size_t link_len);
int sg_decode_response(lua_State *L);
int sg_decode_json_text(lua_State *L);
/* Sets retry_after (seconds, at most SG_MAX_RETRY_AFTER) on the error table at the
 * top, from the Retry-After or X-Soracom-Ratelimit-Seconds-Before-Refresh header.
 * Either text may be NULL; neither needs a terminating NUL. */
#define SG_MAX_RETRY_AFTER 86400
void sg_set_retry_after(lua_State *L, const char *retry_after, size_t retry_after_len,
                        const char *refresh, size_t refresh_len);
/* Pushes a new error table {kind=kind, message=message}. */
void sg_push_error(lua_State *L, const char *kind, const char *message);

/* digest.c */
int sg_sha256(lua_State *L);

/* private_file.c */
int sg_read_private_file(lua_State *L);
int sg_write_private_file(lua_State *L);
int sg_private_dir(lua_State *L);

/* core.c: raises "soracom.groups: <where>: <name> must be <what> (got <x>)", x being
 * the value at index when it is a number, else its type name. */
int sg_arg_error(lua_State *L, const char *where, const char *name, const char *what,
                 int index);
/* The argument checks of the core's functions. Unlike luaL_checklstring and
 * luaL_checknumber, they take only a value of the type itself: a number is not a
 * string here (luaL_checklstring would also turn it into one in place), nor a numeric
 * string a number. They raise luaL's own "bad argument #arg to 'f' (string expected,
 * got number)". sg_opt_string gives def (and *len 0, or strlen(def)) for nil or none. */
const char *sg_check_string(lua_State *L, int arg, size_t *len);
const char *sg_opt_string(lua_State *L, int arg, const char *def, size_t *len);
lua_Number sg_check_number(lua_State *L, int arg);
/* luaL_newmetatable, and protected: its __metatable field is its name, so that
 * getmetatable gives the name and setmetatable raises. The core's objects hold C state
 * (pointers to each other, libcurl handles) that a changed or removed __gc, __index or
 * __close would leave dangling. Returns as luaL_newmetatable does. */
int sg_new_metatable(lua_State *L, const char *name);

/* system.c */
int sg_now(lua_State *L);
int sg_sleep(lua_State *L);
int sg_random(lua_State *L);
void sg_seed_random(void);
int sg_file_limit(lua_State *L);
int sg_process_alive(lua_State *L);
/* Sets FD_CLOEXEC on fd, if it lacks it. */
void sg_set_cloexec(int fd);
/* socket(), close-on-exec from the start where the system can (SOCK_CLOEXEC). */
int sg_cloexec_socket(int family, int type, int protocol);
/* For descriptors a library opens without close-on-exec and without telling which
 * (libcurl's wakeup socketpair): sg_lowest_free_fds gives the two descriptors that the
 * next two opened in this thread will be (-1 when unknown); after the library call,
 * sg_cloexec_new_fds sets close-on-exec on those of them that are now open sockets or
 * pipes and returns how many were. */
void sg_lowest_free_fds(int fds[2]);
int sg_cloexec_new_fds(const int fds[2]);

/* redis.c: core.wait_fd; sg_redis_open sets core.redis (built with hiredis) or
 * core.redis_missing (the reason it was not) in the table at the top. */
int sg_wait_fd(lua_State *L);
void sg_redis_open(lua_State *L);

/* The longest timeout the core takes, in seconds (a day): connect_timeout and timeout
 * of a session. Longer ones are refused, as are non-finite ones. */
#define SG_MAX_TIMEOUT_SECONDS 86400

/* session.c */
void sg_session_register(lua_State *L);
int sg_session_new(lua_State *L);

/* session.c, for multi.c: a session's request run by a multi handle, between
 * session:prepare and session:finish.
 *
 * Who refers to whom, so that no pointer outlives what it points into, whatever order
 * the collector finalizes them in (or if a finalizer never runs: the debug library can
 * remove one): a multi handle keeps the session of every transfer it runs in its user
 * value (a table of references), and the session keeps that multi handle in its own
 * (a table whose [1] is the handle) until the transfer leaves it. A pointer of one to
 * the other thus always comes with a reference that keeps the other's memory alive;
 * both are dropped together, by C code that runs no Lua. The functions below take the
 * index of the session's userdata (and of the multi handle's) to update them. */
typedef struct sg_session sg_session;
typedef struct sg_multi sg_multi;
/* The session at index, open and prepared (or whose request could not be set up:
 * see sg_session_setup_error); raises otherwise. */
sg_session *sg_session_check_prepared(lua_State *L, int index, const char *where);
/* When prepare could not set the request up (libcurl refused an option): pushes the
 * message and returns 1; the transfer has then ended with that error (finish gives it).
 * Returns 0 otherwise. */
int sg_session_setup_error(lua_State *L, sg_session *s);
CURL *sg_session_easy(sg_session *s);
/* The multi handle running the session's transfer, or NULL. */
sg_multi *sg_session_multi(const sg_session *s);
/* added to m, the multi handle at multi_index */
void sg_session_running(lua_State *L, int session_index, sg_session *s, int multi_index,
                        sg_multi *m);
/* m says it is done */
void sg_session_ended(lua_State *L, int session_index, sg_session *s, CURLcode code);
/* taken off m before the end */
void sg_session_cancelled(lua_State *L, int session_index, sg_session *s);

/* multi.c */
void sg_multi_register(lua_State *L);
int sg_multi_new(lua_State *L);
/* The session at session_index is being closed while its transfer runs: the transfer
 * leaves its multi handle, which forgets it. multi_index holds what the session's user
 * value says that handle is (used only when it is). */
void sg_multi_forget(lua_State *L, int multi_index, int session_index, sg_session *s);

#endif
