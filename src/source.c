/* source.c: a configured source: finding its files (docker containers
 * directory, CRI and plain globs), where each file starts (checkpoint, start_at,
 * rotated while stopped), container metadata and destination names, and
 * reading ready files fairly. */
#include <dirent.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <sys/inotify.h>
#include <sys/resource.h>

#include "agent.h"
#include "logopts.h"
#include "source.h"
#include "multiline.h"
#include "rotation.h"
#include "template.h"
#include "trust.h"

#define ROTATE_GRACE_MS 5000

_Static_assert(ROTATION_FP_MAX == CP_FINGERPRINT_MAX, "a row holds a whole fingerprint");
#define PUMP_FILE_BUDGET (1024 * 1024)
#define PUMP_TOTAL_BUDGET (8 * 1024 * 1024)

static void on_drop(const record *r, bool newest, void *userdata);

/* The ring policy for a mode (the source's, or a container's own) and the
 * source's `drop`. */
static ring_policy policy_for(bool blocking, const source_config *c)
{
    if (blocking)
        return RING_BLOCKING;
    return c->drop == DROP_NEWEST ? RING_DROP_NEWEST : RING_DROP_OLDEST;
}

static ring_policy policy_of(const source_config *c)
{
    return policy_for(c->mode == MODE_BLOCKING, c);
}

source *source_new(agent *a, source_config *cfg)
{
    source *s = xcalloc(1, sizeof *s);
    s->a = a;
    s->cfg = cfg;
    s->name = xstrdup(cfg->name);
    s->ring = ring_new(cfg->max_buffer_size, policy_of(cfg), &a->budget, on_drop, s);
    s->corrupt_rl = (log_ratelimit)LOG_RATELIMIT_INIT;
    s->drop_rl = (log_ratelimit)LOG_RATELIMIT_INIT;
    source_apply_multiline(s);
    return s;
}

void source_apply_multiline(source *s)
{
    if (s->multiline)
        regfree(&s->ml_re);
    s->multiline = false;
    if (!s->cfg->multiline_pattern && !s->cfg->datetime_format)
        return;
    char err[200];
    if (multiline_compile(s->cfg->multiline_pattern, s->cfg->datetime_format, &s->ml_re, err,
                          sizeof err) < 0) {
        log_error("source %s: %s; multiline joining is off", s->name, err);
        return;
    }
    s->multiline = true;
}

void container_unref(container *c)
{
    if (!c || --c->refs > 0)
        return;
    if (c->ring) {
        source *s = c->src;
        for (size_t i = 0; i < s->n_crings; i++)
            if (s->crings[i] == c->ring) {
                s->crings[i] = s->crings[--s->n_crings];
                break;
            }
        ring_free(c->ring);
    }
    free(c->id);
    free(c->name);
    if (c->labels)
        json_decref(c->labels);
    free(c);
}

static void id_key(char *key, size_t n, uint64_t dev, uint64_t ino)
{
    snprintf(key, n, "%llu:%llu", (unsigned long long)dev, (unsigned long long)ino);
}

static void unlink_file(source *s, tailfile *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        s->files = f->next;
    if (f->next)
        f->next->prev = f->prev;
    s->n_files--;
    if (smap_get(&s->by_path, f->path) == f)
        smap_remove(&s->by_path, f->path);
    char key[64];
    id_key(key, sizeof key, f->dev, f->ino);
    if (smap_get(&s->by_id, key) == f)
        smap_remove(&s->by_id, key);
    /* Unlink from the ready list. */
    tailfile **pp = &s->ready_head;
    s->ready_tail = NULL;
    while (*pp) {
        if (*pp == f)
            *pp = f->ready_next;
        else {
            s->ready_tail = *pp;
            pp = &(*pp)->ready_next;
        }
    }
    for (tailfile *g = s->files; g; g = g->next) {
        if (g->wait_for == f)
            g->wait_for = NULL;
        if (g->held_by == f) { /* gone without delivering the carried event */
            g->held = false;
            g->held_by = NULL;
        }
        for (int i = 0; i < 2; i++)
            if (f->ml[i].carried_from == g)
                f->ml[i].carried_from = NULL;
    }
    agent_forget_dirty(s->a, f);
    container_unref(f->ctr);
}

void source_free(source *s)
{
    if (!s)
        return;
    journald_free(s);
    while (s->files) {
        tailfile *f = s->files;
        unlink_file(s, f);
        tail_free(f);
    }
    smap_clear(&s->by_path);
    smap_clear(&s->by_id);
    /* containers map entries are owned by files' refs, except the cache ref */
    for (size_t i = 0; i < s->n_cache; i++)
        container_unref(s->cache[i]);
    free(s->cache);
    smap_clear(&s->cache_by_id);
    free(s->crings);
    ring_free(s->ring);
    if (s->multiline)
        regfree(&s->ml_re);
    free(s->name);
    free(s);
}

static void on_drop(const record *r, bool newest, void *userdata)
{
    source *s = userdata;
    tailfile *f = r->owner;
    s->st.dropped_events++;
    s->st.dropped_bytes += r->utf8_len;
    s->st.drop_pending_events++;
    if (f->drop_events == 0 || r->timestamp_ms < f->drop_first_ms)
        f->drop_first_ms = r->timestamp_ms;
    if (f->drop_events == 0 || r->timestamp_ms > f->drop_last_ms)
        f->drop_last_ms = r->timestamp_ms;
    f->drop_events++;
    f->drop_bytes += r->utf8_len;
    snprintf(s->last_error, sizeof s->last_error, "buffer full: %llu event(s) dropped",
             (unsigned long long)s->st.dropped_events);
    uint64_t suppressed;
    if (log_ratelimit_ok(&s->drop_rl, &suppressed)) {
        if (f->ctr && f->ctr->ring)
            log_warning("source %s: container %s's buffer full (max-buffer-size %llu), dropping "
                        "the %s event (%llu dropped so far)",
                        s->name, f->ctr->name ? f->ctr->name : f->ctr->id,
                        (unsigned long long)ring_limit(f->ctr->ring), newest ? "newest" : "oldest",
                        (unsigned long long)s->st.dropped_events);
        else
            log_warning("source %s: buffer full (max_buffer_size %llu), dropping the %s event "
                        "(%llu dropped so far)",
                        s->name, (unsigned long long)s->cfg->max_buffer_size,
                        newest ? "newest" : "oldest", (unsigned long long)s->st.dropped_events);
    }
    if (newest) {
        tail_record_dropped_newest(f);
        /* Nothing is pushed: the output still has to hear of the drop, to
         * announce it (the uploader's age timer). */
        agent_records_ready(s->a, s);
    } else {
        tail_record_done(f, r->end_offset, true);
    }
}

void source_mark_ready(source *s, tailfile *f)
{
    if (f->ready || f->state == TAIL_FINISHED || (f->fd < 0 && !f->gz))
        return; /* journald channels have no file to read */
    f->ready = true;
    f->ready_next = NULL;
    if (s->ready_tail)
        s->ready_tail->ready_next = f;
    else
        s->ready_head = f;
    s->ready_tail = f;
    agent_schedule_pump(s->a, s);
}

void source_mark_all_ready(source *s)
{
    for (tailfile *f = s->files; f; f = f->next)
        source_mark_ready(s, f);
}

