/* test_jsonstr.c: scan, repair, escape and cut of JSON string content, checked
 * against tables, against content generated with a known decoding, and
 * against jansson as an independent JSON decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "jsonstr.h"
#include "util.h"

#include "testutil.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ---------------------------------------------------------- */


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

/* Decode escaped content with jansson by quoting it. Returns the bytes (free
 * them) with their length in *n, or NULL when jansson rejects the string. */
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

static void assert_decodes_to(const char *esc, size_t len, const char *text, size_t text_len)
{
    size_t n = 0;
    _cleanup_free_ char *d = jansson_decode(esc, len, &n);
    assert_non_null(d);
    assert_int_equal(n, text_len);
    if (n)
        assert_memory_equal(d, text, n);
}

/* Reference replacement of invalid UTF-8, written as decode-then-check (not
 * the lead-byte ranges the module uses): each byte that does not begin a
 * complete, shortest-form, non-surrogate sequence <= U+10FFFF becomes U+FFFD. */
static size_t reference_replace(const unsigned char *s, size_t len, buf *out)
{
    size_t replaced = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) {
            buf_appendc(out, (char)c);
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            need = 0, cp = 0, min = 1;
        }
        bool ok = need > 0 && i + need < len;
        for (size_t k = 1; ok && k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                ok = false;
            else
                cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
            ok = false;
        if (ok) {
            buf_append(out, s + i, need + 1);
            i += need + 1;
        } else {
            buf_append(out, "\xef\xbf\xbd", 3);
            replaced++;
            i++;
        }
    }
    return replaced;
}

/* ---- generated content with a known decoding -------------------------- */

/* Escaped content built unit by unit, with what it decodes to (after
 * repair, for damaged units) and the character boundaries. */
typedef struct gen {
    buf esc;
    buf text;
    size_t replacements;
    bool damaged;
    bool ends_with_newline_escape;
    size_t nb;
    size_t bounds[4096]; /* escaped offset after each character (bounds[0] = 0) */
    size_t u8[4096];     /* decoded length at that boundary */
} gen;

static void gen_reset(gen *g)
{
    buf_free(&g->esc);
    buf_free(&g->text);
    g->replacements = 0;
    g->damaged = false;
    g->ends_with_newline_escape = false;
    g->nb = 1;
    g->bounds[0] = 0;
    g->u8[0] = 0;
}

static void gen_char(gen *g, const void *esc, size_t esc_len, const void *text, size_t text_len)
{
    buf_append(&g->esc, esc, esc_len);
    buf_append(&g->text, text, text_len);
    if (g->nb < ARRAY_SIZE(g->bounds)) {
        g->bounds[g->nb] = g->esc.len;
        g->u8[g->nb] = g->text.len;
        g->nb++;
    }
    g->ends_with_newline_escape = esc_len == 2 && memcmp(esc, "\\n", 2) == 0;
}

static void gen_u_escape(char *out, uint32_t unit)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    const char *h = rnd_below(2) ? lower : upper;
    out[0] = '\\';
    out[1] = 'u';
    out[2] = h[unit >> 12 & 0xf];
    out[3] = h[unit >> 8 & 0xf];
    out[4] = h[unit >> 4 & 0xf];
    out[5] = h[unit & 0xf];
}

static uint32_t rnd_cp(void)
{
    for (;;) {
        uint32_t cp;
        switch (rnd_below(4)) {
        case 0:
            cp = 0x80 + rnd_below(0x800 - 0x80);
            break;
        case 1:
            cp = 0x800 + rnd_below(0x10000 - 0x800);
            break;
        case 2:
            cp = 0x10000 + rnd_below(0x110000 - 0x10000);
            break;
        default: {
            /* edges of each range */
            static const uint32_t edges[] = {0x80,   0x7ff,  0x800,   0xd7ff,   0xe000,
                                             0xfffd, 0xffff, 0x10000, 0x10ffff, 0xfeff};
            cp = edges[rnd_below(ARRAY_SIZE(edges))];
        }
        }
        if (cp < 0xd800 || cp > 0xdfff)
            return cp;
    }
}

