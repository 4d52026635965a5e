/* ranch.c: the ranch's indexes, the change batches that keep memory and
 * store in step, and the endpoint operations (see ranch.h and
 * server_ranch.h). Config sync and dynamic resources are in
 * server_sync.c; request-id queues in server_queue.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/prom_text.h"
#include "server/server_queue.h"
#include "server/server_ranch.h"
#include "server/server_log.h"

#define NS 1000000000LL

int64_t ranch_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int64_t floor_seconds(int64_t ns)
{
    return ns >= 0 ? ns / NS : -((-ns + NS - 1) / NS);
}

/* ---- lists, buckets, types ---- */

static void list_append(rlist *l, res *x)
{
    x->next = NULL;
    x->prev = l->tail;
    if (l->tail)
        l->tail->next = x;
    else
        l->head = x;
    l->tail = x;
    l->n++;
}

static void list_remove(rlist *l, res *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
    x->prev = x->next = NULL;
    l->n--;
}

static rlist *list_of(res *x)
{
    return x->owner[0] ? &x->bucket->owned : &x->bucket->unowned;
}

rtype *ranch_type_get(ranch *r, const char *name, int create)
{
    hnode *n = hmap_get(&r->types, name);
    if (n || !create)
        return n ? HMAP_ENTRY(n, rtype, by_name) : NULL;
    rtype *t = calloc(1, sizeof *t);
    if (t == NULL || (t->name = strdup(name)) == NULL) {
        free(t);
        return NULL;
    }
    hmap_init(&t->owners);
    if (hmap_put(&r->types, &t->by_name, t->name) != 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    return t;
}

bucket *ranch_bucket_get(rtype *t, const char *state, int create)
{
    for (bucket *b = t->buckets; b; b = b->next)
        if (strcmp(b->state, state) == 0)
            return b;
    if (!create)
        return NULL;
    bucket *b = calloc(1, sizeof *b);
    if (b == NULL || (b->state = strdup(state)) == NULL) {
        free(b);
        return NULL;
    }
    b->next = t->buckets;
    t->buckets = b;
    return b;
}

/* Frees the type's empty buckets. Called only between changes, never
 * while a batch holds bucket pointers it has yet to use. */
static void drop_empty_buckets(rtype *t)
{
    for (bucket **p = &t->buckets; *p;) {
        bucket *b = *p;
        if (b->unowned.n || b->owned.n) {
            p = &b->next;
            continue;
        }
        *p = b->next;
        free(b->state);
        free(b);
    }
}

/* Owner counts: +1/-1 for owner o of type t. Creation may fail (OOM):
 * then the count is lost, never the resource. */
static void owner_add(rtype *t, const char *o, int delta)
{
    hnode *n = hmap_get(&t->owners, o);
    owner_count *c = n ? HMAP_ENTRY(n, owner_count, node) : NULL;
    if (c == NULL && delta > 0) {
        size_t len = strlen(o);
        c = calloc(1, sizeof *c + len + 1);
        if (c == NULL)
            return;
        memcpy(c->owner, o, len + 1);
        if (hmap_put(&t->owners, &c->node, c->owner) != 0) {
            free(c);
            return;
        }
    }
    if (c == NULL)
        return;
    if (delta > 0)
        c->n++;
    else if (c->n > 0 && --c->n == 0) {
        hmap_del(&t->owners, &c->node);
        free(c);
    }
}

static void link_res(ranch *r, res *x)
{
    list_append(list_of(x), x);
    owner_add(x->type, x->owner, +1);
    x->type->count++;
}

static void unlink_res(ranch *r, res *x)
{
    list_remove(list_of(x), x);
    owner_add(x->type, x->owner, -1);
    x->type->count--;
}

static void res_free(res *x)
{
    if (x == NULL)
        return;
    free(x->name);
    free(x->owner);
    free(x->userdata);
    free(x);
}

/* ---- batches ---- */

change *batch_add(batch *b, int kind, res *target)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        change *v = realloc(b->v, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        b->v = v;
        b->cap = cap;
    }
    change *c = &b->v[b->n++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->r = target;
    if (target) {
        c->rec = (store_rec){ target->type->name, target->name, target->bucket ? target->bucket->state : "",
                              target->owner, target->userdata, target->lastupdate,
                              target->expiration, target->has_exp, target->seq };
    }
    return c;
}

void ranch_set_update(change *c, const char *state, const char *owner, int64_t now)
{
    c->rec.state = state;
    c->rec.owner = owner;
    c->rec.lastupdate = now;
}

change *batch_create(batch *b, rtype *t, const char *name, const char *state, int64_t now)
{
    res *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->type = t;
    if ((x->name = strdup(name)) == NULL || (x->owner = strdup("")) == NULL ||
        (x->userdata = strdup("{}")) == NULL) {
        res_free(x);
        return NULL;
    }
    change *c = batch_add(b, CH_CREATE, NULL);
    if (c == NULL) {
        res_free(x);
        return NULL;
    }
    c->r = x;
    c->rec = (store_rec){ t->name, x->name, state, "", "{}", now, 0, 0, 0 };
    return c;
}

static void change_unprepare(change *c)
{
    free(c->owner_copy);
    free(c->ud_copy);
    c->owner_copy = c->ud_copy = NULL;
    c->b = NULL;
}

void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].t)
            drop_empty_buckets(b->v[i].t);   /* the ones prepare created */
    for (size_t i = 0; i < b->n; i++) {
        change_unprepare(&b->v[i]);
        if (b->v[i].kind == CH_CREATE)
            res_free(b->v[i].r);
    }
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* Allocates everything applying c needs, so that applying cannot fail. */
static int change_prepare(ranch *r, change *c)
{
    c->rec.seq = ++r->seq;
    c->t = c->r->type;
    if (c->kind == CH_DELETE)
        return 0;
    if ((c->b = ranch_bucket_get(c->r->type, c->rec.state, 1)) == NULL)
        return -1;
    if (c->kind == CH_CREATE)
        return 0;
    if (c->rec.owner != c->r->owner && strcmp(c->rec.owner, c->r->owner) != 0 &&
        (c->owner_copy = strdup(c->rec.owner)) == NULL)
        return -1;
    if (c->rec.userdata != c->r->userdata && (c->ud_copy = strdup(c->rec.userdata)) == NULL)
        return -1;
    return 0;
}

