/* test_tail.c: one file through tail.c into a source's ring: partial joins,
 * blocking pauses, drop policies with their counts, splitting, and the
 * checkpoint offset that never passes what is still pending. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "agent.h"
#include "source.h"

typedef struct fixture {
    char dir[64];
    char path[96];
    agent *a;
    config cfg;
    source_config sc;
    source *s;
    tailfile *f;
} fixture;

static int setup(void **state)
{
    fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/cwlogd-tail-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/x-json.log", fx->dir);
    fx->cfg = (config){.max_event_size = 1048550, .placeholder = "unknown"};
    fx->a = xcalloc(1, sizeof *fx->a);
    fx->a->cfg = &fx->cfg;
    fx->a->loop = loop_new();
    fx->a->budget.limit = UINT64_MAX;
    fx->sc = (source_config){.name = "t", .type = SOURCE_DOCKER, .group = "g", .stream = "s",
                             .max_buffer_size = 1 << 20, .mode = MODE_BLOCKING};
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    tail_free(fx->f);
    source_free(fx->s);
    loop_free(fx->a->loop);
    free(fx->a);
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void write_file(fixture *fx, const char *text)
{
    int fd = open(fx->path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Open the file as the source's only file, from offset 0. */
static void open_tail(fixture *fx)
{
    fx->s = source_new(fx->a, &fx->sc);
    int fd = open(fx->path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    fx->f = tail_new(fx->s, fx->path, fd, &st);
    tail_seek(fx->f, 0);
}

/* Pop every record (as the dry-run output does), appending "msg|" to out. */
static size_t drain(fixture *fx, buf *out)
{
    size_t n = 0;
    const record *r;
    while ((r = ring_peek(fx->s->ring))) {
        buf_append(out, r->msg, r->esc_len);
        buf_appendc(out, '|');
        tailfile *f = r->owner;
        uint64_t end = r->end_offset;
        ring_pop(fx->s->ring);
        tail_record_done(f, end, true);
        n++;
    }
    buf_appendc(out, 0);
    out->len--;
    return n;
}

static char *docker_line(const char *log, const char *stream)
{
    return xasprintf("{\"log\":\"%s\",\"stream\":\"%s\",\"time\":\"2024-11-24T09:20:00.5Z\"}\n",
                     log, stream);
}

static void append_line(fixture *fx, const char *log, const char *stream)
{
    _cleanup_free_ char *l = docker_line(log, stream);
    write_file(fx, l);
}

static void test_partials_join_per_stream_and_hold_the_checkpoint(void **state)
{
    fixture *fx = *state;
    append_line(fx, "part one, ", "stdout");
    append_line(fx, "an error\\n", "stderr");
    open_tail(fx);
    assert_int_equal(tail_read(fx->f, 1 << 20), 0);
    buf out = {0};
    assert_int_equal(drain(fx, &out), 1);
    assert_string_equal(out.data, "an error|");
    /* The stderr line is delivered, but the stdout partial before it is not:
     * a restart must read from the partial's start. */
    assert_int_equal(tail_checkpoint_offset(fx->f), 0);

    append_line(fx, "part two\\n", "stdout");
    struct stat st;
    stat(fx->path, &st);
    assert_int_equal(tail_read(fx->f, 1 << 20), 0);
    out.len = 0;
    assert_int_equal(drain(fx, &out), 1);
    assert_string_equal(out.data, "part one, part two|");
    assert_int_equal(tail_checkpoint_offset(fx->f), (uint64_t)st.st_size);
    assert_true(tail_fully_acked(fx->f));
    buf_free(&out);
}

static void test_joined_record_takes_the_first_parts_time(void **state)
{
    fixture *fx = *state;
    write_file(fx, "{\"log\":\"a\",\"stream\":\"stdout\",\"time\":\"2024-11-24T09:20:00.001Z\"}\n");
    write_file(fx, "{\"log\":\"b\\n\",\"stream\":\"stdout\",\"time\":\"2024-11-24T09:20:09Z\"}\n");
    open_tail(fx);
    tail_read(fx->f, 1 << 20);
    const record *r = ring_peek(fx->s->ring);
    assert_non_null(r);
    assert_int_equal(r->timestamp_ms, 1732440000001LL);
    assert_int_equal(r->utf8_len, 2);
}

static void test_blocking_pauses_and_resumes_without_loss_or_repeat(void **state)
{
    fixture *fx = *state;
    fx->sc.max_buffer_size = 2048;
    for (int i = 0; i < 200; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "line %03d\\n", i);
        append_line(fx, msg, "stdout");
    }
    open_tail(fx);
    buf out = {0}, all = {0};
    int pauses = 0, r;
    while ((r = tail_read(fx->f, 1 << 20)) != 0) {
        assert_int_equal(r, -EAGAIN);
        assert_true(fx->s->blocked);
        assert_true(ring_bytes(fx->s->ring) <= 2048);
        pauses++;
        out.len = 0;
        drain(fx, &out);
        buf_append(&all, out.data, out.len);
        fx->s->blocked = false;
    }
    out.len = 0;
    drain(fx, &out);
    buf_append(&all, out.data, out.len);
    buf_appendc(&all, 0);
    assert_true(pauses >= 3); /* 200 records of 40 charged bytes through 2 KiB */
    buf expect = {0};
    for (int i = 0; i < 200; i++)
        buf_printf(&expect, "line %03d|", i);
    assert_string_equal(all.data, expect.data);
    assert_int_equal(fx->s->st.dropped_events, 0);
    buf_free(&out);
    buf_free(&all);
    buf_free(&expect);
}

