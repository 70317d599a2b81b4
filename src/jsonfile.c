/* jsonfile.c: one Docker json-file line to its "log", "stream" and "time",
 * by a single pass over the bytes: no DOM, no allocation, no unescaping of
 * the message, which stays escaped for the request body. */
#include "jsonfile.h"

#include <assert.h>

#include "jsonstr.h"
#include "timeparse.h"

#define BAD SIZE_MAX

/* Deeper than jansson's 2048 levels, so nesting alone never makes us reject
 * a line that a conforming parser accepts. */
#define MAX_DEPTH 4096

typedef enum key {
    KEY_OTHER,
    KEY_LOG,
    KEY_STREAM,
    KEY_TIME,
} key;

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline size_t skip_ws(const unsigned char *s, size_t i, size_t len)
{
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

/* From just after an opening quote, the index of the closing quote, or BAD.
 * Escapes are stepped over but not validated: these are values we do not
 * ship, and their content cannot make a line unusable. */
static inline size_t skip_string(const unsigned char *s, size_t i, size_t len, bool *escaped)
{
    /* Common case, no escapes: two vectorised searches beat a byte loop. */
    const unsigned char *q = memchr(s + i, '"', len - i);
    if (!q)
        return BAD;
    if (!memchr(s + i, '\\', (size_t)(q - (s + i))))
        return (size_t)(q - s);

    while (i < len) {
        unsigned char c = s[i];
        if (c == '"')
            return i;
        if (c == '\\') {
            *escaped = true;
            i += 2;
        } else {
            i++;
        }
    }
    return BAD;
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

/* Unescape a short string (a key, a stream or time value written with
 * escapes) into out[cap]. Every name and value we look for is ASCII, so an
 * escape of anything else, like a string that does not fit, returns -1:
 * "matches nothing we know". */
static ssize_t unescape_small(const unsigned char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; o++) {
        if (o >= cap)
            return -1;
        if (s[i] != '\\') {
            out[o] = (char)s[i++];
            continue;
        }
        if (len - i < 2)
            return -1;
        unsigned char e = s[i + 1];
        i += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            out[o] = (char)e;
            break;
        case 'b':
            out[o] = '\b';
            break;
        case 'f':
            out[o] = '\f';
            break;
        case 'n':
            out[o] = '\n';
            break;
        case 'r':
            out[o] = '\r';
            break;
        case 't':
            out[o] = '\t';
            break;
        case 'u': {
            if (len - i < 4 || hexval(s[i]) != 0 || hexval(s[i + 1]) != 0)
                return -1;
            int hi = hexval(s[i + 2]), lo = hexval(s[i + 3]);
            if (hi < 0 || hi > 7 || lo < 0)
                return -1;
            out[o] = (char)(hi << 4 | lo);
            i += 4;
            break;
        }
        default:
            return -1;
        }
    }
    return (ssize_t)o;
}

/* The string s[a, b), decoded when it was written with escapes. Returns a
 * pointer to its bytes (into the line or into tmp) and its length in *n, or
 * NULL when an escaped string does not fit tmp. */
static const char *string_bytes(const unsigned char *s, size_t a, size_t b, bool escaped, char *tmp,
                                size_t cap, size_t *n)
{
    if (!escaped) {
        *n = b - a;
        return (const char *)s + a;
    }
    ssize_t r = unescape_small(s + a, b - a, tmp, cap);
    if (r < 0)
        return NULL;
    *n = (size_t)r;
    return tmp;
}

static key classify_key(const unsigned char *s, size_t a, size_t b, bool escaped)
{
    char tmp[8];
    size_t n;
    const char *k = string_bytes(s, a, b, escaped, tmp, sizeof(tmp), &n);
    if (!k)
        return KEY_OTHER;
    switch (n) {
    case 3:
        return memcmp(k, "log", 3) == 0 ? KEY_LOG : KEY_OTHER;
    case 4:
        return memcmp(k, "time", 4) == 0 ? KEY_TIME : KEY_OTHER;
    case 6:
        return memcmp(k, "stream", 6) == 0 ? KEY_STREAM : KEY_OTHER;
    default:
        return KEY_OTHER;
    }
}

static size_t skip_literal(const unsigned char *s, size_t i, size_t len, const char *word, size_t n)
{
    if (len - i < n || memcmp(s + i, word, n) != 0)
        return BAD;
    return i + n;
}

static inline bool is_digit(unsigned char c)
{
    return (unsigned)c - '0' <= 9;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static size_t skip_number(const unsigned char *s, size_t i, size_t len)
{
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return BAD;
    if (s[i] == '0')
        i++;
    else
        while (i < len && is_digit(s[i]))
            i++;
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit(s[i]))
            return BAD;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !is_digit(s[i]))
            return BAD;
        while (i < len && is_digit(s[i]))
            i++;
    }
    return i;
}

/* At an object member's key (after '{' or ','): skip `"key" :` and return
 * the index after the colon, or BAD. */
static size_t skip_key(const unsigned char *s, size_t i, size_t len)
{
    bool escaped = false;
    i = skip_ws(s, i, len);
    if (i >= len || s[i] != '"')
        return BAD;
    i = skip_string(s, i + 1, len, &escaped);
    if (i == BAD)
        return BAD;
    i = skip_ws(s, i + 1, len);
    if (i >= len || s[i] != ':')
        return BAD;
    return i + 1;
}

/* Skip one JSON value of any kind starting at s[i] (after optional
 * whitespace) and return the index just after it, or BAD. Nesting is tracked
 * in a bit stack (1 = object) instead of by recursion, so a hostile line
 * cannot exhaust the C stack. */
