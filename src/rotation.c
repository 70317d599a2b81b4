/* rotation.c: the plan for reading a rotated log after a restart (see
 * rotation.h): pure functions, no I/O. */
#include <stdlib.h>
#include <string.h>

#include "rotation.h"
#include "util.h"

const char *rotation_why_str(rot_why w)
{
    switch (w) {
    case ROT_RESUME:
        return "resuming";
    case ROT_FINISH:
        return "rotated while stopped, finishing it first";
    case ROT_UNREAD:
        return "rotated while stopped, never read";
    case ROT_NEW:
        return "new file";
    case ROT_START_END:
        return "start_at = end";
    case ROT_START_BEGIN:
        return "start_at = beginning";
    case ROT_TRUNCATED:
        return "truncated while stopped";
    }
    return "?";
}

bool rotation_fp_matches(const unsigned char *stored, size_t stored_len,
                         const unsigned char *cur, size_t cur_len)
{
    return cur_len >= stored_len && memcmp(stored, cur, stored_len) == 0;
}

/* FNV-1a, 64 bits, from a given basis. */
static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

void rotation_fingerprint(const unsigned char *head, size_t n, unsigned char *fp, size_t *fp_len)
{
    const unsigned char *nl = memchr(head, '\n', n);
    size_t line = nl ? (size_t)(nl - head) + 1 : 0;
    const size_t keep = ROTATION_FP_MAX - 24;
    if (!nl && n < ROTATION_FP_SCAN) {
        /* The first line is still being written: it may end short (the
         * bytes themselves) or long (its first bytes and a hash). Only what
         * both will begin with is known; the caller reads again later. */
        *fp_len = n < keep ? n : keep;
        memcpy(fp, head, *fp_len);
        return;
    }
    if (line <= ROTATION_FP_MAX) {
        /* A short first line (or one longer than the scan): the bytes. */
        *fp_len = n < ROTATION_FP_MAX ? n : ROTATION_FP_MAX;
        memcpy(fp, head, *fp_len);
        return;
    }
    memcpy(fp, head, keep);
    uint64_t h[3] = {(uint64_t)line, fnv1a(head, line, 0xcbf29ce484222325ULL),
                     fnv1a(head, line, 0x84222325cbf29ce4ULL)};
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 8; b++)
            fp[keep + (size_t)k * 8 + (size_t)b] = (unsigned char)(h[k] >> (8 * b));
    *fp_len = ROTATION_FP_MAX;
}

bool rotation_parse_name(const char *base, const char *path, unsigned *index, bool *gz)
{
    size_t bn = strlen(base), pn = strlen(path);
    *index = 0;
    *gz = false;
    if (pn < bn || memcmp(base, path, bn) != 0)
        return false;
    if (pn == bn)
        return true;
    const char *p = path + bn;
    if (*p++ != '.' || !(*p >= '0' && *p <= '9'))
        return false;
    unsigned long n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (unsigned long)(*p - '0');
        if (n > 1000000)
            return false;
    }
    if (strcmp(p, ".gz") == 0)
        *gz = true;
    else if (*p)
        return false;
    if (n == 0)
        return false;
    *index = (unsigned)n;
    return true;
}

char *rotation_base(const char *path)
{
    char *base = xstrdup(path);
    size_t n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".gz") == 0)
        base[n -= 3] = 0;
    char *dot = strrchr(base, '.');
    if (dot && dot[1] && !strchr(dot, '/') && strspn(dot + 1, "0123456789-") == strlen(dot + 1))
        *dot = 0;
    return base;
}

/* Oldest first: higher index first, the live file (0) last; a .gz after its
 * uncompressed twin. */
static const rot_file *sort_files; /* one thread */

static int by_age(const void *a, const void *b)
{
    const rot_file *x = &sort_files[*(const size_t *)a], *y = &sort_files[*(const size_t *)b];
    unsigned xi = x->index ? x->index : UINT32_MAX, yi = y->index ? y->index : UINT32_MAX;
    if (xi != yi) /* the live file is the newest */
        return xi == UINT32_MAX ? 1 : yi == UINT32_MAX ? -1 : (xi > yi ? -1 : 1);
    if (x->gz != y->gz)
        return x->gz ? 1 : -1;
    return strcmp(x->path, y->path);
}

static bool identity_matches(const rot_file *f, const rot_row *r)
{
    /* A row stored while its file was empty says nothing of which file it
     * was: its inode may be another's by now (Docker's next live file often
     * gets it), and taking that one for it would skip every file between. */
    if (f->dev != r->dev || f->ino != r->ino || r->fp_len == 0)
        return false;
    /* A reused inode is another file: its first bytes differ, or it is
     * shorter than the file was when the row was written (inodes are reused
     * at once: the live file Docker creates often gets the inode of the .1
     * its compression just removed). */
    return rotation_fp_matches(r->fp, r->fp_len, f->fp, f->fp_len);
}

