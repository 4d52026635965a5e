/* server_sync.c: config sync and dynamic resources (docs/protocol.md §3.6,
 * §3.7), run under the ranch lock at start, on config change, on writes
 * that free a dynamic resource, and every minute. Three steps, each one
 * store transaction: lifecycles from the config, static resources, then
 * each dynamic type's reconciliation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "server/ranch_core.h"
#include "server/server_sync.h"

#define MAX_CREATE 100000

/* ---- config index ---- */

/* Static names -> their entry (the first entry listing a name wins). */
static void index_config(ranch *r)
{
    for (size_t i = 0; r->cfg && i < r->cfg->n; i++) {
        const config_entry *e = &r->cfg->entries[i];
        for (size_t j = 0; j < e->n_names; j++) {
            if (hmap_get(&r->cfg_names, e->names[j]))
                continue;
            cfg_name *cn = calloc(1, sizeof *cn);
            if (cn == NULL)
                continue;
            cn->entry = e;
            if (hmap_put(&r->cfg_names, &cn->node, e->names[j]) != 0)
                free(cn);
        }
    }
}

void ranch_drop_config(ranch *r)
{
    size_t slot;
    hnode *n = hmap_first(&r->cfg_names, &slot);
    while (n) {
        hnode *next = hmap_next(&r->cfg_names, n, &slot);
        free(HMAP_ENTRY(n, cfg_name, node));
        n = next;
    }
    hmap_free(&r->cfg_names);
    config_free(r->cfg);
    r->cfg = NULL;
}

void ranch_adopt_config(ranch *r, config *cfg)
{
    ranch_drop_config(r);
    r->cfg = cfg;
    index_config(r);
}

static const config_entry *cfg_entry_of(ranch *r, const char *name)
{
    hnode *n = hmap_get(&r->cfg_names, name);
    return n ? HMAP_ENTRY(n, cfg_name, node)->entry : NULL;
}

/* The config's lifecycle for type, the last dynamic entry winning. */
static const config_entry *cfg_drlc_of(ranch *r, const char *type)
{
    const config_entry *found = NULL;
    for (size_t i = 0; r->cfg && i < r->cfg->n; i++)
        if (CONFIG_IS_DYNAMIC(&r->cfg->entries[i]) && strcmp(r->cfg->entries[i].type, type) == 0)
            found = &r->cfg->entries[i];
    return found;
}

/* ---- step 1: lifecycles ---- */

static int put_drlc(ranch *r, rtype *t, drlc *d, char *err, size_t n)
{
    char *json = drlc_to_json(d);
    int rc = json ? r->st->ops->put_drlc(r->st, t->name, json, err, n) : -1;
    free(json);
    if (rc != 0) {
        drlc_free(d);
        return -1;
    }
    drlc_free(t->lifecycle);
    t->lifecycle = d;
    return 0;
}

static int sync_drlc_type(ranch *r, rtype *t, char *err, size_t n)
{
    const config_entry *e = cfg_drlc_of(r, t->name);
    if (e != NULL) {
        drlc *d = drlc_from_entry(e);
        if (d == NULL)
            return -1;
        if (t->lifecycle && drlc_eq(t->lifecycle, d)) {
            drlc_free(d);
            return 0;
        }
        return put_drlc(r, t, d, err, n);
    }
    if (t->lifecycle && (t->lifecycle->min_count || t->lifecycle->max_count)) {
        drlc *d = calloc(1, sizeof *d);
        if (d == NULL || (d->state = strdup(t->lifecycle->state)) == NULL) {
            free(d);
            return -1;
        }
        d->lifespan_ns = t->lifecycle->lifespan_ns;
        d->has_lifespan = t->lifecycle->has_lifespan;
        return put_drlc(r, t, d, err, n);
    }
    return 0;
}

