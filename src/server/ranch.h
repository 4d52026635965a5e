/* ranch.h: the resource ranch, Boskos semantics (docs/protocol.md §3) over
 * in-memory indexes, every change written through a store (store.h)
 * before it is acknowledged. One mutex guards it all; every function here
 * takes it. Operations write their answer into `out`: the success body
 * (Go JSON) or, on failure, the error text without the handler's context. */
#ifndef BOSK_RANCH_H
#define BOSK_RANCH_H

#include <stddef.h>
#include <stdint.h>
#include "server/config.h"
#include "core/gojson.h"
#include "server/ranch_types.h"
#include "server/store.h"

/* A new empty ranch over st (which it then owns). ttl_ns: request-id TTL. */
ranch *ranch_new(store *st, int64_t request_ttl_ns, char *err, size_t err_len);
void ranch_free(ranch *r);
/* Loads what the store holds (before the first sync). */
int ranch_load(ranch *r, char *err, size_t err_len);
/* Adopts cfg (owned by the ranch from now on; NULL keeps the current one)
 * and syncs resources with it (§3.6, §3.7). 0, or -1 with err (the config
 * is adopted even then; a later sync retries). */
int ranch_sync(ranch *r, config *cfg, char *err, size_t err_len);
/* 1 once since the last call if an operation asked for a sync. */
int ranch_take_sync_wanted(ranch *r);
/* Drops expired request ids and empty queues (§3.3), and the history of
 * resources deleted longer ago than the store keeps it. */
void ranch_gc(ranch *r);

ranch_code ranch_acquire(ranch *r, const char *type, const char *state, const char *dest,
                         const char *owner, const char *request_id, jbuf *out,
                         double *waited_seconds);
ranch_code ranch_acquire_by_state(ranch *r, const char *state, const char *dest,
                                  const char *owner, const char *names, jbuf *out);
ranch_code ranch_release(ranch *r, const char *name, const char *dest, const char *owner,
                         jbuf *out);
/* upd: the parsed body (gojson_update_parse; NULL changes nothing but
 * lastupdate). The owner and state are checked before any merging. */
ranch_code ranch_update(ranch *r, const char *name, const char *owner, const char *state,
                        const gojson_update *upd, jbuf *out);
ranch_code ranch_reset(ranch *r, const char *type, const char *state, int64_t expire_ns,
                       const char *dest, jbuf *out);
ranch_code ranch_metric(ranch *r, const char *type, jbuf *out);
/* GET /history: name's recorded changes as a JSON array, newest first, at
 * most limit (0: all); RANCH_NOT_FOUND when the name is neither a
 * resource nor has history (docs/history.md). */
ranch_code ranch_history(ranch *r, const char *name, size_t limit, jbuf *out);
/* GET /resources: NULL or "" filters match everything. */
ranch_code ranch_list(ranch *r, const char *type, const char *state, const char *owner,
                      jbuf *out);
/* boskos_resources{type,state} samples in the Prometheus text format. */
void ranch_prom_resources(ranch *r, jbuf *out);
/* Counts for logs and tests. */
size_t ranch_count(ranch *r);
size_t ranch_queued_ids(ranch *r);

#endif
