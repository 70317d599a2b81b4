/* smap.c: string -> pointer hash map (FNV-1a, linear probing, tombstones). */
#include "smap.h"

#include <stdint.h>

#include "util.h"

/* The key's hash is kept beside it: a probe that meets another key compares
 * hashes, not strings, so it does not touch (and miss the cache on) the
 * other key. Paths share long prefixes, and the rescan of 1,000 containers
 * looks up thousands of them. */
struct smap_slot {
    char *key; /* NULL: empty; TOMB: deleted */
    void *value;
    uint64_t hash;
};

static char tomb_marker;
#define TOMB (&tomb_marker)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct smap_slot *find(const smap *m, const char *key, uint64_t h)
{
    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct smap_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

static void grow(smap *m)
{
    size_t old_cap = m->cap;
    struct smap_slot *old = m->slots;
    m->cap = old_cap ? old_cap * 2 : 16;
    if ((m->n + 1) * 2 < old_cap)
        m->cap = old_cap; /* mostly tombstones: rehash in place size */
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    m->tombs = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key || old[i].key == TOMB)
            continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void smap_put(smap *m, const char *key, void *value)
{
    uint64_t h = hash(key);
    struct smap_slot *s = find(m, key, h);
    if (s) {
        s->value = value;
        return;
    }
    if ((m->n + m->tombs + 1) * 4 >= m->cap * 3)
        grow(m);
    size_t i = h & (m->cap - 1);
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & (m->cap - 1);
    if (m->slots[i].key == TOMB)
        m->tombs--;
    m->slots[i] = (struct smap_slot){xstrdup(key), value, h};
    m->n++;
}

void *smap_get(const smap *m, const char *key)
{
    struct smap_slot *s = find(m, key, hash(key));
    return s ? s->value : NULL;
}

void *smap_remove(smap *m, const char *key)
{
    struct smap_slot *s = find(m, key, hash(key));
    if (!s)
        return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->n--;
    m->tombs++;
    return v;
}

void smap_clear(smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    *m = (smap){0};
}
