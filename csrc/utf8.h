/* Well-formed UTF-8 (RFC 3629), shared by the JSON decoder, the encoder and the error
 * messages, so that all three agree on what a string may hold. */
#ifndef SORACOM_GROUPS_UTF8_H
#define SORACOM_GROUPS_UTF8_H

#include <stddef.h>

/* The length (2 to 4) of the well-formed multi-byte sequence at s (s[0] >= 0x80),
 * or 0 when it is not one: a stray continuation byte, an overlong form, a surrogate
 * (CESU-8), a code point above U+10FFFF, or a sequence cut by the end. */
size_t sg_utf8_sequence_length(const unsigned char *s, size_t n);

/* The length of the longest well-formed prefix of s: n when all of s is UTF-8. */
size_t sg_utf8_valid_prefix(const unsigned char *s, size_t n);

#endif
