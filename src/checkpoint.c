/* checkpoint.c: file offsets, journald cursors and known log groups/streams in
 * SQLite (state_dir/state.db), staged in memory and committed in batches. */
#include "checkpoint.h"

#include <assert.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "util.h"

/* How staging works, and why this way:
 *
 * The connection's main database is in memory and holds only the staged
 * (not yet committed) rows; state.db is ATTACHed as "disk". Puts and deletes
 * go to the staged tables. checkpoint_commit() applies them to disk in one
 * BEGIN IMMEDIATE transaction and empties the staged tables only after COMMIT
 * succeeded. Reads return the staged row for a key when there is one, else
 * the committed row, so they see their own writes.
 *
 * The alternative, a transaction on state.db held open between commits, loses
 * the staged rows whenever COMMIT fails (the transaction is rolled back), so a
 * copy in memory would be needed anyway. Here a failed commit (disk full,
 * read-only, I/O error) leaves the staged rows untouched and the next commit
 * applies them again. Applying twice is harmless: every staged row is an
 * upsert or delete by key.
 *
 * Moving a corrupt state.db aside only detaches and re-attaches "disk", so
 * rows staged at that moment survive and land in the fresh database with the
 * next commit. Rows already committed to the corrupt file are lost; the agent
 * puts each file's position again on its next acknowledgement and otherwise
 * starts sources from the configured start position. */

/* WAL with synchronous=NORMAL (the default) writes each commit to the WAL
 * without an fsync: a crash of this process loses nothing committed, a power
 * loss may undo the commits since the last WAL checkpoint (those events are
 * sent again, never lost). FULL (state_sync = full) fsyncs every commit. */
#define CP_BUSY_TIMEOUT_MS 1000 /* only another writer (an operator's sqlite3) can hold us up */
#define CP_REATTACH_INTERVAL_MS 10000

/* Schema migrations, applied in order; migrations[i] takes user_version i to
 * i + 1. Add a version by appending a step. */
static const char *const migrations[] = {
    "CREATE TABLE disk.files ("
    "  source TEXT NOT NULL, path TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
    "  fingerprint BLOB NOT NULL, \"offset\" INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (source, dev, ino)) WITHOUT ROWID;"
    "CREATE TABLE disk.journal (source TEXT PRIMARY KEY, cursor TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE disk.streams (group_name TEXT NOT NULL, stream_name TEXT NOT NULL,"
    "  PRIMARY KEY (group_name, stream_name)) WITHOUT ROWID;",
};
#define CP_SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))

/* `deleted`/`known` = 0 in a staged row means the key is deleted/forgotten;
 * staged_wiped lists sources whose committed rows are all deleted. */
static const char staged_schema[] =
    "CREATE TABLE main.staged_files ("
    "  source TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT,"
    "  fingerprint BLOB, \"offset\" INTEGER, updated_ms INTEGER, deleted INTEGER NOT NULL,"
    "  PRIMARY KEY (source, dev, ino)) WITHOUT ROWID;"
    "CREATE TABLE main.staged_wiped (source TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TABLE main.staged_journal (source TEXT PRIMARY KEY, cursor TEXT NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE TABLE main.staged_streams (group_name TEXT NOT NULL, stream_name TEXT NOT NULL,"
    "  known INTEGER NOT NULL, PRIMARY KEY (group_name, stream_name)) WITHOUT ROWID;";

/* Wiped sources first: any staged row of a wiped source was written after
 * the wipe (checkpoint_delete_source drops the earlier ones). */
/* A commit runs after every answer CloudWatch gives, so its statements are
 * prepared once rather than parsed from text each time. */
