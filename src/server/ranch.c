/* ranch.c: the ranch's entry points (ranch.h): each takes the lock, checks
 * the request against the indexes, writes its changes through a batch
 * (ranch_core.c) and its answer in Go's JSON. Config sync and dynamic
 * resources are in server_sync.c; request-id queues in server_queue.c.
 * Calls go one way: ranch.c -> server_sync.c -> ranch_core.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/core.h"
#include "core/prom_text.h"
#include "server/hold.h"
#include "server/ranch.h"
#include "server/ranch_core.h"
#include "server/server_log.h"
#include "server/server_queue.h"
#include "server/server_sync.h"

static int64_t floor_seconds(int64_t ns)
{
    const int64_t NS = 1000000000LL;
    return ns >= 0 ? ns / NS : -((-ns + NS - 1) / NS);
}

/* ---- JSON ---- */

static void json_str(jbuf *b, const char *s)
{
    gojson_string(b, s, strlen(s));
}

/* One resource as upstream's Resource JSON (§1). Reads from rec so that a
 * change's new values can be written before or after applying. */
static void json_rec(jbuf *b, const store_rec *x)
{
    jbuf_adds(b, "{\"type\":");
    json_str(b, x->type);
    jbuf_adds(b, ",\"name\":");
    json_str(b, x->name);
    jbuf_adds(b, ",\"state\":");
    json_str(b, x->state);
    jbuf_adds(b, ",\"owner\":");
    json_str(b, x->owner);
    jbuf_adds(b, ",\"lastupdate\":");
    gojson_time(b, floor_seconds(x->lastupdate));
    jbuf_adds(b, ",\"userdata\":");
    jbuf_adds(b, x->userdata);
    if (x->has_exp) {
        jbuf_adds(b, ",\"expiration-date\":");
        gojson_time(b, floor_seconds(x->expiration));
    }
    jbuf_addc(b, '}');
}

static void json_res(jbuf *b, const res *x)
{
    store_rec rec = { x->type->name, x->name, x->bucket->state, x->owner, x->userdata,
                      x->lastupdate, x->expiration, x->has_exp, x->seq };
    json_rec(b, &rec);
}

static ranch_code not_found(jbuf *out, const char *what)
{
    jbuf_printf(out, "no available resource %s, try again later.", what);
    return RANCH_NOT_FOUND;
}

static ranch_code type_not_found(jbuf *out, const char *type)
{
    jbuf_adds(out, "resource type ");
    gojson_quote(out, type, strlen(type));
    jbuf_adds(out, " does not exist");
    return RANCH_TYPE_NOT_FOUND;
}

/* Writes that leave a resource unowned or tombstone trigger a sync
 * (§3.7); only dynamic types and leftover unconfigured names need one. */
static void want_sync(ranch *r, const rtype *t)
{
    if (t->lifecycle != NULL || r->pending_static > 0)
        r->sync_wanted = 1;
}

/* ---- lifecycle ---- */

ranch *ranch_new(store *st, int64_t request_ttl_ns, char *err, size_t err_len)
{
    ranch *r = calloc(1, sizeof *r);
    if (r == NULL || pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        snprintf(err, err_len, "out of memory creating the ranch");
        return NULL;
    }
    r->st = st;
    r->ttl_ns = request_ttl_ns;
    hmap_init(&r->names);
    hmap_init(&r->types);
    queue_set_init(&r->queues);
    hmap_init(&r->cfg_names);
    return r;
}

