/* unixsock.c: module bosk.unixsock, the client side of a janitor's control
 * socket: one line out, one line back, over a Unix stream socket.
 *
 *   unixsock.exchange(path, line[, timeout]) -> answer | nil, message
 *
 * Blocking, bounded by timeout seconds (default 10) for each send and
 * receive, so a janitor that stopped answering cannot hang a script. The
 * answer is the first line received, without its newline. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <lauxlib.h>
#include "core/modules.h"

#define ANSWER_MAX ((size_t)16 << 20)

static int fail(lua_State *L, int fd, const char *path, const char *what)
{
    int e = errno;
    if (fd >= 0)
        close(fd);
    lua_pushnil(L);
    if (e == EAGAIN || e == EWOULDBLOCK)
        lua_pushfstring(L, "control socket %s: %s: no answer in time", path, what);
    else
        lua_pushfstring(L, "control socket %s: %s: %s", path, what, strerror(e));
    return 2;
}

static int set_timeouts(int fd, double seconds)
{
    struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6) };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads up to the first newline into b; 1 when one came, 0 at EOF before
 * it, -1 with errno. */
static int recv_line(int fd, luaL_Buffer *b, size_t *total)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        char *nl = memchr(chunk, '\n', (size_t)n);
        size_t take = nl ? (size_t)(nl - chunk) : (size_t)n;
        if (*total + take > ANSWER_MAX) {
            errno = EMSGSIZE;
            return -1;
        }
        luaL_addlstring(b, chunk, take);
        *total += take;
        if (nl)
            return 1;
    }
}

static int unixsock_exchange(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t line_len;
    const char *line = luaL_checklstring(L, 2, &line_len);
    double timeout = luaL_optnumber(L, 3, 10);
    if (memchr(line, '\n', line_len) != NULL)
        return luaL_error(L, "unixsock.exchange: the line must not contain a newline");
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path) {
        lua_pushnil(L);
        lua_pushfstring(L, "control socket %s: path too long for a Unix socket", path);
        return 2;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(L, -1, path, "socket");
    if (timeout > 0 && set_timeouts(fd, timeout) != 0)
        return fail(L, fd, path, "setsockopt");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        return fail(L, fd, path, "cannot connect");
    if (send_all(fd, line, line_len) != 0 || send_all(fd, "\n", 1) != 0)
        return fail(L, fd, path, "cannot send");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t total = 0;
    int rc = recv_line(fd, &b, &total);
    if (rc < 0)
        return fail(L, fd, path, "cannot read the answer");
    close(fd);
    if (rc == 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "control socket %s: closed before answering", path);
        return 2;
    }
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"exchange", unixsock_exchange},
    {NULL, NULL}
};

int luaopen_bosk_unixsock(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
