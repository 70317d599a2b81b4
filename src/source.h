/* source.h: a configured source (docker, cri, file) and the files it tails.
 * Shared by source.c (discovery, start positions, metadata), tail.c (reading
 * and parsing one file) and agent.c (wiring to the loop and the output). */
#pragma once

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <zlib.h>

#include "checkpoint.h"
#include "config.h"
#include "log.h"
#include "ring.h"
#include "smap.h"
#include "util.h"

typedef struct agent agent;
typedef struct source source;

/* What a docker container's config.v2.json says about it. */
typedef struct container {
    char *id, *name;
    json_t *labels; /* object, or NULL */
    unsigned refs;
    bool skipped_logged; /* excluded; said once */
    size_t cache_i;      /* its index in source.cache */
    unsigned listed;     /* the source's scan_gen when its directory was last seen */
    /* The container's own log options (hostconfig.json) override the
     * source's mode or max_buffer_size: its records go to a ring of its own. */
    struct source *src;
    ring *ring;          /* NULL: the source's ring */
    bool blocked;        /* its blocking ring is full: its files are parked */
} container;

/* A partial event being joined: json-file entries without a trailing \n, CRI
 * P lines. One per output stream (stdout, stderr), which interleave in a file. */
typedef struct pending {
    bool active;
    uint64_t start; /* logical offset of its first line */
    uint64_t end;   /* logical offset after its last line (multiline) */
    struct tailfile *carried_from; /* a multiline event begun in the previous rotation */
    int64_t ts;
    buf esc;
    size_t utf8;
} pending;

typedef enum tail_state {
    TAIL_ACTIVE,   /* the file at `path` is this file */
    TAIL_ROTATED,  /* renamed or removed: read to its end, then finish */
    TAIL_FINISHED, /* fully read; kept until every record is acknowledged */
} tail_state;

typedef struct tailfile {
    source *src;
    struct tailfile *next, *prev;       /* source's file list */
    /* Beside `next`: the walks over every file (rescan, tick) read these. */
    tail_state state;
    bool ready, seen, eof, skipping, dirty;
    bool parked;                        /* its container's ring is full: off the ready list */
    struct tailfile *ready_next;        /* source's ready list */
    struct tailfile *dirty_next;        /* agent's checkpoint dirty list */
    struct tailfile *wait_for;          /* an older rotation to finish first */
    bool after_done;                    /* a file between it and wait_for was read before
                                         * (a restart's plan skipped it): an event open at
                                         * wait_for's end was delivered from there */
    char *path;
    char *real;                         /* realpath when it differs (symlinks), or NULL */
    char *group, *stream;               /* expanded names */
    char *out_prefix;                   /* cached output prefix (dry-run) */
    container *ctr;
    int fd;
    gzFile gz; /* a gzipped rotation */
    uint64_t dev, ino;
    unsigned char fp[CP_FINGERPRINT_MAX];
    size_t fp_len;
    int64_t last_growth_ms;             /* monotonic time the file last gave bytes */
    /* The largest size fstat reported; a file that reads past it at once
     * (procfs and the like say 0) is not truncated when it "shrinks". */
    uint64_t size_seen;
    bool size_untrusted;
    /* When its rotation was noticed: it is finished at its end once a writer
     * that still had it open has had ROTATE_GRACE_MS to let go. Counted from
     * the rotation, not from the last read: a file read late (behind an older
     * rotation) must not wait again, or every rotation adds the grace. */
    int64_t rotated_ms;

    /* Offsets are logical: base + physical; base grows by the old size at
     * each truncation so offsets stay monotonic across copy-truncate. */
    uint64_t base;
    uint64_t read_off;     /* logical offset of the next byte to read */
    buf rbuf;              /* read but not yet parsed (starts at read_off - rbuf.len) */
    size_t cut_done;       /* escaped bytes of the event at the head already pushed */
    pending pend[2];
    pending ml[2];         /* multiline events being joined, per output stream */
    uint64_t produced;     /* everything before it is in a record, dropped or skipped */
    uint64_t acked;        /* everything before it is delivered, dropped or skipped */
    uint64_t in_ring, in_flight;
    /* Drops not yet announced by a marker event in the destination stream. */
    uint64_t drop_events, drop_bytes;
    int64_t drop_first_ms, drop_last_ms;
    void *upload_stream;   /* uploader's stream for (group, stream), cached */
    int64_t delivered_ts;  /* event time of the last record delivered (status lag) */
    /* A multiline event that began here continues in the next rotation: this
     * file's checkpoint stays at the event's start until that file has
     * delivered the event (its acked offset passes held_release_end). */
    bool held;
    uint64_t held_start, held_release_end;
    struct tailfile *held_by;
} tailfile;

typedef struct source_stats {
    uint64_t events, bytes;       /* records produced */
    uint64_t delivered;           /* records acknowledged by the output */
    uint64_t corrupt_lines, repaired, split_events;
    uint64_t dropped_events, dropped_bytes;
    uint64_t rejected;            /* refused by CloudWatch for good (too old/new, invalid) */
    uint64_t drop_pending_events; /* dropped, not yet announced by a marker */
    uint64_t gaps, gap_bytes;     /* data lost before it could be read (rotated away) */
    uint64_t over_max_streams;    /* journald entries not shipped: max_streams was reached */
} source_stats;

