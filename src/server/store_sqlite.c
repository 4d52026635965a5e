/* store_sqlite.c: the "sqlite:PATH" store. WAL journal with
 * synchronous=NORMAL: a flush reaches the OS before the ranch answers, so
 * every acknowledged change survives kill -9 of the server (a power loss
 * may drop the last transactions, never corrupt the file). Only the
 * file is locked for this process alone.
 *
 * Group commit (docs/storage.md): the ranch's transactions are queued in
 * memory (begin, put, del and commit only copy values, under the ranch
 * lock), and the committer's flush writes all those committed so far as
 * one SQLite transaction, outside the ranch lock, so that requests go on
 * while the file is written. Only flush (on the committer thread), load,
 * history reads and close touch the connection, one at a time (db_mu). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "server/store.h"
#include "server/store_sqlite_wal.h"
#include "server/server_log.h"

/* One queued write: a prepared statement with copies of its values, or
 * (sql set) a statement's text with its values in it. */
enum { SQ_NULL, SQ_INT, SQ_TEXT };
typedef struct {
    int kind;
    int64_t num;
    const char *text;
} sq_val;

typedef struct pending {
    struct pending *next;
    sqlite3_stmt *st;
    char *sql;
    const char *what;         /* for error messages */
    int event;                /* a history event: write_event numbers it */
    int nv;
    sq_val v[];               /* texts follow, in the same allocation */
} pending;

typedef struct {
    store base;
    char *path;
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *rollback, *put, *del, *put_drlc, *del_drlc;
    pending *cur, *cur_tail;   /* the open transaction (ranch lock) */
    pthread_mutex_t mu;        /* guards done and the commit count */
    pending *done, *done_tail; /* committed, not yet flushed */
    /* The connection is in SQLite's multi-thread mode (NOMUTEX): one
     * thread at a time. flush holds db_mu while it writes, so a history
     * read (a handler thread) waits for it and sees committed rows only. */
    pthread_mutex_t db_mu;
    history_limits hist_lim;
    /* Event ids (rowids, ordering all events) are given out under the
     * ranch lock, before their rows reach the file. */
    int64_t hist_last_id;      /* the newest given out (open transaction too) */
    int64_t hist_committed_id; /* the newest in a committed transaction */
    int64_t hist_durable_id;   /* the newest in the file (db_mu) */
    int64_t hist_flushing_id;  /* the newest written by this flush (db_mu) */
    sqlite3_stmt *h_last, *h_insert, *h_trim, *h_cap, *h_get, *h_mark, *h_unmark,
                 *h_expire, *h_expire_marks;
} sqlite_store;

/* Set on the committer while it flushes: statements run, not queue. */
static _Thread_local int in_flush;

/* Exclusive locking: a second server on the same file fails at start
 * instead of leasing the same resources twice. */
static const char schema[] =
    "PRAGMA locking_mode=EXCLUSIVE;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    /* a checkpoint copies each page once however often the WAL holds it:
     * rarer ones cost the committer less (the WAL grows to ~16 MB) */
    "PRAGMA wal_autocheckpoint=4000;"
    "CREATE TABLE IF NOT EXISTS resources("
    " name TEXT PRIMARY KEY, type TEXT NOT NULL, state TEXT NOT NULL,"
    " owner TEXT NOT NULL, lastupdate INTEGER NOT NULL, expiration INTEGER,"
    " userdata TEXT NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;"
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

/* ---- the queue of writes ---- */

static void pending_free(pending *p)
{
    while (p) {
        pending *next = p->next;
        free(p->sql);
        free(p);
        p = next;
    }
}

static void append(pending **head, pending **tail, pending *p)
{
    p->next = NULL;
    if (*tail)
        (*tail)->next = p;
    else
        *head = p;
    *tail = p;
}

/* Queues st with these values in the open transaction (the caller holds
 * the ranch lock). Texts are copied into the entry. */
