/* store_sqlite.c: the "sqlite:PATH" store. WAL journal with
 * synchronous=NORMAL: a flush reaches the OS before the ranch answers, so
 * every acknowledged change survives kill -9 of the server (a power loss
 * may drop the last transactions, never corrupt the file). Only the
 * ranch's lock ever touches the connection, and the file is locked for
 * this process alone.
 *
 * Group commit (docs/storage.md): one SQLite transaction stays open and
 * collects the ranch's transactions, each a savepoint: begin opens it (and
 * the outer transaction when none is open), commit releases it (cheap:
 * nothing is written to the file), rollback undoes that one alone. flush
 * commits the outer transaction, writing the WAL once for all of them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "server/store.h"
#include "server/server_log.h"

typedef struct {
    store base;
    char *path;
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *rollback, *put, *del, *put_drlc, *del_drlc;
    sqlite3_stmt *savepoint, *release, *rollback_to;
    uint64_t in_outer;         /* commits inside the open outer transaction */
} sqlite_store;

/* Exclusive locking: a second server on the same file fails at start
 * instead of leasing the same resources twice. */
static const char schema[] =
    "PRAGMA locking_mode=EXCLUSIVE;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA temp_store=MEMORY;"      /* savepoint journals, never a temp file */
    "CREATE TABLE IF NOT EXISTS resources("
    " name TEXT PRIMARY KEY, type TEXT NOT NULL, state TEXT NOT NULL,"
    " owner TEXT NOT NULL, lastupdate INTEGER NOT NULL, expiration INTEGER,"
    " userdata TEXT NOT NULL, seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS lifecycles(type TEXT PRIMARY KEY, spec TEXT NOT NULL);";

/* Why SQLite could not open or write path, in words an operator can act
 * on: its own messages ("unable to open database file", "disk I/O error",
 * "attempt to write a readonly database") say neither which file nor that
 * the folder is missing or not writable. SQLite creates its journal files
 * next to the database, so the folder must be writable too. */
static void explain(const char *path, sqlite3 *db, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    const char *sqlite_says = db ? sqlite3_errmsg(db) : "out of memory";
    int sys = db ? sqlite3_system_errno(db) : 0;
    struct stat st;
    if (dir == NULL)
        snprintf(out, n, "%s", sqlite_says);
    else if (stat(dir, &st) != 0)
        snprintf(out, n, "folder %s %s (sqlite: %s)", dir,
                 errno == ENOENT ? "does not exist" : strerror(errno), sqlite_says);
    else if (!S_ISDIR(st.st_mode))
        snprintf(out, n, "%s is not a folder (sqlite: %s)", dir, sqlite_says);
    else if (access(dir, W_OK | X_OK) != 0)
        snprintf(out, n, "cannot write in folder %s: %s; SQLite keeps its journal next to "
                 "the database (sqlite: %s)", dir, strerror(errno), sqlite_says);
    else if (access(path, R_OK | W_OK) != 0 && errno != ENOENT)
        snprintf(out, n, "%s: %s (sqlite: %s)", path, strerror(errno), sqlite_says);
    else if (sys != 0)
        snprintf(out, n, "%s (%s)", sqlite_says, strerror(sys));
    else
        snprintf(out, n, "%s", sqlite_says);
    free(dir);
}

static int fail(sqlite_store *s, const char *what, char *err, size_t n)
{
    int code = sqlite3_errcode(s->db) & 0xff;
    if (code == SQLITE_CANTOPEN || code == SQLITE_IOERR || code == SQLITE_READONLY ||
        code == SQLITE_PERM) {
        char why[1024];
        explain(s->path, s->db, why, sizeof why);
        snprintf(err, n, "sqlite %s %s: %s", what, s->path, why);
    } else {
        snprintf(err, n, "sqlite %s %s: %s", what, s->path, sqlite3_errmsg(s->db));
    }
    return -1;
}

