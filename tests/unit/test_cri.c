/* test_cri.c: CRI log lines: fields, tags, empty messages, malformed lines,
 * and random lines built the way containerd writes them. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "cri.h"
#include "util.h"

#include "testutil.h"

/* Parse from an exact-size heap copy so that any read past the line's end is
 * caught by the sanitizers. */
static int parse(const char *line, size_t len, cri_entry *e, char **copy)
{
    *copy = xmalloc(len);
    memcpy(*copy, line, len);
    return cri_parse_line(*copy, len, e);
}

static int parse_str(const char *line, cri_entry *e, char **copy)
{
    return parse(line, strlen(line), e, copy);
}

static void assert_msg(const cri_entry *e, const char *want)
{
    assert_int_equal(e->msg_len, strlen(want));
    if (e->msg_len)
        assert_memory_equal(e->msg, want, e->msg_len);
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

static void test_full_stdout_line(void **state)
{
    _cleanup_free_ char *c = NULL;
    cri_entry e;
    assert_int_equal(parse_str("2016-10-06T00:17:09.669794202Z stdout F log message", &e, &c), 0);
    assert_int_equal(e.time_ms, utc_ms(2016, 10, 6, 0, 17, 9) + 669);
    assert_int_equal(e.stream, 1);
    assert_false(e.partial);
    assert_msg(&e, "log message");
    assert_ptr_equal(e.msg, c + 40);
}

static void test_partial_stderr_line(void **state)
{
    _cleanup_free_ char *c = NULL;
    cri_entry e;
    assert_int_equal(parse_str("2016-10-06T00:17:10.113242941Z stderr P part one ", &e, &c), 0);
    assert_int_equal(e.stream, 2);
    assert_true(e.partial);
    assert_msg(&e, "part one ");
}

static void test_tag_list_counts_its_first_part(void **state)
{
    _cleanup_free_ char *a = NULL, *b = NULL, *d = NULL;
    cri_entry e;
    assert_int_equal(parse_str("2024-01-01T00:00:00Z stdout F:x msg", &e, &a), 0);
    assert_false(e.partial);
    assert_msg(&e, "msg");
    assert_int_equal(parse_str("2024-01-01T00:00:00Z stdout P:x:y msg", &e, &b), 0);
    assert_true(e.partial);
    assert_msg(&e, "msg");
    assert_int_equal(parse_str("2024-01-01T00:00:00Z stdout F: msg", &e, &d), 0);
    assert_false(e.partial);
}

static void test_empty_message_with_or_without_separator(void **state)
{
    _cleanup_free_ char *a = NULL, *b = NULL;
    cri_entry e;
    assert_int_equal(parse_str("2024-01-01T00:00:00Z stdout F ", &e, &a), 0);
    assert_int_equal(e.msg_len, 0);
    assert_ptr_equal(e.msg, a + 30);
    assert_int_equal(parse_str("2024-01-01T00:00:00Z stderr P", &e, &b), 0);
    assert_int_equal(e.msg_len, 0);
    assert_true(e.partial);
    assert_int_equal(e.stream, 2);
}

static void test_message_bytes_kept_verbatim(void **state)
{
    _cleanup_free_ char *a = NULL, *b = NULL;
    cri_entry e;
    /* Only the one separator is consumed; later spaces belong to the message. */
    assert_int_equal(parse_str("2024-01-01T00:00:00Z stdout F   indented  ", &e, &a), 0);
    assert_msg(&e, "  indented  ");
    const char raw[] = "2024-01-01T00:00:00Z stdout F \xff\x00\"\\ \xe2\x82\xac\r";
    assert_int_equal(parse(raw, sizeof(raw) - 1, &e, &b), 0);
    assert_int_equal(e.msg_len, 9);
    assert_memory_equal(e.msg, "\xff\x00\"\\ \xe2\x82\xac\r", 9);
}

static void test_timestamp_with_offset(void **state)
{
    _cleanup_free_ char *a = NULL;
    cri_entry e;
    assert_int_equal(parse_str("2024-06-01T12:00:00.5+02:00 stdout F x", &e, &a), 0);
    assert_int_equal(e.time_ms, utc_ms(2024, 6, 1, 10, 0, 0) + 500);
}

static void test_malformed_lines_rejected(void **state)
{
    static const char *bad[] = {
        "",
        " ",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00Z ",
        "2024-01-01T00:00:00Z stdout",
        "2024-01-01T00:00:00Z stdout ",     /* empty tag */
        "2024-01-01T00:00:00Z stdout  x",   /* empty tag, double space */
        "2024-01-01T00:00:00Z  stdout F x", /* double space */
        "2024-01-01T00:00:00Z stdin F x",
        "2024-01-01T00:00:00Z STDOUT F x",
        "2024-01-01T00:00:00Z stdoutF x",
        "2024-01-01T00:00:00Z stdouts F x",
        "2024-01-01T00:00:00Z stdout_F x",
        "2024-01-01T00:00:00Z stdout X x",
        "2024-01-01T00:00:00Z stdout FF x",
        "2024-01-01T00:00:00Z stdout f x",
        "2024-01-01T00:00:00Z stdout :F x",
        "2024-01-01T00:00:00Z stdout PF:x x",
        "2024-01-01 00:00:00Z stdout F x",
        "2024-01-01T00:00:00 stdout F x", /* no zone */
        "2024-02-30T00:00:00Z stdout F x",
        "garbage stdout F x",
        "stdout F x",
        "F x",
        "2024-01-01T00:00:00Z\tstdout\tF\tx",
    };
    for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
        _cleanup_free_ char *c = NULL;
        cri_entry e;
        int r = parse_str(bad[k], &e, &c);
        if (r != -EINVAL)
            fail_msg("\"%s\" accepted (%d)", bad[k], r);
    }
}

