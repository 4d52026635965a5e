/* lwire.c: module "bosk.wirec", the one C piece of bosk.wire.
 *
 *   local wirec = require "bosk.wirec"
 *   local r = wirec.decode_resource(text, UserData)  -- resource, or nil
 *
 * decode_resource reads exactly Go's compact form of a Resource (the form
 * every Boskos server sends) in one pass and builds the resource table
 * directly, without cjson's intermediate object. It knows only the common
 * case: the six fields in Go's order, a non-empty name, string values
 * without escapes or control characters, user data an object of such
 * strings or null, an optional expiration-date, no whitespace. For
 * anything else it pushes nil and bosk.wire's general (cjson) path decides,
 * so results and errors never depend on which path ran. */
#include <stddef.h>
#include <string.h>
#include <lauxlib.h>
#include "core/modules.h"
#include "client/lwire.h"

typedef struct {
    const char *p;   /* next byte */
    const char *end; /* one past the last byte */
} cursor;

/* Consumes the literal lit when the text continues with it. */
static int take(cursor *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

#define TAKE(c, lit) take((c), (lit), sizeof(lit) - 1)

/* Reads a JSON string with no escapes and no control characters (cjson
 * copies every other byte as is, as this does); sets *s and *n to its
 * contents. 0 for anything else. */
static int plain_string(cursor *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"')
        return 0;
    const char *start = ++c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *s = start;
            *n = (size_t)(c->p - start);
            c->p++;
            return 1;
        }
        if (ch < 0x20 || ch == '\\')
            return 0;
        c->p++;
    }
    return 0;
}

/* Reads lit then a plain string and sets field key of the table on top;
 * 0 when the text differs, or when the string is empty and must not be. */
static int string_field(lua_State *L, cursor *c, const char *lit, size_t litn, const char *key,
                        int empty_ok)
{
    const char *s;
    size_t n;
    if (!take(c, lit, litn) || !plain_string(c, &s, &n) || (n == 0 && !empty_ok))
        return 0;
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, key);
    return 1;
}

#define FIELD(L, c, lit, key) string_field((L), (c), (lit), sizeof(lit) - 1, (key), 1)
#define NONEMPTY_FIELD(L, c, lit, key) string_field((L), (c), (lit), sizeof(lit) - 1, (key), 0)

/* Reads the user data object after "userdata": and pushes its map (a fresh
 * table; a repeated key keeps its last value, as cjson does), or pushes
 * nothing and returns 0. *was_null is set for null. */
static int userdata_map(lua_State *L, cursor *c, int *was_null)
{
    *was_null = 0;
    if (TAKE(c, "null")) {
        *was_null = 1;
        lua_newtable(L);
        return 1;
    }
    if (!TAKE(c, "{"))
        return 0;
    lua_newtable(L);
    if (TAKE(c, "}"))
        return 1;
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (!plain_string(c, &k, &kn) || !TAKE(c, ":") || !plain_string(c, &v, &vn)) {
            lua_pop(L, 1);
            return 0;
        }
        lua_pushlstring(L, k, kn);
        lua_pushlstring(L, v, vn);
        lua_rawset(L, -3);
        if (TAKE(c, "}"))
            return 1;
        if (!TAKE(c, ",")) {
            lua_pop(L, 1);
            return 0;
        }
    }
}

/* Wraps the map on top in a UserData object (metatable at index mt),
 * replacing the map with it. */
static void wrap_userdata(lua_State *L, int mt, int was_null)
{
    lua_createtable(L, 0, was_null ? 2 : 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "_map");
    if (was_null) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "_null");
    }
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
}

/* Reads the fields of the resource into the table on top; 0 when the text
 * is not exactly the compact form (the caller drops the table). */
static int resource_fields(lua_State *L, cursor *c, int mt)
{
    /* An empty name: the general path says "unable to parse resource". */
    if (!FIELD(L, c, "{\"type\":", "type") || !NONEMPTY_FIELD(L, c, ",\"name\":", "name"))
        return 0;
    if (!FIELD(L, c, ",\"state\":", "state") || !FIELD(L, c, ",\"owner\":", "owner")
        || !FIELD(L, c, ",\"lastupdate\":", "lastupdate") || !TAKE(c, ",\"userdata\":"))
        return 0;
    int was_null;
    if (!userdata_map(L, c, &was_null))
        return 0;
    wrap_userdata(L, mt, was_null);
    lua_setfield(L, -2, "userdata");
    if (c->p < c->end && *c->p == ','
        && !FIELD(L, c, ",\"expiration-date\":", "expiration_date"))
        return 0;
    return TAKE(c, "}") && c->p == c->end;
}

int lwire_push_resource(lua_State *L, const char *text, size_t len, int userdata_mt)
{
    cursor c = {text, text + len};
    int top = lua_gettop(L);
    lua_createtable(L, 0, 7);
    if (!resource_fields(L, &c, userdata_mt)) {
        lua_settop(L, top);
        return 0;
    }
    return 1;
}

/* wirec.decode_resource(text, UserData) -> resource, or nil when text is
 * not exactly Go's compact form (see the file's opening comment).
 * Takes: 1 text (string), 2 the UserData metatable (table).
 * Pushes: the resource {type, name, state, owner, lastupdate, userdata,
 * expiration_date?}, its userdata a UserData over a fresh map; or nil. */
static int wirec_decode_resource(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    if (!lwire_push_resource(L, text, len, 2))
        lua_pushnil(L);
    return 1;
}

static const luaL_Reg wirec_funcs[] = {
    {"decode_resource", wirec_decode_resource},
    {NULL, NULL}
};

int luaopen_bosk_wirec(lua_State *L)
{
    luaL_newlib(L, wirec_funcs);
    return 1;
}
