/* test_jsonfile.c: Docker json-file lines: fixed cases, generated lines and a
 * seeded mutation fuzz loop, all judged against jansson as the reference JSON
 * parser. Build with -DJSONFILE_BENCH for a by-hand throughput check. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "jsonfile.h"
#include "jsonstr.h"
#include "timeparse.h"
#include "util.h"

#include "testutil.h"

#ifdef JSONFILE_BENCH
/* The bench build keeps the tests compiled but runs only the benchmark. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#define SAMPLE                                                                                     \
    "{\"log\":\"2024-11-24 09:20:00.123 INFO [main] c.e.OrderService - processed order 18373 in "  \
    "12ms\\n\",\"stream\":\"stdout\",\"time\":\"2024-11-24T09:20:00.123456789Z\"}"

/* ---- helpers ---------------------------------------------------------- */


static unsigned long iterations(unsigned long dflt)
{
    const char *env = getenv("CWLOGD_FUZZ_ITERATIONS");
    return env ? strtoul(env, NULL, 0) : dflt;
}

/* Parse from an exact-size heap copy so that reading past the end of the line
 * is a sanitizer error. *copy receives the copy (free it). */
static jsonfile_result parse(const char *line, size_t len, jsonfile_entry *e, char **copy)
{
    *copy = xmalloc(len);
    if (len)
        memcpy(*copy, line, len);
    return jsonfile_parse_line(*copy, len, e);
}

static jsonfile_result parse_str(const char *line, jsonfile_entry *e, char **copy)
{
    return parse(line, strlen(line), e, copy);
}

/* Decode escaped content with jansson by quoting it; NULL when rejected. */
static char *jansson_decode(const char *esc, size_t len, size_t *n)
{
    buf b = {0};
    buf_appendc(&b, '"');
    buf_append(&b, esc, len);
    buf_appendc(&b, '"');
    json_error_t err;
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    buf_free(&b);
    if (!j)
        return NULL;
    assert_true(json_is_string(j));
    *n = json_string_length(j);
    char *out = xmalloc(*n + 1);
    memcpy(out, json_string_value(j), *n);
    json_decref(j);
    return out;
}

static void assert_log(const jsonfile_entry *e, const char *esc)
{
    assert_int_equal(e->log_len, strlen(esc));
    if (e->log_len)
        assert_memory_equal(e->log, esc, e->log_len);
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

/* ---- fixed cases ------------------------------------------------------ */

static void test_docker_sample_line(void **state)
{
    _cleanup_free_ char *c = NULL;
    jsonfile_entry e;
    assert_int_equal(parse_str(SAMPLE, &e, &c), JSONFILE_OK);
    const char *msg = "2024-11-24 09:20:00.123 INFO [main] c.e.OrderService - processed order "
                      "18373 in 12ms";
    assert_log(&e, msg);
    assert_ptr_equal(e.log, c + 8);
    assert_int_equal(e.utf8_len, strlen(msg));
    assert_false(e.partial);
    assert_int_equal(e.stream, 1);
    assert_int_equal(e.time_ms, utc_ms(2024, 11, 24, 9, 20, 0) + 123);
}

static void test_log_without_newline_is_partial(void **state)
{
    _cleanup_free_ char *c = NULL;
    jsonfile_entry e;
    assert_int_equal(parse_str("{\"log\":\"first 16k of a long line\",\"stream\":\"stderr\","
                               "\"time\":\"2024-01-02T03:04:05.6Z\"}",
                               &e, &c),
                     JSONFILE_OK);
    assert_log(&e, "first 16k of a long line");
    assert_true(e.partial);
    assert_int_equal(e.stream, 2);
    assert_int_equal(e.time_ms, utc_ms(2024, 1, 2, 3, 4, 5) + 600);
}

static void test_only_the_final_newline_escape_is_stripped(void **state)
{
    static const struct {
        const char *line, *log;
        size_t utf8;
        bool partial;
    } cases[] = {
        {"{\"log\":\"\\n\"}", "", 0, false},
        {"{\"log\":\"\"}", "", 0, true},
        {"{\"log\":\"a\\r\\n\"}", "a\\r", 2, false},     /* \r is kept */
        {"{\"log\":\"a\\n\\n\"}", "a\\n", 2, false},     /* one newline only */
        {"{\"log\":\"a\\\\n\"}", "a\\\\n", 3, true},     /* backslash, n */
        {"{\"log\":\"a\\u000a\"}", "a\\u000a", 2, true}, /* not the \n escape */
        {"{\"log\":\"caf\\u00e9\\n\"}", "caf\\u00e9", 5, false},
        {"{\"log\":\"\xf0\x9f\x98\x80\\n\"}", "\xf0\x9f\x98\x80", 4, false},
    };
    for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        assert_int_equal(parse_str(cases[k].line, &e, &c), JSONFILE_OK);
        assert_log(&e, cases[k].log);
        assert_int_equal(e.utf8_len, cases[k].utf8);
        assert_int_equal(e.partial, cases[k].partial);
        assert_int_equal(e.stream, 0);
        assert_int_equal(e.time_ms, -1);
    }
}

