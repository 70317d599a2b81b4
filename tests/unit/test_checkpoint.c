/* test_checkpoint.c: the SQLite checkpoint store: round trips, staging and
 * commit, corrupt databases moved aside, and commits that fail and retry. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "checkpoint.h"
#include "log.h"
#include "util.h"

/* ---- fixtures and helpers ---- */

typedef struct fixture {
    char dir[64];
    char *db_path;
} fixture;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    fixture *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cwlogd-test-checkpoint-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    fx->db_path = xasprintf("%s/state.db", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->db_path);
    free(fx);
    return 0;
}

static checkpoint *open_ok(const char *dir)
{
    checkpoint *cp = NULL;
    assert_int_equal(checkpoint_open(dir, &cp), 0);
    assert_non_null(cp);
    return cp;
}

static cp_file make_file(const char *source, const char *path, uint64_t dev, uint64_t ino,
                         uint64_t offset, int64_t updated_ms, size_t fp_len)
{
    cp_file f = {
        .source = (char *)source,
        .path = (char *)path,
        .dev = dev,
        .ino = ino,
        .fingerprint_len = fp_len,
        .offset = offset,
        .updated_ms = updated_ms,
    };
    for (size_t i = 0; i < fp_len; i++)
        f.fingerprint[i] = (unsigned char)(dev * 31 + ino * 7 + i);
    return f;
}

static void assert_file_equal(const cp_file *got, const cp_file *want)
{
    assert_string_equal(got->source, want->source);
    assert_string_equal(got->path, want->path);
    assert_int_equal(got->dev, want->dev);
    assert_int_equal(got->ino, want->ino);
    assert_int_equal(got->fingerprint_len, want->fingerprint_len);
    assert_memory_equal(got->fingerprint, want->fingerprint, want->fingerprint_len);
    assert_int_equal(got->offset, want->offset);
    assert_int_equal(got->updated_ms, want->updated_ms);
}

static void assert_found(checkpoint *cp, const cp_file *want)
{
    cp_file got = {0};
    assert_int_equal(checkpoint_find_file(cp, want->source, want->dev, want->ino, &got), 0);
    assert_file_equal(&got, want);
    cp_file_clear(&got);
}

static void assert_not_found(checkpoint *cp, const char *source, uint64_t dev, uint64_t ino)
{
    cp_file got = {0};
    assert_int_equal(checkpoint_find_file(cp, source, dev, ino, &got), -ENOENT);
}

static size_t list_count(checkpoint *cp, const char *source)
{
    cp_file *files = NULL;
    size_t n = 99;
    assert_int_equal(checkpoint_list_files(cp, source, &files, &n), 0);
    for (size_t i = 0; i < n; i++)
        cp_file_clear(&files[i]);
    free(files);
    return n;
}

/* A second, independent connection: what another process would see. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static char *raw_text(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    char *v = xstrdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* stderr into a pipe (not a file: one test limits file sizes). */
static int cap_saved = -1, cap_read = -1;

static void capture_begin(void)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stderr);
    cap_saved = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    cap_read = p[0];
}

static char *capture_end(void)
{
    fflush(stderr);
    dup2(cap_saved, 2);
    close(cap_saved);
    buf b = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = read(cap_read, chunk, sizeof(chunk))) > 0)
        buf_append(&b, chunk, (size_t)n);
    close(cap_read);
    buf_appendc(&b, '\0');
    return b.data;
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void write_bytes(const char *path, off_t at, const void *data, size_t len, bool create)
{
    int fd = open(path, O_WRONLY | (create ? O_CREAT | O_TRUNC : 0), 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
    close(fd);
}

static void *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    void *p = xmalloc((size_t)st.st_size);
    assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

static void fill_random(void *p, size_t len, uint64_t seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        c[i] = (unsigned char)(seed >> 56);
    }
}

/* A committed, checkpointed state.db with `rows` file rows of source "s". */
static void make_valid_db(const char *dir, int rows)
{
    checkpoint *cp = open_ok(dir);
    for (int i = 0; i < rows; i++) {
        _cleanup_free_ char *path = xasprintf("/var/log/file-%04d.log", i);
        cp_file f = make_file("s", path, 1, (uint64_t)i, (uint64_t)i * 100, 1000 + i, 64);
        assert_int_equal(checkpoint_put_file(cp, &f), 0);
    }
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);
}

