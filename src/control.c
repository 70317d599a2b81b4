/* control.c: a unix stream socket on the event loop. A client writes one
 * command line ("status" or "metrics") and reads the answer until the agent
 * closes the connection. Answers are built in memory from the live state. */
#include "control.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "agent.h"
#include "output.h"
#include "source.h"

#define CLIENT_TIMEOUT_MS 2000

struct control {
    agent *a;
    int fd;
    char *path;
};

typedef struct conn {
    control *c;
    int fd;
    char line[64];
    size_t len;
    loop_timer *timeout;
} conn;

static const char *type_name(const source *s)
{
    return source_type_to_string(s->cfg->type);
}

static uint64_t file_size(const tailfile *f)
{
    struct stat st;
    if (f->fd >= 0 && fstat(f->fd, &st) == 0)
        return (uint64_t)st.st_size;
    return f->read_off - f->base;
}

static const char *state_name(const tailfile *f)
{
    return f->state == TAIL_ACTIVE ? "active" : f->state == TAIL_ROTATED ? "rotated" : "finished";
}

/* A source's buffer: its ring and its containers' own. */
static uint64_t m_ring(const source *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < source_n_rings(s); i++)
        n += ring_bytes(source_ring_at(s, i));
    return n;
}

static uint64_t m_ring_limit(const source *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < source_n_rings(s); i++)
        n += ring_limit(source_ring_at(s, i));
    return n;
}

void control_status(agent *a, buf *out)
{
    int64_t now = now_realtime_ms();
    buf_printf(out, "cwlogd %s, %zu source(s)%s\n\n", CWLOGD_VERSION, a->n_sources,
               a->stopping ? ", stopping" : "");
    for (size_t i = 0; i < a->n_sources; i++) {
        source *s = a->sources[i];
        buf_printf(out,
                   "source %s (%s, %s): buffer %llu/%llu bytes (%llu events); read %llu, "
                   "sent %llu, dropped %llu (%llu bytes), rejected %llu, corrupt lines %llu\n",
                   s->name, type_name(s), s->cfg->mode == MODE_BLOCKING ? "blocking" : "non-blocking",
                   (unsigned long long)m_ring(s), (unsigned long long)m_ring_limit(s),
                   (unsigned long long)source_ring_count(s), (unsigned long long)s->st.events,
                   (unsigned long long)s->st.delivered, (unsigned long long)s->st.dropped_events,
                   (unsigned long long)s->st.dropped_bytes, (unsigned long long)s->st.rejected,
                   (unsigned long long)s->st.corrupt_lines);
        if (s->n_crings)
            buf_printf(out, "  %zu container(s) with their own log options and buffer\n",
                       s->n_crings);
        if (s->last_error[0]) {
            _cleanup_free_ char *e = xstrescape(s->last_error);
            buf_printf(out, "  last error: %s\n", e);
        }
        buf_printf(out, "  %-8s %14s %14s %12s %8s  %s\n", "STATE", "OFFSET", "SIZE", "LAG_BYTES",
                   "LAG_S", "FILE -> GROUP / STREAM");
        for (tailfile *f = s->files; f; f = f->next) {
            uint64_t off = tail_checkpoint_offset(f), size = file_size(f);
            uint64_t lag = size > off ? size - off : 0;
            int64_t lag_s = lag && f->delivered_ts ? (now - f->delivered_ts) / 1000 : 0;
            /* Names as shown: a newline in a file name would forge a row. */
            _cleanup_free_ char *path = xstrescape(f->path), *group = xstrescape(f->group),
                                *stream = xstrescape(f->stream);
            buf_printf(out, "  %-8s %14llu %14llu %12llu %8lld  %s -> %s / %s\n", state_name(f),
                       (unsigned long long)off, (unsigned long long)size, (unsigned long long)lag,
                       (long long)(lag_s > 0 ? lag_s : 0), path, group, stream);
        }
        buf_appendc(out, '\n');
    }
    output_report(a->out, out, false);
}

