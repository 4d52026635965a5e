/* main.c: bosk's entry point. C only builds the Lua state; every
 * subcommand is dispatched by lua/bosk/cli.lua (policy lives in Lua). */
#include <stdio.h>
#include <stdlib.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/core.h"
#include "core/embed.h"
#include "core/modules.h"

/* pmain(argc, argv) -> exit status; runs protected so no error escapes. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    luaL_openlibs(L);
    modules_preload(L);
    embed_install_searcher(L);
    lua_pushcfunction(L, core_traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "bosk.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    if (lua_pcall(L, 1, 1, -4) != LUA_OK) {
        fprintf(stderr, "bosk: %s\n", lua_tostring(L, -1));
        lua_pushinteger(L, 1);
        return 1;
    }
    lua_pushinteger(L, luaL_optinteger(L, -1, 0));
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "bosk: cannot create the Lua state: out of memory\n");
        return 1;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int code = 1;
    if (status == LUA_OK)
        code = (int)lua_tointeger(L, -1);
    else
        fprintf(stderr, "bosk: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return code;
}
