/* ranch_core.c: the ranch's data (ranch_core.h): resource lists, state
 * buckets, types and owner counts, and the change batches that write
 * through the store before touching memory; the lifecycle records of
 * dynamic types. Knows nothing of requests or of syncing: ranch.c and
 * server_sync.c call in, never the reverse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "server/ranch_core.h"
#include "server/server_log.h"

#define NS 1000000000LL

int64_t ranch_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
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

/* The change's history event (server/history.h), written in the same
 * transaction as the change, so an acknowledged change always has it.
 * Called before applying: c->r still holds the values before. */
static int history_write(ranch *r, const batch *b, const change *c, int64_t now,
                         char *err, size_t n)
{
    const res *x = c->r;
    int created = c->kind == CH_CREATE, deleted = c->kind == CH_DELETE;
    jbuf keys;
    uint32_t keys_total;
    jbuf_init(&keys);
    if (history_keys_changed(&keys, &keys_total, created ? "{}" : x->userdata,
                             deleted ? "{}" : c->rec.userdata) != 0) {
        jbuf_free(&keys);
        snprintf(err, n, "out of memory recording the history of %s", c->rec.name);
        return -1;
    }
    hist_event e = { c->rec.name, now, b->endpoint ? b->endpoint : "sync",
                     created ? "" : x->bucket->state, deleted ? "" : c->rec.state,
                     created ? "" : x->owner, deleted ? "" : c->rec.owner, keys.data, keys_total };
    int rc = r->st->ops->history_put(r->st, &e, err, n);
    jbuf_free(&keys);
    return rc;
}

static int store_write(ranch *r, batch *b, char *err, size_t n)
{
    const store_ops *ops = r->st->ops;
    int64_t now = ranch_now_ns();
    if (ops->begin(r->st, err, n) != 0)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        change *c = &b->v[i];
        int rc = c->kind == CH_DELETE ? ops->del(r->st, c->rec.name, err, n)
                                      : ops->put(r->st, &c->rec, err, n);
        if (rc == 0)
            rc = history_write(r, b, c, now, err, n);
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

/* ---- teardown, loading ---- */

static void type_free(rtype *t)
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

void ranch_types_free(ranch *r)
{
    size_t slot;
    hnode *n = hmap_first(&r->types, &slot);
    while (n) {
        hnode *next = hmap_next(&r->types, n, &slot);
        type_free(HMAP_ENTRY(n, rtype, by_name));
        n = next;
    }
    hmap_free(&r->types);
    hmap_free(&r->names);
}

int ranch_load_rec(void *ctx, const store_rec *rec)
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

int ranch_load_lifecycle(void *ctx, const char *type, const char *json)
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


/* ---- lifecycle records ---- */

void drlc_free(drlc *d)
{
    if (d == NULL)
        return;
    free(d->state);
    free(d->config_type);
    free(d->config_content);
    free(d);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *drlc_to_json(const drlc *d)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "state", d->state);
    cJSON_AddNumberToObject(o, "min-count", (double)d->min_count);
    cJSON_AddNumberToObject(o, "max-count", (double)d->max_count);
    if (d->has_lifespan)
        cJSON_AddNumberToObject(o, "lifespan", (double)d->lifespan_ns);
    if (d->config_type)
        cJSON_AddStringToObject(o, "config-type", d->config_type);
    if (d->config_content)
        cJSON_AddStringToObject(o, "config-content", d->config_content);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const char *json_get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

drlc *drlc_from_json(const char *json)
{
    cJSON *o = cJSON_Parse(json);
    const char *state = o ? json_get_str(o, "state") : NULL;
    drlc *d = state ? calloc(1, sizeof *d) : NULL;
    if (d == NULL || (d->state = strdup(state)) == NULL) {
        free(d);
        cJSON_Delete(o);
        return NULL;
    }
    const cJSON *v;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "min-count")))
        d->min_count = (int64_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "max-count")))
        d->max_count = (int64_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "lifespan"))) {
        d->lifespan_ns = (int64_t)v->valuedouble;
        d->has_lifespan = 1;
    }
    d->config_type = dup_or_null(json_get_str(o, "config-type"));
    d->config_content = dup_or_null(json_get_str(o, "config-content"));
    cJSON_Delete(o);
    return d;
}

drlc *drlc_from_entry(const config_entry *e)
{
    drlc *d = calloc(1, sizeof *d);
    if (d == NULL || (d->state = strdup(e->state)) == NULL) {
        free(d);
        return NULL;
    }
    d->min_count = e->min_count;
    d->max_count = e->max_count;
    d->lifespan_ns = e->lifespan_ns;
    d->has_lifespan = e->has_lifespan;
    d->config_type = dup_or_null(e->config_type);
    d->config_content = dup_or_null(e->config_content);
    return d;
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int drlc_eq(const drlc *a, const drlc *b)
{
    return str_eq(a->state, b->state) && a->min_count == b->min_count &&
           a->max_count == b->max_count && a->lifespan_ns == b->lifespan_ns &&
           a->has_lifespan == b->has_lifespan && str_eq(a->config_type, b->config_type) &&
           str_eq(a->config_content, b->config_content);
}
