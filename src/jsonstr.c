/* jsonstr.c: JSON string content on the per-line hot path. Runs of bytes that
 * need no attention are skipped a vector at a time; only quotes, backslashes,
 * control bytes and non-ASCII bytes take the slow, byte-wise route. */
#include "jsonstr.h"

#include <assert.h>

#if defined(__SSE2__) && !defined(JSONSTR_NO_SIMD)
#include <emmintrin.h>
#define JSONSTR_SSE2 1
#endif

/* Invalid UTF-8 is replaced byte by byte: each byte that does not start a
 * complete, valid sequence becomes one U+FFFD and decoding resumes at the next
 * byte. Scan, repair, escape and cut all follow this rule, so the length scan
 * predicts is the length repair produces. */
#define REPLACEMENT_UTF8 "\xef\xbf\xbd"
#define REPLACEMENT_LEN 3

/* Bytes a plain run cannot contain: '"', '\\', < 0x20, >= 0x80. */
static const unsigned char special[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x80 ... 0xff] = 1,
};

/* Index of the first special byte in s[i, len), or len. */
static inline size_t skip_plain(const unsigned char *s, size_t i, size_t len)
{
#ifdef JSONSTR_SSE2
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    /* A signed compare puts 0x80..0xff (negative) below 0x20 too. */
    const __m128i space = _mm_set1_epi8(0x20);
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#else
    /* Per 64-bit word: high bit of a byte set when the byte is >= 0x80, below
     * 0x20, or equal to '"' or '\\'. Borrows can only spill upwards from a
     * byte that really matched, so "any bit set" is exact; the byte loop
     * below finds which one. */
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t hit = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w;
        if (hit & highs)
            break;
        i += 8;
    }
#endif
    while (i < len && !special[s[i]])
        i++;
    return i;
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The code unit of "\uXXXX" starting at s[i] (the backslash), or -1 when
 * there is no complete \u escape there. */
static inline int32_t u_escape_at(const unsigned char *s, size_t i, size_t len)
{
    if (len - i < 6 || s[i] != '\\' || s[i + 1] != 'u')
        return -1;
    int a = hexval(s[i + 2]), b = hexval(s[i + 3]), c = hexval(s[i + 4]), d = hexval(s[i + 5]);
    if ((a | b | c | d) < 0)
        return -1;
    return (a << 12) | (b << 8) | (c << 4) | d;
}

static inline bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Length of the valid UTF-8 sequence at s (s[0] >= 0x80), or 0 when s[0]
 * does not start one: overlong forms, UTF-16 surrogates and code points above
 * U+10FFFF are invalid, as is a sequence cut short by `avail`. */
static inline size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return avail >= 2 && is_cont(s[1]) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        /* E0 needs A0.. to not be overlong; ED stops at 9F before the surrogates. */
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return avail >= 3 && s[1] >= lo && s[1] <= hi && is_cont(s[2]) ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        /* F0 needs 90.. to not be overlong; F4 stops at 8F to stay <= U+10FFFF. */
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return avail >= 4 && s[1] >= lo && s[1] <= hi && is_cont(s[2]) && is_cont(s[3]) ? 4 : 0;
    }
    return 0;
}

typedef enum escape_kind {
    ESC_SHORT,   /* \" \\ \/ \b \f \r \t */
    ESC_NEWLINE, /* \n */
    ESC_UNICODE, /* \uXXXX, not a surrogate */
    ESC_PAIR,    /* \uD8xx\uDCxx: one supplementary character */
    ESC_LONE,    /* a surrogate \u escape without its partner */
    ESC_BAD,     /* not a valid escape */
} escape_kind;

/* Classify the escape whose backslash is at s[i]; *esc_len gets its length in
 * escaped bytes and *u8 its unescaped UTF-8 length (3 for a lone surrogate:
 * the length of the U+FFFD that replaces it). */
