/* control.h: the janitor's control socket (control.c), added to module
 * bosk.loop: loop.control_listen(path, handler), loop.control_close(). */
#ifndef BOSK_CONTROL_H
#define BOSK_CONTROL_H

#include <lua.h>

void janitor_control_register(lua_State *L);
/* Disconnects every client, stops listening and removes the socket file
 * (when it is still the one made here); for loop.close. */
void janitor_control_close(lua_State *L);

#endif
