/* control.c: the janitor's control socket (--control PATH), added to
 * module bosk.loop as loop.control_listen(path, handler).
 *
 * A Unix stream socket, mode 0600, served on the janitor's libuv loop. A
 * client sends one command per line; handler(line) runs on the loop and
 * returns the answer, which is sent back as one line. Nothing here waits
 * for a client: reads and writes are libuv's, and a client that stops
 * reading (its answers pile up past CONTROL_MAX_QUEUED), sends a line
 * longer than CONTROL_MAX_LINE, or stays idle for CONTROL_IDLE_MS is
 * disconnected. At most CONTROL_MAX_CLIENTS are connected at once; one
 * more is told so and disconnected.
 *
 * The path is refused when something else is there: a file that is not a
 * socket, or a socket some process still listens on (a second janitor).
 * A socket nobody listens on is what a killed janitor leaves behind: it is
 * removed and replaced. At exit the socket is removed if it is still ours. */
#define CONTROL_MAX_LINE 4096
#define CONTROL_MAX_QUEUED ((size_t)1 << 20)
#define CONTROL_IDLE_MS 60000
#define CONTROL_MAX_CLIENTS 16
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>
#include <lauxlib.h>
#include "core/core.h"
#include "janitor/control.h"
#include "janitor/loop.h"

typedef struct client {
    uv_pipe_t pipe;
    uv_timer_t idle;
    char line[CONTROL_MAX_LINE];
    size_t len;
    int closing;
    int open_handles;       /* freed when libuv has closed both */
    struct client *next;
} client;

static struct {
    uv_pipe_t *server;      /* NULL when not listening */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;              /* the socket file we made, to remove only it */
    ino_t ino;
    int handler_ref;
    client *clients;
    int n_clients;
} C = { .handler_ref = LUA_NOREF };

/* ---- the path ---- */

/* Whether a process accepts connections on the socket at path. */
static int socket_in_use(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    close(fd);
    return rc == 0;
}

/* Clears the way for a new socket at path: 0, or -1 with a message. */
static int prepare_path(const char *path, char *err, size_t err_len)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_len, "--control %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, err_len, "--control %s: the path exists and is not a socket; refusing to replace it", path);
        return -1;
    }
    if (socket_in_use(path)) {
        snprintf(err, err_len, "--control %s: another process is listening on it (is a janitor already running?)", path);
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, err_len, "--control %s: cannot remove the stale socket: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- clients ---- */

static void client_free(uv_handle_t *h)
{
    client *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

static void client_close(client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    for (client **link = &C.clients; *link != NULL; link = &(*link)->next) {
        if (*link == c) {
            *link = c->next;
            break;
        }
    }
    C.n_clients--;
    uv_close((uv_handle_t *)&c->idle, client_free);
    uv_close((uv_handle_t *)&c->pipe, client_free);
}

typedef struct {
    uv_write_t req;
    char *data;
} write_job;

static void write_done(uv_write_t *req, int status)
{
    write_job *job = (write_job *)req;
    client *c = req->handle->data;
    free(job->data);
    free(job);
    if (status != 0 && status != UV_ECANCELED)
        client_close(c);
}

/* Queues text + "\n" to the client; a client that lets answers pile up
 * unread is disconnected instead. */
static void client_send(client *c, const char *text, size_t len)
{
    if (c->closing)
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > CONTROL_MAX_QUEUED) {
        client_close(c);
        return;
    }
    write_job *job = malloc(sizeof *job);
    char *data = malloc(len + 1);
    if (job == NULL || data == NULL) {
        free(job);
        free(data);
        client_close(c);
        return;
    }
    memcpy(data, text, len);
    data[len] = '\n';
    job->data = data;
    uv_buf_t buf = uv_buf_init(data, (unsigned)(len + 1));
    if (uv_write(&job->req, (uv_stream_t *)&c->pipe, &buf, 1, write_done) != 0) {
        free(data);
        free(job);
        client_close(c);
    }
}

/* A JSON error answer; the message is ours, with no characters to escape. */
static void client_send_error(client *c, const char *message)
{
    char text[256];
    int n = snprintf(text, sizeof text, "{\"ok\":false,\"error\":\"%s\"}", message);
    client_send(c, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

/* Runs the Lua handler on one line and sends what it returns. */
static void client_dispatch(client *c, const char *line, size_t len)
{
    lua_State *L = loop_lua();
    if (L == NULL || C.handler_ref == LUA_NOREF) {
        client_send_error(c, "the janitor is not running");
        return;
    }
    int base = lua_gettop(L);
    lua_pushcfunction(L, core_traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, C.handler_ref);
    lua_pushlstring(L, line, len);
    if (lua_pcall(L, 1, 1, base + 1) != LUA_OK) {
        fprintf(stderr, "bosk janitor: error in a control command: %s\n", lua_tostring(L, -1));
        client_send_error(c, "internal error (see the janitor's log)");
    } else {
        size_t n;
        const char *answer = lua_tolstring(L, -1, &n);
        if (answer != NULL)
            client_send(c, answer, n);
        else
            client_send_error(c, "internal error: no answer");
    }
    lua_settop(L, base);
}

/* Feeds received bytes: each complete line is a command. */
static void client_feed(client *c, const char *data, size_t n)
{
    for (size_t i = 0; i < n && !c->closing; i++) {
        if (data[i] == '\n') {
            size_t len = c->len;
            if (len > 0 && c->line[len - 1] == '\r')
                len--;
            client_dispatch(c, c->line, len);
            c->len = 0;
        } else if (c->len == sizeof c->line) {
            client_send_error(c, "command longer than 4096 bytes");
            client_close(c);
        } else {
            c->line[c->len++] = data[i];
        }
    }
}

static void client_idle(uv_timer_t *t)
{
    client_close(t->data);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[CONTROL_MAX_LINE];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(chunk, sizeof chunk);   /* consumed before the next read */
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;
    if (n < 0) {
        client_close(c);
        return;
    }
    uv_timer_again(&c->idle);
    client_feed(c, buf->base, (size_t)n);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    int rc = uv_pipe_init(loop_uv(), &c->pipe, 0);
    if (rc != 0) {
        free(c);
        return;
    }
    c->pipe.data = c;
    c->idle.data = c;
    c->open_handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 || uv_timer_init(loop_uv(), &c->idle) != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->pipe, client_free);   /* the timer was never made */
        return;
    }
    c->open_handles = 2;
    c->next = C.clients;
    C.clients = c;
    C.n_clients++;
    if (C.n_clients > CONTROL_MAX_CLIENTS) {
        client_send_error(c, "too many control clients connected");
        client_close(c);
        return;
    }
    uv_timer_start(&c->idle, client_idle, CONTROL_IDLE_MS, CONTROL_IDLE_MS);
    if (uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read) != 0)
        client_close(c);
}