static int run(sqlite_store *s, sqlite3_stmt *st, const char *what, char *err, size_t n)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return fail(s, what, err, n);
    return 0;
}

static int sq_begin(store *b, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    if (sqlite3_get_autocommit(s->db) && run(s, s->begin, "begin", err, n) != 0)
        return -1;
    return run(s, s->savepoint, "begin", err, n);
}

/* The transaction joins the open outer one: visible, durable at the next
 * flush. */
static int sq_commit(store *b, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    if (run(s, s->release, "commit", err, n) != 0)
        return -1;
    s->in_outer++;
    __atomic_add_fetch(&b->committed, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void step_once(sqlite3_stmt *st)
{
    sqlite3_step(st);
    sqlite3_reset(st);
}

/* Undoes the current transaction alone; the ones committed before it stay
 * in the outer transaction. */
static void sq_rollback(store *b)
{
    sqlite_store *s = (sqlite_store *)b;
    if (sqlite3_get_autocommit(s->db))
        return;
    if (sqlite3_step(s->rollback_to) == SQLITE_DONE) {
        sqlite3_reset(s->rollback_to);
        step_once(s->release);
    } else {
        /* the savepoint is gone (SQLite rolled the whole transaction
         * back after an I/O error): flush reports it */
        sqlite3_reset(s->rollback_to);
    }
}

/* Commits the outer transaction. On failure it is rolled back, and with it
 * every transaction committed since the last flush. */
static int sq_flush(store *b, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    uint64_t upto = __atomic_load_n(&b->committed, __ATOMIC_SEQ_CST);
    if (sqlite3_get_autocommit(s->db)) {
        if (s->in_outer > 0) {         /* an I/O error rolled it back */
            s->in_outer = 0;
            snprintf(err, n, "sqlite commit %s: the transaction was rolled back by an earlier "
                     "error", s->path);
            return -1;
        }
        __atomic_store_n(&b->durable, upto, __ATOMIC_SEQ_CST);
        return 0;
    }
    int rc = run(s, s->commit, "commit", err, n);
    if (rc != 0 && !sqlite3_get_autocommit(s->db))
        step_once(s->rollback);
    s->in_outer = 0;
    if (rc == 0)
        __atomic_store_n(&b->durable, upto, __ATOMIC_SEQ_CST);
    return rc;
}

static int sq_put(store *b, const store_rec *r, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sqlite3_stmt *st = s->put;
    if (sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 2, r->type, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 3, r->state, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 4, r->owner, -1, SQLITE_STATIC) ||
        sqlite3_bind_int64(st, 5, r->lastupdate) ||
        (r->has_exp ? sqlite3_bind_int64(st, 6, r->expiration) : sqlite3_bind_null(st, 6)) ||
        sqlite3_bind_text(st, 7, r->userdata, -1, SQLITE_STATIC) ||
        sqlite3_bind_int64(st, 8, (sqlite3_int64)r->seq))
        return fail(s, "bind resource", err, n);
    return run(s, st, "write resource", err, n);
}

static int sq_del(store *b, const char *name, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    if (sqlite3_bind_text(s->del, 1, name, -1, SQLITE_STATIC))
        return fail(s, "bind name", err, n);
    return run(s, s->del, "delete resource", err, n);
}

static int sq_put_drlc(store *b, const char *type, const char *json, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    if (sqlite3_bind_text(s->put_drlc, 1, type, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(s->put_drlc, 2, json, -1, SQLITE_STATIC))
        return fail(s, "bind lifecycle", err, n);
    return run(s, s->put_drlc, "write lifecycle", err, n);
}

static int sq_del_drlc(store *b, const char *type, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    if (sqlite3_bind_text(s->del_drlc, 1, type, -1, SQLITE_STATIC))
        return fail(s, "bind lifecycle", err, n);
    return run(s, s->del_drlc, "delete lifecycle", err, n);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static int load_resources(sqlite_store *s, void *ctx, int (*fn)(void *, const store_rec *),
                          char *err, size_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT type, name, state, owner, userdata, lastupdate,"
                           " expiration, seq FROM resources ORDER BY seq", -1, &st, NULL))
        return fail(s, "load", err, n);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_rec r = {
            col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
            col_text(st, 4), sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6),
            sqlite3_column_type(st, 6) != SQLITE_NULL, (uint64_t)sqlite3_column_int64(st, 7),
        };
        if (fn(ctx, &r) != 0) { /* r's texts live until finalize */
            snprintf(err, n, "sqlite load %s: cannot add resource %s (out of memory)", s->path, r.name);
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : fail(s, "load", err, n);
}

static int load_drlcs(sqlite_store *s, void *ctx, int (*fn)(void *, const char *, const char *),
                      char *err, size_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT type, spec FROM lifecycles ORDER BY type", -1, &st, NULL))
        return fail(s, "load lifecycles", err, n);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn(ctx, col_text(st, 0), col_text(st, 1)) != 0) { /* texts live until finalize */
            snprintf(err, n, "sqlite load %s: the stored lifecycle of type %s is not valid JSON "
                     "(or out of memory)", s->path, col_text(st, 0));
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : fail(s, "load lifecycles", err, n);
}

static int sq_load(store *b, void *ctx, int (*fn)(void *, const store_rec *),
                   int (*fn_drlc)(void *, const char *, const char *), char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    if (load_resources(s, ctx, fn, err, n) != 0)
        return -1;
    return load_drlcs(s, ctx, fn_drlc, err, n);
}

static void sq_close(store *b)
{
    sqlite_store *s = (sqlite_store *)b;
    char err[1024];
    if (s->db != NULL && s->commit != NULL && sq_flush(b, err, sizeof err) != 0)
        server_log(SLOG_ERROR, "closing the sqlite store: %s", err);
    sqlite3_stmt *all[] = { s->begin, s->commit, s->rollback, s->put, s->del,
                            s->put_drlc, s->del_drlc, s->savepoint, s->release,
                            s->rollback_to };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
        server_log(SLOG_ERROR, "closing the sqlite store %s: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
}

static const store_ops sqlite_ops = {
    sq_load, sq_begin, sq_put, sq_del, sq_put_drlc, sq_del_drlc, sq_commit, sq_rollback, sq_close,
    sq_flush,
};

static int prepare(sqlite_store *s)
{
    struct { sqlite3_stmt **st; const char *sql; } list[] = {
        { &s->begin, "BEGIN IMMEDIATE" },
        { &s->commit, "COMMIT" },
        { &s->rollback, "ROLLBACK" },
        { &s->savepoint, "SAVEPOINT one" },
        { &s->release, "RELEASE one" },
        { &s->rollback_to, "ROLLBACK TO one" },
        { &s->put, "INSERT OR REPLACE INTO resources(name, type, state, owner, lastupdate,"
                   " expiration, userdata, seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?)" },
        { &s->del, "DELETE FROM resources WHERE name = ?" },
        { &s->put_drlc, "INSERT OR REPLACE INTO lifecycles(type, spec) VALUES(?, ?)" },
        { &s->del_drlc, "DELETE FROM lifecycles WHERE type = ?" },
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (sqlite3_prepare_v3(s->db, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT, list[i].st, NULL))
            return -1;
    return 0;
}

store *store_sqlite_open(const char *path, char *err, size_t n)
{
    sqlite_store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        snprintf(err, n, "out of memory opening sqlite store %s", path);
        free(s);
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    s->base.kind = "sqlite";
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 1000) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK || prepare(s) != 0) {
        char why[1024];
        explain(path, s->db, why, sizeof why);
        snprintf(err, n, "cannot open sqlite store %s: %s", path, why);
        sq_close(&s->base);
        return NULL;
    }
    return &s->base;
}
