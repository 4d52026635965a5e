/* journal.c: placeholder for module "bosk.journal" (being written). */
#include <lauxlib.h>
#include "modules.h"

int luaopen_bosk_journal(lua_State *L)
{
    return luaL_error(L, "module 'bosk.journal' is not built yet");
}
