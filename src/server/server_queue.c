/* server_queue.c: request-id queues (see server_queue.h). A queue is a
 * doubly-linked list in arrival order plus an index by id. */
#include <stdlib.h>
#include <string.h>
#include "server/server_queue.h"

typedef struct entry {
    hnode node;
    struct entry *prev, *next;
    int64_t first_seen, expiry;
    char id[];
} entry;

typedef struct {
    hnode node;
    hmap ids;
    entry *head, *tail;
    char key[];
} queue;

/* "type\x1fstate" into a malloc'd key. */
static char *queue_key(const char *type, const char *state)
{
    size_t a = strlen(type), b = strlen(state);
    char *k = malloc(a + b + 2);
    if (k == NULL)
        return NULL;
    memcpy(k, type, a);
    k[a] = '\x1f';
    memcpy(k + a + 1, state, b + 1);
    return k;
}

void queue_set_init(queue_set *qs)
{
    hmap_init(&qs->by_key);
    qs->ids = 0;
}

static queue *queue_find(hmap *queues, const char *type, const char *state, int create)
{
    char *key = queue_key(type, state);
    if (key == NULL)
        return NULL;
    hnode *n = hmap_get(queues, key);
    queue *q = n ? HMAP_ENTRY(n, queue, node) : NULL;
    if (q == NULL && create) {
        size_t len = strlen(key);
        q = calloc(1, sizeof *q + len + 1);
        if (q != NULL) {
            memcpy(q->key, key, len + 1);
            hmap_init(&q->ids);
            if (hmap_put(queues, &q->node, q->key) != 0) {
                free(q);
                q = NULL;
            }
        }
    }
    free(key);
    return q;
}

static entry *entry_add(queue *q, const char *id, int64_t now)
{
    size_t len = strlen(id);
    entry *e = calloc(1, sizeof *e + len + 1);
    if (e == NULL)
        return NULL;
    memcpy(e->id, id, len + 1);
    e->first_seen = now;
    if (hmap_put(&q->ids, &e->node, e->id) != 0) {
        free(e);
        return NULL;
    }
    e->prev = q->tail;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    return e;
}

static void entry_remove(queue_set *qs, queue *q, entry *e)
{
    qs->ids--;
    hmap_del(&q->ids, &e->node);
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    free(e);
}

static size_t live_before(const queue *q, const entry *stop, int64_t now)
{
    size_t n = 0;
    for (const entry *e = q ? q->head : NULL; e && e != stop; e = e->next)
        n += !(now > e->expiry);
    return n;
}

size_t queue_rank(queue_set *qs, const char *type, const char *state, const char *id,
                  int64_t now, int64_t ttl, int *is_new, int64_t *first_seen)
{
    *is_new = 0;
    *first_seen = now;
    int has_room = qs->ids < QUEUE_MAX_IDS;
    if (id == NULL || *id == '\0')
        return 1 + live_before(queue_find(&qs->by_key, type, state, 0), NULL, now);
    queue *q = queue_find(&qs->by_key, type, state, has_room);
    hnode *n = q ? hmap_get(&q->ids, id) : NULL;
    entry *e = n ? HMAP_ENTRY(n, entry, node) : NULL;
    if (e == NULL) {
        if (!has_room || q == NULL || (e = entry_add(q, id, now)) == NULL)
            return 1 + live_before(q, NULL, now);
        qs->ids++;
        *is_new = 1;
    }
    e->expiry = now + ttl;
    *first_seen = e->first_seen;
    return 1 + live_before(q, e, now);
}

static void queue_drop(queue_set *qs, queue *q)
{
    while (q->head)
        entry_remove(qs, q, q->head);
    hmap_free(&q->ids);
    hmap_del(&qs->by_key, &q->node);
    free(q);
}

void queue_remove(queue_set *qs, const char *type, const char *state, const char *id)
{
    if (id == NULL || *id == '\0')
        return;
    queue *q = queue_find(&qs->by_key, type, state, 0);
    hnode *n = q ? hmap_get(&q->ids, id) : NULL;
    if (n == NULL)
        return;
    entry_remove(qs, q, HMAP_ENTRY(n, entry, node));
    if (q->head == NULL)
        queue_drop(qs, q);
}

void queue_gc(queue_set *qs, int64_t now)
{
    size_t slot;
    hnode *n = hmap_first(&qs->by_key, &slot);
    while (n) {
        hnode *next = hmap_next(&qs->by_key, n, &slot);
        queue *q = HMAP_ENTRY(n, queue, node);
        for (entry *e = q->head, *en; e; e = en) {
            en = e->next;
            if (now > e->expiry)
                entry_remove(qs, q, e);
        }
        if (q->head == NULL)
            queue_drop(qs, q);
        n = next;
    }
}

void queue_free_all(queue_set *qs)
{
    size_t slot;
    hnode *n = hmap_first(&qs->by_key, &slot);
    while (n) {
        hnode *next = hmap_next(&qs->by_key, n, &slot);
        queue_drop(qs, HMAP_ENTRY(n, queue, node));
        n = next;
    }
    hmap_free(&qs->by_key);
}
