/* agent.c: builds the running agent from its configuration and drives it:
 * signals, the tick/rescan/commit timers, --once completion, SIGHUP reload and
 * a clean stop that checkpoints what was delivered. */
#include "agent.h"

#include <signal.h>
#include <sys/signalfd.h>

#include "output.h"
#include "source.h"

#define TICK_MS 1000

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
    source_pump(s);
    if (s->a->opt.once)
        loop_defer(l, once_check, s->a);
}

static void rescan_cb(loop *l, void *userdata)
{
    source_scan(userdata);
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

void agent_mark_dirty(agent *a, tailfile *f)
{
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
        if (!a->cp)
            continue;
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
    if (a->cp)
        checkpoint_commit(a->cp);
}

static void commit_cb(loop *l, void *userdata)
{
    commit_checkpoints(userdata);
}

static void tick_cb(loop *l, void *userdata)
{
    agent *a = userdata;
    for (size_t i = 0; i < a->n_sources; i++) {
        source *s = a->sources[i];
        source_flush_stale_partials(s, (int64_t)s->cfg->multiline_timeout_ms);
        source_touch_rotated(s);
        source_finish_files(s);
    }
}

static void rescan_timer_cb(loop *l, void *userdata)
{
    agent *a = userdata;
    for (size_t i = 0; i < a->n_sources; i++) {
        source_scan(a->sources[i]);
        source_mark_all_ready(a->sources[i]);
    }
}

/* --once: done when every source is read to its end and everything is
 * delivered; joined partials still open at that point are shipped too. */
static void once_check(loop *l, void *userdata)
{
    agent *a = userdata;
    for (size_t i = 0; i < a->n_sources; i++)
        if (!source_idle(a->sources[i]))
            return;
    if (!output_idle(a->out))
        return;
    if (!a->once_flushed) {
        a->once_flushed = true;
        for (size_t i = 0; i < a->n_sources; i++)
            source_flush_partials(a->sources[i]);
        loop_defer(l, once_check, a);
        return;
    }
    for (size_t i = 0; i < a->n_sources; i++)
        source_finish_files(a->sources[i]);
    commit_checkpoints(a);
    loop_quit(l, 0);
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

static void reload(agent *a)
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
            a->sources = xrealloc(a->sources, (a->n_sources + 1) * sizeof *a->sources);
            a->sources[a->n_sources++] = keep;
        } else {
            add_source(a, sc);
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
    log_info("configuration reloaded: %zu source(s)", a->n_sources);
}

/* ---- signals ---- */

static void stop(agent *a, const char *why)
{
    log_info("%s: stopping; delivering what is buffered and saving checkpoints", why);
    for (size_t i = 0; i < a->n_sources; i++)
        output_kick(a->out, a->sources[i]);
    commit_checkpoints(a);
    loop_quit(a->loop, 0);
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
    if (r < 0) {
        log_error_errno(r, "state directory %s is unusable (%m): running without checkpoints; "
                           "a restart will start sources anew",
                        state_dir);
        a->cp = NULL;
    }

    if (!opt->once) {
        a->disc = discovery_new(a->loop, on_fs_event, a);
        if (!a->disc)
            log_warning("running without inotify: new data is found by the periodic rescan");
    }
    a->out = output_dryrun_new(a, opt->out ? opt->out : stdout);
    for (size_t i = 0; i < cfg->n_sources; i++)
        add_source(a, &cfg->sources[i]);

    a->tick = loop_timer_new(a->loop, tick_cb, a);
    a->commit = loop_timer_new(a->loop, commit_cb, a);
    a->rescan = loop_timer_new(a->loop, rescan_timer_cb, a);
    if (!a->tick || !a->commit || !a->rescan) {
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
    for (size_t i = 0; i < a->n_sources; i++)
        source_free(a->sources[i]);
    free(a->sources);
    output_free(a->out);
    loop_timer_free(a->tick);
    loop_timer_free(a->commit);
    loop_timer_free(a->rescan);
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
    free(a);
}

int agent_run(agent *a)
{
    for (size_t i = 0; i < a->n_sources; i++)
        source_scan(a->sources[i]);
    commit_checkpoints(a); /* record where new files start */
    loop_timer_arm(a->tick, TICK_MS, TICK_MS);
    loop_timer_arm(a->commit, a->cfg->checkpoint_interval_ms, a->cfg->checkpoint_interval_ms);
    if (!a->opt.once)
        loop_timer_arm(a->rescan, a->cfg->rescan_interval_ms, a->cfg->rescan_interval_ms);
    else
        loop_defer(a->loop, once_check, a);
    log_info("cwlogd %s started: %zu source(s)%s", CWLOGD_VERSION, a->n_sources,
             a->opt.dry_run ? ", dry run" : "");
    int r = loop_run(a->loop);
    commit_checkpoints(a);
    return r;
}