static const char *const commit_sql[] = {
    "BEGIN IMMEDIATE",
    "DELETE FROM disk.files WHERE source IN (SELECT source FROM main.staged_wiped)",
    "DELETE FROM disk.journal WHERE source IN (SELECT source FROM main.staged_wiped)",
    "DELETE FROM disk.files WHERE (source, dev, ino) IN"
    "  (SELECT source, dev, ino FROM main.staged_files WHERE deleted)",
    "INSERT OR REPLACE INTO disk.files"
    "  (source, path, dev, ino, fingerprint, \"offset\", updated_ms)"
    "  SELECT source, path, dev, ino, fingerprint, \"offset\", updated_ms"
    "  FROM main.staged_files WHERE NOT deleted",
    "INSERT OR REPLACE INTO disk.journal (source, cursor)"
    "  SELECT source, cursor FROM main.staged_journal",
    "DELETE FROM disk.streams WHERE (group_name, stream_name) IN"
    "  (SELECT group_name, stream_name FROM main.staged_streams WHERE NOT known)",
    "INSERT OR REPLACE INTO disk.streams (group_name, stream_name)"
    "  SELECT group_name, stream_name FROM main.staged_streams WHERE known",
    "COMMIT",
};

static const char *const clear_staged_sql[] = {
    "BEGIN",
    "DELETE FROM main.staged_files",
    "DELETE FROM main.staged_wiped",
    "DELETE FROM main.staged_journal",
    "DELETE FROM main.staged_streams",
    "COMMIT",
};
#define N_COMMIT_SQL ARRAY_SIZE(commit_sql)
#define N_CLEAR_SQL ARRAY_SIZE(clear_staged_sql)

/* Statements kept prepared for the calls made per file or per flush. */
enum {
    ST_PUT_FILE,
    ST_DELETE_FILE,
    ST_FIND_FILE,
    ST_LIST_FILES,
    ST_WIPE_FILES,
    ST_WIPE_CURSOR,
    ST_WIPE_MARK,
    ST_PUT_CURSOR,
    ST_GET_CURSOR,
    ST_PUT_STREAM,
    ST_STREAM_KNOWN,
    ST_MAX,
};

static const char *const statement_sql[ST_MAX] = {
    [ST_PUT_FILE] = "INSERT OR REPLACE INTO main.staged_files"
                    " (source, dev, ino, path, fingerprint, \"offset\", updated_ms, deleted)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
    [ST_DELETE_FILE] = "INSERT OR REPLACE INTO main.staged_files (source, dev, ino, deleted)"
                       " VALUES (?1, ?2, ?3, 1)",
    [ST_FIND_FILE] = "SELECT path, fingerprint, \"offset\", updated_ms, deleted, 0 AS staged"
                     " FROM main.staged_files WHERE source = ?1 AND dev = ?2 AND ino = ?3"
                     " UNION ALL"
                     " SELECT path, fingerprint, \"offset\", updated_ms, 0, 1 FROM disk.files"
                     " WHERE source = ?1 AND dev = ?2 AND ino = ?3"
                     " AND NOT EXISTS (SELECT 1 FROM main.staged_wiped WHERE source = ?1)"
                     " ORDER BY 6 LIMIT 1",
    [ST_LIST_FILES] = "SELECT path, dev, ino, fingerprint, \"offset\", updated_ms"
                      " FROM main.staged_files WHERE source = ?1 AND NOT deleted"
                      " UNION ALL"
                      " SELECT f.path, f.dev, f.ino, f.fingerprint, f.\"offset\", f.updated_ms"
                      " FROM disk.files AS f WHERE f.source = ?1"
                      " AND NOT EXISTS (SELECT 1 FROM main.staged_wiped WHERE source = ?1)"
                      " AND NOT EXISTS (SELECT 1 FROM main.staged_files AS s"
                      "   WHERE s.source = f.source AND s.dev = f.dev AND s.ino = f.ino)"
                      " ORDER BY 1, 6, 2, 3",
    [ST_WIPE_FILES] = "DELETE FROM main.staged_files WHERE source = ?1",
    [ST_WIPE_CURSOR] = "DELETE FROM main.staged_journal WHERE source = ?1",
    [ST_WIPE_MARK] = "INSERT OR IGNORE INTO main.staged_wiped (source) VALUES (?1)",
    [ST_PUT_CURSOR] = "INSERT OR REPLACE INTO main.staged_journal (source, cursor) VALUES (?1, ?2)",
    [ST_GET_CURSOR] = "SELECT cursor, 0 FROM main.staged_journal WHERE source = ?1"
                      " UNION ALL"
                      " SELECT cursor, 1 FROM disk.journal WHERE source = ?1"
                      " AND NOT EXISTS (SELECT 1 FROM main.staged_wiped WHERE source = ?1)"
                      " ORDER BY 2 LIMIT 1",
    [ST_PUT_STREAM] = "INSERT OR REPLACE INTO main.staged_streams (group_name, stream_name, known)"
                      " VALUES (?1, ?2, ?3)",
    [ST_STREAM_KNOWN] = "SELECT known, 0 FROM main.staged_streams"
                        " WHERE group_name = ?1 AND stream_name = ?2"
                        " UNION ALL"
                        " SELECT 1, 1 FROM disk.streams WHERE group_name = ?1 AND stream_name = ?2"
                        " ORDER BY 2 LIMIT 1",
};

