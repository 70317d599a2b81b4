/* jsonfile.h: Docker json-file log lines: {"log":"...","stream":"stdout","time":"..."}. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum jsonfile_result {
    JSONFILE_OK = 0,
    JSONFILE_NEEDS_REPAIR, /* "log" is well-formed but needs jsonstr_repair() */
    JSONFILE_CORRUPT,      /* not a json-file entry: bad JSON, no "log" string,
                              invalid escape in "log" */
} jsonfile_result;

typedef struct jsonfile_entry {
    const char *log;   /* escaped content of "log", points into the line, without
                          the trailing \n escape when there is one */
    size_t log_len;    /* escaped bytes */
    size_t utf8_len;   /* unescaped UTF-8 length (without the trailing newline) */
    bool partial;      /* "log" did not end with \n: more follows in the next entry */
    int stream;        /* 1 = stdout, 2 = stderr, 0 = absent/other */
    int64_t time_ms;   /* "time" in ms since the epoch, or -1 when absent/invalid */
} jsonfile_entry;

/* Parse one line (without its '\n'). Keys may come in any order; unknown keys
 * (e.g. "attrs") are skipped by a structural scan of their values. No DOM, no
 * allocation. */
jsonfile_result jsonfile_parse_line(const char *line, size_t len, jsonfile_entry *e);
