/* test_ring.c: the ring's FIFO storage, limit/budget accounting and the
 * blocking, drop-oldest and drop-newest policies, checked against a model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ring.h"
#include "util.h"

#include "testutil.h"

#ifdef __SANITIZE_ADDRESS__
/* The allocator's own count: glibc's mallinfo does not see ASan's heap. From
 * sanitizer/allocator_interface.h, which not every toolchain installs. */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t allocated_bytes(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t allocated_bytes(void)
{
    return mallinfo2().uordblks;
}
#endif

/* Record payloads are slices of one pseudo-random pool, chosen by record id,
 * so content checks are cheap and any mix-up between records shows. */
#define POOL_WINDOW 65536u
#define MAX_LEN 70000u
static unsigned char pool[POOL_WINDOW + MAX_LEN];

static uint64_t rng_below(uint64_t n)
{
    return rnd() % n;
}

static int setup_pool(void **state)
{
    rng_state = 12345;
    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (unsigned char)rnd();
    return 0;
}

#define OWNER ((void *)&pool)

static const char *content_of(uint64_t id)
{
    return (const char *)pool + (id * 7919u) % POOL_WINDOW;
}

static ring_push_result push_id(ring *r, uint64_t id, uint32_t len)
{
    return ring_push(r, (int64_t)id, OWNER, id * 10 + 1, content_of(id), len, (uint32_t)(id * 3));
}

static void check_record(const record *rec, uint64_t id, uint32_t len)
{
    assert_non_null(rec);
    assert_int_equal((uintptr_t)rec % 8, 0);
    assert_int_equal(rec->timestamp_ms, (int64_t)id);
    assert_ptr_equal(rec->owner, OWNER);
    assert_int_equal(rec->end_offset, id * 10 + 1);
    assert_int_equal(rec->esc_len, len);
    assert_int_equal(rec->utf8_len, (uint32_t)(id * 3));
    assert_memory_equal(rec->msg, content_of(id), len);
}

/* What on_drop saw. */
typedef struct drop_entry {
    uint64_t id;
    uint32_t len;
    bool newest;
} drop_entry;

typedef struct drops {
    drop_entry *ev;
    size_t n, cap;
    uint64_t bytes; /* sum of ring_record_cost() of dropped records */
} drops;

static void on_drop(const record *rec, bool newest, void *userdata)
{
    drops *d = userdata;
    /* Every dropped record, the temporary for a dropped newest one included,
     * carries its real fields and bytes. */
    check_record(rec, (uint64_t)rec->timestamp_ms, rec->esc_len);
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->ev = xrealloc(d->ev, d->cap * sizeof(*d->ev));
    }
    d->ev[d->n++] = (drop_entry){(uint64_t)rec->timestamp_ms, rec->esc_len, newest};
    d->bytes += ring_record_cost(rec->esc_len);
}

static void drops_reset(drops *d)
{
    d->n = 0;
    d->bytes = 0;
}

static void test_record_cost_is_header_plus_payload_rounded_up_to_8(void **state)
{
    for (uint32_t len = 0; len < 100; len++) {
        size_t c = ring_record_cost(len);
        assert_int_equal(c % 8, 0);
        assert_true(c >= sizeof(record) + len);
        assert_true(c < sizeof(record) + len + 8);
    }
    assert_int_equal(ring_record_cost(UINT32_MAX) % 8, 0);
    assert_true(ring_record_cost(UINT32_MAX) >= sizeof(record) + (size_t)UINT32_MAX);
}

