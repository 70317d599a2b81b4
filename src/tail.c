/* tail.c: one file being read: lines to records (json-file, CRI or plain),
 * partial joins, splitting at the event size limit, and the offsets that make
 * checkpoints exact (only what is delivered, dropped or skipped is passed). */
#include <fcntl.h>
#include <sys/stat.h>

#include "agent.h"
#include "cri.h"
#include "jsonfile.h"
#include "jsonstr.h"
#include "multiline.h"
#include "rotation.h"
#include "source.h"
#include "timeparse.h"

#define READ_CHUNK (128 * 1024)
/* A json-file or CRI line longer than this is not something Docker or
 * containerd wrote (they split at 16 KiB): it is skipped as corrupt. */
#define STRUCTURED_LINE_MAX (1024 * 1024)

static buf scratch;  /* escape/repair output; one thread */
static buf unescaped; /* multiline matching */

static void release_carried(pending *p, uint64_t end);

tailfile *tail_new(source *s, const char *path, int fd, const struct stat *st)
{
    tailfile *f = xcalloc(1, sizeof *f);
    f->src = s;
    f->path = xstrdup(path);
    f->fd = fd;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->state = TAIL_ACTIVE;
    f->last_growth_ms = now_monotonic_ms();
    f->size_seen = (uint64_t)st->st_size;
    if (fd >= 0)
        tail_read_fingerprint(fd, f->fp, &f->fp_len);
    return f;
}

void tail_free(tailfile *f)
{
    if (!f)
        return;
    if (f->gz)
        gzclose(f->gz);
    else if (f->fd >= 0)
        close(f->fd);
    buf_free(&f->rbuf);
    for (int i = 0; i < 2; i++) {
        buf_free(&f->pend[i].esc);
        buf_free(&f->ml[i].esc);
    }
    free(f->path);
    free(f->real);
    free(f->group);
    free(f->stream);
    free(f->out_prefix);
    free(f);
}

void tail_read_fingerprint(int fd, unsigned char *fp, size_t *len)
{
    static unsigned char head[ROTATION_FP_SCAN]; /* one thread */
    ssize_t n = pread(fd, head, sizeof head, 0);
    rotation_fingerprint(head, n > 0 ? (size_t)n : 0, fp, len);
}

void tail_refresh_fingerprint(tailfile *f)
{
    if (f->fp_len >= CP_FINGERPRINT_MAX || f->fd < 0 || f->gz)
        return;
    size_t had = f->fp_len;
    tail_read_fingerprint(f->fd, f->fp, &f->fp_len);
    if (f->fp_len != had)
        agent_mark_dirty(f->src->a, f); /* its row learns which file it is */
}

bool tail_fingerprint_matches(const unsigned char *stored, size_t stored_len,
                              const unsigned char *cur, size_t cur_len)
{
    /* The stored fingerprint was taken when the file may have been shorter:
     * the file is the same when it starts with those bytes. */
    return cur_len >= stored_len && memcmp(stored, cur, stored_len) == 0;
}

static uint64_t max_event(const tailfile *f)
{
    return f->src->a->cfg->max_event_size;
}

void tail_seek(tailfile *f, uint64_t physical)
{
    if (f->gz)
        gzseek(f->gz, (z_off_t)physical, SEEK_SET);
    else if (f->fd >= 0)
        lseek(f->fd, (off_t)physical, SEEK_SET);
    f->rbuf.len = 0;
    f->read_off = f->produced = f->acked = f->base + physical;
}

static void advance_acked(tailfile *f, uint64_t to)
{
    if (to > f->acked) {
        f->acked = to;
        agent_mark_dirty(f->src->a, f);
    }
}

static void settle(tailfile *f)
{
    if (f->in_ring + f->in_flight == 0)
        advance_acked(f, f->produced);
}

void tail_record_taken(tailfile *f)
{
    f->in_ring--;
    f->in_flight++;
}

void tail_record_done(tailfile *f, uint64_t end_offset, bool from_ring)
{
    if (from_ring)
        f->in_ring--;
    else
        f->in_flight--;
    /* Records of a file complete in order, except that one evicted from the
     * ring may complete while older ones of the same file are in flight. */
    if (!from_ring || f->in_flight == 0)
        advance_acked(f, end_offset);
    settle(f);
}

void tail_record_dropped_newest(tailfile *f)
{
    f->in_ring--; /* push_one counted it before the push */
    settle(f);
}