static tailfile *ready_pop(source *s)
{
    tailfile *f = s->ready_head;
    if (!f)
        return NULL;
    s->ready_head = f->ready_next;
    if (!s->ready_head)
        s->ready_tail = NULL;
    f->ready_next = NULL;
    f->ready = false;
    return f;
}

static void ready_push_front(source *s, tailfile *f)
{
    f->ready = true;
    f->ready_next = s->ready_head;
    s->ready_head = f;
    if (!s->ready_tail)
        s->ready_tail = f;
}

/* ---- container metadata ---- */

/* The container's own `mode` / `max-buffer-size` log options, if any, give
 * it a ring of its own; the source's settings fill in what it leaves out. */
static void apply_log_options(source *s, container *c, const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/hostconfig.json", dir);
    logopts o;
    char why[256];
    int r = logopts_load(path, &o, why, sizeof why);
    if (r == -ENOENT)
        return; /* none: the source's settings */
    if (r < 0)
        log_warning("source %s: container %.12s: %s: %s; the source's settings apply in its "
                    "place",
                    s->name, c->id, path, why);
    if (!o.has_mode && !o.max_buffer_size)
        return;
    ring_policy policy = o.has_mode ? policy_for(o.blocking, s->cfg) : policy_of(s->cfg);
    uint64_t limit = o.max_buffer_size ? MAX(o.max_buffer_size, (uint64_t)16 * 1024) /* as config.c */
                                       : s->cfg->max_buffer_size;
    /* A task definition is not the operator: one must not take the whole
     * total_buffer_limit from the other containers. */
    uint64_t ceiling = s->cfg->container_max_buffer_size ? s->cfg->container_max_buffer_size
                                                         : s->cfg->max_buffer_size;
    if (limit > ceiling) {
        log_warning("source %s: container %.12s asks for max-buffer-size %llu; clamped to %llu "
                    "(container_max_buffer_size)",
                    s->name, c->id, (unsigned long long)limit, (unsigned long long)ceiling);
        limit = ceiling;
    }
    c->ring = ring_new(limit, policy, &s->a->budget, on_drop, s);
    s->crings = xrealloc(s->crings, (s->n_crings + 1) * sizeof *s->crings);
    s->crings[s->n_crings++] = c->ring;
    log_info("source %s: container %.12s has its own log options: mode %s, max-buffer-size "
             "%llu",
             s->name, c->id, policy == RING_BLOCKING ? "blocking" : "non-blocking",
             (unsigned long long)limit);
}

static container *load_container(source *s, const char *dir, const char *id)
{
    container *c = smap_get(&s->cache_by_id, id);
    if (c) {
        c->refs++;
        return c;
    }
    c = xcalloc(1, sizeof *c);
    c->id = xstrdup(id);
    c->refs = 2; /* the cache and the caller */
    _cleanup_free_ char *path = xasprintf("%s/config.v2.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        log_warning("source %s: container %.12s: cannot read %s: %s (line %d); names use the "
                    "placeholder",
                    s->name, id, path, err.text, err.line);
    } else {
        const char *name = json_string_value(json_object_get(root, "Name"));
        if (name)
            c->name = xstrdup(name[0] == '/' ? name + 1 : name);
        json_t *labels = json_object_get(json_object_get(root, "Config"), "Labels");
        if (json_is_object(labels))
            c->labels = json_incref(labels);
        json_decref(root);
    }
    c->src = s;
    apply_log_options(s, c, dir);
    c->listed = s->scan_gen;
    c->cache_i = s->n_cache;
    s->cache = xrealloc(s->cache, (s->n_cache + 1) * sizeof *s->cache);
    s->cache[s->n_cache++] = c;
    smap_put(&s->cache_by_id, id, c);
    return c;
}

/* Drops the cache's reference; files still being read keep theirs. */
static void forget_container(source *s, container *c)
{
    size_t i = c->cache_i;
    if (i >= s->n_cache || s->cache[i] != c)
        return; /* already forgotten */
    smap_remove(&s->cache_by_id, c->id);
    s->cache[i] = s->cache[--s->n_cache];
    s->cache[i]->cache_i = i;
    container_unref(c);
}

/* Containers whose directory the last complete listing did not show are
 * gone: excluded ones (every ECS task's pause container) are known only to
 * the cache, which would otherwise keep them, labels and all, forever. */
static void forget_gone_containers(source *s)
{
    for (size_t i = s->n_cache; i-- > 0;)
        if (i < s->n_cache && s->cache[i]->listed != s->scan_gen)
            forget_container(s, s->cache[i]);
}

static const char *label(const container *c, const char *key)
{
    return c && c->labels ? json_string_value(json_object_get(c->labels, key)) : NULL;
}

static const char *lookup_var(void *userdata, const char *kind, const char *key)
{
    return strcmp(kind, "label") == 0 ? label(userdata, key) : NULL;
}

/* CRI file names carry the container: /var/log/containers/POD_NS_CONTAINER-ID.log
 * or /var/log/pods/NS_POD_UID/CONTAINER/N.log. */
static void cri_names(const char *path, char **name, char **id)
{
    _cleanup_free_ char *copy = xstrdup(path);
    char *base = basename(copy);
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".log") == 0) {
        base[n - 4] = 0;
        char *dash = strrchr(base, '-');
        char *us = strrchr(base, '_');
        if (dash && us && us < dash && strlen(dash + 1) == 64) {
            *id = xstrdup(dash + 1);
            *name = xstrndup(us + 1, (size_t)(dash - us - 1));
            return;
        }
    }
    _cleanup_free_ char *copy2 = xstrdup(path);
    char *parent = dirname(copy2);
    *name = xstrdup(basename(parent));
}

static void expand_names(source *s, tailfile *f)
{
    agent *a = s->a;
    _cleanup_free_ char *cri_name = NULL, *cri_id = NULL;
    template_vars v = {
        .instance_id = a->instance_id,
        .hostname = a->hostname,
        .region = a->region,
        .source = s->name,
        .file = f->path,
        .placeholder = a->cfg->placeholder,
    };
    if (f->ctr) {
        v.container_id = f->ctr->id;
        v.container_name = f->ctr->name;
        v.ecs_cluster = label(f->ctr, "com.amazonaws.ecs.cluster");
        v.ecs_task_arn = label(f->ctr, "com.amazonaws.ecs.task-arn");
        v.ecs_task_family = label(f->ctr, "com.amazonaws.ecs.task-definition-family");
        v.ecs_container_name = label(f->ctr, "com.amazonaws.ecs.container-name");
        v.lookup = lookup_var;
        v.userdata = f->ctr;
    } else if (s->cfg->type == SOURCE_CRI) {
        cri_names(f->path, &cri_name, &cri_id);
        v.container_name = cri_name;
        v.container_id = cri_id;
    }
    free(f->group);
    free(f->stream);
    free(f->out_prefix);
    f->out_prefix = NULL;
    f->upload_stream = NULL;
    f->group = template_expand(s->cfg->group, &v, TEMPLATE_GROUP);
    f->stream = template_expand(s->cfg->stream, &v, TEMPLATE_STREAM);
}

/* ---- opening files ---- */