/* The single new state.db.corrupt-* entry in dir (ignoring `except`), its
 * time checked against [t0, t1]. Returns its name. */
static char *find_moved(const char *dir, time_t t0, time_t t1, const char *const *except)
{
    regex_t re;
    assert_int_equal(regcomp(&re, "^state\\.db\\.corrupt-([0-9]+)(\\.[0-9]+)?$", REG_EXTENDED), 0);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *found = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        regmatch_t m[3];
        if (regexec(&re, e->d_name, 3, m, 0) != 0)
            continue;
        bool skip = false;
        for (size_t i = 0; except && except[i]; i++)
            skip = skip || strcmp(e->d_name, except[i]) == 0;
        if (skip)
            continue;
        assert_null(found); /* exactly one */
        long long t = strtoll(e->d_name + m[1].rm_so, NULL, 10);
        assert_true(t >= (long long)t0 && t <= (long long)t1);
        found = xstrdup(e->d_name);
    }
    closedir(d);
    regfree(&re);
    assert_non_null(found);
    return found;
}

static bool exists(const char *dir, const char *name)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* The fresh database after a move-aside is fully usable. */
static void assert_fresh_db_works(const char *dir, const char *db_path)
{
    checkpoint *cp = open_ok(dir);
    assert_int_equal(list_count(cp, "s"), 0);
    cp_file f = make_file("s", "/fresh", 9, 9, 99, 1, 8);
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);
    cp = open_ok(dir);
    assert_found(cp, &f);
    checkpoint_close(cp);
    assert_int_equal(raw_int(db_path, "PRAGMA user_version"), 1);
    _cleanup_free_ char *check = raw_text(db_path, "PRAGMA quick_check");
    assert_string_equal(check, "ok");
}

/* ---- tests ---- */

