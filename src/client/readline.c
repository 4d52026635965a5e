/* readline.c: module "bosk.readline", the terminal side of `bosk repl`
 * and the signal helpers the REPL and the one-liners need.
 *
 * - readline(prompt) edits one line with GNU readline's callback
 *   interface, so Ctrl-C (SIGINT) can cancel the line without leaving.
 * - history_add/history_list hold the session's history (repl.lua
 *   keeps the file); set_completer() wires Tab to a Lua function, always
 *   called under lua_pcall (no error escapes into readline).
 * - icall() runs a function where Ctrl-C raises "interrupted!" at the
 *   next safe point (lua.c's laction/lstop hook technique).
 * - trap_signals()/caught() turn SIGINT/SIGTERM into a flag for loops
 *   such as `bosk heartbeat`; trap_hup()/take_hup() do the same for
 *   SIGHUP, for daemons such as `bosk reaper` that must outlive it.
 * Both signal paths also set core_interrupt_pending (core.c), which cuts
 * a running bosk.core.sleep short.
 *
 * libreadline is dlopen'ed (dl_readline.c) by the first readline() or
 * history_add(), not when the module opens: the one-liners require this
 * module for its signal helpers only. When it cannot be loaded, that is
 * said once on stderr and readline() reads plain lines (plain_line.c),
 * with the same prompts, Ctrl-C and end-of-input behaviour. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <lauxlib.h>
#include "client/dl_readline.h"
#include "client/plain_line.h"
#include "core/modules.h"

#include "core/core.h"

static volatile sig_atomic_t line_interrupted;  /* Ctrl-C while editing */
static volatile sig_atomic_t trapped_signal;    /* set by trap_signals */
static volatile sig_atomic_t hup_pending;       /* set by trap_hup's handler */
static lua_State *hooked_L;                     /* state icall runs */
static int completer_key;                       /* registry key (address) */
static const dl_readline_api *rl;   /* NULL before the load, or without it */
static int load_tried;              /* the load was attempted */

static char **attempt_completion(const char *text, int start, int end);

/* Sets readline up as bosk's REPL wants it. */
static void configure(const dl_readline_api *api)
{
    *api->readline_name = "bosk";
    *api->catch_signals = 0;            /* our handlers, not readline's */
    *api->attempted_completion_function = attempt_completion;
    /* Lua's operators and brackets end a word; '.' and ':' do not, so
     * Tab sees "boskos.acq" and "client:rel" whole. */
    *api->basic_word_break_characters = " \t\n\"\\'><=;+-*/%^~#{}()[],&|";
    api->using_history();
}

/* The readline API, loaded and set up on the first call; NULL when it
 * cannot be loaded (said once, on stderr). */
static const dl_readline_api *line_editor(void)
{
    if (load_tried)
        return rl;
    load_tried = 1;
    char err[256];
    const dl_readline_api *api = dl_readline(err, sizeof err);
    if (api == NULL) {
        fprintf(stderr, "bosk: %s; reading plain lines (no line editing, "
                "history recall or Tab completion)\n", err);
        return NULL;
    }
    configure(api);
    rl = api;
    return rl;
}

/* ---- readline(prompt) ---------------------------------------------- */

static char *line_result;
static int line_done;

static void on_line(char *line)
{
    line_result = line;
    line_done = 1;
    rl->callback_handler_remove();
}

static void on_line_sigint(int sig)
{
    (void)sig;
    line_interrupted = 1;
}

/* Throws away the half-typed line and restores the terminal, as
 * Python's readline module does on KeyboardInterrupt. */
static void cancel_line(void)
{
    if (rl == NULL) {
        plain_line_cancel();
        return;
    }
    rl->free_line_state();
    rl->callback_sigcleanup();
    rl->cleanup_after_signal();
    rl->callback_handler_remove();
    FILE *out = *rl->outstream ? *rl->outstream : stdout;
    if (fputc('\n', out) == EOF || fflush(out) != 0)
        clearerr(out);                  /* a closed terminal: nothing to do */
}

/* Shows the prompt and starts a line (readline's or a plain one). */
static void begin_line(const char *prompt)
{
    if (rl != NULL)
        rl->callback_handler_install(prompt, on_line);
    else if (plain_line_begin(prompt, &line_result))
        line_done = 1;
}

/* Takes the keys fd has for the line being edited. */
static void feed_line(int fd)
{
    if (rl != NULL)
        rl->callback_read_char();
    else if (plain_line_feed(fd, &line_result))
        line_done = 1;
}