/* One valid character (or a run of plain ASCII). */
static void gen_valid_unit(gen *g)
{
    char e[16], t[8];
    switch (rnd_below(10)) {
    case 0:
    case 1:
    case 2: { /* plain ASCII run: a character boundary after every byte */
        size_t n = 1 + rnd_below(40);
        for (size_t k = 0; k < n; k++) {
            char c;
            do
                c = (char)(0x20 + rnd_below(0x5f));
            while (c == '"' || c == '\\');
            gen_char(g, &c, 1, &c, 1);
        }
        break;
    }
    case 3: { /* short escapes */
        static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
        size_t k = rnd_below(8);
        e[0] = '\\';
        e[1] = esc[k];
        gen_char(g, e, 2, &val[k], 1);
        break;
    }
    case 4: { /* \u00XX for a control byte, NUL included */
        uint32_t c = rnd_below(0x20);
        gen_u_escape(e, c);
        t[0] = (char)c;
        gen_char(g, e, 6, t, 1);
        break;
    }
    case 5: { /* \uXXXX for a BMP character */
        uint32_t cp = rnd_cp();
        if (cp >= 0x10000)
            cp = 0xe9;
        gen_u_escape(e, cp);
        gen_char(g, e, 6, t, put_utf8(t, cp));
        break;
    }
    case 6:
    case 7: { /* raw UTF-8 */
        uint32_t cp = rnd_cp();
        size_t n = put_utf8(t, cp);
        gen_char(g, t, n, t, n);
        break;
    }
    case 8: { /* surrogate pair */
        uint32_t cp = 0x10000 + rnd_below(0x100000);
        uint32_t v = cp - 0x10000;
        gen_u_escape(e, 0xd800 + (v >> 10));
        gen_u_escape(e + 6, 0xdc00 + (v & 0x3ff));
        gen_char(g, e, 12, t, put_utf8(t, cp));
        break;
    }
    default: { /* DEL and the ASCII extremes, raw */
        static const char odd[] = {0x7f, 0x20, 0x7e};
        char c = odd[rnd_below(3)];
        gen_char(g, &c, 1, &c, 1);
        break;
    }
    }
}

/* One unit that needs repair. Each is followed by an 'x' so that it cannot
 * combine with the next unit into something valid. */
static void gen_damaged_unit(gen *g)
{
    g->damaged = true;
    switch (rnd_below(3)) {
    case 0: { /* raw control byte: repair escapes it, the text keeps it */
        char c = (char)rnd_below(0x20);
        buf_appendc(&g->esc, c);
        buf_appendc(&g->text, c);
        break;
    }
    case 1: { /* invalid UTF-8: every byte of these is invalid on its own */
        static const struct {
            const char *s;
            size_t n;
        } bad[] = {
            {S("\x80")},
            {S("\xbf")},
            {S("\xc0\xaf")},
            {S("\xc1\xbf")},
            {S("\xc2")},
            {S("\xe2\x82")},
            {S("\xe0\x80\xaf")},
            {S("\xe0\x9f\xbf")},
            {S("\xed\xa0\x80")},
            {S("\xed\xbf\xbf")},
            {S("\xf0\x8f\xbf\xbf")},
            {S("\xf0\x9f\x98")},
            {S("\xf4\x90\x80\x80")},
            {S("\xf5\x80\x80\x80")},
            {S("\xf8\x88\x80\x80\x80")},
            {S("\xfe")},
            {S("\xff")},
        };
        size_t k = rnd_below(ARRAY_SIZE(bad));
        buf_append(&g->esc, bad[k].s, bad[k].n);
        for (size_t j = 0; j < bad[k].n; j++)
            buf_append(&g->text, "\xef\xbf\xbd", 3);
        g->replacements += bad[k].n;
        break;
    }
    default: { /* lone surrogate escape */
        char e[6];
        gen_u_escape(e, (rnd_below(2) ? 0xd800 : 0xdc00) + rnd_below(0x400));
        buf_append(&g->esc, e, 6);
        buf_append(&g->text, "\xef\xbf\xbd", 3);
        g->replacements++;
        break;
    }
    }
    buf_appendc(&g->esc, 'x');
    buf_appendc(&g->text, 'x');
    g->ends_with_newline_escape = false;
}

static void gen_content(gen *g, size_t units, bool damage)
{
    gen_reset(g);
    for (size_t k = 0; k < units; k++) {
        if (damage && rnd_below(6) == 0)
            gen_damaged_unit(g);
        else
            gen_valid_unit(g);
    }
    if (rnd_below(2))
        gen_char(g, "\\n", 2, "\n", 1);
}

static int gen_setup(void **state)
{
    *state = xcalloc(1, sizeof(gen));
    return 0;
}

