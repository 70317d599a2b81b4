/* agent.c: builds the running agent from its configuration and drives it:
 * signals, the tick/rescan/commit timers, --once completion, SIGHUP reload and
 * a clean stop that checkpoints what was delivered. */
#include "agent.h"

#include <malloc.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include "cloudwatch.h"
#include "control.h"
#include "credentials.h"
#include "http.h"
#include "imds.h"
#include "output.h"
#include "source.h"
#include "uploader.h"

#define TICK_MS 1000
#define IDLE_TRIM_TICKS 5
#define STOP_DEADLINE_MS 20000
#define STATE_RETRY_FIRST_MS 1000
#define STATE_RETRY_MAX_MS 60000
#define COMMIT_RETRY_MS 1000

static void once_check(loop *l, void *userdata);

static void print_config_errors(const config_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        log_error("%s", e->msgs[i]);
}

/* ---- deferred work per source ---- */

static void drain_cb(loop *l, void *userdata)
{
    source *s = userdata;
    output_kick(s->a->out, s);
    if (s->a->opt.once)
        loop_defer(l, once_check, s->a);
}

static void pump_cb(loop *l, void *userdata)
{
    source *s = userdata;
    if (s->a->stopping)
        return;
    source_pump(s);
    if (s->a->opt.once)
        loop_defer(l, once_check, s->a);
}

static void rescan_cb(loop *l, void *userdata)
{
    source *s = userdata;
    if (!s->a->stopping)
        source_scan(s);
}

void agent_records_ready(agent *a, source *s)
{
    loop_defer(a->loop, drain_cb, s);
}

void agent_schedule_pump(agent *a, source *s)
{
    loop_defer(a->loop, pump_cb, s);
}

void agent_schedule_rescan(agent *a, source *s)
{
    if (a->opt.once && s->initial_scan_done)
        return; /* --once reads what was there at the start */
    loop_defer(a->loop, rescan_cb, s);
}

static void commit_cb(loop *l, void *userdata);

/* A moved position is committed in the same turn of the loop: the deferred
 * call runs once every answer of this turn is handled, so they share one
 * transaction. */
void agent_mark_dirty(agent *a, tailfile *f)
{
    loop_defer(a->loop, commit_cb, a);
    if (f->dirty)
        return;
    f->dirty = true;
    f->dirty_next = a->dirty;
    a->dirty = f;
}

void agent_forget_dirty(agent *a, tailfile *f)
{
    if (!f->dirty)
        return;
    for (tailfile **pp = &a->dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == f) {
            *pp = f->dirty_next;
            break;
        }
    f->dirty = false;
}

/* Store every moved offset and commit them in one transaction. What was
 * printed is flushed first: a checkpoint never passes undelivered output. */
static void commit_checkpoints(agent *a)
{
    if (a->out && output_flush(a->out) < 0)
        return;
    while (a->dirty) {
        tailfile *f = a->dirty;
        a->dirty = f->dirty_next;
        f->dirty = false;
        if (!a->cp || f->src->journal)
            continue; /* journald: one cursor per source, below */
        cp_file row = {
            .source = f->src->name,
            .path = f->path,
            .dev = f->dev,
            .ino = f->ino,
            .fingerprint_len = f->fp_len,
            .offset = tail_checkpoint_offset(f),
        };
        memcpy(row.fingerprint, f->fp, f->fp_len);
        checkpoint_put_file(a->cp, &row);
    }
    for (size_t i = 0; i < a->n_sources && a->cp; i++) {
        const char *cursor = journald_checkpoint(a->sources[i]);
        if (cursor)
            checkpoint_put_cursor(a->cp, a->sources[i]->name, cursor);
    }
    if (!a->cp)
        return;
    uint64_t before = checkpoint_commits(a->cp);
    if (checkpoint_commit(a->cp) < 0) {
        if (a->commit && !loop_timer_armed(a->commit))
            loop_timer_arm(a->commit, COMMIT_RETRY_MS, 0); /* disk full, read-only: try again */
    } else if (checkpoint_commits(a->cp) != before) {
        log_debug("checkpoint: commit %llu done",
                  (unsigned long long)checkpoint_commits(a->cp));
    }
}

/* Deferred from agent_mark_dirty(), and the timer that retries a failed
 * commit (the staged positions are kept and committed with the next
 * acknowledgement, or by this retry if none comes). */
