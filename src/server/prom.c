/* prom.c: histograms in the Prometheus text format (see prom.h). Each
 * series is keyed by its rendered label set. Clients choose some label
 * values (user agent, method, acquire's state and dest), so the label set
 * is bounded twice: only the first MAX_USER_AGENTS distinct user agents
 * get their own series (later ones are counted under "other"), unknown
 * methods are "other", and the total number of series is capped (later
 * series are dropped and counted). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/prom_text.h"
#include "server/prom.h"
#include "server/server_map.h"

#define MAX_SERIES 10000
#define MAX_LABEL 256
#define MAX_USER_AGENTS 100

typedef struct {
    const char *name, *help;
    const double *bounds;
    size_t n_bounds;
} family;

static const double acquire_bounds[] = { 1, 10, 100, 500, 1000, 1500, 2000 };
static const double latency_bounds[] = {
    0.005, 0.0078125, 0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32,
    64, 128, 256, 512, 1024, 1200,
};
static const double size_bounds[] = { 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536 };

enum { F_ACQUIRE, F_LATENCY, F_SIZE, N_FAMILIES };
static const family families[N_FAMILIES] = {
    { "boskos_acquire_duration_seconds", "Histogram of waiting time for a successful acquire",
      acquire_bounds, sizeof acquire_bounds / sizeof acquire_bounds[0] },
    { "boskos_http_request_duration_seconds", "Histogram of HTTP request latency",
      latency_bounds, sizeof latency_bounds / sizeof latency_bounds[0] },
    { "boskos_http_response_size_bytes", "Histogram of HTTP response sizes",
      size_bounds, sizeof size_bounds / sizeof size_bounds[0] },
};

typedef struct series {
    hnode node;
    struct series *next;       /* creation order, per family */
    double sum;
    unsigned long long count;
    unsigned long long *buckets;
    char labels[];
} series;

/* A user agent that has its own series (the value, escaped and cut). */
typedef struct agent {
    hnode node;
    struct agent *next;
    char name[];
} agent;

struct prom {
    pthread_mutex_t lock;
    hmap index[N_FAMILIES];
    series *head[N_FAMILIES], **tail[N_FAMILIES];
    size_t n_series;
    unsigned long long dropped;
    hmap agents;
    agent *agent_list;
    size_t n_agents;
    unsigned long long agents_folded;   /* requests counted under "other" */
};

