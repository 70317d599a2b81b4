/* logopts.c: a container's Docker log options, read from its hostconfig.json
 * once when the container is found (jansson: not the hot path). */
#include "logopts.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int logopts_parse_size(const char *s, uint64_t *out)
{
    const char *p = s;
    double v = 0, scale = 1;
    bool digits = false, frac = false;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            digits = true;
            if (frac) {
                scale /= 10;
                v += (*p - '0') * scale;
            } else {
                v = v * 10 + (*p - '0');
            }
        } else if (*p == '.' && digits && !frac) {
            frac = true;
        } else {
            break;
        }
    }
    if (!digits || p[-1] == '.')
        return -EINVAL;
    if (*p == ' ')
        p++;
    static const char units[] = "kmgtp";
    double mult = 1;
    const char *u = *p ? strchr(units, *p | 0x20) : NULL;
    if (u) {
        for (const char *k = units; k <= u; k++)
            mult *= 1024;
        p++;
        if ((*p | 0x20) == 'i')
            p++;
    }
    if ((*p | 0x20) == 'b')
        p++;
    if (*p)
        return -EINVAL;
    double bytes = v * mult;
    if (!isfinite(bytes) || bytes >= 18446744073709551616.0)
        return -EINVAL;
    *out = (uint64_t)bytes;
    return 0;
}

int logopts_load(const char *path, logopts *o, char *why, size_t why_len)
{
    *o = (logopts){0};
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        if (json_error_code(&err) == json_error_cannot_open_file)
            return -ENOENT;
        snprintf(why, why_len, "not JSON: %s (line %d)", err.text, err.line);
        return -EINVAL;
    }
    int r = 0;
    json_t *cfg = json_object_get(json_object_get(root, "LogConfig"), "Config");
    const char *mode = json_string_value(json_object_get(cfg, "mode"));
    const char *size = json_string_value(json_object_get(cfg, "max-buffer-size"));
    if (mode && *mode) {
        if (strcmp(mode, "blocking") == 0 || strcmp(mode, "non-blocking") == 0) {
            o->has_mode = true;
            o->blocking = mode[0] == 'b';
        } else {
            snprintf(why, why_len, "log option mode = \"%s\" is neither blocking nor non-blocking",
                     mode);
            r = -EINVAL;
        }
    }
    if (size && *size) {
        if (logopts_parse_size(size, &o->max_buffer_size) < 0 || o->max_buffer_size == 0) {
            if (r == 0)
                snprintf(why, why_len, "log option max-buffer-size = \"%s\" is not a size",
                         size);
            o->max_buffer_size = 0;
            r = -EINVAL;
        }
    }
    json_decref(root);
    return r;
}
