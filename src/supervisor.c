/* supervisor.c: placeholder for module "bosk.loop" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_loop(lua_State *L)
{
    return luaL_error(L, "module 'bosk.loop' is not built yet");
}
