/* ring.h: a source's bounded buffer of records, with the blocking or
 * non-blocking (drop oldest / drop newest) policy applied when it is full. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A record: one log event ready for a request body. Stored contiguously in
 * the ring's arena blocks; never malloc'd one by one. */
typedef struct record {
    int64_t timestamp_ms;
    void *owner;         /* the file (or journal) the record came from */
    uint64_t end_offset; /* owner position just after this record */
    uint32_t esc_len;    /* bytes of JSON-escaped message, no quotes */
    uint32_t utf8_len;   /* unescaped UTF-8 length: what CloudWatch counts */
    char msg[];          /* esc_len escaped bytes */
} record;

typedef enum ring_policy {
    RING_BLOCKING,    /* full: refuse the record, the caller stops reading */
    RING_DROP_OLDEST, /* full: evict the oldest records until the new one fits */
    RING_DROP_NEWEST, /* full: discard the incoming record */
} ring_policy;

/* Shared cap over all rings (total_buffer_limit). */
typedef struct ring_budget {
    uint64_t limit;
    uint64_t used;
} ring_budget;

/* Called for each record the policy drops, before ring_push returns. `newest`
 * is true for the incoming record that was never stored (then `r` is a
 * temporary describing it), false for a stored record evicted to make room. */
typedef void (*ring_drop_fn)(const record *r, bool newest, void *userdata);

typedef struct ring ring;

/* `limit` bounds the bytes charged (sizeof(record) + esc_len per record, see
 * ring_record_cost). `budget` may be NULL. */
ring *ring_new(uint64_t limit, ring_policy policy, ring_budget *budget, ring_drop_fn on_drop,
               void *userdata);
void ring_free(ring *r); /* releases its charge on the budget; NULL is a no-op */

typedef enum ring_push_result {
    RING_PUSHED = 0,     /* stored (possibly after dropping oldest records) */
    RING_FULL,           /* blocking policy: not stored, nothing dropped */
    RING_DROPPED_NEWEST, /* drop-newest policy: the incoming record was dropped */
} ring_push_result;

/* Store a record. A record larger than the whole limit is still admitted when
 * the ring is empty (so one huge event can never wedge a blocking source);
 * the budget may then be exceeded by that one record. With RING_DROP_OLDEST,
 * when the shared budget (not this ring's own limit) is what is exhausted and
 * this ring has nothing left to evict, the incoming record is dropped. */
ring_push_result ring_push(ring *r, int64_t timestamp_ms, void *owner, uint64_t end_offset,
                           const char *esc, uint32_t esc_len, uint32_t utf8_len);

/* Would a record with esc_len bytes be stored without dropping anything? */
bool ring_has_room(const ring *r, uint32_t esc_len);

const record *ring_peek(const ring *r); /* the oldest record, or NULL when empty */
void ring_pop(ring *r);                  /* release the oldest record */

uint64_t ring_count(const ring *r);
uint64_t ring_bytes(const ring *r); /* charged bytes */
uint64_t ring_limit(const ring *r);
void ring_set_limit(ring *r, uint64_t limit, ring_policy policy); /* takes effect for new pushes */
size_t ring_record_cost(uint32_t esc_len);