static int sync_lifecycles(ranch *r, char *err, size_t n)
{
    for (size_t i = 0; r->cfg && i < r->cfg->n; i++)
        if (CONFIG_IS_DYNAMIC(&r->cfg->entries[i]) &&
            ranch_type_get(r, r->cfg->entries[i].type, 1) == NULL)
            return -1;
    if (r->st->ops->begin(r->st, err, n) != 0)
        return -1;
    size_t slot;
    for (hnode *h = hmap_first(&r->types, &slot); h; h = hmap_next(&r->types, h, &slot)) {
        if (sync_drlc_type(r, HMAP_ENTRY(h, rtype, by_name), err, n) != 0) {
            r->st->ops->rollback(r->st);
            return -1;
        }
    }
    if (r->st->ops->commit(r->st, err, n) != 0) {
        r->st->ops->rollback(r->st);
        return -1;
    }
    return 0;
}

/* ---- step 2: static resources ---- */

typedef void (*res_fn)(ranch *r, res *x, void *ctx);

static void each_res(rtype *t, res_fn fn, ranch *r, void *ctx)
{
    for (bucket *b = t->buckets; b; b = b->next) {
        rlist *lists[2] = { &b->unowned, &b->owned };
        for (int i = 0; i < 2; i++)
            for (res *x = lists[i]->head; x; x = x->next)
                fn(r, x, ctx);
    }
}

typedef struct {
    batch b;
    uint64_t stamp;
    int failed;
    jbuf errors;
} static_ctx;

/* Deletes an unowned resource that is neither configured under its type
 * nor dynamic; an owned one waits for a later sync. */
static void static_check(ranch *r, res *x, void *ctx)
{
    static_ctx *s = ctx;
    const config_entry *e = cfg_entry_of(r, x->name);
    if (e && strcmp(e->type, x->type->name) == 0)
        return;
    if (!e && x->type->lifecycle)
        return;
    if (x->owner[0] == '\0') {
        if (batch_add(&s->b, CH_DELETE, x) == NULL)
            s->failed = 1;
        x->mark = s->stamp;
        return;
    }
    r->pending_static++;
    if (e) {
        jbuf_printf(&s->errors, "%scannot move resource %s from type %s to %s: owned by %s",
                    s->errors.len ? ", " : "", x->name, x->type->name, e->type, x->owner);
    }
}

static void static_add(ranch *r, static_ctx *s, const config_entry *e, const char *name,
                       int64_t now)
{
    if (cfg_entry_of(r, name) != e)
        return;            /* listed twice: the first entry decides */
    hnode *h = hmap_get(&r->names, name);
    res *x = h ? HMAP_ENTRY(h, res, by_name) : NULL;
    if (x && x->mark != s->stamp)
        return;            /* present (or owned under another type) */
    rtype *t = ranch_type_get(r, e->type, 1);
    if (t == NULL || batch_create(&s->b, t, name, e->state, now) == NULL)
        s->failed = 1;
}

static int sync_static(ranch *r, char *err, size_t n)
{
    static_ctx s = { { 0 }, ++r->stamp, 0, { 0 } };
    jbuf_init(&s.errors);
    int64_t now = ranch_now_ns();
    r->pending_static = 0;
    size_t slot;
    for (hnode *h = hmap_first(&r->types, &slot); h; h = hmap_next(&r->types, h, &slot))
        each_res(HMAP_ENTRY(h, rtype, by_name), static_check, r, &s);
    for (size_t i = 0; r->cfg && i < r->cfg->n; i++)
        for (size_t j = 0; j < r->cfg->entries[i].n_names; j++)
            static_add(r, &s, &r->cfg->entries[i], r->cfg->entries[i].names[j], now);
    int rc = 0;
    if (s.failed) {
        batch_free(&s.b);
        snprintf(err, n, "out of memory syncing static resources");
        rc = -1;
    } else if (batch_commit(r, &s.b, NULL) != RANCH_OK) {
        snprintf(err, n, "storage error syncing static resources");
        rc = -1;
    } else if (s.errors.len) {
        snprintf(err, n, "%s", s.errors.data);
        rc = -1;
    }
    jbuf_free(&s.errors);
    return rc;
}

/* ---- step 3: dynamic resources ---- */

typedef struct {
    batch b;
    int64_t now;
    size_t total, tomb, tbd, n_idle, cap_idle;
    res **idle;
    int failed;
} dyn_ctx;

static void mark_to_be_deleted(dyn_ctx *d, res *x)
{
    change *c = batch_add(&d->b, CH_UPDATE, x);
    if (c == NULL)
        d->failed = 1;
    else
        ranch_set_update(c, "toBeDeleted", "", d->now);
}