static void test_open_creates_a_missing_state_dir_with_mode_0700(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *dir = xasprintf("%s/a/b/cwlogd", fx->dir);
    checkpoint *cp = open_ok(dir);
    _cleanup_free_ char *want = xasprintf("%s/state.db", dir);
    assert_string_equal(checkpoint_path(cp), want);
    checkpoint_close(cp);

    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(want, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

static void test_open_fails_with_enotdir_naming_a_state_dir_that_is_a_file(void **state)
{
    fixture *fx = *state;
    _cleanup_free_ char *file = xasprintf("%s/plain", fx->dir);
    write_bytes(file, 0, "x", 1, true);
    _cleanup_free_ char *below = xasprintf("%s/sub", file);

    checkpoint *cp = NULL;
    capture_begin();
    int r1 = checkpoint_open(file, &cp);
    int r2 = checkpoint_open(below, &cp);
    _cleanup_free_ char *log = capture_end();
    assert_int_equal(r1, -ENOTDIR);
    assert_int_equal(r2, -ENOTDIR);
    assert_null(cp);
    assert_non_null(strstr(log, file));
    assert_non_null(strstr(log, below));
}

static void test_state_db_uses_wal_and_schema_version_1(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    cp_file f = make_file("s", "/p", 1, 1, 1, 1, 1);
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    assert_true(exists(fx->dir, "state.db-wal"));

    _cleanup_free_ char *mode = raw_text(fx->db_path, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    assert_int_equal(raw_int(fx->db_path, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                                          "('files', 'journal', 'streams')"),
                     3);
    checkpoint_close(cp);
}

static void test_file_rows_round_trip_across_close_and_reopen(void **state)
{
    fixture *fx = *state;
    cp_file rows[] = {
        make_file("a", "/x/b.log", 1, 2, 100, 5000, 16),
        make_file("a", "/x/a.log", UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 5, 7000,
                  CP_FINGERPRINT_MAX),
        make_file("a", "/x/a.log", 3, 4, 0, 6000, 0),
        make_file("b", "/y/c.log", 1, 2, 42, 1, 3),
    };
    checkpoint *cp = open_ok(fx->dir);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
        assert_int_equal(checkpoint_put_file(cp, &rows[i]), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);

    cp = open_ok(fx->dir);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
        assert_found(cp, &rows[i]);
    assert_not_found(cp, "a", 2, 1); /* dev and ino are not interchangeable */
    assert_not_found(cp, "c", 1, 2);

    /* Ordered by path, then updated_ms. */
    cp_file *files = NULL;
    size_t n = 0;
    assert_int_equal(checkpoint_list_files(cp, "a", &files, &n), 0);
    assert_int_equal(n, 3);
    assert_file_equal(&files[0], &rows[2]);
    assert_file_equal(&files[1], &rows[1]);
    assert_file_equal(&files[2], &rows[0]);
    for (size_t i = 0; i < n; i++)
        cp_file_clear(&files[i]);
    free(files);
    assert_int_equal(list_count(cp, "b"), 1);
    assert_int_equal(list_count(cp, "nope"), 0);

    assert_int_equal(checkpoint_delete_file(cp, "a", 1, 2), 0);
    assert_int_equal(checkpoint_delete_source(cp, "b"), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);

    cp = open_ok(fx->dir);
    assert_not_found(cp, "a", 1, 2);
    assert_found(cp, &rows[1]);
    assert_found(cp, &rows[2]);
    assert_int_equal(list_count(cp, "a"), 2);
    assert_int_equal(list_count(cp, "b"), 0);
    checkpoint_close(cp);
}

static void test_staged_writes_are_read_back_but_invisible_to_others_until_commit(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    assert_false(checkpoint_pending(cp));

    cp_file f = make_file("s", "/p", 7, 8, 1234, 99, 32);
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    assert_true(checkpoint_pending(cp));
    assert_found(cp, &f);
    assert_int_equal(list_count(cp, "s"), 1);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files"), 0);

    assert_int_equal(checkpoint_commit(cp), 0);
    assert_false(checkpoint_pending(cp));
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files WHERE source = 's' AND "
                                          "dev = 7 AND ino = 8 AND \"offset\" = 1234"),
                     1);
    assert_int_equal(checkpoint_commit(cp), 0); /* nothing staged: no-op */

    /* A staged delete hides the committed row from reads only. */
    assert_int_equal(checkpoint_delete_file(cp, "s", 7, 8), 0);
    assert_not_found(cp, "s", 7, 8);
    assert_int_equal(list_count(cp, "s"), 0);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files"), 1);
    assert_int_equal(checkpoint_commit(cp), 0);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files"), 0);
    checkpoint_close(cp);
}

static void test_delete_source_then_put_keeps_only_the_later_rows(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    cp_file old1 = make_file("s", "/old1", 1, 1, 10, 1, 4);
    cp_file old2 = make_file("s", "/old2", 1, 2, 20, 1, 4);
    cp_file other = make_file("t", "/other", 1, 1, 30, 1, 4);
    assert_int_equal(checkpoint_put_file(cp, &old1), 0);
    assert_int_equal(checkpoint_put_file(cp, &old2), 0);
    assert_int_equal(checkpoint_put_file(cp, &other), 0);
    assert_int_equal(checkpoint_put_cursor(cp, "s", "old-cursor"), 0);
    assert_int_equal(checkpoint_commit(cp), 0);

    cp_file staged_then_wiped = make_file("s", "/gone", 5, 5, 1, 1, 4);
    assert_int_equal(checkpoint_put_file(cp, &staged_then_wiped), 0);
    assert_int_equal(checkpoint_delete_source(cp, "s"), 0);
    cp_file fresh = make_file("s", "/new", 1, 2, 50, 2, 4);
    assert_int_equal(checkpoint_put_file(cp, &fresh), 0);

    /* Reads already reflect the wipe and the later put. */
    char *cursor = NULL;
    assert_int_equal(checkpoint_get_cursor(cp, "s", &cursor), -ENOENT);
    assert_not_found(cp, "s", 1, 1);
    assert_not_found(cp, "s", 5, 5);
    assert_found(cp, &fresh);
    assert_int_equal(list_count(cp, "s"), 1);

    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files WHERE source = 's'"), 1);
    assert_int_equal(raw_int(fx->db_path, "SELECT \"offset\" FROM files WHERE source = 's'"), 50);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM journal"), 0);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files WHERE source = 't'"), 1);
}

static void test_put_replaces_the_row_with_the_same_key(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    cp_file v1 = make_file("s", "/var/log/app.log", 10, 20, 100, 1000, 8);
    assert_int_equal(checkpoint_put_file(cp, &v1), 0);
    assert_int_equal(checkpoint_commit(cp), 0);

    /* Same key, renamed and further along: staged over committed. */
    cp_file v2 = make_file("s", "/var/log/app.log.1", 10, 20, 900, 2000, 8);
    v2.fingerprint[0] ^= 0xff;
    assert_int_equal(checkpoint_put_file(cp, &v2), 0);
    assert_found(cp, &v2);
    assert_int_equal(list_count(cp, "s"), 1);
    /* Same dev/ino under another source is another row. */
    cp_file t = make_file("t", "/var/log/app.log", 10, 20, 5, 3000, 8);
    assert_int_equal(checkpoint_put_file(cp, &t), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);

    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files WHERE source = 's'"), 1);
    cp = open_ok(fx->dir);
    assert_found(cp, &v2);
    assert_found(cp, &t);
    checkpoint_close(cp);
}

