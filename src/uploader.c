/* uploader.c: moves records from the sources' rings into per-stream batches
 * and ships them with PutLogEvents: one request in flight per stream (order,
 * bounded duplicates), streams in parallel, every limit of the API obeyed,
 * and an acknowledgement for each record only after a 2xx. */
#include "uploader.h"

#include <sys/mman.h>
#include <time.h>

#include "agent.h"
#include "control.h"
#include "jsonstr.h"
#include "pacer.h"
#include "source.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 30000
#define STOP_RETRY_CAP_MS 1000 /* while stopping: within the 20 s deadline */
#define DENIED_BASE_MS 5000
#define DENIED_CAP_MS 120000
#define AGE_TICK_MS 100
/* All batches together (filling, queued, in flight). Past it, records stay in
 * the rings, where the sources' policies apply. */
#define BATCH_MEMORY_CAP (8u * 1024 * 1024)
/* A batch starts on the heap; one that grows past SMALL_BODY moves to a slab:
 * a mapping that holds a whole request (body and event index), kept for the
 * next batch while others are in use and unmapped when none is. Large
 * buffers then never fragment the heap, and refills do not page-fault. At
 * most SLABS_MAX exist; a stream that needs one waits for a request to end,
 * so requests stay full-sized however many streams are busy. */
#define SMALL_BODY (64u * 1024)
#define BODY_CAP ((size_t)CW_MAX_BATCH_BYTES + CW_MAX_BATCH_BYTES / 4)
#define EV_JSON_MAX 64 /* {"timestamp":N,"message":"…"} around the message, and a comma */
#define SLABS_MAX 4
/* A stream no file or journal channel maps to any more, with nothing to
 * send, is forgotten after this long (containers come and go); the state db
 * still knows it exists. */
#define STREAM_IDLE_MS (10 * 60 * 1000)
#define STREAM_SWEEP_MS (60 * 1000)
/* A stream that finds its log group missing asks again (CreateLogStream)
 * after a random delay in this range before creating the group itself:
 * agents started together then mostly find the group another one made,
 * instead of all calling CreateLogGroup (the scarcest quota, 5/s). */
#define GROUP_PROBE_MIN_MS 300
#define GROUP_PROBE_MAX_MS 1500

typedef struct ev {
    int64_t ts;
    uint32_t off, len, utf8; /* the escaped message inside the batch's body */
    tailfile *f;             /* NULL for a marker or a leading piece of a split event */
    uint64_t end;
} ev;

/* A batch is its PutLogEvents body, built as events arrive, so each message
 * is copied once, from the ring into the request; `evs` index into it. */
typedef struct batch {
    struct batch *next;
    ev *evs;
    size_t n, cap;
    buf body;
    bool ended;      /* the closing "]}" is written: ready to send */
    bool sorted;     /* events arrived in time order */
    uint64_t bytes;  /* sum of utf8 + 26: what the service counts */
    int64_t min_ts, max_ts;
    int64_t born_ms; /* monotonic time of its first event */
    uint64_t charge; /* bytes charged on the shared budget */
    size_t *order;   /* with !sorted: body order to arrival index */
    void *slab;      /* body and evs live in this slab (not on the heap) */
} batch;

#define SLAB_BYTES (BODY_CAP + CW_MAX_BATCH_EVENTS * sizeof(ev))

typedef enum stream_step {
    STEP_IDLE,
    STEP_CREATE_STREAM,
    STEP_CREATE_GROUP,
    STEP_RETENTION,
    STEP_PUT,
} stream_step;

/* The operations paced apart: each has its own quota, so a throttled
 * CreateLogStream never slows the puts of streams that exist. */
typedef enum lane_id { LANE_GROUP, LANE_STREAM, LANE_RETENTION, LANE_PUT, LANES } lane_id;

static const char *const lane_op[LANES] = {
    [LANE_GROUP] = "CreateLogGroup",
    [LANE_STREAM] = "CreateLogStream",
    [LANE_RETENTION] = "PutRetentionPolicy",
    [LANE_PUT] = "PutLogEvents",
};

/* Create operations start slow and grow with each success (a fleet that
 * starts together must not open with a burst); puts go unpaced until the
 * first throttle. CreateLogStream's parameters are pacer_create_stream (see
 * pacer.c for why). The group lane sends its first request at once: the
 * stream that creates a group has already waited a random while asking
 * whether it exists, and every moment between that answer and the group's
 * creation is one in which another agent can find it missing too. An hour
 * without a throttle forgets the cuts. The floor, one request per 20 s,
 * keeps every stream moving however large the fleet (deeper cuts starved
 * some agents' streams for minutes). */
static const pacer_params lane_params[LANES] = {
    [LANE_GROUP] = {.start_rate = 1, .min_rate = 0.05, .max_rate = 50, .cut = 0.5, .grow = 0.2,
                    .forget_ms = 3600 * 1000},
    [LANE_RETENTION] = {.start_rate = 1, .min_rate = 0.05, .max_rate = 50, .cut = 0.5,
                        .grow = 0.2, .first_jitter = true, .forget_ms = 3600 * 1000},
    [LANE_PUT] = {.start_rate = 0, .min_rate = 0.1, .max_rate = 10000, .cut = 0.5, .grow = 0.05,
                  .forget_ms = 3600 * 1000},
};

struct upstream;

typedef struct lane {
    pacer p;
    loop_timer *timer;
    struct upstream *head, *tail; /* streams waiting for a slot, in order */
} lane;

/* What this agent knows of a log group. */
typedef enum group_state {
    GROUP_UNKNOWN,  /* nothing yet: its streams try CreateLogStream */
    GROUP_EXISTS,   /* created, already there, or a stream was created in it */
    GROUP_MISSING,  /* a CreateLogStream said it does not exist: one stream probes again */
    GROUP_CREATING, /* the probing stream is creating it */
} group_state;

typedef struct ugroup {
    struct ugroup *next;
    group_state state;
    struct upstream *prober; /* the one stream that probes or creates it */
    bool probed;             /* the prober already asked again: next, create */
    /* How to create it: the settings of the source whose records named it
     * last (configurations replaced by a reload are kept until exit). */
    const group_options *opts;
    /* A group cwlogd did not create keeps its settings; when its retention
     * differs from the configured one, that is said once (DescribeLogGroups,
     * once per group in the state's lifetime, never retried). */
    bool created, retention_checked;
    char *name;
    buf req;
    cw_call *describe;
} ugroup;

typedef struct upstream {
    struct uploader *u;
    struct upstream *next;
    char *group, *stream;
    batch *fill;           /* being filled */
    batch *queue, *qtail;  /* full batches, head is the one being sent */
    stream_step step;
    bool busy;             /* a request is in flight or a retry is scheduled */
    bool known;            /* exists: in the state db, created, or accepted a put */
    bool waiting;          /* no credentials / region: resend when woken */
    bool mapped;           /* a file maps to it (set by sweep()) */
    int64_t used_ms;       /* monotonic time of its last batch */
    unsigned attempts;
    cw_call *call;
    loop_timer *retry;
    buf req;               /* body of a create/retention request */
    ugroup *grp;           /* its log group's entry (owned by the uploader) */
    bool group_wait;       /* waits until another stream learns about the group */
    bool queued;           /* waits in a lane for a slot */
    bool probing;          /* will ask again whether its group exists */
    struct upstream *lane_next;
    lane_id lane;
    const buf *lane_body;
    cw_done_fn lane_fn;
    int64_t sent_ms;       /* when its request in flight was sent */
    log_ratelimit rl;
    uint64_t sent, failures;
    char last_error[240];
} upstream;

