/* config.c: reads cwlogd.conf and conf.d/NAME.conf (INI, via inih) into a `config`,
 * collecting every error with its file, line and key. */
#include "config.h"
#include "multiline.h"
#include "template.h"
#include "timeparse.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <ini.h>
#include <inttypes.h>
#include <locale.h>
#include <regex.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <wctype.h>

/*
 * Accepted syntax (what the reader below and inih together accept):
 *
 *   [agent]                 sections: [agent], [cloudwatch], [source NAME]
 *   key = value             "key: value" is accepted too; spaces around key
 *                           and value are dropped; the value runs to the end
 *                           of the line
 *   ; comment               a line whose first non-blank is ';' or '#'
 *   key = value ; comment   ';' after whitespace starts a comment anywhere;
 *                           ';' not preceded by whitespace is part of the
 *                           value ("a;b"), and '#' never starts an inline
 *                           comment ("a #b" is the value)
 *
 * Leading whitespace is ignored: unlike stock inih there are no continuation
 * lines (an indented line after a key would otherwise silently become a
 * second value of that key); repeat `path`/`match` or list items on one line.
 * A line longer than the buffer inih passes to the reader (INI_MAX_LINE, 200
 * in Debian's build, so 198 characters after trimming) is an error: inih
 * would cut it and parse the rest as a new line.
 *
 * The reader classifies every line itself so that each error names its line
 * (Debian's inih calls the handler without a line number and ini_parse_stream
 * only returns the first bad line), and hands inih only lines it will accept.
 * inih calls the handler for a line right after the reader returned it, so
 * ctx->lineno is the handler's line.
 */

#define KIB 1024ULL
#define MIB (1024ULL * KIB)

#define MIN_BUFFER_SIZE (16 * KIB)
#define MIN_EVENT_SIZE (1 * KIB)
#define MAX_EVENT_SIZE 1048550ULL

typedef enum section_kind {
    SEC_NONE, /* before the first header */
    SEC_AGENT,
    SEC_CLOUDWATCH,
    SEC_SOURCE,
    SEC_IGNORED, /* a bad or duplicate header, already reported: skip its keys */
} section_kind;

/* [agent] and [cloudwatch] keys. */
typedef enum global_key {
    GK_STATE_DIR,
    GK_LOG_LEVEL,
    GK_CONTROL_SOCKET,
    GK_TOTAL_BUFFER_LIMIT,
    GK_RESCAN_INTERVAL,
    GK_CHECKPOINT_INTERVAL,
    GK_STATE_SYNC,
    GK_PLACEHOLDER,
    GK_REGION,
    GK_ENDPOINT,
    GK_IMDS_ENDPOINT,
    GK_CA_FILE,
    GK_ACCESS_KEY_ID,
    GK_SECRET_ACCESS_KEY,
    GK_SESSION_TOKEN,
    GK_CREATE_GROUP,
    GK_RETENTION_DAYS,
    GK_GROUP_CLASS,
    GK_GROUP_TAGS,
    GK_KMS_KEY_ID,
    GK_FLUSH_INTERVAL,
    GK_MAX_EVENT_SIZE,
    GK_MAX,
} global_key;

static const struct {
    const char *name;
    section_kind section;
} global_keys[GK_MAX] = {
    [GK_STATE_DIR] = {"state_dir", SEC_AGENT},
    [GK_LOG_LEVEL] = {"log_level", SEC_AGENT},
    [GK_CONTROL_SOCKET] = {"control_socket", SEC_AGENT},
    [GK_TOTAL_BUFFER_LIMIT] = {"total_buffer_limit", SEC_AGENT},
    [GK_RESCAN_INTERVAL] = {"rescan_interval", SEC_AGENT},
    [GK_CHECKPOINT_INTERVAL] = {"checkpoint_interval", SEC_AGENT},
    [GK_STATE_SYNC] = {"state_sync", SEC_AGENT},
    [GK_PLACEHOLDER] = {"placeholder", SEC_AGENT},
    [GK_REGION] = {"region", SEC_CLOUDWATCH},
    [GK_ENDPOINT] = {"endpoint", SEC_CLOUDWATCH},
    [GK_IMDS_ENDPOINT] = {"imds_endpoint", SEC_CLOUDWATCH},
    [GK_CA_FILE] = {"ca_file", SEC_CLOUDWATCH},
    [GK_ACCESS_KEY_ID] = {"access_key_id", SEC_CLOUDWATCH},
    [GK_SECRET_ACCESS_KEY] = {"secret_access_key", SEC_CLOUDWATCH},
    [GK_SESSION_TOKEN] = {"session_token", SEC_CLOUDWATCH},
    [GK_CREATE_GROUP] = {"create_group", SEC_CLOUDWATCH},
    [GK_RETENTION_DAYS] = {"retention_days", SEC_CLOUDWATCH},
    [GK_GROUP_CLASS] = {"group_class", SEC_CLOUDWATCH},
    [GK_GROUP_TAGS] = {"group_tags", SEC_CLOUDWATCH},
    [GK_KMS_KEY_ID] = {"kms_key_id", SEC_CLOUDWATCH},
    [GK_FLUSH_INTERVAL] = {"flush_interval", SEC_CLOUDWATCH},
    [GK_MAX_EVENT_SIZE] = {"max_event_size", SEC_CLOUDWATCH},
};

/* [source NAME] keys. */
typedef enum source_key {
    SK_TYPE,
    SK_PATH,
    SK_GROUP,
    SK_STREAM,
    SK_MODE,
    SK_DROP,
    SK_MAX_BUFFER_SIZE,
    SK_START_AT,
    SK_MULTILINE_PATTERN,
    SK_DATETIME_FORMAT,
    SK_MULTILINE_TIMEOUT,
    SK_TIME_FORMAT,
    SK_MATCH,
    SK_UNITS,
    SK_PRIORITY,
    SK_INCLUDE_CONTAINERS,
    SK_EXCLUDE_CONTAINERS,
    SK_RETENTION_DAYS,
    SK_GROUP_CLASS,
    SK_GROUP_TAGS,
    SK_KMS_KEY_ID,
    SK_CONTAINER_MAX_BUFFER_SIZE,
    SK_MAX_STREAMS,
    SK_MAX,
} source_key;

#define T_DOCKER (1u << SOURCE_DOCKER)
#define T_CRI (1u << SOURCE_CRI)
#define T_FILE (1u << SOURCE_FILE)
#define T_JOURNALD (1u << SOURCE_JOURNALD)
#define T_ALL (T_DOCKER | T_CRI | T_FILE | T_JOURNALD)

static const struct {
    const char *name;
    unsigned types; /* source types the key applies to */
    bool repeatable;
} source_keys[SK_MAX] = {
    [SK_TYPE] = {"type", T_ALL, false},
    [SK_PATH] = {"path", T_ALL, true},
    [SK_GROUP] = {"group", T_ALL, false},
    [SK_STREAM] = {"stream", T_ALL, false},
    [SK_MODE] = {"mode", T_ALL, false},
    [SK_DROP] = {"drop", T_ALL, false},
    [SK_MAX_BUFFER_SIZE] = {"max_buffer_size", T_ALL, false},
    [SK_START_AT] = {"start_at", T_ALL, false},
    [SK_MULTILINE_PATTERN] = {"multiline_pattern", T_DOCKER | T_CRI | T_FILE, false},
    [SK_DATETIME_FORMAT] = {"datetime_format", T_DOCKER | T_CRI | T_FILE, false},
    [SK_MULTILINE_TIMEOUT] = {"multiline_timeout", T_ALL, false},
    [SK_TIME_FORMAT] = {"time_format", T_FILE, false},
    [SK_MATCH] = {"match", T_JOURNALD, true},
    [SK_UNITS] = {"units", T_JOURNALD, false},
    [SK_PRIORITY] = {"priority", T_JOURNALD, false},
    [SK_INCLUDE_CONTAINERS] = {"include_containers", T_DOCKER, false},
    [SK_EXCLUDE_CONTAINERS] = {"exclude_containers", T_DOCKER, false},
    [SK_RETENTION_DAYS] = {"retention_days", T_ALL, false},
    [SK_GROUP_CLASS] = {"group_class", T_ALL, false},
    [SK_GROUP_TAGS] = {"group_tags", T_ALL, true},
    [SK_KMS_KEY_ID] = {"kms_key_id", T_ALL, false},
    [SK_CONTAINER_MAX_BUFFER_SIZE] = {"container_max_buffer_size", T_DOCKER, false},
    [SK_MAX_STREAMS] = {"max_streams", T_JOURNALD, false},
};

