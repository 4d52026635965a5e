/* exec.c: module "bosk.exec", the C side of janitor.exec.
 *
 * exec.run(argv, opts) starts argv[1] with the arguments argv[2..] passed
 * literally (execvp, never a shell), captures stdout and stderr together
 * up to a cap, enforces an optional timeout and returns
 * ok, output, exit_code[, reason]. Relies on posix_spawnp and poll only:
 * it runs inside janitor workers, where no event loop exists.
 *
 * exec.plan(true) is `bosk janitor --plan`'s switch: from then on, in
 * this process and the workers it forks, only a run whose opts has
 * readonly = true starts its program; any other prints
 * "would run: PROG ARG..." on stdout and returns true, "", 0. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include "janitor/exec.h"
#include "core/modules.h"

#define EXEC_DEFAULT_CAP (1024 * 1024)
#define EXEC_MAX_ARGS 4096

extern char **environ;
static int in_worker;
static int plan_mode;   /* exec.plan: only readonly runs start a program */

/* exec_scope (docs/janitor-safety.md): while set, every program started
 * must carry this text (the resource's name) in one of its arguments;
 * refused records that one was refused, for a cleaning that caught the
 * error. Set only in a worker, which cleans one resource and exits. */
static struct {
    char *name;
    int refused;
} scope;

void exec_enter_worker(void)
{
    in_worker = 1;
}

typedef struct {
    const char **argv;  /* NULL-terminated; strings live on the Lua stack */
    const char **envp;  /* NULL: inherit environ */
    double timeout;     /* seconds; 0 = none */
    size_t cap;         /* bytes of output kept */
} exec_spec;

typedef struct {
    luaL_Buffer *out;
    size_t kept;
    int truncated;
    int status;         /* waitpid status */
    int timed_out;
    int start_errno;    /* errno of a failed execvp, 0 if it started */
} exec_result;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts the program with posix_spawn (vfork-like: no copy of the caller's
 * page tables, which matters when fifty workers each start one). Returns
 * the pid, or -1 with errno set (a missing program included). */
