/* output.c: the dry-run output: records printed as JSON lines, acknowledged
 * as soon as they are written. The escaped message bytes are copied as they
 * are, as they will be into a PutLogEvents body. */
#include "output.h"

#include "agent.h"
#include "jsonstr.h"
#include "source.h"

#define OUT_BUF (256 * 1024)

typedef struct dryrun {
    output base;
    agent *a;
    FILE *f;
    buf b;
    int error;
} dryrun;

static const output_ops dryrun_ops;

output *output_dryrun_new(agent *a, FILE *f)
{
    dryrun *o = xcalloc(1, sizeof *o);
    o->base.ops = &dryrun_ops;
    o->a = a;
    o->f = f;
    buf_reserve(&o->b, OUT_BUF);
    return &o->base;
}

static int dryrun_flush(output *base)
{
    dryrun *o = (dryrun *)base;
    if (o->b.len && !o->error) {
        if (fwrite(o->b.data, 1, o->b.len, o->f) != o->b.len || fflush(o->f) != 0) {
            o->error = errno ? errno : EIO;
            log_error_errno(o->error, "dry-run output: write failed: %m");
        }
    }
    o->b.len = 0;
    return -o->error;
}

static const char *prefix_of(tailfile *f)
{
    if (!f->out_prefix) {
        buf p = {0};
        size_t u;
        buf_append(&p, "{\"group\":\"", 10);
        jsonstr_escape(&p, f->group, strlen(f->group), &u);
        buf_append(&p, "\",\"stream\":\"", 12);
        jsonstr_escape(&p, f->stream, strlen(f->stream), &u);
        buf_append(&p, "\",\"timestamp\":", 14);
        buf_appendc(&p, 0);
        f->out_prefix = p.data;
    }
    return f->out_prefix;
}

static void append_i64(buf *b, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    bool neg = v < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        tmp[n++] = '-';
    buf_reserve(b, n);
    while (n)
        b->data[b->len++] = tmp[--n];
}

static void dryrun_free(output *base)
{
    dryrun *o = (dryrun *)base;
    dryrun_flush(base);
    buf_free(&o->b);
    free(o);
}

static void dryrun_drain(dryrun *o, source *s, ring *rg)
{
    const record *r;
    while ((r = ring_peek(rg))) {
        tailfile *f = r->owner;
        const char *prefix = prefix_of(f);
        buf_append(&o->b, prefix, strlen(prefix));
        append_i64(&o->b, r->timestamp_ms);
        buf_append(&o->b, ",\"message\":\"", 12);
        buf_append(&o->b, r->msg, r->esc_len);
        buf_append(&o->b, "\"}\n", 3);
        uint64_t end = r->end_offset;
        int64_t ts = r->timestamp_ms;
        ring_pop(rg); /* may free the record (a large one has a block of its own) */
        s->st.delivered++;
        f->delivered_ts = ts;
        tail_record_done(f, end, true);
        if (o->b.len >= OUT_BUF)
            dryrun_flush(&o->base);
    }
}

static void dryrun_kick(output *base, source *s)
{
    for (size_t i = 0; i < source_n_rings(s); i++)
        dryrun_drain((dryrun *)base, s, source_ring_at(s, i));
    source_resume(s);
}

static bool dryrun_idle(const output *o)
{
    return true; /* printing is synchronous */
}

static size_t dryrun_in_flight(const output *o)
{
    return 0;
}

static void dryrun_send_all(output *o)
{
}

static void dryrun_report(const output *o, buf *b, bool prometheus)
{
    if (!prometheus)
        buf_printf(b, "output: dry run (records printed on stdout)\n");
}

static const output_ops dryrun_ops = {
    .kick = dryrun_kick,
    .idle = dryrun_idle,
    .in_flight = dryrun_in_flight,
    .report = dryrun_report,
    .flush = dryrun_flush,
    .send_all = dryrun_send_all,
    .free = dryrun_free,
};
