/* modules.c: the table of contents of bosk's C side. Every C module is
 * put in package.preload; none is opened until a Lua file requires it,
 * so `bosk run` pays only for what a script uses. */
#include <lauxlib.h>
#include <lua-cjson.h>
#include "core/modules.h"

static const luaL_Reg preloads[] = {
    {"cjson",        luaopen_cjson},
    {"bosk.core",    luaopen_bosk_core},
    {"bosk.http",    luaopen_bosk_http},
    {"bosk.server",  luaopen_bosk_server},
    {"bosk.loop",    luaopen_bosk_loop},
    {"bosk.exec",    luaopen_bosk_exec},
    {"bosk.readline", luaopen_bosk_readline},
    {"bosk.journal", luaopen_bosk_journal},
    {"bosk.yaml",    luaopen_bosk_yaml},
    {"bosk.wirec",   luaopen_bosk_wirec},
    {"bosk.gofmt",   luaopen_bosk_gofmt},
    {"bosk.unixsock", luaopen_bosk_unixsock},
    {NULL, NULL}
};

void modules_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    luaL_setfuncs(L, preloads, 0);
    lua_pop(L, 1);
}
