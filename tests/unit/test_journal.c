/* test_journal.c: journal.c against real journal files, written from Journal
 * Export Format text by systemd-journal-remote: entries, binary messages,
 * filters, cursors, vacuuming, change notification, docker's fields. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "journal.h"
#include "util.h"

#define BOOT_ID "3f1b6e0c2d8a4f5e9b7c1a2d3e4f5a6b"
#define T0 1700000000000000ull /* realtime of entry 0, in microseconds */

/* Entry n has realtime T0 + n s and monotonic (n + 1) ms in one boot, so
 * entries written by separate runs (separate files, separate sequence
 * number ids) still have one order, as one host's rotated files do. */
static uint64_t realtime_of(unsigned n)
{
    return T0 + (uint64_t)n * 1000000;
}

typedef struct fixture {
    char root[64];
    char dir[80]; /* the journal directory */
    journal *j;
} fixture;

static const char *remote_binary(void)
{
    static const char *const candidates[] = {"/lib/systemd/systemd-journal-remote",
                                             "/usr/lib/systemd/systemd-journal-remote"};
    const char *env = getenv("CWLOGD_JOURNAL_REMOTE");
    if (env && *env)
        return env;
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    return NULL;
}

static int setup(void **state)
{
    if (!remote_binary()) {
        fprintf(stderr, "systemd-journal-remote not found: install the systemd-journal-remote "
                        "package or set CWLOGD_JOURNAL_REMOTE\n");
        return -1;
    }
    fixture *fx = xcalloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->root, sizeof fx->root, "%s/cwlogd-journal-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx->root))
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "%s/j", fx->root);
    if (mkdir(fx->dir, 0755) < 0)
        return -1;
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    journal_free(fx->j);
    nftw(fx->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- export format ---- */

static void ex_begin(buf *b, unsigned n)
{
    buf_printf(b, "__REALTIME_TIMESTAMP=%llu\n__MONOTONIC_TIMESTAMP=%llu\n_BOOT_ID=%s\n",
               (unsigned long long)realtime_of(n), (unsigned long long)(n + 1) * 1000, BOOT_ID);
}

static void ex_text(buf *b, const char *field_eq_value)
{
    buf_printf(b, "%s\n", field_eq_value);
}

/* A binary field: name, newline, little-endian 64-bit size, the bytes, newline. */
static void ex_binary(buf *b, const char *name, const void *p, size_t n)
{
    buf_printf(b, "%s\n", name);
    uint64_t size = n;
    for (int i = 0; i < 8; i++)
        buf_appendc(b, (char)(size >> (8 * i)));
    buf_append(b, p, n);
    buf_appendc(b, '\n');
}

static void ex_end(buf *b)
{
    buf_appendc(b, '\n');
}

/* Simple entries n = first..last with MESSAGE=m<n>. */
static void ex_range(buf *b, unsigned first, unsigned last)
{
    for (unsigned n = first; n <= last; n++) {
        ex_begin(b, n);
        buf_printf(b, "MESSAGE=m%u\n", n);
        ex_end(b);
    }
}

/* Feed export text to systemd-journal-remote, which writes (or appends to)
 * dir/file, and check it took exactly `expect` entries. */
static void write_journal(fixture *fx, const char *file, buf *b, unsigned expect)
{
    _cleanup_free_ char *logpath = xasprintf("%s/remote.log", fx->root);
    _cleanup_free_ char *cmd =
        xasprintf("'%s' --output='%s/%s' - 2>'%s'", remote_binary(), fx->dir, file, logpath);
    FILE *p = popen(cmd, "w");
    assert_non_null(p);
    assert_int_equal(fwrite(b->data, 1, b->len, p), b->len);
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    char log[4096] = "";
    FILE *f = fopen(logpath, "r");
    assert_non_null(f);
    size_t n = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[n] = '\0';
    char want[64];
    snprintf(want, sizeof want, "writing %u entries", expect);
    if (!strstr(log, want))
        fail_msg("systemd-journal-remote: expected \"%s\", got: %s", want, log);
    buf_free(b);
}

static void write_range(fixture *fx, const char *file, unsigned first, unsigned last)
{
    buf b = {0};
    ex_range(&b, first, last);
    write_journal(fx, file, &b, last - first + 1);
}

static journal *open_dir(fixture *fx, char *const *matches, size_t n_matches, char *const *units,
                         size_t n_units, int priority_max)
{
    journal_free(fx->j);
    fx->j = NULL;
    assert_int_equal(
        journal_open(fx->dir, matches, n_matches, units, n_units, priority_max, &fx->j), 0);
    assert_non_null(fx->j);
    return fx->j;
}

/* Read everything there is now; each MESSAGE is "m<n>": returns the ns in
 * order as a string like "0,1,2". */
static char *read_ids(journal *j)
{
    buf out = {0};
    journal_entry e;
    int r;
    while ((r = journal_next(j, &e)) > 0) {
        assert_true(e.has_message);
        assert_true(e.message_len >= 2 && e.message[0] == 'm');
        unsigned n = (unsigned)strtoul(e.message + 1, NULL, 10);
        assert_int_equal(e.realtime_usec, realtime_of(n));
        buf_printf(&out, "%s%u", out.len ? "," : "", n);
    }
    assert_int_equal(r, 0);
    buf_appendc(&out, '\0');
    return out.data;
}

#define assert_ids(j, expected)                                                                    \
    do {                                                                                           \
        _cleanup_free_ char *got_ = read_ids(j);                                                   \
        assert_string_equal(got_, expected);                                                       \
    } while (0)

/* The cursor of entry n (the filter of j applies). */
static char *cursor_of(journal *j, unsigned n)
{
    assert_int_equal(journal_seek_head(j), 0);
    journal_entry e;
    while (journal_next(j, &e) > 0)
        if (e.realtime_usec == realtime_of(n))
            return xstrdup(e.cursor);
    fail_msg("entry %u not found", n);
    return NULL;
}

/* Wait up to 5 s for the journal's fd to become readable. */
static bool fd_readable(journal *j, int timeout_ms)
{
    struct pollfd p = {.fd = journal_fd(j), .events = (short)journal_events(j)};
    assert_true(p.fd >= 0);
    assert_true(p.events & POLLIN);
    int r = poll(&p, 1, timeout_ms);
    assert_true(r >= 0);
    return r > 0;
}

/* ---- entries ---- */

static void test_reads_every_entry_in_order_with_timestamp_message_and_cursor(void **state)
{
    fixture *fx = *state;
    buf b = {0};
    ex_range(&b, 0, 3);
    ex_begin(&b, 4); /* an entry without MESSAGE */
    ex_text(&b, "SYSLOG_IDENTIFIER=quiet");
    ex_end(&b);
    ex_begin(&b, 5);
    ex_text(&b, "MESSAGE=hello = world ünïcödé");
    ex_end(&b);
    write_journal(fx, "x.journal", &b, 6);

    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    journal_entry e;
    char *cursors[6] = {0};
    for (unsigned n = 0; n < 6; n++) {
        assert_int_equal(journal_next(j, &e), 1);
        assert_int_equal(e.realtime_usec, realtime_of(n));
        assert_non_null(e.cursor);
        cursors[n] = xstrdup(e.cursor);
        if (n < 4) {
            char want[8];
            snprintf(want, sizeof want, "m%u", n);
            assert_true(e.has_message);
            assert_int_equal(e.message_len, strlen(want));
            assert_memory_equal(e.message, want, e.message_len);
            assert_int_equal(e.message[e.message_len], '\0');
        } else if (n == 4) {
            assert_false(e.has_message);
            assert_int_equal(e.message_len, 0);
            assert_string_equal(e.message, "");
            assert_string_equal(journal_field(j, "SYSLOG_IDENTIFIER", NULL), "quiet");
        } else {
            assert_true(e.has_message);
            assert_string_equal(e.message, "hello = world ünïcödé");
            assert_int_equal(e.message_len, strlen("hello = world ünïcödé"));
        }
    }
    assert_int_equal(journal_next(j, &e), 0);
    assert_int_equal(journal_next(j, &e), 0);
    for (unsigned a = 0; a < 6; a++)
        for (unsigned c = a + 1; c < 6; c++)
            assert_string_not_equal(cursors[a], cursors[c]);
    for (unsigned n = 0; n < 6; n++)
        free(cursors[n]);
}

static void test_binary_message_with_nul_and_invalid_utf8_is_read_back_exactly(void **state)
{
    fixture *fx = *state;
    static const unsigned char msg[] = {'a', 0,    'b',  0xff, 0xfe, 0xc3, '(',  '\n',
                                        0,   0x80, 0xed, 0xa0, 0x80, 'z',  '\r', 0};
    buf b = {0};
    ex_begin(&b, 0);
    ex_binary(&b, "MESSAGE", msg, sizeof msg);
    ex_text(&b, "PRIORITY=3");
    ex_end(&b);
    ex_begin(&b, 1);
    /* present but empty (journal-remote ignores a binary field of length 0) */
    ex_text(&b, "MESSAGE=");
    ex_end(&b);
    write_journal(fx, "x.journal", &b, 2);

    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    journal_entry e;
    assert_int_equal(journal_next(j, &e), 1);
    assert_true(e.has_message);
    assert_int_equal(e.message_len, sizeof msg);
    assert_memory_equal(e.message, msg, sizeof msg);
    size_t len = 0;
    const char *raw = journal_field(j, "MESSAGE", &len);
    assert_non_null(raw);
    assert_int_equal(len, sizeof msg);
    assert_memory_equal(raw, msg, sizeof msg);
    assert_string_equal(journal_field(j, "PRIORITY", NULL), "3");

    assert_int_equal(journal_next(j, &e), 1);
    assert_true(e.has_message);
    assert_int_equal(e.message_len, 0);
    assert_int_equal(journal_next(j, &e), 0);
}

/* journal-remote compresses big fields, so this one is stored compressed;
 * older sd-journal releases decompress only up to the data threshold (64 KiB
 * by default) unless it is lifted. */
static void test_large_compressed_message_is_not_truncated(void **state)
{
    fixture *fx = *state;
    size_t size = 300 * 1024 + 7;
    _cleanup_free_ char *big = xmalloc(size);
    for (size_t i = 0; i < size; i++)
        big[i] = (char)('a' + (i / 100) % 26);
    buf b = {0};
    ex_begin(&b, 0);
    ex_binary(&b, "MESSAGE", big, size);
    ex_end(&b);
    write_journal(fx, "x.journal", &b, 1);

    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    journal_entry e;
    assert_int_equal(journal_next(j, &e), 1);
    assert_int_equal(e.message_len, size);
    assert_memory_equal(e.message, big, size);
}

/* Docker's journald driver: CONTAINER_* fields beside MESSAGE; a line over
 * 16 KiB arrives in parts marked CONTAINER_PARTIAL_MESSAGE=true. Values
 * returned earlier stay intact while later fields are read, even when the
 * fields are stored compressed (sd-journal reuses one buffer for those). */
static void test_docker_journald_fields_are_readable_and_stay_valid(void **state)
{
    fixture *fx = *state;
    size_t big = 4000;
    _cleanup_free_ char *part = xmalloc(big);
    _cleanup_free_ char *label = xmalloc(big);
    for (size_t i = 0; i < big; i++) {
        part[i] = (char)('A' + i % 7);
        label[i] = (char)('0' + i % 10);
    }
    buf b = {0};
    ex_begin(&b, 0);
    ex_binary(&b, "MESSAGE", part, big);
    ex_text(&b, "CONTAINER_ID=0123456789ab");
    ex_text(&b, "CONTAINER_ID_FULL=0123456789ab0123456789ab0123456789ab0123456789ab0123456789ab");
    ex_text(&b, "CONTAINER_NAME=ecs-web-1-app-e8c2");
    ex_text(&b, "CONTAINER_TAG=app");
    ex_text(&b, "CONTAINER_PARTIAL_MESSAGE=true");
    ex_text(&b, "SYSLOG_IDENTIFIER=app");
    ex_text(&b, "PRIORITY=6");
    ex_text(&b, "_SYSTEMD_UNIT=docker.service");
    ex_binary(&b, "LABEL_BLOB", label, big);
    ex_end(&b);
    ex_begin(&b, 1);
    ex_text(&b, "MESSAGE=tail of the line");
    ex_text(&b, "CONTAINER_ID=0123456789ab");
    ex_text(&b, "CONTAINER_NAME=ecs-web-1-app-e8c2");
    ex_end(&b);
    write_journal(fx, "x.journal", &b, 2);

    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_null(journal_field(j, "CONTAINER_ID", NULL)); /* no current entry yet */
    journal_entry e;
    assert_int_equal(journal_next(j, &e), 1);
    size_t len = 0;
    const char *id = journal_field(j, "CONTAINER_ID", &len);
    assert_non_null(id);
    assert_int_equal(len, 12);
    assert_string_equal(id, "0123456789ab");
    const char *name = journal_field(j, "CONTAINER_NAME", NULL);
    assert_string_equal(journal_field(j, "CONTAINER_TAG", NULL), "app");
    assert_string_equal(journal_field(j, "CONTAINER_PARTIAL_MESSAGE", NULL), "true");
    assert_string_equal(journal_field(j, "SYSLOG_IDENTIFIER", NULL), "app");
    assert_string_equal(journal_field(j, "PRIORITY", NULL), "6");
    assert_string_equal(journal_field(j, "_SYSTEMD_UNIT", NULL), "docker.service");
    assert_int_equal(strlen(journal_field(j, "CONTAINER_ID_FULL", NULL)), 60);
    const char *blob = journal_field(j, "LABEL_BLOB", &len);
    assert_int_equal(len, big);
    assert_null(journal_field(j, "CONTAINER_NOT_THERE", &len));
    assert_null(journal_field(j, "lowercase", NULL));
    /* Everything handed out for this entry is still what it was. */
    assert_memory_equal(e.message, part, big);
    assert_memory_equal(blob, label, big);
    assert_string_equal(id, "0123456789ab");
    assert_string_equal(name, "ecs-web-1-app-e8c2");

    assert_int_equal(journal_next(j, &e), 1);
    assert_string_equal(e.message, "tail of the line");
    assert_null(journal_field(j, "CONTAINER_PARTIAL_MESSAGE", NULL));
    assert_string_equal(journal_field(j, "CONTAINER_NAME", NULL), "ecs-web-1-app-e8c2");
    assert_int_equal(journal_next(j, &e), 0);
    assert_null(journal_field(j, "CONTAINER_NAME", NULL)); /* no current entry at the end */
}

/* ---- filters ---- */

/* Entries n = 0..7 with SYSLOG_IDENTIFIER, _SYSTEMD_UNIT and PRIORITY set from
 * this table ("" = field absent). */
static const struct {
    const char *ident, *unit, *prio;
} tagged[] = {
    {"a", "docker.service", "6"}, {"b", "docker.service", "3"},
    {"c", "ecs.service", "3"},    {"a", "ecs.service", "2"},
    {"b", "sshd.service", "0"},   {"a", "", "7"},
    {"c", "docker.service", ""},  {"b", "ecs", "5"},
};

static void write_tagged(fixture *fx)
{
    buf b = {0};
    for (unsigned n = 0; n < ARRAY_SIZE(tagged); n++) {
        ex_begin(&b, n);
        buf_printf(&b, "MESSAGE=m%u\n", n);
        buf_printf(&b, "SYSLOG_IDENTIFIER=%s\n", tagged[n].ident);
        if (*tagged[n].unit)
            buf_printf(&b, "_SYSTEMD_UNIT=%s\n", tagged[n].unit);
        if (*tagged[n].prio)
            buf_printf(&b, "PRIORITY=%s\n", tagged[n].prio);
        ex_end(&b);
    }
    write_journal(fx, "x.journal", &b, ARRAY_SIZE(tagged));
}

static void test_matches_on_the_same_field_are_ored(void **state)
{
    fixture *fx = *state;
    write_tagged(fx);
    char *m[] = {"SYSLOG_IDENTIFIER=a", "SYSLOG_IDENTIFIER=c"};
    assert_ids(open_dir(fx, m, 2, NULL, 0, -1), "0,2,3,5,6");
}

static void test_matches_on_different_fields_are_anded(void **state)
{
    fixture *fx = *state;
    write_tagged(fx);
    char *m[] = {"SYSLOG_IDENTIFIER=b", "PRIORITY=3"};
    assert_ids(open_dir(fx, m, 2, NULL, 0, -1), "1");
    char *m3[] = {"SYSLOG_IDENTIFIER=a", "_SYSTEMD_UNIT=ecs.service", "SYSLOG_IDENTIFIER=b",
                  "PRIORITY=2", "PRIORITY=0"};
    /* (a or b) and ecs.service and (2 or 0) */
    assert_ids(open_dir(fx, m3, 5, NULL, 0, -1), "3");
    char *none[] = {"SYSLOG_IDENTIFIER=a", "PRIORITY=3"};
    assert_ids(open_dir(fx, none, 2, NULL, 0, -1), "");
}

static void test_units_are_ored_among_themselves_and_anded_with_other_fields(void **state)
{
    fixture *fx = *state;
    write_tagged(fx);
    char *u[] = {"docker.service", "sshd"}; /* "sshd" means sshd.service */
    assert_ids(open_dir(fx, NULL, 0, u, 2, -1), "0,1,4,6");
    char *m[] = {"SYSLOG_IDENTIFIER=b"};
    assert_ids(open_dir(fx, m, 1, u, 2, -1), "1,4");
    /* a unit given as a match is one more alternative for the same field */
    char *mu[] = {"_SYSTEMD_UNIT=ecs.service"};
    char *u1[] = {"sshd.service"};
    assert_ids(open_dir(fx, mu, 1, u1, 1, -1), "2,3,4");
    /* a name with a dot is taken as it is; "ecs" (entry 7's unit) is not "ecs.service" */
    char *dotted[] = {"ecs.service"};
    assert_ids(open_dir(fx, NULL, 0, dotted, 1, -1), "2,3");
}

static void test_priority_ceiling_keeps_0_to_n_and_drops_entries_without_priority(void **state)
{
    fixture *fx = *state;
    write_tagged(fx);
    assert_ids(open_dir(fx, NULL, 0, NULL, 0, 3), "1,2,3,4");
    assert_ids(open_dir(fx, NULL, 0, NULL, 0, 0), "4");
    assert_ids(open_dir(fx, NULL, 0, NULL, 0, 7), "0,1,2,3,4,5,7");
    char *u[] = {"docker"};
    assert_ids(open_dir(fx, NULL, 0, u, 1, 5), "1");
}

static void test_priority_ceiling_narrows_a_priority_match_instead_of_widening_it(void **state)
{
    fixture *fx = *state;
    write_tagged(fx);
    char *m[] = {"PRIORITY=6", "PRIORITY=2"};
    assert_ids(open_dir(fx, m, 2, NULL, 0, 3), "3");
    char *m2[] = {"PRIORITY=5", "SYSLOG_IDENTIFIER=b"};
    assert_ids(open_dir(fx, m2, 2, NULL, 0, 4), "");
}

static void test_invalid_filters_are_rejected_with_einval(void **state)
{
    fixture *fx = *state;
    char long_field[80];
    memset(long_field, 'A', 65);
    strcpy(long_field + 65, "=x");
    char *bad[] = {"lower=x", "1FIELD=x", "__CURSOR=x", "NOEQUALS",
                   "=x",      "FI-ELD=x", "FIELD x=y",  long_field};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        journal *j = NULL;
        assert_int_equal(journal_open(fx->dir, &bad[i], 1, NULL, 0, -1, &j), -EINVAL);
        assert_null(j);
    }
    journal *j = NULL;
    char *empty_unit[] = {""};
    assert_int_equal(journal_open(fx->dir, NULL, 0, empty_unit, 1, -1, &j), -EINVAL);
    assert_int_equal(journal_open(fx->dir, NULL, 0, NULL, 0, 8, &j), -EINVAL);
    assert_int_equal(journal_open(fx->dir, NULL, 0, NULL, 0, -2, &j), -EINVAL);
    assert_null(j);

    /* the edges that are valid */
    long_field[64] = '=';
    long_field[65] = '\0';
    char *good[] = {"A1_B=", "_SYSTEMD_UNIT=x.service", "F=a=b", "_X=", long_field};
    assert_int_equal(journal_open(fx->dir, good, ARRAY_SIZE(good), NULL, 0, 7, &j), 0);
    journal_free(j);
    journal_free(NULL);
}

