/* history.c: see history.h. The index keeps two lists of the same
 * events: each resource's, oldest first, and one of all events, oldest
 * first, so that the global cap drops the oldest event anywhere in O(1)
 * (it is always the oldest of its resource, too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "core/godur.h"
#include "server/history.h"
#include "server/server_map.h"

#define DEFAULT_MAX_EVENTS ((size_t)1000000)
#define DEFAULT_KEEP_DELETED_NS (24LL * 3600 * 1000000000LL)
#define MAX_EVENTS_LIMIT 1e9

/* ---- limits ---- */

int history_limits_from_env(history_limits *lim, char *err, size_t n)
{
    lim->max_events = DEFAULT_MAX_EVENTS;
    lim->keep_deleted_ns = DEFAULT_KEEP_DELETED_NS;
    const char *v = getenv("BOSK_HISTORY_MAX_EVENTS");
    if (v != NULL && *v != '\0') {
        char *end;
        double d = strtod(v, &end);
        if (*end != '\0' || !(d >= 1) || d > MAX_EVENTS_LIMIT || d != (double)(size_t)d) {
            snprintf(err, n, "invalid BOSK_HISTORY_MAX_EVENTS=%s: want a whole number from 1 "
                     "to %g", v, MAX_EVENTS_LIMIT);
            return -1;
        }
        lim->max_events = (size_t)d;
    }
    v = getenv("BOSK_HISTORY_KEEP_DELETED");
    if (v != NULL && *v != '\0') {
        char why[256];
        int64_t ns;
        if (godur_parse(v, strlen(v), &ns, why, sizeof why) != 0 || ns < 0) {
            snprintf(err, n, "invalid BOSK_HISTORY_KEEP_DELETED=%s: %s", v,
                     ns < 0 ? "must not be negative" : why);
            return -1;
        }
        lim->keep_deleted_ns = ns;
    }
    return 0;
}

/* ---- keys changed ---- */

static int cmp_item_name(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* The object's members sorted by key (malloc'd; *n set), or NULL. */
static cJSON **sorted_members(const cJSON *o, size_t *n)
{
    *n = (size_t)cJSON_GetArraySize(o);
    cJSON **v = malloc((*n + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    size_t i = 0;
    for (cJSON *m = o->child; m && i < *n; m = m->next)
        v[i++] = m;
    *n = i;
    if (i > 1)
        qsort(v, i, sizeof *v, cmp_item_name);
    return v;
}

static void add_key(jbuf *out, const char *key, uint32_t *total)
{
    if (*total < HISTORY_MAX_KEYS) {
        if (*total)
            jbuf_addc(out, ',');
        gojson_string(out, key, strlen(key));
    }
    if (*total < UINT32_MAX)
        (*total)++;
}

/* Walks both sorted member lists at once: O(n log n) for n keys. */
static void diff_members(jbuf *out, uint32_t *total, cJSON **a, size_t na, cJSON **b, size_t nb)
{
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i]->string, b[j]->string);
        if (c < 0) {
            add_key(out, a[i++]->string, total);
        } else if (c > 0) {
            add_key(out, b[j++]->string, total);
        } else {
            if (!cJSON_Compare(a[i], b[j], 1))
                add_key(out, a[i]->string, total);
            i++;
            j++;
        }
    }
}

/* The fast path: stored user data is Go's encoding of a map of strings,
 * keys sorted, so both texts can be walked at once without parsing them
 * into trees (a 1 MiB, 80,000-key update costs milliseconds, not a tenth
 * of a second). Any other shape (a key with an escape, whose escaped
 * bytes may not sort as Go sorted the key; unsorted keys; a value that is
 * not a string) returns -1 and the caller parses instead. */
typedef struct {
    const char *p;
    int done;
} obj_scan;

typedef struct {
    const char *s;
    size_t n;
} span;

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A JSON string at p (at its opening quote): its raw inside in *sp; the
 * position after it, or NULL. *escaped: it holds a backslash. */
static const char *raw_string(const char *p, span *sp, int *escaped)
{
    if (*p != '"')
        return NULL;
    const char *start = ++p;
    *escaped = 0;
    for (; *p != '"'; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '\\') {
            *escaped = 1;
            if (*++p == '\0')
                return NULL;
        }
    }
    sp->s = start;
    sp->n = (size_t)(p - start);
    return p + 1;
}

static int scan_open(obj_scan *sc, const char *text)
{
    const char *p = skip_ws(text);
    if (*p != '{')
        return -1;
    p = skip_ws(p + 1);
    sc->done = *p == '}';
    sc->p = p;
    return 0;
}

