/* journal.c: a thin reader over sd-journal for the journald source: filters
 * built like journalctl's, cursor resumption with gap detection, entries
 * whose bytes stay valid while the caller looks at other fields. */
#include "journal.h"

#include <assert.h>
#include <limits.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "log.h"
#include "util.h"

/* Field values are copied out of sd-journal: the pointer it returns is only
 * valid until the next sd_journal_get_data() (a compressed field is
 * decompressed into one shared buffer), and a caller reads MESSAGE and then
 * CONTAINER_ID. The copies go to a bump arena reset per entry, so a steady
 * stream of entries does not allocate. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

struct journal {
    sd_journal *sd;
    char *name; /* for messages: the directory, or "the local journal" */
    char *dir;  /* the directory, NULL for the local journal */
    char *cursor;
    chunk *arena;
    bool current; /* positioned on an entry (journal_field works) */
    bool pending; /* positioned on an entry journal_next has not returned yet */
    log_ratelimit field_rl;
};

enum { MAX_FIELD_NAME = 64 };

static void arena_reset(journal *j)
{
    if (!j->arena)
        return;
    if (!j->arena->next) {
        j->arena->used = 0;
        return;
    }
    /* Several chunks: replace them by one that holds as much, so the next
     * entry of the same size fits without allocating. */
    size_t total = 0;
    for (chunk *c = j->arena, *next; c; c = next) {
        next = c->next;
        total += c->cap;
        free(c);
    }
    j->arena = xmalloc(sizeof(chunk) + total);
    *j->arena = (chunk){.cap = total};
}

/* A NUL-terminated copy of p[0..n) that lives until arena_reset(). */
static const char *arena_copy(journal *j, const void *p, size_t n)
{
    chunk *c = j->arena;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = MAX(n + 1, (size_t)4096);
        if (c)
            cap = MAX(cap, c->cap * 2);
        chunk *fresh = xmalloc(sizeof(chunk) + cap);
        *fresh = (chunk){.next = c, .cap = cap};
        j->arena = c = fresh;
    }
    char *dst = c->data + c->used;
    memcpy(dst, p, n);
    dst[n] = '\0';
    c->used += n + 1;
    return dst;
}

static void forget_entry(journal *j)
{
    arena_reset(j);
    free(j->cursor);
    j->cursor = NULL;
    j->current = false;
    j->pending = false;
}

/* sd-journal's rules for a field that can be matched: those journald accepts
 * from clients, plus trusted '_' fields, but not the "__" pseudo-fields. */
static const char *match_field_problem(const char *s, size_t n)
{
    if (n == 0)
        return "empty field name";
    if (n > MAX_FIELD_NAME)
        return "field name longer than 64 bytes";
    if (s[0] >= '0' && s[0] <= '9')
        return "field name starts with a digit";
    if (n >= 2 && s[0] == '_' && s[1] == '_')
        return "\"__\" fields (cursor, timestamps) cannot be matched";
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return "field names use only A-Z, 0-9 and _";
    return NULL;
}

static int add_match(journal *j, const char *m)
{
    int r = sd_journal_add_match(j->sd, m, strlen(m));
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot add match \"%s\": %m", j->name, m);
    return 0;
}

static int add_filter(journal *j, char *const *matches, size_t n_matches, char *const *units,
                      size_t n_units, int priority_max)
{
    if (priority_max < -1 || priority_max > 7)
        return log_error_errno(-EINVAL, "journal %s: invalid priority %d (expected 0..7)", j->name,
                               priority_max);
    for (size_t i = 0; i < n_matches; i++) {
        const char *m = matches[i];
        const char *eq = strchr(m, '=');
        const char *why = eq ? match_field_problem(m, (size_t)(eq - m)) : "no '=' (FIELD=value)";
        if (why)
            return log_error_errno(-EINVAL, "journal %s: invalid match \"%s\": %s", j->name, m,
                                   why);
    }
    for (size_t i = 0; i < n_units; i++)
        if (!units[i][0])
            return log_error_errno(-EINVAL, "journal %s: empty unit name", j->name);

    /* Within one conjunction term sd-journal ORs matches on the same field and
     * ANDs the fields, which is exactly what matches and units mean. */
    int r;
    for (size_t i = 0; i < n_matches; i++)
        if ((r = add_match(j, matches[i])) < 0)
            return r;
    for (size_t i = 0; i < n_units; i++) {
        _cleanup_free_ char *m =
            xasprintf("_SYSTEMD_UNIT=%s%s", units[i], strchr(units[i], '.') ? "" : ".service");
        if ((r = add_match(j, m)) < 0)
            return r;
    }
    if (priority_max < 0)
        return 0;
    /* A separate term: in the same one, PRIORITY=0..N would be ORed with a
     * PRIORITY match given above and widen it instead of capping it. */
    r = sd_journal_add_conjunction(j->sd);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot add a conjunction: %m", j->name);
    for (int p = 0; p <= priority_max; p++) {
        char m[] = "PRIORITY=0";
        m[sizeof m - 2] = (char)('0' + p);
        if ((r = add_match(j, m)) < 0)
            return r;
    }
    return 0;
}

