/* lyaml.c: placeholder for module "bosk.yaml" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_yaml(lua_State *L)
{
    return luaL_error(L, "module 'bosk.yaml' is not built yet");
}
