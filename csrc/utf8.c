/* The UTF-8 validator. ASCII runs, most of what the API sends, are skipped eight bytes
 * at a time. */
#include <stdint.h>
#include <string.h>
#include "utf8.h"

size_t sg_utf8_sequence_length(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    /* the first continuation byte's range depends on the lead byte (RFC 3629, 4) */
    unsigned char low = 0x80, high = 0xBF;
    size_t length, i;
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0) low = 0xA0;       /* overlong below U+0800 */
        else if (c == 0xED) high = 0x9F; /* U+D800..U+DFFF are surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0) low = 0x90;       /* overlong below U+10000 */
        else if (c == 0xF4) high = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < length || s[1] < low || s[1] > high)
        return 0;
    for (i = 2; i < length; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return length;
}

size_t sg_utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t length;
        if (s[i] < 0x80) {
            uint64_t word;
            i++;
            while (n - i >= 8) {
                memcpy(&word, s + i, 8);
                if (word & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            continue;
        }
        length = sg_utf8_sequence_length(s + i, n - i);
        if (length == 0)
            return i;
        i += length;
    }
    return n;
}
