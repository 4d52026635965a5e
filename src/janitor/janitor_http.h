/* janitor_http.h: loop.http (janitor_http.c), added to module bosk.loop. */
#ifndef BOSK_JANITOR_HTTP_H
#define BOSK_JANITOR_HTTP_H

#include <lua.h>

void janitor_http_register(lua_State *L);
/* Frees the idle transports; call once no exchange is in flight. */
void janitor_http_close(void);

#endif