static void commit_cb(loop *l, void *userdata)
{
    commit_checkpoints(userdata);
}

/* STATUS= for systemctl status: sources, files, what was sent, what waits. */
static void notify_status(agent *a)
{
    uint64_t files = 0, events = 0, delivered = 0, dropped = 0, buffered = 0;
    for (size_t i = 0; i < a->n_sources; i++) {
        source *s = a->sources[i];
        files += s->n_files;
        events += s->st.events;
        delivered += s->st.delivered;
        dropped += s->st.dropped_events;
        buffered += source_ring_count(s);
    }
    int64_t now = now_monotonic_ms();
    double rate = 0;
    if (a->status_ms && now > a->status_ms)
        rate = (double)(delivered - a->status_delivered) * 1000.0 / (double)(now - a->status_ms);
    a->status_ms = now;
    a->status_delivered = delivered;
    sd_notifyf(0,
               "STATUS=%zu source(s), %llu file(s); %llu event(s) read, %llu delivered "
               "(%.0f/s), %llu buffered, %llu dropped",
               a->n_sources, (unsigned long long)files, (unsigned long long)events,
               (unsigned long long)delivered, rate, (unsigned long long)buffered,
               (unsigned long long)dropped);
}

static void watchdog_cb(loop *l, void *userdata)
{
    /* Sent from the loop itself: a stuck loop stops the pings. */
    sd_notify(0, "WATCHDOG=1");
}

/* main() keeps up to 16 MiB of freed heap for the next burst (trimming and
 * faulting it back in cost a third more CPU per line). Once nothing has
 * been read or delivered for a few seconds, hand it back: an idle agent
 * with 1,000 containers otherwise sits on what its last burst freed. */
static void trim_when_idle(agent *a)
{
    uint64_t activity = 0;
    for (size_t i = 0; i < a->n_sources; i++)
        activity += a->sources[i]->st.events + a->sources[i]->st.delivered;
    if (activity != a->trim_activity) {
        a->trim_activity = activity;
        a->idle_ticks = 0;
    } else if (++a->idle_ticks == IDLE_TRIM_TICKS) {
        malloc_trim(0);
    }
}

static void tick_cb(loop *l, void *userdata)
{
    agent *a = userdata;
    if (++a->ticks % 5 == 0)
        notify_status(a);
    trim_when_idle(a);
    for (size_t i = 0; i < a->n_sources; i++) {
        source *s = a->sources[i];
        source_flush_stale_partials(s, (int64_t)s->cfg->multiline_timeout_ms);
        source_touch_rotated(s);
        source_finish_files(s);
    }
}

/* The safety net under inotify: the scan itself finds new files, and known
 * ones that inotify does not report on whose size is not where reading
 * stopped (a stat each); it no longer reads every file again. */
static void rescan_timer_cb(loop *l, void *userdata)
{
    agent *a = userdata;
    for (size_t i = 0; i < a->n_sources; i++)
        source_scan(a->sources[i]);
}

/* --once: done when every source is read to its end and everything is
 * delivered; joined partials still open at that point are shipped too. */
static void once_check(loop *l, void *userdata)
{
    agent *a = userdata;
    for (size_t i = 0; i < a->n_sources; i++)
        if (!source_idle(a->sources[i]))
            return;
    if (!a->once_flushed) {
        a->once_flushed = true;
        for (size_t i = 0; i < a->n_sources; i++)
            source_flush_partials(a->sources[i]);
        loop_defer(l, once_check, a);
        return;
    }
    output_send_all(a->out);
    if (!output_idle(a->out))
        return; /* agent_output_progress() looks again */
    for (size_t i = 0; i < a->n_sources; i++)
        source_finish_files(a->sources[i]);
    commit_checkpoints(a);
    loop_quit(l, 0);
}

/* Stopping: done when no request waits for an answer or for its retry (only
 * passing failures are retried while stopping; what is left at the deadline
 * is read again after a restart). */
static void stop_check(loop *l, void *userdata)
{
    agent *a = userdata;
    if (output_in_flight(a->out) > 0)
        return;
    commit_checkpoints(a);
    loop_quit(l, 0);
}

void agent_output_progress(agent *a)
{
    if (a->stopping)
        loop_defer(a->loop, stop_check, a);
    else if (a->opt.once)
        loop_defer(a->loop, once_check, a);
}