static void change_apply(ranch *r, change *c)
{
    res *x = c->r;
    if (c->kind == CH_DELETE) {
        unlink_res(r, x);
        hmap_del(&r->names, &x->by_name);
        res_free(x);
        c->r = NULL;
        return;
    }
    if (c->kind == CH_UPDATE)
        unlink_res(r, x);
    x->bucket = c->b;
    if (c->owner_copy) {
        free(x->owner);
        x->owner = c->owner_copy;
    }
    if (c->ud_copy) {
        free(x->userdata);
        x->userdata = c->ud_copy;
    }
    x->lastupdate = c->rec.lastupdate;
    x->expiration = c->rec.expiration;
    x->has_exp = c->rec.has_exp;
    x->seq = c->rec.seq;
    link_res(r, x);
    if (c->kind == CH_CREATE)
        hmap_put(&r->names, &x->by_name, x->name);   /* table grown in prepare */
    c->owner_copy = c->ud_copy = NULL;
    c->b = NULL;
    if (c->kind == CH_CREATE)
        c->kind = CH_UPDATE;    /* now owned by the ranch, not the batch */
}

/* Makes room in the name table for the batch's creations, so that the
 * hmap_put in change_apply cannot fail. */
static int reserve_names(ranch *r, const batch *b)
{
    size_t creates = 0;
    for (size_t i = 0; i < b->n; i++)
        creates += b->v[i].kind == CH_CREATE;
    return hmap_reserve(&r->names, creates);
}

