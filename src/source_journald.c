/* source_journald.c: the journald source. Entries are read with sd-journal
 * (journal.c) from the event loop; each goes to a "channel" (a tailfile per
 * destination group/stream, so names may use {journal:FIELD}) with the entry's
 * sequence number as its offset. The checkpoint is the cursor of the last
 * entry before the oldest one still pending in any channel. */
#include "agent.h"
#include "journal.h"
#include "source.h"
#include "template.h"

#define PUMP_ENTRIES 20000
/* A channel (a container, with per-entry names) that has had no entry for
 * this long and has nothing pending is forgotten: containers come and go,
 * and their channels must not pile up. Checked at most once a minute, when a
 * new channel is made. */
#define CHANNEL_IDLE_MS (10 * 60 * 1000)
#define CHANNEL_SWEEP_MS (60 * 1000)

typedef struct jcursor {
    uint64_t seq;
    char *cursor;
} jcursor;

typedef struct jsource {
    source *s;
    journal *j;
    int fd;
    loop_timer *timer;
    uint64_t seq;         /* sequence number of the next entry */
    bool ready;           /* entries may be waiting */
    bool retry_current;   /* the current entry met a full buffer: deliver it again */
    bool per_entry_names; /* templates use entry fields */
    journal_entry cur;
    jcursor *q;           /* cursors of consumed entries, oldest first */
    size_t qhead, qlen, qcap;
    smap channels;        /* "group\nstream" -> tailfile */
    uint64_t next_ino;
    uint64_t saved_seq;   /* entries before it are checkpointed */
    char *saved;
    int64_t idle_ms;      /* CHANNEL_IDLE_MS; CWLOGD_IDLE_FORGET_MS in tests */
    int64_t swept_ms;
    log_ratelimit cap_rl; /* max_streams reached */
} jsource;

static void q_push(jsource *js, uint64_t seq, const char *cursor)
{
    if (js->qhead + js->qlen == js->qcap) {
        if (js->qhead > 0) {
            memmove(js->q, js->q + js->qhead, js->qlen * sizeof *js->q);
            js->qhead = 0;
        } else {
            js->qcap = js->qcap ? js->qcap * 2 : 256;
            js->q = xrealloc(js->q, js->qcap * sizeof *js->q);
        }
    }
    js->q[js->qhead + js->qlen++] = (jcursor){seq, xstrdup(cursor)};
}

/* ---- names ---- */

static const char *journal_lookup(void *userdata, const char *kind, const char *key)
{
    jsource *js = userdata;
    if (strcmp(kind, "journal") == 0)
        return journal_field(js->j, key, NULL);
    if (strcmp(kind, "label") == 0) {
        /* Docker's journald driver adds labels (log-opt labels=) as fields:
         * upper case, other characters as '_'. */
        char f[128];
        size_t i = 0;
        for (; key[i] && i < sizeof f - 1; i++) {
            char c = key[i];
            f[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32)
                   : ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c
                                                                          : '_';
        }
        f[i] = 0;
        return journal_field(js->j, f, NULL);
    }
    return NULL;
}

static bool channel_busy(const tailfile *f)
{
    return f->in_ring || f->in_flight || f->drop_events || f->held || f->pend[0].active ||
           f->pend[1].active || f->ml[0].active || f->ml[1].active;
}

static void forget_idle_channels(jsource *js, int64_t now)
{
    if (now - js->swept_ms < MIN(js->idle_ms, (int64_t)CHANNEL_SWEEP_MS))
        return;
    js->swept_ms = now;
    for (tailfile *f = js->s->files, *next; f; f = next) {
        next = f->next;
        if (channel_busy(f) || now - f->last_growth_ms < js->idle_ms)
            continue;
        _cleanup_free_ char *key = xasprintf("%s\n%s", f->group, f->stream);
        smap_remove(&js->channels, key);
        log_debug("source %s: forgetting idle channel %s / %s", js->s->name, f->group, f->stream);
        source_release_file(f);
    }
}

