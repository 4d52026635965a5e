/* store_memory.c: the "memory" store. The ranch already holds everything
 * in memory, so every operation succeeds and keeps nothing. Also the
 * dispatcher store_open(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/store.h"

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
static int mem_commit(store *s, char *err, size_t n) { return 0; }
static void mem_rollback(store *s) { }
static void mem_close(store *s) { free(s); }

static const store_ops memory_ops = {
    mem_load, mem_begin, mem_put, mem_del, mem_put_drlc, mem_del_drlc,
    mem_commit, mem_rollback, mem_close, NULL,
};

store *store_memory_open(void)
{
    store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->ops = &memory_ops;
    s->kind = "memory";
    return s;
}

store *store_open(const char *spec, char *err, size_t err_len)
{
    if (spec == NULL || strcmp(spec, "memory") == 0) {
        store *s = store_memory_open();
        if (s == NULL)
            snprintf(err, err_len, "out of memory opening the memory store");
        return s;
    }
    if (strncmp(spec, "sqlite:", 7) == 0 && spec[7] != '\0')
        return store_sqlite_open(spec + 7, err, err_len);
    snprintf(err, err_len, "invalid --storage %s: want memory or sqlite:PATH", spec);
    return NULL;
}
