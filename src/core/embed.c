/* embed.c: a package searcher for the Lua sources compiled into bosk.
 * Order: $BOSK_LUA_PATH/<mod>.lua (or <mod>/init.lua), then the embedded
 * copy. It sits before package.path's searchers so a stray system file can
 * never shadow bosk's own modules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "core/embed.h"

static int load_from_dev_path(lua_State *L, const char *module)
{
    const char *dir = getenv("BOSK_LUA_PATH");
    if (dir == NULL || *dir == '\0')
        return 0;
    lua_pushstring(L, dir);
    lua_pushstring(L, "/");
    luaL_gsub(L, module, ".", "/");
    lua_concat(L, 3);                       /* dir/mod/path */
    const char *base = lua_tostring(L, -1);
    const char *candidates[] = { "%s.lua", "%s/init.lua" };
    for (size_t i = 0; i < 2; i++) {
        lua_pushfstring(L, candidates[i], base);
        const char *path = lua_tostring(L, -1);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            fclose(f);
            if (luaL_loadfile(L, path) != LUA_OK)
                return luaL_error(L, "error loading module '%s' from '%s':\n\t%s",
                                  module, path, lua_tostring(L, -1));
            lua_insert(L, -2);              /* loader, path */
            lua_remove(L, -3);              /* drop base */
            return 2;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* searcher(module) -> loader, chunkname | message */
static int embed_searcher(lua_State *L)
{
    const char *module = luaL_checkstring(L, 1);
    int found = load_from_dev_path(L, module);
    if (found)
        return found;
    for (const struct embedded_source *s = embedded_sources; s->module; s++) {
        if (strcmp(s->module, module) != 0)
            continue;
        if (luaL_loadbuffer(L, s->text, s->len, s->chunkname) != LUA_OK)
            return luaL_error(L, "error loading embedded module '%s':\n\t%s",
                              module, lua_tostring(L, -1));
        lua_pushstring(L, s->chunkname + 1);
        return 2;
    }
    lua_pushfstring(L, "no embedded module '%s'", module);
    return 1;
}

void embed_install_searcher(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {  /* shift 2..n up by one */
        lua_geti(L, -1, i);
        lua_seti(L, -2, i + 1);
    }
    lua_pushcfunction(L, embed_searcher);
    lua_seti(L, -2, 2);
    lua_pop(L, 2);
}
