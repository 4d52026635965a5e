/* server.c: module "bosk.server": runs `bosk server` (the HTTP daemon in
 * handlers.c over the ranch in ranch.c) until SIGTERM or SIGINT.
 *
 * The calling thread blocks SIGTERM, SIGINT and SIGHUP before
 * libmicrohttpd starts its threads (so they inherit the mask) and then
 * waits for them with sigtimedwait: no signal handler ever runs, and the
 * Lua state is untouched until run() returns. The same loop polls the
 * config file's mtime every second, runs the syncs that writes asked for,
 * closes connections past their transfer deadline (conn_guard.h), and
 * every minute garbage-collects request ids and re-syncs.
 *
 * Connection limits (docs/limits-http.md): the soft file-descriptor limit
 * is raised to the hard one at start (as Go's runtime does), the daemon
 * takes at most that many connections less a reserve for the store and
 * config reloads, and at most SERVER_CONNS_PER_IP from one client
 * address. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include "server/handlers.h"
#include "server/server_log.h"
#include "core/modules.h"

/* Defaults of the connection limits; the environment variables
 * BOSK_SERVER_CONNS_PER_IP and BOSK_SERVER_REQUEST_DEADLINE (seconds)
 * override them. */
#define SERVER_CONNS_PER_IP 128
#define SERVER_REQUEST_DEADLINE 30.0
#define SERVER_MAX_CONNS 10000
#define SERVER_FD_RESERVE 64       /* descriptors kept for the store, reloads, logs */
#define METRICS_MAX_CONNS 64       /* the --metrics-port daemon */

typedef struct {
    const char *config_path, *storage, *listen;
    const char *metrics_listen;     /* NULL: /metrics only on listen */
    int64_t request_ttl_ns;
    double sync_period;        /* seconds between re-syncs and request-id GCs */
    unsigned conns_per_ip;
    double request_deadline;   /* seconds to receive a request or send a reply */
    unsigned max_conns;        /* set from the descriptor limit at start */
} server_opts;

typedef struct {
    struct timespec mtime;
    off_t size;
    ino_t ino;
    int ok;
} file_stamp;

static file_stamp stamp_of(const char *path)
{
    struct stat st;
    file_stamp s = { { 0, 0 }, 0, 0, 0 };
    if (stat(path, &st) == 0)
        s = (file_stamp){ st.st_mtim, st.st_size, st.st_ino, 1 };
    return s;
}

static int stamp_changed(const file_stamp *a, const file_stamp *b)
{
    return a->ok != b->ok || a->size != b->size || a->ino != b->ino ||
           a->mtime.tv_sec != b->mtime.tv_sec || a->mtime.tv_nsec != b->mtime.tv_nsec;
}

/* HOST:PORT (or [V6]:PORT) into a socket address. */
static int resolve_listen(const char *listen, struct sockaddr_storage *sa, char *err, size_t n)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon[1] == '\0') {
        snprintf(err, n, "invalid --listen %s: want HOST:PORT", listen);
        return -1;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        snprintf(err, n, "invalid --listen %s: port must be 0..65535", listen);
        return -1;
    }
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host) {
        snprintf(err, n, "invalid --listen %s: host too long", listen);
        return -1;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, n, "invalid --listen %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static unsigned pool_size(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

static struct MHD_Daemon *start_http(handlers_ctx *h, const struct sockaddr_storage *sa,
                                     unsigned max_conns, unsigned conns_per_ip)
{
    /* suspend/resume: answers wait for their commit (group_commit.h) */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    if (sa->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return dl_mhd.start_daemon(flags, 0, NULL, NULL, handlers_access, h,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)sa,
        MHD_OPTION_THREAD_POOL_SIZE, pool_size(),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
        MHD_OPTION_CONNECTION_LIMIT, max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, conns_per_ip,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_URI_LOG_CALLBACK, handlers_uri, h,
        MHD_OPTION_NOTIFY_CONNECTION, conn_guard_notify, h->guard,
        MHD_OPTION_NOTIFY_COMPLETED, handlers_completed, h,
        MHD_OPTION_END);
}

/* Raises the soft descriptor limit to the hard one (a failure only
 * leaves the soft limit as it was); returns the soft limit now in force. */
static rlim_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = { rl.rlim_max, rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = rl.rlim_max;
        else
            server_log(SLOG_WARN, "cannot raise the file descriptor limit from %llu to %llu: %s",
                       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                       strerror(errno));
    }
    return rl.rlim_cur;
}

/* The connection cap that leaves SERVER_FD_RESERVE descriptors free. */
static unsigned conns_for_fd_limit(rlim_t fds)
{
    if (fds == RLIM_INFINITY || fds >= SERVER_MAX_CONNS + SERVER_FD_RESERVE)
        return SERVER_MAX_CONNS;
    return fds > SERVER_FD_RESERVE + 16 ? (unsigned)(fds - SERVER_FD_RESERVE) : 16;
}

/* Reads a positive number from the environment variable name into *out
 * (unchanged when unset); -1 with err when set to something else. */