static const char *const type_names[] = {
    [SOURCE_DOCKER] = "docker",
    [SOURCE_CRI] = "cri",
    [SOURCE_FILE] = "file",
    [SOURCE_JOURNALD] = "journald",
};

/* CloudWatch's PutRetentionPolicy values; 0 = never expire (no policy). */
static const int retention_values[] = {0,    1,    3,    5,    7,    14,   30,  60,
                                       90,   120,  150,  180,  365,  400,  545, 731,
                                       1096, 1827, 2192, 2557, 2922, 3288, 3653};

static const char *const priority_names[] = {"emerg",   "alert",  "crit", "err",
                                             "warning", "notice", "info", "debug"};

/* One key = value line of a [source] section, kept until the section ends
 * because `type` (which decides what the other keys mean) may come last. */
typedef struct raw_value {
    source_key key;
    char *value;
    unsigned line;
} raw_value;

typedef struct raw_source {
    char *name;
    unsigned line;
    raw_value *values;
    size_t n_values;
    unsigned unreadable; /* keys on lines too long to parse: not "missing" too */
} raw_source;

typedef struct declared_source {
    char *name;
    const char *file; /* interned in parse_ctx.files */
    unsigned line;
} declared_source;

/* Where a message points: "FILE:LINE: [SECTION] KEY: ...". */
typedef struct where {
    const char *file;
    unsigned line;
    const char *section; /* NULL: none */
    const char *key;     /* NULL: none */
} where;

typedef struct parse_ctx {
    config *cfg;
    config_errors *errs;
    size_t errs_base;       /* errs->n when loading started */
    unsigned *err_lines;    /* line of errs->msgs[errs_base + i] */
    size_t src_first_error; /* errs->n when the current [source] began */

    char **files; /* every path parsed, for messages that outlive a file */
    size_t n_files;

    const char *file; /* current file */
    FILE *f;
    unsigned lineno; /* physical line the reader returned last */
    char *line;
    size_t line_cap;

    section_kind kind;
    char *section;                /* "agent", "cloudwatch", "source NAME" */
    unsigned global_seen[GK_MAX]; /* line where set in this section, 0 = not yet */
    raw_source *src;              /* current [source], finalized at its end */

    declared_source *declared;
    size_t n_declared;

    /* static keys must come in pairs; remember where each was set */
    where access_key_at, secret_key_at, session_token_at;
} parse_ctx;

static void errs_add(config_errors *e, char *msg)
{
    e->msgs = xrealloc(e->msgs, (e->n + 1) * sizeof *e->msgs);
    e->msgs[e->n++] = msg;
}

static void report(parse_ctx *ctx, const where *w, const char *fmt, ...) _printf_(3, 4);
static void report(parse_ctx *ctx, const where *w, const char *fmt, ...)
{
    buf b = {0};
    if (w->line > 0)
        buf_printf(&b, "%s:%u: ", w->file, w->line);
    else
        buf_printf(&b, "%s: ", w->file);
    if (w->section)
        buf_printf(&b, "[%s] ", w->section);
    if (w->key)
        buf_printf(&b, "%s: ", w->key);

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        buf_reserve(&b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b.data + b.len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b.len += (size_t)n;
    }
    buf_appendc(&b, '\0');
    errs_add(ctx->errs, b.data);
    size_t i = ctx->errs->n - 1 - ctx->errs_base;
    ctx->err_lines = xrealloc(ctx->err_lines, (i + 1) * sizeof *ctx->err_lines);
    ctx->err_lines[i] = w->line;
}

/* A [source] reports some errors as its lines arrive and the rest when it
 * ends; put them back in line order (stable, so one line keeps its order). */
static void sort_errors_since(parse_ctx *ctx, size_t first)
{
    if (ctx->errs->n <= first)
        return; /* nothing to sort (and msgs may still be NULL) */
    char **msgs = ctx->errs->msgs + first;
    unsigned *lines = ctx->err_lines + (first - ctx->errs_base);
    size_t n = ctx->errs->n - first;
    for (size_t i = 1; i < n; i++) {
        char *m = msgs[i];
        unsigned l = lines[i];
        size_t j = i;
        for (; j > 0 && lines[j - 1] > l; j--) {
            msgs[j] = msgs[j - 1];
            lines[j] = lines[j - 1];
        }
        msgs[j] = m;
        lines[j] = l;
    }
}

static where here(const parse_ctx *ctx, const char *key)
{
    return (where){.file = ctx->file, .line = ctx->lineno, .section = ctx->section, .key = key};
}

/* ---- value parsers ---------------------------------------------------- */

static int parse_decimal(const char **pp, uint64_t *ipart, uint64_t *frac, uint64_t *frac_den)
{
    const char *p = *pp;
    bool overflow = false;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    uint64_t f = 0, den = 1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        /* 18 digits are far below a byte or a millisecond; ignore the rest */
        for (; isdigit((unsigned char)*p); p++)
            if (den < 1000000000000000000ULL) {
                f = f * 10 + (uint64_t)(*p - '0');
                den *= 10;
            }
    }
    *pp = p;
    *ipart = v;
    *frac = f;
    *frac_den = den;
    return overflow ? -ERANGE : 0;
}

/* value = (ipart + frac/den) * mul, truncated like Docker's int64(float * mul) */
static int scale(uint64_t ipart, uint64_t frac, uint64_t den, uint64_t mul, uint64_t *out)
{
    unsigned __int128 v = (unsigned __int128)ipart * mul;
    v += (unsigned __int128)frac * mul / den;
    if (v > UINT64_MAX)
        return -ERANGE;
    *out = (uint64_t)v;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    assert(s && out);
    const char *p = s;
    uint64_t ipart, frac, den;
    int r = parse_decimal(&p, &ipart, &frac, &den);
    if (r == -EINVAL)
        return r;
    bool range = r == -ERANGE;

    /* go-units allows one space before the unit: "10 m" */
    if (*p == ' ' && p[1] != '\0')
        p++;
    unsigned shift = 0;
    switch (tolower((unsigned char)*p)) {
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    case 't':
        shift = 40;
        break;
    case 'p':
        shift = 50;
        break;
    }
    if (shift) {
        p++;
        if (tolower((unsigned char)*p) == 'i')
            p++;
    }
    if (tolower((unsigned char)*p) == 'b')
        p++;
    if (*p != '\0')
        return -EINVAL;
    if (range)
        return -ERANGE;
    return scale(ipart, frac, den, 1ULL << shift, out);
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    assert(s && out);
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (*s == '\0')
        return -EINVAL;

    uint64_t total = 0;
    bool range = false;
    const char *p = s;
    while (*p) {
        uint64_t ipart, frac, den, mul, v = 0;
        int r = parse_decimal(&p, &ipart, &frac, &den);
        if (r == -EINVAL)
            return r;
        if (r == -ERANGE)
            range = true;
        if (p[0] == 'm' && p[1] == 's') {
            mul = 1;
            p += 2;
        } else if (*p == 's') {
            mul = 1000;
            p++;
        } else if (*p == 'm') {
            mul = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            mul = 3600 * 1000;
            p++;
        } else
            return -EINVAL; /* a missing or unknown unit */
        if (!range && (scale(ipart, frac, den, mul, &v) < 0 || v > UINT64_MAX - total))
            range = true;
        if (!range)
            total += v;
    }
    if (range)
        return -ERANGE;
    *out = total;
    return 0;
}

