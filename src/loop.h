/* loop.h: the agent's single event loop: epoll over fds, timers (kept in the
 * loop, no descriptor each) and deferred callbacks that run once the current
 * events are handled. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef struct loop loop;
typedef struct loop_timer loop_timer;

typedef void (*loop_io_fn)(loop *l, int fd, uint32_t events, void *userdata);
typedef void (*loop_fn)(loop *l, void *userdata);

loop *loop_new(void);
void loop_free(loop *l);

/* Watch fd for EPOLLIN/EPOLLOUT...; one registration per fd. */
int loop_add_fd(loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata);
int loop_mod_fd(loop *l, int fd, uint32_t events);
void loop_del_fd(loop *l, int fd);

/* A timer fires fn after delay_ms, then every interval_ms (0 = once); arming
 * an armed timer starts it over. Creating one takes no descriptor and does
 * not fail. A timer may be freed after its loop. */
loop_timer *loop_timer_new(loop *l, loop_fn fn, void *userdata);
void loop_timer_arm(loop_timer *t, uint64_t delay_ms, uint64_t interval_ms);
void loop_timer_disarm(loop_timer *t);
bool loop_timer_armed(const loop_timer *t);
void loop_timer_free(loop_timer *t);

/* Run fn once after the current batch of events; the same (fn, userdata)
 * pair queued twice before it runs is run once. A call queued by a deferred
 * call runs in the next turn, after the descriptors are polled (without
 * waiting) and their events handled. */
void loop_defer(loop *l, loop_fn fn, void *userdata);
/* Drop queued deferred calls for userdata (when it is about to be freed). */
void loop_cancel_deferred(loop *l, void *userdata);

/* Run until loop_quit(); returns the code given to it. */
int loop_run(loop *l);
void loop_quit(loop *l, int code);
bool loop_quitting(const loop *l);