static int gen_teardown(void **state)
{
    gen *g = *state;
    buf_free(&g->esc);
    buf_free(&g->text);
    free(g);
    return 0;
}

/* ---- scan ------------------------------------------------------------- */

typedef struct scan_case {
    const char *in; /* content, closing quote and something after it */
    size_t len;
    jsonstr_result result;
    size_t end, utf8;
    bool newline;
} scan_case;

static void check_scan_cases(const scan_case *cases, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t end = 777, u8 = 777;
        bool nl = true;
        jsonstr_result r = jsonstr_scan(cases[k].in, cases[k].len, &end, &u8, &nl);
        if (r != cases[k].result)
            fail_msg("case %zu: result %d, want %d", k, r, cases[k].result);
        if (r == JSONSTR_CORRUPT)
            continue;
        if (end != cases[k].end || u8 != cases[k].utf8 || nl != cases[k].newline)
            fail_msg("case %zu: end %zu utf8 %zu newline %d, want %zu %zu %d", k, end, u8, nl,
                     cases[k].end, cases[k].utf8, cases[k].newline);
    }
}

static void test_scan_plain_ascii_stops_at_closing_quote(void **state)
{
    char line[200];
    for (size_t n = 0; n < 100; n++) {
        memset(line, 'a', n);
        memcpy(line + n, "\",\"stream\":\"stdout\"}", 20);
        size_t end, u8;
        bool nl;
        assert_int_equal(jsonstr_scan(line, n + 20, &end, &u8, &nl), JSONSTR_OK);
        assert_int_equal(end, n);
        assert_int_equal(u8, n);
        assert_false(nl);
        /* The same content with nothing after the quote (no look-ahead). */
        assert_int_equal(jsonstr_scan(line, n + 1, &end, &u8, &nl), JSONSTR_OK);
        assert_int_equal(end, n);
    }
}

/* Each kind of special byte at every offset across two vector widths, in
 * buffers that end right after the quote: the vector loop, the tail loop and
 * their hand-over must all see it. */
static void test_scan_finds_special_bytes_at_every_offset(void **state)
{
    static const struct {
        const char *s;
        size_t n, u8;
        jsonstr_result r;
    } specials[] = {
        {S("\\n"), 1, JSONSTR_OK},
        {S("\\\""), 1, JSONSTR_OK},
        {S("\\u20ac"), 3, JSONSTR_OK},
        {S("\xc3\xa9"), 2, JSONSTR_OK},
        {S("\x7f"), 1, JSONSTR_OK},
        {S("\x01"), 1, JSONSTR_NEEDS_REPAIR},
        {S("\x1f"), 1, JSONSTR_NEEDS_REPAIR},
        {S("\xff"), 3, JSONSTR_NEEDS_REPAIR},
        {S("\x80"), 3, JSONSTR_NEEDS_REPAIR},
    };
    for (size_t k = 0; k < ARRAY_SIZE(specials); k++)
        for (size_t pos = 0; pos < 40; pos++)
            for (size_t after = 0; after < 20; after += 7) {
                char line[128];
                size_t len = 0;
                memset(line, 'b', pos);
                len = pos;
                memcpy(line + len, specials[k].s, specials[k].n);
                len += specials[k].n;
                memset(line + len, 'c', after);
                len += after;
                line[len++] = '"';
                size_t end, u8;
                bool nl;
                jsonstr_result r = jsonstr_scan(line, len, &end, &u8, &nl);
                assert_int_equal(r, specials[k].r);
                assert_int_equal(end, len - 1);
                assert_int_equal(u8, pos + specials[k].u8 + after);
                assert_int_equal(nl, after == 0 && k == 0);
            }
}

static void test_scan_quote_found_at_every_offset_behind_plain_bytes(void **state)
{
    /* A quote at each offset with plain bytes after it: the scan must stop
     * at the first quote, not at a later special byte. */
    for (size_t pos = 0; pos < 40; pos++) {
        char line[80];
        memset(line, 'q', sizeof(line));
        line[pos] = '"';
        line[60] = '\\';
        size_t end, u8;
        bool nl;
        assert_int_equal(jsonstr_scan(line, sizeof(line), &end, &u8, &nl), JSONSTR_OK);
        assert_int_equal(end, pos);
        assert_int_equal(u8, pos);
    }
}

