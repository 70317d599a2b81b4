/* testutil.h: what several unit tests share: a seeded pseudo-random source
 * (splitmix64; CWLOGD_TEST_SEED varies it) and running an event loop until a
 * condition holds. Header-only: each test program is one file. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "loop.h"
#include "util.h"

static uint64_t rng_state;

static inline uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

static inline void seed(uint64_t s)
{
    const char *env = getenv("CWLOGD_TEST_SEED");
    rng_state = env ? strtoull(env, NULL, 0) ^ s : s;
}

typedef bool (*step_fn)(void *arg);

typedef struct runner {
    step_fn step;
    void *arg;
    int64_t deadline;
    bool done;
} runner;

static inline void runner_tick(loop *l, void *userdata)
{
    runner *r = userdata;
    if (r->step(r->arg)) {
        r->done = true;
        loop_quit(l, 0);
    } else if (now_monotonic_ms() >= r->deadline) {
        loop_quit(l, 1);
    }
}

/* Run the loop until step() returns true (checked every 5 ms) or the timeout
 * passes; returns whether step() reported completion in time. */
static inline bool run(loop *l, step_fn step, void *arg, int64_t timeout_ms)
{
    runner r = {.step = step, .arg = arg, .deadline = now_monotonic_ms() + timeout_ms};
    loop_timer *t = loop_timer_new(l, runner_tick, &r);
    if (!t)
        return false;
    loop_timer_arm(t, 5, 5);
    loop_run(l);
    loop_timer_free(t);
    return r.done;
}
