/* timeparse.c: RFC 3339 timestamps to epoch milliseconds by fixed-position
 * digit parsing and calendar arithmetic; called once per log line, so no
 * strptime/timegm (locale and time zone machinery, far too slow). */
#include "timeparse.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

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

/* ---- strftime-style formats (time_format of plain files) ---- */

typedef struct tparts {
    int year, mon, day, yday, hour, min, sec, pm, frac_ms, off_min;
    bool have_year, have_date, have_yday, have_off, hour12;
} tparts;

/* Up to max decimal digits at s[*i] (at least min): the value, or -1. */
static int digits(const unsigned char *s, size_t len, size_t *i, int min, int max)
{
    int v = 0, n = 0;
    while (n < max && *i < len && (unsigned)s[*i] - '0' <= 9) {
        v = v * 10 + (s[*i] - '0');
        (*i)++;
        n++;
    }
    return n >= min ? v : -1;
}

/* A name from names[] (case-insensitive, full or its first three letters). */
static int name(const unsigned char *s, size_t len, size_t *i, const char *const *names, int n,
                bool full)
{
    for (int k = 0; k < n; k++) {
        size_t l = full ? strlen(names[k]) : 3;
        if (len - *i < l)
            continue;
        size_t j = 0;
        while (j < l && (s[*i + j] | 0x20) == (names[k][j] | 0x20))
            j++;
        if (j == l) {
            *i += l;
            return k;
        }
    }
    return -1;
}

static const char *const months[] = {"January", "February", "March",     "April",
                                     "May",     "June",     "July",      "August",
                                     "September", "October", "November", "December"};
static const char *const weekdays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};

static int parse_directive(char c, const unsigned char *s, size_t len, size_t *i, tparts *t)
{
    int v;
    switch (c) {
    case 'Y':
        t->year = v = digits(s, len, i, 4, 4);
        t->have_year = true;
        break;
    case 'y':
        v = digits(s, len, i, 2, 2);
        t->year = v < 69 ? 2000 + v : 1900 + v;
        t->have_year = true;
        break;
    case 'm':
        t->mon = v = digits(s, len, i, 1, 2);
        t->have_date = true;
        return v >= 1 && v <= 12 ? 0 : -EINVAL;
    case 'e':
        if (*i < len && s[*i] == ' ')
            (*i)++;
        __attribute__((fallthrough));
    case 'd':
        t->day = v = digits(s, len, i, 1, 2);
        t->have_date = true;
        return v >= 1 && v <= 31 ? 0 : -EINVAL;
    case 'j':
        t->yday = v = digits(s, len, i, 1, 3);
        t->have_yday = true;
        return v >= 1 && v <= 366 ? 0 : -EINVAL;
    case 'H':
        t->hour = v = digits(s, len, i, 1, 2);
        return v >= 0 && v <= 23 ? 0 : -EINVAL;
    case 'I':
        t->hour = v = digits(s, len, i, 1, 2);
        t->hour12 = true;
        return v >= 1 && v <= 12 ? 0 : -EINVAL;
    case 'p': {
        static const char *const ampm[] = {"AM", "PM"};
        t->pm = v = name(s, len, i, ampm, 2, true);
        break;
    }
    case 'M':
        t->min = v = digits(s, len, i, 2, 2);
        return v >= 0 && v <= 59 ? 0 : -EINVAL;
    case 'S':
        t->sec = v = digits(s, len, i, 2, 2);
        return v >= 0 && v <= 60 ? 0 : -EINVAL;
    case 'f':
    case 'L': {
        size_t start = *i;
        int ms = 0;
        while (*i < len && (unsigned)s[*i] - '0' <= 9 && *i - start < (c == 'L' ? 3u : 9u)) {
            if (*i - start < 3)
                ms = ms * 10 + (s[*i] - '0');
            (*i)++;
        }
        size_t n = *i - start;
        if (n == 0 || (c == 'L' && n != 3))
            return -EINVAL;
        for (; n < 3; n++)
            ms *= 10;
        t->frac_ms = ms;
        return 0;
    }
    case 'z':
        if (*i < len && (s[*i] | 0x20) == 'z') {
            (*i)++;
            t->have_off = true;
            t->off_min = 0;
            return 0;
        }
        if (*i >= len || (s[*i] != '+' && s[*i] != '-'))
            return -EINVAL;
        {
            int sign = s[(*i)++] == '-' ? -1 : 1;
            int oh = digits(s, len, i, 2, 2);
            if (*i < len && s[*i] == ':')
                (*i)++;
            int om = digits(s, len, i, 2, 2);
            if (oh < 0 || om < 0 || oh > 23 || om > 59)
                return -EINVAL;
            t->off_min = sign * (oh * 60 + om);
            t->have_off = true;
        }
        return 0;
    case 'Z': {
        size_t start = *i;
        while (*i < len && (((s[*i] | 0x20) >= 'a' && (s[*i] | 0x20) <= 'z') ||
                            (*i > start && s[*i] && strchr("0123456789+_/-", s[*i]))))
            (*i)++;
        if (*i == start)
            return -EINVAL;
        size_t n = *i - start;
        /* Only UTC's names say what the offset is; other names leave local time. */
        if ((n == 3 && (memcmp(s + start, "UTC", 3) == 0 || memcmp(s + start, "GMT", 3) == 0)) ||
            (n == 1 && s[start] == 'Z')) {
            t->have_off = true;
            t->off_min = 0;
        }
        return 0;
    }
    case 'b':
    case 'h':
    case 'B':
        v = name(s, len, i, months, 12, c == 'B');
        t->mon = v + 1;
        t->have_date = true;
        break;
    case 'a':
    case 'A':
        v = name(s, len, i, weekdays, 7, c == 'A');
        break;
    case 'T':
        if (parse_directive('H', s, len, i, t) < 0 || *i >= len || s[(*i)++] != ':' ||
            parse_directive('M', s, len, i, t) < 0 || *i >= len || s[(*i)++] != ':')
            return -EINVAL;
        return parse_directive('S', s, len, i, t);
    case 'F':
        if (parse_directive('Y', s, len, i, t) < 0 || *i >= len || s[(*i)++] != '-' ||
            parse_directive('m', s, len, i, t) < 0 || *i >= len || s[(*i)++] != '-')
            return -EINVAL;
        return parse_directive('d', s, len, i, t);
    case '%':
        v = *i < len && s[*i] == '%' ? 0 : -1;
        if (v == 0)
            (*i)++;
        break;
    default:
        return -EINVAL;
    }
    return v < 0 ? -EINVAL : 0;
}

