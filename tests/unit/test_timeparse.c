/* test_timeparse.c: RFC 3339 parsing checked against the C library's timegm()
 * on random dates, and against tables of edge cases and malformed input. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "timeparse.h"
#include "util.h"

#include "testutil.h"

static int rnd_in(int lo, int hi)
{
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

static int64_t parse_ok(const char *s)
{
    int64_t ms = 0x7eadbeef;
    int r = timeparse_rfc3339_ms(s, strlen(s), &ms);
    if (r != 0)
        fail_msg("\"%s\" rejected: %d", s, r);
    return ms;
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {
        .tm_year = y - 1900,
        .tm_mon = mo - 1,
        .tm_mday = d,
        .tm_hour = h,
        .tm_min = mi,
        .tm_sec = s,
    };
    return (int64_t)timegm(&tm) * 1000;
}

static void test_docker_timestamp_to_milliseconds(void **state)
{
    assert_int_equal(parse_ok("2024-11-24T09:20:00.123456789Z"),
                     utc_ms(2024, 11, 24, 9, 20, 0) + 123);
    assert_int_equal(parse_ok("2024-11-24T09:20:00.123456789Z"), INT64_C(1732440000123));
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.001Z"), 1);
}

static void test_fraction_of_any_length_is_truncated(void **state)
{
    int64_t base = utc_ms(2016, 10, 6, 0, 17, 9);
    static const struct {
        const char *s;
        int ms;
    } cases[] = {
        {"2016-10-06T00:17:09Z", 0},
        {"2016-10-06T00:17:09.6Z", 600},
        {"2016-10-06T00:17:09.66Z", 660},
        {"2016-10-06T00:17:09.669Z", 669},
        {"2016-10-06T00:17:09.6697Z", 669},
        {"2016-10-06T00:17:09.669794202Z", 669},
        {"2016-10-06T00:17:09.999999999Z", 999},
        {"2016-10-06T00:17:09.000000001Z", 0},
        {"2016-10-06T00:17:09.05Z", 50},
    };
    for (size_t k = 0; k < ARRAY_SIZE(cases); k++)
        assert_int_equal(parse_ok(cases[k].s), base + cases[k].ms);
}

static void test_lower_case_separators_accepted(void **state)
{
    assert_int_equal(parse_ok("2024-11-24t09:20:00.5z"), parse_ok("2024-11-24T09:20:00.5Z"));
}

static void test_offsets_shift_to_utc(void **state)
{
    int64_t z = parse_ok("2024-11-24T09:20:00.250Z");
    assert_int_equal(parse_ok("2024-11-24T11:20:00.250+02:00"), z);
    assert_int_equal(parse_ok("2024-11-24T03:50:00.250-05:30"), z);
    assert_int_equal(parse_ok("2024-11-24T09:20:00.250+00:00"), z);
    assert_int_equal(parse_ok("2024-11-24T09:20:00.250-00:00"), z);
    /* Across a day, month and year boundary. */
    assert_int_equal(parse_ok("2025-01-01T01:30:00+02:00"), utc_ms(2024, 12, 31, 23, 30, 0));
    assert_int_equal(parse_ok("2024-02-28T23:00:00-01:00"), utc_ms(2024, 2, 29, 0, 0, 0));
}

static void test_leap_years_and_leap_seconds(void **state)
{
    assert_int_equal(parse_ok("2024-02-29T12:00:00Z"), utc_ms(2024, 2, 29, 12, 0, 0));
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), utc_ms(2000, 2, 29, 0, 0, 0));
    assert_int_equal(parse_ok("2400-02-29T00:00:00Z"), utc_ms(2400, 2, 29, 0, 0, 0));
    /* A leap second counts as the first second of the next minute. */
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), utc_ms(2017, 1, 1, 0, 0, 0));
    assert_int_equal(parse_ok("2016-12-31T23:59:60.5Z"), utc_ms(2017, 1, 1, 0, 0, 0) + 500);
}

static void test_before_epoch_rounds_toward_the_past(void **state)
{
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(parse_ok("1969-12-31T23:59:59.5Z"), -500);
    /* -0.5 ms truncated toward the past is -1, not 0. */
    assert_int_equal(parse_ok("1969-12-31T23:59:59.9995Z"), -1);
    assert_int_equal(parse_ok("1900-01-01T00:00:00Z"), utc_ms(1900, 1, 1, 0, 0, 0));
    assert_int_equal(parse_ok("0000-03-01T00:00:00Z"), utc_ms(0, 3, 1, 0, 0, 0));
    assert_int_equal(parse_ok("9999-12-31T23:59:59.999Z"), utc_ms(9999, 12, 31, 23, 59, 59) + 999);
}

