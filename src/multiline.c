/* multiline.c: the start-of-event matcher for multiline joining. The
 * datetime format is turned into a regular expression once, at start. */
#include "multiline.h"

#include <string.h>

static const struct {
    char directive;
    const char *re;
} directives[] = {
    {'Y', "[0-9]{4}"},
    {'y', "[0-9]{2}"},
    {'m', "(0?[1-9]|1[0-2])"},
    {'d', "(0?[1-9]|[12][0-9]|3[01])"},
    {'e', "( ?[1-9]|[12][0-9]|3[01])"},
    {'H', "([01]?[0-9]|2[0-3])"},
    {'I', "(0?[1-9]|1[0-2])"},
    {'M', "[0-5][0-9]"},
    {'S', "([0-5][0-9]|60)"},
    {'p', "(AM|PM|am|pm)"},
    {'j', "[0-9]{1,3}"},
    {'f', "[0-9]{1,9}"},
    {'L', "[0-9]{3}"},
    {'Z', "[A-Za-z][A-Za-z0-9+_/-]*"},
    {'z', "(Z|[+-][0-9]{2}:?[0-9]{2})"},
    {'b', "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"},
    {'h', "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"},
    {'B', "(January|February|March|April|May|June|July|August|September|October|November|"
          "December)"},
    {'a', "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"},
    {'A', "(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"},
    {'T', "([01]?[0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"},
    {'F', "[0-9]{4}-(0?[1-9]|1[0-2])-(0?[1-9]|[12][0-9]|3[01])"},
    {'%', "%"},
};

char *multiline_datetime_regex(const char *format, char *bad)
{
    buf out = {0};
    buf_appendc(&out, '^');
    for (const char *p = format; *p; p++) {
        if (*p != '%') {
            if (strchr(".[]{}()\\*+?^$|", *p))
                buf_appendc(&out, '\\');
            buf_appendc(&out, *p);
            continue;
        }
        p++;
        const char *re = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(directives) && *p; i++)
            if (directives[i].directive == *p)
                re = directives[i].re;
        if (!re) {
            if (bad)
                *bad = *p;
            buf_free(&out);
            return NULL;
        }
        buf_append(&out, re, strlen(re));
    }
    buf_appendc(&out, 0);
    return out.data;
}

int multiline_compile(const char *pattern, const char *datetime_format, regex_t *re, char *err,
                      size_t errlen)
{
    _cleanup_free_ char *from_format = NULL;
    if (datetime_format) {
        char bad = 0;
        from_format = multiline_datetime_regex(datetime_format, &bad);
        if (!from_format) {
            snprintf(err, errlen, "datetime_format: unsupported directive %%%c", bad ? bad : '?');
            return -EINVAL;
        }
        pattern = from_format;
    }
    int r = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (r != 0) {
        char msg[128];
        regerror(r, re, msg, sizeof msg);
        snprintf(err, errlen, "%s: %s", datetime_format ? "datetime_format" : "multiline_pattern",
                 msg);
        return -EINVAL;
    }
    return 0;
}

bool multiline_starts(const regex_t *re, const char *text, size_t len)
{
    regmatch_t m = {.rm_so = 0, .rm_eo = (regoff_t)len};
    return regexec(re, text, 1, &m, REG_STARTEND) == 0;
}
