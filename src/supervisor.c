/* supervisor.c: module "bosk.loop", the janitor's single-threaded libuv
 * event loop as seen from Lua.
 *
 *   loop.timer(after, every, fn) -> handle   (every = 0: fires once)
 *   loop.signal("TERM"|"INT"|"HUP", fn) -> handle
 *   loop.fork(fn, arg, on_done) -> pid       (a worker process)
 *   loop.kill(pid[, signal])                 (the worker's whole group)
 *   loop.http(request, cb)                   (off the loop thread)
 *   loop.run() / loop.stop() / loop.close()
 *   handle:stop()
 *
 * Every decision is made in lua/bosk/janitor.lua; this file only connects
 * Lua to the OS. Callbacks call Lua through lua_pcall with a traceback
 * handler and never raise. Workers are forked children that already hold
 * the policies: each runs one Lua function in its own process group and
 * writes its report to a pipe; SIGCHLD (a uv_signal) triggers a WNOHANG
 * check of each known worker. HTTP exchanges run on libuv's thread pool,
 * each on a transport taken from a small pool, so a slow server never
 * blocks a timer, a signal or the reaping of a worker. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <lauxlib.h>
#include "exec.h"
#include "janitor_metrics.h"
#include "modules.h"
#include "transport.h"

#define HANDLE_META "bosk.loop.handle"
#define REPORT_MAX 65536
#define HTTP_MAX_BODY ((size_t)16 << 20)

typedef struct worker {
    pid_t pid;
    int fd;                 /* read end of the report pipe */
    int done_ref;           /* Lua on_done callback */
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

typedef struct {
    uv_work_t work;
    transport_request req;
    transport_response resp;
    char *strings[6];       /* method, url, body, content type, user, password */
    int rc;
    int cb_ref;
    char err[256];
} http_job;

static struct {
    lua_State *L;           /* the thread that runs loop.run */
    uv_loop_t *loop;
    uv_signal_t sigchld;
    int started;
    worker *workers;
    pthread_mutex_t pool_lock;
    transport *pool[64];
    int pool_len;
} S = { .pool_lock = PTHREAD_MUTEX_INITIALIZER };

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Calls the function under the nargs arguments on top of S.L; an error is
 * printed, never raised (we are inside a libuv callback). */
static void call_lua(int nargs)
{
    lua_State *L = S.L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
        fprintf(stderr, "bosk janitor: error in a loop callback: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static uv_loop_t *get_loop(void)
{
    if (S.loop == NULL)
        S.loop = uv_default_loop();
    return S.loop;
}

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
    lua_State *L = S.L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn_ref);
    if (w->once)
        watcher_stop(L, w);      /* the function stays on the stack */
    call_lua(0);
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
    uv_timer_init(get_loop(), &w->h.timer);
    w->h.timer.data = w;
    uv_timer_start(&w->h.timer, on_timer, (uint64_t)(after * 1000 + 0.5),
                   (uint64_t)(every * 1000 + 0.5));
    ((handle_ud *)lua_touserdata(L, -1))->w = w;
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
    uv_signal_init(get_loop(), &w->h.signal);
    w->h.signal.data = w;
    int rc = uv_signal_start(&w->h.signal, on_signal, signum);
    if (rc != 0)
        return luaL_error(L, "loop.signal: %s", uv_strerror(rc));
    ((handle_ud *)lua_touserdata(L, -1))->w = w;
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

/* ---- workers ---- */

static void child_reset_signals(void)
{
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In a worker whose supervisor died (PR_SET_PDEATHSIG): take the whole
 * group down, programs started by the cleaning included. */
static void worker_orphaned(int signum)
{
    killpg(0, SIGKILL);
    _exit(128 + signum);
}

/* In the worker: runs fn(arg) from the stack (indexes 1 and 2), writes the
 * string it returns (or "F" and the error) to fd, and exits. */
static void child_main(lua_State *L, int fd)
{
    setpgid(0, 0);
    child_reset_signals();
    signal(SIGUSR2, worker_orphaned);
    prctl(PR_SET_PDEATHSIG, SIGUSR2);   /* a killed supervisor takes its workers along */
    if (getppid() == 1)
        worker_orphaned(SIGUSR2);
    exec_enter_worker();
    /* The collector would touch (and so copy) most of the parent's heap;
     * a worker is short-lived, so it just keeps what it allocates. */
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, traceback);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    size_t len = 0;
    const char *report;
    if (lua_pcall(L, 1, 1, -3) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
        report = lua_tolstring(L, -1, &len);
    } else {
        report = lua_pushfstring(L, "F%s", lua_isstring(L, -1) ? lua_tostring(L, -1)
                                              : "worker function returned no report");
        len = strlen(report);
    }
    if (len > REPORT_MAX - 1)
        len = REPORT_MAX - 1;
    while (len > 0) {
        ssize_t n = write(fd, report, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        report += n;
        len -= (size_t)n;
    }
    fflush(NULL);
    _exit(0);
}

/* loop.fork(fn, arg, on_done) -> pid
 * Runs fn(arg) in a forked worker, in its own process group. fn returns a
 * report string. on_done(report|nil, exit_code|nil, signal|nil) runs on the
 * loop once the worker has exited and its group has been killed. */
static int loop_fork(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return luaL_error(L, "loop.fork: pipe: %s", strerror(errno));
    worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        close(fds[0]);
        close(fds[1]);
        return luaL_error(L, "loop.fork: out of memory");
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_main(L, fds[1]);
    }
    int e = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        free(w);
        lua_pushnil(L);
        lua_pushfstring(L, "loop.fork: %s", strerror(e));
        return 2;
    }
    setpgid(pid, pid);   /* also done by the child: whichever runs first */
    w->pid = pid;
    w->fd = fds[0];
    lua_pushvalue(L, 3);
    w->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    w->next = S.workers;
    S.workers = w;
    lua_pushinteger(L, pid);
    return 1;
}

