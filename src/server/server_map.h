/* server_map.h: an intrusive string-keyed hash map for the server's
 * indexes (resources by name, types, owners, request queues). Nodes live
 * inside the caller's structs; the map never allocates them. */
#ifndef BOSK_SERVER_MAP_H
#define BOSK_SERVER_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hnode {
    struct hnode *next;
    const char *key;
    uint64_t hash;
} hnode;

typedef struct {
    hnode **slots;
    size_t nslots, count;
} hmap;

#define HMAP_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

void hmap_init(hmap *m);
void hmap_free(hmap *m);                      /* frees the table, not the nodes */
hnode *hmap_get(const hmap *m, const char *key);
int hmap_put(hmap *m, hnode *n, const char *key); /* key must outlive n; -1 on OOM */
void hmap_del(hmap *m, hnode *n);
/* Grows the table so that `extra` more puts cannot fail. */
int hmap_reserve(hmap *m, size_t extra);
/* Iteration: for (hnode *n = hmap_first(m, &i); n; n = hmap_next(m, n, &i)).
 * The current node may be deleted only after hmap_next has moved past it. */
hnode *hmap_first(const hmap *m, size_t *slot);
hnode *hmap_next(const hmap *m, hnode *n, size_t *slot);

#endif
