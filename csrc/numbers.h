/* JSON numbers to and from doubles, the same in every locale by construction: no text
 * this code writes or hands to the C library holds a decimal point, so whatever
 * LC_NUMERIC says (a comma, or U+066B in ps_AF) changes nothing. */
#ifndef SORACOM_GROUPS_NUMBERS_H
#define SORACOM_GROUPS_NUMBERS_H

#include <stddef.h>
#include <stdint.h>

/* Where reading an exponent's digits stops: past it a number is 0 or out of range
 * however many digits it has (no text is 10^15 bytes long), and an int64 holds the
 * exponent plus any count of digits. */
#define SG_EXPONENT_CAP INT64_C(1000000000000000)

/* Room for the longest text the writers below produce, NUL included. */
#define SG_NUMBER_TEXT_MAX 32

/* Writes the JSON text of the finite double d: the shortest decimal of at most 17
 * digits that sg_parse_double reads back as d, always with a fraction or an exponent
 * ("1.0", "1e+100", "-0.0") so that a float reads back as a float. Returns the length;
 * out (SG_NUMBER_TEXT_MAX bytes) is NUL-terminated. */
size_t sg_format_double(double d, char *out);

/* Writes v in decimal. Returns the length; out is NUL-terminated. */
size_t sg_format_integer(int64_t v, char *out);

/* Powers of ten that a double holds exactly. */
static const double sg_exact_powers_of_ten[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* digits * 10^exponent, negated when negative, when that is one correctly rounded
 * operation on exact doubles (Clinger's fast path: at most 2^53 as the digits, a
 * power of ten up to 22). Returns 0 when it is not. Inline: the decoder's common case. */
static inline int sg_exact_double(uint64_t digits, int64_t exponent, int negative,
                                  double *out)
{
    double d;
    if (digits > (UINT64_C(1) << 53) || exponent < -22 || exponent > 22)
        return 0;
    d = (double)digits;
    if (exponent < 0)
        d /= sg_exact_powers_of_ten[-exponent];
    else
        d *= sg_exact_powers_of_ten[exponent];
    *out = negative ? -d : d;
    return 1;
}

/* The double nearest to digits * 10^exponent (digits below 10^19), negated when
 * negative: correctly rounded, +-0 or +-HUGE_VAL beyond the range. */
double sg_digits_to_double(uint64_t digits, int64_t exponent, int negative);

/* The double nearest to the number written by the n bytes at s, which must match
 * JSON's grammar for a number: correctly rounded however many digits it has, +-0
 * below the smallest double, +-HUGE_VAL beyond the largest. */
double sg_parse_double(const char *s, size_t n);

#endif