void ranch_free(ranch *r)
{
    if (r == NULL)
        return;
    ranch_types_free(r);
    queue_free_all(&r->queues);
    ranch_drop_config(r);
    if (r->st)
        r->st->ops->close(r->st);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int ranch_load(ranch *r, char *err, size_t err_len)
{
    pthread_mutex_lock(&r->lock);
    int rc = r->st->ops->load(r->st, r, ranch_load_rec, ranch_load_lifecycle, err, err_len);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int ranch_sync(ranch *r, config *cfg, char *err, size_t err_len)
{
    pthread_mutex_lock(&r->lock);
    if (cfg != NULL)
        ranch_adopt_config(r, cfg);
    r->sync_wanted = 0;
    int rc = ranch_sync_locked(r, err, err_len);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int ranch_take_sync_wanted(ranch *r)
{
    pthread_mutex_lock(&r->lock);
    int w = r->sync_wanted;
    r->sync_wanted = 0;
    pthread_mutex_unlock(&r->lock);
    return w;
}

/* Drops the history of resources deleted long enough ago (its own
 * transaction, as a sync step is). */
static void history_gc(ranch *r, int64_t now)
{
    char err[512];
    const store_ops *ops = r->st->ops;
    if (ops->begin(r->st, err, sizeof err) != 0)
        goto failed;
    if (ops->history_expire(r->st, now, err, sizeof err) != 0 ||
        ops->commit(r->st, err, sizeof err) != 0) {
        ops->rollback(r->st);
        goto failed;
    }
    return;
failed:
    server_log(SLOG_ERROR, "expiring the history of deleted resources (retried later): %s", err);
}

void ranch_gc(ranch *r)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns();
    queue_gc(&r->queues, now);
    history_gc(r, now);
    pthread_mutex_unlock(&r->lock);
}

size_t ranch_queued_ids(ranch *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->queues.ids;
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t ranch_count(ranch *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->names.count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- acquire ---- */

/* RANCH_OK when a client can read the answer (built before committing);
 * otherwise the error in out: the lease must not be granted. */
static ranch_code answer_fits(const jbuf *answer, jbuf *out)
{
    if (answer->oom) {
        jbuf_adds(out, "out of memory writing the answer");
        return RANCH_STORAGE;
    }
    if (answer->len <= RANCH_MAX_ANSWER)
        return RANCH_OK;
    jbuf_printf(out, "the answer would be %zu bytes, more than the %zu a client reads; "
                "nothing was acquired", answer->len, RANCH_MAX_ANSWER);
    return RANCH_TOO_LARGE;
}

static res *nth_unowned(rtype *t, const char *state, size_t rank)
{
    bucket *b = t ? ranch_bucket_get(t, state, 0) : NULL;
    res *x = b ? b->unowned.head : NULL;
    while (x && --rank > 0)
        x = x->next;
    return x;
}

/* No match: maybe create a dynamic resource (§3.2 step 3), then fail. */
static ranch_code acquire_miss(ranch *r, rtype *t, const char *type, int is_new,
                               int64_t now, jbuf *out)
{
    size_t type_count = t ? t->count : 0;
    if (is_new && t && t->lifecycle && (int64_t)type_count < t->lifecycle->max_count) {
        char name[37];
        batch b = { .endpoint = "acquire" };
        if (core_uuid4_string(name) == 0 && batch_create(&b, t, name, t->lifecycle->state, now))
            batch_commit(r, &b, NULL);
        else
            batch_free(&b);
    }
    return type_count > 0 ? not_found(out, type) : type_not_found(out, type);
}

ranch_code ranch_acquire(ranch *r, const char *type, const char *state, const char *dest,
                         const char *owner, const char *request_id, jbuf *out,
                         double *waited_seconds)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns(), first_seen;
    int is_new;
    size_t rank = queue_rank(&r->queues, type, state, request_id, now, r->ttl_ns,
                             &is_new, &first_seen);
    rtype *t = ranch_type_get(r, type, 0);
    res *x = nth_unowned(t, state, rank);
    ranch_code rc;
    if (x == NULL) {
        rc = acquire_miss(r, t, type, is_new, now, out);
    } else {
        batch b = { .endpoint = "acquire" };
        jbuf answer;
        jbuf_init(&answer);
        change *c = batch_add(&b, CH_UPDATE, x);
        if (c) {
            ranch_set_update(c, dest, owner, now);
            json_rec(&answer, &c->rec);
        }
        rc = c ? answer_fits(&answer, out) : RANCH_STORAGE;
        rc = rc == RANCH_OK ? batch_commit(r, &b, out) : (batch_free(&b), rc);
        if (rc == RANCH_OK) {
            queue_remove(&r->queues, type, state, request_id);
            jbuf_add(out, answer.data, answer.len);
            *waited_seconds = (double)(now - first_seen) / 1e9;
        }
        jbuf_free(&answer);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- acquirebystate ---- */

static int cmp_seq(const void *a, const void *b)
{
    const res *x = *(res *const *)a, *y = *(res *const *)b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Splits names on ',' and collects the free ones in `state` (deduplicated
 * with the operation stamp). Returns the number of distinct names asked. */
static size_t collect_names(ranch *r, const char *names, const char *state, uint64_t stamp,
                            res ***found, size_t *n_found)
{
    size_t asked = 0, cap = 0;
    const char *p = names;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *name = strndup(p, len);
        hnode *n = name ? hmap_get(&r->names, name) : NULL;
        res *x = n ? HMAP_ENTRY(n, res, by_name) : NULL;
        if (x && x->mark == stamp) {
            /* duplicate of a name already counted */
        } else if (x) {
            x->mark = stamp;
            asked++;
            if (!x->owner[0] && strcmp(x->bucket->state, state) == 0) {
                if (*n_found == cap) {
                    cap = cap ? cap * 2 : 8;
                    res **v = realloc(*found, cap * sizeof *v);
                    if (v == NULL) {
                        free(name);
                        break;
                    }
                    *found = v;
                }
                (*found)[(*n_found)++] = x;
            }
        } else {
            asked++;    /* unknown: the call fails whatever the count */
        }
        free(name);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return asked;
}

ranch_code ranch_acquire_by_state(ranch *r, const char *state, const char *dest,
                                  const char *owner, const char *names, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns();
    res **found = NULL;
    size_t n_found = 0;
    size_t asked = collect_names(r, names, state, ++r->stamp, &found, &n_found);
    if (n_found > 1)  /* qsort must not see a NULL base, even with 0 items */
        qsort(found, n_found, sizeof *found, cmp_seq);
    batch b = { .endpoint = "acquirebystate" };
    jbuf answer;
    jbuf_init(&answer);
    ranch_code rc = RANCH_OK;
    jbuf_addc(&answer, '[');
    for (size_t i = 0; i < n_found && rc == RANCH_OK; i++) {
        change *c = batch_add(&b, CH_UPDATE, found[i]);
        if (c == NULL)
            rc = RANCH_STORAGE;
        else {
            ranch_set_update(c, dest, owner, now);
            if (i)
                jbuf_addc(&answer, ',');
            json_rec(&answer, &c->rec);
        }
    }
    jbuf_adds(&answer, "]\n");
    if (rc == RANCH_OK && n_found == asked)
        rc = answer_fits(&answer, out);
    if (rc == RANCH_OK)
        rc = batch_commit(r, &b, out);
    else
        batch_free(&b);
    if (rc == RANCH_OK && n_found == asked)
        jbuf_add(out, answer.data, answer.len);
    else if (rc == RANCH_OK)
        rc = not_found(out, state);
    jbuf_free(&answer);
    free(found);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- release, update ---- */

static res *find(ranch *r, const char *name)
{
    hnode *n = hmap_get(&r->names, name);
    return n ? HMAP_ENTRY(n, res, by_name) : NULL;
}

static ranch_code owner_mismatch(jbuf *out, const char *by, const char *current)
{
    jbuf_printf(out, "owner mismatch request by %s, currently owned by %s", by, current);
    return RANCH_OWNER_MISMATCH;
}

ranch_code ranch_release(ranch *r, const char *name, const char *dest, const char *owner,
                         jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns();
    res *x = find(r, name);
    ranch_code rc;
    if (x == NULL) {
        rc = not_found(out, name);
    } else if (strcmp(owner, x->owner) != 0) {
        rc = owner_mismatch(out, owner, x->owner);
    } else {
        batch b = { .endpoint = "release" };
        change *c = batch_add(&b, CH_UPDATE, x);
        if (c) {
            const drlc *d = x->type->lifecycle;
            ranch_set_update(c, dest, "", now);
            if (d == NULL)
                c->rec.has_exp = 0;
            else if (d->has_lifespan) {
                c->rec.has_exp = 1;
                if (__builtin_add_overflow(now, d->lifespan_ns, &c->rec.expiration))
                    c->rec.expiration = d->lifespan_ns > 0 ? INT64_MAX : INT64_MIN;
            }
        }
        rc = c ? batch_commit(r, &b, out) : (batch_free(&b), RANCH_STORAGE);
        if (rc == RANCH_OK)
            want_sync(r, x->type);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* The merge of upd into x's user data, or RANCH_TOO_LARGE when the
 * result would pass the cap and grow (so an oversized resource loaded from
 * an older store can still shrink). */
static ranch_code merge_userdata(const res *x, const gojson_update *upd, char **merged, jbuf *out)
{
    char err[512];
    if (gojson_update_apply(x->userdata, upd, merged, err, sizeof err) != 0) {
        jbuf_adds(out, err);
        return RANCH_STORAGE;
    }
    size_t len = *merged ? strlen(*merged) : 0;
    if (len > RANCH_MAX_USERDATA && len > strlen(x->userdata)) {
        jbuf_printf(out, "user data would be %zu bytes, more than the %zu allowed", len,
                    RANCH_MAX_USERDATA);
        free(*merged);
        *merged = NULL;
        return RANCH_TOO_LARGE;
    }
    return RANCH_OK;
}

ranch_code ranch_update(ranch *r, const char *name, const char *owner, const char *state,
                        const gojson_update *upd, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns();
    res *x = find(r, name);
    ranch_code rc;
    char *merged = NULL;
    if (x == NULL) {
        rc = not_found(out, name);
    } else if (strcmp(owner, x->owner) != 0) {
        rc = owner_mismatch(out, owner, x->owner);
    } else if (strcmp(state, x->bucket->state) != 0) {
        jbuf_printf(out, "state mismatch - expected %s, current %s", x->bucket->state, state);
        rc = RANCH_STATE_MISMATCH;
    } else if ((rc = merge_userdata(x, upd, &merged, out)) == RANCH_OK) {
        batch b = { .endpoint = "update" };
        change *c = batch_add(&b, CH_UPDATE, x);
        if (c) {
            ranch_set_update(c, x->bucket->state, x->owner, now);
            if (merged)
                c->rec.userdata = merged;
        }
        rc = c ? batch_commit(r, &b, out) : (batch_free(&b), RANCH_STORAGE);
    }
    free(merged);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- reset ---- */

typedef struct {
    const char *name;
    char *owner;              /* the previous owner, copied */
} reset_pair;

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const reset_pair *)a)->name, ((const reset_pair *)b)->name);
}

/* {name: previous owner}, sorted by name. */
static void json_reset_map(jbuf *out, reset_pair *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_pair);
    jbuf_addc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            jbuf_addc(out, ',');
        json_str(out, v[i].name);
        jbuf_addc(out, ':');
        json_str(out, v[i].owner);
    }
    jbuf_addc(out, '}');
}

/* Batches every owned resource of the bucket idle for at least expire,
 * but those on hold (server/hold.h) until their hold ends. */
static ranch_code reset_collect(bucket *bk, int64_t now, int64_t expire_ns, const char *dest,
                                batch *b, reset_pair *v, size_t *n)
{
    for (res *x = bk ? bk->owned.head : NULL; x; x = x->next) {
        if (now - x->lastupdate < expire_ns || hold_active(x->userdata, now))
            continue;
        change *c = batch_add(b, CH_UPDATE, x);
        v[*n].name = x->name;
        v[*n].owner = strdup(x->owner);
        if (v[(*n)++].owner == NULL || c == NULL)
            return RANCH_STORAGE;
        ranch_set_update(c, dest, "", now);
    }
    return RANCH_OK;
}

ranch_code ranch_reset(ranch *r, const char *type, const char *state, int64_t expire_ns,
                       const char *dest, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns();
    rtype *t = ranch_type_get(r, type, 0);
    bucket *bk = t ? ranch_bucket_get(t, state, 0) : NULL;
    size_t n = 0;
    reset_pair *v = calloc((bk ? bk->owned.n : 0) + 1, sizeof *v);
    batch b = { .endpoint = "reset" };
    ranch_code rc = v ? reset_collect(bk, now, expire_ns, dest, &b, v, &n) : RANCH_STORAGE;
    if (rc == RANCH_OK)
        rc = batch_commit(r, &b, out);
    else
        batch_free(&b);
    if (rc == RANCH_OK) {
        json_reset_map(out, v, n);   /* names stay valid: resources were updated, not freed */
        if (n && t)
            want_sync(r, t);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].owner);
    free(v);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- history ---- */

ranch_code ranch_history(ranch *r, const char *name, size_t limit, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    char err[512];
    jbuf list;
    jbuf_init(&list);
    history_json ctx = { &list, 0 };
    jbuf_addc(&list, '[');
    int got = r->st->ops->history_get(r->st, name, limit, &ctx, history_json_add, err, sizeof err);
    jbuf_addc(&list, ']');
    ranch_code rc = RANCH_OK;
    if (got < 0 || list.oom) {
        jbuf_adds(out, got < 0 ? err : "out of memory writing the history");
        rc = RANCH_STORAGE;
    } else if (got == 0 && find(r, name) == NULL) {
        jbuf_printf(out, "no resource %s, and no history of one", name);
        rc = RANCH_NOT_FOUND;
    } else {
        jbuf_add(out, list.data, list.len);
    }
    jbuf_free(&list);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- metric, list, prometheus ---- */

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_bucket(const void *a, const void *b)
{
    return strcmp((*(bucket *const *)a)->state, (*(bucket *const *)b)->state);
}

static int cmp_type(const void *a, const void *b)
{
    return strcmp((*(rtype *const *)a)->name, (*(rtype *const *)b)->name);
}

static void json_counts_states(jbuf *out, rtype *t)
{
    size_t n = 0;
    for (bucket *b = t->buckets; b; b = b->next)
        n++;
    bucket **v = calloc(n + 1, sizeof *v);
    if (v == NULL)
        return;
    n = 0;
    for (bucket *b = t->buckets; b; b = b->next)
        v[n++] = b;
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_bucket);
    jbuf_addc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            jbuf_addc(out, ',');
        json_str(out, v[i]->state);
        jbuf_printf(out, ":%zu", v[i]->owned.n + v[i]->unowned.n);
    }
    jbuf_addc(out, '}');
    free(v);
}

static void json_counts_owners(jbuf *out, rtype *t)
{
    owner_count **v = calloc(t->owners.count + 1, sizeof *v);
    if (v == NULL)
        return;
    size_t n = 0, slot;
    for (hnode *h = hmap_first(&t->owners, &slot); h; h = hmap_next(&t->owners, h, &slot))
        v[n++] = HMAP_ENTRY(h, owner_count, node);
    const char **names = calloc(n + 1, sizeof *names);
    if (names != NULL) {
        for (size_t i = 0; i < n; i++)
            names[i] = v[i]->owner;
        if (n > 1)
            qsort(names, n, sizeof *names, cmp_cstr);
        jbuf_addc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                jbuf_addc(out, ',');
            json_str(out, names[i]);
            jbuf_printf(out, ":%zu", HMAP_ENTRY(hmap_get(&t->owners, names[i]), owner_count, node)->n);
        }
        jbuf_addc(out, '}');
    }
    free(names);
    free(v);
}

ranch_code ranch_metric(ranch *r, const char *type, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    rtype *t = ranch_type_get(r, type, 0);
    ranch_code rc = RANCH_OK;
    if (t == NULL || t->count == 0) {
        rc = not_found(out, type);
    } else {
        jbuf_adds(out, "{\"type\":");
        json_str(out, type);
        jbuf_adds(out, ",\"current\":");
        json_counts_states(out, t);
        jbuf_adds(out, ",\"owner\":");
        json_counts_owners(out, t);
        jbuf_addc(out, '}');
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Types sorted by name (malloc'd array; *n set). */
static rtype **sorted_types(ranch *r, size_t *n)
{
    rtype **v = calloc(r->types.count + 1, sizeof *v);
    size_t slot;
    *n = 0;
    if (v == NULL)
        return NULL;
    for (hnode *h = hmap_first(&r->types, &slot); h; h = hmap_next(&r->types, h, &slot))
        v[(*n)++] = HMAP_ENTRY(h, rtype, by_name);
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_type);
    return v;
}

static int list_match(const res *x, const char *owner)
{
    return owner == NULL || *owner == '\0' || strcmp(owner, x->owner) == 0;
}

/* The type's matching resources in scan order. */
static void list_type(rtype *t, const char *state, const char *owner, jbuf *out, int *first)
{
    size_t cap = t->count, n = 0;
    res **v = calloc(cap + 1, sizeof *v);
    if (v == NULL)
        return;
    for (bucket *b = t->buckets; b; b = b->next) {
        if (state && *state && strcmp(state, b->state) != 0)
            continue;
        rlist *lists[2] = { &b->unowned, &b->owned };
        for (int i = 0; i < 2; i++)
            for (res *x = lists[i]->head; x && n < cap; x = x->next)
                if (list_match(x, owner))
                    v[n++] = x;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_seq);
    for (size_t i = 0; i < n; i++) {
        if (!*first)
            jbuf_addc(out, ',');
        *first = 0;
        json_res(out, v[i]);
    }
    free(v);
}

ranch_code ranch_list(ranch *r, const char *type, const char *state, const char *owner,
                      jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    int first = 1;
    jbuf_addc(out, '[');
    if (type && *type) {
        rtype *t = ranch_type_get(r, type, 0);
        if (t)
            list_type(t, state, owner, out, &first);
    } else {
        size_t n;
        rtype **v = sorted_types(r, &n);
        for (size_t i = 0; v && i < n; i++)
            list_type(v[i], state, owner, out, &first);
        free(v);
    }
    jbuf_addc(out, ']');
    pthread_mutex_unlock(&r->lock);
    return RANCH_OK;
}

static const char *const known_states[] = {
    "busy", "cleaning", "dirty", "free", "leased", "toBeDeleted", "tombstone",
};

static void prom_label(jbuf *out, const char *s)
{
    prom_label_value(out, s, strlen(s), 0);
}

static void prom_sample(jbuf *out, const char *type, const char *state, size_t n)
{
    jbuf_adds(out, "boskos_resources{state=\"");
    prom_label(out, state);
    jbuf_adds(out, "\",type=\"");
    prom_label(out, type);
    jbuf_printf(out, "\"} %zu\n", n);
}

static void prom_type(jbuf *out, rtype *t)
{
    size_t known[7] = { 0 }, other = 0;
    int has_other = 0;
    for (bucket *b = t->buckets; b; b = b->next) {
        size_t k, n = b->owned.n + b->unowned.n;
        for (k = 0; k < 7 && strcmp(known_states[k], b->state) != 0; k++)
            ;
        if (k < 7)
            known[k] += n;
        else if (n) {
            other += n;
            has_other = 1;
        }
    }
    for (size_t k = 0; k < 7; k++)
        prom_sample(out, t->name, known_states[k], known[k]);
    if (has_other)
        prom_sample(out, t->name, "other", other);
}

void ranch_prom_resources(ranch *r, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    jbuf_adds(out, "# HELP boskos_resources Number of resources recorded in Boskos\n"
                   "# TYPE boskos_resources gauge\n");
    size_t n;
    rtype **v = sorted_types(r, &n);
    for (size_t i = 0; v && i < n; i++)
        if (v[i]->count > 0)
            prom_type(out, v[i]);
    free(v);
    pthread_mutex_unlock(&r->lock);
}