static int days_in(int y, int m)
{
    /* Computed through timegm's normalisation rather than a table. */
    return (int)((utc_ms(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1, 0, 0, 0) -
                  utc_ms(y, m, 1, 0, 0, 0)) /
                 86400000);
}

static void test_random_dates_match_timegm(void **state)
{
    rng_state = 42;
    for (int it = 0; it < 100000; it++) {
        int y = rnd_in(1970, 2100), mo = rnd_in(1, 12);
        int d = rnd_in(1, days_in(y, mo));
        int h = rnd_in(0, 23), mi = rnd_in(0, 59), s = rnd_in(0, 59);
        char text[64];
        int n = snprintf(text, sizeof(text), "%04d-%02d-%02d%c%02d:%02d:%02d", y, mo, d,
                         rnd_in(0, 3) ? 'T' : 't', h, mi, s);

        int digits = rnd_in(0, 9);
        int frac_ms = 0;
        if (digits) {
            text[n++] = '.';
            for (int k = 0; k < digits; k++) {
                int dg = rnd_in(0, 9);
                text[n++] = (char)('0' + dg);
                if (k < 3)
                    frac_ms += dg * (k == 0 ? 100 : k == 1 ? 10 : 1);
            }
        }
        int offset_min = 0;
        switch (rnd_in(0, 3)) {
        case 0:
            text[n++] = 'Z';
            break;
        case 1:
            text[n++] = 'z';
            break;
        default: {
            int oh = rnd_in(0, 23), om = rnd_in(0, 59);
            bool neg = rnd_in(0, 1);
            offset_min = (neg ? -1 : 1) * (oh * 60 + om);
            n += snprintf(text + n, sizeof(text) - (size_t)n, "%c%02d:%02d", neg ? '-' : '+', oh,
                          om);
        }
        }
        text[n] = 0;

        int64_t want = utc_ms(y, mo, d, h, mi, s) + frac_ms - (int64_t)offset_min * 60000;
        int64_t got;
        if (timeparse_rfc3339_ms(text, (size_t)n, &got) != 0)
            fail_msg("\"%s\" rejected", text);
        if (got != want)
            fail_msg("\"%s\": %" PRId64 ", want %" PRId64, text, got, want);
    }
}

static void test_rejects_malformed_and_out_of_range(void **state)
{
    static const char *bad[] = {
        "",
        "2024",
        "2024-11-24",
        "2024-11-24T09:20:00",             /* no zone */
        "2024-11-24T09:20:00.123",         /* no zone */
        "2024-11-24T09:20:00.Z",           /* empty fraction */
        "2024-11-24T09:20:00.1234567890Z", /* 10 digits */
        "2024-11-24T09:20:00,123Z",
        "2024-11-24 09:20:00Z",
        "2024-11-24T09:20Z",
        "2024-11-24T9:20:00Z",
        "2024-1-24T09:20:00Z",
        "24-11-24T09:20:00Z",
        "+2024-11-24T09:20:00Z",
        " 2024-11-24T09:20:00Z",
        "2024-11-24T09:20:00Z ",
        "2024-11-24T09:20:00Zjunk",
        "2024-11-24T09:20:00ZZ",
        "2024-11-24T09:20:00+0200",
        "2024-11-24T09:20:00+02",
        "2024-11-24T09:20:00+02:0",
        "2024-11-24T09:20:00+02:00:00",
        "2024-11-24T09:20:00+24:00",
        "2024-11-24T09:20:00+02:60",
        "2024-11-24T09:20:00UTC",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-11-24T24:00:00Z",
        "2024-11-24T23:60:00Z",
        "2024-11-24T23:59:61Z",
        "2024-11-24T23:59:99Z",
        "2024/11/24T09:20:00Z",
        "2024-11-24X09:20:00Z",
        "2024-11-24T09-20-00Z",
        "2O24-11-24T09:20:00Z",
        "2024-11-24T09:20:0aZ",
        "2024-11-24T09:20:00.12a4Z",
        "2024-11-24T09:20:00.-1Z",
        "2024-11-24T09:20:00\xef\xbc\x9a",
        "\xd9\xa2\xd9\xa0\xd9\xa2\xd9\xa4-11-24T09:20:00Z",
    };
    for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
        int64_t ms = 123;
        int r = timeparse_rfc3339_ms(bad[k], strlen(bad[k]), &ms);
        if (r != -EINVAL)
            fail_msg("\"%s\" accepted as %" PRId64, bad[k], ms);
    }
}

