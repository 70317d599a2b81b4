/* test_rotation.c: rotation_plan() over the rotation sequences a real Docker
 * daemon produces (json-file, with and without compress=true), one table row
 * each: the files in the container's directory and the stored rows, to the
 * files read (oldest first, from where), the gaps and the rows forgotten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rotation.h"

#define FP 16
#define DONE ROTATION_DONE
#define UNK ROTATION_SIZE_UNKNOWN
#define NOFP 1000 /* a row stored while its file was empty: no fingerprint */

/* A file: its suffix after the live name ("" live, ".1", ".2.gz"), the
 * content it holds (a letter: files with the same letter hold the same
 * bytes; a .gz holds its original's), its inode and content size. */
typedef struct tfile {
    const char *suffix;
    char content;
    uint64_t ino;
    uint64_t size;
} tfile;

/* A stored row: inode, content letter, fingerprint length (0: FP), offset. */
typedef struct trow {
    uint64_t ino;
    char content;
    size_t fp_len;
    uint64_t offset;
} trow;

typedef struct tcase {
    const char *what;
    tfile files[8];
    trow rows[8];
    bool first_run, start_at_end;
    const char *steps;  /* "SUFFIX@OFFSET:WHY ..." WHY: R F U N E B T; live is "-" */
    const char *gaps;   /* row indices, "0 2" */
    const char *forget; /* row indices */
} tcase;