void source_add_file(source *s, tailfile *f)
{
    /* Append: the list stays oldest first. */
    tailfile **pp = &s->files, *prev = NULL;
    while (*pp) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = f;
    f->prev = prev;
    s->n_files++;
    char key[64];
    id_key(key, sizeof key, f->dev, f->ino);
    smap_put(&s->by_id, key, f);
    if (f->state == TAIL_ACTIVE)
        smap_put(&s->by_path, f->path, f);
}

/* Whether inotify reports what happens in dir. */
static bool watch_dir(source *s, const char *dir)
{
    if (!s->a->disc)
        return false; /* --once, or inotify unavailable: the rescan finds new data */
    int r = discovery_watch(s->a->disc, dir, s);
    if (r < 0 && r != -ENOENT && r != -ENOTDIR) {
        static log_ratelimit rl = LOG_RATELIMIT_INIT;
        if (log_ratelimit_ok(&rl, NULL))
            log_warning_errno(r, "source %s: cannot watch %s: %m%s", s->name, dir,
                              r == -ENOSPC ? " (raise fs.inotify.max_user_watches); new data "
                                             "is still found by the periodic rescan"
                                           : "");
    }
    return r == 0;
}

static void watch_parent_of(source *s, const char *path)
{
    _cleanup_free_ char *copy = xstrdup(path);
    watch_dir(s, dirname(copy));
    _cleanup_free_ char *real = realpath(path, NULL);
    if (real && strcmp(real, path) != 0) {
        _cleanup_free_ char *rdir = xstrdup(real);
        watch_dir(s, dirname(rdir));
    }
}

static int strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Descriptors a log file may not take: they are kept for the connections
 * to CloudWatch and IMDS, the state database, the control socket and
 * journal files. Without them an agent with more files than descriptors
 * would read what it can never upload. */
#define FD_RESERVE 64

/* A file that is not ours to read: a symlink from someone who does not own
 * its target, or a pseudo file system. Said at each rescan, rate-limited. */
static int refuse(source *s, const char *path, const char *why, bool *refused)
{
    *refused = true;
    static log_ratelimit rl = LOG_RATELIMIT_INIT;
    snprintf(s->last_error, sizeof s->last_error, "%s: not read: %s", path, why);
    if (log_ratelimit_ok(&rl, NULL))
        log_warning("source %s: not reading %s: %s", s->name, path, why);
    errno = EPERM;
    return -1;
}

/* Checks what the path leads to (trust.h), opens it, and makes sure the file
 * opened is the one checked: a link swapped in between is not followed. */
static int open_trusted(source *s, const char *path, bool *refused)
{
    *refused = false;
    struct stat want, got;
    char why[PATH_MAX + 160];
    int r = trust_path(path, &want, why, sizeof why);
    if (r == -EPERM)
        return refuse(s, path, why, refused);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -1;
    const char *fs = NULL;
    if (fstat(fd, &got) < 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
        close(fd);
        errno = ENOENT; /* changed under us: the next rescan looks again */
        return -1;
    }
    if (trust_fs(fd, &fs) == -EPERM) {
        close(fd);
        snprintf(why, sizeof why,
                 "it is on %s, a pseudo file system (/proc, /sys and the like are never read)", fs);
        return refuse(s, path, why, refused);
    }
    return fd;
}

static int open_log(source *s, const char *path, struct stat *st)
{
    bool refused;
    int fd = open_trusted(s, path, &refused);
    if (refused)
        return -EPERM;
    struct rlimit lim = {0};
    bool limited = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY;
    if (fd >= 0 && limited && (rlim_t)fd + FD_RESERVE >= lim.rlim_cur) {
        close(fd);
        fd = -1;
        errno = EMFILE;
    }
    if (fd < 0) {
        int e = errno;
        if (e == EMFILE || e == ENFILE) {
            /* Not dropped: the file is not known yet, so every rescan tries
             * it again, and it is read from where its checkpoint says. */
            static log_ratelimit rl = LOG_RATELIMIT_INIT;
            uint64_t suppressed;
            snprintf(s->last_error, sizeof s->last_error,
                     "%s: cannot open: out of file descriptors", path);
            if (log_ratelimit_ok(&rl, &suppressed))
                log_error_errno(e, "source %s: cannot open %s: %m (open-file limit %llu, %d "
                                   "kept for connections and state); trying again at each "
                                   "rescan (raise LimitNOFILE=)%s",
                                s->name, path, (unsigned long long)lim.rlim_cur, FD_RESERVE,
                                suppressed ? " (and more like it, not logged)" : "");
        } else if (e != ENOENT) {
            static log_ratelimit rl = LOG_RATELIMIT_INIT;
            if (log_ratelimit_ok(&rl, NULL))
                log_warning_errno(e, "source %s: cannot open %s: %m", s->name, path);
        }
        return -e;
    }
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return log_warning_errno(e, "source %s: cannot stat %s: %m", s->name, path);
    }
    if (!S_ISREG(st->st_mode)) {
        int e = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
        const char *what = S_ISDIR(st->st_mode)    ? "a directory"
                           : S_ISFIFO(st->st_mode) ? "a FIFO"
                           : S_ISSOCK(st->st_mode) ? "a socket"
                                                   : "a device";
        close(fd);
        static log_ratelimit rl = LOG_RATELIMIT_INIT;
        if (log_ratelimit_ok(&rl, NULL))
            log_warning("source %s: %s is %s, not a regular file; not reading it", s->name, path,
                        what);
        return -e;
    }
    return fd;
}

static void announce(source *s, tailfile *f, uint64_t offset, uint64_t size, const char *why)
{
    log_info("source %s: %s -> %s / %s (%s, from offset %llu of %llu)", s->name, f->path, f->group,
             f->stream, why, (unsigned long long)offset, (unsigned long long)size);
}

static void tidy_done_rows(source *s, const char *base);

/* A file not seen before in this run: decide where it starts. */
static void open_new(source *s, const char *path, int fd, const struct stat *st, container *ctr,
                     bool initial)
{
    tailfile *f = tail_new(s, path, fd, st);
    f->ctr = ctr;
    expand_names(s, f);
    uint64_t size = (uint64_t)st->st_size, offset = 0;
    const char *why = "new file";
    cp_file row = {0};
    if (s->a->cp && checkpoint_find_file(s->a->cp, s->name, f->dev, f->ino, &row) == 0) {
        if (tail_fingerprint_matches(row.fingerprint, row.fingerprint_len, f->fp, f->fp_len) &&
            row.offset == ROTATION_DONE) {
            offset = size; /* read to its end before, under another name */
            why = "read before";
        } else if (tail_fingerprint_matches(row.fingerprint, row.fingerprint_len, f->fp,
                                            f->fp_len) &&
                   row.offset <= size) {
            offset = row.offset;
            why = "resuming";
        } else {
            why = row.offset > size ? "truncated while stopped" : "inode reused by a new file";
            if (row.offset == ROTATION_DONE) {
                /* The done row of the file that had this inode (compressed
                 * since): moved to its .gz before this file's row takes
                 * its place. */
                _cleanup_free_ char *base = rotation_base(path);
                tidy_done_rows(s, base);
            }
        }
        cp_file_clear(&row);
    } else if (initial && s->first_run) {
        start_at start = s->cfg->start == START_AT_DEFAULT ? START_AT_END : s->cfg->start;
        if (start == START_AT_END) {
            offset = size;
            why = "start_at = end";
        } else {
            why = "start_at = beginning";
        }
    }
    source_add_file(s, f);
    tail_seek(f, offset);
    agent_mark_dirty(s->a, f);
    announce(s, f, offset, size, why);
    watch_parent_of(s, path);
    source_mark_ready(s, f);
}

