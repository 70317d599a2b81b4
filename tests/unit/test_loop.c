/* test_loop.c: the event loop's timers (a heap, no descriptor each): order,
 * periods, re-arming, disarming and freeing from callbacks, timers outliving
 * their loop, and thousands of timers under a small descriptor limit; deferred
 * calls that queue themselves again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"
#include "util.h"

#include "testutil.h"

typedef struct fired {
    int id;
    int64_t at_ms;
} fired;

static fired log_[20000];
static size_t n_log;
static size_t quit_after;

typedef struct tctx {
    int id;
    loop_timer *t;
    int64_t due_ms;    /* when it was armed to fire: the clock read before arming */
    int64_t due_hi_ms; /* ... and after: the loop's own due time is in between */
    int fires;
} tctx;

static void record(loop *l, void *userdata)
{
    tctx *c = userdata;
    c->fires++;
    log_[n_log++] = (fired){c->id, now_monotonic_ms()};
    if (n_log >= quit_after)
        loop_quit(l, 0);
}

static void quit_cb(loop *l, void *userdata)
{
    loop_quit(l, 0);
}

static void reset_log(size_t quit_at)
{
    n_log = 0;
    quit_after = quit_at;
}

static size_t open_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_timers_fire_in_due_order_and_one_shots_disarm(void **state)
{
    loop *l = loop_new();
    tctx c[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
    uint64_t delays[4] = {40, 10, 30, 20};
    /* Read before arming: a test descheduled between arming and reading
     * the clock would see its timers fire "early". */
    int64_t t0 = now_monotonic_ms();
    for (int i = 0; i < 4; i++) {
        c[i].t = loop_timer_new(l, record, &c[i]);
        assert_non_null(c[i].t);
        assert_false(loop_timer_armed(c[i].t));
        loop_timer_arm(c[i].t, delays[i], 0);
        assert_true(loop_timer_armed(c[i].t));
    }
    reset_log(4);
    assert_int_equal(loop_run(l), 0);
    int want[4] = {1, 3, 2, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log_[i].id, want[i]);
        assert_true(log_[i].at_ms - t0 >= (int64_t)delays[want[i]]);
        assert_false(loop_timer_armed(c[i].t));
    }
    for (int i = 0; i < 4; i++)
        loop_timer_free(c[i].t);
    loop_free(l);
}

static void test_periodic_timer_repeats_until_disarmed(void **state)
{
    loop *l = loop_new();
    tctx c = {.id = 7};
    c.t = loop_timer_new(l, record, &c);
    int64_t t0 = now_monotonic_ms(); /* before arming, as above */
    loop_timer_arm(c.t, 5, 5);
    reset_log(5);
    loop_run(l);
    assert_int_equal(c.fires, 5);
    assert_true(loop_timer_armed(c.t));
    assert_true(now_monotonic_ms() - t0 >= 25);
    loop_timer_disarm(c.t);
    assert_false(loop_timer_armed(c.t));
    /* Disarmed: another timer's 30 ms pass without it. */
    loop_timer *stop = loop_timer_new(l, quit_cb, NULL);
    loop_timer_arm(stop, 30, 0);
    loop_run(l);
    assert_int_equal(c.fires, 5);
    loop_timer_free(stop);
    loop_timer_free(c.t);
    loop_free(l);
}

/* A callback that frees its own timer, re-arms itself, or disarms another. */
typedef struct chain {
    loop_timer *self, *victim;
    int runs;
    bool free_self;
} chain;

static void chain_cb(loop *l, void *userdata)
{
    chain *c = userdata;
    c->runs++;
    if (c->victim) {
        loop_timer_disarm(c->victim);
        c->victim = NULL;
    }
    if (c->free_self) {
        loop_timer_free(c->self);
        c->self = NULL;
    } else if (c->runs < 3) {
        loop_timer_arm(c->self, 2, 0);
    }
}

static void test_callbacks_may_free_rearm_and_disarm_timers(void **state)
{
    loop *l = loop_new();
    chain freer = {.free_self = true}, rearm = {0};
    tctx victim = {.id = 1};
    freer.self = loop_timer_new(l, chain_cb, &freer);
    rearm.self = loop_timer_new(l, chain_cb, &rearm);
    victim.t = loop_timer_new(l, record, &victim);
    freer.victim = victim.t;
    /* Periodic: freeing it from its callback must not touch it again. */
    loop_timer_arm(freer.self, 1, 1);
    loop_timer_arm(victim.t, 20, 0);
    loop_timer_arm(rearm.self, 1, 0);
    /* Long enough that a loaded machine's pauses cannot end the chain early
     * (after a pause, due timers run in due order, the re-armed one after). */
    loop_timer *stop = loop_timer_new(l, quit_cb, NULL);
    loop_timer_arm(stop, 500, 0);
    reset_log(SIZE_MAX);
    loop_run(l);
    assert_int_equal(freer.runs, 1);
    assert_null(freer.self);
    assert_int_equal(rearm.runs, 3);
    assert_int_equal(victim.fires, 0);
    loop_timer_free(stop);
    loop_timer_free(rearm.self);
    loop_timer_free(victim.t);
    loop_free(l);
}

