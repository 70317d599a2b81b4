/* jsonstr.h: JSON string content on the hot path: scan, escape, cut and repair
 * escaped message bytes without building a DOM or unescaping into a copy. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum jsonstr_result {
    JSONSTR_OK = 0,         /* valid; can be copied into a request as it is */
    JSONSTR_NEEDS_REPAIR,   /* well-formed but not shippable as is: raw control
                               bytes, invalid UTF-8 or a lone surrogate escape;
                               jsonstr_repair() makes it valid */
    JSONSTR_CORRUPT,        /* bad escape (\x, short \u), or no closing quote */
} jsonstr_result;

/* Scan escaped string content starting just after an opening quote, up to and
 * not including the closing quote. `p`/`len` is the rest of the line.
 * On JSONSTR_OK / JSONSTR_NEEDS_REPAIR: *end = index of the closing quote,
 * *utf8_len = length in bytes of the unescaped UTF-8 text (for NEEDS_REPAIR:
 * the length after repair), *trailing_newline = the unescaped text ends with
 * "\n" (the escape sequence \n as the last two escaped bytes). */
jsonstr_result jsonstr_scan(const char *p, size_t len, size_t *end, size_t *utf8_len,
                            bool *trailing_newline);

/* Append a repaired copy of escaped content (that jsonstr_scan called
 * NEEDS_REPAIR or OK) to `out`: invalid UTF-8 bytes become U+FFFD (the raw 3
 * bytes EF BF BD), lone surrogate escapes become \ufffd, raw control bytes
 * become \u00XX. Returns the number of replacements; *utf8_len gets the
 * unescaped length of what was appended. */
size_t jsonstr_repair(buf *out, const char *esc, size_t len, size_t *utf8_len);

/* Append raw bytes (a CRI or plain-file message) JSON-escaped to `out`,
 * replacing invalid UTF-8 with U+FFFD. Returns the number of replacements;
 * *utf8_len gets the unescaped UTF-8 length of the text (after replacement). */
size_t jsonstr_escape(buf *out, const char *raw, size_t len, size_t *utf8_len);

/* For repair and escape: each byte that does not begin a complete, valid
 * UTF-8 sequence becomes one U+FFFD; the count returned is the number of those
 * substitutions (control bytes escaped as \u00XX are not counted). */

/* Longest prefix of valid escaped content `esc`/`len` whose unescaped UTF-8
 * length is <= max_utf8, cut only between whole characters (never inside an
 * escape, a UTF-8 sequence or a surrogate pair). Returns the prefix length in
 * escaped bytes; *prefix_utf8 gets its unescaped length. */
size_t jsonstr_cut(const char *esc, size_t len, size_t max_utf8, size_t *prefix_utf8);

/* Append the unescaped text of valid escaped content (for matching, not for
 * shipping): short escapes and \uXXXX (surrogate pairs joined; a lone
 * surrogate becomes U+FFFD). */
void jsonstr_unescape(buf *out, const char *esc, size_t len);