struct source {
    agent *a;
    source_config *cfg;
    char *name;
    ring *ring;
    ring **crings;              /* containers' own rings (see container) */
    size_t n_crings;
    bool cblocked;              /* some container's ring is full */
    tailfile *files;            /* all files, oldest first */
    tailfile *ready_head, *ready_tail;
    smap by_path;               /* current path (and its real path) -> ACTIVE tailfile */
    smap by_id;                 /* "dev:ino" -> tailfile */
    container **cache;          /* docker containers seen (one reference each) */
    size_t n_cache;
    smap cache_by_id;           /* container id -> container in cache */
    unsigned scan_gen;          /* counts docker rescans (container.listed) */
    size_t n_files;             /* in `files` */
    /* What the 1 s tick has to walk the files for. Set where a file starts
     * joining an event, or leaves TAIL_ACTIVE or holds a carried event;
     * cleared by the walk that finds none. With 1,000 idle files, three
     * walks a second were most of the agent's idle CPU. */
    bool joins_open;            /* some file may be joining partials or lines */
    bool rotations_open;        /* some file may be rotated, finished or held */
    bool blocked;               /* ring full: reading paused */
    bool initial_scan_done;
    bool first_run;             /* no state at all for this source at startup */
    bool rescan_pending;
    source_stats st;
    log_ratelimit corrupt_rl, drop_rl;
    char last_error[240]; /* for `cwlogd status` */
    struct jsource *journal; /* type = journald: the reader (source_journald.c) */
    bool multiline;       /* ml_re is compiled */
    regex_t ml_re;
};

/* source.c */
source *source_new(agent *a, source_config *cfg);
void source_free(source *s);
void source_scan(source *s);          /* find files; open new ones; notice rotations */
void source_pump(source *s);          /* read ready files until done, blocked or out of budget */
void source_mark_ready(source *s, tailfile *f);
void source_add_file(source *s, tailfile *f); /* append to the file list and maps */
void source_mark_all_ready(source *s);
void source_resume(source *s);        /* the ring has room again */
void source_on_fs_event(source *s, const char *dir, const char *name, uint32_t mask);
bool source_idle(const source *s); /* read to the end: nothing ready, blocked or in the ring */
void source_flush_partials(source *s);
void source_finish_files(source *s);
void source_flush_stale_partials(source *s, int64_t older_than_ms);
void source_refresh_names(source *s); /* templates changed (reload) */
void source_apply_multiline(source *s); /* (re)compile the multiline matcher */
void source_touch_rotated(source *s); /* look again at rotated files (grace period) */  /* forget finished, fully acknowledged files */
void source_release_file(tailfile *f); /* free a finished, acknowledged file */
void container_unref(container *c);
/* The rings records of the source wait in: its own (0), then its containers'. */
size_t source_n_rings(const source *s);
ring *source_ring_at(const source *s, size_t i);
ring *source_ring_of(const tailfile *f);
size_t source_ring_count(const source *s); /* records in all of them */

/* source_journald.c: the journald source. Its records belong to "channel"
 * tailfiles (one per destination group/stream) whose offsets are entry
 * sequence numbers; the checkpoint is the cursor of the last entry before
 * the oldest one still pending in any channel. */
int journald_open(source *s);
void journald_free(source *s);
void journald_pump(source *s);
bool journald_idle(const source *s);
/* The cursor to store now, or NULL when nothing changed. */
const char *journald_checkpoint(source *s);

/* tail.c */
tailfile *tail_new(source *s, const char *path, int fd, const struct stat *st);
void tail_free(tailfile *f);
/* Read and parse up to `budget` bytes. 0: at end of file; 1: budget used,
 * more to read; -EAGAIN: the ring is full (blocking). */
int tail_read(tailfile *f, size_t budget);
/* Parse what is buffered (after a pause). 0 or -EAGAIN. */
int tail_parse_buffered(tailfile *f);
void tail_seek(tailfile *f, uint64_t physical_offset);
int tail_flush_partials(tailfile *f); /* 0 or -EAGAIN */
/* A rotated file was read to its end: ship what is joined or unterminated,
 * close it, and mark it finished. 0 or -EAGAIN. */
int tail_finish(tailfile *f);
/* A record of f left the ring for the output (counted in flight). */
void tail_record_taken(tailfile *f);
/* A record of f is done: delivered or dropped. from_ring: it was still in the
 * ring (dry-run output, or evicted by drop = oldest). */
void tail_record_done(tailfile *f, uint64_t end_offset, bool from_ring);
/* The incoming record was dropped by drop = newest: older records of the file
 * may still be pending, so the checkpoint cannot pass them. */
void tail_record_dropped_newest(tailfile *f);
/* The physical offset that is safe to store: nothing before it is pending. */
uint64_t tail_checkpoint_offset(const tailfile *f);
bool tail_fully_acked(const tailfile *f);
void tail_read_fingerprint(int fd, unsigned char *fp, size_t *len);
/* Reads the first bytes again while they are fewer than a fingerprint; a
 * change is committed with the row. */
void tail_refresh_fingerprint(tailfile *f);
bool tail_fingerprint_matches(const unsigned char *stored, size_t stored_len,
                              const unsigned char *cur, size_t cur_len);
/* One entry of a non-file source (journald): raw message bytes, escaped
 * here; offsets are the source's entry sequence numbers. 0 or -EAGAIN. */
int tail_emit_raw(tailfile *f, int64_t ts, const char *raw, size_t len, bool partial,
                  uint64_t start, uint64_t end);
void tail_skip(tailfile *f, uint64_t end); /* an entry that makes no record */
/* Is the file at its current path still this one? Updates state. */
void tail_check_rotation(tailfile *f);
