/* JSON numbers to and from doubles without the locale (see numbers.h). The C library
 * still does the two hard parts, correctly rounded: snprintf's %e finds the digits of
 * a double (read here from both ends of its output, never at the decimal point), and
 * strtod reads a plain string of digits with an exponent, a form that has no decimal
 * point and reads the same in every locale. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "numbers.h"

/* Decimal exponents (of the first digit) written in positional notation, as %.17g
 * does; the others get an exponent. */
#define FIXED_POWER_MIN (-4)
#define FIXED_POWER_MAX 16

/* Significant digits that can decide how a decimal rounds to a double: every midpoint
 * between two doubles has at most 767, so past that only "anything non-zero" counts. */
#define DECISIVE_DIGITS 800

static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes m in decimal so that it ends just before end; returns where it starts. Two
 * digits a step: the decoder formats every long decimal it hands to strtod. */
static char *digits_before(uint64_t m, char *end)
{
    char *p = end;
    while (m >= 100) {
        unsigned pair = (unsigned)(m % 100);
        m /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * pair, 2);
    }
    if (m >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * m, 2);
    } else {
        *--p = (char)('0' + m);
    }
    return p;
}

static size_t format_unsigned(uint64_t m, char *out)
{
    char text[24];
    char *start = digits_before(m, text + sizeof text);
    size_t n = (size_t)(text + sizeof text - start);
    memcpy(out, start, n);
    out[n] = '\0';
    return n;
}

size_t sg_format_integer(int64_t v, char *out)
{
    if (v >= 0)
        return format_unsigned((uint64_t)v, out);
    out[0] = '-';
    return 1 + format_unsigned(0u - (uint64_t)v, out + 1);
}

/* The digits of d (positive, finite) rounded to precision (1 to 17) significant
 * digits, trailing zeros left out, and the power of ten of the first. %e writes
 * "D<point>DDDDe+XX" whatever the locale, <point> being its decimal point of any
 * length: the first digit is at the start, the others just before the 'e'. */
static int decimal_digits(double d, int precision, char *digits, int *power)
{
    char text[96];
    int n = snprintf(text, sizeof text, "%.*e", precision - 1, d);
    int e, count, value = 0, scale = 1;
    if (n < 0 || (size_t)n >= sizeof text)
        return 0;
    for (e = n - 1; e > 0 && text[e] >= '0' && text[e] <= '9'; e--) {
        value += (text[e] - '0') * scale;
        scale *= 10;
    }
    *power = text[e] == '-' ? -value : value;
    e--; /* the 'e' */
    digits[0] = text[0];
    memcpy(digits + 1, text + e - (precision - 1), (size_t)(precision - 1));
    for (count = precision; count > 1 && digits[count - 1] == '0'; count--)
        ;
    return count;
}

/* Writes count digits with the power of ten of the first as JSON, with a fraction or
 * an exponent. */
static size_t lay_out(int negative, const char *digits, int count, int power, char *out)
{
    char *o = out;
    int i;
    if (negative)
        *o++ = '-';
    if (power < FIXED_POWER_MIN || power > FIXED_POWER_MAX) {
        *o++ = digits[0];
        if (count > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(count - 1));
            o += count - 1;
        }
        *o++ = 'e';
        *o++ = power < 0 ? '-' : '+';
        if (power > -10 && power < 10)
            *o++ = '0'; /* two exponent digits at least, as printf writes them */
        o += sg_format_integer(power < 0 ? -power : power, o);
    } else if (power < 0) {
        *o++ = '0';
        *o++ = '.';
        for (i = -1; i > power; i--)
            *o++ = '0';
        memcpy(o, digits, (size_t)count);
        o += count;
    } else {
        for (i = 0; i <= power; i++)
            *o++ = i < count ? digits[i] : '0';
        *o++ = '.';
        if (count > power + 1) {
            memcpy(o, digits + power + 1, (size_t)(count - power - 1));
            o += count - power - 1;
        } else {
            *o++ = '0';
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

size_t sg_format_double(double d, char *out)
{
    char digits[20];
    int precision, count, power;
    size_t n = 0;
    if (d == 0) {
        strcpy(out, signbit(d) ? "-0.0" : "0.0");
        return strlen(out);
    }
    /* Starting at 15 finds the shortest decimal when it has 15 digits or fewer: a
     * normal double rounded to 15 digits gives back any such decimal that reads as
     * it (DBL_DIG). A subnormal has fewer digits of its own (5e-324). 17 always
     * reads back. */
    for (precision = fabs(d) < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
        count = decimal_digits(fabs(d), precision, digits, &power);
        if (count == 0)
            continue;
        n = lay_out(d < 0, digits, count, power, out);
        if (sg_parse_double(out, n) == d)
            break;
    }
    return n;
}

double sg_digits_to_double(uint64_t digits, int64_t exponent, int negative)
{
    char text[48]; /* the digits end at text + 24, then 'e' and the exponent */
    double d;
    if (sg_exact_double(digits, exponent, negative, &d))
        return d;
    if (digits == 0 || exponent < -420) /* below 1e-400: zero */
        return negative ? -0.0 : 0.0;
    if (exponent > 310)
        return negative ? -HUGE_VAL : HUGE_VAL;
    text[24] = 'e';
    sg_format_integer(exponent, text + 25);
    d = strtod(digits_before(digits, text + 24), NULL);
    return negative ? -d : d;
}

double sg_parse_double(const char *s, size_t n)
{
    /* the significant digits (at most DECISIVE_DIGITS, then a 1 when a non-zero one
     * was dropped), 'e', the exponent: what strtod reads */
    char kept[DECISIVE_DIGITS + 1 + 24];
    const char *p = s, *end = s + n;
    size_t count = 0;
    int negative = 0, fraction = 0, dropped = 0;
    int64_t exponent = 0; /* of the last kept digit */
    int64_t power;        /* of the first */
    uint64_t digits = 0;
    double d;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            fraction = 1;
        } else if (count < DECISIVE_DIGITS && (count > 0 || *p != '0')) {
            kept[count++] = *p;
            exponent -= fraction;
        } else if (count > 0) { /* a dropped digit */
            dropped |= *p != '0';
            exponent += !fraction;
        } else { /* a leading zero */
            exponent -= fraction;
        }
    }
    if (p < end) {
        int64_t written = 0;
        int below = 0;
        p++;
        if (*p == '+' || *p == '-')
            below = *p++ == '-';
        for (; p < end; p++)
            if (written < SG_EXPONENT_CAP)
                written = written * 10 + (*p - '0');
        exponent += below ? -written : written;
    }
    if (count == 0)
        return negative ? -0.0 : 0.0;
    power = exponent + (int64_t)count - 1;
    if (power > 310) /* 1.8e308 is the largest double */
        return negative ? -HUGE_VAL : HUGE_VAL;
    if (power < -400) /* 4.9e-324 the smallest */
        return negative ? -0.0 : 0.0;
    if (dropped) { /* a sticky digit: the text lies strictly between two kept values */
        kept[count++] = '1';
        exponent--;
    }
    if (count <= 19) {
        size_t i;
        for (i = 0; i < count; i++)
            digits = digits * 10 + (uint64_t)(kept[i] - '0');
        return sg_digits_to_double(digits, exponent, negative);
    }
    kept[count++] = 'e';
    sg_format_integer(exponent, kept + count);
    d = strtod(kept, NULL);
    return negative ? -d : d;
}