static void test_random_lines_round_trip(void **state)
{
    rng_state = 7;
    for (int it = 0; it < 50000; it++) {
        time_t t = (time_t)(rnd() % 4102444800ULL); /* 1970 .. 2100 */
        struct tm tm;
        gmtime_r(&t, &tm);
        unsigned nanos = (unsigned)(rnd() % 1000000000u);
        char line[256];
        int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%09uZ", nanos);
        int stream = 1 + (int)(rnd() % 2);
        bool partial = rnd() % 2;
        static const char *suffix[] = {"", "", ":x", ":a:b"};
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %c%s",
                      stream == 1 ? "stdout" : "stderr", partial ? 'P' : 'F', suffix[rnd() % 4]);
        size_t msg_len = 0;
        char msg[128];
        if (rnd() % 8) {
            line[n++] = ' ';
            msg_len = rnd() % sizeof(msg);
            for (size_t k = 0; k < msg_len; k++) {
                unsigned char b = (unsigned char)rnd();
                msg[k] = (char)(b == '\n' ? ' ' : b);
            }
            memcpy(line + n, msg, msg_len);
            n += (int)msg_len;
        }

        _cleanup_free_ char *c = NULL;
        cri_entry e;
        assert_int_equal(parse(line, (size_t)n, &e, &c), 0);
        assert_int_equal(e.time_ms, (int64_t)t * 1000 + nanos / 1000000);
        assert_int_equal(e.stream, stream);
        assert_int_equal(e.partial, partial);
        assert_int_equal(e.msg_len, msg_len);
        if (msg_len)
            assert_memory_equal(e.msg, msg, msg_len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_stdout_line),
        cmocka_unit_test(test_partial_stderr_line),
        cmocka_unit_test(test_tag_list_counts_its_first_part),
        cmocka_unit_test(test_empty_message_with_or_without_separator),
        cmocka_unit_test(test_message_bytes_kept_verbatim),
        cmocka_unit_test(test_timestamp_with_offset),
        cmocka_unit_test(test_malformed_lines_rejected),
        cmocka_unit_test(test_random_lines_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
