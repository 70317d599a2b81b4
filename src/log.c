/* log.c: leveled logging to stderr; sd-daemon <N> prefixes when stderr is the journal. */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>

static log_level current_level = LOG_LEVEL_INFO;
static int use_prefix = -1;

void log_set_level(log_level level)
{
    current_level = level;
}

log_level log_get_level(void)
{
    return current_level;
}

int log_level_from_string(const char *s, log_level *out)
{
    static const struct {
        const char *name;
        log_level level;
    } names[] = {
        {"error", LOG_LEVEL_ERROR},
        {"warning", LOG_LEVEL_WARNING},
        {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    return -EINVAL;
}

int log_emit(log_level level, int err, const char *fmt, ...)
{
    int saved = errno;
    if (err < 0)
        err = -err;
    if (level > current_level)
        goto out;
    if (use_prefix < 0)
        use_prefix = getenv("JOURNAL_STREAM") != NULL;

    char line[4096];
    size_t n = 0;
    if (use_prefix)
        n = (size_t)snprintf(line, sizeof line, "<%d>", (int)level);
    else {
        static const char *const tags[] = {[LOG_LEVEL_ERROR] = "error: ",
                                           [LOG_LEVEL_WARNING] = "warning: ",
                                           [LOG_LEVEL_INFO] = "",
                                           [LOG_LEVEL_DEBUG] = "debug: "};
        n = (size_t)snprintf(line, sizeof line, "cwlogd: %s", tags[level]);
    }
    /* One message, one line: a file name with a newline or an escape
     * sequence in it cannot forge another line or drive a terminal. */
    char msg[sizeof line];
    va_list ap;
    va_start(ap, fmt);
    errno = err;
    int w = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w > 0) {
        strescape_to(line + n, sizeof line - n - 1, msg);
        n += strlen(line + n);
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
out:
    errno = saved;
    return -err;
}

bool log_ratelimit_ok(log_ratelimit *rl, uint64_t *suppressed)
{
    int64_t now = now_monotonic_ms();
    if (now - rl->window_start >= rl->interval_ms) {
        rl->window_start = now;
        rl->emitted = 0;
    }
    if (rl->emitted < rl->burst) {
        rl->emitted++;
        if (suppressed)
            *suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
    }
    rl->suppressed++;
    return false;
}