/* ---- positions ---- */

static void test_resuming_after_any_cursor_repeats_nothing_and_loses_nothing(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 3);
    write_range(fx, "y.journal", 4, 6); /* a second file, as after a rotation */
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    static const char *const rest[] = {"1,2,3,4,5,6", "2,3,4,5,6", "3,4,5,6", "4,5,6",
                                       "5,6",         "6",         ""};
    for (unsigned k = 0; k <= 6; k++) {
        _cleanup_free_ char *c = cursor_of(j, k);
        journal *fresh = open_dir(fx, NULL, 0, NULL, 0, -1);
        assert_int_equal(journal_seek_after_cursor(fresh, c), 0);
        assert_ids(fresh, rest[k]);
        j = fresh;
    }
}

static void test_resuming_under_a_filter_continues_with_matching_entries(void **state)
{
    fixture *fx = *state;
    write_tagged(fx);
    char *m[] = {"SYSLOG_IDENTIFIER=b"};
    journal *j = open_dir(fx, m, 1, NULL, 0, -1);
    _cleanup_free_ char *c = cursor_of(j, 1);
    j = open_dir(fx, m, 1, NULL, 0, -1);
    assert_int_equal(journal_seek_after_cursor(j, c), 0);
    assert_ids(j, "4,7");
}

