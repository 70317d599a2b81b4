/* journal.h: reading the systemd journal (the local one, or a directory of
 * journal files) for the journald source: matches, positioning, entries. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct journal journal;

/* What journal_process() saw. Both APPEND and INVALIDATE mean "call
 * journal_next() until it returns 0"; a sequential reader needs no more. */
typedef enum journal_change {
    JOURNAL_NOP = 0,        /* nothing changed (wake-ups can be spurious) */
    JOURNAL_APPEND = 1,     /* entries were appended */
    JOURNAL_INVALIDATE = 2, /* files were added or removed (rotation, vacuuming) */
} journal_change;

/* The current entry. Every pointer is owned by the journal and stays valid
 * until the next journal_next(), journal_seek_*() or journal_free(); copy
 * what must live longer (the cursor of a record waiting for CloudWatch). */
typedef struct journal_entry {
    uint64_t realtime_usec; /* __REALTIME_TIMESTAMP: microseconds since the epoch */
    /* MESSAGE exactly as stored: any bytes, NULs and invalid UTF-8 included
     * (a binary field); a NUL follows the last byte. Not truncated: the
     * caller applies its own event size limit. "" when the entry has none. */
    const char *message;
    size_t message_len;
    bool has_message;   /* false: the entry has no MESSAGE field */
    const char *cursor; /* for journal_seek_after_cursor() / the checkpoint */
} journal_entry;

/* Open the local journal (dir NULL: SD_JOURNAL_LOCAL_ONLY, as journalctl) or
 * the journal files in `dir` and its machine-id subdirectories (as
 * `journalctl -D`). The directory may be empty: files that appear later are
 * picked up by journal_process().
 *
 * Filter, like journalctl:
 * - matches: "FIELD=value" strings; the same field repeated is OR, different
 *   fields are AND. FIELD follows the journal's rules: A-Z, 0-9 and '_', not
 *   starting with a digit, at most 64 bytes; "__" fields (cursor,
 *   timestamps) cannot be matched. The value may be empty.
 * - units: unit names, each one more _SYSTEMD_UNIT= match (so OR among
 *   themselves and with a _SYSTEMD_UNIT match, AND with other fields); a
 *   name without a '.' gets ".service" appended, as `journalctl -u` does.
 * - priority_max: 0..7 keeps entries whose PRIORITY is 0..priority_max; it
 *   is ANDed with everything above (it never widens a PRIORITY match), and
 *   entries without PRIORITY are excluded. -1: no ceiling.
 * Returns 0, -EINVAL for a bad match/unit/priority (logged, naming it), or
 * the negative errno of opening. The position is the head; seek before
 * reading to start elsewhere. */
int journal_open(const char *dir, char *const *matches, size_t n_matches, char *const *units,
                 size_t n_units, int priority_max, journal **out);
void journal_free(journal *j); /* NULL is a no-op */

/* For the event loop. Register journal_fd() once (it does not change) for
 * journal_events() (EPOLLIN; a poll(2) mask, equal to the epoll one); on
 * some file systems (network ones) changes are not signalled and
 * journal_timeout_ms() asks for a wake-up after that many milliseconds
 * (-1: none needed; re-read it after every journal_process()). On every
 * wake-up, by the fd or the timeout, call journal_process() and, unless it
 * returns JOURNAL_NOP, journal_next() until it returns 0. Skipping
 * journal_process() leaves the fd readable. */
int journal_fd(journal *j);
int journal_events(journal *j);
int journal_timeout_ms(journal *j);
int journal_process(journal *j); /* a journal_change, or a negative errno */

/* Positioning. head: the next read returns the oldest entry; tail: only
 * entries added after this call. after_cursor: the next read returns the
 * entry after the cursor's. Returns 0 when the cursor's entry was found, 1
 * when it was not (vacuumed or rotated away, or no longer matching): reading
 * then starts at the first entry after the cursor's position -- after
 * vacuuming, the oldest one left -- and the caller should count a possible
 * gap. -EINVAL for a malformed cursor, another negative errno on failure. */
int journal_seek_head(journal *j);
int journal_seek_tail(journal *j);
int journal_seek_after_cursor(journal *j, const char *cursor);
/* Right after journal_seek_tail(): the cursor of the last entry (malloc'd),
 * or NULL when the journal is empty. What a first run stores so that the
 * next run starts after it. */
char *journal_tail_cursor(journal *j);

/* The cursor of the last entry of the whole journal (the same files, the
 * filter ignored) in *cursor (malloc'd), or NULL when the journal is empty.
 * Where a first run with start_at = end starts: it can be stored before any
 * entry matches. 0 or a negative errno. */
int journal_end_cursor(journal *j, char **cursor);
/* Position after a place in the journal (from journal_end_cursor), not after
 * a delivered entry: the next read returns the first matching entry after
 * the cursor's, and nothing is reported as a gap (the cursor's entry need not
 * match the filter). 0 or a negative errno. */
int journal_seek_after_position(journal *j, const char *cursor);

/* Move to the next entry matching the filter: 1 with *e filled in, 0 when
 * there is nothing more now (wait for the fd), a negative errno on failure
 * (logged; an entry that could not be read is passed over, so calling again
 * goes on with the next one). */
int journal_next(journal *j, journal_entry *e);

/* Another field of the current entry (CONTAINER_ID, CONTAINER_NAME,
 * CONTAINER_PARTIAL_MESSAGE, _SYSTEMD_UNIT, SYSLOG_IDENTIFIER, PRIORITY, ...):
 * its value's bytes followed by a NUL, *len (may be NULL) set to the length;
 * NULL when the entry has no such field or there is no current entry. Valid
 * as long as the entry (see journal_entry). With repeated fields, the first. */
const char *journal_field(journal *j, const char *name, size_t *len);