uint64_t tail_checkpoint_offset(const tailfile *f)
{
    uint64_t off = f->acked;
    for (int i = 0; i < 2; i++) {
        if (f->pend[i].active && f->pend[i].start < off)
            off = f->pend[i].start;
        if (f->ml[i].active && f->ml[i].start < off)
            off = f->ml[i].start;
    }
    if (f->held && f->held_start < off)
        off = f->held_start;
    return off >= f->base ? off - f->base : 0;
}

bool tail_fully_acked(const tailfile *f)
{
    return f->in_ring + f->in_flight == 0 && !f->pend[0].active && !f->pend[1].active &&
           !f->ml[0].active && !f->ml[1].active && !f->held;
}

/* A line that produces no record (corrupt, empty) is passed over. */
static void skip_to(tailfile *f, uint64_t end)
{
    if (end > f->produced)
        f->produced = end;
    settle(f);
}

static int push_one(tailfile *f, int64_t ts, const char *esc, size_t len, size_t utf8,
                    uint64_t end)
{
    source *s = f->src;
    uint64_t prev = f->produced;
    if (end > f->produced)
        f->produced = end;
    f->in_ring++; /* before the push: a dropped newest record is released by on_drop */
    ring *rg = source_ring_of(f);
    ring_push_result r = ring_push(rg, ts, f, end, esc, (uint32_t)len, (uint32_t)utf8);
    if (r == RING_FULL) {
        f->in_ring--;
        f->produced = prev;
        if (rg == s->ring) {
            s->blocked = true;
        } else { /* only this container waits */
            f->ctr->blocked = true;
            s->cblocked = true;
        }
        return -EAGAIN;
    }
    if (r == RING_PUSHED) {
        s->st.events++;
        s->st.bytes += utf8;
        agent_records_ready(s->a, s);
    }
    return 0;
}

/* Push one event, split into pieces of at most max_event_size. Pieces before
 * the last end at `line_start`, so a restart resumes with the whole line. */
static int push_event(tailfile *f, int64_t ts, const char *esc, size_t len, size_t utf8,
                      uint64_t end, uint64_t line_start)
{
    uint64_t max = max_event(f);
    if (utf8 <= max && f->cut_done == 0)
        return push_one(f, ts, esc, len, utf8, end);
    while (f->cut_done < len) {
        size_t piece_utf8;
        size_t cut = jsonstr_cut(esc + f->cut_done, len - f->cut_done, max, &piece_utf8);
        if (cut == 0)
            cut = len - f->cut_done; /* cannot happen with a limit of 1k or more */
        bool last = f->cut_done + cut == len;
        int r = push_one(f, ts, esc + f->cut_done, cut, piece_utf8, last ? end : line_start);
        if (r < 0)
            return r;
        if (!last)
            f->src->st.split_events++;
        f->cut_done += cut;
    }
    f->cut_done = 0;
    return 0;
}

/* ---- multiline: complete events are joined until a start line ---- */

static int ml_flush(tailfile *f, int slot)
{
    pending *m = &f->ml[slot];
    if (!m->active)
        return 0;
    if (m->utf8 > 0) {
        int r = push_event(f, m->ts, m->esc.data, m->esc.len, m->utf8, m->end, m->start);
        if (r < 0)
            return r;
    }
    if (m->carried_from) {
        /* The previous rotation may let go once this file delivers the event. */
        m->carried_from->held_release_end = m->end;
        m->carried_from = NULL;
    }
    m->active = false;
    m->esc.len = 0;
    m->utf8 = 0;
    settle(f);
    return 0;
}

static int ml_feed(tailfile *f, int slot, int64_t ts, const char *esc, size_t len, size_t utf8,
                   uint64_t ev_start, uint64_t end)
{
    pending *m = &f->ml[slot];
    unescaped.len = 0;
    jsonstr_unescape(&unescaped, esc, len);
    buf_appendc(&unescaped, 0); /* regexec implementations may look for it */
    unescaped.len--;
    bool starts = multiline_starts(&f->src->ml_re, unescaped.data ? unescaped.data : "",
                                   unescaped.len);
    if (m->active && (starts || m->utf8 + 1 + utf8 > max_event(f))) {
        int r = ml_flush(f, slot); /* nothing changes when it cannot */
        if (r < 0)
            return r;
    }
    if (!m->active) {
        m->active = true;
        f->src->joins_open = true;
        m->start = ev_start;
        m->ts = ts;
        m->esc.len = 0;
        m->utf8 = 0;
    } else {
        buf_append(&m->esc, "\\n", 2); /* the lines are joined by a newline */
        m->utf8 += 1;
    }
    buf_append(&m->esc, esc, len);
    m->utf8 += utf8;
    m->end = end;
    return 0;
}

