/* discovery.h: inotify watches on the directories that hold log files; each
 * event is handed to the sources that asked for that directory. */
#pragma once

#include <stdint.h>

#include "loop.h"

typedef struct discovery discovery;

/* dir: the watched directory; name: the entry (NULL for events about the
 * directory itself, or after an inotify queue overflow, when dir is NULL too:
 * every subscriber should rescan). */
typedef void (*discovery_fn)(void *subscriber, const char *dir, const char *name, uint32_t mask,
                             void *userdata);

discovery *discovery_new(loop *l, discovery_fn fn, void *userdata);
void discovery_free(discovery *d);

/* Watch `dir` on behalf of `subscriber` (idempotent). 0 or a negative errno
 * (ENOENT for a directory that does not exist yet, ENOSPC when
 * fs.inotify.max_user_watches is exhausted). */
int discovery_watch(discovery *d, const char *dir, void *subscriber);
/* Stop watching `dir` for the subscriber (the watch goes when nobody wants it). */
void discovery_unwatch(discovery *d, const char *dir, void *subscriber);
/* Forget every watch of the subscriber. */
void discovery_unwatch_all(discovery *d, void *subscriber);
size_t discovery_watch_count(const discovery *d);