static void test_fifo_order_and_content_survive_many_blocks_and_block_reuse(void **state)
{
    ring *r = ring_new(UINT64_MAX, RING_BLOCKING, NULL, NULL, NULL);
    uint64_t next_push = 0, next_pop = 0;
    uint64_t bytes = 0;

    /* Grow over many blocks while popping (2 pops per 3 pushes), so drained
     * blocks are recycled while later blocks are still filling. */
    for (int i = 0; i < 30000; i++) {
        uint32_t len = (uint32_t)((next_push * 37) % 3000);
        assert_int_equal(push_id(r, next_push, len), RING_PUSHED);
        bytes += ring_record_cost(len);
        next_push++;
        if (i % 3 != 0) {
            uint32_t plen = (uint32_t)((next_pop * 37) % 3000);
            check_record(ring_peek(r), next_pop, plen);
            ring_pop(r);
            bytes -= ring_record_cost(plen);
            next_pop++;
        }
        assert_int_equal(ring_bytes(r), bytes);
    }
    assert_int_equal(ring_count(r), next_push - next_pop);
    assert_true(ring_bytes(r) > 4 * 65536); /* really spans many blocks */

    /* Ping-pong: one in, one out, across block boundaries many times. */
    for (int i = 0; i < 20000; i++) {
        uint32_t len = (uint32_t)((next_push * 37) % 3000);
        assert_int_equal(push_id(r, next_push++, len), RING_PUSHED);
        uint32_t plen = (uint32_t)((next_pop * 37) % 3000);
        check_record(ring_peek(r), next_pop++, plen);
        ring_pop(r);
    }

    while (next_pop < next_push) {
        check_record(ring_peek(r), next_pop, (uint32_t)((next_pop * 37) % 3000));
        ring_pop(r);
        next_pop++;
    }
    assert_null(ring_peek(r));
    assert_int_equal(ring_count(r), 0);
    assert_int_equal(ring_bytes(r), 0);
    ring_free(r);
}

static void test_steady_push_pop_and_idle_ring_hold_little_memory(void **state)
{
    ring *r = ring_new(UINT64_MAX, RING_BLOCKING, NULL, NULL, NULL);
    size_t base = allocated_bytes();

    /* An oversize record's own block is not kept once popped. */
    assert_int_equal(push_id(r, 0, MAX_LEN), RING_PUSHED);
    assert_true(allocated_bytes() - base >= MAX_LEN);
    check_record(ring_peek(r), 0, MAX_LEN);
    ring_pop(r);
    assert_true(allocated_bytes() - base < 1024);

    /* 10 MB through a ring that never holds more than a few records: blocks
     * must be recycled, not accumulated. */
    uint64_t id = 1, popped = 1;
    size_t peak = 0;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(push_id(r, id++, 1000), RING_PUSHED);
        if (ring_count(r) > 3) {
            check_record(ring_peek(r), popped++, 1000);
            ring_pop(r);
        }
        size_t now = allocated_bytes();
        if (now > peak)
            peak = now;
    }
    assert_true(peak - base < 3 * 65536);

    /* Fill 1 MiB, then drain: an idle ring keeps at most one spare block. */
    for (int i = 0; i < 1024; i++)
        assert_int_equal(push_id(r, id++, 1000), RING_PUSHED);
    assert_true(allocated_bytes() - base > 1000 * 1000);
    while (ring_count(r) > 0) {
        check_record(ring_peek(r), popped++, 1000);
        ring_pop(r);
    }
    assert_true(allocated_bytes() - base <= 65536 + 1024);
    ring_free(r);
}

#define C100 ring_record_cost(100)

static void test_blocking_returns_full_at_limit_and_accepts_after_pop(void **state)
{
    drops d = {0};
    ring *r = ring_new(10 * C100, RING_BLOCKING, NULL, on_drop, &d);

    for (uint64_t id = 0; id < 10; id++) {
        assert_true(ring_has_room(r, 100));
        assert_int_equal(push_id(r, id, 100), RING_PUSHED);
    }
    assert_int_equal(ring_bytes(r), 10 * C100);
    assert_false(ring_has_room(r, 100));
    assert_false(ring_has_room(r, 0));
    assert_int_equal(push_id(r, 10, 100), RING_FULL);
    assert_int_equal(push_id(r, 10, 0), RING_FULL);
    assert_int_equal(ring_count(r), 10);
    assert_int_equal(ring_bytes(r), 10 * C100);
    assert_int_equal(d.n, 0);

    check_record(ring_peek(r), 0, 100);
    ring_pop(r);
    assert_true(ring_has_room(r, 100));
    assert_false(ring_has_room(r, 100 + 8)); /* costs one alignment step more */
    assert_int_equal(push_id(r, 10, 100), RING_PUSHED);
    assert_int_equal(push_id(r, 11, 100), RING_FULL);
    for (uint64_t id = 1; id <= 10; id++) {
        check_record(ring_peek(r), id, 100);
        ring_pop(r);
    }
    assert_int_equal(d.n, 0);
    ring_free(r);
    free(d.ev);
}

