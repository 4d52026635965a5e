/* wire_fuzz.c: the client's one-pass Resource decoder (bosk.wirec,
 * src/client/lwire.c), against lua-cjson: its promise is that whatever it
 * accepts, cjson decodes to the same fields and user data, so results never
 * depend on which path ran. A mismatch raises, and the harness aborts. */
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "fuzz.h"
#include "core/modules.h"

int luaopen_cjson(lua_State *L);

/* check(text): decodes text on both paths and compares. */
static const char check_chunk[] =
    "local wirec, cjson = ...\n"
    "local UserData = {}\n"
    "local fields = { 'type', 'name', 'state', 'owner', 'lastupdate' }\n"
    "return function(text)\n"
    "  local r = wirec.decode_resource(text, UserData)\n"
    "  if r == nil then return end\n"
    "  local ok, g = pcall(cjson.decode, text)\n"
    "  assert(ok and type(g) == 'table', 'accepted what cjson rejects')\n"
    "  for _, k in ipairs(fields) do assert(r[k] == g[k], k) end\n"
    "  assert(r.name ~= '', 'empty name')\n"
    "  assert(r.expiration_date == g['expiration-date'], 'expiration-date')\n"
    "  local ud = r.userdata\n"
    "  assert(getmetatable(ud) == UserData, 'userdata metatable')\n"
    "  if g.userdata == cjson.null then\n"
    "    assert(ud._null == true and next(ud._map) == nil, 'null userdata')\n"
    "    return\n"
    "  end\n"
    "  assert(type(g.userdata) == 'table' and not ud._null, 'userdata object')\n"
    "  for k, v in pairs(g.userdata) do assert(ud._map[k] == v, 'userdata ' .. k) end\n"
    "  for k, v in pairs(ud._map) do assert(g.userdata[k] == v, 'userdata ' .. k) end\n"
    "end\n";

static lua_State *L;

static lua_State *setup(void)
{
    lua_State *s = luaL_newstate();
    FUZZ_CHECK(s != NULL);
    luaL_requiref(s, LUA_GNAME, luaopen_base, 1);   /* pcall, assert, pairs... */
    lua_pop(s, 1);
    FUZZ_CHECK(luaL_loadbuffer(s, check_chunk, sizeof check_chunk - 1, "=check") == LUA_OK);
    luaopen_bosk_wirec(s);
    luaopen_cjson(s);
    FUZZ_CHECK(lua_pcall(s, 2, 1, 0) == LUA_OK);
    lua_setglobal(s, "check");
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL)
        L = setup();
    lua_getglobal(L, "check");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "wire: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* Frees this input's garbage now: libFuzzer runs a leak check after
     * every input that allocated more than it freed, at 100x the cost. */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