static void test_scan_trailing_newline_only_for_final_backslash_n(void **state)
{
    static const scan_case cases[] = {
        {S("abc\\n\""), JSONSTR_OK, 5, 4, true},
        {S("\\n\""), JSONSTR_OK, 2, 1, true},
        {S("\\n\\n\""), JSONSTR_OK, 4, 2, true},
        {S("abc\\\\n\""), JSONSTR_OK, 6, 5, false}, /* escaped backslash, then n */
        {S("abc\\\\\\n\""), JSONSTR_OK, 7, 5, true},
        {S("abc\\n \""), JSONSTR_OK, 6, 5, false},
        {S("abc\\n\\t\""), JSONSTR_OK, 7, 5, false},
        {S("abc\\u000a\""), JSONSTR_OK, 9, 4, false}, /* same text, other spelling */
        {S("abc\\r\\n\""), JSONSTR_OK, 7, 5, true},
        {S("abc\\nx\\u00e9\""), JSONSTR_OK, 12, 7, false},
        {S("\""), JSONSTR_OK, 0, 0, false},
    };
    check_scan_cases(cases, ARRAY_SIZE(cases));
}

static void test_scan_rejects_bad_escapes_and_missing_quote(void **state)
{
    static const scan_case cases[] = {
        {S("abc"), JSONSTR_CORRUPT, 0, 0, false},
        {S(""), JSONSTR_CORRUPT, 0, 0, false},
        {S("abc\\"), JSONSTR_CORRUPT, 0, 0, false},
        {S("abc\\\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\x41\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\a\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\U0041\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\u\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\u12\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\u123\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\u12G4\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\u 123\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\u123"), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\uD83D\\u12\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\uD83D\\x\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("ok\\\x00\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\\\xc3\xa9\""), JSONSTR_CORRUPT, 0, 0, false},
        {S("\xc3\xa9\\"), JSONSTR_CORRUPT, 0, 0, false},
    };
    check_scan_cases(cases, ARRAY_SIZE(cases));
}

static void test_scan_accepts_utf8_at_range_boundaries(void **state)
{
    static const scan_case cases[] = {
        {S("\xc2\x80\""), JSONSTR_OK, 2, 2, false},         /* U+0080 */
        {S("\xdf\xbf\""), JSONSTR_OK, 2, 2, false},         /* U+07FF */
        {S("\xe0\xa0\x80\""), JSONSTR_OK, 3, 3, false},     /* U+0800 */
        {S("\xed\x9f\xbf\""), JSONSTR_OK, 3, 3, false},     /* U+D7FF */
        {S("\xee\x80\x80\""), JSONSTR_OK, 3, 3, false},     /* U+E000 */
        {S("\xef\xbf\xbf\""), JSONSTR_OK, 3, 3, false},     /* U+FFFF */
        {S("\xf0\x90\x80\x80\""), JSONSTR_OK, 4, 4, false}, /* U+10000 */
        {S("\xf4\x8f\xbf\xbf\""), JSONSTR_OK, 4, 4, false}, /* U+10FFFF */
        {S("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\""), JSONSTR_OK, 15, 15, false},
    };
    check_scan_cases(cases, ARRAY_SIZE(cases));
}

static void test_scan_flags_invalid_utf8_and_counts_replacements(void **state)
{
    /* One U+FFFD (3 bytes) per invalid byte. */
    static const scan_case cases[] = {
        {S("\xc0\x80\""), JSONSTR_NEEDS_REPAIR, 2, 6, false},          /* overlong NUL */
        {S("\xc1\xbf\""), JSONSTR_NEEDS_REPAIR, 2, 6, false},          /* overlong */
        {S("\xe0\x9f\xbf\""), JSONSTR_NEEDS_REPAIR, 3, 9, false},      /* overlong 3-byte */
        {S("\xf0\x8f\xbf\xbf\""), JSONSTR_NEEDS_REPAIR, 4, 12, false}, /* overlong 4-byte */
        {S("\xed\xa0\x80\""), JSONSTR_NEEDS_REPAIR, 3, 9, false},      /* U+D800 as UTF-8 */
        {S("\xed\xbf\xbf\""), JSONSTR_NEEDS_REPAIR, 3, 9, false},      /* U+DFFF as UTF-8 */
        {S("\xf4\x90\x80\x80\""), JSONSTR_NEEDS_REPAIR, 4, 12, false}, /* U+110000 */
        {S("\xf5\x80\x80\x80\""), JSONSTR_NEEDS_REPAIR, 4, 12, false},
        {S("\xff\""), JSONSTR_NEEDS_REPAIR, 1, 3, false},
        {S("a\x80z\""), JSONSTR_NEEDS_REPAIR, 3, 5, false},   /* stray continuation */
        {S("\xe2\x82\""), JSONSTR_NEEDS_REPAIR, 2, 6, false}, /* cut short by the quote */
        {S("\xe2\x82x\xe2\x82\xac\""), JSONSTR_NEEDS_REPAIR, 6, 10, false},
        {S("\xf0\x9f\x98"), JSONSTR_CORRUPT, 0, 0, false}, /* no quote at all */
    };
    check_scan_cases(cases, ARRAY_SIZE(cases));
}