static void test_drop_oldest_evicts_exactly_the_oldest_and_reports_each(void **state)
{
    drops d = {0};
    ring *r = ring_new(10 * C100, RING_DROP_OLDEST, NULL, on_drop, &d);
    for (uint64_t id = 0; id < 10; id++)
        assert_int_equal(push_id(r, id, 100), RING_PUSHED);

    /* A record costing three small ones needs exactly three evictions. */
    uint32_t big = (uint32_t)(3 * C100 - sizeof(record));
    assert_int_equal(ring_record_cost(big), 3 * C100);
    assert_false(ring_has_room(r, big));
    assert_int_equal(push_id(r, 100, big), RING_PUSHED);
    assert_int_equal(d.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(d.ev[i].id, i);
        assert_int_equal(d.ev[i].len, 100);
        assert_false(d.ev[i].newest);
    }
    assert_int_equal(d.bytes, 3 * C100);
    assert_int_equal(ring_count(r), 8);
    assert_int_equal(ring_bytes(r), 10 * C100);

    /* One more small record evicts exactly one more oldest. */
    uint64_t dropped_bytes = d.bytes;
    drops_reset(&d);
    assert_int_equal(push_id(r, 101, 100), RING_PUSHED);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ev[0].id, 3);

    /* Bytes pushed = bytes held + bytes reported dropped. */
    dropped_bytes += d.bytes;
    assert_int_equal(ring_bytes(r) + dropped_bytes, 10 * C100 + 3 * C100 + C100);
    assert_int_equal(ring_count(r), 12 - 4);
    for (uint64_t id = 4; id < 10; id++) {
        check_record(ring_peek(r), id, 100);
        ring_pop(r);
    }
    check_record(ring_peek(r), 100, big);
    ring_pop(r);
    check_record(ring_peek(r), 101, 100);
    ring_pop(r);
    assert_null(ring_peek(r));
    ring_free(r);
    free(d.ev);
}

static void test_drop_newest_reports_incoming_and_keeps_the_old(void **state)
{
    drops d = {0};
    ring *r = ring_new(10 * C100, RING_DROP_NEWEST, NULL, on_drop, &d);
    for (uint64_t id = 0; id < 10; id++)
        assert_int_equal(push_id(r, id, 100), RING_PUSHED);

    /* Small, standard-block and oversize incoming records: each reported once
     * with its real bytes (on_drop checks them), none stored. */
    const uint32_t lens[] = {100, 0, 5000, 65536, MAX_LEN};
    for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
        drops_reset(&d);
        assert_int_equal(push_id(r, 50 + i, lens[i]), RING_DROPPED_NEWEST);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.ev[0].id, 50 + i);
        assert_int_equal(d.ev[0].len, lens[i]);
        assert_true(d.ev[0].newest);
        assert_int_equal(d.bytes, ring_record_cost(lens[i]));
        assert_int_equal(ring_count(r), 10);
        assert_int_equal(ring_bytes(r), 10 * C100);
    }
    for (uint64_t id = 0; id < 10; id++) {
        check_record(ring_peek(r), id, 100);
        ring_pop(r);
    }
    ring_free(r);
    free(d.ev);
}