static void on_fs_event(void *subscriber, const char *dir, const char *name, uint32_t mask,
                        void *userdata)
{
    source_on_fs_event(subscriber, dir, name, mask);
}

/* ---- reload ---- */

static bool same_paths(const source_config *x, const source_config *y)
{
    if (x->type != y->type || x->n_paths != y->n_paths)
        return false;
    for (size_t i = 0; i < x->n_paths; i++)
        if (strcmp(x->paths[i], y->paths[i]) != 0)
            return false;
    return true;
}

static void add_source(agent *a, source_config *sc)
{
    source *s = source_new(a, sc);
    a->sources = xrealloc(a->sources, (a->n_sources + 1) * sizeof *a->sources);
    a->sources[a->n_sources++] = s;
}

static void remove_source(agent *a, source *s)
{
    loop_cancel_deferred(a->loop, s);
    if (a->disc)
        discovery_unwatch_all(a->disc, s);
    source_free(s);
}

static void reload_config(agent *a);

/* systemd sees the reload begin and end (Type=notify): RELOADING=1 ... READY=1. */
static void reload(agent *a)
{
    sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
    reload_config(a);
    sd_notify(0, "READY=1");
    notify_status(a);
}

static void reload_config(agent *a)
{
    log_info("reloading the configuration from %s", a->opt.config_path);
    config *nc = NULL;
    config_errors errs = {0};
    int r = config_load(a->opt.config_path, &nc, &errs);
    if (r < 0) {
        print_config_errors(&errs);
        config_errors_free(&errs);
        log_error("reload failed: keeping the running configuration");
        return;
    }
    config_errors_free(&errs);
    /* Store what was delivered before sources change. */
    commit_checkpoints(a);
    if (strcmp(nc->state_dir, a->cfg->state_dir) != 0)
        log_warning("state_dir changed to %s: takes effect after a restart", nc->state_dir);
    log_set_level(nc->level);
    a->budget.limit = nc->total_buffer_limit;

    source **old = a->sources;
    size_t n_old = a->n_sources;
    a->sources = NULL;
    a->n_sources = 0;
    for (size_t i = 0; i < nc->n_sources; i++) {
        source_config *sc = &nc->sources[i];
        source *keep = NULL;
        for (size_t j = 0; j < n_old; j++)
            if (old[j] && strcmp(old[j]->name, sc->name) == 0 && same_paths(old[j]->cfg, sc)) {
                keep = old[j];
                old[j] = NULL;
                break;
            }
        if (keep) {
            /* Same files: keep reading where we are; limits and names follow the new text. */
            keep->cfg = sc;
            ring_set_limit(keep->ring, sc->max_buffer_size,
                           sc->mode == MODE_BLOCKING     ? RING_BLOCKING
                           : sc->drop == DROP_NEWEST     ? RING_DROP_NEWEST
                                                         : RING_DROP_OLDEST);
            source_refresh_names(keep);
            source_apply_multiline(keep);
            a->sources = xrealloc(a->sources, (a->n_sources + 1) * sizeof *a->sources);
            a->sources[a->n_sources++] = keep;
        } else {
            add_source(a, sc);
            if (a->started) /* else begin() scans it, once the state is open */
                source_scan(a->sources[a->n_sources - 1]);
        }
    }
    for (size_t j = 0; j < n_old; j++)
        if (old[j]) {
            log_info("source %s: removed by the new configuration", old[j]->name);
            remove_source(a, old[j]);
        }
    free(old);
    /* Keep the old configuration's memory: nothing points into it now, but
     * freeing it here would be the only place that needs to prove that. */
    a->old_cfgs = xrealloc(a->old_cfgs, (a->n_old_cfgs + 1) * sizeof *a->old_cfgs);
    a->old_cfgs[a->n_old_cfgs++] = a->cfg;
    a->cfg = nc;
    if (a->cp)
        checkpoint_set_sync(a->cp, nc->state_sync_full);
    commit_checkpoints(a); /* where new sources start, before they read */
    log_info("configuration reloaded: %zu source(s)", a->n_sources);
}

/* ---- signals ---- */

static void stop_deadline_cb(loop *l, void *userdata)
{
    agent *a = userdata;
    log_warning("stop: not everything was delivered within %d s; what is left is sent after "
                "the next start",
                STOP_DEADLINE_MS / 1000);
    commit_checkpoints(a);
    loop_quit(l, 0);
}