/* A complete event (one line, or joined partials): to the multiline stage
 * when the source has one, else to the ring. */
static int deliver(tailfile *f, int slot, int64_t ts, const char *esc, size_t len, size_t utf8,
                   uint64_t ev_start, uint64_t end)
{
    if (f->src->multiline)
        return ml_feed(f, slot, ts, esc, len, utf8, ev_start, end);
    if (utf8 == 0) { /* CloudWatch refuses empty messages */
        skip_to(f, end);
        return 0;
    }
    return push_event(f, ts, esc, len, utf8, end, ev_start);
}

static int flush_pending(tailfile *f, int slot, uint64_t end)
{
    pending *p = &f->pend[slot];
    if (!p->active)
        return 0;
    int r = deliver(f, slot, p->ts, p->esc.data, p->esc.len, p->utf8, p->start, end);
    if (r < 0)
        return r;
    release_carried(p, end);
    p->active = false;
    p->esc.len = 0;
    p->utf8 = 0;
    settle(f);
    return 0;
}

/* One piece of an event: a whole line's message, or a partial to be joined. */
static int emit(tailfile *f, int slot, int64_t ts, const char *esc, size_t len, size_t utf8,
                bool partial, uint64_t line_start, uint64_t line_end)
{
    pending *p = &f->pend[slot];
    if (!p->active) {
        if (!partial)
            return deliver(f, slot, ts, esc, len, utf8, line_start, line_end);
        *p = (pending){.active = true, .start = line_start, .ts = ts, .esc = p->esc};
        f->src->joins_open = true;
        p->esc.len = 0;
    } else if (p->utf8 + utf8 > max_event(f)) {
        /* The joined event would pass the limit: ship what is joined so far
         * (after any multiline event before it, to keep the order). */
        int r = ml_flush(f, slot);
        if (r == 0)
            r = push_event(f, p->ts, p->esc.data, p->esc.len, p->utf8, line_start, p->start);
        if (r < 0)
            return r;
        p->esc.len = 0;
        p->utf8 = 0;
        p->start = line_start;
        p->ts = ts;
    }
    size_t before = p->esc.len;
    buf_append(&p->esc, esc, len);
    p->utf8 += utf8;
    if (partial)
        return 0;
    int r = deliver(f, slot, p->ts, p->esc.data, p->esc.len, p->utf8, p->start, line_end);
    if (r < 0) { /* undo: the line is parsed again when there is room */
        p->esc.len = before;
        p->utf8 -= utf8;
        return r;
    }
    release_carried(p, line_end);
    p->active = false;
    p->esc.len = 0;
    p->utf8 = 0;
    if (r == 0)
        skip_to(f, line_end);
    return 0;
}

static void corrupt_line(tailfile *f, uint64_t line_start, uint64_t line_end, const char *why)
{
    source *s = f->src;
    s->st.corrupt_lines++;
    snprintf(s->last_error, sizeof s->last_error, "%s: skipped %s at offset %llu", f->path, why,
             (unsigned long long)(line_start - f->base));
    uint64_t suppressed;
    if (log_ratelimit_ok(&s->corrupt_rl, &suppressed))
        log_warning("source %s: %s: skipping %s at offset %llu (%llu bytes)%s", s->name, f->path,
                    why, (unsigned long long)(line_start - f->base),
                    (unsigned long long)(line_end - line_start),
                    suppressed ? " (and more like it, not logged)" : "");
    skip_to(f, line_end);
}

static int handle_docker(tailfile *f, const char *line, size_t len, uint64_t start, uint64_t end)
{
    jsonfile_entry e;
    jsonfile_result jr = jsonfile_parse_line(line, len, &e);
    if (jr == JSONFILE_CORRUPT) {
        corrupt_line(f, start, end, "a corrupt json-file line");
        return 0;
    }
    const char *esc = e.log;
    size_t esc_len = e.log_len, utf8 = e.utf8_len;
    if (jr == JSONFILE_NEEDS_REPAIR) {
        scratch.len = 0;
        jsonstr_repair(&scratch, e.log, e.log_len, &utf8);
        esc = scratch.data;
        esc_len = scratch.len;
        f->src->st.repaired++;
    }
    int64_t ts = e.time_ms >= 0 ? e.time_ms : now_realtime_ms();
    return emit(f, e.stream == 2, ts, esc, esc_len, utf8, e.partial, start, end);
}