static void test_scan_counts_unicode_escapes_and_surrogates(void **state)
{
    static const scan_case cases[] = {
        {S("\\u0041\""), JSONSTR_OK, 6, 1, false},
        {S("\\u0000\""), JSONSTR_OK, 6, 1, false},
        {S("\\u007f\""), JSONSTR_OK, 6, 1, false},
        {S("\\u0080\""), JSONSTR_OK, 6, 2, false},
        {S("\\u07FF\""), JSONSTR_OK, 6, 2, false},
        {S("\\u0800\""), JSONSTR_OK, 6, 3, false},
        {S("\\uFFFF\""), JSONSTR_OK, 6, 3, false},
        {S("\\ud7ff\\ue000\""), JSONSTR_OK, 12, 6, false},
        {S("\\uD83D\\uDE00\""), JSONSTR_OK, 12, 4, false},
        {S("\\udbff\\udfff\""), JSONSTR_OK, 12, 4, false},
        {S("\\uD800\""), JSONSTR_NEEDS_REPAIR, 6, 3, false},
        {S("\\uDC00\""), JSONSTR_NEEDS_REPAIR, 6, 3, false},
        {S("\\uDE00\\uD83D\""), JSONSTR_NEEDS_REPAIR, 12, 6, false}, /* reversed pair */
        {S("\\uD83D\\u0041\""), JSONSTR_NEEDS_REPAIR, 12, 4, false},
        {S("\\uD83Dx\""), JSONSTR_NEEDS_REPAIR, 7, 4, false},
        {S("\\uD83D\\uD83D\\uDE00\""), JSONSTR_NEEDS_REPAIR, 18, 7, false},
        {S("\\uD83D\\n\""), JSONSTR_NEEDS_REPAIR, 8, 4, true},
    };
    check_scan_cases(cases, ARRAY_SIZE(cases));
}

static void test_scan_flags_raw_control_bytes(void **state)
{
    for (unsigned c = 0; c < 0x20; c++) {
        char line[] = {'a', (char)c, 'b', '"'};
        size_t end, u8;
        bool nl;
        assert_int_equal(jsonstr_scan(line, sizeof(line), &end, &u8, &nl), JSONSTR_NEEDS_REPAIR);
        assert_int_equal(end, 3);
        assert_int_equal(u8, 3);
    }
}

static void test_scan_generated_valid_content_matches_jansson(void **state)
{
    gen *g = *state;
    seed(1);
    for (int it = 0; it < 20000; it++) {
        gen_content(g, rnd_below(30), false);
        buf line = {0};
        buf_append(&line, g->esc.data, g->esc.len);
        buf_append(&line, "\",\"x\":1}", 8);
        size_t end, u8;
        bool nl;
        assert_int_equal(jsonstr_scan(line.data, line.len, &end, &u8, &nl), JSONSTR_OK);
        assert_int_equal(end, g->esc.len);
        assert_int_equal(u8, g->text.len);
        assert_int_equal(nl, g->ends_with_newline_escape);
        assert_decodes_to(g->esc.data, g->esc.len, g->text.data, g->text.len);
        buf_free(&line);
    }
}

/* ---- repair ----------------------------------------------------------- */