/* ---- finding files ---- */

typedef struct init_rows init_rows;
static init_rows *scanning_rows; /* the initial scan's stored rows (one thread) */
static void plan_log(source *s, const char *base, init_rows *ir, container *live_ctr);

/* path matches the source: start reading it when it is new. `pre` is the
 * caller's stat of path, or NULL. */
static void consider(source *s, const char *path, const struct stat *pre, container *ctr,
                     bool initial)
{
    struct stat st;
    if (!pre && stat(path, &st) == 0)
        pre = &st;
    if (pre) {
        /* The periodic rescan passes every file it knows: a stat tells whether
         * it is still the file being read and whether it grew or shrank
         * (events inotify did not deliver), without opening it again. With
         * 1,000 idle containers, opening each one every rescan and reading
         * it to its end again cost 0.2 % of a core. */
        char key[64];
        id_key(key, sizeof key, (uint64_t)pre->st_dev, (uint64_t)pre->st_ino);
        tailfile *f = smap_get(&s->by_id, key);
        if (f && (f->state == TAIL_FINISHED ||
                  (f->state == TAIL_ACTIVE && strcmp(f->path, path) == 0))) {
            container_unref(ctr);
            if (f->state == TAIL_FINISHED)
                return;
            f->seen = true;
            if ((uint64_t)pre->st_size != f->read_off - f->base)
                source_mark_ready(s, f);
            return;
        }
    }
    int fd = open_log(s, path, &st);
    if (fd < 0) {
        container_unref(ctr);
        return;
    }
    char key[64];
    id_key(key, sizeof key, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    tailfile *f = smap_get(&s->by_id, key);
    if (f) {
        close(fd);
        container_unref(ctr);
        if (f->state == TAIL_FINISHED)
            return;
        if (strcmp(f->path, path) != 0 || f->state == TAIL_ROTATED) {
            /* The same file under a new name that still matches (app.log -> app.log.1
             * with a glob that covers both): keep reading it where it is. */
            if (smap_get(&s->by_path, f->path) == f)
                smap_remove(&s->by_path, f->path);
            free(f->path);
            f->path = xstrdup(path);
            f->state = TAIL_ACTIVE;
            smap_put(&s->by_path, f->path, f);
            agent_mark_dirty(s->a, f);
            watch_parent_of(s, path);
        }
        f->seen = true;
        return;
    }
    tailfile *old = smap_get(&s->by_path, path);
    if (!old) /* the file that had this name may already be known as rotated */
        for (tailfile *g = s->files; g; g = g->next)
            if (g->state == TAIL_ROTATED && strcmp(g->path, path) == 0)
                old = g;
    if (old && old->state == TAIL_ACTIVE) {
        /* Another file took this name: the one we had is rotated. */
        old->state = TAIL_ROTATED;
        old->rotated_ms = now_monotonic_ms();
        s->rotations_open = true;
        smap_remove(&s->by_path, path);
        source_mark_ready(s, old);
    }
    if (initial && scanning_rows) {
        /* Where it and its rotations start is the plan's to say. */
        close(fd);
        plan_log(s, path, scanning_rows, ctr);
    } else {
        open_new(s, path, fd, &st, ctr, initial);
    }
    tailfile *nf = smap_get(&s->by_id, key);
    if (nf) {
        nf->seen = true;
        if (old && old->state != TAIL_FINISHED)
            nf->wait_for = old;
    }
}

/* The ECS agent and the task pause containers are not application logs. */
static const char *const default_excludes[] = {"ecs-agent", "*internalecspause*"};

static bool any_match(char **globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], name, 0) == 0)
            return true;
    return false;
}

/* include_containers / exclude_containers, on the container name (without
 * Docker's leading '/'); an unnamed container is matched by its id. */
static bool container_wanted(source *s, container *c)
{
    const source_config *cfg = s->cfg;
    const char *name = c->name ? c->name : c->id;
    bool excluded;
    if (cfg->exclude_containers_set)
        excluded = any_match(cfg->exclude_containers, cfg->n_exclude_containers, name);
    else
        excluded = any_match((char **)default_excludes, ARRAY_SIZE(default_excludes), name);
    bool included = cfg->n_include_containers == 0 ||
                    any_match(cfg->include_containers, cfg->n_include_containers, name);
    if (included && !excluded)
        return true;
    if (!c->skipped_logged) {
        c->skipped_logged = true;
        log_info("source %s: container %s (%.12s) %s; not reading it", s->name, name, c->id,
                 excluded ? "matches exclude_containers" : "is not in include_containers");
    }
    return false;
}

static bool is_gz(const char *path)
{
    size_t n = strlen(path);
    return n > 3 && strcmp(path + n - 3, ".gz") == 0;
}

