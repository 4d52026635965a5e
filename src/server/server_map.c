/* server_map.c: chained hashing with FNV-1a keys and doubling growth
 * (see server_map.h). */
#include <stdlib.h>
#include <string.h>
#include "server/server_map.h"

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void hmap_init(hmap *m)
{
    m->slots = NULL;
    m->nslots = m->count = 0;
}

void hmap_free(hmap *m)
{
    free(m->slots);
    hmap_init(m);
}

hnode *hmap_get(const hmap *m, const char *key)
{
    if (m->nslots == 0)
        return NULL;
    uint64_t h = hash_key(key);
    for (hnode *n = m->slots[h & (m->nslots - 1)]; n; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static int grow(hmap *m)
{
    size_t nslots = m->nslots ? m->nslots * 2 : 16;
    hnode **slots = calloc(nslots, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < m->nslots; i++) {
        hnode *n = m->slots[i];
        while (n) {
            hnode *next = n->next;
            size_t s = n->hash & (nslots - 1);
            n->next = slots[s];
            slots[s] = n;
            n = next;
        }
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = nslots;
    return 0;
}

int hmap_reserve(hmap *m, size_t extra)
{
    while (m->count + extra > m->nslots - m->nslots / 4)
        if (grow(m) != 0)
            return -1;
    return 0;
}

int hmap_put(hmap *m, hnode *n, const char *key)
{
    if (hmap_reserve(m, 1) != 0)
        return -1;
    n->key = key;
    n->hash = hash_key(key);
    size_t s = n->hash & (m->nslots - 1);
    n->next = m->slots[s];
    m->slots[s] = n;
    m->count++;
    return 0;
}

void hmap_del(hmap *m, hnode *n)
{
    if (m->nslots == 0)
        return;
    hnode **p = &m->slots[n->hash & (m->nslots - 1)];
    for (; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            m->count--;
            return;
        }
    }
}

static hnode *scan_from(const hmap *m, size_t *slot)
{
    for (; *slot < m->nslots; (*slot)++)
        if (m->slots[*slot])
            return m->slots[*slot];
    return NULL;
}

hnode *hmap_first(const hmap *m, size_t *slot)
{
    *slot = 0;
    return scan_from(m, slot);
}

hnode *hmap_next(const hmap *m, hnode *n, size_t *slot)
{
    if (n->next)
        return n->next;
    (*slot)++;
    return scan_from(m, slot);
}