static void dyn_check(ranch *r, res *x, void *ctx)
{
    dyn_ctx *d = ctx;
    if (cfg_entry_of(r, x->name))
        return;            /* a static name inside a dynamic type */
    d->total++;
    if (x->owner[0])
        return;
    const char *state = x->bucket->state;
    if (strcmp(state, "tombstone") == 0) {
        if (batch_add(&d->b, CH_DELETE, x) == NULL)
            d->failed = 1;
        d->tomb++;
    } else if (strcmp(state, "toBeDeleted") == 0) {
        d->tbd++;
    } else if (x->has_exp && d->now > x->expiration) {
        mark_to_be_deleted(d, x);
        d->tbd++;
    } else if (d->n_idle < d->cap_idle) {
        d->idle[d->n_idle++] = x;
    }
}

static int cmp_name_desc(const void *a, const void *b)
{
    return strcmp((*(res *const *)b)->name, (*(res *const *)a)->name);
}

static int drop_lifecycle(ranch *r, rtype *t, char *err, size_t n)
{
    if (r->st->ops->begin(r->st, err, n) != 0)
        return -1;
    if (r->st->ops->del_drlc(r->st, t->name, err, n) != 0 ||
        r->st->ops->commit(r->st, err, n) != 0) {
        r->st->ops->rollback(r->st);
        return -1;
    }
    drlc_free(t->lifecycle);
    t->lifecycle = NULL;
    return 0;
}

static int reconcile(ranch *r, rtype *t, char *err, size_t n)
{
    const drlc *lc = t->lifecycle;
    dyn_ctx d = { { 0 }, ranch_now_ns(), 0, 0, 0, 0, t->count, NULL, 0 };
    if ((d.idle = calloc(t->count + 1, sizeof *d.idle)) == NULL)
        return -1;
    each_res(t, dyn_check, r, &d);
    int64_t active = (int64_t)(d.total - d.tomb), created = 0;
    /* at most MAX_CREATE per sync, so an absurd min-count cannot exhaust
     * memory in one go; later syncs continue */
    for (; active < lc->min_count && created < MAX_CREATE; active++, created++) {
        char name[37];
        if (core_uuid4_string(name) != 0 || batch_create(&d.b, t, name, lc->state, d.now) == NULL)
            d.failed = 1;
    }
    int64_t excess = active - (int64_t)d.tbd - lc->max_count;
    if (d.n_idle > 1)
        qsort(d.idle, d.n_idle, sizeof *d.idle, cmp_name_desc);
    for (size_t i = 0; excess > 0 && i < d.n_idle; i++, excess--)
        mark_to_be_deleted(&d, d.idle[i]);
    free(d.idle);
    if (d.failed) {
        batch_free(&d.b);
        snprintf(err, n, "out of memory reconciling dynamic type %s", t->name);
        return -1;
    }
    if (batch_commit(r, &d.b, NULL) != RANCH_OK) {
        snprintf(err, n, "storage error reconciling dynamic type %s", t->name);
        return -1;
    }
    if (lc->min_count == 0 && lc->max_count == 0 && created == 0 && d.total == d.tomb)
        return drop_lifecycle(r, t, err, n);
    return 0;
}

static int sync_dynamic(ranch *r, char *err, size_t n)
{
    size_t count = r->types.count, k = 0, slot;
    rtype **v = calloc(count + 1, sizeof *v);
    if (v == NULL)
        return -1;
    for (hnode *h = hmap_first(&r->types, &slot); h; h = hmap_next(&r->types, h, &slot))
        if (HMAP_ENTRY(h, rtype, by_name)->lifecycle)
            v[k++] = HMAP_ENTRY(h, rtype, by_name);
    int rc = 0;
    for (size_t i = 0; i < k; i++)
        if (reconcile(r, v[i], err, n) != 0)
            rc = -1;
    free(v);
    return rc;
}

int ranch_sync_locked(ranch *r, char *err, size_t err_len)
{
    if (sync_lifecycles(r, err, err_len) != 0)
        return -1;
    if (sync_static(r, err, err_len) != 0)
        return -1;
    return sync_dynamic(r, err, err_len);
}