static int store_write(ranch *r, batch *b, char *err, size_t n)
{
    const store_ops *ops = r->st->ops;
    if (ops->begin(r->st, err, n) != 0)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        change *c = &b->v[i];
        int rc = c->kind == CH_DELETE ? ops->del(r->st, c->rec.name, err, n)
                                      : ops->put(r->st, &c->rec, err, n);
        if (rc != 0) {
            ops->rollback(r->st);
            return -1;
        }
    }
    if (ops->commit(r->st, err, n) != 0) {
        ops->rollback(r->st);
        return -1;
    }
    return 0;
}

ranch_code batch_commit(ranch *r, batch *b, jbuf *errout)
{
    char err[512] = "out of memory preparing a change";
    int ok = reserve_names(r, b) == 0;
    for (size_t i = 0; ok && i < b->n; i++)
        ok = change_prepare(r, &b->v[i]) == 0;
    if (ok && b->n)
        ok = store_write(r, b, err, sizeof err) == 0;
    if (!ok) {
        if (errout)
            jbuf_adds(errout, err);
        server_log(SLOG_ERROR, "storage error: %s", err);
        batch_free(b);
        return RANCH_STORAGE;
    }
    for (size_t i = 0; i < b->n; i++)
        change_apply(r, &b->v[i]);
    batch_free(b);      /* also drops the buckets the batch emptied */
    return RANCH_OK;
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
    hmap_init(&r->queues);
    hmap_init(&r->cfg_names);
    return r;
}

static void free_cfg_names(ranch *r)
{
    size_t slot;
    hnode *n = hmap_first(&r->cfg_names, &slot);
    while (n) {
        hnode *next = hmap_next(&r->cfg_names, n, &slot);
        free(HMAP_ENTRY(n, cfg_name, node));
        n = next;
    }
    hmap_free(&r->cfg_names);
}

static void free_type(rtype *t)
{
    for (bucket *b = t->buckets, *bn; b; b = bn) {
        bn = b->next;
        rlist *lists[2] = { &b->unowned, &b->owned };
        for (int i = 0; i < 2; i++)
            for (res *x = lists[i]->head, *xn; x; x = xn) {
                xn = x->next;
                res_free(x);
            }
        free(b->state);
        free(b);
    }
    size_t slot;
    hnode *n = hmap_first(&t->owners, &slot);
    while (n) {
        hnode *next = hmap_next(&t->owners, n, &slot);
        free(HMAP_ENTRY(n, owner_count, node));
        n = next;
    }
    hmap_free(&t->owners);
    drlc_free(t->lifecycle);
    free(t->name);
    free(t);
}