static void fill_100(fixture *fx)
{
    for (int i = 0; i < 100; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "event %03d\\n", i);
        append_line(fx, msg, "stdout");
    }
}

static void test_drop_oldest_keeps_the_newest_and_counts_every_drop(void **state)
{
    fixture *fx = *state;
    fx->sc.max_buffer_size = 1024;
    fx->sc.mode = MODE_NON_BLOCKING;
    fx->sc.drop = DROP_OLDEST;
    fill_100(fx);
    open_tail(fx);
    assert_int_equal(tail_read(fx->f, 1 << 20), 0); /* never pauses */
    uint64_t kept = ring_count(fx->s->ring);
    assert_true(kept > 0 && kept < 100);
    assert_int_equal(fx->s->st.dropped_events, 100 - kept);
    assert_int_equal(fx->s->st.dropped_bytes, (100 - kept) * strlen("event 000"));
    assert_int_equal(fx->s->st.drop_pending_events, 100 - kept);
    assert_int_equal(fx->f->drop_events, 100 - kept);
    assert_int_equal(fx->f->drop_bytes, (100 - kept) * strlen("event 000"));
    /* What is dropped counts as done: the checkpoint passes it. */
    assert_true(tail_checkpoint_offset(fx->f) > 0);
    buf out = {0};
    drain(fx, &out);
    char first[32];
    snprintf(first, sizeof first, "event %03d|", (int)(100 - kept));
    assert_memory_equal(out.data, first, strlen(first));
    struct stat st;
    stat(fx->path, &st);
    assert_int_equal(tail_checkpoint_offset(fx->f), (uint64_t)st.st_size);
    buf_free(&out);
}

static void test_drop_newest_keeps_the_oldest_and_holds_the_checkpoint(void **state)
{
    fixture *fx = *state;
    fx->sc.max_buffer_size = 1024;
    fx->sc.mode = MODE_NON_BLOCKING;
    fx->sc.drop = DROP_NEWEST;
    fill_100(fx);
    open_tail(fx);
    assert_int_equal(tail_read(fx->f, 1 << 20), 0);
    uint64_t kept = ring_count(fx->s->ring);
    assert_true(kept > 0 && kept < 100);
    assert_int_equal(fx->s->st.dropped_events, 100 - kept);
    /* Newer events were dropped but older ones still wait in the ring. */
    assert_int_equal(tail_checkpoint_offset(fx->f), 0);
    buf out = {0};
    drain(fx, &out);
    assert_memory_equal(out.data, "event 000|", 10);
    struct stat st;
    stat(fx->path, &st);
    assert_int_equal(tail_checkpoint_offset(fx->f), (uint64_t)st.st_size);
    buf_free(&out);
}

