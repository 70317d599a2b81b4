/* pacer.c: per-operation adaptive pacing (see pacer.h): multiplicative cut on
 * a throttle, at most once per round of requests, multiplicative growth per
 * success, and every interval drawn from [0.5, 1.5] of its mean. */
#include "pacer.h"

#include <assert.h>

#include "util.h"

#define WINDOW_MS 1000

/* One request per second to start with, 20 % more per success. Measured
 * with test_pacer's simulated fleets, a start of 0.25/s and 10 % growth
 * halved the throttles of 40 agents starting together (1.04 sent per
 * success against 1.38) and brought 200 agents to 1.48 (from 1.86), but
 * with a new stream still waiting for its first slot at SIGTERM,
 * test_crash.py's stop-and-restart test lost lines; 10 % alone left 10
 * agents with 50 streams each over 2 x ideal + 10 s. */
const pacer_params pacer_create_stream = {
    .start_rate = 1, .min_rate = 0.05, .max_rate = 500, .cut = 0.5, .grow = 0.2,
    .first_jitter = true, .forget_ms = 3600 * 1000};

static uint64_t next_random(pacer *p)
{
    /* xorshift64*: enough to spread agents apart, and reproducible in tests. */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 2685821657736338717ull;
}

/* Uniform in [lo, hi). */
static double uniform(pacer *p, double lo, double hi)
{
    return lo + (hi - lo) * (double)(next_random(p) >> 11) / (double)(1ull << 53);
}

static int64_t interval_ms(pacer *p, double lo, double hi)
{
    if (p->rate <= 0)
        return 0;
    return (int64_t)(1000.0 / p->rate * uniform(p, lo, hi));
}

void pacer_init(pacer *p, const pacer_params *pp, uint64_t seed)
{
    assert(p && pp);
    assert(pp->cut > 0 && pp->cut < 1 && pp->grow >= 0);
    assert(pp->min_rate > 0 && pp->max_rate >= pp->min_rate);
    *p = (pacer){.pp = *pp, .rate = pp->start_rate, .cut_ms = INT64_MIN,
                 .throttle_ms = INT64_MIN, .rng = seed ? seed : 0x9e3779b97f4a7c15ull};
}

static void count_window(pacer *p, int64_t now)
{
    if (now - p->win_ms >= 2 * WINDOW_MS) {
        p->prev_win_sent = 0;
        p->win_sent = 0;
        p->win_ms = now;
    } else if (now - p->win_ms >= WINDOW_MS) {
        p->prev_win_sent = p->win_sent;
        p->win_sent = 0;
        p->win_ms += WINDOW_MS;
    }
}

int64_t pacer_wait(pacer *p, int64_t now)
{
    if (!p->started) {
        p->started = true;
        p->win_ms = now;
        p->next_ms = now + (p->pp.first_jitter ? interval_ms(p, 0, 1) : 0);
    }
    if (p->pp.forget_ms > 0 && p->throttle_ms != INT64_MIN &&
        now - p->throttle_ms >= p->pp.forget_ms) {
        /* Long quiet: the fleet around us has changed; start over. */
        p->throttle_ms = INT64_MIN;
        if (p->pp.start_rate <= 0 || p->rate < p->pp.start_rate)
            p->rate = p->pp.start_rate;
    }
    return p->next_ms > now ? p->next_ms - now : 0;
}

void pacer_sent(pacer *p, int64_t now)
{
    count_window(p, now);
    p->win_sent++;
    p->sent++;
    p->next_ms = MAX(p->next_ms, now) + interval_ms(p, 0.5, 1.5);
}

void pacer_ok(pacer *p, int64_t sent_ms, int64_t now)
{
    (void)sent_ms;
    (void)now;
    p->ok++;
    if (p->rate > 0)
        p->rate = MIN(p->pp.max_rate, p->rate * (1 + p->pp.grow));
}

void pacer_throttled(pacer *p, int64_t sent_ms, int64_t now)
{
    p->throttled++;
    p->throttle_ms = now;
    if (sent_ms < p->cut_ms)
        return;
    if (p->rate <= 0) {
        /* Unpaced until now: cut from what was actually sent. */
        count_window(p, now);
        double measured = (double)MAX(p->prev_win_sent, p->win_sent);
        p->rate = MAX(measured, p->pp.min_rate);
    }
    double f = p->pp.cut;
    p->rate = MAX(p->pp.min_rate, p->rate * f);
    p->cut_ms = now;
    p->cuts++;
    p->next_ms = MAX(p->next_ms, now + interval_ms(p, 0.5, 1.5));
}