static void journal_freep(journal **j)
{
    journal_free(*j);
}

int journal_open(const char *dir, char *const *matches, size_t n_matches, char *const *units,
                 size_t n_units, int priority_max, journal **out)
{
    assert(out);
    assert(matches || n_matches == 0);
    assert(units || n_units == 0);

    _cleanup_(journal_freep) journal *j = xmalloc(sizeof *j);
    *j = (journal){
        .name = dir ? xstrdup(dir) : xstrdup("(local)"),
        .dir = dir ? xstrdup(dir) : NULL,
        .field_rl = LOG_RATELIMIT_INIT,
    };
    int r = dir ? sd_journal_open_directory(&j->sd, dir, 0)
                : sd_journal_open(&j->sd, SD_JOURNAL_LOCAL_ONLY);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot open: %m", j->name);
    /* 0 = no limit: older sd-journal releases (the systemd 219 era) decompress
     * a field only up to the threshold, 64 KiB by default, and return it cut
     * short. 252 ignores the threshold there. */
    r = sd_journal_set_data_threshold(j->sd, 0);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot set the data threshold: %m", j->name);
    /* Set up change notification now rather than on the caller's first
     * journal_fd(): files created in between would otherwise go unnoticed. */
    r = sd_journal_get_fd(j->sd);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot watch for changes: %m", j->name);
    r = add_filter(j, matches, n_matches, units, n_units, priority_max);
    if (r < 0)
        return r;
    *out = TAKE_PTR(j);
    return 0;
}

void journal_free(journal *j)
{
    if (!j)
        return;
    sd_journal_close(j->sd);
    forget_entry(j);
    free(j->arena);
    free(j->name);
    free(j->dir);
    free(j);
}

int journal_fd(journal *j)
{
    assert(j);
    return sd_journal_get_fd(j->sd);
}

int journal_events(journal *j)
{
    assert(j);
    return sd_journal_get_events(j->sd);
}

int journal_timeout_ms(journal *j)
{
    assert(j);
    uint64_t t;
    int r = sd_journal_get_timeout(j->sd, &t);
    if (r < 0) {
        log_error_errno(r, "journal %s: cannot get the wake-up time: %m", j->name);
        return -1;
    }
    if (t == UINT64_MAX)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    if (t <= now)
        return 0;
    return (int)MIN((t - now + 999) / 1000, (uint64_t)INT_MAX);
}

int journal_process(journal *j)
{
    assert(j);
    int r = sd_journal_process(j->sd);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot process changes: %m", j->name);
    switch (r) {
    case SD_JOURNAL_APPEND:
        return JOURNAL_APPEND;
    case SD_JOURNAL_INVALIDATE:
        return JOURNAL_INVALIDATE;
    default:
        return JOURNAL_NOP;
    }
}

int journal_seek_head(journal *j)
{
    assert(j);
    forget_entry(j);
    int r = sd_journal_seek_head(j->sd);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot seek to the head: %m", j->name);
    return 0;
}

int journal_seek_tail(journal *j)
{
    assert(j);
    forget_entry(j);
    /* sd_journal_next() right after sd_journal_seek_tail() returns the last
     * entry (252 does), so step back onto that entry: the next read is the one
     * after it. On an empty journal the tail position does not see files that
     * appear later, and the head is the same place anyway. */
    int r = sd_journal_seek_tail(j->sd);
    if (r >= 0)
        r = sd_journal_previous(j->sd);
    if (r == 0)
        r = sd_journal_seek_head(j->sd);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot seek to the tail: %m", j->name);
    return 0;
}

char *journal_tail_cursor(journal *j)
{
    assert(j);
    char *c = NULL;
    /* Right after journal_seek_tail() the position is the last entry itself. */
    if (sd_journal_get_cursor(j->sd, &c) < 0)
        return NULL;
    return c;
}

int journal_end_cursor(journal *j, char **cursor)
{
    assert(j);
    assert(cursor);
    *cursor = NULL;
    /* A second view of the same files without the filter: the end of the
     * whole journal, wherever the last matching entry is. */
    sd_journal *all = NULL;
    int r = j->dir ? sd_journal_open_directory(&all, j->dir, 0)
                   : sd_journal_open(&all, SD_JOURNAL_LOCAL_ONLY);
    if (r >= 0)
        r = sd_journal_seek_tail(all);
    if (r >= 0)
        r = sd_journal_previous(all);
    if (r > 0)
        r = sd_journal_get_cursor(all, cursor);
    sd_journal_close(all);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot find its end: %m", j->name);
    return 0;
}