static int queue(sqlite_store *s, sqlite3_stmt *st, const char *what, int nv, const sq_val *v,
                 char *err, size_t n)
{
    size_t bytes = sizeof(pending) + (size_t)nv * sizeof(sq_val);
    for (int i = 0; i < nv; i++)
        if (v[i].kind == SQ_TEXT)
            bytes += strlen(v[i].text) + 1;
    pending *p = malloc(bytes);
    if (p == NULL) {
        snprintf(err, n, "sqlite %s %s: out of memory", what, s->path);
        return -1;
    }
    *p = (pending){ .st = st, .what = what, .nv = nv };
    char *texts = (char *)(p->v + nv);
    for (int i = 0; i < nv; i++) {
        p->v[i] = v[i];
        if (v[i].kind == SQ_TEXT) {
            size_t len = strlen(v[i].text) + 1;
            memcpy(texts, v[i].text, len);
            p->v[i].text = texts;
            texts += len;
        }
    }
    append(&s->cur, &s->cur_tail, p);
    return 0;
}

/* Runs a statement. Only the committer runs statements; a write op that
 * binds a statement and calls this from under the ranch lock has it
 * queued as SQL text with its values, and written by the next flush. */
static int run(sqlite_store *s, sqlite3_stmt *st, const char *what, char *err, size_t n)
{
    if (!in_flush) {
        char *sql = sqlite3_expanded_sql(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        pending *p = sql ? calloc(1, sizeof *p) : NULL;
        if (p == NULL) {
            sqlite3_free(sql);
            snprintf(err, n, "sqlite %s %s: out of memory", what, s->path);
            return -1;
        }
        p->sql = strdup(sql);
        sqlite3_free(sql);
        p->what = what;
        if (p->sql == NULL) {
            free(p);
            snprintf(err, n, "sqlite %s %s: out of memory", what, s->path);
            return -1;
        }
        append(&s->cur, &s->cur_tail, p);
        return 0;
    }
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
    pending_free(s->cur);      /* left by a caller that neither committed nor rolled back */
    s->cur = s->cur_tail = NULL;
    s->hist_last_id = s->hist_committed_id;
    return 0;
}

/* The transaction joins the committed ones: visible at once (the ranch
 * applies it), durable at the next flush. */
static int sq_commit(store *b, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    pthread_mutex_lock(&s->mu);
    if (s->cur) {
        if (s->done_tail)
            s->done_tail->next = s->cur;
        else
            s->done = s->cur;
        s->done_tail = s->cur_tail;
    }
    __atomic_add_fetch(&b->committed, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->mu);
    s->cur = s->cur_tail = NULL;
    s->hist_committed_id = s->hist_last_id;
    return 0;
}

static void sq_rollback(store *b)
{
    sqlite_store *s = (sqlite_store *)b;
    pending_free(s->cur);
    s->cur = s->cur_tail = NULL;
    s->hist_last_id = s->hist_committed_id;
}

/* Drops every write not yet flushed (they were undone, or are about to
 * be: load and close). */
static void drop_queued(sqlite_store *s)
{
    pthread_mutex_lock(&s->mu);
    pending_free(s->done);
    s->done = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    sq_rollback(&s->base);
}

static int bind_all(sqlite_store *s, const pending *p, char *err, size_t n)
{
    for (int i = 0; i < p->nv; i++) {
        const sq_val *v = &p->v[i];
        int rc = v->kind == SQ_TEXT ? sqlite3_bind_text(p->st, i + 1, v->text, -1, SQLITE_STATIC)
               : v->kind == SQ_INT ? sqlite3_bind_int64(p->st, i + 1, v->num)
               : sqlite3_bind_null(p->st, i + 1);
        if (rc != SQLITE_OK)
            return fail(s, p->what, err, n);
    }
    return 0;
}

static int write_event(sqlite_store *s, const pending *p, char *err, size_t n);

static int write_one(sqlite_store *s, const pending *p, char *err, size_t n)
{
    if (p->event)
        return write_event(s, p, err, n);
    if (p->sql) {
        if (sqlite3_exec(s->db, p->sql, NULL, NULL, NULL) != SQLITE_OK)
            return fail(s, p->what, err, n);
        return 0;
    }
    if (bind_all(s, p, err, n) != 0) {
        sqlite3_clear_bindings(p->st);
        return -1;
    }
    return run(s, p->st, p->what, err, n);
}

/* Writes the queued transactions as one SQLite transaction. Called by the
 * committer without the ranch lock: only the swap of the queue takes the
 * store's mutex, and the ranch meanwhile queues the next group. */
static int sq_flush(store *b, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    pthread_mutex_lock(&s->db_mu);
    pthread_mutex_lock(&s->mu);
    pending *todo = s->done;
    s->done = s->done_tail = NULL;
    uint64_t upto = __atomic_load_n(&b->committed, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->mu);
    int rc = 0;
    in_flush = 1;
    s->hist_flushing_id = s->hist_durable_id;
    if (todo) {
        rc = run(s, s->begin, "begin", err, n);
        for (const pending *p = todo; rc == 0 && p; p = p->next)
            rc = write_one(s, p, err, n);
        if (rc == 0)
            rc = run(s, s->commit, "commit", err, n);
        /* normally a no-op: the VFS wrote the frames at the commit frame */
        if (rc == 0 && store_sqlite_wal_flush(s->db) != SQLITE_OK)
            rc = fail(s, "commit", err, n);
        if (rc != 0 && !sqlite3_get_autocommit(s->db)) {
            sqlite3_step(s->rollback);
            sqlite3_reset(s->rollback);
        }
    }
    in_flush = 0;
    if (rc == 0)
        s->hist_durable_id = s->hist_flushing_id;
    pthread_mutex_unlock(&s->db_mu);
    pending_free(todo);
    if (rc == 0)
        __atomic_store_n(&b->durable, upto, __ATOMIC_SEQ_CST);
    return rc;
}

static int sq_put(store *b, const store_rec *r, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sq_val v[8] = {
        { SQ_TEXT, 0, r->name }, { SQ_TEXT, 0, r->type }, { SQ_TEXT, 0, r->state },
        { SQ_TEXT, 0, r->owner }, { SQ_INT, r->lastupdate, NULL },
        { r->has_exp ? SQ_INT : SQ_NULL, r->expiration, NULL }, { SQ_TEXT, 0, r->userdata },
        { SQ_INT, (int64_t)r->seq, NULL },
    };
    return queue(s, s->put, "write resource", 8, v, err, n);
}

static int sq_del(store *b, const char *name, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sq_val v[1] = { { SQ_TEXT, 0, name } };
    return queue(s, s->del, "delete resource", 1, v, err, n);
}

static int sq_put_drlc(store *b, const char *type, const char *json, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sq_val v[2] = { { SQ_TEXT, 0, type }, { SQ_TEXT, 0, json } };
    return queue(s, s->put_drlc, "write lifecycle", 2, v, err, n);
}

static int sq_del_drlc(store *b, const char *type, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sq_val v[1] = { { SQ_TEXT, 0, type } };
    return queue(s, s->del_drlc, "delete lifecycle", 1, v, err, n);
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

static int read_last_event_id(sqlite_store *s);

static int sq_load(store *b, void *ctx, int (*fn)(void *, const store_rec *),
                   int (*fn_drlc)(void *, const char *, const char *), char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    drop_queued(s);            /* what is stored, not what was queued */
    pthread_mutex_lock(&s->db_mu);
    int rc = read_last_event_id(s);
    if (rc != 0)
        fail(s, "load history", err, n);
    else if ((rc = load_resources(s, ctx, fn, err, n)) == 0)
        rc = load_drlcs(s, ctx, fn_drlc, err, n);
    pthread_mutex_unlock(&s->db_mu);
    return rc;
}

/* ---- history (docs/history.md) ----
 * One row per event; nseq numbers a resource's events, so that keeping its
 * last HISTORY_PER_RESOURCE is one indexed delete; the rowid orders all
 * events, so that keeping the last max_events is one range delete. Both
 * deletes run every TRIM_EVERY events only (a change costs one statement
 * more, not three); reads never return more than the caps allow. Names
 * whose resource was deleted wait in history_deleted for expiry.
 *
 * With group commit an event is queued with its change and written by the
 * same flush. Its id is given out under the ranch lock (the ranch's
 * transactions come one at a time; a rollback or a reload takes back the
 * ids it gave); its nseq is numbered by the committer, which alone writes
 * the file, so that queuing reads nothing. */

#define TRIM_EVERY 64

/* A queued event's values: h_insert's parameters, in order; nseq is set
 * when it is written. */
enum { EV_ID, EV_NAME, EV_NSEQ, EV_VALUES = 11 };

static const char history_schema[] =
    "CREATE TABLE IF NOT EXISTS history("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, nseq INTEGER NOT NULL,"
    " time INTEGER NOT NULL, endpoint TEXT NOT NULL, from_state TEXT NOT NULL,"
    " to_state TEXT NOT NULL, owner_from TEXT NOT NULL, owner_to TEXT NOT NULL,"
    " keys TEXT NOT NULL, keys_total INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS history_by_name ON history(name, nseq);"
    "CREATE TABLE IF NOT EXISTS history_deleted(name TEXT PRIMARY KEY, at INTEGER NOT NULL);";

/* Binds name and v to st's two parameters and runs it (at flush). */
static int bind_name_run(sqlite_store *s, sqlite3_stmt *st, const char *name, int64_t v,
                         const char *what, char *err, size_t n)
{
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) || sqlite3_bind_int64(st, 2, v))
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

/* Writes a queued event (the committer, in the flush's transaction): its
 * number among name's events is known only here, where the file holds
 * every earlier one, those of this flush included. Keeps name's last
 * HISTORY_PER_RESOURCE every TRIM_EVERY events. */
static int write_event(sqlite_store *s, const pending *p, char *err, size_t n)
{
    const char *name = p->v[EV_NAME].text;
    int64_t nseq;
    if (last_nseq(s, name, &nseq, err, n) != 0)
        return -1;
    nseq++;
    if (bind_all(s, p, err, n) != 0 || sqlite3_bind_int64(p->st, EV_NSEQ + 1, nseq)) {
        sqlite3_clear_bindings(p->st);
        return fail(s, p->what, err, n);
    }
    if (run(s, p->st, p->what, err, n) != 0)
        return -1;
    s->hist_flushing_id = p->v[EV_ID].num;
    if (nseq > HISTORY_PER_RESOURCE && nseq % TRIM_EVERY == 0)
        return bind_name_run(s, s->h_trim, name, nseq - HISTORY_PER_RESOURCE, "trim history",
                             err, n);
    return 0;
}

/* Queued with the change it describes (the same queue, hence the same
 * SQLite transaction): a flush writes both or neither. */
static int sq_history_put(store *b, const hist_event *e, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    int64_t id = ++s->hist_last_id;
    sq_val v[EV_VALUES] = {
        [EV_ID] = { SQ_INT, id, NULL }, [EV_NAME] = { SQ_TEXT, 0, e->name },
        [EV_NSEQ] = { SQ_INT, 0, NULL }, { SQ_INT, e->time, NULL },
        { SQ_TEXT, 0, e->endpoint }, { SQ_TEXT, 0, e->from }, { SQ_TEXT, 0, e->to },
        { SQ_TEXT, 0, e->owner_from }, { SQ_TEXT, 0, e->owner_to }, { SQ_TEXT, 0, e->keys },
        { SQ_INT, e->keys_total, NULL },
    };
    if (queue(s, s->h_insert, "write history", EV_VALUES, v, err, n) != 0)
        return -1;
    s->cur_tail->event = 1;
    if (id > (int64_t)s->hist_lim.max_events && id % TRIM_EVERY == 0) {
        sq_val cap[1] = { { SQ_INT, id - (int64_t)s->hist_lim.max_events, NULL } };
        if (queue(s, s->h_cap, "trim history", 1, cap, err, n) != 0)
            return -1;
    }
    sq_val name[2] = { { SQ_TEXT, 0, e->name }, { SQ_INT, e->time, NULL } };
    if (e->to[0] == '\0')
        return queue(s, s->h_mark, "mark deleted history", 2, name, err, n);
    if (e->from[0] == '\0')
        return queue(s, s->h_unmark, "unmark deleted history", 1, name, err, n);
    return 0;
}

/* Reads the file under db_mu, so never during a flush: the events of
 * durable transactions only (all a client can have been told about). */
static int sq_history_get(store *b, const char *name, size_t limit, void *ctx,
                          int (*fn)(void *, const hist_event *), char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sqlite3_stmt *st = s->h_get;
    pthread_mutex_lock(&s->db_mu);
    /* rows past the caps wait for the next trim: never shown */
    int64_t oldest_id = s->hist_durable_id - (int64_t)s->hist_lim.max_events;
    if (limit == 0 || limit > HISTORY_PER_RESOURCE)
        limit = HISTORY_PER_RESOURCE;
    int rc, got = 0;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) ||
        sqlite3_bind_int64(st, 2, oldest_id) || sqlite3_bind_int64(st, 3, (sqlite3_int64)limit)) {
        got = fail(s, "bind history name", err, n);
        rc = SQLITE_DONE;
    } else {
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
    }
    if (got >= 0 && rc != SQLITE_DONE)
        got = fail(s, "read history", err, n);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->db_mu);
    return got;
}

