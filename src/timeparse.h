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
