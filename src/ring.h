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
 * is true for the incoming record that was never stored: `r` is then a
 * temporary copy, fields and msg bytes included, valid only during the call.
 * When false, `r` is the stored oldest record, evicted right after the call.
 * The callback must not push to or pop from the ring it is called for. */
typedef void (*ring_drop_fn)(const record *r, bool newest, void *userdata);

typedef struct ring ring;

/* `limit` bounds the bytes charged (ring_record_cost(esc_len) per record:
 * sizeof(record) + esc_len rounded up to 8); memory held can exceed the charge
 * by block slack, see ring.c. `budget` may be NULL. */
ring *ring_new(uint64_t limit, ring_policy policy, ring_budget *budget, ring_drop_fn on_drop,
               void *userdata);
void ring_free(ring *r); /* releases its charge on the budget; NULL is a no-op */

typedef enum ring_push_result {
    RING_PUSHED = 0,     /* stored (possibly after dropping oldest records) */
    RING_FULL,           /* blocking policy: not stored, nothing dropped */
    RING_DROPPED_NEWEST, /* drop-newest policy: the incoming record was dropped */
} ring_push_result;

/* Store a record. An empty ring admits a record larger than its whole limit
 * (so one huge event can never wedge a source), and a RING_BLOCKING ring that
 * is empty admits even when other rings have used up the shared budget, so
 * RING_FULL is only returned while the ring holds records and the next pop of
 * this ring is always the moment to retry; the budget may be exceeded by one
 * record per such ring. Non-blocking rings that find the budget held by other
 * rings drop instead: RING_DROP_OLDEST evicts its own records only when that
 * makes room, else keeps them and drops the incoming one (RING_DROPPED_NEWEST). */
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
