/* agent.h: the running agent: configuration, loop, sources, checkpoint store
 * and output, and what ties them together (timers, signals, reload, --once). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "checkpoint.h"
#include "config.h"
#include "discovery.h"
#include "loop.h"
#include "ring.h"

typedef struct source source;
typedef struct tailfile tailfile;
typedef struct output output;

typedef struct agent_options {
    const char *config_path;
    bool once;    /* read every source to its end, deliver, checkpoint, exit */
    bool dry_run; /* print records as JSON lines on `out` instead of uploading */
    FILE *out;
} agent_options;

typedef struct agent {
    agent_options opt;
    config *cfg;
    loop *loop;
    checkpoint *cp;
    discovery *disc;
    ring_budget budget;
    source **sources;
    size_t n_sources;
    output *out;
    tailfile *dirty; /* files whose checkpoint offset moved */
    loop_timer *tick, *rescan;
    loop_timer *commit; /* retries a failed commit */
    int sigfd;
    char hostname[256];
    char *instance_id, *region;
    struct http *http;
    struct imds *imds;
    struct creds *creds;
    struct cw_client *cw;
    loop_timer *stop_timer, *meta_timer, *watchdog;
    loop_timer *state_timer; /* retries opening the state database */
    char *state_dir;         /* while it cannot be opened; NULL once it is */
    uint64_t state_retry_ms;
    struct control *control;
    unsigned ticks;
    uint64_t trim_activity; /* events read + delivered at the last tick */
    unsigned idle_ticks;    /* ticks since they last changed */
    int64_t status_ms;
    uint64_t status_delivered;
    unsigned meta_pending, meta_attempts;
    bool stopping, started;
    config **old_cfgs; /* replaced by reloads; freed at exit */
    size_t n_old_cfgs;
    bool once_flushed;
    int exit_code;
} agent;

/* 0 and a running agent, or a negative errno (errors already logged). A bad
 * configuration returns -EINVAL after printing its errors. */
int agent_new(const agent_options *opt, agent **out);
void agent_free(agent *a);
int agent_run(agent *a); /* until SIGTERM/SIGINT, or the end of --once; exit status */

/* For sources and the output. */
void agent_records_ready(agent *a, source *s); /* the ring has records */
void agent_mark_dirty(agent *a, tailfile *f);  /* checkpoint offset moved */
void agent_schedule_rescan(agent *a, source *s);
void agent_schedule_pump(agent *a, source *s);
void agent_forget_dirty(agent *a, tailfile *f); /* f is being freed */
/* The output delivered something (or gave up on it): --once and a stop look
 * at whether everything is done. */
void agent_output_progress(agent *a);