static tailfile *channel_for(jsource *js)
{
    source *s = js->s;
    agent *a = s->a;
    journal *j = js->j;
    template_vars v = {
        .instance_id = a->instance_id,
        .hostname = a->hostname,
        .region = a->region,
        .source = s->name,
        .placeholder = a->cfg->placeholder,
        .lookup = journal_lookup,
        .userdata = js,
    };
    if (js->per_entry_names) {
        v.container_id = journal_field(j, "CONTAINER_ID_FULL", NULL);
        if (!v.container_id)
            v.container_id = journal_field(j, "CONTAINER_ID", NULL);
        v.container_name = journal_field(j, "CONTAINER_NAME", NULL);
        v.ecs_cluster = journal_field(j, "COM_AMAZONAWS_ECS_CLUSTER", NULL);
        v.ecs_task_arn = journal_field(j, "COM_AMAZONAWS_ECS_TASK_ARN", NULL);
        v.ecs_task_family = journal_field(j, "COM_AMAZONAWS_ECS_TASK_DEFINITION_FAMILY", NULL);
        v.ecs_container_name = journal_field(j, "COM_AMAZONAWS_ECS_CONTAINER_NAME", NULL);
    }
    _cleanup_free_ char *group = template_expand(s->cfg->group, &v, TEMPLATE_GROUP);
    _cleanup_free_ char *stream = template_expand(s->cfg->stream, &v, TEMPLATE_STREAM);
    _cleanup_free_ char *key = xasprintf("%s\n%s", group, stream);
    tailfile *f = smap_get(&js->channels, key);
    int64_t now = now_monotonic_ms();
    if (f) {
        f->last_growth_ms = now;
        return f;
    }
    forget_idle_channels(js, now);
    if (js->channels.n >= s->cfg->max_streams) {
        /* Any local writer can set the fields names are made of: it must
         * not make streams without end. */
        s->st.over_max_streams++;
        uint64_t suppressed;
        if (log_ratelimit_ok(&js->cap_rl, &suppressed))
            log_warning("source %s: max_streams (%zu) reached: an entry for %s / %s is not "
                        "shipped (%llu so far); raise max_streams or narrow the source's match",
                        s->name, s->cfg->max_streams, group, stream,
                        (unsigned long long)s->st.over_max_streams);
        return NULL;
    }
    struct stat st = {.st_dev = 0, .st_ino = (ino_t)++js->next_ino};
    _cleanup_free_ char *path =
        xasprintf("journal%s%s", s->cfg->n_paths ? ":" : "", s->cfg->n_paths ? s->cfg->paths[0] : "");
    f = tail_new(s, path, -1, &st);
    f->group = TAKE_PTR(group);
    f->stream = TAKE_PTR(stream);
    f->read_off = f->produced = f->acked = js->seq;
    source_add_file(s, f);
    smap_put(&js->channels, key, f);
    log_info("source %s: %s -> %s / %s", s->name, f->path, f->group, f->stream);
    return f;
}

/* ---- reading ---- */

static bool field_is(journal *j, const char *name, const char *value)
{
    const char *v = journal_field(j, name, NULL);
    return v && strcmp(v, value) == 0;
}

/* 0, or -EAGAIN when the buffer is full (the entry is delivered again). */
static int deliver_entry(jsource *js)
{
    const journal_entry *e = &js->cur;
    uint64_t seq = js->seq;
    tailfile *f = e->has_message ? channel_for(js) : NULL; /* NULL: over max_streams */
    if (f) {
        bool partial = field_is(js->j, "CONTAINER_PARTIAL_MESSAGE", "true");
        int r = tail_emit_raw(f, (int64_t)(e->realtime_usec / 1000), e->message, e->message_len,
                              partial, seq, seq + 1);
        if (r < 0)
            return r;
    }
    q_push(js, seq, e->cursor);
    js->seq++;
    return 0;
}

void journald_pump(source *s)
{
    jsource *js = s->journal;
    if (!js || !js->j || s->blocked)
        return;
    for (int n = 0; n < PUMP_ENTRIES; n++) {
        if (!js->retry_current) {
            int r = journal_next(js->j, &js->cur);
            if (r <= 0) {
                if (r < 0)
                    log_error_errno(r, "source %s: reading the journal failed: %m", s->name);
                js->ready = false;
                return;
            }
        }
        js->retry_current = deliver_entry(js) < 0;
        if (js->retry_current) {
            s->blocked = true;
            return;
        }
    }
    agent_schedule_pump(s->a, s); /* more to read: let the loop breathe */
}

static void arm_timeout(jsource *js)
{
    int t = journal_timeout_ms(js->j);
    if (t >= 0 && js->timer)
        loop_timer_arm(js->timer, (uint64_t)t + 1, 0);
}

static void on_change(jsource *js)
{
    int r = journal_process(js->j);
    if (r < 0)
        log_warning_errno(r, "source %s: journal: %m", js->s->name);
    if (r != JOURNAL_NOP) {
        js->ready = true;
        agent_schedule_pump(js->s->a, js->s);
    }
    arm_timeout(js);
}

static void on_fd(loop *l, int fd, uint32_t events, void *userdata)
{
    on_change(userdata);
}

static void on_timer(loop *l, void *userdata)
{
    on_change(userdata);
}

bool journald_idle(const source *s)
{
    const jsource *js = s->journal;
    return !js || !js->j || (!js->ready && !js->retry_current);
}

/* ---- checkpoint ---- */

const char *journald_checkpoint(source *s)
{
    jsource *js = s->journal;
    if (!js)
        return NULL;
    uint64_t safe = js->seq;
    for (tailfile *f = s->files; f; f = f->next) {
        bool busy = f->in_ring + f->in_flight > 0 || f->pend[0].active || f->ml[0].active;
        if (busy)
            safe = MIN(safe, tail_checkpoint_offset(f) + f->base);
    }
    if (safe == 0 || safe <= js->saved_seq)
        return NULL;
    /* The cursor of entry safe - 1; older ones are no longer needed. */
    while (js->qlen > 1 && js->q[js->qhead].seq < safe - 1) {
        free(js->q[js->qhead].cursor);
        js->qhead++;
        js->qlen--;
    }
    if (js->qlen == 0 || js->q[js->qhead].seq != safe - 1)
        return NULL;
    js->saved_seq = safe;
    free(js->saved);
    js->saved = xstrdup(js->q[js->qhead].cursor);
    return js->saved;
}

