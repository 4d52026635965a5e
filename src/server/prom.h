/* prom.h: the server's Prometheus metrics (docs/protocol.md §6) other than
 * boskos_resources (which the ranch computes at scrape time): request
 * latency and response size histograms per path, method, status and user
 * agent, and acquire waiting time. Thread-safe; its own mutex. */
#ifndef BOSK_PROM_H
#define BOSK_PROM_H

#include <stddef.h>
#include "core/gojson.h"

typedef struct prom prom;

prom *prom_new(void);
void prom_free(prom *p);
void prom_observe_http(prom *p, const char *path, const char *method, int status,
                       const char *user_agent, double seconds, size_t size);
void prom_observe_acquire(prom *p, const char *type, const char *state, const char *dest,
                          int has_request_id, double seconds);
/* Appends every histogram in the text exposition format. */
void prom_write(prom *p, jbuf *out);

#endif