typedef struct uploader {
    output base;
    agent *a;
    cw_client *cw;
    smap streams;
    upstream *all;
    loop_timer *age;
    loop_timer *sweep;
    int64_t idle_ms;       /* STREAM_IDLE_MS; CWLOGD_IDLE_FORGET_MS in tests */
    size_t filled;         /* streams whose fill has events */
    uint64_t batch_bytes;  /* charged by all batches */
    void *free_slabs;      /* unused slabs, linked through their first bytes */
    unsigned slabs, slabs_used;
    uint64_t max_event;
    log_ratelimit rl_body; /* answers that are not the expected JSON */
    log_ratelimit rl_throttle;
    lane lanes[LANES];
    smap groups;           /* group name -> ugroup */
    ugroup *groups_all;
    uploader_stats st;
} uploader;

static const output_ops uploader_ops;
static void send_next(upstream *s);
static void start_put(upstream *s);
static void put_done(cw_result r, const cw_error *err, const char *body, size_t len, void *ud);

/* ---- batches ---- */

static batch *batch_new(void)
{
    batch *b = xcalloc(1, sizeof(batch));
    b->sorted = true;
    return b;
}

static void *slab_get(uploader *u)
{
    void *p = u->free_slabs;
    if (p) {
        memcpy(&u->free_slabs, p, sizeof(void *));
    } else {
        if (u->slabs >= SLABS_MAX)
            return NULL;
        p = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            log_warning_errno(errno, "cloudwatch: cannot map a batch buffer: %m; sending "
                                     "smaller requests");
            return NULL;
        }
        u->slabs++;
    }
    u->slabs_used++;
    return p;
}

static void slab_put(uploader *u, void *p)
{
    memcpy(p, &u->free_slabs, sizeof(void *));
    u->free_slabs = p;
    if (--u->slabs_used > 0)
        return;
    /* Nothing in use: an idle agent gives the memory back. */
    while ((p = u->free_slabs)) {
        memcpy(&u->free_slabs, p, sizeof(void *));
        munmap(p, SLAB_BYTES);
        u->slabs--;
    }
}

static void batch_free(uploader *u, batch *b)
{
    if (!b)
        return;
    u->a->budget.used -= MIN(u->a->budget.used, b->charge);
    u->batch_bytes -= MIN(u->batch_bytes, b->charge);
    if (b->slab) {
        slab_put(u, b->slab);
    } else {
        free(b->evs);
        buf_free(&b->body);
    }
    free(b->order);
    free(b);
}

/* Whether an event of esc_len escaped bytes still fits in the body's room:
 * a slab's is fixed; a heap body grows (it moves to a slab first, see
 * make_room()). */
static bool body_fits(const batch *b, size_t esc_len)
{
    return !b->slab || b->body.len + esc_len + EV_JSON_MAX + 2 <= BODY_CAP;
}

static bool batch_accepts(const batch *b, int64_t ts, uint32_t utf8, size_t esc_len)
{
    if (b->n == 0)
        return true;
    if (b->n + 1 > CW_MAX_BATCH_EVENTS)
        return false;
    if (b->bytes + utf8 + CW_EVENT_OVERHEAD > CW_MAX_BATCH_BYTES)
        return false;
    if (!body_fits(b, esc_len))
        return false;
    int64_t lo = MIN(b->min_ts, ts), hi = MAX(b->max_ts, ts);
    return hi - lo <= CW_MAX_SPAN_MS;
}

static void batch_add(uploader *u, const char *group, const char *stream, batch *b, int64_t ts,
                      const char *esc, uint32_t len, uint32_t utf8, tailfile *f, uint64_t end)
{
    if (b->n == b->cap) { /* on the heap; a slab has room for CW_MAX_BATCH_EVENTS */
        b->cap = b->cap ? MIN(b->cap * 2, (size_t)CW_MAX_BATCH_EVENTS) : 256;
        b->evs = xrealloc(b->evs, b->cap * sizeof *b->evs);
    }
    if (b->n == 0) {
        b->min_ts = b->max_ts = ts;
        b->born_ms = now_monotonic_ms();
        cw_body_put_begin(&b->body, group, stream);
    } else if (ts < b->evs[b->n - 1].ts) {
        b->sorted = false;
    }
    size_t before = b->body.len;
    cw_body_put_event(&b->body, b->n == 0, ts, esc, len);
    /* The event ends with the message and its closing "}. */
    b->evs[b->n++] = (ev){.ts = ts, .off = (uint32_t)(b->body.len - 2 - len), .len = len,
                          .utf8 = utf8, .f = f, .end = end};
    b->bytes += utf8 + CW_EVENT_OVERHEAD;
    b->min_ts = MIN(b->min_ts, ts);
    b->max_ts = MAX(b->max_ts, ts);
    uint64_t cost = b->body.len - before + sizeof(ev);
    b->charge += cost;
    u->a->budget.used += cost;
    u->batch_bytes += cost;
}

static const batch *sort_batch;
static int by_time(const void *x, const void *y)
{
    const ev *a = &sort_batch->evs[*(const size_t *)x], *b = &sort_batch->evs[*(const size_t *)y];
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return *(const size_t *)x < *(const size_t *)y ? -1 : 1; /* keep arrival order */
}

/* Move a heap batch to a slab: one copy of at most SMALL_BODY. */
static bool promote(uploader *u, batch *b)
{
    void *slab = slab_get(u);
    if (!slab)
        return false;
    char *body = slab;
    ev *evs = (ev *)(body + BODY_CAP);
    memcpy(body, b->body.data, b->body.len);
    memcpy(evs, b->evs, b->n * sizeof *evs);
    free(b->evs);
    free(b->body.data);
    b->slab = slab;
    b->body.data = body;
    b->body.cap = BODY_CAP;
    b->evs = evs;
    b->cap = CW_MAX_BATCH_EVENTS;
    return true;
}

typedef enum room { ROOM_OK, ROOM_FULL, ROOM_WAIT } room;

/* Before a record of esc_len escaped bytes goes into a stream's fill: a heap
 * fill about to outgrow SMALL_BODY moves to a slab. ROOM_FULL: send the fill
 * (it cannot have a slab); ROOM_WAIT: every slab is taken, wait for a request
 * to end. */
static room make_room(uploader *u, batch *b, size_t esc_len)
{
    size_t after = b->body.len + esc_len + EV_JSON_MAX + 2; /* the body with it, closed */
    if (b->slab || after <= SMALL_BODY)
        return ROOM_OK;
    if (after > BODY_CAP)
        return b->n > 0 ? ROOM_FULL : ROOM_OK; /* a huge event alone: it stays on the heap */
    if (promote(u, b))
        return ROOM_OK;
    if (u->slabs >= SLABS_MAX)
        return ROOM_WAIT;
    return b->n > 0 ? ROOM_FULL : ROOM_OK; /* no memory for a slab: smaller requests */
}