/* Ends the line at a read error, as at end of input. */
static void abandon_line(void)
{
    if (rl != NULL)
        rl->callback_handler_remove();
}

/* Reads keys until a line is complete, EOF, or Ctrl-C. SIGINT stays
 * blocked except inside ppoll, so a Ctrl-C is never missed.
 * Returns 1 for a line (or EOF: line_result NULL), 0 for Ctrl-C. */
static int edit_line(const char *prompt)
{
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    if (sigprocmask(SIG_BLOCK, &block, &old_mask) != 0)
        return 1;
    line_done = 0;
    line_result = NULL;
    line_interrupted = 0;
    begin_line(prompt);
    FILE *in = rl != NULL && *rl->instream != NULL ? *rl->instream : stdin;
    int fd = fileno(in);
    while (!line_done && !line_interrupted) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = ppoll(&p, 1, NULL, &old_mask);
        if (n < 0 && errno != EINTR) {
            abandon_line();
            break;                        /* treat as end of input */
        }
        if (n > 0 && !line_interrupted)
            feed_line(fd);
    }
    int interrupted = line_interrupted && !line_done;
    if (interrupted)
        cancel_line();
    if (sigprocmask(SIG_SETMASK, &old_mask, NULL) != 0)
        perror("bosk: sigprocmask");
    return !interrupted;
}

/* Puts back the SIGINT action saved before; a failure cannot be undone,
 * so it is only reported. */
static void restore_sigint(const struct sigaction *old)
{
    if (sigaction(SIGINT, old, NULL) != 0)
        perror("bosk: restoring the SIGINT handler");
}

/* readline.readline(prompt) -> line | nil at end of input | false when
 * Ctrl-C cancelled the line. */
static int rl_readline(lua_State *L)
{
    const char *prompt = luaL_checkstring(L, 1);
    line_editor();
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_line_sigint;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &old) != 0)
        return luaL_error(L, "sigaction: %s", strerror(errno));
    int got_line = edit_line(prompt);
    restore_sigint(&old);
    if (!got_line) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (line_result == NULL) {
        lua_pushnil(L);
        return 1;
    }
    char *text = line_result;
    line_result = NULL;
    lua_pushstring(L, text);     /* only a memory error can raise here */
    free(text);
    return 1;
}

/* ---- history ------------------------------------------------------- */

/* readline.history_add(line) -> nothing (nothing either without
 * readline: plain lines have no recall) */
static int rl_history_add(lua_State *L)
{
    const char *line = luaL_checkstring(L, 1);
    if (line_editor() != NULL)
        rl->add_history(line);
    return 0;
}

/* readline.create_private(path) -> true | nil, message: creates path
 * empty with mode 0600 unless it exists (history may hold secrets). */
static int rl_create_private(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0 || close(fd) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* readline.history_list() -> { entries... } (oldest first) */
static int rl_history_list(lua_State *L)
{
    HIST_ENTRY **list = rl != NULL ? rl->history_list() : NULL;
    lua_newtable(L);
    for (int i = 0; list != NULL && list[i] != NULL; i++) {
        lua_pushstring(L, list[i]->line);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- completion ---------------------------------------------------- */

struct matches {
    char **items;
    size_t count, next;
};
static struct matches found;

static void matches_free(struct matches *m)
{
    for (size_t i = m->next; i < m->count; i++)
        free(m->items[i]);
    free(m->items);
    memset(m, 0, sizeof *m);
}

/* Runs under lua_pcall: calls the completer with (word, line, start)
 * and copies the strings it returns into `found`. */
static int call_completer(lua_State *L)
{
    const char *word = lua_touserdata(L, 1);
    lua_Integer start = lua_tointeger(L, 2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &completer_key);
    if (!lua_isfunction(L, -1))
        return 0;
    lua_pushstring(L, word);
    lua_pushstring(L, *rl->line_buffer ? *rl->line_buffer : "");
    lua_pushinteger(L, start);
    lua_call(L, 3, 1);
    if (!lua_istable(L, -1))
        return 0;
    size_t n = lua_rawlen(L, -1);
    found.items = calloc(n + 1, sizeof *found.items);
    if (found.items == NULL)
        return 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        const char *s = lua_tostring(L, -1);
        if (s != NULL && (found.items[found.count] = strdup(s)) != NULL)
            found.count++;
        lua_pop(L, 1);
    }
    return 0;
}

/* readline's generator: hands out the collected matches one by one;
 * readline frees each string. */
static char *next_match(const char *text, int state)
{
    (void)text;
    (void)state;
    if (found.next >= found.count)
        return NULL;
    return found.items[found.next++];
}

static char **attempt_completion(const char *text, int start, int end)
{
    (void)end;
    *rl->attempted_completion_over = 1; /* never fall back to file names */
    *rl->completion_suppress_append = 1;  /* the completer adds "(" itself */
    lua_State *L = hooked_L;
    if (L == NULL || !lua_checkstack(L, 8))
        return NULL;
    matches_free(&found);
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_completer);
    lua_pushlightuserdata(L, (void *)text);
    lua_pushinteger(L, start);
    int status = lua_pcall(L, 2, 0, 0);
    lua_settop(L, top);
    if (status != LUA_OK || found.count == 0) {
        matches_free(&found);
        return NULL;
    }
    char **result = rl->completion_matches(text, next_match);
    matches_free(&found);
    return result;
}

/* readline.set_completer(fn | nil) -> nothing. fn(word, line, start)
 * returns a list of full replacements for `word`; errors are ignored. */
static int rl_set_completer(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &completer_key);
    hooked_L = L;
    return 0;
}

