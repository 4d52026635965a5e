/* lhttp.c: placeholder for module "bosk.http" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_http(lua_State *L)
{
    return luaL_error(L, "module 'bosk.http' is not built yet");
}
