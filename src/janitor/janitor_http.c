/* janitor_http.c: loop.http, the janitor's HTTP exchanges off the loop
 * thread. Each request runs on libuv's thread pool with a transport
 * (transport.h, libcurl keep-alive) taken from a small shared pool; the
 * answer comes back to Lua on the loop thread. Nothing here touches Lua
 * outside the loop thread, and nothing retries: the supervisor decides. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <lauxlib.h>
#include "janitor/janitor_http.h"
#include "janitor/supervisor.h"
#include "client/transport.h"

#define HTTP_MAX_BODY ((size_t)16 << 20)

typedef struct {
    uv_work_t work;
    transport_request req;
    transport_response resp;
    char *strings[6];       /* method, url, body, content type, user, password */
    int rc;
    int cb_ref;
    char err[256];
} http_job;

/* Idle transports (one TCP connection each), shared by the pool threads. */
static struct {
    pthread_mutex_t lock;
    transport *transports[64];
    int len;
} P = { PTHREAD_MUTEX_INITIALIZER, { NULL }, 0 };

static transport *pool_take(char *err, size_t err_len)
{
    transport *t = NULL;
    pthread_mutex_lock(&P.lock);
    if (P.len > 0)
        t = P.transports[--P.len];
    pthread_mutex_unlock(&P.lock);
    return t ? t : transport_new(err, err_len);
}

static void pool_give(transport *t)
{
    pthread_mutex_lock(&P.lock);
    if (P.len < (int)(sizeof P.transports / sizeof P.transports[0])) {
        P.transports[P.len++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&P.lock);
    transport_free(t);
}

static void http_work(uv_work_t *req)
{
    http_job *job = req->data;
    transport *t = pool_take(job->err, sizeof job->err);
    if (t == NULL) {
        job->rc = -1;
        return;
    }
    job->rc = transport_perform(t, &job->req, &job->resp);
    if (job->rc != 0)
        snprintf(job->err, sizeof job->err, "%s", job->resp.error);
    pool_give(t);
}

static void http_job_free(http_job *job)
{
    transport_response_free(&job->resp);
    for (int i = 0; i < 6; i++)
        free(job->strings[i]);
    free(job);
}

static void http_done(uv_work_t *req, int status)
{
    http_job *job = req->data;
    lua_State *L = supervisor_state();
    lua_rawgeti(L, LUA_REGISTRYINDEX, job->cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, job->cb_ref);
    if (status == 0 && job->rc == 0) {
        lua_pushinteger(L, job->resp.status);
        lua_pushlstring(L, job->resp.body ? job->resp.body : "", job->resp.body_len);
        lua_pushnil(L);
        lua_pushstring(L, job->resp.status_line);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushstring(L, status != 0 ? uv_strerror(status) : job->err);
        lua_pushnil(L);
    }
    http_job_free(job);
    supervisor_call(4);
}

static char *opt_string(lua_State *L, int idx, const char *field, size_t *len)
{
    lua_getfield(L, idx, field);
    size_t n = 0;
    const char *s = luaL_optlstring(L, -1, NULL, &n);
    char *copy = NULL;
    if (s != NULL) {
        copy = malloc(n + 1);
        if (copy == NULL)
            luaL_error(L, "loop.http: out of memory");
        memcpy(copy, s, n + 1);
    }
    if (len)
        *len = n;
    lua_pop(L, 1);
    return copy;
}

static double opt_number(lua_State *L, int idx, const char *field, double dflt)
{
    lua_getfield(L, idx, field);
    double v = luaL_optnumber(L, -1, dflt);
    lua_pop(L, 1);
    return v;
}

/* loop.http(request, cb)
 * request: {method=, url=, body=, content_type=, username=, password=,
 * timeout= (s), connect_timeout= (s)}. cb(status, body, nil, status_line)
 * on any HTTP answer, cb(nil, nil, message) on a transport failure. */
static int loop_http(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    http_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return luaL_error(L, "loop.http: out of memory");
    size_t body_len = 0;
    job->strings[0] = opt_string(L, 1, "method", NULL);
    job->strings[1] = opt_string(L, 1, "url", NULL);
    job->strings[2] = opt_string(L, 1, "body", &body_len);
    job->strings[3] = opt_string(L, 1, "content_type", NULL);
    job->strings[4] = opt_string(L, 1, "username", NULL);
    job->strings[5] = opt_string(L, 1, "password", NULL);
    if (job->strings[1] == NULL) {
        http_job_free(job);
        return luaL_error(L, "loop.http: request.url is required");
    }
    job->req = (transport_request){
        .method = job->strings[0] ? job->strings[0] : "GET", .url = job->strings[1],
        .body = job->strings[2], .body_len = body_len, .content_type = job->strings[3],
        .username = job->strings[4], .password = job->strings[5],
        .connect_timeout = opt_number(L, 1, "connect_timeout", 5),
        .timeout = opt_number(L, 1, "timeout", 30), .max_body = HTTP_MAX_BODY,
    };
    job->work.data = job;
    int rc = uv_queue_work(supervisor_loop(), &job->work, http_work, http_done);
    if (rc != 0) {
        http_job_free(job);
        return luaL_error(L, "loop.http: %s", uv_strerror(rc));
    }
    lua_pushvalue(L, 2);
    job->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void janitor_http_close(void)
{
    pthread_mutex_lock(&P.lock);
    while (P.len > 0)
        transport_free(P.transports[--P.len]);
    pthread_mutex_unlock(&P.lock);
}

void janitor_http_register(lua_State *L)
{
    /* More threads than libuv's default 4, so a few slow exchanges (a
     * dead server) leave room for the others. Read on first use. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);
    lua_pushcfunction(L, loop_http);
    lua_setfield(L, -2, "http");
}
