/* journal.c: module "bosk.journal", the janitor's lease journal in SQLite.
 *
 *   local j = journal.open(path)      -- or nil, message
 *   j:add{name=, type=, owner=, via=, on_failure=, since=}
 *   j:remove(name)
 *   j:list() -> { {name=, type=, owner=, via=, on_failure=, since=}, ... }
 *   j:close()                         -- also __gc and __close
 *
 * One row per lease the janitor holds: written as soon as an acquire
 * succeeds, deleted once the release is acknowledged. Rows left behind by a
 * crashed run are the leases the next run releases at start. WAL mode
 * with synchronous=NORMAL: a committed row survives a process crash.
 *
 * One janitor per file: journal.open takes an exclusive flock on the
 * database file and keeps it until close (or until the process dies, when
 * the kernel drops it). A second janitor on the same file would take the
 * first one's live leases for a crashed run's and release them; it fails
 * at open instead. The lock is an flock, not SQLite's locking_mode: it
 * fails at once instead of after the busy timeout, and it is independent
 * of SQLite's own fcntl locks. Forked children (the worker factory and its
 * workers) close their copy of the descriptor, so a killed janitor's lock
 * goes with it, not with the last of its children. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <lauxlib.h>
#include <sqlite3.h>
#include "core/modules.h"

#define JOURNAL_META "bosk.journal"

enum { ST_ADD, ST_REMOVE, ST_LIST, ST_COUNT };

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int lock_fd;            /* holds the flock; -1 when closed */
} journal;

/* The descriptor a forked child must not keep (one journal per process). */
static int lock_fd_to_drop = -1;

static void drop_lock_in_child(void)
{
    if (lock_fd_to_drop >= 0)
        close(lock_fd_to_drop);
    lock_fd_to_drop = -1;
}

static void register_child_drop(void)
{
    pthread_atfork(NULL, NULL, drop_lock_in_child);
}

static const char *const statements[ST_COUNT] = {
    "INSERT OR REPLACE INTO leases(name, type, owner, via, on_failure, since) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "DELETE FROM leases WHERE name = ?1",
    "SELECT name, type, owner, via, on_failure, since FROM leases ORDER BY since, name",
};

static const char *const schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA busy_timeout=5000;"
    "CREATE TABLE IF NOT EXISTS leases("
    " name TEXT PRIMARY KEY, type TEXT NOT NULL, owner TEXT NOT NULL,"
    " via TEXT NOT NULL, on_failure TEXT NOT NULL, since REAL NOT NULL);";

static journal *check_open(lua_State *L)
{
    journal *j = luaL_checkudata(L, 1, JOURNAL_META);
    if (j->db == NULL)
        luaL_error(L, "attempt to use a closed journal");
    return j;
}

/* Finalizes everything; idempotent (pointers cleared before release). */
static void journal_release(journal *j)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(j->st[i]);
        j->st[i] = NULL;
    }
    sqlite3 *db = j->db;
    j->db = NULL;
    sqlite3_close(db);
    if (j->lock_fd >= 0) {
        if (lock_fd_to_drop == j->lock_fd)
            lock_fd_to_drop = -1;
        close(j->lock_fd);        /* after sqlite3_close: see lock_journal */
    }
    j->lock_fd = -1;
}

/* Opens path and takes its exclusive flock, without waiting. The
 * descriptor stays open until SQLite has closed the file: closing another
 * descriptor of a file drops the process's fcntl locks on it, SQLite's
 * included. Pushes nothing; returns the fd or -1 with a message in err. */
static int lock_journal(const char *path, char *err, size_t err_len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_len, "state file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(err, err_len, "state file %s is in use by another janitor "
                     "(one janitor per state file)", path);
        else
            snprintf(err, err_len, "state file %s: cannot lock: %s", path, strerror(e));
        return -1;
    }
    pthread_once(&once, register_child_drop);
    lock_fd_to_drop = fd;
    return fd;
}

