/* history.h: the change history of `bosk server`'s resources (GET
 * /history, docs/history.md). Every change a batch writes becomes one
 * event, handed to the store in the change's own transaction (store.h
 * history_put); the memory store keeps events in a history_index (here),
 * the SQLite store in a table. Here too: the limits both stores apply, the
 * user data keys a change touched, and the JSON of an event. */
#ifndef BOSK_HISTORY_H
#define BOSK_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include "core/gojson.h"

/* The last this many events of a resource are kept. */
#define HISTORY_PER_RESOURCE 1000
/* An event names at most this many changed keys (and counts them all), so
 * that a 1 MiB /update costs its event no more than a few KiB. */
#define HISTORY_MAX_KEYS 100

/* One change of one resource. A state "" means the resource did not
 * exist: from "" is its creation, to "" its deletion. */
typedef struct {
    const char *name;
    int64_t time;                /* unix nanoseconds */
    const char *endpoint;        /* "acquire", "update", ..., "sync" */
    const char *from, *to;       /* states before and after */
    const char *owner_from, *owner_to;
    const char *keys;            /* JSON array of the user data keys changed
                                  * (the first HISTORY_MAX_KEYS, sorted) */
    uint32_t keys_total;         /* how many keys changed */
} hist_event;

typedef struct {
    size_t max_events;           /* events kept in all (oldest dropped first) */
    int64_t keep_deleted_ns;     /* how long a deleted resource's events stay */
} history_limits;

/* The limits: 1,000,000 events and 24 h, or BOSK_HISTORY_MAX_EVENTS and
 * BOSK_HISTORY_KEEP_DELETED (a Go duration) when set. 0, or -1 with err
 * naming the bad variable. */
int history_limits_from_env(history_limits *lim, char *err, size_t n);

/* The JSON array (sorted) of the keys whose values differ between two
 * user data objects (Go JSON texts): added, removed or changed ([] when
 * either is not an object), the first HISTORY_MAX_KEYS of them; *total
 * counts them all. 0, or -1 when out of memory. */
int history_keys_changed(jbuf *out, uint32_t *total, const char *before, const char *after);

/* GET /history's rendering: history_json_add as a history_get callback
 * (ctx: a history_json) appends one event object to the array. */
typedef struct {
    jbuf *out;
    size_t n;                    /* events written so far */
} history_json;
int history_json_add(void *ctx, const hist_event *e);

/* ---- the in-memory index (the memory store's history) ---- */

typedef struct history_index history_index;

history_index *history_index_new(const history_limits *lim);
void history_index_free(history_index *h);

/* Stages an event; nothing is visible before history_index_commit, and
 * history_index_rollback drops what was staged. -1 when out of memory. */
int history_index_stage(history_index *h, const hist_event *e);
void history_index_commit(history_index *h);
void history_index_rollback(history_index *h);

/* Calls fn with name's events, newest first, at most limit of them (0: all).
 * Returns how many, or -1 when fn failed. */
int history_index_get(history_index *h, const char *name, size_t limit, void *ctx,
                      int (*fn)(void *ctx, const hist_event *e));

/* Drops the events of resources deleted before now - keep_deleted. */
void history_index_expire(history_index *h, int64_t now);

/* Counts for tests and docs/history.md. */
size_t history_index_events(const history_index *h);

#endif
