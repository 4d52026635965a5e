/* conn_guard.c: whole-transfer deadlines for libmicrohttpd connections
 * (see conn_guard.h).
 *
 * The guard keeps every open connection in a list under its mutex.
 * libmicrohttpd reports a connection closed (MHD_CONNECTION_NOTIFY_CLOSED)
 * before it closes the socket, and that report takes the same mutex, so
 * the sweep never calls shutdown() on a descriptor that has been closed
 * and perhaps reused. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include "server/conn_guard.h"

enum phase { RECEIVING, HANDLING, SENDING };

typedef struct tracked {
    struct tracked *prev, *next;
    int fd;
    enum phase phase;
    double since;              /* when the current phase began */
    int shut;                  /* shutdown() already called */
} tracked;

struct conn_guard {
    pthread_mutex_t lock;
    tracked *head;
    double deadline;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

conn_guard *conn_guard_new(double deadline_seconds)
{
    conn_guard *g = calloc(1, sizeof *g);
    if (g == NULL || pthread_mutex_init(&g->lock, NULL) != 0) {
        free(g);
        return NULL;
    }
    g->deadline = deadline_seconds;
    return g;
}

void conn_guard_free(conn_guard *g)
{
    if (g == NULL)
        return;
    for (tracked *t = g->head, *next; t; t = next) {
        next = t->next;
        free(t);
    }
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static void track(conn_guard *g, struct MHD_Connection *c, void **socket_context)
{
    const union MHD_ConnectionInfo *info =
        dl_mhd.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    tracked *t = calloc(1, sizeof *t);
    if (t == NULL || info == NULL) {
        free(t);               /* untracked: only the idle timeout applies */
        return;
    }
    t->fd = info->connect_fd;
    t->phase = RECEIVING;
    t->since = mono_now();
    pthread_mutex_lock(&g->lock);
    t->next = g->head;
    if (g->head)
        g->head->prev = t;
    g->head = t;
    pthread_mutex_unlock(&g->lock);
    *socket_context = t;
}

static void untrack(conn_guard *g, void **socket_context)
{
    tracked *t = *socket_context;
    if (t == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        g->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&g->lock);
    free(t);
    *socket_context = NULL;
}

void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        track(cls, c, socket_context);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        untrack(cls, socket_context);
}

static void set_phase(conn_guard *g, struct MHD_Connection *c, enum phase p)
{
    const union MHD_ConnectionInfo *info =
        dl_mhd.get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    tracked *t = info ? info->socket_context : NULL;
    if (t == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    t->phase = p;
    t->since = mono_now();
    pthread_mutex_unlock(&g->lock);
}

void conn_guard_handling(conn_guard *g, struct MHD_Connection *c) { set_phase(g, c, HANDLING); }
void conn_guard_sending(conn_guard *g, struct MHD_Connection *c) { set_phase(g, c, SENDING); }
void conn_guard_receiving(conn_guard *g, struct MHD_Connection *c) { set_phase(g, c, RECEIVING); }

size_t conn_guard_sweep(conn_guard *g)
{
    size_t n = 0;
    double now = mono_now();
    pthread_mutex_lock(&g->lock);
    for (tracked *t = g->head; t; t = t->next) {
        if (t->phase != HANDLING && !t->shut && now - t->since > g->deadline) {
            shutdown(t->fd, SHUT_RDWR);
            t->shut = 1;
            n++;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}