static int handle_cri(tailfile *f, const char *line, size_t len, uint64_t start, uint64_t end)
{
    cri_entry e;
    if (cri_parse_line(line, len, &e) < 0) {
        corrupt_line(f, start, end, "a malformed CRI line");
        return 0;
    }
    size_t utf8;
    scratch.len = 0;
    if (jsonstr_escape(&scratch, e.msg, e.msg_len, &utf8) > 0)
        f->src->st.repaired++;
    return emit(f, e.stream == 2, e.time_ms, scratch.data, scratch.len, utf8, e.partial, start,
                end);
}

static int handle_plain(tailfile *f, const char *line, size_t len, uint64_t start, uint64_t end)
{
    size_t utf8;
    scratch.len = 0;
    if (jsonstr_escape(&scratch, line, len, &utf8) > 0)
        f->src->st.repaired++;
    /* The time the line was read, or the one at its start by time_format. */
    int64_t now = now_realtime_ms(), ts;
    const char *fmt = f->src->cfg->time_format;
    if (!fmt || timeparse_format_ms(fmt, line, len, now, &ts) < 0)
        ts = now;
    return emit(f, 0, ts, scratch.data, scratch.len, utf8, false, start, end);
}

static int handle_line(tailfile *f, const char *line, size_t len, uint64_t start, uint64_t end)
{
    switch (f->src->cfg->type) {
    case SOURCE_DOCKER:
        return handle_docker(f, line, len, start, end);
    case SOURCE_CRI:
        return handle_cri(f, line, len, start, end);
    default:
        return handle_plain(f, line, len, start, end);
    }
}

/* Longest prefix of n bytes not ending inside a UTF-8 sequence. */
static size_t utf8_boundary(const char *p, size_t n)
{
    size_t k = n;
    for (int i = 0; i < 3 && k > 0; i++) {
        unsigned char c = (unsigned char)p[k - 1];
        if (c < 0x80)
            return n;
        if (c >= 0xC0) { /* lead byte: is its sequence complete within n? */
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            return (n - (k - 1) >= need) ? n : k - 1;
        }
        k--;
    }
    return n;
}

