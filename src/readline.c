/* readline.c: placeholder for module "bosk.readline" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_readline(lua_State *L)
{
    return luaL_error(L, "module 'bosk.readline' is not built yet");
}