struct checkpoint {
    sqlite3 *db;
    char *dir;
    char *path; /* <dir>/state.db */
    sqlite3_stmt *st[ST_MAX];
    bool attached;
    bool sync_full;         /* PRAGMA synchronous = FULL instead of NORMAL */
    int64_t next_attach_ms; /* after a failed re-attach, when to try again */
    bool pending;
    int last_rc;       /* extended SQLite code of the last failure */
    char errtext[256]; /* and its text */
    int commit_cause;  /* what the failing commits fail with; 0 while commits work */
    uint64_t commits;  /* transactions committed */
    sqlite3_stmt *commit_st[N_COMMIT_SQL], *clear_st[N_CLEAR_SQL]; /* prepared on first use */
};

/* Internal marker for "the database is corrupt": never returned to callers. */
#define CP_ECORRUPT (-EUCLEAN)

static int rc_to_errno(checkpoint *cp, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return CP_ECORRUPT;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR: {
        int e = sqlite3_system_errno(cp->db);
        return e > 0 ? -e : -EIO;
    }
    default:
        return -EIO;
    }
}

/* Remember a failure's code and text; returns it as a negative errno. */
static int cp_fail(checkpoint *cp, int rc)
{
    cp->last_rc = rc;
    snprintf(cp->errtext, sizeof(cp->errtext), "%s", sqlite3_errmsg(cp->db));
    return rc_to_errno(cp, rc);
}

static void stmt_resetp(sqlite3_stmt **s)
{
    if (*s) {
        sqlite3_reset(*s);
        sqlite3_clear_bindings(*s);
    }
}
#define _cleanup_stmt_ _cleanup_(stmt_resetp)

static int exec(checkpoint *cp, const char *sql)
{
    int rc = sqlite3_exec(cp->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : cp_fail(cp, rc);
}

static void rollback_if_open(checkpoint *cp)
{
    if (!sqlite3_get_autocommit(cp->db))
        sqlite3_exec(cp->db, "ROLLBACK", NULL, NULL, NULL);
}

static int mkdir_p(const char *dir)
{
    _cleanup_free_ char *p = xstrdup(dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -errno;
        *s = c;
        if (c == '\0')
            return 0;
    }
}

static int state_dir_check(const char *dir)
{
    struct stat st;
    int r = mkdir_p(dir);
    if (r < 0)
        return log_error_errno(r, "checkpoint: cannot create state directory %s: %m", dir);
    if (stat(dir, &st) < 0)
        return log_error_errno(errno, "checkpoint: cannot use state directory %s: %m", dir);
    if (!S_ISDIR(st.st_mode))
        return log_error_errno(ENOTDIR, "checkpoint: cannot use state directory %s: %m", dir);
    /* AT_EACCESS: checked with the capabilities the service runs with
     * (access() would drop them for a non-root user). */
    if (faccessat(AT_FDCWD, dir, R_OK | W_OK | X_OK, AT_EACCESS) < 0)
        return log_error_errno(errno, "checkpoint: cannot use state directory %s: %m", dir);
    /* SQLite would open a state.db it may not write read-only, and keep its
     * file so for as long as the process lives, even once it is fixed. */
    _cleanup_free_ char *db = xasprintf("%s/state.db", dir);
    if (faccessat(AT_FDCWD, db, R_OK | W_OK, AT_EACCESS) < 0 && errno != ENOENT)
        return log_error_errno(errno, "checkpoint: cannot use %s: %m", db);
    return 0;
}

static bool path_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 || errno != ENOENT;
}

/* Rename state.db and its -wal/-shm to state.db.corrupt-<unix time>[.N] and
 * the same name + -wal/-shm, so sqlite3 opens the moved copy with its WAL. */
