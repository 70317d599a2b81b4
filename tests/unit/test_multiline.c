/* test_multiline.c: the start-of-event matcher: datetime formats turned into
 * anchored regular expressions, patterns, and binary-safe matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "jsonstr.h"
#include "multiline.h"

static bool starts(const char *pattern, const char *format, const char *line)
{
    regex_t re;
    char err[128];
    assert_int_equal(multiline_compile(pattern, format, &re, err, sizeof err), 0);
    bool r = multiline_starts(&re, line, strlen(line));
    regfree(&re);
    return r;
}

static void test_datetime_format_matches_at_line_start_only(void **state)
{
    const char *f = "%Y-%m-%d %H:%M:%S";
    assert_true(starts(NULL, f, "2024-11-24 09:20:00.123 INFO started"));
    assert_true(starts(NULL, f, "2024-1-4 9:20:00 single digits"));
    assert_false(starts(NULL, f, "\tat com.example.Foo(Foo.java:1)"));
    assert_false(starts(NULL, f, "x 2024-11-24 09:20:00 not at the start"));
    assert_false(starts(NULL, f, "2024-13-24 09:20:00 month 13"));
    assert_true(starts(NULL, "%b %d, %Y %I:%M:%S %p", "Nov 24, 2024 9:20:00 AM"));
    assert_true(starts(NULL, "[%d/%b/%Y:%H:%M:%S %z]", "[24/Nov/2024:09:20:00 +0000] GET /"));
    assert_true(starts(NULL, "%FT%T%z", "2024-11-24T09:20:00Z ok"));
}

static void test_literal_characters_are_escaped(void **state)
{
    /* '.' and '(' are literal in a datetime format, not regex syntax. */
    assert_true(starts(NULL, "(%H.%M)", "(09.20) x"));
    assert_false(starts(NULL, "(%H.%M)", "(09x20) x"));
}

static void test_unsupported_directive_is_an_error(void **state)
{
    char bad = 0;
    assert_null(multiline_datetime_regex("%Y %Q", &bad));
    assert_int_equal(bad, 'Q');
    regex_t re;
    char err[128];
    assert_int_equal(multiline_compile(NULL, "%Q", &re, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "%Q"));
    assert_int_equal(multiline_compile("(unclosed", NULL, &re, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "multiline_pattern"));
}

static void test_pattern_matches_anywhere_and_text_may_hold_nul(void **state)
{
    assert_true(starts("ERROR|WARN", NULL, "2024 ERROR boom"));
    assert_false(starts("^ERROR", NULL, "x ERROR"));
    regex_t re;
    char err[64];
    assert_int_equal(multiline_compile("^A", NULL, &re, err, sizeof err), 0);
    assert_true(multiline_starts(&re, "A\0B", 3));
    regfree(&re);
}

static void test_unescape_for_matching(void **state)
{
    buf b = {0};
    const char *esc = "tab\\there \\\"q\\\" \\u00e9 \\ud83d\\ude00 \\ud800 end";
    jsonstr_unescape(&b, esc, strlen(esc));
    buf_appendc(&b, 0);
    assert_string_equal(b.data, "tab\there \"q\" \xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd end");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datetime_format_matches_at_line_start_only),
        cmocka_unit_test(test_literal_characters_are_escaped),
        cmocka_unit_test(test_unsupported_directive_is_an_error),
        cmocka_unit_test(test_pattern_matches_anywhere_and_text_may_hold_nul),
        cmocka_unit_test(test_unescape_for_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