static void test_shared_budget_makes_other_rings_block_or_drop(void **state)
{
    ring_budget budget = {.limit = 10 * C100};
    drops d = {0};
    ring *a = ring_new(UINT64_MAX, RING_BLOCKING, &budget, on_drop, &d);
    ring *b = ring_new(UINT64_MAX, RING_BLOCKING, &budget, on_drop, &d);
    ring *c = ring_new(UINT64_MAX, RING_DROP_NEWEST, &budget, on_drop, &d);

    for (uint64_t id = 0; id < 10; id++)
        assert_int_equal(push_id(a, id, 100), RING_PUSHED);
    assert_int_equal(push_id(a, 10, 100), RING_FULL);
    assert_int_equal(budget.used, 10 * C100);

    /* B's own limit is unlimited; the budget is what stops it. An empty
     * blocking ring still takes one record so it never waits on others. */
    assert_true(ring_has_room(b, 100));
    assert_int_equal(push_id(b, 20, 100), RING_PUSHED);
    assert_false(ring_has_room(b, 100));
    assert_int_equal(push_id(b, 21, 100), RING_FULL);
    assert_int_equal(budget.used, 11 * C100);

    /* A non-blocking empty ring drops instead. */
    assert_false(ring_has_room(c, 100));
    assert_int_equal(push_id(c, 30, 100), RING_DROPPED_NEWEST);
    assert_int_equal(d.n, 1);
    assert_true(d.ev[0].newest);
    assert_int_equal(ring_count(c), 0);

    /* Room made by A is usable by B. */
    ring_pop(a);
    ring_pop(a);
    assert_int_equal(budget.used, 9 * C100);
    assert_int_equal(push_id(b, 21, 100), RING_PUSHED);
    assert_int_equal(push_id(b, 22, 100), RING_FULL);

    ring_free(a);
    assert_int_equal(budget.used, 2 * C100);
    ring_free(b);
    ring_free(c);
    assert_int_equal(budget.used, 0);
    free(d.ev);
}

static void test_drop_oldest_under_budget_evicts_only_when_that_makes_room(void **state)
{
    ring_budget budget = {.limit = 10 * C100};
    drops d = {0};
    ring *a = ring_new(UINT64_MAX, RING_BLOCKING, &budget, NULL, NULL);
    ring *o = ring_new(UINT64_MAX, RING_DROP_OLDEST, &budget, on_drop, &d);

    for (uint64_t id = 0; id < 8; id++)
        assert_int_equal(push_id(a, id, 100), RING_PUSHED);
    assert_int_equal(push_id(o, 100, 100), RING_PUSHED);
    assert_int_equal(push_id(o, 101, 100), RING_PUSHED);
    assert_int_equal(budget.used, 10 * C100);

    /* The budget is full; evicting one of O's own records makes room. */
    assert_int_equal(push_id(o, 102, 100), RING_PUSHED);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ev[0].id, 100);
    assert_false(d.ev[0].newest);

    /* Three small records' worth cannot fit even if O emptied itself (A holds
     * 8): O keeps its records and drops only the incoming one. */
    drops_reset(&d);
    uint32_t big = (uint32_t)(3 * C100 - sizeof(record));
    assert_int_equal(push_id(o, 103, big), RING_DROPPED_NEWEST);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ev[0].id, 103);
    assert_true(d.ev[0].newest);
    assert_int_equal(ring_count(o), 2);

    /* Once A has released enough, O evicts both of its records and stores. */
    drops_reset(&d);
    ring_pop(a);
    assert_int_equal(push_id(o, 104, big), RING_PUSHED);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.ev[0].id, 101);
    assert_int_equal(d.ev[1].id, 102);
    check_record(ring_peek(o), 104, big);
    assert_int_equal(budget.used, 10 * C100);

    ring_free(a);
    ring_free(o);
    assert_int_equal(budget.used, 0);
    free(d.ev);
}

