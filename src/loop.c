/* loop.c: a small epoll event loop with timers and deferred calls.
 *
 * Timers live in a binary heap ordered by due time, and epoll_wait sleeps
 * until the earliest: no descriptor per timer. A timerfd each made every
 * stream that waits to retry cost a descriptor, so 1,000 streams in an
 * outage needed 1,000 more, and a timer that could not be created (EMFILE)
 * left its owner with nothing to wake it. */
#include "loop.h"

#include <limits.h>
#include <time.h>

#include "log.h"
#include "util.h"

typedef struct io_reg {
    int fd;
    loop_io_fn fn;
    void *userdata;
    struct io_reg *next_dead;
} io_reg;

#define NOT_ARMED SIZE_MAX

struct loop_timer {
    loop *l;
    size_t slot; /* index in l->heap, or NOT_ARMED */
    uint64_t due_us, interval_us;
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
    loop_timer **heap; /* armed timers, earliest first */
    size_t n_heap, cap_heap;
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
    for (size_t i = 0; i < l->n_heap; i++)
        l->heap[i]->slot = NOT_ARMED; /* their owners may free them later */
    free(l->heap);
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

/* ---- timers: a binary min-heap on due_us ---- */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void heap_set(loop *l, size_t i, loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i;
}

static void sift_up(loop *l, size_t i)
{
    loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (l->heap[parent]->due_us <= t->due_us)
            break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void sift_down(loop *l, size_t i)
{
    loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap)
            break;
        if (c + 1 < l->n_heap && l->heap[c + 1]->due_us < l->heap[c]->due_us)
            c++;
        if (t->due_us <= l->heap[c]->due_us)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

static void heap_push(loop *l, loop_timer *t)
{
    if (l->n_heap == l->cap_heap) {
        l->cap_heap = l->cap_heap ? l->cap_heap * 2 : 16;
        l->heap = xrealloc(l->heap, l->cap_heap * sizeof *l->heap);
    }
    heap_set(l, l->n_heap++, t);
    sift_up(l, t->slot);
}

static void heap_remove(loop *l, loop_timer *t)
{
    size_t i = t->slot;
    t->slot = NOT_ARMED;
    loop_timer *last = l->heap[--l->n_heap];
    if (i == l->n_heap)
        return;
    heap_set(l, i, last);
    sift_up(l, i);
    sift_down(l, last->slot);
}

loop_timer *loop_timer_new(loop *l, loop_fn fn, void *userdata)
{
    loop_timer *t = xcalloc(1, sizeof *t);
    *t = (loop_timer){.l = l, .slot = NOT_ARMED, .fn = fn, .userdata = userdata};
    return t;
}

void loop_timer_arm(loop_timer *t, uint64_t delay_ms, uint64_t interval_ms)
{
    if (t->slot != NOT_ARMED)
        heap_remove(t->l, t);
    t->due_us = now_us() + (delay_ms ? delay_ms : 1) * 1000u;
    t->interval_us = interval_ms * 1000u;
    heap_push(t->l, t);
}

void loop_timer_disarm(loop_timer *t)
{
    if (t->slot != NOT_ARMED)
        heap_remove(t->l, t);
}

bool loop_timer_armed(const loop_timer *t)
{
    return t->slot != NOT_ARMED;
}

void loop_timer_free(loop_timer *t)
{
    if (!t)
        return;
    loop_timer_disarm(t);
    free(t);
}

/* How long epoll_wait may sleep: until the earliest timer, rounded up to
 * whole milliseconds so that it never wakes just before it (and spins). */
static int timeout_ms(const loop *l)
{
    if (l->n_heap == 0)
        return -1;
    uint64_t now = now_us(), due = l->heap[0]->due_us;
    if (due <= now)
        return 0;
    uint64_t ms = (due - now + 999) / 1000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Fire what is due. A periodic timer is re-armed before its callback (which
 * may disarm or free it); one that fell behind fires once, not once per
 * missed period, as a timerfd read does. */
static void run_timers(loop *l)
{
    uint64_t now = now_us();
    while (l->n_heap > 0 && l->heap[0]->due_us <= now && !l->quit) {
        loop_timer *t = l->heap[0];
        heap_remove(l, t);
        if (t->interval_us) {
            t->due_us += t->interval_us;
            if (t->due_us <= now)
                t->due_us = now + t->interval_us;
            heap_push(l, t);
        }
        t->fn(l, t->userdata);
    }
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
    /* One pass over what was queued before it began, in order, one entry at a
     * time so cancellation from a callback is honoured. What the callbacks
     * queue runs in the next turn, after a look at the descriptors (epoll
     * without sleeping): a call that keeps queueing itself (a source with a
     * backlog) must not keep signals, or CloudWatch's answers and the commits
     * they bring, waiting. */
    size_t n = l->n_defers;
    while (n-- > 0 && l->n_defers > 0 && !l->quit) {
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
        int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), l->n_defers ? 0 : timeout_ms(l));
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
        run_timers(l);
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
