/* server.c: placeholder for module "bosk.server" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_server(lua_State *L)
{
    return luaL_error(L, "module 'bosk.server' is not built yet");
}