void ranch_free(ranch *r)
{
    if (r == NULL)
        return;
    size_t slot;
    hnode *n = hmap_first(&r->types, &slot);
    while (n) {
        hnode *next = hmap_next(&r->types, n, &slot);
        free_type(HMAP_ENTRY(n, rtype, by_name));
        n = next;
    }
    hmap_free(&r->types);
    hmap_free(&r->names);
    queue_free_all(&r->queues);
    free_cfg_names(r);
    config_free(r->cfg);
    if (r->st)
        r->st->ops->close(r->st);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Loading: the store returns records in seq order; appending them keeps
 * the scan order of the previous run. */
static int load_one(void *ctx, const store_rec *rec)
{
    ranch *r = ctx;
    rtype *t = ranch_type_get(r, rec->type, 1);
    if (t == NULL || hmap_get(&r->names, rec->name) != NULL)
        return t == NULL ? -1 : 0;
    res *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    x->type = t;
    x->bucket = ranch_bucket_get(t, rec->state, 1);
    x->name = strdup(rec->name);
    x->owner = strdup(rec->owner);
    x->userdata = strdup(rec->userdata[0] ? rec->userdata : "{}");
    if (x->bucket == NULL || !x->name || !x->owner || !x->userdata ||
        hmap_put(&r->names, &x->by_name, x->name) != 0) {
        res_free(x);
        return -1;
    }
    x->lastupdate = rec->lastupdate;
    x->expiration = rec->expiration;
    x->has_exp = rec->has_exp;
    x->seq = rec->seq;
    if (rec->seq > r->seq)
        r->seq = rec->seq;
    link_res(r, x);
    return 0;
}

static int load_drlc(void *ctx, const char *type, const char *json)
{
    ranch *r = ctx;
    rtype *t = ranch_type_get(r, type, 1);
    drlc *d = drlc_from_json(json);
    if (t == NULL || d == NULL) {
        drlc_free(d);
        return -1;
    }
    drlc_free(t->lifecycle);
    t->lifecycle = d;
    return 0;
}

int ranch_load(ranch *r, char *err, size_t err_len)
{
    pthread_mutex_lock(&r->lock);
    int rc = r->st->ops->load(r->st, r, load_one, load_drlc, err, err_len);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int ranch_sync(ranch *r, config *cfg, char *err, size_t err_len)
{
    pthread_mutex_lock(&r->lock);
    if (cfg != NULL) {
        config_free(r->cfg);
        r->cfg = cfg;
        free_cfg_names(r);
        ranch_index_config(r);
    }
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

void ranch_gc(ranch *r)
{
    pthread_mutex_lock(&r->lock);
    queue_gc(&r->queues, ranch_now_ns());
    pthread_mutex_unlock(&r->lock);
}

size_t ranch_count(ranch *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->names.count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- acquire ---- */

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
        batch b = { 0 };
        if (ranch_new_uuid(name) == 0 && batch_create(&b, t, name, t->lifecycle->state, now))
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
        batch b = { 0 };
        change *c = batch_add(&b, CH_UPDATE, x);
        if (c)
            ranch_set_update(c, dest, owner, now);
        rc = c ? batch_commit(r, &b, out) : (batch_free(&b), RANCH_STORAGE);
        if (rc == RANCH_OK) {
            queue_remove(&r->queues, type, state, request_id);
            json_res(out, x);
            *waited_seconds = (double)(now - first_seen) / 1e9;
        }
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
    batch b = { 0 };
    ranch_code rc = RANCH_OK;
    for (size_t i = 0; i < n_found && rc == RANCH_OK; i++) {
        change *c = batch_add(&b, CH_UPDATE, found[i]);
        if (c == NULL)
            rc = RANCH_STORAGE;
        else
            ranch_set_update(c, dest, owner, now);
    }
    if (rc == RANCH_OK)
        rc = batch_commit(r, &b, out);
    else
        batch_free(&b);
    if (rc == RANCH_OK && n_found == asked) {
        jbuf_addc(out, '[');
        for (size_t i = 0; i < n_found; i++) {
            if (i)
                jbuf_addc(out, ',');
            json_res(out, found[i]);
        }
        jbuf_adds(out, "]\n");
    } else if (rc == RANCH_OK) {
        rc = not_found(out, state);
    }
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
        batch b = { 0 };
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

ranch_code ranch_update(ranch *r, const char *name, const char *owner, const char *state,
                        const char *body, size_t body_len, jbuf *out)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = ranch_now_ns();
    res *x = find(r, name);
    ranch_code rc;
    char *merged = NULL, err[512];
    if (x == NULL) {
        rc = not_found(out, name);
    } else if (strcmp(owner, x->owner) != 0) {
        rc = owner_mismatch(out, owner, x->owner);
    } else if (strcmp(state, x->bucket->state) != 0) {
        jbuf_printf(out, "state mismatch - expected %s, current %s", x->bucket->state, state);
        rc = RANCH_STATE_MISMATCH;
    } else if (gojson_merge_userdata(x->userdata, body, body_len, &merged, err, sizeof err) != 0) {
        jbuf_adds(out, err);
        rc = RANCH_BAD_REQUEST;
    } else {
        batch b = { 0 };
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

/* Batches every owned resource of the bucket idle for at least expire. */
static ranch_code reset_collect(bucket *bk, int64_t now, int64_t expire_ns, const char *dest,
                                batch *b, reset_pair *v, size_t *n)
{
    for (res *x = bk ? bk->owned.head : NULL; x; x = x->next) {
        if (now - x->lastupdate < expire_ns)
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
    batch b = { 0 };
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