static void test_keys_in_any_order_with_whitespace_and_extra_keys(void **state)
{
    static const char *lines[] = {
        "{\"time\":\"2024-11-24T09:20:00.5Z\",\"stream\":\"stderr\",\"log\":\"hi\\n\"}",
        " { \"stream\" : \"stderr\" ,\t\"log\"\t:\t\"hi\\n\" , \"time\":\"2024-11-24T09:20:00.5Z\" "
        "} ",
        "{\"log\":\"hi\\n\",\"stream\":\"stderr\",\"attrs\":{\"tag\":\"web\",\"n\":[1,2.5e3,-0,"
        "{\"deep\":[[],{}]},true,false,null]},\"time\":\"2024-11-24T09:20:00.5Z\"}",
        "{\"x\":null,\"log\":\"hi\\n\",\"y\":[\"}\",\"\\\"\",\"{\"],\"stream\":\"stderr\","
        "\"time\":\"2024-11-24T09:20:00.5Z\",\"z\":-12.75E-2}",
        "{\"l\\u006fg\":\"hi\\n\",\"stre\\u0061m\":\"std\\u0065rr\","
        "\"\\u0074ime\":\"2024-11-24T09:20:00.5\\u005a\"}",
        "\r\n{\"log\":\"hi\\n\",\"stream\":\"stderr\",\"time\":\"2024-11-24T11:20:00.5+02:00\"}\r",
    };
    for (size_t k = 0; k < ARRAY_SIZE(lines); k++) {
        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        if (parse_str(lines[k], &e, &c) != JSONFILE_OK)
            fail_msg("line %zu not OK", k);
        assert_log(&e, "hi");
        assert_false(e.partial);
        assert_int_equal(e.stream, 2);
        assert_int_equal(e.time_ms, utc_ms(2024, 11, 24, 9, 20, 0) + 500);
    }
}

static void test_stream_and_time_absent_unknown_or_invalid(void **state)
{
    static const struct {
        const char *line;
        int stream;
        bool time_valid;
    } cases[] = {
        {"{\"log\":\"x\"}", 0, false},
        {"{\"log\":\"x\",\"stream\":\"stdin\",\"time\":\"yesterday\"}", 0, false},
        {"{\"log\":\"x\",\"stream\":\"STDOUT\",\"time\":\"2024-02-30T00:00:00Z\"}", 0, false},
        {"{\"log\":\"x\",\"stream\":1,\"time\":1732440000}", 0, false},
        {"{\"log\":\"x\",\"stream\":\"stdout\",\"time\":null}", 1, false},
        {"{\"log\":\"x\",\"stream\":\"stdout\",\"stream\":[],\"time\":\"2024-02-29T00:00:00Z\"}", 0,
         true},
        {"{\"log\":\"x\",\"time\":\"2024-02-29T00:00:00Z\",\"time\":\"bad\"}", 0, false},
        {"{\"log\":\"x\",\"time\":\"2024-02-29T00:00:00Z\",\"time\":{\"a\":1}}", 0, false},
        {"{\"log\":\"x\",\"time\":\"bad\",\"time\":\"2024-02-29T00:00:00Z\"}", 0, true},
        {"{\"log\":\"x\",\"stream\":\"stdout\\u0000\"}", 0, false},
    };
    for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        if (parse_str(cases[k].line, &e, &c) != JSONFILE_OK)
            fail_msg("case %zu not OK", k);
        assert_log(&e, "x");
        if (e.stream != cases[k].stream)
            fail_msg("case %zu: stream %d", k, e.stream);
        if ((e.time_ms == utc_ms(2024, 2, 29, 0, 0, 0)) != cases[k].time_valid ||
            (!cases[k].time_valid && e.time_ms != -1))
            fail_msg("case %zu: time %" PRId64, k, e.time_ms);
    }
}