static pid_t spawn_program(const exec_spec *spec, int out_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    if (posix_spawnattr_init(&attr) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                  (in_worker ? 0 : POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, flags);
    if (rc == 0)
        rc = posix_spawnp(&pid, spec->argv[0], &fa, &attr, (char *const *)spec->argv,
                          spec->envp ? (char *const *)spec->envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

static void kill_child(pid_t pid)
{
    if (in_worker)
        kill(pid, SIGKILL);
    else
        killpg(pid, SIGKILL);
}

/* Reads what is available on fd; returns 0 at EOF or error, 1 otherwise. */
static int read_some(int fd, exec_result *r, size_t cap)
{
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return 0;
    size_t room = cap > r->kept ? cap - r->kept : 0;
    size_t keep = (size_t)n < room ? (size_t)n : room;
    if (keep < (size_t)n)
        r->truncated = 1;
    luaL_addlstring(r->out, buf, keep);
    r->kept += keep;
    return 1;
}

/* Milliseconds to wait in poll: until the deadline (at most 50 at a time),
 * or, with no deadline, as long as it takes when a pidfd will wake us. */
static int wait_ms(double deadline, int have_pidfd)
{
    if (deadline <= 0)
        return have_pidfd ? -1 : 50;
    double left = (deadline - now_seconds()) * 1000;
    return left <= 0 ? 0 : left > 50 ? 50 : (int)left + 1;
}

/* Drains the pipe until the program exits (then only what is already
 * buffered: a grandchild holding the pipe must not keep us waiting) or the
 * deadline passes (then the program is killed). A pidfd wakes the poll the
 * moment the program exits; without one (old kernels) we look every 1 ms
 * once the pipe is closed. */
static void collect(pid_t pid, int fd, const exec_spec *spec, exec_result *r)
{
    double deadline = spec->timeout > 0 ? now_seconds() + spec->timeout : 0;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int open_pipe = 1;
    for (;;) {
        struct pollfd p[2] = { { open_pipe ? fd : -1, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
        int timeout = (open_pipe || pidfd >= 0) ? wait_ms(deadline, pidfd >= 0) : 1;
        if (poll(p, 2, timeout) > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            open_pipe = read_some(fd, r, spec->cap);
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (deadline > 0 && now_seconds() > deadline && !r->timed_out) {
            r->timed_out = 1;
            kill_child(pid);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    int flags = fcntl(fd, F_GETFL);
    if (open_pipe && flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) {
        struct pollfd p = { fd, POLLIN, 0 };
        while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN) && read_some(fd, r, spec->cap))
            ;
    }
    if (!in_worker)
        killpg(pid, SIGKILL);   /* nothing the program started outlives it */
}

/* Starts the program and collects its output; returns -1 when the pipe
 * cannot be made, with errno set. A program that cannot start is reported
 * in r->start_errno. */
static int run_program(const exec_spec *spec, exec_result *r)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = spawn_program(spec, out[1]);
    close(out[1]);
    if (pid < 0) {
        r->start_errno = errno;
        close(out[0]);
        return 0;
    }
    collect(pid, out[0], spec, r);
    close(out[0]);
    return 0;
}

/* Builds the environment: the current one with the keys of the table at
 * env_idx replaced (a false value removes the variable). The array and the
 * "K=V" strings are anchored in a table left on the stack. */
static const char **build_env(lua_State *L, int env_idx)
{
    size_t n = 0;
    while (environ[n])
        n++;
    size_t extra = 0;
    lua_pushnil(L);
    while (lua_next(L, env_idx)) {
        int value_ok = lua_type(L, -1) == LUA_TSTRING ||
                       (lua_isboolean(L, -1) && !lua_toboolean(L, -1));
        if (lua_type(L, -2) != LUA_TSTRING || !value_ok)
            luaL_error(L, "janitor.exec: env keys and values must be strings (false unsets)");
        extra++;
        lua_pop(L, 1);
    }
    lua_newtable(L);                                   /* anchor */
    int anchor = lua_gettop(L);
    const char **envp = lua_newuserdatauv(L, sizeof(char *) * (n + extra + 1), 0);
    lua_rawseti(L, anchor, 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        lua_pushlstring(L, environ[i], klen);
        int overridden = lua_rawget(L, env_idx) != LUA_TNIL;
        lua_pop(L, 1);
        if (!overridden)
            envp[k++] = environ[i];
    }
    lua_pushnil(L);
    while (lua_next(L, env_idx)) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            envp[k++] = lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
            lua_rawseti(L, anchor, (lua_Integer)k + 1);
        }
        lua_pop(L, 1);
    }
    envp[k] = NULL;
    return envp;
}

/* Reads argv strings from the table at idx into a userdata array; the
 * strings (numbers converted) are anchored in the table at anchor. */
static const char **build_argv(lua_State *L, int idx, int anchor)
{
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 1, idx, "janitor.exec: needs at least the program name");
    luaL_argcheck(L, n <= EXEC_MAX_ARGS, idx, "janitor.exec: too many arguments");
    const char **argv = lua_newuserdatauv(L, sizeof(char *) * ((size_t)n + 1), 0);
    lua_rawseti(L, anchor, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_error(L, "janitor.exec: argument %d is a %s, want a string",
                       (int)i, luaL_typename(L, -1));
        argv[i - 1] = lua_tostring(L, -1);
        lua_rawseti(L, anchor, i);
    }
    argv[n] = NULL;
    return argv;
}

/* Raises when an exec_scope is set and no argument after the program
 * contains it: the exec is refused before anything starts. */
static void check_scope(lua_State *L, const char **argv)
{
    if (scope.name == NULL)
        return;
    for (size_t i = 1; argv[i] != NULL; i++)
        if (strstr(argv[i], scope.name) != NULL)
            return;
    scope.refused = 1;
    luaL_error(L, "janitor.exec: refused by exec_scope: no argument of '%s' contains "
               "the resource name '%s'", argv[0], scope.name);
}

/* Pushes the results: ok, output, exit_code[, reason]. */
static int push_result(lua_State *L, const exec_spec *spec, exec_result *r)
{
    if (r->truncated)
        luaL_addstring(r->out, "\n[output truncated]\n");
    luaL_pushresult(r->out);
    int code = 0;
    const char *reason = NULL;
    if (r->start_errno) {
        lua_pop(L, 1);
        lua_pushfstring(L, "janitor.exec: cannot run %s: %s", spec->argv[0],
                        strerror(r->start_errno));
        code = 127;
        reason = "not started";
    } else if (WIFEXITED(r->status)) {
        code = WEXITSTATUS(r->status);
        if (code != 0)
            reason = "exited with status";
    } else if (WIFSIGNALED(r->status)) {
        code = 128 + WTERMSIG(r->status);
        reason = "killed by signal";
    }
    if (r->timed_out)
        reason = "timed out";
    lua_pushboolean(L, reason == NULL);
    lua_insert(L, -2);
    lua_pushinteger(L, code);
    if (reason == NULL)
        return 3;
    if (r->timed_out)
        lua_pushfstring(L, "%s timed out after %f s", spec->argv[0], spec->timeout);
    else if (WIFSIGNALED(r->status) && !r->start_errno)
        lua_pushfstring(L, "%s killed by signal %d", spec->argv[0], WTERMSIG(r->status));
    else
        lua_pushfstring(L, "%s %s %d", spec->argv[0], reason, code);
    return 4;
}

/* Whether an argument must be quoted to read back as one shell word. */
static int needs_quotes(const char *arg)
{
    if (*arg == '\0')
        return 1;
    for (const char *c = arg; *c; c++)
        if (strchr(" \t\n'\"\\$`!*?[]{}()<>|&;#~", *c) != NULL)
            return 1;
    return 0;
}

/* Plan mode: "would run: PROG ARG..." on stdout in one write (workers
 * print concurrently; one write of a short line does not interleave), an
 * argument with blanks or shell characters in single quotes so the line
 * reads back as the exact argument vector; then the success results. */
static int would_run(lua_State *L, const char **argv)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "would run:");
    for (size_t i = 0; argv[i] != NULL; i++) {
        luaL_addchar(&b, ' ');
        if (!needs_quotes(argv[i])) {
            luaL_addstring(&b, argv[i]);
            continue;
        }
        luaL_addchar(&b, '\'');
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '\'')
                luaL_addstring(&b, "'\\''");
            else
                luaL_addchar(&b, *c);
        }
        luaL_addchar(&b, '\'');
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    fflush(stdout);                /* keep order with what Lua printed */
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;                 /* stdout gone: the plan goes on */
        line += n;
        len -= (size_t)n;
    }
    lua_pushboolean(L, 1);
    lua_pushliteral(L, "");
    lua_pushinteger(L, 0);
    return 3;
}

