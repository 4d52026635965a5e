/* workers.c: the supervisor's side of the janitor's worker factories
 * ("zygotes", worker.c), as functions of module bosk.loop:
 *
 *   loop.zygote(handler) -> generation      (a factory holding the policies)
 *   loop.zygote_retire(generation)          (close it once its workers end)
 *   loop.spawn(key, payload, on_done[, generation]) -> id
 *   loop.kill(id)                           (the worker's whole group)
 *   loop.workers() -> number of live workers
 *   loop.on_progress(fn)                    (fn(id, text) for each PROGRESS)
 *   loop.progress(text) -> bool             (in a worker: report progress)
 *
 * A factory is forked from the supervisor, so its workers see the
 * policies the supervisor had loaded at that moment. A SIGHUP reload loads
 * the files again and forks a new factory, which becomes current; the
 * previous one keeps serving its generation (cleanings running, and the
 * leases taken before the reload that have not started their worker yet)
 * until Lua retires it and its last worker has ended. So a cleaning runs
 * under the policy version it was leased with, whatever reloads happen
 * meanwhile. Each factory's socket is watched with its own uv_poll. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <lauxlib.h>
#include "janitor/loop.h"
#include "janitor/worker.h"
#include "janitor/workers.h"

/* Factories alive at once: the current one and those of earlier reloads
 * still finishing cleanings. A reload beyond this fails (and is logged);
 * the previous policies then stay in force. */
#define ZYGOTES_MAX 64

typedef struct zygote {
    uint32_t gen;           /* generation, as loop.zygote returned it */
    int fd;                 /* socket to the process, -1 while it is down */
    pid_t pid;
    uv_poll_t *poll;        /* watches fd; its own allocation, freed when
                               libuv has closed it (which may be after z
                               restarted or was freed) */
    int handler_ref;        /* what its workers run */
    int workers;            /* workers asked of it and not finished */
    int retired;            /* Lua is done with it: close it when idle */
    struct zygote *next;
} zygote;

typedef struct worker {
    uint32_t id;
    pid_t pid;              /* 0 until the zygote says it started */
    zygote *z;              /* the factory asked for it */
    int done_ref;           /* Lua on_done callback */
    char *report;           /* what the worker sent, NULL if nothing */
    size_t report_len;
    struct worker *next;
} worker;

static struct {
    zygote *zygotes;        /* every factory not yet freed */
    zygote *current;        /* where spawns without a generation go */
    uint32_t next_gen;
    uint32_t next_id;
    worker *workers;
    int progress_ref;       /* Lua fn(id, text) for PROGRESS messages */
} S = { .progress_ref = LUA_NOREF };

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

static zygote *find_zygote(uint32_t gen)
{
    for (zygote *z = S.zygotes; z != NULL; z = z->next)
        if (z->gen == gen)
            return z;
    return NULL;
}

/* ---- one factory's process ---- */

static void poll_closed(uv_handle_t *h)
{
    free(h);
}

/* Stops watching the socket, closes it (the factory then kills its
 * workers and exits) and waits for the process. */