static void test_repair_of_damaged_content_gives_predicted_text(void **state)
{
    gen *g = *state;
    seed(2);
    for (int it = 0; it < 20000; it++) {
        gen_content(g, 1 + rnd_below(25), true);
        buf_appendc(&g->esc, '"');
        size_t end, u8;
        bool nl;
        jsonstr_result r = jsonstr_scan(g->esc.data, g->esc.len, &end, &u8, &nl);
        g->esc.len--;
        assert_int_equal(r, g->damaged ? JSONSTR_NEEDS_REPAIR : JSONSTR_OK);
        assert_int_equal(end, g->esc.len);
        assert_int_equal(u8, g->text.len);

        buf out = {0};
        buf_append(&out, "keep", 4); /* repair appends */
        size_t ru8;
        size_t replaced = jsonstr_repair(&out, g->esc.data, g->esc.len, &ru8);
        assert_memory_equal(out.data, "keep", 4);
        assert_int_equal(replaced, g->replacements);
        assert_int_equal(ru8, g->text.len);
        assert_decodes_to(out.data + 4, out.len - 4, g->text.data, g->text.len);

        /* The repaired copy is clean. */
        buf_appendc(&out, '"');
        assert_int_equal(jsonstr_scan(out.data + 4, out.len - 4, &end, &u8, &nl), JSONSTR_OK);
        assert_int_equal(u8, g->text.len);
        buf_free(&out);
    }
}

static void test_repair_leaves_valid_content_byte_identical(void **state)
{
    gen *g = *state;
    seed(3);
    for (int it = 0; it < 5000; it++) {
        gen_content(g, rnd_below(30), false);
        buf out = {0};
        size_t u8;
        assert_int_equal(jsonstr_repair(&out, g->esc.data, g->esc.len, &u8), 0);
        assert_int_equal(out.len, g->esc.len);
        if (out.len)
            assert_memory_equal(out.data, g->esc.data, out.len);
        assert_int_equal(u8, g->text.len);
        buf_free(&out);
    }
}

static void test_repair_exact_output_for_each_kind_of_damage(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
        size_t replaced, u8;
    } cases[] = {
        {S("a\tb"), "a\\u0009b", 0, 3},
        {S("\x00\x1f"), "\\u0000\\u001f", 0, 2},
        {S("\xff"), "\xef\xbf\xbd", 1, 3},
        {S("\xe2\x82x"), "\xef\xbf\xbd\xef\xbf\xbdx", 2, 7},
        {S("\\uD800z"), "\\ufffdz", 1, 4},
        {S("\\uD83D\\uDE00"), "\\uD83D\\uDE00", 0, 4},
        {S("\\uDE00\\uD83D"), "\\ufffd\\ufffd", 2, 6},
        {S("\\uD83D\\uD83D\\uDE00"), "\\ufffd\\uD83D\\uDE00", 1, 7},
    };
    for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
        buf out = {0};
        size_t u8;
        assert_int_equal(jsonstr_repair(&out, cases[k].in, cases[k].len, &u8), cases[k].replaced);
        assert_int_equal(out.len, strlen(cases[k].out));
        assert_memory_equal(out.data, cases[k].out, out.len);
        assert_int_equal(u8, cases[k].u8);
        buf_free(&out);
    }
}

/* Outside its contract (bare quotes, bad escapes), repair still yields
 * content that a JSON parser accepts, with the length it reports. */
static void test_repair_of_arbitrary_bytes_is_valid_json(void **state)
{
    seed(4);
    static const char pool[] = "\"\\u/nD8dcfe0A";
    for (int it = 0; it < 20000; it++) {
        unsigned char raw[64];
        size_t len = rnd_below(sizeof(raw));
        for (size_t k = 0; k < len; k++)
            raw[k] = rnd_below(3) ? (unsigned char)pool[rnd_below(sizeof(pool) - 1)]
                                  : (unsigned char)rnd();
        buf out = {0};
        size_t u8, n;
        jsonstr_repair(&out, (const char *)raw, len, &u8);
        _cleanup_free_ char *d = jansson_decode(out.data, out.len, &n);
        assert_non_null(d);
        assert_int_equal(n, u8);
        buf_free(&out);
    }
}

/* ---- escape ----------------------------------------------------------- */

static void test_escape_writes_short_and_u00_escapes(void **state)
{
    buf out = {0};
    size_t u8;
    const char in[] = "q\"b\\n\nt\tr\rb\bf\f\x01\x1f\x7f/\x00z";
    assert_int_equal(jsonstr_escape(&out, in, sizeof(in) - 1, &u8), 0);
    static const char want[] = "q\\\"b\\\\n\\nt\\tr\\rb\\bf\\f\\u0001\\u001f\x7f/\\u0000z";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    assert_int_equal(u8, sizeof(in) - 1);
    buf_free(&out);
}