static void test_later_duplicate_log_wins(void **state)
{
    _cleanup_free_ char *a = NULL, *b = NULL, *d = NULL;
    jsonfile_entry e;
    assert_int_equal(parse_str("{\"log\":\"one\\n\",\"log\":\"two\"}", &e, &a), JSONFILE_OK);
    assert_log(&e, "two");
    assert_true(e.partial);
    /* A later non-string "log" leaves no message at all. */
    assert_int_equal(parse_str("{\"log\":\"one\\n\",\"log\":5}", &e, &b), JSONFILE_CORRUPT);
    /* A later valid "log" replaces one that needed repair. */
    assert_int_equal(parse_str("{\"log\":\"\x01\",\"log\":\"ok\"}", &e, &d), JSONFILE_OK);
    assert_log(&e, "ok");
}

static void test_damaged_log_needs_repair(void **state)
{
    static const struct {
        const char *line;
        const char *log;
        size_t utf8;
        bool partial;
    } cases[] = {
        {"{\"log\":\"tab\there\\n\"}", "tab\there", 8, false},
        {"{\"log\":\"bad \xff byte\\n\",\"stream\":\"stdout\"}", "bad \xff byte", 12, false},
        {"{\"log\":\"lone \\ud83d\"}", "lone \\ud83d", 8, true},
        {"{\"log\":\"\xed\xa0\x80\"}", "\xed\xa0\x80", 9, true},
    };
    for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        assert_int_equal(parse_str(cases[k].line, &e, &c), JSONFILE_NEEDS_REPAIR);
        assert_log(&e, cases[k].log);
        assert_int_equal(e.utf8_len, cases[k].utf8);
        assert_int_equal(e.partial, cases[k].partial);
        buf out = {0};
        size_t u8;
        jsonstr_repair(&out, e.log, e.log_len, &u8);
        assert_int_equal(u8, e.utf8_len);
        buf_free(&out);
    }
}

static void test_corrupt_lines(void **state)
{
    static const char *bad[] = {
        "",
        " ",
        "{}",
        "{ }",
        "[]",
        "\"log\"",
        "null",
        "{\"stream\":\"stdout\",\"time\":\"2024-11-24T09:20:00Z\"}", /* no log */
        "{\"log\":5}",
        "{\"log\":null}",
        "{\"log\":[\"x\"]}",
        "{\"log\":{\"x\":\"y\"}}",
        "{\"LOG\":\"x\"}",
        "{\"log \":\"x\"}",
        "{\"log\":\"x\"", /* truncated */
        "{\"log\":\"x",
        "{\"log\":\"x\\",
        "{\"log\":",
        "{\"log\"",
        "{\"log",
        "{",
        "{\"log\":\"x\"}}", /* trailing garbage */
        "{\"log\":\"x\"} x",
        "{\"log\":\"x\"}{\"log\":\"y\"}",
        "{\"log\":\"x\",}", /* trailing comma */
        "{,\"log\":\"x\"}",
        "{\"log\":\"x\" \"stream\":\"stdout\"}", /* missing comma */
        "{\"log\" \"x\"}",                       /* missing colon */
        "{\"log\"::\"x\"}",
        "{log:\"x\"}",
        "{'log':'x'}",
        "{\"log\":\"bad \\x escape\"}",
        "{\"log\":\"short \\u12 escape\"}",
        "{\"log\":\"x\",\"a\":tru}",
        "{\"log\":\"x\",\"a\":nul}",
        "{\"log\":\"x\",\"a\":True}",
        "{\"log\":\"x\",\"a\":01}",
        "{\"log\":\"x\",\"a\":1.}",
        "{\"log\":\"x\",\"a\":.5}",
        "{\"log\":\"x\",\"a\":-}",
        "{\"log\":\"x\",\"a\":1e}",
        "{\"log\":\"x\",\"a\":+1}",
        "{\"log\":\"x\",\"a\":[1,]}",
        "{\"log\":\"x\",\"a\":[1 2]}",
        "{\"log\":\"x\",\"a\":{\"b\":1,}}",
        "{\"log\":\"x\",\"a\":{\"b\"}}",
        "{\"log\":\"x\",\"a\":{1:2}}",
        "{\"log\":\"x\",\"a\":[}",
        "{\"log\":\"x\",\"a\":[1}}",
        "{\"log\":\"x\",\"a\":{\"b\":1]}",
        "{\"log\":\"x\",\"a\":[{\"b\":[1}]]}",
        "{\"log\":\"x\",\"a\":{]}",
        "{\"log\":\"x\",\"a\":[[[]]}",
        "{\"log\":\"x\",\"a\":\"unterminated}",
        "{\"log\":\"x\",\"a\":}",
        "{\"log\":\"x\",\"a\"}",
        "\xef\xbb\xbf{\"log\":\"x\"}", /* a BOM is not JSON whitespace */
        "{\"log\":\"x\"}\x00",
        "{\"log\":\"x\"}\f",
    };
    for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        /* Lengths include embedded NULs where a literal has them. */
        size_t len = strlen(bad[k]);
        if (k == ARRAY_SIZE(bad) - 2)
            len++;
        jsonfile_result r = parse(bad[k], len, &e, &c);
        if (r != JSONFILE_CORRUPT)
            fail_msg("line %zu \"%s\" accepted: %d", k, bad[k], r);
        /* jansson agrees that none of these carries a valid "log" string. */
        json_error_t err;
        json_t *j = json_loadb(bad[k], len, JSON_ALLOW_NUL, &err);
        if (j && json_is_string(json_object_get(j, "log")))
            fail_msg("line %zu: jansson finds a log string", k);
        json_decref(j);
    }
}