/* Reads the worker's report (the pipe is complete: the worker exited). */
static void push_report(lua_State *L, int fd)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    size_t total = 0;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || total > REPORT_MAX)
            break;
        luaL_addlstring(&b, buf, (size_t)n);
        total += (size_t)n;
    }
    luaL_pushresult(&b);
    if (total == 0) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* Has w exited? Then kill its group (still reserved by the zombie), reap
 * it and return 1 with its wait status. */
static int worker_finished(worker *w, int *status)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)w->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD ? (*status = 0, 1) : 0;
    if (info.si_pid != w->pid)
        return 0;
    killpg(w->pid, SIGKILL);
    while (waitpid(w->pid, status, 0) < 0 && errno == EINTR)
        ;
    return 1;
}

static void finish_worker(worker *w, int status)
{
    lua_State *L = S.L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->done_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, w->done_ref);
    push_report(L, w->fd);
    close(w->fd);
    if (WIFEXITED(status))
        lua_pushinteger(L, WEXITSTATUS(status));
    else
        lua_pushnil(L);
    if (WIFSIGNALED(status))
        lua_pushinteger(L, WTERMSIG(status));
    else
        lua_pushnil(L);
    free(w);
    call_lua(3);
}

static void on_sigchld(uv_signal_t *s, int signum)
{
    worker *done = NULL, **p = &S.workers;
    int statuses[256], n = 0;
    while (*p != NULL && n < 256) {
        worker *w = *p;
        int status = 0;
        if (worker_finished(w, &status)) {
            *p = w->next;
            w->next = done;
            done = w;
            statuses[n++] = status;
        } else {
            p = &w->next;
        }
    }
    /* done is in reverse order of statuses */
    while (done != NULL) {
        worker *w = done;
        done = w->next;
        finish_worker(w, statuses[--n]);
    }
}

/* loop.kill(pid[, signal]): signals the process group of a live worker
 * (default SIGKILL). Returns true if pid is a worker. */
static int loop_kill(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int sig = (int)luaL_optinteger(L, 2, SIGKILL);
    for (worker *w = S.workers; w != NULL; w = w->next) {
        if (w->pid == pid) {
            killpg(pid, sig);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* ---- HTTP off the loop thread ---- */

static transport *pool_take(char *err, size_t err_len)
{
    transport *t = NULL;
    pthread_mutex_lock(&S.pool_lock);
    if (S.pool_len > 0)
        t = S.pool[--S.pool_len];
    pthread_mutex_unlock(&S.pool_lock);
    return t ? t : transport_new(err, err_len);
}

static void pool_give(transport *t)
{
    pthread_mutex_lock(&S.pool_lock);
    if (S.pool_len < (int)(sizeof S.pool / sizeof S.pool[0])) {
        S.pool[S.pool_len++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&S.pool_lock);
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
    lua_State *L = S.L;
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
    call_lua(4);
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
    int rc = uv_queue_work(get_loop(), &job->work, http_work, http_done);
    if (rc != 0) {
        http_job_free(job);
        return luaL_error(L, "loop.http: %s", uv_strerror(rc));
    }
    lua_pushvalue(L, 2);
    job->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* ---- running ---- */

static void start_sigchld(void)
{
    if (S.started)
        return;
    S.started = 1;
    uv_signal_init(get_loop(), &S.sigchld);
    uv_signal_start(&S.sigchld, on_sigchld, SIGCHLD);
}

/* loop.run(): runs callbacks until loop.stop() (or nothing is left). */
static int loop_run(lua_State *L)
{
    lua_State *outer = S.L;
    S.L = L;
    start_sigchld();
    uv_run(get_loop(), UV_RUN_DEFAULT);
    S.L = outer;
    return 0;
}

/* loop.stop(): makes loop.run return after the current callback. */
static int loop_stop(lua_State *L)
{
    uv_stop(get_loop());
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    lua_State *L = arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&S.sigchld) {
        uv_close(h, NULL);
        return;
    }
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
    if (S.loop == NULL)
        return 0;
    S.L = L;
    for (worker *w = S.workers; w != NULL; w = w->next)
        killpg(w->pid, SIGKILL);
    while (S.workers != NULL) {
        worker *w = S.workers;
        S.workers = w->next;
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close(w->fd);
        luaL_unref(L, LUA_REGISTRYINDEX, w->done_ref);
        free(w);
    }
    janitor_metrics_stop();
    uv_walk(S.loop, close_any, L);
    uv_run(S.loop, UV_RUN_DEFAULT);
    uv_loop_close(S.loop);
    S.loop = NULL;
    S.started = 0;
    while (S.pool_len > 0)
        transport_free(S.pool[--S.pool_len]);
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
    {"fork", loop_fork},
    {"kill", loop_kill},
    {"http", loop_http},
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
    /* More threads than libuv's default 4, so a few slow exchanges (a
     * dead server) leave room for the others. Read on first use. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);
    if (luaL_newmetatable(L, HANDLE_META)) {
        luaL_newlib(L, handle_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, loop_funcs);
    janitor_metrics_register(L);
    return 1;
}
