/* request_opts.c: see request_opts.h. */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "client/request_opts.h"

static const char *const request_fields[] = {
    "method", "url", "body", "content_type", "username", "password",
    "connect_timeout", "timeout", "max_body", NULL
};

typedef struct {
    lua_State *L;
    int idx;
    int argn;
    const char *fname;
} reader;

static int bad(const reader *r, const char *fmt, const char *a, const char *b)
{
    char why[160];
    snprintf(why, sizeof why, fmt, a, b);
    return luaL_error(r->L, "bad argument #%d to '%s' (%s)", r->argn, r->fname, why);
}

/* Raises unless every key of the table is a known field. */
static void reject_unknown(const reader *r)
{
    lua_State *L = r->L;
    lua_pushnil(L);
    while (lua_next(L, r->idx) != 0) {
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; request_fields[i] && !known; i++)
                known = strcmp(lua_tostring(L, -1), request_fields[i]) == 0;
        if (!known)
            bad(r, "unknown field '%s'%s", luaL_tolstring(L, -1, NULL), "");
    }
}

/* The string field `name`, or dflt when absent. */
static const char *opt_string(const reader *r, const char *name, const char *dflt, size_t *len)
{
    int type = lua_getfield(r->L, r->idx, name);
    const char *s = dflt;
    if (type == LUA_TSTRING)
        s = lua_tolstring(r->L, -1, len);
    else if (type != LUA_TNIL)
        bad(r, "field '%s' must be a string, got %s", name, luaL_typename(r->L, -1));
    lua_pop(r->L, 1); /* the string stays alive: the table holds it */
    return s;
}

/* The non-negative number field `name` (at most `max`), or dflt when absent. */
static double opt_number(const reader *r, const char *name, double dflt, double max)
{
    int type = lua_getfield(r->L, r->idx, name);
    double v = dflt;
    if (type == LUA_TNUMBER)
        v = lua_tonumber(r->L, -1);
    else if (type != LUA_TNIL)
        bad(r, "field '%s' must be a number, got %s", name, luaL_typename(r->L, -1));
    lua_pop(r->L, 1);
    if (!(v >= 0) || v > max)
        bad(r, "field '%s' out of range%s", name, "");
    return v;
}

void request_opts_read(lua_State *L, int idx, int argn, const char *fname,
                       transport_request *req)
{
    reader r = { L, lua_absindex(L, idx), argn, fname };
    luaL_checktype(L, r.idx, LUA_TTABLE);
    reject_unknown(&r);
    req->method = opt_string(&r, "method", "GET", NULL);
    req->url = opt_string(&r, "url", NULL, NULL);
    if (req->url == NULL)
        bad(&r, "field '%s' is required%s", "url", "");
    req->body_len = 0;
    req->body = opt_string(&r, "body", NULL, &req->body_len);
    req->content_type = opt_string(&r, "content_type", NULL, NULL);
    req->username = opt_string(&r, "username", NULL, NULL);
    req->password = opt_string(&r, "password", NULL, NULL);
    req->connect_timeout = opt_number(&r, "connect_timeout", req->connect_timeout, 1e9);
    req->timeout = opt_number(&r, "timeout", req->timeout, 1e9);
    req->max_body = (size_t)opt_number(&r, "max_body", (double)req->max_body, 0x1p53);
}