static void test_resuming_at_the_last_entry_then_reading_new_ones(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 2);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    _cleanup_free_ char *c = cursor_of(j, 2);
    j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_seek_after_cursor(j, c), 0);
    assert_ids(j, "");
    write_range(fx, "x.journal", 3, 4);
    assert_true(fd_readable(j, 5000));
    assert_true(journal_process(j) > JOURNAL_NOP);
    assert_ids(j, "3,4");
}

static void test_cursor_of_a_vacuumed_file_reports_a_gap_and_resumes_at_oldest_left(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 2);
    write_range(fx, "y.journal", 3, 5);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    _cleanup_free_ char *mid = cursor_of(j, 1);
    _cleanup_free_ char *last = cursor_of(j, 2);
    journal_free(fx->j);
    fx->j = NULL;

    _cleanup_free_ char *x = xasprintf("%s/x.journal", fx->dir);
    assert_int_equal(unlink(x), 0);
    j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_seek_after_cursor(j, mid), 1);
    assert_ids(j, "3,4,5");
    assert_int_equal(journal_seek_after_cursor(j, last), 1);
    assert_ids(j, "3,4,5");
    /* a cursor that is still there is no gap */
    _cleanup_free_ char *c4 = cursor_of(j, 4);
    assert_int_equal(journal_seek_after_cursor(j, c4), 0);
    assert_ids(j, "5");
}