/* journal.open(path) -> journal | nil, message */
static int journal_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    journal *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    j->lock_fd = -1;
    luaL_setmetatable(L, JOURNAL_META);
    char lock_err[512];
    j->lock_fd = lock_journal(path, lock_err, sizeof lock_err);
    if (j->lock_fd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, lock_err);
        return 2;
    }
    int rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    char *errmsg = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(j->db, schema, NULL, NULL, &errmsg);
    for (int i = 0; rc == SQLITE_OK && i < ST_COUNT; i++)
        rc = sqlite3_prepare_v2(j->db, statements[i], -1, &j->st[i], NULL);
    if (rc != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "state file %s: %s", path,
                        errmsg ? errmsg : (j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc)));
        sqlite3_free(errmsg);
        journal_release(j);
        return 2;
    }
    return 1;
}

/* Runs a prepared statement to completion; pushes true or nil, message. */
static int step_done(lua_State *L, journal *j, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "state file: %s", sqlite3_errmsg(j->db));
    return 2;
}

static void bind_field(lua_State *L, sqlite3_stmt *st, int col, const char *field)
{
    lua_getfield(L, 2, field);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (s == NULL)
        luaL_error(L, "journal:add: field '%s' must be a string", field);
    sqlite3_bind_text(st, col, s, (int)len, SQLITE_TRANSIENT);
    lua_pop(L, 1);
}

/* j:add{name=, type=, owner=, via=, on_failure=, since=} -> true | nil, message */
static int journal_add(lua_State *L)
{
    journal *j = check_open(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    sqlite3_stmt *st = j->st[ST_ADD];
    static const char *const fields[] = { "name", "type", "owner", "via", "on_failure" };
    for (int i = 0; i < 5; i++)
        bind_field(L, st, i + 1, fields[i]);
    lua_getfield(L, 2, "since");
    sqlite3_bind_double(st, 6, luaL_optnumber(L, -1, 0));
    lua_pop(L, 1);
    return step_done(L, j, st);
}

/* j:remove(name) -> true | nil, message */
static int journal_remove(lua_State *L)
{
    journal *j = check_open(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    sqlite3_stmt *st = j->st[ST_REMOVE];
    sqlite3_bind_text(st, 1, name, (int)len, SQLITE_TRANSIENT);
    return step_done(L, j, st);
}

/* j:list() -> array of entries | nil, message */
static int journal_list(lua_State *L)
{
    journal *j = check_open(L);
    static const char *const fields[] = { "name", "type", "owner", "via", "on_failure" };
    sqlite3_stmt *st = j->st[ST_LIST];
    lua_newtable(L);
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lua_createtable(L, 0, 6);
        for (int i = 0; i < 5; i++) {
            const char *s = (const char *)sqlite3_column_text(st, i);
            lua_pushstring(L, s ? s : "");
            lua_setfield(L, -2, fields[i]);
        }
        lua_pushnumber(L, sqlite3_column_double(st, 5));
        lua_setfield(L, -2, "since");
        lua_rawseti(L, -2, ++n);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        lua_pushnil(L);
        lua_pushfstring(L, "state file: %s", sqlite3_errmsg(j->db));
        return 2;
    }
    return 1;
}

/* j:close() / __gc / __close: idempotent. */
static int journal_close(lua_State *L)
{
    journal *j = luaL_checkudata(L, 1, JOURNAL_META);
    journal_release(j);
    return 0;
}

static const luaL_Reg journal_methods[] = {
    {"add", journal_add},
    {"remove", journal_remove},
    {"list", journal_list},
    {"close", journal_close},
    {NULL, NULL}
};

static const luaL_Reg journal_meta[] = {
    {"__gc", journal_close},
    {"__close", journal_close},
    {"__index", NULL},
    {NULL, NULL}
};

static const luaL_Reg journal_funcs[] = {
    {"open", journal_open},
    {NULL, NULL}
};

int luaopen_bosk_journal(lua_State *L)
{
    luaL_newmetatable(L, JOURNAL_META);
    luaL_setfuncs(L, journal_meta, 0);
    luaL_newlib(L, journal_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, journal_funcs);
    return 1;
}