static int move_aside(checkpoint *cp, const char *why)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    long long now = (long long)time(NULL);
    _cleanup_free_ char *dest = NULL;

    for (unsigned n = 0;; n++) {
        free(dest);
        dest = n == 0 ? xasprintf("%s.corrupt-%lld", cp->path, now)
                      : xasprintf("%s.corrupt-%lld.%u", cp->path, now, n);
        bool taken = false;
        for (size_t i = 0; i < ARRAY_SIZE(suffixes) && !taken; i++) {
            _cleanup_free_ char *p = xasprintf("%s%s", dest, suffixes[i]);
            taken = path_exists(p);
        }
        if (!taken)
            break;
        if (n >= 1000)
            return log_error_errno(EEXIST,
                                   "checkpoint: %s is unusable (%s) and cannot be moved "
                                   "aside: too many %s.corrupt-* files",
                                   cp->path, why, cp->path);
    }
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        _cleanup_free_ char *from = xasprintf("%s%s", cp->path, suffixes[i]);
        _cleanup_free_ char *to = xasprintf("%s%s", dest, suffixes[i]);
        if (rename(from, to) < 0 && errno != ENOENT)
            return log_error_errno(errno,
                                   "checkpoint: %s is unusable (%s) and cannot be moved "
                                   "to %s: %m",
                                   from, why, to);
    }
    log_error("checkpoint: %s is unusable (%s); moved it to %s and started a fresh state "
              "database, sources without a position start from their start_at setting",
              cp->path, why, dest);
    return 0;
}

/* Detaching only happens to a database that is being given up on; the
 * connection does not checkpoint on close (see checkpoint_open), so the file
 * and its WAL stay as they were for inspection. */
static void disk_detach(checkpoint *cp)
{
    rollback_if_open(cp);
    if (sqlite3_db_filename(cp->db, "disk") &&
        sqlite3_exec(cp->db, "DETACH disk", NULL, NULL, NULL) != SQLITE_OK)
        log_warning("checkpoint: cannot detach %s: %s", cp->path, sqlite3_errmsg(cp->db));
    cp->attached = false;
}

static int pragma_int(checkpoint *cp, const char *sql, int *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(cp->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
    }
    int r = rc == SQLITE_OK ? 0 : cp_fail(cp, rc);
    sqlite3_finalize(s);
    return r;
}

static int set_wal(checkpoint *cp)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(cp->db, "PRAGMA disk.journal_mode = WAL", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    int r = 0;
    if (rc != SQLITE_ROW)
        r = cp_fail(cp, rc);
    else {
        /* Some file systems cannot do WAL; SQLite then keeps its old mode,
         * which is slower but still correct. */
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        if (!mode || strcmp(mode, "wal") != 0)
            log_warning("checkpoint: %s: cannot use WAL mode, journal mode is %s", cp->path,
                        mode ? mode : "unknown");
    }
    sqlite3_finalize(s);
    return r;
}

/* PRAGMA quick_check: 0 when it says "ok", 1 with its first complaint in
 * errtext, or a negative errno when it cannot run. */
static int quick_check(checkpoint *cp)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(cp->db, "PRAGMA disk.quick_check", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    int r;
    if (rc != SQLITE_ROW)
        r = cp_fail(cp, rc);
    else {
        const char *res = (const char *)sqlite3_column_text(s, 0);
        r = res && strcmp(res, "ok") == 0 ? 0 : 1;
        if (r) {
            /* Its report spans lines; a log line must not. */
            snprintf(cp->errtext, sizeof(cp->errtext), "quick_check: %s", res ? res : "?");
            for (char *c = cp->errtext; (c = strchr(c, '\n'));)
                *c = ' ';
        }
    }
    sqlite3_finalize(s);
    return r;
}

static int migrate(checkpoint *cp, int from)
{
    for (int v = from; v < CP_SCHEMA_VERSION; v++) {
        _cleanup_free_ char *sql = xasprintf("BEGIN IMMEDIATE; %s PRAGMA disk.user_version = %d;"
                                             " COMMIT;",
                                             migrations[v], v + 1);
        int r = exec(cp, sql);
        if (r < 0) {
            rollback_if_open(cp);
            return r;
        }
    }
    return 0;
}

