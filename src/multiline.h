/* multiline.h: where a multiline event starts: a POSIX extended regular
 * expression (as awslogs-multiline-pattern) or a strftime-style datetime
 * format (as awslogs-datetime-format) at the start of the line. */
#pragma once

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Translate a datetime format (%Y %m %d %H %M %S %b %a %B %A %y %I %p %j %f %L
 * %Z %z %%, other characters literal) into an ERE anchored at the line start.
 * Returns a malloc'd string, or NULL (with *bad set to the directive) for an
 * unsupported directive. */
char *multiline_datetime_regex(const char *format, char *bad);

/* Compile the start matcher from a pattern or a datetime format (exactly one
 * non-NULL). 0, or -EINVAL with the reason in err. */
int multiline_compile(const char *pattern, const char *datetime_format, regex_t *re, char *err,
                      size_t errlen);

/* Does the unescaped line text start a new event? Binary-safe (REG_STARTEND),
 * but text[len] must be readable and NUL: some regexec implementations (and
 * sanitizer interceptors) scan for it. */
bool multiline_starts(const regex_t *re, const char *text, size_t len);