static inline escape_kind escape_at(const unsigned char *s, size_t i, size_t len, size_t *esc_len,
                                    size_t *u8)
{
    if (len - i < 2)
        return ESC_BAD;
    switch (s[i + 1]) {
    case 'n':
        *esc_len = 2;
        *u8 = 1;
        return ESC_NEWLINE;
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'r':
    case 't':
        *esc_len = 2;
        *u8 = 1;
        return ESC_SHORT;
    case 'u':
        break;
    default:
        return ESC_BAD;
    }
    int32_t cp = u_escape_at(s, i, len);
    if (cp < 0)
        return ESC_BAD;
    *esc_len = 6;
    if (cp < 0x80) {
        *u8 = 1;
        return ESC_UNICODE;
    }
    if (cp < 0x800) {
        *u8 = 2;
        return ESC_UNICODE;
    }
    if (cp < 0xd800 || cp > 0xdfff) {
        *u8 = 3;
        return ESC_UNICODE;
    }
    *u8 = REPLACEMENT_LEN;
    if (cp >= 0xdc00)
        return ESC_LONE;
    int32_t lo = u_escape_at(s, i + 6, len);
    if (lo < 0xdc00 || lo > 0xdfff)
        return ESC_LONE;
    *esc_len = 12;
    *u8 = 4;
    return ESC_PAIR;
}

jsonstr_result jsonstr_scan(const char *p, size_t len, size_t *end, size_t *utf8_len,
                            bool *trailing_newline)
{
    assert(p || len == 0);
    assert(end && utf8_len && trailing_newline);

    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, n = 0;
    size_t newline_end = SIZE_MAX; /* index just after the last \n escape */
    bool repair = false;

    for (;;) {
        size_t j = skip_plain(s, i, len);
        n += j - i;
        i = j;
        if (unlikely(i >= len))
            return JSONSTR_CORRUPT;

        unsigned char c = s[i];
        if (c == '"')
            break;
        if (c == '\\') {
            size_t esc_len, u8;
            escape_kind kind = escape_at(s, i, len, &esc_len, &u8);
            if (unlikely(kind == ESC_BAD))
                return JSONSTR_CORRUPT;
            i += esc_len;
            n += u8;
            if (kind == ESC_NEWLINE)
                newline_end = i;
            else if (kind == ESC_LONE)
                repair = true;
            continue;
        }
        if (c < 0x20) {
            /* Repair escapes it as \u00XX: still one byte of text. */
            repair = true;
            n++;
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, len - i);
        if (likely(k)) {
            n += k;
            i += k;
        } else {
            repair = true;
            n += REPLACEMENT_LEN;
            i++;
        }
    }

    *end = i;
    *utf8_len = n;
    *trailing_newline = newline_end == i;
    return repair ? JSONSTR_NEEDS_REPAIR : JSONSTR_OK;
}

static const char hexdigits[] = "0123456789abcdef";

static inline void append_u00(buf *out, unsigned char c)
{
    char e[6] = {'\\', 'u', '0', '0', hexdigits[c >> 4], hexdigits[c & 0xf]};
    buf_append(out, e, sizeof(e));
}

size_t jsonstr_repair(buf *out, const char *esc, size_t len, size_t *utf8_len)
{
    assert(out && utf8_len);
    assert(esc || len == 0);

    const unsigned char *s = (const unsigned char *)esc;
    size_t i = 0, n = 0, replaced = 0;
    buf_reserve(out, len + 8);

    while (i < len) {
        size_t j = skip_plain(s, i, len);
        if (j > i) {
            buf_append(out, s + i, j - i);
            n += j - i;
            i = j;
            if (i >= len)
                break;
        }
        unsigned char c = s[i];
        if (c == '\\') {
            size_t esc_len, u8;
            switch (escape_at(s, i, len, &esc_len, &u8)) {
            case ESC_LONE:
                buf_append(out, "\\ufffd", 6);
                replaced++;
                break;
            case ESC_BAD:
                /* Outside the contract (scan calls this CORRUPT); keep the
                 * output valid by taking the backslash literally. */
                buf_append(out, "\\\\", 2);
                esc_len = 1;
                u8 = 1;
                break;
            default:
                buf_append(out, s + i, esc_len);
                break;
            }
            i += esc_len;
            n += u8;
        } else if (c == '"') {
            /* Also outside the contract: a bare quote cannot be in content. */
            buf_append(out, "\\\"", 2);
            n++;
            i++;
        } else if (c < 0x20) {
            append_u00(out, c);
            n++;
            i++;
        } else {
            size_t k = utf8_seq(s + i, len - i);
            if (k) {
                buf_append(out, s + i, k);
                n += k;
                i += k;
            } else {
                buf_append(out, REPLACEMENT_UTF8, REPLACEMENT_LEN);
                replaced++;
                n += REPLACEMENT_LEN;
                i++;
            }
        }
    }

    *utf8_len = n;
    return replaced;
}