int timeparse_format_check(const char *fmt, char *bad)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (!*p || !strchr("YymdejHIpMSfLzZbhBaATF%", *p)) {
            if (bad)
                *bad = *p;
            return -EINVAL;
        }
    }
    return 0;
}

/* Seconds since the epoch of t: with its offset, or as local time. */
static int assemble(const tparts *t, int64_t *secs)
{
    if (t->year < 0 || t->year > 9999)
        return -EINVAL;
    int64_t days;
    if (t->have_yday && !t->have_date) {
        if (t->yday > (is_leap(t->year) ? 366 : 365))
            return -EINVAL;
        days = days_from_civil(t->year, 1, 1) + t->yday - 1;
    } else {
        if (t->day > days_in_month(t->year, t->mon))
            return -EINVAL;
        days = days_from_civil(t->year, t->mon, t->day);
    }
    *secs = days * 86400 + t->hour * 3600 + t->min * 60 + t->sec;
    if (t->have_off) {
        *secs -= (int64_t)t->off_min * 60;
    } else {
        /* Local time: the zone's offset at that moment, found in two steps
         * (the first guess may be on the other side of a change). */
        int64_t wall = *secs;
        for (int k = 0; k < 2; k++) {
            time_t guess = (time_t)*secs;
            struct tm lt;
            if (localtime_r(&guess, &lt))
                *secs = wall - lt.tm_gmtoff;
        }
    }
    return 0;
}

int timeparse_format_ms(const char *fmt, const char *str, size_t len, int64_t now_ms, int64_t *ms)
{
    assert(fmt && (str || len == 0) && ms);
    const unsigned char *s = (const unsigned char *)str;
    tparts t = {.mon = 1, .day = 1};
    size_t i = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p == '%') {
            if (!p[1] || parse_directive(*++p, s, len, &i, &t) < 0)
                return -EINVAL;
        } else if (*p == ' ') { /* one or more blanks */
            if (i >= len || (s[i] != ' ' && s[i] != '\t'))
                return -EINVAL;
            while (i < len && (s[i] == ' ' || s[i] == '\t'))
                i++;
        } else if (i >= len || s[i++] != (unsigned char)*p) {
            return -EINVAL;
        }
    }
    if (t.hour12)
        t.hour = t.hour % 12 + (t.pm == 1 ? 12 : 0);
    if (!t.have_year) {
        time_t now = (time_t)(now_ms / 1000);
        struct tm ref;
        gmtime_r(&now, &ref);
        t.year = ref.tm_year + 1900;
    }
    int64_t secs;
    if (assemble(&t, &secs) < 0)
        return -EINVAL;
    /* No year (syslog's "%b %e %T"): the latest such time not over a day ahead. */
    if (!t.have_year && secs * 1000 > now_ms + 86400000LL) {
        t.year--;
        if (assemble(&t, &secs) < 0)
            return -EINVAL;
    }
    *ms = secs * 1000 + t.frac_ms;
    return i > INT32_MAX ? INT32_MAX : (int)i;
}