static void test_armed_timer_may_be_freed_after_its_loop(void **state)
{
    loop *l = loop_new();
    loop_timer *t = loop_timer_new(l, quit_cb, NULL);
    loop_timer_arm(t, 1000, 1000);
    loop_free(l);
    loop_timer_free(t); /* ASan: no use of the freed loop */
}

/* Many streams waiting to retry each hold a timer: they must not need a
 * descriptor each (with a timerfd each, 1,000 streams in an outage ran the
 * agent out of descriptors and a failed timer creation crashed it). */
static void test_thousands_of_timers_take_no_descriptors(void **state)
{
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    size_t before = open_fds();
    struct rlimit low = {.rlim_cur = before + 16, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    enum { N = 5000 };
    loop *l = loop_new();
    assert_non_null(l);
    static tctx c[N];
    seed(11);
    for (int i = 0; i < N; i++) {
        c[i] = (tctx){.id = i};
        c[i].t = loop_timer_new(l, record, &c[i]);
        assert_non_null(c[i].t);
        uint64_t delay = 1 + rnd_below(60);
        c[i].due_ms = now_monotonic_ms() + (int64_t)delay;
        loop_timer_arm(c[i].t, delay, 0);
        c[i].due_hi_ms = now_monotonic_ms() + (int64_t)delay;
    }
    /* Disarm a random tenth and re-arm another tenth (heap removals from the
     * middle), then check every survivor fires once, in due order. */
    int disarmed = 0;
    for (int i = 0; i < N / 10; i++) {
        tctx *x = &c[rnd_below(N)];
        if (loop_timer_armed(x->t)) {
            loop_timer_disarm(x->t);
            disarmed++;
        }
        tctx *y = &c[rnd_below(N)];
        if (loop_timer_armed(y->t)) {
            uint64_t delay = 1 + rnd_below(60);
            y->due_ms = now_monotonic_ms() + (int64_t)delay;
            loop_timer_arm(y->t, delay, 0);
            y->due_hi_ms = now_monotonic_ms() + (int64_t)delay;
        }
    }
    assert_true(open_fds() <= before + 1);               /* the epoll instance */
    loop_timer *stop = loop_timer_new(l, quit_cb, NULL); /* should some never fire */
    loop_timer_arm(stop, 10000, 0);
    reset_log((size_t)(N - disarmed));
    loop_run(l);
    loop_timer_free(stop);
    assert_int_equal(n_log, N - disarmed);
    /* Due times are known to the millisecond here, to the microsecond in the
     * loop: neighbours may swap within a millisecond. */
    for (size_t i = 1; i < n_log; i++)
        assert_true(c[log_[i - 1].id].due_ms <= c[log_[i].id].due_hi_ms + 1);
    for (size_t i = 0; i < n_log; i++)
        assert_true(log_[i].at_ms >= c[log_[i].id].due_ms - 1);
    for (int i = 0; i < N; i++) {
        assert_true(c[i].fires <= 1);
        loop_timer_free(c[i].t);
    }
    loop_free(l);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

/* A deferred call that queues itself again (a source with a long backlog)
 * must not starve the descriptors: a readable pipe is handled after at most
 * one more pass. */
typedef struct busy {
    int passes;
    int fd_seen_at; /* passes done when the fd's callback ran; -1 not yet */
} busy;

static void busy_cb(loop *l, void *userdata)
{
    busy *b = userdata;
    b->passes++;
    if (b->fd_seen_at >= 0 || b->passes > 1000)
        loop_quit(l, 0);
    else
        loop_defer(l, busy_cb, b);
}

static void readable_cb(loop *l, int fd, uint32_t events, void *userdata)
{
    busy *b = userdata;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    b->fd_seen_at = b->passes;
}

static void test_a_deferred_call_that_requeues_itself_lets_descriptors_in(void **state)
{
    loop *l = loop_new();
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe(p), 0);
    busy b = {.fd_seen_at = -1};
    assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, readable_cb, &b), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    loop_defer(l, busy_cb, &b);
    loop_run(l);
    assert_int_equal(b.fd_seen_at, 1); /* right after the first pass */
    loop_del_fd(l, p[0]);
    close(p[0]);
    close(p[1]);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_due_order_and_one_shots_disarm),
        cmocka_unit_test(test_periodic_timer_repeats_until_disarmed),
        cmocka_unit_test(test_callbacks_may_free_rearm_and_disarm_timers),
        cmocka_unit_test(test_armed_timer_may_be_freed_after_its_loop),
        cmocka_unit_test(test_thousands_of_timers_take_no_descriptors),
        cmocka_unit_test(test_a_deferred_call_that_requeues_itself_lets_descriptors_in),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