static void test_put_without_updated_ms_stamps_the_current_time(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    cp_file f = make_file("s", "/p", 1, 1, 1, 0, 0);
    int64_t before = now_realtime_ms();
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    int64_t after = now_realtime_ms();
    cp_file got = {0};
    assert_int_equal(checkpoint_find_file(cp, "s", 1, 1, &got), 0);
    assert_true(got.updated_ms >= before && got.updated_ms <= after);
    cp_file_clear(&got);
    checkpoint_close(cp);
}

static void test_journal_cursor_get_put_and_persist(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    char *c = NULL;
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), -ENOENT);
    assert_int_equal(checkpoint_put_cursor(cp, "j", "s=abc;i=1"), 0);
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), 0);
    assert_string_equal(c, "s=abc;i=1");
    free(c);
    assert_int_equal(checkpoint_commit(cp), 0);
    assert_int_equal(checkpoint_put_cursor(cp, "j", "s=abc;i=2"), 0);
    assert_int_equal(checkpoint_put_cursor(cp, "k", "other"), 0);
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), 0);
    assert_string_equal(c, "s=abc;i=2");
    free(c);
    checkpoint_close(cp); /* commits */

    cp = open_ok(fx->dir);
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), 0);
    assert_string_equal(c, "s=abc;i=2");
    free(c);
    assert_int_equal(checkpoint_delete_source(cp, "j"), 0);
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), -ENOENT);
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);

    cp = open_ok(fx->dir);
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), -ENOENT);
    assert_int_equal(checkpoint_get_cursor(cp, "k", &c), 0);
    assert_string_equal(c, "other");
    free(c);
    checkpoint_close(cp);
}

static void test_known_groups_and_streams_are_remembered_and_forgotten(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    assert_false(checkpoint_stream_known(cp, "/g", NULL));
    assert_int_equal(checkpoint_put_stream(cp, "/g", NULL), 0);
    assert_true(checkpoint_stream_known(cp, "/g", NULL));
    assert_false(checkpoint_stream_known(cp, "/g", "s1"));
    assert_int_equal(checkpoint_put_stream(cp, "/g", "s1"), 0);
    assert_int_equal(checkpoint_put_stream(cp, "/g", "s2"), 0);
    assert_true(checkpoint_stream_known(cp, "/g", "s1"));
    assert_false(checkpoint_stream_known(cp, "/h", "s1"));
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);

    cp = open_ok(fx->dir);
    assert_true(checkpoint_stream_known(cp, "/g", NULL));
    assert_true(checkpoint_stream_known(cp, "/g", "s1"));
    assert_int_equal(checkpoint_forget_stream(cp, "/g", "s1"), 0);
    assert_false(checkpoint_stream_known(cp, "/g", "s1"));
    assert_true(checkpoint_stream_known(cp, "/g", "s2"));
    assert_true(checkpoint_stream_known(cp, "/g", NULL));
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);

    cp = open_ok(fx->dir);
    assert_false(checkpoint_stream_known(cp, "/g", "s1"));
    assert_true(checkpoint_stream_known(cp, "/g", "s2"));
    assert_true(checkpoint_stream_known(cp, "/g", NULL));
    checkpoint_close(cp);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM streams WHERE stream_name = ''"),
                     1);
}

static void test_state_sync_normal_by_default_full_when_asked_and_commits_counted(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    assert_int_equal(checkpoint_synchronous(cp), 1); /* NORMAL */
    assert_int_equal(checkpoint_set_sync(cp, true), 0);
    assert_int_equal(checkpoint_synchronous(cp), 2); /* FULL */
    assert_int_equal(checkpoint_commits(cp), 0);
    assert_int_equal(checkpoint_commit(cp), 0); /* nothing staged: not a transaction */
    assert_int_equal(checkpoint_commits(cp), 0);
    cp_file f = make_file("s", "/p", 1, 2, 3, 4, 5);
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    assert_int_equal(checkpoint_commits(cp), 1);
    assert_int_equal(checkpoint_set_sync(cp, false), 0);
    assert_int_equal(checkpoint_synchronous(cp), 1);
    checkpoint_close(cp);
}