static const tcase cases[] = {
    {"issue 10: compress=true, stopped with SIGTERM, run again: finished .gz files are not "
     "read again",
     {{"", 'C', 3, 50}, {".1.gz", 'B', 12, 200}, {".2.gz", 'A', 11, 200}},
     {{3, 'C', 0, 50}, {2, 'B', 0, DONE}, {1, 'A', 0, DONE}},
     false, false, "-@50:R", "", ""},
    {"only the live file's row (no done row): the files before it are read, not assumed read "
     "(a row stored at an open is no proof that the files before it were finished)",
     {{"", 'C', 3, 50}, {".1.gz", 'B', 12, 200}, {".2.gz", 'A', 11, 200}},
     {{3, 'C', 0, 50}},
     false, false, ".2.gz@0:U .1.gz@0:U -@50:R", "", ""},
    {"killed in a first run's first second, rows stored at each open, the first live file's "
     "while it was empty: it, compressed since, is read between the others (it was skipped as "
     "older than a file being read)",
     {{"", 'E', 5, 10}, {".1.gz", 'D', 14, 200}, {".2.gz", 'C', 13, 200}, {".3.gz", 'B', 12, 200},
      {".4.gz", 'A', 11, 200}},
     {{11, 'A', 0, 0}, {2, 'B', NOFP, 0}, {3, 'C', 0, 0}, {4, 'D', 0, 0}},
     false, false, ".4.gz@0:F .3.gz@0:U .2.gz@0:F .1.gz@0:F -@0:N", "", "1"},
    {"files older than a done one without rows were read before",
     {{"", 'C', 3, 50}, {".1.gz", 'B', 12, 200}, {".2.gz", 'A', 11, 200}},
     {{12, 'B', 0, DONE}, {3, 'C', 0, 50}},
     false, false, "-@50:R", "", ""},
    {"rotated and compressed while stopped: the .gz is the file we were reading, by content",
     {{"", 'C', 3, 30}, {".1.gz", 'B', 12, 200}, {".2.gz", 'A', 11, 200}},
     {{2, 'B', 0, 120}, {1, 'A', 0, DONE}},
     false, false, ".1.gz@120:F -@0:N", "", ""},
    {"killed while Docker compresses .1: .1 is read, the .gz being written is not",
     {{"", 'C', 3, 10}, {".1", 'B', 2, 200}, {".1.gz", 'B', 12, UNK}, {".2.gz", 'A', 11, 200}},
     {{2, 'B', 0, 80}, {1, 'A', 0, DONE}},
     false, false, ".1@80:F -@0:N", "", ""},
    {"a .gz being written and a done row for its twin: nothing read twice",
     {{"", 'C', 3, 10}, {".1", 'B', 2, 200}, {".1.gz", 'B', 12, UNK}},
     {{2, 'B', 0, DONE}, {3, 'C', 10, 10}},
     false, false, "-@10:R", "", ""},
    {"rotated twice while stopped: finish ours, then the one never seen, then the live file",
     {{"", 'D', 4, 5}, {".1.gz", 'C', 13, 200}, {".2.gz", 'B', 12, 200}, {".3.gz", 'A', 11, 200}},
     {{2, 'B', 0, 120}, {1, 'A', 0, DONE}},
     false, false, ".2.gz@120:F .1.gz@0:U -@0:N", "", ""},
    {"uncompressed rotation while stopped",
     {{"", 'C', 3, 5}, {".1", 'B', 2, 200}, {".2", 'A', 1, 200}},
     {{2, 'B', 0, 100}, {1, 'A', 0, DONE}},
     false, false, ".1@100:F -@0:N", "", ""},
    {"killed after reading a rotated file to its end, before it was marked done",
     {{"", 'C', 3, 5}, {".1", 'B', 2, 200}},
     {{2, 'B', 0, 200}, {3, 'C', 5, 0}},
     false, false, "-@0:R", "", ""},
    {"retention (max-file) deleted the file we were reading: a gap, the rest read",
     {{"", 'F', 6, 5}, {".1.gz", 'E', 15, 200}, {".2.gz", 'D', 14, 200}},
     {{2, 'B', 0, 120}, {1, 'A', 0, DONE}},
     false, false, ".2.gz@0:U .1.gz@0:U -@0:N", "0", "0 1"},
    {"a done row whose file retention deleted is forgotten, without a gap",
     {{"", 'C', 3, 50}, {".1.gz", 'B', 12, 200}},
     {{1, 'A', 0, DONE}, {2, 'B', 0, DONE}, {3, 'C', 0, 50}},
     false, false, "-@50:R", "", "0"},
    {"a short fingerprint (the file was new) still finds its compressed file",
     {{"", 'C', 3, 5}, {".1.gz", 'B', 12, 200}},
     {{2, 'B', 4, 3}},
     false, false, ".1.gz@3:F -@0:N", "", ""},
    {"an inode reused by another file: the row's file is gone",
     {{"", 'Y', 5, 40}},
     {{5, 'X', 0, 100}},
     false, false, "-@0:N", "0", "0"},
    {"the new live file got the inode of the .1 compression removed: not that file",
     {{"", 'C', 2, 0}, {".1.gz", 'B', 12, 200}, {".2.gz", 'A', 11, 200}},
     {{2, 'B', 0, 150}, {1, 'A', 0, DONE}},
     false, false, ".1.gz@150:F -@0:N", "", ""},
    {"copy-truncate while stopped: read again from 0",
     {{"", 'X', 5, 30}},
     {{5, 'X', 0, 500}},
     false, false, "-@0:T", "", ""},
    {"first run, start_at = end: the live file from its end, rotations not read",
     {{"", 'B', 2, 70}, {".1.gz", 'A', 11, 200}},
     {{0}},
     true, true, "-@70:E", "", ""},
    {"first run, start_at = beginning: rotations oldest first, then the live file",
     {{"", 'C', 3, 70}, {".1.gz", 'B', 12, 200}, {".2.gz", 'A', 11, 200}},
     {{0}},
     true, false, ".2.gz@0:B .1.gz@0:B -@0:B", "", ""},
    {"a container new since the last run: everything from 0",
     {{"", 'B', 2, 70}, {".1", 'A', 1, 200}},
     {{0}},
     false, true, ".1@0:U -@0:N", "", ""},
    {"a removed container's rotations: nothing new, its rows forgotten",
     {{0}},
     {{2, 'B', 0, DONE}, {3, 'C', 0, 40}},
     false, false, "", "1", "0 1"},
    {"ten rotations: .10 is older than .9",
     {{"", 'L', 30, 1}, {".9.gz", 'B', 22, 90}, {".10.gz", 'A', 21, 90}, {".1.gz", 'K', 31, 90}},
     {{21, 'A', 0, DONE}},
     false, false, ".9.gz@0:U .1.gz@0:U -@0:N", "", ""},
    {"killed before the first bytes of an empty live file were stored; while stopped it was "
     "rotated and compressed and the next live file got its inode: that file is not the row's, "
     "and every file after the done one is read (the row matched the new live file and the "
     "files between were skipped as read)",
     {{"", 'D', 2, 30}, {".1.gz", 'C', 13, 200}, {".2.gz", 'B', 12, 200}, {".3.gz", 'A', 11, 200}},
     {{2, 'B', NOFP, 0}, {1, 'A', 0, DONE}},
     false, false, ".2.gz@0:U .1.gz@0:U -@0:N", "", "0"},
    {"a row stored while its live file was empty, still the live file: from 0, no gap",
     {{"", 'B', 2, 40}, {".1.gz", 'A', 11, 200}},
     {{2, 'B', NOFP, 0}, {11, 'A', 0, DONE}},
     false, false, "-@0:N", "", "0"},
    {"a .gz read in an earlier run has its row under its own inode: matched by it after "
     "Docker renamed it on",
     {{"", 'C', 3, 10}, {".1.gz", 'B', 13, 200}, {".3.gz", 'A', 12, 200}},
     {{12, 'A', 0, 120}},
     false, false, ".3.gz@120:F .1.gz@0:U -@0:N", "", ""},
    {"a done row on the live name: from its end",
     {{"", 'C', 3, 50}},
     {{3, 'C', 0, DONE}},
     false, false, "-@50:R", "", ""},
};

