/* output.h: where records go once they leave a source's ring: printed
 * (--dry-run) or uploaded to CloudWatch Logs (uploader.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util.h"

typedef struct agent agent;
typedef struct source source;
typedef struct output output;

typedef struct output_ops {
    /* The source's ring has records (or room was made): take what fits. */
    void (*kick)(output *o, source *s);
    /* Nothing buffered in the output and nothing in flight. */
    bool (*idle)(const output *o);
    /* Requests waiting for an answer or for their retry. */
    size_t (*in_flight)(const output *o);
    /* Make what was acknowledged durable before checkpoints move past it.
     * 0 or a negative errno. */
    int (*flush)(output *o);
    /* Append the output's part of `cwlogd status` (prometheus = false) or of
     * `cwlogd metrics` (Prometheus text format). */
    void (*report)(const output *o, buf *b, bool prometheus);
    /* Send partial batches now (end of --once, stopping). */
    void (*send_all)(output *o);
    void (*free)(output *o);
} output_ops;

struct output {
    const output_ops *ops;
};

static inline void output_kick(output *o, source *s)
{
    o->ops->kick(o, s);
}
static inline bool output_idle(const output *o)
{
    return o->ops->idle(o);
}
static inline size_t output_in_flight(const output *o)
{
    return o->ops->in_flight(o);
}
static inline int output_flush(output *o)
{
    return o->ops->flush(o);
}
static inline void output_report(const output *o, buf *b, bool prometheus)
{
    o->ops->report(o, b, prometheus);
}
static inline void output_send_all(output *o)
{
    o->ops->send_all(o);
}
static inline void output_free(output *o)
{
    if (o)
        o->ops->free(o);
}

/* --dry-run: one JSON object per record on `out`:
 * {"group":"…","stream":"…","timestamp":1732440000123,"message":"…"} */
output *output_dryrun_new(agent *a, FILE *out);