static void test_oversize_record_is_admitted_only_into_an_empty_ring(void **state)
{
    drops d = {0};
    uint32_t huge = 5000; /* costs far more than the 1000-byte limit */
    ring *r = ring_new(1000, RING_BLOCKING, NULL, on_drop, &d);

    assert_true(ring_has_room(r, huge));
    assert_int_equal(push_id(r, 0, huge), RING_PUSHED);
    assert_true(ring_bytes(r) > ring_limit(r));
    assert_int_equal(push_id(r, 1, huge), RING_FULL);
    assert_int_equal(push_id(r, 2, 0), RING_FULL);
    check_record(ring_peek(r), 0, huge);
    ring_pop(r);
    assert_int_equal(push_id(r, 3, huge), RING_PUSHED);
    ring_pop(r);

    /* Drop-newest: dropped while the ring holds something, stored when empty. */
    ring_set_limit(r, 1000, RING_DROP_NEWEST);
    assert_int_equal(push_id(r, 4, 10), RING_PUSHED);
    assert_int_equal(push_id(r, 5, huge), RING_DROPPED_NEWEST);
    ring_pop(r);
    assert_int_equal(push_id(r, 6, huge), RING_PUSHED);
    check_record(ring_peek(r), 6, huge);
    ring_pop(r);

    /* Drop-oldest: everything is evicted, then the huge record is stored. */
    ring_set_limit(r, 1000, RING_DROP_OLDEST);
    drops_reset(&d);
    for (uint64_t id = 10; id < 15; id++)
        assert_int_equal(push_id(r, id, 10), RING_PUSHED);
    assert_int_equal(push_id(r, 15, huge), RING_PUSHED);
    assert_int_equal(d.n, 5);
    assert_int_equal(ring_count(r), 1);
    check_record(ring_peek(r), 15, huge);
    ring_free(r);

    /* Larger than the whole budget, nobody else using it: admitted. */
    ring_budget budget = {.limit = 1000};
    ring *b = ring_new(UINT64_MAX, RING_DROP_NEWEST, &budget, on_drop, &d);
    assert_int_equal(push_id(b, 20, huge), RING_PUSHED);
    assert_int_equal(budget.used, ring_record_cost(huge));
    ring_free(b);
    assert_int_equal(budget.used, 0);
    free(d.ev);
}

static void test_lowering_the_limit_keeps_records_and_applies_to_new_pushes(void **state)
{
    drops d = {0};
    ring *r = ring_new(10 * C100, RING_BLOCKING, NULL, on_drop, &d);
    for (uint64_t id = 0; id < 10; id++)
        assert_int_equal(push_id(r, id, 100), RING_PUSHED);

    ring_set_limit(r, 5 * C100, RING_BLOCKING);
    assert_int_equal(ring_limit(r), 5 * C100);
    assert_int_equal(ring_count(r), 10);
    assert_int_equal(ring_bytes(r), 10 * C100);
    assert_int_equal(d.n, 0);
    for (int i = 0; i < 5; i++)
        ring_pop(r);
    assert_int_equal(push_id(r, 10, 100), RING_FULL);
    ring_pop(r);
    assert_int_equal(push_id(r, 10, 100), RING_PUSHED);

    /* The policy changes with it: now drop-oldest evicts down to the limit. */
    ring_set_limit(r, 2 * C100, RING_DROP_OLDEST);
    assert_int_equal(push_id(r, 11, 100), RING_PUSHED);
    assert_int_equal(d.n, 4);
    assert_int_equal(ring_count(r), 2);
    check_record(ring_peek(r), 10, 100);

    ring_set_limit(r, 100 * C100, RING_BLOCKING);
    assert_int_equal(push_id(r, 12, 100), RING_PUSHED);
    assert_int_equal(d.n, 4);
    ring_free(r);
    free(d.ev);
}

static void test_charges_return_to_zero_after_popping_everything(void **state)
{
    ring_budget budget = {.limit = UINT64_MAX};
    ring *a = ring_new(UINT64_MAX, RING_BLOCKING, &budget, NULL, NULL);
    ring *b = ring_new(UINT64_MAX, RING_DROP_OLDEST, &budget, NULL, NULL);
    uint64_t expect = 0;
    for (uint64_t id = 0; id < 2000; id++) {
        uint32_t len = (uint32_t)rng_below(MAX_LEN + 1);
        assert_int_equal(push_id(id % 2 ? a : b, id, len), RING_PUSHED);
        expect += ring_record_cost(len);
    }
    assert_int_equal(budget.used, expect);
    assert_int_equal(ring_bytes(a) + ring_bytes(b), expect);
    while (ring_count(a))
        ring_pop(a);
    while (ring_count(b))
        ring_pop(b);
    assert_int_equal(ring_bytes(a), 0);
    assert_int_equal(ring_bytes(b), 0);
    assert_int_equal(budget.used, 0);

    /* Freeing a ring that still holds records gives its charge back. */
    for (uint64_t id = 0; id < 100; id++)
        push_id(a, id, (uint32_t)id);
    assert_true(budget.used > 0);
    ring_free(a);
    assert_int_equal(budget.used, 0);
    ring_free(b);
    ring_free(NULL);
}

