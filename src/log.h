/* log.h: the agent's own log, to stderr (with <N> priority prefixes under journald). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

typedef enum log_level {
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_WARNING = 4,
    LOG_LEVEL_INFO = 6,
    LOG_LEVEL_DEBUG = 7,
} log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parse "error" | "warning" | "info" | "debug"; returns -EINVAL otherwise. */
int log_level_from_string(const char *s, log_level *out);

/* Logs and returns -abs(err) so callers can `return log_error_errno(r, ...)`.
 * errno is set to abs(err) while formatting, so %m prints its text. */
int log_emit(log_level level, int err, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_emit(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_emit(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_emit(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_emit(LOG_LEVEL_WARNING, (e), __VA_ARGS__)

/* A token bucket for messages that can repeat per line or per request:
 * at most `burst` messages per `interval_ms`; the rest are counted and the
 * count is reported with the next message that gets through. */
typedef struct log_ratelimit {
    int64_t interval_ms;
    unsigned burst;
    int64_t window_start;
    unsigned emitted;
    uint64_t suppressed;
} log_ratelimit;

#define LOG_RATELIMIT_INIT {.interval_ms = 10000, .burst = 10}

/* Returns true when a message may be logged now; *suppressed receives the
 * number of messages held back since the last one that got through. */
bool log_ratelimit_ok(log_ratelimit *rl, uint64_t *suppressed);
