/* supervisor.c: module "bosk.loop", the janitor's single-threaded libuv
 * event loop as seen from Lua.
 *
 *   loop.timer(after, every, fn) -> handle   (every = 0: fires once)
 *   loop.signal("TERM"|"INT"|"HUP", fn) -> handle
 *   loop.zygote / zygote_retire / spawn / kill / workers   (workers.c)
 *   loop.on_progress / progress              (workers.c: janitor.progress)
 *   loop.http(request, cb)                   (janitor_http.c: off the loop thread)
 *   loop.run() / loop.stop() / loop.close()
 *   handle:stop()
 *
 * Every decision is made in lua/bosk/janitor.lua; this file only connects
 * Lua to the OS. Callbacks call Lua through lua_pcall with a traceback
 * handler and never raise. Workers are forked by a small zygote process
 * (worker.c, driven from workers.c) that already holds the policies: each
 * runs one Lua function in its own process group. HTTP exchanges run on libuv's thread pool
 * (janitor_http.c), so a slow server never blocks a timer, a signal or the
 * reaping of a worker. The loop and the Lua thread its callbacks use are
 * the shared context in loop.c. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <lauxlib.h>
#include "janitor/control.h"
#include "janitor/janitor_http.h"
#include "janitor/janitor_metrics.h"
#include "core/modules.h"
#include "core/core.h"
#include "janitor/loop.h"
#include "janitor/workers.h"

#define HANDLE_META "bosk.loop.handle"

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
    janitor_workers_close(L);
    janitor_metrics_stop();
    janitor_control_close(L);
    uv_walk(loop_uv(), close_any, L);
    uv_run(loop_uv(), UV_RUN_DEFAULT);
    uv_loop_close(loop_uv());
    loop_uv_closed();
    janitor_http_close();
    return 0;
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
    {"run", loop_run},
    {"stop", loop_stop},
    {"close", loop_close},
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
    /* One malloc arena for every thread: by default each HTTP thread of
     * libuv's pool gets its own, and each arena keeps its own free pages
     * resident (about 0.4 MB of the supervisor's RSS with 8 threads). The
     * threads mostly wait on the network, so they hardly contend for it. */
    mallopt(M_ARENA_MAX, 1);
    if (luaL_newmetatable(L, HANDLE_META)) {
        luaL_newlib(L, handle_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, loop_funcs);
    janitor_http_register(L);
    janitor_metrics_register(L);
    janitor_workers_register(L);
    janitor_control_register(L);
    return 1;
}
