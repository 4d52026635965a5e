/* janitor_metrics.c: serves the janitor's Prometheus text on
 * --metrics-listen HOST:PORT with libmicrohttpd (dlopen'ed, dl_mhd.h).
 *
 * The Lua supervisor renders the exposition text on the loop thread and
 * hands it over with loop.metrics_set(text); MHD's own thread answers every
 * GET with a copy taken under a mutex, so no Lua state is ever touched off
 * the loop thread.
 *
 * Connections are bounded: an idle one is closed after METRICS_IDLE_TIMEOUT
 * seconds, and at most METRICS_MAX_CONNECTIONS are open at once
 * (METRICS_MAX_PER_IP from one address); MHD closes the ones over the limit
 * as soon as it accepts them. Idle clients therefore cannot fill the
 * janitor's descriptor table, which it needs for its server connections,
 * its workers and its state file. A Prometheus server uses one connection
 * per target. */
#define METRICS_IDLE_TIMEOUT 10
#define METRICS_MAX_CONNECTIONS 32
#define METRICS_MAX_PER_IP 8
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "core/dl_mhd.h"
#include "core/prom_text.h"
#include "janitor/janitor_metrics.h"

static struct {
    pthread_mutex_t lock;
    char *text;
    size_t len;
    struct MHD_Daemon *daemon;
} M = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, NULL };

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version,
                              const char *upload, size_t *upload_size, void **state)
{
    pthread_mutex_lock(&M.lock);
    size_t len = M.len;
    char *copy = malloc(len + 1);
    if (copy != NULL && len > 0)
        memcpy(copy, M.text, len);
    pthread_mutex_unlock(&M.lock);
    if (copy == NULL)
        return MHD_NO;
    struct MHD_Response *r =
        dl_mhd.create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(copy);
        return MHD_NO;
    }
    dl_mhd.add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result rc = dl_mhd.queue_response(conn, MHD_HTTP_OK, r);
    dl_mhd.destroy_response(r);
    return rc;
}

/* Binds a throw-away socket to addr, as MHD will: 0, or -1 with errno
 * (EADDRINUSE, EACCES, EADDRNOTAVAIL), so the janitor can say why at start
 * (MHD only says that it failed). */
static int probe_bind(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rc == 0)
        rc = bind(fd, (const struct sockaddr *)addr, sizeof *addr);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* The integer field `name` (1 .. 100000) of the optional table at idx, or dflt. */
static unsigned limit_field(lua_State *L, int idx, const char *name, unsigned dflt)
{
    if (lua_isnoneornil(L, idx))
        return dflt;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, name);
    lua_Integer v = luaL_optinteger(L, -1, dflt);
    lua_pop(L, 1);
    if (v < 1 || v > 100000)
        luaL_error(L, "metrics_listen: %s must be between 1 and 100000", name);
    return (unsigned)v;
}

/* loop.metrics_listen(host, port[, limits]) -> true | nil, message
 * host: an IPv4 address; port: integer. Serves the text set last.
 * limits (tests): {idle_timeout = s, max_connections =, max_per_ip =}. */
static int metrics_listen(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    unsigned idle = limit_field(L, 3, "idle_timeout", METRICS_IDLE_TIMEOUT);
    unsigned max_conns = limit_field(L, 3, "max_connections", METRICS_MAX_CONNECTIONS);
    unsigned per_ip = limit_field(L, 3, "max_per_ip", METRICS_MAX_PER_IP);
    char err[256];
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        lua_pushnil(L);
        lua_pushfstring(L, "--metrics-listen: bad address %s:%d (want IPv4:PORT)", host, (int)port);
        return 2;
    }
    if (dl_mhd_load(err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "--metrics-listen: %s", err);
        return 2;
    }
    if (M.daemon != NULL)
        return luaL_error(L, "metrics_listen: already listening");
    if (probe_bind(&addr) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "--metrics-listen %s:%d: %s", host, (int)port, strerror(errno));
        return 2;
    }
    /* MHD_USE_AUTO: poll or epoll, so a descriptor above 1024 (a busy
     * janitor) is no problem as it would be for select. */
    M.daemon = dl_mhd.start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
                                   (uint16_t)port, NULL, NULL, answer, NULL,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                   MHD_OPTION_CONNECTION_TIMEOUT, idle,
                                   MHD_OPTION_CONNECTION_LIMIT, max_conns,
                                   MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
                                   MHD_OPTION_END);
    if (M.daemon == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "--metrics-listen %s:%d: cannot listen", host, (int)port);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* loop.metrics_set(text): the exposition text served from now on. */
static int metrics_set(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return luaL_error(L, "metrics_set: out of memory");
    memcpy(copy, text, len + 1);
    pthread_mutex_lock(&M.lock);
    char *old = M.text;
    M.text = copy;
    M.len = len;
    pthread_mutex_unlock(&M.lock);
    free(old);
    return 0;
}

/* loop.prom_label(value) -> the value as a quoted Prometheus label value
 * ("..." escaped, invalid UTF-8 replaced): the server's escaper, so that
 * the janitor's text follows the same rules (core/prom_text.h). */
static int prom_label(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    jbuf b;
    jbuf_init(&b);
    jbuf_addc(&b, '"');
    prom_label_value(&b, s, len, 0);
    jbuf_addc(&b, '"');
    if (b.oom) {
        jbuf_free(&b);
        return luaL_error(L, "prom_label: out of memory");
    }
    lua_pushlstring(L, b.data, b.len);
    jbuf_free(&b);
    return 1;
}

/* loop.prom_number(v) -> v as Prometheus' Go client writes it (0.1, 1e+06,
 * +Inf). */
static int prom_number(lua_State *L)
{
    char out[32];
    prom_format_float(out, sizeof out, (double)luaL_checknumber(L, 1));
    lua_pushstring(L, out);
    return 1;
}

void janitor_metrics_stop(void)
{
    if (M.daemon != NULL)
        dl_mhd.stop_daemon(M.daemon);
    M.daemon = NULL;
    pthread_mutex_lock(&M.lock);
    free(M.text);
    M.text = NULL;
    M.len = 0;
    pthread_mutex_unlock(&M.lock);
}

void janitor_metrics_register(lua_State *L)
{
    lua_pushcfunction(L, metrics_listen);
    lua_setfield(L, -2, "metrics_listen");
    lua_pushcfunction(L, metrics_set);
    lua_setfield(L, -2, "metrics_set");
    lua_pushcfunction(L, prom_label);
    lua_setfield(L, -2, "prom_label");
    lua_pushcfunction(L, prom_number);
    lua_setfield(L, -2, "prom_number");
}
