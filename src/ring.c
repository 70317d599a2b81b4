/* ring.c: a source's FIFO of records kept in arena blocks, charged against the
 * ring's own limit and the shared budget, with the full-ring policies. */
#include "ring.h"

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>

#include "util.h"

/* Records are packed into 64 KiB blocks (header included, so the allocation is
 * exactly 64 KiB); a record that does not fit a standard block gets a block of
 * exactly its size. Memory held is therefore the charged bytes plus slack:
 * the unused tail of each block (smaller than the record that did not fit
 * there), the already-popped front of the oldest block, and at most
 * RING_SPARE_MAX spare blocks. With events far smaller than a block this is a
 * few percent plus one or two blocks; in the worst case (every record just
 * over half a block) it approaches twice the charge. */
#define RING_BLOCK_BYTES ((size_t)64 * 1024)
/* One spare is enough to avoid malloc churn when a steady producer and
 * consumer keep crossing a block boundary, and keeps an idle ring small. */
#define RING_SPARE_MAX 1
#define RING_ALIGN alignof(record)

typedef struct block {
    struct block *next;
    size_t cap;  /* bytes usable in data */
    size_t head; /* offset of the oldest record still held */
    size_t tail; /* offset where the next record goes */
    unsigned char data[];
} block;

_Static_assert(offsetof(block, data) % alignof(record) == 0, "block data must be record-aligned");
_Static_assert(sizeof(record) % alignof(record) == 0, "record header must keep alignment");

#define BLOCK_CAP (RING_BLOCK_BYTES - offsetof(block, data))

struct ring {
    block *first, *last; /* oldest .. newest; never holds an empty block */
    block *spare;        /* drained standard blocks kept for reuse */
    unsigned n_spare;
    uint64_t count;
    uint64_t bytes; /* charged, the sum of ring_record_cost() of held records */
    uint64_t limit;
    ring_policy policy;
    ring_budget *budget;
    ring_drop_fn on_drop;
    void *userdata;
};

size_t ring_record_cost(uint32_t esc_len)
{
    return (sizeof(record) + (size_t)esc_len + RING_ALIGN - 1) & ~(RING_ALIGN - 1);
}

ring *ring_new(uint64_t limit, ring_policy policy, ring_budget *budget, ring_drop_fn on_drop,
               void *userdata)
{
    ring *r = xmalloc(sizeof(*r));
    *r = (ring){
        .limit = limit,
        .policy = policy,
        .budget = budget,
        .on_drop = on_drop,
        .userdata = userdata,
    };
    return r;
}