static void test_line_over_the_event_limit_is_split_and_resumes_whole(void **state)
{
    fixture *fx = *state;
    fx->cfg.max_event_size = 1024;
    fx->sc.type = SOURCE_FILE;
    char line[3001];
    memset(line, 'z', 3000);
    line[3000] = 0;
    write_file(fx, "short\n");
    write_file(fx, line);
    write_file(fx, "\n");
    open_tail(fx);
    tail_read(fx->f, 1 << 20);
    assert_int_equal(ring_count(fx->s->ring), 4);
    const record *r;
    size_t total = 0, n = 0;
    uint64_t ends[4];
    while ((r = ring_peek(fx->s->ring))) {
        assert_true(r->utf8_len <= 1024);
        total += r->utf8_len;
        ends[n++] = r->end_offset;
        ring_pop(fx->s->ring);
    }
    assert_int_equal(total, 5 + 3000);
    /* Pieces before the last end where the long line starts. */
    assert_int_equal(ends[0], 6);
    assert_int_equal(ends[1], 6);
    assert_int_equal(ends[2], 6);
    assert_int_equal(ends[3], 6 + 3001);
    assert_int_equal(fx->s->st.split_events, 2);
}

static void test_corrupt_lines_are_skipped_and_passed_by_the_checkpoint(void **state)
{
    fixture *fx = *state;
    write_file(fx, "not json at all\n");
    append_line(fx, "good\\n", "stdout");
    write_file(fx, "{\"log\":\"bad \\q escape\"}\n");
    open_tail(fx);
    tail_read(fx->f, 1 << 20);
    buf out = {0};
    assert_int_equal(drain(fx, &out), 1);
    assert_string_equal(out.data, "good|");
    assert_int_equal(fx->s->st.corrupt_lines, 2);
    struct stat st;
    stat(fx->path, &st);
    assert_int_equal(tail_checkpoint_offset(fx->f), (uint64_t)st.st_size);
    buf_free(&out);
}

/* /proc/self/status says it is empty and returns a page: taken as truncated
 * at each end, it was read again forever (millions of duplicates a second). */
static void test_a_file_that_reads_past_its_size_is_read_once_not_in_a_loop(void **state)
{
    fixture *fx = *state;
    fx->sc.type = SOURCE_FILE;
    fx->s = source_new(fx->a, &fx->sc);
    int fd = open("/proc/self/status", O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 0);
    fx->f = tail_new(fx->s, "/proc/self/status", fd, &st);
    tail_seek(fx->f, 0);
    buf out = {0};
    size_t first = 0, later = 0;
    for (int i = 0; i < 5; i++) { /* what source_pump does at each end of the file */
        assert_int_equal(tail_read(fx->f, 1 << 20), 0);
        tail_check_rotation(fx->f);
        out.len = 0;
        size_t n = drain(fx, &out);
        if (i == 0)
            first = n;
        else
            later += n;
    }
    assert_true(first > 5);
    assert_int_equal(later, 0);
    assert_true(fx->f->size_untrusted);
    assert_int_equal(fx->f->state, TAIL_ACTIVE);
    buf_free(&out);
}

/* A real truncation is still one: copy-truncate reads the file again. */
static void test_a_truncated_file_is_read_again_from_its_start(void **state)
{
    fixture *fx = *state;
    fx->sc.type = SOURCE_FILE;
    write_file(fx, "one\ntwo\n");
    open_tail(fx);
    buf out = {0};
    assert_int_equal(tail_read(fx->f, 1 << 20), 0);
    assert_int_equal(drain(fx, &out), 2);
    assert_int_equal(truncate(fx->path, 0), 0);
    write_file(fx, "3\n");
    tail_check_rotation(fx->f);
    assert_int_equal(tail_read(fx->f, 1 << 20), 0);
    out.len = 0;
    assert_int_equal(drain(fx, &out), 1);
    assert_string_equal(out.data, "3|");
    assert_false(fx->f->size_untrusted);
    buf_free(&out);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_partials_join_per_stream_and_hold_the_checkpoint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_joined_record_takes_the_first_parts_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_blocking_pauses_and_resumes_without_loss_or_repeat,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_oldest_keeps_the_newest_and_counts_every_drop,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_newest_keeps_the_oldest_and_holds_the_checkpoint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_over_the_event_limit_is_split_and_resumes_whole,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_lines_are_skipped_and_passed_by_the_checkpoint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_file_that_reads_past_its_size_is_read_once_not_in_a_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_truncated_file_is_read_again_from_its_start, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
