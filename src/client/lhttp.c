/* lhttp.c: module "bosk.http", the Lua face of transport.c.
 *
 *   local http = require "bosk.http"
 *   local conn = http.new()
 *   local status, status_line, body = conn:request{method = "POST", url = ...}
 *   -- or nil, kind ("connect"|"timeout"|"io"|"too_large"|"init"), message
 *   conn:send(method, url, body, content_type, username, password,
 *             connect_timeout, timeout, max_body)   -- the same, positional
 *   conn:post(url, connect_timeout, timeout, max_body[, UserData])
 *             -- a bodiless POST; with UserData, a 200 answer in Go's
 *             -- compact Resource form comes back decoded (lwire.h):
 *             -- status, status_line, resource, true
 *   conn:close()            -- also __gc and __close
 *   http.stat(path)         -- mtime, size  (or nil, message)
 *
 * A connection is a userdata holding one transport, created on the first
 * request, so loading this module never loads libcurl. The Lua state is
 * never touched while libcurl runs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lauxlib.h>
#include "core/modules.h"
#include "client/lwire.h"
#include "client/request_opts.h"
#include "client/transport.h"

#define CONN_META "bosk.http.conn"
#define DEFAULT_MAX_BODY ((size_t)16 << 20)

typedef struct {
    transport *t;
    char *pending; /* a response body not yet copied into Lua */
    int closed;
} conn;

/* Argument 1 as a conn. Every conn function has the conn metatable as its
 * upvalue 1: comparing with it costs less than luaL_checkudata's registry
 * lookup, a visible share of a request's time; the error is the same. */
static conn *check_conn(lua_State *L)
{
    conn *c = lua_touserdata(L, 1);
    int is_conn = c != NULL && lua_getmetatable(L, 1);
    if (is_conn) {
        is_conn = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
    }
    if (!is_conn)
        luaL_typeerror(L, 1, CONN_META);
    return c;
}

static conn *check_open_conn(lua_State *L)
{
    conn *c = check_conn(L);
    if (c->closed)
        luaL_error(L, "attempt to use a closed HTTP connection");
    return c;
}

/* http.new() -> conn */
static int http_new(lua_State *L)
{
    conn *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->t = NULL;
    c->pending = NULL;
    c->closed = 0;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, -2);
    return 1;
}

/* conn:close() / __gc / __close: frees the transport; idempotent. */
static int conn_close(lua_State *L)
{
    conn *c = check_conn(L);
    transport *t = c->t;
    c->t = NULL;
    c->closed = 1;
    free(c->pending);
    c->pending = NULL;
    transport_free(t);
    return 0;
}

/* conn:__tostring() -> "bosk.http.conn (open)" */
static int conn_tostring(lua_State *L)
{
    conn *c = check_conn(L);
    lua_pushfstring(L, "bosk.http.conn (%s)", c->closed ? "closed" : "open");
    return 1;
}

/* Reads the options table (argument 2, "#1" to the caller of the method)
 * with the reader loop.http shares (request_opts.h). */
static void read_request(lua_State *L, transport_request *req)
{
    memset(req, 0, sizeof *req);
    req->max_body = DEFAULT_MAX_BODY;
    request_opts_read(L, 2, 1, "request", req);
}

static const char *kind_name(transport_error_kind kind)
{
    switch (kind) {
    case TRANSPORT_CONNECT: return "connect";
    case TRANSPORT_TIMEOUT: return "timeout";
    case TRANSPORT_TOO_LARGE: return "too_large";
    case TRANSPORT_INIT: return "init";
    default: return "io";
    }
}

/* Sends req on c's transport (created on first use) and pushes
 * status, status_line, body   or   nil, kind, message.
 * With decode_mt (the stack index of the UserData metatable; 0 for none),
 * the body of a 200 answer in Go's compact Resource form is pushed as the
 * decoded resource instead of as text, and then true. */
static int perform(lua_State *L, conn *c, const transport_request *req, int decode_mt)
{
    char err[256];
    if (c->t == NULL && (c->t = transport_new(err, sizeof err)) == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "init");
        lua_pushstring(L, err);
        return 3;
    }
    luaL_checkstack(L, 8, "request results"); /* and a decoded resource */
    transport_response resp;
    int rc = transport_perform(c->t, req, &resp);
    if (rc != 0) {
        transport_response_free(&resp);
        lua_pushnil(L);
        lua_pushstring(L, kind_name(resp.kind));
        lua_pushstring(L, resp.error);
        return 3;
    }
    /* Until Lua owns a copy, the body hangs off the connection, so a
     * memory error while pushing leaves it for close/__gc to free. */
    c->pending = resp.body;
    lua_pushinteger(L, resp.status);
    lua_pushstring(L, resp.status_line);
    int decoded = decode_mt != 0 && resp.status == 200
                  && lwire_push_resource(L, resp.body, resp.body_len, decode_mt);
    if (!decoded)
        lua_pushlstring(L, resp.body, resp.body_len);
    c->pending = NULL;
    transport_recycle(c->t, &resp);
    if (!decoded)
        return 3;
    lua_pushboolean(L, 1);
    return 4;
}

