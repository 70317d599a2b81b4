/* timeparse.c: RFC 3339 timestamps to epoch milliseconds by fixed-position
 * digit parsing and calendar arithmetic; called once per log line, so no
 * strptime/timegm (locale and time zone machinery, far too slow). */
#include "timeparse.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>

/* Two decimal digits at s, or -1. */
static inline int two_digits(const unsigned char *s)
{
    unsigned a = (unsigned)s[0] - '0', b = (unsigned)s[1] - '0';
    if (a > 9 || b > 9)
        return -1;
    return (int)(a * 10 + b);
}

static inline bool is_leap(int y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static inline int days_in_month(int y, int m)
{
    static const unsigned char days[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m];
}

/* Days since 1970-01-01 for a valid date of years 0..9999. Years are counted
 * from March so that the leap day is the last day of a year, and shifted by
 * 400 years (a whole Gregorian cycle) so year 0's January stays positive. */
static inline int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y + 400 - (m < 3);
    int mp = (m + 9) % 12; /* March = 0 ... February = 11 */
    int64_t days = yy * 365 + yy / 4 - yy / 100 + yy / 400 + (153 * mp + 2) / 5 + d - 1;
    /* The same count for 1970-01-01 (yy = 2369, mp = 10, d = 1). */
    return days - 865565;
}

int timeparse_rfc3339_ms(const char *str, size_t len, int64_t *ms)
{
    assert(str || len == 0);
    assert(ms);

    const unsigned char *s = (const unsigned char *)str;
    /* "YYYY-MM-DDTHH:MM:SSZ" is the shortest form. */
    if (len < 20)
        return -EINVAL;

    int y1 = two_digits(s), y2 = two_digits(s + 2);
    int mo = two_digits(s + 5), d = two_digits(s + 8);
    int h = two_digits(s + 11), mi = two_digits(s + 14), sec = two_digits(s + 17);
    if ((y1 | y2 | mo | d | h | mi | sec) < 0)
        return -EINVAL;
    if (s[4] != '-' || s[7] != '-' || (s[10] | 0x20) != 't' || s[13] != ':' || s[16] != ':')
        return -EINVAL;
    int y = y1 * 100 + y2;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;

    size_t i = 19;
    int frac_ms = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && (unsigned)s[i] - '0' <= 9) {
            if (i - start < 3)
                frac_ms = frac_ms * 10 + (s[i] - '0');
            i++;
        }
        size_t digits = i - start;
        if (digits == 0 || digits > 9)
            return -EINVAL;
        for (; digits < 3; digits++)
            frac_ms *= 10;
        if (i >= len)
            return -EINVAL;
    }

    int offset_min = 0;
    if ((s[i] | 0x20) == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i < 6 || s[i + 3] != ':')
            return -EINVAL;
        int oh = two_digits(s + i + 1), om = two_digits(s + i + 4);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -EINVAL;
        offset_min = oh * 60 + om;
        if (s[i] == '-')
            offset_min = -offset_min;
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != len)
        return -EINVAL;

    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60;
    /* Seconds are whole, so adding the truncated fraction rounds toward the past. */
    *ms = secs * 1000 + frac_ms;
    return 0;
}
