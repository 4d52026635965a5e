/* handlers.h: the HTTP side of `bosk server`: libmicrohttpd callbacks that
 * route each request to the ranch (docs/protocol.md §2) and answer with
 * upstream's exact statuses, headers and bodies; plus /metrics and the
 * /resources listing. */
#ifndef BOSK_HANDLERS_H
#define BOSK_HANDLERS_H

#include "core/dl_mhd.h"
#include "server/conn_guard.h"
#include "server/group_commit.h"
#include "server/prom.h"
#include "server/ranch.h"

typedef struct {
    ranch *ranch;
    prom *prom;
    int inflight;              /* requests begun and not completed (atomic) */
    int metrics_only;          /* the --metrics-port daemon: only /metrics */
    conn_guard *guard;         /* transfer deadlines (may be NULL) */
    group_commit *gc;          /* NULL: answers need not wait for a flush */
} handlers_ctx;

/* MHD_OPTION_URI_LOG_CALLBACK; cls is a handlers_ctx. Called once per
 * request with the raw request target, before libmicrohttpd parses it:
 * allocates the request state (which becomes *con_cls) holding the target
 * parsed as Go parses it (server/http_url.h). */
void *handlers_uri(void *cls, const char *uri, struct MHD_Connection *conn);

/* MHD_AccessHandlerCallback; cls is a handlers_ctx. */
enum MHD_Result handlers_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls);
/* MHD_RequestCompletedCallback; frees the request state. */
void handlers_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe);

#define HANDLERS_MAX_BODY (1 << 20)

#endif