/* Seek to the cursor and step onto the first matching entry at or after
 * it: 1 and the result of comparing it with the cursor in *same, 0 when
 * there is none (the position stays), or a negative errno (logged). */
static int seek_and_step(journal *j, const char *cursor, bool *same)
{
    forget_entry(j);
    int r = sd_journal_seek_cursor(j->sd, cursor);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot seek to cursor %s: %m", j->name, cursor);
    /* A seek only sets a position; the next entry at or after it is the
     * cursor's own when it still exists (and matches), else the one after. */
    r = sd_journal_next(j->sd);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot read after cursor %s: %m", j->name, cursor);
    if (r == 0)
        return 0;
    r = sd_journal_test_cursor(j->sd, cursor);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot compare with cursor %s: %m", j->name, cursor);
    *same = r > 0;
    return 1;
}

int journal_seek_after_position(journal *j, const char *cursor)
{
    assert(j);
    assert(cursor);
    bool same = false;
    int r = seek_and_step(j, cursor, &same);
    if (r < 0)
        return r;
    /* The position's own entry was there before; anything else is new. */
    if (r > 0 && !same)
        j->pending = true;
    return 0;
}

int journal_seek_after_cursor(journal *j, const char *cursor)
{
    assert(j);
    assert(cursor);
    bool same = false;
    int r = seek_and_step(j, cursor, &same);
    if (r < 0)
        return r;
    if (r == 0) {
        /* Nothing at or after the position: the cursor's entry is gone too.
         * The position stays, so later entries are read from there. */
        log_warning("journal %s: cursor %s not found, continuing with new entries", j->name,
                    cursor);
        return 1;
    }
    if (same)
        return 0; /* on the cursor's entry, which was read before */
    j->pending = true;
    log_warning("journal %s: cursor %s not found (entries vacuumed or rotated away?), "
                "continuing with the next entry still there",
                j->name, cursor);
    return 1;
}

int journal_next(journal *j, journal_entry *e)
{
    assert(j);
    assert(e);
    bool pending = j->pending;
    forget_entry(j);
    if (!pending) {
        int r = sd_journal_next(j->sd);
        if (r < 0)
            return log_error_errno(r, "journal %s: cannot read the next entry: %m", j->name);
        if (r == 0)
            return 0;
    }
    j->current = true;

    uint64_t usec;
    int r = sd_journal_get_realtime_usec(j->sd, &usec);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot read an entry's timestamp: %m", j->name);
    r = sd_journal_get_cursor(j->sd, &j->cursor);
    if (r < 0)
        return log_error_errno(r, "journal %s: cannot read an entry's cursor: %m", j->name);

    size_t len;
    const char *msg = journal_field(j, "MESSAGE", &len);
    *e = (journal_entry){
        .realtime_usec = usec,
        .message = msg ? msg : "",
        .message_len = msg ? len : 0,
        .has_message = msg != NULL,
        .cursor = j->cursor,
    };
    return 1;
}

const char *journal_field(journal *j, const char *name, size_t *len)
{
    assert(j);
    assert(name);
    if (!j->current)
        return NULL;
    size_t n = strlen(name);
    if (n == 0 || n > MAX_FIELD_NAME)
        return NULL;
    const void *data;
    size_t size;
    int r = sd_journal_get_data(j->sd, name, &data, &size);
    if (r < 0) {
        /* A damaged or unsupported (compression) field: the entry still counts
         * as read, without this field. */
        uint64_t suppressed;
        if (r != -ENOENT && r != -EINVAL && log_ratelimit_ok(&j->field_rl, &suppressed)) {
            if (suppressed)
                log_warning_errno(r,
                                  "journal %s: cannot read field %s at %s: %m "
                                  "(%llu more suppressed)",
                                  j->name, name, j->cursor ? j->cursor : "?",
                                  (unsigned long long)suppressed);
            else
                log_warning_errno(r, "journal %s: cannot read field %s at %s: %m", j->name, name,
                                  j->cursor ? j->cursor : "?");
        }
        return NULL;
    }
    /* The data is "NAME=value". */
    if (size < n + 1 || memcmp(data, name, n) != 0 || ((const char *)data)[n] != '=')
        return NULL;
    if (len)
        *len = size - n - 1;
    return arena_copy(j, (const char *)data + n + 1, size - n - 1);
}