static void zygote_down(zygote *z)
{
    if (z->fd < 0)
        return;
    if (z->poll != NULL) {
        uv_poll_stop(z->poll);
        z->poll->data = NULL;
        uv_close((uv_handle_t *)z->poll, poll_closed);
        z->poll = NULL;
    }
    close(z->fd);
    z->fd = -1;
    while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void on_zygote(uv_poll_t *h, int status, int events);

/* Starts z's process if it is down (first use, or it died). 0 or -1. */
static int zygote_up(lua_State *L, zygote *z)
{
    if (z->fd >= 0)
        return 0;
    uv_poll_t *poll = malloc(sizeof *poll);
    if (poll == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int others[ZYGOTES_MAX];
    int n = 0;
    for (zygote *o = S.zygotes; o != NULL && n < ZYGOTES_MAX; o = o->next)
        if (o != z && o->fd >= 0)
            others[n++] = o->fd;
    z->fd = zygote_start(L, z->handler_ref, others, n, &z->pid);
    if (z->fd < 0) {
        free(poll);
        return -1;
    }
    int rc = uv_poll_init(loop_uv(), poll, z->fd);
    if (rc != 0) {
        free(poll);
    } else {
        z->poll = poll;
        poll->data = z;
        rc = uv_poll_start(poll, UV_READABLE | UV_DISCONNECT, on_zygote);
    }
    if (rc != 0) {
        zygote_down(z);
        errno = -rc;
        return -1;
    }
    return 0;
}

/* A retired factory with no worker left is closed and forgotten. */
static void zygote_maybe_free(lua_State *L, zygote *z)
{
    if (!z->retired || z->workers > 0)
        return;
    for (zygote **p = &S.zygotes; *p != NULL; p = &(*p)->next) {
        if (*p == z) {
            *p = z->next;
            break;
        }
    }
    if (S.current == z)
        S.current = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, z->handler_ref);
    zygote_down(z);
    free(z);
}

/* ---- workers ---- */

/* Calls on_done(report, exit_code, signal[, error]) and frees w (already
 * unlinked). status < 0: the worker never ran (message in why). */
static void finish_worker(worker *w, int status, const char *why)
{
    lua_State *L = loop_lua();
    zygote *z = w->z;
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
    /* Counted until now: the callback may retire z, which must not free it. */
    z->workers--;
    zygote_maybe_free(L, z);
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

/* The factory died: its workers died with it. It is started again at its
 * next spawn (from the same handler, so the same policies). */
static void zygote_lost(zygote *z)
{
    zygote_down(z);
    z->workers++;           /* keeps z alive while its workers are finished */
    for (worker **p = &S.workers; *p != NULL;) {
        worker *w = *p;
        if (w->z == z) {
            *p = w->next;
            finish_worker(w, -1, "the worker factory process died");
        } else {
            p = &w->next;
        }
    }
    z->workers--;
    zygote_maybe_free(loop_lua(), z);
}

static void on_zygote(uv_poll_t *h, int status, int events)
{
    zygote *z = h->data;
    if (z == NULL)
        return;
    /* Messages are handled one at a time: a callback may retire and free
     * this factory (zygote_maybe_free), after which z must not be read. */
    uint32_t gen = z->gen;
    for (;;) {
        z = find_zygote(gen);
        if (z == NULL || z->fd < 0)
            return;
        char room[WMSG_ROOM], *buf;
        ssize_t n = wmsg_recv(z->fd, room, sizeof room, &buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            fprintf(stderr, "bosk janitor: the worker factory process exited; restarting it\n");
            zygote_lost(z);
            return;
        }
        if ((size_t)n >= sizeof(wmsg_header)) {
            wmsg_header hdr;
            memcpy(&hdr, buf, sizeof hdr);
            on_message(&hdr, buf + sizeof hdr, (size_t)n - sizeof hdr);
        }
        wmsg_free(buf, room);
    }
}

/* ---- Lua ---- */

/* loop.zygote(handler) -> generation | nil, message
 * Forks a worker factory now; its workers will run handler(key, payload),
 * which returns the report string. On success it becomes the current
 * factory, and the previous one keeps running until loop.zygote_retire. */
static int loop_zygote(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int alive = 0;
    for (zygote *o = S.zygotes; o != NULL; o = o->next)
        alive++;
    if (alive >= ZYGOTES_MAX) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start the worker factory: %d factories of earlier reloads still "
                        "run cleanings", alive);
        return 2;
    }
    zygote *z = calloc(1, sizeof *z);
    if (z == NULL)
        return luaL_error(L, "loop.zygote: out of memory");
    z->fd = -1;
    lua_pushvalue(L, 1);
    z->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (zygote_up(L, z) != 0) {
        int e = errno;
        luaL_unref(L, LUA_REGISTRYINDEX, z->handler_ref);
        free(z);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start the worker factory: %s", strerror(e));
        return 2;
    }
    z->gen = ++S.next_gen;
    z->next = S.zygotes;
    S.zygotes = z;
    S.current = z;
    lua_pushinteger(L, z->gen);
    return 1;
}

