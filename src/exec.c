/* exec.c: placeholder for module "bosk.exec" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_exec(lua_State *L)
{
    return luaL_error(L, "module 'bosk.exec' is not built yet");
}
