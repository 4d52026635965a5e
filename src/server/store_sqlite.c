/* store_sqlite.c: the "sqlite:PATH" store. WAL journal with
 * synchronous=NORMAL: a commit reaches the OS before the ranch answers, so
 * every acknowledged change survives kill -9 of the server (a power loss
 * may drop the last transactions, never corrupt the file). Only the
 * ranch's lock ever touches the connection, and the file is locked for
 * this process alone. */
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
    history_limits hist_lim;
    int64_t hist_last_id;        /* the newest event's rowid */
    sqlite3_stmt *h_last, *h_insert, *h_trim, *h_cap, *h_get, *h_mark, *h_unmark,
                 *h_expire, *h_expire_marks;
} sqlite_store;

/* Exclusive locking: a second server on the same file fails at start
 * instead of leasing the same resources twice. */
static const char schema[] =
    "PRAGMA locking_mode=EXCLUSIVE;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
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
    return run(s, s->begin, "begin", err, n);
}

static int sq_commit(store *b, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    return run(s, s->commit, "commit", err, n);
}

static void sq_rollback(store *b)
{
    sqlite_store *s = (sqlite_store *)b;
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_step(s->rollback);
        sqlite3_reset(s->rollback);
    }
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

/* ---- history (docs/history.md) ----
 * One row per event; nseq numbers a resource's events, so that keeping its
 * last HISTORY_PER_RESOURCE is one indexed delete; the rowid orders all
 * events, so that keeping the last max_events is one range delete. Both
 * deletes run every TRIM_EVERY events only (a change costs one statement
 * more, not three); reads never return more than the caps allow. Names
 * whose resource was deleted wait in history_deleted for expiry. */

#define TRIM_EVERY 64

static const char history_schema[] =
    "CREATE TABLE IF NOT EXISTS history("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, nseq INTEGER NOT NULL,"
    " time INTEGER NOT NULL, endpoint TEXT NOT NULL, from_state TEXT NOT NULL,"
    " to_state TEXT NOT NULL, owner_from TEXT NOT NULL, owner_to TEXT NOT NULL,"
    " keys TEXT NOT NULL, keys_total INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS history_by_name ON history(name, nseq);"
    "CREATE TABLE IF NOT EXISTS history_deleted(name TEXT PRIMARY KEY, at INTEGER NOT NULL);";

static int bind_name_run(sqlite_store *s, sqlite3_stmt *st, const hist_event *e, int64_t v,
                         const char *what, char *err, size_t n)
{
    if (sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC) || sqlite3_bind_int64(st, 2, v))
        return fail(s, what, err, n);
    return run(s, st, what, err, n);
}

/* The number of name's newest stored event (0: none). */
static int last_nseq(sqlite_store *s, const char *name, int64_t *nseq, char *err, size_t n)
{
    sqlite3_stmt *st = s->h_last;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC))
        return fail(s, "bind history name", err, n);
    int rc = sqlite3_step(st);
    *nseq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, "read history", err, n);
}

/* Inserts e numbered after name's newest event; *nseq: its number. */
static int insert_event(sqlite_store *s, const hist_event *e, int64_t *nseq, char *err, size_t n)
{
    sqlite3_stmt *st = s->h_insert;
    if (last_nseq(s, e->name, nseq, err, n) != 0)
        return -1;
    if (sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC) || sqlite3_bind_int64(st, 2, ++*nseq) ||
        sqlite3_bind_int64(st, 3, e->time) ||
        sqlite3_bind_text(st, 4, e->endpoint, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 5, e->from, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 6, e->to, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 7, e->owner_from, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 8, e->owner_to, -1, SQLITE_STATIC) ||
        sqlite3_bind_text(st, 9, e->keys, -1, SQLITE_STATIC) ||
        sqlite3_bind_int64(st, 10, e->keys_total))
        return fail(s, "bind history event", err, n);
    return run(s, st, "write history", err, n);
}

static int sq_history_put(store *b, const hist_event *e, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    int64_t nseq = 0;
    if (insert_event(s, e, &nseq, err, n) != 0)
        return -1;
    int64_t id = s->hist_last_id = sqlite3_last_insert_rowid(s->db);
    if (nseq > HISTORY_PER_RESOURCE && nseq % TRIM_EVERY == 0 &&
        bind_name_run(s, s->h_trim, e, nseq - HISTORY_PER_RESOURCE, "trim history", err, n) != 0)
        return -1;
    if (id > (int64_t)s->hist_lim.max_events && id % TRIM_EVERY == 0) {
        if (sqlite3_bind_int64(s->h_cap, 1, id - (int64_t)s->hist_lim.max_events) ||
            run(s, s->h_cap, "trim history", err, n) != 0)
            return -1;
    }
    if (e->to[0] == '\0')
        return bind_name_run(s, s->h_mark, e, e->time, "mark deleted history", err, n);
    if (e->from[0] == '\0') {
        if (sqlite3_bind_text(s->h_unmark, 1, e->name, -1, SQLITE_STATIC))
            return fail(s, "bind history name", err, n);
        return run(s, s->h_unmark, "unmark deleted history", err, n);
    }
    return 0;
}