/* Close the body; events that arrived out of time order (a joined partial
 * takes its first part's time) are put in order, as the API requires. */
static void finish_body(upstream *s, batch *b)
{
    if (b->ended)
        return;
    b->ended = true;
    if (b->sorted) {
        cw_body_put_end(&b->body);
        return;
    }
    b->order = xmalloc(b->n * sizeof *b->order);
    for (size_t i = 0; i < b->n; i++)
        b->order[i] = i;
    sort_batch = b;
    qsort(b->order, b->n, sizeof *b->order, by_time);
    /* Rebuilt in place from a copy: the sorted body has the same length. */
    char *old = xmalloc(b->body.len);
    memcpy(old, b->body.data, b->body.len);
    b->body.len = 0;
    cw_body_put_begin(&b->body, s->group, s->stream);
    ev *evs = xmalloc(b->n * sizeof *evs);
    for (size_t i = 0; i < b->n; i++) {
        ev e = b->evs[b->order[i]];
        cw_body_put_event(&b->body, i == 0, e.ts, old + e.off, e.len);
        e.off = (uint32_t)(b->body.len - 2 - e.len);
        evs[i] = e;
    }
    cw_body_put_end(&b->body);
    /* Keep evs in arrival order (acknowledgements go in read order), now
     * pointing into the sorted body; order[] maps body position to arrival. */
    for (size_t i = 0; i < b->n; i++)
        b->evs[b->order[i]] = evs[i];
    free(evs);
    free(old);
}

/* Arrival index of the event at body position i. */
static size_t body_index(const batch *b, size_t i)
{
    return b->order ? b->order[i] : i;
}

/* ---- streams ---- */

static upstream *stream_for(uploader *u, tailfile *f)
{
    if (f->upload_stream)
        return f->upload_stream;
    _cleanup_free_ char *key = xasprintf("%s\n%s", f->group, f->stream);
    upstream *s = smap_get(&u->streams, key);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->u = u;
        s->group = xstrdup(f->group);
        s->stream = xstrdup(f->stream);
        s->fill = batch_new();
        s->rl = (log_ratelimit){.interval_ms = 60000, .burst = 3};
        s->known = u->a->cp && checkpoint_stream_known(u->a->cp, s->group, s->stream);
        s->grp = smap_get(&u->groups, s->group);
        if (!s->grp) {
            s->grp = xcalloc(1, sizeof *s->grp);
            s->grp->next = u->groups_all;
            u->groups_all = s->grp;
            smap_put(&u->groups, s->group, s->grp);
        }
        if (s->known)
            s->grp->state = GROUP_EXISTS;
        s->grp->opts = &f->src->cfg->groups;
        s->used_ms = now_monotonic_ms();
        s->next = u->all;
        u->all = s;
        smap_put(&u->streams, key, s);
        u->st.streams++;
    }
    f->upload_stream = s;
    return s;
}

static void lane_remove(upstream *s);
static void group_settle(uploader *u, ugroup *g, group_state state);

static void stream_free(upstream *s)
{
    lane_remove(s);
    if (s->grp && s->grp->prober == s)
        group_settle(s->u, s->grp, GROUP_UNKNOWN); /* another stream takes over */
    cw_cancel(s->call);
    loop_timer_free(s->retry);
    batch_free(s->u, s->fill);
    while (s->queue) {
        batch *b = s->queue;
        s->queue = b->next;
        batch_free(s->u, b);
    }
    buf_free(&s->req);
    free(s->group);
    free(s->stream);
    free(s);
}

/* Forget streams that nothing maps to and that have been idle a while. */
static void sweep_cb(loop *l, void *userdata)
{
    uploader *u = userdata;
    for (upstream *s = u->all; s; s = s->next)
        s->mapped = false;
    for (size_t i = 0; i < u->a->n_sources; i++)
        for (tailfile *f = u->a->sources[i]->files; f; f = f->next)
            if (f->upload_stream)
                ((upstream *)f->upload_stream)->mapped = true;
    int64_t now = now_monotonic_ms();
    for (upstream **p = &u->all; *p;) {
        upstream *s = *p;
        if (s->mapped || s->fill->n || s->queue || s->busy || s->call || s->waiting ||
            now - s->used_ms < u->idle_ms) {
            p = &s->next;
            continue;
        }
        *p = s->next;
        _cleanup_free_ char *key = xasprintf("%s\n%s", s->group, s->stream);
        smap_remove(&u->streams, key);
        log_debug("cloudwatch: forgetting idle stream %s / %s", s->group, s->stream);
        stream_free(s);
        u->st.streams--;
    }
}

static bool drops_pending(const uploader *u)
{
    for (size_t i = 0; i < u->a->n_sources; i++)
        if (u->a->sources[i]->st.drop_pending_events > 0)
            return true;
    return false;
}

/* The age timer runs while a batch fills or drops wait for their marker
 * (announce_idle_drops(): a file may never send another record). */
static void arm_age(uploader *u)
{
    if ((u->filled > 0 || drops_pending(u)) && !loop_timer_armed(u->age))
        loop_timer_arm(u->age, AGE_TICK_MS, AGE_TICK_MS);
}

/* Move the fill batch to the send queue. */
static void seal(upstream *s)
{
    if (s->fill->n == 0)
        return;
    batch *b = s->fill;
    s->fill = batch_new();
    s->u->filled--;
    s->used_ms = now_monotonic_ms();
    if (s->qtail)
        s->qtail->next = b;
    else
        s->queue = b;
    s->qtail = b;
    if (!s->busy)
        send_next(s);
}

static void add_event(upstream *s, int64_t ts, const char *esc, uint32_t len, uint32_t utf8,
                      tailfile *f, uint64_t end)
{
    if (s->fill->n == 0)
        s->u->filled++;
    batch_add(s->u, s->group, s->stream, s->fill, ts, esc, len, utf8, f, end);
    arm_age(s->u);
}

static void format_time(char *out, size_t n, int64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03dZ", (int)(ms % 1000));
}

/* The marker that announces drops in the stream where the dropped events
 * were going. */
static void add_marker(upstream *s, tailfile *f)
{
    char t1[40], t2[40], msg[512];
    format_time(t1, sizeof t1, f->drop_first_ms);
    format_time(t2, sizeof t2, f->drop_last_ms);
    int n = snprintf(msg, sizeof msg, "cwlogd: dropped %llu events (%llu bytes) from %s between %s "
                     "and %s",
                     (unsigned long long)f->drop_events, (unsigned long long)f->drop_bytes,
                     f->src->name, t1, t2);
    buf esc = {0};
    size_t utf8;
    jsonstr_escape(&esc, msg, (size_t)n, &utf8);
    if (!batch_accepts(s->fill, f->drop_last_ms, (uint32_t)utf8, esc.len))
        seal(s);
    add_event(s, f->drop_last_ms, esc.data, (uint32_t)esc.len, (uint32_t)utf8, NULL, 0);
    buf_free(&esc);
    f->src->st.drop_pending_events -= MIN(f->src->st.drop_pending_events, f->drop_events);
    f->drop_events = f->drop_bytes = 0;
    s->u->st.markers++;
}

/* ---- pulling from rings ---- */

static bool under_pressure(const uploader *u)
{
    return u->batch_bytes > BATCH_MEMORY_CAP / 2;
}

