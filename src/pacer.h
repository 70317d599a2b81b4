/* pacer.h: adaptive pacing of one kind of request against a rate limit the
 * service shares among many clients (CloudWatch's per-account quotas): slower
 * on each throttle, faster again with each success, with jitter, so many
 * agents that start together settle near their share without coordinating.
 * Pure: time comes in as arguments, randomness from a seeded generator. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct pacer_params {
    double start_rate; /* requests/s before the service has throttled any;
                        * 0: unpaced until the first throttle, which then cuts
                        * from the rate measured over the last second */
    double min_rate;   /* never slower than this (requests/s) */
    double max_rate;   /* never faster */
    double cut;        /* a throttle multiplies the rate by this (0 < cut < 1) */
    double grow;       /* each success multiplies the rate by 1 + grow */
    bool first_jitter; /* the first request waits a random part of one interval,
                        * so agents started together do not all send at once */
    int64_t forget_ms; /* this long without a throttle: back to start_rate if slower */
} pacer_params;

typedef struct pacer {
    pacer_params pp;
    double rate;          /* requests/s now; 0: unpaced */
    int64_t next_ms;      /* the next request may start at this time */
    int64_t cut_ms;       /* when the rate was last cut (INT64_MIN: never) */
    int64_t throttle_ms;  /* when the last throttle arrived */
    int64_t win_ms;       /* start of the current one-second window */
    uint32_t win_sent, prev_win_sent;
    bool started;
    uint64_t rng;
    uint64_t sent, ok, throttled, cuts;
} pacer;

void pacer_init(pacer *p, const pacer_params *pp, uint64_t seed);
/* CreateLogStream's parameters (the uploader's, and what test_pacer's
 * simulated fleets run). */
extern const pacer_params pacer_create_stream;

/* Milliseconds until the next request may start (0: now). */
int64_t pacer_wait(pacer *p, int64_t now_ms);
/* A request starts now (call only when pacer_wait() said 0). */
void pacer_sent(pacer *p, int64_t now_ms);
/* The answer to a request sent at sent_ms was not a throttle. */
void pacer_ok(pacer *p, int64_t sent_ms, int64_t now_ms);
/* The request sent at sent_ms was throttled. Only requests sent after the
 * last cut cut again: the answers to requests already under way when the
 * rate was cut say nothing new. */
void pacer_throttled(pacer *p, int64_t sent_ms, int64_t now_ms);
