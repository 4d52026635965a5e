/* janitor_metrics.h: the janitor's Prometheus endpoint (--metrics-listen).
 * Functions "metrics_listen" and "metrics_set" are added to bosk.loop. */
#ifndef BOSK_JANITOR_METRICS_H
#define BOSK_JANITOR_METRICS_H

#include <lua.h>

void janitor_metrics_register(lua_State *L);
void janitor_metrics_stop(void);

#endif
