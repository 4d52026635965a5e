/* core.c: the small OS services every other Lua file needs: sleeping,
 * clocks, random identifiers, terminal detection. Module "bosk.core". */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include "core/core.h"
#include "core/modules.h"
#ifndef BOSK_VERSION   /* the rockspec defines it; make generates the header */
#include "bosk_version.h"
#endif

/* Set by a signal handler (readline.c: Ctrl-C in the REPL, SIGINT/SIGTERM
 * trapped by a one-liner) so that a running sleep returns early. */
volatile sig_atomic_t core_interrupt_pending;

/* A lua_pcall message handler: the error (or its __tostring) plus a
 * traceback, as lua.c's msghandler. Shared by main, the supervisor and
 * its workers so every error C reports reads the same. */
int core_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* core.sleep(seconds): blocks; resumes after signals that Lua ignores,
 * returns early once core_interrupt_pending is set. */
static int core_sleep(lua_State *L)
{
    double seconds = luaL_checknumber(L, 1);
    if (!(seconds > 0))
        return 0;
    if (seconds > 1e9)
        seconds = 1e9;
    struct timespec left = { (time_t)seconds,
                             (long)((seconds - floor(seconds)) * 1e9) };
    while (!core_interrupt_pending && nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    return 0;
}

/* core.monotime() -> seconds (float) from an arbitrary start; never jumps. */
static int core_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

/* core.realtime() -> seconds since the epoch, with fraction. */
static int core_realtime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

static int fill_random(lua_State *L, void *buf, size_t len)
{
    if (getrandom(buf, len, 0) != (ssize_t)len)
        return luaL_error(L, "getrandom failed: %s", strerror(errno));
    return 0;
}

int core_uuid4_string(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
             b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

/* core.uuid4() -> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (lowercase). */
static int core_uuid4(lua_State *L)
{
    char out[37];
    if (core_uuid4_string(out) != 0)
        return luaL_error(L, "getrandom failed: %s", strerror(errno));
    lua_pushstring(L, out);
    return 1;
}

/* core.random_id() -> a random non-negative 63-bit integer. */
static int core_random_id(lua_State *L)
{
    uint64_t v;
    fill_random(L, &v, sizeof v);
    lua_pushinteger(L, (lua_Integer)(v >> 1));
    return 1;
}

/* core.isatty(fd) -> boolean */
static int core_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* core.getpid() -> integer */
static int core_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"sleep", core_sleep},
    {"monotime", core_monotime},
    {"realtime", core_realtime},
    {"uuid4", core_uuid4},
    {"random_id", core_random_id},
    {"isatty", core_isatty},
    {"getpid", core_getpid},
    {NULL, NULL}
};

int luaopen_bosk_core(lua_State *L)
{
    luaL_newlib(L, core_funcs);
    lua_pushliteral(L, BOSK_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