static size_t skip_value(const unsigned char *s, size_t i, size_t len)
{
    uint64_t stack[MAX_DEPTH / 64];
    size_t depth = 0;

    for (;;) {
        /* A value is expected at i. */
        i = skip_ws(s, i, len);
        if (i >= len)
            return BAD;
        unsigned char c = s[i];
        bool escaped = false;
        switch (c) {
        case '"':
            i = skip_string(s, i + 1, len, &escaped);
            if (i == BAD)
                return BAD;
            i++;
            break;
        case '{':
        case '[':
            if (depth >= MAX_DEPTH)
                return BAD;
            if (c == '{')
                stack[depth / 64] |= UINT64_C(1) << (depth % 64);
            else
                stack[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
            depth++;
            i = skip_ws(s, i + 1, len);
            if (i < len && s[i] == (c == '{' ? '}' : ']')) {
                depth--;
                i++;
                break;
            }
            if (c == '{') {
                i = skip_key(s, i, len);
                if (i == BAD)
                    return BAD;
            }
            continue;
        case 't':
            i = skip_literal(s, i, len, "true", 4);
            break;
        case 'f':
            i = skip_literal(s, i, len, "false", 5);
            break;
        case 'n':
            i = skip_literal(s, i, len, "null", 4);
            break;
        default:
            i = skip_number(s, i, len);
            break;
        }
        if (i == BAD)
            return BAD;

        /* A value ended: close containers or move to the next element. */
        for (;;) {
            if (depth == 0)
                return i;
            bool in_object = stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1;
            i = skip_ws(s, i, len);
            if (i >= len)
                return BAD;
            if (s[i] == ',') {
                i++;
                if (in_object) {
                    i = skip_key(s, i, len);
                    if (i == BAD)
                        return BAD;
                }
                break;
            }
            if (s[i] != (in_object ? '}' : ']'))
                return BAD;
            i++;
            depth--;
        }
    }
}

jsonfile_result jsonfile_parse_line(const char *line, size_t len, jsonfile_entry *e)
{
    assert(line || len == 0);
    assert(e);

    const unsigned char *s = (const unsigned char *)line;
    jsonstr_result log_result = JSONSTR_CORRUPT; /* CORRUPT here = no "log" string seen */
    *e = (jsonfile_entry){.time_ms = -1};

    size_t i = skip_ws(s, 0, len);
    if (i >= len || s[i] != '{')
        return JSONFILE_CORRUPT;
    i = skip_ws(s, i + 1, len);
    if (i < len && s[i] == '}')
        return JSONFILE_CORRUPT; /* {} has no "log" */

    for (;;) {
        /* Member key. */
        if (i >= len || s[i] != '"')
            return JSONFILE_CORRUPT;
        bool escaped = false;
        size_t ka = i + 1, kb = skip_string(s, ka, len, &escaped);
        if (kb == BAD)
            return JSONFILE_CORRUPT;
        key k = classify_key(s, ka, kb, escaped);
        i = skip_ws(s, kb + 1, len);
        if (i >= len || s[i] != ':')
            return JSONFILE_CORRUPT;
        i = skip_ws(s, i + 1, len);
        if (i >= len)
            return JSONFILE_CORRUPT;

        /* Member value. Later duplicates override earlier ones, as in most
         * JSON readers. */
        bool is_string = s[i] == '"';
        if (k == KEY_LOG && is_string) {
            size_t end, u8;
            bool newline;
            jsonstr_result r = jsonstr_scan(line + i + 1, len - i - 1, &end, &u8, &newline);
            if (r == JSONSTR_CORRUPT)
                return JSONFILE_CORRUPT;
            log_result = r;
            e->log = line + i + 1;
            e->log_len = end - (newline ? 2 : 0);
            e->utf8_len = u8 - (newline ? 1 : 0);
            e->partial = !newline;
            i += 1 + end + 1;
        } else if ((k == KEY_STREAM || k == KEY_TIME) && is_string) {
            escaped = false;
            size_t a = i + 1, b = skip_string(s, a, len, &escaped);
            if (b == BAD)
                return JSONFILE_CORRUPT;
            char tmp[64];
            size_t n;
            const char *v = string_bytes(s, a, b, escaped, tmp, sizeof(tmp), &n);
            if (k == KEY_STREAM) {
                e->stream = 0;
                if (v && n == 6 && memcmp(v, "stdout", 6) == 0)
                    e->stream = 1;
                else if (v && n == 6 && memcmp(v, "stderr", 6) == 0)
                    e->stream = 2;
            } else if (!v || timeparse_rfc3339_ms(v, n, &e->time_ms) < 0) {
                e->time_ms = -1;
            }
            i = b + 1;
        } else {
            if (k == KEY_LOG)
                log_result = JSONSTR_CORRUPT;
            else if (k == KEY_STREAM)
                e->stream = 0;
            else if (k == KEY_TIME)
                e->time_ms = -1;
            i = skip_value(s, i, len);
            if (i == BAD)
                return JSONFILE_CORRUPT;
        }

        i = skip_ws(s, i, len);
        if (i >= len)
            return JSONFILE_CORRUPT;
        if (s[i] == '}')
            break;
        if (s[i] != ',')
            return JSONFILE_CORRUPT;
        i = skip_ws(s, i + 1, len);
    }

    if (skip_ws(s, i + 1, len) != len)
        return JSONFILE_CORRUPT;
    if (log_result == JSONSTR_CORRUPT) {
        /* A "log" overridden by a non-string leaves no message. */
        e->log = NULL;
        e->log_len = e->utf8_len = 0;
        e->partial = false;
        return JSONFILE_CORRUPT;
    }
    return log_result == JSONSTR_OK ? JSONFILE_OK : JSONFILE_NEEDS_REPAIR;
}