static void test_cursor_with_every_file_vacuumed_reports_a_gap_and_reads_new_entries(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 2);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    _cleanup_free_ char *c = cursor_of(j, 1);
    journal_free(fx->j);
    fx->j = NULL;
    _cleanup_free_ char *x = xasprintf("%s/x.journal", fx->dir);
    assert_int_equal(unlink(x), 0);

    j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_seek_after_cursor(j, c), 1);
    assert_ids(j, "");
    write_range(fx, "z.journal", 3, 4);
    assert_true(fd_readable(j, 5000));
    assert_true(journal_process(j) > JOURNAL_NOP);
    assert_ids(j, "3,4");
}

static void test_malformed_cursor_is_einval(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 1);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_seek_after_cursor(j, "not a cursor"), -EINVAL);
    assert_int_equal(journal_seek_after_cursor(j, ""), -EINVAL);
    /* the journal is still usable */
    assert_int_equal(journal_seek_head(j), 0);
    assert_ids(j, "0,1");
}

static void test_seek_head_rereads_everything(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 2);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_ids(j, "0,1,2");
    assert_int_equal(journal_seek_head(j), 0);
    assert_ids(j, "0,1,2");
}

static void test_seek_tail_returns_only_entries_added_later(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 2);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_seek_tail(j), 0);
    assert_ids(j, "");
    write_range(fx, "x.journal", 3, 4);
    assert_true(fd_readable(j, 5000));
    assert_true(journal_process(j) > JOURNAL_NOP);
    assert_ids(j, "3,4");
}