/* Attach state.db and bring it to the current schema. 0 on success, 1 when
 * the file must be moved aside (corrupt, not a database, newer schema), or a
 * negative errno; the reason is in cp->errtext either way. */
static int disk_attach(checkpoint *cp)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(cp->db, "ATTACH ?1 AS disk", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, cp->path, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    int r = rc == SQLITE_OK ? 0 : cp_fail(cp, rc);
    sqlite3_finalize(s);
    if (r < 0)
        return r == CP_ECORRUPT ? 1 : r;

    int version = 0;
    r = pragma_int(cp, "PRAGMA disk.user_version", &version);
    if (r >= 0 && version > CP_SCHEMA_VERSION) {
        snprintf(cp->errtext, sizeof(cp->errtext),
                 "schema version %d is newer than this build's %d", version, CP_SCHEMA_VERSION);
        return 1;
    }
    if (r >= 0)
        r = quick_check(cp);
    if (r == 0)
        r = set_wal(cp);
    if (r == 0)
        r = exec(cp, cp->sync_full ? "PRAGMA disk.synchronous = FULL"
                                   : "PRAGMA disk.synchronous = NORMAL");
    if (r == 0)
        r = migrate(cp, version);
    if (r == CP_ECORRUPT)
        return 1;
    return r;
}

/* Attach state.db, moving it aside once if it is unusable. */
static int disk_open(checkpoint *cp)
{
    for (int attempt = 0;; attempt++) {
        int r = disk_attach(cp);
        if (r == 0) {
            cp->attached = true;
            return 0;
        }
        disk_detach(cp);
        if (r < 0 || attempt > 0)
            return log_error_errno(r > 0 ? EIO : r, "checkpoint: cannot open %s: %s", cp->path,
                                   cp->errtext);
        _cleanup_free_ char *why = xstrdup(cp->errtext);
        r = move_aside(cp, why);
        if (r < 0)
            return r;
    }
}

static int disk_ready(checkpoint *cp)
{
    if (cp->attached)
        return 0;
    int64_t now = now_monotonic_ms();
    if (now < cp->next_attach_ms)
        return -EIO;
    int r = disk_open(cp);
    if (r < 0) {
        cp->next_attach_ms = now + CP_REATTACH_INTERVAL_MS;
        cp->last_rc = SQLITE_CANTOPEN;
    }
    return r;
}

/* Corruption found while running: move the file aside and start afresh. */
static int recover(checkpoint *cp)
{
    _cleanup_free_ char *why = xstrdup(cp->errtext);
    disk_detach(cp);
    int r = move_aside(cp, why);
    if (r < 0) {
        cp->next_attach_ms = now_monotonic_ms() + CP_REATTACH_INTERVAL_MS;
        cp->last_rc = SQLITE_CANTOPEN;
        snprintf(cp->errtext, sizeof(cp->errtext), "%s, and it cannot be moved aside", why);
        return r;
    }
    cp->next_attach_ms = 0;
    return disk_ready(cp);
}