static int env_number(const char *name, double max, double *out, char *err, size_t n)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    double d = strtod(v, &end);
    if (*end != '\0' || !(d > 0) || d > max) {
        snprintf(err, n, "invalid %s=%s: want a number above 0 and at most %g", name, v, max);
        return -1;
    }
    *out = d;
    return 0;
}

static int read_limits(server_opts *o, char *err, size_t n)
{
    double per_ip = SERVER_CONNS_PER_IP, deadline = SERVER_REQUEST_DEADLINE;
    if (env_number("BOSK_SERVER_CONNS_PER_IP", SERVER_MAX_CONNS, &per_ip, err, n) != 0 ||
        env_number("BOSK_SERVER_REQUEST_DEADLINE", 86400, &deadline, err, n) != 0)
        return -1;
    o->conns_per_ip = per_ip < 1 ? 1 : (unsigned)per_ip;
    o->request_deadline = deadline;
    o->max_conns = conns_for_fd_limit(raise_fd_limit());
    return 0;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reload(ranch *r, const char *path)
{
    char err[4096];
    config *c = config_load_file(path, err, sizeof err);
    if (c == NULL) {
        server_log(SLOG_ERROR, "reload failed, keeping the previous config: %s", err);
        return;
    }
    if (ranch_sync(r, c, err, sizeof err) != 0)
        server_log(SLOG_ERROR, "reloaded %s; sync error (retried later): %s", path, err);
    else
        server_log(SLOG_INFO, "reloaded %s: %zu resources", path, ranch_count(r));
}

/* Syncs; an error is logged when it first appears, then at most once a
 * minute while it persists (a release-triggered sync can run 10 times a
 * second). */
static void resync(ranch *r, const char *why)
{
    static char last[4096];
    static double last_logged;
    char err[4096];
    if (ranch_sync(r, NULL, err, sizeof err) == 0) {
        last[0] = '\0';
        return;
    }
    double now = mono_now();
    if (strcmp(err, last) != 0 || now - last_logged >= 60) {
        server_log(SLOG_ERROR, "sync (%s) error: %s", why, err);
        snprintf(last, sizeof last, "%s", err);
        last_logged = now;
    }
}

/* The daemon's life after start: signals, reloads, periodic work. */
static void serve(ranch *r, const server_opts *o, const sigset_t *set, conn_guard *guard)
{
    file_stamp stamp = stamp_of(o->config_path);
    double next_poll = mono_now() + 1, next_minute = mono_now() + o->sync_period;
    struct timespec tick = { 0, 100 * 1000 * 1000 };
    size_t cut = 0;            /* connections closed by the deadline, not yet logged */
    double next_cut_log = 0;
    for (;;) {
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            server_log(SLOG_INFO, "received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        double now = mono_now();
        if (sig == SIGHUP) {
            server_log(SLOG_INFO, "received SIGHUP, reloading %s", o->config_path);
            reload(r, o->config_path);
            stamp = stamp_of(o->config_path);
        }
        if (now >= next_poll) {
            next_poll = now + 1;
            cut += conn_guard_sweep(guard);
            if (cut > 0 && now >= next_cut_log) {      /* at most a line a minute */
                server_log(SLOG_WARN, "closed %zu connection(s) that took more than %gs to send "
                           "a request or receive a reply", cut, o->request_deadline);
                cut = 0;
                next_cut_log = now + 60;
            }
            file_stamp cur = stamp_of(o->config_path);
            if (stamp_changed(&cur, &stamp)) {
                stamp = cur;
                server_log(SLOG_INFO, "%s changed, reloading", o->config_path);
                reload(r, o->config_path);
            }
        }
        if (now >= next_minute) {
            next_minute = now + o->sync_period;
            ranch_gc(r);
            resync(r, "periodic");
        }
        if (ranch_take_sync_wanted(r))
            resync(r, "after a release");
    }
}

/* Stops accepting, lets in-flight requests finish (at most 5 s), stops. */
static void stop_http(struct MHD_Daemon *d, handlers_ctx *h)
{
    MHD_socket fd = dl_mhd.quiesce_daemon(d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    double deadline = mono_now() + 5;
    while (__atomic_load_n(&h->inflight, __ATOMIC_SEQ_CST) > 0 && mono_now() < deadline) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    int left = __atomic_load_n(&h->inflight, __ATOMIC_SEQ_CST);
    if (left > 0) {
        server_log(SLOG_WARN, "%d request(s) still unfinished after 5 s; closing their connections",
                   left);
        /* libmicrohttpd aborts when stopped with a suspended connection:
         * answer the ones still waiting for a commit, and let its threads
         * take them back (at most a second) */
        group_commit_release_all(h->gc);
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        for (int i = 0; i < 100 && __atomic_load_n(&h->inflight, __ATOMIC_SEQ_CST) > 0; i++)
            nanosleep(&ts, NULL);
    }
    dl_mhd.stop_daemon(d);
}

/* Loads config and store, syncs, serves. 0 on a clean stop; else the exit
 * status (2: bad config or flags, 1: runtime failure) with err. */
static int server_main(const server_opts *o, char *err, size_t n)
{
    struct sockaddr_storage sa;
    if (resolve_listen(o->listen, &sa, err, n) != 0)
        return 2;
    config *cfg = config_load_file(o->config_path, err, n);
    if (cfg == NULL)
        return 2;
    if (dl_mhd_load(err, n) != 0) {
        config_free(cfg);
        return 1;
    }
    store *st = store_open(o->storage, err, n);
    if (st == NULL) {
        config_free(cfg);
        return strncmp(o->storage, "sqlite:", 7) == 0 ? 1 : 2;
    }
    ranch *r = ranch_new(st, o->request_ttl_ns, err, n);
    if (r == NULL) {
        st->ops->close(st);
        config_free(cfg);
        return 1;
    }
    prom *p = prom_new();
    if (p == NULL || ranch_load(r, err, n) != 0) {
        config_free(cfg); /* ranch_sync takes it; not reached */
        cfg = NULL;
    }
    if (cfg == NULL || ranch_sync(r, cfg, err, n) != 0) {
        if (p == NULL)
            snprintf(err, n, "out of memory");
        prom_free(p);
        ranch_free(r);
        return 1;
    }
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    conn_guard *guard = conn_guard_new(o->request_deadline);
    group_commit *gc = NULL;
    int gc_rc = group_commit_start(r, st, &gc, err, n);
    handlers_ctx h = { r, p, 0, 0, guard, gc }, hm = { r, p, 0, 1, guard, gc };
    struct MHD_Daemon *d = guard && gc_rc == 0 ? start_http(&h, &sa, o->max_conns, o->conns_per_ip)
                                               : NULL;
    struct MHD_Daemon *dm = NULL;
    int rc = 0;
    if (gc_rc != 0) {
        rc = 1;
    } else if (guard == NULL) {
        snprintf(err, n, "out of memory");
        rc = 1;
    } else if (d == NULL) {
        snprintf(err, n, "cannot listen on %s: %s", o->listen, strerror(errno ? errno : EADDRINUSE));
        rc = 1;
    } else if (o->metrics_listen && (resolve_listen(o->metrics_listen, &sa, err, n) != 0 ||
                                     (dm = start_http(&hm, &sa, METRICS_MAX_CONNS,
                                                      o->conns_per_ip)) == NULL)) {
        if (dm == NULL && !*err)
            snprintf(err, n, "cannot listen on %s: %s", o->metrics_listen,
                     strerror(errno ? errno : EADDRINUSE));
        stop_http(d, &h);
        rc = 1;
    } else {
        const union MHD_DaemonInfo *info = dl_mhd.get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        server_log(SLOG_INFO, "listening on %s (port %u; storage %s, config %s, %zu resources)",
                   o->listen, info ? (unsigned)info->port : 0u, o->storage, o->config_path,
                   ranch_count(r));
        server_log(SLOG_INFO, "limits: %u connections, %u per client address, %gs to send a "
                   "request or receive a reply", o->max_conns, o->conns_per_ip, o->request_deadline);
        serve(r, o, &set, guard);
        if (dm)
            stop_http(dm, &hm);
        stop_http(d, &h);
        server_log(SLOG_INFO, "stopped");
    }
    group_commit_stop(gc);     /* after the daemons: their answers waited for it */
    struct timespec zero = { 0, 0 };
    while (sigtimedwait(&set, NULL, &zero) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    conn_guard_free(guard);
    ranch_free(r);
    prom_free(p);
    return rc;
}

/* server.run{config=, storage=, listen=, metrics_listen=, request_ttl=,
 *            sync_period=, log_level=, log_format=}
 * (durations in seconds; sync_period defaults to a minute; log_level
 * "panic" ... "trace", default "info"; log_format "text" or "json").
 * Blocks until SIGTERM/SIGINT. Returns 0, or nil, message, exit status. */
static int server_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    server_opts o;
    lua_getfield(L, 1, "config");
    o.config_path = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "storage");
    o.storage = luaL_optstring(L, -1, "memory");
    lua_getfield(L, 1, "listen");
    o.listen = luaL_optstring(L, -1, "127.0.0.1:8080");
    lua_getfield(L, 1, "request_ttl");
    o.request_ttl_ns = (int64_t)(luaL_optnumber(L, -1, 30) * 1e9);
    lua_getfield(L, 1, "metrics_listen");
    o.metrics_listen = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "sync_period");
    o.sync_period = luaL_optnumber(L, -1, 60);
    lua_getfield(L, 1, "log_level");
    const char *log_level = luaL_optstring(L, -1, "info");
    lua_getfield(L, 1, "log_format");
    const char *log_format = luaL_optstring(L, -1, "text");
    char err[4096] = "";
    int rc = server_log_configure(log_level, log_format, err, sizeof err) != 0 ||
             read_limits(&o, err, sizeof err) != 0 ? 2 : server_main(&o, err, sizeof err);
    if (rc == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, rc);
    return 3;
}

int luaopen_bosk_server(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "run", server_run },
        { NULL, NULL },
    };
    luaL_newlib(L, funcs);
    return 1;
}