/* The model: a plain array per ring, the policy rules restated from ring.h. */
typedef struct model {
    uint64_t *ids;
    uint32_t *lens;
    size_t head, tail;
    uint64_t bytes, limit;
    ring_policy policy;
    bool budgeted;
} model;

typedef struct expectation {
    ring_push_result result;
    bool room;      /* ring_has_room before the push */
    size_t evicted; /* oldest records evicted */
} expectation;

static expectation model_push(model *m, uint64_t *budget_used, uint64_t budget_limit, uint64_t id,
                              uint32_t len)
{
    uint64_t cost = ring_record_cost(len);
    uint64_t used = m->budgeted ? *budget_used : 0;
    uint64_t blimit = m->budgeted ? budget_limit : UINT64_MAX;
    expectation e = {0};

#define FITS() (m->bytes + cost <= m->limit && used + cost <= blimit)
    bool empty = m->head == m->tail;
    bool store;
    if (FITS())
        store = true;
    else if (empty)
        store = m->policy == RING_BLOCKING || used == 0 || used + cost <= blimit;
    else
        store = false;
    e.room = store;

    if (!store && m->policy == RING_DROP_OLDEST && !empty) {
        uint64_t others = used - m->bytes;
        if (others == 0 || others + cost <= blimit) {
            while (!FITS() && m->head < m->tail) {
                uint64_t c = ring_record_cost(m->lens[m->head++]);
                m->bytes -= c;
                used -= c;
                e.evicted++;
            }
            store = true;
        }
    }
#undef FITS
    if (store) {
        m->ids[m->tail] = id;
        m->lens[m->tail++] = len;
        m->bytes += cost;
        used += cost;
        e.result = RING_PUSHED;
    } else
        e.result = m->policy == RING_BLOCKING ? RING_FULL : RING_DROPPED_NEWEST;
    if (m->budgeted)
        *budget_used = used;
    return e;
}

#define MODEL_RINGS 3
#define MODEL_OPS 100000

static ring_policy random_policy(void)
{
    static const ring_policy p[] = {RING_BLOCKING, RING_DROP_OLDEST, RING_DROP_NEWEST};
    return p[rng_below(3)];
}

static uint64_t random_limit(void)
{
    return rng_below(8) == 0 ? UINT64_MAX : rng_below(400 * 1024);
}

static uint32_t random_len(void)
{
    /* Half spread over the whole range (many oversize and block-straddling
     * records), half typical log lines. */
    return (uint32_t)(rng_below(2) ? rng_below(MAX_LEN + 1) : rng_below(513));
}