static void scan_docker(source *s, bool initial)
{
    const char *root = s->cfg->n_paths ? s->cfg->paths[0] : "/var/lib/docker/containers";
    watch_dir(s, root);
    DIR *d = opendir(root);
    if (!d) {
        static log_ratelimit rl = LOG_RATELIMIT_INIT;
        if (log_ratelimit_ok(&rl, NULL))
            log_warning_errno(errno, "source %s: cannot read the containers directory %s: %m",
                              s->name, root);
        return;
    }
    struct dirent *de;
    s->scan_gen++;
    /* errno tells a complete listing (0 at the end) from a failed one. */
    while ((errno = 0, de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        container *cached = smap_get(&s->cache_by_id, de->d_name);
        if (cached)
            cached->listed = s->scan_gen;
        _cleanup_free_ char *dir = xasprintf("%s/%s", root, de->d_name);
        _cleanup_free_ char *path = xasprintf("%s/%s-json.log", dir, de->d_name);
        tailfile *cur = watch_dir(s, dir) ? smap_get(&s->by_path, path) : NULL;
        if (cur && cur->state == TAIL_ACTIVE) {
            /* Being read, in a watched directory: inotify reports its growth,
             * rotation and removal (and an overflow makes every file ready),
             * so the rescan has nothing to stat. With 1,000 idle containers
             * the stats were most of the agent's idle CPU. */
            cur->seen = true;
            continue;
        }
        /* stat, not access(): access() ignores CAP_DAC_READ_SEARCH, which is
         * what lets the service user into Docker's root-only directories.
         * Relative to the open directory, the kernel looks up two names
         * instead of the whole path: the lookups were most of a rescan's
         * time with 1,000 containers. */
        struct stat st;
        if (fstatat(dirfd(d), path + strlen(root) + 1, &st, 0) < 0) {
            /* Gone or not a json-file container: nothing to say. Anything
             * else hides a container's log from us: say so. */
            static log_ratelimit rl = LOG_RATELIMIT_INIT;
            int e = errno;
            if (e != ENOENT && e != ENOTDIR && log_ratelimit_ok(&rl, NULL))
                log_warning_errno(e, "source %s: cannot read %s: %m; trying again at each rescan",
                                  s->name, path);
            continue;
        }
        char key[64];
        id_key(key, sizeof key, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
        tailfile *known = smap_get(&s->by_id, key);
        container *c = known ? NULL : load_container(s, dir, de->d_name);
        if (c && !container_wanted(s, c)) {
            container_unref(c);
            continue;
        }
        consider(s, path, &st, c, initial);
    }
    if (errno == 0)
        forget_gone_containers(s);
    closedir(d);
}

/* The directory part of a glob before its first wildcard. */
static char *static_prefix_dir(const char *pattern)
{
    const char *w = strpbrk(pattern, "*?[");
    size_t n = w ? (size_t)(w - pattern) : strlen(pattern);
    char *p = xstrndup(pattern, n);
    char *slash = strrchr(p, '/');
    if (slash && slash != p)
        *slash = 0;
    else if (slash)
        slash[1] = 0;
    return p;
}

static const char *glob_source; /* whose pattern glob() is expanding (one thread) */

static int glob_error(const char *path, int err)
{
    static log_ratelimit rl = LOG_RATELIMIT_INIT;
    if (err != ENOENT && err != ENOTDIR && log_ratelimit_ok(&rl, NULL))
        log_warning_errno(err, "source %s: cannot read the directory %s: %m; trying again at "
                               "each rescan",
                          glob_source, path);
    return 0; /* go on with the rest of the pattern */
}

static void scan_globs(source *s, bool initial)
{
    for (size_t i = 0; i < s->cfg->n_paths; i++) {
        const char *pattern = s->cfg->paths[i];
        _cleanup_free_ char *prefix = static_prefix_dir(pattern);
        watch_dir(s, prefix);
        glob_t g = {0};
        glob_source = s->name;
        int r = glob(pattern, GLOB_NOSORT | GLOB_MARK, glob_error, &g);
        if (r == 0) {
            qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv,
                  strcmp_ptr);
            for (size_t k = 0; k < g.gl_pathc; k++) {
                const char *p = g.gl_pathv[k];
                size_t n = strlen(p);
                if (n == 0 || p[n - 1] == '/' || is_gz(p))
                    continue; /* directories (GLOB_MARK) and compressed rotations */
                consider(s, p, NULL, NULL, initial);
            }
        } else if (r != GLOB_NOMATCH) {
            log_warning("source %s: cannot expand %s", s->name, pattern);
        }
        globfree(&g);
    }
}

/* ---- files rotated while cwlogd was stopped ---- */

/* The facts rotation_plan() needs about one log: its live name and rotations
 * in its directory, with their identities and first bytes, and each file
 * open: the plan is carried out on the files it was made from, whatever
 * Docker renamed, compressed or removed meanwhile. */
typedef struct log_files {
    rot_file *f;
    char **paths;
    int *fds;
    unsigned char (*fps)[CP_FINGERPRINT_MAX];
    size_t n;
} log_files;

static void log_files_clear(log_files *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->paths[i]);
        if (g->fds[i] >= 0)
            close(g->fds[i]);
    }
    free(g->f);
    free(g->paths);
    free(g->fds);
    free(g->fps);
    *g = (log_files){0};
}

/* A complete .gz's uncompressed size (its trailer's ISIZE; single-member
 * gzip, as Docker writes, under 4 GiB). */
static uint64_t gz_size(int fd, const struct stat *st)
{
    unsigned char t[4];
    if (st->st_size < 18 || pread(fd, t, 4, st->st_size - 4) != 4)
        return ROTATION_SIZE_UNKNOWN;
    return (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
}

/* Opens one listed file; false when it is gone or is no longer the inode
 * the listing showed (renamed over meanwhile). Never follows a link: a
 * rotation is a regular file beside the live one, which was checked. */
static bool gather_one(source *s, log_files *g, const char *path, unsigned index, bool gz,
                       ino_t listed)
{
    struct stat st;
    /* Links are followed as for any log file: only root's, or their
     * target's owner's (kubelet's /var/log/containers links); never into a
     * pseudo file system. A refused file is left out, said once per rescan. */
    bool refused = false;
    int fd = open_trusted(s, path, &refused);
    if (fd < 0)
        return refused || errno == ENOENT;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return true;
    }
    if (listed && st.st_ino != listed) {
        close(fd);
        return false;
    }
    for (size_t i = 0; i < g->n; i++)
        if (g->f[i].dev == (uint64_t)st.st_dev && g->f[i].ino == (uint64_t)st.st_ino) {
            close(fd); /* listed twice, across a rename */
            return false;
        }
    size_t i = g->n++;
    g->f = xrealloc(g->f, g->n * sizeof *g->f);
    g->paths = xrealloc(g->paths, g->n * sizeof *g->paths);
    g->fds = xrealloc(g->fds, g->n * sizeof *g->fds);
    g->fps = xrealloc(g->fps, g->n * sizeof *g->fps);
    g->paths[i] = xstrdup(path);
    g->fds[i] = fd;
    size_t fp_len = 0;
    uint64_t size = (uint64_t)st.st_size;
    if (gz) {
        size = gz_size(fd, &st);
        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        gzFile z = dup_fd >= 0 ? gzdopen(dup_fd, "rb") : NULL;
        if (z) {
            static unsigned char head[ROTATION_FP_SCAN]; /* one thread */
            int n = gzread(z, head, sizeof head);
            rotation_fingerprint(head, n > 0 ? (size_t)n : 0, g->fps[i], &fp_len);
            gzclose(z);
        } else if (dup_fd >= 0) {
            close(dup_fd);
        }
    } else {
        tail_read_fingerprint(fd, g->fps[i], &fp_len);
    }
    g->f[i] = (rot_file){.path = g->paths[i], .index = index, .gz = gz,
                         .dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino,
                         .fp_len = fp_len, .size = size}; /* .fp: set by gather() */
    return true;
}

typedef struct listed {
    char *path;
    unsigned index;
    bool gz;
    ino_t ino;
    struct timespec mtime;
} listed;

/* Other rotated names, newest first: their order. */
static int newest_first(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec > y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec > y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Uncompressed files first (a .gz is complete once its twin is gone, so its
 * twin must be looked for before it), each by index. */
static int listed_order(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    if (x->gz != y->gz)
        return x->gz ? 1 : -1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return strcmp(x->path, y->path);
}

static void listed_free(listed *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i].path);
    free(l);
}

/* The names of the log `base` in its directory (compared, never used as
 * patterns): Docker's "<base>.N[.gz]" carry their order; other rotated names
 * ("0.log.20241124-092000") get an order by mtime. */
