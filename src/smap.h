/* smap.h: a small open-addressing hash map from strings to pointers. */
#pragma once

#include <stddef.h>

typedef struct smap {
    struct smap_slot *slots;
    size_t cap, n, tombs;
} smap;

/* The key is copied. Replaces an existing value. */
void smap_put(smap *m, const char *key, void *value);
void *smap_get(const smap *m, const char *key);
void *smap_remove(smap *m, const char *key); /* returns the value removed, or NULL */
void smap_clear(smap *m);