int config_parse_bool(const char *s, bool *out)
{
    assert(s && out);
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

const char *source_type_to_string(source_type t)
{
    if ((unsigned)t < ARRAY_SIZE(type_names))
        return type_names[t];
    return "unknown";
}

/* ---- checked setters: each reports its own error and returns false ---- */

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* "a, b or c" */
static char *join_choices(const char *const *names, size_t n)
{
    buf b = {0};
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
    buf_appendc(&b, '\0');
    return b.data;
}

static bool set_enum(parse_ctx *ctx, const where *w, const char *v, const char *const *names,
                     size_t n, int *out)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(v, names[i]) == 0) {
            *out = (int)i;
            return true;
        }
    _cleanup_free_ char *choices = join_choices(names, n);
    report(ctx, w, "invalid value \"%s\" (expected %s)", v, choices);
    return false;
}

static bool set_size(parse_ctx *ctx, const where *w, const char *v, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    uint64_t n;
    int r = config_parse_size(v, &n);
    if (r == -ERANGE) {
        report(ctx, w, "size \"%s\" is too large", v);
        return false;
    }
    if (r < 0) {
        report(ctx, w,
               "invalid size \"%s\" (expected bytes or a number with k, m, g or t, "
               "e.g. 512k, 25m, 1.5g)",
               v);
        return false;
    }
    if (n < min || n > max) {
        if (min == 1 && max == UINT64_MAX)
            report(ctx, w, "size must be greater than 0");
        else if (max == UINT64_MAX)
            report(ctx, w, "size \"%s\" is too small (at least %" PRIu64 " bytes)", v, min);
        else
            report(ctx, w, "size \"%s\" is out of range (%" PRIu64 " to %" PRIu64 " bytes)", v, min,
                   max);
        return false;
    }
    *out = n;
    return true;
}

static bool set_duration(parse_ctx *ctx, const where *w, const char *v, uint64_t *out)
{
    uint64_t n;
    int r = config_parse_duration_ms(v, &n);
    if (r == -ERANGE) {
        report(ctx, w, "duration \"%s\" is too large", v);
        return false;
    }
    if (r < 0 && all_digits(v)) {
        report(ctx, w, "invalid duration \"%s\": missing unit (ms, s, m or h, e.g. %ss)", v, v);
        return false;
    }
    if (r < 0) {
        report(ctx, w, "invalid duration \"%s\" (expected e.g. 250ms, 5s, 2m, 1h or 1m30s)", v);
        return false;
    }
    if (n == 0) {
        report(ctx, w, "duration must be greater than 0");
        return false;
    }
    *out = n;
    return true;
}

static bool set_bool(parse_ctx *ctx, const where *w, const char *v, bool *out)
{
    if (config_parse_bool(v, out) < 0) {
        report(ctx, w, "invalid value \"%s\" (expected true or false)", v);
        return false;
    }
    return true;
}

static void replace_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

static bool set_nonempty(parse_ctx *ctx, const where *w, const char *v, char **dst)
{
    if (!*v) {
        report(ctx, w, "empty value");
        return false;
    }
    replace_str(dst, v);
    return true;
}

static bool set_abs_path(parse_ctx *ctx, const where *w, const char *v, char **dst)
{
    if (!*v) {
        report(ctx, w, "empty value");
        return false;
    }
    if (v[0] != '/') {
        report(ctx, w, "\"%s\" is not an absolute path", v);
        return false;
    }
    replace_str(dst, v);
    return true;
}

/* Empty means "not set" for optional strings. */
static void set_optional(char **dst, const char *v)
{
    replace_str(dst, *v ? v : NULL);
}

static bool set_url(parse_ctx *ctx, const where *w, const char *v, char **dst)
{
    if (*v && strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) {
        report(ctx, w, "invalid URL \"%s\" (expected http://... or https://...)", v);
        return false;
    }
    set_optional(dst, v);
    return true;
}

/* The journal's own rules: A-Z, 0-9 and '_', not starting with a digit, at
 * most 64 bytes. */