/* exec.run(argv, opts) -> ok, output, exit_code[, reason]
 * argv: list of strings (program, arguments); opts: optional table with
 * timeout (seconds), env (table name -> string|false), max_output (bytes),
 * readonly (runs in plan mode too).
 * ok is true only when the program exited with status 0. Raises on bad
 * arguments; a program that cannot start gives false, message, 127. */
static int exec_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    exec_spec spec = { NULL, NULL, 0, EXEC_DEFAULT_CAP };
    lua_settop(L, 2);
    lua_newtable(L);                                   /* 3: anchor */
    spec.argv = build_argv(L, 1, 3);
    check_scope(L, spec.argv);
    if (plan_mode) {
        int readonly = 0;
        if (lua_istable(L, 2)) {
            lua_getfield(L, 2, "readonly");
            readonly = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        if (!readonly)
            return would_run(L, spec.argv);
    }
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "timeout");
        spec.timeout = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
        lua_getfield(L, 2, "max_output");
        if (!lua_isnil(L, -1))
            spec.cap = (size_t)luaL_checkinteger(L, -1);
        lua_getfield(L, 2, "env");
        if (lua_istable(L, -1))
            spec.envp = build_env(L, lua_gettop(L));
        else if (!lua_isnil(L, -1))
            return luaL_error(L, "janitor.exec: env must be a table");
    }
    luaL_Buffer out;
    exec_result r = { &out, 0, 0, 0, 0, 0 };
    luaL_buffinit(L, &out);
    if (run_program(&spec, &r) != 0) {
        int e = errno;
        luaL_pushresult(&out);
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "janitor.exec: cannot start %s: %s", spec.argv[0], strerror(e));
        lua_pushinteger(L, 127);
        return 3;
    }
    return push_result(L, &spec, &r);
}

/* exec.scope(name | nil) -> nothing: sets or clears the exec_scope.
 * exec.scope_refused() -> true once an exec was refused under it. */
static int exec_scope(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    char *copy = NULL;
    if (name != NULL && *name != '\0' && (copy = strdup(name)) == NULL)
        return luaL_error(L, "exec.scope: out of memory");
    free(scope.name);
    scope.name = copy;
    scope.refused = 0;
    return 0;
}

static int exec_scope_refused(lua_State *L)
{
    lua_pushboolean(L, scope.refused);
    return 1;
}

/* exec.plan(on) -> nothing: turns plan mode on or off (see the top). */
static int exec_plan(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    plan_mode = lua_toboolean(L, 1);
    return 0;
}

/* Whether path names a regular file this process may execute. */
static int runnable_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    if (!S_ISREG(st.st_mode)) {
        errno = EACCES;
        return 0;
    }
    return access(path, X_OK) == 0;
}

/* exec.runnable(prog) -> true | nil, reason
 * Whether run{prog, ...} could start prog: a path with a slash must be an
 * executable regular file; a bare name must be one in a $PATH folder, as
 * execvp looks for it. Lets the janitor refuse a wrong --janitor-path at
 * start rather than fail every cleaning. */
static int exec_runnable(lua_State *L)
{
    const char *prog = luaL_checkstring(L, 1);
    int ok = 0;
    if (prog[0] == '\0') {
        errno = ENOENT;
    } else if (strchr(prog, '/') != NULL) {
        ok = runnable_file(prog);
    } else {
        const char *path = getenv("PATH");
        luaL_Buffer b;
        errno = ENOENT;
        for (const char *dir = path ? path : "/usr/local/bin:/bin:/usr/bin"; !ok; dir++) {
            const char *end = strchr(dir, ':');
            size_t n = end ? (size_t)(end - dir) : strlen(dir);
            luaL_buffinit(L, &b);
            luaL_addlstring(&b, n ? dir : ".", n ? n : 1);
            luaL_addchar(&b, '/');
            luaL_addstring(&b, prog);
            luaL_pushresult(&b);
            ok = runnable_file(lua_tostring(L, -1));
            lua_pop(L, 1);
            if (end == NULL)
                break;
            dir = end;
        }
        if (!ok)
            errno = ENOENT;
    }
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
}

static const luaL_Reg exec_funcs[] = {
    {"run", exec_run},
    {"scope", exec_scope},
    {"scope_refused", exec_scope_refused},
    {"plan", exec_plan},
    {"runnable", exec_runnable},
    {NULL, NULL}
};

int luaopen_bosk_exec(lua_State *L)
{
    luaL_newlib(L, exec_funcs);
    return 1;
}
