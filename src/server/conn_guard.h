/* conn_guard.h: a deadline on each request's transfer, which
 * libmicrohttpd lacks. Its connection timeout is an idle timer that every
 * received byte restarts, so a client trickling a byte every few seconds
 * holds a connection (and a file descriptor) for ever; a thousand such
 * clients lock everyone out.
 *
 * Each connection is in one of three phases: receiving a request (from
 * the moment it opened or its previous reply was sent), being handled
 * (no deadline: the server's own work), or sending a reply. Receiving and
 * sending must each finish within the deadline; conn_guard_sweep, called
 * about once a second, shuts down the socket of any connection past it,
 * and libmicrohttpd then closes it as if the client had gone. */
#ifndef BOSK_CONN_GUARD_H
#define BOSK_CONN_GUARD_H

#include <stddef.h>
#include "core/dl_mhd.h"

typedef struct conn_guard conn_guard;

conn_guard *conn_guard_new(double deadline_seconds);
/* After every daemon using it has stopped. */
void conn_guard_free(conn_guard *g);

/* MHD_NotifyConnectionCallback (MHD_OPTION_NOTIFY_CONNECTION); cls is the
 * guard. */
void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/* Phase changes, from the request callbacks. */
void conn_guard_handling(conn_guard *g, struct MHD_Connection *c);
void conn_guard_sending(conn_guard *g, struct MHD_Connection *c);
void conn_guard_receiving(conn_guard *g, struct MHD_Connection *c);

/* Shuts down the connections past the deadline; returns how many. */
size_t conn_guard_sweep(conn_guard *g);

#endif