static int sq_history_get(store *b, const char *name, size_t limit, void *ctx,
                          int (*fn)(void *, const hist_event *), char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sqlite3_stmt *st = s->h_get;
    /* rows past the caps wait for the next trim: never shown */
    int64_t oldest_id = s->hist_last_id - (int64_t)s->hist_lim.max_events;
    if (limit == 0 || limit > HISTORY_PER_RESOURCE)
        limit = HISTORY_PER_RESOURCE;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) ||
        sqlite3_bind_int64(st, 2, oldest_id) || sqlite3_bind_int64(st, 3, (sqlite3_int64)limit))
        return fail(s, "bind history name", err, n);
    int rc, got = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hist_event e = { name, sqlite3_column_int64(st, 0), col_text(st, 1), col_text(st, 2),
                         col_text(st, 3), col_text(st, 4), col_text(st, 5), col_text(st, 6),
                         (uint32_t)sqlite3_column_int64(st, 7) };
        if (fn(ctx, &e) != 0) {
            snprintf(err, n, "out of memory reading the history of %s", name);
            got = -1;
            break;
        }
        got++;
    }
    if (got >= 0 && rc != SQLITE_DONE)
        got = fail(s, "read history", err, n);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return got;
}

static int sq_history_expire(store *b, int64_t now, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    int64_t cutoff = now - s->hist_lim.keep_deleted_ns;
    if (sqlite3_bind_int64(s->h_expire, 1, cutoff) ||
        sqlite3_bind_int64(s->h_expire_marks, 1, cutoff))
        return fail(s, "bind history expiry", err, n);
    if (run(s, s->h_expire, "expire history", err, n) != 0)
        return -1;
    return run(s, s->h_expire_marks, "expire history", err, n);
}

static int prepare_history(sqlite_store *s)
{
    struct { sqlite3_stmt **st; const char *sql; } list[] = {
        { &s->h_last, "SELECT nseq FROM history WHERE name = ? ORDER BY nseq DESC LIMIT 1" },
        { &s->h_insert, "INSERT INTO history(name, nseq, time, endpoint, from_state, to_state,"
                        " owner_from, owner_to, keys, keys_total)"
                        " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" },
        { &s->h_trim, "DELETE FROM history WHERE name = ? AND nseq <= ?" },
        { &s->h_cap, "DELETE FROM history WHERE id <= ?" },
        { &s->h_get, "SELECT time, endpoint, from_state, to_state, owner_from, owner_to, keys,"
                     " keys_total"
                     " FROM history WHERE name = ? AND id > ? ORDER BY nseq DESC LIMIT ?" },
        { &s->h_mark, "INSERT OR REPLACE INTO history_deleted(name, at) VALUES(?, ?)" },
        { &s->h_unmark, "DELETE FROM history_deleted WHERE name = ?" },
        { &s->h_expire, "DELETE FROM history WHERE name IN"
                        " (SELECT name FROM history_deleted WHERE at <= ?)" },
        { &s->h_expire_marks, "DELETE FROM history_deleted WHERE at <= ?" },
    };
    sqlite3_stmt *st;
    if (sqlite3_exec(s->db, history_schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT max(id) FROM history", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    s->hist_last_id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return -1;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (sqlite3_prepare_v3(s->db, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT, list[i].st, NULL))
            return -1;
    return 0;
}

static void sq_close(store *b)
{
    sqlite_store *s = (sqlite_store *)b;
    sqlite3_stmt *all[] = { s->begin, s->commit, s->rollback, s->put, s->del,
                            s->put_drlc, s->del_drlc,
                            s->h_last, s->h_insert, s->h_trim, s->h_cap, s->h_get, s->h_mark,
                            s->h_unmark, s->h_expire, s->h_expire_marks };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
        server_log(SLOG_ERROR, "closing the sqlite store %s: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
}

static const store_ops sqlite_ops = {
    sq_load, sq_begin, sq_put, sq_del, sq_put_drlc, sq_del_drlc, sq_commit, sq_rollback, sq_close,
    sq_history_put, sq_history_get, sq_history_expire,
};

static int prepare(sqlite_store *s)
{
    struct { sqlite3_stmt **st; const char *sql; } list[] = {
        { &s->begin, "BEGIN IMMEDIATE" },
        { &s->commit, "COMMIT" },
        { &s->rollback, "ROLLBACK" },
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
    history_limits lim;
    if (history_limits_from_env(&lim, err, n) != 0)
        return NULL;
    sqlite_store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        snprintf(err, n, "out of memory opening sqlite store %s", path);
        free(s);
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    s->base.kind = "sqlite";
    s->hist_lim = lim;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 1000) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK || prepare(s) != 0 ||
        prepare_history(s) != 0) {
        char why[1024];
        explain(path, s->db, why, sizeof why);
        snprintf(err, n, "cannot open sqlite store %s: %s", path, why);
        sq_close(&s->base);
        return NULL;
    }
    return &s->base;
}
