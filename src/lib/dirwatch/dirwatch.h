/*
 * dirwatch.h - follow a configuration directory: inotify events, debounced,
 * plus a periodic resync for what inotify cannot report (the directory
 * replaced, an event queue overflow).
 *
 * The callback runs once per burst of changes: the first event arms a timer
 * of |debounce_ms|, and everything until it fires goes into one call.
 */
#ifndef MESH_LIB_DIRWATCH_H
#define MESH_LIB_DIRWATCH_H

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

#define DIRWATCH_RESYNC_MS 30000

struct dirwatch;
typedef void dirwatch_fn(void *arg);

/* Starts watching |dir| (which must exist). NULL with |err| filled on failure. */
struct dirwatch *dirwatch_start(struct loop *l, const char *dir, uint64_t debounce_ms,
                                dirwatch_fn *cb, void *arg, char *err, size_t errlen);
void dirwatch_stop(struct dirwatch *w);

#endif