static listed *list_log(const char *base, size_t *n_out)
{
    *n_out = 0;
    _cleanup_free_ char *copy = xstrdup(base);
    char *slash = strrchr(copy, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    const char *dir = copy[0] ? copy : "/";
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    const char *name = slash + 1;
    size_t nl = strlen(name), n = 0;
    listed *l = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, name, nl) != 0)
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
        /* A link's own inode is not its file's: only plain entries are
         * compared with what was opened. */
        listed e = {.ino = de->d_type == DT_REG ? de->d_ino : 0};
        if (!rotation_parse_name(base, path, &e.index, &e.gz)) {
            _cleanup_free_ char *b = rotation_base(path);
            struct stat st;
            if (strcmp(b, base) != 0 || stat(path, &st) != 0)
                continue;
            size_t pn = strlen(path);
            e.gz = pn > 3 && strcmp(path + pn - 3, ".gz") == 0;
            e.index = UINT32_MAX; /* numbered below */
            e.mtime = st.st_mtim;
        }
        e.path = TAKE_PTR(path);
        l = xrealloc(l, (n + 1) * sizeof *l);
        l[n++] = e;
    }
    closedir(d);
    /* Other names: numbered newest first, as Docker numbers its own. */
    size_t n_other = 0;
    for (size_t i = 0; i < n; i++)
        if (l[i].index == UINT32_MAX) {
            listed t = l[n_other];
            l[n_other++] = l[i];
            l[i] = t;
        }
    if (n_other > 1)
        qsort(l, n_other, sizeof *l, newest_first);
    for (size_t i = 0; i < n_other; i++)
        l[i].index = (unsigned)(i + 1);
    if (n > 1) /* qsort must not be given a null array, even empty */
        qsort(l, n, sizeof *l, listed_order);
    *n_out = n;
    return l;
}

static bool same_listing(const listed *a, size_t na, const listed *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].ino != b[i].ino || strcmp(a[i].path, b[i].path) != 0)
            return false;
    return true;
}

/* The files of the log named `base`, open. A directory listing taken while
 * Docker renames .N.gz to .N+1.gz may miss a file or show one twice, and a
 * name may change between the listing and the open: the listing is taken
 * until two agree and every name opens to the inode it was listed with
 * (a few tries; Docker's renames take microseconds). */
static void gather(source *s, const char *base, log_files *g)
{
    *g = (log_files){0};
    for (int attempt = 0; attempt < 8; attempt++) {
        size_t na, nb;
        listed *a = list_log(base, &na), *b = list_log(base, &nb);
        bool stable = same_listing(a, na, b, nb);
        listed_free(a, na);
        bool complete = true;
        for (size_t i = 0; i < nb; i++)
            complete &= gather_one(s, g, b[i].path, b[i].index, b[i].gz, b[i].ino);
        listed_free(b, nb);
        if ((stable && complete) || attempt == 7)
            break;
        log_files_clear(g);
    }
    /* The fingerprints' array moved as it grew: point at them now. */
    for (size_t i = 0; i < g->n; i++)
        g->f[i].fp = g->fps[i];
}

static container *container_for(source *s, const char *path)
{
    if (s->cfg->type != SOURCE_DOCKER)
        return NULL;
    _cleanup_free_ char *copy = xstrdup(path);
    char *dir = dirname(copy);
    _cleanup_free_ char *copy2 = xstrdup(dir);
    return load_container(s, dir, basename(copy2));
}

/* Open one file of a plan, on the descriptor gather() opened (taken from
 * it): the file the plan was made from, even if Docker renamed or removed
 * it since. A .gz is known by its own inode from now on: a row it continues
 * (the file it was before compression, whose inode is free and may already
 * be another file's) is moved to it. NULL when it cannot be read. */
static tailfile *open_step(source *s, const rot_file *rf, int *gathered, const cp_file *row,
                           uint64_t offset, const char *why, container *ctr)
{
    struct stat st;
    int fd = *gathered;
    *gathered = -1;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        container_unref(ctr);
        return NULL;
    }
    tailfile *f;
    if (rf->gz) {
        f = tail_new(s, rf->path, -1, &st);
        f->gz = lseek(fd, 0, SEEK_SET) == 0 ? gzdopen(fd, "rb") : NULL;
        if (!f->gz) {
            close(fd);
            tail_free(f);
            container_unref(ctr);
            return NULL;
        }
        memcpy(f->fp, rf->fp, rf->fp_len);
        f->fp_len = rf->fp_len;
        if (row && s->a->cp && (row->dev != f->dev || row->ino != f->ino))
            checkpoint_delete_file(s->a->cp, s->name, row->dev, row->ino);
    } else {
        f = tail_new(s, rf->path, fd, &st);
    }
    f->ctr = ctr ? ctr : container_for(s, rf->path);
    expand_names(s, f);
    if (rf->index > 0) {
        f->state = TAIL_ROTATED;
        f->rotated_ms = now_monotonic_ms() - ROTATE_GRACE_MS; /* nobody writes to it */
        s->rotations_open = true;
    }
    source_add_file(s, f);
    tail_seek(f, offset);
    agent_mark_dirty(s->a, f);
    announce(s, f, offset, rf->size == ROTATION_SIZE_UNKNOWN ? (uint64_t)st.st_size : rf->size,
             why);
    if (rf->index == 0)
        watch_parent_of(s, rf->path);
    source_mark_ready(s, f);
    return f;
}

/* The stored rows of a source, loaded once for the initial scan; each is
 * planned with the log it belongs to, the rest after the scan. */
struct init_rows {
    cp_file *rows;
    size_t n;
    bool *used;
};

/* Plan and open the log `base` (its live file, if any, is `live_ctr`'s):
 * rows[] of that log, files from its directory. */
static void plan_log(source *s, const char *base, init_rows *ir, container *live_ctr)
{
    log_files g;
    gather(s, base, &g);
    size_t *idx = xcalloc(ir->n + 1, sizeof *idx);
    rot_row *rows = xcalloc(ir->n + 1, sizeof *rows);
    size_t n_rows = 0;
    for (size_t i = 0; i < ir->n; i++) {
        if (ir->used[i])
            continue;
        _cleanup_free_ char *b = rotation_base(ir->rows[i].path);
        if (strcmp(b, base) != 0)
            continue;
        ir->used[i] = true;
        idx[n_rows] = i;
        rows[n_rows++] = (rot_row){.dev = ir->rows[i].dev, .ino = ir->rows[i].ino,
                                   .fp = ir->rows[i].fingerprint,
                                   .fp_len = ir->rows[i].fingerprint_len,
                                   .offset = ir->rows[i].offset};
    }
    start_at start = s->cfg->start == START_AT_DEFAULT ? START_AT_END : s->cfg->start;
    rot_plan plan;
    rotation_plan(g.f, g.n, rows, n_rows,
                  (rot_policy){.first_run = s->first_run, .start_at_end = start == START_AT_END},
                  &plan);
    for (size_t k = 0; k < plan.n_forget; k++) {
        const cp_file *r = &ir->rows[idx[plan.forget[k]]];
        if (s->a->cp)
            checkpoint_delete_file(s->a->cp, s->name, r->dev, r->ino);
    }
    for (size_t k = 0; k < plan.n_skipped; k++)
        log_debug("source %s: %s (inode %llu) not read: read before, or being compressed",
                  s->name, g.f[plan.skipped[k]].path,
                  (unsigned long long)g.f[plan.skipped[k]].ino);
    for (size_t k = 0; k < plan.n_forget; k++) {
        const cp_file *r = &ir->rows[idx[plan.forget[k]]];
        log_debug("source %s: forgetting the row of %s (inode %llu, offset %llu, fingerprint "
                  "%zu bytes): no file holds it",
                  s->name, r->path, (unsigned long long)r->ino, (unsigned long long)r->offset,
                  r->fingerprint_len);
    }
    for (size_t k = 0; k < plan.n_gaps; k++) {
        const cp_file *r = &ir->rows[idx[plan.gaps[k]]];
        s->st.gaps++;
        log_warning("source %s: %s (read up to offset %llu) was rotated or removed while cwlogd "
                    "was stopped and cannot be found among its rotations; its unread part is "
                    "lost",
                    s->name, r->path, (unsigned long long)r->offset);
    }
    tailfile *prev = NULL;
    unsigned prev_index = 0;
    for (size_t k = 0; k < plan.n_steps; k++) {
        const rot_step *st = &plan.steps[k];
        const rot_file *rf = &g.f[st->file];
        char key[64];
        id_key(key, sizeof key, rf->dev, rf->ino);
        if (!rf->gz && smap_get(&s->by_id, key))
            continue; /* already read in this run */
        const cp_file *row = st->row >= 0 ? &ir->rows[idx[st->row]] : NULL;
        container *ctr = NULL;
        if (rf->index == 0 && live_ctr) {
            ctr = live_ctr;
            live_ctr = NULL;
        }
        bool had_fd = g.fds[st->file] >= 0;
        tailfile *f = open_step(s, rf, &g.fds[st->file], row, st->offset,
                                rotation_why_str(st->why), ctr);
        if (!f) {
            /* Its row, if any, stays: the next scan plans it again. */
            log_debug("source %s: %s (inode %llu) was planned (%s, from offset %llu) but "
                      "could not be opened%s",
                      s->name, rf->path, (unsigned long long)rf->ino,
                      rotation_why_str(st->why), (unsigned long long)st->offset,
                      had_fd ? "" : " (no descriptor from the listing)");
            continue;
        }
        f->seen = true;
        if (prev) {
            f->wait_for = prev;
            f->after_done = prev_index != rf->index + 1;
        }
        prev = f;
        prev_index = rf->index;
    }
    container_unref(live_ctr); /* the plan did not open the live file */
    rotation_plan_free(&plan);
    free(idx);
    free(rows);
    log_files_clear(&g);
}