/* The next member: 1, 0 at the end, -1 for another shape. */
static int scan_next(obj_scan *sc, span *key, span *val)
{
    int key_escaped, val_escaped;
    if (sc->done)
        return 0;
    const char *p = raw_string(sc->p, key, &key_escaped);
    if (p == NULL || key_escaped || *(p = skip_ws(p)) != ':')
        return -1;
    p = raw_string(skip_ws(p + 1), val, &val_escaped);
    if (p == NULL)
        return -1;
    p = skip_ws(p);
    if (*p == '}')
        sc->done = 1;
    else if (*p == ',')
        p = skip_ws(p + 1);
    else
        return -1;
    sc->p = p;
    return 1;
}

static int span_cmp(span a, span b)
{
    int c = memcmp(a.s, b.s, a.n < b.n ? a.n : b.n);
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

static void add_raw_key(jbuf *out, span key, uint32_t *total)
{
    if (*total < HISTORY_MAX_KEYS) {
        if (*total)
            jbuf_addc(out, ',');
        jbuf_addc(out, '"');
        jbuf_add(out, key.s, key.n);      /* no escapes: as stored */
        jbuf_addc(out, '"');
    }
    if (*total < UINT32_MAX)
        (*total)++;
}

/* Advances one side: 1 with its member, 0 at its end, -1 another shape
 * (or keys out of order). */
static int scan_step(obj_scan *sc, span *key, span *val, span *prev)
{
    int rc = scan_next(sc, key, val);
    if (rc == 1 && prev->s && span_cmp(*prev, *key) >= 0)
        return -1;
    if (rc == 1)
        *prev = *key;
    return rc;
}

static int diff_sorted(jbuf *out, uint32_t *total, const char *before, const char *after)
{
    obj_scan a, b;
    span ka, va, kb, vb, pa = { NULL, 0 }, pb = { NULL, 0 };
    if (scan_open(&a, before) != 0 || scan_open(&b, after) != 0)
        return -1;
    int ra = scan_step(&a, &ka, &va, &pa), rb = scan_step(&b, &kb, &vb, &pb);
    size_t mark = out->len;
    jbuf_addc(out, '[');
    while (ra == 1 || rb == 1) {
        int c = ra != 1 ? 1 : rb != 1 ? -1 : span_cmp(ka, kb);
        if (c <= 0 && (c < 0 || va.n != vb.n || memcmp(va.s, vb.s, va.n) != 0))
            add_raw_key(out, c <= 0 ? ka : kb, total);
        else if (c > 0)
            add_raw_key(out, kb, total);
        if (c <= 0)
            ra = scan_step(&a, &ka, &va, &pa);
        if (c >= 0)
            rb = scan_step(&b, &kb, &vb, &pb);
        if (ra < 0 || rb < 0)
            break;
    }
    if (ra < 0 || rb < 0) {
        out->len = mark;      /* drop what was written: the caller parses */
        if (out->data)
            out->data[mark] = '\0';
        *total = 0;
        return -1;
    }
    jbuf_addc(out, ']');
    return 0;
}

int history_keys_changed(jbuf *out, uint32_t *total, const char *before, const char *after)
{
    *total = 0;
    if (before == after || strcmp(before, after) == 0) {
        jbuf_adds(out, "[]");
        return out->oom ? -1 : 0;
    }
    if (diff_sorted(out, total, before, after) == 0)
        return out->oom ? -1 : 0;
    cJSON *a = cJSON_Parse(before), *b = cJSON_Parse(after);
    size_t na = 0, nb = 0;
    cJSON **va = cJSON_IsObject(a) ? sorted_members(a, &na) : NULL;
    cJSON **vb = cJSON_IsObject(b) ? sorted_members(b, &nb) : NULL;
    jbuf_addc(out, '[');
    if (va && vb)      /* else not objects (never stored) or out of memory: none named */
        diff_members(out, total, va, na, vb, nb);
    jbuf_addc(out, ']');
    int rc = out->oom ? -1 : 0;
    free(va);
    free(vb);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return rc;
}

/* ---- JSON ---- */

/* RFC 3339 in UTC with the nanoseconds Go's RFC3339Nano keeps (trailing
 * zeros dropped), so that events a microsecond apart stay distinct. */
static void json_time_ns(jbuf *out, int64_t ns)
{
    const int64_t NS = 1000000000LL;
    int64_t sec = ns >= 0 ? ns / NS : -((-ns + NS - 1) / NS);
    long frac = (long)(ns - sec * NS);
    char t[48];
    gojson_format_time(t, sizeof t, sec);
    size_t len = strlen(t);
    if (frac > 0 && len > 0 && t[len - 1] == 'Z') {
        char digits[24];
        snprintf(digits, sizeof digits, "%09ld", frac);
        size_t d = 9;
        while (d > 0 && digits[d - 1] == '0')
            d--;
        digits[d] = '\0';
        snprintf(t + len - 1, sizeof t - (len - 1), ".%sZ", digits);
    }
    jbuf_addc(out, '"');
    jbuf_adds(out, t);
    jbuf_addc(out, '"');
}

static void json_field(jbuf *out, const char *key, const char *value)
{
    jbuf_printf(out, ",\"%s\":", key);
    gojson_string(out, value, strlen(value));
}

int history_json_add(void *ctx, const hist_event *e)
{
    history_json *h = ctx;
    jbuf *out = h->out;
    if (h->n++)
        jbuf_addc(out, ',');
    jbuf_adds(out, "{\"time\":");
    json_time_ns(out, e->time);
    json_field(out, "endpoint", e->endpoint);
    json_field(out, "from", e->from);
    json_field(out, "to", e->to);
    json_field(out, "owner_from", e->owner_from);
    json_field(out, "owner_to", e->owner_to);
    jbuf_adds(out, ",\"userdata_changed\":");
    jbuf_adds(out, e->keys[0] ? e->keys : "[]");
    jbuf_printf(out, ",\"userdata_changed_count\":%u}", (unsigned)e->keys_total);
    return out->oom ? -1 : 0;
}

/* ---- the index ---- */

typedef struct ev ev;
typedef struct hres hres;

enum { T_ENDPOINT, T_FROM, T_TO, T_OWNER_FROM, T_OWNER_TO, T_KEYS, T_COUNT };

struct ev {
    ev *gprev, *gnext;           /* all events, oldest first (or the staged ones) */
    ev *rnext;                   /* the resource's events, oldest first */
    hres *res;
    int64_t time;
    uint32_t keys_total;
    uint32_t off[T_COUNT];       /* where each text starts in text[] */
    char text[];
};

struct hres {
    hnode node;
    ev *head, *tail;
    size_t n;                    /* events in the list */
    size_t staged;               /* events staged, not yet committed */
    int64_t deleted_at;          /* 0 while the resource exists */
    char name[];
};

struct history_index {
    history_limits lim;
    hmap by_name;
    ev *head, *tail;             /* all events */
    size_t n;
    ev *staged_head, *staged_tail;
};

history_index *history_index_new(const history_limits *lim)
{
    history_index *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->lim = *lim;
    hmap_init(&h->by_name);
    return h;
}

static hres *res_get(history_index *h, const char *name, int create)
{
    hnode *n = hmap_get(&h->by_name, name);
    if (n || !create)
        return n ? HMAP_ENTRY(n, hres, node) : NULL;
    size_t len = strlen(name);
    hres *r = calloc(1, sizeof *r + len + 1);
    if (r == NULL)
        return NULL;
    memcpy(r->name, name, len + 1);
    if (hmap_put(&h->by_name, &r->node, r->name) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void res_drop_if_empty(history_index *h, hres *r)
{
    if (r->n > 0 || r->staged > 0)
        return;
    hmap_del(&h->by_name, &r->node);
    free(r);
}

static void global_unlink(history_index *h, ev *e)
{
    if (e->gprev)
        e->gprev->gnext = e->gnext;
    else
        h->head = e->gnext;
    if (e->gnext)
        e->gnext->gprev = e->gprev;
    else
        h->tail = e->gprev;
    h->n--;
}

/* Drops r's oldest event. */
static void res_pop(history_index *h, hres *r)
{
    ev *e = r->head;
    r->head = e->rnext;
    if (r->head == NULL)
        r->tail = NULL;
    r->n--;
    global_unlink(h, e);
    free(e);
}

void history_index_free(history_index *h)
{
    if (h == NULL)
        return;
    history_index_rollback(h);
    for (ev *e = h->head, *next; e; e = next) {
        next = e->gnext;
        free(e);
    }
    size_t slot;
    hnode *n = hmap_first(&h->by_name, &slot);
    while (n) {
        hnode *next = hmap_next(&h->by_name, n, &slot);
        free(HMAP_ENTRY(n, hres, node));
        n = next;
    }
    hmap_free(&h->by_name);
    free(h);
}

int history_index_stage(history_index *h, const hist_event *e)
{
    const char *texts[T_COUNT] = { e->endpoint, e->from, e->to, e->owner_from, e->owner_to,
                                   e->keys };
    size_t lens[T_COUNT], total = 0;
    for (int i = 0; i < T_COUNT; i++) {
        lens[i] = strlen(texts[i]) + 1;
        total += lens[i];
    }
    if (total > UINT32_MAX)
        return -1;
    hres *r = res_get(h, e->name, 1);
    ev *x = r ? malloc(sizeof *x + total) : NULL;
    if (x == NULL)
        return -1;
    size_t at = 0;
    for (int i = 0; i < T_COUNT; i++) {
        x->off[i] = (uint32_t)at;
        memcpy(x->text + at, texts[i], lens[i]);
        at += lens[i];
    }
    x->time = e->time;
    x->keys_total = e->keys_total;
    x->res = r;
    x->rnext = NULL;
    x->gnext = NULL;
    x->gprev = h->staged_tail;
    if (h->staged_tail)
        h->staged_tail->gnext = x;
    else
        h->staged_head = x;
    h->staged_tail = x;
    r->staged++;
    return 0;
}

static void append(history_index *h, ev *x)
{
    hres *r = x->res;
    x->rnext = NULL;
    if (r->tail)
        r->tail->rnext = x;
    else
        r->head = x;
    r->tail = x;
    r->n++;
    r->staged--;
    x->gnext = NULL;
    x->gprev = h->tail;
    if (h->tail)
        h->tail->gnext = x;
    else
        h->head = x;
    h->tail = x;
    h->n++;
    if (x->text[x->off[T_TO]] == '\0')
        r->deleted_at = x->time;           /* deleted: kept for keep_deleted */
    else if (x->text[x->off[T_FROM]] == '\0')
        r->deleted_at = 0;                 /* created (again) */
}

void history_index_commit(history_index *h)
{
    ev *x = h->staged_head;
    h->staged_head = h->staged_tail = NULL;
    while (x) {
        ev *next = x->gnext;
        append(h, x);
        if (x->res->n > HISTORY_PER_RESOURCE)
            res_pop(h, x->res);
        while (h->n > h->lim.max_events) {
            hres *oldest = h->head->res;
            res_pop(h, oldest);
            res_drop_if_empty(h, oldest);
        }
        x = next;
    }
}

void history_index_rollback(history_index *h)
{
    ev *x = h->staged_head;
    h->staged_head = h->staged_tail = NULL;
    while (x) {
        ev *next = x->gnext;
        hres *r = x->res;
        r->staged--;
        free(x);
        res_drop_if_empty(h, r);
        x = next;
    }
}

static hist_event event_of(const hres *r, const ev *x)
{
    const char *t = x->text;
    return (hist_event){ r->name, x->time, t + x->off[T_ENDPOINT], t + x->off[T_FROM],
                         t + x->off[T_TO], t + x->off[T_OWNER_FROM], t + x->off[T_OWNER_TO],
                         t + x->off[T_KEYS], x->keys_total };
}

int history_index_get(history_index *h, const char *name, size_t limit, void *ctx,
                      int (*fn)(void *ctx, const hist_event *e))
{
    hres *r = res_get(h, name, 0);
    if (r == NULL || r->n == 0)
        return 0;
    ev **v = malloc(r->n * sizeof *v);
    if (v == NULL)
        return -1;
    size_t n = 0;
    for (ev *x = r->head; x && n < r->n; x = x->rnext)
        v[n++] = x;
    size_t want = limit == 0 || limit > n ? n : limit;
    int rc = (int)want;
    for (size_t i = 0; i < want; i++) {
        hist_event e = event_of(r, v[n - 1 - i]);
        if (fn(ctx, &e) != 0) {
            rc = -1;
            break;
        }
    }
    free(v);
    return rc;
}

void history_index_expire(history_index *h, int64_t now)
{
    size_t slot;
    hnode *n = hmap_first(&h->by_name, &slot);
    while (n) {
        hnode *next = hmap_next(&h->by_name, n, &slot);
        hres *r = HMAP_ENTRY(n, hres, node);
        if (r->deleted_at != 0 && r->staged == 0 && now - r->deleted_at >= h->lim.keep_deleted_ns) {
            while (r->n > 0)
                res_pop(h, r);
            res_drop_if_empty(h, r);
        }
        n = next;
    }
}

size_t history_index_events(const history_index *h)
{
    return h->n;
}