static void test_length_bounds_the_parse(void **state)
{
    /* The caller's length counts, not a terminating NUL: a prefix of a valid
     * time is not a time, and bytes past len are never read as part of it. */
    const char *t = "2024-11-24T09:20:00.123Z";
    int64_t ms;
    for (size_t len = 0; len < strlen(t); len++) {
        /* An exact-size copy, so that reading past len is a sanitizer error. */
        char *p = xmalloc(len);
        memcpy(p, t, len);
        assert_int_equal(timeparse_rfc3339_ms(p, len, &ms), -EINVAL);
        free(p);
    }
    const char *u = "2024-11-24T09:20:00.123Zgarbage";
    assert_int_equal(timeparse_rfc3339_ms(u, 24, &ms), 0);
    assert_int_equal(ms, parse_ok("2024-11-24T09:20:00.123Z"));
}

/* ---- strftime-style formats ---- */

/* The oracle: strftime() writes a random time by each format, and the parse
 * must give that time back, in UTC and in a zone with daylight saving. */
static void check_formats_round_trip(const char *tz)
{
    static const char *const formats[] = {
        "%Y-%m-%d %H:%M:%S", "%d/%b/%Y:%H:%M:%S %z", "%F %T", "%Y%m%d %H%M%S",
        "%A, %d %B %Y %I:%M:%S %p", "%a %b %e %H:%M:%S %Y", "%y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%z", "[%d/%m/%Y %T]", "%Y %j %H:%M:%S",
    };
    setenv("TZ", tz, 1);
    tzset();
    rng_state = 7;
    for (int it = 0; it < 20000; it++) {
        const char *fmt = formats[it % ARRAY_SIZE(formats)];
        time_t t = (time_t)rnd_in(0, 2000000000);
        struct tm tm;
        localtime_r(&t, &tm);
        char text[128];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        size_t n = strftime(text, sizeof text, fmt, &tm);
#pragma GCC diagnostic pop
        assert_true(n > 0);
        strcpy(text + n, " tail");
        int64_t ms;
        int r = timeparse_format_ms(fmt, text, n + 5, (int64_t)t * 1000, &ms);
        if (r != (int)n)
            fail_msg("TZ=%s \"%s\" by \"%s\": %d, want %zu", tz, text, fmt, r, n);
        /* Two-digit years cover 1969-2068; the sample stays inside. An
         * ambiguous local time (the hour repeated in autumn) may resolve to
         * either instant. */
        if (ms != (int64_t)t * 1000 && ms != (int64_t)t * 1000 - 3600000 &&
            ms != (int64_t)t * 1000 + 3600000)
            fail_msg("TZ=%s \"%s\" by \"%s\": %" PRId64 ", want %" PRId64, tz, text, fmt, ms,
                     (int64_t)t * 1000);
        if (ms != (int64_t)t * 1000) {
            /* allowed only at a repeated hour: the other reading is the same wall time */
            time_t other = (time_t)(ms / 1000);
            struct tm o;
            localtime_r(&other, &o);
            assert_int_equal(o.tm_hour, tm.tm_hour);
            assert_int_equal(o.tm_mday, tm.tm_mday);
        }
    }
}

static int restore_tz(void **state)
{
    setenv("TZ", "UTC0", 1); /* what every other test expects of local time */
    tzset();
    return 0;
}

static void test_formats_match_strftime_in_utc_and_with_daylight_saving(void **state)
{
    check_formats_round_trip("UTC0");
    check_formats_round_trip("EST5EDT,M3.2.0,M11.1.0");
}