static int parse(tailfile *f)
{
    const char *d = f->rbuf.data;
    size_t len = f->rbuf.len, pos = 0;
    uint64_t buf_start = f->read_off - len;
    int r = 0;
    while (pos < len) {
        const char *nl = memchr(d + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t ll = (size_t)(nl - (d + pos));
        uint64_t start = buf_start + pos, end = start + ll + 1;
        if (f->skipping) {
            f->skipping = false;
            skip_to(f, end);
        } else if ((r = handle_line(f, d + pos, ll, start, end)) < 0) {
            break;
        }
        pos += ll + 1;
    }
    if (r == 0 && !f->skipping) {
        size_t rest = len - pos;
        bool plain = f->src->cfg->type == SOURCE_FILE;
        size_t cap = plain ? max_event(f) : STRUCTURED_LINE_MAX;
        if (rest > cap) {
            if (plain) {
                /* A line longer than an event: ship it in pieces as it comes. */
                size_t n = utf8_boundary(d + pos, cap);
                uint64_t start = buf_start + pos;
                r = handle_plain(f, d + pos, n, start, start + n);
                if (r == 0)
                    pos += n;
            } else {
                corrupt_line(f, buf_start + pos, buf_start + len, "an overlong line");
                f->skipping = true;
                pos = len;
            }
        }
    } else if (r == 0 && f->skipping) {
        pos = len;
    }
    buf_consume(&f->rbuf, pos);
    return r;
}

int tail_parse_buffered(tailfile *f)
{
    return f->rbuf.len ? parse(f) : 0;
}

/* A file at its end may stay idle for days: give back its read buffer (a
 * READ_CHUNK once it has read one) and the join buffers of events that are
 * complete, or 1,000 quiet containers keep 128 KiB or more each. Busy files
 * get them back from the heap at the next read. */
static void release_buffers(tailfile *f)
{
    buf_compact(&f->rbuf);
    for (int i = 0; i < 2; i++) {
        if (!f->pend[i].active)
            buf_free(&f->pend[i].esc);
        if (!f->ml[i].active)
            buf_free(&f->ml[i].esc);
    }
}

/* Read past the largest size the file ever reported: it grew, or it is not
 * what it says (a /proc file reports 0 and returns data). Taking such a file
 * as truncated at each end would read it again forever. */
static void check_size(tailfile *f)
{
    struct stat st;
    uint64_t pos = f->read_off - f->base;
    if (f->gz || f->fd < 0 || f->size_untrusted || pos <= f->size_seen || fstat(f->fd, &st) < 0)
        return;
    f->size_seen = MAX(f->size_seen, (uint64_t)st.st_size);
    if ((uint64_t)st.st_size >= pos)
        return;
    f->size_untrusted = true;
    log_warning("source %s: %s reports %llu bytes but returned %llu: not a regular log file; "
                "it is read once and never again from its start",
                f->src->name, f->path, (unsigned long long)st.st_size, (unsigned long long)pos);
}

int tail_read(tailfile *f, size_t budget)
{
    if (f->state == TAIL_FINISHED)
        return 0;
    int r = tail_parse_buffered(f);
    if (r < 0)
        return r;
    size_t done = 0;
    while (done < budget) {
        buf_reserve(&f->rbuf, READ_CHUNK);
        ssize_t n;
        if (f->gz) {
            int g = gzread(f->gz, f->rbuf.data + f->rbuf.len, READ_CHUNK);
            if (g < 0) {
                int zerr;
                log_error("source %s: %s: cannot decompress: %s; the rest of this file is lost",
                          f->src->name, f->path, gzerror(f->gz, &zerr));
                f->src->st.gaps++;
                g = 0;
            }
            n = g;
        } else {
            n = read(f->fd, f->rbuf.data + f->rbuf.len, READ_CHUNK);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error_errno(errno, "source %s: %s: read failed: %m", f->src->name, f->path);
            f->eof = true;
            return 0;
        }
        if (n == 0) {
            f->eof = true;
            release_buffers(f);
            return 0;
        }
        f->eof = false;
        f->rbuf.len += (size_t)n;
        f->read_off += (uint64_t)n;
        f->last_growth_ms = now_monotonic_ms();
        done += (size_t)n;
        tail_refresh_fingerprint(f);
        check_size(f);
        r = parse(f);
        if (r < 0)
            return r;
    }
    return 1;
}

int tail_flush_partials(tailfile *f)
{
    uint64_t end = f->read_off - f->rbuf.len;
    for (int i = 0; i < 2; i++) {
        int r = flush_pending(f, i, end);
        if (r == 0)
            r = ml_flush(f, i);
        if (r < 0)
            return r;
    }
    return 0;
}

void tail_check_rotation(tailfile *f)
{
    if (f->state != TAIL_ACTIVE || f->gz || f->fd < 0)
        return;
    struct stat st;
    if (!f->size_untrusted && fstat(f->fd, &st) == 0 &&
        (uint64_t)st.st_size < f->read_off - f->base) {
        log_info("source %s: %s was truncated (copy-truncate?): reading it again from the start",
                 f->src->name, f->path);
        for (int i = 0; i < 2; i++) {
            f->pend[i].active = f->ml[i].active = false;
            f->pend[i].esc.len = f->ml[i].esc.len = 0;
            f->pend[i].utf8 = f->ml[i].utf8 = 0;
        }
        f->cut_done = 0;
        f->skipping = false;
        f->base = f->read_off;
        f->size_seen = (uint64_t)st.st_size;
        f->rbuf.len = 0;
        if (f->produced < f->base)
            f->produced = f->base;
        lseek(f->fd, 0, SEEK_SET);
        tail_read_fingerprint(f->fd, f->fp, &f->fp_len);
        settle(f);
        agent_mark_dirty(f->src->a, f);
        source_mark_ready(f->src, f);
        return;
    }
    if (stat(f->path, &st) < 0 || (uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino) {
        log_debug("source %s: %s was rotated or removed", f->src->name, f->path);
        f->state = TAIL_ROTATED;
        f->rotated_ms = now_monotonic_ms();
        f->src->rotations_open = true;
        if (smap_get(&f->src->by_path, f->path) == f)
            smap_remove(&f->src->by_path, f->path);
        agent_schedule_rescan(f->src->a, f->src);
    }
}

/* Hand an event still open at the end of a rotated file (m) to the next file
 * (n): this file's checkpoint stays at the event's start until the next one
 * has delivered it. */
static void carry(tailfile *f, tailfile *next, pending *m, pending *n)
{
    if (next->acked > next->base || next->after_done) {
        /* The next file resumes past its start, or the file that came next
         * was read to its end before (a restart): the event was delivered
         * from there whole, before this file's hold was let go. Joined with
         * the next file read, it would take that file's first line for its
         * rest. */
        m->active = false;
        m->esc.len = 0;
        m->utf8 = 0;
        return;
    }
    if (!f->held || m->start < f->held_start)
        f->held_start = m->start;
    f->held = true;
    f->held_by = next;
    f->src->joins_open = f->src->rotations_open = true;
    f->held_release_end = UINT64_MAX;
    buf tmp = n->esc;
    *n = *m;
    n->start = n->end = next->acked;
    n->carried_from = f;
    m->esc = tmp;
    m->esc.len = 0;
    m->active = false;
    m->utf8 = 0;
}

static void release_carried(pending *p, uint64_t end)
{
    if (p->carried_from) {
        p->carried_from->held_release_end = end;
        p->carried_from = NULL;
    }
}

static tailfile *next_rotation(tailfile *f)
{
    tailfile *next = NULL;
    for (tailfile *g = f->src->files; g; g = g->next)
        if (g->wait_for == f)
            next = g;
    return next;
}

/* A json-file line Docker split into 16 KiB partial entries may be cut by a
 * rotation: its first entries end this file, the rest start the next one.
 * Join them there instead of shipping two pieces. */
static void carry_partials(tailfile *f)
{
    tailfile *next = next_rotation(f);
    if (!next)
        return;
    for (int i = 0; i < 2; i++)
        if (f->pend[i].active && !next->pend[i].active && !f->ml[i].active)
            carry(f, next, &f->pend[i], &next->pend[i]);
}

/* A multiline event still open at the end of a rotated file continues at the
 * start of the next one: hand it over instead of cutting it in two. */
static void carry_multiline(tailfile *f)
{
    if (!f->src->multiline)
        return;
    tailfile *next = next_rotation(f);
    if (!next)
        return;
    for (int i = 0; i < 2; i++) {
        pending *m = &f->ml[i], *n = &next->ml[i];
        if (!m->active || n->active || f->pend[i].active)
            continue;
        carry(f, next, m, n);
    }
}

int tail_finish(tailfile *f)
{
    carry_multiline(f);
    carry_partials(f);
    int r = tail_flush_partials(f);
    if (r < 0)
        return r;
    if (f->rbuf.len > 0 && !f->skipping) {
        /* The file ended without a newline and nobody will write to it again. */
        uint64_t start = f->read_off - f->rbuf.len;
        r = f->src->cfg->type == SOURCE_FILE
                ? handle_plain(f, f->rbuf.data, f->rbuf.len, start, f->read_off)
                : handle_line(f, f->rbuf.data, f->rbuf.len, start, f->read_off);
        if (r < 0)
            return r;
        f->rbuf.len = 0;
        r = tail_flush_partials(f);
        if (r < 0)
            return r;
    }
    f->rbuf.len = 0;
    skip_to(f, f->read_off);
    /* The descriptor stays open until the file is released (acknowledged,
     * its row marked done): while it is open its inode cannot be given to a
     * new file, which would share its identity, its row and its place in
     * the maps (Docker's next live file often gets the inode of the .1 its
     * compression removed). */
    f->state = TAIL_FINISHED;
    release_buffers(f); /* it may wait for acknowledgements a while */
    return 0;
}

int tail_emit_raw(tailfile *f, int64_t ts, const char *raw, size_t len, bool partial,
                  uint64_t start, uint64_t end)
{
    size_t utf8;
    scratch.len = 0;
    if (jsonstr_escape(&scratch, raw, len, &utf8) > 0)
        f->src->st.repaired++;
    return emit(f, 0, ts, scratch.data ? scratch.data : "", scratch.len, utf8, partial, start,
                end);
}

void tail_skip(tailfile *f, uint64_t end)
{
    skip_to(f, end);
}