static void checkpoint_destroy(checkpoint *cp)
{
    if (!cp)
        return;
    for (size_t i = 0; i < ST_MAX; i++)
        sqlite3_finalize(cp->st[i]);
    for (size_t i = 0; i < N_COMMIT_SQL; i++)
        sqlite3_finalize(cp->commit_st[i]);
    for (size_t i = 0; i < N_CLEAR_SQL; i++)
        sqlite3_finalize(cp->clear_st[i]);
    /* A healthy database is checkpointed and its WAL removed on close. */
    if (cp->db && cp->attached)
        sqlite3_db_config(cp->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    if (cp->db && sqlite3_close(cp->db) != SQLITE_OK)
        log_warning("checkpoint: closing %s: %s", cp->path, sqlite3_errmsg(cp->db));
    free(cp->dir);
    free(cp->path);
    free(cp);
}

static void checkpoint_destroyp(checkpoint **cp)
{
    checkpoint_destroy(*cp);
}

int checkpoint_open(const char *state_dir, checkpoint **out)
{
    assert(state_dir);
    assert(out);
    int r = state_dir_check(state_dir);
    if (r < 0)
        return r;

    _cleanup_(checkpoint_destroyp) checkpoint *cp = xmalloc(sizeof(*cp));
    *cp = (checkpoint){
        .dir = xstrdup(state_dir),
        .path = xasprintf("%s/state.db", state_dir),
    };
    int rc =
        sqlite3_open_v2(":memory:", &cp->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return log_error_errno(rc == SQLITE_NOMEM ? ENOMEM : EIO,
                               "checkpoint: cannot start SQLite: %s",
                               cp->db ? sqlite3_errmsg(cp->db) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(cp->db, 1);
    sqlite3_busy_timeout(cp->db, CP_BUSY_TIMEOUT_MS);
    /* Otherwise SQLite copies a WAL into its database whenever it lets go of
     * it, a failed ATTACH of a corrupt file included, and may delete it. */
    sqlite3_db_config(cp->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    r = exec(cp, staged_schema);
    if (r < 0)
        return log_error_errno(r, "checkpoint: cannot set up staging tables: %s", cp->errtext);
    r = disk_open(cp);
    if (r < 0)
        return r;
    for (size_t i = 0; i < ST_MAX; i++) {
        rc = sqlite3_prepare_v3(cp->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &cp->st[i],
                                NULL);
        if (rc != SQLITE_OK)
            return log_error_errno(cp_fail(cp, rc), "checkpoint: cannot prepare statement: %s",
                                   cp->errtext);
    }
    *out = TAKE_PTR(cp);
    return 0;
}

void checkpoint_close(checkpoint *cp)
{
    if (!cp)
        return;
    checkpoint_commit(cp);
    checkpoint_destroy(cp);
}

const char *checkpoint_path(const checkpoint *cp)
{
    return cp->path;
}

void cp_file_clear(cp_file *f)
{
    if (!f)
        return;
    free(f->source);
    free(f->path);
    f->source = NULL;
    f->path = NULL;
}

static void bind_key(sqlite3_stmt *s, const char *source, uint64_t dev, uint64_t ino)
{
    /* SQLite integers are signed 64-bit; the cast round-trips every value. */
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)dev);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)ino);
}

/* Run a staging statement to completion. */
static int step_done(checkpoint *cp, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        return cp_fail(cp, rc);
    cp->pending = true;
    return 0;
}

/* Fill `f` from the columns path, dev, ino, fingerprint, offset, updated_ms. */
static void read_file_row(sqlite3_stmt *s, const char *source, cp_file *f)
{
    const char *path = (const char *)sqlite3_column_text(s, 0);
    const void *fp = sqlite3_column_blob(s, 3);
    size_t fp_len = MIN((size_t)sqlite3_column_bytes(s, 3), (size_t)CP_FINGERPRINT_MAX);

    *f = (cp_file){
        .source = xstrdup(source),
        .path = xstrdup(path ? path : ""),
        .dev = (uint64_t)sqlite3_column_int64(s, 1),
        .ino = (uint64_t)sqlite3_column_int64(s, 2),
        .fingerprint_len = fp ? fp_len : 0,
        .offset = (uint64_t)sqlite3_column_int64(s, 4),
        .updated_ms = sqlite3_column_int64(s, 5),
    };
    if (fp && fp_len)
        memcpy(f->fingerprint, fp, fp_len);
}

static int find_file_once(checkpoint *cp, const char *source, uint64_t dev, uint64_t ino,
                          cp_file *out)
{
    int r = disk_ready(cp);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_FIND_FILE];
    bind_key(s, source, dev, ino);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return cp_fail(cp, rc);
    if (sqlite3_column_int(s, 4)) /* deleted, not yet committed */
        return -ENOENT;

    const char *path = (const char *)sqlite3_column_text(s, 0);
    const void *fp = sqlite3_column_blob(s, 1);
    size_t fp_len = MIN((size_t)sqlite3_column_bytes(s, 1), (size_t)CP_FINGERPRINT_MAX);
    *out = (cp_file){
        .source = xstrdup(source),
        .path = xstrdup(path ? path : ""),
        .dev = dev,
        .ino = ino,
        .fingerprint_len = fp ? fp_len : 0,
        .offset = (uint64_t)sqlite3_column_int64(s, 2),
        .updated_ms = sqlite3_column_int64(s, 3),
    };
    if (fp && fp_len)
        memcpy(out->fingerprint, fp, fp_len);
    return 0;
}