prom *prom_new(void)
{
    prom *p = calloc(1, sizeof *p);
    if (p == NULL || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    for (int f = 0; f < N_FAMILIES; f++) {
        hmap_init(&p->index[f]);
        p->tail[f] = &p->head[f];
    }
    hmap_init(&p->agents);
    return p;
}

void prom_free(prom *p)
{
    if (p == NULL)
        return;
    for (int f = 0; f < N_FAMILIES; f++) {
        for (series *s = p->head[f], *next; s; s = next) {
            next = s->next;
            free(s->buckets);
            free(s);
        }
        hmap_free(&p->index[f]);
    }
    for (agent *a = p->agent_list, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    hmap_free(&p->agents);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* name="value" with Prometheus escaping, value cut at MAX_LABEL bytes. */
static void label(jbuf *b, const char *name, const char *value, int first)
{
    jbuf_printf(b, "%s%s=\"", first ? "" : ",", name);
    prom_label_value(b, value, strlen(value), MAX_LABEL);
    jbuf_addc(b, '"');
}

/* The method label: the methods HTTP defines, else "other" (a client may
 * send any token as a method). */
static const char *method_label(const char *method)
{
    static const char *const known[] = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

/* The user_agent label, rendered (user_agent="..."): the agent itself
 * while fewer than MAX_USER_AGENTS distinct ones have been seen, or when
 * it is one of them; "other" for the rest. Called with the lock held. */
static void agent_label_locked(prom *p, jbuf *b, const char *user_agent)
{
    jbuf value;
    jbuf_init(&value);
    prom_label_value(&value, user_agent, strlen(user_agent), MAX_LABEL);
    const char *v = value.data ? value.data : "";
    if (hmap_get(&p->agents, v) == NULL) {
        agent *a = NULL;
        if (p->n_agents < MAX_USER_AGENTS && (a = malloc(sizeof *a + strlen(v) + 1)) != NULL) {
            strcpy(a->name, v);
            if (hmap_put(&p->agents, &a->node, a->name) != 0) {
                free(a);
                a = NULL;
            }
        }
        if (a == NULL) {
            p->agents_folded++;
            v = "other";
        } else {
            a->next = p->agent_list;
            p->agent_list = a;
            p->n_agents++;
        }
    }
    jbuf_printf(b, ",user_agent=\"%s\"", v);
    jbuf_free(&value);
}

static series *series_get(prom *p, int f, const char *labels)
{
    hnode *n = hmap_get(&p->index[f], labels);
    if (n)
        return HMAP_ENTRY(n, series, node);
    if (p->n_series >= MAX_SERIES) {
        p->dropped++;
        return NULL;
    }
    size_t len = strlen(labels);
    series *s = calloc(1, sizeof *s + len + 1);
    if (s == NULL)
        return NULL;
    memcpy(s->labels, labels, len + 1);
    s->buckets = calloc(families[f].n_bounds, sizeof *s->buckets);
    if (s->buckets == NULL || hmap_put(&p->index[f], &s->node, s->labels) != 0) {
        free(s->buckets);
        free(s);
        return NULL;
    }
    *p->tail[f] = s;
    p->tail[f] = &s->next;
    p->n_series++;
    return s;
}

static void observe_locked(prom *p, int f, const char *labels, double v)
{
    series *s = series_get(p, f, labels);
    if (s == NULL)
        return;
    s->sum += v;
    s->count++;
    for (size_t i = 0; i < families[f].n_bounds; i++)
        if (v <= families[f].bounds[i])
            s->buckets[i]++;
}

static void observe(prom *p, int f, const char *labels, double v)
{
    if (labels == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    observe_locked(p, f, labels, v);
    pthread_mutex_unlock(&p->lock);
}

void prom_observe_http(prom *p, const char *path, const char *method, int status,
                       const char *user_agent, double seconds, size_t size)
{
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    jbuf b;
    jbuf_init(&b);
    label(&b, "method", method_label(method), 1);
    label(&b, "path", path, 0);
    label(&b, "status", code, 0);
    pthread_mutex_lock(&p->lock);     /* one lock for the agents and both histograms */
    agent_label_locked(p, &b, user_agent ? user_agent : "");
    if (b.data && !b.oom) {
        observe_locked(p, F_LATENCY, b.data, seconds);
        observe_locked(p, F_SIZE, b.data, (double)size);
    }
    pthread_mutex_unlock(&p->lock);
    jbuf_free(&b);
}

void prom_observe_acquire(prom *p, const char *type, const char *state, const char *dest,
                          int has_request_id, double seconds)
{
    jbuf b;
    jbuf_init(&b);
    label(&b, "dest", dest, 1);
    label(&b, "has_request_id", has_request_id ? "true" : "false", 0);
    label(&b, "state", state, 0);
    label(&b, "type", type, 0);
    observe(p, F_ACQUIRE, b.data, seconds);
    jbuf_free(&b);
}

static void write_series(jbuf *out, const family *fam, const series *s)
{
    char num[32];
    for (size_t i = 0; i < fam->n_bounds; i++) {
        prom_format_float(num, sizeof num, fam->bounds[i]);
        jbuf_printf(out, "%s_bucket{%s,le=\"%s\"} %llu\n", fam->name, s->labels, num,
                    s->buckets[i]);
    }
    jbuf_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", fam->name, s->labels, s->count);
    prom_format_float(num, sizeof num, s->sum);
    jbuf_printf(out, "%s_sum{%s} %s\n", fam->name, s->labels, num);
    jbuf_printf(out, "%s_count{%s} %llu\n", fam->name, s->labels, s->count);
}

void prom_write(prom *p, jbuf *out)
{
    pthread_mutex_lock(&p->lock);
    for (int f = 0; f < N_FAMILIES; f++) {
        jbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", families[f].name,
                    families[f].help, families[f].name);
        for (const series *s = p->head[f]; s; s = s->next)
            write_series(out, &families[f], s);
    }
    jbuf_printf(out, "# HELP bosk_metric_series_dropped_total Series not recorded (cap %d)\n"
                "# TYPE bosk_metric_series_dropped_total counter\n"
                "bosk_metric_series_dropped_total %llu\n", MAX_SERIES, p->dropped);
    jbuf_printf(out, "# HELP bosk_http_user_agents_folded_total Requests counted under "
                "user_agent=\"other\" (cap %d distinct agents)\n"
                "# TYPE bosk_http_user_agents_folded_total counter\n"
                "bosk_http_user_agents_folded_total %llu\n", MAX_USER_AGENTS, p->agents_folded);
    pthread_mutex_unlock(&p->lock);
}