/* ---- where to start ---- */

/* A first run stores where it starts before it reads anything, so a restart
 * after a crash continues there instead of at a new end. The stored value is
 * one of these, until the first acknowledged entry's cursor replaces it. */
#define START_AFTER "start-after:" /* + the cursor of the journal's end then */
#define START_HEAD "start-at-head" /* the journal was empty, or start_at = beginning */

static int first_run(jsource *js)
{
    source *s = js->s;
    bool end = s->cfg->start != START_AT_BEGINNING;
    _cleanup_free_ char *pos = NULL;
    int r = end ? journal_end_cursor(js->j, &pos) : 0;
    if (r < 0)
        return r;
    r = pos ? journal_seek_after_position(js->j, pos) : journal_seek_head(js->j);
    if (r < 0)
        return r;
    if (s->a->cp) {
        _cleanup_free_ char *start = pos ? xasprintf(START_AFTER "%s", pos) : xstrdup(START_HEAD);
        checkpoint_put_cursor(s->a->cp, s->name, start); /* committed before the first read */
    }
    log_info("source %s: reading the journal from its %s (first run, start_at)", s->name,
             end ? "end" : "beginning");
    return 0;
}

static int resume(jsource *js, const char *cursor)
{
    source *s = js->s;
    int r;
    if (strcmp(cursor, START_HEAD) == 0) {
        log_info("source %s: resuming the journal at its head, where the first run started",
                 s->name);
        return journal_seek_head(js->j);
    }
    if (strncmp(cursor, START_AFTER, strlen(START_AFTER)) == 0) {
        log_info("source %s: resuming the journal where the first run started", s->name);
        r = journal_seek_after_position(js->j, cursor + strlen(START_AFTER));
        if (r < 0) {
            log_error_errno(r, "source %s: cannot resume at the stored start (%m); reading "
                               "from the start of the journal",
                            s->name);
            return journal_seek_head(js->j);
        }
        return 0;
    }
    r = journal_seek_after_cursor(js->j, cursor);
    if (r == 1) {
        s->st.gaps++;
        log_warning("source %s: the journal entry of the checkpoint is gone (rotated or "
                    "vacuumed while cwlogd was stopped); resuming at the oldest entry "
                    "after it; entries removed in between are lost",
                    s->name);
    } else if (r < 0) {
        log_error_errno(r, "source %s: cannot resume at the stored cursor (%m); reading "
                           "from the start of the journal",
                        s->name);
        return journal_seek_head(js->j);
    }
    log_info("source %s: resuming the journal after the stored cursor", s->name);
    return 0;
}

/* ---- life cycle ---- */

int journald_open(source *s)
{
    const source_config *c = s->cfg;
    jsource *js = xcalloc(1, sizeof *js);
    js->s = s;
    js->fd = -1;
    s->journal = js;
    js->per_entry_names = strchr(c->group, '{') || strchr(c->stream, '{');
    js->idle_ms = CHANNEL_IDLE_MS;
    js->cap_rl = (log_ratelimit)LOG_RATELIMIT_INIT;
    const char *idle = getenv("CWLOGD_IDLE_FORGET_MS");
    if (idle && *idle)
        js->idle_ms = strtoll(idle, NULL, 10);
    int r = journal_open(c->n_paths ? c->paths[0] : NULL, c->matches, c->n_matches, c->units,
                         c->n_units, c->priority, &js->j);
    if (r < 0)
        return log_error_errno(r, "source %s: cannot open the journal%s%s: %m", s->name,
                               c->n_paths ? " in " : "", c->n_paths ? c->paths[0] : "");
    _cleanup_free_ char *cursor = NULL;
    if (s->a->cp && checkpoint_get_cursor(s->a->cp, s->name, &cursor) == 0)
        r = resume(js, cursor);
    else
        r = first_run(js);
    if (r < 0)
        return r;
    if (!s->a->opt.once) {
        js->fd = journal_fd(js->j);
        if (js->fd >= 0 && loop_add_fd(s->a->loop, js->fd, (uint32_t)journal_events(js->j),
                                       on_fd, js) < 0)
            js->fd = -1;
        js->timer = loop_timer_new(s->a->loop, on_timer, js);
        arm_timeout(js);
    }
    js->ready = true;
    agent_schedule_pump(s->a, s);
    return 0;
}

void journald_free(source *s)
{
    jsource *js = s->journal;
    if (!js)
        return;
    if (js->fd >= 0)
        loop_del_fd(s->a->loop, js->fd);
    loop_timer_free(js->timer);
    journal_free(js->j);
    for (size_t i = 0; i < js->qlen; i++)
        free(js->q[js->qhead + i].cursor);
    free(js->q);
    smap_clear(&js->channels);
    free(js->saved);
    free(js);
    s->journal = NULL;
}