/* Queued like a change (ranch_gc's own transaction), written by the next
 * flush: nobody waits for it, so the committer's idle flush does. */
static int sq_history_expire(store *b, int64_t now, char *err, size_t n)
{
    sqlite_store *s = (sqlite_store *)b;
    sq_val cutoff[1] = { { SQ_INT, now - s->hist_lim.keep_deleted_ns, NULL } };
    if (queue(s, s->h_expire, "expire history", 1, cutoff, err, n) != 0)
        return -1;
    return queue(s, s->h_expire_marks, "expire history", 1, cutoff, err, n);
}

/* The newest event id in the file: where the ids go on from (at open,
 * and at a reload, which forgets the ids of undone transactions). */
static int read_last_event_id(sqlite_store *s)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT max(id) FROM history", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return -1;
    s->hist_last_id = s->hist_committed_id = s->hist_durable_id = id;
    return 0;
}

static int prepare_history(sqlite_store *s)
{
    struct { sqlite3_stmt **st; const char *sql; } list[] = {
        { &s->h_last, "SELECT nseq FROM history WHERE name = ? ORDER BY nseq DESC LIMIT 1" },
        { &s->h_insert, "INSERT INTO history(id, name, nseq, time, endpoint, from_state,"
                        " to_state, owner_from, owner_to, keys, keys_total)"
                        " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" },
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
    if (sqlite3_exec(s->db, history_schema, NULL, NULL, NULL) != SQLITE_OK ||
        read_last_event_id(s) != 0)
        return -1;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (sqlite3_prepare_v3(s->db, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT, list[i].st, NULL))
            return -1;
    return 0;
}

static void sq_close(store *b)
{
    sqlite_store *s = (sqlite_store *)b;
    char err[1024];
    if (s->db != NULL && s->commit != NULL && sq_flush(b, err, sizeof err) != 0)
        server_log(SLOG_ERROR, "closing the sqlite store: %s", err);
    drop_queued(s);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->db_mu);
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
    sq_flush, sq_history_put, sq_history_get, sq_history_expire,
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
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->db_mu, NULL);
    s->base.ops = &sqlite_ops;
    s->base.kind = "sqlite";
    s->hist_lim = lim;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (store_sqlite_wal_register() != SQLITE_OK) {
        snprintf(err, n, "cannot open sqlite store %s: cannot register the %s VFS", path,
                 STORE_SQLITE_WAL_VFS);
        sq_close(&s->base);
        return NULL;
    }
    if (sqlite3_open_v2(path, &s->db, flags, STORE_SQLITE_WAL_VFS) != SQLITE_OK ||
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