/* Rows of logs whose live file the initial scan did not find (a removed
 * container, a file source's rotations): their rotations may be there. */
static void plan_leftovers(source *s, init_rows *ir)
{
    for (size_t i = 0; i < ir->n; i++) {
        if (ir->used[i])
            continue;
        _cleanup_free_ char *base = rotation_base(ir->rows[i].path);
        plan_log(s, base, ir, NULL);
    }
}

static void init_rows_clear(init_rows *ir)
{
    for (size_t i = 0; i < ir->n; i++)
        cp_file_clear(&ir->rows[i]);
    free(ir->rows);
    free(ir->used);
    *ir = (init_rows){0};
}

/* The done rows of the log `base`: deleted when no file holds their content
 * any more, and moved to the .gz that holds it when Docker compressed their
 * file: the inode they name is free then, and the next file given it would
 * overwrite the row, leaving a file read to its end without one. */
static void tidy_done_rows(source *s, const char *base)
{
    cp_file *all = NULL;
    size_t n_all = 0;
    if (!s->a->cp || checkpoint_list_files(s->a->cp, s->name, &all, &n_all) < 0)
        return;
    rot_row *rows = xcalloc(n_all + 1, sizeof *rows);
    size_t *idx = xcalloc(n_all + 1, sizeof *idx), n = 0;
    for (size_t i = 0; i < n_all; i++) {
        _cleanup_free_ char *b = rotation_base(all[i].path);
        if (strcmp(b, base) != 0 || all[i].offset != ROTATION_DONE)
            continue;
        idx[n] = i;
        rows[n++] = (rot_row){.dev = all[i].dev, .ino = all[i].ino, .fp = all[i].fingerprint,
                              .fp_len = all[i].fingerprint_len, .offset = all[i].offset};
    }
    if (n > 0) {
        log_files g;
        gather(s, base, &g);
        rot_plan plan;
        rotation_plan(g.f, g.n, rows, n, (rot_policy){0}, &plan);
        for (size_t k = 0; k < plan.n_forget; k++)
            checkpoint_delete_file(s->a->cp, s->name, all[idx[plan.forget[k]]].dev,
                                   all[idx[plan.forget[k]]].ino);
        for (size_t r = 0; r < n; r++) {
            if (plan.match[r] < 0)
                continue;
            const rot_file *rf = &g.f[plan.match[r]];
            cp_file *row = &all[idx[r]];
            if (rf->dev == row->dev && rf->ino == row->ino)
                continue;
            checkpoint_delete_file(s->a->cp, s->name, row->dev, row->ino);
            cp_file moved = {.source = s->name, .path = (char *)rf->path, .dev = rf->dev,
                             .ino = rf->ino, .fingerprint_len = rf->fp_len,
                             .offset = ROTATION_DONE};
            memcpy(moved.fingerprint, rf->fp, rf->fp_len);
            checkpoint_put_file(s->a->cp, &moved);
        }
        rotation_plan_free(&plan);
        log_files_clear(&g);
    }
    for (size_t i = 0; i < n_all; i++)
        cp_file_clear(&all[i]);
    free(all);
    free(rows);
    free(idx);
}

/* A finished file's row stays, marked done, while its content is still in
 * the directory under some name. */
static void keep_done_row(source *s, tailfile *f)
{
    if (!s->a->cp)
        return;
    cp_file row = {.source = s->name, .path = f->path, .dev = f->dev, .ino = f->ino,
                   .fingerprint_len = f->fp_len, .offset = ROTATION_DONE};
    memcpy(row.fingerprint, f->fp, f->fp_len);
    checkpoint_put_file(s->a->cp, &row);
    _cleanup_free_ char *base = rotation_base(f->path);
    tidy_done_rows(s, base);
}

void source_scan(source *s)
{
    bool initial = !s->initial_scan_done;
    if (s->cfg->type == SOURCE_JOURNALD) {
        if (initial)
            journald_open(s);
        s->initial_scan_done = true;
        return;
    }
    s->rescan_pending = false;
    init_rows ir = {0};
    if (initial && s->a->cp) {
        s->first_run = checkpoint_list_files(s->a->cp, s->name, &ir.rows, &ir.n) == 0 &&
                       ir.n == 0;
        ir.used = xcalloc(ir.n + 1, sizeof *ir.used);
        scanning_rows = &ir;
    } else if (initial) {
        s->first_run = true;
    }
    for (tailfile *f = s->files; f; f = f->next)
        f->seen = false;
    if (s->cfg->type == SOURCE_DOCKER)
        scan_docker(s, initial);
    else
        scan_globs(s, initial);
    for (tailfile *f = s->files; f; f = f->next)
        if (f->state == TAIL_ACTIVE && !f->seen) {
            tail_check_rotation(f);
            if (f->state != TAIL_ACTIVE)
                source_mark_ready(s, f);
        }
    if (scanning_rows) {
        plan_leftovers(s, &ir);
        scanning_rows = NULL;
        init_rows_clear(&ir);
    }
    s->initial_scan_done = true;
}

/* ---- reading ---- */

static void wake_successors(source *s, tailfile *done)
{
    for (tailfile *g = s->files; g; g = g->next)
        if (g->wait_for == done) {
            g->wait_for = NULL;
            source_mark_ready(s, g);
        }
}