/* ---- interrupting a running call ----------------------------------- */

static void lstop(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/* The SIGINT handler while icall runs: only sets a hook and a flag
 * (lua.c's laction). A second Ctrl-C gets the default action. */
static void laction(int sig)
{
    int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(sig, SIG_DFL);
    core_interrupt_pending = 1;
    lua_sethook(hooked_L, lstop, flag, 1);
}

/* readline.icall(f, msgh, ...) -> true, results... | false, error:
 * xpcall(f, msgh, ...) during which Ctrl-C raises "interrupted!". */
static int rl_icall(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 2;
    lua_pushvalue(L, 1);              /* f, msgh, args..., f */
    lua_remove(L, 1);                 /* msgh, args..., f */
    lua_insert(L, 2);                 /* msgh, f, args... */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = laction;
    sigemptyset(&sa.sa_mask);
    hooked_L = L;
    core_interrupt_pending = 0;
    if (sigaction(SIGINT, &sa, &old) != 0)
        return luaL_error(L, "sigaction: %s", strerror(errno));
    int status = lua_pcall(L, nargs, LUA_MULTRET, 1);
    restore_sigint(&old);
    lua_sethook(L, NULL, 0, 0);
    core_interrupt_pending = 0;
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1);                /* ok replaces msgh */
    return lua_gettop(L);
}

/* ---- signals as a flag, for the one-liners ------------------------- */

static void on_trapped(int sig)
{
    trapped_signal = sig;
    core_interrupt_pending = 1;
}

/* readline.trap_signals() -> nothing: from now on SIGINT and SIGTERM
 * only record themselves (see caught) and cut sleeps short. */
static int rl_trap_signals(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_trapped;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return luaL_error(L, "sigaction: %s", strerror(errno));
    return 0;
}

/* readline.caught() -> "SIGINT" | "SIGTERM" | nil */
static int rl_caught(lua_State *L)
{
    int sig = trapped_signal;
    if (sig == SIGINT)
        lua_pushliteral(L, "SIGINT");
    else if (sig == SIGTERM)
        lua_pushliteral(L, "SIGTERM");
    else
        lua_pushnil(L);
    return 1;
}

static void on_hup(int sig)
{
    (void)sig;
    hup_pending = 1;
}

/* readline.trap_hup() -> nothing: from now on SIGHUP only records itself
 * (see take_hup) instead of ending the process. It does not cut sleeps
 * short: a loop that wants to react polls take_hup. */
static int rl_trap_hup(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGHUP, &sa, NULL) != 0)
        return luaL_error(L, "sigaction: %s", strerror(errno));
    return 0;
}

/* readline.take_hup() -> boolean: whether a SIGHUP came since the last
 * call (several count as one). */
static int rl_take_hup(lua_State *L)
{
    int got = hup_pending;
    hup_pending = 0;
    lua_pushboolean(L, got);
    return 1;
}

static const luaL_Reg readline_funcs[] = {
    {"readline", rl_readline},
    {"history_add", rl_history_add},
    {"create_private", rl_create_private},
    {"history_list", rl_history_list},
    {"set_completer", rl_set_completer},
    {"icall", rl_icall},
    {"trap_signals", rl_trap_signals},
    {"caught", rl_caught},
    {"trap_hup", rl_trap_hup},
    {"take_hup", rl_take_hup},
    {NULL, NULL}
};

int luaopen_bosk_readline(lua_State *L)
{
    hooked_L = L;
    luaL_newlib(L, readline_funcs);
    return 1;
}