static void stop(agent *a, const char *why)
{
    if (a->stopping)
        return;
    log_info("%s: stopping; delivering what is buffered and saving checkpoints", why);
    sd_notify(0, "STOPPING=1\nSTATUS=Stopping: delivering what is buffered");
    a->stopping = true;
    for (size_t i = 0; i < a->n_sources; i++)
        output_kick(a->out, a->sources[i]);
    output_send_all(a->out);
    commit_checkpoints(a);
    a->stop_timer = loop_timer_new(a->loop, stop_deadline_cb, a);
    if (a->stop_timer)
        loop_timer_arm(a->stop_timer, STOP_DEADLINE_MS, 0);
    loop_defer(a->loop, stop_check, a);
}

static void on_signal(loop *l, int fd, uint32_t events, void *userdata)
{
    agent *a = userdata;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == sizeof si) {
        switch (si.ssi_signo) {
        case SIGTERM:
            stop(a, "SIGTERM");
            return;
        case SIGINT:
            stop(a, "SIGINT");
            return;
        case SIGHUP:
            reload(a);
            break;
        }
    }
}

/* ---- life cycle ---- */

/* ---- instance metadata: region and instance id ---- */

static bool config_uses(const config *cfg, const char *var)
{
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (strstr(cfg->sources[i].group, var) || strstr(cfg->sources[i].stream, var))
            return true;
    return false;
}

static char *initial_region(const config *cfg)
{
    if (cfg->region && *cfg->region && strcmp(cfg->region, "auto") != 0)
        return xstrdup(cfg->region);
    const char *e = getenv("AWS_REGION");
    if (!e || !*e)
        e = getenv("AWS_DEFAULT_REGION");
    return e && *e ? xstrdup(e) : NULL;
}

static void creds_changed(void *userdata)
{
    agent *a = userdata;
    if (a->out && !a->opt.dry_run)
        uploader_wake(a->out);
}

static void begin(agent *a);
static void fetch_metadata(agent *a);

static void meta_done(agent *a)
{
    if (--a->meta_pending > 0)
        return;
    bool missing_region = !a->opt.dry_run && !a->region;
    bool missing_id = !a->instance_id && config_uses(a->cfg, "{instance_id}");
    if ((missing_region || missing_id) && a->meta_attempts < 3) {
        loop_timer_arm(a->meta_timer, 1000u << a->meta_attempts, 0);
        return;
    }
    if (missing_id)
        log_warning("instance metadata: no instance id from %s; {instance_id} expands to the "
                    "placeholder",
                    imds_endpoint(a->imds));
    if (missing_region) {
        log_error("no region: set region in [cloudwatch] or AWS_REGION, or let cwlogd reach "
                  "instance metadata at %s; reading goes on, uploads wait (retrying every 60 s)",
                  imds_endpoint(a->imds));
        loop_timer_arm(a->meta_timer, 60000, 0);
    }
    begin(a);
}

static void region_cb(int err, const char *body, size_t len, void *userdata)
{
    agent *a = userdata;
    if (err == 0 && len > 0 && len < 64 && !a->region) {
        a->region = xstrndup(body, len);
        log_info("region %s (from instance metadata)", a->region);
        if (a->cw) {
            cw_client_set_region(a->cw, a->region);
            uploader_wake(a->out);
        }
    }
    meta_done(a);
}

static void instance_id_cb(int err, const char *body, size_t len, void *userdata)
{
    agent *a = userdata;
    if (err == 0 && len > 0 && len < 64 && !a->instance_id)
        a->instance_id = xstrndup(body, len);
    meta_done(a);
}

static void fetch_metadata(agent *a)
{
    a->meta_attempts++;
    a->meta_pending = 1; /* held until both requests are issued */
    if (!a->opt.dry_run && !a->region) {
        a->meta_pending++;
        imds_get(a->imds, "/latest/meta-data/placement/region", region_cb, a);
    }
    if (!a->instance_id && config_uses(a->cfg, "{instance_id}")) {
        a->meta_pending++;
        imds_get(a->imds, "/latest/meta-data/instance-id", instance_id_cb, a);
    }
    meta_done(a);
}

static void meta_timer_cb(loop *l, void *userdata)
{
    fetch_metadata(userdata);
}