/* A file whose container's own blocking ring is full waits off the ready
 * list, and the source reads its other files; false: the source's ring is
 * full, and the whole source waits. */
static bool park(source *s, tailfile *f)
{
    if (s->blocked || !f->ctr || !f->ctr->blocked)
        return false;
    f->parked = true;
    return true;
}

void source_pump(source *s)
{
    size_t total = 0;
    tailfile *f;
    if (s->blocked)
        return;
    if (s->journal) {
        journald_pump(s);
        return;
    }
    /* A file that makes itself ready again at each end (one taken as
     * truncated every time) must not keep the loop from its signals: each
     * file gets its turn, then the loop's next turn goes on. */
    size_t turns = 2 * s->n_files + 16;
    while ((f = ready_pop(s))) {
        if (turns-- == 0) {
            ready_push_front(s, f);
            agent_schedule_pump(s->a, s);
            return;
        }
        if (f->wait_for && f->wait_for->state != TAIL_FINISHED) {
            /* Its row must say which file it is before it is read: a row
             * stored while the file was empty matches nothing after a
             * restart. */
            tail_refresh_fingerprint(f);
            continue; /* woken when the older rotation is finished */
        }
        int r = tail_read(f, PUMP_FILE_BUDGET);
        if (r == -EAGAIN && park(s, f))
            continue;
        if (r == -EAGAIN) {
            ready_push_front(s, f);
            return;
        }
        if (r == 1) {
            source_mark_ready(s, f);
            total += PUMP_FILE_BUDGET;
            if (total >= PUMP_TOTAL_BUDGET)
                return; /* let the loop breathe; the pump is already scheduled */
            continue;
        }
        if (f->state == TAIL_ACTIVE)
            tail_check_rotation(f);
        if (f->state == TAIL_ROTATED &&
            (s->a->opt.once || now_monotonic_ms() - f->rotated_ms >= ROTATE_GRACE_MS)) {
            if (tail_finish(f) < 0) {
                if (park(s, f))
                    continue;
                ready_push_front(s, f);
                return;
            }
            log_debug("source %s: finished %s", s->name, f->path);
            wake_successors(s, f);
        }
    }
}

void source_resume(source *s)
{
    if (s->cblocked) {
        /* Containers' rings had room taken from them: their files try again
         * (one that is still full parks them again). */
        s->cblocked = false;
        for (tailfile *f = s->files; f; f = f->next)
            if (f->ctr && f->ctr->blocked) {
                f->ctr->blocked = false;
                if (f->parked) {
                    f->parked = false;
                    source_mark_ready(s, f);
                }
            }
        agent_schedule_pump(s->a, s);
    }
    if (!s->blocked)
        return;
    s->blocked = false;
    agent_schedule_pump(s->a, s);
}

size_t source_n_rings(const source *s)
{
    return 1 + s->n_crings;
}

ring *source_ring_at(const source *s, size_t i)
{
    return i == 0 ? s->ring : s->crings[i - 1];
}

ring *source_ring_of(const tailfile *f)
{
    return f->ctr && f->ctr->ring ? f->ctr->ring : f->src->ring;
}

size_t source_ring_count(const source *s)
{
    size_t n = ring_count(s->ring);
    for (size_t i = 0; i < s->n_crings; i++)
        n += ring_count(s->crings[i]);
    return n;
}

void source_on_fs_event(source *s, const char *dir, const char *name, uint32_t mask)
{
    if (!dir || !name || (mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))) {
        source_mark_all_ready(s);
        agent_schedule_rescan(s->a, s);
        return;
    }
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
    tailfile *f = smap_get(&s->by_path, path);
    if (f)
        source_mark_ready(s, f);
    if (mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) {
        /* The name may have moved on: notice it now, not when the reader,
         * paused while a blocking source waits for room, reaches the end.
         * The rescan skips files it reads and would open the new file only
         * after the next rotation took its name too. */
        if (f)
            tail_check_rotation(f);
        agent_schedule_rescan(s->a, s);
        /* A rotated file's last bytes may be waiting: look at every file here. */
        size_t n = strlen(dir);
        for (tailfile *g = s->files; g; g = g->next)
            if (strncmp(g->path, dir, n) == 0 && g->path[n] == '/')
                source_mark_ready(s, g);
    }
}

bool source_idle(const source *s)
{
    if (s->ready_head || s->blocked || s->cblocked || source_ring_count(s) > 0 ||
        !journald_idle(s))
        return false;
    for (const tailfile *f = s->files; f; f = f->next)
        if (f->state == TAIL_ROTATED)
            return false;
    return true;
}

void source_flush_partials(source *s)
{
    for (tailfile *f = s->files; f; f = f->next)
        if (tail_flush_partials(f) < 0)
            return;
}

static bool joining(const tailfile *f)
{
    return f->pend[0].active || f->pend[1].active || f->ml[0].active || f->ml[1].active;
}

void source_flush_stale_partials(source *s, int64_t older_than_ms)
{
    if (!s->joins_open)
        return;
    int64_t now = now_monotonic_ms();
    bool open = false;
    for (tailfile *f = s->files; f; f = f->next) {
        /* A rotated file's open event goes on in the next file, where it is
         * joined when the rotated one finishes (its grace counts from the
         * rotation, longer than this timeout): never shipped in pieces. */
        if (joining(f) && f->state == TAIL_ACTIVE && now - f->last_growth_ms >= older_than_ms &&
            tail_flush_partials(f) < 0)
            return; /* the ring is full: again at the next tick */
        open = open || joining(f);
    }
    s->joins_open = open;
}

void source_release_file(tailfile *f)
{
    source *s = f->src;
    if (s->journal) {
        if (s->a->cp)
            checkpoint_delete_file(s->a->cp, s->name, f->dev, f->ino);
    } else {
        keep_done_row(s, f);
    }
    if (f->ctr && f->ctr->refs == 2) {
        /* Only the cache and this file know the container: forget it when its
         * directory is gone. */
        _cleanup_free_ char *copy = xstrdup(f->path);
        struct stat dst;
        if (stat(dirname(copy), &dst) < 0)
            forget_container(s, f->ctr);
    }
    unlink_file(s, f);
    tail_free(f);
}

void source_finish_files(source *s)
{
    if (!s->rotations_open)
        return;
    for (tailfile *f = s->files; f; f = f->next)
        if (f->held && f->held_by && f->held_by->acked >= f->held_release_end) {
            f->held = false;
            f->held_by = NULL;
            agent_mark_dirty(s->a, f);
        }
    for (tailfile *f = s->files, *next; f; f = next) {
        next = f->next;
        /* Drops not yet announced keep the file: its marker is built from it. */
        if (f->state == TAIL_FINISHED && tail_fully_acked(f) && f->drop_events == 0)
            source_release_file(f);
    }
    bool open = false;
    for (tailfile *f = s->files; f && !open; f = f->next)
        open = f->state != TAIL_ACTIVE || f->held;
    s->rotations_open = open;
}

void source_touch_rotated(source *s)
{
    if (!s->rotations_open)
        return;
    for (tailfile *f = s->files; f; f = f->next)
        if (f->state == TAIL_ROTATED)
            source_mark_ready(s, f);
}

void source_refresh_names(source *s)
{
    for (tailfile *f = s->files; f; f = f->next)
        expand_names(s, f);
}
