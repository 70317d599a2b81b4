/* test_logopts.c: Docker's size syntax and the log options of a
 * hostconfig.json as Docker and the ECS agent write it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "logopts.h"
#include "util.h"

/* logopts_load() of a hostconfig.json holding text. */
static int parse(const char *text, logopts *o, char *why, size_t why_len)
{
    char path[] = "/tmp/cwlogd-logopts-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int r = logopts_load(path, o, why, why_len);
    unlink(path);
    return r;
}

static void test_sizes_in_dockers_syntax(void **state)
{
    static const struct {
        const char *s;
        uint64_t want;
    } ok[] = {
        {"512", 512},           {"10b", 10},           {"1k", 1024},
        {"1kb", 1024},          {"1KiB", 1024},        {"1.5k", 1536},
        {"4m", 4194304},        {"25m", 26214400},     {"4 MB", 4194304},
        {"2GiB", 2147483648ULL}, {"1t", 1099511627776ULL}, {"0.5M", 524288},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        uint64_t v = 0;
        if (logopts_parse_size(ok[i].s, &v) != 0 || v != ok[i].want)
            fail_msg("\"%s\": %llu, want %llu", ok[i].s, (unsigned long long)v,
                     (unsigned long long)ok[i].want);
    }
    static const char *const bad[] = {"", "m", "1x", "-1", "1.", ".5m", "1mm", "1 m b", "1mbx",
                                      "99999999999p"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t v = 0;
        if (logopts_parse_size(bad[i], &v) != -EINVAL)
            fail_msg("\"%s\" accepted as %llu", bad[i], (unsigned long long)v);
    }
}

static void test_options_from_a_hostconfig(void **state)
{
    const char *hc = "{\"Binds\":null,\"LogConfig\":{\"Type\":\"json-file\",\"Config\":"
                     "{\"max-file\":\"5\",\"max-size\":\"10m\",\"mode\":\"non-blocking\","
                     "\"max-buffer-size\":\"4m\"}},\"NetworkMode\":\"bridge\"}";
    logopts o;
    char why[200] = "";
    assert_int_equal(parse(hc, &o, why, sizeof why), 0);
    assert_true(o.has_mode);
    assert_false(o.blocking);
    assert_int_equal(o.max_buffer_size, 4194304);

    hc = "{\"LogConfig\":{\"Type\":\"json-file\",\"Config\":{\"mode\":\"blocking\"}}}";
    assert_int_equal(parse(hc, &o, why, sizeof why), 0);
    assert_true(o.has_mode && o.blocking);
    assert_int_equal(o.max_buffer_size, 0);

    hc = "{\"LogConfig\":{\"Type\":\"json-file\",\"Config\":{}}}"; /* nothing set */
    assert_int_equal(parse(hc, &o, why, sizeof why), 0);
    assert_false(o.has_mode);
    assert_int_equal(o.max_buffer_size, 0);
    hc = "{}";
    assert_int_equal(parse(hc, &o, why, sizeof why), 0);
    assert_false(o.has_mode);
}

static void test_bad_options_and_bad_json_say_why(void **state)
{
    logopts o;
    char why[200];
    const char *hc = "{\"LogConfig\":{\"Config\":{\"mode\":\"sometimes\",\"max-buffer-size\":"
                     "\"2m\"}}}";
    assert_int_equal(parse(hc, &o, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "mode = \"sometimes\""));
    assert_false(o.has_mode);
    assert_int_equal(o.max_buffer_size, 2097152); /* the valid one is kept */

    hc = "{\"LogConfig\":{\"Config\":{\"max-buffer-size\":\"lots\"}}}";
    assert_int_equal(parse(hc, &o, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "max-buffer-size = \"lots\""));
    assert_int_equal(o.max_buffer_size, 0);

    hc = "{\"LogConfig\":";
    assert_int_equal(parse(hc, &o, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "not JSON"));

    assert_int_equal(logopts_load("/nonexistent/hostconfig.json", &o, why, sizeof why), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_in_dockers_syntax),
        cmocka_unit_test(test_options_from_a_hostconfig),
        cmocka_unit_test(test_bad_options_and_bad_json_say_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