static void test_format_fractions_zones_and_names(void **state)
{
    int64_t ms;
    const char *s = "2024-11-25 10:00:00.123456 INFO x";
    assert_int_equal(timeparse_format_ms("%Y-%m-%d %H:%M:%S.%f", s, strlen(s), 0, &ms), 26);
    assert_int_equal(ms, utc_ms(2024, 11, 25, 10, 0, 0) + 123); /* local time is UTC here */
    s = "2024-11-25T10:00:00.5+01:30";
    assert_int_equal(timeparse_format_ms("%Y-%m-%dT%H:%M:%S.%f%z", s, strlen(s), 0, &ms),
                     (int)strlen(s));
    assert_int_equal(ms, utc_ms(2024, 11, 25, 8, 30, 0) + 500);
    s = "25 NOV 2024 10:00:00 GMT";
    assert_true(timeparse_format_ms("%d %b %Y %T %Z", s, strlen(s), 0, &ms) > 0);
    assert_int_equal(ms, utc_ms(2024, 11, 25, 10, 0, 0));
    s = "12:00:01.042 AM  2024-02-29"; /* several blanks match one space */
    assert_true(timeparse_format_ms("%I:%M:%S.%L %p %F", s, strlen(s), 0, &ms) > 0);
    assert_int_equal(ms, utc_ms(2024, 2, 29, 0, 0, 1) + 42);
    s = "100% 2024-01-01";
    assert_true(timeparse_format_ms("100%% %F", s, strlen(s), 0, &ms) > 0);
    assert_int_equal(ms, utc_ms(2024, 1, 1, 0, 0, 0));
}

static void test_format_without_year_takes_the_latest_past_one(void **state)
{
    int64_t now = utc_ms(2026, 1, 1, 0, 5, 0), ms;
    const char *s = "Dec 31 23:59:59 host sshd[1]: x";
    assert_true(timeparse_format_ms("%b %e %H:%M:%S", s, strlen(s), now, &ms) > 0);
    assert_int_equal(ms, utc_ms(2025, 12, 31, 23, 59, 59));
    s = "Jan  1 00:04:00";
    assert_true(timeparse_format_ms("%b %e %H:%M:%S", s, strlen(s), now, &ms) > 0);
    assert_int_equal(ms, utc_ms(2026, 1, 1, 0, 4, 0));
}

static void test_format_rejects_what_does_not_match(void **state)
{
    static const struct {
        const char *fmt, *text;
    } bad[] = {
        {"%Y-%m-%d", "2024-13-01"}, {"%Y-%m-%d", "2023-02-29"}, {"%Y-%m-%d", "24-01-01"},
        {"%H:%M:%S", "24:00:00"},   {"%H:%M:%S", "12:60:00"},   {"%b %d", "Foo 01"},
        {"%Y-%m-%d", ""},           {"%Y-%m-%d %H", "2024-01-01"}, {"%z", "+2400"},
        {"[%F]", "2024-01-01]"},    {"%F.%L", "2024-01-01.12"}, {"%Y %j", "2023 366"},
        {"%I %p", "13 PM"},         {"%Q", "x"},                {"%", "%"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int64_t ms = 0;
        int r = timeparse_format_ms(bad[i].fmt, bad[i].text, strlen(bad[i].text), 0, &ms);
        if (r >= 0)
            fail_msg("\"%s\" by \"%s\" accepted (%d)", bad[i].text, bad[i].fmt, r);
    }
    char c = 0;
    assert_int_equal(timeparse_format_check("%Y-%m-%d %H:%M:%S.%f %z", &c), 0);
    assert_int_equal(timeparse_format_check("%Y %Q", &c), -EINVAL);
    assert_int_equal(c, 'Q');
    assert_int_equal(timeparse_format_check("%Y %", &c), -EINVAL);
}

int main(void)
{
    restore_tz(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_timestamp_to_milliseconds),
        cmocka_unit_test(test_fraction_of_any_length_is_truncated),
        cmocka_unit_test(test_lower_case_separators_accepted),
        cmocka_unit_test(test_offsets_shift_to_utc),
        cmocka_unit_test(test_leap_years_and_leap_seconds),
        cmocka_unit_test(test_before_epoch_rounds_toward_the_past),
        cmocka_unit_test(test_random_dates_match_timegm),
        cmocka_unit_test(test_rejects_malformed_and_out_of_range),
        cmocka_unit_test(test_length_bounds_the_parse),
        cmocka_unit_test_teardown(test_formats_match_strftime_in_utc_and_with_daylight_saving,
                                  restore_tz),
        cmocka_unit_test(test_format_fractions_zones_and_names),
        cmocka_unit_test(test_format_without_year_takes_the_latest_past_one),
        cmocka_unit_test(test_format_rejects_what_does_not_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