/* Over the memory cap. A request in flight frees its batch when it ends and
 * kicks the sources again, so then there is nothing to do. With none in
 * flight, the largest batch being filled is sent: batches stay as large as
 * the cap allows instead of every stream sending what it has. */
static void relieve(uploader *u)
{
    upstream *best = NULL;
    for (upstream *s = u->all; s; s = s->next) {
        if (s->queue || s->busy)
            return;
        if (s->fill->n > 0 && (!best || s->fill->bytes > best->fill->bytes))
            best = s;
    }
    if (best)
        seal(best);
}

/* Move records from one ring into batches; false: out of batch memory, stop
 * pulling from any ring (finish_head() kicks the sources again). */
static bool kick_ring(uploader *u, ring *rg)
{
    const record *r;
    while ((r = ring_peek(rg))) {
        if (u->batch_bytes + ring_record_cost(r->esc_len) > BATCH_MEMORY_CAP) {
            relieve(u);
            return false;
        }
        tailfile *f = r->owner;
        upstream *s = stream_for(u, f);
        /* Room for the record and a possible marker, or the fill is sealed;
         * while the stream still has a batch queued, the source waits. */
        size_t need = r->esc_len + 4096;
        room rm = batch_accepts(s->fill, r->timestamp_ms, r->utf8_len + 600, need)
                      ? make_room(u, s->fill, need)
                      : ROOM_FULL;
        if (rm == ROOM_FULL) {
            if (s->queue)
                return true; /* this ring waits for the stream; others may go on */
            seal(s);
            rm = make_room(u, s->fill, need);
        }
        if (rm == ROOM_WAIT) {
            relieve(u);
            return false;
        }
        if (f->drop_events > 0)
            add_marker(s, f);
        add_event(s, r->timestamp_ms, r->msg, r->esc_len, r->utf8_len, f, r->end_offset);
        tail_record_taken(f);
        ring_pop(rg);
    }
    return true;
}

static void uploader_kick(output *o, source *src)
{
    uploader *u = (uploader *)o;
    for (size_t i = 0; i < source_n_rings(src); i++)
        if (!kick_ring(u, source_ring_at(src, i)))
            break;
    if (src->st.drop_pending_events > 0)
        arm_age(u);
    source_resume(src);
}

/* Drops whose files sent nothing since: announce them anyway. */
static void announce_idle_drops(uploader *u)
{
    for (size_t i = 0; i < u->a->n_sources; i++) {
        source *src = u->a->sources[i];
        if (src->st.drop_pending_events == 0)
            continue;
        for (tailfile *f = src->files; f; f = f->next)
            if (f->drop_events > 0 && f->in_ring == 0)
                add_marker(stream_for(u, f), f);
    }
}

static void age_cb(loop *l, void *userdata)
{
    uploader *u = userdata;
    announce_idle_drops(u);
    int64_t now = now_monotonic_ms();
    int64_t limit = (int64_t)u->a->cfg->flush_interval_ms;
    for (upstream *s = u->all; s; s = s->next)
        if (s->fill->n > 0 && now - s->fill->born_ms >= limit && !s->queue)
            seal(s);
    if (u->filled == 0 && !drops_pending(u))
        loop_timer_disarm(u->age);
}

static void kick_all(uploader *u)
{
    for (size_t i = 0; i < u->a->n_sources; i++)
        if (source_ring_count(u->a->sources[i]) > 0)
            agent_records_ready(u->a, u->a->sources[i]);
}

/* ---- sending ---- */

static uint64_t backoff_ms(unsigned attempts, uint64_t base, uint64_t cap)
{
    uint64_t d = base;
    for (unsigned i = 0; i < attempts && d < cap; i++)
        d *= 2;
    d = MIN(d, cap);
    /* Full jitter over the upper half: streams that failed together spread out. */
    return d / 2 + (uint64_t)random() % (d / 2 + 1);
}

static void retry_cb(loop *l, void *userdata)
{
    upstream *s = userdata;
    s->busy = false;
    send_next(s);
}

static void schedule_retry(upstream *s, cw_result r, uint64_t base, uint64_t cap)
{
    /* Stopping: a passing failure (CW_RETRY: throttling, 5xx, a reset, a
     * timeout) is retried, every second at most, until the agent's stop
     * deadline; what an operator must fix is not. What is left is read again
     * after the restart. */
    bool stopping = s->u->a->stopping;
    if (stopping && r != CW_RETRY) {
        s->busy = false;
        s->step = STEP_IDLE;
        if (s->grp && s->grp->prober == s) /* its group's other streams wait no more */
            group_settle(s->u, s->grp, GROUP_UNKNOWN);
        agent_output_progress(s->u->a);
        return;
    }
    s->busy = true;
    if (!s->retry)
        s->retry = loop_timer_new(s->u->a->loop, retry_cb, s);
    uint64_t d = backoff_ms(s->attempts++, base, stopping ? MIN(cap, STOP_RETRY_CAP_MS) : cap);
    s->u->st.retries++;
    loop_timer_arm(s->retry, d, 0);
}

static void log_failure(upstream *s, const char *what, const cw_error *err)
{
    s->failures++;
    snprintf(s->last_error, sizeof s->last_error, "%.30s: %.60s%s%.140s", what,
             err->type[0] ? err->type : cw_strerror(err->kind), err->message[0] ? ": " : "",
             err->message);
    uint64_t suppressed;
    if (!log_ratelimit_ok(&s->rl, &suppressed))
        return;
    /* What an operator must fix (clock, keys, permissions) is an error;
     * what passes by itself, a warning. */
    bool fix = err->kind == CW_CLOCK || err->kind == CW_AUTH || err->kind == CW_DENIED;
    log_emit(fix ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING, 0,
             "cloudwatch: %s %s / %s failed: %s%s%s (HTTP %ld)%s%s; retrying", what, s->group,
                s->stream, err->type[0] ? err->type : cw_strerror(err->kind),
                err->message[0] ? ": " : "", err->message, err->status,
                err->kind == CW_CLOCK ? " - is this host's clock right?" : "",
                suppressed ? " (repeated failures not logged)" : "");
}

static int send_op(upstream *s, const char *op, const buf *body, cw_done_fn fn)
{
    s->call = NULL;
    int r = cw_send(s->u->cw, op, body->data, body->len, fn, s, &s->call);
    if (r < 0) {
        /* No credentials or no region yet: uploader_wake() resends. */
        s->waiting = true;
        s->busy = false;
        return r;
    }
    s->busy = true;
    s->u->st.requests++;
    return 0;
}

/* ---- pacing: one lane per operation, shared by every stream ---- */

static void lane_pump(uploader *u, lane_id id)
{
    lane *l = &u->lanes[id];
    while (l->head) {
        int64_t now = now_monotonic_ms();
        int64_t wait = pacer_wait(&l->p, now);
        if (wait > 0) {
            loop_timer_arm(l->timer, (uint64_t)wait, 0);
            return;
        }
        upstream *s = l->head;
        l->head = s->lane_next;
        if (!l->head)
            l->tail = NULL;
        s->lane_next = NULL;
        s->queued = false;
        s->sent_ms = now;
        if (send_op(s, lane_op[id], s->lane_body, s->lane_fn) == 0)
            pacer_sent(&l->p, now);
    }
}

