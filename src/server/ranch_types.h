/* ranch_types.h: the names the ranch's entry points (ranch.h) and its core
 * (ranch_core.h) both use: the ranch handle, the outcome codes and the
 * size limits. Kept apart so the core never includes the entry points'
 * header: dependencies go one way, ranch.c -> server_sync.c -> ranch_core.c. */
#ifndef BOSK_RANCH_TYPES_H
#define BOSK_RANCH_TYPES_H

#include <stddef.h>

typedef struct ranch ranch;

typedef enum {
    RANCH_OK = 0,
    RANCH_NOT_FOUND,          /* 404 */
    RANCH_TYPE_NOT_FOUND,     /* 404 */
    RANCH_OWNER_MISMATCH,     /* 401 */
    RANCH_STATE_MISMATCH,     /* 409 */
    RANCH_BAD_REQUEST,        /* 400 */
    RANCH_TOO_LARGE,          /* 413 */
    RANCH_STORAGE,            /* 500 */
} ranch_code;

/* A resource's user data, as stored (Go JSON, escapes included), is at
 * most this long: what upstream's Kubernetes storage holds in one object
 * (etcd takes 1.5 MiB a request), and the /update body cap, so one body
 * of plain text fits. Larger merges are answered RANCH_TOO_LARGE. */
#define RANCH_MAX_USERDATA ((size_t)1 << 20)
/* No acquire commits when its answer would be longer than this: the
 * response cap of bosk's client (lhttp's default max_body), so a lease
 * is never granted to a client that cannot read it. */
#define RANCH_MAX_ANSWER ((size_t)16 << 20)
/* Request ids longer than this are refused (Go's client sends UUIDs). */
#define RANCH_MAX_REQUEST_ID 256

#endif