/* conn:request{method=, url=, body=, content_type=, username=, password=,
 *              connect_timeout=, timeout=, max_body=}
 * -> status, status_line, body   or   nil, kind, message */
static int conn_request(lua_State *L)
{
    conn *c = check_open_conn(L);
    transport_request req;
    read_request(L, &req);
    return perform(L, c, &req, 0);
}

/* Argument n: a string, or NULL when nil or absent. */
static const char *arg_string(lua_State *L, int n, size_t *len)
{
    int type = lua_type(L, n);
    if (type == LUA_TSTRING)
        return lua_tolstring(L, n, len);
    if (type > LUA_TNIL)
        luaL_typeerror(L, n, "string or nil");
    return NULL;
}

/* Argument n: a number in [0, max], or dflt when nil or absent. */
static double arg_number(lua_State *L, int n, double dflt, double max)
{
    int type = lua_type(L, n);
    double v = dflt;
    if (type == LUA_TNUMBER)
        v = lua_tonumber(L, n);
    else if (type > LUA_TNIL)
        luaL_typeerror(L, n, "number or nil");
    luaL_argcheck(L, v >= 0 && v <= max, n, "out of range");
    return v;
}

/* conn:send(method, url, body, content_type, username, password,
 *           connect_timeout, timeout, max_body)
 * -> as conn:request. The client's calls use this form: reading and
 * checking a table of options cost more than the rest of the binding. */
static int conn_send(lua_State *L)
{
    conn *c = check_open_conn(L);
    transport_request req;
    memset(&req, 0, sizeof req);
    req.method = arg_string(L, 2, NULL);
    if (req.method == NULL)
        req.method = "GET";
    req.url = arg_string(L, 3, NULL);
    luaL_argcheck(L, req.url != NULL, 3, "URL expected");
    req.body = arg_string(L, 4, &req.body_len);
    req.content_type = arg_string(L, 5, NULL);
    req.username = arg_string(L, 6, NULL);
    req.password = arg_string(L, 7, NULL);
    req.connect_timeout = arg_number(L, 8, 0, 1e9);
    req.timeout = arg_number(L, 9, 0, 1e9);
    req.max_body = (size_t)arg_number(L, 10, (double)DEFAULT_MAX_BODY, 0x1p53);
    return perform(L, c, &req, 0);
}

/* conn:post(url, connect_timeout, timeout, max_body[, UserData])
 * -> status, status_line, body   or   nil, kind, message: a POST without
 * body, Content-Type or credentials, as conn:send would make it. Given the
 * UserData metatable, a 200 answer in Go's compact Resource form comes
 * back as status, status_line, the resource (a table, as
 * bosk.wire.decode_resource makes it) in place of the body text, and true. The client's /acquire and /release use
 * this: it saves a body string and a call per request. */
static int conn_post(lua_State *L)
{
    conn *c = check_open_conn(L);
    transport_request req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.url = arg_string(L, 2, NULL);
    luaL_argcheck(L, req.url != NULL, 2, "URL expected");
    req.connect_timeout = arg_number(L, 3, 0, 1e9);
    req.timeout = arg_number(L, 4, 0, 1e9);
    req.max_body = (size_t)arg_number(L, 5, (double)DEFAULT_MAX_BODY, 0x1p53);
    int decode_mt = 0;
    if (!lua_isnoneornil(L, 6)) {
        luaL_checktype(L, 6, LUA_TTABLE);
        decode_mt = 6;
    }
    return perform(L, c, &req, decode_mt);
}

/* http.stat(path) -> mtime (seconds, float), size   or   nil, message */
static int http_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    lua_pushnumber(L, (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9);
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 2;
}

static const luaL_Reg conn_methods[] = {
    {"request", conn_request},
    {"send", conn_send},
    {"post", conn_post},
    {"close", conn_close},
    {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
    {"__index", NULL},
    {"__gc", conn_close},
    {"__close", conn_close},
    {"__tostring", conn_tostring},
    {NULL, NULL}
};

static const luaL_Reg http_funcs[] = {
    {"new", NULL}, /* a closure over the metatable, set in luaopen */
    {"stat", http_stat},
    {NULL, NULL}
};

/* The conn functions and http.new get the metatable as upvalue 1. */
int luaopen_bosk_http(lua_State *L)
{
    luaL_newmetatable(L, CONN_META);
    lua_pushvalue(L, -1);
    luaL_setfuncs(L, conn_meta, 1);
    luaL_newlibtable(L, conn_methods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, conn_methods, 1);
    lua_setfield(L, -2, "__index");
    luaL_newlib(L, http_funcs);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, http_new, 1);
    lua_setfield(L, -2, "new");
    lua_remove(L, -2);
    return 1;
}
