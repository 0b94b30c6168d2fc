/* A growable byte buffer. Its memory is always owned by a Lua userdata (the session,
 * or a per-call buffer from sg_membuf_new), so a Lua error that unwinds past it frees
 * it through __gc instead of leaking. */
#ifndef SORACOM_GROUPS_MEMBUF_H
#define SORACOM_GROUPS_MEMBUF_H

#include <stddef.h>
#include "compat.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} sg_membuf;

/* Pushes a userdata holding an empty buffer, freed by its __gc. */
sg_membuf *sg_membuf_new(lua_State *L);
/* Returns 0 when memory ran out (the buffer is unchanged). */
int sg_membuf_reserve(sg_membuf *buf, size_t extra);
int sg_membuf_append(sg_membuf *buf, const char *bytes, size_t n);
/* Like append, but raises a Lua memory error on failure. */
void sg_membuf_add(lua_State *L, sg_membuf *buf, const char *bytes, size_t n);
void sg_membuf_addchar(lua_State *L, sg_membuf *buf, char c);
void sg_membuf_addstring(lua_State *L, sg_membuf *buf, const char *s);
void sg_membuf_free(sg_membuf *buf);
void sg_membuf_register(lua_State *L);

#endif