/* loop.zygote_retire(generation): no new worker will be asked of that
 * factory; it is closed as soon as its running workers have ended. */
static int loop_zygote_retire(lua_State *L)
{
    zygote *z = find_zygote((uint32_t)luaL_checkinteger(L, 1));
    if (z != NULL && !z->retired) {
        z->retired = 1;
        if (S.current == z)
            S.current = NULL;
        zygote_maybe_free(L, z);
    }
    return 0;
}

/* loop.spawn(key, payload, on_done[, generation]) -> id | nil, message
 * A worker of that factory (default: the current one) runs handler(key,
 * payload) in its own process group. Once it has exited and its group has
 * been killed, on_done(report|nil, exit_code|nil, signal|nil, error|nil)
 * runs on the loop. */
static int loop_spawn(lua_State *L)
{
    size_t key_len, payload_len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *payload = luaL_checklstring(L, 2, &payload_len);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    /* Checked before anything is allocated: a raise must leak nothing. */
    if (S.current == NULL && S.zygotes == NULL)
        return luaL_error(L, "loop.spawn: no worker handler; call loop.zygote(handler) first");
    zygote *z = lua_isnoneornil(L, 4) ? S.current : find_zygote((uint32_t)luaL_checkinteger(L, 4));
    if (z == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "cannot start a worker: its worker factory is gone");
        return 2;
    }
    worker *w = calloc(1, sizeof *w);
    if (w == NULL)
        return luaL_error(L, "loop.spawn: out of memory");
    w->id = ++S.next_id;
    w->z = z;
    wmsg_header h = { WMSG_RUN, w->id, 0, (uint32_t)key_len };
    if (zygote_up(L, z) != 0 || wmsg_send(z->fd, &h, key, key_len, payload, payload_len) != 0) {
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
    z->workers++;
    lua_pushinteger(L, w->id);
    return 1;
}

/* loop.kill(id): kills a running worker's whole process group. */
static int loop_kill(lua_State *L)
{
    uint32_t id = (uint32_t)luaL_checkinteger(L, 1);
    wmsg_header h = { WMSG_KILL, id, 0, 0 };
    worker *w = find_worker(id, NULL);
    int ok = w != NULL && w->z->fd >= 0 && wmsg_send(w->z->fd, &h, NULL, 0, NULL, 0) == 0;
    lua_pushboolean(L, ok);
    return 1;
}

/* loop.worker_pid(id) -> the worker's pid, or nil before the factory
 * said it started (or after it ended). For `bosk control list`. */
static int loop_worker_pid(lua_State *L)
{
    worker *w = find_worker((uint32_t)luaL_checkinteger(L, 1), NULL);
    if (w == NULL || w->pid == 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, w->pid);
    return 1;
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

/* loop.on_progress(fn | nil): fn(id, text) runs on the loop for each
 * janitor.progress of a running worker, whatever its factory. */
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

void janitor_workers_close(lua_State *L)
{
    while (S.zygotes != NULL) {
        zygote *z = S.zygotes;
        S.zygotes = z->next;
        luaL_unref(L, LUA_REGISTRYINDEX, z->handler_ref);
        zygote_down(z);
        free(z);
    }
    S.current = NULL;
    while (S.workers != NULL) {
        worker *w = S.workers;
        S.workers = w->next;
        luaL_unref(L, LUA_REGISTRYINDEX, w->done_ref);
        free(w->report);
        free(w);
    }
    if (S.progress_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, S.progress_ref);
    S.progress_ref = LUA_NOREF;
}

static const luaL_Reg worker_funcs[] = {
    {"zygote", loop_zygote},
    {"zygote_retire", loop_zygote_retire},
    {"spawn", loop_spawn},
    {"kill", loop_kill},
    {"workers", loop_workers},
    {"worker_pid", loop_worker_pid},
    {"on_progress", loop_on_progress},
    {"progress", loop_progress},
    {NULL, NULL}
};

void janitor_workers_register(lua_State *L)
{
    luaL_setfuncs(L, worker_funcs, 0);
}
