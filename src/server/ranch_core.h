/* ranch_core.h: the ranch's data and the batches that change it, shared
 * by ranch.c (the entry points) and server_sync.c (config sync and
 * dynamic resources); ranch_core.c depends on neither. Not for other
 * files. Callers hold the ranch lock.
 *
 * Indexes: resources by name; types by name; per type, one bucket per
 * state holding two lists, unowned and owned, each in scan order (update
 * sequence: every write appends at the tail, so the head is the least
 * recently updated). Acquire takes the rank-th node of one unowned list;
 * release, update and reset move single nodes. Owner counts per type are
 * kept as resources move, so /metric never scans. */
#ifndef BOSK_RANCH_CORE_H
#define BOSK_RANCH_CORE_H

#include <pthread.h>
#include "server/config.h"
#include "core/gojson.h"
#include "server/ranch_types.h"
#include "server/store.h"
#include "server/server_map.h"
#include "server/server_queue.h"

typedef struct res res;
typedef struct bucket bucket;
typedef struct rtype rtype;

typedef struct {
    res *head, *tail;
    size_t n;
} rlist;

struct res {
    hnode by_name;
    char *name;
    rtype *type;
    bucket *bucket;
    char *owner;              /* "" when free */
    char *userdata;           /* Go JSON object text */
    int64_t lastupdate;       /* ns */
    int64_t expiration;       /* ns, when has_exp */
    int has_exp;
    uint64_t seq;
    uint64_t mark;            /* scratch stamp for one operation */
    res *prev, *next;
};

struct bucket {
    char *state;
    rlist unowned, owned;
    bucket *next;
};

typedef struct {
    char *state;
    int64_t min_count, max_count;
    int64_t lifespan_ns;
    int has_lifespan;
    char *config_type, *config_content;
} drlc;

typedef struct {
    hnode node;
    size_t n;
    char owner[];
} owner_count;

struct rtype {
    hnode by_name;
    char *name;
    size_t count;
    bucket *buckets;
    hmap owners;
    drlc *lifecycle;          /* NULL: static type */
};

/* A name the config lists statically. */
typedef struct {
    hnode node;
    const config_entry *entry;
} cfg_name;

enum { CH_UPDATE, CH_CREATE, CH_DELETE };

typedef struct {
    int kind;
    res *r;                   /* target (for CH_CREATE: fresh, unlinked) */
    store_rec rec;            /* values after the change */
    char *owner_copy, *ud_copy;
    bucket *b;                /* destination bucket, prepared */
    rtype *t;                 /* the type touched (set by prepare) */
} change;

typedef struct {
    change *v;
    size_t n, cap;
    const char *endpoint;     /* for the history: "acquire", ...; NULL: "sync" */
} batch;

struct ranch {
    pthread_mutex_t lock;
    store *st;
    hmap names, types, cfg_names;
    queue_set queues;
    config *cfg;
    uint64_t seq, stamp;
    int64_t ttl_ns;
    int sync_wanted;
    size_t pending_static;    /* unconfigured resources still owned */
};

int64_t ranch_now_ns(void);
rtype *ranch_type_get(ranch *r, const char *name, int create);
bucket *ranch_bucket_get(rtype *t, const char *state, int create);
/* Frees every type with its resources, and the name index. */
void ranch_types_free(ranch *r);
/* store_ops.load callbacks (ctx: the ranch). Records come in seq order;
 * appending them keeps the previous run's scan order. */
int ranch_load_rec(void *ctx, const store_rec *rec);
int ranch_load_lifecycle(void *ctx, const char *type, const char *json);

change *batch_add(batch *b, int kind, res *target);
/* A CH_CREATE change for a new resource (fresh unlinked res). */
change *batch_create(batch *b, rtype *t, const char *name, const char *state, int64_t now);
/* Writes the batch through the store and applies it; frees the batch. */
ranch_code batch_commit(ranch *r, batch *b, jbuf *errout);
void batch_free(batch *b);
void ranch_set_update(change *c, const char *state, const char *owner, int64_t now);

/* Lifecycle records: from a config entry, compared, and as stored (JSON). */
drlc *drlc_from_entry(const config_entry *e);
int drlc_eq(const drlc *a, const drlc *b);
char *drlc_to_json(const drlc *d);
drlc *drlc_from_json(const char *json);
void drlc_free(drlc *d);

#endif