void rotation_plan(const rot_file *files, size_t n_files, const rot_row *rows, size_t n_rows,
                   rot_policy pol, rot_plan *out)
{
    *out = (rot_plan){0};
    size_t *order = xcalloc(n_files + 1, sizeof *order);
    long *row_of = xcalloc(n_files + 1, sizeof *row_of);   /* file -> row, or -1 */
    long *file_of = xcalloc(n_rows + 1, sizeof *file_of);  /* row -> file, or -1 */
    bool *writing = xcalloc(n_files + 1, sizeof *writing); /* a .gz with its twin */
    for (size_t i = 0; i < n_files; i++) {
        order[i] = i;
        row_of[i] = -1;
        for (size_t j = 0; j < n_files && files[i].gz; j++)
            if (!files[j].gz && files[j].index == files[i].index && files[i].index > 0)
                writing[i] = true;
    }
    for (size_t r = 0; r < n_rows; r++)
        file_of[r] = -1;
    sort_files = files;
    qsort(order, n_files, sizeof *order, by_age);

    /* Rows to files: by identity first, then complete .gz files by content. */
    for (size_t r = 0; r < n_rows; r++)
        for (size_t i = 0; i < n_files && file_of[r] < 0; i++)
            if (row_of[i] < 0 && !writing[i] && identity_matches(&files[i], &rows[r])) {
                row_of[i] = (long)r;
                file_of[r] = (long)i;
            }
    for (size_t r = 0; r < n_rows; r++) {
        if (file_of[r] >= 0 || rows[r].fp_len == 0)
            continue;
        for (size_t k = 0; k < n_files; k++) {
            size_t i = order[k];
            if (row_of[i] < 0 && files[i].gz && !writing[i] &&
                rotation_fp_matches(rows[r].fp, rows[r].fp_len, files[i].fp, files[i].fp_len)) {
                row_of[i] = (long)r;
                file_of[r] = (long)i;
                break;
            }
        }
    }

    /* Position in `order` of the newest file read to its end (a done row).
     * Files older than it without a row were read before (their rows from
     * before done rows were kept); files newer than it were opened in the
     * last run, each with a row committed at its open, or never: one
     * without a row (killed before its open was committed, or its row
     * stored while it was empty) was not read. */
    long newest = -1;
    for (size_t k = 0; k < n_files; k++) {
        size_t i = order[k];
        if (row_of[i] < 0)
            continue;
        uint64_t off = rows[row_of[i]].offset;
        if (off == ROTATION_DONE ||
            (files[i].index > 0 && files[i].size != ROTATION_SIZE_UNKNOWN && off == files[i].size))
            newest = (long)k;
    }

    out->steps = xcalloc(n_files + 1, sizeof *out->steps);
    out->skipped = xcalloc(n_files + 1, sizeof *out->skipped);
    for (size_t k = 0; k < n_files; k++) {
        size_t i = order[k];
        const rot_file *f = &files[i];
        rot_step st = {.file = i, .row = row_of[i], .offset = 0};
        if (writing[i]) {
            out->skipped[out->n_skipped++] = i; /* its twin is read */
            continue;
        }
        if (st.row >= 0) {
            uint64_t off = rows[st.row].offset;
            if (off == ROTATION_DONE && f->index == 0) {
                /* Read to its end before, yet under the live name again. */
                st.why = ROT_RESUME;
                st.offset = f->size == ROTATION_SIZE_UNKNOWN ? 0 : f->size;
                out->steps[out->n_steps++] = st;
                continue;
            }
            if (off == ROTATION_DONE || (f->size != ROTATION_SIZE_UNKNOWN && off == f->size &&
                                         f->index > 0)) {
                out->skipped[out->n_skipped++] = i;
                continue;
            }
            if (f->size != ROTATION_SIZE_UNKNOWN && off > f->size) {
                st.why = ROT_TRUNCATED;
            } else {
                st.offset = off;
                st.why = f->index ? ROT_FINISH : ROT_RESUME;
            }
        } else if (newest >= 0 && (long)k < newest) {
            out->skipped[out->n_skipped++] = i; /* older than a file read to its end */
            continue;
        } else if (n_rows == 0 && pol.first_run) {
            if (pol.start_at_end) {
                if (f->index > 0) {
                    out->skipped[out->n_skipped++] = i;
                    continue;
                }
                st.why = ROT_START_END;
                st.offset = f->size == ROTATION_SIZE_UNKNOWN ? 0 : f->size;
            } else {
                st.why = ROT_START_BEGIN;
            }
        } else {
            st.why = f->index ? ROT_UNREAD : ROT_NEW;
        }
        out->steps[out->n_steps++] = st;
    }

    out->match = xcalloc(n_rows + 1, sizeof *out->match);
    for (size_t r = 0; r < n_rows; r++)
        out->match[r] = file_of[r];
    out->forget = xcalloc(n_rows + 1, sizeof *out->forget);
    out->gaps = xcalloc(n_rows + 1, sizeof *out->gaps);
    for (size_t r = 0; r < n_rows; r++) {
        if (file_of[r] >= 0)
            continue;
        out->forget[out->n_forget++] = r;
        /* Nothing was read of an empty file: its content, if any came, is
         * in a file newer than every matched one, read from 0. */
        if (rows[r].offset != ROTATION_DONE && rows[r].fp_len > 0)
            out->gaps[out->n_gaps++] = r;
    }
    free(order);
    free(row_of);
    free(file_of);
    free(writing);
}

void rotation_plan_free(rot_plan *p)
{
    if (!p)
        return;
    free(p->steps);
    free(p->gaps);
    free(p->forget);
    free(p->skipped);
    free(p->match);
    *p = (rot_plan){0};
}