static void test_escape_copies_valid_utf8_and_replaces_invalid(void **state)
{
    buf out = {0};
    size_t u8;
    const char ok[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    assert_int_equal(jsonstr_escape(&out, ok, sizeof(ok) - 1, &u8), 0);
    assert_int_equal(out.len, sizeof(ok) - 1);
    assert_memory_equal(out.data, ok, out.len);
    assert_int_equal(u8, sizeof(ok) - 1);

    out.len = 0;
    const char bad[] = "a\xc0\xafz\xed\xa0\x80";
    assert_int_equal(jsonstr_escape(&out, bad, sizeof(bad) - 1, &u8), 5);
    const char want[] = "a\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    assert_int_equal(u8, sizeof(want) - 1);
    buf_free(&out);
}

static void test_escape_round_trips_random_bytes_through_jansson(void **state)
{
    seed(5);
    for (int it = 0; it < 50000; it++) {
        unsigned char raw[96];
        size_t len = rnd_below(sizeof(raw));
        for (size_t k = 0; k < len;) {
            switch (rnd_below(5)) {
            case 0: /* any byte */
                raw[k++] = (unsigned char)rnd();
                break;
            case 1: /* control or specials */
                raw[k++] = (unsigned char)"\"\\\n\t\r\b\f\x01\x00\x1f\x7f"[rnd_below(11)];
                break;
            case 2: { /* valid UTF-8, sometimes cut short by the buffer */
                char t[4];
                size_t n = put_utf8(t, rnd_cp());
                for (size_t j = 0; j < n && k < len; j++)
                    raw[k++] = (unsigned char)t[j];
                break;
            }
            default: { /* plain run */
                size_t n = rnd_below(24);
                for (size_t j = 0; j < n && k < len; j++)
                    raw[k++] = (unsigned char)('a' + rnd_below(26));
            }
            }
        }
        buf out = {0}, want = {0};
        size_t u8, n;
        size_t replaced = jsonstr_escape(&out, (const char *)raw, len, &u8);
        size_t want_replaced = reference_replace(raw, len, &want);
        assert_int_equal(replaced, want_replaced);
        assert_int_equal(u8, want.len);
        _cleanup_free_ char *d = jansson_decode(out.data, out.len, &n);
        assert_non_null(d);
        assert_int_equal(n, want.len);
        if (n)
            assert_memory_equal(d, want.data, n);
        /* And our own scan agrees the escaped form is clean. */
        buf_appendc(&out, '"');
        size_t end, su8;
        bool nl;
        assert_int_equal(jsonstr_scan(out.data, out.len, &end, &su8, &nl), JSONSTR_OK);
        assert_int_equal(su8, want.len);
        buf_free(&out);
        buf_free(&want);
    }
}

static void test_escape_appends_to_existing_buffer_and_handles_empty(void **state)
{
    buf out = {0};
    buf_append(&out, "{\"message\":\"", 12);
    size_t u8 = 99;
    assert_int_equal(jsonstr_escape(&out, "", 0, &u8), 0);
    assert_int_equal(u8, 0);
    assert_int_equal(out.len, 12);
    /* A long plain message goes through the vector path in one piece. */
    char big[5000];
    memset(big, 'm', sizeof(big));
    big[4321] = '"';
    jsonstr_escape(&out, big, sizeof(big), &u8);
    assert_int_equal(u8, sizeof(big));
    assert_int_equal(out.len, 12 + sizeof(big) + 1);
    assert_memory_equal(out.data, "{\"message\":\"mmm", 15);
    assert_memory_equal(out.data + 12 + 4321, "\\\"m", 3);
    buf_free(&out);
}

/* ---- cut -------------------------------------------------------------- */

static void test_cut_is_maximal_prefix_on_character_boundary(void **state)
{
    gen *g = *state;
    seed(6);
    for (int it = 0; it < 20000; it++) {
        gen_content(g, rnd_below(40), false);
        size_t total = g->text.len;
        size_t limit = rnd_below(4) == 0 ? rnd_below(8) : rnd_below((uint32_t)total + 5);

        size_t want_k = 0;
        while (want_k + 1 < g->nb && g->u8[want_k + 1] <= limit)
            want_k++;

        size_t pu8 = 12345;
        size_t cut = jsonstr_cut(g->esc.data, g->esc.len, limit, &pu8);
        assert_int_equal(cut, g->bounds[want_k]);
        assert_int_equal(pu8, g->u8[want_k]);
        assert_true(pu8 <= limit);

        /* Independently: the prefix is a valid string of that length. */
        assert_decodes_to(g->esc.data, cut, g->text.data, pu8);
    }
}

static void test_cut_never_splits_escape_sequence_or_pair(void **state)
{
    static const struct {
        const char *in;
        size_t len, limit, cut, u8;
    } cases[] = {
        {S("\\u00e9x"), 1, 0, 0},
        {S("\\u00e9x"), 2, 6, 2},
        {S("\\u00e9x"), 3, 7, 3},
        {S("\\uD83D\\uDE00"), 3, 0, 0},
        {S("\\uD83D\\uDE00"), 4, 12, 4},
        {S("a\xc3\xa9"), 2, 1, 1},
        {S("a\xe2\x82\xac"), 3, 1, 1},
        {S("a\xe2\x82\xac"), 4, 4, 4},
        {S("a\xf0\x9f\x98\x80"), 4, 1, 1},
        {S("ab\\ncd"), 2, 2, 2},
        {S("ab\\ncd"), 3, 4, 3},
        {S("ab\\\\"), 2, 2, 2},
        {S("abcdef"), 0, 0, 0},
        {S("abcdef"), 100, 6, 6},
        {S(""), 10, 0, 0},
    };
    for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
        size_t u8;
        assert_int_equal(jsonstr_cut(cases[k].in, cases[k].len, cases[k].limit, &u8), cases[k].cut);
        assert_int_equal(u8, cases[k].u8);
    }
}

