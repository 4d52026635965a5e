/* store_flush.c: what the SQLite store's committer costs per change,
 * without HTTP: 1,000 resources, then ROUNDS flushes of GROUP acquire- or
 * release-like transactions each (one resource row and one history event,
 * as the server writes them). Prints the committer's CPU time per change
 * and per flush (thread CPU time: steadier than wall time on a shared
 * machine). Built against the server's objects; the command is in
 * docs/benchmarks.md ("SQLite committer"). Usage:
 *
 *   /tmp/store_flush GROUP ROUNDS      (defaults 6 and 3000) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "server/store.h"

#define RESOURCES 1000

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fill(store *s, char *err, size_t n)
{
    char name[32];
    if (s->ops->begin(s, err, n) != 0)
        return -1;
    for (int i = 0; i < RESOURCES; i++) {
        snprintf(name, sizeof name, "r%d", i + 1);
        store_rec r = { "b", name, "free", "", "{}", 1, 0, 0, (uint64_t)i + 1 };
        if (s->ops->put(s, &r, err, n) != 0)
            return -1;
    }
    return s->ops->commit(s, err, n) != 0 ? -1 : s->ops->flush(s, err, n);
}

/* Change k: a resource picked by a stride over all of them, leased in
 * even thousands of changes and released in odd ones. */
static int change(store *s, long k, char *err, size_t n)
{
    char name[32];
    snprintf(name, sizeof name, "r%ld", (k * 7919) % RESOURCES + 1);
    int lease = (k / RESOURCES) % 2 == 0;
    store_rec r = { "b", name, lease ? "busy" : "free", lease ? "bench" : "", "{}", 2, 0, 0,
                    (uint64_t)(RESOURCES + k + 1) };
    hist_event e = { name, 1000 + k, lease ? "acquire" : "release", lease ? "free" : "busy",
                     lease ? "busy" : "free", lease ? "" : "bench", lease ? "bench" : "", "[]", 0 };
    if (s->ops->begin(s, err, n) != 0 || s->ops->put(s, &r, err, n) != 0 ||
        s->ops->history_put(s, &e, err, n) != 0)
        return -1;
    return s->ops->commit(s, err, n);
}

int main(int argc, char **argv)
{
    long group = argc > 1 ? atol(argv[1]) : 6, rounds = argc > 2 ? atol(argv[2]) : 3000;
    char path[] = "/tmp/bosk-store-flush-XXXXXX", wal[64], err[1024];
    int fd = mkstemp(path);
    if (fd < 0 || group < 1 || rounds < 1) {
        fprintf(stderr, "usage: store_flush [GROUP [ROUNDS]] (and a writable /tmp)\n");
        return 2;
    }
    close(fd);
    snprintf(wal, sizeof wal, "%s-wal", path);
    store *s = store_sqlite_open(path, err, sizeof err);
    int rc = s == NULL || fill(s, err, sizeof err) != 0;
    double start = cpu_seconds();
    long k = 0;
    for (long round = 0; !rc && round < rounds; round++) {
        for (long g = 0; !rc && g < group; g++)
            rc = change(s, k++, err, sizeof err) != 0;
        rc = rc || s->ops->flush(s, err, sizeof err) != 0;
    }
    double spent = cpu_seconds() - start;
    if (rc)
        fprintf(stderr, "store_flush: %s\n", err);
    else
        printf("group %ld: %.2f us CPU per change, %.1f us per flush\n", group,
               spent * 1e6 / (double)k, spent * 1e6 / (double)rounds);
    if (s != NULL)
        s->ops->close(s);
    unlink(wal);
    unlink(path);
    return rc;
}