static void test_close_commits_pending_writes(void **state)
{
    fixture *fx = *state;
    checkpoint *cp = open_ok(fx->dir);
    cp_file f = make_file("s", "/p", 1, 2, 3, 4, 5);
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    checkpoint_close(cp);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files"), 1);
    checkpoint_close(NULL);
}

/* Open a damaged state.db; check it was moved aside under the documented
 * name, with the log naming both paths and the reason. Returns the name. */
static char *open_damaged(fixture *fx, const char *reason)
{
    time_t t0 = time(NULL);
    capture_begin();
    checkpoint *cp = NULL;
    int r = checkpoint_open(fx->dir, &cp);
    _cleanup_free_ char *log = capture_end();
    time_t t1 = time(NULL);
    assert_int_equal(r, 0);
    checkpoint_close(cp);

    char *moved = find_moved(fx->dir, t0, t1, NULL);
    _cleanup_free_ char *moved_path = xasprintf("%s/%s", fx->dir, moved);
    assert_non_null(strstr(log, fx->db_path));
    assert_non_null(strstr(log, moved_path));
    assert_non_null(strstr(log, reason));
    assert_int_equal(count_substr(log, "is unusable"), 1);
    assert_int_equal(count_substr(log, "\n"), 1); /* one line */
    return moved;
}

static void test_random_bytes_state_db_is_moved_aside_with_its_wal(void **state)
{
    fixture *fx = *state;
    unsigned char junk[8192];
    fill_random(junk, sizeof(junk), 1);
    write_bytes(fx->db_path, 0, junk, sizeof(junk), true);
    _cleanup_free_ char *wal = xasprintf("%s-wal", fx->db_path);
    write_bytes(wal, 0, junk, 1000, true);

    _cleanup_free_ char *moved = open_damaged(fx, "file is not a database");
    _cleanup_free_ char *moved_path = xasprintf("%s/%s", fx->dir, moved);
    size_t len;
    _cleanup_free_ void *kept = read_all(moved_path, &len);
    assert_int_equal(len, sizeof(junk));
    assert_memory_equal(kept, junk, sizeof(junk));
    _cleanup_free_ char *moved_wal = xasprintf("%s-wal", moved);
    assert_true(exists(fx->dir, moved_wal));
    assert_fresh_db_works(fx->dir, fx->db_path);
}

static void test_state_db_with_an_overwritten_page_is_moved_aside(void **state)
{
    fixture *fx = *state;
    make_valid_db(fx->dir, 200);
    int64_t page = raw_int(fx->db_path, "PRAGMA page_size");
    assert_true(raw_int(fx->db_path, "PRAGMA page_count") > 3);
    unsigned char junk[65536];
    assert_true((size_t)page <= sizeof(junk));
    fill_random(junk, (size_t)page, 2);
    write_bytes(fx->db_path, (off_t)page, junk, (size_t)page, false); /* page 2 */

    _cleanup_free_ char *moved = open_damaged(fx, "quick_check");
    assert_fresh_db_works(fx->dir, fx->db_path);
}

static void test_truncated_state_db_is_moved_aside(void **state)
{
    fixture *fx = *state;
    make_valid_db(fx->dir, 400);
    struct stat st;
    assert_int_equal(stat(fx->db_path, &st), 0);
    assert_int_equal(truncate(fx->db_path, st.st_size / 2 + 100), 0);

    _cleanup_free_ char *moved = open_damaged(fx, "malformed");
    assert_fresh_db_works(fx->dir, fx->db_path);
}

static void test_state_db_of_a_newer_schema_is_moved_aside(void **state)
{
    fixture *fx = *state;
    raw_exec(fx->db_path, "CREATE TABLE future (x); PRAGMA user_version = 99;");

    _cleanup_free_ char *moved = open_damaged(fx, "schema version 99");
    _cleanup_free_ char *moved_path = xasprintf("%s/%s", fx->dir, moved);
    assert_int_equal(raw_int(moved_path, "PRAGMA user_version"), 99);
    assert_fresh_db_works(fx->dir, fx->db_path);
}

