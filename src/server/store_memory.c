/* store_memory.c: the "memory" store. The ranch already holds every
 * resource in memory, so those operations succeed and keep nothing; the
 * history lives here, in a history_index whose events become visible when
 * the transaction commits. Also the dispatcher store_open(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/store.h"

typedef struct {
    store base;
    history_index *history;
} memory_store;

static int mem_load(store *s, void *ctx, int (*fn)(void *, const store_rec *),
                    int (*fn_drlc)(void *, const char *, const char *), char *err, size_t n)
{
    return 0;
}
static int mem_begin(store *s, char *err, size_t n) { return 0; }
static int mem_put(store *s, const store_rec *r, char *err, size_t n) { return 0; }
static int mem_del(store *s, const char *name, char *err, size_t n) { return 0; }
static int mem_put_drlc(store *s, const char *t, const char *j, char *err, size_t n) { return 0; }
static int mem_del_drlc(store *s, const char *t, char *err, size_t n) { return 0; }

static int mem_commit(store *s, char *err, size_t n)
{
    history_index_commit(((memory_store *)s)->history);
    return 0;
}

static void mem_rollback(store *s)
{
    history_index_rollback(((memory_store *)s)->history);
}

static void mem_close(store *s)
{
    history_index_free(((memory_store *)s)->history);
    free(s);
}

static int mem_history_put(store *s, const hist_event *e, char *err, size_t n)
{
    if (history_index_stage(((memory_store *)s)->history, e) == 0)
        return 0;
    snprintf(err, n, "out of memory recording the history of %s", e->name);
    return -1;
}

static int mem_history_get(store *s, const char *name, size_t limit, void *ctx,
                           int (*fn)(void *, const hist_event *), char *err, size_t n)
{
    int got = history_index_get(((memory_store *)s)->history, name, limit, ctx, fn);
    if (got < 0)
        snprintf(err, n, "out of memory reading the history of %s", name);
    return got;
}

static int mem_history_expire(store *s, int64_t now, char *err, size_t n)
{
    history_index_expire(((memory_store *)s)->history, now);
    return 0;
}

static const store_ops memory_ops = {
    mem_load, mem_begin, mem_put, mem_del, mem_put_drlc, mem_del_drlc,
    mem_commit, mem_rollback, mem_close, NULL,
    mem_history_put, mem_history_get, mem_history_expire,
};

static memory_store *memory_open(char *err, size_t n)
{
    history_limits lim;
    if (history_limits_from_env(&lim, err, n) != 0)
        return NULL;
    memory_store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->history = history_index_new(&lim)) == NULL) {
        free(s);
        snprintf(err, n, "out of memory opening the memory store");
        return NULL;
    }
    s->base.ops = &memory_ops;
    s->base.kind = "memory";
    return s;
}

store *store_memory_open(void)
{
    char err[256];
    memory_store *s = memory_open(err, sizeof err);
    return s ? &s->base : NULL;
}

store *store_open(const char *spec, char *err, size_t err_len)
{
    if (spec == NULL || strcmp(spec, "memory") == 0) {
        memory_store *s = memory_open(err, err_len);
        return s ? &s->base : NULL;
    }
    if (strncmp(spec, "sqlite:", 7) == 0 && spec[7] != '\0')
        return store_sqlite_open(spec + 7, err, err_len);
    snprintf(err, err_len, "invalid --storage %s: want memory or sqlite:PATH", spec);
    return NULL;
}