static void block_chain_free(block *b)
{
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

void ring_free(ring *r)
{
    if (!r)
        return;
    if (r->budget)
        r->budget->used -= r->bytes;
    block_chain_free(r->first);
    block_chain_free(r->spare);
    free(r);
}

static block *block_alloc(size_t cap)
{
    block *b = xmalloc(offsetof(block, data) + cap);
    *b = (block){.cap = cap};
    return b;
}

/* A block with room for `cost` bytes: a spare one when it is a standard size. */
static block *block_get(ring *r, size_t cost)
{
    if (cost > BLOCK_CAP)
        return block_alloc(cost);
    if (r->spare) {
        block *b = r->spare;
        r->spare = b->next;
        r->n_spare--;
        *b = (block){.cap = BLOCK_CAP};
        return b;
    }
    return block_alloc(BLOCK_CAP);
}

static void block_release(ring *r, block *b)
{
    if (b->cap == BLOCK_CAP && r->n_spare < RING_SPARE_MAX) {
        b->next = r->spare;
        r->spare = b;
        r->n_spare++;
        return;
    }
    free(b);
}

/* Overflow-safe "used + cost <= limit". */
static bool within(uint64_t used, size_t cost, uint64_t limit)
{
    return cost <= limit && used <= limit - cost;
}

static bool budget_allows(const ring *r, size_t cost)
{
    return !r->budget || within(r->budget->used, cost, r->budget->limit);
}

/* Would a record of `cost` be stored now without dropping anything? An empty
 * ring is special: a record larger than the ring's own limit, or larger than
 * the whole budget while no other ring holds any of it, is admitted so one
 * huge event never wedges a source. A blocking ring that is empty admits even
 * when other rings have used up the budget: RING_FULL is only ever returned
 * while the ring holds records, so the caller can always resume when its own
 * ring is popped. The budget may be exceeded by at most one record per
 * blocking ring. Non-blocking rings drop instead. */
static bool admissible(const ring *r, size_t cost)
{
    if (within(r->bytes, cost, r->limit) && budget_allows(r, cost))
        return true;
    if (r->count > 0)
        return false;
    if (r->policy == RING_BLOCKING)
        return true;
    return !r->budget || r->budget->used == 0 || budget_allows(r, cost);
}

/* Could evicting this ring's own records make room? When other rings hold so
 * much of the budget that even an empty ring would refuse the record,
 * evicting would only lose more data. */
static bool eviction_can_help(const ring *r, size_t cost)
{
    if (!r->budget)
        return true;
    uint64_t others = r->budget->used - r->bytes;
    return others == 0 || within(others, cost, r->budget->limit);
}

static record *record_write(void *at, int64_t timestamp_ms, void *owner, uint64_t end_offset,
                            const char *esc, uint32_t esc_len, uint32_t utf8_len)
{
    record *rec = at;
    rec->timestamp_ms = timestamp_ms;
    rec->owner = owner;
    rec->end_offset = end_offset;
    rec->esc_len = esc_len;
    rec->utf8_len = utf8_len;
    if (esc_len > 0)
        memcpy(rec->msg, esc, esc_len);
    return rec;
}

/* Report an incoming record that is not stored. The callback gets a real
 * record (bytes included) built in scratch space: the free tail of the newest
 * block, a spare block, or for an oversize record a one-off allocation. It is
 * valid only during the call. */
static void drop_incoming(ring *r, int64_t timestamp_ms, void *owner, uint64_t end_offset,
                          const char *esc, uint32_t esc_len, uint32_t utf8_len)
{
    if (!r->on_drop)
        return;
    size_t cost = ring_record_cost(esc_len);
    _cleanup_free_ block *own = NULL;
    void *scratch;

    if (r->last && r->last->cap - r->last->tail >= cost)
        scratch = r->last->data + r->last->tail;
    else if (cost <= BLOCK_CAP) {
        if (!r->spare) {
            r->spare = block_alloc(BLOCK_CAP);
            r->n_spare = 1;
        }
        scratch = r->spare->data;
    } else {
        own = block_alloc(cost);
        scratch = own->data;
    }
    r->on_drop(record_write(scratch, timestamp_ms, owner, end_offset, esc, esc_len, utf8_len), true,
               r->userdata);
}

static void evict_oldest(ring *r)
{
    if (r->on_drop)
        r->on_drop(ring_peek(r), false, r->userdata);
    ring_pop(r);
}

static void store(ring *r, size_t cost, int64_t timestamp_ms, void *owner, uint64_t end_offset,
                  const char *esc, uint32_t esc_len, uint32_t utf8_len)
{
    block *b = r->last;
    if (!b || b->cap - b->tail < cost) {
        b = block_get(r, cost);
        if (r->last)
            r->last->next = b;
        else
            r->first = b;
        r->last = b;
    }
    record_write(b->data + b->tail, timestamp_ms, owner, end_offset, esc, esc_len, utf8_len);
    b->tail += cost;
    r->count++;
    r->bytes += cost;
    if (r->budget)
        r->budget->used += cost;
}

ring_push_result ring_push(ring *r, int64_t timestamp_ms, void *owner, uint64_t end_offset,
                           const char *esc, uint32_t esc_len, uint32_t utf8_len)
{
    assert(r);
    assert(esc || esc_len == 0);
    size_t cost = ring_record_cost(esc_len);

    if (!admissible(r, cost)) {
        if (r->policy == RING_BLOCKING)
            return RING_FULL;
        if (r->policy == RING_DROP_OLDEST && eviction_can_help(r, cost)) {
            /* Terminates: an emptied ring admits once eviction can help. */
            while (!admissible(r, cost))
                evict_oldest(r);
        } else {
            /* Drop-newest, or drop-oldest when the rest of the budget is held
             * by other rings: keep what we have, lose only the new record. */
            drop_incoming(r, timestamp_ms, owner, end_offset, esc, esc_len, utf8_len);
            return RING_DROPPED_NEWEST;
        }
    }
    store(r, cost, timestamp_ms, owner, end_offset, esc, esc_len, utf8_len);
    return RING_PUSHED;
}

bool ring_has_room(const ring *r, uint32_t esc_len)
{
    assert(r);
    return admissible(r, ring_record_cost(esc_len));
}

const record *ring_peek(const ring *r)
{
    assert(r);
    if (r->count == 0)
        return NULL;
    return (const record *)(r->first->data + r->first->head);
}

void ring_pop(ring *r)
{
    assert(r);
    assert(r->count > 0);
    if (r->count == 0)
        return;
    block *b = r->first;
    const record *rec = (const record *)(b->data + b->head);
    size_t cost = ring_record_cost(rec->esc_len);

    b->head += cost;
    r->count--;
    r->bytes -= cost;
    if (r->budget)
        r->budget->used -= cost;
    if (b->head == b->tail) {
        r->first = b->next;
        if (!r->first)
            r->last = NULL;
        block_release(r, b);
    }
}

uint64_t ring_count(const ring *r)
{
    return r->count;
}

uint64_t ring_bytes(const ring *r)
{
    return r->bytes;
}

uint64_t ring_limit(const ring *r)
{
    return r->limit;
}

void ring_set_limit(ring *r, uint64_t limit, ring_policy policy)
{
    assert(r);
    /* Records already held stay even when above the new limit: dropping them
     * here would bypass the policy's accounting at the caller. */
    r->limit = limit;
    r->policy = policy;
}
