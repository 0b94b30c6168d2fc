/* A JSON decoder that reads straight from the response buffer into Lua values: no
 * intermediate Lua string, integral numbers as Lua integers (5.3+; -0 is the float
 * -0.0, numbers with a fraction or an exponent are floats), null as the
 * light userdata NULL (which is what cjson.null is), every array marked with the
 * array metatable. It accepts only what the encoder writes back unchanged: strings of
 * well-formed UTF-8, finite numbers, nesting up to SG_JSON_MAX_DEPTH.
 *
 * Strict mode (SG_JSON_STRICT, for documents people write) also refuses a key repeated
 * in one object and an integer this Lua cannot hold exactly. Its checks sit where the
 * lenient path does no work of its own: one flag test per object key, and none for
 * numbers that fit (they return before the check). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"
#include "luabuffer.h"
#include "numbers.h"
#include "utf8.h"

#define SIZE_HINT_DEPTHS 16
#define MAX_SIZE_HINT 256

typedef struct {
    lua_State *L;
    const char *start;
    const char *p;
    const char *end;
    int depth;
    int array_mt;       /* stack index of the array metatable, fetched once per call */
    int strict;         /* SG_JSON_STRICT was given */
    sg_json_error *error;
    /* The size of the last array and object closed at each depth: an API page is a
     * list of objects of one shape, so the next one is created at its final size
     * instead of growing through every power of two. A hint is paid for by the table
     * that set it, so it can at most double what the text makes Lua allocate. */
    int array_hint[SIZE_HINT_DEPTHS];
    int object_hint[SIZE_HINT_DEPTHS];
} json_reader;

static int fail(json_reader *r, const char *message)
{
    if (r->error->message == NULL) {
        r->error->message = message;
        r->error->offset = (size_t)(r->p - r->start);
    }
    return 0;
}

/* Bytes that end a plain run inside a string: the quote, the backslash, control
 * characters, and the lead of a multi-byte UTF-8 sequence (to be validated). */
#define ROW0 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define ROW1 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char string_stop[256] = {
    ROW1, ROW1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x22 '"' */
    ROW0, ROW0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x5C '\\' */
    ROW0, ROW0,
    ROW1, ROW1, ROW1, ROW1, ROW1, ROW1, ROW1, ROW1
};
#undef ROW0
#undef ROW1

