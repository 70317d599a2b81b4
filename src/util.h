/* util.h: small helpers shared by every module (cleanup attributes, sizes). */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Move ownership out of a variable that has a cleanup attribute. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _p = (p);                                                                    \
        (p) = NULL;                                                                                \
        _p;                                                                                        \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _fd = (fd);                                                                            \
        (fd) = -1;                                                                                 \
        _fd;                                                                                       \
    })

static inline void freep(void *p)
{
    free(*(void **)p);
}
static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Allocation failure is not a condition this agent can run through. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
/* s as it may be shown (log, `cwlogd status`, metrics): control bytes become
 * \xHH, so a file name cannot forge a line or drive a terminal. Freshly
 * allocated; NULL gives NULL. */
char *xstrescape(const char *s);
/* The same, in place of vsnprintf's output: `out` holds at most n - 1 bytes. */
void strescape_to(char *out, size_t n, const char *s);

/* Growable byte buffer. */
typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

void buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *p, size_t n);
void buf_appendc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_consume(buf *b, size_t n); /* drop n bytes from the front */
void buf_free(buf *b);
void buf_compact(buf *b); /* give back the capacity beyond len (all of it when empty) */

/* Milliseconds since the epoch (CLOCK_REALTIME) and monotonic milliseconds. */
int64_t now_realtime_ms(void);
int64_t now_monotonic_ms(void);
