/* rotation.h: which files of a rotated log to read after a restart, and from
 * where. A pure planner over plain facts (the files now under a log's name and
 * its rotated names, the stored checkpoint rows), so each rotation sequence a
 * real writer produces is a line of a unit test; source.c gathers the facts
 * and opens what the plan says.
 *
 * The files are `<base>` (the live name) and its rotations: Docker's
 * `<base>.N` and, with compress=true, `<base>.N.gz` (N = 1 is the newest;
 * Docker renames .N to .N+1, the live file to .1, then compresses .1 into a
 * new inode .1.gz and removes .1 when that is complete). A file is known by
 * its device and inode, or, once compressed, by its content: the fingerprint
 * of its first bytes (decompressed). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A row's offset when its file was read to its end after it was rotated: the
 * row is kept while the file (under any name, compressed or not) is still
 * there, so a finished file is never taken for an unread one. */
#define ROTATION_DONE ((uint64_t)INT64_MAX)
/* A file's size when it is not known (a .gz being written). */
#define ROTATION_SIZE_UNKNOWN UINT64_MAX

typedef struct rot_file {
    const char *path;
    unsigned index; /* 0: the live name; N: the Nth rotation (higher is older) */
    bool gz;
    uint64_t dev, ino;
    const unsigned char *fp; /* its first bytes (decompressed for .gz) */
    size_t fp_len;
    uint64_t size; /* content bytes (a .gz: uncompressed), or ROTATION_SIZE_UNKNOWN */
} rot_file;

typedef struct rot_row {
    uint64_t dev, ino;
    const unsigned char *fp;
    size_t fp_len;
    uint64_t offset; /* bytes acknowledged, or ROTATION_DONE */
} rot_row;

typedef enum rot_why {
    ROT_RESUME,       /* the live file, from its row */
    ROT_FINISH,       /* a rotated file we were reading, from its row */
    ROT_UNREAD,       /* rotated while stopped, never read: from 0 */
    ROT_NEW,          /* the live file, new since the last run: from 0 */
    ROT_START_END,    /* first run, start_at = end: the live file from its end */
    ROT_START_BEGIN,  /* first run, start_at = beginning: from 0 */
    ROT_TRUNCATED,    /* its row is past its end: read again from 0 */
} rot_why;

const char *rotation_why_str(rot_why w);

typedef struct rot_step {
    size_t file;    /* index into the files */
    long row;       /* the row it continues (its identity), or -1 */
    uint64_t offset;
    rot_why why;
} rot_step;

typedef struct rot_plan {
    rot_step *steps; /* oldest first; each waits for the one before it */
    size_t n_steps;
    size_t *gaps;    /* rows whose file is gone before it was read to its end */
    size_t n_gaps;
    size_t *forget;  /* rows that match no file (the gaps among them): delete them */
    size_t n_forget;
    size_t *skipped; /* files not read: done, assumed read, or being compressed */
    size_t n_skipped;
    long *match;     /* per row: the file it matched, or -1 */
} rot_plan;

typedef struct rot_policy {
    bool first_run;    /* the source has no rows at all */
    bool start_at_end; /* its start_at (first run only) */
} rot_policy;

/* Plan reading one log (its files in any order). Rules:
 * - a row matches the file with its device and inode (and a fingerprint that
 *   agrees), else a complete .gz whose content starts with the row's
 *   fingerprint (the same file, compressed); a row with no fingerprint (its
 *   file was empty) matches nothing and is no gap;
 * - a .gz whose uncompressed twin (<base>.N beside <base>.N.gz) is still
 *   there is being written: never read, its twin is;
 * - a matched file is read from its row's offset unless done;
 * - an unmatched file older than the newest one read to its end (a done row)
 *   was read before; newer ones were rotated (or created) while stopped, or
 *   opened without a usable row: read from 0;
 * - without any row: the first run's start_at (rotated files only with
 *   start_at = beginning), else everything from 0;
 * - rows matching no file are forgotten; those not done are gaps.
 * The plan is freed with rotation_plan_free. */
void rotation_plan(const rot_file *files, size_t n_files, const rot_row *rows, size_t n_rows,
                   rot_policy pol, rot_plan *out);
void rotation_plan_free(rot_plan *p);

/* Is `path` `base` or one of its rotations ("<base>.N", "<base>.N.gz")?
 * Sets *index (0 for base) and *gz. */
bool rotation_parse_name(const char *base, const char *path, unsigned *index, bool *gz);

/* The live name of a rotated path: "x-json.log.2" and "x-json.log.1.gz" ->
 * "x-json.log" (also kubelet's "0.log.20241124-092000" -> "0.log").
 * Malloc'd. */
char *rotation_base(const char *path);

/* A file's fingerprint, from its first bytes head[0..n) (up to
 * ROTATION_FP_SCAN of them): its first ROTATION_FP_MAX bytes, except when its
 * first line is longer than that: then the first bytes of that line and a
 * hash of all of it. Docker splits long lines into 16 KiB entries, and a file
 * that starts with the rest of one begins with the same 256 bytes as every
 * other such file (`{"log":"xxxx...`); the whole first line holds its time.
 * While the first line has no end yet, only the bytes both forms share
 * (at most ROTATION_FP_MAX - 24): what is stored then still matches the
 * file once it is whole. *fp_len < ROTATION_FP_MAX means "read it again". */
#define ROTATION_FP_MAX 256
#define ROTATION_FP_SCAN (64 * 1024)
void rotation_fingerprint(const unsigned char *head, size_t n, unsigned char *fp, size_t *fp_len);

/* Does content beginning with cur[0..cur_len) start with stored? (A stored
 * fingerprint may have been taken while the file was shorter.) */
bool rotation_fp_matches(const unsigned char *stored, size_t stored_len,
                         const unsigned char *cur, size_t cur_len);