static void test_seek_tail_on_an_empty_directory_reads_every_file_that_appears(void **state)
{
    fixture *fx = *state;
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_seek_tail(j), 0);
    assert_ids(j, "");
    write_range(fx, "x.journal", 0, 1);
    assert_true(fd_readable(j, 5000));
    assert_true(journal_process(j) > JOURNAL_NOP);
    assert_ids(j, "0,1");
}

/* ---- change notification ---- */

static void test_appends_and_new_files_make_the_fd_readable_and_are_read(void **state)
{
    fixture *fx = *state;
    write_range(fx, "x.journal", 0, 1);
    journal *j = open_dir(fx, NULL, 0, NULL, 0, -1);
    assert_int_equal(journal_timeout_ms(j), -1); /* a local file system signals changes */
    assert_ids(j, "0,1");
    while (fd_readable(j, 0))
        assert_true(journal_process(j) >= 0);
    assert_int_equal(journal_process(j), JOURNAL_NOP);
    assert_false(fd_readable(j, 50));

    /* appended to the same file */
    write_range(fx, "x.journal", 2, 3);
    assert_true(fd_readable(j, 5000));
    assert_int_equal(journal_process(j), JOURNAL_APPEND);
    assert_ids(j, "2,3");

    /* a new file (rotation) */
    write_range(fx, "y.journal", 4, 5);
    assert_true(fd_readable(j, 5000));
    int r;
    bool invalidated = false;
    do {
        r = journal_process(j);
        assert_true(r >= 0);
        invalidated |= r == JOURNAL_INVALIDATE;
    } while (r != JOURNAL_NOP);
    assert_true(invalidated);
    assert_ids(j, "4,5");
    assert_false(fd_readable(j, 50));
}

