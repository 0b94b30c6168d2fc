/* soracom.groups.core: builds requests and decodes responses for the Lua layer, and
 * holds the curl sessions. See DESIGN.md for why the loop around them is Lua. */
#include <curl/curl.h>
#include <string.h>
#include "core.h"

/* encode_json(value[, root_name]) -> text; raises naming the bad field. The text is
 * built in a buffer of this call's own, which a Lua error frees through its __gc. */
static int encode_json(lua_State *L)
{
    sg_membuf *buf;
    const char *root;
    luaL_checkany(L, 1);
    root = sg_opt_string(L, 2, "body", NULL);
    lua_settop(L, 2); /* keeps root on the stack */
    buf = sg_membuf_new(L);
    sg_json_encode(L, 1, buf, root);
    lua_pushlstring(L, buf->data ? buf->data : "", buf->len);
    sg_membuf_free(buf); /* now, rather than when the collector gets to it */
    return 1;
}

int sg_arg_error(lua_State *L, const char *where, const char *name, const char *what,
                 int index)
{
    const char *got = luaL_typename(L, index);
    if (lua_type(L, index) == LUA_TNUMBER) {
        lua_pushvalue(L, index);
        got = lua_tostring(L, -1); /* the copy becomes a string, not the argument */
    }
    return luaL_error(L, "soracom.groups: %s: %s must be %s (got %s)", where, name, what, got);
}

static int type_error(lua_State *L, int arg, const char *expected)
{
    return luaL_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", expected,
                                                 luaL_typename(L, arg)));
}

const char *sg_check_string(lua_State *L, int arg, size_t *len)
{
    if (lua_type(L, arg) != LUA_TSTRING)
        type_error(L, arg, "string");
    return lua_tolstring(L, arg, len);
}

const char *sg_opt_string(lua_State *L, int arg, const char *def, size_t *len)
{
    if (lua_isnoneornil(L, arg)) {
        if (len != NULL)
            *len = def ? strlen(def) : 0;
        return def;
    }
    return sg_check_string(L, arg, len);
}

lua_Number sg_check_number(lua_State *L, int arg)
{
    if (lua_type(L, arg) != LUA_TNUMBER)
        type_error(L, arg, "number");
    return lua_tonumber(L, arg);
}

int sg_new_metatable(lua_State *L, const char *name)
{
    if (!luaL_newmetatable(L, name))
        return 0;
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    return 1;
}

#if defined(_WIN32)
#define SG_EXPORT __declspec(dllexport)
#else
#define SG_EXPORT __attribute__((visibility("default")))
#endif

SG_EXPORT int luaopen_soracom_groups_core(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"build_url", sg_build_url},
        {"escape", sg_escape},
        {"encode_json", encode_json},
        {"decode_json", sg_decode_json_text},
        {"decode_response", sg_decode_response},
        {"parse_next_key", sg_parse_next_key},
        {"session", sg_session_new},
        {"multi", sg_multi_new},
        {"read_private_file", sg_read_private_file},
        {"write_private_file", sg_write_private_file},
        {"private_dir", sg_private_dir},
        {"sha256", sg_sha256},
        {"now", sg_now},
        {"sleep", sg_sleep},
        {"random", sg_random},
        {"file_limit", sg_file_limit},
        {"process_alive", sg_process_alive},
        {"wait_fd", sg_wait_fd},
        {NULL, NULL}
    };
    /* Thread-safe from libcurl 7.84 on; repeated calls are counted and harmless. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "soracom.groups: curl_global_init failed");
    sg_seed_random();
    sg_membuf_register(L);
    sg_session_register(L);
    sg_multi_register(L);

    lua_newtable(L);
    luaL_setfuncs(L, functions, 0);
    lua_pushliteral(L, SG_VERSION);
    lua_setfield(L, -2, "VERSION");
    sg_redis_open(L); /* core.redis, or core.redis_missing */
    lua_pushinteger(L, SG_MAX_TIMEOUT_SECONDS); /* what wait_fd and the sessions take */
    lua_setfield(L, -2, "MAX_TIMEOUT_SECONDS");
    lua_pushlightuserdata(L, NULL); /* the same value as cjson.null */
    lua_setfield(L, -2, "null");
    /* The one metatable of the core left open: it is the public mark of a JSON array
     * (core.array_mt, compared with getmetatable and set with setmetatable by the Lua
     * layer and by applications), holds no C state, and the core reads arrays raw. */
    luaL_newmetatable(L, SG_ARRAY_METATABLE);
    lua_setfield(L, -2, "array_mt");
    {
        curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
        lua_pushstring(L, info->version);
        lua_setfield(L, -2, "curl_version");
    }
    return 1;
}