static void skip_space(json_reader *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int parse_value(json_reader *r);

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char bytes[4];
    size_t n;
    if (cp < 0x80) {
        bytes[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        bytes[0] = (char)(0xC0 | (cp >> 6));
        bytes[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        bytes[0] = (char)(0xE0 | (cp >> 12));
        bytes[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        bytes[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        bytes[0] = (char)(0xF0 | (cp >> 18));
        bytes[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        bytes[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        bytes[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    luaL_addlstring(b, bytes, n);
}

/* Reads the \uXXXX escape at r->p (just after the backslash-u), joining a surrogate
 * pair into one code point. */
static int read_unicode_escape(json_reader *r, unsigned *cp)
{
    unsigned hi, lo;
    if (r->end - r->p < 4 || !hex4(r->p, &hi))
        return fail(r, "invalid \\u escape");
    r->p += 4;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(r, "lone low surrogate in \\u escape");
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 1;
    }
    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || !hex4(r->p + 2, &lo) ||
        lo < 0xDC00 || lo > 0xDFFF)
        return fail(r, "high surrogate not followed by a low surrogate");
    r->p += 6;
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 1;
}

/* Does any of the eight bytes at p stop a plain run (as string_stop says)? The
 * classic bit tricks for "has a zero byte" and "has a byte below n"; masking all
 * three with ~x is exact once a byte >= 0x80 has already answered yes. */
static int word_has_stop(const unsigned char *p)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t x, quote, backslash;
    memcpy(&x, p, 8);
    quote = x ^ (ones * '"');
    backslash = x ^ (ones * '\\');
    return (((x - ones * 0x20) | (quote - ones) | (backslash - ones)) & ~x & highs) != 0 ||
           (x & highs) != 0;
}

/* Moves r->p past plain bytes and whole well-formed UTF-8 sequences, to the next
 * quote, backslash or control character. Returns 0 at invalid UTF-8 (r->p then points
 * at the bad byte) or at the end of the text (r->p then points at the string's opening
 * quote, which is where a reader looks for the quote that closes it). */
static int skip_plain(json_reader *r, const char *quote)
{
    const unsigned char *p = (const unsigned char *)r->p;
    const unsigned char *end = (const unsigned char *)r->end;
    for (;;) {
        size_t length;
        /* eight plain bytes at a time, then byte by byte to the stop */
        while (end - p >= 8 && !word_has_stop(p))
            p += 8;
        while (p < end && !string_stop[*p])
            p++;
        if (p == end || *p < 0x80)
            break;
        length = sg_utf8_sequence_length(p, (size_t)(end - p));
        if (length == 0) {
            r->p = (const char *)p;
            return fail(r, "invalid UTF-8 in a string");
        }
        p += length;
    }
    r->p = (const char *)p;
    if (p == end) {
        r->p = quote;
        return fail(r, "unterminated string");
    }
    return 1;
}

/* At a control character in a string. */
static int fail_control(json_reader *r)
{
    if (*r->p == '\n' || *r->p == '\r')
        return fail(r, "unescaped line break in string");
    return fail(r, "control character in string");
}

/* The slow path, for strings with escapes: unescaped runs are copied whole. The
 * luaL_Buffer is the only thing pushed while it is open. */
static int parse_escaped_string(json_reader *r, const char *from)
{
    luaL_Buffer b;
    const char *run = from;
    if (!lua_checkstack(r->L, SG_BUFFER_SLOTS))
        return fail(r, "string too deep for the Lua stack");
    luaL_buffinit(r->L, &b);
    for (;;) {
        unsigned char c;
        if (!skip_plain(r, from - 1))
            break;
        luaL_addlstring(&b, run, (size_t)(r->p - run));
        c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            luaL_pushresult(&b);
            return 1;
        }
        if (c != '\\') {
            fail_control(r);
            break;
        }
        if (r->end - r->p < 2) {
            r->p = from - 1;
            fail(r, "unterminated string");
            break;
        }
        r->p += 2;
        switch (r->p[-1]) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp;
            if (!read_unicode_escape(r, &cp))
                goto failed;
            add_utf8(&b, cp);
            break;
        }
        default:
            r->p--;
            fail(r, "invalid escape in string");
            goto failed;
        }
        run = r->p;
    }
failed:
    luaL_pushresult(&b);
    lua_pop(r->L, 1);
    return 0;
}

/* r->p is just past the opening quote. */
static int parse_string(json_reader *r)
{
    const char *from = r->p;
    if (!skip_plain(r, from - 1))
        return 0;
    if (*r->p == '"') {
        lua_pushlstring(r->L, from, (size_t)(r->p - from));
        r->p++;
        return 1;
    }
    if (*r->p == '\\')
        return parse_escaped_string(r, from);
    return fail_control(r);
}

static int is_digit(const json_reader *r)
{
    return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* Numbers are read here in one pass: integers of up to 19 digits exactly, decimals
 * by Clinger's fast path or from their digits. Only a number of more than 19
 * significant digits goes to sg_parse_double, which reads the text again. Counts
 * are size_t and exponents 64-bit: a number may be gigabytes long. */
static int parse_number(json_reader *r)
{
    const char *from = r->p;
    int negative = 0, integral = 1;
    uint64_t digits = 0;    /* all the digits, while they fit in 19 */
    size_t digit_count = 0; /* significant digits seen, leading zeros left out */
    int64_t exponent = 0;   /* the power of ten to apply to digits */
    double d;
    if (*r->p == '-') {
        negative = 1;
        r->p++;
    }
    if (!is_digit(r))
        return fail(r, "invalid number");
    if (*r->p == '0') {
        r->p++;
        if (is_digit(r))
            return fail(r, "leading zero in number");
    } else {
        while (is_digit(r)) {
            if (digit_count < 19)
                digits = digits * 10 + (uint64_t)(*r->p - '0');
            else
                exponent++;
            digit_count++;
            r->p++;
        }
    }
    if (r->p < r->end && *r->p == '.') {
        integral = 0;
        r->p++;
        if (!is_digit(r))
            return fail(r, "invalid number");
        while (is_digit(r)) {
            if (digit_count < 19) {
                digits = digits * 10 + (uint64_t)(*r->p - '0');
                exponent--;
                if (digits != 0)
                    digit_count++;
            } else {
                digit_count++; /* digits dropped: only sg_parse_double reads it exactly */
            }
            r->p++;
        }
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        int exponent_negative = 0;
        int64_t written = 0;
        integral = 0;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            exponent_negative = (*r->p++ == '-');
        if (!is_digit(r))
            return fail(r, "invalid number");
        while (is_digit(r)) {
            if (written < SG_EXPONENT_CAP)
                written = written * 10 + (*r->p - '0');
            r->p++;
        }
        exponent += exponent_negative ? -written : written;
    }
    if (integral && digits == 0 && negative) {
        /* "-0": Lua's integers have no negative zero, a float does (as in cjson) */
        lua_pushnumber(r->L, -0.0);
        return 1;
    }
    if (integral && digit_count <= 18) {
        /* at most 18 digits: exact in an int64, and as a double below 2^53 */
#if SG_HAS_INTEGERS
        lua_pushinteger(r->L, negative ? -(lua_Integer)digits : (lua_Integer)digits);
        return 1;
#else
        if (digits <= (UINT64_C(1) << 53)) {
            lua_pushnumber(r->L, negative ? -(lua_Number)digits : (lua_Number)digits);
            return 1;
        }
#endif
    }
#if SG_HAS_INTEGERS
    if (integral && digit_count == 19) {
        /* 19 digits may or may not fit an int64; beyond, it is a float, as Lua's
         * own tonumber makes it */
        uint64_t limit = negative ? (uint64_t)LUA_MAXINTEGER + 1u : (uint64_t)LUA_MAXINTEGER;
        if (digits <= limit) {
            lua_pushinteger(r->L, negative ? (lua_Integer)(0u - digits) : (lua_Integer)digits);
            return 1;
        }
    }
#endif
    /* Only an integer that this Lua cannot hold exactly gets here: the lenient mode
     * rounds it to the nearest double, as tonumber does; the strict one refuses it. */
    if (integral && r->strict) {
        r->p = from;
#if SG_HAS_INTEGERS
        return fail(r, "integer too large for a Lua integer (beyond -2^63 .. 2^63-1)");
#else
        return fail(r, "integer too large for a Lua number to hold exactly (beyond -2^53 .. 2^53)");
#endif
    }
    if (digit_count > 19)
        d = sg_parse_double(from, (size_t)(r->p - from));
    else if (!sg_exact_double(digits, exponent, negative, &d))
        d = sg_digits_to_double(digits, exponent, negative);
    if (d == HUGE_VAL || d == -HUGE_VAL) {
        r->p = from;
        return fail(r, "number out of range");
    }
    lua_pushnumber(r->L, (lua_Number)d);
    return 1;
}

static int parse_literal(json_reader *r, const char *word, size_t n)
{
    size_t i;
    if ((size_t)(r->end - r->p) < n)
        return fail(r, "invalid literal");
    for (i = 1; i < n; i++) /* word[0] is what brought us here */
        if (r->p[i] != word[i])
            return fail(r, "invalid literal");
    r->p += n;
    return 1;
}

static int enter(json_reader *r)
{
    if (++r->depth > SG_JSON_MAX_DEPTH)
        return fail(r, "nesting too deep");
    if (!lua_checkstack(r->L, 3))
        return fail(r, "nesting too deep for the Lua stack");
    r->p++;
    return 1;
}

static int size_hint(const int *hints, int depth)
{
    return depth < SIZE_HINT_DEPTHS ? hints[depth] : 0;
}

static void remember_size(int *hints, int depth, size_t n)
{
    if (depth < SIZE_HINT_DEPTHS)
        hints[depth] = n < MAX_SIZE_HINT ? (int)n : MAX_SIZE_HINT;
}

/* Small arrays and objects are built from their items collected on the stack: the
 * table is then made at its final size (a table grown one item at a time is resized
 * at every power of two, which costs a small object more than filling it). At most
 * COLLECT_MAX items per table, only in the first COLLECT_DEPTHS levels and when the
 * stack has room for them all: whatever is beyond goes into the table made of the
 * first ones, one by one, with the size hint as before. So collecting takes at most
 * COLLECT_DEPTHS * (2 * COLLECT_MAX + 4) slots more than filling does, far from the
 * stack's limit at the deepest nesting (5.1 and LuaJIT: 8000 slots for a C
 * function); where there is no room, a table is filled as before. */
#define COLLECT_MAX 32
#define COLLECT_DEPTHS 16

/* Whether a table at this depth collects its items: checked once per table, with room
 * for all it may collect (slots per item, and what reading one needs on top). */
static int collecting(json_reader *r, int slots_per_item)
{
    return r->depth <= COLLECT_DEPTHS &&
           lua_checkstack(r->L, slots_per_item * COLLECT_MAX + 4);
}

/* Makes the array of the n items from index base up, marked, and leaves it at base
 * in their place. */
static void make_array(json_reader *r, int base, int n, int size)
{
    int i;
    lua_createtable(r->L, size, 0);
    lua_pushvalue(r->L, r->array_mt);
    lua_setmetatable(r->L, -2);
    for (i = 0; i < n; i++) {
        lua_pushvalue(r->L, base + i);
        lua_rawseti(r->L, -2, i + 1);
    }
    if (n > 0) { /* else the table is at base already */
        lua_replace(r->L, base);
        lua_settop(r->L, base);
    }
}

static int parse_array(json_reader *r)
{
    size_t n = 0;
    int base, made;
    if (!enter(r))
        return 0;
    base = lua_gettop(r->L) + 1;
    made = !collecting(r, 1);
    if (made) {
        lua_createtable(r->L, size_hint(r->array_hint, r->depth), 0);
        /* Every array is marked, so that it is sent back as an array even once emptied. */
        lua_pushvalue(r->L, r->array_mt);
        lua_setmetatable(r->L, -2);
    }
    skip_space(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        if (!made)
            make_array(r, base, 0, 0);
        r->depth--;
        return 1;
    }
    for (;;) {
        if (!made && n == COLLECT_MAX) {
            /* the rest one by one (see COLLECT_MAX) */
            int hint = size_hint(r->array_hint, r->depth);
            make_array(r, base, (int)n, hint > (int)n ? hint : (int)n);
            made = 1;
        }
        if (!parse_value(r))
            return 0;
        n++;
        if (made) {
#if SG_HAS_INTEGERS
            lua_rawseti(r->L, -2, (lua_Integer)n);
#else
            lua_rawseti(r->L, -2, (int)n); /* 5.1 and 5.2 raise "table overflow" below 2^31 */
#endif
        }
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unterminated array");
        if (*r->p == ',') {
            r->p++;
            skip_space(r);
            if (r->p < r->end && *r->p == ']')
                return fail(r, "trailing comma in array");
            continue;
        }
        if (*r->p == ']') {
            r->p++;
            if (!made)
                make_array(r, base, (int)n, (int)n);
            remember_size(r->array_hint, r->depth, n);
            r->depth--;
            return 1;
        }
        return fail(r, "expected ',' or ']' in array");
    }
}

/* Writes the key at the top of the stack into out as a JSON string: at most
 * KEY_SHOWN bytes between the quotes, cut between characters, and "..." after the
 * closing quote when it is cut. Keys are well-formed UTF-8 (the decoder made them). */
#define KEY_SHOWN 40
static void quote_key(lua_State *L, char out[KEY_SHOWN + 6])
{
    static const char hex[] = "0123456789abcdef";
    size_t n, i = 0, o = 0;
    const unsigned char *s = (const unsigned char *)lua_tolstring(L, -1, &n);
    out[o++] = '"';
    while (i < n) {
        unsigned char c = s[i];
        size_t width = 1;
        char escaped[7];
        size_t escaped_len = 0;
        if (c == '"' || c == '\\') {
            escaped[0] = '\\';
            escaped[1] = (char)c;
            escaped_len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            escaped[0] = '\\';
            escaped[1] = 'u';
            escaped[2] = '0';
            escaped[3] = '0';
            escaped[4] = hex[c >> 4];
            escaped[5] = hex[c & 15];
            escaped_len = 6;
        } else {
            while (i + width < n && (s[i + width] & 0xC0) == 0x80)
                width++;
        }
        if (o + (escaped_len ? escaped_len : width) > KEY_SHOWN + 1)
            break;
        if (escaped_len) {
            memcpy(out + o, escaped, escaped_len);
            o += escaped_len;
        } else {
            memcpy(out + o, s + i, width);
            o += width;
        }
        i += width;
    }
    out[o++] = '"';
    if (i < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Strict mode: the key at the top of the stack, which opened at key_at, must not be in
 * the object below it yet. One hash lookup in the table being built: no quadratic
 * cost however many keys an object has. */
static int check_new_key(json_reader *r, const char *key_at)
{
    char quoted[KEY_SHOWN + 6];
    int seen;
    lua_pushvalue(r->L, -1);
    lua_rawget(r->L, -3);
    seen = !lua_isnil(r->L, -1);
    lua_pop(r->L, 1);
    if (!seen)
        return 1;
    quote_key(r->L, quoted);
    snprintf(r->error->detail, sizeof r->error->detail, "duplicate key %s in object", quoted);
    r->p = key_at;
    return fail(r, r->error->detail);
}

/* Makes the object of the n key-value pairs from index base up, set in their order
 * (a key repeated: the last value wins), and leaves it at base in their place. */
static void make_object(json_reader *r, int base, int n, int size)
{
    int i;
    lua_createtable(r->L, 0, size);
    for (i = 0; i < n; i++) {
        lua_pushvalue(r->L, base + 2 * i);
        lua_pushvalue(r->L, base + 2 * i + 1);
        lua_rawset(r->L, -3);
    }
    if (n > 0) { /* else the table is at base already */
        lua_replace(r->L, base);
        lua_settop(r->L, base);
    }
}

static int parse_object(json_reader *r)
{
    size_t n = 0;
    int base, made;
    if (!enter(r))
        return 0;
    base = lua_gettop(r->L) + 1;
    /* strict mode looks every key up in the table being filled */
    made = r->strict || !collecting(r, 2);
    if (made)
        lua_createtable(r->L, 0, size_hint(r->object_hint, r->depth));
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        if (!made)
            make_object(r, base, 0, 0);
        r->depth--;
        return 1;
    }
    for (;;) {
        const char *key_at = r->p;
        if (!made && n == COLLECT_MAX) {
            /* the rest one by one (see COLLECT_MAX) */
            int hint = size_hint(r->object_hint, r->depth);
            make_object(r, base, (int)n, hint > (int)n ? hint : (int)n);
            made = 1;
        }
        if (r->p >= r->end || *r->p != '"')
            return fail(r, "expected a string key in object");
        r->p++;
        if (!parse_string(r))
            return 0;
        if (r->strict && !check_new_key(r, key_at))
            return 0;
        skip_space(r);
        if (r->p >= r->end || *r->p != ':')
            return fail(r, "expected ':' in object");
        r->p++;
        if (!parse_value(r))
            return 0;
        if (made)
            lua_rawset(r->L, -3);
        n++;
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unterminated object");
        if (*r->p == ',') {
            r->p++;
            skip_space(r);
            if (r->p < r->end && *r->p == '}')
                return fail(r, "trailing comma in object");
            continue;
        }
        if (*r->p == '}') {
            r->p++;
            if (!made)
                make_object(r, base, (int)n, (int)n);
            remember_size(r->object_hint, r->depth, n);
            r->depth--;
            return 1;
        }
        return fail(r, "expected ',' or '}' in object");
    }
}

/* Names the byte where a value should start, in the caller's error block. */
static int fail_unexpected(json_reader *r)
{
    unsigned char c = (unsigned char)*r->p;
    char *detail = r->error->detail;
    if (c > 0x20 && c < 0x7f)
        snprintf(detail, sizeof r->error->detail, "unexpected character '%c'", c);
    else
        snprintf(detail, sizeof r->error->detail, "unexpected byte 0x%02X", (unsigned)c);
    return fail(r, detail);
}

static int parse_value(json_reader *r)
{
    skip_space(r);
    if (r->p >= r->end)
        return fail(r, "unexpected end of text");
    switch (*r->p) {
    case '{': return parse_object(r);
    case '[': return parse_array(r);
    case '"': r->p++; return parse_string(r);
    case 't':
        if (!parse_literal(r, "true", 4)) return 0;
        lua_pushboolean(r->L, 1);
        return 1;
    case 'f':
        if (!parse_literal(r, "false", 5)) return 0;
        lua_pushboolean(r->L, 0);
        return 1;
    case 'n':
        if (!parse_literal(r, "null", 4)) return 0;
        lua_pushlightuserdata(r->L, NULL);
        return 1;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(r);
    default:
        return fail_unexpected(r);
    }
}

/* Where the byte at offset is, as a reader of the text counts: lines from 1, each
 * ended by "\n", "\r\n" or a lone "\r"; columns from 1, in characters. Everything
 * before a refusal has been read as JSON, so it is well-formed UTF-8 (strings are
 * checked, everything else is ASCII) and a character is a byte that does not continue
 * a sequence. Only run for a refused text. */
static void locate(const char *text, size_t len, size_t offset, size_t *line,
                   size_t *column)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *at = p + offset, *end = p + len;
    size_t l = 1, c = 1;
    for (; p < at; p++) {
        if (*p == '\n' || (*p == '\r' && (p + 1 == end || p[1] != '\n'))) {
            l++;
            c = 1;
        } else if (*p != '\r' && (*p & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *column = c;
}

const char *sg_push_json_error(lua_State *L, const sg_json_error *error)
{
    char position[64];
    luaL_checkstack(L, 6, "no room on the Lua stack for a JSON error"); /* 5.1's pushfstring */
    snprintf(position, sizeof position, "line %zu, column %zu: ", error->line, error->column);
    return lua_pushfstring(L, "%s%s", position, error->message);
}

int sg_json_decode(lua_State *L, const char *text, size_t len, int flags,
                   sg_json_error *error)
{
    json_reader r;
    int top = lua_gettop(L);
    r.L = L;
    r.start = r.p = text;
    r.end = text + len;
    r.depth = 0;
    r.strict = (flags & SG_JSON_STRICT) != 0;
    r.error = error;
    memset(r.array_hint, 0, sizeof r.array_hint);
    memset(r.object_hint, 0, sizeof r.object_hint);
    error->message = NULL;
    error->offset = 0;
    if (!lua_checkstack(L, 4)) {
        fail(&r, "no room on the Lua stack");
        error->line = error->column = 1;
        return 0;
    }
    luaL_getmetatable(L, SG_ARRAY_METATABLE);
    r.array_mt = lua_gettop(L);
    skip_space(&r);
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        fail(&r, "byte order mark before the JSON text");
    else if (r.p == r.end)
        fail(&r, "no JSON text");
    else if (parse_value(&r)) {
        skip_space(&r);
        if (r.p == r.end) {
            lua_remove(L, r.array_mt);
            return 1;
        }
        fail(&r, "unexpected text after the value");
    }
    lua_settop(L, top);
    locate(text, len, error->offset, &error->line, &error->column);
    return 0;
}
