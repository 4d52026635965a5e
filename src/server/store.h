/* store.h: where the ranch keeps its resources between restarts. The
 * ranch holds everything in memory and calls the store, under its lock,
 * with each operation's changes as one transaction: begin, put/del...,
 * commit (or rollback). A change is acknowledged to a client only after
 * commit returned 0. "memory" keeps nothing but the history (in memory);
 * "sqlite:PATH" keeps all. */
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
    void (*close)(store *s);
    /* History (server/history.h). history_put records one change's event
     * in the open transaction; history_get calls fn with name's events,
     * newest first, at most limit (0: all), and returns how many, or -1
     * with err; history_expire, in a transaction, drops the events of
     * resources deleted longer ago than the limits keep them. */
    int (*history_put)(store *s, const hist_event *e, char *err, size_t err_len);
    int (*history_get)(store *s, const char *name, size_t limit, void *ctx,
                       int (*fn)(void *ctx, const hist_event *e), char *err, size_t err_len);
    int (*history_expire)(store *s, int64_t now, char *err, size_t err_len);
} store_ops;

struct store {
    const store_ops *ops;
    const char *kind;            /* "memory", "sqlite" */
};

/* Opens "memory" or "sqlite:PATH"; NULL with err. */
store *store_open(const char *spec, char *err, size_t err_len);
store *store_memory_open(void);
store *store_sqlite_open(const char *path, char *err, size_t err_len);

#endif