static void test_random_operations_match_a_reference_queue(void **state)
{
    const uint64_t budget_limit = 512 * 1024;
    ring_budget budget = {.limit = budget_limit};
    uint64_t model_used = 0;
    ring *rings[MODEL_RINGS];
    model models[MODEL_RINGS];
    drops d[MODEL_RINGS] = {{0}};
    uint64_t next_id = 0;
    size_t n_full = 0, n_evicted = 0, n_newest = 0;

    rng_state = 424242;
    for (int k = 0; k < MODEL_RINGS; k++) {
        /* The last ring has no budget. */
        bool budgeted = k < MODEL_RINGS - 1;
        models[k] = (model){
            .ids = xcalloc(MODEL_OPS, sizeof(uint64_t)),
            .lens = xcalloc(MODEL_OPS, sizeof(uint32_t)),
            .limit = random_limit(),
            .policy = random_policy(),
            .budgeted = budgeted,
        };
        rings[k] =
            ring_new(models[k].limit, models[k].policy, budgeted ? &budget : NULL, on_drop, &d[k]);
    }

    for (int op = 0; op < MODEL_OPS; op++) {
        int k = (int)rng_below(MODEL_RINGS);
        model *m = &models[k];
        ring *r = rings[k];
        uint64_t roll = rng_below(100);

        if (roll < 52) {
            uint64_t id = next_id++;
            uint32_t len = random_len();
            size_t head_before = m->head;
            assert_true(m->tail < MODEL_OPS);
            expectation e = model_push(m, &model_used, budget_limit, id, len);
            assert_int_equal(ring_has_room(r, len), e.room);
            drops_reset(&d[k]);
            assert_int_equal(push_id(r, id, len), e.result);

            size_t expect_drops = e.evicted + (e.result == RING_DROPPED_NEWEST);
            assert_int_equal(d[k].n, expect_drops);
            for (size_t i = 0; i < e.evicted; i++) {
                assert_int_equal(d[k].ev[i].id, models[k].ids[head_before + i]);
                assert_false(d[k].ev[i].newest);
            }
            if (e.result == RING_DROPPED_NEWEST) {
                assert_int_equal(d[k].ev[e.evicted].id, id);
                assert_int_equal(d[k].ev[e.evicted].len, len);
                assert_true(d[k].ev[e.evicted].newest);
            }
            n_full += e.result == RING_FULL;
            n_newest += e.result == RING_DROPPED_NEWEST;
            n_evicted += e.evicted;
        } else if (roll < 97) {
            if (m->head == m->tail) {
                assert_null(ring_peek(r));
                continue;
            }
            check_record(ring_peek(r), m->ids[m->head], m->lens[m->head]);
            ring_pop(r);
            uint64_t c = ring_record_cost(m->lens[m->head++]);
            m->bytes -= c;
            if (m->budgeted)
                model_used -= c;
        } else {
            m->limit = random_limit();
            m->policy = random_policy();
            ring_set_limit(r, m->limit, m->policy);
            assert_int_equal(ring_limit(r), m->limit);
        }
        assert_int_equal(ring_count(r), m->tail - m->head);
        assert_int_equal(ring_bytes(r), m->bytes);
        assert_int_equal(budget.used, model_used);
    }

    /* Every policy outcome was actually exercised. */
    assert_true(n_full > 100);
    assert_true(n_newest > 100);
    assert_true(n_evicted > 100);

    for (int k = 0; k < MODEL_RINGS; k++) {
        model *m = &models[k];
        while (m->head < m->tail) {
            check_record(ring_peek(rings[k]), m->ids[m->head], m->lens[m->head]);
            ring_pop(rings[k]);
            m->head++;
        }
        assert_null(ring_peek(rings[k]));
        assert_int_equal(ring_bytes(rings[k]), 0);
        ring_free(rings[k]);
        free(m->ids);
        free(m->lens);
        free(d[k].ev);
    }
    assert_int_equal(budget.used, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_cost_is_header_plus_payload_rounded_up_to_8),
        cmocka_unit_test(test_fifo_order_and_content_survive_many_blocks_and_block_reuse),
        cmocka_unit_test(test_steady_push_pop_and_idle_ring_hold_little_memory),
        cmocka_unit_test(test_blocking_returns_full_at_limit_and_accepts_after_pop),
        cmocka_unit_test(test_drop_oldest_evicts_exactly_the_oldest_and_reports_each),
        cmocka_unit_test(test_drop_newest_reports_incoming_and_keeps_the_old),
        cmocka_unit_test(test_shared_budget_makes_other_rings_block_or_drop),
        cmocka_unit_test(test_drop_oldest_under_budget_evicts_only_when_that_makes_room),
        cmocka_unit_test(test_oversize_record_is_admitted_only_into_an_empty_ring),
        cmocka_unit_test(test_lowering_the_limit_keeps_records_and_applies_to_new_pushes),
        cmocka_unit_test(test_charges_return_to_zero_after_popping_everything),
        cmocka_unit_test(test_random_operations_match_a_reference_queue),
    };
    return cmocka_run_group_tests(tests, setup_pool, NULL);
}