static void test_move_aside_never_overwrites_an_earlier_corrupt_copy(void **state)
{
    fixture *fx = *state;
    /* Copies named for this second and the next two already exist. */
    time_t now = time(NULL);
    char *names[4] = {0};
    for (int i = 0; i < 3; i++) {
        names[i] = xasprintf("state.db.corrupt-%lld", (long long)now + i);
        _cleanup_free_ char *p = xasprintf("%s/%s", fx->dir, names[i]);
        write_bytes(p, 0, "old", 3, true);
    }
    write_bytes(fx->db_path, 0, "this is not sqlite, just text that is long enough", 49, true);

    time_t t0 = time(NULL);
    capture_begin();
    checkpoint *cp = NULL;
    int r = checkpoint_open(fx->dir, &cp);
    free(capture_end());
    time_t t1 = time(NULL);
    assert_int_equal(r, 0);
    checkpoint_close(cp);

    _cleanup_free_ char *moved = find_moved(fx->dir, t0, t1, (const char *const *)names);
    if (t1 <= now + 2) /* the plain name was taken: a numbered one is used */
        assert_non_null(strchr(moved + strlen("state.db.corrupt-"), '.'));
    for (int i = 0; i < 3; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", fx->dir, names[i]);
        size_t len;
        _cleanup_free_ void *data = read_all(p, &len);
        assert_int_equal(len, 3);
        free(names[i]);
    }
}

/* Captures the checkpoint's own connection (the one whose main database is
 * in memory) so a test can make it read-only, as a read-only mount would. */
static sqlite3 *cp_connection;

static int capture_connection(sqlite3 *db, const char **err, const struct sqlite3_api_routines *api)
{
    const char *f = sqlite3_db_filename(db, "main");
    if (!f || !*f)
        cp_connection = db;
    return SQLITE_OK;
}

static void set_file_size_limit(rlim_t limit)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void test_failed_commits_keep_staged_rows_until_a_commit_succeeds(void **state)
{
    fixture *fx = *state;
    cp_connection = NULL;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))capture_connection), SQLITE_OK);
    checkpoint *cp = open_ok(fx->dir);
    sqlite3_cancel_auto_extension((void (*)(void))capture_connection);
    assert_non_null(cp_connection);

    cp_file before = make_file("s", "/before", 1, 1, 10, 1, 4);
    assert_int_equal(checkpoint_put_file(cp, &before), 0);
    assert_int_equal(checkpoint_commit(cp), 0);

    cp_file f = make_file("s", "/during", 1, 2, 20, 2, 4);
    assert_int_equal(checkpoint_put_file(cp, &f), 0);
    assert_int_equal(checkpoint_put_cursor(cp, "j", "cur"), 0);

    capture_begin();
    /* Disk full: no file may grow, so the WAL cannot take the commit. */
    signal(SIGXFSZ, SIG_IGN);
    set_file_size_limit(1);
    int r1 = checkpoint_commit(cp);
    int r2 = checkpoint_commit(cp);
    cp_file more = make_file("s", "/staged-while-failing", 1, 3, 30, 3, 4);
    int r_put = checkpoint_put_file(cp, &more);
    int r3 = checkpoint_commit(cp);
    set_file_size_limit(RLIM_INFINITY);
    signal(SIGXFSZ, SIG_DFL);

    /* Read-only: a different cause, logged once more. */
    assert_int_equal(sqlite3_exec(cp_connection, "PRAGMA query_only = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    int r4 = checkpoint_commit(cp);
    int r5 = checkpoint_commit(cp);
    assert_int_equal(sqlite3_exec(cp_connection, "PRAGMA query_only = 0", NULL, NULL, NULL),
                     SQLITE_OK);
    bool pending = checkpoint_pending(cp);
    int64_t committed = raw_int(fx->db_path, "SELECT count(*) FROM files");
    int r6 = checkpoint_commit(cp);
    _cleanup_free_ char *log = capture_end();

    assert_true(r1 < 0);
    assert_true(r2 < 0);
    assert_int_equal(r_put, 0);
    assert_true(r3 < 0);
    assert_int_equal(r4, -EROFS);
    assert_int_equal(r5, -EROFS);
    assert_true(pending);
    assert_int_equal(committed, 1); /* only "before" reached the file */
    assert_int_equal(r6, 0);
    assert_false(checkpoint_pending(cp));

    assert_int_equal(count_substr(log, "cannot commit"), 2);
    assert_int_equal(count_substr(log, "work again"), 1);
    assert_non_null(strstr(log, fx->db_path));

    checkpoint_close(cp);
    cp = open_ok(fx->dir);
    assert_found(cp, &before);
    assert_found(cp, &f);
    assert_found(cp, &more);
    char *c = NULL;
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), 0);
    assert_string_equal(c, "cur");
    free(c);
    checkpoint_close(cp);
}

