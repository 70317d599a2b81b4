/* cri.h: CRI (containerd/CRI-O) log lines: "<RFC3339Nano> <stdout|stderr> <P|F> <message>". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cri_entry {
    int64_t time_ms;     /* from the timestamp */
    int stream;          /* 1 = stdout, 2 = stderr */
    bool partial;        /* tag P (more follows); F = full; a tag list "F:x" counts its first part */
    const char *msg;     /* raw message bytes (not escaped), points into the line */
    size_t msg_len;
} cri_entry;

/* Parse one line (without its '\n'). 0, or -EINVAL for a malformed line
 * (bad timestamp, unknown stream, missing tag or separator). An empty message
 * after the tag ("... F " or "... F") is valid. */
int cri_parse_line(const char *line, size_t len, cri_entry *e);