static void lane_cb(loop *lp, void *userdata)
{
    lane *l = userdata;
    uploader *u = l->head ? l->head->u : NULL;
    if (u)
        lane_pump(u, (lane_id)(l - u->lanes));
}

/* Send op when its lane has a slot: now, or in order after the streams
 * already waiting. A throttled request goes back to the front. */
static void paced_send(upstream *s, lane_id id, const buf *body, cw_done_fn fn, bool front)
{
    uploader *u = s->u;
    lane *l = &u->lanes[id];
    s->busy = true;
    s->queued = true;
    s->lane = id;
    s->lane_body = body;
    s->lane_fn = fn;
    if (front) {
        s->lane_next = l->head;
        l->head = s;
        if (!l->tail)
            l->tail = s;
    } else {
        s->lane_next = NULL;
        if (l->tail)
            l->tail->lane_next = s;
        else
            l->head = s;
        l->tail = s;
    }
    if (l->head == s)
        lane_pump(u, id);
}

static void lane_remove(upstream *s)
{
    if (!s->queued)
        return;
    lane *l = &s->u->lanes[s->lane];
    upstream *prev = NULL;
    for (upstream *x = l->head; x; prev = x, x = x->lane_next) {
        if (x != s)
            continue;
        if (prev)
            prev->lane_next = s->lane_next;
        else
            l->head = s->lane_next;
        if (l->tail == s)
            l->tail = prev;
        break;
    }
    s->queued = false;
    s->lane_next = NULL;
}

/* A request of lane id was throttled: the lane slows down. */
static void lane_throttled(upstream *s, lane_id id, const cw_error *err)
{
    uploader *u = s->u;
    lane *l = &u->lanes[id];
    pacer_throttled(&l->p, s->sent_ms, now_monotonic_ms());
    u->st.retries++;
    u->st.throttled++;
    s->failures++;
    snprintf(s->last_error, sizeof s->last_error, "%s: %.60s: %.140s", lane_op[id], err->type,
             err->message);
    uint64_t suppressed;
    if (log_ratelimit_ok(&u->rl_throttle, &suppressed))
        log_info("cloudwatch: %s throttled (%s: %s): pacing it at %.2f requests/s%s", lane_op[id],
                 err->type, err->message, l->p.rate,
                 suppressed ? " (more throttles not logged)" : "");
}

/* Tell the lane how the request ended. true: it was throttled and waits in
 * its lane again; the caller has nothing more to do. */
