/* request_opts.h: the one strict reader of a Lua request table
 * {method=, url=, body=, content_type=, username=, password=,
 *  connect_timeout=, timeout=, max_body=}, shared by conn:request
 * (lhttp.c) and loop.http (janitor/janitor_http.c), so both accept and
 * reject the same keys with the same messages. */
#ifndef BOSK_REQUEST_OPTS_H
#define BOSK_REQUEST_OPTS_H

#include <lua.h>
#include "client/transport.h"

/* Reads the table at stack index idx into req. Fields present override
 * what req already holds (the caller's defaults); method defaults to GET,
 * url is required. Strings point into the table, so they live as long as
 * the table holds them. Raises "bad argument #argn to 'fname' (...)" on an
 * unknown key, a value of the wrong type or out of range. Allocates
 * nothing, so a raise leaks nothing. */
void request_opts_read(lua_State *L, int idx, int argn, const char *fname,
                       transport_request *req);

#endif