void control_prom_label(buf *out, const char *v)
{
    /* The value is the name as shown (control bytes as \xHH, see
     * xstrescape()), then escaped for the text format. */
    _cleanup_free_ char *shown = xstrescape(v);
    for (v = shown; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_appendc(out, '\\');
        buf_appendc(out, *v);
    }
}

static void metric_head(buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void per_source(agent *a, buf *out, const char *name, const char *type, const char *help,
                       uint64_t (*get)(const source *))
{
    metric_head(out, name, type, help);
    for (size_t i = 0; i < a->n_sources; i++) {
        buf_printf(out, "%s{source=\"", name);
        control_prom_label(out, a->sources[i]->name);
        buf_printf(out, "\"} %llu\n", (unsigned long long)get(a->sources[i]));
    }
}

static uint64_t m_read(const source *s) { return s->st.events; }
static uint64_t m_read_bytes(const source *s) { return s->st.bytes; }
static uint64_t m_sent(const source *s) { return s->st.delivered; }
static uint64_t m_dropped(const source *s) { return s->st.dropped_events; }
static uint64_t m_dropped_bytes(const source *s) { return s->st.dropped_bytes; }
static uint64_t m_rejected(const source *s) { return s->st.rejected; }
static uint64_t m_corrupt(const source *s) { return s->st.corrupt_lines; }
static uint64_t m_gaps(const source *s) { return s->st.gaps; }
static uint64_t m_over_max_streams(const source *s) { return s->st.over_max_streams; }

void control_metrics(agent *a, buf *out)
{
    per_source(a, out, "cwlogd_events_read_total", "counter", "Events read from the source.",
               m_read);
    per_source(a, out, "cwlogd_bytes_read_total", "counter",
               "Message bytes (UTF-8) read from the source.", m_read_bytes);
    per_source(a, out, "cwlogd_events_sent_total", "counter",
               "Events delivered (acknowledged by the output).", m_sent);
    per_source(a, out, "cwlogd_events_dropped_total", "counter",
               "Events dropped by a non-blocking buffer.", m_dropped);
    per_source(a, out, "cwlogd_bytes_dropped_total", "counter",
               "Message bytes dropped by a non-blocking buffer.", m_dropped_bytes);
    per_source(a, out, "cwlogd_events_rejected_total", "counter",
               "Events CloudWatch Logs refused for good.", m_rejected);
    per_source(a, out, "cwlogd_corrupt_lines_total", "counter", "Lines skipped as corrupt.",
               m_corrupt);
    per_source(a, out, "cwlogd_gaps_total", "counter",
               "Rotated files that were gone before they could be read.", m_gaps);
    per_source(a, out, "cwlogd_over_max_streams_total", "counter",
               "journald entries not shipped because the source's max_streams was reached.",
               m_over_max_streams);
    per_source(a, out, "cwlogd_buffer_bytes", "gauge", "Bytes held in the source's buffer.",
               m_ring);
    per_source(a, out, "cwlogd_buffer_limit_bytes", "gauge",
               "The source's max_buffer_size (with its containers' own max-buffer-size).",
               m_ring_limit);
    metric_head(out, "cwlogd_file_lag_bytes", "gauge",
                "Bytes of a file not yet delivered (size minus checkpoint).");
    for (size_t i = 0; i < a->n_sources; i++) {
        source *s = a->sources[i];
        for (tailfile *f = s->files; f; f = f->next) {
            uint64_t off = tail_checkpoint_offset(f), size = file_size(f);
            buf_printf(out, "cwlogd_file_lag_bytes{source=\"");
            control_prom_label(out, s->name);
            buf_printf(out, "\",file=\"");
            control_prom_label(out, f->path);
            buf_printf(out, "\",group=\"");
            control_prom_label(out, f->group);
            buf_printf(out, "\",stream=\"");
            control_prom_label(out, f->stream);
            buf_printf(out, "\"} %llu\n", (unsigned long long)(size > off ? size - off : 0));
        }
    }
    metric_head(out, "cwlogd_checkpoint_commits_total", "counter",
                "Transactions that committed acknowledged positions to state.db.");
    buf_printf(out, "cwlogd_checkpoint_commits_total %llu\n",
               (unsigned long long)(a->cp ? checkpoint_commits(a->cp) : 0));
    output_report(a->out, out, true);
}

/* ---- server ---- */

static void conn_close(conn *k)
{
    loop_del_fd(k->c->a->loop, k->fd);
    close(k->fd);
    loop_timer_free(k->timeout);
    free(k);
}

static void conn_timeout(loop *l, void *userdata)
{
    conn_close(userdata);
}

static void answer(conn *k)
{
    buf out = {0};
    char *cmd = k->line;
    cmd[strcspn(cmd, "\r\n")] = 0;
    if (strcmp(cmd, "status") == 0)
        control_status(k->c->a, &out);
    else if (strcmp(cmd, "metrics") == 0)
        control_metrics(k->c->a, &out);
    else
        buf_printf(&out, "error: unknown command \"%s\" (expected status or metrics)\n", cmd);
    /* The answer is written in one go; a client that does not read it within
     * the timeout is dropped rather than stalling the loop. */
    int fl = fcntl(k->fd, F_GETFL);
    fcntl(k->fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_MS / 1000};
    setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t done = 0;
    while (done < out.len) {
        ssize_t n = send(k->fd, out.data + done, out.len - done, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    buf_free(&out);
    conn_close(k);
}

static void conn_ready(loop *l, int fd, uint32_t events, void *userdata)
{
    conn *k = userdata;
    ssize_t n = read(fd, k->line + k->len, sizeof k->line - 1 - k->len);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        conn_close(k);
        return;
    }
    k->len += (size_t)n;
    k->line[k->len] = 0;
    if (memchr(k->line, '\n', k->len) || k->len == sizeof k->line - 1)
        answer(k);
}

static void on_accept(loop *l, int fd, uint32_t events, void *userdata)
{
    control *c = userdata;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        conn *k = xcalloc(1, sizeof *k);
        k->c = c;
        k->fd = cfd;
        k->timeout = loop_timer_new(l, conn_timeout, k);
        if (!k->timeout || loop_add_fd(l, cfd, EPOLLIN, conn_ready, k) < 0) {
            loop_timer_free(k->timeout);
            close(cfd);
            free(k);
            continue;
        }
        loop_timer_arm(k->timeout, CLIENT_TIMEOUT_MS, 0);
    }
}

control *control_new(agent *a, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        log_warning("control socket %s: path too long; `cwlogd status` is not available", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    unlink(path); /* a socket left by a previous run */
    mode_t old = umask(0077);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
        log_warning_errno(errno, "control socket %s: %m; `cwlogd status` is not available", path);
        close(fd);
        return NULL;
    }
    control *c = xcalloc(1, sizeof *c);
    *c = (control){.a = a, .fd = fd, .path = xstrdup(path)};
    if (loop_add_fd(a->loop, fd, EPOLLIN, on_accept, c) < 0) {
        control_free(c);
        return NULL;
    }
    return c;
}

void control_free(control *c)
{
    if (!c)
        return;
    loop_del_fd(c->a->loop, c->fd);
    close(c->fd);
    unlink(c->path);
    free(c->path);
    free(c);
}

/* ---- client ---- */

int control_client(const char *path, const char *command)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        fprintf(stderr, "cwlogd: cannot reach the agent at %s: %s%s\n", path, strerror(e),
                e == ENOENT || e == ECONNREFUSED ? " (is cwlogd running?)" : "");
        return -e;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char line[64];
    int n = snprintf(line, sizeof line, "%s\n", command);
    if (write(fd, line, (size_t)n) != n)
        return -errno;
    char b[65536];
    ssize_t r;
    while ((r = read(fd, b, sizeof b)) > 0)
        fwrite(b, 1, (size_t)r, stdout);
    return r < 0 ? -errno : 0;
}