static void test_open_of_a_missing_directory_fails(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *missing = xasprintf("%s/nope", fx->root);
    journal *j = NULL;
    int r = journal_open(missing, NULL, 0, NULL, 0, -1, &j);
    assert_true(r < 0);
    assert_null(j);
}

/* The host's own journal may hold anything or nothing; opening it and
 * reading at its tail must work either way. */
static void test_the_local_journal_opens_and_reads_from_its_tail(void **state)
{
    fixture *fx = *state;
    assert_int_equal(journal_open(NULL, NULL, 0, NULL, 0, 7, &fx->j), 0);
    assert_true(journal_fd(fx->j) >= 0);
    assert_int_equal(journal_seek_tail(fx->j), 0);
    journal_entry e;
    assert_true(journal_next(fx->j, &e) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_reads_every_entry_in_order_with_timestamp_message_and_cursor),
        T(test_binary_message_with_nul_and_invalid_utf8_is_read_back_exactly),
        T(test_large_compressed_message_is_not_truncated),
        T(test_docker_journald_fields_are_readable_and_stay_valid),
        T(test_matches_on_the_same_field_are_ored),
        T(test_matches_on_different_fields_are_anded),
        T(test_units_are_ored_among_themselves_and_anded_with_other_fields),
        T(test_priority_ceiling_keeps_0_to_n_and_drops_entries_without_priority),
        T(test_priority_ceiling_narrows_a_priority_match_instead_of_widening_it),
        T(test_invalid_filters_are_rejected_with_einval),
        T(test_resuming_after_any_cursor_repeats_nothing_and_loses_nothing),
        T(test_resuming_under_a_filter_continues_with_matching_entries),
        T(test_resuming_at_the_last_entry_then_reading_new_ones),
        T(test_cursor_of_a_vacuumed_file_reports_a_gap_and_resumes_at_oldest_left),
        T(test_cursor_with_every_file_vacuumed_reports_a_gap_and_reads_new_entries),
        T(test_malformed_cursor_is_einval),
        T(test_seek_head_rereads_everything),
        T(test_seek_tail_returns_only_entries_added_later),
        T(test_seek_tail_on_an_empty_directory_reads_every_file_that_appears),
        T(test_appends_and_new_files_make_the_fd_readable_and_are_read),
        T(test_open_of_a_missing_directory_fails),
        T(test_the_local_journal_opens_and_reads_from_its_tail),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