/* A read that hit a corrupt database is retried once on the fresh one. */
static int after_recovery(checkpoint *cp, int r)
{
    if (r != CP_ECORRUPT)
        return r;
    r = recover(cp);
    return r < 0 ? r : CP_ECORRUPT;
}

static int public_errno(int r)
{
    return r == CP_ECORRUPT ? -EIO : r;
}

int checkpoint_find_file(checkpoint *cp, const char *source, uint64_t dev, uint64_t ino,
                         cp_file *out)
{
    assert(cp && source && out);
    int r = find_file_once(cp, source, dev, ino, out);
    if (after_recovery(cp, r) == CP_ECORRUPT)
        r = find_file_once(cp, source, dev, ino, out);
    return public_errno(r);
}

static void files_free(cp_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp_file_clear(&files[i]);
    free(files);
}

static int list_files_once(checkpoint *cp, const char *source, cp_file **out, size_t *n)
{
    int r = disk_ready(cp);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_LIST_FILES];
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    cp_file *files = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            files = xrealloc(files, cap * sizeof(*files));
        }
        read_file_row(s, source, &files[count++]);
    }
    if (rc != SQLITE_DONE) {
        files_free(files, count);
        return cp_fail(cp, rc);
    }
    *out = files;
    *n = count;
    return 0;
}

int checkpoint_list_files(checkpoint *cp, const char *source, cp_file **out, size_t *n)
{
    assert(cp && source && out && n);
    int r = list_files_once(cp, source, out, n);
    if (after_recovery(cp, r) == CP_ECORRUPT)
        r = list_files_once(cp, source, out, n);
    return public_errno(r);
}

int checkpoint_put_file(checkpoint *cp, const cp_file *f)
{
    assert(cp && f && f->source);
    assert(f->fingerprint_len <= CP_FINGERPRINT_MAX);
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_PUT_FILE];
    bind_key(s, f->source, f->dev, f->ino);
    sqlite3_bind_text(s, 4, f->path ? f->path : "", -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, f->fingerprint, (int)MIN(f->fingerprint_len, CP_FINGERPRINT_MAX),
                      SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)f->offset);
    sqlite3_bind_int64(s, 7, f->updated_ms ? f->updated_ms : now_realtime_ms());
    return step_done(cp, s);
}

int checkpoint_delete_file(checkpoint *cp, const char *source, uint64_t dev, uint64_t ino)
{
    assert(cp && source);
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_DELETE_FILE];
    bind_key(s, source, dev, ino);
    return step_done(cp, s);
}

int checkpoint_delete_source(checkpoint *cp, const char *source)
{
    assert(cp && source);
    static const int steps[] = {ST_WIPE_FILES, ST_WIPE_CURSOR, ST_WIPE_MARK};
    int r = exec(cp, "SAVEPOINT wipe");
    if (r < 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(steps) && r >= 0; i++) {
        _cleanup_stmt_ sqlite3_stmt *s = cp->st[steps[i]];
        sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
        r = step_done(cp, s);
    }
    if (r < 0)
        sqlite3_exec(cp->db, "ROLLBACK TO wipe", NULL, NULL, NULL);
    sqlite3_exec(cp->db, "RELEASE wipe", NULL, NULL, NULL);
    return r;
}

static int get_cursor_once(checkpoint *cp, const char *source, char **cursor)
{
    int r = disk_ready(cp);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_GET_CURSOR];
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return cp_fail(cp, rc);
    const char *c = (const char *)sqlite3_column_text(s, 0);
    *cursor = xstrdup(c ? c : "");
    return 0;
}

int checkpoint_get_cursor(checkpoint *cp, const char *source, char **cursor)
{
    assert(cp && source && cursor);
    int r = get_cursor_once(cp, source, cursor);
    if (after_recovery(cp, r) == CP_ECORRUPT)
        r = get_cursor_once(cp, source, cursor);
    return public_errno(r);
}

int checkpoint_put_cursor(checkpoint *cp, const char *source, const char *cursor)
{
    assert(cp && source && cursor);
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_PUT_CURSOR];
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, cursor, -1, SQLITE_STATIC);
    return step_done(cp, s);
}

