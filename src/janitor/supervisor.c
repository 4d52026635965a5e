/* supervisor.c: module "bosk.loop", the janitor's single-threaded libuv
 * event loop as seen from Lua.
 *
 *   loop.timer(after, every, fn) -> handle   (every = 0: fires once)
 *   loop.signal("TERM"|"INT"|"HUP", fn) -> handle
 *   loop.zygote(handler)                     (the worker factory, worker.h)
 *   loop.spawn(key, payload, on_done) -> id  (a worker process)
 *   loop.kill(id)                            (the worker's whole group)
 *   loop.on_progress(fn)                     (fn(id, text) for each PROGRESS)
 *   loop.progress(text) -> bool              (in a worker: report progress)
 *   loop.http(request, cb)                   (janitor_http.c: off the loop thread)
 *   loop.run() / loop.stop() / loop.close()
 *   handle:stop()
 *
 * Every decision is made in lua/bosk/janitor.lua; this file only connects
 * Lua to the OS. Callbacks call Lua through lua_pcall with a traceback
 * handler and never raise. Workers are forked by a small zygote process
 * (worker.c) that already holds the policies: each runs one Lua function in
 * its own process group and sends its report over the zygote's socket,
 * watched here with a uv_poll. HTTP exchanges run on libuv's thread pool
 * (janitor_http.c), so a slow server never blocks a timer, a signal or the
 * reaping of a worker. The loop and the Lua thread its callbacks use are
 * the shared context in loop.c. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <lauxlib.h>
#include "janitor/janitor_http.h"
#include "janitor/janitor_metrics.h"
#include "core/modules.h"
#include "core/core.h"
#include "janitor/loop.h"
#include "janitor/worker.h"

#define HANDLE_META "bosk.loop.handle"

typedef struct worker {
    uint32_t id;
    pid_t pid;              /* 0 until the zygote says it started */
    int done_ref;           /* Lua on_done callback */
    char *report;           /* what the worker sent, NULL if nothing */
    size_t report_len;
    struct worker *next;
} worker;

/* A timer or signal watcher; freed in its close callback. */
typedef struct {
    union { uv_timer_t timer; uv_signal_t signal; uv_handle_t handle; } h;
    int fn_ref;
    int ud_ref;             /* keeps the Lua handle alive while active */
    int once;
} watcher;

typedef struct {
    watcher *w;             /* cleared when the watcher closes */
} handle_ud;

static struct {
    int zfd;                /* socket to the zygote, -1 when down */
    pid_t zpid;
    uv_poll_t zpoll;
    int handler_ref;        /* what workers run */
    int progress_ref;       /* Lua fn(id, text) for PROGRESS messages */
    uint32_t next_id;
    worker *workers;
} S = { .zfd = -1, .handler_ref = LUA_NOREF, .progress_ref = LUA_NOREF };

/* ---- timers and signals ---- */

static void watcher_closed(uv_handle_t *h)
{
    free(h->data);
}

static void watcher_stop(lua_State *L, watcher *w)
{
    if (uv_is_closing(&w->h.handle))
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->ud_ref);
    handle_ud *ud = lua_touserdata(L, -1);
    if (ud)
        ud->w = NULL;
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, w->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, w->ud_ref);
    w->h.handle.data = w;
    uv_close(&w->h.handle, watcher_closed);
}

static void fire(watcher *w)
{
    lua_State *L = loop_lua();
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn_ref);
    if (w->once)
        watcher_stop(L, w);      /* the function stays on the stack */
    loop_call(0);
}

