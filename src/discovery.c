/* discovery.c: one inotify instance for the agent; watched directories are
 * shared between sources and reference-counted per subscriber. */
#include "discovery.h"

#include <sys/inotify.h>

#include "log.h"
#include "smap.h"
#include "util.h"

#define WATCH_MASK                                                                                 \
    (IN_MODIFY | IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_CLOSE_WRITE | IN_ATTRIB)

typedef struct watch {
    int wd;
    char *dir;
    void **subs;
    size_t n_subs;
} watch;

struct discovery {
    loop *l;
    int fd;
    discovery_fn fn;
    void *userdata;
    smap by_dir; /* dir -> watch */
    watch **by_wd;
    size_t n_wd;
    size_t count;
};

static void drop_watch(discovery *d, watch *w, bool rm)
{
    if (rm)
        inotify_rm_watch(d->fd, w->wd);
    smap_remove(&d->by_dir, w->dir);
    if ((size_t)w->wd < d->n_wd && d->by_wd[w->wd] == w)
        d->by_wd[w->wd] = NULL;
    free(w->dir);
    free(w->subs);
    free(w);
    d->count--;
}

static void dispatch(discovery *d, watch *w, const char *name, uint32_t mask)
{
    /* The callback may unwatch (and free) w: iterate over a copy. */
    size_t n = w->n_subs;
    void *subs[n ? n : 1];
    memcpy(subs, w->subs, n * sizeof *subs);
    _cleanup_free_ char *dir = xstrdup(w->dir);
    for (size_t i = 0; i < n; i++)
        d->fn(subs[i], dir, name, mask, d->userdata);
}

static void on_inotify(loop *l, int fd, uint32_t events, void *userdata)
{
    discovery *d = userdata;
    char evbuf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, evbuf, sizeof evbuf);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                log_error_errno(errno, "inotify: read failed: %m");
            return;
        }
        for (char *p = evbuf; p < evbuf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                log_warning("inotify: event queue overflowed; rescanning every source");
                /* Tell every subscriber once. */
                for (size_t i = 0; i < d->n_wd; i++) {
                    watch *w = d->by_wd[i];
                    if (w)
                        dispatch(d, w, NULL, IN_Q_OVERFLOW);
                }
                continue;
            }
            if (ev->wd < 0 || (size_t)ev->wd >= d->n_wd || !d->by_wd[ev->wd])
                continue;
            watch *w = d->by_wd[ev->wd];
            if (ev->mask & IN_IGNORED) {
                /* The directory is gone: its watch was removed by the kernel. */
                dispatch(d, w, NULL, ev->mask);
                if ((size_t)ev->wd < d->n_wd && d->by_wd[ev->wd] == w)
                    drop_watch(d, w, false);
                continue;
            }
            dispatch(d, w, ev->len ? ev->name : NULL, ev->mask);
        }
    }
}

discovery *discovery_new(loop *l, discovery_fn fn, void *userdata)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log_error_errno(errno, "inotify: cannot initialise: %m");
        return NULL;
    }
    discovery *d = xcalloc(1, sizeof *d);
    *d = (discovery){.l = l, .fd = fd, .fn = fn, .userdata = userdata};
    if (l && loop_add_fd(l, fd, EPOLLIN, on_inotify, d) < 0) {
        close(fd);
        free(d);
        return NULL;
    }
    return d;
}

void discovery_free(discovery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_wd; i++)
        if (d->by_wd[i])
            drop_watch(d, d->by_wd[i], false);
    free(d->by_wd);
    smap_clear(&d->by_dir);
    if (d->l)
        loop_del_fd(d->l, d->fd);
    close(d->fd);
    free(d);
}

int discovery_watch(discovery *d, const char *dir, void *subscriber)
{
    watch *w = smap_get(&d->by_dir, dir);
    if (!w) {
        int wd = inotify_add_watch(d->fd, dir, WATCH_MASK | IN_ONLYDIR);
        if (wd < 0)
            return -errno;
        if ((size_t)wd < d->n_wd && d->by_wd[wd]) {
            /* Same inode reached by another path (symlink): share it. */
            w = d->by_wd[wd];
        } else {
            if ((size_t)wd >= d->n_wd) {
                size_t n = MAX((size_t)wd + 1, d->n_wd * 2);
                d->by_wd = xrealloc(d->by_wd, n * sizeof *d->by_wd);
                memset(d->by_wd + d->n_wd, 0, (n - d->n_wd) * sizeof *d->by_wd);
                d->n_wd = n;
            }
            w = xcalloc(1, sizeof *w);
            w->wd = wd;
            w->dir = xstrdup(dir);
            d->by_wd[wd] = w;
            smap_put(&d->by_dir, dir, w);
            d->count++;
        }
    }
    for (size_t i = 0; i < w->n_subs; i++)
        if (w->subs[i] == subscriber)
            return 0;
    w->subs = xrealloc(w->subs, (w->n_subs + 1) * sizeof *w->subs);
    w->subs[w->n_subs++] = subscriber;
    return 0;
}

static void remove_sub(discovery *d, watch *w, void *subscriber)
{
    for (size_t i = 0; i < w->n_subs; i++)
        if (w->subs[i] == subscriber) {
            w->subs[i] = w->subs[--w->n_subs];
            break;
        }
    if (w->n_subs == 0)
        drop_watch(d, w, true);
}

void discovery_unwatch(discovery *d, const char *dir, void *subscriber)
{
    watch *w = smap_get(&d->by_dir, dir);
    if (w)
        remove_sub(d, w, subscriber);
}

void discovery_unwatch_all(discovery *d, void *subscriber)
{
    for (size_t i = 0; i < d->n_wd; i++)
        if (d->by_wd[i])
            remove_sub(d, d->by_wd[i], subscriber);
}

size_t discovery_watch_count(const discovery *d)
{
    return d->count;
}