static void test_nul_byte_between_tokens_is_corrupt(void **state)
{
    static const char line[] = "{\"a\":1\0,\"log\":\"x\"}";
    _cleanup_free_ char *c = NULL;
    jsonfile_entry e;
    assert_int_equal(parse(line, sizeof(line) - 1, &e, &c), JSONFILE_CORRUPT);
}

static void test_nesting_deeper_than_jansson_accepts_is_corrupt(void **state)
{
    for (size_t depth = 1; depth <= 5000; depth = depth < 100 ? depth + 1 : depth * 2) {
        buf b = {0};
        buf_printf(&b, "{\"log\":\"x\",\"attrs\":");
        for (size_t k = 0; k < depth; k++)
            buf_append(&b, k % 2 ? "[" : "{\"a\":", k % 2 ? 1 : 5);
        buf_appendc(&b, '1');
        for (size_t k = depth; k-- > 0;)
            buf_appendc(&b, k % 2 ? ']' : '}');
        buf_appendc(&b, '}');

        json_error_t err;
        json_t *j = json_loadb(b.data, b.len, 0, &err);
        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        jsonfile_result r = parse(b.data, b.len, &e, &c);
        if (j)
            assert_int_equal(r, JSONFILE_OK);
        if (depth <= 1000)
            assert_int_equal(r, JSONFILE_OK);
        if (depth > 4096)
            assert_int_equal(r, JSONFILE_CORRUPT);
        json_decref(j);
        buf_free(&b);
    }
}

/* ---- generated lines --------------------------------------------------- */

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static void put_u_escape(buf *b, uint32_t unit)
{
    const char *h = rnd_below(2) ? "0123456789abcdef" : "0123456789ABCDEF";
    char e[6] = {'\\',         'u', h[unit >> 12 & 0xf], h[unit >> 8 & 0xf], h[unit >> 4 & 0xf],
                 h[unit & 0xf]};
    buf_append(b, e, 6);
}

static uint32_t rnd_cp(void)
{
    for (;;) {
        uint32_t cp;
        switch (rnd_below(3)) {
        case 0:
            cp = 0x80 + rnd_below(0x780);
            break;
        case 1:
            cp = 0x800 + rnd_below(0xf800);
            break;
        default:
            cp = 0x10000 + rnd_below(0x100000);
        }
        if (cp < 0xd800 || cp > 0xdfff)
            return cp;
    }
}

/* Valid escaped string content; *text gets its decoding. Docker's escaping
 * (\u003c, \u0026, \t, ...) is one of the spellings produced. */
static bool gen_string(buf *esc, buf *text, size_t units)
{
    char t[4];
    bool newline_escape = false; /* the last unit written is the \n escape */
    for (size_t u = 0; u < units; u++) {
        newline_escape = false;
        switch (rnd_below(9)) {
        case 0:
        case 1:
        case 2: {
            size_t n = 1 + rnd_below(30);
            for (size_t k = 0; k < n; k++) {
                char c;
                do
                    c = (char)(0x20 + rnd_below(0x5f));
                while (c == '"' || c == '\\');
                buf_appendc(esc, c);
                buf_appendc(text, c);
            }
            break;
        }
        case 3: {
            static const char e[] = "\"\\/bfnrt", v[] = "\"\\/\b\f\n\r\t";
            size_t k = rnd_below(8);
            buf_appendc(esc, '\\');
            buf_appendc(esc, e[k]);
            buf_appendc(text, v[k]);
            newline_escape = e[k] == 'n';
            break;
        }
        case 4: {
            static const uint32_t ascii[] = {0, 1, 0x1f, '<', '>', '&', 0x7f, 'A'};
            uint32_t c = ascii[rnd_below(ARRAY_SIZE(ascii))];
            put_u_escape(esc, c);
            buf_appendc(text, (char)c);
            break;
        }
        case 5: {
            uint32_t cp = rnd_cp();
            if (cp >= 0x10000)
                cp = rnd_below(2) ? 0x2028 : 0xe9;
            put_u_escape(esc, cp);
            buf_append(text, t, put_utf8(t, cp));
            break;
        }
        case 6:
        case 7: {
            size_t n = put_utf8(t, rnd_cp());
            buf_append(esc, t, n);
            buf_append(text, t, n);
            break;
        }
        default: {
            uint32_t cp = 0x10000 + rnd_below(0x100000), v = cp - 0x10000;
            put_u_escape(esc, 0xd800 + (v >> 10));
            put_u_escape(esc, 0xdc00 + (v & 0x3ff));
            buf_append(text, t, put_utf8(t, cp));
            break;
        }
        }
    }
    return newline_escape;
}

