/* template.c: group/stream name templates and CloudWatch's naming rules. */
#include "template.h"

#include <string.h>

#include "util.h"

#define NAME_MAX_BYTES 512

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static const char *ecs_task_id(const char *arn)
{
    /* arn:aws:ecs:region:account:task/cluster/ID (or the older task/ID) */
    if (!arn)
        return NULL;
    const char *s = strrchr(arn, '/');
    return s && s[1] ? s + 1 : NULL;
}

bool template_known_variable(const char *name)
{
    static const char *const names[] = {
        "instance_id",   "hostname",       "region",          "source",
        "container_id",  "container_id_short", "container_name", "ecs_cluster",
        "ecs_task_id",   "ecs_task_family", "ecs_container_name", "file",
        "file_name",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return (strncmp(name, "label:", 6) == 0 && name[6]) ||
           (strncmp(name, "journal:", 8) == 0 && name[8]);
}

static const char *lookup(const template_vars *v, const char *name, char *scratch, size_t n)
{
    if (strcmp(name, "instance_id") == 0)
        return v->instance_id;
    if (strcmp(name, "hostname") == 0)
        return v->hostname;
    if (strcmp(name, "region") == 0)
        return v->region;
    if (strcmp(name, "source") == 0)
        return v->source;
    if (strcmp(name, "container_id") == 0)
        return v->container_id;
    if (strcmp(name, "container_id_short") == 0) {
        if (!v->container_id)
            return NULL;
        snprintf(scratch, n, "%.12s", v->container_id);
        return scratch;
    }
    if (strcmp(name, "container_name") == 0)
        return v->container_name;
    if (strcmp(name, "ecs_cluster") == 0) {
        /* The label may hold the cluster ARN; the name is its last part. */
        const char *c = v->ecs_cluster;
        const char *s = c ? strrchr(c, '/') : NULL;
        return s && s[1] ? s + 1 : c;
    }
    if (strcmp(name, "ecs_task_id") == 0)
        return ecs_task_id(v->ecs_task_arn);
    if (strcmp(name, "ecs_task_family") == 0)
        return v->ecs_task_family;
    if (strcmp(name, "ecs_container_name") == 0)
        return v->ecs_container_name;
    if (strcmp(name, "file") == 0)
        return v->file;
    if (strcmp(name, "file_name") == 0)
        return v->file ? basename_of(v->file) : NULL;
    if (strncmp(name, "label:", 6) == 0 && v->lookup)
        return v->lookup(v->userdata, "label", name + 6);
    if (strncmp(name, "journal:", 8) == 0 && v->lookup)
        return v->lookup(v->userdata, "journal", name + 8);
    return NULL;
}

/* "{a|b|text}": the first of the variables that has a value; a last
 * alternative that is not a variable is literal text (it may be empty).
 * NULL when nothing applies: the caller puts the placeholder. */
static const char *resolve(const template_vars *v, char *name, char *scratch, size_t n)
{
    for (char *alt = name;;) {
        char *bar = strchr(alt, '|');
        if (bar)
            *bar = 0;
        if (template_known_variable(alt)) {
            const char *val = lookup(v, alt, scratch, n);
            if (val && *val)
                return val;
        } else if (!bar && alt != name) {
            return alt; /* the literal fallback */
        }
        if (!bar)
            return NULL;
        alt = bar + 1;
    }
}

static bool group_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '/' || c == '.' || c == '#';
}

static void append_sanitised(buf *out, const char *s, template_kind kind)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (kind == TEMPLATE_GROUP)
            buf_appendc(out, group_char_ok(c) ? (char)c : '_');
        else
            buf_appendc(out, (c < 0x20 || c == 0x7f || c == ':' || c == '*') ? '_' : (char)c);
    }
}

/* Cut at NAME_MAX_BYTES without splitting a UTF-8 sequence. */
static void cut_to_limit(buf *out)
{
    if (out->len <= NAME_MAX_BYTES)
        return;
    size_t n = NAME_MAX_BYTES;
    while (n > 0 && ((unsigned char)out->data[n] & 0xC0) == 0x80)
        n--;
    out->len = n;
}

char *template_expand(const char *tmpl, const template_vars *v, template_kind kind)
{
    const char *placeholder = v->placeholder && *v->placeholder ? v->placeholder : "unknown";
    buf out = {0};
    char scratch[64];
    for (const char *p = tmpl; *p;) {
        const char *close;
        if (*p == '{' && (close = strchr(p, '}'))) {
            char name[256];
            size_t n = MIN((size_t)(close - p - 1), sizeof name - 1);
            memcpy(name, p + 1, n);
            name[n] = 0;
            const char *val = resolve(v, name, scratch, sizeof scratch);
            append_sanitised(&out, val ? val : placeholder, kind);
            p = close + 1;
            continue;
        }
        char one[2] = {*p++, 0};
        append_sanitised(&out, one, kind);
    }
    cut_to_limit(&out);
    if (out.len == 0)
        append_sanitised(&out, placeholder, kind);
    buf_appendc(&out, 0);
    return out.data;
}