static int stream_known_once(checkpoint *cp, const char *group, const char *stream)
{
    int r = disk_ready(cp);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_STREAM_KNOWN];
    sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, stream ? stream : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return cp_fail(cp, rc);
    return sqlite3_column_int(s, 0) ? 1 : 0;
}

bool checkpoint_stream_known(checkpoint *cp, const char *group, const char *stream)
{
    assert(cp && group);
    int r = stream_known_once(cp, group, stream);
    if (after_recovery(cp, r) == CP_ECORRUPT)
        r = stream_known_once(cp, group, stream);
    if (r < 0) {
        /* Unknown is the safe answer: the caller creates it again. */
        log_warning("checkpoint: cannot look up log stream %s/%s in %s: %s", group,
                    stream ? stream : "", cp->path, cp->errtext);
        return false;
    }
    return r > 0;
}

static int stage_stream(checkpoint *cp, const char *group, const char *stream, bool known)
{
    assert(cp && group);
    _cleanup_stmt_ sqlite3_stmt *s = cp->st[ST_PUT_STREAM];
    sqlite3_bind_text(s, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, stream ? stream : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, known);
    return step_done(cp, s);
}

int checkpoint_put_stream(checkpoint *cp, const char *group, const char *stream)
{
    return stage_stream(cp, group, stream, true);
}

int checkpoint_forget_stream(checkpoint *cp, const char *group, const char *stream)
{
    return stage_stream(cp, group, stream, false);
}

/* Run statements in order, preparing each on first use; stops at the first
 * failure (the caller rolls back). */
static int exec_all(checkpoint *cp, sqlite3_stmt **st, const char *const *sql, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!st[i]) {
            int rc = sqlite3_prepare_v3(cp->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i],
                                        NULL);
            if (rc != SQLITE_OK)
                return cp_fail(cp, rc);
        }
        int rc = sqlite3_step(st[i]);
        sqlite3_reset(st[i]);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            return cp_fail(cp, rc);
    }
    return 0;
}

static int commit_once(checkpoint *cp)
{
    int r = disk_ready(cp);
    if (r < 0)
        return r;
    r = exec_all(cp, cp->commit_st, commit_sql, N_COMMIT_SQL);
    if (r < 0)
        rollback_if_open(cp);
    return r;
}

int checkpoint_commit(checkpoint *cp)
{
    assert(cp);
    if (!cp->pending)
        return 0;
    int r = commit_once(cp);
    if (after_recovery(cp, r) == CP_ECORRUPT)
        r = commit_once(cp);
    r = public_errno(r);
    if (r < 0) {
        if (cp->last_rc != cp->commit_cause) {
            log_error("checkpoint: cannot commit to %s: %s; positions are kept in memory and "
                      "retried with the next commit",
                      cp->path, cp->errtext);
            cp->commit_cause = cp->last_rc;
        }
        return r;
    }
    cp->commits++;
    if (cp->commit_cause) {
        log_info("checkpoint: commits to %s work again", cp->path);
        cp->commit_cause = 0;
    }
    /* Should clearing fail, the rows stay staged and are applied again. */
    if (exec_all(cp, cp->clear_st, clear_staged_sql, N_CLEAR_SQL) < 0)
        rollback_if_open(cp);
    else
        cp->pending = false;
    return 0;
}

uint64_t checkpoint_commits(const checkpoint *cp)
{
    return cp->commits;
}

int checkpoint_set_sync(checkpoint *cp, bool full)
{
    assert(cp);
    cp->sync_full = full;
    if (!cp->attached)
        return 0; /* applied when state.db is attached again */
    int r = exec(cp, full ? "PRAGMA disk.synchronous = FULL" : "PRAGMA disk.synchronous = NORMAL");
    if (r < 0)
        return log_error_errno(r, "checkpoint: cannot set synchronous on %s: %s", cp->path,
                               cp->errtext);
    return 0;
}

int checkpoint_synchronous(checkpoint *cp)
{
    assert(cp);
    if (!cp->attached)
        return -ENOTCONN;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(cp->db, "PRAGMA disk.synchronous", -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_finalize(st);
    return v;
}

bool checkpoint_pending(const checkpoint *cp)
{
    return cp->pending;
}