static void
test_corruption_found_while_running_moves_the_db_aside_and_keeps_staged_rows(void **state)
{
    fixture *fx = *state;
    make_valid_db(fx->dir, 20);
    checkpoint *cp = open_ok(fx->dir);
    cp_file committed = make_file("s", "/var/log/file-0003.log", 1, 3, 300, 1003, 64);
    assert_found(cp, &committed);
    /* Committed by this instance (only the journal page changes), so no
     * longer staged: it must not reappear in the fresh database. */
    assert_int_equal(checkpoint_put_cursor(cp, "j", "before"), 0);
    assert_int_equal(checkpoint_commit(cp), 0);
    cp_file staged = make_file("s", "/staged", 7, 7, 77, 7, 4);
    assert_int_equal(checkpoint_put_file(cp, &staged), 0);

    /* Another writer changes the WAL (so cached pages are re-read) and the
     * files table's page in state.db is then damaged underneath. */
    raw_exec(fx->db_path, "INSERT INTO journal VALUES ('x', 'y')");
    int64_t page = raw_int(fx->db_path, "PRAGMA page_size");
    int64_t root = raw_int(fx->db_path, "SELECT rootpage FROM sqlite_schema WHERE name = 'files'");
    unsigned char junk[65536];
    fill_random(junk, (size_t)page, 3);
    write_bytes(fx->db_path, (off_t)((root - 1) * page), junk, (size_t)page, false);

    time_t t0 = time(NULL);
    capture_begin();
    cp_file got = {0};
    int r = checkpoint_find_file(cp, "s", 1, 3, &got);
    _cleanup_free_ char *log = capture_end();
    time_t t1 = time(NULL);

    /* The row was in the damaged file; the staged one survives the move. */
    assert_int_equal(r, -ENOENT);
    _cleanup_free_ char *moved = find_moved(fx->dir, t0, t1, NULL);
    _cleanup_free_ char *moved_path = xasprintf("%s/%s", fx->dir, moved);
    assert_non_null(strstr(log, moved_path));
    assert_non_null(strstr(log, "malformed"));
    _cleanup_free_ char *moved_wal = xasprintf("%s-wal", moved);
    assert_true(exists(fx->dir, moved_wal));

    assert_found(cp, &staged);
    char *c = NULL;
    assert_int_equal(checkpoint_get_cursor(cp, "j", &c), -ENOENT);
    assert_int_equal(checkpoint_commit(cp), 0);
    checkpoint_close(cp);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM files"), 1);
    assert_int_equal(raw_int(fx->db_path, "SELECT count(*) FROM journal"), 0);
    cp = open_ok(fx->dir);
    assert_found(cp, &staged);
    checkpoint_close(cp);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_creates_a_missing_state_dir_with_mode_0700),
        T(test_open_fails_with_enotdir_naming_a_state_dir_that_is_a_file),
        T(test_state_db_uses_wal_and_schema_version_1),
        T(test_file_rows_round_trip_across_close_and_reopen),
        T(test_staged_writes_are_read_back_but_invisible_to_others_until_commit),
        T(test_delete_source_then_put_keeps_only_the_later_rows),
        T(test_put_replaces_the_row_with_the_same_key),
        T(test_put_without_updated_ms_stamps_the_current_time),
        T(test_journal_cursor_get_put_and_persist),
        T(test_known_groups_and_streams_are_remembered_and_forgotten),
        T(test_state_sync_normal_by_default_full_when_asked_and_commits_counted),
        T(test_close_commits_pending_writes),
        T(test_random_bytes_state_db_is_moved_aside_with_its_wal),
        T(test_state_db_with_an_overwritten_page_is_moved_aside),
        T(test_truncated_state_db_is_moved_aside),
        T(test_state_db_of_a_newer_schema_is_moved_aside),
        T(test_move_aside_never_overwrites_an_earlier_corrupt_copy),
        T(test_failed_commits_keep_staged_rows_until_a_commit_succeeds),
        T(test_corruption_found_while_running_moves_the_db_aside_and_keeps_staged_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