static void start_watchdog(agent *a)
{
    uint64_t wd_usec = 0;
    if (a->watchdog || sd_watchdog_enabled(0, &wd_usec) <= 0 || wd_usec == 0)
        return;
    a->watchdog = loop_timer_new(a->loop, watchdog_cb, a);
    if (a->watchdog)
        loop_timer_arm(a->watchdog, 1, MAX(wd_usec / 2000, 1)); /* half the interval */
}

/* The state database says where each source resumes; started without it, a
 * source would begin at start_at and repeat or skip what the last run left.
 * So sources wait for it (the logs stay where they are meanwhile). */
static void state_timer_cb(loop *l, void *userdata)
{
    agent *a = userdata;
    int r = checkpoint_open(a->state_dir, &a->cp);
    if (r < 0) {
        a->state_retry_ms = MIN(a->state_retry_ms * 2, (uint64_t)STATE_RETRY_MAX_MS);
        loop_timer_arm(a->state_timer, a->state_retry_ms, 0);
        return;
    }
    checkpoint_set_sync(a->cp, a->cfg->state_sync_full);
    log_info("state directory %s is usable again: starting the sources", a->state_dir);
    free(a->state_dir);
    a->state_dir = NULL;
    begin(a);
}

static bool wait_for_state(agent *a)
{
    if (a->cp || !a->state_dir)
        return false;
    if (!loop_timer_armed(a->state_timer))
        loop_timer_arm(a->state_timer, a->state_retry_ms, 0);
    sd_notify(0, "READY=1\nSTATUS=Waiting for the state directory to be usable");
    start_watchdog(a);
    return true;
}

/* Sources start once the names their templates need are known (or given up)
 * and the state database is open. */
static void begin(agent *a)
{
    if (a->started || wait_for_state(a))
        return;
    a->started = true;
    for (size_t i = 0; i < a->n_sources; i++)
        source_scan(a->sources[i]);
    commit_checkpoints(a); /* record where new files start */
    loop_timer_arm(a->tick, TICK_MS, TICK_MS);
    if (!a->opt.once)
        loop_timer_arm(a->rescan, a->cfg->rescan_interval_ms, a->cfg->rescan_interval_ms);
    else
        loop_defer(a->loop, once_check, a);
    log_info("cwlogd %s started: %zu source(s)%s", CWLOGD_VERSION, a->n_sources,
             a->opt.dry_run ? ", dry run" : "");
    if (!a->opt.once && !a->opt.dry_run)
        a->control = control_new(a, a->cfg->control_socket);
    sd_notify(0, "READY=1");
    notify_status(a);
    start_watchdog(a);
}

/* ---- life cycle ---- */