static void fp_of(char content, unsigned char *fp)
{
    for (int i = 0; i < FP; i++)
        fp[i] = (unsigned char)(i == FP - 1 ? '\n' : content);
}

static char why_code(rot_why w)
{
    static const char codes[] = {[ROT_RESUME] = 'R', [ROT_FINISH] = 'F', [ROT_UNREAD] = 'U',
                                 [ROT_NEW] = 'N', [ROT_START_END] = 'E',
                                 [ROT_START_BEGIN] = 'B', [ROT_TRUNCATED] = 'T'};
    return codes[w];
}

static void run_case(const tcase *c)
{
    rot_file files[8];
    rot_row rows[8];
    unsigned char ffp[8][FP], rfp[8][FP];
    char paths[8][64];
    size_t nf = 0, nr = 0;
    for (; nf < 8 && c->files[nf].content; nf++) {
        const tfile *t = &c->files[nf];
        snprintf(paths[nf], sizeof paths[nf], "/c/x-json.log%s", t->suffix);
        unsigned index;
        bool gz;
        assert_true(rotation_parse_name("/c/x-json.log", paths[nf], &index, &gz));
        fp_of(t->content, ffp[nf]);
        files[nf] = (rot_file){.path = paths[nf], .index = index, .gz = gz, .dev = 1,
                               .ino = t->ino, .fp = ffp[nf],
                               .fp_len = t->size < FP ? (size_t)t->size : FP, .size = t->size};
        if (t->size == UNK)
            files[nf].fp_len = FP;
    }
    for (; nr < 8 && c->rows[nr].content; nr++) {
        const trow *t = &c->rows[nr];
        fp_of(t->content, rfp[nr]);
        rows[nr] = (rot_row){.dev = 1, .ino = t->ino, .fp = rfp[nr],
                             .fp_len = t->fp_len == NOFP ? 0 : t->fp_len ? t->fp_len : FP,
                             .offset = t->offset};
    }
    rot_plan p;
    rotation_plan(files, nf, rows, nr,
                  (rot_policy){.first_run = c->first_run, .start_at_end = c->start_at_end}, &p);
    char got[512] = "", gaps[64] = "", forget[64] = "";
    for (size_t i = 0; i < p.n_steps; i++) {
        const rot_step *s = &p.steps[i];
        const char *suffix = c->files[s->file].suffix;
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s@%llu:%c", i ? " " : "",
                 suffix[0] ? suffix : "-", (unsigned long long)s->offset, why_code(s->why));
    }
    for (size_t i = 0; i < p.n_gaps; i++)
        snprintf(gaps + strlen(gaps), sizeof gaps - strlen(gaps), "%s%zu", i ? " " : "",
                 p.gaps[i]);
    for (size_t i = 0; i < p.n_forget; i++)
        snprintf(forget + strlen(forget), sizeof forget - strlen(forget), "%s%zu", i ? " " : "",
                 p.forget[i]);
    if (strcmp(got, c->steps) || strcmp(gaps, c->gaps) || strcmp(forget, c->forget))
        print_error("case: %s\n  steps  want \"%s\" got \"%s\"\n  gaps   want \"%s\" got \"%s\"\n"
                    "  forget want \"%s\" got \"%s\"\n",
                    c->what, c->steps, got, c->gaps, gaps, c->forget, forget);
    assert_string_equal(got, c->steps);
    assert_string_equal(gaps, c->gaps);
    assert_string_equal(forget, c->forget);
    /* Every step continuing a row names a row that matched, once. */
    for (size_t i = 0; i < p.n_steps; i++)
        for (size_t j = i + 1; j < p.n_steps; j++)
            assert_true(p.steps[i].row < 0 || p.steps[i].row != p.steps[j].row);
    rotation_plan_free(&p);
}

static void test_docker_rotation_sequences_plan_as_the_table_says(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
}

static void test_rotated_names_are_parsed_and_nothing_else_is(void **state)
{
    unsigned n;
    bool gz;
    assert_true(rotation_parse_name("/d/x-json.log", "/d/x-json.log", &n, &gz));
    assert_int_equal(n, 0);
    assert_true(rotation_parse_name("/d/x-json.log", "/d/x-json.log.12.gz", &n, &gz));
    assert_int_equal(n, 12);
    assert_true(gz);
    assert_true(rotation_parse_name("/d/x-json.log", "/d/x-json.log.3", &n, &gz));
    assert_int_equal(n, 3);
    assert_false(gz);
    assert_false(rotation_parse_name("/d/x-json.log", "/d/x-json.log.0", &n, &gz));
    assert_false(rotation_parse_name("/d/x-json.log", "/d/x-json.log.1.tmp", &n, &gz));
    assert_false(rotation_parse_name("/d/x-json.log", "/d/x-json.log.gz", &n, &gz));
    assert_false(rotation_parse_name("/d/x-json.log", "/d/x-json.logx", &n, &gz));
    assert_false(rotation_parse_name("/d/x-json.log", "/d/y-json.log.1", &n, &gz));
    assert_false(rotation_parse_name("/d/x-json.log", "/d/x-json.log.99999999999", &n, &gz));
}