/* ---- listening ---- */

static void server_free(uv_handle_t *h)
{
    free(h);
}

/* Binds path with mode 0600 from the start (no moment when others could
 * connect): 0, or a libuv error. */
static int bind_private(uv_pipe_t *pipe, const char *path)
{
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(pipe, path);
    umask(old);
    return rc;
}

static int listen_fail(lua_State *L, const char *message)
{
    lua_pushnil(L);
    lua_pushstring(L, message);
    return 2;
}

/* loop.control_listen(path, handler) -> true | nil, message
 * handler(line) -> answer (a string, sent back as one line). */
static int control_listen(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    char err[512];
    if (C.server != NULL)
        return luaL_error(L, "control_listen: already listening");
    if (strlen(path) >= sizeof C.path) {
        snprintf(err, sizeof err, "--control %s: path too long for a Unix socket (%zu bytes, at most %zu)",
                 path, strlen(path), sizeof C.path - 1);
        return listen_fail(L, err);
    }
    if (prepare_path(path, err, sizeof err) != 0)
        return listen_fail(L, err);
    uv_pipe_t *server = malloc(sizeof *server);
    if (server == NULL || uv_pipe_init(loop_uv(), server, 0) != 0) {
        free(server);
        return listen_fail(L, "--control: out of memory");
    }
    int rc = bind_private(server, path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)server, 8, on_connection);
    struct stat st;
    if (rc == 0 && stat(path, &st) != 0)
        rc = uv_translate_sys_error(errno);
    if (rc != 0) {
        uv_close((uv_handle_t *)server, server_free);
        snprintf(err, sizeof err, "--control %s: %s", path, uv_strerror(rc));
        return listen_fail(L, err);
    }
    C.server = server;
    snprintf(C.path, sizeof C.path, "%s", path);
    C.dev = st.st_dev;
    C.ino = st.st_ino;
    lua_pushvalue(L, 2);
    C.handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

void janitor_control_close(lua_State *L)
{
    while (C.clients != NULL)
        client_close(C.clients);
    if (C.server != NULL) {
        struct stat st;
        if (stat(C.path, &st) == 0 && st.st_dev == C.dev && st.st_ino == C.ino)
            unlink(C.path);
        uv_close((uv_handle_t *)C.server, server_free);
        C.server = NULL;
    }
    if (C.handler_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, C.handler_ref);
    C.handler_ref = LUA_NOREF;
}

/* loop.control_close(): stops listening and removes the socket. */
static int control_close(lua_State *L)
{
    janitor_control_close(L);
    return 0;
}

void janitor_control_register(lua_State *L)
{
    lua_pushcfunction(L, control_listen);
    lua_setfield(L, -2, "control_listen");
    lua_pushcfunction(L, control_close);
    lua_setfield(L, -2, "control_close");
}
