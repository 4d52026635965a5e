/* group_commit.c: the committer thread and the parked requests (see
 * group_commit.h).
 *
 * Lock order: the ranch lock, then the committer's mutex. A flush runs
 * without the ranch lock (the store queued the writes in memory), so
 * requests go on meanwhile and join the next flush: the bigger the load,
 * the more requests one write to the file serves. Only a failed flush
 * takes the ranch lock, to rebuild memory from the store. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "server/group_commit.h"
#include "server/ranch_core.h"
#include "server/server_log.h"

/* Failed flushes remembered, so that a request that saw their commits but
 * parks only later is still told. Failures are rare; a request parks
 * microseconds after dispatch. */
#define FAILED_RANGES 64
#define IDLE_FLUSH_MS 100     /* commits nobody waits for (syncs) */

typedef struct {
    uint64_t lo, hi;          /* commits lo+1 .. hi were undone */
} seq_range;

struct group_commit {
    ranch *r;
    store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    gc_waiter *waiters;
    int wanted, stop;
    int closing;              /* release_all was called: park no more */
    seq_range failed[FAILED_RANGES];
    size_t n_failed;          /* ever recorded; the last FAILED_RANGES kept */
};

static uint64_t durable_of(const group_commit *g)
{
    return __atomic_load_n(&g->st->durable, __ATOMIC_SEQ_CST);
}

uint64_t group_commit_seen(const group_commit *g)
{
    return __atomic_load_n(&g->st->committed, __ATOMIC_SEQ_CST);
}

/* Under mu. */
static int seq_failed(const group_commit *g, uint64_t seq)
{
    size_t kept = g->n_failed < FAILED_RANGES ? g->n_failed : FAILED_RANGES;
    for (size_t i = 0; i < kept; i++)
        if (seq > g->failed[i].lo && seq <= g->failed[i].hi)
            return 1;
    return 0;
}

gc_wait group_commit_wait(group_commit *g, gc_waiter *w, struct MHD_Connection *c, uint64_t seq)
{
    pthread_mutex_lock(&g->mu);
    gc_wait rc = seq_failed(g, seq) ? GC_FAILED : seq <= durable_of(g) ? GC_DURABLE
               : g->closing ? GC_FAILED : GC_PARKED;
    if (rc == GC_PARKED) {
        /* suspended before the committer can see w, so its resume always
         * finds the connection suspended */
        dl_mhd.suspend_connection(c);
        *w = (gc_waiter){ g->waiters, c, seq, 0 };
        g->waiters = w;
        if (!g->wanted) {
            g->wanted = 1;
            pthread_cond_signal(&g->wake);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* Resumes the waiters whose commits are durable or undone; all of them
 * when the committer stops. Under mu. */
static void settle(group_commit *g, int all)
{
    uint64_t durable = durable_of(g);
    for (gc_waiter **p = &g->waiters; *p;) {
        gc_waiter *w = *p;
        int failed = seq_failed(g, w->seq);
        if (!failed && w->seq > durable && !all) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        w->failed = failed || w->seq > durable;
        dl_mhd.resume_connection(w->conn);
    }
}

/* Memory is ahead of the store after a failed flush: it is rebuilt from
 * what the store holds. If even that fails the server cannot tell what is
 * true, and stops (SIGTERM to itself: the main loop's clean stop). */
static void reload_ranch(ranch *r)
{
    char err[1024] = "";
    ranch_types_free(r);
    if (r->st->ops->load(r->st, r, ranch_load_rec, ranch_load_lifecycle, err, sizeof err) != 0) {
        server_log(SLOG_ERROR, "cannot reload the resources from the store after a failed "
                   "commit (%s); stopping", err);
        kill(getpid(), SIGTERM);
    }
    r->sync_wanted = 1;        /* config resources the store lacks come back */
}

/* On failure every commit not yet durable is undone, including those
 * queued while the flush ran: they may build on the failed ones. */
static void flush(group_commit *g)
{
    ranch *r = g->r;
    char err[1024] = "";
    uint64_t lo = durable_of(g);
    if (g->st->ops->flush(g->st, err, sizeof err) == 0)
        return;
    pthread_mutex_lock(&r->lock);
    uint64_t hi = group_commit_seen(g);
    server_log(SLOG_ERROR, "storage error: %s; the %llu change(s) since the last commit are "
               "undone", err, (unsigned long long)(hi - lo));
    reload_ranch(r);
    pthread_mutex_lock(&g->mu);
    g->failed[g->n_failed++ % FAILED_RANGES] = (seq_range){ lo, hi };
    /* the reloaded state is one more commit, durable: a request that
     * sees it is not mistaken for one that saw the undone ones (set after
     * the range, so that no waiter takes an undone commit for durable) */
    __atomic_store_n(&g->st->committed, hi + 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g->st->durable, hi + 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&r->lock);
}

static void wait_for_work(group_commit *g)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += IDLE_FLUSH_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!g->wanted && !g->stop)
        if (pthread_cond_timedwait(&g->wake, &g->mu, &until) == ETIMEDOUT)
            break;
}

static void *committer(void *arg)
{
    group_commit *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        wait_for_work(g);
        int stopping = g->stop;
        g->wanted = 0;
        pthread_mutex_unlock(&g->mu);
        if (group_commit_seen(g) != durable_of(g))
            flush(g);
        pthread_mutex_lock(&g->mu);
        settle(g, stopping);
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

void group_commit_release_all(group_commit *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    g->closing = 1;
    settle(g, 1);
    pthread_mutex_unlock(&g->mu);
}

int group_commit_start(ranch *r, store *st, group_commit **out, char *err, size_t n)
{
    *out = NULL;
    if (st->ops->flush == NULL)
        return 0;
    group_commit *g = calloc(1, sizeof *g);
    if (g == NULL) {
        snprintf(err, n, "out of memory starting the committer");
        return -1;
    }
    g->r = r;
    g->st = st;
    if (pthread_mutex_init(&g->mu, NULL) != 0 || pthread_cond_init(&g->wake, NULL) != 0 ||
        pthread_create(&g->thread, NULL, committer, g) != 0) {
        snprintf(err, n, "cannot start the committer thread");
        free(g);               /* (a mutex or cond left initialised holds nothing) */
        return -1;
    }
    *out = g;
    return 0;
}

void group_commit_stop(group_commit *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