static void test_rotation_base_strips_the_rotation_suffix(void **state)
{
    const char *in[][2] = {{"/d/x-json.log.2", "/d/x-json.log"},
                           {"/d/x-json.log.1.gz", "/d/x-json.log"},
                           {"/d/x-json.log", "/d/x-json.log"},
                           {"/p/0.log.20241124-092000", "/p/0.log"},
                           {"/p/app.log", "/p/app.log"}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char *b = rotation_base(in[i][0]);
        assert_string_equal(b, in[i][1]);
        free(b);
    }
}

/* A Docker json-file line of `len` bytes: the time at its end, as Docker
 * writes it. */
static size_t json_line(char *out, const char *log, size_t log_len, const char *time)
{
    size_t n = (size_t)sprintf(out, "{\"log\":\"");
    memcpy(out + n, log, log_len);
    n += log_len;
    return n + (size_t)sprintf(out + n, "\",\"stream\":\"stdout\",\"time\":\"%s\"}\n", time);
}

static void test_files_starting_inside_a_long_line_have_different_fingerprints(void **state)
{
    /* Docker splits a 40 KB line into 16 KiB entries: a file that starts with
     * the second or third begins with `{"log":"xxxx...` for far more than 256
     * bytes, the same in every such file. */
    static char a[20000], b[20000], x[16384];
    memset(x, 'x', sizeof x);
    size_t na = json_line(a, x, sizeof x, "2026-12-05T18:00:00.000000001Z");
    size_t nb = json_line(b, x, sizeof x, "2026-12-05T18:00:00.000000002Z");
    unsigned char fa[ROTATION_FP_MAX], fb[ROTATION_FP_MAX];
    size_t la, lb;
    rotation_fingerprint((unsigned char *)a, na, fa, &la);
    rotation_fingerprint((unsigned char *)b, nb, fb, &lb);
    assert_int_equal(la, ROTATION_FP_MAX);
    assert_int_equal(lb, ROTATION_FP_MAX);
    assert_memory_equal(fa, fb, 200); /* the same first bytes */
    assert_false(rotation_fp_matches(fa, la, fb, lb));
    /* The same file read again (more of it written since): the same fingerprint. */
    memcpy(a + na, "{\"log\":\"more\\n\"}\n", 17);
    unsigned char fa2[ROTATION_FP_MAX];
    size_t la2;
    rotation_fingerprint((unsigned char *)a, na + 17, fa2, &la2);
    assert_true(rotation_fp_matches(fa, la, fa2, la2));

    /* Read while Docker was still writing that first line (no newline yet):
     * what was stored then must still match the file once the line is whole,
     * whether it ends up long (hashed) or short. */
    for (size_t cut = 0; cut <= na; cut += cut < 600 ? 1 : 997) {
        unsigned char early[ROTATION_FP_MAX];
        size_t le;
        rotation_fingerprint((unsigned char *)a, cut, early, &le);
        assert_true(rotation_fp_matches(early, le, fa2, la2));
        assert_true(le <= ROTATION_FP_MAX);
    }

    /* Short first lines: the first bytes themselves, growing with the file. */
    const char *small = "{\"log\":\"k0 1\\n\",\"stream\":\"stdout\",\"time\":\"T1\"}\n";
    char two[512];
    snprintf(two, sizeof two, "%s%s", small, small);
    unsigned char f1[ROTATION_FP_MAX], f2[ROTATION_FP_MAX];
    size_t l1, l2;
    rotation_fingerprint((const unsigned char *)small, strlen(small), f1, &l1);
    rotation_fingerprint((const unsigned char *)two, strlen(two), f2, &l2);
    assert_int_equal(l1, strlen(small));
    assert_memory_equal(f1, small, l1);
    assert_true(rotation_fp_matches(f1, l1, f2, l2));
    /* An empty file has none. */
    rotation_fingerprint((const unsigned char *)"", 0, f1, &l1);
    assert_int_equal(l1, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_rotation_sequences_plan_as_the_table_says),
        cmocka_unit_test(test_rotated_names_are_parsed_and_nothing_else_is),
        cmocka_unit_test(test_rotation_base_strips_the_rotation_suffix),
        cmocka_unit_test(test_files_starting_inside_a_long_line_have_different_fingerprints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
