/* loop.c: a small epoll event loop with timerfd timers and deferred calls. */
#include "loop.h"

#include <sys/timerfd.h>

#include "log.h"
#include "util.h"

typedef struct io_reg {
    int fd;
    loop_io_fn fn;
    void *userdata;
    struct io_reg *next_dead;
} io_reg;

struct loop_timer {
    loop *l;
    int fd;
    bool armed;
    loop_fn fn;
    void *userdata;
};

typedef struct deferred {
    loop_fn fn;
    void *userdata;
} deferred;

struct loop {
    int epfd;
    io_reg **regs; /* indexed by fd */
    size_t n_regs;
    io_reg *dead; /* unregistered during a dispatch batch; freed after it */
    deferred *defers;
    size_t n_defers, cap_defers;
    bool quit;
    int code;
};

loop *loop_new(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return NULL;
    loop *l = xcalloc(1, sizeof *l);
    l->epfd = fd;
    return l;
}

static void free_dead(loop *l)
{
    while (l->dead) {
        io_reg *r = l->dead;
        l->dead = r->next_dead;
        free(r);
    }
}

void loop_free(loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_regs; i++)
        free(l->regs[i]);
    free_dead(l);
    free(l->regs);
    free(l->defers);
    close(l->epfd);
    free(l);
}

int loop_add_fd(loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata)
{
    if (fd < 0)
        return -EBADF;
    if ((size_t)fd >= l->n_regs) {
        size_t n = MAX((size_t)fd + 1, l->n_regs * 2);
        l->regs = xrealloc(l->regs, n * sizeof *l->regs);
        memset(l->regs + l->n_regs, 0, (n - l->n_regs) * sizeof *l->regs);
        l->n_regs = n;
    }
    if (l->regs[fd])
        return -EEXIST;
    io_reg *r = xmalloc(sizeof *r);
    *r = (io_reg){.fd = fd, .fn = fn, .userdata = userdata};
    struct epoll_event ev = {.events = events, .data.ptr = r};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        free(r);
        return -e;
    }
    l->regs[fd] = r;
    return 0;
}

int loop_mod_fd(loop *l, int fd, uint32_t events)
{
    if (fd < 0 || (size_t)fd >= l->n_regs || !l->regs[fd])
        return -ENOENT;
    struct epoll_event ev = {.events = events, .data.ptr = l->regs[fd]};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del_fd(loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_regs || !l->regs[fd])
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    /* An event for this fd may still wait in the batch being dispatched. */
    io_reg *r = l->regs[fd];
    r->fn = NULL;
    r->next_dead = l->dead;
    l->dead = r;
    l->regs[fd] = NULL;
}

static void timer_ready(loop *l, int fd, uint32_t events, void *userdata)
{
    loop_timer *t = userdata;
    uint64_t expirations;
    if (read(fd, &expirations, sizeof expirations) != sizeof expirations)
        return;
    struct itimerspec its;
    if (timerfd_gettime(fd, &its) == 0 && its.it_interval.tv_sec == 0 &&
        its.it_interval.tv_nsec == 0)
        t->armed = false;
    t->fn(l, t->userdata);
}

loop_timer *loop_timer_new(loop *l, loop_fn fn, void *userdata)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return NULL;
    loop_timer *t = xcalloc(1, sizeof *t);
    *t = (loop_timer){.l = l, .fd = fd, .fn = fn, .userdata = userdata};
    if (loop_add_fd(l, fd, EPOLLIN, timer_ready, t) < 0) {
        close(fd);
        free(t);
        return NULL;
    }
    return t;
}

static struct timespec ms_to_ts(uint64_t ms)
{
    return (struct timespec){.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
}

void loop_timer_arm(loop_timer *t, uint64_t delay_ms, uint64_t interval_ms)
{
    struct itimerspec its = {.it_value = ms_to_ts(delay_ms ? delay_ms : 1),
                             .it_interval = ms_to_ts(interval_ms)};
    if (timerfd_settime(t->fd, 0, &its, NULL) == 0)
        t->armed = true;
}

void loop_timer_disarm(loop_timer *t)
{
    struct itimerspec its = {0};
    timerfd_settime(t->fd, 0, &its, NULL);
    t->armed = false;
}

bool loop_timer_armed(const loop_timer *t)
{
    return t->armed;
}

void loop_timer_free(loop_timer *t)
{
    if (!t)
        return;
    loop_del_fd(t->l, t->fd);
    close(t->fd);
    free(t);
}

void loop_defer(loop *l, loop_fn fn, void *userdata)
{
    for (size_t i = 0; i < l->n_defers; i++)
        if (l->defers[i].fn == fn && l->defers[i].userdata == userdata)
            return;
    if (l->n_defers == l->cap_defers) {
        l->cap_defers = l->cap_defers ? l->cap_defers * 2 : 16;
        l->defers = xrealloc(l->defers, l->cap_defers * sizeof *l->defers);
    }
    l->defers[l->n_defers++] = (deferred){fn, userdata};
}

void loop_cancel_deferred(loop *l, void *userdata)
{
    size_t j = 0;
    for (size_t i = 0; i < l->n_defers; i++)
        if (l->defers[i].userdata != userdata)
            l->defers[j++] = l->defers[i];
    l->n_defers = j;
}

static void run_deferred(loop *l)
{
    /* Callbacks may queue more; run the queue in order until it is empty,
     * taking one entry at a time so cancellation from a callback is honoured. */
    while (l->n_defers > 0 && !l->quit) {
        deferred d = l->defers[0];
        memmove(l->defers, l->defers + 1, (l->n_defers - 1) * sizeof *l->defers);
        l->n_defers--;
        d.fn(l, d.userdata);
    }
}

int loop_run(loop *l)
{
    struct epoll_event evs[64];
    l->quit = false; /* a loop may be run again after loop_quit() */
    while (!l->quit) {
        run_deferred(l);
        if (l->quit)
            break;
        int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), l->n_defers ? 0 : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return log_error_errno(errno, "event loop: epoll_wait failed: %m");
        }
        for (int i = 0; i < n && !l->quit; i++) {
            io_reg *r = evs[i].data.ptr;
            if (r->fn)
                r->fn(l, r->fd, evs[i].events, r->userdata);
        }
        free_dead(l);
    }
    return l->code;
}

void loop_quit(loop *l, int code)
{
    l->quit = true;
    l->code = code;
}

bool loop_quitting(const loop *l)
{
    return l->quit;
}
