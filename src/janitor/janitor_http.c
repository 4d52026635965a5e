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
#include "janitor/loop.h"
#include "client/request_opts.h"
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

/* Exchanges queued and not yet answered (loop thread only). */
static int in_flight;

static void http_done(uv_work_t *req, int status)
{
    http_job *job = req->data;
    in_flight--;
    lua_State *L = loop_lua();
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
    loop_call(4);
}

/* A malloc'd copy of s[0..len) (NUL-terminated), or NULL when s is NULL.
 * *failed is set when the copy could not be made. */
static char *copy_string(const char *s, size_t len, int *failed)
{
    if (s == NULL)
        return NULL;
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        *failed = 1;
        return NULL;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* A job owning copies of the request's strings (they must outlive the Lua
 * table: the exchange runs on another thread), or NULL when out of memory. */
static http_job *job_new(const transport_request *req)
{
    http_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    int failed = 0;
    const char *from[6] = { req->method, req->url, req->body, req->content_type,
                            req->username, req->password };
    for (int i = 0; i < 6; i++) {
        size_t len = i == 2 ? req->body_len : from[i] ? strlen(from[i]) : 0;
        job->strings[i] = copy_string(from[i], len, &failed);
    }
    if (failed) {
        http_job_free(job);
        return NULL;
    }
    job->req = *req;
    job->req.method = job->strings[0];
    job->req.url = job->strings[1];
    job->req.body = job->strings[2];
    job->req.content_type = job->strings[3];
    job->req.username = job->strings[4];
    job->req.password = job->strings[5];
    return job;
}

/* loop.http(request, cb)
 * request: {method=, url=, body=, content_type=, username=, password=,
 * timeout= (s, default 30), connect_timeout= (s, default 5), max_body=},
 * read strictly (request_opts.h) before anything is allocated.
 * cb(status, body, nil, status_line) on any HTTP answer, cb(nil, nil,
 * message) on a transport failure. */
static int loop_http(lua_State *L)
{
    transport_request req = { .connect_timeout = 5, .timeout = 30, .max_body = HTTP_MAX_BODY };
    request_opts_read(L, 1, 1, "http", &req);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    http_job *job = job_new(&req);
    if (job == NULL)
        return luaL_error(L, "loop.http: out of memory");
    job->work.data = job;
    int rc = uv_queue_work(loop_uv(), &job->work, http_work, http_done);
    if (rc != 0) {
        http_job_free(job);
        return luaL_error(L, "loop.http: %s", uv_strerror(rc));
    }
    in_flight++;
    lua_pushvalue(L, 2);
    job->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* loop.http_in_flight() -> number of exchanges not yet answered. The
 * janitor's shutdown uses it to know whether loop.close would wait. */
static int loop_http_in_flight(lua_State *L)
{
    lua_pushinteger(L, in_flight);
    return 1;
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
    lua_pushcfunction(L, loop_http_in_flight);
    lua_setfield(L, -2, "http_in_flight");
}
