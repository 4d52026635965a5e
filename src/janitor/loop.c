/* loop.c: the shared context of module bosk.loop (see loop.h). */
#include <stdio.h>
#include "core/core.h"
#include "janitor/loop.h"

static struct {
    lua_State *L;           /* the thread that runs loop.run */
    uv_loop_t *loop;
} C;

uv_loop_t *loop_uv(void)
{
    if (C.loop == NULL)
        C.loop = uv_default_loop();
    return C.loop;
}

int loop_uv_exists(void)
{
    return C.loop != NULL;
}

void loop_uv_closed(void)
{
    C.loop = NULL;
}

lua_State *loop_lua(void)
{
    return C.L;
}

lua_State *loop_set_lua(lua_State *L)
{
    lua_State *previous = C.L;
    C.L = L;
    return previous;
}

void loop_call(int nargs)
{
    lua_State *L = C.L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, core_traceback);
    lua_insert(L, base);
    if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
        fprintf(stderr, "bosk janitor: error in a loop callback: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}
