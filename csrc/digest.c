/* sha256(text) -> the SHA-256 of text as 64 lowercase hex digits, from OpenSSL's
 * libcrypto (the EVP one-shot EVP_Digest, which allocates and frees its own context
 * before returning: nothing of ours is held across a call that could raise). Used as
 * the digest of saved plan files. */
#include <openssl/evp.h>
#include "core.h"

int sg_sha256(lua_State *L)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0, i;
    char text[2 * EVP_MAX_MD_SIZE];
    const char *s;
    size_t len;
    /* a string only: luaL_checklstring would take a number and hash its text */
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_argerror(L, 1, lua_pushfstring(L, "string expected, got %s",
                                                   luaL_typename(L, 1)));
    s = lua_tolstring(L, 1, &len);
    if (!EVP_Digest(s, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        return luaL_error(L, "sha256: OpenSSL's EVP_Digest failed");
    for (i = 0; i < md_len; i++) {
        text[2 * i] = hex[md[i] >> 4];
        text[2 * i + 1] = hex[md[i] & 15];
    }
    lua_pushlstring(L, text, 2 * (size_t)md_len);
    return 1;
}
