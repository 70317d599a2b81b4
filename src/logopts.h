/* logopts.h: a container's own Docker log options (hostconfig.json ->
 * LogConfig.Config): `mode` and `max-buffer-size`, which override the
 * source's mode and max_buffer_size for that container. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct logopts {
    bool has_mode;
    bool blocking;           /* with has_mode */
    uint64_t max_buffer_size; /* 0: not set */
} logopts;

/* Docker's size syntax (go-units RAMInBytes): a number, optionally with a
 * fraction, an optional space, then k, m, g, t or p (powers of 1024) with an
 * optional "i" and "b", any case; "b" alone or nothing means bytes. */
int logopts_parse_size(const char *s, uint64_t *out);

/* Read the options from a container's hostconfig.json. Returns 0 (fields
 * not found stay unset), -ENOENT when the file cannot be opened, or -EINVAL
 * with a reason in why: the file is not JSON, or an option has a value Docker
 * would have refused (the valid one of the two is still set). */
int logopts_load(const char *path, logopts *o, char *why, size_t why_len);