static void gen_ws(buf *b)
{
    if (rnd_below(4))
        return;
    static const char *ws[] = {" ", "\t", "  ", " \t ", "\r"};
    buf_printf(b, "%s", ws[rnd_below(ARRAY_SIZE(ws))]);
}

static void gen_value(buf *b, int depth)
{
    gen_ws(b);
    switch (rnd_below(depth > 3 ? 4 : 6)) {
    case 0: {
        buf esc = {0}, text = {0};
        gen_string(&esc, &text, rnd_below(4));
        buf_appendc(b, '"');
        buf_append(b, esc.data, esc.len);
        buf_appendc(b, '"');
        buf_free(&esc);
        buf_free(&text);
        break;
    }
    case 1: {
        static const char *nums[] = {"0",    "-0",    "7",      "-42",    "3.25", "1e3",
                                     "1E+3", "-2e-3", "0.5E10", "123456", "-0.0", "6.02e23"};
        buf_printf(b, "%s", nums[rnd_below(ARRAY_SIZE(nums))]);
        break;
    }
    case 2: {
        static const char *lits[] = {"true", "false", "null"};
        buf_printf(b, "%s", lits[rnd_below(3)]);
        break;
    }
    case 3:
        buf_printf(b, "\"%s\"", rnd_below(2) ? "{not:an object]" : "");
        break;
    case 4: {
        buf_appendc(b, '{');
        size_t n = rnd_below(4);
        for (size_t k = 0; k < n; k++) {
            if (k)
                buf_appendc(b, ',');
            gen_ws(b);
            buf_printf(b, "\"k%u\"", rnd_below(100));
            gen_ws(b);
            buf_appendc(b, ':');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        buf_appendc(b, '}');
        break;
    }
    default: {
        buf_appendc(b, '[');
        size_t n = rnd_below(4);
        for (size_t k = 0; k < n; k++) {
            if (k)
                buf_appendc(b, ',');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        buf_appendc(b, ']');
        break;
    }
    }
    gen_ws(b);
}

typedef struct expected {
    buf text; /* decoded log, trailing newline included */
    bool newline_escape;
    int stream;
    int64_t time_ms;
} expected;

static void gen_key(buf *b, const char *key)
{
    /* Sometimes spell a key with escapes: it is still the same key. */
    if (rnd_below(20)) {
        buf_printf(b, "\"%s\"", key);
        return;
    }
    buf_appendc(b, '"');
    for (const char *p = key; *p; p++)
        if (rnd_below(2))
            put_u_escape(b, (unsigned char)*p);
        else
            buf_appendc(b, *p);
    buf_appendc(b, '"');
}

/* A json-file line as Docker writes it, or with keys reordered, extra keys,
 * odd whitespace and escape spellings; *x gets what it must parse to. */
static void gen_line(buf *line, expected *x)
{
    line->len = 0;
    x->text.len = 0;
    x->stream = 0;
    x->time_ms = -1;

    enum { M_LOG, M_STREAM, M_TIME, M_ATTRS, M_OTHER, M_COUNT };
    int order[M_COUNT] = {M_LOG, M_STREAM, M_TIME, M_ATTRS, M_OTHER};
    bool docker_like = rnd_below(3) == 0;
    if (!docker_like)
        for (int k = M_COUNT - 1; k > 0; k--) {
            int j = (int)rnd_below((uint32_t)k + 1), t = order[k];
            order[k] = order[j];
            order[j] = t;
        }

    buf_appendc(line, '{');
    bool first = true;
    for (int m = 0; m < M_COUNT; m++) {
        int what = order[m];
        bool present = what == M_LOG ||
                       (docker_like ? what != M_OTHER && (what != M_ATTRS || rnd_below(4) == 0)
                                    : rnd_below(3) != 0);
        if (!present)
            continue;
        if (!first)
            buf_appendc(line, ',');
        first = false;
        if (!docker_like)
            gen_ws(line);
        switch (what) {
        case M_LOG: {
            gen_key(line, "log");
            buf_appendc(line, ':');
            buf esc = {0};
            x->newline_escape = gen_string(&esc, &x->text, rnd_below(12));
            if (rnd_below(10) < 7) {
                x->newline_escape = true;
                buf_append(&esc, "\\n", 2);
                buf_appendc(&x->text, '\n');
            }
            buf_appendc(line, '"');
            buf_append(line, esc.data, esc.len);
            buf_appendc(line, '"');
            buf_free(&esc);
            break;
        }
        case M_STREAM: {
            static const char *names[] = {"stdout", "stderr", "stdin", ""};
            int k = (int)rnd_below(4);
            gen_key(line, "stream");
            buf_printf(line, ":\"%s\"", names[k]);
            x->stream = k < 2 ? k + 1 : 0;
            break;
        }
        case M_TIME: {
            gen_key(line, "time");
            if (rnd_below(10) == 0) {
                buf_printf(line, ":\"%s\"", rnd_below(2) ? "not a time" : "2024-02-30T00:00:00Z");
                x->time_ms = -1;
                break;
            }
            time_t t = (time_t)(rnd() % 4102444800ULL);
            unsigned ns = (unsigned)(rnd() % 1000000000u);
            struct tm tm;
            gmtime_r(&t, &tm);
            char ts[64];
            size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
            if (ns) {
                /* Go's RFC3339Nano drops trailing zeros of the fraction. */
                unsigned frac = ns;
                int digits = 9;
                while (frac % 10 == 0) {
                    frac /= 10;
                    digits--;
                }
                n += (size_t)snprintf(ts + n, sizeof(ts) - n, ".%0*u", digits, frac);
            }
            snprintf(ts + n, sizeof(ts) - n, "Z");
            buf_printf(line, ":\"%s\"", ts);
            x->time_ms = (int64_t)t * 1000 + ns / 1000000;
            break;
        }
        case M_ATTRS:
            gen_key(line, "attrs");
            buf_appendc(line, ':');
            gen_value(line, 0);
            break;
        default:
            buf_printf(line, "\"extra%u\":", rnd_below(10));
            gen_value(line, 0);
            break;
        }
        if (!docker_like)
            gen_ws(line);
    }
    buf_appendc(line, '}');
    if (!docker_like && rnd_below(5) == 0)
        buf_appendc(line, ' ');
}

/* A line with its unprintable bytes escaped, for failure messages. */
static const char *show(const char *line, size_t len)
{
    static char out[4096];
    size_t o = 0;
    for (size_t k = 0; k < len && o + 5 < sizeof(out); k++) {
        unsigned char c = (unsigned char)line[k];
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof(out) - o, "<%02x>", c);
    }
    out[o] = 0;
    return out;
}

static unsigned long compared_with_jansson;

/* The properties every parse must have, judged by jansson:
 * - jansson finds an object with a "log" string  =>  OK, with the same text,
 *   stream and time (a json-file line cannot need repair if jansson takes it);
 * - OK  =>  the escaped log is a valid JSON string of utf8_len bytes;
 * - NEEDS_REPAIR  =>  repair gives a valid JSON string of utf8_len bytes.
 * Returns the result. */
static jsonfile_result check_line(const char *line, size_t len)
{
    _cleanup_free_ char *copy = NULL;
    jsonfile_entry e;
    jsonfile_result r = parse(line, len, &e, &copy);

    json_error_t err;
    json_t *root = json_loadb(line, len, JSON_ALLOW_NUL, &err);
    json_t *log = root ? json_object_get(root, "log") : NULL;

    if (r != JSONFILE_CORRUPT) {
        assert_true(e.log >= copy && e.log + e.log_len <= copy + len);
        assert_true(e.stream >= 0 && e.stream <= 2);
    }
    if (r == JSONFILE_OK) {
        size_t n;
        _cleanup_free_ char *d = jansson_decode(e.log, e.log_len, &n);
        if (!d)
            fail_msg("OK log is not a valid JSON string: %s", show(line, len));
        assert_int_equal(n, e.utf8_len);
    } else if (r == JSONFILE_NEEDS_REPAIR) {
        buf out = {0};
        size_t u8, n;
        jsonstr_repair(&out, e.log, e.log_len, &u8);
        _cleanup_free_ char *d = jansson_decode(out.data, out.len, &n);
        assert_non_null(d);
        assert_int_equal(u8, e.utf8_len);
        assert_int_equal(n, e.utf8_len);
        buf_free(&out);
    }

    /* Deliberate divergence: jansson 2.14 loses a raw NUL byte that directly
     * follows a number or a literal (its one-character push-back lives in a
     * NUL-terminated buffer), so it accepts {"a":1<00>,"log":"x"}, which is
     * not JSON. We reject such lines; only jansson's rejections of lines with
     * a NUL byte are taken as the reference. */
    bool jansson_reliable = memchr(line, 0, len) == NULL;

    if (log && json_is_string(log) && jansson_reliable) {
        compared_with_jansson++;
        if (r != JSONFILE_OK)
            fail_msg("result %d, jansson accepts: %s", r, show(line, len));
        buf esc = {0};
        buf_append(&esc, e.log, e.log_len);
        if (!e.partial)
            buf_append(&esc, "\\n", 2);
        size_t n;
        _cleanup_free_ char *d = jansson_decode(esc.data, esc.len, &n);
        buf_free(&esc);
        assert_non_null(d);
        assert_int_equal(n, json_string_length(log));
        if (n)
            assert_memory_equal(d, json_string_value(log), n);
        assert_int_equal(e.utf8_len + !e.partial, n);
        if (n == 0 || json_string_value(log)[n - 1] != '\n')
            assert_true(e.partial);

        json_t *st = json_object_get(root, "stream");
        int want_stream = 0;
        if (json_is_string(st) && json_string_length(st) == 6) {
            if (memcmp(json_string_value(st), "stdout", 6) == 0)
                want_stream = 1;
            else if (memcmp(json_string_value(st), "stderr", 6) == 0)
                want_stream = 2;
        }
        assert_int_equal(e.stream, want_stream);

        json_t *tm = json_object_get(root, "time");
        int64_t want_time = -1;
        if (json_is_string(tm) &&
            timeparse_rfc3339_ms(json_string_value(tm), json_string_length(tm), &want_time) < 0)
            want_time = -1;
        assert_int_equal(e.time_ms, want_time);
    }
    json_decref(root);
    return r;
}

static void test_generated_lines_match_jansson_and_construction(void **state)
{
    seed(11);
    buf line = {0};
    expected x = {0};
    for (unsigned long it = 0; it < iterations(20000) / 4 + 1; it++) {
        gen_line(&line, &x);
        /* The generator only writes valid JSON: jansson must agree. */
        json_error_t err;
        json_t *root = json_loadb(line.data, line.len, JSON_ALLOW_NUL, &err);
        if (!root)
            fail_msg("generator wrote invalid JSON (%s): %s", err.text, show(line.data, line.len));
        json_decref(root);

        assert_int_equal(check_line(line.data, line.len), JSONFILE_OK);

        _cleanup_free_ char *c = NULL;
        jsonfile_entry e;
        parse(line.data, line.len, &e, &c);
        assert_int_equal(e.partial, !x.newline_escape);
        assert_int_equal(e.utf8_len + !e.partial, x.text.len);
        assert_int_equal(e.stream, x.stream);
        assert_int_equal(e.time_ms, x.time_ms);
    }
    buf_free(&line);
    buf_free(&x.text);
}

static void mutate(buf *b)
{
    static const char *inserts[] = {
        "\"",
        "\\",
        "\\u",
        "\\uD83D",
        "\\uDE00",
        "\\u00e9",
        "\\u12",
        "\\u0000",
        "\\n",
        "\x00",
        "\xff",
        "\xc3\xa9",
        "\xe2\x82",
        "\xed\xa0\x80",
        ",",
        ":",
        "{",
        "}",
        "[",
        "]",
        " ",
        "\"x\":1,",
        "\"log\":\"y\",",
        "0",
        "-",
        "e",
        "true",
        "\x01",
        "\r",
    };
    switch (rnd_below(6)) {
    case 0: /* flip a byte */
        if (b->len)
            b->data[rnd_below((uint32_t)b->len)] = (char)rnd();
        break;
    case 1: /* set a byte to something structural */
        if (b->len) {
            const char *s = inserts[rnd_below(ARRAY_SIZE(inserts))];
            b->data[rnd_below((uint32_t)b->len)] = s[0];
        }
        break;
    case 2: { /* insert */
        const char *s = inserts[rnd_below(ARRAY_SIZE(inserts))];
        size_t n = s[0] ? strlen(s) : 1;
        size_t at = rnd_below((uint32_t)b->len + 1);
        buf_reserve(b, n);
        memmove(b->data + at + n, b->data + at, b->len - at);
        memcpy(b->data + at, s, n);
        b->len += n;
        break;
    }
    case 3: /* truncate */
        b->len = rnd_below((uint32_t)b->len + 1);
        break;
    case 4: { /* delete a range */
        if (!b->len)
            break;
        size_t at = rnd_below((uint32_t)b->len), n = 1 + rnd_below(8);
        n = MIN(n, b->len - at);
        memmove(b->data + at, b->data + at + n, b->len - at - n);
        b->len -= n;
        break;
    }
    default: { /* duplicate a range */
        if (!b->len)
            break;
        size_t at = rnd_below((uint32_t)b->len), n = 1 + rnd_below(12);
        n = MIN(n, b->len - at);
        buf_reserve(b, n);
        memmove(b->data + at + n, b->data + at, b->len - at);
        b->len += n;
        break;
    }
    }
}

static void test_fuzzed_lines_never_contradict_jansson(void **state)
{
    seed(12);
    buf line = {0};
    expected x = {0};
    unsigned long counts[3] = {0};
    unsigned long n = iterations(200000);
    compared_with_jansson = 0;
    for (unsigned long it = 0; it < n; it++) {
        gen_line(&line, &x);
        for (uint32_t m = 1 + rnd_below(3); m > 0; m--)
            mutate(&line);
        counts[check_line(line.data, line.len)]++;
    }
    /* The mix must exercise every outcome, or the fuzz proves little. */
    print_message("fuzz: %lu OK, %lu NEEDS_REPAIR, %lu CORRUPT; %lu with a log jansson reads\n",
                  counts[0], counts[1], counts[2], compared_with_jansson);
    assert_true(compared_with_jansson > n / 10);
    assert_true(counts[JSONFILE_OK] > n / 10);
    assert_true(counts[JSONFILE_NEEDS_REPAIR] > n / 100);
    assert_true(counts[JSONFILE_CORRUPT] > n / 10);
    buf_free(&line);
    buf_free(&x.text);
}

#ifndef JSONFILE_BENCH
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_sample_line),
        cmocka_unit_test(test_log_without_newline_is_partial),
        cmocka_unit_test(test_only_the_final_newline_escape_is_stripped),
        cmocka_unit_test(test_keys_in_any_order_with_whitespace_and_extra_keys),
        cmocka_unit_test(test_stream_and_time_absent_unknown_or_invalid),
        cmocka_unit_test(test_later_duplicate_log_wins),
        cmocka_unit_test(test_damaged_log_needs_repair),
        cmocka_unit_test(test_corrupt_lines),
        cmocka_unit_test(test_nul_byte_between_tokens_is_corrupt),
        cmocka_unit_test(test_nesting_deeper_than_jansson_accepts_is_corrupt),
        cmocka_unit_test(test_generated_lines_match_jansson_and_construction),
        cmocka_unit_test(test_fuzzed_lines_never_contradict_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
/* Throughput of jsonfile_parse_line on lines shaped like SAMPLE, run by hand:
 *   gcc -O2 -DJSONFILE_BENCH ... tests/unit/test_jsonfile.c && ./a.out
 * Not a test: timings depend on the machine. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t lines = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000000;
    buf data = {0};
    size_t *offsets = xmalloc((lines + 1) * sizeof(size_t));
    for (size_t k = 0; k < lines; k++) {
        offsets[k] = data.len;
        buf_printf(&data,
                   "{\"log\":\"2024-11-24 09:20:%02zu.%03zu INFO [main] c.e.OrderService - "
                   "processed order %zu in %zums\\n\",\"stream\":\"stdout\",\"time\":"
                   "\"2024-11-24T09:20:%02zu.%03zu456789Z\"}",
                   k / 1000 % 60, k % 1000, 10000 + k % 90000, k % 97, k / 1000 % 60, k % 1000);
    }
    offsets[lines] = data.len;

    double best = 1e9;
    uint64_t sink = 0;
    for (int round = 0; round < 10; round++) {
        double t0 = now_s();
        for (size_t k = 0; k < lines; k++) {
            jsonfile_entry e;
            jsonfile_result r =
                jsonfile_parse_line(data.data + offsets[k], offsets[k + 1] - offsets[k], &e);
            sink += (uint64_t)r + e.utf8_len + (uint64_t)e.time_ms;
        }
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    printf("%zu lines, %.1f bytes/line: best %.3f s = %.0f MB/s, %.1f ns/line (sink %" PRIu64 ")\n",
           lines, (double)data.len / (double)lines, best, (double)data.len / best / 1e6,
           best * 1e9 / (double)lines, sink);
    free(offsets);
    buf_free(&data);
    return 0;
}
#endif
