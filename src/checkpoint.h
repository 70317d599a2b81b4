/* checkpoint.h: durable progress in SQLite (state_dir/state.db, WAL mode):
 * per file identity an offset, per journald source a cursor, and the log
 * groups/streams known to exist. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_FINGERPRINT_MAX 256

typedef struct checkpoint checkpoint;

typedef struct cp_file {
    char *source; /* source name */
    char *path;   /* last path the file was seen at */
    uint64_t dev, ino;
    unsigned char fingerprint[CP_FINGERPRINT_MAX]; /* first bytes of the file */
    size_t fingerprint_len;                        /* 0..CP_FINGERPRINT_MAX */
    uint64_t offset;                               /* bytes acknowledged */
    int64_t updated_ms;                            /* realtime of the last update */
} cp_file;

void cp_file_clear(cp_file *f); /* frees source and path */

/* Open or create `<state_dir>/state.db` (creating state_dir with mode 0700 if
 * missing). A database that is corrupt, not a database, or of a newer schema
 * than this build knows is renamed to `state.db.corrupt-<unix time>` (its -wal
 * and -shm too), a loud error is logged naming both paths, and a fresh one is
 * created: the agent keeps shipping. Schema versions live in PRAGMA
 * user_version. Returns 0 or a negative errno (state_dir unusable). */
int checkpoint_open(const char *state_dir, checkpoint **out);
void checkpoint_close(checkpoint *cp); /* commits what is pending; NULL is a no-op */
const char *checkpoint_path(const checkpoint *cp);

/* Lookups. 0 found (*out filled, caller frees with cp_file_clear), -ENOENT. */
int checkpoint_find_file(checkpoint *cp, const char *source, uint64_t dev, uint64_t ino,
                         cp_file *out);
/* Every file row of a source (ordered by path, then updated_ms). Caller frees
 * each with cp_file_clear and the array with free. */
int checkpoint_list_files(checkpoint *cp, const char *source, cp_file **out, size_t *n);

/* Writes are staged in memory: the lookups above see them at once, other
 * connections only after checkpoint_commit(); one commit per flush of
 * acknowledgements. The key is (source, dev, ino): an existing row with that
 * key is replaced. An updated_ms of 0 is stored as the current time. */
int checkpoint_put_file(checkpoint *cp, const cp_file *f);
int checkpoint_delete_file(checkpoint *cp, const char *source, uint64_t dev, uint64_t ino);
int checkpoint_delete_source(checkpoint *cp, const char *source); /* all rows, files and cursor */

/* journald cursor per source. get: 0 (*cursor malloc'd), -ENOENT. */
int checkpoint_get_cursor(checkpoint *cp, const char *source, char **cursor);
int checkpoint_put_cursor(checkpoint *cp, const char *source, const char *cursor);

/* Known log groups / streams (stream NULL = the group itself). */
bool checkpoint_stream_known(checkpoint *cp, const char *group, const char *stream);
int checkpoint_put_stream(checkpoint *cp, const char *group, const char *stream);
int checkpoint_forget_stream(checkpoint *cp, const char *group, const char *stream);

/* Commit the staged writes in one transaction (no-op when nothing is staged).
 * On failure (disk full, read-only) the error is logged once per distinct
 * cause, the staged writes are kept and retried on the next commit; returns a
 * negative errno. */
int checkpoint_commit(checkpoint *cp);
bool checkpoint_pending(const checkpoint *cp);
uint64_t checkpoint_commits(const checkpoint *cp); /* transactions committed so far */

/* Durability of a commit (state_sync). false (the default): SQLite's
 * synchronous=NORMAL in WAL mode: a commit survives a crash of the process
 * but a power loss may undo the commits since the last WAL checkpoint (their
 * events are sent again). true: synchronous=FULL, every commit is fsynced. */
int checkpoint_set_sync(checkpoint *cp, bool full);
/* The setting in force on state.db (SQLite's number: 1 NORMAL, 2 FULL), or a
 * negative errno when it is not attached. For tests. */
int checkpoint_synchronous(checkpoint *cp);
