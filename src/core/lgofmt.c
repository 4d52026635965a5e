/* lgofmt.c: module "bosk.gofmt", the server's Go-compatible formats handed
 * to Lua so that client, janitor and server share one implementation:
 * Go durations (godur.c) and Go's %q quoting (gojson.c). */
#include <math.h>
#include <stdint.h>
#include <lauxlib.h>
#include "core/godur.h"
#include "core/gojson.h"
#include "core/modules.h"

/* gofmt.parse_duration(text) -> seconds, nanoseconds | nil, Go's error.
 * Whole seconds come back as an integer ("1h" -> 3600), as Lua code that
 * prints or compares them expects. */
static int gofmt_parse_duration(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int64_t ns;
    char err[512];
    if (godur_parse(s, n, &ns, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (ns % 1000000000 == 0)
        lua_pushinteger(L, (lua_Integer)(ns / 1000000000));
    else
        lua_pushnumber(L, (lua_Number)ns / 1e9);
    lua_pushinteger(L, (lua_Integer)ns);
    return 2;
}

/* gofmt.format_duration(seconds) -> Go's Duration.String(), the seconds
 * rounded to the nearest nanosecond. Raises for values a Go Duration
 * cannot hold (about ±292 years), as string.rep does for bad counts. */
static int gofmt_format_duration(lua_State *L)
{
    int64_t ns;
    if (lua_isinteger(L, 1)) {
        lua_Integer secs = lua_tointeger(L, 1);
        luaL_argcheck(L, secs >= -9223372036LL && secs <= 9223372036LL, 1,
                      "duration out of range");
        ns = (int64_t)secs * 1000000000LL;
    } else {
        double nsf = round(luaL_checknumber(L, 1) * 1e9);
        luaL_argcheck(L, nsf >= -9223372036854775808.0 && nsf < 9223372036854775808.0, 1,
                      "duration out of range");
        ns = (int64_t)nsf;
    }
    char out[48];
    godur_format(ns, out, sizeof out);
    lua_pushstring(L, out);
    return 1;
}

/* gofmt.quote(s) -> s as Go's strconv.Quote / %q writes it. */
static int gofmt_quote(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    jbuf b;
    jbuf_init(&b);
    gojson_quote(&b, s, n);
    if (b.oom) {
        jbuf_free(&b);
        return luaL_error(L, "gofmt.quote: out of memory quoting %d bytes", (int)n);
    }
    lua_pushlstring(L, b.data, b.len);
    jbuf_free(&b);
    return 1;
}

static const luaL_Reg gofmt_funcs[] = {
    {"parse_duration", gofmt_parse_duration},
    {"format_duration", gofmt_format_duration},
    {"quote", gofmt_quote},
    {NULL, NULL}
};

int luaopen_bosk_gofmt(lua_State *L)
{
    luaL_newlib(L, gofmt_funcs);
    return 1;
}
