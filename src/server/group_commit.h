/* group_commit.h: answers wait for durability, and one commit serves all
 * the requests that arrived while the previous one was being written
 * (docs/storage.md).
 *
 * A store with a flush op (store.h) commits each ranch transaction into
 * an open outer transaction: visible at once to later requests, durable
 * at the next flush. The committer thread flushes whenever a request
 * waits; a request's answer is queued only after everything it may have
 * seen is durable: after dispatching, a handler takes the store's commit
 * count (group_commit_seen) and waits until the flushes cover it, its
 * connection suspended meanwhile (libmicrohttpd threads serve many
 * connections and must not block). When a flush fails the store has
 * undone those transactions; the committer reloads the ranch from the
 * store, under the ranch lock, and every request that saw them is
 * answered with a storage error, as if it had failed itself. */
#ifndef BOSK_GROUP_COMMIT_H
#define BOSK_GROUP_COMMIT_H

#include <stdint.h>
#include "core/dl_mhd.h"
#include "server/ranch.h"

typedef struct group_commit group_commit;

/* One parked request (lives in the request's state). */
typedef struct gc_waiter {
    struct gc_waiter *next;
    struct MHD_Connection *conn;
    uint64_t seq;
    int failed;               /* set before the connection is resumed */
} gc_waiter;

typedef enum { GC_DURABLE, GC_FAILED, GC_PARKED } gc_wait;

/* Starts the committer for r over st (the ranch's store) when st has a
 * flush op; *out NULL otherwise (memory: commit is all there is). 0, or -1
 * with err. */
int group_commit_start(ranch *r, store *st, group_commit **out, char *err, size_t err_len);
/* Flushes what is left, settles every waiter, ends the thread. */
void group_commit_stop(group_commit *g);
/* Resumes every parked request at once (a storage error for those whose
 * commits are not durable yet) and parks no more: for a stop that cannot
 * wait longer, as libmicrohttpd must not stop with suspended connections.
 * g may be NULL. */
void group_commit_release_all(group_commit *g);
/* The commits a request dispatched now may have seen. */
uint64_t group_commit_seen(const group_commit *g);
/* GC_DURABLE or GC_FAILED: answer now. GC_PARKED: the connection is
 * suspended and w queued; the committer sets w->failed and resumes it
 * once seq is settled. */
gc_wait group_commit_wait(group_commit *g, gc_waiter *w, struct MHD_Connection *c, uint64_t seq);

#endif
