/* server_queue.h: request-id FIFO queues for acquire (PROTOCOL.md §3.3),
 * one per (type, state), kept in an hmap of the ranch. Callers hold the
 * ranch lock. */
#ifndef BOSK_SERVER_QUEUE_H
#define BOSK_SERVER_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "server/server_map.h"

/* The 1-based rank of a request in its queue: 1 + the live ids ahead of
 * it (all live ids for an id-less request). An unknown id is appended and
 * *is_new set. Every call with an id extends its expiry to now + ttl.
 * *first_seen: when the id was first seen (now without an id). */
size_t queue_rank(hmap *queues, const char *type, const char *state, const char *id,
                  int64_t now, int64_t ttl, int *is_new, int64_t *first_seen);
/* Forgets a fulfilled id. */
void queue_remove(hmap *queues, const char *type, const char *state, const char *id);
/* Drops expired ids (expiry < now) and empty queues. */
void queue_gc(hmap *queues, int64_t now);
void queue_free_all(hmap *queues);

#endif