static bool paced_answer(upstream *s, lane_id id, cw_result r, const cw_error *err)
{
    uploader *u = s->u;
    lane *l = &u->lanes[id];
    if (r == CW_RETRY && err->throttled) {
        lane_throttled(s, id, err);
        if (u->a->stopping) {
            /* Stopping: retried on the stop's own clock, until its deadline. */
            schedule_retry(s, r, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
            return true;
        }
        paced_send(s, id, s->lane_body, s->lane_fn, true);
        return true;
    }
    /* An answer from the service, whatever it says, is not a throttle: the
     * quota had room. Transport errors and 5xx say nothing about it. */
    if (err->status >= 200 && err->status < 500 && r != CW_RETRY)
        pacer_ok(&l->p, s->sent_ms, now_monotonic_ms());
    return false;
}

/* ---- groups: learnt once per agent, created by one stream ---- */

static void release_group_waiters(loop *lp, void *userdata)
{
    uploader *u = userdata;
    for (upstream *s = u->all; s; s = s->next) {
        if (!s->group_wait || s->grp->state == GROUP_MISSING || s->grp->state == GROUP_CREATING)
            continue;
        s->group_wait = false;
        s->busy = false;
        send_next(s);
    }
}

/* The group's question is settled (it exists, or the stream asking is
 * gone): streams that waited on it go on. */
static void group_settle(uploader *u, ugroup *g, group_state state)
{
    g->state = state;
    g->prober = NULL;
    g->probed = false;
    loop_defer(u->a->loop, release_group_waiters, u);
}

static void create_stream_done(cw_result r, const cw_error *err, const char *body, size_t len,
                               void *ud);

static void start_create_stream(upstream *s)
{
    ugroup *g = s->grp;
    s->probing = false;
    if ((g->state == GROUP_MISSING || g->state == GROUP_CREATING) && g->prober != s) {
        /* Another stream finds out about the group; this one waits. */
        s->group_wait = true;
        s->busy = true;
        s->step = STEP_CREATE_STREAM;
        return;
    }
    s->step = STEP_CREATE_STREAM;
    s->req.len = 0;
    cw_body_create_stream(&s->req, s->group, s->stream);
    /* The group's prober goes first: every other stream of the group waits
     * for its answer. */
    paced_send(s, LANE_STREAM, &s->req, create_stream_done, g->prober == s);
}

/* Ask again in a while whether the group exists, as its prober. */
static void probe_group_later(upstream *s, uint64_t min_ms, uint64_t max_ms)
{
    s->busy = true;
    s->probing = true;
    s->step = STEP_CREATE_GROUP;
    if (!s->retry)
        s->retry = loop_timer_new(s->u->a->loop, retry_cb, s);
    loop_timer_arm(s->retry, min_ms + (uint64_t)random() % (max_ms - min_ms + 1), 0);
}

static void create_group_done(cw_result r, const cw_error *err, const char *body, size_t len,
                              void *ud);

static void start_create_group(upstream *s)
{
    s->grp->state = GROUP_CREATING;
    s->step = STEP_CREATE_GROUP;
    s->req.len = 0;
    const group_options *o = s->grp->opts;
    cw_group_settings gs = {0};
    if (o)
        gs = (cw_group_settings){.group_class = o->group_class, .kms_key_id = o->kms_key_id,
                                 .tags = o->tags, .n_tags = o->n_tags};
    cw_body_create_group_with(&s->req, s->group, &gs);
    paced_send(s, LANE_GROUP, &s->req, create_group_done, false);
}

static int group_retention(const upstream *s)
{
    return s->grp->opts ? s->grp->opts->retention_days : s->u->a->cfg->retention_days;
}

static void describe_done(cw_result r, const cw_error *err, const char *body, size_t len,
                          void *ud)
{
    ugroup *g = ud;
    g->describe = NULL;
    int want = g->opts ? g->opts->retention_days : 0, have = 0;
    if (r != CW_OK) {
        log_debug("cloudwatch: cannot look up the retention of %s (not retried): %s", g->name,
                  err->message[0] ? err->message : cw_strerror(r));
        return;
    }
    if (cw_parse_group_retention(body, len, g->name, &have) == 0 && have != want) {
        char has[32] = "no retention (never expire)";
        if (have > 0)
            snprintf(has, sizeof has, "a retention of %d days", have);
        log_warning("cloudwatch: log group %s already exists with %s; retention_days = %d "
                    "applies only to groups cwlogd creates, so it is left as it is",
                    g->name, has, want);
    }
}

/* The group is there and cwlogd did not create it: compare its retention. */
static void check_existing_group(upstream *s)
{
    ugroup *g = s->grp;
    uploader *u = s->u;
    if (g->created || g->retention_checked || !g->opts || g->opts->retention_days <= 0)
        return;
    g->retention_checked = true;
    if (u->a->cp) {
        if (checkpoint_stream_known(u->a->cp, s->group, NULL))
            return; /* looked at by an earlier run */
        checkpoint_put_stream(u->a->cp, s->group, NULL);
    }
    free(g->name);
    g->name = xstrdup(s->group);
    g->req.len = 0;
    cw_body_describe_group(&g->req, g->name);
    if (cw_send(u->cw, "DescribeLogGroups", g->req.data, g->req.len, describe_done, g,
                &g->describe) < 0)
        g->describe = NULL;
}

static void retention_done(cw_result r, const cw_error *err, const char *body, size_t len,
                           void *ud)
{
    upstream *s = ud;
    s->call = NULL;
    if (paced_answer(s, LANE_RETENTION, r, err))
        return;
    if (r != CW_OK)
        log_warning("cloudwatch: cannot set retention of %s to %d days: %s", s->group,
                    group_retention(s), err->message[0] ? err->message : cw_strerror(r));
    group_settle(s->u, s->grp, GROUP_EXISTS);
    start_create_stream(s);
}

static void create_group_done(cw_result r, const cw_error *err, const char *body, size_t len,
                              void *ud)
{
    upstream *s = ud;
    s->call = NULL;
    if (r == CW_RETRY && err->throttled && !s->u->a->stopping) {
        /* Someone else is creating groups right now, often this one: ask
         * again whether it exists (CreateLogStream) before creating it. */
        lane_throttled(s, LANE_GROUP, err);
        s->grp->state = GROUP_MISSING;
        s->grp->probed = true;
        probe_group_later(s, GROUP_PROBE_MIN_MS, GROUP_PROBE_MAX_MS);
        return;
    }
    if (paced_answer(s, LANE_GROUP, r, err))
        return;
    if (r == CW_OK) {
        s->grp->created = true;
        if (s->u->a->cp) /* nothing to compare: it has the configured settings */
            checkpoint_put_stream(s->u->a->cp, s->group, NULL);
    } else if (r == CW_ALREADY_EXISTS) {
        check_existing_group(s);
    }
    if (r == CW_OK && group_retention(s) > 0) {
        log_info("cloudwatch: created log group %s", s->group);
        s->step = STEP_RETENTION;
        s->req.len = 0;
        cw_body_retention(&s->req, s->group, group_retention(s));
        paced_send(s, LANE_RETENTION, &s->req, retention_done, false);
        return;
    }
    if (r == CW_OK || r == CW_ALREADY_EXISTS) {
        if (r == CW_OK)
            log_info("cloudwatch: created log group %s", s->group);
        group_settle(s->u, s->grp, GROUP_EXISTS);
        start_create_stream(s);
        return;
    }
    if (r == CW_AUTH)
        creds_invalidate(s->u->a->creds);
    log_failure(s, "CreateLogGroup", err);
    /* Still the prober: its retry asks CreateLogStream first again. */
    s->grp->state = GROUP_MISSING;
    s->grp->probed = false;
    s->step = STEP_IDLE;
    schedule_retry(s, r, r == CW_DENIED ? DENIED_BASE_MS : BACKOFF_BASE_MS,
                   r == CW_DENIED ? DENIED_CAP_MS : BACKOFF_CAP_MS);
}

static void create_stream_done(cw_result r, const cw_error *err, const char *body, size_t len,
                               void *ud)
{
    upstream *s = ud;
    ugroup *g = s->grp;
    s->call = NULL;
    if (paced_answer(s, LANE_STREAM, r, err))
        return;
    if (r == CW_OK || r == CW_ALREADY_EXISTS) {
        s->known = true;
        if (g->state != GROUP_EXISTS)
            group_settle(s->u, g, GROUP_EXISTS);
        check_existing_group(s);
        if (s->u->a->cp)
            checkpoint_put_stream(s->u->a->cp, s->group, s->stream);
        start_put(s);
        return;
    }
    if (r == CW_NOT_FOUND) {
        if (s->u->a->cfg->create_group) {
            if (g->prober && g->prober != s) {
                /* Sent before another stream found the group missing. */
                s->busy = false;
                start_create_stream(s);
                return;
            }
            if (g->prober == s && g->probed) {
                start_create_group(s);
                return;
            }
            g->state = GROUP_MISSING;
            g->prober = s;
            g->probed = true;
            probe_group_later(s, GROUP_PROBE_MIN_MS, GROUP_PROBE_MAX_MS);
            return;
        }
        uint64_t suppressed;
        if (log_ratelimit_ok(&s->rl, &suppressed))
            log_error("cloudwatch: log group %s does not exist and create_group = false; "
                      "records for %s wait",
                      s->group, s->stream);
    } else {
        if (r == CW_AUTH)
            creds_invalidate(s->u->a->creds);
        log_failure(s, "CreateLogStream", err);
    }
    s->step = STEP_IDLE;
    schedule_retry(s, r, r == CW_DENIED || r == CW_NOT_FOUND ? DENIED_BASE_MS : BACKOFF_BASE_MS,
                   r == CW_DENIED || r == CW_NOT_FOUND ? DENIED_CAP_MS : BACKOFF_CAP_MS);
}

static void start_put(upstream *s)
{
    batch *b = s->queue;
    s->step = STEP_PUT;
    finish_body(s, b);
    paced_send(s, LANE_PUT, &b->body, put_done, false);
}

static void send_next(upstream *s)
{
    if (s->busy || !s->queue)
        return;
    s->waiting = false;
    if (!s->known)
        start_create_stream(s);
    else
        start_put(s);
}

/* The head batch is done with: acknowledge its records in the order they
 * were read, release it, send the next one. */
static void finish_head(upstream *s, size_t rejected)
{
    uploader *u = s->u;
    batch *b = s->queue;
    s->queue = b->next;
    if (!s->queue)
        s->qtail = NULL;
    for (size_t i = 0; i < b->n; i++) {
        ev *e = &b->evs[i];
        if (!e->f)
            continue;
        e->f->src->st.delivered++;
        e->f->delivered_ts = e->ts;
        tail_record_done(e->f, e->end, false);
    }
    u->st.events_sent += b->n - rejected;
    s->sent += b->n - rejected;
    batch_free(u, b);
    s->attempts = 0;
    s->busy = false;
    s->step = STEP_IDLE;
    if (s->fill->n > 0 && !s->queue &&
        (s->fill->bytes + 8192 > CW_MAX_BATCH_BYTES || under_pressure(u) ||
         now_monotonic_ms() - s->fill->born_ms >= (int64_t)u->a->cfg->flush_interval_ms))
        seal(s);
    send_next(s);
    kick_all(u);
    agent_output_progress(u->a);
}

static void count_rejected(upstream *s, batch *b, size_t from, size_t to, const char *why)
{
    for (size_t i = from; i < to && i < b->n; i++) {
        ev *e = &b->evs[body_index(b, i)];
        if (e->f)
            e->f->src->st.rejected++;
        s->u->st.rejected++;
    }
    if (to > from)
        log_warning("cloudwatch: %s / %s: %zu event(s) rejected as %s", s->group, s->stream,
                    MIN(to, b->n) - from, why);
}

/* Replace the head batch by two halves: isolates the event the service
 * refuses without ever sending the same batch again. */
static void split_head(upstream *s)
{
    uploader *u = s->u;
    batch *b = s->queue;
    batch *x = batch_new(), *y = batch_new();
    size_t half = b->n / 2;
    for (size_t i = 0; i < b->n; i++) {
        ev *e = &b->evs[i];
        batch_add(u, s->group, s->stream, i < half ? x : y, e->ts, b->body.data + e->off, e->len,
                  e->utf8, e->f, e->end);
    }
    x->next = y;
    y->next = b->next;
    s->queue = x;
    if (s->qtail == b)
        s->qtail = y;
    batch_free(u, b);
}

/* Split every event longer than `limit` into pieces; only the last piece
 * carries the record's acknowledgement. */
static void resplit_head(upstream *s, uint64_t limit)
{
    uploader *u = s->u;
    batch *b = s->queue, *nb = batch_new();
    for (size_t i = 0; i < b->n; i++) {
        ev *e = &b->evs[i];
        const char *esc = b->body.data + e->off;
        size_t done = 0;
        while (done < e->len) {
            size_t piece_utf8;
            size_t cut = e->utf8 <= limit ? e->len - done
                                         : jsonstr_cut(esc + done, e->len - done, limit, &piece_utf8);
            if (e->utf8 <= limit)
                piece_utf8 = e->utf8;
            if (cut == 0)
                cut = e->len - done;
            bool last = done + cut == e->len;
            batch_add(u, s->group, s->stream, nb, e->ts, esc + done, (uint32_t)cut,
                      (uint32_t)piece_utf8, last ? e->f : NULL, e->end);
            done += cut;
        }
    }
    /* More events may now exceed a batch's limits: split until each fits. */
    nb->next = b->next;
    s->queue = nb;
    if (s->qtail == b)
        s->qtail = nb;
    batch_free(u, b);
}

static bool batch_fits(const batch *b)
{
    return b->n <= CW_MAX_BATCH_EVENTS && b->bytes <= CW_MAX_BATCH_BYTES &&
           b->max_ts - b->min_ts <= CW_MAX_SPAN_MS;
}

static void put_done(cw_result r, const cw_error *err, const char *body, size_t len, void *ud)
{
    upstream *s = ud;
    uploader *u = s->u;
    batch *b = s->queue;
    s->call = NULL;
    if (paced_answer(s, LANE_PUT, r, err))
        return;
    switch (r) {
    case CW_OK: {
        cw_put_result pr;
        size_t rejected = 0;
        uint64_t suppressed;
        if (cw_parse_put_response(body, len, &pr) < 0) {
            if (log_ratelimit_ok(&u->rl_body, &suppressed))
                log_warning("cloudwatch: PutLogEvents to %s / %s answered %ld with a body that "
                            "is not the expected JSON; taking it as accepted%s",
                            s->group, s->stream, err->status,
                            suppressed ? " (more such answers not logged)" : "");
        } else {
            if (pr.too_new_start >= 0) {
                count_rejected(s, b, (size_t)pr.too_new_start, b->n, "too new (over 2 h ahead)");
                rejected += b->n - MIN(b->n, (size_t)pr.too_new_start);
            }
            if (pr.too_old_end >= 0) {
                count_rejected(s, b, 0, (size_t)pr.too_old_end, "too old (over 14 days)");
                rejected += MIN(b->n, (size_t)pr.too_old_end);
            }
            if (pr.expired_end >= 0) {
                count_rejected(s, b, 0, (size_t)pr.expired_end, "older than the retention");
                rejected += MIN(b->n, (size_t)pr.expired_end);
            }
        }
        if (!s->known) {
            s->known = true;
            if (u->a->cp)
                checkpoint_put_stream(u->a->cp, s->group, s->stream);
        }
        /* With the commit that follows in the same turn, this tells the crash
         * tests which requests were handled before a kill. */
        log_debug("cloudwatch: %s / %s: request %s accepted %zu event(s)", s->group, s->stream,
                  err->request_id[0] ? err->request_id : "(no id)", b->n);
        finish_head(s, MIN(rejected, b->n));
        return;
    }
    case CW_NOT_FOUND:
        s->known = false;
        if (u->a->cp)
            checkpoint_forget_stream(u->a->cp, s->group, s->stream);
        s->busy = false;
        start_create_stream(s);
        return;
    case CW_EVENT_TOO_LARGE:
        if (err->limit >= 1024 && err->limit < u->max_event) {
            log_warning("cloudwatch: the service's event size limit is %llu bytes: splitting "
                        "longer events from now on",
                        (unsigned long long)err->limit);
            u->max_event = err->limit;
            u->a->cfg->max_event_size = err->limit;
            resplit_head(s, err->limit);
            s->busy = false;
            while (!batch_fits(s->queue))
                split_head(s);
            send_next(s);
            return;
        }
        /* a limit we cannot use: treat the batch as invalid */
        __attribute__((fallthrough));
    case CW_INVALID:
        if (b->n > 1) {
            log_warning("cloudwatch: %s / %s: batch of %zu refused (%s); splitting it to find "
                        "the event",
                        s->group, s->stream, b->n, err->message);
            split_head(s);
            s->busy = false;
            send_next(s);
            return;
        }
        log_error("cloudwatch: %s / %s: event refused for good and dropped: %s", s->group,
                  s->stream, err->message);
        if (b->evs[0].f)
            b->evs[0].f->src->st.rejected++;
        u->st.rejected++;
        finish_head(s, 1);
        return;
    case CW_AUTH:
        creds_invalidate(u->a->creds);
        log_failure(s, "PutLogEvents", err);
        schedule_retry(s, r, 1000, BACKOFF_CAP_MS);
        return;
    case CW_CLOCK:
        log_failure(s, "PutLogEvents", err);
        schedule_retry(s, r, 1000, BACKOFF_CAP_MS);
        return;
    case CW_DENIED:
        log_failure(s, "PutLogEvents", err);
        schedule_retry(s, r, DENIED_BASE_MS, DENIED_CAP_MS);
        return;
    default:
        log_failure(s, "PutLogEvents", err);
        schedule_retry(s, r, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
        return;
    }
}

/* ---- the output interface ---- */

static size_t uploader_in_flight(const output *o)
{
    const uploader *u = (const uploader *)o;
    size_t n = 0;
    /* Requests waiting for their pace, or for their group to be settled,
     * are on their way too: stopping waits for them. */
    for (const upstream *s = u->all; s; s = s->next)
        /* busy: a request or its retry is pending */
        n += s->call || s->busy || s->queued || s->group_wait || s->probing;
    return n;
}

static bool uploader_idle(const output *o)
{
    const uploader *u = (const uploader *)o;
    for (const upstream *s = u->all; s; s = s->next)
        if (s->fill->n || s->queue || s->busy)
            return false;
    return true;
}

static int uploader_flush(output *o)
{
    return 0; /* acknowledgements come from the service: nothing to write */
}

static const char *step_name(const upstream *s)
{
    static const char *const names[] = {[STEP_IDLE] = "idle",
                                        [STEP_CREATE_STREAM] = "creating stream",
                                        [STEP_CREATE_GROUP] = "creating group",
                                        [STEP_RETENTION] = "setting retention",
                                        [STEP_PUT] = "sending"};
    if (s->waiting)
        return "waiting for credentials/region";
    if (s->group_wait)
        return "waiting for its log group";
    if (s->queued)
        return s->lane == LANE_PUT ? "paced (sending)" : "paced (creating)";
    if (s->busy && !s->call)
        return "retrying";
    return names[s->step];
}

static void uploader_report(const output *o, buf *b, bool prometheus)
{
    const uploader *u = (const uploader *)o;
    if (!prometheus) {
        buf_printf(b, "output: CloudWatch Logs at %s; %llu stream(s), %llu request(s), %llu "
                      "retried, %llu event(s) sent, %llu rejected, %llu drop marker(s)\n",
                   cw_client_url(u->cw) ? cw_client_url(u->cw) : "(no region yet)",
                   (unsigned long long)u->st.streams, (unsigned long long)u->st.requests, (unsigned long long)u->st.retries,
                   (unsigned long long)u->st.events_sent, (unsigned long long)u->st.rejected,
                   (unsigned long long)u->st.markers);
        for (int i = 0; i < LANES; i++) {
            const pacer *p = &u->lanes[i].p;
            if (!p->sent)
                continue;
            buf_printf(b, "  %-18s %llu sent, %llu throttled, ", lane_op[i],
                       (unsigned long long)p->sent, (unsigned long long)p->throttled);
            if (p->rate > 0)
                buf_printf(b, "paced at %.2f/s\n", p->rate);
            else
                buf_printf(b, "not paced\n");
        }
        buf_printf(b, "  %-32s %8s %10s %10s  %s\n", "STATE", "QUEUED", "SENT", "FAILURES",
                   "GROUP / STREAM");
        for (const upstream *s = u->all; s; s = s->next) {
            size_t queued = s->fill->n;
            for (const batch *q = s->queue; q; q = q->next)
                queued += q->n;
            buf_printf(b, "  %-32s %8zu %10llu %10llu  %s / %s\n", step_name(s), queued,
                       (unsigned long long)s->sent, (unsigned long long)s->failures, s->group,
                       s->stream);
            if (s->last_error[0])
                buf_printf(b, "    last error: %s\n", s->last_error);
        }
        return;
    }
    buf_printf(b, "# HELP cwlogd_requests_total CloudWatch Logs requests sent.\n"
                  "# TYPE cwlogd_requests_total counter\ncwlogd_requests_total %llu\n"
                  "# HELP cwlogd_retries_total Requests retried after a failure.\n"
                  "# TYPE cwlogd_retries_total counter\ncwlogd_retries_total %llu\n",
               (unsigned long long)u->st.requests, (unsigned long long)u->st.retries);
    buf_printf(b, "# HELP cwlogd_throttled_total Requests the service throttled, per operation.\n"
                  "# TYPE cwlogd_throttled_total counter\n");
    for (int i = 0; i < LANES; i++)
        buf_printf(b, "cwlogd_throttled_total{op=\"%s\"} %llu\n", lane_op[i],
                   (unsigned long long)u->lanes[i].p.throttled);
    buf_printf(b, "# HELP cwlogd_pace_rate Requests/s allowed per operation (0: not paced).\n"
                  "# TYPE cwlogd_pace_rate gauge\n");
    for (int i = 0; i < LANES; i++)
        buf_printf(b, "cwlogd_pace_rate{op=\"%s\"} %.3f\n", lane_op[i], u->lanes[i].p.rate);
    buf_printf(b, "# HELP cwlogd_streams Log streams the uploader keeps state for.\n"
                  "# TYPE cwlogd_streams gauge\ncwlogd_streams %llu\n",
               (unsigned long long)u->st.streams);
    buf_printf(b, "# HELP cwlogd_stream_events_sent_total Events accepted per log stream.\n"
                  "# TYPE cwlogd_stream_events_sent_total counter\n");
    for (const upstream *s = u->all; s; s = s->next) {
        buf_printf(b, "cwlogd_stream_events_sent_total{group=\"");
        control_prom_label(b, s->group);
        buf_printf(b, "\",stream=\"");
        control_prom_label(b, s->stream);
        buf_printf(b, "\"} %llu\n", (unsigned long long)s->sent);
    }
}

static void uploader_send_all(output *o)
{
    uploader *u = (uploader *)o;
    announce_idle_drops(u);
    for (upstream *s = u->all; s; s = s->next)
        if (!s->queue)
            seal(s);
}

void uploader_wake(output *o)
{
    uploader *u = (uploader *)o;
    for (upstream *s = u->all; s; s = s->next)
        if (s->waiting && !s->busy)
            send_next(s);
}

static void uploader_free(output *o)
{
    uploader *u = (uploader *)o;
    while (u->all) {
        upstream *s = u->all;
        u->all = s->next;
        stream_free(s);
    }
    smap_clear(&u->streams);
    loop_cancel_deferred(u->a->loop, u);
    while (u->groups_all) {
        ugroup *g = u->groups_all;
        u->groups_all = g->next;
        cw_cancel(g->describe);
        buf_free(&g->req);
        free(g->name);
        free(g);
    }
    smap_clear(&u->groups);
    for (int i = 0; i < LANES; i++)
        loop_timer_free(u->lanes[i].timer);
    loop_timer_free(u->age);
    loop_timer_free(u->sweep);
    free(u);
}

uint64_t uploader_max_event(const output *o)
{
    return ((const uploader *)o)->max_event;
}

const uploader_stats *uploader_get_stats(const output *o)
{
    return &((const uploader *)o)->st;
}

static const output_ops uploader_ops = {
    .kick = uploader_kick,
    .idle = uploader_idle,
    .in_flight = uploader_in_flight,
    .report = uploader_report,
    .flush = uploader_flush,
    .send_all = uploader_send_all,
    .free = uploader_free,
};

output *uploader_new(agent *a, cw_client *cw)
{
    uploader *u = xcalloc(1, sizeof *u);
    u->base.ops = &uploader_ops;
    u->a = a;
    u->cw = cw;
    u->max_event = a->cfg->max_event_size;
    u->age = loop_timer_new(a->loop, age_cb, u);
    u->idle_ms = STREAM_IDLE_MS;
    u->rl_body = (log_ratelimit){.interval_ms = 60000, .burst = 3};
    u->rl_throttle = (log_ratelimit){.interval_ms = 10000, .burst = 1};
    /* Each agent its own jitter: agents of a fleet must not pace in step. */
    uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)now_realtime_ms();
    srandom((unsigned)(seed ^ seed >> 32)); /* the retry backoff's jitter, too */
    for (int i = 0; i < LANES; i++) {
        pacer_init(&u->lanes[i].p, i == LANE_STREAM ? &pacer_create_stream : &lane_params[i], seed + (uint64_t)i * 0x632be59bd9b4e019ull);
        u->lanes[i].timer = loop_timer_new(a->loop, lane_cb, &u->lanes[i]);
    }
    const char *idle = getenv("CWLOGD_IDLE_FORGET_MS");
    if (idle && *idle)
        u->idle_ms = strtoll(idle, NULL, 10);
    u->sweep = loop_timer_new(a->loop, sweep_cb, u);
    int64_t every = MIN((int64_t)STREAM_SWEEP_MS, MAX(u->idle_ms, (int64_t)100));
    loop_timer_arm(u->sweep, (uint64_t)every, (uint64_t)every);
    return &u->base;
}