static void test_cut_long_plain_run_stops_exactly_at_limit(void **state)
{
    static char big[300000];
    memset(big, 'z', sizeof(big));
    memcpy(big + 1000, "\\u20ac", 6);
    size_t u8;
    for (size_t limit = 990; limit < 1010; limit++) {
        size_t cut = jsonstr_cut(big, sizeof(big), limit, &u8);
        if (limit < 1000) {
            assert_int_equal(cut, limit);
        } else if (limit < 1003) {
            assert_int_equal(cut, 1000);
            assert_int_equal(u8, 1000);
        } else {
            assert_int_equal(cut, limit + 3);
            assert_int_equal(u8, limit);
        }
    }
    assert_int_equal(jsonstr_cut(big, sizeof(big), 262118, &u8), 262118 + 3);
    assert_int_equal(u8, 262118);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_plain_ascii_stops_at_closing_quote),
        cmocka_unit_test(test_scan_finds_special_bytes_at_every_offset),
        cmocka_unit_test(test_scan_quote_found_at_every_offset_behind_plain_bytes),
        cmocka_unit_test(test_scan_trailing_newline_only_for_final_backslash_n),
        cmocka_unit_test(test_scan_rejects_bad_escapes_and_missing_quote),
        cmocka_unit_test(test_scan_accepts_utf8_at_range_boundaries),
        cmocka_unit_test(test_scan_flags_invalid_utf8_and_counts_replacements),
        cmocka_unit_test(test_scan_counts_unicode_escapes_and_surrogates),
        cmocka_unit_test(test_scan_flags_raw_control_bytes),
        cmocka_unit_test_setup_teardown(test_scan_generated_valid_content_matches_jansson,
                                        gen_setup, gen_teardown),
        cmocka_unit_test_setup_teardown(test_repair_of_damaged_content_gives_predicted_text,
                                        gen_setup, gen_teardown),
        cmocka_unit_test_setup_teardown(test_repair_leaves_valid_content_byte_identical, gen_setup,
                                        gen_teardown),
        cmocka_unit_test(test_repair_exact_output_for_each_kind_of_damage),
        cmocka_unit_test(test_repair_of_arbitrary_bytes_is_valid_json),
        cmocka_unit_test(test_escape_writes_short_and_u00_escapes),
        cmocka_unit_test(test_escape_copies_valid_utf8_and_replaces_invalid),
        cmocka_unit_test(test_escape_round_trips_random_bytes_through_jansson),
        cmocka_unit_test(test_escape_appends_to_existing_buffer_and_handles_empty),
        cmocka_unit_test_setup_teardown(test_cut_is_maximal_prefix_on_character_boundary, gen_setup,
                                        gen_teardown),
        cmocka_unit_test(test_cut_never_splits_escape_sequence_or_pair),
        cmocka_unit_test(test_cut_long_plain_run_stops_exactly_at_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