static bool is_journal_field(const char *s, size_t n)
{
    if (n == 0 || n > 64 || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isupper((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* One alternative of {...}: a known variable, or, as the last of several,
 * literal text. */
static bool check_variable(parse_ctx *ctx, const where *w, const char *name, size_t n, bool last)
{
    _cleanup_free_ char *var = xstrndup(name, n);
    if (n >= 8 && memcmp(name, "journal:", 8) == 0) {
        if (is_journal_field(name + 8, n - 8))
            return true;
        report(ctx, w,
               "invalid journal field in {%.*s} (field names use A-Z, 0-9 and _, "
               "e.g. {journal:_SYSTEMD_UNIT})",
               (int)n, name);
        return false;
    }
    if (template_known_variable(var) || last)
        return true;
    report(ctx, w, "unknown variable {%.*s} in template (only the last of {a|b|...} may be text)",
           (int)n, name);
    return false;
}

static bool check_template(parse_ctx *ctx, const where *w, const char *t)
{
    bool ok = true;
    for (const char *p = t; *p; p++) {
        if (*p == '}') {
            report(ctx, w, "unbalanced '}' in template \"%s\"", t);
            return false;
        }
        if (*p != '{')
            continue;
        const char *end = strpbrk(p + 1, "{}");
        if (!end || *end == '{') {
            report(ctx, w, "unbalanced '{' in template \"%s\"", t);
            return false;
        }
        /* {a|b|text}: every alternative a variable, but the last may be text. */
        bool alternatives = memchr(p + 1, '|', (size_t)(end - p - 1)) != NULL;
        for (const char *name = p + 1; name <= end;) {
            const char *bar = memchr(name, '|', (size_t)(end - name));
            size_t n = (size_t)((bar ? bar : end) - name);
            ok &= check_variable(ctx, w, name, n, alternatives && !bar);
            name += n + 1;
        }
        p = end;
    }
    return ok;
}

/* Lists are separated by whitespace and commas; empty items are skipped. */
static void split_list(const char *v, char ***items, size_t *n)
{
    const char *sep = " \t,";
    for (const char *p = v + strspn(v, sep); *p; p += strspn(p, sep)) {
        size_t len = strcspn(p, sep);
        *items = xrealloc(*items, (*n + 1) * sizeof **items);
        (*items)[(*n)++] = xstrndup(p, len);
        p += len;
    }
}

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* ---- [agent] and [cloudwatch] ------------------------------------------ */

/* A `where` that stays valid after the current line and section are gone. */
static where static_where(const parse_ctx *ctx, global_key k)
{
    return (where){.file = ctx->file,
                   .line = ctx->lineno,
                   .section = global_keys[k].section == SEC_AGENT ? "agent" : "cloudwatch",
                   .key = global_keys[k].name};
}

/* ---- how log groups are created ---- */

static void set_retention(parse_ctx *ctx, const where *w, const char *v, int *out)
{
    if (all_digits(v) && strlen(v) <= 5) {
        int days = atoi(v);
        for (size_t i = 0; i < ARRAY_SIZE(retention_values); i++)
            if (retention_values[i] == days) {
                *out = days;
                return;
            }
    }
    buf b = {0};
    for (size_t i = 1; i < ARRAY_SIZE(retention_values); i++)
        buf_printf(&b, ", %d", retention_values[i]);
    buf_appendc(&b, '\0');
    report(ctx, w, "invalid value \"%s\" (expected 0 for never%s)", v, b.data);
    buf_free(&b);
}

static void set_group_class(parse_ctx *ctx, const where *w, const char *v, char **out)
{
    if (strcmp(v, "STANDARD") == 0 || strcmp(v, "INFREQUENT_ACCESS") == 0) {
        free(*out);
        *out = xstrdup(v);
    } else if (strcmp(v, "DELIVERY") == 0) {
        report(ctx, w, "DELIVERY groups only take logs that AWS services deliver to S3 or "
                       "Firehose, not PutLogEvents (expected STANDARD or INFREQUENT_ACCESS)");
    } else {
        report(ctx, w, "invalid value \"%s\" (expected STANDARD or INFREQUENT_ACCESS)", v);
    }
}

/* arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID, at most 256 characters: the
 * form CreateLogGroup's kmsKeyId takes (a key ARN; not an alias). */
static bool kms_key_arn_ok(const char *v)
{
    char partition[32], region[32], account[16], id[128];
    int end = 0;
    if (strlen(v) > 256 ||
        sscanf(v, "arn:%31[a-z-]:kms:%31[a-z0-9-]:%15[0-9]:key/%127[A-Za-z0-9-]%n", partition,
               region, account, id, &end) != 4 ||
        v[end] != 0)
        return false;
    return strncmp(partition, "aws", 3) == 0 && strlen(account) == 12 && *region;
}

static void set_kms_key(parse_ctx *ctx, const where *w, const char *v, char **out)
{
    if (!kms_key_arn_ok(v)) {
        report(ctx, w,
               "invalid value \"%s\" (expected a KMS key ARN: "
               "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)",
               v);
        return;
    }
    free(*out);
    *out = xstrdup(v);
}

/* One character of a tag key or value, as CloudWatch's pattern
 * [\p{L}\p{Z}\p{N}_.:/=+\-@] has it. Outside ASCII: letters, digits and
 * spaces as the C.UTF-8 locale classifies them. */
static bool tag_char_ok(wchar_t c)
{
    if (c < 0x80)
        return isalnum((int)c) || c == ' ' || strchr("_.:/=+-@", (int)c);
    static locale_t utf8 = (locale_t)0;
    static bool tried;
    if (!tried) {
        tried = true;
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    if (!utf8)
        return true; /* no tables to ask: CloudWatch has the last word */
    return iswalpha_l((wint_t)c, utf8) || iswdigit_l((wint_t)c, utf8) ||
           iswspace_l((wint_t)c, utf8) || iswblank_l((wint_t)c, utf8);
}

/* Characters in s[0..n), or -1 when it is not UTF-8 or has one the pattern
 * does not allow (*bad: its byte offset). */
static long tag_chars(const char *s, size_t n, size_t *bad)
{
    long count = 0;
    for (size_t i = 0; i < n;) {
        /* Decode by hand: mbrtowc follows the process locale, which is "C". */
        unsigned char b = (unsigned char)s[i];
        size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3
                                   : (b & 0xF8) == 0xF0 ? 4 : 0;
        wchar_t c = len == 1 ? b : len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (!ok || !tag_char_ok(c)) {
            *bad = i;
            return -1;
        }
        i += len;
        count++;
    }
    return count;
}

static void add_tag(parse_ctx *ctx, const where *w, const char *v, group_options *g)
{
    const char *eq = strchr(v, '=');
    size_t klen = eq ? (size_t)(eq - v) : 0, bad = 0;
    if (!eq || klen == 0) {
        report(ctx, w, "invalid tag \"%s\" (expected key=value)", v);
        return;
    }
    long kchars = tag_chars(v, klen, &bad);
    long vchars = kchars < 0 ? 0 : tag_chars(eq + 1, strlen(eq + 1), &bad);
    if (kchars < 0 || vchars < 0) {
        report(ctx, w,
               "invalid tag \"%s\": byte %zu of the %s is not allowed (tags take letters, "
               "digits, spaces and _ . : / = + - @)",
               v, bad + 1, kchars < 0 ? "key" : "value");
        return;
    }
    if (kchars > 128 || vchars > 256) {
        report(ctx, w, "invalid tag \"%s\": the %s is longer than %d characters", v,
               kchars > 128 ? "key" : "value", kchars > 128 ? 128 : 256);
        return;
    }
    if (strncmp(v, "aws:", 4) == 0) {
        report(ctx, w, "invalid tag \"%s\": keys starting with aws: are reserved for AWS", v);
        return;
    }
    for (size_t i = 0; i < g->n_tags; i++)
        if (strncmp(g->tags[i], v, klen + 1) == 0) {
            report(ctx, w, "tag key \"%.*s\" given twice in this section", (int)klen, v);
            return;
        }
    g->tags = xrealloc(g->tags, (g->n_tags + 1) * sizeof *g->tags);
    g->tags[g->n_tags++] = xstrdup(v);
}

static void group_options_clear(group_options *g)
{
    free(g->group_class);
    free(g->kms_key_id);
    for (size_t i = 0; i < g->n_tags; i++)
        free(g->tags[i]);
    free(g->tags);
    *g = (group_options){0};
}

#define MAX_GROUP_TAGS 50

static char *xstrdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* What applies to a source's groups: its own settings over [cloudwatch]'s;
 * tags are merged (the source's value wins for the same key). */
static void resolve_groups(parse_ctx *ctx, source_config *s)
{
    const group_options *d = &ctx->cfg->groups, *o = &s->own_groups;
    group_options *g = &s->groups;
    g->retention_days = o->retention_days >= 0 ? o->retention_days : d->retention_days;
    g->group_class = xstrdup_or_null(o->group_class ? o->group_class : d->group_class);
    g->kms_key_id = xstrdup_or_null(o->kms_key_id ? o->kms_key_id : d->kms_key_id);
    for (size_t i = 0; i < d->n_tags; i++) {
        size_t klen = strcspn(d->tags[i], "=");
        bool overridden = false;
        for (size_t j = 0; j < o->n_tags && !overridden; j++)
            overridden = strncmp(o->tags[j], d->tags[i], klen + 1) == 0;
        if (!overridden) {
            g->tags = xrealloc(g->tags, (g->n_tags + 1) * sizeof *g->tags);
            g->tags[g->n_tags++] = xstrdup(d->tags[i]);
        }
    }
    for (size_t j = 0; j < o->n_tags; j++) {
        g->tags = xrealloc(g->tags, (g->n_tags + 1) * sizeof *g->tags);
        g->tags[g->n_tags++] = xstrdup(o->tags[j]);
    }
    if (g->n_tags > MAX_GROUP_TAGS) {
        _cleanup_free_ char *section = xasprintf("source %s", s->name);
        where w = {.file = s->file, .line = s->line, .section = section, .key = "group_tags"};
        report(ctx, &w,
               "%zu tags for its log groups with [cloudwatch]'s (CloudWatch takes at most %d)",
               g->n_tags, MAX_GROUP_TAGS);
    }
}

static void set_global(parse_ctx *ctx, const char *name, const char *v)
{
    where w = here(ctx, name);
    config *c = ctx->cfg;

    int k = -1;
    for (int i = 0; i < GK_MAX; i++)
        if (strcmp(global_keys[i].name, name) == 0) {
            k = i;
            break;
        }
    if (k < 0 || global_keys[k].section != ctx->kind) {
        if (k >= 0)
            report(ctx, &w, "unknown key (it belongs in [%s])",
                   global_keys[k].section == SEC_AGENT ? "agent" : "cloudwatch");
        else {
            bool is_source_key = false;
            for (int i = 0; i < SK_MAX; i++)
                is_source_key |= strcmp(source_keys[i].name, name) == 0;
            report(ctx, &w,
                   is_source_key ? "unknown key (it belongs in a [source NAME] section)"
                                 : "unknown key");
        }
        return;
    }
    if (ctx->global_seen[k] && k != GK_GROUP_TAGS) {
        report(ctx, &w, "set twice in this section (first at line %u)", ctx->global_seen[k]);
        return;
    }
    ctx->global_seen[k] = ctx->lineno;

    switch ((global_key)k) {
    case GK_STATE_DIR:
        set_abs_path(ctx, &w, v, &c->state_dir);
        break;
    case GK_LOG_LEVEL:
        if (log_level_from_string(v, &c->level) < 0)
            report(ctx, &w, "invalid value \"%s\" (expected error, warning, info or debug)", v);
        break;
    case GK_CONTROL_SOCKET:
        set_abs_path(ctx, &w, v, &c->control_socket);
        break;
    case GK_TOTAL_BUFFER_LIMIT:
        set_size(ctx, &w, v, 1, UINT64_MAX, &c->total_buffer_limit);
        break;
    case GK_RESCAN_INTERVAL:
        set_duration(ctx, &w, v, &c->rescan_interval_ms);
        break;
    case GK_CHECKPOINT_INTERVAL:
        set_duration(ctx, &w, v, &c->checkpoint_interval_ms);
        c->checkpoint_interval_set = true;
        break;
    case GK_STATE_SYNC:
        if (strcmp(v, "normal") == 0 || strcmp(v, "full") == 0)
            c->state_sync_full = strcmp(v, "full") == 0;
        else
            report(ctx, &w, "invalid value \"%s\" (expected normal or full)", v);
        break;
    case GK_PLACEHOLDER:
        set_nonempty(ctx, &w, v, &c->placeholder);
        break;
    case GK_REGION:
        if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
            report(ctx, &w, "invalid region \"%s\" (expected auto or a name like us-east-1)", v);
        else
            replace_str(&c->region, v);
        break;
    case GK_ENDPOINT:
        set_url(ctx, &w, v, &c->endpoint);
        break;
    case GK_IMDS_ENDPOINT:
        set_url(ctx, &w, v, &c->imds_endpoint);
        break;
    case GK_CA_FILE:
        if (*v)
            set_abs_path(ctx, &w, v, &c->ca_file);
        else
            replace_str(&c->ca_file, NULL);
        break;
    /* Never echo these values: secrets stay out of messages. */
    case GK_ACCESS_KEY_ID:
        set_optional(&c->access_key_id, v);
        ctx->access_key_at = static_where(ctx, GK_ACCESS_KEY_ID);
        break;
    case GK_SECRET_ACCESS_KEY:
        set_optional(&c->secret_access_key, v);
        ctx->secret_key_at = static_where(ctx, GK_SECRET_ACCESS_KEY);
        break;
    case GK_SESSION_TOKEN:
        set_optional(&c->session_token, v);
        ctx->session_token_at = static_where(ctx, GK_SESSION_TOKEN);
        break;
    case GK_CREATE_GROUP:
        set_bool(ctx, &w, v, &c->create_group);
        break;
    case GK_RETENTION_DAYS:
        set_retention(ctx, &w, v, &c->groups.retention_days);
        c->retention_days = c->groups.retention_days;
        break;
    case GK_GROUP_CLASS:
        set_group_class(ctx, &w, v, &c->groups.group_class);
        break;
    case GK_GROUP_TAGS:
        add_tag(ctx, &w, v, &c->groups);
        break;
    case GK_KMS_KEY_ID:
        set_kms_key(ctx, &w, v, &c->groups.kms_key_id);
        break;
    case GK_FLUSH_INTERVAL:
        set_duration(ctx, &w, v, &c->flush_interval_ms);
        break;
    case GK_MAX_EVENT_SIZE:
        set_size(ctx, &w, v, MIN_EVENT_SIZE, MAX_EVENT_SIZE, &c->max_event_size);
        break;
    case GK_MAX:
        break;
    }
}

/* ---- [source NAME] ----------------------------------------------------- */

static void raw_source_free(raw_source *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n_values; i++)
        free(rs->values[i].value);
    free(rs->values);
    free(rs->name);
    free(rs);
}

static void source_config_clear(source_config *s)
{
    free(s->name);
    free_list(s->paths, s->n_paths);
    free(s->group);
    free(s->stream);
    free(s->multiline_pattern);
    free(s->datetime_format);
    free(s->time_format);
    free_list(s->matches, s->n_matches);
    free_list(s->units, s->n_units);
    free_list(s->include_containers, s->n_include_containers);
    free_list(s->exclude_containers, s->n_exclude_containers);
    group_options_clear(&s->own_groups);
    group_options_clear(&s->groups);
    free(s->file);
    *s = (source_config){0};
}

static void add_source_value(parse_ctx *ctx, const char *name, const char *v)
{
    where w = here(ctx, name);
    int k = -1;
    for (int i = 0; i < SK_MAX; i++)
        if (strcmp(source_keys[i].name, name) == 0) {
            k = i;
            break;
        }
    if (k < 0) {
        const char *home = NULL;
        for (int i = 0; i < GK_MAX; i++)
            if (strcmp(global_keys[i].name, name) == 0)
                home = global_keys[i].section == SEC_AGENT ? "agent" : "cloudwatch";
        if (home)
            report(ctx, &w, "unknown key (it belongs in [%s])", home);
        else
            report(ctx, &w, "unknown key");
        return;
    }
    raw_source *rs = ctx->src;
    if (!source_keys[k].repeatable)
        for (size_t i = 0; i < rs->n_values; i++)
            if (rs->values[i].key == (source_key)k) {
                report(ctx, &w, "set twice in this section (first at line %u)", rs->values[i].line);
                return;
            }
    rs->values = xrealloc(rs->values, (rs->n_values + 1) * sizeof *rs->values);
    rs->values[rs->n_values++] =
        (raw_value){.key = (source_key)k, .value = xstrdup(v), .line = ctx->lineno};
}

/* "docker", "docker or cri", ... for the types in a mask */
static char *types_text(unsigned mask)
{
    const char *names[ARRAY_SIZE(type_names)];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
        if (mask & (1u << i))
            names[n++] = type_names[i];
    return join_choices(names, n);
}

static void apply_source_value(parse_ctx *ctx, source_config *s, const raw_value *rv,
                               const where *w, bool have_type)
{
    const char *v = rv->value;
    int e;
    switch (rv->key) {
    case SK_TYPE:
        break; /* done first */
    case SK_PATH: {
        char **items = NULL;
        size_t n = 0;
        split_list(v, &items, &n);
        if (n == 0)
            report(ctx, w, "empty value");
        for (size_t i = 0; i < n; i++) {
            if (items[i][0] != '/') {
                report(ctx, w, "\"%s\" is not an absolute path", items[i]);
                free(items[i]);
                continue;
            }
            if (have_type && (s->type == SOURCE_DOCKER || s->type == SOURCE_JOURNALD) &&
                s->n_paths >= 1) {
                report(ctx, w, "only one directory allowed for type = %s",
                       source_type_to_string(s->type));
                free(items[i]);
                continue;
            }
            s->paths = xrealloc(s->paths, (s->n_paths + 1) * sizeof *s->paths);
            s->paths[s->n_paths++] = items[i];
        }
        free(items);
        break;
    }
    case SK_GROUP:
        if (set_nonempty(ctx, w, v, &s->group))
            check_template(ctx, w, v);
        break;
    case SK_STREAM:
        if (set_nonempty(ctx, w, v, &s->stream))
            check_template(ctx, w, v);
        break;
    case SK_MODE: {
        static const char *const names[] = {
            [MODE_BLOCKING] = "blocking", [MODE_NON_BLOCKING] = "non-blocking"};
        if (set_enum(ctx, w, v, names, ARRAY_SIZE(names), &e))
            s->mode = (source_mode)e;
        break;
    }
    case SK_DROP: {
        static const char *const names[] = {[DROP_OLDEST] = "oldest", [DROP_NEWEST] = "newest"};
        if (set_enum(ctx, w, v, names, ARRAY_SIZE(names), &e))
            s->drop = (drop_policy)e;
        break;
    }
    case SK_MAX_BUFFER_SIZE:
        set_size(ctx, w, v, MIN_BUFFER_SIZE, UINT64_MAX, &s->max_buffer_size);
        break;
    case SK_CONTAINER_MAX_BUFFER_SIZE:
        set_size(ctx, w, v, MIN_BUFFER_SIZE, UINT64_MAX, &s->container_max_buffer_size);
        break;
    case SK_MAX_STREAMS: {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end || errno || n < 1 || n > 1000000)
            report(ctx, w, "invalid value \"%s\" (expected a number of streams, 1 to 1000000)", v);
        else
            s->max_streams = (size_t)n;
        break;
    }
    case SK_START_AT: {
        static const char *const names[] = {"end", "beginning"};
        if (set_enum(ctx, w, v, names, ARRAY_SIZE(names), &e))
            s->start = e == 0 ? START_AT_END : START_AT_BEGINNING;
        break;
    }
    case SK_MULTILINE_PATTERN: {
        if (!*v)
            break;
        regex_t re;
        int r = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);
        if (r != 0) {
            char msg[256];
            regerror(r, &re, msg, sizeof msg);
            report(ctx, w, "invalid regular expression \"%s\": %s", v, msg);
            break;
        }
        regfree(&re);
        replace_str(&s->multiline_pattern, v);
        break;
    }
    case SK_DATETIME_FORMAT: {
        char bad = 0;
        _cleanup_free_ char *re = *v ? multiline_datetime_regex(v, &bad) : NULL;
        if (*v && !re) {
            report(ctx, w, "unsupported directive %%%c in \"%s\" (supported: %%Y %%y %%m %%d "
                           "%%e %%H %%I %%M %%S %%p %%j %%f %%L %%Z %%z %%b %%h %%B %%a %%A %%T "
                           "%%F %%%%)",
                   bad ? bad : '?', v);
            break;
        }
        set_optional(&s->datetime_format, v);
        break;
    }
    case SK_MULTILINE_TIMEOUT:
        set_duration(ctx, w, v, &s->multiline_timeout_ms);
        break;
    case SK_TIME_FORMAT: {
        char bad = 0;
        if (*v && timeparse_format_check(v, &bad) < 0) {
            report(ctx, w, "unsupported directive %%%c in \"%s\" (supported: %%Y %%y %%m %%d "
                           "%%e %%H %%I %%M %%S %%p %%j %%f %%L %%Z %%z %%b %%h %%B %%a %%A %%T "
                           "%%F %%%%)",
                   bad ? bad : '?', v);
            break;
        }
        set_optional(&s->time_format, v);
        break;
    }
    case SK_MATCH: {
        const char *eq = strchr(v, '=');
        if (!eq || !is_journal_field(v, (size_t)(eq - v)) || strncmp(v, "__", 2) == 0) {
            report(ctx, w,
                   "invalid match \"%s\" (expected FIELD=value with an upper-case field of "
                   "A-Z, 0-9 and _, not starting with a digit or \"__\", e.g. "
                   "_SYSTEMD_UNIT=docker.service)",
                   v);
            break;
        }
        s->matches = xrealloc(s->matches, (s->n_matches + 1) * sizeof *s->matches);
        s->matches[s->n_matches++] = xstrdup(v);
        break;
    }
    case SK_UNITS:
        split_list(v, &s->units, &s->n_units);
        break;
    case SK_PRIORITY:
        if (strlen(v) == 1 && v[0] >= '0' && v[0] <= '7') {
            s->priority = v[0] - '0';
            break;
        }
        for (size_t i = 0; i < ARRAY_SIZE(priority_names); i++)
            if (strcmp(v, priority_names[i]) == 0)
                s->priority = (int)i;
        if (s->priority < 0)
            report(ctx, w,
                   "invalid value \"%s\" (expected 0..7 or emerg, alert, crit, err, warning, "
                   "notice, info or debug)",
                   v);
        break;
    case SK_INCLUDE_CONTAINERS:
        split_list(v, &s->include_containers, &s->n_include_containers);
        break;
    case SK_EXCLUDE_CONTAINERS:
        split_list(v, &s->exclude_containers, &s->n_exclude_containers);
        s->exclude_containers_set = true;
        break;
    case SK_RETENTION_DAYS:
        set_retention(ctx, w, v, &s->own_groups.retention_days);
        break;
    case SK_GROUP_CLASS:
        set_group_class(ctx, w, v, &s->own_groups.group_class);
        break;
    case SK_GROUP_TAGS:
        add_tag(ctx, w, v, &s->own_groups);
        break;
    case SK_KMS_KEY_ID:
        set_kms_key(ctx, w, v, &s->own_groups.kms_key_id);
        break;
    case SK_MAX:
        break;
    }
}

static const raw_value *find_value(const raw_source *rs, source_key k)
{
    for (size_t i = 0; i < rs->n_values; i++)
        if (rs->values[i].key == k)
            return &rs->values[i];
    return NULL;
}

/* Any local process can write CONTAINER_NAME or COM_AMAZONAWS_ECS_* fields
 * (`logger --journald`): names built from them are spoofable unless the
 * source matches on a field journald itself sets about the writer. */
static void warn_spoofable_names(parse_ctx *ctx, const raw_source *rs, const source_config *s)
{
    static const char *const spoofable[] = {
        "{container_name}", "{container_id}",      "{container_id_short}",       "{ecs_",
        "{label:",          "{journal:CONTAINER_", "{journal:COM_AMAZONAWS_ECS_"};
    if (s->n_units)
        return;
    for (size_t i = 0; i < s->n_matches; i++)
        if (strncmp(s->matches[i], "_SYSTEMD_UNIT=", 14) == 0 ||
            strncmp(s->matches[i], "_UID=", 5) == 0)
            return;
    static const source_key keys[] = {SK_GROUP, SK_STREAM};
    for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
        const char *t = keys[k] == SK_GROUP ? s->group : s->stream;
        const raw_value *rv = find_value(rs, keys[k]);
        for (size_t i = 0; t && i < ARRAY_SIZE(spoofable); i++)
            if (strstr(t, spoofable[i])) {
                config *c = ctx->cfg;
                c->warnings = xrealloc(c->warnings, (c->n_warnings + 1) * sizeof *c->warnings);
                c->warnings[c->n_warnings++] = xasprintf(
                    "%s:%u: [%s] %s: warning: names use journal fields that any local process "
                    "can set (CONTAINER_NAME, COM_AMAZONAWS_ECS_*, labels): add a match on "
                    "_SYSTEMD_UNIT= or _UID= (e.g. units = docker) so that only the container "
                    "runtime's entries name streams",
                    ctx->file, rv ? rv->line : rs->line, ctx->section, source_keys[keys[k]].name);
                break;
            }
    }
}

/* Turn the collected lines of one [source] into a source_config (if it has
 * no errors) now that its type is known. */
static void finalize_source(parse_ctx *ctx)
{
    raw_source *rs = TAKE_PTR(ctx->src);
    if (!rs)
        return;

    size_t errors_before = ctx->errs->n;
    const char *section = ctx->section;
    source_config s = {
        .name = xstrdup(rs->name),
        .mode = MODE_BLOCKING,
        .drop = DROP_OLDEST,
        .max_buffer_size = 1 * MIB,
        .start = START_AT_DEFAULT,
        .multiline_timeout_ms = 1000,
        .max_streams = 1000,
        .priority = -1,
        .own_groups = {.retention_days = -1},
        .file = xstrdup(ctx->file),
        .line = rs->line,
    };
    where header = {.file = ctx->file, .line = rs->line, .section = section};

    bool have_type = false;
    const raw_value *t = find_value(rs, SK_TYPE);
    if (!t && !(rs->unreadable & (1u << SK_TYPE))) {
        header.key = "type";
        report(ctx, &header, "missing required key (docker, cri, file or journald)");
    } else if (t) {
        where w = {.file = ctx->file, .line = t->line, .section = section, .key = "type"};
        int e;
        if (set_enum(ctx, &w, t->value, type_names, ARRAY_SIZE(type_names), &e)) {
            s.type = (source_type)e;
            have_type = true;
        }
    }

    bool path_given = false;
    unsigned pattern_line = 0, datetime_line = 0;
    for (size_t i = 0; i < rs->n_values; i++) {
        const raw_value *rv = &rs->values[i];
        where w = {.file = ctx->file,
                   .line = rv->line,
                   .section = section,
                   .key = source_keys[rv->key].name};
        if (have_type && !(source_keys[rv->key].types & (1u << s.type))) {
            _cleanup_free_ char *types = types_text(source_keys[rv->key].types);
            report(ctx, &w, "only valid for type = %s", types);
            continue;
        }
        if (rv->key == SK_PATH)
            path_given = true;
        if (rv->key == SK_MULTILINE_PATTERN && *rv->value)
            pattern_line = rv->line;
        if (rv->key == SK_DATETIME_FORMAT && *rv->value)
            datetime_line = rv->line;
        apply_source_value(ctx, &s, rv, &w, have_type);
    }

    if (!find_value(rs, SK_GROUP) && !(rs->unreadable & (1u << SK_GROUP))) {
        header.key = "group";
        report(ctx, &header, "missing required key");
    }
    if (have_type && s.type == SOURCE_FILE && !path_given && !(rs->unreadable & (1u << SK_PATH))) {
        header.key = "path";
        report(ctx, &header, "missing required key for type = file");
    }
    if (pattern_line && datetime_line) {
        bool pattern_last = pattern_line > datetime_line;
        where w = {.file = ctx->file,
                   .line = MAX(pattern_line, datetime_line),
                   .section = section,
                   .key = pattern_last ? "multiline_pattern" : "datetime_format"};
        report(ctx, &w, "cannot be combined with %s (line %u); set only one of them",
               pattern_last ? "datetime_format" : "multiline_pattern",
               MIN(pattern_line, datetime_line));
    }

    if (have_type && !s.stream) {
        static const char *const default_stream[] = {
            [SOURCE_DOCKER] = "{container_name}",
            [SOURCE_CRI] = "{file_name}",
            [SOURCE_FILE] = "{file_name}",
            [SOURCE_JOURNALD] = "{journal:_SYSTEMD_UNIT}",
        };
        s.stream = xstrdup(default_stream[s.type]);
    }
    if (have_type && s.n_paths == 0 && !path_given) {
        const char *def = s.type == SOURCE_DOCKER ? "/var/lib/docker/containers"
                          : s.type == SOURCE_CRI  ? "/var/log/containers/*.log"
                                                  : NULL;
        if (def) {
            s.paths = xmalloc(sizeof *s.paths);
            s.paths[s.n_paths++] = xstrdup(def);
        }
    }

    if (have_type && s.type == SOURCE_JOURNALD)
        warn_spoofable_names(ctx, rs, &s);
    sort_errors_since(ctx, ctx->src_first_error);
    if (ctx->errs->n == errors_before) {
        config *c = ctx->cfg;
        c->sources = xrealloc(c->sources, (c->n_sources + 1) * sizeof *c->sources);
        c->sources[c->n_sources++] = s;
    } else
        source_config_clear(&s);
    raw_source_free(rs);
}

/* ---- sections and the inih callbacks ---------------------------------- */

static bool valid_source_name(const char *s)
{
    return *s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
                     strlen(s);
}

static void end_section(parse_ctx *ctx)
{
    finalize_source(ctx);
    ctx->kind = SEC_IGNORED;
    free(ctx->section);
    ctx->section = NULL;
}

static void begin_section(parse_ctx *ctx, const char *text, size_t n)
{
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    while (n > 0 && isspace((unsigned char)*text))
        text++, n--;
    _cleanup_free_ char *label = xstrndup(text, n);
    where w = {.file = ctx->file, .line = ctx->lineno};

    memset(ctx->global_seen, 0, sizeof ctx->global_seen);
    if (strcmp(label, "agent") == 0 || strcmp(label, "cloudwatch") == 0) {
        ctx->kind = label[0] == 'a' ? SEC_AGENT : SEC_CLOUDWATCH;
        ctx->section = TAKE_PTR(label);
        return;
    }
    if (strncmp(label, "source", 6) != 0 || (label[6] && !isspace((unsigned char)label[6]))) {
        report(ctx, &w, "unknown section [%s] (expected [agent], [cloudwatch] or [source NAME])",
               label);
        return;
    }

    const char *name = label + 6;
    name += strspn(name, " \t");
    if (!*name) {
        report(ctx, &w, "[%s]: a source needs a name: [source NAME]", label);
        return;
    }
    if (!valid_source_name(name)) {
        report(ctx, &w, "[%s]: invalid source name \"%s\" (allowed characters: A-Z a-z 0-9 _ . -)",
               label, name);
        return;
    }
    for (size_t i = 0; i < ctx->n_declared; i++)
        if (strcmp(ctx->declared[i].name, name) == 0) {
            report(ctx, &w, "[source %s]: duplicate source, first declared at %s:%u", name,
                   ctx->declared[i].file, ctx->declared[i].line);
            return;
        }

    ctx->declared = xrealloc(ctx->declared, (ctx->n_declared + 1) * sizeof *ctx->declared);
    ctx->declared[ctx->n_declared++] =
        (declared_source){.name = xstrdup(name), .file = ctx->file, .line = ctx->lineno};
    ctx->src_first_error = ctx->errs->n;
    ctx->src = xcalloc(1, sizeof *ctx->src);
    *ctx->src = (raw_source){.name = xstrdup(name), .line = ctx->lineno};
    ctx->section = xasprintf("source %s", name);
    ctx->kind = SEC_SOURCE;
}

/* The first of `chars` in s, or an inline comment (';' after whitespace), or
 * the end: the same scan inih does, so both agree on what a line is. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static char *blank_line(char *str)
{
    str[0] = '\n';
    str[1] = '\0';
    return str;
}

static char *config_reader(char *str, int num, void *stream)
{
    parse_ctx *ctx = stream;
    assert(num >= 2);

    errno = 0;
    ssize_t n = getline(&ctx->line, &ctx->line_cap, ctx->f);
    if (n < 0) {
        if (ferror(ctx->f)) {
            where w = {.file = ctx->file};
            report(ctx, &w, "read error: %s", strerror(errno ? errno : EIO));
        }
        return NULL;
    }
    ctx->lineno++;
    where w = here(ctx, NULL);

    char *s = ctx->line;
    size_t len = (size_t)n;
    if (ctx->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3, len -= 3;
    if (memchr(s, '\0', len)) {
        report(ctx, &w, "line contains a NUL byte");
        return blank_line(str);
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    while (len > 0 && isspace((unsigned char)*s))
        s++, len--;
    s[len] = '\0';

    if (len == 0 || *s == ';' || *s == '#')
        return blank_line(str);

    bool fits = len + 2 <= (size_t)num; /* the line, '\n' and NUL */
    if (*s == '[') {
        end_section(ctx);
        w.section = NULL; /* freed by end_section; a header belongs to no section */
        if (!fits) {
            report(ctx, &w, "line too long (%zu characters, at most %d)", len, num - 2);
            return blank_line(str);
        }
        const char *end = find_chars_or_comment(s + 1, "]");
        if (*end != ']') {
            report(ctx, &w, "section header without closing ']'");
            return blank_line(str);
        }
        const char *rest = end + 1;
        rest += strspn(rest, " \t");
        if (*rest && *rest != ';' && *rest != '#')
            report(ctx, &w, "unexpected text after section header: \"%s\"", rest);
        begin_section(ctx, s + 1, (size_t)(end - (s + 1)));
    } else {
        const char *sep = find_chars_or_comment(s, "=:");
        bool has_sep = *sep == '=' || *sep == ':';
        if (!fits) {
            _cleanup_free_ char *key = NULL;
            if (has_sep) {
                size_t klen = (size_t)(sep - s);
                while (klen > 0 && isspace((unsigned char)s[klen - 1]))
                    klen--;
                key = xstrndup(s, klen);
                w.key = key;
                for (int i = 0; ctx->src && i < SK_MAX; i++)
                    if (strcmp(source_keys[i].name, key) == 0)
                        ctx->src->unreadable |= 1u << i;
            }
            report(ctx, &w, "line too long (%zu characters, at most %d)", len, num - 2);
            return blank_line(str);
        }
        if (!has_sep) {
            report(ctx, &w, "syntax error: expected \"key = value\", a [section] or a comment");
            return blank_line(str);
        }
    }
    memcpy(str, s, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *ctx = user;
    where w = here(ctx, NULL);
    if (!*name) {
        report(ctx, &w, "syntax error: missing key name before '='");
        return 1;
    }
    switch (ctx->kind) {
    case SEC_NONE:
        w.key = name;
        report(ctx, &w, "key outside of any section");
        break;
    case SEC_AGENT:
    case SEC_CLOUDWATCH:
        set_global(ctx, name, value);
        break;
    case SEC_SOURCE:
        add_source_value(ctx, name, value);
        break;
    case SEC_IGNORED:
        break;
    }
    /* errors are collected in ctx; a 0 here would only make inih remember a line */
    return 1;
}

static void parse_file(parse_ctx *ctx, const char *path, FILE *f)
{
    ctx->files = xrealloc(ctx->files, (ctx->n_files + 1) * sizeof *ctx->files);
    ctx->files[ctx->n_files++] = xstrdup(path);
    ctx->file = ctx->files[ctx->n_files - 1];
    ctx->f = f;
    ctx->lineno = 0;
    ctx->kind = SEC_NONE;
    free(ctx->section);
    ctx->section = NULL;

    int r = ini_parse_stream(config_reader, ctx, config_handler, ctx);
    end_section(ctx);
    /* The reader only passes lines inih accepts, so this means the two disagree. */
    if (r > 0) {
        where w = {.file = ctx->file, .line = (unsigned)r};
        report(ctx, &w, "syntax error");
    } else if (r < 0) {
        where w = {.file = ctx->file};
        report(ctx, &w, "cannot parse (inih error %d)", r);
    }
    ctx->f = NULL;
}

/* Open a configuration file; 0, or a negative errno with the error reported. */
static int open_config_file(parse_ctx *ctx, const char *path, FILE **out)
{
    where w = {.file = path};
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f) {
        int r = -errno;
        report(ctx, &w, "cannot open: %s", strerror(-r));
        return r;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0) {
        int r = -errno;
        report(ctx, &w, "cannot open: %s", strerror(-r));
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        int r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        report(ctx, &w, "cannot open: %s",
               S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
        return r;
    }
    *out = TAKE_PTR(f);
    return 0;
}

static int dropin_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

static int dropin_compare(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void parse_dropins(parse_ctx *ctx, const char *main_path)
{
    const char *slash = strrchr(main_path, '/');
    _cleanup_free_ char *dir = NULL;
    if (!slash)
        dir = xstrdup("conf.d");
    else
        dir = xasprintf("%.*s/conf.d", (int)(slash - main_path), main_path);

    struct dirent **names = NULL;
    int n = scandir(dir, &names, dropin_filter, dropin_compare);
    if (n < 0) {
        if (errno != ENOENT) {
            where w = {.file = dir};
            report(ctx, &w, "cannot read directory: %s", strerror(errno));
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]->d_name);
        free(names[i]);
        _cleanup_fclose_ FILE *f = NULL;
        if (open_config_file(ctx, path, &f) == 0)
            parse_file(ctx, path, f);
    }
    free(names);
}

static config *config_new_defaults(void)
{
    config *c = xcalloc(1, sizeof *c);
    *c = (config){
        .state_dir = xstrdup("/var/lib/cwlogd"),
        .level = LOG_LEVEL_INFO,
        .control_socket = xstrdup("/run/cwlogd/control.sock"),
        .total_buffer_limit = 256 * MIB,
        .rescan_interval_ms = 10 * 1000,
        .checkpoint_interval_ms = 1000,
        .placeholder = xstrdup("unknown"),
        .region = xstrdup("auto"),
        .create_group = true,
        .retention_days = 0,
        .flush_interval_ms = 5 * 1000,
        .max_event_size = MAX_EVENT_SIZE,
    };
    return c;
}

static void check_credentials(parse_ctx *ctx)
{
    const config *c = ctx->cfg;
    if (c->access_key_id && !c->secret_access_key)
        report(ctx, &ctx->access_key_at, "set without secret_access_key");
    if (c->secret_access_key && !c->access_key_id)
        report(ctx, &ctx->secret_key_at, "set without access_key_id");
    if (c->session_token && !(c->access_key_id && c->secret_access_key))
        report(ctx, &ctx->session_token_at, "set without access_key_id and secret_access_key");
}

static void parse_ctx_done(parse_ctx *ctx)
{
    raw_source_free(ctx->src);
    free(ctx->err_lines);
    free(ctx->section);
    free(ctx->line);
    for (size_t i = 0; i < ctx->n_declared; i++)
        free(ctx->declared[i].name);
    free(ctx->declared);
    for (size_t i = 0; i < ctx->n_files; i++)
        free(ctx->files[i]);
    free(ctx->files);
}

int config_load(const char *path, config **out, config_errors *errs)
{
    assert(path && out && errs);
    *out = NULL;

    parse_ctx ctx = {.cfg = config_new_defaults(), .errs = errs, .errs_base = errs->n};
    size_t errors_before = errs->n;

    _cleanup_fclose_ FILE *f = NULL;
    int r = open_config_file(&ctx, path, &f);
    if (r < 0) {
        config_free(ctx.cfg);
        parse_ctx_done(&ctx);
        return r;
    }
    parse_file(&ctx, path, f);
    parse_dropins(&ctx, path);

    check_credentials(&ctx);
    for (size_t i = 0; i < ctx.cfg->n_sources; i++)
        resolve_groups(&ctx, &ctx.cfg->sources[i]);
    if (ctx.n_declared == 0) {
        where w = {.file = path};
        report(&ctx, &w, "no [source] sections: nothing to forward (add [source NAME])");
    }

    if (errs->n > errors_before) {
        config_free(ctx.cfg);
        parse_ctx_done(&ctx);
        return -EINVAL;
    }
    *out = TAKE_PTR(ctx.cfg);
    parse_ctx_done(&ctx);
    return 0;
}

void config_free(config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_sources; i++)
        source_config_clear(&c->sources[i]);
    free(c->sources);
    for (size_t i = 0; i < c->n_warnings; i++)
        free(c->warnings[i]);
    free(c->warnings);
    free(c->state_dir);
    free(c->control_socket);
    free(c->placeholder);
    free(c->region);
    free(c->endpoint);
    free(c->imds_endpoint);
    free(c->ca_file);
    free(c->access_key_id);
    free(c->secret_access_key);
    free(c->session_token);
    group_options_clear(&c->groups);
    free(c);
}

void config_errors_free(config_errors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    *e = (config_errors){0};
}