static void on_timer(uv_timer_t *t)
{
    fire(t->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
    fire(s->data);
}

/* Pushes a handle userdata for w and pins both. fn is at index fn_idx. */
static watcher *new_watcher(lua_State *L, int fn_idx)
{
    luaL_checktype(L, fn_idx, LUA_TFUNCTION);
    handle_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
    ud->w = NULL;
    luaL_setmetatable(L, HANDLE_META);
    watcher *w = calloc(1, sizeof *w);
    if (w == NULL)
        luaL_error(L, "bosk.loop: out of memory");
    lua_pushvalue(L, fn_idx);
    w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    w->ud_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return w;
}

/* loop.timer(after, every, fn) -> handle
 * after, every: seconds (every = 0: once); fn(): called on the loop. */
static int loop_timer(lua_State *L)
{
    double after = luaL_checknumber(L, 1), every = luaL_checknumber(L, 2);
    luaL_argcheck(L, after >= 0 && every >= 0, 1, "times must not be negative");
    watcher *w = new_watcher(L, 3);
    w->once = every == 0;
    int rc = uv_timer_init(loop_uv(), &w->h.timer);
    w->h.timer.data = w;
    ((handle_ud *)lua_touserdata(L, -1))->w = w;
    if (rc == 0)
        rc = uv_timer_start(&w->h.timer, on_timer, (uint64_t)(after * 1000 + 0.5),
                            (uint64_t)(every * 1000 + 0.5));
    if (rc != 0) {
        watcher_stop(L, w);
        return luaL_error(L, "loop.timer: %s", uv_strerror(rc));
    }
    return 1;
}

static int signal_number(lua_State *L, int idx)
{
    static const char *const names[] = { "TERM", "INT", "HUP", "USR1", NULL };
    static const int numbers[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
    return numbers[luaL_checkoption(L, idx, NULL, names)];
}

/* loop.signal(name, fn) -> handle
 * name: "TERM", "INT", "HUP" or "USR1"; fn(): called on the loop. */
static int loop_signal(lua_State *L)
{
    int signum = signal_number(L, 1);
    watcher *w = new_watcher(L, 2);
    int rc = uv_signal_init(loop_uv(), &w->h.signal);
    w->h.signal.data = w;
    ((handle_ud *)lua_touserdata(L, -1))->w = w;
    if (rc == 0)
        rc = uv_signal_start(&w->h.signal, on_signal, signum);
    if (rc != 0) {
        watcher_stop(L, w);
        return luaL_error(L, "loop.signal: %s", uv_strerror(rc));
    }
    return 1;
}

/* handle:stop(): stops and releases a timer or signal watcher (idempotent). */
static int handle_stop(lua_State *L)
{
    handle_ud *ud = luaL_checkudata(L, 1, HANDLE_META);
    if (ud->w != NULL)
        watcher_stop(L, ud->w);
    ud->w = NULL;
    return 0;
}

/* ---- workers (forked by the zygote, worker.c) ---- */

static worker *find_worker(uint32_t id, worker ***link)
{
    for (worker **p = &S.workers; *p != NULL; p = &(*p)->next) {
        if ((*p)->id == id) {
            if (link)
                *link = p;
            return *p;
        }
    }
    return NULL;
}

/* Calls on_done(report, exit_code, signal[, error]) and frees w (already
 * unlinked). status < 0: the worker never ran (message in why). */
static void finish_worker(worker *w, int status, const char *why)
{
    lua_State *L = loop_lua();
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->done_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, w->done_ref);
    if (w->report != NULL)
        lua_pushlstring(L, w->report, w->report_len);
    else
        lua_pushnil(L);
    if (status >= 0 && WIFEXITED(status))
        lua_pushinteger(L, WEXITSTATUS(status));
    else
        lua_pushnil(L);
    if (status >= 0 && WIFSIGNALED(status))
        lua_pushinteger(L, WTERMSIG(status));
    else
        lua_pushnil(L);
    if (why != NULL)
        lua_pushstring(L, why);
    else
        lua_pushnil(L);
    free(w->report);
    free(w);
    loop_call(4);
}

/* A PROGRESS from a live worker goes to the on_progress function. */
static void progress_message(uint32_t id, const char *body, size_t len)
{
    if (S.progress_ref == LUA_NOREF)
        return;
    lua_State *L = loop_lua();
    lua_rawgeti(L, LUA_REGISTRYINDEX, S.progress_ref);
    lua_pushinteger(L, id);
    lua_pushlstring(L, body, len);
    loop_call(2);
}

static void on_message(const wmsg_header *h, const char *body, size_t len)
{
    worker **link = NULL;
    worker *w = find_worker(h->id, &link);
    if (w == NULL)
        return;
    if (h->type == WMSG_PROGRESS) {
        if (w->report == NULL)
            progress_message(h->id, body, len);
    } else if (h->type == WMSG_STARTED) {
        w->pid = h->value;
    } else if (h->type == WMSG_REPORT && w->report == NULL) {
        w->report = malloc(len + 1);
        if (w->report != NULL) {
            memcpy(w->report, body, len);
            w->report_len = len;
        }
        if (w->report != NULL && h->value == 1) {   /* group gone: the cleaning is over */
            *link = w->next;
            finish_worker(w, 0, NULL);
        }
    } else if (h->type == WMSG_EXIT) {
        *link = w->next;
        finish_worker(w, h->value, h->value < 0 ? "could not fork a worker" : NULL);
    }
}

/* Closes the socket to the zygote, which then kills its workers and exits,
 * and waits for it. */
static void zygote_close(void)
{
    close(S.zfd);
    S.zfd = -1;
    while (waitpid(S.zpid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void zygote_lost(void)
{
    uv_poll_stop(&S.zpoll);
    uv_close((uv_handle_t *)&S.zpoll, NULL);
    zygote_close();
    while (S.workers != NULL) {
        worker *w = S.workers;
        S.workers = w->next;
        finish_worker(w, -1, "the worker factory process died");
    }
}

static void on_zygote(uv_poll_t *h, int status, int events)
{
    for (;;) {
        char *buf;
        ssize_t n = wmsg_recv(S.zfd, &buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            fprintf(stderr, "bosk janitor: the worker factory process exited; restarting it\n");
            zygote_lost();
            return;
        }
        if ((size_t)n >= sizeof(wmsg_header)) {
            wmsg_header hdr;
            memcpy(&hdr, buf, sizeof hdr);
            on_message(&hdr, buf + sizeof hdr, (size_t)n - sizeof hdr);
        }
        free(buf);
        if (S.zfd < 0)
            return;
    }
}

static int zygote_up(lua_State *L)
{
    if (S.zfd >= 0)
        return 0;
    S.zfd = zygote_start(L, S.handler_ref, &S.zpid);
    if (S.zfd < 0)
        return -1;
    int rc = uv_poll_init(loop_uv(), &S.zpoll, S.zfd);
    if (rc == 0) {
        rc = uv_poll_start(&S.zpoll, UV_READABLE | UV_DISCONNECT, on_zygote);
        if (rc != 0)
            uv_close((uv_handle_t *)&S.zpoll, NULL);
    }
    if (rc != 0) {
        zygote_close();
        errno = -rc;
        return -1;
    }
    return 0;
}

/* loop.zygote(handler): forks the worker factory now, while the process is
 * still small and single-threaded. Workers will run handler(key, payload),
 * which returns the report string. Returns true or nil, message. */
static int loop_zygote(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (S.handler_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, S.handler_ref);
    lua_pushvalue(L, 1);
    S.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (zygote_up(L) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start the worker factory: %s", strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* loop.spawn(key, payload, on_done) -> id | nil, message
 * A worker runs handler(key, payload) in its own process group. Once it
 * has exited and its group has been killed, on_done(report|nil,
 * exit_code|nil, signal|nil, error|nil) runs on the loop. */
static int loop_spawn(lua_State *L)
{
    size_t key_len, payload_len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *payload = luaL_checklstring(L, 2, &payload_len);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    /* Checked before anything is allocated: a raise must leak nothing. */
    if (S.handler_ref == LUA_NOREF)
        return luaL_error(L, "loop.spawn: no worker handler; call loop.zygote(handler) first");
    worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return luaL_error(L, "loop.spawn: out of memory");
    w->id = ++S.next_id;
    wmsg_header h = { WMSG_RUN, w->id, 0, (uint32_t)key_len };
    if (zygote_up(L) != 0 || wmsg_send(S.zfd, &h, key, key_len, payload, payload_len) != 0) {
        int e = errno;
        free(w);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start a worker: %s", strerror(e));
        return 2;
    }
    lua_pushvalue(L, 3);
    w->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    w->next = S.workers;
    S.workers = w;
    lua_pushinteger(L, w->id);
    return 1;
}

/* loop.kill(id): kills a running worker's whole process group. */
static int loop_kill(lua_State *L)
{
    uint32_t id = (uint32_t)luaL_checkinteger(L, 1);
    wmsg_header h = { WMSG_KILL, id, 0, 0 };
    int ok = find_worker(id, NULL) != NULL && S.zfd >= 0 &&
             wmsg_send(S.zfd, &h, NULL, 0, NULL, 0) == 0;
    lua_pushboolean(L, ok);
    return 1;
}

/* loop.on_progress(fn | nil): fn(id, text) runs on the loop for each
 * janitor.progress of a running worker. */
static int loop_on_progress(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    if (S.progress_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, S.progress_ref);
    S.progress_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, 1)) {
        lua_pushvalue(L, 1);
        S.progress_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

/* loop.progress(text) -> true when sent (false outside a worker). */
static int loop_progress(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, worker_progress(text, len) == 0);
    return 1;
}

/* ---- running ---- */

/* loop.run(): runs callbacks until loop.stop() (or nothing is left). */
static int loop_run(lua_State *L)
{
    lua_State *outer = loop_set_lua(L);
    uv_run(loop_uv(), UV_RUN_DEFAULT);
    loop_set_lua(outer);
    return 0;
}

/* loop.stop(): makes loop.run return after the current callback. */
static int loop_stop(lua_State *L)
{
    uv_stop(loop_uv());
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    lua_State *L = arg;
    if (uv_is_closing(h))
        return;
    watcher *w = h->data;
    if (w != NULL && (h->type == UV_TIMER || h->type == UV_SIGNAL))
        watcher_stop(L, w);
    else
        uv_close(h, NULL);
}

/* loop.close(): kills the workers still running, closes every handle, waits
 * for HTTP exchanges in flight, frees the transports. */
static int loop_close(lua_State *L)
{
    if (!loop_uv_exists())
        return 0;
    loop_set_lua(L);
    if (S.zfd >= 0) {
        uv_poll_stop(&S.zpoll);
        zygote_close();
    }
    while (S.workers != NULL) {
        worker *w = S.workers;
        S.workers = w->next;
        luaL_unref(L, LUA_REGISTRYINDEX, w->done_ref);
        free(w->report);
        free(w);
    }
    if (S.handler_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, S.handler_ref);
    S.handler_ref = LUA_NOREF;
    if (S.progress_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, S.progress_ref);
    S.progress_ref = LUA_NOREF;
    janitor_metrics_stop();
    uv_walk(loop_uv(), close_any, L);
    uv_run(loop_uv(), UV_RUN_DEFAULT);
    uv_loop_close(loop_uv());
    loop_uv_closed();
    janitor_http_close();
    return 0;
}

/* loop.workers() -> number of live workers */
static int loop_workers(lua_State *L)
{
    lua_Integer n = 0;
    for (worker *w = S.workers; w != NULL; w = w->next)
        n++;
    lua_pushinteger(L, n);
    return 1;
}

/* loop.exit_now(code): _exit(code) without atexit handlers. Workers use it
 * for os.exit: exit() would run the parent's library destructors (libuv's
 * thread pool, which does not exist in the child). */
static int loop_exit_now(lua_State *L)
{
    int code = lua_isboolean(L, 1) ? !lua_toboolean(L, 1) : (int)luaL_optinteger(L, 1, 0);
    fflush(NULL);
    _exit(code);
    return 0;
}

static const luaL_Reg loop_funcs[] = {
    {"exit_now", loop_exit_now},
    {"timer", loop_timer},
    {"signal", loop_signal},
    {"zygote", loop_zygote},
    {"spawn", loop_spawn},
    {"kill", loop_kill},
    {"on_progress", loop_on_progress},
    {"progress", loop_progress},
    {"run", loop_run},
    {"stop", loop_stop},
    {"close", loop_close},
    {"workers", loop_workers},
    {NULL, NULL}
};

static const luaL_Reg handle_methods[] = {
    {"stop", handle_stop},
    {NULL, NULL}
};

int luaopen_bosk_loop(lua_State *L)
{
    /* A closed stderr (`bosk janitor ... 2>&1 | head`) must not kill the
     * process that holds the leases: writes fail with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    if (luaL_newmetatable(L, HANDLE_META)) {
        luaL_newlib(L, handle_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, loop_funcs);
    janitor_http_register(L);
    janitor_metrics_register(L);
    return 1;
}