int agent_new(const agent_options *opt, agent **out)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int r = config_load(opt->config_path, &cfg, &errs);
    if (r < 0) {
        print_config_errors(&errs);
        config_errors_free(&errs);
        return r == -EINVAL ? -EINVAL : r;
    }
    config_errors_free(&errs);
    log_set_level(cfg->level);

    agent *a = xcalloc(1, sizeof *a);
    a->opt = *opt;
    a->cfg = cfg;
    a->sigfd = -1;
    a->budget.limit = cfg->total_buffer_limit;
    if (gethostname(a->hostname, sizeof a->hostname - 1) < 0)
        strcpy(a->hostname, "localhost");
    a->loop = loop_new();
    if (!a->loop) {
        agent_free(a);
        return log_error_errno(errno, "cannot create the event loop: %m");
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0 || loop_add_fd(a->loop, a->sigfd, EPOLLIN, on_signal, a) < 0) {
        agent_free(a);
        return log_error_errno(errno, "cannot set up signal handling: %m");
    }

    /* A dry run keeps its own checkpoints: previewing must never make the
     * real agent skip what was only printed. */
    _cleanup_free_ char *state_dir = opt->dry_run ? xasprintf("%s/dry-run", cfg->state_dir)
                                                  : xstrdup(cfg->state_dir);
    r = checkpoint_open(state_dir, &a->cp);
    if (r == 0)
        checkpoint_set_sync(a->cp, cfg->state_sync_full);
    if (cfg->checkpoint_interval_set)
        log_warning("[agent] checkpoint_interval is obsolete and ignored: positions are "
                    "committed as soon as CloudWatch acknowledges them");
    if (r < 0 && opt->once && opt->dry_run) {
        /* A preview: nothing real depends on the dry run's own positions. */
        log_error_errno(r, "state directory %s is unusable (%m): previewing without "
                           "checkpoints",
                        state_dir);
        a->cp = NULL;
    } else if (r < 0 && opt->once) {
        agent_free(a);
        return log_error_errno(r, "state directory %s is unusable (%m): --once needs it to "
                                  "know where each source resumes",
                               state_dir);
    } else if (r < 0) {
        log_error_errno(r, "state directory %s is unusable (%m): no source is read until it "
                           "can be opened (tried again with backoff up to %d s)",
                        state_dir, STATE_RETRY_MAX_MS / 1000);
        a->state_dir = TAKE_PTR(state_dir);
        a->state_retry_ms = STATE_RETRY_FIRST_MS;
    }

    if (!opt->once) {
        a->disc = discovery_new(a->loop, on_fs_event, a);
        if (!a->disc)
            log_warning("running without inotify: new data is found by the periodic rescan");
    }

    a->http = http_new(a->loop);
    if (!a->http) {
        agent_free(a);
        return log_error("cannot set up HTTP (libcurl)");
    }
    a->imds = imds_new(a->loop, a->http, cfg->imds_endpoint);
    a->meta_timer = loop_timer_new(a->loop, meta_timer_cb, a);
    if (opt->dry_run) {
        a->out = output_dryrun_new(a, opt->out ? opt->out : stdout);
    } else {
        a->region = initial_region(cfg);
        a->creds = creds_new(a->loop, a->http, a->imds, cfg, creds_changed, a);
        a->cw = a->creds ? cw_client_new(a->http, a->creds, a->region, cfg->endpoint,
                                         cfg->ca_file)
                         : NULL;
        if (!a->cw) {
            agent_free(a);
            return log_error("cannot set up the CloudWatch Logs client");
        }
        a->out = uploader_new(a, a->cw);
    }
    for (size_t i = 0; i < cfg->n_sources; i++)
        add_source(a, &cfg->sources[i]);

    a->tick = loop_timer_new(a->loop, tick_cb, a);
    a->commit = loop_timer_new(a->loop, commit_cb, a);
    a->rescan = loop_timer_new(a->loop, rescan_timer_cb, a);
    a->state_timer = loop_timer_new(a->loop, state_timer_cb, a);
    if (!a->tick || !a->commit || !a->rescan || !a->meta_timer || !a->imds || !a->state_timer) {
        agent_free(a);
        return log_error_errno(errno, "cannot create timers: %m");
    }
    *out = a;
    return 0;
}

void agent_free(agent *a)
{
    if (!a)
        return;
    control_free(a->control);
    for (size_t i = 0; i < a->n_sources; i++)
        source_free(a->sources[i]);
    free(a->sources);
    output_free(a->out);
    cw_client_free(a->cw);
    creds_free(a->creds);
    imds_free(a->imds);
    http_free(a->http);
    loop_timer_free(a->tick);
    loop_timer_free(a->commit);
    loop_timer_free(a->rescan);
    loop_timer_free(a->meta_timer);
    loop_timer_free(a->stop_timer);
    loop_timer_free(a->watchdog);
    loop_timer_free(a->state_timer);
    discovery_free(a->disc);
    checkpoint_close(a->cp);
    if (a->sigfd >= 0) {
        loop_del_fd(a->loop, a->sigfd);
        close(a->sigfd);
    }
    loop_free(a->loop);
    for (size_t i = 0; i < a->n_old_cfgs; i++)
        config_free(a->old_cfgs[i]);
    free(a->old_cfgs);
    config_free(a->cfg);
    free(a->instance_id);
    free(a->region);
    free(a->state_dir);
    free(a);
}

int agent_run(agent *a)
{
    if (a->creds)
        creds_start(a->creds);
    if ((!a->opt.dry_run && !a->region) || config_uses(a->cfg, "{instance_id}"))
        fetch_metadata(a);
    else
        begin(a);
    int r = loop_run(a->loop);
    commit_checkpoints(a);
    if (a->opt.once)
        log_info("--once: done, %llu checkpoint commit(s)",
                 (unsigned long long)(a->cp ? checkpoint_commits(a->cp) : 0));
    return r;
}
