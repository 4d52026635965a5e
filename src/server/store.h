/* store.h: where the ranch keeps its resources between restarts. The
 * ranch holds everything in memory and calls the store, under its lock,
 * with each operation's changes as one transaction: begin, put/del...,
 * commit (or rollback). "memory" keeps nothing but the history (in
 * memory); "sqlite:PATH" keeps all.
 *
 * Group commit (docs/storage.md): a store with a flush op makes commit
 * cheap (queued in memory) and not yet durable; flush then makes every transaction committed
 * so far durable at once. Such a store counts its commits in `committed`
 * and the ones flush made durable in `durable` (atomics), and a change is
 * acknowledged to a client only once durable covers everything the client
 * was shown (server/group_commit.h). Without flush, commit is durable. */
#ifndef BOSK_STORE_H
#define BOSK_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "server/history.h"

/* One resource as stored. */
typedef struct {
    const char *type, *name, *state, *owner;
    const char *userdata;        /* Go JSON object text */
    int64_t lastupdate;          /* unix nanoseconds */
    int64_t expiration;          /* unix nanoseconds, when has_exp */
    int has_exp;
    uint64_t seq;                /* update sequence: scan order */
} store_rec;

typedef struct store store;

typedef struct {
    /* Calls fn for every stored resource, then fn_drlc for every stored
     * dynamic lifecycle (type + JSON text). */
    int (*load)(store *s, void *ctx, int (*fn)(void *ctx, const store_rec *r),
                int (*fn_drlc)(void *ctx, const char *type, const char *json),
                char *err, size_t err_len);
    int (*begin)(store *s, char *err, size_t err_len);
    int (*put)(store *s, const store_rec *r, char *err, size_t err_len);
    int (*del)(store *s, const char *name, char *err, size_t err_len);
    int (*put_drlc)(store *s, const char *type, const char *json, char *err, size_t err_len);
    int (*del_drlc)(store *s, const char *type, char *err, size_t err_len);
    int (*commit)(store *s, char *err, size_t err_len);
    void (*rollback)(store *s);
    void (*close)(store *s);   /* flushes first */
    /* NULL, or: makes every committed transaction durable; called
     * without the ranch lock. On failure (-1 with err) they are not in
     * the store, and the caller reloads the ranch (load forgets every
     * transaction not yet flushed) and counts the reload as one more
     * commit, durable. */
    int (*flush)(store *s, char *err, size_t err_len);
    /* History (server/history.h), under the ranch lock. history_put
     * records one change's event in the open transaction (with flush:
     * durable with it); history_get calls fn with name's events, newest
     * first, at most limit (0: all), and returns how many, or -1 with err
     * (with flush: only durable events); history_expire, in a
     * transaction, drops the events of resources deleted longer ago than
     * the limits keep them. */
    int (*history_put)(store *s, const hist_event *e, char *err, size_t err_len);
    int (*history_get)(store *s, const char *name, size_t limit, void *ctx,
                       int (*fn)(void *ctx, const hist_event *e), char *err, size_t err_len);
    int (*history_expire)(store *s, int64_t now, char *err, size_t err_len);
} store_ops;

struct store {
    const store_ops *ops;
    const char *kind;            /* "memory", "sqlite" */
    uint64_t committed, durable; /* with flush: commits so far, and made durable */
};

/* Opens "memory" or "sqlite:PATH"; NULL with err. */
store *store_open(const char *spec, char *err, size_t err_len);
store *store_memory_open(void);
store *store_sqlite_open(const char *path, char *err, size_t err_len);

#endif
