/* server_sync.h: config sync and dynamic resources (server_sync.c), called
 * by ranch.c under the ranch lock. Builds on ranch_core.h only. */
#ifndef BOSK_SERVER_SYNC_H
#define BOSK_SERVER_SYNC_H

#include <stddef.h>
#include "server/ranch_core.h"

/* Makes cfg (owned from now on) the ranch's config and indexes its
 * static names; the previous config is freed. */
void ranch_adopt_config(ranch *r, config *cfg);
/* Frees the config and its index (at ranch_free). */
void ranch_drop_config(ranch *r);
/* Lifecycles, static resources, then dynamic reconciliation, each one
 * store transaction. 0, or -1 with err. */
int ranch_sync_locked(ranch *r, char *err, size_t err_len);

#endif
