/* timeparse.h: RFC 3339 timestamps (as Docker and containerd write them) to milliseconds. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Parse "2024-11-24T09:20:00.123456789Z", any fraction length 0..9 digits
 * (Go's RFC3339Nano trims trailing zeros), 'Z' or "+hh:mm"/"-hh:mm". Lower-case
 * 't'/'z' accepted. Returns 0 and *ms (truncated toward the past), or -EINVAL.
 * Validates ranges (month 1-12, day within the month, leap years, hour < 24,
 * minute < 60, second <= 60). */
int timeparse_rfc3339_ms(const char *s, size_t len, int64_t *ms);

/* Parse a time at the start of s (len bytes) by a strftime-style format:
 * %Y %y %m %d %e %j %H %I %p %M %S %f (1-9 digits) %L (3 digits) %z (Z,
 * +hhmm, +hh:mm) %Z (UTC/GMT/Z name the offset; other names are skipped)
 * %b %h %B %a %A (English names, any case) %T %F %%; a space matches one or
 * more blanks; other characters match themselves. Without %z or a UTC name the
 * time is local time; without a year it is the latest such time not over a
 * day after now_ms. Returns the bytes consumed (>= 0) and *ms, or -EINVAL. */
int timeparse_format_ms(const char *fmt, const char *s, size_t len, int64_t now_ms, int64_t *ms);

/* 0 if every directive in fmt is one timeparse_format_ms() knows; else
 * -EINVAL with the directive's letter in *bad. */
int timeparse_format_check(const char *fmt, char *bad);