size_t jsonstr_escape(buf *out, const char *raw, size_t len, size_t *utf8_len)
{
    assert(out && utf8_len);
    assert(raw || len == 0);

    const unsigned char *s = (const unsigned char *)raw;
    size_t i = 0, n = 0, replaced = 0;
    /* Most messages need no escapes at all; grow on demand otherwise. */
    buf_reserve(out, len + 8);

    while (i < len) {
        size_t j = skip_plain(s, i, len);
        if (j > i) {
            buf_append(out, s + i, j - i);
            n += j - i;
            i = j;
            if (i >= len)
                break;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, len - i);
            if (k) {
                buf_append(out, s + i, k);
                n += k;
                i += k;
            } else {
                buf_append(out, REPLACEMENT_UTF8, REPLACEMENT_LEN);
                replaced++;
                n += REPLACEMENT_LEN;
                i++;
            }
            continue;
        }
        char e[2] = {'\\', 0};
        switch (c) {
        case '"':
        case '\\':
            e[1] = (char)c;
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        default:
            break;
        }
        if (e[1])
            buf_append(out, e, 2);
        else
            append_u00(out, c);
        n++;
        i++;
    }

    *utf8_len = n;
    return replaced;
}

size_t jsonstr_cut(const char *esc, size_t len, size_t max_utf8, size_t *prefix_utf8)
{
    assert(prefix_utf8);
    assert(esc || len == 0);

    const unsigned char *s = (const unsigned char *)esc;
    size_t i = 0, n = 0;

    while (i < len) {
        size_t j = skip_plain(s, i, len);
        if (j - i >= max_utf8 - n) {
            /* Plain bytes are one character each: stop anywhere inside. */
            i += max_utf8 - n;
            n = max_utf8;
            break;
        }
        n += j - i;
        i = j;
        if (i >= len)
            break;

        size_t esc_len = 1, u8 = 1;
        unsigned char c = s[i];
        if (c == '\\') {
            if (escape_at(s, i, len, &esc_len, &u8) == ESC_BAD) {
                esc_len = 1;
                u8 = 1;
            }
        } else if (c >= 0x80) {
            esc_len = utf8_seq(s + i, len - i);
            u8 = esc_len;
            if (!esc_len) {
                /* Invalid byte: counted as the U+FFFD that repair makes of it. */
                esc_len = 1;
                u8 = REPLACEMENT_LEN;
            }
        }
        if (u8 > max_utf8 - n)
            break;
        i += esc_len;
        n += u8;
    }

    *prefix_utf8 = n;
    return i;
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (unsigned)(c >= '0' && c <= '9'   ? c - '0'
                                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                       : 0);
    }
    return v;
}

static void put_utf8(buf *out, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(out, u, n);
}

void jsonstr_unescape(buf *out, const char *esc, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (esc[i] != '\\' || i + 1 >= len) {
            buf_appendc(out, esc[i]);
            continue;
        }
        char c = esc[++i];
        switch (c) {
        case 'n': buf_appendc(out, '\n'); break;
        case 't': buf_appendc(out, '\t'); break;
        case 'r': buf_appendc(out, '\r'); break;
        case 'b': buf_appendc(out, '\b'); break;
        case 'f': buf_appendc(out, '\f'); break;
        case 'u': {
            if (i + 4 >= len) { /* truncated escape: nothing more to match */
                i = len;
                break;
            }
            unsigned cp = hex4(esc + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < len && esc[i + 1] == '\\' &&
                esc[i + 2] == 'u') {
                unsigned lo = hex4(esc + i + 3);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000)
                cp = 0xFFFD;
            put_utf8(out, cp);
            break;
        }
        default: buf_appendc(out, c); break; /* \" \\ \/ */
        }
    }
}
