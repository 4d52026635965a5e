/* server_queue.h: request-id FIFO queues for acquire (docs/protocol.md §3.3),
 * one per (type, state), kept in a queue_set of the ranch. Callers hold
 * the ranch lock. */
#ifndef BOSK_SERVER_QUEUE_H
#define BOSK_SERVER_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "server/server_map.h"

/* At most this many ids wait in all queues together: each costs up to
 * ~350 bytes (RANCH_MAX_REQUEST_ID) for --request-ttl, and a rank walks
 * its queue, so both memory and the walk under the ranch lock stay
 * bounded (7 MB, 20 000 steps). */
#define QUEUE_MAX_IDS 20000

typedef struct {
    hmap by_key;              /* "type\x1fstate" -> queue */
    size_t ids;               /* ids held by all queues */
} queue_set;

void queue_set_init(queue_set *qs);
/* The 1-based rank of a request in its queue: 1 + the live ids ahead of
 * it (all live ids for an id-less request). An unknown id is appended and
 * *is_new set, unless QUEUE_MAX_IDS are held: then it ranks as a request
 * without an id until there is room. Every call with an id extends its expiry to now + ttl.
 * *first_seen: when the id was first seen (now without an id). */
size_t queue_rank(queue_set *qs, const char *type, const char *state, const char *id,
                  int64_t now, int64_t ttl, int *is_new, int64_t *first_seen);
/* Forgets a fulfilled id. */
void queue_remove(queue_set *qs, const char *type, const char *state, const char *id);
/* Drops expired ids (expiry < now) and empty queues. */
void queue_gc(queue_set *qs, int64_t now);
void queue_free_all(queue_set *qs);

#endif
